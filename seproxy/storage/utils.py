"""Argument and name handling shared by the StorageElement facade and the plugins.

- ``checkArgumentFormat``: DIRAC's normalisation of "one LFN, a list or a dict"
  into ``{name: value}`` (**DIRAC API**).
- ``pfnunparse`` / ``pfnparse``: DIRAC's two URL spellings (the "srm" hand-made
  one used by most plugins, and the standard ``urllib`` one used by S3).
- ``component_problem``: the one "is this a safe single path component" rule (also
  after percent-decoding, once and twice), shared with the proxy's fileID check
  (:mod:`seproxy.staging.namespace`).
- ``check_lfn``: the bad-input gate. An LFN is refused (``PathError``) when it is
  not a string, empty, contains NUL or another control character, does not start
  with ``/``, has a ``.``/``..`` component (also percent-encoded), or is not
  under the VO's top directory.
"""

from __future__ import annotations

import errno
import os
import unicodedata
from typing import Any
from urllib import parse

from seproxy.errors import PathError
from seproxy.returnvalues import S_ERROR, S_OK, DReturnType

#: Top-level LFN directories accepted besides the VO name (DIRAC convention).
SPECIAL_TOP_DIRS = ("SandBox", "S3")
MAX_LFN_LENGTH = 4096


def checkArgumentFormat(path: Any) -> DReturnType:
    """``str`` -> ``{path: False}``, list -> dict of its strings, dict -> a copy."""
    if isinstance(path, str):
        return S_OK({path: False})
    if isinstance(path, list):
        return S_OK({url: False for url in path if isinstance(url, str)})
    if isinstance(path, dict):
        return S_OK(dict(path))
    return S_ERROR(
        errno.EINVAL, "Utils.checkArgumentFormat: Supplied path is not of the correct format."
    )


def _srm_unparse(parts: dict[str, str]) -> str:
    file_path = os.path.normpath("/" + parts["Path"] + "/" + parts["FileName"]).replace("//", "/")
    uri = parts["Host"]
    if uri:
        if parts["Port"]:
            uri = f"{parts['Host']}:{parts['Port']}"
        if parts["WSUrl"]:
            ws = parts["WSUrl"]
            uri = f"{uri}{ws}" if ("?" in ws and "=" in ws) else f"{uri}{ws}?="
    if parts["Protocol"]:
        uri = f"{parts['Protocol']}://{uri}" if uri else f"{parts['Protocol']}:"
    return f"{uri}{file_path}"


def _std_unparse(parts: dict[str, str]) -> str:
    netloc = parts["Host"] + (f":{parts['Port']}" if parts["Port"] else "")
    path = os.path.join(parts["Path"], parts["FileName"])
    return parse.urlunparse((parts["Protocol"], netloc, path, "", parts.get("Options", ""), ""))


def pfnunparse(pfn_dict: dict[str, Any], srmSpecific: bool = True) -> DReturnType:
    """Build a URL from ``Protocol, Host, Port, WSUrl, Path, FileName`` (+ ``Options``)."""
    if not isinstance(pfn_dict, dict):
        return S_ERROR(
            f"pfnunparse: wrong type for pfnDict argument, expected a dict, got {type(pfn_dict)}"
        )
    parts = dict.fromkeys(("Protocol", "Host", "Port", "WSUrl", "Path", "FileName", "Options"), "")
    parts.update({k: ("" if v is None else str(v)) for k, v in pfn_dict.items()})
    return S_OK(_srm_unparse(parts) if srmSpecific else _std_unparse(parts))


def pfnparse(pfn: str) -> DReturnType:
    """Split a URL into ``Protocol, Host, Port, Path, FileName`` (standard parser)."""
    if not pfn or not isinstance(pfn, str):
        return S_ERROR(
            f"wrong 'pfn' argument value in function call, expected non-empty string, got {pfn!s}"
        )
    if ":" not in pfn.split("/", 1)[0]:
        return S_OK(
            {
                "Protocol": "",
                "Host": "",
                "Port": "",
                "WSUrl": "",
                "Path": os.path.dirname(pfn),
                "FileName": os.path.basename(pfn),
            }
        )
    res = parse.urlparse(pfn)
    return S_OK(
        {
            "Protocol": res.scheme,
            "Host": res.hostname or "",
            "Port": str(res.port or ""),
            "WSUrl": "",
            "Path": os.path.dirname(res.path),
            "FileName": os.path.basename(res.path),
            "Options": res.query,
        }
    )


def component_problem(part: str) -> str | None:
    """Why ``part`` is not one safe path component, or ``None``: ``"relative"`` (``.``,
    ``..``), ``"separator"`` (``/``, ``\\``) or ``"control"`` (NUL or another control
    character), checked as is and after one and two rounds of percent-decoding. An empty
    part is not a problem here (``//`` in an LFN); callers that need a name refuse it."""
    for candidate in {part, parse.unquote(part), parse.unquote(parse.unquote(part))}:
        if candidate in (".", ".."):
            return "relative"
        if "/" in candidate or "\\" in candidate:
            return "separator"
        if any(unicodedata.category(ch) == "Cc" for ch in candidate):
            return "control"
    return None


def check_lfn(lfn: Any, vo: str | None) -> str:
    """Return ``lfn`` if it is a safe LFN of ``vo``; raise ``PathError`` otherwise."""
    if not isinstance(lfn, str):
        raise PathError(f"Invalid LFN {lfn!r}: not a string", errno=errno.EINVAL)
    if not lfn:
        raise PathError("Invalid LFN '': empty name", errno=errno.EINVAL)
    if len(lfn) > MAX_LFN_LENGTH:
        raise PathError(
            f"Invalid LFN: longer than {MAX_LFN_LENGTH} characters", errno=errno.ENAMETOOLONG
        )
    if any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in lfn):
        raise PathError(
            f"Invalid LFN {lfn!r}: contains a NUL or control character", errno=errno.EINVAL
        )
    if not lfn.startswith("/"):
        raise PathError(
            f"Invalid LFN ({lfn}): must be an absolute path starting with /VO", errno=errno.EINVAL
        )
    parts = lfn.split("/")[1:]
    for part in parts:
        problem = component_problem(part)
        if problem == "relative":
            raise PathError(
                f"Invalid LFN ({lfn}): '.' and '..' components are not allowed", errno=errno.EINVAL
            )
        if problem is not None:
            raise PathError(
                f"Invalid LFN ({lfn}): encoded separator or NUL in a component", errno=errno.EINVAL
            )
    top = parts[0] if parts else ""
    if vo is not None and top != vo and top not in SPECIAL_TOP_DIRS:
        raise PathError(f"LFN ({lfn}) path must start with VO name ({vo})", errno=errno.EACCES)
    return lfn


def is_within(path: str, root: str) -> bool:
    """True if ``path`` equals ``root`` or lies below it (both already resolved)."""
    root = root.rstrip("/") or "/"
    return path == root or path.startswith(root if root == "/" else root + "/")


__all__ = ["checkArgumentFormat", "check_lfn", "component_problem", "is_within", "pfnparse", "pfnunparse"]
