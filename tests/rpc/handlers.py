"""Test handlers for the service-framework tests (loaded directly or through HandlerPath)."""

from __future__ import annotations

import socket
import threading

from seproxy.returnvalues import S_ERROR, S_OK
from seproxy.rpc.server.handler import RequestHandler

#: Set by gate tests: ``block`` waits on it (released by the test).
GATE = threading.Event()
ENTERED = threading.Semaphore(0)


class RPCTestHandler(RequestHandler):
    init_calls: list = []
    MSG_DEFINITIONS = {"Note": {"text": str, "count": int}}

    @classmethod
    def initializeHandler(cls, serviceInfo):
        cls.init_calls = cls.init_calls + [serviceInfo["serviceName"]]
        return S_OK()

    def initialize(self):
        self.initialized = True

    types_add = [int, int]

    def export_add(self, a, b):
        return S_OK(a + b)

    types_anyOf = [(str, list), None]

    def export_anyOf(self, first, second):
        return S_OK([first, second])

    types_boom = []

    def export_boom(self):
        raise RuntimeError("kaboom")

    types_notDict = []

    def export_notDict(self):
        return "not a dict"

    types_withStack = []

    def export_withStack(self):
        result = S_ERROR("failed here")
        result["ExecInfo"] = object()
        return result

    def export_noTypes(self):
        return S_OK()

    types_badTypes = [[None]]

    def export_badTypes(self, x):
        return S_OK(x)

    types_option = [str]

    def export_option(self, name):
        return S_OK(self.srv_getCSOption(name, "absent"))

    types_info = []

    def export_info(self):
        return S_OK({
            "setup": self.srv_getClientSetup(), "vo": self.srv_getClientVO(),
            "version": self.srv_getClientVersion(), "action": list(self.srv_getActionTuple()),
            "url": self.srv_getURL(), "name": self.srv_getServiceName(),
            "formatted": self.srv_getFormattedRemoteCredentials(),
            "trid": self.srv_getTransportID(), "initialized": self.initialized,
        })

    types_block = []
    auth_block = ["all"]

    def export_block(self):
        ENTERED.release()
        GATE.wait(30)
        return S_OK("released")

    types_waitOn = [int]
    auth_waitOn = ["all"]

    def export_waitOn(self, port):
        """Connect to the test's gate on 127.0.0.1:port and return when it closes."""
        with socket.create_connection(("127.0.0.1", port), timeout=60) as sock:
            sock.recv(1)
        return S_OK("released")

    types_unencodable = []

    def export_unencodable(self):
        return S_OK({1, 2})

    auth_admin = ["CSAdministrator"]
    types_admin = []

    def export_admin(self):
        return S_OK(self.srv_getRemoteCredentials().get("properties"))

    types_mutateCredentials = []

    def export_mutateCredentials(self):
        """Change the caller's credential dict in place; return what it was before."""
        credentials = self.srv_getRemoteCredentials()
        seen = {k: list(v) if isinstance(v, list) else v for k, v in credentials.items() if k != "x509Chain"}
        credentials["username"] = "changed"
        credentials.setdefault("properties", []).append("Injected")
        return S_OK(seen)

    auth_msg_Note = ["all"]

    def conn_new(self, trid, identity, params):
        return S_OK()

    def msg_Note(self, msg):
        type(self).notes.append((msg.text, msg.count))
        reply = self.srv_msgCreate("Note")["Value"]
        reply.text = msg.text.upper()
        reply.count = msg.count + 1
        return self.srv_msgReply(reply)

    notes: list = []


def initializeRPCTestHandler(serviceInfo):
    RPCTestHandler.module_init = serviceInfo["serviceName"]
    return S_OK()
