"""The two-user interleaving both GSI-protected protocols are tested with (XROOT, HTTPS):
usera may use only /a, userb only /b on the ``xrootd_gsi`` server."""

from __future__ import annotations

import os
import random
import re
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from seproxy.storage import StorageElement

DIRECTORY = {"usera": "a", "userb": "b"}


def interleave(gsi, make_se: Callable[[str, Path], StorageElement], tmp_path: Path,
               folder: str, *, steps: int = 160, workers: int = 8, seed: int = 1234) -> list[str]:
    """``steps`` random put/get/getFileMetadata calls of usera and userb on /a and /b,
    ``workers`` at a time, each through a fresh ``make_se(directory, proxy)`` (as the
    service builds one per call). Returns the calls whose outcome is not what the
    caller's rights allow (a put lands the caller's bytes, a get returns the owner's)."""
    proxies = {user: gsi.proxy(user) for user in DIRECTORY}
    payload = {user: os.urandom(20_000) + user.encode() for user in DIRECTORY}
    sources = {}
    for user, data in payload.items():
        sources[user] = tmp_path / f"{user}.bin"
        sources[user].write_bytes(data)
    seed_lfn = f"/dirac/{folder}/seed.bin"
    for user, directory in DIRECTORY.items():  # one file of each user before the mix
        res = make_se(directory, proxies[user]).putFile({seed_lfn: str(sources[user])})
        assert seed_lfn in res["Value"]["Successful"], res
    rng = random.Random(seed)
    plan = [(i, rng.choice(list(DIRECTORY)), rng.choice(list(DIRECTORY.values())),
             rng.choice(["put", "get", "meta"])) for i in range(steps)]
    lock = threading.Lock()
    wrong: list[str] = []

    def operate(step: tuple[int, str, str, str]) -> None:
        index, user, directory, op = step
        se = make_se(directory, proxies[user])
        allowed = DIRECTORY[user] == directory
        owner = next(u for u, d in DIRECTORY.items() if d == directory)
        if op == "put":
            lfn = f"/dirac/{folder}/{user}-{index}.bin"
            res = se.putFile({lfn: str(sources[user])})["Value"]
            ok = lfn in res["Successful"] and \
                (gsi.root / directory / lfn.lstrip("/")).read_bytes() == payload[user]
        elif op == "get":
            out = tmp_path / f"get-{index}"
            out.mkdir()
            res = se.getFile(seed_lfn, localPath=str(out))["Value"]
            ok = seed_lfn in res["Successful"] and (out / "seed.bin").read_bytes() == payload[owner]
        else:
            res = se.getFileMetadata(seed_lfn)["Value"]
            ok = seed_lfn in res["Successful"]
        if ok != allowed:
            with lock:
                wrong.append(f"{step}: {res}")

    with ThreadPoolExecutor(max_workers=workers) as pool:
        list(pool.map(operate, plan))
    return wrong


def cross_user_grants(gsi, protocol: str) -> list[str]:
    """Audit lines of the server granting a user anything in the other user's directory."""
    pattern = re.compile(rf"grant {protocol} (usera@\S+ \w+ /b/|userb@\S+ \w+ /a/)")
    return [line for line in gsi.log_text().splitlines() if pattern.search(line)]


def audit(gsi, protocol: str, verdict: str, user: str, path_part: str) -> list[str]:
    """Audit lines: ``verdict`` (grant/deny) for ``user`` through ``protocol`` on a path
    containing ``path_part``."""
    pattern = re.compile(
        rf"acc_Audit: \S+ {verdict} {protocol} {user}@\S+ \w+ \S*{re.escape(path_part)}")
    return [line for line in gsi.log_text().splitlines() if pattern.search(line)]


def users_per_login(gsi, protocol: str) -> dict[str, set[str]]:
    """For each client login name in the audit log (``<login>.<pid>:<fd>@host``), the users
    the server authorized on connections with that login."""
    pattern = re.compile(rf"acc_Audit: (\w+)\.\d+:\d+@\S+ \w+ {protocol} (\w+)@")
    seen: dict[str, set[str]] = {}
    for line in gsi.log_text().splitlines():
        match = pattern.search(line)
        if match:
            seen.setdefault(match.group(1), set()).add(match.group(2))
    return seen
