#!/bin/sh
# tlsstorm.sh -- the boot storm over HTTPS (issue 13).  wrk fetches the
# per-device files of DEVICES distinct devices (10,000; all four vendor
# profiles) from a hotdeskd TLS listener, and in the same run the same
# files as rendered into the TFTP root from nginx over HTTPS, both with the
# same certificate and key (ECDSA P-256) and comparable TLS settings (TLS
# 1.2/1.3, AEAD ciphers).  Two measurements each:
#
#   keep-alive   phones that keep their connection: requests per second
#   handshakes   phones that reconnect for every file ("Connection: close"):
#                each request is a new TCP connection and a full TLS
#                handshake, so requests per second = new handshakes per second
#
#   sh bench/tlsstorm.sh            full run (about a minute on 2 cores)
#   QUICK=1 sh bench/tlsstorm.sh    200 devices, 2 s per measurement
#
# Settings: THREADS (hotdeskd [server] threads = nginx worker_processes,
# default: cores), CONNS (wrk connections, default 64), DURATION (s).
# Exit status: 0 when every run completed without errors (ratios are
# reported, not enforced: a benchmark is not a test).
. "$(dirname "$0")/lib.sh"

if [ "$QUICK" = 1 ]; then
	DEVICES=${DEVICES:-200} DURATION=${DURATION:-2} CONNS=${CONNS:-8}
else
	DEVICES=${DEVICES:-10000} DURATION=${DURATION:-15} CONNS=${CONNS:-64}
fi
ORGS=$(((DEVICES + 999) / 1000))
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

free_port() {
	$PY -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

nginx_start() {
	ng=$BENCH_DIR/nginx
	mkdir -p "$ng/logs"
	NG_PORT=$(free_port)
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
	ssl_ciphers ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305;
	ssl_session_cache off;
	ssl_session_tickets off;
	server {
		listen 127.0.0.1:$NG_PORT ssl;
		ssl_certificate $BENCH_DIR/cert.pem;
		ssl_certificate_key $BENCH_DIR/key.pem;
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

# run_tls LABEL URL [wrk options...] -- prints the figures, sets RPS, ERR
run_tls() {
	label=$1 url=$2
	shift 2
	wrk -t"$WRK_THREADS" -c"$CONNS" -d1s "$@" -s "$ROOT/bench/storm.lua" "$url" \
		-- "$BENCH_DIR/tls.paths" >/dev/null 2>&1 || true
	out=$(wrk -t"$WRK_THREADS" -c"$CONNS" -d"${DURATION}s" --latency "$@" -s "$ROOT/bench/storm.lua" \
		"$url" -- "$BENCH_DIR/tls.paths" 2>&1) || { echo "$out" >&2; die "wrk failed ($label)"; }
	line=$(echo "$out" | grep '^RESULT ') || { echo "$out" >&2; die "no result ($label)"; }
	eval "$(echo "$line" | sed 's/^RESULT //')"
	figure "$label req/s" "$rps"
	figure "$label latency p50 / p99 / max" "$(awk "BEGIN { printf \"%.2f / %.2f / %.2f ms\", $p50_us / 1000, $p99_us / 1000, $max_us / 1000 }")"
	figure "$label errors (of which non-2xx)" "$errors ($status_errors) of $requests"
	RPS=$rps ERR=$errors
}

hd_start tls
TLS_PORT=$(cat "$BENCH_DIR/tls.tls.port")
HD_TLS=https://127.0.0.1:$TLS_PORT
nginx_start
NG_TLS=https://127.0.0.1:$NG_PORT
for p in $(awk 'NR % 997 == 1' "$BENCH_DIR/tls.paths" | head -5); do
	a=$(curl -sf --cacert "$BENCH_DIR/cert.pem" "$HD_TLS/provision/$p" | md5sum) || die "hotdeskd: $p"
	b=$(curl -sf --cacert "$BENCH_DIR/cert.pem" "$NG_TLS/provision/$p" | md5sum) || die "nginx: $p"
	[ "$a" = "$b" ] || die "hotdeskd and nginx serve different bytes for $p"
done
echo "protocol:    hotdeskd $(echo | openssl s_client -connect 127.0.0.1:"$TLS_PORT" 2>/dev/null | sed -n 's/^New, \(.*\)$/\1/p' | head -1)"
echo "             nginx    $(echo | openssl s_client -connect 127.0.0.1:"$NG_PORT" 2>/dev/null | sed -n 's/^New, \(.*\)$/\1/p' | head -1)"

echo
echo "-- keep-alive: one TLS connection per wrk connection"
run_tls "hotdeskd https" "$HD_TLS"
hd_rps=$RPS errs=$ERR
run_tls "nginx https" "$NG_TLS"
ng_rps=$RPS errs=$((errs + ERR))
figure "ratio hotdeskd/nginx keep-alive (target >= 1.0)" "$(awk "BEGIN { printf \"%.2f\", $hd_rps / $ng_rps }")"

echo
echo "-- handshakes: a new connection and TLS handshake for every file (Connection: close)"
run_tls "hotdeskd handshakes" "$HD_TLS" -H "Connection: close"
hd_hs=$RPS errs=$((errs + ERR))
run_tls "nginx handshakes" "$NG_TLS" -H "Connection: close"
ng_hs=$RPS errs=$((errs + ERR))
figure "ratio hotdeskd/nginx new handshakes/s" "$(awk "BEGIN { printf \"%.2f\", $hd_hs / $ng_hs }")"
nginx_stop
hd_stop
[ "$errs" = 0 ] || die "errors during the run"
