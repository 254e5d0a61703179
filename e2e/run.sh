#!/usr/bin/env bash
# Browser end-to-end tests against a real Bravely server.
#
#   e2e/run.sh [BINARY]        (BINARY defaults to target/debug/bravely)
#
# 1. makes a throw-away data dir, fills it with `bravely demo` (90 items and
#    250 employees: more than 200, so the assign form's employee picker is
#    the htmx typeahead, not a <select>) and a superuser
#    (admin@example.com / "Ada Admin");
# 2. starts `bravely serve --listen 127.0.0.1:0` in the background and waits
#    (at most SERVER_START_TIMEOUT seconds, default 30) for its
#    "listening on http://127.0.0.1:PORT" log line;
# 3. runs `node --test` on e2e/*.test.mjs with BASE_URL, ADMIN_EMAIL,
#    ADMIN_PASSWORD, ADMIN_NAME and SCREENSHOT_DIR (e2e/screenshots) set;
# 4. always stops the server (by PID) and removes the data dir.
# Exits with the test runner's status (or non-zero if setup failed).
#
# Needs: node + npm (installs e2e/node_modules with `npm ci` if missing),
# /usr/bin/chromium (tests/run.sh installs it; override with CHROMIUM_PATH),
# curl. Args for `bravely demo` may be given in E2E_DEMO_ARGS (default
# "--employees 250"; e.g. "--employees 40" exercises the <select> picker).
set -euo pipefail

E2E_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(dirname "$E2E_DIR")

BIN=${1:-$ROOT/target/debug/bravely}
[[ $BIN == /* ]] || BIN=$PWD/$BIN
if [[ ! -x $BIN ]]; then
  echo "e2e: binary not found or not executable: $BIN (build it with: cargo build --bin bravely)" >&2
  exit 2
fi

export NO_COLOR=1 # plain log lines (no ANSI codes) so the address can be parsed
export ADMIN_EMAIL=${ADMIN_EMAIL:-admin@example.com}
export ADMIN_NAME=${ADMIN_NAME:-Ada Admin}
export ADMIN_PASSWORD=${ADMIN_PASSWORD:-e2e-Correct-Horse-Battery-42}
export SCREENSHOT_DIR=${SCREENSHOT_DIR:-$E2E_DIR/screenshots}
export CHROMIUM_PATH=${CHROMIUM_PATH:-/usr/bin/chromium}
START_TIMEOUT=${SERVER_START_TIMEOUT:-30}
TEST_TIMEOUT=${E2E_TEST_TIMEOUT:-900} # whole node run, seconds

log() { printf 'e2e: %s\n' "$*" >&2; }

if [[ ! -x $CHROMIUM_PATH ]]; then
  log "Chromium not found at $CHROMIUM_PATH (apt-get install -y chromium, or run ./tests/run.sh which installs it)"
  exit 2
fi
if [[ ! -d $E2E_DIR/node_modules/playwright-core ]]; then
  log "installing e2e node modules (npm ci)"
  (cd "$E2E_DIR" && npm ci --no-audit --no-fund --loglevel=error)
fi

# --- throw-away data dir, server lifecycle ----------------------------------
DATA_DIR=$(mktemp -d "${TMPDIR:-/tmp}/bravely-e2e.XXXXXX")
SERVER_LOG=$DATA_DIR/server.log
SERVER_PID=

stop_server() {
  [[ -n $SERVER_PID ]] || return 0
  if kill -0 "$SERVER_PID" 2>/dev/null; then
    kill -TERM "$SERVER_PID" 2>/dev/null || true
    # Graceful shutdown gets 5 s, then SIGKILL.
    for _ in $(seq 50); do
      kill -0 "$SERVER_PID" 2>/dev/null || break
      sleep 0.1
    done
    kill -KILL "$SERVER_PID" 2>/dev/null || true
  fi
  wait "$SERVER_PID" 2>/dev/null || true
  SERVER_PID=
}

cleanup() {
  local status=$?
  stop_server
  if ((status != 0)) && [[ -f $SERVER_LOG ]]; then
    mkdir -p "$SCREENSHOT_DIR"
    cp "$SERVER_LOG" "$SCREENSHOT_DIR/server.log" 2>/dev/null || true
    log "server log (last 40 lines; full copy in $SCREENSHOT_DIR/server.log):"
    tail -n 40 "$SERVER_LOG" | sed 's/^/  | /' >&2 || true
  fi
  rm -rf "$DATA_DIR"
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Clear old captures so leftovers don't look like new failures.
if [[ -d $SCREENSHOT_DIR ]]; then
  find "$SCREENSHOT_DIR" -maxdepth 1 -type f \( -name '*.png' -o -name '*.html' -o -name 'server.log' \) -delete
fi

# --- data -------------------------------------------------------------------
log "data dir $DATA_DIR"
DEMO_ARGS=${E2E_DEMO_ARGS---employees 250}
# shellcheck disable=SC2086 # DEMO_ARGS is a word list on purpose
"$BIN" demo --data-dir "$DATA_DIR" $DEMO_ARGS </dev/null
printf '%s\n' "$ADMIN_PASSWORD" |
  "$BIN" user add --email "$ADMIN_EMAIL" --name "$ADMIN_NAME" --superuser --data-dir "$DATA_DIR"

# --- server -----------------------------------------------------------------
"$BIN" serve --listen 127.0.0.1:0 --data-dir "$DATA_DIR" </dev/null >"$SERVER_LOG" 2>&1 &
SERVER_PID=$!
log "server pid $SERVER_PID, waiting up to ${START_TIMEOUT}s for it to listen"

BASE_URL=
deadline=$((SECONDS + START_TIMEOUT))
while ((SECONDS < deadline)); do
  if ! kill -0 "$SERVER_PID" 2>/dev/null; then
    log "server exited before listening"
    exit 1
  fi
  # Strip ANSI colour codes in case NO_COLOR is ignored.
  BASE_URL=$(sed 's/\x1b\[[0-9;]*m//g' "$SERVER_LOG" |
    grep -o 'listening on http://127\.0\.0\.1:[0-9]\+' | head -n 1 | sed 's/^listening on //') || true
  [[ -n $BASE_URL ]] && break
  sleep 0.1
done
if [[ -z $BASE_URL ]]; then
  log "no 'listening on http://127.0.0.1:PORT' line within ${START_TIMEOUT}s"
  exit 1
fi
export BASE_URL
health=$(curl -fsS --max-time 5 "$BASE_URL/healthz") || {
  log "GET $BASE_URL/healthz failed"
  exit 1
}
log "server up at $BASE_URL (healthz: $health)"

# --- tests ------------------------------------------------------------------
shopt -s nullglob
tests=("$E2E_DIR"/*.test.mjs)
if ((${#tests[@]} == 0)); then
  log "no e2e/*.test.mjs files"
  exit 1
fi

status=0
(cd "$E2E_DIR" && timeout --kill-after=10 "$TEST_TIMEOUT" \
  node --test --test-reporter=spec --test-concurrency=1 --test-timeout=180000 "${tests[@]}") || status=$?

if ! kill -0 "$SERVER_PID" 2>/dev/null; then
  log "the server died during the tests"
  ((status != 0)) || status=1
fi
if ((status != 0)); then
  log "FAILED (status $status); screenshots of failing pages in $SCREENSHOT_DIR"
fi
exit "$status"
