#!/bin/sh
# deps.sh -- installs the Debian 12 packages hotdeskd needs, when missing.
#
#   sh scripts/deps.sh [build|test|asan|bench|container|all]   (default: test)
#
# Run as root it installs what is missing with apt-get; otherwise it prints
# the command to run and fails if anything is missing.
set -eu

build="build-essential pkg-config libmicrohttpd-dev libxml2-dev libsqlite3-dev
       libsodium-dev libjansson-dev libinih-dev libgnutls28-dev curl libcurl4-openssl-dev espeak-ng sox"
test="$build libcriterion-dev python3 python3-pytest python3-pytest-xdist tftpd-hpa sip-tester
      chromium chromium-driver python3-selenium firefox-esr python3-websocket baresip-core
      kamailio kamailio-utils-modules openssl netbase
      fail2ban prometheus mandoc man-db systemd iproute2 python3-yaml gnutls-bin strace"
asan="$test clang libclang-rt-14-dev" # clang's runtimes: sanitizers, libFuzzer
bench="$build wrk nginx-light tftpd-hpa sip-tester openssl kamailio kamailio-utils-modules netbase"
# netbase: /etc/protocols, without which kamailio cannot open TCP ("could not
# get TCP protocol number"); a minimal Debian lacks it
container="python3 python3-pytest curl sip-tester podman buildah runc mmdebstrap"

case "${1:-test}" in
build) want=$build ;;
test) want=$test ;;
asan) want=$asan ;;
bench) want=$bench ;;
container) want=$container ;;
all) want="$asan $bench $container" ;;
*) echo "usage: $0 [build|test|asan|bench|container|all]" >&2; exit 2 ;;
esac

missing=""
for p in $want; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" ||
		missing="$missing $p"
done
[ -z "$missing" ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
	echo "missing Debian packages:$missing" >&2
	echo "install them with: sudo apt-get install -y --no-install-recommends$missing" >&2
	exit 1
fi
echo "installing:$missing"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# shellcheck disable=SC2086
apt-get install -y -qq --no-install-recommends $missing >/dev/null
