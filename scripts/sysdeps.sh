#!/usr/bin/env bash
# System packages the test suite uses beyond Python: Debian's Chromium (headless browser tests of
# the HTML report and the console) and Graphviz `dot` (state-diagram layout). Installs what is
# missing when it can (root and apt-get present); otherwise prints why and leaves it to the tests,
# which then report the missing program by name. Never fails the build by itself.
set -u
need=()
command -v chromium >/dev/null 2>&1 || need+=(chromium)
command -v dot >/dev/null 2>&1 || need+=(graphviz)
[ ${#need[@]} -eq 0 ] && exit 0
if [ "$(id -u)" != "0" ]; then
  echo "sysdeps: missing ${need[*]}; not root, so not installing (run: sudo apt-get install -y ${need[*]})" >&2
  exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "sysdeps: missing ${need[*]}; no apt-get on this machine, install them with its package manager" >&2
  exit 0
fi
echo "sysdeps: installing ${need[*]} (apt-get)" >&2
if ! DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${need[@]}" >/tmp/trimtab-sysdeps.log 2>&1; then
  DEBIAN_FRONTEND=noninteractive apt-get update -q >>/tmp/trimtab-sysdeps.log 2>&1 || true
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${need[@]}" >>/tmp/trimtab-sysdeps.log 2>&1 \
    || echo "sysdeps: apt-get install ${need[*]} failed (see /tmp/trimtab-sysdeps.log)" >&2
fi
exit 0
