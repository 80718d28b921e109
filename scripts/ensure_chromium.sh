#!/bin/sh
# The sandbox's browser tests drive Debian's Chromium at /usr/bin/chromium. Install it
# (and an emoji font, so reactions render) when it is missing and we can: as root, with
# apt-get. Never fails the test run: without Chromium those tests skip and say why.
CHROMIUM=/usr/bin/chromium

if [ -x "$CHROMIUM" ]; then
    exit 0
fi
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    echo "ensure_chromium: $CHROMIUM is missing and cannot be installed here (needs root and apt-get);" \
         "the sandbox browser tests will be skipped" >&2
    exit 0
fi
echo "ensure_chromium: installing Debian's chromium for the sandbox browser tests" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get install -y --no-install-recommends chromium fonts-noto-color-emoji >/dev/null \
    || { apt-get update >/dev/null && apt-get install -y --no-install-recommends chromium fonts-noto-color-emoji >/dev/null; } \
    || echo "ensure_chromium: apt-get could not install chromium; the sandbox browser tests will be skipped" >&2
exit 0
