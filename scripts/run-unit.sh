#!/bin/sh
# run-unit.sh -- runs every Criterion test binary given, in order; fails if
# any fails.  Criterion prints its own synthesis line per binary.
set -u
fail=0 pass=0
for t in "$@"; do
	echo "== $t"
	if "$t" --jobs 2; then pass=$((pass + 1)); else fail=$((fail + 1)); echo "FAILED: $t"; fi
done
echo "unit binaries: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
