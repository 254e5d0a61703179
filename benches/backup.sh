#!/usr/bin/env bash
# Backup benchmark of the release build, on this machine, against 127.0.0.1 only. Not part of
# the test suite; run it by hand:
#
#   benches/backup.sh
#
# What it does:
#   1. cargo build --release --bin bravely (skip with BRAVELY_BIN=/path/to/bravely);
#   2. makes (once, cached in bench/data-<employees>-<items>) a database of about 1 GB with
#      `bravely demo`, a superuser and an API token;
#   3. the ceiling: `cp` of the database file on the same disk, plus `sync` of the copy (the
#      server then runs on that copy, so every run starts from the same data);
#   4. starts `bravely serve`, and times `POST /api/backups` (it answers once the backup file
#      is written and fsynced) with no other load; the server's log line gives the snapshot
#      part (read transaction, copy of every table into a new file, compaction);
#   5. writer latency: wrk POSTs new employees through the admin form (each a durable commit)
#      for the same duration twice, once alone and once while a backup runs, and reports
#      the percentiles of both.
# Results are printed as a markdown table and written to bench/results/backup-<date>.md.
#
# Caveat: wrk, the server and the backup share the machine's cores (2 here) and disk; compare
# runs on the same machine only.
#
# Knobs: BRAVELY_BIN, EMPLOYEES (280000), ITEMS (560000), CONNECTIONS (8), RESULTS_DIR.
set -euo pipefail
export LC_ALL=C NO_COLOR=1

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
EMPLOYEES=${EMPLOYEES:-280000}
ITEMS=${ITEMS:-560000}
CONNECTIONS=${CONNECTIONS:-8}
RESULTS_DIR=${RESULTS_DIR:-$ROOT/bench/results}
EMAIL=bench@example.com
PASSWORD=bench-Correct-Horse-Battery-42

