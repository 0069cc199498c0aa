#!/usr/bin/env bash
# What the tests need from the system, installed with apt when missing: Debian's chromium
# for the browser tests (playwright-core drives it; no browser is ever downloaded).
# Silent when everything is there; one line naming the command to run when it cannot install.
set -euo pipefail

# CHROMIUM_PATH names another Chromium (the browser tests read it too); it is never installed.
if [ -n "${CHROMIUM_PATH:-}" ]; then
  [ -x "$CHROMIUM_PATH" ] && exit 0
  echo "CHROMIUM_PATH=$CHROMIUM_PATH is not an executable: point it at a Chromium, or unset it to use Debian's /usr/bin/chromium" >&2
  exit 1
fi

# PREREQUISITES_ROOT (for this script's own test) checks the paths under another root.
missing=()
[ -x "${PREREQUISITES_ROOT:-}/usr/bin/chromium" ] || missing+=(chromium)
[ ${#missing[@]} -eq 0 ] && exit 0

command="apt-get install -y ${missing[*]}"
if ! command -v apt-get >/dev/null 2>&1; then
  echo "the tests need ${missing[*]} (Debian's package); no apt-get here: install it so that /usr/bin/chromium exists, then run the tests again" >&2
  exit 1
fi
if [ "$(id -u)" -eq 0 ]; then
  as_root=()
elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
  as_root=(sudo -n)
else
  echo "the tests need ${missing[*]}: run 'sudo apt-get update && sudo $command', then run the tests again" >&2
  exit 1
fi

echo "installing ${missing[*]} for the tests (apt-get, once)" >&2
log=$(mktemp)
if ! { "${as_root[@]}" apt-get update -qq && DEBIAN_FRONTEND=noninteractive "${as_root[@]}" apt-get install -y -qq "${missing[@]}"; } >"$log" 2>&1; then
  tail -n 20 "$log" >&2
  rm -f "$log"
  echo "could not install ${missing[*]}: run 'apt-get update && $command' as root, then run the tests again" >&2
  exit 1
fi
rm -f "$log"
