#!/usr/bin/env bash
# HTTP benchmark of the release build of Bravely, on this machine, against
# 127.0.0.1 only. Not part of the test suite; run it by hand:
#
#   benches/http.sh
#
# What it does (about 2 minutes after the build with the defaults):
#   1. cargo build --release --bin bravely  (skip with BRAVELY_BIN=/path/to/bravely)
#   2. fills a temp data dir: `bravely demo --employees 10000 --items 20000`
#      (timed) and a superuser (`bravely user add`);
#   3. starts `bravely serve --listen 127.0.0.1:0` and measures
#      "start to first response": time from spawning the process until the
#      first 200 from GET /healthz (tight polling loop in python3), plus the
#      time until its "listening on" log line;
#   4. logs in with curl (cookie jar, CSRF token from the form) to get a
#      `bravely_session` cookie;
#   5. checks that every target answers 200 (fails loudly otherwise) and
#      prints the size of each response body;
#   6. runs wrk (-t2 -c16 -d10s --latency, with the session cookie) on each
#      target, once with keep-alive and once with `Connection: close`:
#        list    /admin/employees/                      (page 1, 100 rows)
#        search  /admin/employees/?q=son&active=yes
#        edit    /admin/employees/<id>/                  (first id on the list)
#        asset   /assets/app.<hash>.css                 (static ceiling: the embedded
#                                                         asset closest in size to the list page)
#      then POSTs new employees through the admin form (unique emails, CSRF
#      header) with wrk and counts the rows created, to show write throughput;
#   7. reads the server's peak RSS (VmHWM in /proc/PID/status), stops the
#      server, prints a markdown table and writes it to
#      bench/results/http-<date>.md (git-ignored).
#
# Caveat: wrk and the server share the machine's cores (2 here), so req/s is
# a lower bound of what the server alone could do; compare runs on the same
# machine only.
#
# Knobs (environment): BRAVELY_BIN, EMPLOYEES (10000), ITEMS (20000),
# THREADS (2), CONNECTIONS (16), DURATION (10s), WARMUP (2s; 0 = none),
# SEARCH_Q (son), START_TIMEOUT (30 s), RESULTS_DIR (bench/results).
set -euo pipefail
export LC_ALL=C NO_COLOR=1

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

EMPLOYEES=${EMPLOYEES:-10000}
ITEMS=${ITEMS:-20000}
THREADS=${THREADS:-2}
CONNECTIONS=${CONNECTIONS:-16}
DURATION=${DURATION:-10s}
WARMUP=${WARMUP:-2s}
SEARCH_Q=${SEARCH_Q:-son}
START_TIMEOUT=${START_TIMEOUT:-30}
RESULTS_DIR=${RESULTS_DIR:-$ROOT/bench/results}
ADMIN_EMAIL=bench@example.com
ADMIN_PASSWORD=bench-Correct-Horse-Battery-42

