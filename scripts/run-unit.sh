#!/bin/sh
# run-unit.sh -- runs every Criterion test binary given; fails if any fails.
# UNIT_JOBS binaries (default: twice the number of CPUs) run at once, each
# with its own output file, printed whole in the order given once all have
# ended.  Most of the suite's time is waiting (a store's busy timeout, a
# retransmission timer, a peer that never answers), not CPU, so binaries
# that wait overlap.  Criterion prints its own synthesis line per binary.
set -u
jobs=${UNIT_JOBS:-$(( $(nproc 2>/dev/null || echo 1) * 2 ))}
dir=$(mktemp -d /tmp/hotdeskd-unit.XXXXXX)
trap 'rm -rf "$dir"' EXIT

# The binaries that take longest (20-30 s each, most of it waiting: the
# engine's retries in a fault test, the store's busy timeout), started
# first so that neither starts late and runs alone at the end; the others
# keep their order.
first="test_resync_engine test_txn"

# one binary: its output to $dir/<n>.log, its verdict to $dir/<n>.rc
i=0
for t in "$@"; do
	i=$((i + 1))
	case " $first " in
	*" $(basename "$t") "*) printf '0 %s %s\n' "$i" "$t" ;;
	*) printf '1 %s %s\n' "$i" "$t" ;;
	esac
done | sort -s -n -k1,1 | cut -d' ' -f2- | xargs -P "$jobs" -L 1 sh -c '
	"$2" --jobs 2 >"$0/$1.log" 2>&1; echo $? >"$0/$1.rc"' "$dir"

fail=0 pass=0 i=0
for t in "$@"; do
	i=$((i + 1))
	echo "== $t"
	cat "$dir/$i.log" 2>/dev/null
	if [ "$(cat "$dir/$i.rc" 2>/dev/null)" = 0 ]; then
		pass=$((pass + 1))
	else
		fail=$((fail + 1)); echo "FAILED: $t"
	fi
done
echo "unit binaries: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
