#!/usr/bin/env bash
# Make sure a Redis responds on 127.0.0.1:6379 for the tests. When none responds, start one,
# installing Debian's redis-server first if needed.
set -euo pipefail

redis_answers() {
    if command -v redis-cli >/dev/null 2>&1; then
        redis-cli -h 127.0.0.1 -p 6379 ping 2>/dev/null | grep -q PONG
    else
        # Without redis-cli, send PING over bash's /dev/tcp.
        (exec 3<>/dev/tcp/127.0.0.1/6379 && printf 'PING\r\n' >&3 && head -c 5 <&3 | grep -q PONG) 2>/dev/null
    fi
}

if redis_answers; then
    exit 0
fi
if ! command -v redis-server >/dev/null 2>&1; then
    echo "redis-server not found; installing Debian's redis-server" >&2
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null
fi
redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no
for _ in $(seq 1 50); do
    redis_answers && exit 0
    sleep 0.1
done
echo "error: Redis did not respond on 127.0.0.1:6379 within 5 s of starting: check that nothing else holds the port" >&2
exit 1
