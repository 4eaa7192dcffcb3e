"""Compare DISET answers from two servers (or two clients) the way the interop tests need.

Two answers to the same call are "the same" when, after :func:`normalise`, they are
equal *type-strictly* (:func:`strict_diff`: ``1 != 1.0 != True``, ``(1,) != [1]``,
dict key order included).  :func:`normalise` removes only what legitimately varies
between two servers or two moments:

* ``rpcStub``: the client adds it; it holds the URL, which differs -> URL replaced
  by ``<url>``;
* ``CallStack`` of an ``S_ERROR``: server code paths; PROTOCOL.md 5.3: clients ignore
  it and a server may send an empty list or omit it -> removed;
* ``ping``: values depend on host, time and process -> each value replaced by its
  type name, except ``name``;
* credential dicts (``whoami``): ``secondsLeft`` -> ``<secondsLeft>``; the tests check
  separately that both are positive and close (:func:`seconds_left_close`).
"""

from __future__ import annotations

import math
from typing import Any

def _is_credentials(value: Any) -> bool:
    return isinstance(value, dict) and {"DN", "secondsLeft"} <= set(value)


def normalise(result: Any, *, method: str = "", url: str | None = None) -> Any:
    """Replace the legitimately varying parts of a DISET answer (module doc)."""
    if not isinstance(result, dict):
        return result
    out = dict(result)
    if "rpcStub" in out:
        out["rpcStub"] = _replace(out["rpcStub"], url)
    out.pop("CallStack", None)
    value = out.get("Value")
    if method == "ping" and out.get("OK") and isinstance(value, dict):
        out["Value"] = {k: (v if k == "name" else f"<{type(v).__name__}>") for k, v in value.items()}
    elif _is_credentials(value):
        out["Value"] = {k: ("<secondsLeft>" if k == "secondsLeft" else v) for k, v in value.items()}
    return out


def _replace(value: Any, url: str | None) -> Any:
    if url is not None and isinstance(value, str) and value == url:
        return "<url>"
    if isinstance(value, (list, tuple)):
        return type(value)(_replace(v, url) for v in value)
    if isinstance(value, dict):
        return {k: _replace(v, url) for k, v in value.items()}
    return value


def seconds_left_close(a: Any, b: Any, tolerance: int = 900) -> bool:
    """Both answers carry a positive ``secondsLeft`` and they differ by at most ``tolerance``."""
    left_a, left_b = a["Value"]["secondsLeft"], b["Value"]["secondsLeft"]
    return left_a > 0 and left_b > 0 and abs(left_a - left_b) <= tolerance


def strict_diff(a: Any, b: Any, path: str = "") -> str | None:
    """``None`` if ``a`` and ``b`` are equal type-strictly (dict order too), else where they differ."""
    if type(a) is not type(b):
        return f"{path or '/'}: {type(a).__name__} {a!r} != {type(b).__name__} {b!r}"
    if isinstance(a, dict):
        if list(a) != list(b):
            return f"{path or '/'}: keys {list(a)} != {list(b)}"
        for key in a:
            diff = strict_diff(a[key], b[key], f"{path}/{key}")
            if diff:
                return diff
        return None
    if isinstance(a, (list, tuple)):
        if len(a) != len(b):
            return f"{path or '/'}: length {len(a)} != {len(b)}: {a!r} != {b!r}"
        for index, (x, y) in enumerate(zip(a, b, strict=False)):
            diff = strict_diff(x, y, f"{path}[{index}]")
            if diff:
                return diff
        return None
    if isinstance(a, float) and math.isnan(a) and math.isnan(b):
        return None
    if isinstance(a, float) and a == b and math.copysign(1, a) != math.copysign(1, b):
        return f"{path or '/'}: {a!r} != {b!r} (sign of zero)"
    return None if a == b else f"{path or '/'}: {a!r} != {b!r}"
