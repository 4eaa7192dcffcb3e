"""Logging: level and format options, the access log (one line per call, no secrets),
a log file that follows logrotate."""

from __future__ import annotations

import json

from tests.cli.conftest import DevSite, client_env
from tests.conftest import wait_for
from tests.fixtures import services
from tests.fixtures.services import SEPROXY_SECTION, stop_serve


def read_json_lines(path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_json_access_log_without_secrets_and_logrotate(tmp_path):
    data = tmp_path / "data"
    log_file = tmp_path / "serve.log"
    proc, lines = services.start_serve(data, "--log-file", str(log_file), "--log-format", "json",
                                       env=client_env())
    try:
        url = next(word for line in lines for word in line.split() if word.startswith("dips://"))
        site = DevSite(proc, data, url, lines)
        payload = b"access log\n" * 1000
        (tmp_path / "a.txt").write_bytes(payload)
        assert site.run("put", "/dirac/user/log/a.txt", str(tmp_path / "a.txt"), "SE-LOCAL").returncode == 0
        http_url = site.run("http-url", "/dirac/user/log/a.txt").stdout.strip()
        key = http_url.rsplit("/", 1)[1]
        assert wait_for(lambda: any(e.get("method") == "RPC/prepareFileForHTTP"
                                    for e in read_json_lines(log_file)), timeout=30)
        entries = read_json_lines(log_file)  # every line is one JSON object
        access = [e for e in entries if e["logger"] == "seproxy.access"]
        by_method = {e["method"]: e for e in access}
        upload = by_method["FileTransfer/FromClient"]
        assert upload["bytes"] == len(payload) and upload["result"] == "OK"
        assert upload["DN"].endswith("/CN=testuser") and upload["group"] == "dirac_user"
        assert upload["duration"] >= 0
        assert {"RPC/callProxyMethod", "RPC/uploadFile", "RPC/prepareFileForHTTP"} <= set(by_method)
        text = log_file.read_text()
        assert key not in text and key[:20] not in text
        assert "PRIVATE KEY" not in text and "BEGIN CERTIFICATE" not in text
        # logrotate moves the file away: the next lines go to a new file
        log_file.rename(tmp_path / "serve.log.1")
        assert site.run("ls", "/dirac/user/log", "SE-LOCAL").returncode == 0
        assert wait_for(lambda: log_file.exists() and any(
            e.get("method") == "RPC/callProxyMethod" for e in read_json_lines(log_file)), timeout=30)
    finally:
        stop_serve(proc)


def test_log_level_option_and_client_flags(tmp_path):
    data = tmp_path / "data"
    log_file = tmp_path / "quiet.log"
    proc, lines = services.start_serve(data, "--log-file", str(log_file),
                                       "-o", f"{SEPROXY_SECTION}/LogLevel=WARNING", env=client_env())
    try:
        url = next(word for line in lines for word in line.split() if word.startswith("dips://"))
        site = DevSite(proc, data, url, lines)
        client_log = tmp_path / "client.log"
        done = site.run("mkdir", "/dirac/user/q", "SE-LOCAL", "--log-level", "debug",
                        "--log-file", str(client_log))
        assert done.returncode == 0 and done.stderr == ""
        assert "DEBUG seproxy.cli: createDirectory: OK in " in client_log.read_text()
    finally:
        stop_serve(proc)
    assert " INFO " not in log_file.read_text()  # LogLevel = WARNING: no access lines either
