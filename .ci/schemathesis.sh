#!/usr/bin/env bash
# Schemathesis against the real server: every operation of /openapi.json, every check, with an
# admin token, on a log of 600 entries (so that the document's examples reach real tiles,
# entries and proofs). Fails if Schemathesis reports any failure or warning.
#
# Installs Schemathesis from PyPI into a venv under the cargo target directory (kept between
# runs), builds the binary, starts `veritrail serve` on a free loopback port with a fresh data
# directory, appends the README's entry and 599 more, runs Schemathesis and stops the server.
# Bounded: one request at most 10 s, Schemathesis at most 240 s.
#
# Environment: CARGO_TARGET_DIR (default target); SCHEMATHESIS_SEED (default 1; the run is
# reproducible with a fixed seed); SCHEMATHESIS_MAX_EXAMPLES (default 100, per operation).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

SCHEMATHESIS_VERSION=4.32.5
target=${CARGO_TARGET_DIR:-$root/target}
venv=$target/schemathesis-venv
seed=${SCHEMATHESIS_SEED:-1}
max_examples=${SCHEMATHESIS_MAX_EXAMPLES:-100}
started=$(date +%s)

for tool in python3 curl; do
  command -v "$tool" >/dev/null || { echo "error: $tool is needed" >&2; exit 1; }
done

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
if ! "$venv/bin/schemathesis" --version 2>/dev/null | grep -qx "schemathesis, version $SCHEMATHESIS_VERSION"; then
  echo "== installing schemathesis $SCHEMATHESIS_VERSION into $venv"
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check "schemathesis==$SCHEMATHESIS_VERSION"
fi

echo "== building veritrail"
cargo build --locked --quiet --bin veritrail
bin=$target/debug/veritrail

work=$(mktemp -d)
server=
cleanup() {
  if [ -n "$server" ]; then
    kill "$server" 2>/dev/null || true
    wait "$server" 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT

# Port 0: the server picks a free port and prints it.
# With an archive target (nothing has expired in a fresh log, so a run archives nothing), so
# that POST /v1/admin/archive is exercised rather than answering 404.
RUST_LOG=warn "$bin" serve --data "$work/data" --listen 127.0.0.1:0 \
  --archive-to "$work/archive" --archive-interval 0s \
  >"$work/serve.out" 2>"$work/serve.err" &
server=$!
base=
for _ in $(seq 1 600); do
  base=$(sed -n 's/^veritrail listening on //p' "$work/serve.out")
  [ -n "$base" ] && break
  if ! kill -0 "$server" 2>/dev/null; then
    echo "error: veritrail serve exited:" >&2
    cat "$work/serve.err" >&2
    exit 1
  fi
  sleep 0.1
done
if [ -z "$base" ]; then
  echo "error: veritrail serve did not start within 60 s" >&2
  cat "$work/serve.err" >&2
  exit 1
fi
token=$(cat "$work/data/admin.token")
echo "== server at $base; appending 600 entries and 4 records"

# The README's first entry (the document's leaf hash example), then 599 more: three full
# level-0 tiles would need 768; 600 gives tiles 0/000, 0/001, 0/002.p/88 and 1/000.p/2.
curl -sS --fail-with-body -X POST "$base/v1/entries" -H "Authorization: Bearer $token" \
  -H 'Content-Type: application/octet-stream' --data-binary '{"event":"tool_call"}' >/dev/null
"$bin" bench append --url "$base" --token "$token" --entries 599 --size 64 --concurrency 8 \
  >"$work/bench.out" 2>&1 || { cat "$work/bench.out" >&2; exit 1; }
# Then 4 agent records, so that the document's record example (index 600) is one, with a
# payload named `prompt` (the payload example).
curl -sS --fail-with-body -X POST "$base/v1/records" -H "Authorization: Bearer $token" \
  -H 'Content-Type: application/json' --data-binary '[
    {"timestamp":"2026-03-01T12:00:00Z","action":"conversation_started","actor":{"id":"u-1","type":"user"},"conversation_id":"c-1","subject":"P-7000","payloads":{"prompt":{"media_type":"text/plain","text":"What does my lab result mean?"}}},
    {"timestamp":"2026-03-01T12:00:01Z","action":"tool_invoked","actor":{"id":"triage","type":"agent"},"conversation_id":"c-1"},
    {"timestamp":"2026-03-01T12:00:02Z","action":"agent_response_generated","actor":{"id":"triage","type":"agent"},"conversation_id":"c-1"},
    {"timestamp":"2026-03-01T12:00:03Z","action":"conversation_ended","actor":{"id":"triage","type":"agent"},"conversation_id":"c-1"}
  ]' >/dev/null
# Wait until a checkpoint covers the 604 entries (proofs default to the latest checkpoint).
for _ in $(seq 1 100); do
  size=$(curl -sS "$base/checkpoint" | sed -n 2p)
  [ "${size:-0}" -ge 604 ] && break
  sleep 0.1
done
[ "${size:-0}" -ge 604 ] || { echo "error: no checkpoint of 604 entries" >&2; exit 1; }

# The document as the server serves it, loaded from a file: Schemathesis leaves out the
# operation that serves the document it was loaded from, and GET /openapi.json is tested too.
curl -sS --fail-with-body "$base/openapi.json" -o "$work/openapi.json"

echo "== schemathesis $SCHEMATHESIS_VERSION: every operation, --checks all, seed $seed"
# From the work directory: Schemathesis and Hypothesis write their caches to the current one.
(
  cd "$work"
  PYTHONPATH=$root/.ci/schemathesis SCHEMATHESIS_HOOKS=hooks \
    timeout 240 "$venv/bin/schemathesis" --no-color \
    --config-file "$root/.ci/schemathesis/schemathesis.toml" \
    run "$work/openapi.json" --url "$base" \
    --checks all \
    -H "Authorization: Bearer $token" \
    --max-examples "$max_examples" \
    --request-timeout 10 \
    --seed "$seed" \
    --continue-on-failure
)
echo "== schemathesis passed in $(($(date +%s) - started)) s"
