#!/usr/bin/env bash
# apt-install.sh PACKAGE…: installs the Debian packages that are missing (apt-get update
# once, then install); does nothing when every one is there.
set -euo pipefail
missing=()
for package in "$@"; do dpkg -s "$package" >/dev/null 2>&1 || missing+=("$package"); done
[ ${#missing[@]} = 0 ] && exit 0
echo "==> installing: ${missing[*]}"
sudo=""
[ "$(id -u)" = 0 ] || sudo="sudo"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
