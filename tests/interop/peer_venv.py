"""Real DIRAC from PyPI as a test peer: cached venvs and the JSON runner that drives them.

Builds (once per cache, under a file lock, renamed into place when complete) the
virtualenvs of :data:`DIRAC9` and :data:`DIRAC8` and runs ``dirac_runner.py`` in
them (:meth:`DiracVenv.run`).  The pytest fixtures are in ``tests/fixtures/dirac.py``;
how it all works: ``docs/INTEROP.md``.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.interop import tagged

INTEROP_DIR = Path(__file__).resolve().parent
RUNNER = INTEROP_DIR / "dirac_runner.py"
LAUNCHER = INTEROP_DIR / "dirac_launcher.py"

M2CRYPTO = "M2Crypto==0.51.0"
# Found by trial (docs/INTEROP.md), pinned to versions known to work together.
_COMMON = (
    "diraccfg==1.0.1", "cachetools==8.0.2", "psutil==7.2.2", "packaging==26.4",
    "pyasn1==0.6.5", "pyasn1-modules==0.4.2", "requests==2.34.2", "urllib3==2.8.0",
    "idna==3.20", "certifi==2026.10.19.post1", "charset-normalizer==3.5.3",
    "typing_extensions==4.16.0", "importlib_metadata==10.2.0", "importlib_resources==7.1.0",
    "lazy-importer==0.1.0", "pyparsing==3.3.3",  # pyparsing: StorageElement imports the catalogue parser
)
_DIRAC9_SERVER = (
    "diracx-client==0.7.0", "diracx-core==0.7.0", "azure-core==1.41.0", "isodate==0.7.2",
    "pydantic==2.14.4", "pydantic-core==2.50.5", "pydantic-settings==2.16.3",
    "typing-inspection==0.4.5", "annotated-types==0.8.0", "python-dotenv==1.2.4",
    "httpx2==2.16.2", "pyjwt==2.15.1",
)


def base_interpreter() -> str:
    """The interpreter a venv made by this one is based on: this one, or the base of the
    virtualenv it runs in (so a test venv reuses the cached DIRAC venvs)."""
    if sys.prefix == sys.base_prefix:
        return sys.executable
    return str(Path(sys.base_prefix) / "bin" / Path(sys.executable).name)


@dataclass(frozen=True)
class VenvSpec:
    """What goes into one DIRAC venv; ``key`` names its cache directory."""

    name: str
    dirac_version: str
    packages: tuple[str, ...]
    #: run by the venv's python once built (not part of the cache key)
    smoke_test: str = "import DIRAC, M2Crypto.SSL; print(DIRAC.version)"
    #: a tool venv (not DIRAC): no M2Crypto wheel, pip resolves the packages' dependencies
    tool: bool = False

    @property
    def key(self) -> str:
        parts: list[Any] = [self.name, self.dirac_version, self.packages, M2CRYPTO,
                            sys.version, base_interpreter()]
        if self.tool:
            parts.append("tool")
        return hashlib.sha256(json.dumps(parts).encode()).hexdigest()[:16]


DIRAC9 = VenvSpec("dirac9", "9.1.22", ("DIRAC==9.1.22", "DIRACCommon==9.1.22", *_COMMON, *_DIRAC9_SERVER))
DIRAC8 = VenvSpec("dirac8", "8.0.86", ("DIRAC==8.0.86", *_COMMON))
#: DIRAC 9 with the MySQL driver, for services that keep a database (ProxyManager's ProxyDB).
#: A separate spec so that the plain dirac9 venv's cache stays valid; mysqlclient builds
#: against libmariadb-dev + pkg-config (.ci/run installs them).
#: ProxyManagerHandler imports diracx.cli (token exchange): typer, rich, yaml, git... (found by trial).
DIRAC9_SERVER = VenvSpec("dirac9-server", "9.1.22", (
    *DIRAC9.packages, "mysqlclient==2.3.2", "diracx-cli==0.7.0", "diracx-api==0.7.0",
    "typer==0.29.2", "click==8.5.1", "rich==15.0.0", "shellingham==1.5.4", "markdown-it-py==4.3.0",
    "mdurl==0.1.2", "pygments==2.21.0", "pyyaml==6.0.4", "annotated-doc==0.0.7",
    "email-validator==2.4.0", "dnspython==2.9.2", "sh==2.4.0", "gitpython==3.2.1", "gitdb==4.0.12",
    "smmap==5.0.3"),
    smoke_test="import DIRAC, M2Crypto.SSL, MySQLdb;"
               " import DIRAC.FrameworkSystem.Service.ProxyManagerHandler; print(DIRAC.version)")
#: DIRAC 8.0 with the MySQL driver: the ProxyManager DIRAC 8.0's StorageElementProxy used.
DIRAC8_SERVER = VenvSpec("dirac8-server", "8.0.86", (*DIRAC8.packages, "mysqlclient==2.3.2"),
                         smoke_test="import DIRAC, M2Crypto.SSL, MySQLdb;"
                                    " import DIRAC.FrameworkSystem.Service.ProxyManagerHandler;"
                                    " print(DIRAC.version)")


class InteropSetupError(RuntimeError):
    """The DIRAC peer could not be prepared (build or start failed)."""


class DiracCallError(AssertionError):
    """The runner raised while executing a call (not a DIRAC S_ERROR)."""


# ----------------------------------------------------------------------------- venvs


def interop_cache_dir() -> Path:
    return Path(os.environ.get("SEPROXY_INTEROP_CACHE") or Path.home() / ".cache" / "seproxy-interop")


@contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)  # blocks while another pytest process builds
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _run_build_step(argv: Sequence[str | Path], what: str, hint: str = "",
                    env: Mapping[str, str] | None = None) -> None:
    proc = subprocess.run([str(a) for a in argv], capture_output=True, text=True, timeout=900,
                          stdin=subprocess.DEVNULL, env={**os.environ, **env} if env else None)
    if proc.returncode != 0:
        tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-25:])
        raise InteropSetupError(f"{what} failed (exit {proc.returncode}){hint}\n--- last output ---\n{tail}")


_PIP_FLAGS = ("--disable-pip-version-check", "--no-input", "--timeout", "30", "--retries", "2")
_NETWORK_HINT = ": is PyPI reachable (pip install needs it once; then the cache is reused)?"


def _m2crypto_wheel(cache: Path, env: Mapping[str, str] | None = None) -> Path:
    """Build M2Crypto's wheel once (it has no Linux wheel) and keep it in the cache."""
    wheel_dir = cache / "wheels" / f"{M2CRYPTO}-py{sys.version_info[0]}{sys.version_info[1]}"
    with _file_lock(cache / "locks" / "m2crypto.lock"):
        found = sorted(wheel_dir.glob("*.whl")) if wheel_dir.is_dir() else []
        if found:
            return found[0]
        build = Path(tempfile.mkdtemp(prefix=".m2crypto-", dir=cache))
        try:
            _run_build_step([sys.executable, "-m", "pip", "wheel", "--no-deps", *_PIP_FLAGS,
                             "-w", build, M2CRYPTO], f"building the {M2CRYPTO} wheel",
                            ": it needs PyPI, gcc, swig and libssl-dev (apt-get install -y swig libssl-dev)",
                            env)
            wheel = next(build.glob("*.whl"))
            wheel_dir.parent.mkdir(parents=True, exist_ok=True)
            os.rename(build, wheel_dir)
            return wheel_dir / wheel.name
        finally:
            shutil.rmtree(build, ignore_errors=True)


