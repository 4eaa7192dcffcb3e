"""Message connections (PROTOCOL.md 12): Connection/new, msg_* callbacks, server push."""

from __future__ import annotations

import queue
import socket

import pytest

from seproxy.rpc.client.msgclient import MessageClient
from seproxy.rpc.wire import codec
from tests.conftest import wait_for
from tests.rpc.handlers import RPCTestHandler
from tests.rpc.server.test_service import decoded_frames, recv_until_close


@pytest.fixture
def svc(seproxy_service):
    return seproxy_service(RPCTestHandler, name="Test/Messages", protocol="dips",
                           options={"MaxMessagingConnections": 2})


def client_for(svc, **kwargs) -> MessageClient:
    return MessageClient(svc.url, config=svc.cfg, proxyLocation=svc.default_proxy,
                         definitions=RPCTestHandler.MSG_DEFINITIONS, **kwargs)


@pytest.mark.parametrize("encoding", ["json", "dencode"])
def test_message_round_trip_with_ack_and_push(svc, encoding):
    client = client_for(svc, encoding=encoding)
    pushed: queue.Queue = queue.Queue()
    client.subscribeToMessage("Note", pushed.put)
    assert client.connect(flavour="test")["OK"]
    msg = client.createMessage("Note")["Value"]
    msg.text, msg.count = "hello", 41
    msg.setWaitForAck(True)
    assert client.sendMessage(msg)["OK"]
    reply = pushed.get(timeout=20)  # the handler answers with srv_msgReply
    assert (reply.text, reply.count) == ("HELLO", 42)
    assert ("hello", 41) in svc.service.handler_class.notes
    client.disconnect()


def test_wrong_types_are_refused_before_sending(svc):
    client = client_for(svc)
    msg = client.createMessage("Note")["Value"]
    with pytest.raises(TypeError):
        msg.count = "not an int"
    assert client.createMessage("Nope")["OK"] is False


def test_connection_argument_checks(svc):
    def exchange(args: bytes) -> dict:
        proposal = codec.encode({"OK": True, "Value": [["Test/Messages", "None", "dirac"], ["Connection", "new"],
                                                       "", "9.1.22"]}, "json")
        with socket.create_connection(("127.0.0.1", svc.port), timeout=10) as raw:
            import ssl
            ctx = ssl.create_default_context(cafile=None)
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
            ctx.load_cert_chain(svc.default_proxy)
            with ctx.wrap_socket(raw, server_hostname="localhost") as sock:
                sock.sendall(b"%d:%s" % (len(proposal), proposal))
                sock.sendall(b"%d:%s" % (len(args), args))
                return decoded_frames(recv_until_close(sock))[1]

    assert exchange(b'{"OK": true, "Value": ["only one"]}')["Message"] == "Expected 2 arguments"
    assert exchange(b'{"OK": true, "Value": [1, {}]}')["Message"] == "Invalid type for argument 0"


def test_max_messaging_connections(svc):
    clients = [client_for(svc) for _ in range(3)]
    assert clients[0].connect()["OK"] and clients[1].connect()["OK"]
    refused = clients[2].connect()
    assert refused["OK"] is False
    clients[0].disconnect()
    broker = svc.service.context.msg_broker
    assert wait_for(lambda: len(broker._conns) <= 1)  # the server notices the closed connection (conn_drop)
    assert client_for(svc).connect()["OK"]
    for client in clients:
        client.disconnect()
