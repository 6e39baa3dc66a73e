#!/usr/bin/env bash
# Start the loopback servers the `server`-marked tests use, each only if it is down, with the
# machine's own start command, and wait until it accepts connections. Never stops or
# reconfigures a running one. Where a server's command is missing, say so and go on: its tests
# skip with the reason (or fail under CI=true, which is the point).
set -uo pipefail

up() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

start() { # name port command...
    local name=$1 port=$2
    shift 2
    if up "$port"; then
        echo "servers: $name up on 127.0.0.1:$port"
        return
    fi
    echo "servers: $name down on 127.0.0.1:$port; starting: $*"
    if ! "$@"; then
        echo "servers: could not start $name" >&2
        return
    fi
    for _ in $(seq 1 100); do
        up "$port" && { echo "servers: $name up"; return; }
        sleep 0.1
    done
    echo "servers: $name did not come up on 127.0.0.1:$port within 10 s" >&2
}

if [ -d /etc/postgresql ]; then
    start postgres 5432 pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -1)" main start
fi
if [ -x /usr/sbin/mosquitto ] && [ -f /etc/mosquitto/mosquitto.conf ]; then
    start mosquitto 1883 /usr/sbin/mosquitto -d -c /etc/mosquitto/mosquitto.conf
fi
if [ -x /usr/sbin/nats-server ]; then
    start nats 4222 start-stop-daemon --start --oknodo --background --exec /usr/sbin/nats-server \
        -- -a 127.0.0.1 -p 4222 -js -sd /var/lib/nats-server -l /var/log/nats-server.log
fi
exit 0
