#!/bin/sh
# Debian's Chromium for the browser test of `zoo serve` (tests/test_serve.py), run by `make test`:
# installed when it is missing and this machine can (root, with apt-get); elsewhere one line says
# that the test will skip. A failed install on a machine that can install is an error, so that CI
# never passes without the browser test by accident.
if command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || [ -n "$ZOO_CHROMIUM" ]; then
    exit 0
fi
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    echo "no Chromium, and no root with apt-get to install it: the browser test (tests/test_serve.py) will skip"
    exit 0
fi
start=$(date +%s)
echo "installing Debian's chromium for the browser test (apt-get) ..."
apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null || {
    echo "error: apt-get could not install chromium (the browser test needs it)" >&2
    exit 1
}
echo "chromium installed in $(( $(date +%s) - start )) s: $(chromium --version 2>/dev/null)"
