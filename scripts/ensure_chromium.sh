#!/usr/bin/env bash
# Make sure Debian's Chromium is at /usr/bin/chromium for the browser tests of the API docs:
# install the `chromium` package when it is missing (which needs root and apt).
set -euo pipefail

if [ -x /usr/bin/chromium ]; then
    exit 0
fi
echo "chromium not found; installing Debian's chromium" >&2
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
if [ ! -x /usr/bin/chromium ]; then
    echo "error: /usr/bin/chromium is still missing after installing Debian's chromium" >&2
    exit 1
fi
