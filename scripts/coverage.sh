#!/bin/sh
# coverage.sh BUILD_DIR MIN FILE... -- line coverage of FILEs from the gcov
# data of BUILD_DIR/obj (an instrumented build that ran), one line per
# file; fails when any is under MIN percent or has no data.
set -u
b=$1 min=$2
shift 2
fail=0
printf '%-22s %8s %7s\n' file lines covered
for f in "$@"; do
	# gcov -n: no .gcov files, only the summary; the block of this source
	out=$(gcov -n -o "$b/obj" "$f" 2>/dev/null |
	      awk -v f="$f" '$0 == "File '"'"'" f "'"'"'" { hit = 1; next }
	                     hit && /^Lines executed:/ { print; exit }')
	pct=$(printf '%s\n' "$out" | sed -n 's/^Lines executed:\([0-9.]*\)% of \([0-9]*\)$/\1/p')
	n=$(printf '%s\n' "$out" | sed -n 's/^Lines executed:\([0-9.]*\)% of \([0-9]*\)$/\2/p')
	if [ -z "$pct" ]; then
		printf '%-22s %8s %7s  NO DATA\n' "$f" - -
		fail=1
		continue
	fi
	if awk -v p="$pct" -v m="$min" 'BEGIN { exit !(p < m) }'; then
		printf '%-22s %8s %6s%%  UNDER %s%%\n' "$f" "$n" "$pct" "$min"
		fail=1
	else
		printf '%-22s %8s %6s%%\n' "$f" "$n" "$pct"
	fi
done
[ "$fail" -eq 0 ] && echo "coverage: every file at least $min% of lines" ||
	echo "coverage: FAILED (under $min% or no data)"
exit "$fail"
