#!/bin/sh
# move.sh -- *30 move latency and throughput at 100,000 devices (SPEC 8):
# from request received to the last changed file published (memory and
# TFTP root) and the first NOTIFY handed to the socket, p50/p99/max, the
# Argon2id code hash excluded and reported separately (real hash with the
# default settings: hash_ops 4, 32 MiB); then concurrent moves from
# parallel PBX clients on distinct phones.
#
#   sh bench/move.sh             100,000 devices (about 2 minutes on 2 cores)
#   QUICK=1 sh bench/move.sh     200 devices, 20 pairs, 2 s of concurrency
#
# Settings: DEVICES, PAIRS (sequential pairs; each is 2 moves), CLIENTS,
# SECONDS, THREADS, SETTLE (seconds to wait at most for a quiet disk
# before the moves: 30, quick 5); GEN_DIR=DIR takes s<DEVICES>.db, .paths and .moves from
# DIR (left there by a KEEP=1 run of bench/scale.sh) instead of generating
# them.  Exit status non-zero on a lost or wrong move.
. "$(dirname "$0")/lib.sh"

if [ "$QUICK" = 1 ]; then
	DEVICES=${DEVICES:-200} PAIRS=${PAIRS:-20} CLIENTS=${CLIENTS:-4} SECONDS_=${SECONDS:-2}
	SETTLE=${SETTLE:-5}
else
	DEVICES=${DEVICES:-100000} PAIRS=${PAIRS:-500} CLIENTS=${CLIENTS:-8} SECONDS_=${SECONDS:-20}
	SETTLE=${SETTLE:-30}
fi
ORGS=$(((DEVICES + 999) / 1000))

bench_build
bench_header "move latency"
echo "devices:     $DEVICES over $ORGS organizations, TFTP publishing on; threads = $THREADS"
if [ -n "${GEN_DIR:-}" ] && [ -f "$GEN_DIR/s$DEVICES.db" ]; then
	# a database gen.py made before (bench/scale.sh names it s<N>.db)
	for f in db paths moves; do cp "$GEN_DIR/s$DEVICES.$f" "$BENCH_DIR/move.$f"; done
else
	gen_db move "$DEVICES" "$ORGS" >/dev/null
fi
# the TFTP root on the machine's disk, then on tmpfs (the recommended
# place: it is rewritten from the database at every start)
for kind in ${TFTP_KINDS:-disk tmpfs}; do
	echo
	echo "-- TFTP root on $kind"
	cp "$BENCH_DIR/move.db" "$BENCH_DIR/move-$kind.db"
	hd_config "move-$kind" "$BENCH_DIR/move-$kind.db" "$(tftp_dir "move" "$kind")"
	hd_start "move-$kind"
	figure "first start (renders and writes every file)" "$HD_START_MS ms"
	# the start's files are written back before the moves, not during
	# them (a restart finds them in place and writes none): the moves
	# are measured on a settled disk (at most SETTLE seconds waiting for
	# the disk to go quiet); io pressure is printed after them
	sync -f "$(tftp_dir "move" "$kind")"
	settled=$(io_settle "$SETTLE")
	figure "sync of the TFTP root" "done; waited $settled s for a quiet disk (io pressure avg10 before the moves: $(io_avg10))"
	$PY "$ROOT/bench/moves.py" --port "$HD_PORT" --token "$PBX_TOKEN" --moves "$BENCH_DIR/move.moves" \
		--code "$CODE" --latency-pairs "$PAIRS" --clients "$CLIENTS" --seconds "$SECONDS_" ||
		die "moves failed"
	figure "resident memory after moves (VmRSS VmHWM MiB)" "$(hd_mem)"
	figure "io pressure avg10 after the moves" "$(io_avg10)"
	hd_stop
done
