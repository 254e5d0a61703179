#!/usr/bin/env bash
# The container image, checked with a real Docker engine:
#
#   ./tests/image.sh [BINARY]     (default: target/x86_64-unknown-linux-musl/dist/bravely)
#
# tests/run.sh runs it after the static step (its "image" step). The Dockerfile's build
# stage pulls rust:1-bookworm from Docker Hub, which the development and CI machines cannot
# reach, so this builds the image's final stage exactly as the Dockerfile writes it (the
# lines from its last `FROM scratch` on, read from the file), with a stand-in build stage
# that holds the static binary built beforehand and this machine's CA bundle. Then it runs
# the image with a data volume and checks: /healthz and /readyz answer; the database is
# created on the volume; `docker stop` (SIGTERM) ends it gracefully with status 0; the
# image's CLI adds a user on that volume and a second container sees it (same database);
# the image holds nothing but the binary and the CA bundle.
#
# Uses the running engine when `docker info` works; otherwise starts a private dockerd
# (Debian's docker.io, installed with apt when missing) with the vfs storage driver, no
# bridge and no iptables rules, on a socket in a temporary directory, and stops it by PID.
# The container uses the host's network and listens on 127.0.0.1 only.
#
# Exit status: 0 passed, 1 failed, 77 no engine could be started here, or it cannot run a
# container of the bare binary (skipped).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BIN=${1:-$ROOT/target/x86_64-unknown-linux-musl/dist/bravely}
[[ -x $BIN ]] || { echo "no binary at $BIN: build it with cargo build --profile dist --target x86_64-unknown-linux-musl" >&2; exit 1; }
CA=/etc/ssl/certs/ca-certificates.crt
[[ -f $CA ]] || { echo "no CA bundle at $CA (Debian: ca-certificates)" >&2; exit 1; }

