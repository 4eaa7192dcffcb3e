"""Fuzz: random and mutated inputs make the decoders and the frame parser raise nothing but ProtocolError.

Seeds are every payload of the shared DIRAC vectors; mutations flip, insert,
delete, duplicate, truncate and splice bytes and inject wire tokens. The RNG
seed is fixed (override with ``SEPROXY_FUZZ_SEED``) so a failure is reproducible;
the failing input is shown in hex.
"""

from __future__ import annotations

import os
import random
import traceback
from collections.abc import Callable, Iterator

import pytest

from seproxy.errors import ProtocolError
from seproxy.rpc.wire import codec, dencode, framing, jencode
from tests.conftest import load_vectors

N_INPUTS = 100_000
SEED = int(os.environ.get("SEPROXY_FUZZ_SEED", "20261128"))
TOKENS = [b"e", b":", b"l", b"d", b"t", b"s", b"i", b"f", b"z", b"za", b"b", b"n", b"u", b"I",
          b"0", b"9", b"-", b"+", b"e+", b"e-", b"99999999999999999999:", b"s9999:", b"dka",
          b"[", b"]", b"{", b"}", b'"', b"\\", b",", b"NaN", b"1e999", b'{"__dCls": "dt", "obj": ',
          b'{"__dCls": "b64", "obj": "', b"\xff", b"\x00", b"ds2:OKb1s5:Valuelb1s"]


def _seeds() -> list[bytes]:
    seeds: list[bytes] = []
    for name in ("dencode.jsonl", "jencode.jsonl", "mixeddecode.jsonl"):
        seeds += [bytes.fromhex(row["hex"]) for row in load_vectors(name) if row.get("hex")]
    for row in load_vectors("messages.jsonl"):
        framed = bytes.fromhex(row["framed_hex"])
        seeds.append(framed[framed.index(b":") + 1:])
    return seeds


SEEDS = _seeds()


def mutate(rnd: random.Random, data: bytes) -> bytes:
    buf = bytearray(data)
    for _ in range(rnd.randint(1, 4)):
        op = rnd.randrange(8)
        pos = rnd.randint(0, len(buf))
        if op == 0 and buf:                       # flip a byte
            buf[min(pos, len(buf) - 1)] = rnd.randrange(256)
        elif op == 1:                             # insert random bytes
            buf[pos:pos] = rnd.randbytes(rnd.randint(1, 4))
        elif op == 2:                             # delete a range
            del buf[pos:pos + rnd.randint(1, 8)]
        elif op == 3:                             # duplicate a range
            end = min(len(buf), pos + rnd.randint(1, 16))
            buf[pos:pos] = buf[pos:end]
        elif op == 4:                             # truncate
            del buf[pos:]
        elif op == 5:                             # inject a token
            buf[pos:pos] = rnd.choice(TOKENS)
        elif op == 6:                             # splice another seed
            other = rnd.choice(SEEDS)
            cut = rnd.randint(0, len(other))
            buf[pos:] = other[cut:]
        else:                                     # change a digit (lengths!)
            at = buf.find(rnd.choice(b"0123456789"), min(pos, len(buf)))
            if at >= 0:
                buf[at] = rnd.choice(b"0123456789")
    return bytes(buf)


def inputs(rnd: random.Random, count: int) -> Iterator[bytes]:
    for i in range(count):
        kind = i % 10
        if kind == 0:
            yield rnd.randbytes(rnd.randint(0, 48))
        elif kind == 1:
            yield b"".join(rnd.choice(TOKENS) for _ in range(rnd.randint(1, 20)))
        else:
            yield mutate(rnd, rnd.choice(SEEDS))


@pytest.fixture(scope="module")
def corpus() -> list[bytes]:
    """One corpus of N_INPUTS inputs, shared by every decoder."""
    return list(inputs(random.Random(SEED), N_INPUTS))


def run(decoder: Callable[[bytes], object], corpus: list[bytes]) -> int:
    """Feed every input; returns how many were rejected. Fails on any non-ProtocolError."""
    rejected = 0
    for data in corpus:
        try:
            decoder(data)
        except ProtocolError as exc:
            assert str(exc), f"empty ProtocolError message for {data.hex()}"
            rejected += 1
        except Exception:  # noqa: BLE001 - the point of the test
            pytest.fail(f"{decoder} raised a non-ProtocolError for input {data.hex()}:\n"
                        f"{traceback.format_exc()}")
    return rejected


def _small_bounds(fn: Callable) -> Callable[[bytes], object]:
    return lambda data: fn(data, max_depth=8, max_size=4096)


@pytest.mark.parametrize("name", ["dencode", "dencode-exact", "jencode", "codec", "codec-bounded", "chunk"])
def test_decoders_raise_only_protocol_error(name: str, corpus: list[bytes]) -> None:
    decoder = {
        "dencode": dencode.decode,
        "dencode-exact": lambda data: dencode.decode(data, exact_floats=True),
        "jencode": jencode.decode,
        "codec": codec.decode,
        "codec-bounded": _small_bounds(codec.decode),
        "chunk": codec.decode_chunk,
    }[name]
    # each decoder gets the full corpus; combinations of them a fifth of it
    count = N_INPUTS if name in ("dencode", "jencode") else N_INPUTS // 5
    rejected = run(decoder, corpus[:count])
    if name != "chunk":
        # sanity: the corpus exercises both outcomes
        assert 0.2 * count < rejected < count, rejected


def test_frame_parser_raises_only_protocol_error(corpus: list[bytes]) -> None:
    """Streams of 1-3 frames around corpus payloads, the header mutated in one of three."""
    rnd = random.Random(f"{SEED}-framing")
    failures = 0
    for i, payload in enumerate(corpus):
        data = framing.encode_frame(payload, keepalive=i % 5 == 0) + rnd.choice(SEEDS)[:rnd.randint(0, 20)]
        if i % 3 == 0:
            data = mutate(rnd, data[:24]) + data[24:]
        parser = framing.FrameParser(max_frame_size=rnd.choice([64, 1024, 1 << 20]))
        pos = 0
        try:
            while pos < len(data):
                step = rnd.randint(1, 64)
                parser.feed(data[pos:pos + step])
                pos += step
                while parser.next_event() is not None:
                    pass
        except ProtocolError as exc:
            assert str(exc)
            failures += 1
        except Exception:  # noqa: BLE001
            pytest.fail(f"FrameParser raised a non-ProtocolError for {data.hex()}:\n{traceback.format_exc()}")
    assert 0.1 * N_INPUTS < failures < N_INPUTS, failures
