"""``seproxy pki init|host|user`` (a development PKI) and ``seproxy proxy-init``.

``proxy-info`` shows a proxy (like ``dirac-proxy-info``). ``pki`` writes a grid-security style
directory (see ``seproxy.security.pki``) that can
be used as ``/DIRAC/Security/Grid-Security`` directly (default: ``<data dir>/pki``, the
development PKI of ``seproxy serve``). Configuration as for every subcommand
(``seproxy.cli.common``: the development site and ``<data dir>/dev.cfg``, or the ``-c`` files; ``-o``);
``proxy-init`` checks ``--group`` against its Registry. ``proxy-init`` makes a DIRAC
RFC 3820 proxy (DIRAC group extension, optionally limited) from the user certificate
and writes it, mode 0600, to ``--out`` or where DIRAC looks first
(``$GRID_PROXY_FILE``, ``$X509_USER_PROXY``, else ``/tmp/x509up_u<uid>``).
"""

from __future__ import annotations

import argparse
import getpass
import re
import socket
import sys
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes

from seproxy.cli.common import add_common_options, data_dir, emit, load_config, proxy_for
from seproxy.config import schema
from seproxy.errors import AuthError, ConfigError
from seproxy.security import locations
from seproxy.security import pki as devpki
from seproxy.security.x509 import X509Chain


def parse_valid(text: str) -> int:
    """``HH:MM`` (DIRAC's ``--valid``) -> seconds."""
    match = re.fullmatch(r"(\d{1,5}):([0-5]\d)", text.strip())
    if not match or (int(match.group(1)) == 0 and int(match.group(2)) == 0):
        raise argparse.ArgumentTypeError(f"invalid validity {text!r}: expected HH:MM, e.g. 24:00")
    return int(match.group(1)) * 3600 + int(match.group(2)) * 60


def _pki_dir(args: argparse.Namespace) -> Path:
    if args.dir:
        return Path(args.dir)
    configured = schema.value(load_config(args), "/DIRAC/Security/Grid-Security")
    return Path(configured) if configured else data_dir(args) / "pki"


def cmd_pki_init(args: argparse.Namespace) -> int:
    hosts = args.host or ["localhost", socket.getfqdn()]
    pki = devpki.DevPKI(_pki_dir(args)).ensure(hostnames=hosts, users=args.user or ["testuser"])
    users = {user: [str(p) for p in pki.user_paths(user)] for user in args.user or ["testuser"]}
    emit(args, {"CA directory": str(pki.ca_dir), "CA certificate": str(pki.ca_cert),
                "host certificate": [str(pki.host_cert), str(pki.host_key)], "users": users,
                "Grid-Security": str(pki.directory.resolve())}, [
        f"CA directory:     {pki.ca_dir}",
        f"CA certificate:   {pki.ca_cert}",
        f"host certificate: {pki.host_cert} (key {pki.host_key})",
        *(f"user certificate: {cert} (key {key})" for cert, key in users.values()),
        f"Use it with: -o /DIRAC/Security/Grid-Security={pki.directory.resolve()}"])
    return 0


def cmd_pki_host(args: argparse.Namespace) -> int:
    pki = devpki.DevPKI(_pki_dir(args))
    cert, key = pki.issue_host(args.names, days=args.days)
    emit(args, {"certificate": str(cert), "key": str(key)}, [f"host certificate: {cert} (key {key})"])
    return 0


def cmd_pki_user(args: argparse.Namespace) -> int:
    pki = devpki.DevPKI(_pki_dir(args))
    cert, key = pki.issue_user(args.name, args.dn, days=args.days)
    emit(args, {"certificate": str(cert), "key": str(key)}, [f"user certificate: {cert} (key {key})"])
    return 0


