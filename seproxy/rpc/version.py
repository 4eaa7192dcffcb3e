"""The DIRAC releases whose DISET behaviour seproxy reproduces.

``DIRAC_VERSION`` is sent as ``clientVersion`` in proposals (PROTOCOL.md 4.3).

A service answers like one of two releases, chosen by the ``DIRACVersion`` setting
(:func:`service_compat`). What a client can tell apart in the framework's own answers:

+--------------------------------------+----------------------------+------------------------------+
|                                      | ``8.0`` (DIRAC 8.0.86)     | ``9.1`` (DIRAC 9.1.22)       |
+======================================+============================+==============================+
| ``ping``                             | no ``URL``; version 8.0.86 | ``URL`` after ``name``;      |
|                                      |                            | version 9.1.22               |
| credential dict (``whoami``, and what| no ``VO``                  | ``VO`` after ``group``       |
| handlers get)                        |                            |                              |
| answer encoding (service without an  | DEncode, JSON only if      | JSON, DEncode only if        |
| ``Encoding`` option)                 | ``DIRAC_USE_JSON_ENCODE``  | ``DIRAC_USE_JSON_ENCODE`` is |
|                                      | is yes/true                | set to something else        |
+--------------------------------------+----------------------------+------------------------------+

Both read either encoding whatever they answer in.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from seproxy.config import schema

if TYPE_CHECKING:
    from seproxy.config import Config

DIRAC_VERSION = "9.1.22"

#: The option (service section, else ``/DIRAC``) and its values.
OPTION = "DIRACVersion"


@dataclass(frozen=True)
class DiracCompat:
    """How a service's framework answers look (module doc)."""

    version: str
    #: ``version`` in ``ping``
    release: str
    ping_has_url: bool
    credentials_have_vo: bool
    #: the answer encoding while ``DIRAC_USE_JSON_ENCODE`` is unset
    unset_encoding: str

    def credentials(self, credentials: dict[str, Any]) -> dict[str, Any]:
        """The peer's credential dict as this release's server shows it (in place)."""
        if not self.credentials_have_vo:
            credentials.pop("VO", None)
        return credentials


DIRAC_8_0 = DiracCompat("8.0", "8.0.86", ping_has_url=False, credentials_have_vo=False,
                        unset_encoding="dencode")
DIRAC_9_1 = DiracCompat("9.1", DIRAC_VERSION, ping_has_url=True, credentials_have_vo=True,
                        unset_encoding="json")
COMPATS = {compat.version: compat for compat in (DIRAC_8_0, DIRAC_9_1)}


def uses_setup_layout(cfg: Config) -> bool:
    """True when the configuration is DIRAC 8.0's kind: a ``/DIRAC/Setup`` in use."""
    return bool(schema.value(cfg, "/DIRAC/Setup")) and not schema.value(cfg, "/DIRAC/NoSetup")


def service_compat(cfg: Config, section: str) -> DiracCompat:
    """The release a service with options in ``section`` answers like.

    ``DIRACVersion`` in ``section``, else in ``/DIRAC``; unset: 8.0 for a configuration in
    the 8.0 layout (a ``/DIRAC/Setup``), else 9.1. Raises ``ConfigError`` for another value.
    """
    chosen = schema.SERVICE.value(cfg, OPTION, section) or schema.value(cfg, f"/DIRAC/{OPTION}")
    if chosen:
        return COMPATS[chosen]
    return DIRAC_8_0 if uses_setup_layout(cfg) else DIRAC_9_1
