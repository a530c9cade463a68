#!/bin/sh
# kamstorm.sh -- a boot storm of registrations through the shipped Kamailio
# configuration (pbx/kamailio/kamailio.cfg): what it costs to report every
# REGISTER to hotdeskd (POST /pbx/v1/registrations from Kamailio's async
# workers, pbx/kamailio/README.md "Blocking HTTP and worker sizing").
#
#   sh bench/kamstorm.sh            10,000 phones registering at 1,000/s
#   QUICK=1 sh bench/kamstorm.sh    200 phones at 200/s
#
# Settings: PHONES, RATE (REGISTERs per second sent by sipp).  Figures: the
# time sipp took to send every REGISTER and get its 200 (the proxy answers
# before reporting), the time from the first REGISTER until hotdeskd has
# stored every registration, and the CPU time each process spent per
# registration.  Exit status non-zero when a
# REGISTER failed or a registration never reached hotdeskd.
. "$(dirname "$0")/lib.sh"

if [ "$QUICK" = 1 ]; then
	PHONES=${PHONES:-200} RATE=${RATE:-200}
else
	PHONES=${PHONES:-10000} RATE=${RATE:-1000}
fi
KAMAILIO=${KAMAILIO:-/usr/sbin/kamailio}
MODULES=/usr/lib/x86_64-linux-gnu/kamailio/modules

bench_build
command -v sipp >/dev/null || die "sipp missing: run sh scripts/deps.sh bench as root"
[ -x "$KAMAILIO" ] && [ -f "$MODULES/http_client.so" ] ||
	die "kamailio and kamailio-utils-modules missing: run sh scripts/deps.sh bench as root"
bench_header "Kamailio registration storm"
echo "kamailio:    $("$KAMAILIO" -v 2>/dev/null | sed -n 's/^version: //p' | head -1)"
echo "phones:      $PHONES REGISTERs at $RATE/s through pbx/kamailio/kamailio.cfg"
gen_db kam "$PHONES" 1 >/dev/null
hd_config kam "$BENCH_DIR/kam.db"
hd_start kam

# the proxy on a free UDP port (a short run directory for its control sockets)
KAM_PORT=$($PY -c 'import socket; s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
KAM_RUN=$BENCH_DIR/kam-run
mkdir -p "$KAM_RUN"
"$KAMAILIO" -f "$ROOT/pbx/kamailio/kamailio.cfg" -L "$MODULES" -DD -E -m 128 -M 8 \
	-Y "$KAM_RUN" -w "$KAM_RUN" -l "udp:127.0.0.1:$KAM_PORT" \
	-A "HOTDESKD_URL=\"$HD_URL\"" -A "HOTDESKD_TOKEN=\"$PBX_TOKEN\"" \
	-A 'HOTDESKD_SIP_IP="127.0.0.2"' >"$BENCH_DIR/kamailio.log" 2>&1 &
KAM_PID=$!
BENCH_PIDS="$BENCH_PIDS $KAM_PID"
i=0
until grep -q "udp: 127.0.0.1 \[127.0.0.1\]:$KAM_PORT" "$BENCH_DIR/kamailio.log" 2>/dev/null; do
	kill -0 "$KAM_PID" 2>/dev/null || { tail -20 "$BENCH_DIR/kamailio.log" >&2; die "kamailio did not start"; }
	i=$((i + 1)); [ "$i" -lt 300 ] || die "kamailio did not listen"
	sleep 0.05
done
sleep 1 # its children are forked after the bind

# every phone's SIP user, one per line (sipp's injection file)
{ echo SEQUENTIAL
  $PY - "$BENCH_DIR/kam.db" <<'PY'
import sqlite3, sys
for (u,) in sqlite3.connect(sys.argv[1]).execute("SELECT sip_user FROM extensions ORDER BY id"):
    print(u)
PY
} >"$BENCH_DIR/users.csv"

# CPU seconds (user + system) of a process and its children threads
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
kam_ticks() {
	t=0
	for p in $(pgrep -P "$KAM_PID") "$KAM_PID"; do
		t=$((t + $(cpu_ticks "$p" 2>/dev/null || echo 0)))
	done
	echo "$t"
}
stored() {
	$PY -c 'import sqlite3, sys; print(sqlite3.connect(sys.argv[1]).execute("SELECT count(*) FROM registrations").fetchone()[0])' \
		"$BENCH_DIR/kam.db"
}
HZ=$(getconf CLK_TCK)
hd0=$(cpu_ticks "$HD_PID") kam0=$(kam_ticks)
t0=$(date +%s%N)
SIPP_PORT=$($PY -c 'import socket; s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
(cd "$BENCH_DIR" && exec sipp -sf "$ROOT/bench/kam_register.xml" -inf "$BENCH_DIR/users.csv" \
	-i 127.0.0.1 -p "$SIPP_PORT" -m "$PHONES" -r "$RATE" -l 2000 -nostdin \
	-timeout 120s -timeout_error \
	"127.0.0.1:$KAM_PORT" >"$BENCH_DIR/sipp.log" 2>&1) &
SIPP_PID=$!
wait "$SIPP_PID" || { tail -30 "$BENCH_DIR/sipp.log" >&2; die "sipp: REGISTERs failed"; }
t1=$(date +%s%N)
n=0 i=0
while [ "$n" -lt "$PHONES" ]; do
	n=$(stored)
	i=$((i + 1)); [ "$i" -lt 6000 ] || die "only $n of $PHONES registrations reached hotdeskd"
	[ "$n" -ge "$PHONES" ] || sleep 0.01
done
t2=$(date +%s%N)
hd1=$(cpu_ticks "$HD_PID") kam1=$(kam_ticks)

figure "REGISTERs sent and answered (ms)" "$(((t1 - t0) / 1000000))"
figure "all stored by hotdeskd after the first (ms)" "$(((t2 - t0) / 1000000))"
figure "  after the last REGISTER was answered (ms)" "$(((t2 - t1) / 1000000))"
figure "hotdeskd CPU per registration (us)" "$(((hd1 - hd0) * 1000000 / HZ / PHONES))"
figure "kamailio CPU per registration (us)" "$(((kam1 - kam0) * 1000000 / HZ / PHONES))"
figure "hotdeskd memory (VmRSS VmHWM MiB)" "$(hd_mem)"
hd_stop
