"""S_OK / S_ERROR and helpers behave like DIRAC's (PROTOCOL.md 5.3)."""

from __future__ import annotations

import errno

import pytest

from seproxy.errors import PathError
from seproxy.returnvalues import (
    EUNAUTHORIZED,
    S_ERROR,
    S_OK,
    SErrorException,
    cmpError,
    convertToReturnValue,
    isReturnStructure,
    isSError,
    returnSingleResult,
    returnValueOrRaise,
    unwrap,
)
from seproxy.rpc.wire import dencode, jencode


def test_s_ok_key_order_and_wire_bytes() -> None:
    assert list(S_OK()) == ["OK", "Value"] and S_OK()["Value"] is None
    assert dencode.encode(S_OK()) == b"ds2:OKb1s5:Valuene"
    assert jencode.encode(S_OK("Accepted")) == b'{"OK": true, "Value": "Accepted"}'


def test_s_error_forms() -> None:
    plain = S_ERROR("Kaput")
    assert list(plain) == ["OK", "Errno", "Message", "CallStack"]
    assert plain["Errno"] == 0 and plain["Message"] == "Kaput"
    assert isinstance(plain["CallStack"], list) and plain["CallStack"]
    unauth = S_ERROR(EUNAUTHORIZED, "Unauthorized query")
    assert unauth["Message"] == "Unauthorized query ( 1111 : Unauthorized query)"
    assert cmpError(unauth, EUNAUTHORIZED) and not cmpError(plain, EUNAUTHORIZED)
    enoent = S_ERROR(errno.ENOENT, "/a/b")
    assert enoent["Message"] == "No such file or directory ( 2 : /a/b)"
    assert S_ERROR(errno.ENOENT)["Message"] == "No such file or directory ( 2 : )"
    assert S_ERROR("x", callStack=[])["CallStack"] == []
    exc = S_ERROR(PathError("bad path", errno=errno.EINVAL))
    assert exc["Errno"] == errno.EINVAL and exc["Message"].endswith(": bad path)")
    # without CallStack the envelope is byte-identical to DIRAC's vector
    unauth.pop("CallStack")
    assert dencode.encode(unauth) == (b"ds2:OKb0s5:Errnoi1111es7:Messages47:"
                                      b"Unauthorized query ( 1111 : Unauthorized query)e")


def test_structure_predicates() -> None:
    assert isReturnStructure(S_OK(1)) and isReturnStructure(S_ERROR("x"))
    assert not isReturnStructure({"OK": True}) and not isReturnStructure({"OK": False})
    assert not isReturnStructure([]) and not isReturnStructure({"Value": 1})
    assert isSError(S_ERROR("x")) and not isSError(S_OK())


@pytest.mark.parametrize(("value", "expected"), [
    ({"Successful": {}, "Failed": {"a": 1}}, S_ERROR("1", callStack=[])),
    ({"Successful": {"b": 2}, "Failed": {}}, S_OK(2)),
    ({"Successful": {"b": 2}, "Failed": {"a": "bad", "c": 3}}, S_ERROR("bad", callStack=[])),
    ({"Successful": {"b": 2, "d": 4}, "Failed": {}}, S_OK(2)),
    ({"Successful": {}, "Failed": {}},
     S_ERROR("returnSingleResult: Failed and Successful dictionaries are empty", callStack=[])),
])
def test_return_single_result(value: dict, expected: dict) -> None:
    result = returnSingleResult(S_OK(value))
    result.pop("CallStack", None)
    expected.pop("CallStack", None)
    assert result == expected


def test_return_single_result_passes_errors_through() -> None:
    error = S_ERROR("Kaput")
    assert returnSingleResult(error) is error
    inner = S_ERROR(errno.EACCES, "nope")
    assert returnSingleResult(S_OK({"Failed": {"a": inner}, "Successful": {}})) is inner


def test_value_or_raise_and_converter() -> None:
    assert returnValueOrRaise(S_OK(5)) == 5
    with pytest.raises(SErrorException) as info:
        returnValueOrRaise(S_ERROR("boom"))
    assert info.value.result["Message"] == "boom"

    @convertToReturnValue
    def ok(x: int) -> int:
        return x * 2

    @convertToReturnValue
    def fails() -> None:
        raise SErrorException("explicit")

    @convertToReturnValue
    def crashes() -> None:
        raise ZeroDivisionError("div")

    assert ok(2) == S_OK(4)
    assert fails()["Message"] == "explicit"
    crash = crashes()
    assert crash["OK"] is False and crash["Message"] == "ZeroDivisionError('div')"
    assert crash["ExecInfo"][0] is ZeroDivisionError
    with pytest.raises(ZeroDivisionError):
        returnValueOrRaise(crash)


@pytest.mark.parametrize("envelope, expected", [
    ({"OK": True, "Value": [1]}, (True, True, [1])),
    ({"OK": True}, (True, True, None)),
    (S_ERROR("no"), (True, False, None)),
    ({"OK": False}, (True, False, None)),
    ({"OK": 1, "Value": 2}, (False, False, None)),
    ({"OK": "yes"}, (False, False, None)),
    ({"Value": 3}, (False, False, None)),
    ([True, 3], (False, False, None)),
    (None, (False, False, None)),
])
def test_unwrap_has_one_strictness(envelope, expected) -> None:
    reply = unwrap(envelope)
    assert (reply.valid, reply.ok, reply.value) == expected
