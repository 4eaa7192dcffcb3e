"""``AuthManager``: DIRAC's authorisation decision for one action (PROTOCOL.md 7.7).

Inputs: the method path (``ping``, ``FileTransfer/FromClient``, ``Message/Name``,
``Connection/Default``), the caller's credential dict (8.1, plus ``extraCredentials``
from the proposal) and the handler's hard-coded default (``auth_<m>``). The rules
come from ``<service section>/Authorization`` and the identities from ``/Registry``.

The credential dict is modified in place, as in DIRAC: ``group``, ``username`` and
``properties`` are set (this is what ``whoami`` shows), a forwarded identity
replaces ``DN``/``group`` and drops ``extraCredentials``.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from typing import Any

from seproxy.config import Config, Registry
from seproxy.errors import AuthError

log = logging.getLogger("seproxy.rpc.auth")

KW_DN = "DN"
KW_GROUP = "group"
KW_USERNAME = "username"
KW_PROPERTIES = "properties"
KW_EXTRA_CREDENTIALS = "extraCredentials"
HOSTS_GROUP = "hosts"
TRUSTED_HOST = "TrustedHost"
ANONYMOUS = ("anonymous", "visitor")
#: Keys of the credential dict that authorisation reads or writes.
_AUTH_KEYS = (KW_DN, KW_GROUP, KW_USERNAME, KW_PROPERTIES, KW_EXTRA_CREDENTIALS)
CACHE_SIZE = 4096


def _as_list(value: Any) -> list[str]:
    if not value:
        return []
    if isinstance(value, str):
        return [item.strip() for item in value.split(",") if item.strip()]
    return [str(item) for item in value]


class AuthManager:
    """Authorisation rules of one service (``authSection`` = ``<service>/Authorization``)."""

    def __init__(self, cfg: Config, section: str, registry: Registry | None = None,
                 defaults: Mapping[str, Any] | None = None) -> None:
        self.cfg = cfg
        self.authSection = section.rstrip("/")
        #: rules used where the section has none (``Default``, ``FileTransfer/Default``: the
        #: schema's, so they apply in whichever DIRAC layout the section lives)
        self.defaults = {name: _as_list(value) for name, value in (defaults or {}).items()}
        self.registry = registry or Registry(cfg)
        self._cache: dict[tuple, tuple[bool, dict]] = {}
        self._cache_lock = threading.Lock()

    # -- rules -----------------------------------------------------------------------------
    def getValidPropertiesForMethod(self, method: str, defaultProperties: Any = None) -> list[str]:  # noqa: N802,N803
        """Configured list, else the hard-coded default, else the fallback ``Default`` list."""
        props = self.cfg.getValue(f"{self.authSection}/{method}", [])
        if props:
            return list(props)
        if defaultProperties:
            return _as_list(defaultProperties)
        fallback = f"{method.split('/', 1)[0]}/Default" if "/" in method else "Default"
        return list(self.cfg.getValue(f"{self.authSection}/{fallback}", []) or self.defaults.get(fallback, []))

    def _split_groups(self, props: list[str]) -> tuple[list[str], set[str]]:
        """Separate ``group:``/``vo:`` entries (allowed groups) from properties."""
        properties: list[str] = []
        groups: set[str] = set()
        for prop in props:
            if prop.startswith("group:"):
                groups.add(prop[len("group:"):])
            elif prop.startswith("vo:"):
                groups.update(self.registry.groups_for_vo(prop[len("vo:"):]))
            else:
                properties.append(prop)
        return properties, groups

    # -- identity helpers ------------------------------------------------------------------
    def _is_trusted_forwarder(self, cred: dict) -> bool:
        if not isinstance(cred.get(KW_EXTRA_CREDENTIALS), (list, tuple)) or not cred.get(KW_DN):
            return False
        host = self.registry.hostname_for_dn(cred[KW_DN])
        return host is not None and TRUSTED_HOST in self.registry.host_properties(host)

    def _resolve_host(self, cred: dict) -> bool:
        host = self.registry.hostname_for_dn(cred[KW_DN])
        if host is None:
            return False
        cred[KW_USERNAME] = host
        cred[KW_PROPERTIES] = self.registry.host_properties(host)
        return True

    def _resolve_user(self, cred: dict) -> bool:
        """Username of the DN within its group (properties = the group's); False if unknown."""
        group = cred[KW_GROUP]
        cred[KW_PROPERTIES] = self.registry.group_properties(group)
        members = self.registry.users_in_group(group)
        user = self.registry.username_for_dn(cred[KW_DN])
        if user is None or user not in members:
            return False
        cred[KW_USERNAME] = user
        return True

    def _is_suspended(self, cred: dict) -> bool:
        user = cred.get(KW_USERNAME)
        if not user:
            return False
        return self.registry.is_suspended(user, self.registry.vo_for_group(cred[KW_GROUP]))

    # -- the decision ----------------------------------------------------------------------
    def authQuery(self, methodQuery: str, credDict: dict, defaultProperties: Any = None) -> bool:  # noqa: N802,N803
        """True if the caller described by ``credDict`` may run ``methodQuery``.

        Decisions are cached per (method, identity inputs, configuration generation), like
        DIRAC's Registry caches; a reload of the configuration invalidates them.
        """
        try:
            key = (methodQuery, repr(defaultProperties), getattr(self.cfg, "generation", None),
                   *(repr(credDict.get(k, KeyError)) for k in (KW_DN, KW_GROUP, KW_EXTRA_CREDENTIALS)))
        except Exception:  # noqa: BLE001 - unusual values: no caching
            key = None
        hit = self._cache.get(key) if key is not None else None
        if hit is not None:
            allowed, after = hit
            for name in _AUTH_KEYS:
                if name not in after:
                    credDict.pop(name, None)
            for name, value in after.items():  # recorded order: new keys land where they did
                credDict[name] = list(value) if isinstance(value, list) else value
            return allowed
        allowed = self._decide(methodQuery, credDict, defaultProperties)
        if key is not None:
            after = {k: (list(v) if isinstance(v, list) else v) for k, v in credDict.items() if k in _AUTH_KEYS}
            with self._cache_lock:
                if len(self._cache) >= CACHE_SIZE:
                    self._cache.clear()
                self._cache[key] = (allowed, after)
        return allowed

    def _decide(self, methodQuery: str, credDict: dict, defaultProperties: Any) -> bool:  # noqa: N803
        required = self.getValidPropertiesForMethod(methodQuery, defaultProperties)
        properties, valid_groups = self._split_groups(required)
        lowered = [p.lower() for p in properties] or ["any"]
        allow_all = "any" in lowered or "all" in lowered
        credDict[KW_PROPERTIES] = []
        if not credDict.get(KW_DN):
            return allow_all and not valid_groups
        if self._is_trusted_forwarder(credDict):
            forwarded = credDict.pop(KW_EXTRA_CREDENTIALS)
            credDict[KW_DN], credDict[KW_GROUP] = forwarded[0], forwarded[1]
            return self._decide(methodQuery, credDict, defaultProperties)
        extra = credDict.get(KW_EXTRA_CREDENTIALS)
        if extra is not None and not isinstance(extra, str):
            log.info("Forwarded credentials from a host that is not trusted: %s", credDict[KW_DN])
            return False
        if extra == HOSTS_GROUP:
            credDict[KW_GROUP] = HOSTS_GROUP
        elif extra and KW_GROUP not in credDict:
            credDict[KW_GROUP] = extra
        if KW_GROUP not in credDict:
            try:
                credDict[KW_GROUP] = self.registry.default_group_for_dn(credDict[KW_DN])
            except AuthError:
                credDict[KW_USERNAME], credDict[KW_GROUP] = ANONYMOUS
        if credDict[KW_GROUP] == HOSTS_GROUP:
            if not self._resolve_host(credDict):
                log.info("Unknown host DN %s", credDict[KW_DN])
                if not allow_all:
                    return False
                credDict[KW_USERNAME], credDict[KW_GROUP] = ANONYMOUS
        else:
            known = self._resolve_user(credDict)
            if not known or self._is_suspended(credDict):
                log.info("User %s is unknown in group %s or suspended", credDict[KW_DN], credDict[KW_GROUP])
                if not allow_all:
                    return False
                credDict[KW_USERNAME], credDict[KW_GROUP] = ANONYMOUS
        allow_group = not valid_groups or credDict[KW_GROUP] in valid_groups
        if allow_all and allow_group:
            return True
        if "authenticated" in lowered and allow_group:
            return True
        if not allow_group:
            return False
        return self.matchProperties(credDict, properties)

    @staticmethod
    def matchProperties(credDict: dict, validProps: list[str], caseSensitive: bool = False) -> bool:  # noqa: N802,N803
        """Keep only the caller's properties that are in ``validProps``; True if any remain."""
        if not validProps:
            return True
        wanted = set(validProps) if caseSensitive else {p.lower() for p in validProps}
        have = credDict.get(KW_PROPERTIES, [])
        matched = [p for p in have if (p if caseSensitive else p.lower()) in wanted]
        credDict[KW_PROPERTIES] = matched
        return bool(matched)
