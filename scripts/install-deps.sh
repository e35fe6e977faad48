#!/usr/bin/env bash
# Installs the Debian packages the build and the local stack need, only if any is missing.
# Arguments name more packages (make fleet adds nginx and prometheus).
set -euo pipefail

packages=(librdkafka-dev libmongoc-dev libbson-dev pkg-config make curl wrk gcc "$@")
python3 -m venv --help >/dev/null 2>&1 || packages+=(python3-venv)
missing=()
for package in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done
[ ${#missing[@]} -eq 0 ] && exit 0

echo "installing ${missing[*]}"
sudo=""
[ "$(id -u)" -ne 0 ] && sudo="sudo"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
