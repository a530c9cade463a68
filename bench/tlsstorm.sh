#!/bin/sh
# tlsstorm.sh -- the boot storm over HTTPS (issue 13).  wrk fetches the
# per-device files of DEVICES distinct devices (10,000; all four vendor
# profiles) from a hotdeskd TLS listener, and in the same run the same
# files as rendered into the TFTP root from nginx over HTTPS, both with the
# same certificate and key (ECDSA P-256) and the same TLS policy (TLS
# 1.2/1.3, AEAD ciphers, the server's preference: AES-128-GCM first, X25519
# first, as hotdeskd's default; the suite each negotiates is printed).
# Three measurements each:
#
#   keep-alive   phones that keep their connection: requests per second
#   handshakes   phones that reconnect for every file ("Connection: close"):
#                each request is a new TCP connection and a full TLS
#                handshake, so requests per second = new handshakes per second
#                (no resumption on either server)
#   resumed      the same, phones resuming their TLS session: session
#                tickets on both (hotdeskd [tls] session_tickets, nginx
#                ssl_session_tickets with its shared session cache)
#
# Each measurement also gives the server's CPU time per request (user +
# system of the server's processes over the run, from /proc): on a shared,
# loaded machine req/s follows what the scheduler grants, CPU per request
# much less.  REPEAT=N runs the three measurements N times (default 3; the
# load average is printed with each measurement).
#
#   sh bench/tlsstorm.sh            full run (about a minute on 2 cores)
#   QUICK=1 sh bench/tlsstorm.sh    200 devices, 1 s per measurement
#
# Settings: THREADS (hotdeskd [server] threads = nginx worker_processes,
# default: cores), CONNS (wrk connections, default 64), DURATION (s),
# REPEAT (default 3; 1 with QUICK=1), ONLY (one of keep-alive, handshakes,
# resumed: run that measurement alone).
# Exit status: 0 when every run completed without errors (ratios are
# reported, not enforced: a benchmark is not a test).
. "$(dirname "$0")/lib.sh"

if [ "$QUICK" = 1 ]; then
	DEVICES=${DEVICES:-200} DURATION=${DURATION:-1} CONNS=${CONNS:-8}
else
	DEVICES=${DEVICES:-10000} DURATION=${DURATION:-15} CONNS=${CONNS:-64}
fi
ORGS=$(((DEVICES + 999) / 1000))
if [ "$QUICK" = 1 ]; then REPEAT=${REPEAT:-1}; else REPEAT=${REPEAT:-3}; fi
WRK_THREADS=$CORES
[ "$WRK_THREADS" -gt 4 ] && WRK_THREADS=4

bench_build
bench_header "boot storm over HTTPS"
echo "devices:     $DEVICES over $ORGS organizations; wrk $WRK_THREADS threads, $CONNS connections, ${DURATION}s per run"
echo "servers:     hotdeskd [server] threads = $THREADS; nginx worker_processes = $THREADS"
echo "gnutls:      $(pkg-config --modversion gnutls)   openssl (nginx): $(openssl version | awk '{print $2}')"
chmod 0755 "$BENCH_DIR" # nginx workers run as an unprivileged user

gen_db tls "$DEVICES" "$ORGS" >/dev/null
tftp=$BENCH_DIR/tftp
mkdir -m 0755 "$tftp"
hd_config tls "$BENCH_DIR/tls.db" "$tftp"

# one certificate and key for both servers
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
	-subj "/CN=localhost" -addext "subjectAltName=IP:127.0.0.1" \
	-keyout "$BENCH_DIR/key.pem" -out "$BENCH_DIR/cert.pem" 2>/dev/null || die "openssl failed"
chmod 0644 "$BENCH_DIR/key.pem" "$BENCH_DIR/cert.pem"
cat >>"$BENCH_DIR/tls.ini" <<INI
[listener2]
listen = 127.0.0.1
port = 0
port_file = $BENCH_DIR/tls.tls.port
tls = true
serves = phones
[tls]
cert = $BENCH_DIR/cert.pem
key = $BENCH_DIR/key.pem
INI
# the same without session tickets: full handshakes only
sed -e "s|^port_file = $BENCH_DIR/tls.port|port_file = $BENCH_DIR/tlsfull.port|" \
	-e "s|tls.tls.port|tlsfull.tls.port|" "$BENCH_DIR/tls.ini" >"$BENCH_DIR/tlsfull.ini"
echo "session_tickets = false" >>"$BENCH_DIR/tlsfull.ini"

