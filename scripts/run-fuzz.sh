#!/bin/sh
# run-fuzz.sh -- runs each libFuzzer harness given (build-fuzz/fuzz/fuzz_<name>)
# for FUZZ_SECONDS (default 60) from its seed corpus tests/fuzz/corpus/<name>/
# (read only: new inputs go to build-fuzz/corpus/<name>/).  Fails when any
# harness reports a crash, a leak, a timeout or a sanitizer finding: libFuzzer
# then exits non-zero and leaves the input in build-fuzz/artifacts/.
# FUZZ_JOBS harnesses (default: the number of CPUs) run at once, each for its
# full time; their verdicts are printed in the order given.
set -u
secs=${FUZZ_SECONDS:-60}
jobs=${FUZZ_JOBS:-$(nproc 2>/dev/null || echo 1)}
mkdir -p build-fuzz/artifacts

# one harness: its verdict line(s) go to build-fuzz/fuzz_<name>.verdict,
# whose first word is PASS or FAILED
one() {
	bin=$1
	name=$(basename "$bin"); name=${name#fuzz_}
	seed=tests/fuzz/corpus/$name
	work=build-fuzz/corpus/$name
	log=build-fuzz/fuzz_$name.log
	out=build-fuzz/fuzz_$name.verdict
	mkdir -p "$work"
	if [ ! -d "$seed" ] || [ -z "$(ls -A "$seed")" ]; then
		echo "FAILED: $name has no seed corpus in $seed" >"$out"
		return
	fi
	# detect_leaks: every input is checked for leaks; -fno-sanitize-recover
	# (Makefile) makes UBSan findings fatal as well
	if ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 \
	   "$bin" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
	   -artifact_prefix="build-fuzz/artifacts/${name}-" "$work" "$seed" >"$log" 2>&1; then
		{ printf 'PASS fuzz_%s: ' "$name"
		  grep -E "^stat::number_of_executed_units|^Done" "$log" | tr '\n' ' '; echo; } >"$out"
	else
		{ echo "FAILED: fuzz_$name (log: $log)"
		  grep -E "ERROR|SUMMARY|runtime error|Test unit written" "$log" | head -8; } >"$out"
	fi
}

# lane k runs harnesses k, k+jobs, k+2*jobs, ... one after another
echo "== $# harnesses, ${secs}s each, $jobs at a time"
k=0
while [ "$k" -lt "$jobs" ]; do
	( i=0
	  for bin in "$@"; do
		[ $((i % jobs)) -eq "$k" ] && { rm -f "build-fuzz/$(basename "$bin").verdict"; one "$bin"; }
		i=$((i + 1))
	  done ) &
	k=$((k + 1))
done
wait

fail=0 pass=0
for bin in "$@"; do
	v=build-fuzz/$(basename "$bin").verdict
	if [ -f "$v" ] && [ "$(head -c 4 "$v")" = PASS ]; then
		pass=$((pass + 1))
	else
		fail=$((fail + 1))
		[ -f "$v" ] || echo "FAILED: $(basename "$bin") gave no verdict" >"$v"
	fi
	cat "$v"
done
echo "fuzz harnesses: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
