"""Drive real DIRAC client code from a JSON job; run with a DIRAC venv's python.

Executed as ``<venv>/bin/python dirac_runner.py`` by ``tests/fixtures/dirac.py``
(never imported by pytest).  Reads ONE JSON job from stdin, prints ONE JSON
result on stdout.  DIRAC's own logging goes to stderr (fd 1 is re-pointed to
fd 2 before DIRAC is imported; the result is written to a saved copy of the
original stdout).  Values use the tagged JSON of ``tagged.py``.

Job::

    {"cfg": "<DIRAC cfg text>",          # becomes DIRACSYSCONFIG (with any already set)
     "encoding": "json" | "dencode" | null,   # DIRAC_USE_JSON_ENCODE for every call
     "calls": [CALL, ...]}

Credentials are NOT in the job: the fixture passes ``X509_USER_PROXY``,
``X509_CERT_DIR`` (and host certificate variables) in this process's env.

CALL (one key names the kind; optional ``"encoding"`` overrides the job's)::

    {"rpc": URL_OR_SERVICE, "method": M, "args": [...], "kwargs": {...}, "client": {RPCClient kwargs}}
    {"transfer": URL_OR_SERVICE, "method": M, "args": [...], "kwargs": {...}, "client": {...}}
    {"se": SE_NAME, "method": M, "args": [...], "kwargs": {...}, "client": {StorageElement kwargs}}
    {"credentials": PROXY_OR_CERT_PATH, "key": KEY_PATH_or_null}  # DIRAC's X509Chain.getCredentials()
    {"handshake": [HOST, PORT], "client": {transport kwargs, e.g. proxyLocation}}
                                    # DIRAC's dips transport: connect + handshake; S_OK(server's
                                    # credential dict as DIRAC computes it, x509Chain -> "<X509Chain>")
    {"peer_info": PROXY_OR_CERT_PATH}     # a DIRAC server's post-handshake dict for that chain
    {"exec": PYTHON_SOURCE, "args": [...]}     # sets `result`; for odd cases (DEncode, ...)

Result::

    {"ok": true, "dirac_version": "9.1.22",
     "results": [{"ok": true, "value": ...} | {"ok": false, "error": "Type: msg", "traceback": "..."}]}
    {"ok": false, "error": "...", "traceback": "..."}     # DIRAC could not be initialised
"""

import json
import os
import sys
import tempfile
import traceback

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tagged  # this directory, not a package inside the venv


_START_ENCODING = os.environ.get("DIRAC_USE_JSON_ENCODE")


def _set_encoding(encoding):
    """DIRAC reads DIRAC_USE_JSON_ENCODE at every encode; None = this process's initial setting."""
    if encoding is not None:
        os.environ["DIRAC_USE_JSON_ENCODE"] = "Yes" if encoding == "json" else "No"
    elif _START_ENCODING is None:
        os.environ.pop("DIRAC_USE_JSON_ENCODE", None)
    else:
        os.environ["DIRAC_USE_JSON_ENCODE"] = _START_ENCODING


def _initialise_dirac():
    """Load the configuration the DIRAC way for the installed major version."""
    sys.argv = [sys.argv[0]]  # DIRAC parses the command line
    import DIRAC

    if hasattr(DIRAC, "initialize"):  # 9.x
        DIRAC.initialize(require_auth=False)
    else:  # 8.0
        from DIRAC.Core.Base.Script import Script

        Script.parseCommandLine(ignoreErrors=True)
    return DIRAC.version


def _call_rpc(call):
    from DIRAC.Core.DISET.RPCClient import RPCClient

    client = RPCClient(call["rpc"], **call.get("client", {}))
    return getattr(client, call["method"])(*call.get("args", []), **call.get("kwargs", {}))


def _call_transfer(call):
    from DIRAC.Core.DISET.TransferClient import TransferClient

    client = TransferClient(call["transfer"], **call.get("client", {}))
    return getattr(client, call["method"])(*call.get("args", []), **call.get("kwargs", {}))


def _call_se(call):
    from DIRAC.Resources.Storage.StorageElement import StorageElement

    se = StorageElement(call["se"], **call.get("client", {}))
    return getattr(se, call["method"])(*call.get("args", []), **call.get("kwargs", {}))


def _call_credentials(call):
    from DIRAC.Core.Security.X509Chain import X509Chain

    chain = X509Chain()
    if call.get("key"):
        res = chain.loadChainFromFile(call["credentials"])
        if res["OK"]:
            res = chain.loadKeyFromFile(call["key"])
    else:
        res = chain.loadProxyFromFile(call["credentials"])
    if not res["OK"]:
        return res
    return _without_chain_object(chain.getCredentials())


