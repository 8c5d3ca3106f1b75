#!/usr/bin/env bash
# Find or install the S3-compatible server the tests start (test/support/s3.ts): moto's server
# (`moto[server]` from PyPI, pinned) in a virtualenv under .tools/, idempotent.
#
# Prints ONLY the absolute path of a working `moto_server` on stdout; progress on stderr.
# Env:  WEAVER_S3_SERVER_SPEC   pip requirement (default moto[server]==5.2.5)
#       WEAVER_S3_SERVER_PATH   use this moto_server instead
set -euo pipefail

SPEC="${WEAVER_S3_SERVER_SPEC:-moto[server]==5.2.5}"
# Everything lives in the project's .tools/moto (a virtualenv), stamped with the spec it holds.
VENV="$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd -P)/.tools/moto"
TARGET="$VENV/bin/moto_server"
STAMP="$VENV/weaver.spec"
TOOLS="$(dirname -- "$VENV")"

log() { printf 's3-server: %s\n' "$*" >&2; }
works() { [ -x "$1" ] && "$1" --help >/dev/null 2>&1; }

if [ -n "${WEAVER_S3_SERVER_PATH:-}" ]; then
  works "$WEAVER_S3_SERVER_PATH" && { echo "$WEAVER_S3_SERVER_PATH"; exit 0; }
  log "WEAVER_S3_SERVER_PATH=$WEAVER_S3_SERVER_PATH does not run"; exit 1
fi
ready() { works "$TARGET" && [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$SPEC" ]; }
ready && { echo "$TARGET"; exit 0; }

mkdir -p "$TOOLS"
# Serialise concurrent installs (two test files, two test runs).
if command -v flock >/dev/null 2>&1; then
  exec 9>"$TOOLS/.s3-install.lock"
  flock 9
  ready && { echo "$TARGET"; exit 0; }
fi

py=""
for cand in python3 python; do
  if command -v "$cand" >/dev/null 2>&1 && "$cand" -c 'import venv' >/dev/null 2>&1; then py="$cand"; break; fi
done
if [ -z "$py" ]; then
  log "ERROR: no python3 with venv: install python3 (and python3-venv), or set WEAVER_S3_SERVER_PATH to a moto_server"; exit 1
fi
log "installing $SPEC into $VENV (once; about a minute) ..."
rm -rf "$VENV"
"$py" -m venv "$VENV" >&2
if ! "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --no-input "$SPEC" >&2; then
  log "ERROR: pip install $SPEC failed (see above)"; exit 1
fi
printf '%s' "$SPEC" >"$STAMP"
works "$TARGET" || { log "ERROR: $TARGET does not run after install"; exit 1; }
log "installed $("$VENV/bin/python" -m pip show moto 2>/dev/null | grep -i '^version' | head -n1)"
echo "$TARGET"
