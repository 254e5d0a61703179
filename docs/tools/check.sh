#!/usr/bin/env bash
# The test command's docs step (tests/run.sh), also runnable alone:
#
#   docs/tools/check.sh
#
# 1. installs mdBook (pinned, MDBOOK_VERSION) into $BRAVELY_TOOLS_DIR (default
#    ~/.cargo/bravely-tools) when missing: `cargo install --locked --debug
#    --no-default-features`, once per machine (a debug build without serve/watch/search
#    compiles in about half the time of a release build, and builds this book in well under
#    a second);
# 2. builds the book (docs/) into a temporary directory (book.toml: create-missing = false, so
#    a chapter SUMMARY.md names but that does not exist is an error);
# 3. runs the link check on it: the ignored test docs::built_book_has_no_broken_links
#    (tests/it/docs.rs) with BRAVELY_BOOK_DIR set, through cargo-nextest when installed
#    (TEST_RUNNER=cargo: cargo test).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$ROOT"

MDBOOK_VERSION=${MDBOOK_VERSION:-0.5.4}
TOOLS_DIR=${BRAVELY_TOOLS_DIR:-${CARGO_HOME:-$HOME/.cargo}/bravely-tools}
MDBOOK_BIN=$TOOLS_DIR/mdbook-$MDBOOK_VERSION/bin/mdbook

started=$SECONDS
if ! { [[ -x $MDBOOK_BIN ]] && "$MDBOOK_BIN" --version 2>/dev/null | grep -qF "$MDBOOK_VERSION"; }; then
  echo "installing mdbook $MDBOOK_VERSION into $TOOLS_DIR (cargo install --locked --debug --no-default-features; a few minutes, once per machine)"
  cargo install --locked --debug --no-default-features "mdbook@$MDBOOK_VERSION" --root "$TOOLS_DIR/mdbook-$MDBOOK_VERSION"
  echo "mdbook installed in $((SECONDS - started)) s"
fi
echo "$("$MDBOOK_BIN" --version)"

OUT=$(mktemp -d "${TMPDIR:-/tmp}/bravely-book.XXXXXX")
trap 'rm -rf "$OUT"' EXIT
step=$SECONDS
"$MDBOOK_BIN" build docs -d "$OUT"
echo "book built in $((SECONDS - step)) s: $(find "$OUT" -name '*.html' | wc -l) pages"

export BRAVELY_BOOK_DIR=$OUT
if [[ ${TEST_RUNNER:-nextest} == nextest ]] && cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --test it --run-ignored only --no-tests=fail -E 'test(/^docs::built_book/)'
else
  cargo test --test it docs::built_book -- --ignored
fi
