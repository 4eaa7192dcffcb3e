"""A File storage plugin that records the credentials of each storage call (tests only)."""

from __future__ import annotations

import fcntl
import json
import os
import threading
from typing import Any

from cryptography import x509

from seproxy.security.x509 import X509Chain
from seproxy.storage.plugins.file import FileStorage


class RecordingStorage(FileStorage):
    """``File`` + one JSON line per put/get/exists in ``RecordFile`` (see README.md)."""

    pluginName = "Recording"

    def __init__(self, storageName: str, parameters: dict[str, Any], **kwargs: Any) -> None:
        super().__init__(storageName, parameters, **kwargs)
        self._record_file = parameters.get("RecordFile", "")

    def _record(self, operation: str, url: str) -> None:
        creds = self.credentials
        entry: dict[str, Any] = {"op": operation, "url": url, "pid": os.getpid(),
                                 "thread": threading.get_ident(), "in_memory": creds.proxy_pem is not None,
                                 "proxy_path": str(creds.proxy_path) if creds.proxy_path else None}
        if creds.proxy_pem:
            # certificates only (loading the RSA key costs more than the storage call)
            chain = X509Chain.from_certificates(x509.load_pem_x509_certificates(creds.proxy_pem))
            entry.update(dn=chain.identity_dn, group=chain.dirac_group, seconds_left=chain.seconds_left,
                         has_key=b"PRIVATE KEY-----" in creds.proxy_pem,
                         environ_proxy=os.environ.get("X509_USER_PROXY"))
        if self._record_file:
            with open(self._record_file, "a", encoding="utf-8") as fh:
                fcntl.flock(fh, fcntl.LOCK_EX)
                fh.write(json.dumps(entry) + "\n")

    def _exists(self, url: str) -> bool:
        self._record("exists", url)
        return super()._exists(url)

    def _get_file(self, url: str, local_dir: str) -> int:
        self._record("get", url)
        return super()._get_file(url, local_dir)

    def _put_file(self, url: str, src: Any, source_size: int) -> int:
        self._record("put", url)
        return super()._put_file(url, src, source_size)
