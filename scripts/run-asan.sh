#!/bin/sh
# run-asan.sh -- the test suite built with ASan/UBSan (build-asan/): every
# unit test binary and the end-to-end suite against the sanitized daemon.
# Sanitizer reports (leaks included) go to files; any file fails the run,
# since LeakSanitizer reports do not change a test's verdict by themselves.
set -u
cd "$(dirname "$0")/.."
dir=$(mktemp -d /tmp/hotdeskd-asan.XXXXXX)
# quarantine_size_mb: freed memory waits in a 64 MB quarantine before
# reuse (256 MB by default) -- still far longer than any use after free in
# this code could wait, and each test process (Criterion forks one per
# test) touches a quarter of the fresh pages: the suite runs in half the time
export ASAN_OPTIONS="log_path=$dir/asan:detect_leaks=1:abort_on_error=0:quarantine_size_mb=64"
export UBSAN_OPTIONS="log_path=$dir/ubsan:print_stacktrace=1:halt_on_error=1"
export LSAN_OPTIONS="suppressions=$(pwd)/scripts/lsan.supp"
fail=0
sh scripts/run-unit.sh build-asan/tests/test_* || fail=1
echo "== end-to-end against build-asan/hotdeskd"
HOTDESKD=$(pwd)/build-asan/hotdeskd HOTDESKCTL=$(pwd)/build-asan/hotdeskctl \
	/usr/bin/python3 -m pytest -q -n "${E2E_JOBS:-4}" --dist loadfile tests/e2e || fail=1
reports=$(ls "$dir" 2>/dev/null | wc -l)
if [ "$reports" -ne 0 ]; then
	echo "sanitizer reports:"
	for f in "$dir"/*; do echo "--- $f"; head -60 "$f"; done
	fail=1
fi
rm -rf "$dir"
if [ "$fail" -eq 0 ]; then echo "asan: 1 passed, 0 failed"; else echo "asan: 0 passed, 1 failed"; fi
exit $fail
