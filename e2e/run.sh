#!/usr/bin/env bash
# Browser end-to-end tests against a real Bravely server.
#
#   e2e/run.sh [BINARY]        (BINARY defaults to target/debug/bravely)
#
# 1. makes a throw-away data dir, fills it with `bravely demo` (90 items and
#    250 employees: more than 200, so the assign form's employee picker is
#    the htmx typeahead, not a <select>) and a superuser
#    (admin@example.com / "Ada Admin");
# 2. starts the test OpenID provider (tests/oidc/server.mjs, port 0) and
#    `bravely serve` on a free port with a configuration naming it (provider
#    "test", "eng" -> group "Engineers"), and waits (at most
#    SERVER_START_TIMEOUT seconds each, default 30) for their
#    "listening on http://127.0.0.1:PORT" lines;
# 3. runs `node --test` on e2e/*.test.mjs with BASE_URL, OIDC_ISSUER,
#    ADMIN_EMAIL, ADMIN_PASSWORD, ADMIN_NAME and SCREENSHOT_DIR
#    (e2e/screenshots) set;
# 4. always stops the server and the provider (by PID) and removes the data dir.
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
OIDC_DIR=$ROOT/tests/oidc
if [[ ! -d $OIDC_DIR/node_modules/oidc-provider ]]; then
  log "installing the test OpenID provider's node modules (npm ci in tests/oidc)"
  (cd "$OIDC_DIR" && npm ci --no-audit --no-fund --loglevel=error)
fi

# --- throw-away data dir, server lifecycle ----------------------------------
DATA_DIR=$(mktemp -d "${TMPDIR:-/tmp}/bravely-e2e.XXXXXX")
SERVER_LOG=$DATA_DIR/server.log
SERVER_PID=
PROVIDER_LOG=$DATA_DIR/provider.log
PROVIDER_PID=

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
  stop_provider
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

# --- OpenID provider + server ---------------------------------------------------
# The provider must know Bravely's redirect URI and Bravely its public_url, so
# Bravely's port is chosen first (a free one, asked of the kernel); should
# another process take it in between, both are started again on a new one.
free_port() {
  node -e 'const s = require("net").createServer().listen(0, "127.0.0.1", () => { console.log(s.address().port); s.close(); })'
}

# wait_for_line LOG PID : prints the first "listening on http://127.0.0.1:PORT"
# URL in LOG; fails when PID exits first or after START_TIMEOUT seconds.
wait_for_line() {
  local url="" deadline=$((SECONDS + START_TIMEOUT))
  while ((SECONDS < deadline)); do
    # Strip ANSI colour codes in case NO_COLOR is ignored.
    url=$(sed 's/\x1b\[[0-9;]*m//g' "$1" |
      grep -o 'listening on http://127\.0\.0\.1:[0-9]\+' | head -n 1 | sed 's/^listening on //') || true
    if [[ -n $url ]]; then
      echo "$url"
      return 0
    fi
    kill -0 "$2" 2>/dev/null || return 1
    sleep 0.1
  done
  return 1
}

stop_provider() {
  [[ -n $PROVIDER_PID ]] || return 0
  kill -TERM "$PROVIDER_PID" 2>/dev/null || true
  wait "$PROVIDER_PID" 2>/dev/null || true
  PROVIDER_PID=
}

BASE_URL=
for attempt in 1 2 3; do
  port=$(free_port)
  app_url=http://127.0.0.1:$port
  node "$OIDC_DIR/server.mjs" --port 0 --redirect-uri "$app_url/auth/oidc/callback" \
    --post-logout-uri "$app_url/login" </dev/null >"$PROVIDER_LOG" 2>&1 &
  PROVIDER_PID=$!
  if ! OIDC_ISSUER=$(wait_for_line "$PROVIDER_LOG" "$PROVIDER_PID"); then
    log "the OpenID provider did not start:"
    sed 's/^/  | /' "$PROVIDER_LOG" >&2
    exit 1
  fi
  cat >"$DATA_DIR/bravely.toml" <<TOML
public_url = "$app_url"

[[oidc.providers]]
id = "test"
name = "Test Org"
issuer = "$OIDC_ISSUER"
client_id = "bravely"
client_secret = "bravely-test-client-secret-0123456789"
allowed_domains = ["example.com"]
scopes = ["email", "profile", "groups"]
groups_claim = "groups"

[oidc.providers.groups]
"eng" = "Engineers"
TOML
  "$BIN" --config "$DATA_DIR/bravely.toml" serve --listen "127.0.0.1:$port" --data-dir "$DATA_DIR" \
    </dev/null >"$SERVER_LOG" 2>&1 &
  SERVER_PID=$!
  log "provider $OIDC_ISSUER (pid $PROVIDER_PID); server pid $SERVER_PID on port $port, waiting up to ${START_TIMEOUT}s"
  if BASE_URL=$(wait_for_line "$SERVER_LOG" "$SERVER_PID"); then
    break
  fi
  log "server did not start (attempt $attempt):"
  tail -n 5 "$SERVER_LOG" | sed 's/^/  | /' >&2
  stop_server
  stop_provider
done
if [[ -z $BASE_URL ]]; then
  log "no 'listening on http://127.0.0.1:PORT' line from the server"
  exit 1
fi
export BASE_URL OIDC_ISSUER
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
