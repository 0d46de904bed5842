#!/usr/bin/env bash
# Start or stop the systemd test host: a container with systemd as PID 1 and Debian's
# redis-server unit on 127.0.0.1:16390 (host networking, so the port is the
# machine's). `start` builds the image first when it is missing and waits until
# Redis replies to PING.
#   run.sh start | stop | status
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
image=${SYSTEMD_HOST_IMAGE:-truebond-systemd-redis:bookworm}
name=${SYSTEMD_HOST_CONTAINER:-truebond-systemd-redis}
redis_port=${SYSTEMD_HOST_REDIS_PORT:-16390}
boot_timeout=${SYSTEMD_HOST_BOOT_TIMEOUT:-60}

start() {
  "$here/build.sh"
  docker rm -f "$name" >/dev/null 2>&1 || true
  # --privileged fails in this sandbox, so SYS_ADMIN and the cgroup mount give
  # systemd what it needs. SIGRTMIN+3 is the signal that makes systemd shut down.
  docker run -d --name "$name" \
    --cap-add SYS_ADMIN \
    -v /sys/fs/cgroup:/sys/fs/cgroup:rw \
    --tmpfs /run --tmpfs /run/lock \
    --network host \
    --stop-signal SIGRTMIN+3 \
    "$image" /lib/systemd/systemd >/dev/null
  local deadline=$((SECONDS + boot_timeout))
  until docker exec "$name" redis-cli -h 127.0.0.1 -p "$redis_port" ping 2>/dev/null | grep -q PONG; do
    if [ $SECONDS -ge $deadline ]; then
      echo "redis-server in $name did not answer PING on 127.0.0.1:$redis_port within ${boot_timeout} s" >&2
      docker exec "$name" systemctl --no-pager status redis-server >&2 || true
      docker logs --tail 30 "$name" >&2 || true
      exit 1
    fi
    sleep 0.3
  done
  echo "systemd host $name is up, and redis-server replies to PING on 127.0.0.1:$redis_port"
}

stop() {
  docker rm -f "$name" >/dev/null 2>&1 || true
  echo "systemd host $name removed"
}

status() {
  docker exec "$name" systemctl is-active redis-server
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  status) status ;;
  *)
    echo "usage: $0 start|stop|status" >&2
    exit 2
    ;;
esac
