"""HTTP download keys: made by the handler when it stages files, checked by the HTTP front.

A key is self-contained, so that any instance sharing the ``BasePath`` (or ``HttpCache``)
and the key secret serves a key another instance issued::

    base64url( 1 | secret id (4) | expiry (8, Unix s) | nonce (32) | namespace (20) | instance
               | HMAC-SHA256(secret, everything before) (32) )

* the 256-bit nonce comes from :mod:`secrets` (a key stays unguessable without the secret);
* the MAC makes it unforgeable: a changed byte, a key signed with another site's secret or
  one whose expiry has passed is refused (:meth:`KeySigner.verify` returns ``None``);
* what it grants is in it: the key directory ``<HttpCache root>/<instance>/<expiry>-<id>``
  (``id`` derived from the nonce) and the namespace of the caller who staged it.

The secrets are read from a file (:func:`load_secrets`): one hex secret per line, the
first one signs, all are accepted (rotation: put a new line first, drop the old line
after ``HttpKeyLifetime``). A missing file is created with a fresh secret, mode 0600.
The file is re-read when it changes, so a rotation needs no restart.

:func:`new_key` and :func:`key_digest` remain for the in-process register
(:class:`~seproxy.staging.cache.ExpiringRegister`, DIRAC's ``gRegister``).
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import hmac
import os
import re
import secrets
import stat
import struct
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from seproxy.errors import ConfigError, PathError
from seproxy.staging.namespace import check_name

_VERSION = 1
_HEAD = struct.Struct(">B4sQ32s20s")  # version, secret id, expiry, nonce, namespace
_MAC = 32
_ALPHABET = re.compile(r"[A-Za-z0-9_-]{1,2048}")
#: Bytes of a secret made by :func:`load_secrets` (256 bits).
SECRET_BYTES = 32
MIN_SECRET_BYTES = 32


def new_key() -> str:
    """A fresh random key (256 bits from :mod:`secrets`, URL-safe) for the in-process register."""
    return secrets.token_urlsafe(32)


def key_digest(key: str) -> str:
    """The register index of a key (its SHA-256, hex)."""
    return hashlib.sha256(key.encode("utf-8", "surrogateescape")).hexdigest()


def _secret_id(secret: bytes) -> bytes:
    return hashlib.sha256(b"seproxy http key id\0" + secret).digest()[:4]


@dataclass(frozen=True)
class KeyGrant:
    """What a verified key grants."""

    digest: str        #: SHA-256 of the key (the single-use claim is indexed by it)
    expires: float     #: Unix time
    namespace: str     #: hex id of the staging caller's namespace
    directory: str     #: key directory relative to the HTTP cache root: ``<instance>/<name>``


def key_dir_name(expires: int, nonce: bytes) -> str:
    """``<expiry>-<32 hex>``: the expiry leads, so a purger needs no other record."""
    tag = hashlib.sha256(b"seproxy key dir\0" + nonce).hexdigest()[:32]
    return f"{expires}-{tag}"


def dir_expiry(name: str) -> int | None:
    """The expiry a key directory's name carries (None: not a key directory name)."""
    head, sep, _ = name.partition("-")
    return int(head) if sep and head.isdigit() else None


