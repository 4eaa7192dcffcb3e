"""``RequestHandler``: the base class of every service handler (DIRAC API).

What a handler author writes (PROTOCOL.md 7.3-7.8)::

    class MyHandler(RequestHandler):
        @classmethod
        def initializeHandler(cls, serviceInfo): return S_OK()   # once per process
        def initialize(self): ...                                # once per request
        types_add = [int, int]                                   # required for export_add
        auth_add = ["authenticated"]                             # default rule
        def export_add(self, a, b): return S_OK(a + b)

What this module owns: the RPC dispatch with DIRAC's checks and exact messages
(``_rh_call_rpc``), the final S_OK/S_ERROR check and ``CallStack``/``ExecInfo``
stripping (``finalize_result``, the one conversion point of the RPC boundary), the
``srv_*`` API, the base ``transfer_*`` refusals and the built-ins ``ping``, ``whoami``,
``echo``, ``refreshConfiguration``. The service (``seproxy.rpc.server.service``) owns I/O.
"""

from __future__ import annotations

import contextvars
import datetime
import os
import sys
import time
from typing import Any

from seproxy.config import schema
from seproxy.errors import SeproxyError
from seproxy.returnvalues import S_ERROR, S_OK, isReturnStructure
from seproxy.rpc.server.logger import DiracLogger
from seproxy.rpc.version import DIRAC_9_1

#: The handler instance serving the current request (built-ins that DIRAC declares static).
_CURRENT: contextvars.ContextVar[RequestHandler | None] = contextvars.ContextVar("seproxy_handler", default=None)

_LOCAL_KEYS = ("CallStack", "ExecInfo")


def _boottime_clock() -> int | None:
    try:
        clock = time.CLOCK_BOOTTIME
        time.clock_gettime(clock)
        return clock
    except (AttributeError, OSError):
        return None


_BOOTTIME = _boottime_clock()


def finalize_result(result: Any, action_type: str, action_name: str) -> dict:
    """The dict sent as an action's final answer: checked, without local diagnostics."""
    if not isReturnStructure(result):
        result = S_ERROR(f"Method {action_name} for action {action_type} does not return a S_OK/S_ERROR!")
    if "CallStack" in result or "ExecInfo" in result:  # _LOCAL_KEYS
        result = {k: v for k, v in result.items() if k not in _LOCAL_KEYS}
    return result


if sys.version_info < (3, 12):
    _utcnow = datetime.datetime.utcnow  # naive UTC now; 8x cheaper than now(utc).replace()
else:  # utcnow() is deprecated from 3.12
    def _utcnow() -> datetime.datetime:
        """Naive UTC now (what DIRAC's ``dateTime()`` gives)."""
        return datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None)


class _LoadText:
    """``os.getloadavg()`` as DIRAC's ping shows it; the text is made again only when
    the kernel's averages changed (every 5 s), not for every ping."""

    __slots__ = ("cache",)

    def __init__(self) -> None:
        self.cache: tuple[tuple, str] = ((), "")  # one tuple: threads see a consistent pair

    def __call__(self) -> str:
        load = os.getloadavg()
        cached = self.cache
        if load != cached[0]:
            cached = self.cache = (load, " ".join(str(x) for x in load))
        return cached[1]


_load_text = _LoadText()


def _host_uptime() -> int:
    """Seconds since boot: CLOCK_BOOTTIME is the clock ``/proc/uptime`` shows, read
    without opening a file (that open was half the cost of a ``ping``)."""
    if _BOOTTIME is not None:
        return int(time.clock_gettime(_BOOTTIME))
    try:
        with open("/proc/uptime", encoding="ascii") as fh:
            return int(float(fh.read().split()[0]))
    except (OSError, ValueError, IndexError):
        return 0


