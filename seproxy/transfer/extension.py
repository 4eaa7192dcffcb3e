"""seproxy-only stream extension: windowed stream, larger chunks, adler32 (sans-IO).

Negotiated in the transfer header, so a DIRAC peer never sees anything new
(docs/PROTOCOL-EXTENSIONS.md, "Transfer stream"):

+----------------------+--------------------------------------------------------------+
| step                 | value                                                        |
+======================+==============================================================+
| client header (offer)| DIRAC's list + one trailing dict ``{"seproxy-stream": 1,``   |
|                      | ``"window": W, "chunk": C, "checksums": ["adler32", "md5"],`` |
|                      | ``"binary": true}``                                          |
| DIRAC server         | ignores extra header items (it indexes 0..2); answers        |
|                      | ``S_OK("Accepted")`` → client uses DIRAC's stream            |
| seproxy server       | ``S_OK("Accepted")`` + ``"SeproxyStream": {"window": w,``    |
|                      | ``"chunk": c, "checksum": "adler32" | "md5"}`` → both use it  |
|                      | (+ ``"binary": true``: data chunks travel as DEncode chunk   |
|                      | frames even on a JSON connection, no base64)                 |
+----------------------+--------------------------------------------------------------+

A seproxy server only adds the key when the client offered; the handler sees the
DIRAC header (the offer is removed).
"""

from __future__ import annotations

from typing import Any

from seproxy.transfer.filehelper import DIRAC_OPTIONS, StreamOptions
from seproxy.transfer.stream import DIRAC_CHUNK_SIZE

OFFER_KEY = "seproxy-stream"
ANSWER_KEY = "SeproxyStream"
VERSION = 1

DEFAULT_WINDOW = 8
DEFAULT_CHUNK = 4 * 1024 * 1024
MAX_WINDOW = 32
MIN_CHUNK = 64 * 1024
MAX_CHUNK = 16 * 1024 * 1024
CHECKSUMS = ("adler32", "md5")


def make_offer(window: int = DEFAULT_WINDOW, chunk: int = DEFAULT_CHUNK,
               checksums: tuple[str, ...] = CHECKSUMS, binary: bool = True) -> dict[str, Any]:
    offer = {OFFER_KEY: VERSION, "window": window, "chunk": chunk, "checksums": list(checksums)}
    if binary:
        offer["binary"] = True
    return offer


def split_header(header: list[Any], dirac_length: int) -> tuple[list[Any], dict[str, Any] | None]:
    """``(DIRAC header, offer or None)``: the offer is a trailing dict after DIRAC's items."""
    if len(header) > dirac_length and isinstance(header[-1], dict) and OFFER_KEY in header[-1]:
        return header[:-1], header[-1]
    return header, None


def _bounded_int(value: Any, low: int, high: int, default: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        return default
    return max(low, min(high, value))


def accept(offer: dict[str, Any] | None, *, enabled: bool = True, max_window: int = MAX_WINDOW,
           max_chunk: int = MAX_CHUNK) -> tuple[StreamOptions, dict[str, Any] | None]:
    """Server side: the options to use and the answer entry (``None``: DIRAC stream)."""
    if not enabled or not isinstance(offer, dict) or offer.get(OFFER_KEY) != VERSION:
        return DIRAC_OPTIONS, None
    window = _bounded_int(offer.get("window"), 1, max_window, 1)
    chunk = _bounded_int(offer.get("chunk"), MIN_CHUNK, max_chunk, DIRAC_CHUNK_SIZE)
    offered = offer.get("checksums")
    offered = offered if isinstance(offered, list) else ["md5"]
    checksum = next((name for name in offered if name in CHECKSUMS), "md5")
    answer: dict[str, Any] = {"window": window, "chunk": chunk, "checksum": checksum}
    if offer.get("binary") is True:
        answer["binary"] = True
    return options_from_answer(answer), answer


def options_from_answer(answer: Any) -> StreamOptions:
    """Client side: the options from the server's ``SeproxyStream`` entry (or DIRAC's)."""
    if not isinstance(answer, dict):
        return DIRAC_OPTIONS
    window = _bounded_int(answer.get("window"), 1, MAX_WINDOW, 1)
    chunk = _bounded_int(answer.get("chunk"), MIN_CHUNK, MAX_CHUNK, DIRAC_CHUNK_SIZE)
    adler = answer.get("checksum") == "adler32"
    return StreamOptions(chunk_size=chunk, window=window, adler32=adler, md5=not adler,
                         binary=answer.get("binary") is True)
