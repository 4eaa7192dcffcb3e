"""The action proposal: building it (client) and checking it (server), sans-IO.

The proposal is the first frame of every DISET connection (PROTOCOL.md 4.3)::

    S_OK([
      [serviceName, setup, vo],      # 0: where to
      [actionType, actionName],      # 1: what to do
      extraCredentials,              # 2: "" | "hosts" | [DN, group] | other str
      clientVersion,                 # 3: optional (a 3-element proposal means None)
    ])

``check_proposal`` takes the *decoded envelope* and returns a :class:`Proposal` or
raises :class:`ProposalRejected` carrying DIRAC's exact message, in DIRAC's check
order: envelope / shape -> service name -> action type. Authorisation (the fourth
check) needs the Registry and is done by the service with :mod:`seproxy.rpc.server.auth`.

Unlike DIRAC, a value of the wrong *shape* (not a list, inner items not lists of
strings...) is answered with ``Invalid action proposal`` instead of indexing into
whatever arrived (DIRAC answers ``g is not up in this server`` for ``"garbage"``
and hangs on ``[1, 2]``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from seproxy.errors import RemoteProtocolError
from seproxy.returnvalues import unwrap

#: Action types a DIRAC server accepts (``Message`` only inside connections, 5.5).
DIRAC_ACTION_TYPES = ("RPC", "FileTransfer", "Message", "Connection")
#: The seproxy connection-reuse extension (docs/PROTOCOL-EXTENSIONS.md): unknown to DIRAC.
SESSION_ACTION = "Session"
#: Maximum proposal frame size read by a server. DIRAC asks for 1024 bytes but its reader
#: only enforces the limit after the first 16384-byte read (PROTOCOL.md 2.3), so real
#: clients get away with up to 16 KiB (long forwarded DNs); we accept the same, no more.
PROPOSAL_MAX_SIZE = 16384

INVALID_PROPOSAL = "Invalid action proposal"


class ProposalRejected(RemoteProtocolError):
    """The proposal fails a check; ``str(exc)`` is the exact DIRAC message."""


@dataclass(frozen=True)
class Proposal:
    service_name: str
    setup: Any
    vo: Any  # None when the client sent only [serviceName, setup]
    action_type: str
    action_name: str
    extra_credentials: Any = ""
    client_version: Any = None
    raw: tuple = field(default=(), compare=False, repr=False)

    @property
    def action_tuple(self) -> tuple[str, str]:
        return (self.action_type, self.action_name)


def build_proposal(
    service_name: str,
    action_type: str,
    action_name: str,
    *,
    setup: str = "None",
    vo: str = "unknown",
    extra_credentials: Any = "",
    client_version: str | None = None,
) -> dict:
    """The proposal envelope a client sends (lists, not tuples, as DIRAC sends them)."""
    items: list[Any] = [[service_name, setup, vo], [action_type, action_name], extra_credentials]
    if client_version is not None:
        items.append(client_version)
    if isinstance(extra_credentials, tuple):
        items[2] = list(extra_credentials)
    return {"OK": True, "Value": items}


def _is_text(value: Any) -> bool:
    return isinstance(value, str)


def check_proposal(
    envelope: Any,
    valid_names: list[str] | tuple[str, ...] | set[str],
    action_types: tuple[str, ...] = DIRAC_ACTION_TYPES,
) -> Proposal:
    """Validate a decoded proposal envelope; raise ProposalRejected with DIRAC's message."""
    request = unwrap(envelope)
    if not request.ok:
        raise ProposalRejected(INVALID_PROPOSAL)
    value = request.value
    if not isinstance(value, (list, tuple)) or len(value) < 3:
        raise ProposalRejected(INVALID_PROPOSAL)
    where, what, extra = value[0], value[1], value[2]
    version = value[3] if len(value) > 3 else None
    if not isinstance(where, (list, tuple)) or len(where) < 2 or not _is_text(where[0]):
        raise ProposalRejected(INVALID_PROPOSAL)
    if not isinstance(what, (list, tuple)) or len(what) < 2:
        raise ProposalRejected(INVALID_PROPOSAL)
    if not _is_text(what[0]) or not _is_text(what[1]) or not what[1]:
        raise ProposalRejected(INVALID_PROPOSAL)
    if not isinstance(extra, (str, list, tuple)):
        raise ProposalRejected(INVALID_PROPOSAL)
    if isinstance(extra, (list, tuple)) and (len(extra) != 2 or not all(map(_is_text, extra))):
        raise ProposalRejected(INVALID_PROPOSAL)
    service_name = where[0]
    if service_name not in valid_names:
        raise ProposalRejected(f"{service_name} is not up in this server")
    action_type = what[0]
    if action_type not in action_types:
        raise ProposalRejected(f"{action_type} is not a known action type")
    raw = tuple(tuple(x) if isinstance(x, list) else x for x in value)
    return Proposal(
        service_name=service_name,
        setup=where[1],
        vo=where[2] if len(where) > 2 else None,
        action_type=action_type,
        action_name=what[1],
        extra_credentials=tuple(extra) if isinstance(extra, list) else extra,
        client_version=version,
        raw=raw,
    )


def auth_method_path(action_type: str, action_name: str) -> str:
    """The AuthManager method path for an action (PROTOCOL.md 7.7)."""
    if action_type == "RPC":
        return action_name
    if action_type == "Connection":
        return "Connection/Default"
    return f"{action_type}/{action_name}"
