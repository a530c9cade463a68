#!/bin/sh
# asan-repeat.sh -- run end-to-end test files N times in a row against the
# ASan/UBSan daemon (build-asan/, made by `make asan`), stopping at the first
# failing run or sanitizer report. Shows that tests which start peers (sipp,
# tftpd-hpa, Kamailio) are not flaky:
#   sh scripts/asan-repeat.sh 20 tests/e2e/test_resync.py tests/e2e/test_peers.py
set -u
cd "$(dirname "$0")/.."
n=$1; shift
[ -x build-asan/hotdeskd ] || { echo "asan-repeat: build-asan/hotdeskd missing (run make asan)" >&2; exit 2; }
dir=$(mktemp -d /tmp/hotdeskd-asan.XXXXXX)
export ASAN_OPTIONS="log_path=$dir/asan:detect_leaks=1:abort_on_error=0"
export UBSAN_OPTIONS="log_path=$dir/ubsan:print_stacktrace=1:halt_on_error=1"
export LSAN_OPTIONS="suppressions=$(pwd)/scripts/lsan.supp"
i=1
while [ "$i" -le "$n" ]; do
	start=$(date +%s)
	if ! HOTDESKD=$(pwd)/build-asan/hotdeskd /usr/bin/python3 -m pytest -q -p no:cacheprovider "$@" >"$dir/run.log" 2>&1; then
		tail -40 "$dir/run.log"; echo "asan-repeat: run $i of $n failed"; exit 1
	fi
	if [ -n "$(ls "$dir" | grep -v '^run.log$')" ]; then
		for f in "$dir"/asan* "$dir"/ubsan*; do [ -e "$f" ] && head -40 "$f"; done
		echo "asan-repeat: run $i of $n left a sanitizer report"; exit 1
	fi
	echo "asan-repeat: run $i of $n passed ($(tail -1 "$dir/run.log" | tr -d '=') in $(( $(date +%s) - start )) s)"
	i=$((i + 1))
done
rm -rf "$dir"
echo "asan-repeat: $n of $n runs passed, no sanitizer report"
