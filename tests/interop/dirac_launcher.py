"""Start a real DIRAC DISET service bound to loopback only; run with a DIRAC venv's python.

Usage (by ``tests/fixtures/dirac.py``)::

    <venv>/bin/python dirac_launcher.py System/Service [System/Service ...]

with ``DIRACSYSCONFIG`` pointing at the generated cfg.  DIRAC binds its
listening sockets (and the 8.0 proxy's HTTP thread) on every interface
(``("", port)``); the launcher wraps ``socket.socket.bind`` first so that a
wildcard address becomes loopback (``127.0.0.1``, or ``::ffff:127.0.0.1`` on
DIRAC's dual-stack IPv6 sockets) and any other non-loopback address is refused.
Every TCP port actually bound is appended as a line to
``$SEPROXY_INTEROP_PORT_FILE`` (if set), so the fixture learns the ports.
Then DIRAC's own ``dirac-service`` entry point runs the services.  The launcher
exits by itself when its parent process (pytest) disappears.
"""

import ipaddress
import os
import socket
import sys
import threading
import time

_LOOPBACK = {socket.AF_INET: "127.0.0.1", socket.AF_INET6: "::ffff:127.0.0.1"}
_WILDCARDS = {"", "0.0.0.0", "::", "::0"}
_original_bind = socket.socket.bind


def _is_loopback(host):
    try:
        address = ipaddress.ip_address(host.split("%")[0])
    except ValueError:
        return host == "localhost"
    mapped = getattr(address, "ipv4_mapped", None)
    return (mapped or address).is_loopback


def _loopback_bind(self, address):
    if self.family in _LOOPBACK and isinstance(address, tuple):
        host = address[0]
        if host in _WILDCARDS:
            address = (_LOOPBACK[self.family],) + tuple(address[1:])
        elif not _is_loopback(host):
            raise PermissionError(f"interop launcher: refusing to bind non-loopback address {host!r}")
    _original_bind(self, address)
    port_file = os.environ.get("SEPROXY_INTEROP_PORT_FILE")
    if port_file and self.family in _LOOPBACK and self.type == socket.SOCK_STREAM:
        with open(port_file, "a") as fh:
            fh.write(f"{self.getsockname()[1]}\n")


def _exit_with_parent(parent_pid):
    """Stop when the process that started us (pytest) is gone: no orphaned DIRAC services."""
    while True:
        time.sleep(1.0)
        if os.getppid() != parent_pid:
            os._exit(0)


def main():
    socket.socket.bind = _loopback_bind
    threading.Thread(target=_exit_with_parent, args=(os.getppid(),), daemon=True).start()
    services = sys.argv[1:]
    if not services:
        sys.exit("usage: dirac_launcher.py System/Service [...]")
    sys.argv = ["dirac-service"] + services
    from DIRAC.Core.scripts.dirac_service import main as dirac_service_main

    return dirac_service_main()


if __name__ == "__main__":
    sys.exit(main())
