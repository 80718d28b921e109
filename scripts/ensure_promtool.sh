#!/bin/sh
# The alert-rule tests check deploy/prometheus/ with Prometheus's own promtool. Without
# one on PATH, take it from Debian's prometheus package: downloaded and unpacked into
# .cache/promtool/ (no install, no service started, no root needed). Never fails the test
# run: without promtool those tests skip and say why.
DEST=.cache/promtool
PROMTOOL="$DEST/usr/bin/promtool"

if command -v promtool >/dev/null 2>&1 || [ -x "$PROMTOOL" ]; then
    exit 0
fi
if ! command -v apt-get >/dev/null 2>&1 || ! command -v dpkg-deb >/dev/null 2>&1; then
    echo "ensure_promtool: no promtool and no apt-get/dpkg-deb to fetch it;" \
         "the alert-rule tests will be skipped" >&2
    exit 0
fi
echo "ensure_promtool: fetching promtool from Debian's prometheus package" >&2
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
if (cd "$work" && apt-get download prometheus >/dev/null 2>&1) \
    || { [ "$(id -u)" = 0 ] && apt-get update >/dev/null 2>&1 \
         && (cd "$work" && apt-get download prometheus >/dev/null 2>&1); }; then
    mkdir -p "$DEST"
    dpkg-deb -x "$work"/prometheus_*.deb "$DEST" \
        || echo "ensure_promtool: could not unpack the package; the alert-rule tests will be skipped" >&2
else
    echo "ensure_promtool: apt-get could not download prometheus; the alert-rule tests will be skipped" >&2
fi
exit 0
