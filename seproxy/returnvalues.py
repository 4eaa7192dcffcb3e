"""DIRAC's return-value envelope: ``S_OK``, ``S_ERROR`` and helpers.

Key order matters on the wire (PROTOCOL.md 5.3): ``OK, Value`` for success and
``OK, Errno, Message, CallStack`` for errors. ``CallStack`` and ``ExecInfo`` are
local diagnostics; the service strips them from handler results before sending.
"""

from __future__ import annotations

import os
import traceback
from typing import Any, NamedTuple

from seproxy.errors import SeproxyError

#: DIRAC-specific errno values (DIRAC.Core.Utilities.DErrno) that seproxy produces.
EUNAUTHORIZED = 1111
DIRAC_ERRNO_STRINGS: dict[int, str] = {EUNAUTHORIZED: "Unauthorized query"}

DReturnType = dict[str, Any]


def S_OK(value: Any = None) -> DReturnType:
    """A successful result carrying ``value``."""
    return {"OK": True, "Value": value}


def _strerror(code: int) -> str:
    if code in DIRAC_ERRNO_STRINGS:
        return DIRAC_ERRNO_STRINGS[code]
    return os.strerror(code)


def S_ERROR(*args: Any, **kwargs: Any) -> DReturnType:
    """An error result, with DIRAC's signatures.

    ``S_ERROR("msg")``, ``S_ERROR(errno, "msg")``, ``S_ERROR(errno)`` and
    ``S_ERROR(seproxy_exception)`` are accepted; ``callStack=`` replaces the
    captured stack. An errno other than 0 formats the message as
    ``"<strerror> ( <errno> : <message>)"`` like DIRAC.
    """
    call_stack = kwargs.pop("callStack", None)
    code = 0
    message = ""
    if args and isinstance(args[0], SeproxyError):
        code = args[0].errno
        message = str(args[0])
    elif args and isinstance(args[0], int) and not isinstance(args[0], bool):
        code = args[0]
        message = str(args[1]) if len(args) > 1 else ""
    elif args:
        message = str(args[0])
    if code:
        message = f"{_strerror(code)} ( {code} : {message})"
    result: DReturnType = {"OK": False, "Errno": code, "Message": message}
    if call_stack is None:
        call_stack = traceback.format_stack()[:-1]
    result["CallStack"] = call_stack
    return result


def isReturnStructure(value: Any) -> bool:
    """True for a dict shaped like S_OK (``OK`` and ``Value``) or S_ERROR (``Message``)."""
    if not isinstance(value, dict) or "OK" not in value:
        return False
    return ("Value" in value) if value["OK"] else ("Message" in value)


def isSError(value: Any) -> bool:
    """True for a dict carrying ``OK`` and ``Message`` (DIRAC's test)."""
    return isinstance(value, dict) and "OK" in value and "Message" in value


class Reply(NamedTuple):
    """A DIRAC envelope as :func:`unwrap` reads it."""

    valid: bool  #: a dict whose ``OK`` is exactly ``True`` or ``False``
    ok: bool  #: valid and ``OK`` is ``True`` (an S_OK)
    value: Any  #: the S_OK's ``Value`` (``None`` when absent, and for anything but an S_OK)


_INVALID = Reply(False, False, None)
_FAILED = Reply(True, False, None)


def unwrap(envelope: Any) -> Reply:
    """Read a DIRAC reply envelope with seproxy's one strictness.

    An envelope is a ``dict`` whose ``OK`` is the bool ``True`` (S_OK, its ``Value``
    read with ``.get``) or ``False`` (S_ERROR: the caller keeps the dict for its
    ``Message``/``Errno``); anything else (no dict, no ``OK``, ``OK = 1``) is not an
    envelope. Every place that looks at a received or returned envelope asks here.
    """
    if type(envelope) is dict or isinstance(envelope, dict):
        flag = envelope.get("OK")
        if flag is True:
            return Reply(True, True, envelope.get("Value"))
        if flag is False:
            return _FAILED
    return _INVALID


def returnSingleResult(result: DReturnType) -> DReturnType:
    """Reduce a bulk ``{"Successful", "Failed"}`` result to one S_OK/S_ERROR."""
    if not result.get("OK"):
        return result
    value = result["Value"]
    failed = value.get("Failed") or {}
    if failed:
        error = next(iter(failed.values()))
        if isReturnStructure(error):
            return error
        return S_ERROR(str(error))
    successful = value.get("Successful") or {}
    if successful:
        return S_OK(next(iter(successful.values())))
    return S_ERROR("returnSingleResult: Failed and Successful dictionaries are empty")


class SErrorException(SeproxyError):
    """Carries an S_ERROR through code that uses exceptions (DIRAC API)."""

    def __init__(self, result: DReturnType | str) -> None:
        self.result = result if isSError(result) else S_ERROR(result)
        super().__init__(self.result["Message"])


def returnValueOrRaise(result: DReturnType) -> Any:
    """The ``Value`` of an S_OK; raises ``SErrorException`` for an S_ERROR (DIRAC API)."""
    if not result["OK"]:
        if "ExecInfo" in result:
            raise result["ExecInfo"][1]
        raise SErrorException(result)
    return result["Value"]


def convertToReturnValue(func):  # decorator, DIRAC API
    """Wrap ``func`` so that it returns S_OK(value), or S_ERROR on an exception (DIRAC API)."""
    import functools

    @functools.wraps(func)
    def wrapped(*args: Any, **kwargs: Any) -> DReturnType:
        try:
            value = func(*args, **kwargs)
        except SErrorException as exc:
            return exc.result
        except Exception as exc:  # noqa: BLE001 - the DIRAC boundary
            result = S_ERROR(repr(exc), callStack=traceback.format_tb(exc.__traceback__))
            result["ExecInfo"] = (type(exc), exc, exc.__traceback__)
            return result
        return S_OK(value)

    return wrapped


def cmpError(result: Any, code: int) -> bool:
    """True if an S_ERROR carries DIRAC errno ``code``."""
    return isinstance(result, dict) and result.get("Errno") == code


__all__ = [
    "S_OK",
    "S_ERROR",
    "isReturnStructure",
    "isSError",
    "unwrap",
    "Reply",
    "returnSingleResult",
    "cmpError",
    "SErrorException",
    "returnValueOrRaise",
    "convertToReturnValue",
    "EUNAUTHORIZED",
    "DReturnType",
]

