"""Run seproxy services in a child process for the tests: ``python -m tests.rpc.service_process
<cfg file> <port file> System/Service [...]``; writes the ports (one per line) when listening."""

from __future__ import annotations

import sys
from pathlib import Path

from seproxy.cli import wiring
from seproxy.config import Config


def main(argv: list[str]) -> int:
    cfg_path, port_file, *names = argv
    reactor = wiring.reactor(Config.load([cfg_path], use_default=False), names).start()
    tmp = Path(port_file + ".tmp")
    tmp.write_text("".join(f"{s.port}\n" for s in reactor.services))
    tmp.rename(port_file)
    reactor.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
