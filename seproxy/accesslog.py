"""The access log: one line per served call on the ``seproxy.access`` logger.

Each line names the caller (DN and group), the call (``RPC/uploadFile``,
``FileTransfer/FromClient`` ...), its result (``OK`` or the error message), the file
bytes it moved and its duration; the same fields travel as ``record.access`` for the
JSON log format. Arguments and answers are never logged, so no proxy, key or HTTP
secret reaches the log (an error message is cut at 200 characters). Ground floor:
imports nothing from seproxy.
"""

from __future__ import annotations

import logging
from typing import Any

log = logging.getLogger("seproxy.access")

MAX_MESSAGE = 200


def record(service: str, action: str, credentials: dict[str, Any], answer: Any,
           transferred: int, seconds: float) -> None:
    """Write the access line of one finished call."""
    if not log.isEnabledFor(logging.INFO):
        return
    ok = isinstance(answer, dict) and bool(answer.get("OK"))
    result = "OK" if ok else str(answer.get("Message", "error") if isinstance(answer, dict)
                                 else "no answer")[:MAX_MESSAGE]
    fields = {"service": service, "method": action, "DN": credentials.get("DN", ""),
              "group": credentials.get("group", ""), "result": result, "bytes": int(transferred),
              "duration": round(seconds, 6)}
    log.info("%s %s DN=%r group=%s result=%r bytes=%d duration=%.3fs", service, action,
             fields["DN"], fields["group"], result, fields["bytes"], seconds,
             extra={"access": fields})
