#!/usr/bin/env bash
# The oldest end of the supported cryptography/pyOpenSSL range (pyproject.toml): builds a
# virtualenv with the floor versions (once; reused while this script is unchanged) and runs
# the RPC/TLS/transport, X509 and transfer tests in it. The newest end is what `.ci/run` installs.
#
#   tools/floor_deps_test.sh [pytest arguments]     (default: the tests below)
#
# Venv: $SEPROXY_FLOOR_VENV (default ~/.cache/seproxy-floor/venv). Needs what .ci/run
# installs (M2Crypto builds from source unless the DIRAC peer cache has its wheel).
set -euo pipefail
cd "$(dirname "$0")/.."

FLOOR=("cryptography==42.0.0" "pyOpenSSL==24.0.0")
venv="${SEPROXY_FLOOR_VENV:-$HOME/.cache/seproxy-floor/venv}"
stamp="$(cat "$0" pyproject.toml | sha256sum | cut -c1-16)"
if [ ! -f "$venv/.seproxy-floor-$stamp" ]; then
  rm -rf "$venv"
  python3 -m venv "$venv"
  links=()
  for dir in "${SEPROXY_INTEROP_CACHE:-$HOME/.cache/seproxy-interop}"/wheels/M2Crypto*; do
    [ -d "$dir" ] && links+=(--find-links "$dir")
  done
  constraints="$venv/floor-constraints.txt"
  printf '%s\n' "${FLOOR[@]}" > "$constraints"
  "$venv/bin/python" -m pip install -q --disable-pip-version-check "${links[@]}" \
    -c "$constraints" -e '.[test]'
  touch "$venv/.seproxy-floor-$stamp"
fi
"$venv/bin/python" - <<'PY'
import cryptography, OpenSSL
from OpenSSL import SSL
print(f"floor: cryptography {cryptography.__version__}, pyOpenSSL {OpenSSL.__version__},"
      f" {SSL.OpenSSL_version(SSL.OPENSSL_VERSION).decode()}")
PY
if [ $# -eq 0 ]; then
  set -- tests/rpc tests/security tests/transfer -m "not slow"
fi
PYTHONPATH="$PWD" exec "$venv/bin/python" -m pytest -p no:cacheprovider -q "$@"
