#!/bin/sh
# startup.sh -- start-up figures: the first start on a database (every
# file rendered and written to the TFTP root) and restarts with the files
# in place (the normal case), each as wall time (process start until the
# port file is written) and CPU time (user + system of every thread, read
# from /proc/PID/stat at that moment), with the load average of the
# minute and the peak memory (VmHWM).
#
#   sh bench/startup.sh             100,000 devices, 3 restarts, TFTP on tmpfs
#   QUICK=1 sh bench/startup.sh     1,000 devices, 2 restarts
#   SIZES="100000 1000000"          device counts
#   TFTP_KINDS="tmpfs disk"         where the TFTP root lives (default: tmpfs)
#   REPEAT=N                        restarts per build
#   GEN_DIR=/var/tmp/...            reuse the s<N>.db a KEEP=1 run left there
#   OTHER=/path/to/hotdeskd         a second build, run alternately with the
#                                   first (before / after in the same minutes:
#                                   on a shared machine the load changes by
#                                   the minute)
#
# Each build gets its own copy of the database and its own TFTP root: the
# render keys stored with each version include the executable, so a build
# restarting on another build's files would render everything again.
. "$(dirname "$0")/lib.sh"

if [ "$QUICK" = 1 ]; then
	SIZES=${SIZES:-1000} REPEAT=${REPEAT:-2}
else
	SIZES=${SIZES:-100000} REPEAT=${REPEAT:-3}
fi

bench_build
bench_header "start-up"
BUILDS="$HOTDESKD"
if [ -n "${OTHER:-}" ]; then
	[ -x "$OTHER" ] || die "OTHER=$OTHER is not an executable"
	BUILDS="$HOTDESKD $OTHER"
fi

# one_start NAME LABEL -- starts the build $HOTDESKD on NAME.ini, prints
# one figure line, stops it
one_start() {
	la=$(loadavg)
	hd_start "$1"
	mem=$(hd_mem | awk '{ print $2 }')
	figure "$2" "wall $HD_START_MS ms, CPU $HD_START_CPU_MS ms, VmHWM $mem MiB, load $la"
	hd_stop
}

for n in $SIZES; do
	orgs=$(((n + 999) / 1000))
	echo
	echo "-- $n devices over $orgs organizations"
	if [ -n "${GEN_DIR:-}" ] && [ -f "$GEN_DIR/s$n.db" ]; then
		cp "$GEN_DIR/s$n.db" "$BENCH_DIR/"
	else
		gen_db "s$n" "$n" "$orgs" >/dev/null
	fi
	for kind in ${TFTP_KINDS:-tmpfs}; do
		b=0
		for h in $BUILDS; do
			b=$((b + 1))
			echo "   build $b: $h"
			cp "$BENCH_DIR/s$n.db" "$BENCH_DIR/s$n-$kind-$b.db"
			hd_config "s$n-$kind-$b" "$BENCH_DIR/s$n-$kind-$b.db" "$(tftp_dir "s$n-$b" "$kind")"
		done
		echo "   TFTP root on $kind"
		b=0
		for h in $BUILDS; do
			b=$((b + 1))
			HOTDESKD=$h; one_start "s$n-$kind-$b" "first start, build $b"
		done
		r=0
		while [ $r -lt "$REPEAT" ]; do
			r=$((r + 1))
			b=0
			for h in $BUILDS; do
				b=$((b + 1))
				HOTDESKD=$h; one_start "s$n-$kind-$b" "restart $r, build $b"
			done
		done
		b=0
		for h in $BUILDS; do
			b=$((b + 1))
			rm -rf "$BENCH_DIR/s$n-$kind-$b.db"* "$(tftp_dir "s$n-$b" "$kind")"
		done
	done
	rm -f "$BENCH_DIR/s$n.db"*
done
