#!/bin/sh
# run-fuzz.sh -- runs each libFuzzer harness given (build-fuzz/fuzz/fuzz_<name>)
# for FUZZ_SECONDS (default 60) from its seed corpus tests/fuzz/corpus/<name>/
# (read only: new inputs go to build-fuzz/corpus/<name>/).  Fails when any
# harness reports a crash, a leak, a timeout or a sanitizer finding: libFuzzer
# then exits non-zero and leaves the input in build-fuzz/artifacts/.
set -u
secs=${FUZZ_SECONDS:-60}
fail=0 pass=0
mkdir -p build-fuzz/artifacts
for bin in "$@"; do
	name=$(basename "$bin"); name=${name#fuzz_}
	seed=tests/fuzz/corpus/$name
	work=build-fuzz/corpus/$name
	log=build-fuzz/fuzz_$name.log
	mkdir -p "$work"
	if [ ! -d "$seed" ] || [ -z "$(ls -A "$seed")" ]; then
		echo "FAILED: $name has no seed corpus in $seed"
		fail=$((fail + 1))
		continue
	fi
	echo "== fuzz_$name: ${secs}s"
	# detect_leaks: every input is checked for leaks; -fno-sanitize-recover
	# (Makefile) makes UBSan findings fatal as well
	if ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 \
	   "$bin" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
	   -artifact_prefix="build-fuzz/artifacts/${name}-" "$work" "$seed" >"$log" 2>&1; then
		grep -E "^stat::number_of_executed_units|^Done" "$log" | tr '\n' ' '; echo
		pass=$((pass + 1))
	else
		echo "FAILED: fuzz_$name (log: $log)"
		grep -E "ERROR|SUMMARY|runtime error|Test unit written" "$log" | head -8
		fail=$((fail + 1))
	fi
done
echo "fuzz harnesses: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
