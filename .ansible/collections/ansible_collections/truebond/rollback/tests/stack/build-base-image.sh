#!/usr/bin/env bash
# Build the drill stack's base image (Debian's python3 and nothing else) without a
# registry: download the .deb closure of python3 with apt, unpack it into a merged-/usr
# tree and import that tree with `docker import`. No maintainer scripts run, so the
# image has no users and no CA certificates, which the test app does not need.
set -euo pipefail

image=${BASE_IMAGE:-truebond-base:bookworm}
work=${BASE_IMAGE_WORKDIR:-/var/tmp/truebond-base-build}

if docker image inspect "$image" >/dev/null 2>&1; then
  echo "base image $image already present; keeping it"
  exit 0
fi

rm -rf "$work"
mkdir -p "$work/debs" "$work/rootfs"

# The dependency closure of python3, without recommends or suggests. Virtual package
# names appear in angle brackets and have no .deb of their own.
mapfile -t packages < <(
  apt-cache depends --recurse --no-recommends --no-suggests --no-conflicts \
    --no-breaks --no-replaces --no-enhances python3 \
    | grep -E '^[a-z0-9]' | sort -u
)
(cd "$work/debs" && apt-get download -qq "${packages[@]}" >/dev/null)

root="$work/rootfs"
mkdir -p "$root/usr/bin" "$root/usr/sbin" "$root/usr/lib" "$root/usr/lib64"
for dir in bin sbin lib lib64; do
  ln -s "usr/$dir" "$root/$dir"
done
for deb in "$work"/debs/*.deb; do
  dpkg-deb --fsys-tarfile "$deb" | tar -x -C "$root" --keep-directory-symlink
done
mkdir -p "$root/tmp" "$root/etc" "$root/app"
chmod 1777 "$root/tmp"
printf 'root:x:0:0:root:/root:/bin/sh\napp:x:10001:10001:app:/app:/bin/sh\n' > "$root/etc/passwd"
printf 'root:x:0:\napp:x:10001:\n' > "$root/etc/group"
rm -rf "$root/usr/share/doc" "$root/usr/share/man" "$root/usr/share/locale"

tar -C "$root" -c . | docker import \
  --change 'ENV PATH=/usr/local/bin:/usr/bin:/bin' \
  --change 'CMD ["python3"]' - "$image" >/dev/null
rm -rf "$work"
echo "built base image $image"