say() { printf '\n== %s\n' "$*"; }
die() {
  printf 'bench: ERROR: %s\n' "$*" >&2
  exit 1
}
# Seconds (float) since $1, an $EPOCHREALTIME value.
since() { awk -v a="$1" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.3f", b - a }'; }

# --- tools ---------------------------------------------------------------------
need_apt=()
command -v wrk >/dev/null || need_apt+=(wrk)
command -v curl >/dev/null || need_apt+=(curl)
if ((${#need_apt[@]})); then
  say "installing ${need_apt[*]} (apt)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq </dev/null
  apt-get install -y -qq --no-install-recommends "${need_apt[@]}" </dev/null
fi
command -v python3 >/dev/null || die "python3 is required"

# --- build ---------------------------------------------------------------------
if [[ -n ${BRAVELY_BIN:-} ]]; then
  BIN=$(realpath "$BRAVELY_BIN")
else
  say "cargo build --release --bin bravely"
  cargo build --release --bin bravely
  TARGET_DIR=$(cargo metadata --no-deps --format-version 1 |
    grep -oE '"target_directory":"[^"]*"' | head -n 1 | sed -E 's/.*:"(.*)"/\1/')
  BIN=$TARGET_DIR/release/bravely
fi
[[ -x $BIN ]] || die "no executable at $BIN"

# --- temp dir, server lifecycle ---------------------------------------------------
WORK=$(mktemp -d "${TMPDIR:-/tmp}/bravely-bench.XXXXXX")
DATA=$WORK/data
LOG=$WORK/server.log
SERVER_PID=
mkdir -p "$DATA"

stop_server() {
  [[ -n $SERVER_PID ]] || return 0
  kill -TERM "$SERVER_PID" 2>/dev/null || true
  for _ in $(seq 50); do # up to 5 s of graceful shutdown
    kill -0 "$SERVER_PID" 2>/dev/null || break
    sleep 0.1
  done
  kill -KILL "$SERVER_PID" 2>/dev/null || true
  SERVER_PID=
}
cleanup() {
  local status=$?
  stop_server
  if ((status != 0)) && [[ -f $LOG ]]; then
    echo "--- server log (last 30 lines) ---" >&2
    tail -n 30 "$LOG" >&2 || true
  fi
  rm -rf "$WORK"
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# --- data ----------------------------------------------------------------------
say "demo data: $EMPLOYEES employees, $ITEMS items"
t0=$EPOCHREALTIME
"$BIN" demo --data-dir "$DATA" --employees "$EMPLOYEES" --items "$ITEMS" --thanks 0 </dev/null
DEMO_S=$(since "$t0")
DATA_SIZE=$(du -sh "$DATA" | cut -f1)
echo "demo took ${DEMO_S}s; data dir is $DATA_SIZE"
printf '%s\n' "$ADMIN_PASSWORD" |
  "$BIN" user add --email "$ADMIN_EMAIL" --name "Bench Admin" --superuser --data-dir "$DATA"

# --- start, measure start-to-first-response ---------------------------------------
# python3 spawns the server (so the clock starts right before exec), then
# polls: first the log for the address (port 0 = OS-picked port), then
# GET /healthz over a raw socket every 0.2 ms until it answers 200. It prints
# "PID PORT MS_TO_LISTEN_LINE MS_TO_FIRST_200" and leaves the server running.
say "starting server"
read -r SERVER_PID PORT LISTEN_MS FIRST_MS < <(
  python3 - "$BIN" "$DATA" "$LOG" "$START_TIMEOUT" <<'PY'
import re, socket, subprocess, sys, time

binary, data, log, timeout = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])
addr_re = re.compile(rb"listening on http://127\.0\.0\.1:(\d+)")
ansi_re = re.compile(rb"\x1b\[[0-9;]*m")
with open(log, "wb") as out:
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        [binary, "serve", "--listen", "127.0.0.1:0", "--data-dir", data],
        stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
    )
port = listen_ms = None
while True:
    now = time.perf_counter()
    if now - t0 > timeout:
        proc.kill()
        sys.exit(f"server not answering /healthz within {timeout:.0f}s")
    if proc.poll() is not None:
        sys.exit(f"server exited with status {proc.returncode} during startup")
    if port is None:
        with open(log, "rb") as f:
            m = addr_re.search(ansi_re.sub(b"", f.read()))
        if m:
            port, listen_ms = int(m.group(1)), (time.perf_counter() - t0) * 1000
    if port is not None:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=2) as s:
                s.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
                status_line = s.recv(128).split(b"\r\n", 1)[0]
            if status_line.split(b" ")[1:2] == [b"200"]:
                first_ms = (time.perf_counter() - t0) * 1000
                break
        except OSError:
            pass
    time.sleep(0.0002)
print(proc.pid, port, f"{listen_ms:.1f}", f"{first_ms:.1f}", flush=True)
PY
) || true
[[ -n ${FIRST_MS:-} ]] || die "server did not start (see log below)"
BASE=http://127.0.0.1:$PORT
RSS_START_KB=$(awk '/^VmRSS:/ { print $2 }' "/proc/$SERVER_PID/status")
echo "pid $SERVER_PID at $BASE; 'listening' log line after ${LISTEN_MS} ms, first 200 from /healthz after ${FIRST_MS} ms; RSS ${RSS_START_KB} kB"

# --- log in ----------------------------------------------------------------------
say "logging in as $ADMIN_EMAIL"
JAR=$WORK/cookies.txt
curl -fsS -c "$JAR" -o "$WORK/login.html" "$BASE/login" || die "GET /login failed"
# Pull the CSRF token and the stylesheet URL (the static ceiling) out of the login page.
read -r CSRF HTMX_PATH < <(python3 - "$WORK/login.html" <<'PY'
import sys
from html.parser import HTMLParser

class P(HTMLParser):
    csrf = htmx = None
    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "input" and a.get("name") == "csrf_token":
            self.csrf = a.get("value")
        # The static ceiling: app.css, the embedded asset closest in size to the list page.
        if tag == "link" and a.get("rel") == "stylesheet" and not self.htmx:
            self.htmx = a.get("href")

p = P()
p.feed(open(sys.argv[1], encoding="utf-8").read())
print(p.csrf or "-", p.htmx or "-")
PY
)
[[ $CSRF != - ]] || die "no csrf_token input on /login"
[[ $HTMX_PATH != - ]] || die "no stylesheet <link> on /login"
HTMX_PATH=/${HTMX_PATH#/} # the page may use a relative src

code=$(curl -sS -b "$JAR" -c "$JAR" -D "$WORK/login.headers" -o /dev/null -w '%{http_code}' \
  -H "Origin: $BASE" -H "Referer: $BASE/login" \
  --data-urlencode "email=$ADMIN_EMAIL" --data-urlencode "password=$ADMIN_PASSWORD" \
  --data-urlencode "csrf_token=$CSRF" --data-urlencode "next=/admin/" \
  "$BASE/login")
[[ $code == 303 ]] || die "POST /login answered $code (expected 303)"
SESSION=$(tr -d '\r' <"$WORK/login.headers" |
  sed -nE 's/^[Ss]et-[Cc]ookie: *bravely_session=([^;]*).*/\1/p' | tail -n 1)
[[ -n $SESSION ]] || SESSION=$(awk '$6 == "bravely_session" { v = $7 } END { print v }' "$JAR")
[[ -n $SESSION ]] || die "no bravely_session cookie after login"
COOKIE="Cookie: bravely_session=$SESSION"

# --- targets -----------------------------------------------------------------------
fetch() { # fetch PATH OUTFILE -> prints "HTTP_CODE SIZE_BYTES"
  curl -sS -H "$COOKIE" -o "$2" -w '%{http_code} %{size_download}\n' "$BASE$1"
}
read -r code _ < <(fetch /admin/employees/ "$WORK/list.html")
[[ $code == 200 ]] || die "GET /admin/employees/ answered $code"
# First employee id linked from the list (numeric ids preferred).
EMP_ID=$(grep -oE 'href="/admin/employees/[^/"?#]+/"' "$WORK/list.html" |
  sed -E 's#href="/admin/employees/([^/"]+)/"#\1#' | grep -vxE 'new|add|import|export' |
  awk '/^[0-9]+$/ { print; found = 1; exit } first == "" { first = $0 } END { if (!found && first != "") print first }')
[[ -n $EMP_ID ]] || die "no /admin/employees/<id>/ link on the list page"

NAMES=(list search edit asset)
declare -A URL=(
  [list]=/admin/employees/
  [search]="/admin/employees/?q=$SEARCH_Q&active=yes"
  [edit]=/admin/employees/$EMP_ID/
  [asset]=$HTMX_PATH
)
declare -A SIZE=()

say "checking targets"
for name in "${NAMES[@]}"; do
  read -r code size < <(fetch "${URL[$name]}" "$WORK/$name.body")
  if [[ $code != 200 ]]; then
    echo "--- body of ${URL[$name]} ---" >&2
    head -c 2000 "$WORK/$name.body" >&2 || true
    die "GET ${URL[$name]} answered $code (expected 200)"
  fi
  SIZE[$name]=$size
  printf '  %-7s %-45s 200, %s bytes\n' "$name" "${URL[$name]}" "$size"
done

# --- wrk -------------------------------------------------------------------------------
# parse_wrk FILE -> "RPS P50 P90 P99 REQUESTS NON2XX SOCKET_ERRORS"
parse_wrk() {
  awk '
    /^Requests\/sec:/ { rps = $2 }
    $1 == "50%" { p50 = $2 } $1 == "90%" { p90 = $2 } $1 == "99%" { p99 = $2 }
    / requests in / { reqs = $1 }
    /Non-2xx or 3xx responses:/ { non2xx = $NF }
    /Socket errors:/ { gsub(/[^0-9 ]/, " "); for (i = 1; i <= NF; i++) errs += $i }
    END { printf "%s %s %s %s %s %d %d\n", rps, p50, p90, p99, reqs, non2xx, errs }
  ' "$1"
}

ROWS=()
WARNINGS=()
for name in "${NAMES[@]}"; do
  url=$BASE${URL[$name]}
  if [[ $WARMUP != 0 ]]; then
    wrk -t1 -c4 -d"$WARMUP" -H "$COOKIE" "$url" >/dev/null
  fi
  for mode in keep-alive close; do
    args=(-t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" --latency --timeout 5s -H "$COOKIE")
    [[ $mode == close ]] && args+=(-H 'Connection: close')
    say "wrk $name ($mode): ${URL[$name]}"
    out=$WORK/wrk-$name-$mode.txt
    wrk "${args[@]}" "$url" | tee "$out"
    kill -0 "$SERVER_PID" 2>/dev/null || die "server died during the $name ($mode) run"
    read -r rps p50 p90 p99 reqs non2xx errs < <(parse_wrk "$out")
    ROWS+=("| $name | \`${URL[$name]}\` | $mode | $rps | $p50 | $p90 | $p99 | $reqs | $non2xx | $errs |")
    if ((non2xx > 0 || errs > 0)); then
      WARNINGS+=("$name ($mode): $non2xx non-2xx responses, $errs socket errors")
    fi
  done
done

# Memory after the read benchmarks, before the write run adds tens of thousands of rows.
PEAK_RSS_READ_KB=$(awk '/^VmHWM:/ { print $2 }' "/proc/$SERVER_PID/status")
RSS_READ_KB=$(awk '/^VmRSS:/ { print $2 }' "/proc/$SERVER_PID/status")

# --- writes: concurrent creates through the admin form (group commit at work) ----------
# Each request creates an employee with a unique email. Success is a 303; the rows are
# counted before and after, so every acknowledged write is accounted for.
count_employees() {
  fetch /admin/employees/ "$WORK/count.html" >/dev/null
  grep -oE 'of [0-9,]+' "$WORK/count.html" | head -n 1 | tr -d ', of'
}
WRITE_TOKEN=$(grep -oE 'name="csrf-token" content="[^"]+"' "$WORK/list.html" | sed -E 's/.*content="([^"]+)"/\1/')
[[ -n $WRITE_TOKEN ]] || die "no csrf-token meta on the list page"
cat >"$WORK/create.lua" <<'LUA'
local token = os.getenv("WRITE_TOKEN")
local cookie = os.getenv("WRITE_COOKIE")
local next_thread = 0
function setup(thread)
  thread:set("tid", next_thread)
  next_thread = next_thread + 1
end
local n = 0
function request()
  n = n + 1
  local body = "name=Bench+Writer&title=Engineer&start_date=2025-01-01&active=on&work_email=bench-"
    .. tid .. "-" .. n .. "-" .. math.random(1, 1000000000) .. "%40example.com"
  return wrk.format("POST", "/admin/employees/new", {
    ["Content-Type"] = "application/x-www-form-urlencoded",
    ["X-CSRF-Token"] = token,
    ["Cookie"] = cookie,
  }, body)
end
LUA
before=$(count_employees)
say "wrk create (keep-alive): POST /admin/employees/new"
out=$WORK/wrk-create.txt
WRITE_TOKEN=$WRITE_TOKEN WRITE_COOKIE="bravely_session=$SESSION" \
  wrk -t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" --latency --timeout 5s -s "$WORK/create.lua" "$BASE/" | tee "$out"
after=$(count_employees)
read -r rps p50 p90 p99 reqs non2xx errs < <(parse_wrk "$out")
created=$((after - before))
ROWS+=("| create | \`POST /admin/employees/new\` | keep-alive | $rps | $p50 | $p90 | $p99 | $reqs | $created rows created | $errs |")
if ((created < reqs - errs - CONNECTIONS)); then
  WARNINGS+=("create: $reqs requests but only $created rows were created")
fi

PEAK_RSS_KB=$(awk '/^VmHWM:/ { print $2 }' "/proc/$SERVER_PID/status")
RSS_END_KB=$(awk '/^VmRSS:/ { print $2 }' "/proc/$SERVER_PID/status")
stop_server

# --- report --------------------------------------------------------------------------
mkdir -p "$RESULTS_DIR"
STAMP=$(date +%Y-%m-%d-%H%M%S)
REPORT=$RESULTS_DIR/http-$STAMP.md
REV=$(git rev-parse --short HEAD 2>/dev/null || echo "uncommitted")
CPU=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)
{
  echo "# Bravely HTTP benchmark, $STAMP"
  echo
  echo "- commit: $REV$(git diff --quiet HEAD 2>/dev/null || echo ' (+ local changes)'); binary: \`$BIN\`"
  echo "- machine: $(nproc) cores, ${CPU:-unknown CPU}, $(uname -sr); wrk and server share the cores"
  echo "- data: \`bravely demo --employees $EMPLOYEES --items $ITEMS\` took ${DEMO_S} s, data dir $DATA_SIZE"
  echo "- start to first response: ${FIRST_MS} ms (first 200 from /healthz; 'listening' log line at ${LISTEN_MS} ms)"
  echo "- server RSS: ${RSS_START_KB} kB after start; ${RSS_READ_KB} kB after the read benchmarks (peak ${PEAK_RSS_READ_KB} kB, which includes the argon2id hash of the one sign-in (7 MiB)); ${PEAK_RSS_KB} kB after the write run (which adds its rows to the in-memory lists); ${RSS_END_KB} kB at the end"
  echo "- body sizes: list ${SIZE[list]} B, search ${SIZE[search]} B, edit ${SIZE[edit]} B, static asset (app.css) ${SIZE[asset]} B (uncompressed, as wrk fetches them)"
  echo "- wrk: -t$THREADS -c$CONNECTIONS -d$DURATION --latency, authenticated (bravely_session cookie), warm-up $WARMUP per target"
  echo
  echo "| target | path | connection | req/s | p50 | p90 | p99 | requests | non-2xx | socket errors |"
  echo "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
  printf '%s\n' "${ROWS[@]}"
  if ((${#WARNINGS[@]})); then
    echo
    echo "**Warnings** (numbers for these rows are not trustworthy):"
    printf -- '- %s\n' "${WARNINGS[@]}"
  fi
} >"$REPORT"

say "results ($REPORT)"
cat "$REPORT"
