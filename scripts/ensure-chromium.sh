#!/usr/bin/env bash
# make test-ui: Debian's chromium for the browser test, at one pinned version (the Makefile's CHROMIUM_VERSION)
# for chromium, chromium-common, chromium-driver and chromium-sandbox (chromium requires chromium-common of
# its own version; the others are pinned so that nothing mixes versions).
#
#   scripts/ensure-chromium.sh VERSION
#
# Installed at VERSION: nothing to do. As root (CI): apt-get installs VERSION (downgrading a newer one).
# Not root: a missing chromium stops with the command to run; another version only warns (the test does not
# depend on the exact build, CI's run is the pinned one).
# Debian keeps a version on its mirror until a point release (or, in bookworm-security, the next security
# update) replaces it: when the pin is gone, `apt-get update && apt-cache policy chromium` lists the
# versions there; put one in the Makefile's CHROMIUM_VERSION.
set -euo pipefail
version="${1:?usage: scripts/ensure-chromium.sh VERSION}"
packages=(chromium chromium-common chromium-driver chromium-sandbox)
pinned=()
for p in "${packages[@]}"; do pinned+=("$p=$version"); done

installed_version() { dpkg-query -W -f='${Status} ${Version}' "$1" 2>/dev/null | awk '$3 == "installed" {print $4}' || true; }

wrong=()
for p in "${packages[@]}"; do
  [[ "$(installed_version "$p")" == "$version" ]] || wrong+=("$p")
done
if [[ ${#wrong[@]} -eq 0 ]]; then
  echo "chromium $version (pinned) is installed"
  exit 0
fi

if [[ "$(id -u)" == 0 ]] && command -v apt-get > /dev/null; then
  echo "installing chromium $version (pinned): ${pinned[*]}"
  apt-get update -qq
  if ! DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --allow-downgrades "${pinned[@]}"; then
    echo "chromium $version is not on the Debian mirror (any more?): apt-cache policy chromium lists what is;" \
      "set CHROMIUM_VERSION in the Makefile to one of those" >&2
    exit 1
  fi
  exit 0
fi

current="$(installed_version chromium)"
if [[ -z "$current" ]]; then
  echo "chromium missing: sudo sh -c 'apt-get update && apt-get install -y --allow-downgrades ${pinned[*]}'" >&2
  exit 1
fi
echo "warning: chromium $current is installed, the browser test is pinned to $version" \
  "(sudo apt-get install -y --allow-downgrades ${pinned[*]}); going on with $current" >&2