WORK=$(mktemp -d "${TMPDIR:-/tmp}/bravely-image.XXXXXX")
DOCKERD_PID=""
TAG=bravely-image-check:$$
cleanup() {
  set +e
  if [[ -n ${DOCKER:-} ]]; then
    $DOCKER rm -f bravely-check-1-$$ bravely-check-2-$$ >/dev/null 2>&1
    $DOCKER rmi -f "$TAG" "$TAG-probe" >/dev/null 2>&1
  fi
  if [[ -n $DOCKERD_PID ]]; then
    kill -TERM "$DOCKERD_PID" 2>/dev/null
    for _ in $(seq 50); do kill -0 "$DOCKERD_PID" 2>/dev/null || break; sleep 0.2; done
    kill -KILL "$DOCKERD_PID" 2>/dev/null
    # The engine leaves its network-namespace file mounted.
    umount "$WORK"/engine/exec/netns/* 2>/dev/null
  fi
  # The private engine's files (vfs layers) are root-owned copies; remove them all.
  rm -rf "$WORK"
}
trap cleanup EXIT

if docker info >/dev/null 2>&1; then
  DOCKER=docker
else
  if ! command -v dockerd >/dev/null && [[ ! -x /usr/sbin/dockerd ]]; then
    echo "installing docker.io (apt)"
    SUDO=()
    ((EUID == 0)) || SUDO=(sudo)
    if ! { "${SUDO[@]}" apt-get update -qq </dev/null &&
      DEBIAN_FRONTEND=noninteractive "${SUDO[@]}" apt-get install -y -qq --no-install-recommends docker.io </dev/null; }; then
      echo "could not install docker.io: no container engine, image not checked" >&2
      exit 77
    fi
  fi
  DOCKERD=$(command -v dockerd || echo /usr/sbin/dockerd)
  mkdir -p "$WORK/engine"
  "$DOCKERD" --storage-driver=vfs --iptables=false --ip-masq=false --bridge=none \
    --host "unix://$WORK/engine/docker.sock" --data-root "$WORK/engine/root" \
    --exec-root "$WORK/engine/exec" --pidfile "$WORK/engine/dockerd.pid" >"$WORK/engine/dockerd.log" 2>&1 &
  DOCKERD_PID=$!
  # Debian's client matches Debian's engine; another client on PATH may be newer.
  CLIENT=/usr/bin/docker
  [[ -x $CLIENT ]] || CLIENT=docker
  DOCKER="$CLIENT --host unix://$WORK/engine/docker.sock"
  for _ in $(seq 100); do $DOCKER info >/dev/null 2>&1 && break; sleep 0.2; done
  if ! $DOCKER info >/dev/null 2>&1; then
    echo "the private dockerd did not start (no container engine here, image not checked):" >&2
    tail -n 20 "$WORK/engine/dockerd.log" >&2
    exit 77
  fi
  echo "started a private dockerd (pid $DOCKERD_PID): $($DOCKER version --format '{{.Server.Version}}')"
fi

# Can this engine run a container at all (cgroups, namespaces, host network)? Probe with the
# binary alone printing its version, so that a machine whose engine starts but cannot run
# containers is told apart from a broken image.
mkdir -p "$WORK/probe"
cp "$BIN" "$WORK/probe/probe"
printf 'FROM scratch\nCOPY probe /probe\nENTRYPOINT ["/probe", "--version"]\n' >"$WORK/probe/Dockerfile"
if ! $DOCKER build -q -t "$TAG-probe" "$WORK/probe" >/dev/null 2>"$WORK/probe.err" ||
  ! probe=$($DOCKER run --rm --network host "$TAG-probe" 2>>"$WORK/probe.err"); then
  echo "this engine cannot run containers here (image not checked):" >&2
  tail -n 5 "$WORK/probe.err" >&2
  exit 77
fi
$DOCKER rmi -f "$TAG-probe" >/dev/null 2>&1 || true
echo "the engine runs containers: $probe"

# The build context: the binary, the CA bundle, and the Dockerfile's final stage behind a
# stand-in build stage that provides the two paths that stage copies from.
mkdir -p "$WORK/context"
cp "$BIN" "$WORK/context/bravely"
cp "$CA" "$WORK/context/ca-certificates.crt"
final_from=$(grep -n '^FROM scratch' "$ROOT/Dockerfile" | tail -n 1 | cut -d: -f1)
[[ -n $final_from ]] || { echo "Dockerfile has no 'FROM scratch' stage" >&2; exit 1; }
{
  echo "FROM scratch AS builder"
  echo "COPY bravely /bravely"
  echo "COPY ca-certificates.crt /etc/ssl/certs/ca-certificates.crt"
  tail -n "+$final_from" "$ROOT/Dockerfile"
} >"$WORK/context/Dockerfile"
echo "--- the image's Dockerfile (final stage from $ROOT/Dockerfile, line $final_from on) ---"
cat "$WORK/context/Dockerfile"
echo "---"
$DOCKER build -q -t "$TAG" "$WORK/context" >/dev/null
size=$($DOCKER image inspect --format '{{.Size}}' "$TAG")
echo "image size: $size bytes (binary $(stat -c %s "$BIN"), CA bundle $(stat -c %s "$CA"))"

# Nothing but the binary and the CA bundle in the image.
$DOCKER create --name bravely-check-1-$$ "$TAG" >/dev/null
files=$($DOCKER export bravely-check-1-$$ | tar -t | grep -vE '/$' | grep -vE '^(\.dockerenv|dev/console|etc/(hostname|hosts|resolv\.conf|mtab))$' | sort | tr '\n' ' ')
$DOCKER rm bravely-check-1-$$ >/dev/null
echo "files in the image: $files"
[[ $files == "bravely etc/ssl/certs/ca-certificates.crt " ]] || { echo "unexpected files in the image" >&2; exit 1; }

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
mkdir -p "$WORK/volume"

get() { # get PATH: the body, or nothing
  python3 - "$port" "$1" <<'PY'
import sys, urllib.request
try:
    print(urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[1]}{sys.argv[2]}", timeout=5).read().decode())
except Exception as e:
    print(f"error: {e}")
PY
}

# A container's whole log (read into a variable, not piped into `grep -q`: with pipefail,
# grep stopping at its first match would fail the pipeline with SIGPIPE).
logs() { $DOCKER logs "$1" 2>&1; }

run_container() { # run_container NAME: start the image on the volume, wait for /healthz
  $DOCKER run -d --name "$1" --network host -e "BRAVELY_LISTEN=127.0.0.1:$port" \
    -v "$WORK/volume:/data" "$TAG" >/dev/null
  local body=""
  for _ in $(seq 100); do
    body=$(get /healthz)
    [[ $body == ok ]] && break
    sleep 0.1
  done
  echo "$1: GET /healthz: $body"
  [[ $body == ok ]] || { $DOCKER logs "$1" >&2; return 1; }
}

stop_container() { # stop_container NAME: SIGTERM, expect a graceful exit 0
  $DOCKER stop -t 15 "$1" >/dev/null
  local code
  code=$($DOCKER inspect --format '{{.State.ExitCode}}' "$1")
  echo "$1: stopped with exit status $code"
  [[ $code == 0 ]] || { $DOCKER logs "$1" >&2; return 1; }
  [[ $(logs "$1") == *"bravely: stopped"* ]] || { echo "$1: no graceful stop in its log" >&2; logs "$1" >&2; return 1; }
}

run_container bravely-check-1-$$
ready=$(get /readyz)
echo "GET /readyz: $ready"
[[ $ready == *'"ready":true'* ]] || exit 1
[[ $(logs bravely-check-1-$$) == */setup/* ]] || { echo "no setup link in the log" >&2; exit 1; }
stop_container bravely-check-1-$$
[[ -s $WORK/volume/bravely.redb ]] || { echo "no database on the volume" >&2; ls -la "$WORK/volume" >&2; exit 1; }
echo "database on the volume: $(stat -c %s "$WORK/volume/bravely.redb") bytes"

# The image's CLI on the same volume (what an operator runs with `docker run --rm`): add
# the first administrator while the server is stopped.
printf 'correct horse battery staple\n' | $DOCKER run --rm -i -v "$WORK/volume:/data" "$TAG" \
  user add --email ops@example.com --name Ops --superuser
# A second container (an upgrade or a restart) opens the same database: the user is there,
# so it no longer offers the first-administrator link.
run_container bravely-check-2-$$
stop_container bravely-check-2-$$
if [[ $(logs bravely-check-2-$$) == */setup/* ]]; then
  echo "the second container did not see the user added on the volume" >&2
  $DOCKER logs bravely-check-2-$$ >&2
  exit 1
fi
echo "the second container opened the same database (the user added in between is there)"
echo "image check passed"