class RequestHandler:
    """Base class of DISET handlers; one instance per request."""

    log = DiracLogger("seproxy.handler")
    #: Set per service by ``_rh_initialize_class`` (see seproxy.rpc.server.service.ServiceContext).
    _rh_context: Any = None

    def __init__(self, handlerInitDict: dict, trid: str) -> None:  # noqa: N803 (DIRAC name)
        self.serviceInfoDict = handlerInitDict
        self._rh_trid = trid

    def initialize(self) -> None:
        """Per-request initialisation hook (return value ignored)."""

    # -- class set-up (service) ------------------------------------------------------------
    @classmethod
    def _rh_initialize_class(cls, context: Any) -> None:
        cls._rh_context = context
        cls.log = DiracLogger(f"seproxy.service.{context.service_info['serviceName'].replace('/', '.')}")

    @classmethod
    def _rh_initializers(cls, module: Any) -> list[Any]:
        """``initializeHandler`` of ancestors (outermost first), then the module-level
        ``initialize<ClassName>`` function (PROTOCOL.md 7.3)."""
        funcs = []
        for klass in reversed(cls.__mro__):
            if klass is RequestHandler or "initializeHandler" not in vars(klass):
                continue
            funcs.append(vars(klass)["initializeHandler"].__get__(None, cls))
        module_init = getattr(module, f"initialize{cls.__name__}", None) if module else None
        if module_init is None and cls.__bases__:
            base = cls.__bases__[0]  # the per-service subclass keeps the author's class name
            if base.__name__ == cls.__name__ and module:
                module_init = getattr(module, f"initialize{base.__name__}", None)
        if callable(module_init):
            funcs.append(module_init)
        return funcs

    @classmethod
    def _rh_default_auth(cls, action_type: str, action_name: str) -> Any:
        """The hard-coded authorisation default of an action (``auth_*`` attributes)."""
        if action_type == "RPC":
            if hasattr(cls, f"export_{action_name}"):
                return getattr(cls, f"auth_{action_name}", None)
            return None
        if action_type == "FileTransfer":
            direction = action_name[:1].lower() + action_name[1:]
            return getattr(cls, f"auth_transfer_{direction}", None)
        if action_type == "Message":
            return getattr(cls, f"auth_msg_{action_name}", None)
        if action_type == "Connection":
            union: list[str] = []
            for attr in dir(cls):
                if attr.startswith("auth_msg_"):
                    for prop in getattr(cls, attr) or []:
                        if prop not in union:
                            union.append(prop)
            return union
        return None

    # -- RPC dispatch ----------------------------------------------------------------------
    def _rh_check_types(self, method: str, args: list) -> dict | None:
        """None if ``args`` fit ``types_<method>``, else DIRAC's S_ERROR."""
        try:
            expected = getattr(self, f"types_{method}")
        except AttributeError:
            self.log.error("No types_ declaration for method", f"export_{method}")
            return S_ERROR(
                f"Handler error for server {self.serviceInfoDict['serviceName']} while processing method {method}"
            )
        try:
            for index in range(min(len(expected), len(args))):
                wanted = expected[index]
                if wanted is None:
                    continue
                check = tuple(wanted) if isinstance(wanted, (list, tuple)) else wanted
                if not isinstance(args[index], check):
                    return S_ERROR(
                        f"Type mismatch in parameter {index} (starting with param 0) "
                        f"Received {type(args[index])}, expected {wanted}"
                    )
            if len(args) < len(expected):
                return S_ERROR(f"Function {method} expects at least {len(expected)} arguments")
        except Exception as exc:  # noqa: BLE001 - a malformed types_ list is the author's bug
            return S_ERROR(f"Error in parameter check: {exc}")
        return None

    def _rh_call_rpc(self, method: str, args: list) -> Any:
        """Run ``export_<method>(*args)`` with DIRAC's checks; returns the raw result."""
        func = getattr(self, f"export_{method}", None)
        if func is None or not callable(func):
            return S_ERROR(f"Unknown method {method}")
        error = self._rh_check_types(method, args)
        if error is not None:
            return error
        context = self._rh_context
        semaphore = context.limits.semaphore("RPC", method) if context is not None else None
        token = _CURRENT.set(self)
        if semaphore is not None:
            semaphore.acquire()
        try:
            return func(*args)
        except Exception as exc:  # the RPC boundary: exceptions become S_ERROR
            self.log.exception("Uncaught exception when serving RPC", f"Function {method}")
            return S_ERROR(f"Server error while serving {method}: {exc}")
        finally:
            if semaphore is not None:
                semaphore.release()
            _CURRENT.reset(token)

    # -- srv_* API -------------------------------------------------------------------------
    def _rh_entry(self) -> Any:
        context = self._rh_context
        return context.connections.get(self._rh_trid) if context is not None else None

    def srv_getRemoteCredentials(self) -> dict:
        entry = self._rh_entry()
        return entry.credentials if entry is not None else {}

    getRemoteCredentials = srv_getRemoteCredentials  # noqa: N815

    def srv_getRemoteAddress(self) -> tuple:
        entry = self._rh_entry()
        if entry is not None:
            return tuple(entry.transport.remote_address)
        return tuple(self.serviceInfoDict.get("clientAddress") or ())

    getRemoteAddress = srv_getRemoteAddress  # noqa: N815

    def srv_getFormattedRemoteCredentials(self) -> str:
        entry = self._rh_entry()
        if entry is None:
            return "unknown"
        host, port = tuple(entry.transport.remote_address)[:2]
        cred = entry.credentials
        peer = f"[{cred.get('group')}:{cred['username']}]" if "username" in cred else ""
        if ":" in str(host):
            return f"([{host}]:{port}){peer}"
        return f"({host}:{port}){peer}"

    @classmethod
    def srv_getCSOption(cls, optionName: str, defaultValue: Any = False) -> Any:  # noqa: N803
        context = cls._rh_context
        if context is None:
            return defaultValue
        cfg = context.cfg
        if optionName.startswith("/"):
            return cfg.getValue(optionName, defaultValue)
        sections = context.service_info.get("csPaths", [])
        declared = schema.service_schema(context.service_info.get("serviceName", ""))
        if declared.declares(optionName):  # typed, and the schema's default when absent
            found = next((s for s in sections if cfg.isOption(f"{s}/{optionName}")), None)
            return declared.value(cfg, optionName, found or context.service_info.get("serviceSectionPath"))
        for section in sections:
            path = f"{section}/{optionName}"
            if cfg.isOption(path):
                return cfg.getValue(path, defaultValue)
        return defaultValue

    getCSOption = srv_getCSOption  # noqa: N815

    def srv_getTransportID(self) -> str:
        return self._rh_trid

    def srv_getClientSetup(self) -> Any:
        return self.serviceInfoDict.get("clientSetup")

    def srv_getClientVO(self) -> Any:
        return self.serviceInfoDict.get("clientVO")

    def srv_getClientVersion(self) -> Any:
        return self.serviceInfoDict.get("clientVersion")

    def srv_getActionTuple(self) -> tuple:
        return tuple(self.serviceInfoDict.get("actionTuple") or ("Unknown yet",))

    @classmethod
    def srv_getURL(cls) -> str:
        return cls._rh_context.service_info["URL"] if cls._rh_context else ""

    @classmethod
    def srv_getServiceName(cls) -> str:
        return cls._rh_context.service_info["serviceName"] if cls._rh_context else ""

    @classmethod
    def srv_getMonitor(cls) -> Any:
        return getattr(cls._rh_context, "monitor", None)

    # message helpers (PROTOCOL.md 12); the broker lives in seproxy.rpc.messages
    def _rh_broker(self) -> Any:
        broker = getattr(self._rh_context, "msg_broker", None)
        if broker is None:
            raise RuntimeError("this service has no message broker")
        return broker

    def srv_msgCreate(self, msgName: str) -> dict:  # noqa: N803
        return self._rh_broker().create_message(msgName)

    def srv_msgReply(self, msgObj: Any) -> dict:  # noqa: N803
        return self._rh_broker().send_message(self._rh_trid, msgObj)

    def srv_msgSend(self, trid: str, msgObj: Any) -> dict:  # noqa: N803
        return self._rh_broker().send_message(trid, msgObj)

    def srv_disconnectClient(self, trid: str) -> dict:
        return self._rh_broker().disconnect(trid)

    def srv_disconnect(self, trid: str | None = None) -> dict:
        return self._rh_broker().disconnect(trid or self._rh_trid)

    # -- base transfer refusals (sent after "Accepted", PROTOCOL.md 6.2) -------------------
    def transfer_fromClient(self, fileId: Any, token: Any, fileSize: Any, fileHelper: object) -> dict:  # noqa: N803
        return S_ERROR("This server does no allow receiving files")

    def transfer_toClient(self, fileId: Any, token: Any, fileHelper: object) -> dict:  # noqa: N803
        return S_ERROR("This server does no allow sending files")

    def transfer_bulkFromClient(self, bulkId: Any, token: Any, bulkSize: Any, fileHelper: object) -> dict:  # noqa: N803
        return S_ERROR("This server does no allow bulk receiving")

    def transfer_bulkToClient(self, bulkId: Any, token: Any, fileHelper: object) -> dict:  # noqa: N803
        return S_ERROR("This server does no allow bulk sending")

    def transfer_listBulk(self, bulkId: Any, token: Any, fileHelper: object) -> dict:  # noqa: N803
        return S_ERROR("This server does no allow bulk listing")

    # -- built-in methods (PROTOCOL.md 7.8) ------------------------------------------------
    types_ping: list = []
    auth_ping = ["all"]

    def export_ping(self) -> dict:
        # DIRAC's keys, in DIRAC's order; only the clocks are read per call
        info = self.serviceInfoDict
        compat = getattr(self._rh_context, "compat", DIRAC_9_1)  # DIRACVersion (rpc.version)
        now = _utcnow()
        started = info.get("serviceStartTime") or now
        times = os.times()
        value = {
            "version": compat.release,
            "time": now,
            "host uptime": _host_uptime(),
            "service start time": started,
            "service uptime": int((now - started).total_seconds()),
            "load": _load_text(),
            "name": info["serviceName"],
        }
        if compat.ping_has_url:
            value["URL"] = info.get("URL", "")
        value["cpu times"] = {
            "user time": times[0],
            "system time": times[1],
            "children user time": times[2],
            "children system time": times[3],
            "elapsed real time": times[4],
        }
        return {"OK": True, "Value": value}

    types_whoami: list = []
    auth_whoami = ["all"]

    def export_whoami(self) -> dict:
        return S_OK({k: v for k, v in self.srv_getRemoteCredentials().items() if k != "x509Chain"})

    types_echo = [str]

    @staticmethod
    def export_echo(data: Any) -> dict:
        return S_OK(data)

    types_refreshConfiguration = [bool]
    auth_refreshConfiguration = ["CSAdministrator"]

    @staticmethod
    def export_refreshConfiguration(fromMaster: bool) -> dict:  # noqa: N803
        """Re-read the configuration files of this process and refresh from the
        Configuration Servers when it has any (DIRAC's ``Reason(s): ...`` if none answers)."""
        handler = _CURRENT.get()
        if handler is None or handler._rh_context is None:
            return S_ERROR("No configuration to refresh")
        started = time.monotonic()
        try:  # local files re-read; a Configuration Server (if any) asked through the reload hooks
            handler._rh_context.cfg.reload(from_master=bool(fromMaster))
        except SeproxyError as exc:
            return S_ERROR(str(exc))
        handler.log.info("Configuration reloaded", f"in {time.monotonic() - started:.3f}s (fromMaster={fromMaster})")
        return S_OK()
