"""``Registry``: identity look-ups in ``/Registry`` (PROTOCOL.md 8.5 and 9.3).

Look-ups return ``None`` or an empty list when nothing matches; only
``default_group_for_dn`` raises (``AuthError`` with DIRAC's messages), because
DIRAC treats a DN without a usable group as an error.

The DN -> user/host maps are rebuilt lazily whenever the ``Config`` changes
(``Config.generation``), so a ``reload()`` is seen at the next look-up.
"""

from __future__ import annotations

import threading
from typing import Any

from seproxy.config.cfg import Config
from seproxy.errors import AuthError

ROOT = "/Registry"


class Registry:
    """Read-only view of ``/Registry`` of one ``Config``."""

    def __init__(self, cfg: Config) -> None:
        self.cfg = cfg
        self._lock = threading.Lock()
        self._generation = -1
        self._user_by_dn: dict[str, str] = {}
        self._host_by_dn: dict[str, str] = {}

    def _list(self, path: str) -> list[str]:
        return self.cfg.getValue(path, [])

    def _maps(self) -> tuple[dict[str, str], dict[str, str]]:
        with self._lock:
            if self._generation != self.cfg.generation:
                users: dict[str, str] = {}
                for user in self.cfg.getSections(f"{ROOT}/Users"):
                    for dn in self._list(f"{ROOT}/Users/{user}/DN"):
                        users.setdefault(dn, user)
                hosts: dict[str, str] = {}
                for host in self.cfg.getSections(f"{ROOT}/Hosts"):
                    for dn in self._list(f"{ROOT}/Hosts/{host}/DN"):
                        hosts.setdefault(dn, host)
                self._user_by_dn, self._host_by_dn = users, hosts
                self._generation = self.cfg.generation
            return self._user_by_dn, self._host_by_dn

    # -- users and groups ------------------------------------------------------------------
    def username_for_dn(self, dn: str) -> str | None:
        return self._maps()[0].get(dn.strip())

    def dns_for_user(self, user: str) -> list[str]:
        return self._list(f"{ROOT}/Users/{user}/DN")

    def users(self) -> list[str]:
        return self.cfg.getSections(f"{ROOT}/Users")

    def groups(self) -> list[str]:
        return self.cfg.getSections(f"{ROOT}/Groups")

    def users_in_group(self, group: str) -> list[str]:
        return self._list(f"{ROOT}/Groups/{group}/Users")

    def groups_for_user(self, user: str) -> list[str]:
        """All groups listing ``user`` among their ``Users``, sorted."""
        return sorted(g for g in self.groups() if user in self.users_in_group(g))

    def default_group_for_user(self, user: str) -> str:
        groups = self.groups_for_user(user)
        if not groups:
            raise AuthError(f"User {user} has no groups")
        preferred = self._list(f"{ROOT}/Users/{user}/DefaultGroup")
        preferred += self.cfg.getValue(f"{ROOT}/DefaultGroup", ["user"])
        for group in preferred:
            if group in groups:
                return group
        return groups[0]

    def default_group_for_dn(self, dn: str) -> str:
        """The user's preferred group (user list, then global list), else its first group."""
        user = self.username_for_dn(dn)
        if user is None:
            raise AuthError(f"No username found for dn {dn.strip()}")
        return self.default_group_for_user(user)

    def group_properties(self, group: str) -> list[str]:
        return self._list(f"{ROOT}/Groups/{group}/Properties")

    def group_option(self, group: str, option: str, default: Any = None) -> Any:
        return self.cfg.getValue(f"{ROOT}/Groups/{group}/{option}", default)

    def is_suspended(self, user: str, vo: str) -> bool:
        """True if ``vo`` is in ``/Registry/Users/<user>/Suspended``."""
        return vo in self._list(f"{ROOT}/Users/{user}/Suspended")

    # -- hosts -----------------------------------------------------------------------------
    def hostname_for_dn(self, dn: str) -> str | None:
        return self._maps()[1].get(dn.strip())

    def host_properties(self, host: str) -> list[str]:
        return self._list(f"{ROOT}/Hosts/{host}/Properties")

    # -- VOs -------------------------------------------------------------------------------
    def vo_for_group(self, group: str) -> str:
        """``Groups/<g>/VO``, else ``/DIRAC/VirtualOrganization``, else ``""``."""
        return (self.cfg.getOption(f"{ROOT}/Groups/{group}/VO")
                or self.cfg.getOption("/DIRAC/VirtualOrganization") or "")

    def groups_for_vo(self, vo: str) -> list[str]:
        """All groups in a single-VO installation, else the groups whose VO is ``vo``."""
        if self.cfg.getOption("/DIRAC/VirtualOrganization"):
            return self.groups()
        return [g for g in self.groups() if self.cfg.getOption(f"{ROOT}/Groups/{g}/VO") == vo]

    def banned_ips(self) -> list[str]:
        return self._list(f"{ROOT}/BannedIPs")
