#!/bin/sh
# vc.sh -- the Virtualization Center under 200 concurrent calls (issue:
# Virtualization Center over SIP): every call answered and ended by
# hotdeskd, none lost, and the jitter of the 20 ms prompt pacing.
#
#   sh bench/vc.sh             200 calls at once, about 20 s each
#   QUICK=1 sh bench/vc.sh     20 calls, about 5 s each
#
# Settings: CALLS, CODE_TIMEOUT (seconds of silence each call waits for a
# code before hotdeskd says goodbye).  Exit status non-zero on a lost call.
. "$(dirname "$0")/lib.sh"

if [ "$QUICK" = 1 ]; then
	CALLS=${CALLS:-20} CODE_TIMEOUT=${CODE_TIMEOUT:-1}
else
	CALLS=${CALLS:-200} CODE_TIMEOUT=${CODE_TIMEOUT:-15}
fi

bench_build
command -v sipp >/dev/null || die "sipp missing: run sh scripts/deps.sh bench as root"
bench_header "Virtualization Center: concurrent calls"
echo "calls:       $CALLS at once, each waiting $CODE_TIMEOUT s for a code that never comes"
gen_db vc "$((CALLS * 2))" 1 >/dev/null
hd_config vc "$BENCH_DIR/vc.db"
cat >>"$BENCH_DIR/vc.ini" <<INI
[vc]
bind = 127.0.0.1:0
port_file = $BENCH_DIR/vc.vcport
networks = 127.0.0.1/32
prompts = $ROOT/build/prompts
rtp_ports = 30000-31999
code_timeout = $CODE_TIMEOUT
INI
hd_start vc
$PY "$ROOT/bench/vc.py" --port "$(cat "$BENCH_DIR/vc.vcport")" --moves "$BENCH_DIR/vc.moves" \
	--calls "$CALLS" --dir "$BENCH_DIR" || die "calls were lost"
figure "resident memory after the calls (VmRSS VmHWM MiB)" "$(hd_mem)"
hd_stop
