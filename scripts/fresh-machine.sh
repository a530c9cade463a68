#!/bin/sh
# fresh-machine.sh -- checks that the README's two commands work first time
# on a fresh Debian 12 where only git and make are installed.
#
#   sh scripts/fresh-machine.sh [COMMIT]        (default: HEAD; as root)
#
# The fresh machine is a minimal bookworm (mmdebstrap --variant=minbase,
# plus git and make) entered with chroot.  In it: git clone of COMMIT (from
# a bundle), `make test` (which installs every other package it needs from
# the Debian mirror), then `make run`: hotdeskd must start, serve a phone
# file to curl, and stop on Ctrl-C (SIGINT).  The minimal system is built
# once and kept as a tarball in $HOTDESKD_CACHE (default
# /var/cache/hotdeskd-ci); each run unpacks a new copy, so every run starts
# from the same fresh machine.  Needs root, mmdebstrap and the mirror.
set -eu
repo=$(cd "$(dirname "$0")/.." && pwd)
commit=${1:-HEAD}
cache=${HOTDESKD_CACHE:-/var/cache/hotdeskd-ci}
base=$cache/bookworm-minbase-git-make.tar
port=${PORT:-18080}

if [ "$(id -u)" -ne 0 ]; then
	echo "fresh-machine: needs root (chroot, mounts)" >&2
	exit 2
fi
command -v mmdebstrap >/dev/null || { echo "fresh-machine: apt-get install mmdebstrap" >&2; exit 2; }
mkdir -p "$cache"
if [ ! -s "$base" ]; then
	echo "fresh-machine: building the minimal Debian 12 (cached in $base)"
	mmdebstrap --quiet --format=tar --variant=minbase --include=git,make bookworm "$base.tmp"
	mv "$base.tmp" "$base"
fi

root=$(mktemp -d /var/tmp/hotdeskd-fresh.XXXXXX)
mounted=""
cleanup() {
	for m in $mounted; do umount -l "$root$m" 2>/dev/null || true; done
	# never remove a tree that still has the host's /dev or /proc in it
	if grep -q " $root/" /proc/mounts; then
		echo "fresh-machine: $root still has mounts: not removed" >&2
		return
	fi
	rm -rf "$root"
}
trap cleanup EXIT INT TERM
tar -C "$root" -xf "$base"
for m in /proc /sys /dev /dev/pts /dev/shm; do
	mount --bind "$m" "$root$m"
	mounted="$m $mounted"
done
cp /etc/resolv.conf "$root/etc/resolv.conf"
# what every installed Debian has and minbase lacks: "localhost" resolves
# (Chromium's driver listens on it)
[ -e "$root/etc/hosts" ] || printf '127.0.0.1\tlocalhost\n::1\t\tlocalhost ip6-localhost ip6-loopback\n' >"$root/etc/hosts"
git -C "$repo" bundle create -q "$root/root/hotdeskd.bundle" "$commit"
sha=$(git -C "$repo" rev-parse "$commit")
in_chroot() { chroot "$root" /usr/bin/env -i HOME=/root PATH=/usr/sbin:/usr/bin:/sbin:/bin \
	LANG=C.UTF-8 /bin/sh -c "$1"; }

echo "fresh-machine: only git and make: $(in_chroot 'command -v gcc cc pkg-config curl python3 || true' | tr '\n' ' ')"
in_chroot "cd /root && git clone -q hotdeskd.bundle hotdeskd && cd hotdeskd && git checkout -q $sha"
echo "fresh-machine: make test"
if ! in_chroot "cd /root/hotdeskd && make test" > "$root.test.log" 2>&1; then
	tail -60 "$root.test.log"
	echo "fresh-machine: make test FAILED (log: $root.test.log)"
	exit 1
fi
grep -E "unit binaries:|passed|failed" "$root.test.log" | tail -3

echo "fresh-machine: make run"
# in its own process group (setsid), so that Ctrl-C can be sent to all of it
in_chroot "cd /root/hotdeskd && exec setsid sh -c 'echo \$\$ > /root/run.pid; exec env PORT=$port make run'" \
	> "$root.run.log" 2>&1 &
runpid=$!
i=0
until grep -q "hotdeskd is running" "$root.run.log"; do
	i=$((i + 1))
	if [ $i -gt 600 ] || ! kill -0 $runpid 2>/dev/null; then
		tail -40 "$root.run.log"
		echo "fresh-machine: make run did not start"
		exit 1
	fi
	sleep 0.5
done
got=$(in_chroot "curl -sf http://127.0.0.1:$port/provision/0004f2000101-line.cfg" || true)
case $got in
*demo-101*) echo "fresh-machine: make run serves 0004f2000101-line.cfg (carries demo-101)" ;;
*) tail -40 "$root.run.log"; echo "fresh-machine: make run: no phone file"; exit 1 ;;
esac
# Ctrl-C: the whole process group of `make run`
kill -INT "-$(cat "$root/root/run.pid")"
i=0
while kill -0 $runpid 2>/dev/null; do
	i=$((i + 1))
	if [ $i -gt 40 ]; then echo "fresh-machine: make run did not stop on SIGINT"; exit 1; fi
	sleep 0.5
done
grep -q "stopped" "$root.run.log" || { tail -20 "$root.run.log"; echo "fresh-machine: hotdeskd did not stop cleanly"; exit 1; }
rm -f "$root.test.log" "$root.run.log"
echo "fresh-machine: make test and make run passed on a fresh Debian 12 ($sha)"
