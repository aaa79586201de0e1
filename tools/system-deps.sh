#!/usr/bin/env bash
# Debian packages the test suite uses, installed when missing (called by `make test`):
#   chromium, chromium-driver  the HTML report is rendered in headless Chromium (tests/test_html_browser.py)
#   dataset-fashion-mnist      real images for the probe tests (tests/test_fashion_mnist.py)
# Needs root or sudo and apt-get; without them it says what is missing and the tests
# that need it are skipped with that reason.
set -euo pipefail

missing=()
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
command -v chromedriver >/dev/null 2>&1 || missing+=(chromium-driver)
[ -e /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz ] || missing+=(dataset-fashion-mnist)
[ ${#missing[@]} -eq 0 ] && exit 0

if ! command -v apt-get >/dev/null 2>&1; then
    echo "system-deps: no apt-get; install ${missing[*]} yourself or the tests that need them are skipped" >&2
    exit 0
fi
if [ "$(id -u)" -eq 0 ]; then
    SUDO=()
elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    SUDO=(sudo -n)
else
    echo "system-deps: not root and no sudo; install ${missing[*]} yourself or the tests that need them are skipped" >&2
    exit 0
fi
echo "system-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
"${SUDO[@]}" apt-get install -y -q "${missing[@]}" >/dev/null \
    || { "${SUDO[@]}" apt-get update -q >/dev/null && "${SUDO[@]}" apt-get install -y -q "${missing[@]}" >/dev/null; }
