"""Every exception seproxy raises is in seproxy.errors' tree; local and remote protocol errors apart."""

from __future__ import annotations

import pytest

from seproxy import errors
from seproxy.errors import (
    CacheFullError,
    ItemFailed,
    LocalProtocolError,
    ProtocolError,
    RemoteProtocolError,
    SeproxyError,
    SizeMismatch,
    StorageError,
)
from seproxy.returnvalues import S_ERROR, SErrorException
from seproxy.rpc.wire import codec, dencode, framing, jencode


def test_every_error_class_is_in_the_tree():
    classes = [obj for obj in vars(errors).values() if isinstance(obj, type) and issubclass(obj, BaseException)]
    assert len(classes) >= 14
    assert all(issubclass(cls, SeproxyError) for cls in classes)
    assert issubclass(SErrorException, SeproxyError)


def test_errors_that_were_oserrors_stay_oserrors():
    # callers catching OSError around the cache and local copies still do
    assert issubclass(CacheFullError, StorageError) and issubclass(CacheFullError, OSError)
    mismatch = SizeMismatch(3, 2)
    assert isinstance(mismatch, OSError) and isinstance(mismatch, StorageError)
    assert str(mismatch) == "Source and destination file sizes do not match (3 vs 2)."
    assert str(CacheFullError("cache full")) == "cache full"


def test_item_failed_carries_any_value_and_is_no_storage_error():
    failed = ItemFailed({"Files": 0, "Size": 0})
    assert failed.value == {"Files": 0, "Size": 0}
    assert isinstance(failed, SeproxyError) and not isinstance(failed, StorageError)


def test_serror_exception_keeps_the_result():
    result = S_ERROR("kaput")
    assert SErrorException(result).result is result


@pytest.mark.parametrize("encode", [dencode.encode, jencode.encode, lambda v: codec.encode(v, "json")])
def test_encoders_raise_local_protocol_errors(encode):
    with pytest.raises(LocalProtocolError):
        encode({object()})


@pytest.mark.parametrize("payload", [b"ds2:OKb", b"{\"OK\": tru", b"l" * 10])
def test_decoders_raise_remote_protocol_errors(payload):
    with pytest.raises(RemoteProtocolError) as info:
        codec.decode(payload)
    assert isinstance(info.value, ProtocolError) and not isinstance(info.value, LocalProtocolError)


def test_framing_and_keepalive_errors_are_remote():
    parser = framing.FrameParser(max_frame_size=10)
    parser.feed(b"99999:")
    with pytest.raises(RemoteProtocolError):
        parser.next_event()
    with pytest.raises(RemoteProtocolError, match="Invalid keep alive, missing id"):
        framing.parse_keepalive({"OK": True, "Value": {}})
