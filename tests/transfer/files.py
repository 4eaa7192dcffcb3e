"""Big test files without holding them in memory: random content, MD5 by blocks."""

from __future__ import annotations

import hashlib
import os

MIB = 1024 * 1024


def write_random(path, size: int) -> str:
    """Write ``size`` random bytes to ``path``; returns their hex MD5."""
    md5 = hashlib.md5()
    with open(path, "wb") as fh:
        left = size
        while left:
            block = os.urandom(min(left, 8 * MIB))
            md5.update(block)
            fh.write(block)
            left -= len(block)
    return md5.hexdigest()


def md5_of(path) -> str:
    md5 = hashlib.md5()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(8 * MIB), b""):
            md5.update(block)
    return md5.hexdigest()
