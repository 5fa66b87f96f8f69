#!/usr/bin/env bash
# The Python SDK (clients/python): installs it with pytest into a venv under the cargo target
# directory (kept between runs; the SDK itself is reinstalled every run), and runs its tests
# against the real `veritrail` binary, which the tests start on loopback ports with temporary
# data directories (clients/python/tests/conftest.py).
#
# The framework hooks' tests (tests/test_hooks_*.py) drive LangChain, AutoGen and the OpenAI
# Agents SDK themselves, offline (fake and replayed models): the SDK is installed with its
# extras [langchain,autogen,openai-agents], every package pinned by
# clients/python/tests/hooks-constraints.txt; VERITRAIL_HOOKS_REQUIRED makes a missing
# framework fail those tests instead of skipping them.
#
# The binary is $VERITRAIL_BIN if set, else <target>/debug/veritrail, built here only if it
# is missing. Bounded: pytest at most 600 s (the suite takes well under two minutes, the hooks'
# tests a few seconds of it).
#
# Environment: CARGO_TARGET_DIR (default target); VERITRAIL_BIN; PYTEST_ARGS (extra pytest
# arguments, e.g. "-k receipt -v").
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

PYTEST_VERSION=9.2.0
target=${CARGO_TARGET_DIR:-$root/target}
venv=$target/python-venv
started=$(date +%s)

command -v python3 >/dev/null || { echo "error: python3 is needed" >&2; exit 1; }
if ! python3 -c 'import sys; sys.exit(sys.version_info < (3, 10))'; then
  echo "error: the SDK needs Python 3.10 or later; python3 is $(python3 -V 2>&1)" >&2
  exit 1
fi
# `python3 -m venv` needs ensurepip, which Debian ships separately (python3-venv).
if ! python3 -c 'import ensurepip, venv' 2>/dev/null; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "== installing python3-venv (ensurepip is missing)"
    apt-get update -qq && apt-get install -y -qq python3-venv >/dev/null
  else
    echo "error: python3 cannot create a venv; install python3-venv" >&2
    exit 1
  fi
fi
if ! "$venv/bin/python" -m pytest --version 2>/dev/null | grep -qx "pytest $PYTEST_VERSION"; then
  echo "== creating $venv with pytest $PYTEST_VERSION"
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check "pytest==$PYTEST_VERSION"
fi
echo "== installing the SDK from clients/python, with the hooks' frameworks (pinned)"
# Its dependencies (cryptography; the frameworks of the hook extras, pinned) once, then the SDK
# itself afresh: the version number does not change with every commit.
"$venv/bin/pip" install --quiet --disable-pip-version-check ./clients/python
"$venv/bin/pip" install --quiet --disable-pip-version-check -c clients/python/tests/hooks-constraints.txt \
  "./clients/python[langchain,autogen,openai-agents]" autogen-ext \
  opentelemetry-sdk opentelemetry-exporter-otlp-proto-http opentelemetry-exporter-otlp-json-http
"$venv/bin/pip" install --quiet --disable-pip-version-check --force-reinstall --no-deps ./clients/python

bin=${VERITRAIL_BIN:-$target/debug/veritrail}
if [ ! -x "$bin" ]; then
  echo "== building veritrail ($bin is missing)"
  cargo build --locked --quiet --bin veritrail
  bin=$target/debug/veritrail
fi

echo "== pytest against $bin"
(
  cd clients/python
  # No caches or bytecode in the source tree.
  VERITRAIL_BIN=$bin PYTHONDONTWRITEBYTECODE=1 VERITRAIL_HOOKS_REQUIRED=1 \
    timeout 600 "$venv/bin/python" -m pytest -p no:cacheprovider -q ${PYTEST_ARGS:-} tests
)
echo "== python SDK passed in $(($(date +%s) - started)) s"