free_port() {
	$PY -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

nginx_start() {
	ng=$BENCH_DIR/nginx
	mkdir -p "$ng/logs"
	NG_PORT=$(free_port) NG_PORT_RESUME=$(free_port)
	user=""
	[ "$(id -u)" -eq 0 ] && user="user nobody nogroup;"
	cat >"$ng/nginx.conf" <<CONF
$user
worker_processes $THREADS;
daemon off;
pid $ng/nginx.pid;
error_log $ng/logs/error.log warn;
events { worker_connections 4096; }
http {
	access_log off;
	sendfile on;
	tcp_nopush on;
	tcp_nodelay on;
	keepalive_requests 100000000;
	keepalive_timeout 65;
	open_file_cache max=100000 inactive=60s;
	open_file_cache_valid 60s;
	default_type application/octet-stream;
	client_body_temp_path $ng/tmp;
	ssl_protocols TLSv1.2 TLSv1.3;
	# hotdeskd's default policy (HTTP_TLS_PRIORITIES): the server's order,
	# AES-128-GCM first, X25519 first
	ssl_prefer_server_ciphers on;
	ssl_conf_command Ciphersuites TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256;
	ssl_ecdh_curve X25519:prime256v1:secp384r1:secp521r1;
	ssl_ciphers ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305;
	ssl_certificate $BENCH_DIR/cert.pem;
	ssl_certificate_key $BENCH_DIR/key.pem;
	server {
		listen 127.0.0.1:$NG_PORT ssl;
		ssl_session_cache off;
		ssl_session_tickets off;
		location /provision/ { alias $tftp/; }
	}
	server {
		listen 127.0.0.1:$NG_PORT_RESUME ssl;
		ssl_session_cache shared:SSL:10m;
		ssl_session_tickets on;
		location /provision/ { alias $tftp/; }
	}
}
CONF
	/usr/sbin/nginx -e "$ng/logs/error.log" -p "$ng" -c "$ng/nginx.conf" &
	NG_PID=$!
	BENCH_PIDS="$BENCH_PIDS $NG_PID"
	i=0
	until curl -sk -o /dev/null "https://127.0.0.1:$NG_PORT/"; do
		i=$((i + 1))
		[ $i -gt 200 ] && { cat "$ng/logs/error.log" >&2; die "nginx did not start"; }
		sleep 0.02
	done
}

nginx_stop() {
	kill -QUIT "$NG_PID" 2>/dev/null || true
	wait "$NG_PID" 2>/dev/null || true
	BENCH_PIDS=$(echo "$BENCH_PIDS" | sed "s/ $NG_PID\b//")
}

# cpu_ticks PID... -- user + system time of the processes, in clock ticks
cpu_ticks() {
	t=0
	for p in "$@"; do
		t=$((t + $(sed 's/^.*) //' "/proc/$p/stat" | awk '{ print $12 + $13 }')))
	done
	echo "$t"
}

# run_tls LABEL URL "PIDS" [wrk options...] -- prints the figures, sets RPS,
# ERR and CPU_US (server CPU microseconds per request)
run_tls() {
	label=$1 url=$2 pids=$3
	shift 3
	wrk -t"$WRK_THREADS" -c"$CONNS" -d1s "$@" -s "$ROOT/bench/storm.lua" "$url" \
		-- "$BENCH_DIR/tls.paths" >/dev/null 2>&1 || true
	# shellcheck disable=SC2086
	c0=$(cpu_ticks $pids)
	out=$(wrk -t"$WRK_THREADS" -c"$CONNS" -d"${DURATION}s" --latency "$@" -s "$ROOT/bench/storm.lua" \
		"$url" -- "$BENCH_DIR/tls.paths" 2>&1) || { echo "$out" >&2; die "wrk failed ($label)"; }
	# shellcheck disable=SC2086
	c1=$(cpu_ticks $pids)
	line=$(echo "$out" | grep '^RESULT ') || { echo "$out" >&2; die "no result ($label)"; }
	eval "$(echo "$line" | sed 's/^RESULT //')"
	figure "$label req/s" "$rps"
	figure "$label latency p50 / p99 / max" "$(awk "BEGIN { printf \"%.2f / %.2f / %.2f ms\", $p50_us / 1000, $p99_us / 1000, $max_us / 1000 }")"
	figure "$label errors (of which non-2xx)" "$errors ($status_errors) of $requests"
	[ "$errors" -eq 0 ] || figure "$label errors: connect / read / write / timeout" \
		"$connect_errors / $read_errors / $write_errors / $timeouts"
	CPU_US=$(awk "BEGIN { printf \"%.0f\", ($c1 - $c0) * 1000000 / $(getconf CLK_TCK) / ($requests > 0 ? $requests : 1) }")
	figure "$label server CPU per request" "$CPU_US us"
	RPS=$rps ERR=$errors
}

ratio() {
	awk "BEGIN { printf \"%.2f\", $1 / $2 }"
}

# measure LABEL HD_URL NG_URL [wrk options...] -- both servers, one after
# the other, then the ratios.  Odd runs measure hotdeskd first, even runs
# nginx first: on a shared machine the load drifts, and a fixed order
# would hand that drift to the same server every time.
measure() {
	m_label=$1 hd_url=$2 ng_url=$3
	shift 3
	figure "load average before $m_label" "$(cut -d' ' -f1-3 /proc/loadavg)"
	if [ $((run % 2)) = 1 ]; then
		measure_hd "$@"
		measure_ng "$@"
	else
		measure_ng "$@"
		measure_hd "$@"
	fi
	figure "ratio hotdeskd/nginx $m_label req/s (target >= 1.0)" "$(ratio "$hd_rps" "$ng_rps")"
	figure "ratio nginx/hotdeskd $m_label CPU per request" "$(ratio "$ng_cpu" "$hd_cpu")"
}

measure_hd() {
	run_tls "hotdeskd $m_label" "$hd_url" "$HD_PID" "$@"
	hd_rps=$RPS hd_cpu=$CPU_US errs=$((errs + ERR))
}

measure_ng() {
	run_tls "nginx $m_label" "$ng_url" "$NG_PID $(ps -o pid= --ppid "$NG_PID" | tr '\n' ' ')" "$@"
	ng_rps=$RPS ng_cpu=$CPU_US errs=$((errs + ERR))
}

check_same() {
	for p in $(awk 'NR % 997 == 1' "$BENCH_DIR/tls.paths" | head -5); do
		a=$(curl -sf --cacert "$BENCH_DIR/cert.pem" "$1/provision/$p" | md5sum) || die "hotdeskd: $p"
		b=$(curl -sf --cacert "$BENCH_DIR/cert.pem" "$2/provision/$p" | md5sum) || die "nginx: $p"
		[ "$a" = "$b" ] || die "hotdeskd and nginx serve different bytes for $p"
	done
}

# wanted NAME -- true when measurement NAME is to run (ONLY unset or NAME)
wanted() {
	[ -z "${ONLY:-}" ] || [ "$ONLY" = "$1" ]
}
case "${ONLY:-}" in
"" | keep-alive | handshakes | resumed) ;;
*) die "ONLY must be keep-alive, handshakes or resumed" ;;
esac

