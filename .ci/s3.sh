#!/usr/bin/env bash
# Installs moto (a real S3-compatible server, from PyPI) into a venv under the cargo target
# directory, for the tests of the mirror and the archive on S3 (tests/support: `start_s3`
# starts it on a free loopback port per test). Prints the path of `moto_server`; kept
# between runs. The tests find it at target/s3-venv/bin/moto_server or $VERITRAIL_MOTO_SERVER.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

MOTO_VERSION=5.2.5
target=${CARGO_TARGET_DIR:-$root/target}
venv=$target/s3-venv

command -v python3 >/dev/null || { echo "error: python3 is needed" >&2; exit 1; }
if ! python3 -c 'import ensurepip, venv' 2>/dev/null; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "== installing python3-venv (ensurepip is missing)" >&2
    apt-get update -qq && apt-get install -y -qq python3-venv >/dev/null
  else
    echo "error: python3 cannot create a venv; install python3-venv" >&2
    exit 1
  fi
fi
if ! "$venv/bin/python" -c "import moto, sys; sys.exit(moto.__version__ != '$MOTO_VERSION')" 2>/dev/null; then
  echo "== installing moto $MOTO_VERSION into $venv" >&2
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check "moto[server]==$MOTO_VERSION" >&2
fi
echo "$venv/bin/moto_server"
