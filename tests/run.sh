#!/usr/bin/env bash
# Bravely's test command (what README and CI run):
#
#   ./tests/run.sh
#
# Steps, each under a "==== ... ====" header:
#   deps    report the free disk space (warns under MIN_FREE_GB, default 8), then
#           install what is missing, idempotently: Debian's chromium (apt, only
#           when /usr/bin/chromium is absent), rustfmt/clippy (rustup, only
#           when absent), tests/oidc/node_modules (the OpenID provider the
#           integration tests run) and e2e/node_modules (npm ci, each only when
#           missing or when its package*.json changed since the last install),
#           s3s-fs (the S3-compatible server the destination tests run against:
#           `cargo install --locked --debug s3s-fs@0.14.1`, once per machine, into
#           $BRAVELY_TOOLS_DIR, default ~/.cargo/bravely-tools; outside the
#           clone because CI builds a fresh clone every run)
#   fmt     cargo fmt --check
#   clippy  cargo clippy --all-targets -- -D warnings
#   test    cargo nextest run --all-targets (or cargo test --all-targets)
#   static  the shipped binary: installs the musl target (rustup) and Debian's
#           musl-tools when missing, runs `cargo build --profile dist --target
#           x86_64-unknown-linux-musl`, checks that the binary is statically linked
#           (file, ldd), that its relocations are packed (RELR, readelf;
#           .cargo/config.toml), prints its size, starts it in an empty temporary
#           directory and gets /healthz, then stops it by PID
#   image   tests/image.sh: the Dockerfile's final stage built around that binary and
#           run by a real Docker engine (Debian's docker.io, a private dockerd when
#           none runs): /healthz, /readyz, data on the volume, graceful stop, the CLI
#           in the image; skipped with a warning when no engine can start
#   supply  cargo deny check (advisories, licences, bans, sources; deny.toml),
#           installing cargo-deny (pinned version) when missing
#   docs    docs/tools/check.sh: builds the book (docs/, mdBook, pinned version
#           installed once per machine into $BRAVELY_TOOLS_DIR like s3s-fs) and
#           checks that every relative link and #anchor in it resolves (the
#           ignored test docs::built_book_has_no_broken_links)
#   build   cargo build --all-targets (the test step built all of it already:
#           with --all-targets the features match, so nothing is rebuilt;
#           `--bin bravely` alone would rebuild the crate without the
#           dev-dependencies' features)
#   e2e     e2e/run.sh <target>/debug/bravely   (browser tests, node:test)
# A failing step does not stop the later independent ones (e2e needs build);
# the script exits non-zero if any step failed, after a summary and, when
# every test runner's counts could be read, one "tests: N passed, M failed"
# line adding them up.
#
# Environment:
#   SKIP_E2E=1           skip chromium install, build and browser tests
#   SKIP_STATIC=1        skip the static (musl) binary check (and the image check)
#   SKIP_IMAGE=1         skip the container image check
#   SKIP_DENY=1          skip cargo deny
#   SKIP_DOCS=1          skip building and link-checking the book
#   STATIC_PROFILE=NAME  cargo profile of that check (default dist, the shipped one)
#   TEST_RUNNER=cargo    use `cargo test` even when cargo-nextest is present
#   CARGO_TARGET_DIR     respected (relative paths are taken from the caller's cwd)
#   CHROMIUM_PATH        browser for the e2e tests (default /usr/bin/chromium)
#   BRAVELY_TOOLS_DIR    where test tools are installed (default ~/.cargo/bravely-tools)
#   S3S_FS_BIN           set by this script for the tests: the s3s-fs binary
set -euo pipefail

