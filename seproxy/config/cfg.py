"""The configuration tree: ``Config``, a thin layer over ``diraccfg.CFG``.

``Config`` owns the merged view of the embedded development site ``dev-site.cfg``
(unless ``use_default=False``: a site configuration never includes it), any number of
site ``.cfg`` files (later wins) and command-line style overrides
(``/Section/Option=value``, later wins).  ``reload()`` re-reads every file and
re-applies the overrides and every ``setOption`` made since loading, so a reload
never loses a value set at run time.

Reads are lock-free (the merged ``diraccfg.CFG`` is swapped atomically on every
change); changes take a lock.

Remote data (a Configuration Server's CFG, fed by ``seproxy.dirac.configuration``,
which this layer does not import): ``set_remote(text)`` puts it between the embedded
default and the site files, so local files win as in DIRAC; it bumps ``generation``
only when the text changed. ``add_reload_hook(fn)``: ``fn(from_master=...)`` runs after
every ``reload()`` (outside the lock), which is how ``refreshConfiguration`` reaches the
Configuration Server without the framework knowing about it.

Placeholders: a value may contain ``@NAME@`` (the development site uses
``@DATADIR@``, ``@DEVUSERDN@``, ``@DEVHOSTDN@``).  ``set_placeholder("DATADIR", path)`` substitutes it everywhere;
while a placeholder is unset, an option whose value still contains it reads as
*absent*, so code falls back to its own default instead of using a bogus path.

Service sections are found in both DIRAC layouts (PROTOCOL.md 9.2): 9.x
``/Systems/<System>/Services/<Service>`` and 8.0
``/Systems/<System>/<Instance>/Services/<Service>`` where ``<Instance>`` is
``/DIRAC/Setups/<Setup>/<System>`` and ``<Setup>`` is ``/DIRAC/Setup``.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Sequence
from importlib import resources
from pathlib import Path
from typing import Any

from diraccfg import CFG

from seproxy.errors import ConfigError

_PLACEHOLDER_RE = re.compile(r"@([A-Z][A-Z0-9_]*)@")
_TRUE_WORDS = frozenset({"y", "yes", "true", "1"})


def default_config_path() -> Path:
    """Path of the embedded development site ``dev-site.cfg`` (package data)."""
    return Path(str(resources.files("seproxy.config").joinpath("dev-site.cfg")))


def split_path(path: str) -> list[str]:
    """``"/A//B/ C"`` -> ``["A", "B", "C"]`` (empty components ignored, like diraccfg)."""
    return [part.strip() for part in path.split("/") if part.strip()]


def join_path(*parts: str) -> str:
    """Join path pieces into one absolute CFG path."""
    return "/" + "/".join(p for part in parts for p in split_path(part))


def as_list(value: str) -> list[str]:
    """A CFG comma list: items stripped, empty items dropped."""
    return [item.strip() for item in value.split(",") if item.strip()]


def as_bool(value: str) -> bool:
    """CFG truth: ``y``, ``yes``, ``true``, ``1`` (any case); anything else is False."""
    return value.strip().lower() in _TRUE_WORDS


def cast_value(raw: str, default: Any) -> Any:
    """Convert ``raw`` to the type of ``default`` (or to ``default`` if it is a type).

    bool: CFG truth words; list: comma list; int/float/str: constructor. A value
    that does not convert yields ``default`` (DIRAC behaviour).
    """
    target = default if isinstance(default, type) else type(default)
    if default is None or target is str:
        return raw
    if target is bool:
        return as_bool(raw)
    if target in (list, tuple):
        return target(as_list(raw))
    try:
        return target(raw.strip())
    except (TypeError, ValueError):
        return default


def parse_override(text: str) -> tuple[str, str]:
    """``"/Section/Option=value"`` (optionally prefixed by ``-o``) -> (path, value)."""
    body = text.strip()
    if body.startswith("-o"):
        body = body[2:].strip()
    path, sep, value = body.partition("=")
    if not sep or not split_path(path):
        raise ConfigError(f"Invalid configuration override {text!r}: expected /Section/Option=value")
    return join_path(path), value.strip()


def check_syntax(text: str) -> None:
    """Raise ``ValueError("line N: ...")`` where ``text`` is not well-formed CFG.

    diraccfg accepts almost anything (a stray word is dropped, text after ``}`` is
    glued to the next name); this checks the statements it understands, one per line:
    ``Name = value``, ``Name += value``, ``Name`` or ``Name {`` opening a section, ``{``,
    ``}``, comments and blank lines.
    """
    opened: list[tuple[str, int]] = []
    pending: tuple[str, int] | None = None  # a name waiting for its "{"
    for number, line in enumerate(text.split("\n"), 1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if pending is not None and not stripped.startswith("{"):
            raise ValueError(f"line {pending[1]}: {pending[0]!r} is neither an option "
                             f"(Name = value) nor a section (Name followed by {{)")
        equal = stripped.find("=")
        head = stripped if equal < 0 else stripped[:equal]
        if equal >= 0 and not any(c in head for c in "{}"):
            if not head.removesuffix("+").strip():
                raise ValueError(f"line {number}: option without a name")
            continue
        rest = stripped
        while rest:
            if rest.startswith("{"):
                if pending is None:
                    raise ValueError(f"line {number}: '{{' without a section name")
                opened.append(pending)
                pending = None
                rest = rest[1:].strip()
            elif rest.startswith("}"):
                if pending is not None or not opened:
                    raise ValueError(f"line {number}: '}}' closes no section")
                opened.pop()
                rest = rest[1:].strip()
            elif pending is None:
                cut = min([i for i in (rest.find("{"), rest.find("}")) if i >= 0], default=len(rest))
                word = rest[:cut].strip()
                if "=" in word or not word:
                    raise ValueError(f"line {number}: put one statement per line")
                pending = (word, number)
                rest = rest[cut:].strip()
            else:
                raise ValueError(f"line {number}: put one statement per line")
    if pending is not None:
        raise ValueError(f"line {pending[1]}: {pending[0]!r} is neither an option "
                         f"(Name = value) nor a section (Name followed by {{)")
    if opened:
        raise ValueError(f"line {opened[-1][1]}: section {opened[-1][0]!r} is never closed")


def parse_text(text: str, source: str) -> CFG:
    """Check and parse CFG ``text``; ``ConfigError`` naming ``source`` and the line."""
    try:
        check_syntax(text)
        return CFG().loadFromBuffer(text)
    except Exception as exc:  # diraccfg raises ValueError/KeyError on malformed text
        raise ConfigError(f"Malformed configuration {source}, {exc}") from exc


def _load_cfg_file(path: Path) -> CFG:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"Cannot read configuration file {path}: {exc.strerror or exc}") from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(f"Configuration file {path} is not UTF-8: {exc}") from exc
    return parse_text(text, f"file {path}")


def _set_in(tree: CFG, path: str, value: str) -> None:
    """Set option ``path`` in ``tree``, creating missing sections."""
    parts = split_path(path)
    if not parts:
        raise ConfigError(f"Invalid option path {path!r}")
    node = tree
    for name in parts[:-1]:
        if node.isOption(name):
            raise ConfigError(f"Cannot set {path}: {name} is an option, not a section")
        if not node.isSection(name):
            node.createNewSection(name)
        node = node[name]
    if node.isSection(parts[-1]):
        raise ConfigError(f"Cannot set {path}: it is a section")
    node.setOption(parts[-1], str(value))


class Config:
    """A merged CFG tree with DIRAC-style accessors (see docs/ARCHITECTURE.md)."""

    def __init__(self, *, files: Sequence[str | Path] = (), use_default: bool = True,
                 overrides: Sequence[str] = ()) -> None:
        self._lock = threading.RLock()
        self._files: list[Path] = [Path(f) for f in files]
        self._use_default = use_default
        self._changes: list[tuple[str, str]] = [parse_override(o) for o in overrides]
        self._placeholders: dict[str, str] = {}
        self._texts: list[str] = []
        self._file_trees: list[tuple[str, CFG]] = []  # (file name, tree)
        self._remote: CFG | None = None
        self._remote_text: str | None = None
        self._reload_hooks: list[Callable[..., None]] = []
        #: incremented at every change; caches (Registry) compare it.
        self.generation = 0
        self._tree = CFG()
        self.reload()

    # -- construction and mutation ---------------------------------------------------------
    @classmethod
    def load(cls, files: Sequence[str | Path] = (), *, use_default: bool = True,
             overrides: Sequence[str] = ()) -> Config:
        """Merge the embedded default (unless ``use_default=False``), ``files`` and overrides."""
        return cls(files=files, use_default=use_default, overrides=overrides)

    @classmethod
    def from_text(cls, text: str, *, use_default: bool = False) -> Config:
        """A Config from CFG text (handy in tests and tools)."""
        cfg = cls(use_default=use_default)
        cfg.merge_text(text)
        return cfg

    @property
    def files(self) -> list[Path]:
        """The configuration files in merge order (embedded default first if used)."""
        return ([default_config_path()] if self._use_default else []) + list(self._files)

    def reload(self, *, from_master: bool = False) -> None:
        """Re-read every file, then re-apply overrides and run-time changes; then run the
        reload hooks (a Configuration Server refresh; ``from_master``: DIRAC's
        ``refreshConfiguration(fromMaster)``), whose errors propagate."""
        with self._lock:
            self._file_trees = [(str(path), _load_cfg_file(path)) for path in self.files]
            self._rebuild()
        for hook in list(self._reload_hooks):
            hook(from_master=from_master)

    def _rebuild(self) -> None:
        """Merge default < remote < site files < texts < changes (files as last read)."""
        tree = CFG()
        for _source, layer in self._layers():
            tree = tree.mergeWith(layer)
        for path, value in self._changes:
            _set_in(tree, path, value)
        self._commit(tree)

    def _layers(self) -> list[tuple[str, CFG]]:
        """(source, tree) in merge order: default < remote < site files < texts."""
        layers = list(self._file_trees)
        if self._remote is not None:
            layers.insert(1 if self._use_default else 0, ("the Configuration Server", self._remote))
        layers += [("configuration text", CFG().loadFromBuffer(text)) for text in self._texts]
        return layers

    def set_remote(self, text: str | None) -> bool:
        """Install a Configuration Server's CFG text below the site files (None: drop it).

        True if the configuration changed (``generation`` bumped); ConfigError if malformed.
        """
        try:
            tree = None if text is None else CFG().loadFromBuffer(text)
        except Exception as exc:  # diraccfg raises ValueError/KeyError on malformed text
            raise ConfigError(f"Malformed configuration data: {exc}") from exc
        with self._lock:
            if text == self._remote_text:
                return False
            old = self._remote, self._remote_text
            self._remote, self._remote_text = tree, text
            try:
                self._rebuild()
            except Exception as exc:  # diraccfg: an option where the local files have a section
                self._remote, self._remote_text = old
                raise ConfigError(f"Configuration data does not merge with the local files: {exc}") from exc
        return True

    @property
    def remote_text(self) -> str | None:
        """The Configuration Server data in use (None when there is none)."""
        return self._remote_text

    def add_reload_hook(self, hook: Callable[..., None]) -> None:
        """Run ``hook(from_master=...)`` after every ``reload()`` (outside the lock)."""
        with self._lock:
            self._reload_hooks.append(hook)

    def remove_reload_hook(self, hook: Callable[..., None]) -> None:
        with self._lock:
            if hook in self._reload_hooks:
                self._reload_hooks.remove(hook)

    def merge_file(self, path: str | Path) -> None:
        """Merge one more file on top (it is re-read by ``reload``)."""
        with self._lock:
            path = Path(path)
            extra = _load_cfg_file(path)
            self._files.append(path)
            self._file_trees.append((str(path), extra))
            self._commit(self._tree.mergeWith(extra))
            self._reapply_changes()

    def merge_text(self, text: str) -> None:
        """Merge CFG text on top (kept and re-applied by ``reload``)."""
        extra = parse_text(text, "text")
        with self._lock:
            self._texts.append(text)
            self._commit(self._tree.mergeWith(extra))
            self._reapply_changes()

    def origin(self, path: str) -> str | None:
        """Where the value of option ``path`` comes from: a file, an override, or None."""
        full = join_path(path)
        if any(changed == full for changed, _ in self._changes):
            return f"override -o {full}"
        for source, tree in reversed(self._layers()):
            node: CFG | str = tree
            for name in split_path(full):
                if not isinstance(node, CFG):
                    break
                try:
                    node = node[name]
                except KeyError:
                    break
            else:
                if isinstance(node, str):
                    return source
        return None

    def setOption(self, path: str, value: Any) -> None:  # noqa: N802 (DIRAC name)
        """Set one option (creating sections); survives ``reload``."""
        path = join_path(path)
        value = ", ".join(map(str, value)) if isinstance(value, (list, tuple)) else str(value)
        with self._lock:
            tree = self._tree.clone()
            _set_in(tree, path, value)
            self._changes.append((path, value))
            self._commit(tree)

    def apply_override(self, text: str) -> None:
        """Apply one ``/Section/Option=value`` override (as given to ``-o``)."""
        self.setOption(*parse_override(text))

    def set_placeholder(self, name: str, value: str | Path) -> None:
        """Substitute ``@NAME@`` by ``value`` in every option value (now and after reload)."""
        with self._lock:
            self._placeholders[name] = str(value)
            self.generation += 1

    def _reapply_changes(self) -> None:
        tree = self._tree.clone()
        for path, value in self._changes:
            _set_in(tree, path, value)
        self._commit(tree)

    def _commit(self, tree: CFG) -> None:
        self._tree = tree
        self.generation += 1

    # -- reading ---------------------------------------------------------------------------
    def _expand(self, raw: str) -> str | None:
        if "@" not in raw:
            return raw
        missing = False

        def repl(match: re.Match[str]) -> str:
            nonlocal missing
            if match.group(1) in self._placeholders:
                return self._placeholders[match.group(1)]
            missing = True
            return match.group(0)

        text = _PLACEHOLDER_RE.sub(repl, raw)
        return None if missing else text

    def expand(self, text: str) -> str | None:
        """``text`` with its placeholders substituted; None while one of them is unset."""
        return self._expand(text)

    def _node(self, path: str) -> CFG | str | None:
        node: CFG | str = self._tree
        for name in split_path(path):  # names never contain "/": a plain dict look-up
            if not isinstance(node, CFG):
                return None
            try:
                node = node[name]
            except KeyError:
                return None
        return node

    def getOption(self, path: str) -> str | None:  # noqa: N802
        """Raw string of an option (placeholders expanded), None if absent or a section."""
        node = self._node(path)
        return self._expand(node) if isinstance(node, str) else None

    def getValue(self, path: str, default: Any = None) -> Any:  # noqa: N802
        """The option converted to the type of ``default``; ``default`` if absent."""
        raw = self.getOption(path)
        if raw is None:
            return default if not isinstance(default, type) else None
        return cast_value(raw, default)

    def value(self, path: str) -> Any:
        """The option at absolute ``path`` as declared in ``seproxy.config.schema``."""
        from seproxy.config import schema  # the schema reads through this class

        return schema.value(self, path)

    def isSection(self, path: str) -> bool:  # noqa: N802
        return isinstance(self._node(path), CFG)

    def isOption(self, path: str) -> bool:  # noqa: N802
        return self.getOption(path) is not None

    def getOptions(self, path: str) -> list[str]:  # noqa: N802
        """Names of the options directly in section ``path`` (file order)."""
        node = self._node(path)
        return list(node.listOptions()) if isinstance(node, CFG) else []

    def getSections(self, path: str) -> list[str]:  # noqa: N802
        """Names of the sub-sections of ``path`` (file order)."""
        node = self._node(path)
        return list(node.listSections()) if isinstance(node, CFG) else []

    def getOptionsDict(self, path: str) -> dict[str, str]:  # noqa: N802
        """``{option: raw value}`` for the options of section ``path``."""
        base = join_path(path)
        result = {}
        for name in self.getOptions(base):
            value = self.getOption(f"{base}/{name}")
            if value is not None:
                result[name] = value
        return result

    def serialize(self) -> str:
        """The merged tree as CFG text."""
        return self._tree.serialize()

    # -- DIRAC service layouts (PROTOCOL.md 9.2) -------------------------------------------
    def _instance(self, system: str) -> str | None:
        if self.getValue("/DIRAC/NoSetup", False):
            return None
        setup = self.getOption("/DIRAC/Setup")
        if not setup:
            return None
        return self.getOption(f"/DIRAC/Setups/{setup}/{system}") or None

    def _system_base(self, system: str, kind: str, name: str) -> str:
        modern = join_path("Systems", system, kind, name)
        instance = self._instance(system)
        if instance is None:
            return modern
        legacy = join_path("Systems", system, instance, kind, name)
        if self._node(legacy) is not None or self._node(modern) is None:
            return legacy
        return modern

    @staticmethod
    def _split_service(name: str) -> tuple[str, str]:
        parts = split_path(name)
        if len(parts) != 2:
            raise ConfigError(f"Invalid service name {name!r}: expected System/Service")
        return parts[0], parts[1]

    def service_section(self, name: str) -> str:
        """CFG path of the options of service ``System/Service``.

        8.0 layout if ``/DIRAC/Setup`` resolves to an instance and that section
        exists (or the 9.x one does not); otherwise the 9.x layout.
        """
        system, service = self._split_service(name)
        return self._system_base(system, "Services", service)

    def service_urls(self, name: str) -> list[str]:
        """The URL list of service ``System/Service`` (``.../URLs/<Service>``)."""
        system, service = self._split_service(name)
        raw = self.getOption(self._system_base(system, "URLs", service))
        return as_list(raw) if raw else []

    def __repr__(self) -> str:
        return f"Config(files={[str(f) for f in self.files]!r}, changes={len(self._changes)})"
