"""Codec throughput: DEncode and DIRAC JSON against the stdlib ``json`` module.

Payloads:

* ``metadata``: ``S_OK({"Successful": {lfn: {...17 metadata fields...}}, "Failed": {}})``
  for 1,000 files (what ``getFileMetadata`` on 1,000 LFNs answers);
* ``chunk``: one 1 MiB transfer chunk, ``S_OK([True, <1 MiB random bytes>])``
  (what FileHelper sends), through the generic encoders/decoders and through the
  fast paths ``codec.encode_chunk_parts`` + ``codec.decode_chunk``.

MB/s = size / (best encode CPU time + best decode CPU time), where size is the encoded
payload for ``metadata`` and the raw 1 MiB for ``chunk``. The stdlib rows
encode the JSON-native equivalent (datetimes as strings, chunk base64-encoded
by hand) with ``json.dumps``/``json.loads``.

Usage: ``python bench/codec.py [--repeat N] [--write]``; ``--write`` replaces the
``## Codec`` section of docs/BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import base64
import datetime
import json
import os
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.report import load_note, machine_line, write_section
from seproxy.rpc.wire import codec, dencode, jencode

MiB = 1024 * 1024


def metadata_payload(n: int = 1000) -> dict:
    when = datetime.datetime(2026, 11, 28, 4, 0, 0)
    files = {}
    for i in range(n):
        files[f"/dirac/user/t/tester/run{i // 100:03d}/file_{i:06d}.root"] = {
            "Size": 1_000_000 + i * 4096, "Checksum": f"{i * 7919 % 0xFFFFFFFF:08x}",
            "ChecksumType": "Adler32", "Mode": 0o664, "CreationDate": when, "ModificationDate": when,
            "Owner": "tester", "OwnerGroup": "dirac_user", "Status": "AprioriGood",
            "GUID": str(uuid.UUID(int=i)).upper(), "Directory": False, "File": True,
            "Accessible": True, "Cached": 1, "Migrated": 0, "Lost": 0, "Unavailable": 0,
        }
    return {"OK": True, "Value": {"Successful": files, "Failed": {}}}


def json_native(value):
    """The stdlib-json equivalent of a DIRAC value (datetimes as text, bytes as base64 text)."""
    if isinstance(value, dict):
        return {k: json_native(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_native(v) for v in value]
    if isinstance(value, datetime.datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S")
    if isinstance(value, bytes):
        return base64.b64encode(value).decode()
    return value


def best(fn: Callable[[], object], repeat: int, number: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.process_time()  # CPU time: less disturbed by other processes than wall time
        for _ in range(number):
            fn()
        times.append((time.process_time() - start) / number)
    return min(times)


def measure(name: str, size_of: Callable[[bytes], int], encode: Callable[[], bytes],
            decode: Callable[[bytes], object], repeat: int, number: int) -> dict:
    encoded = encode()
    decode(encoded)  # warm up and check it works
    t_enc = best(encode, repeat, number)
    t_dec = best(lambda: decode(encoded), repeat, number)
    size = size_of(encoded)
    return {"name": name, "bytes": len(encoded), "enc_ms": t_enc * 1e3, "dec_ms": t_dec * 1e3,
            "mbs": size / (t_enc + t_dec) / 1e6}


def run(repeat: int) -> list[dict]:
    meta = metadata_payload()
    meta_native = json_native(meta)
    chunk = os.urandom(MiB)
    chunk_value = {"OK": True, "Value": [True, chunk]}
    chunk_native = json_native(chunk_value)
    raw = lambda _encoded: MiB
    enc_size = len
    rows = [
        measure("metadata, DEncode", enc_size, lambda: dencode.encode(meta),
                lambda b: dencode.decode(b), repeat, 3),
        measure("metadata, DIRAC JSON", enc_size, lambda: jencode.encode(meta),
                lambda b: jencode.decode(b), repeat, 3),
        measure("metadata, mixed decoder (DEncode payload)", enc_size, lambda: dencode.encode(meta),
                lambda b: codec.decode(b), repeat, 3),
        measure("metadata, stdlib json (native equivalent)", enc_size,
                lambda: json.dumps(meta_native).encode(), lambda b: json.loads(b), repeat, 3),
        measure("chunk 1 MiB, DEncode fast path", raw,
                lambda: b"".join(codec.encode_chunk_parts(chunk, "dencode")),
                codec.decode_chunk, repeat, 20),
        measure("chunk 1 MiB, DEncode generic (str/surrogateescape)", raw,
                lambda: dencode.encode(chunk_value),
                lambda b: dencode.decode(b)[0]["Value"][1].encode("utf-8", "surrogateescape"), repeat, 5),
        measure("chunk 1 MiB, JSON fast path", raw,
                lambda: b"".join(codec.encode_chunk_parts(chunk, "json")),
                codec.decode_chunk, repeat, 10),
        measure("chunk 1 MiB, DIRAC JSON generic", raw, lambda: jencode.encode(chunk_value),
                lambda b: jencode.decode(b), repeat, 5),
        measure("chunk 1 MiB, stdlib json + base64 by hand", raw,
                lambda: json.dumps(chunk_native).encode(),
                lambda b: base64.b64decode(json.loads(b)["Value"][1]), repeat, 5),
    ]
    return rows


def table(rows: list[dict]) -> str:
    lines = ["| Payload, codec | Encoded bytes | Encode ms | Decode ms | MB/s (enc+dec) |",
             "|---|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['name']} | {r['bytes']:,} | {r['enc_ms']:.3f} | {r['dec_ms']:.3f} | {r['mbs']:,.0f} |")
    return "\n".join(lines)


def section(rows: list[dict], repeat: int) -> str:
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return (
        "## Codec\n\n"
        f"`python bench/codec.py --repeat {repeat} --write`, {machine_line(load)}\n"
        f"{load_note(load)}\n\n"
        "Method: best of N timed loops per direction, process CPU time (`time.process_time`, "
        "single-threaded) to reduce the noise of the shared machine; MB/s = size / (encode + decode time), size = "
        "encoded bytes for the metadata payload (1,000 entries of 17 fields, as `getFileMetadata` "
        "answers), raw 1 MiB for the transfer chunk (`S_OK([True, chunk])`, FileHelper's message). "
        "Fast paths: `codec.encode_chunk_parts` (joined here, one copy; a transport sends the parts "
        "without joining) and `codec.decode_chunk` (one copy, no str round trip). stdlib rows encode "
        "the JSON-native equivalent (datetimes as strings, chunk base64 by hand).\n\n"
        + table(rows) + "\n"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--write", action="store_true", help="update docs/BENCHMARKS.md")
    args = parser.parse_args()
    rows = run(args.repeat)
    text = section(rows, args.repeat)
    print(text)
    if args.write:
        print(f"written to {write_section('Codec', text)}")


if __name__ == "__main__":
    main()