@dataclass(frozen=True)
class DiracVenv:
    """A ready DIRAC virtualenv."""

    spec: VenvSpec
    path: Path

    @property
    def python(self) -> Path:
        return self.path / "bin" / "python"

    @property
    def version(self) -> str:
        return self.spec.dirac_version

    @property
    def major(self) -> int:
        return int(self.spec.dirac_version.split(".")[0])

    def env(self, home: Path, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        """A clean environment for a process of this venv (no inherited X509_/DIRAC variables)."""
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("X509_", "DIRAC", "PYTHON", "VIRTUAL_ENV"))}
        home.mkdir(parents=True, exist_ok=True)
        env.update(HOME=str(home), PYTHONPATH=str(INTEROP_DIR), PYTHONDONTWRITEBYTECODE="1")
        env.update(extra or {})
        return env

    def run(self, calls: Sequence[Mapping[str, Any]], *, cfg: str = "", encoding: str | None = None,
            proxy: Path | None = None, cert_dir: Path | None = None,
            env: Mapping[str, str] | None = None, timeout: float = 300.0) -> list[Outcome]:
        """Execute ``calls`` in one runner process (see ``dirac_runner.py`` for the CALL forms)."""
        extra = dict(env or {})
        if proxy is not None:
            extra["X509_USER_PROXY"] = str(proxy)
        if cert_dir is not None:
            extra["X509_CERT_DIR"] = str(cert_dir)
        job = {"cfg": cfg, "encoding": encoding, "calls": [tagged.to_jsonable(dict(c)) for c in calls]}
        with tempfile.TemporaryDirectory(prefix="dirac-runner-") as home:
            proc = subprocess.run([str(self.python), str(RUNNER)], input=json.dumps(job),
                                  capture_output=True, text=True, timeout=timeout,
                                  env=self.env(Path(home), extra), cwd=home)
        try:
            answer = json.loads(proc.stdout)
        except ValueError:
            raise DiracCallError(f"DIRAC {self.version} runner exited {proc.returncode} without a result;"
                                 f" stderr:\n{proc.stderr[-4000:]}") from None
        if not answer.get("ok"):
            raise DiracCallError(f"DIRAC {self.version} runner: {answer.get('error')}\n"
                                 f"{answer.get('traceback', '')}\nstderr:\n{proc.stderr[-4000:]}")
        return [Outcome.from_json(item, proc.stderr) for item in answer["results"]]


