"""The RPC battery of issue 4, as data: (name, method, args) run against InteropHandler.

Used by ``test_rpc_interop.py`` with a real DIRAC client against a seproxy service
and a real DIRAC 9 service (answers compared), and with seproxy's RPCClient against
the DIRAC 9 service.
"""

from __future__ import annotations

import datetime
from typing import Any

# Every DISET value type (and a few edge cases); the JSON encoding is lossy on some
# of them (tuples, non-str keys, datetimes...) in the same way on both servers.
ECHO_VALUES: list[tuple[str, Any]] = [
    ("none", None),
    ("true", True),
    ("false", False),
    ("zero", 0),
    ("negative", -17),
    ("int32-edge", 2**31),
    ("long", 2**64 + 5),
    ("negative-long", -(2**70)),
    ("float", 1.25),
    ("float-tiny", 5e-324),
    ("float-big", 1.7976931348623157e308),
    ("negative-zero", -0.0),
    ("empty-str", ""),
    ("str", "plain text"),
    ("unicode", "ünïcødé ✓ 漢字"),
    ("str-with-separators", "a:b,c;d e"),
    ("bytes", b"raw\x00bytes\xff"),
    ("empty-list", []),
    ("list", [1, "a", None, 2.5]),
    ("empty-tuple", ()),
    ("tuple", (1, "two", (3,))),
    ("empty-dict", {}),
    ("dict", {"a": 1, "b": [True, None]}),
    ("dict-int-keys", {1: "one", 2: "two"}),
    ("datetime", datetime.datetime(2024, 2, 29, 13, 14, 15, 161718)),
    ("date", datetime.date(2024, 2, 29)),
    ("time", datetime.time(13, 14, 15)),
    ("nested", {"outer": [{"inner": (1, [2, {"deep": None}])}, "x"]}),
]

# (name, method, args): argument checks, errors, non-dict results, auth.
CALLS: list[tuple[str, str, list[Any]]] = [
    ("ping", "ping", []),
    ("whoami", "whoami", []),
    ("whoamiLike", "whoamiLike", []),
    ("builtin-echo", "echo", ["hello"]),
    ("builtin-echo-wrong-type", "echo", [5]),
    ("typed-ok", "typed", ["s", 1, [1, 2], {"k": "v"}]),
    ("typed-tuple-alternative", "typed", ["s", 1, (1,), {}]),
    ("typed-wrong-type-0", "typed", [1, 1, [], {}]),
    ("typed-wrong-type-1", "typed", ["s", "1", [], {}]),
    ("typed-wrong-type-bool-for-int", "typed", ["s", True, [], {}]),
    ("typed-wrong-type-3", "typed", ["s", 1, [], []]),
    ("typed-too-few", "typed", ["s"]),
    ("typed-none", "typed", []),
    ("typed-too-many", "typed", ["s", 1, [], {}, "extra"]),
    ("optional-skip-check", "optionalArgs", ["a", 5]),
    ("optional-none", "optionalArgs", ["a", None]),
    ("unknown-method", "doesNotExist", []),
    ("exported-without-types", "noTypes", []),
    ("raises", "raiseError", ["boom"]),
    ("non-dict", "returnNonDict", []),
    ("bad-dict", "returnBadDict", []),
    ("s-error", "returnError", ["failed on purpose", 22]),
    ("admin-only", "adminOnly", []),
    ("refresh-configuration", "refreshConfiguration", [False]),
    ("option", "getOption", ["Protocol"]),
    ("missing-option", "getOption", ["NoSuchOption"]),
] + [(f"echo-{name}", "echoValue", [value]) for name, value in ECHO_VALUES]

# Subsets for the other identities (keeps the number of DIRAC client processes small).
IDENTITY_CALLS = [c for c in CALLS if c[0] in {"whoami", "whoamiLike", "admin-only", "refresh-configuration",
                                                 "typed-ok", "unknown-method"}]
