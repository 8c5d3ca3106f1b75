#!/usr/bin/env bash
# Makes sure bubblewrap (bwrap), the sandbox every setup and test command runs in, is on this
# machine: installs it with the system's package manager when we are root, otherwise says how.
# Never fails the calling command: without bwrap, workers need WEAVER_SANDBOX=auto or off.
set -u
command -v bwrap >/dev/null 2>&1 && exit 0
if [ "$(uname -s)" != Linux ]; then
  echo "weaver: bubblewrap needs Linux; on this machine commands run unsandboxed (WEAVER_SANDBOX=auto)." >&2
  exit 0
fi
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then sudo -n "$@"; else return 1; fi; }
echo "weaver: installing bubblewrap for the command sandbox…" >&2
if command -v apt-get >/dev/null 2>&1; then
  { as_root apt-get install -y -qq bubblewrap || { as_root apt-get update -qq && as_root apt-get install -y -qq bubblewrap; }; } >/dev/null 2>&1
elif command -v dnf >/dev/null 2>&1; then
  as_root dnf install -y -q bubblewrap >/dev/null 2>&1
elif command -v apk >/dev/null 2>&1; then
  as_root apk add -q bubblewrap >/dev/null 2>&1
fi
if command -v bwrap >/dev/null 2>&1; then
  echo "weaver: bubblewrap $(bwrap --version | awk '{print $2}') installed." >&2
  exit 0
fi
cat >&2 <<'MSG'
weaver: bubblewrap (bwrap) is not installed and could not be installed here (needs root or sudo).
  Install it:  sudo apt-get install bubblewrap   (Debian/Ubuntu)
               sudo dnf install bubblewrap       (Fedora/RHEL)
               sudo apk add bubblewrap           (Alpine)
  Until then the escape-suite tests (test/sandbox.test.ts) fail, and a worker needs
  WEAVER_SANDBOX=auto (or WEAVER_DEV=1) to start.
MSG
exit 0