def _load_user_key(path: Path, from_stdin: bool) -> PrivateKeyTypes:
    data = path.read_bytes()
    try:
        return serialization.load_pem_private_key(data, password=None)
    except TypeError:  # encrypted: ask for the pass phrase
        pass
    except ValueError as exc:
        raise AuthError(f"cannot read the key {path}: {exc}") from None
    if from_stdin:
        phrase = sys.stdin.readline().rstrip("\n")
    else:
        phrase = getpass.getpass(f"Enter Certificate password for {path}: ")
    try:
        return serialization.load_pem_private_key(data, password=phrase.encode())
    except ValueError:
        raise AuthError(f"wrong pass phrase for {path}") from None


def _default_group(args: argparse.Namespace, dn: str) -> str | None:
    """The Registry's view: check ``--group`` or pick the default group of ``dn``."""
    from seproxy.config import Registry
    registry = Registry(load_config(args))
    user = registry.username_for_dn(dn)
    if user is None:
        return args.group
    groups = registry.groups_for_user(user)
    if args.group is None:
        return registry.default_group_for_user(user)
    if args.group not in groups:
        raise AuthError(f"{user} is not a member of group {args.group} (groups: "
                        f"{', '.join(groups) or 'none'})")
    return args.group


def cmd_proxy_init(args: argparse.Namespace) -> int:
    if args.cert or args.key:
        if not (args.cert and args.key):
            raise ConfigError("--cert and --key go together")
        cert_path, key_path = Path(args.cert), Path(args.key)
    else:
        cert_path, key_path = locations.user_credentials()
    try:
        identity = X509Chain.from_file(cert_path)
    except AuthError as exc:
        raise AuthError(f"cannot read the certificate {cert_path}: {exc}") from None
    key = _load_user_key(key_path, args.pwstdin)
    if identity.seconds_left == 0:
        raise AuthError(f"the certificate {cert_path} has expired")
    group = _default_group(args, identity.identity_dn)
    pem = devpki.create_proxy(identity.certificates, key, group=group, limited=args.limited,
                              lifetime=args.valid)
    out = Path(args.out) if args.out else locations.default_proxy_path()
    devpki.write_private(out, pem)
    proxy = X509Chain.from_pem(pem)
    hours, rest = divmod(proxy.seconds_left, 3600)
    emit(args, {"path": str(out), "subject": proxy.subject_dn, "identity": proxy.identity_dn,
                "group": proxy.dirac_group, "isLimitedProxy": proxy.is_limited_proxy,
                "secondsLeft": proxy.seconds_left}, [
        f"Proxy generated: {out}",
        f"subject      : {proxy.subject_dn}",
        f"identity     : {proxy.identity_dn}",
        f"DIRAC group  : {proxy.dirac_group or '(none)'}",
        f"limited      : {proxy.is_limited_proxy}",
        f"time left    : {hours:02d}:{rest // 60:02d}"])
    return 0


def cmd_proxy_info(args: argparse.Namespace) -> int:
    # the proxy the client commands would present: --file, DIRAC's location, the data dir's
    path = args.file or proxy_for(args)
    if path is None:
        raise AuthError("no proxy found ($X509_USER_PROXY, /tmp/x509up_u<uid>, <data dir>/proxy.pem):"
                        " make one with `seproxy proxy-init`, or pass --file FILE")
    chain = X509Chain.from_file(path)
    chain.check_structure()
    info = {
        "path": str(path),
        "subject": chain.subject_dn,
        "issuer": chain.issuer_dn,
        "identity": chain.identity_dn,
        "isProxy": chain.is_proxy,
        "isLimitedProxy": chain.is_limited_proxy,
        "group": chain.dirac_group,
        "VOMS (not validated)": chain.voms_attributes,
        "secondsLeft": chain.seconds_left,
        "expired": chain.seconds_left == 0,
        "notAfter": min(f.not_after for f in chain.facts).strftime("%Y-%m-%d %H:%M:%S UTC"),
    }
    if args.verify:
        from seproxy.security.x509 import verify_with_ca_directory
        ca_dir = locations.ca_directory(load_config(args))
        verify_with_ca_directory(chain, ca_dir)
        info["verified against"] = str(ca_dir)
    if args.json:
        import json
        print(json.dumps(info, indent=2))
    else:
        hours, rest = divmod(chain.seconds_left, 3600)
        for key, value in info.items():
            if key == "secondsLeft":
                value = f"{hours:02d}:{rest // 60:02d}:{rest % 60:02d}"
                if info["expired"]:
                    value += f" (expired at {info['notAfter']}; renew it with `seproxy proxy-init`)"
            elif key in ("expired", "notAfter"):
                continue
            print(f"{key:<21}: {value}")
    return 0 if chain.seconds_left > 0 else 1


