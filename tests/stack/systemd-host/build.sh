#!/usr/bin/env bash
# Build the systemd test host image: a Debian bookworm minbase made with debootstrap,
# with systemd as PID 1 and Debian's redis-server unit listening on 127.0.0.1:16390.
# An existing image is kept, so the script is cheap to run before every test.
# Needs root, debootstrap and access to Debian's archive.
set -euo pipefail

image=${SYSTEMD_HOST_IMAGE:-truebond-systemd-redis:bookworm}
work=${SYSTEMD_HOST_WORKDIR:-/var/tmp/truebond-systemd-host-build}
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
redis_port=${SYSTEMD_HOST_REDIS_PORT:-16390}

if docker image inspect "$image" >/dev/null 2>&1; then
  echo "systemd host image $image already present; keeping it"
  exit 0
fi
command -v debootstrap >/dev/null || {
  echo "debootstrap is not installed; install it with: apt-get install -y debootstrap" >&2
  exit 1
}

rm -rf "$work"
mkdir -p "$work"
root="$work/rootfs"
debootstrap --variant=minbase \
  --include=systemd,systemd-sysv,dbus,python3,python3-redis,redis-server \
  bookworm "$root" "$mirror"

# Units in this container cannot create user namespaces, so Debian's redis-server
# unit fails with status 217/USER unless PrivateUsers is off.
mkdir -p "$root/etc/systemd/system/redis-server.service.d"
cat > "$root/etc/systemd/system/redis-server.service.d/10-private-users.conf" <<'UNIT'
[Service]
PrivateUsers=false
UNIT

# The container shares the machine's loopback (host networking), so Redis gets its
# own port, bound to loopback only.
conf="$root/etc/redis/redis.conf"
sed -i -E "s/^port .*/port $redis_port/; s/^bind .*/bind 127.0.0.1/" "$conf"
grep -q "^port $redis_port\$" "$conf"
grep -q '^bind 127.0.0.1$' "$conf"

# Mask units that have nothing to do in a container: consoles, logins, udev, time sync.
for unit in getty@tty1.service systemd-logind.service console-getty.service \
  systemd-udevd.service systemd-timesyncd.service; do
  ln -sf /dev/null "$root/etc/systemd/system/$unit"
done
echo truebond-systemd-redis > "$root/etc/hostname"
rm -rf "$root/var/cache/apt/archives"/*.deb "$root/usr/share/doc" "$root/usr/share/man"

tar -C "$root" -c . | docker import \
  --change 'ENV container=docker' \
  --change 'CMD ["/lib/systemd/systemd"]' - "$image" >/dev/null
rm -rf "$work"
echo "built systemd host image $image"
