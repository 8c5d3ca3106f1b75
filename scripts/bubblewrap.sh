#!/usr/bin/env bash
# Makes sure bubblewrap (bwrap), the sandbox every setup and test command runs in, and nsenter
# (util-linux), with which the worker puts its egress proxy in the network namespace of a command
# that may have network, are on this machine: installs them with the system's package manager
# when we are root, otherwise says how. Never fails the calling command: without bwrap, workers
# need WEAVER_SANDBOX=auto or off; without nsenter, WEAVER_SANDBOX_NETWORK=none (or auto).
set -u
need=()
command -v bwrap >/dev/null 2>&1 || need+=(bubblewrap)
command -v nsenter >/dev/null 2>&1 || need+=(util-linux)
[ ${#need[@]} -eq 0 ] && exit 0
if [ "$(uname -s)" != Linux ]; then
  echo "weaver: bubblewrap needs Linux; on this machine commands run unsandboxed (WEAVER_SANDBOX=auto)." >&2
  exit 0
fi
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then sudo -n "$@"; else return 1; fi; }
echo "weaver: installing ${need[*]} for the command sandbox…" >&2
if command -v apt-get >/dev/null 2>&1; then
  { as_root apt-get install -y -qq "${need[@]}" || { as_root apt-get update -qq && as_root apt-get install -y -qq "${need[@]}"; }; } >/dev/null 2>&1
elif command -v dnf >/dev/null 2>&1; then
  as_root dnf install -y -q "${need[@]}" >/dev/null 2>&1
elif command -v apk >/dev/null 2>&1; then
  as_root apk add -q "${need[@]}" >/dev/null 2>&1
fi
missing=()
command -v bwrap >/dev/null 2>&1 || missing+=(bubblewrap)
command -v nsenter >/dev/null 2>&1 || missing+=(util-linux)
if [ ${#missing[@]} -eq 0 ]; then
  echo "weaver: $(bwrap --version) and nsenter installed." >&2
  exit 0
fi
cat >&2 <<MSG
weaver: ${missing[*]} could not be installed here (needs root or sudo).
  Install:  sudo apt-get install ${missing[*]}   (Debian/Ubuntu)
            sudo dnf install ${missing[*]}       (Fedora/RHEL)
            sudo apk add ${missing[*]}           (Alpine)
  Until then the escape-suite tests (test/sandbox.test.ts) fail, and a worker needs
  WEAVER_SANDBOX=auto (or WEAVER_DEV=1) to start$( [ "${missing[*]}" = util-linux ] && printf ' (or WEAVER_SANDBOX_NETWORK=none: no command gets network)' ).
MSG
exit 0