def _without_chain_object(result):
    """Credential dicts hold the X509Chain object itself: keep the key, mark the value."""
    if isinstance(result, dict):
        value = result.get("Value") if "OK" in result else result
        if isinstance(value, dict) and "x509Chain" in value:
            value["x509Chain"] = "<X509Chain>"
    return result


def _call_handshake(call):
    """DIRAC's dips client transport connects (the TLS handshake happens in initAsClient);
    the server's credentials are then computed by the function DIRAC's server uses."""
    from DIRAC.Core.DISET.private.Protocols import gProtocolDict
    from DIRAC.Core.DISET.private.Transports.SSL.M2Utils import getM2PeerInfo

    host, port = call["handshake"]
    transport = gProtocolDict["dips"]["transport"]((host, int(port)), bServerMode=False, **call.get("client", {}))
    res = transport.initAsClient()
    if not res["OK"]:
        return res
    try:
        return {"OK": True, "Value": _without_chain_object(getM2PeerInfo(transport.oSocket))}
    finally:
        transport.close()


def _call_peer_info(call):
    """What a DIRAC server's transport computes right after the handshake for a client
    presenting the chain in this file: DIRAC's getM2PeerInfo, fed the file's certificates
    the way an M2Crypto server connection hands them over (leaf alone, then the rest)."""
    import re

    from M2Crypto import X509
    from DIRAC.Core.DISET.private.Transports.SSL.M2Utils import getM2PeerInfo

    with open(call["peer_info"], "rb") as fh:
        pems = re.findall(rb"-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----", fh.read(), re.S)
    certs = [X509.load_cert_string(pem) for pem in pems]

    class _ServerSideConnection:
        def get_peer_cert(self):
            return certs[0]

        def get_peer_cert_chain(self):
            return certs[1:]

    return _without_chain_object(getM2PeerInfo(_ServerSideConnection()))


def _call_exec(call):
    namespace = {"args": call.get("args", []), "result": None}
    exec(compile(call["exec"], "<interop exec>", "exec"), namespace)  # test-authored code only
    return namespace["result"]


_KINDS = {
    "rpc": _call_rpc,
    "transfer": _call_transfer,
    "se": _call_se,
    "credentials": _call_credentials,
    "handshake": _call_handshake,
    "peer_info": _call_peer_info,
    "exec": _call_exec,
}


def _run_call(call, default_encoding):
    kinds = [kind for kind in _KINDS if kind in call]
    if len(kinds) != 1:
        return {"ok": False, "error": f"ValueError: call needs exactly one of {sorted(_KINDS)}: {sorted(call)}"}
    _set_encoding(call.get("encoding", default_encoding))
    try:
        decoded = tagged.from_jsonable(call)
        return {"ok": True, "value": tagged.to_jsonable(_KINDS[kinds[0]](decoded))}
    except BaseException as exc:  # noqa: BLE001 - report everything, including SystemExit from DIRAC
        return {"ok": False, "error": f"{type(exc).__name__}: {exc}", "traceback": traceback.format_exc()}


def main():
    result_fd = os.dup(1)
    os.dup2(2, 1)  # DIRAC's logger prints to stdout: keep it out of the result
    sys.stdout = os.fdopen(1, "w", closefd=False)
    out = os.fdopen(result_fd, "w")
    job = json.loads(sys.stdin.read())
    cfg_file = None
    try:
        if job.get("cfg"):
            fd, cfg_file = tempfile.mkstemp(suffix=".cfg", prefix="interop-runner-")
            with os.fdopen(fd, "w") as fh:
                fh.write(job["cfg"])
            previous = os.environ.get("DIRACSYSCONFIG")
            os.environ["DIRACSYSCONFIG"] = f"{previous},{cfg_file}" if previous else cfg_file
        _set_encoding(job.get("encoding"))
        try:
            version = _initialise_dirac()
        except BaseException as exc:  # noqa: BLE001 - DIRAC may exit while initialising: report it
            out.write(json.dumps({"ok": False, "error": f"DIRAC initialisation failed: {type(exc).__name__}: {exc}",
                                  "traceback": traceback.format_exc()}))
            return 1
        results = [_run_call(call, job.get("encoding")) for call in job.get("calls", [])]
        out.write(json.dumps({"ok": True, "dirac_version": version, "results": results}))
        return 0
    finally:
        out.flush()
        if cfg_file:
            os.unlink(cfg_file)


if __name__ == "__main__":
    code = main()
    sys.stdout.flush()
    os._exit(code)  # DIRAC leaves non-daemon threads behind; do not wait for them
