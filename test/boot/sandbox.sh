#!/bin/bash
# Runs one boot of a fake EC2 instance. The boot harness (harness.ts) starts this script with
# `unshare --mount --net`, so every mount below lives in a private mount namespace that dies with
# this process, and the boot has no network at all (it can never reach AWS).
#
# $1: the instance's disk, a directory that stands for its root filesystem (persists across boots)
# $2: the harness image: usr/bin (allowed host tools plus stubs) and harness/ (stub helpers)
#
# Inside, the instance sees a chroot with its own /etc, /opt, /var, /data, /root (the disk), fresh
# /dev, /run and /tmp for every boot, and the host's /usr/lib, /usr/lib64 and /usr/share read-only.
set -euo pipefail
root=$1
image=$2
[ -f "$root/.harness/boot" ] || { echo "sandbox: $root is not a harness disk" >&2; exit 98; }

ro_bind() {
  mount --bind "$1" "$2"
  mount -o remount,bind,ro "$2"
}
ro_bind "$image/usr/bin" "$root/usr/bin"
for dir in lib lib64 share; do
  if [ -d "/usr/$dir" ]; then ro_bind "/usr/$dir" "$root/usr/$dir"; fi
done
ro_bind "$image/harness" "$root/.harness-image"

# /dev is fresh at every boot, as devtmpfs is; the harness's udev adds the EBS devices.
mount -t tmpfs -o mode=755 tmpfs "$root/dev"
for node in null zero random urandom full; do
  : > "$root/dev/$node"
  mount --bind "/dev/$node" "$root/dev/$node"
done
ln -s /proc/self/fd "$root/dev/fd"
ln -s /proc/self/fd/0 "$root/dev/stdin"
ln -s /proc/self/fd/1 "$root/dev/stdout"
ln -s /proc/self/fd/2 "$root/dev/stderr"
mkdir -p "$root/dev/shm" "$root/dev/disk/by-id" "$root/dev/disk/by-uuid"
mount -t tmpfs -o mode=755 tmpfs "$root/run"
mount -t tmpfs -o mode=1777 tmpfs "$root/tmp"
mount --rbind /proc "$root/proc"

exec chroot "$root" /bin/bash /.harness-image/boot.sh
