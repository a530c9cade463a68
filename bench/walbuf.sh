#!/bin/sh
# walbuf.sh -- the store's commits of *30 moves with each commit's log
# written at once (src/walbuf.h) against SQLite's own "unix" VFS, the
# baseline, in the same run: bench/commits.c commits the rows of N moves
# (the move, then its NOTIFYs' outcome) on a copy of a database of
# DEVICES devices that hotdeskd has started on once (every device's
# version recorded), alternating the two VFSs ROUNDS times, and prints
# for each run the move's transaction (p50, p99), its COMMIT alone and
# the write(2) calls per move, then the ratios of the medians.
#
#   sh bench/walbuf.sh              100,000 devices, 3000 moves, 3 rounds
#   QUICK=1 sh bench/walbuf.sh      1,000 devices, 300 moves, 1 round
#   DEVICES=N MOVES=N ROUNDS=N
#   GEN_DIR=/var/tmp/...            reuse the s<N>.db a KEEP=1 run left
#   BENCH_TMP=DIR                   where the database lives (default
#                                   /var/tmp: the machine's disk)
. "$(dirname "$0")/lib.sh"

if [ "$QUICK" = 1 ]; then
	DEVICES=${DEVICES:-1000} MOVES=${MOVES:-300} ROUNDS=${ROUNDS:-1}
else
	DEVICES=${DEVICES:-100000} MOVES=${MOVES:-3000} ROUNDS=${ROUNDS:-3}
fi

bench_build
make -s -C "$ROOT" build/bench/commits >/dev/null || die "bench/commits.c did not build"
bench_header "commits of moves: SQLite's log written at once (walbuf) or frame by frame"
n=$DEVICES
if [ -n "${GEN_DIR:-}" ] && [ -f "$GEN_DIR/s$n.db" ]; then
	cp "$GEN_DIR/s$n.db" "$BENCH_DIR/"
else
	gen_db "s$n" "$n" $(((n + 999) / 1000)) >/dev/null
fi
# one start records every device's version and resync row, as in use
hd_config started "$BENCH_DIR/s$n.db" "$(tftp_dir started tmpfs)"
hd_start started
hd_stop
rm -rf "$(tftp_dir started tmpfs)"
echo "devices:     $n; moves a run: $MOVES; database on $(df -T "$BENCH_DIR" | awk 'NR == 2 { print $2 }')"
echo
out=$BENCH_DIR/runs.txt
: >"$out"
r=0
while [ "$r" -lt "$ROUNDS" ]; do
	r=$((r + 1))
	for vfs in unix walbuf; do
		cp "$BENCH_DIR/s$n.db" "$BENCH_DIR/run.db"
		rm -f "$BENCH_DIR/run.db-wal" "$BENCH_DIR/run.db-shm"
		"$ROOT/build/bench/commits" "$BENCH_DIR/run.db" "$vfs" "$MOVES" | tee -a "$out" ||
			die "bench/commits failed"
	done
done
rm -f "$BENCH_DIR/run.db"*
# medians of the rounds: the move's transaction p50, its COMMIT p50, writes
awk '
	{ v = $1; t[v, ++n[v]] = $5; c[v, n[v]] = $13; w[v, n[v]] = $NF }
	function med(a, v,   i, j, k, x, s) {
		k = n[v]
		for (i = 1; i <= k; i++) s[i] = a[v, i]
		for (i = 2; i <= k; i++) { x = s[i]; for (j = i - 1; j >= 1 && s[j] > x; j--) s[j + 1] = s[j]; s[j + 1] = x }
		return s[int((k + 1) / 2)]
	}
	END {
		tu = med(t, "unix"); tw = med(t, "walbuf")
		cu = med(c, "unix"); cw = med(c, "walbuf")
		wu = med(w, "unix"); ww = med(w, "walbuf")
		printf "\nmedian of %d rounds, walbuf / unix:\n", n["unix"]
		printf "  move'\''s transaction p50  %.1f / %.1f us = %.2f\n", tw, tu, tw / tu
		printf "  its COMMIT p50           %.1f / %.1f us = %.2f\n", cw, cu, cw / cu
		printf "  write(2) calls per move  %.1f / %.1f\n", ww, wu
	}' "$out"