say() { printf '\n== %s\n' "$*"; }
die() {
  printf 'bench: ERROR: %s\n' "$*" >&2
  exit 1
}
since() { awk -v a="$1" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.2f", b - a }'; }
for tool in wrk curl python3; do command -v "$tool" >/dev/null || die "$tool is required (apt-get install $tool)"; done

if [[ -n ${BRAVELY_BIN:-} ]]; then
  BIN=$(realpath "$BRAVELY_BIN")
else
  say "cargo build --release --bin bravely"
  cargo build --release --bin bravely
  BIN=$(cargo metadata --no-deps --format-version 1 | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')/release/bravely
fi

CACHE=$ROOT/bench/data-$EMPLOYEES-$ITEMS
if [[ ! -f $CACHE/token ]]; then
  say "making the database: $EMPLOYEES employees, $ITEMS items (cached in $CACHE)"
  rm -rf "$CACHE"
  mkdir -p "$CACHE"
  "$BIN" demo --data-dir "$CACHE" --employees "$EMPLOYEES" --items "$ITEMS" --thanks 0 </dev/null
  printf '%s\n' "$PASSWORD" | "$BIN" user add --email "$EMAIL" --name "Bench" --superuser --data-dir "$CACHE"
  "$BIN" token add --email "$EMAIL" --name bench --data-dir "$CACHE" >"$CACHE/token.tmp"
  mv "$CACHE/token.tmp" "$CACHE/token"
fi
TOKEN=$(<"$CACHE/token")

WORK=$(mktemp -d "${TMPDIR:-/tmp}/bravely-backup-bench.XXXXXX")
# The server runs on a copy, so that every run starts from the same database.
DATA=$CACHE.run
PID=
cleanup() {
  [[ -n $PID ]] && kill "$PID" 2>/dev/null && wait "$PID" 2>/dev/null
  rm -rf "$WORK" "$DATA"
}
trap cleanup EXIT
rm -rf "$DATA"
mkdir -p "$DATA"
cp "$CACHE/secret.key" "$DATA/"
DB_BYTES=$(stat -c %s "$CACHE/bravely.redb")

say "ceiling: cp of the $((DB_BYTES / 1048576)) MiB database on the same disk (the copy the server then runs on)"
sync
t0=$EPOCHREALTIME
cp "$CACHE/bravely.redb" "$DATA/bravely.redb"
CP_S=$(since "$t0")
sync -f "$DATA/bravely.redb"
CP_SYNC_S=$(since "$t0")
echo "cp: ${CP_S}s, with sync: ${CP_SYNC_S}s"

say "starting the server"
"$BIN" serve --listen 127.0.0.1:0 --data-dir "$DATA" 2>"$WORK/server.log" &
PID=$!
BASE=
for _ in $(seq 600); do
  BASE=$(grep -oE 'listening on http://[0-9.:]+' "$WORK/server.log" | head -n1 | sed 's/listening on //') || true
  [[ -n $BASE ]] && curl -fsS "$BASE/readyz" >/dev/null 2>&1 && break
  sleep 0.1
done
[[ -n $BASE ]] || die "the server did not start: $(tail -5 "$WORK/server.log")"

backup() { # prints seconds taken by POST /api/backups
  local t0=$EPOCHREALTIME code
  code=$(curl -sS -o "$WORK/backup.json" -w '%{http_code}' -X POST -H "Authorization: Bearer $TOKEN" "$BASE/api/backups")
  [[ $code == 201 ]] || die "POST /api/backups answered $code: $(cat "$WORK/backup.json")"
  since "$t0"
}
last_log_field() { grep 'backup file written' "$WORK/server.log" | tail -n1 | grep -oE "$1=\"?[0-9.]+" | tail -n1 | grep -oE '[0-9.]+$'; }

say "backup with no other load"
ALONE_S=$(backup)
SNAP_S=$(last_log_field snapshot_s)
FILE_BYTES=$(last_log_field file_bytes)
SNAP_BYTES=$(last_log_field snapshot_bytes)
echo "POST /api/backups: ${ALONE_S}s (snapshot and compaction ${SNAP_S}s); file $((FILE_BYTES / 1048576)) MiB"
rm -rf "$DATA/backups"

# --- writers: employees created through the admin form (durable commits) -------------------
curl -fsS -c "$WORK/jar" -o "$WORK/login.html" "$BASE/login"
CSRF=$(grep -oE 'name="csrf_token" value="[^"]+"' "$WORK/login.html" | head -n1 | sed -E 's/.*value="([^"]+)"/\1/')
code=$(curl -sS -b "$WORK/jar" -c "$WORK/jar" -o /dev/null -w '%{http_code}' -H "Origin: $BASE" \
  --data-urlencode "email=$EMAIL" --data-urlencode "password=$PASSWORD" --data-urlencode "csrf_token=$CSRF" \
  --data-urlencode "next=/" "$BASE/login")
[[ $code == 303 ]] || die "login answered $code"
SESSION=$(awk '$6 == "bravely_session" { v = $7 } END { print v }' "$WORK/jar")
curl -fsS -H "Cookie: bravely_session=$SESSION" -o "$WORK/page.html" "$BASE/admin/employees/new"
WRITE_TOKEN=$(grep -oE 'name="csrf-token" content="[^"]+"' "$WORK/page.html" | sed -E 's/.*content="([^"]+)"/\1/')
cat >"$WORK/create.lua" <<'LUA'
local token, cookie = os.getenv("WRITE_TOKEN"), os.getenv("WRITE_COOKIE")
local ids = 0
function setup(thread) ids = ids + 1; thread:set("tid", ids) end
local n = 0
function request()
  n = n + 1
  local body = "name=Backup+Writer&title=Engineer&start_date=2025-01-01&active=on&work_email=w-"
    .. tid .. "-" .. n .. "-" .. math.random(1, 1000000000) .. "%40example.com"
  return wrk.format("POST", "/admin/employees/new", {
    ["Content-Type"] = "application/x-www-form-urlencoded", ["X-CSRF-Token"] = token, ["Cookie"] = cookie,
  }, body)
end
LUA
DURATION=$(awk -v s="$ALONE_S" 'BEGIN { printf "%d", s + 3 }')
writers() { # writers OUT: wrk for $DURATION seconds
  WRITE_TOKEN=$WRITE_TOKEN WRITE_COOKIE="bravely_session=$SESSION" \
    wrk -t2 -c"$CONNECTIONS" -d"${DURATION}s" --latency --timeout 10s -s "$WORK/create.lua" "$BASE/" >"$1"
}
parse() { # p50 p90 p99 max rps
  awk '$1 == "50%" { p50 = $2 } $1 == "90%" { p90 = $2 } $1 == "99%" { p99 = $2 }
       $1 == "Latency" && NF >= 4 { max = $4 } /^Requests\/sec:/ { rps = $2 }
       END { print p50, p90, p99, max, rps }' "$1"
}

say "writers alone (${DURATION}s, $CONNECTIONS connections)"
writers "$WORK/alone.txt"
read -r A50 A90 A99 AMAX ARPS < <(parse "$WORK/alone.txt")
echo "p50 $A50 p90 $A90 p99 $A99 max $AMAX, $ARPS writes/s"

say "writers while a backup runs"
writers "$WORK/during.txt" &
WRK=$!
sleep 1
LOADED_S=$(backup)
LOADED_SNAP_S=$(last_log_field snapshot_s)
wait "$WRK"
read -r B50 B90 B99 BMAX BRPS < <(parse "$WORK/during.txt")
echo "backup under load: ${LOADED_S}s; writers p50 $B50 p90 $B90 p99 $B99 max $BMAX, $BRPS writes/s"

mkdir -p "$RESULTS_DIR"
OUT=$RESULTS_DIR/backup-$(date +%Y%m%d-%H%M%S).md
{
  echo "Database: $((DB_BYTES / 1048576)) MiB ($EMPLOYEES employees, $ITEMS items, demo data); backup file $((FILE_BYTES / 1048576)) MiB (zstd); snapshot after compaction $((SNAP_BYTES / 1048576)) MiB."
  echo
  echo "| Operation | Seconds |"
  echo "| --- | --- |"
  echo "| \`cp\` of the database file (ceiling) | $CP_S |"
  echo "| \`cp\` + \`sync\` | $CP_SYNC_S |"
  echo "| Backup, no other load: snapshot + compaction | $SNAP_S |"
  echo "| Backup, no other load: whole \`POST /api/backups\` (+ checksum, zstd, fsync) | $ALONE_S |"
  echo "| Backup while writers run: snapshot + compaction / whole | $LOADED_SNAP_S / $LOADED_S |"
  echo
  echo "| Writers ($CONNECTIONS connections, ${DURATION}s) | p50 | p90 | p99 | max | writes/s |"
  echo "| --- | --- | --- | --- | --- | --- |"
  echo "| alone | $A50 | $A90 | $A99 | $AMAX | $ARPS |"
  echo "| during a backup | $B50 | $B90 | $B99 | $BMAX | $BRPS |"
} | tee "$OUT"
echo "written to $OUT"
