#!/bin/sh
# tests/deploy/test_compose.py validates docker-compose.yml with a Compose client (no
# Docker engine needed for `config`). Without the v2 plugin or docker-compose, install
# Debian's docker-compose when we can: as root, with apt-get. Never fails the test run:
# without a client that test skips and says why.
if docker compose version >/dev/null 2>&1 || command -v docker-compose >/dev/null 2>&1; then
    exit 0
fi
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    echo "ensure_compose: no Compose client and none can be installed here (needs root and" \
         "apt-get); the compose file test will be skipped" >&2
    exit 0
fi
echo "ensure_compose: installing Debian's docker-compose to validate docker-compose.yml" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get install -y --no-install-recommends docker-compose >/dev/null 2>&1 \
    || { apt-get update >/dev/null 2>&1 && apt-get install -y --no-install-recommends docker-compose >/dev/null 2>&1; } \
    || echo "ensure_compose: apt-get could not install docker-compose; the compose file test will be skipped" >&2
exit 0
