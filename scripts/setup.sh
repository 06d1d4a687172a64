#!/usr/bin/env bash
# Set up gen2hal on Debian 12: the system packages it builds and tests with, then a virtual environment (.venv)
# holding gen2hal and its Python dependencies. Idempotent: a second run checks and returns in about a second.
#
#   scripts/setup.sh            build and test requirements
#   GEN2HAL_BROWSER=1 scripts/setup.sh   also Chromium, for the HTML report's browser test
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(gcc-mingw-w64-x86-64 acpica-tools libclang-common-16-dev python3-venv)
if [ "${GEN2HAL_BROWSER:-0}" = 1 ]; then packages+=(chromium); fi

missing=()
for pkg in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
    echo "setup: installing Debian packages: ${missing[*]}"
    sudo=""
    if [ "$(id -u)" != 0 ]; then sudo=sudo; fi
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

python=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    echo "setup: creating .venv with $($python --version 2>&1)"
    "$python" -m venv .venv
fi
# Reinstall only when the project's metadata changed.
stamp=.venv/.gen2hal-installed
want=$(sha256sum pyproject.toml | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null || true)" != "$want" ]; then
    echo "setup: installing gen2hal and its Python dependencies into .venv"
    .venv/bin/python -m pip install -q --disable-pip-version-check -e ".[test]"
    echo "$want" > "$stamp"
fi
echo "setup: ready. Use .venv/bin/scons, .venv/bin/gen2hal, .venv/bin/python -m pytest"
