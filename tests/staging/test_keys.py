"""Signed HTTP keys: what they grant, forgery, other sites, expiry, the secret file and rotation."""

from __future__ import annotations

import base64
import os
import stat

import pytest

from seproxy.errors import ConfigError
from seproxy.staging.keys import KeySigner, dir_expiry, load_secrets, new_secret_line

NS = "ab" * 20


class Clock:
    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_secret_file_is_created_0600_and_shared(tmp_path):
    path = tmp_path / "secret"
    first = load_secrets(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert len(first) == 1 and len(first[0]) == 32
    assert load_secrets(path) == first  # a second instance reads the same secret


def test_secret_file_readable_by_others_is_refused(tmp_path):
    path = tmp_path / "secret"
    load_secrets(path)
    os.chmod(path, 0o644)
    with pytest.raises(ConfigError, match="must be 0600"):
        load_secrets(path)


def test_short_or_garbled_secret_is_refused(tmp_path):
    path = tmp_path / "secret"
    path.write_text("abcd\n")
    os.chmod(path, 0o600)
    with pytest.raises(ConfigError, match="shorter than 256 bits"):
        load_secrets(path)
    path.write_text("not hex at all\n")
    with pytest.raises(ConfigError, match="not a hex secret"):
        load_secrets(path)


def test_key_carries_its_grant_and_any_signer_with_the_secret_accepts_it(tmp_path):
    clock = Clock()
    a = KeySigner(tmp_path / "s", clock=clock)
    b = KeySigner(tmp_path / "s", clock=clock)  # another instance, same secret file
    key, grant = a.issue("node-a", NS, 1800)
    assert len(base64.urlsafe_b64decode(key + "==")) >= 32 + 32  # nonce + MAC at least
    got = b.verify(key)
    assert got == grant
    assert got.namespace == NS and got.directory.startswith("node-a/")
    assert dir_expiry(got.directory.split("/")[1]) == int(got.expires)
    assert a.issue("node-a", NS, 1800)[0] != key  # fresh nonce every time


def test_forged_tampered_foreign_and_expired_keys_are_refused(tmp_path):
    clock = Clock()
    signer = KeySigner(tmp_path / "s", clock=clock)
    other_site = KeySigner(tmp_path / "other", clock=clock)
    key, _ = signer.issue("node-a", NS, 60)
    raw = bytearray(base64.urlsafe_b64decode(key + "=" * (-len(key) % 4)))
    for index in (0, 5, 20, len(raw) - 40, len(raw) - 1):  # any byte: version, id, expiry, ..., MAC
        forged = bytearray(raw)
        forged[index] ^= 1
        assert signer.verify(base64.urlsafe_b64encode(bytes(forged)).rstrip(b"=").decode()) is None
    assert signer.verify(other_site.issue("node-a", NS, 60)[0]) is None
    for junk in ("", "x", key + "A", key[:-1], key.upper(), key + "=", "ab+/cd", "é" * 40):
        assert signer.verify(junk) is None
    assert signer.verify(key) is not None
    clock.now += 62
    assert signer.verify(key) is None  # expired


def test_rotation_overlap_then_old_secret_dropped(tmp_path):
    clock = Clock()
    path = tmp_path / "s"
    signer = KeySigner(path, clock=clock)
    old_key, _ = signer.issue("n", NS, 600)
    old_line = path.read_text().split("\n")[1]
    path.write_text(f"{new_secret_line()}\n{old_line}\n")  # new secret first: it signs
    new_key, _ = signer.issue("n", NS, 600)
    assert signer.verify(old_key) is not None and signer.verify(new_key) is not None
    assert KeySigner(path, clock=clock).verify(new_key) is not None
    path.write_text(path.read_text().split("\n")[0] + "\n")  # overlap over: old secret removed
    assert signer.verify(old_key) is None and signer.verify(new_key) is not None