# Resolve a relative CARGO_TARGET_DIR against the caller's cwd before we cd.
if [[ -n ${CARGO_TARGET_DIR:-} && ${CARGO_TARGET_DIR} != /* ]]; then
  export CARGO_TARGET_DIR=$PWD/$CARGO_TARGET_DIR
fi
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

SKIP_E2E=${SKIP_E2E:-0}
export CHROMIUM_PATH=${CHROMIUM_PATH:-/usr/bin/chromium}
if [[ ${CI:-} == true || ${CI:-} == 1 ]]; then
  # Fresh clone every time: incremental compilation only costs time.
  export CARGO_INCREMENTAL=${CARGO_INCREMENTAL:-0}
fi

LOG_DIR=$(mktemp -d "${TMPDIR:-/tmp}/bravely-tests.XXXXXX")
trap 'rm -rf "$LOG_DIR"' EXIT

# --- bookkeeping --------------------------------------------------------------
STEP_NAMES=()
STEP_RESULTS=()
FAILED_STEPS=()
TOTAL_PASSED=0
TOTAL_FAILED=0
TOTAL_SKIPPED=0
COUNTS_OK=1 # cleared when a test runner ran but its counts could not be read

section() { printf '\n==== [%s] %s ====\n' "$(date +%H:%M:%S)" "$*"; }

record() { # record NAME STATUS SECONDS
  STEP_NAMES+=("$1")
  if [[ $2 == skipped ]]; then
    STEP_RESULTS+=("skipped")
  elif (($2 == 0)); then
    STEP_RESULTS+=("ok (${3}s)")
  else
    STEP_RESULTS+=("FAILED, exit $2 (${3}s)")
    FAILED_STEPS+=("$1")
  fi
}

# run_step NAME CMD... : run CMD under a header, tee its output to
# $LOG_DIR/NAME.log, record the result. Returns CMD's status.
run_step() {
  local name=$1 status start=$SECONDS
  shift
  section "$name: $*"
  { "$@" 2>&1 | tee "$LOG_DIR/$name.log"; } && status=0 || status=$?
  record "$name" "$status" $((SECONDS - start))
  return "$status"
}

# sum_matches FILE LINE_REGEX FIELD_REGEX : over the lines of FILE (ANSI codes
# stripped) matching LINE_REGEX, sum the number in each FIELD_REGEX match
# (FIELD_REGEX must contain exactly one number, e.g. '[0-9]+ passed').
sum_matches() {
  { sed 's/\x1b\[[0-9;]*m//g' "$1" | grep -E "$2" | grep -oE "$3" || true; } |
    { grep -oE '[0-9]+' || true; } | awk '{ s += $0 } END { print s + 0 }'
}

# count_tests KIND LOG : add a runner's pass/fail/skip counts to the totals.
count_tests() {
  local kind=$1 log=$2 passed failed skipped line
  case $kind in
  cargo) # "test result: ok. 12 passed; 0 failed; 1 ignored; ..." per test binary
    line='^test result: '
    if ! grep -qE "$line" "$log"; then COUNTS_OK=0; return 0; fi
    passed=$(sum_matches "$log" "$line" '[0-9]+ passed')
    failed=$(sum_matches "$log" "$line" '[0-9]+ failed')
    skipped=$(sum_matches "$log" "$line" '[0-9]+ ignored')
    ;;
  nextest) # "     Summary [   1.2s] 12 tests run: 11 passed, 1 failed, 2 skipped"
    line='^ *Summary \[.*[0-9]+ tests? run:'
    if ! sed 's/\x1b\[[0-9;]*m//g' "$log" | grep -qE "$line"; then COUNTS_OK=0; return 0; fi
    passed=$(sum_matches "$log" "$line" '[0-9]+ passed')
    failed=$(($(sum_matches "$log" "$line" '[0-9]+ failed') + $(sum_matches "$log" "$line" '[0-9]+ timed out')))
    skipped=$(sum_matches "$log" "$line" '[0-9]+ skipped')
    ;;
  node) # spec reporter summary: "ℹ pass 5", "ℹ fail 0", "ℹ cancelled 0", "ℹ skipped 1"
    if ! sed 's/\x1b\[[0-9;]*m//g' "$log" | grep -qE '^ℹ pass [0-9]+'; then COUNTS_OK=0; return 0; fi
    passed=$(sum_matches "$log" '^ℹ pass ' '[0-9]+')
    failed=$(($(sum_matches "$log" '^ℹ fail ' '[0-9]+') + $(sum_matches "$log" '^ℹ cancelled ' '[0-9]+')))
    skipped=$(($(sum_matches "$log" '^ℹ skipped ' '[0-9]+') + $(sum_matches "$log" '^ℹ todo ' '[0-9]+')))
    ;;
  esac
  TOTAL_PASSED=$((TOTAL_PASSED + passed))
  TOTAL_FAILED=$((TOTAL_FAILED + failed))
  TOTAL_SKIPPED=$((TOTAL_SKIPPED + skipped))
}

# --- deps ---------------------------------------------------------------------
as_root() {
  if ((EUID == 0)); then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
    echo "need root for: $*" >&2
    return 1
  fi
}

apt_install() { # apt_install PKG... ; runs apt-get update first (only called when something is missing)
  export DEBIAN_FRONTEND=noninteractive
  local try
  for try in 1 2; do
    if as_root apt-get update -qq </dev/null &&
      as_root apt-get install -y -qq --no-install-recommends "$@" </dev/null; then
      return 0
    fi
    echo "apt-get failed (try $try)" >&2
    sleep 3
  done
  return 1
}

# npm_ci_once DIR: `npm ci` in DIR when its node_modules are missing or its
# package*.json changed since the last install (a stamp file records them).
npm_ci_once() {
  local dir=$1 stamp=$1/node_modules/.bravely-lock.sha256 want
  want=$(cat "$dir/package.json" "$dir/package-lock.json" | sha256sum | cut -d' ' -f1) || return 1
  if [[ ! -d $dir/node_modules || ! -f $stamp || $(<"$stamp") != "$want" ]]; then
    echo "installing $dir node modules (npm ci)"
    (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error) || return 1
    echo "$want" >"$stamp"
  fi
}

# s3s-fs: a real S3-compatible server that checks SigV4 signatures (tests/it/s3server.rs).
# Pinned: later versions need a newer rustc than the project's toolchain.
S3S_FS_VERSION=0.14.1
TOOLS_DIR=${BRAVELY_TOOLS_DIR:-${CARGO_HOME:-$HOME/.cargo}/bravely-tools}
export S3S_FS_BIN=$TOOLS_DIR/s3s-fs-$S3S_FS_VERSION/bin/s3s-fs

ensure_s3s_fs() {
  if [[ -x $S3S_FS_BIN ]] && "$S3S_FS_BIN" --version 2>/dev/null | grep -qF "$S3S_FS_VERSION"; then
    echo "s3s-fs: $("$S3S_FS_BIN" --version)"
    return 0
  fi
  echo "installing s3s-fs $S3S_FS_VERSION into $TOOLS_DIR (cargo install --locked --debug; about a minute, once per machine)"
  cargo install --locked --debug "s3s-fs@$S3S_FS_VERSION" --features binary --root "$TOOLS_DIR/s3s-fs-$S3S_FS_VERSION" || return 1
  "$S3S_FS_BIN" --version
}

# disk_check: a full disk makes every later step fail in ways that name
# something else (a test's write error, a linker crash), so say it first.
# A cold run needs about MIN_FREE_GB under the target directory.
MIN_FREE_GB=${MIN_FREE_GB:-8}
disk_check() {
  local dir=${CARGO_TARGET_DIR:-$ROOT/target} free_kb
  while [[ ! -d $dir ]]; do dir=$(dirname "$dir"); done
  free_kb=$(df -Pk "$dir" | awk 'NR == 2 { print $4 }')
  echo "disk: $((free_kb / 1024 / 1024)) GB free under $dir"
  if ((free_kb < MIN_FREE_GB * 1024 * 1024)); then
    echo "WARNING: less than ${MIN_FREE_GB} GB free: a cold build and the tests may fail" \
      "with 'No space left on device' (cargo clean, or set CARGO_TARGET_DIR elsewhere)" >&2
  fi
}

# Note: ensure_deps runs inside run_step's `{ ...; } || ...`, where `set -e`
# is off, hence the explicit `|| return 1` on every step that matters.
ensure_deps() {
  disk_check
  # Rust components (rustup downloads nothing when they are already there,
  # but we don't even ask then).
  local components=()
  cargo fmt --version >/dev/null 2>&1 || components+=(rustfmt)
  cargo clippy --version >/dev/null 2>&1 || components+=(clippy)
  if ((${#components[@]})); then
    echo "installing rust components: ${components[*]}"
    rustup component add "${components[@]}" || return 1
  fi
  echo "rust: $(rustc --version); $(cargo fmt --version); $(cargo clippy --version)"
  ensure_s3s_fs || return 1

  # The OpenID provider the integration tests sign in with (tests/oidc, npm's oidc-provider).
  if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
    echo "node and npm are required: the sign-in tests run a real OpenID provider (tests/oidc)" >&2
    return 1
  fi
  npm_ci_once tests/oidc || return 1
  echo "node $(node --version), oidc-provider $(node -p "require('./tests/oidc/node_modules/oidc-provider/package.json').version")"

  if [[ $SKIP_E2E == 1 ]]; then
    echo "SKIP_E2E=1: not checking chromium / node modules"
    return 0
  fi

  # Browser: Debian's Chromium (playwright's own browser downloads can't work here).
  if [[ ! -x $CHROMIUM_PATH ]]; then
    echo "installing chromium (apt)"
    apt_install chromium fonts-dejavu-core || return 1
  fi
  # curl: used by e2e/run.sh for the health check.
  if ! command -v curl >/dev/null; then
    apt_install curl ca-certificates || return 1
  fi
  echo "browser: $("$CHROMIUM_PATH" --version 2>/dev/null | tail -n 1)"

  # Node modules of the e2e suite, re-installed when the manifest/lock changes.
  if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
    echo "node and npm are required for the e2e tests (or set SKIP_E2E=1)" >&2
    return 1
  fi
  npm_ci_once e2e || return 1
  echo "node $(node --version), playwright-core $(node -p "require('./e2e/node_modules/playwright-core/package.json').version")"
}

run_step deps ensure_deps || {
  echo "dependency setup failed; not running the tests" >&2
  exit 1
}

# Where cargo puts binaries (honours CARGO_TARGET_DIR and .cargo/config).
TARGET_DIR=$(cargo metadata --no-deps --format-version 1 2>/dev/null |
  grep -oE '"target_directory":"[^"]*"' | head -n 1 | sed -E 's/.*:"(.*)"/\1/') || true
TARGET_DIR=${TARGET_DIR:-${CARGO_TARGET_DIR:-$ROOT/target}}

# --- static checks -------------------------------------------------------------
run_step fmt cargo fmt --all --check || true
run_step clippy cargo clippy --all-targets -- -D warnings || true

# --- unit + integration tests ---------------------------------------------------------
if [[ ${TEST_RUNNER:-nextest} == nextest ]] && cargo nextest --version >/dev/null 2>&1; then
  RUNNER=nextest
  run_step test cargo nextest run --all-targets --no-fail-fast --no-tests=warn || true
else
  RUNNER=cargo
  run_step test cargo test --all-targets --no-fail-fast || true
fi
count_tests "$RUNNER" "$LOG_DIR/test.log"
export TEST_RUNNER=$RUNNER # the docs step runs its link check with the same runner

# --- the static release binary ---------------------------------------------------
MUSL_TARGET=x86_64-unknown-linux-musl
STATIC_PROFILE=${STATIC_PROFILE:-dist}

ensure_musl() {
  if ! rustup target list --installed 2>/dev/null | grep -qx "$MUSL_TARGET"; then
    echo "installing the rust target $MUSL_TARGET"
    rustup target add "$MUSL_TARGET" || return 1
  fi
  # ring (rustls' crypto) and zstd compile C for the target: they need x86_64-linux-musl-gcc.
  if ! command -v x86_64-linux-musl-gcc >/dev/null; then
    echo "installing musl-tools (apt)"
    apt_install musl-tools || return 1
  fi
  if ! command -v file >/dev/null; then
    apt_install file || return 1
  fi
}

# static_check: build the shipped binary, check it is static, start it from an
# empty directory and get /healthz over a raw socket (no curl needed).
static_check() {
  ensure_musl || return 1
  local started=$SECONDS
  cargo build --locked --profile "$STATIC_PROFILE" --target "$MUSL_TARGET" --bin bravely || return 1
  echo "build took $((SECONDS - started)) s"
  local bin=$TARGET_DIR/$MUSL_TARGET/$STATIC_PROFILE/bravely
  local kind
  kind=$(file -b "$bin")
  echo "file: $kind"
  [[ $kind == *static-pie\ linked* || $kind == *statically\ linked* ]] || { echo "not a static binary" >&2; return 1; }
  ldd "$bin" 2>&1 | tee /dev/stderr | grep -qE 'statically linked|not a dynamic executable' ||
    { echo "ldd does not call it static" >&2; return 1; }
  echo "size: $(stat -c %s "$bin") bytes ($(du -h "$bin" | cut -f1))"
  # .cargo/config.toml links it with packed relative relocations (1.2 MB smaller).
  if readelf -d "$bin" | grep -q '(RELR)'; then
    echo "relocations: packed (RELR)"
  else
    echo "no RELR table: was .cargo/config.toml's link flag replaced (RUSTFLAGS)?" >&2
    return 1
  fi

  local dir pid port="" answer="" status=0
  dir=$(mktemp -d "${TMPDIR:-/tmp}/bravely-static.XXXXXX")
  # Empty directory, no config, no environment beyond PATH: the binary needs nothing else.
  (cd "$dir" && exec env -i PATH=/usr/bin:/bin NO_COLOR=1 "$bin" serve --listen 127.0.0.1:0 >"$dir/server.log" 2>&1) &
  pid=$!
  for _ in $(seq 100); do
    port=$(sed -nE 's#.*listening on http://127\.0\.0\.1:([0-9]+).*#\1#p' "$dir/server.log" | head -n 1)
    [[ -n $port ]] && break
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  if [[ -n $port ]] && exec 3<>"/dev/tcp/127.0.0.1/$port"; then
    printf 'GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n' >&3
    answer=$(timeout 5 cat <&3 || true)
    exec 3<&-
  fi
  kill -TERM "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  echo "GET /healthz: $(head -n 1 <<<"$answer" | tr -d '\r')"
  if [[ $answer != "HTTP/1.1 200"* || $answer != *ok ]]; then
    echo "--- server log ---" >&2
    cat "$dir/server.log" >&2
    status=1
  fi
  [[ -f $dir/data/bravely.redb ]] && echo "created data/bravely.redb in the empty directory"
  rm -rf "$dir"
  return "$status"
}

if [[ ${SKIP_STATIC:-0} == 1 ]]; then
  section "static: skipped (SKIP_STATIC=1)"
  record static skipped 0
else
  run_step static static_check && STATIC_OK=1 || true
fi

# --- the container image ----------------------------------------------------------------
# tests/image.sh: the Dockerfile's final stage around the static binary, run by a real
# Docker engine (a private dockerd when none runs). Exit 77: no engine could be started
# on this machine, recorded as skipped with a warning rather than as a failure.
image_check() {
  local status=0
  bash tests/image.sh "$TARGET_DIR/$MUSL_TARGET/$STATIC_PROFILE/bravely" || status=$?
  if ((status == 77)); then
    echo "WARNING: no container engine could be started: the image was not checked"
    return 0
  fi
  return "$status"
}

if [[ ${SKIP_IMAGE:-0} == 1 ]]; then
  section "image: skipped (SKIP_IMAGE=1)"
  record image skipped 0
elif [[ ${STATIC_OK:-0} != 1 ]]; then
  section "image: skipped (no static binary: the static step was skipped or failed)"
  record image skipped 0
else
  run_step image image_check || true
fi

# --- supply chain: cargo deny -------------------------------------------------------
CARGO_DENY_VERSION=0.20.2

deny_check() {
  if ! cargo deny --version >/dev/null 2>&1; then
    echo "installing cargo-deny $CARGO_DENY_VERSION (cargo install --locked; several minutes, once)"
    cargo install --locked cargo-deny --version "$CARGO_DENY_VERSION" || return 1
  fi
  cargo deny --version
  cargo deny check licenses bans sources || return 1
  # Advisories need the RustSec database from GitHub; a machine without that network
  # access gets a warning for this one check, not a failure.
  local out status=0
  out=$(cargo deny check advisories 2>&1) || status=$?
  printf '%s\n' "$out"
  if ((status != 0)) && grep -qiE 'fetch|resolve host|network|connect|advisory database|advisory-db' <<<"$out" &&
    ! grep -qE 'error\[(vulnerability|unsound|yanked|unmaintained)\]' <<<"$out"; then
    echo "WARNING: the advisory database could not be fetched; advisories were not checked"
    return 0
  fi
  return "$status"
}

if [[ ${SKIP_DENY:-0} == 1 ]]; then
  section "supply: skipped (SKIP_DENY=1)"
  record supply skipped 0
else
  run_step supply deny_check || true
fi

# --- the book: mdBook build and link check ----------------------------------------
if [[ ${SKIP_DOCS:-0} == 1 ]]; then
  section "docs: skipped (SKIP_DOCS=1)"
  record docs skipped 0
else
  run_step docs bash docs/tools/check.sh || true
  count_tests "$RUNNER" "$LOG_DIR/docs.log"
fi

# --- browser end-to-end tests ---------------------------------------------------
if [[ $SKIP_E2E == 1 ]]; then
  section "e2e: skipped (SKIP_E2E=1)"
  record build skipped 0
  record e2e skipped 0
elif run_step build cargo build --all-targets; then
  run_step e2e bash e2e/run.sh "$TARGET_DIR/debug/bravely" || true
  count_tests node "$LOG_DIR/e2e.log"
else
  record e2e skipped 0
fi

# --- summary -------------------------------------------------------------------
section summary
for i in "${!STEP_NAMES[@]}"; do
  printf '  %-8s %s\n' "${STEP_NAMES[$i]}" "${STEP_RESULTS[$i]}"
done
if ((${#FAILED_STEPS[@]})); then
  echo "FAILED steps: ${FAILED_STEPS[*]}"
else
  echo "all steps passed"
fi
if ((COUNTS_OK)); then
  printf 'tests: %d passed, %d failed, %d skipped\n' "$TOTAL_PASSED" "$TOTAL_FAILED" "$TOTAL_SKIPPED"
fi
if ((${#FAILED_STEPS[@]})); then
  exit 1
fi