errs=0
nginx_start
NG_TLS=https://127.0.0.1:$NG_PORT
NG_RESUME=https://127.0.0.1:$NG_PORT_RESUME
run=1
while [ "$run" -le "$REPEAT" ]; do
	[ "$REPEAT" -gt 1 ] && { echo; echo "== run $run of $REPEAT"; }
	hd_start tlsfull
	HD_TLS=https://127.0.0.1:$(cat "$BENCH_DIR/tlsfull.tls.port")
	check_same "$HD_TLS" "$NG_TLS"
	if [ "$run" = 1 ]; then
		for u in "$HD_TLS" "$NG_TLS"; do
			echo "protocol:    $(echo | openssl s_client -connect "${u#https://}" 2>/dev/null |
				sed -n 's/^New, \(.*\)$/\1/p' | head -1), key exchange $(echo |
				openssl s_client -connect "${u#https://}" 2>/dev/null |
				sed -n 's/^Server Temp Key: //p' | head -1) ($u)"
		done
	fi
	if wanted keep-alive; then
		echo
		echo "-- keep-alive: one TLS connection per wrk connection"
		measure "keep-alive" "$HD_TLS" "$NG_TLS"
	fi
	if wanted handshakes; then
		echo
		echo "-- handshakes: a new connection and full TLS handshake for every file (Connection: close)"
		measure "handshakes" "$HD_TLS" "$NG_TLS" -H "Connection: close"
	fi
	hd_stop
	if wanted resumed; then
		hd_start tls
		HD_RESUME=https://127.0.0.1:$(cat "$BENCH_DIR/tls.tls.port")
		echo
		echo "-- resumed: a new connection for every file, resuming the TLS session (tickets)"
		measure "resumed" "$HD_RESUME" "$NG_RESUME" -H "Connection: close"
		hd_stop
	fi
	run=$((run + 1))
done
nginx_stop
[ "$errs" = 0 ] || die "errors during the run"