class KeySigner:
    """Issues and verifies keys with the secrets of a file (first line signs)."""

    def __init__(self, secret_file: str | os.PathLike[str], *,
                 clock: object = time.time) -> None:
        self.path = Path(secret_file)
        self._clock = clock
        self._lock = threading.Lock()
        self._stamp: tuple[int, int, int] | None = None
        self._secrets: list[bytes] = []
        self._reload()

    def _reload(self) -> list[bytes]:
        with self._lock:
            try:
                st = os.stat(self.path)
            except OSError:
                st = None
            stamp = (st.st_mtime_ns, st.st_size, st.st_ino) if st else None
            if stamp is None or stamp != self._stamp or not self._secrets:
                self._secrets = load_secrets(self.path)
                st = os.stat(self.path)
                self._stamp = (st.st_mtime_ns, st.st_size, st.st_ino)
            return self._secrets

    def issue(self, instance: str, namespace: str, lifetime: float) -> tuple[str, KeyGrant]:
        """A new key for a directory of ``instance``; ``(key, grant)``."""
        check_name(instance, "InstanceName")
        signing = self._reload()[0]
        expires = int(self._clock() + lifetime) + 1  # type: ignore[operator]
        nonce = secrets.token_bytes(32)
        ns = bytes.fromhex(namespace)[:20].ljust(20, b"\0")
        body = _HEAD.pack(_VERSION, _secret_id(signing), expires, nonce, ns) + instance.encode()
        raw = body + hmac.new(signing, body, hashlib.sha256).digest()
        key = base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")
        return key, KeyGrant(key_digest(key), float(expires), ns.hex(),
                             f"{instance}/{key_dir_name(expires, nonce)}")

    def verify(self, key: str) -> KeyGrant | None:
        """The grant of a genuine, unexpired key; ``None`` for anything else."""
        if not _ALPHABET.fullmatch(key):
            return None
        try:
            raw = base64.b64decode(key + "=" * (-len(key) % 4), altchars=b"-_", validate=True)
        except (binascii.Error, ValueError):
            return None
        if len(raw) <= _HEAD.size + _MAC:
            return None
        body, mac = raw[:-_MAC], raw[-_MAC:]
        version, sid, expires, nonce, ns = _HEAD.unpack_from(body)
        if version != _VERSION:
            return None
        for secret in self._reload():
            if hmac.compare_digest(_secret_id(secret), sid):
                if hmac.compare_digest(hmac.new(secret, body, hashlib.sha256).digest(), mac):
                    break
                return None
        else:
            return None  # another site's secret, or one rotated out
        if expires <= self._clock():  # type: ignore[operator]
            return None
        try:
            instance = check_name(body[_HEAD.size:].decode("utf-8"), "InstanceName")
        except (UnicodeDecodeError, PathError):
            return None
        return KeyGrant(key_digest(key), float(expires), ns.hex(),
                        f"{instance}/{key_dir_name(expires, nonce)}")


def load_secrets(path: str | os.PathLike[str]) -> list[bytes]:
    """The secrets of ``path`` (one hex line each, ``#`` comments), newest first.

    A missing file is created with one fresh secret, mode 0600 (atomically: several
    instances starting at once end up with the same file). A file readable or writable by
    group or others, a symlink, or one without a usable secret is a :class:`ConfigError`."""
    path = Path(path)
    if not path.exists() and not path.is_symlink():
        _create_secret_file(path)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0))
    except OSError as exc:
        raise ConfigError(f"HttpKeySecretFile {path}: {exc.strerror} (a regular file is needed)") from exc
    with os.fdopen(fd, "r", encoding="ascii", errors="replace") as handle:
        st = os.fstat(handle.fileno())
        if not stat.S_ISREG(st.st_mode):
            raise ConfigError(f"HttpKeySecretFile {path}: not a regular file")
        if st.st_mode & 0o077:
            raise ConfigError(f"HttpKeySecretFile {path}: mode {stat.S_IMODE(st.st_mode):04o}, "
                              f"must be 0600 or stricter (chmod 600)")
        text = handle.read(1 << 16)
    found = []
    for number, line in enumerate(text.splitlines(), 1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        try:
            secret = bytes.fromhex(line)
        except ValueError:
            raise ConfigError(f"HttpKeySecretFile {path} line {number}: not a hex secret") from None
        if len(secret) < MIN_SECRET_BYTES:
            raise ConfigError(f"HttpKeySecretFile {path} line {number}: shorter than "
                              f"{MIN_SECRET_BYTES * 8} bits")
        found.append(secret)
    if not found:
        raise ConfigError(f"HttpKeySecretFile {path}: no secret in it")
    return found


def new_secret_line() -> str:
    """One line for a secret file (what :func:`load_secrets` creates; use it to rotate)."""
    return secrets.token_hex(SECRET_BYTES)


def _create_secret_file(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(8)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="ascii") as handle:
            handle.write("# seproxy HTTP key secrets: the first line signs, every line is accepted\n")
            handle.write(new_secret_line() + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        with contextlib.suppress(FileExistsError):  # another instance made it first: keep theirs
            os.link(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
