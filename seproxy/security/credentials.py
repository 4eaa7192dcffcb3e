"""The credential dict a DISET server builds from the peer's chain after the handshake.

PROTOCOL.md 8.1. Keys, in this order (``-``: absent):

=================  ===========================================  ====================
key                proxy client                                 certificate client
=================  ===========================================  ====================
``subject``        proxy subject (slash DN)                     certificate subject
``issuer``         issuer of the leaf                           issuer of the leaf
``secondsLeft``    smallest remaining lifetime in the chain     same
``isProxy``        True                                         False
``isLimitedProxy`` True for a limited proxy                     False
``validDN``        False                                        False
``validGroup``     False                                        False
``DN``             identity (first non-proxy subject)           ``subject``
``identity``       same as ``DN``                               -
``group``          DIRAC group extension, else the identity's   -
                   Registry default group, else absent
``VO``             VO of that group (only with ``group``)       -
``x509Chain``      the ``X509Chain`` (never serialised)         same
=================  ===========================================  ====================

The proposal and authorisation later add ``extraCredentials``, ``properties``,
``username`` (and may change ``group``/``DN``); that is not done here.
"""

from __future__ import annotations

import datetime
from typing import Any, Protocol

from seproxy.errors import AuthError
from seproxy.security.x509 import X509Chain


class RegistryLike(Protocol):
    def default_group_for_dn(self, dn: str) -> str: ...

    def vo_for_group(self, group: str) -> str: ...


def proxy_group(chain: X509Chain, registry: RegistryLike | None) -> str | None:
    """The proxy's DIRAC group, else the identity's default group, else None."""
    group = chain.dirac_group
    if group is None and registry is not None:
        try:
            group = registry.default_group_for_dn(chain.identity_dn)
        except AuthError:
            return None
    return group


def credential_dict(chain: X509Chain, registry: RegistryLike | None, vo_default: str | None = "",
                    *, now: datetime.datetime | None = None) -> dict[str, Any]:
    """Build the post-handshake credential dict of ``chain`` (see module doc).

    ``registry`` is only consulted for a proxy without a group extension and for
    the group's VO; ``vo_default`` (``/DIRAC/VirtualOrganization``) is the VO when
    the Registry gives none. Raises ``AuthError`` for a chain breaking RFC 3820.
    """
    chain.check_structure()
    now = now or datetime.datetime.now(datetime.timezone.utc)
    is_proxy = chain.is_proxy
    creds: dict[str, Any] = {
        "subject": chain.subject_dn,
        "issuer": chain.issuer_dn,
        "secondsLeft": chain.seconds_left_at(now),
        "isProxy": is_proxy,
        "isLimitedProxy": is_proxy and chain.is_limited_proxy,
        "validDN": False,
        "validGroup": False,
        "DN": chain.identity_dn if is_proxy else chain.subject_dn,
    }
    if is_proxy:
        creds["identity"] = creds["DN"]
        group = proxy_group(chain, registry)
        if group is not None:
            creds["group"] = group
            vo = registry.vo_for_group(group) if registry is not None else ""
            creds["VO"] = vo or vo_default or ""
    creds["x509Chain"] = chain
    return creds
