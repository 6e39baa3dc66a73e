#!/usr/bin/env bash
# Install the Debian packages the tests need, only when missing (idempotent, non-interactive):
#   systemd    -> systemd-analyze, for tests/integration/test_systemd_unit.py
#   logrotate  -> logrotate, to check systemd/ingestd.logrotate
#   mosquitto, mosquitto-clients, nats-server, postgresql-client -> the broker and database tests
# Needs root (or sudo) only when something is actually missing. Elsewhere than Debian/Ubuntu it
# prints what is missing and leaves it to you; the tests that need these tools skip without them
# (unless CI=true).
set -euo pipefail

missing=()
command -v systemd-analyze >/dev/null 2>&1 || missing+=(systemd)
command -v logrotate >/dev/null 2>&1 || [ -x /usr/sbin/logrotate ] || missing+=(logrotate)
# The broker tests start private brokers (to restart them mid-run) and publish with real clients.
[ -x /usr/sbin/mosquitto ] || command -v mosquitto >/dev/null 2>&1 || missing+=(mosquitto)
command -v mosquitto_pub >/dev/null 2>&1 || missing+=(mosquitto-clients)
[ -x /usr/sbin/nats-server ] || command -v nats-server >/dev/null 2>&1 || missing+=(nats-server)
command -v psql >/dev/null 2>&1 || missing+=(postgresql-client)

if [ ${#missing[@]} -eq 0 ]; then
    echo "system-deps: all present"
    exit 0
fi

if ! command -v apt-get >/dev/null 2>&1; then
    echo "system-deps: missing ${missing[*]} and no apt-get here; install them with your package manager" >&2
    exit 0
fi

sudo=()
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then
        sudo=(sudo -n)
    else
        echo "system-deps: missing ${missing[*]}; run as root to install them" >&2
        exit 0
    fi
fi

echo "system-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" apt-get update -qq
"${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