@dataclass
class Outcome:
    """One call's outcome in the runner: a value, or the exception it raised."""

    ok: bool
    value: Any = None
    error: str = ""
    traceback: str = ""
    stderr: str = field(default="", repr=False)

    @classmethod
    def from_json(cls, item: Mapping[str, Any], stderr: str) -> Outcome:
        if item.get("ok"):
            return cls(True, tagged.from_jsonable(item.get("value")), stderr=stderr)
        return cls(False, None, item.get("error", ""), item.get("traceback", ""), stderr)

    def unwrap(self) -> Any:
        if not self.ok:
            raise DiracCallError(f"{self.error}\n{self.traceback}\nrunner stderr (tail):\n{self.stderr[-3000:]}")
        return self.value


def ensure_venv(spec: VenvSpec, cache: Path | None = None, *,
                env: Mapping[str, str] | None = None) -> DiracVenv:
    """The venv of ``spec`` from the cache, building it first if needed (locked, atomic).

    ``env`` adds variables for the build commands (pip's index settings, ...).
    Raises :class:`InteropSetupError` with the last lines of pip's output on failure.
    """
    cache = cache or interop_cache_dir()
    final = cache / "venvs" / f"{spec.name}-{spec.dirac_version}-{spec.key}"
    ready = final / "seproxy-interop-ready.json"
    if ready.is_file():
        return DiracVenv(spec, final)
    with _file_lock(cache / "locks" / f"{final.name}.lock"):
        if ready.is_file():  # another process built it while we waited
            return DiracVenv(spec, final)
        print(f"seproxy-interop: building the {spec.name} venv in {final}", file=sys.stderr, flush=True)
        wheel = None if spec.tool else _m2crypto_wheel(cache, env)
        build = Path(tempfile.mkdtemp(prefix=f".build-{spec.name}-", dir=final.parent
                                      if final.parent.is_dir() else _mkdir(final.parent)))
        venv_dir = build / "venv"
        try:
            # --without-pip + the running pip's --python: ensurepip alone takes ~40 s on a busy 2-core box
            _run_build_step([sys.executable, "-m", "venv", "--without-pip", venv_dir],
                            f"creating the {spec.name} venv")
            what = spec.name if spec.tool else "DIRAC"
            _run_build_step([sys.executable, "-m", "pip", "--python", venv_dir / "bin" / "python",
                             "install", *([] if spec.tool else ["--no-deps"]), *_PIP_FLAGS,
                             *spec.packages, *([wheel] if wheel else [])],
                            f"pip install of {what} {spec.dirac_version}", _NETWORK_HINT, env)
            (venv_dir / ready.name).write_text(json.dumps(
                {"spec": spec.packages, "m2crypto": wheel.name if wheel else None,
                 "python": sys.version}, indent=1))
            if final.exists():  # a broken leftover without the ready marker
                shutil.rmtree(final)
            os.rename(venv_dir, final)
        finally:
            shutil.rmtree(build, ignore_errors=True)
    venv = DiracVenv(spec, final)
    _run_build_step([venv.python, "-c", spec.smoke_test], f"checking the {spec.name} venv at {final}")
    return venv


def _mkdir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path


def venv_or_fail(spec: VenvSpec, cache: Path | None = None, *,
                 env: Mapping[str, str] | None = None) -> DiracVenv:
    """:func:`ensure_venv` for fixtures: a clear test FAILURE (not a skip) when it cannot be built."""
    if os.environ.get("SEPROXY_SKIP_INTEROP") == "1":
        pytest.skip("SEPROXY_SKIP_INTEROP=1: real-DIRAC interop tests disabled explicitly")
    try:
        return ensure_venv(spec, cache, env=env)
    except (InteropSetupError, OSError, subprocess.TimeoutExpired) as exc:
        pytest.fail(f"cannot prepare the real DIRAC {spec.dirac_version} peer venv: {exc}\n"
                    "(interop tests are not skippable by default; SEPROXY_SKIP_INTEROP=1 skips them)",
                    pytrace=False)


# ----------------------------------------------------------------------------- DIRAC + seproxy