def register(subparsers: argparse._SubParsersAction) -> None:
    pki = subparsers.add_parser("pki", help="development PKI: CA, host and user certificates")
    pki_sub = pki.add_subparsers(dest="pki_command", metavar="ACTION", required=True)

    def add_dir(parser: argparse.ArgumentParser) -> None:
        add_common_options(parser)
        parser.add_argument("--json", action="store_true", help="JSON output")
        parser.add_argument("--dir", help="PKI directory (default: /DIRAC/Security/"
                            "Grid-Security, else <data dir>/pki, the one `seproxy serve` uses)")

    init = pki_sub.add_parser("init", help="create whatever is missing: CA, host, users")
    add_dir(init)
    init.add_argument("--host", action="append", metavar="NAME",
                      help="host name for the host certificate (repeatable; default: "
                      "localhost and this machine's FQDN)")
    init.add_argument("--user", action="append", metavar="NAME",
                      help="user certificate to create (repeatable; default: testuser)")
    init.set_defaults(func=cmd_pki_init)

    host = pki_sub.add_parser("host", help="(re)issue the host certificate")
    add_dir(host)
    host.add_argument("names", nargs="+", metavar="NAME",
                      help="host names / IPs (first is the CN; localhost, 127.0.0.1, ::1 added)")
    host.add_argument("--days", type=int, default=365)
    host.set_defaults(func=cmd_pki_host)

    user = pki_sub.add_parser("user", help="issue a user certificate")
    add_dir(user)
    user.add_argument("name")
    user.add_argument("--dn", help=f"subject (default {devpki.DN_PREFIX}/CN=<name>)")
    user.add_argument("--days", type=int, default=365)
    user.set_defaults(func=cmd_pki_user)

    proxy = subparsers.add_parser("proxy-init", help="make a DIRAC RFC 3820 proxy")
    add_common_options(proxy)
    proxy.add_argument("--json", action="store_true", help="JSON output")
    proxy.add_argument("-g", "--group", help="DIRAC group (default: the Registry's default "
                       "group of your DN; none if the Registry does not know it)")
    proxy.add_argument("-l", "--limited", action="store_true", help="make a limited proxy")
    proxy.add_argument("-v", "--valid", type=parse_valid, default=parse_valid("24:00"),
                       metavar="HH:MM", help="validity (default 24:00)")
    proxy.add_argument("--out", help="output file (default $GRID_PROXY_FILE, $X509_USER_PROXY, "
                       "else /tmp/x509up_u<uid>)")
    proxy.add_argument("--cert", help="user certificate (default $X509_USER_CERT, "
                       "~/.globus/usercert.pem)")
    proxy.add_argument("--key", help="user key (default $X509_USER_KEY, ~/.globus/userkey.pem)")
    proxy.add_argument("-p", "--pwstdin", action="store_true",
                       help="read the key's pass phrase from standard input")
    proxy.set_defaults(func=cmd_proxy_init)

    info = subparsers.add_parser("proxy-info", help="show a proxy (exit 1 if it has expired)")
    add_common_options(info)
    info.add_argument("--file", help="proxy file (default: DIRAC's proxy location, else "
                      "<data dir>/proxy.pem, as the client commands)")
    info.add_argument("--verify", action="store_true",
                      help="also verify the chain against the CA directory")
    info.add_argument("--json", action="store_true", help="JSON output")
    info.set_defaults(func=cmd_proxy_info)
