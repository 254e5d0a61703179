#!/usr/bin/env bash
# Retakes the book's screenshot of the home page on demo data:
#
#   docs/tools/screenshot.sh [BINARY]     (default target/debug/bravely)
#
# SHOT_PATH=/help/inventory OUT=/tmp/x.png takes another page instead (to look at it).
# Fills a throw-away data directory with `bravely demo` (the defaults of `serve --demo`) and
# a superuser, starts `bravely serve` on a free port, signs in with Chromium (playwright-core
# from e2e/node_modules, driving CHROMIUM_PATH, default /usr/bin/chromium), writes
# docs/src/images/home.png (1280x800), then stops the server by PID and removes the directory.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
BIN=${1:-$ROOT/target/debug/bravely}
[[ $BIN == /* ]] || BIN=$PWD/$BIN
OUT=${OUT:-$ROOT/docs/src/images/home.png}
export CHROMIUM_PATH=${CHROMIUM_PATH:-/usr/bin/chromium}
[[ -d $ROOT/e2e/node_modules/playwright-core ]] || (cd "$ROOT/e2e" && npm ci --no-audit --no-fund --loglevel=error)

DIR=$(mktemp -d "${TMPDIR:-/tmp}/bravely-shot.XXXXXX")
PID=
cleanup() {
  [[ -n $PID ]] && kill -TERM "$PID" 2>/dev/null && wait "$PID" 2>/dev/null
  rm -rf "$DIR"
}
trap cleanup EXIT

export NO_COLOR=1
"$BIN" demo --data-dir "$DIR" </dev/null >/dev/null
PASSWORD=screenshot-password-0123
printf '%s\n' "$PASSWORD" | "$BIN" user add --data-dir "$DIR" --email ada@example.com --name "Ada Admin" --superuser
"$BIN" serve --data-dir "$DIR" --listen 127.0.0.1:0 </dev/null >"$DIR/server.log" 2>&1 &
PID=$!
URL=
for _ in $(seq 300); do
  URL=$(grep -o 'listening on http://127\.0\.0\.1:[0-9]\+' "$DIR/server.log" | head -n 1 | sed 's/^listening on //') || true
  [[ -n $URL ]] && break
  kill -0 "$PID" 2>/dev/null || { cat "$DIR/server.log" >&2; exit 1; }
  sleep 0.1
done
[[ -n $URL ]] || { echo "the server did not start" >&2; exit 1; }

cd "$ROOT/e2e"
BASE_URL=$URL PASSWORD=$PASSWORD OUT=$OUT SHOT_PATH=${SHOT_PATH:-} node --input-type=module -e '
import { chromium } from "playwright-core";
const browser = await chromium.launch({ executablePath: process.env.CHROMIUM_PATH, args: ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"] });
const page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
await page.goto(process.env.BASE_URL + "/login");
await page.fill("input[name=email]", "ada@example.com");
await page.fill("input[name=password]", process.env.PASSWORD);
await Promise.all([page.waitForURL(process.env.BASE_URL + "/"), page.click("form:has(input[name=password]) button[type=submit]")]);
if (process.env.SHOT_PATH) await page.goto(process.env.BASE_URL + process.env.SHOT_PATH);
await page.screenshot({ path: process.env.OUT, fullPage: !!process.env.SHOT_PATH });
await browser.close();
'
echo "wrote $OUT"