REPO_ROOT = INTEROP_DIR.parent.parent
#: what changes the installed seproxy (the venv is rebuilt when any of it changes)
_SEPROXY_SOURCES = ("pyproject.toml", "seproxy")
FREEZE_BEFORE = "seproxy-freeze-before.txt"
FREEZE_AFTER = "seproxy-freeze-after.txt"


def _source_digest(repo: Path) -> str:
    digest = hashlib.sha256()
    for top in _SEPROXY_SOURCES:
        root = repo / top
        files = [root] if root.is_file() else sorted(
            p for p in root.rglob("*") if p.is_file() and "__pycache__" not in p.parts)
        for path in files:
            digest.update(str(path.relative_to(repo)).encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


#: pip runs for the DIRAC venv copies see only that venv (a checkout on PYTHONPATH would show
#: up in ``pip freeze`` through the ``seproxy.egg-info`` that building the wheel leaves there)
_NO_PYTHONPATH = {"PYTHONPATH": ""}


def _freeze(python: Path) -> str:
    proc = subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "freeze", "--all",
                           *_PIP_FLAGS[:1]], capture_output=True, text=True, timeout=300,
                          env={**os.environ, **_NO_PYTHONPATH}, check=False)
    if proc.returncode != 0:
        raise InteropSetupError(f"pip freeze in {python} failed: {proc.stderr[-2000:]}")
    return proc.stdout


def ensure_seproxy_venv(base: DiracVenv, repo: Path = REPO_ROOT,
                        preinstall: tuple[str, ...] = ()) -> DiracVenv:
    """A copy of the DIRAC venv ``base`` with this checkout ``pip install``-ed into it, as a DIRAC
    user installs seproxy (a wheel built from the tree, dependencies from the index).

    ``preinstall``: requirements installed into the copy first (what a full DIRAC installation
    has and the minimal peer venv lacks, e.g. its ``cryptography``). Cached per (base venv,
    preinstall, source digest); ``pip freeze --all`` before and after the install of seproxy
    are kept in the venv (:data:`FREEZE_BEFORE`, :data:`FREEZE_AFTER`).
    """
    extra = hashlib.sha256(json.dumps(preinstall).encode()).hexdigest()[:6] if preinstall else ""
    final = base.path.parent / f"{base.path.name}+seproxy-{_source_digest(repo)}{extra}"
    ready = final / "seproxy-installed.json"
    if ready.is_file():
        return DiracVenv(base.spec, final)
    with _file_lock(base.path.parent.parent / "locks" / f"{final.name}.lock"):
        if ready.is_file():
            return DiracVenv(base.spec, final)
        build = Path(tempfile.mkdtemp(prefix=".build-seproxy-", dir=base.path.parent))
        venv_dir = build / "venv"
        try:
            shutil.copytree(base.path, venv_dir, symlinks=True)
            python = venv_dir / "bin" / "python"
            if preinstall:
                _run_build_step([sys.executable, "-m", "pip", "--python", python, "install",
                                 *_PIP_FLAGS, *preinstall], f"pip install of {preinstall}",
                                _NETWORK_HINT, _NO_PYTHONPATH)
            (venv_dir / FREEZE_BEFORE).write_text(_freeze(python))
            _run_build_step([sys.executable, "-m", "pip", "--python", python, "install", *_PIP_FLAGS,
                             str(repo)], f"pip install of seproxy into a copy of DIRAC {base.version}",
                            _NETWORK_HINT, _NO_PYTHONPATH)
            (venv_dir / FREEZE_AFTER).write_text(_freeze(python))
            (venv_dir / ready.name).write_text(json.dumps({"base": base.path.name, "repo": str(repo)}))
            if final.exists():
                shutil.rmtree(final)
            os.rename(venv_dir, final)
        finally:
            shutil.rmtree(build, ignore_errors=True)
        _prune_seproxy_venvs(base, keep=final)
    return DiracVenv(base.spec, final)


#: copies for other source states unused for this long are removed when a new one is built
STALE_SECONDS = 6 * 3600


def _prune_seproxy_venvs(base: DiracVenv, keep: Path) -> None:
    now = time.time()
    for other in base.path.parent.glob(f"{base.path.name}+seproxy-*"):
        marker = other / "seproxy-installed.json"
        used = max((p.stat().st_atime for p in (marker, other / "bin" / "python") if p.exists()),
                   default=0.0)
        if other != keep and now - used > STALE_SECONDS:
            shutil.rmtree(other, ignore_errors=True)


def parse_freeze(text: str) -> dict[str, str]:
    """``pip freeze`` lines -> {normalised name: version}."""
    out = {}
    for line in text.splitlines():
        for separator in ("==", " @ "):
            if separator in line:
                name, version = line.split(separator, 1)
                break
        else:
            continue
        out[name.strip().lower().replace("_", "-")] = version.strip()
    return out
