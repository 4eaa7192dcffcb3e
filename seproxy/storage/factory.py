"""Reading a storage element's definition from the configuration (PROTOCOL.md 9.4).

``resolve_storage(cfg, name, vo, protocol_sections)`` follows ``Alias`` and
``BaseSE``, merges the SE options (access options come from the CS, the
Resource Status System fallback: absent means ``Active``), reads the protocol
sections in sorted name order with their defaults and ``VOPath`` override, and
returns a ``StorageDefinition``. Building the plugin objects is left to the
caller (``StorageElement``), which knows the credentials.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from seproxy.errors import ConfigError

SE_BASE_CONFIG_PATH = "/Resources/StorageElementBases"
SE_CONFIG_PATH = "/Resources/StorageElements"
ACCESS_OPTIONS = ("ReadAccess", "WriteAccess", "CheckAccess", "RemoveAccess")
LIST_OPTIONS = ("VO", "AccessProtocols", "WriteProtocols")
PROTOCOL_DEFAULTS = ("Access", "Host", "Path", "Port", "Protocol", "SpaceToken", "WSUrl")


@dataclass
class StorageDefinition:
    name: str
    options: dict[str, Any]
    protocols: dict[str, dict[str, Any]]  # section name -> options (sorted order)
    local_sections: list[str] = field(default_factory=list)
    remote_sections: list[str] = field(default_factory=list)


def _resolve_name(cfg: Any, name: str, reference: str, base_path: str = SE_CONFIG_PATH) -> str:
    if not name or not cfg.isSection(f"{base_path}/{name}"):
        raise ConfigError("StorageFactory._getConfigStorageName: Failed to get storage options")
    options = cfg.getOptions(f"{base_path}/{name}")
    if not options:
        raise ConfigError("StorageFactory._getConfigStorageName: Supplied storage doesn't exist.")
    if reference not in options:
        return name
    target = cfg.getValue(f"{base_path}/{name}/{reference}", "")
    try:
        return _resolve_name(cfg, target, "Alias", SE_BASE_CONFIG_PATH)
    except ConfigError:
        return _resolve_name(cfg, target, "Alias", SE_CONFIG_PATH)


def _protocol_details(cfg: Any, se_path: str, section: str, vo: str | None) -> dict[str, Any]:
    path = f"{se_path}/{section}"
    details: dict[str, Any] = dict.fromkeys(PROTOCOL_DEFAULTS, "")
    for option in cfg.getOptions(path):
        details[option] = cfg.getValue(f"{path}/{option}", "")
    if vo:
        vo_path = cfg.getOptionsDict(f"{path}/VOPath").get(vo, "")
        if vo_path:
            details["Path"] = vo_path
    return details


def resolve_storage(
    cfg: Any, name: str, vo: str | None, protocol_sections: list[str] | None = None
) -> StorageDefinition:
    """The definition of SE ``name``; ``ConfigError`` with DIRAC's text if it does not exist."""
    name = _resolve_name(cfg, name, "Alias")
    base = _resolve_name(cfg, name, "BaseSE")
    derived = name if base != name else None
    se_path = f"{SE_BASE_CONFIG_PATH}/{base}" if derived else f"{SE_CONFIG_PATH}/{name}"

    options: dict[str, Any] = {}
    for path in (se_path, f"{SE_CONFIG_PATH}/{derived}") if derived else (se_path,):
        for option in cfg.getOptions(path):
            if option in ACCESS_OPTIONS:
                continue
            options[option] = cfg.getValue(f"{path}/{option}", [] if option in LIST_OPTIONS else "")
    for access in ACCESS_OPTIONS:
        options[access] = cfg.getValue(f"{SE_CONFIG_PATH}/{name}/{access}", "Active")

    base_sections = cfg.getSections(se_path)
    protocols = {s: _protocol_details(cfg, se_path, s, vo) for s in sorted(base_sections)}
    if derived:
        derived_path = f"{SE_CONFIG_PATH}/{derived}"
        for section in cfg.getSections(derived_path):
            detail = _protocol_details(cfg, derived_path, section, vo)
            if section in base_sections:
                protocols[section].update({k: v for k, v in detail.items() if v})
            else:
                protocols[section] = detail

    definition = StorageDefinition(name=name, options=options, protocols=protocols)
    for section, details in protocols.items():
        access = str(details.get("Access", "")).lower()
        if access in ("remote", "remoteonly"):
            definition.remote_sections.append(section)
        elif access == "local":
            definition.local_sections.append(section)
    if protocol_sections:
        definition.protocols = {s: d for s, d in protocols.items() if s in protocol_sections}
    return definition


def site_storage_elements(cfg: Any, site: str) -> list[str]:
    """SEs declared for ``site`` under ``/Resources/Sites/<grid>/<site>/SE``."""
    if not site:
        return []
    result: list[str] = []
    for grid in cfg.getSections("/Resources/Sites"):
        result.extend(cfg.getValue(f"/Resources/Sites/{grid}/{site}/SE", []))
    return result


def operations_value(cfg: Any, vo: str | None, option: str, default: Any) -> Any:
    """An Operations option: ``/Operations/<vo>/Defaults/...`` then ``/Operations/Defaults/...``."""
    for path in ([f"/Operations/{vo}/Defaults/{option}"] if vo else []) + [
        f"/Operations/Defaults/{option}"
    ]:
        if cfg.getOption(path) is not None:
            return cfg.getValue(path, default)
    return default


__all__ = ["StorageDefinition", "operations_value", "resolve_storage", "site_storage_elements"]
