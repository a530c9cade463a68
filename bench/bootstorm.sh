#!/bin/sh
# bootstorm.sh -- the boot storm of SPEC 8: after a power cut every phone
# fetches its configuration at once.  wrk, with keep-alive, fetches the
# per-device files of DEVICES distinct devices (10,000; all four vendor
# profiles) from hotdeskd over HTTP, and in the same run the same files as
# rendered into the TFTP root, served by nginx from disk.  Then again with
# HTTP authentication on: each fetch as a booting phone makes it (401
# challenge, then the authenticated GET), hotdeskd with digest
# (organization setting "shared") against nginx with basic authentication
# (nginx has no digest module).
#
#   sh bench/bootstorm.sh            full run (about 2 minutes on 2 cores)
#   QUICK=1 sh bench/bootstorm.sh    200 devices, 1 s per measurement
#
# Settings: THREADS (hotdeskd [server] threads = nginx worker_processes,
# default: cores), CONNS (wrk connections, default 64), AUTH_CONNS (wrk
# threads = connections of the authenticated run, default 32), DURATION (s),
# AUTH=0 (only the run without authentication), GEN_DIR (reuse the
# s<DEVICES>.db and .paths a KEEP=1 run left there: 1,000,000 devices),
# ROUNDS (measurements of each server without authentication, alternated
# hotdeskd/nginx then nginx/hotdeskd; default 1), KEEP=1 (keep the run's
# directory: databases, logs, the TFTP root, nginx's config and error log),
# PERF_DIR (a CPU profile of hotdeskd, perf record -g, during each of its
# rounds without authentication: PERF_DIR/storm-DEVICES-roundN.data).
#
# Where the files are: the TFTP root is $BENCH_DIR/tftp on the machine's
# file system (/var/tmp), as on a real node; at 1,000,000 devices hotdeskd's
# first start writes 1.5 million files there (about 6 GB of disk blocks,
# a 60 MB directory) before the storm starts, and the file system is
# synced first so that neither server is measured during their writeback.
#
# nginx is set up as an operator would for this load:
# - open_file_cache keeps one descriptor open per cached file in each
#   worker, so the worker's file limit must exceed the cache plus two
#   descriptors per connection.  At 1,000,000 devices the former
#   configuration (a cache of 100,000 files, the inherited limit of 20,000
#   descriptors) made nginx fail: "open() failed (24: Too many open files)"
#   and "accept4() failed (24: ...)", 500 answers and stalled connections.
#   worker_rlimit_nofile is now the hard limit nginx may take (it cannot
#   raise it without CAP_SYS_RESOURCE) and the cache is sized to fit under
#   it (NG_OFC, default: the limit less 3 descriptors per worker
#   connection, at most 100,000).  With DEVICES files more than the cache
#   holds, every fetch of a boot storm (each phone fetches its file once,
#   here the list cycled) misses it, whatever its size: nginx opens the
#   file, as on a real node.
# - listen ... reuseport: one accept queue per worker, so the keep-alive
#   connections are spread over the workers (without it most may land on
#   one); no access log, unlimited keep-alive.
# - sendfile off (NG_SENDFILE=on for the usual setting): the files are
#   of 0.1-1.3 kB, and with sendfile nginx makes five system calls per
#   answer besides the file's open/fstat/close (setsockopt TCP_CORK on,
#   writev of the header, sendfile, TCP_CORK off, then the next recv),
#   without it three (a read, one writev of header and body, recv).  At
#   1,000,000 devices sendfile off served 10-49 % more requests per second
#   in four alternated pairs (load 5-7).
# Exit status: 0 when every run completed without errors (ratios are
# reported, not enforced: a benchmark is not a test).
. "$(dirname "$0")/lib.sh"

if [ "$QUICK" = 1 ]; then
	DEVICES=${DEVICES:-200} DURATION=${DURATION:-1} CONNS=${CONNS:-8}
else
	DEVICES=${DEVICES:-10000} DURATION=${DURATION:-15} CONNS=${CONNS:-64}
fi
ORGS=$(((DEVICES + 999) / 1000))
AUTH_CONNS=${AUTH_CONNS:-$([ "$QUICK" = 1 ] && echo 4 || echo 32)}
WRK_THREADS=$CORES
[ "$WRK_THREADS" -gt 4 ] && WRK_THREADS=4
ROUNDS=${ROUNDS:-1}
NG_SENDFILE=${NG_SENDFILE:-off}
# nginx's descriptors per worker: the hard limit, and the open file cache
# that fits under it with NG_WORKER_CONNS connections (see above)
NG_WORKER_CONNS=1024
# shellcheck disable=SC3045 # dash and bash know ulimit -H
NG_NOFILE=$(ulimit -Hn)
[ "$NG_NOFILE" = unlimited ] || [ "$NG_NOFILE" -gt 1048576 ] && NG_NOFILE=1048576
if [ -z "${NG_OFC:-}" ]; then
	NG_OFC=$((NG_NOFILE - 3 * NG_WORKER_CONNS))
	[ "$NG_OFC" -gt 100000 ] && NG_OFC=100000
fi
[ "$NG_OFC" -ge 1000 ] || die "too few file descriptors for nginx (ulimit -Hn: $NG_NOFILE)"
[ $((NG_OFC + 2 * NG_WORKER_CONNS)) -lt "$NG_NOFILE" ] ||
	die "NG_OFC=$NG_OFC does not fit under nginx's $NG_NOFILE descriptors"

# phase LABEL -- how long the phase since the last call took, in seconds
PHASE_T=$(date +%s%N)
phase() {
	t=$(date +%s%N)
	figure "phase: $1" "$(awk "BEGIN { printf \"%.1f s (load %s)\", ($t - $PHASE_T) / 1e9, \"$(loadavg)\" }")"
	PHASE_T=$t
}

bench_build
bench_header "boot storm"
echo "devices:     $DEVICES over $ORGS organizations; wrk $WRK_THREADS threads, $CONNS connections, ${DURATION}s per run"
echo "servers:     hotdeskd [server] threads = $THREADS; nginx worker_processes = $THREADS," \
	"open_file_cache max=$NG_OFC, worker_rlimit_nofile $NG_NOFILE, sendfile $NG_SENDFILE"
echo "TFTP root:   $BENCH_DIR/tftp ($(df -P "$BENCH_DIR" | awk 'NR == 2 { printf "%s, %d GiB free", $1, $4 / 1048576 }'))"
chmod 0755 "$BENCH_DIR" # nginx workers run as an unprivileged user

if [ -n "${GEN_DIR:-}" ] && [ -f "$GEN_DIR/s$DEVICES.db" ]; then
	cp "$GEN_DIR/s$DEVICES.db" "$BENCH_DIR/storm.db"
	cp "$GEN_DIR/s$DEVICES.paths" "$BENCH_DIR/storm.paths"
else
	gen_db storm "$DEVICES" "$ORGS" >/dev/null
fi
tftp=$BENCH_DIR/tftp
mkdir -m 0755 "$tftp"
hd_config storm "$BENCH_DIR/storm.db" "$tftp"
phase "database ($DEVICES devices)"

free_port() {
	$PY -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# nginx_start [basic] -- nginx on a free loopback port serving the TFTP
# root under /provision/, as tuned as nginx allows for small static files
nginx_start() {
	ng=$BENCH_DIR/nginx
	mkdir -p "$ng/logs"
	# each run's error log on its own: the former one kept as error-N.log
	[ -s "$ng/logs/error.log" ] && mv "$ng/logs/error.log" "$ng/logs/error-$(date +%s%N).log"
	NG_PORT=$(free_port)
	auth=""
	if [ "${1:-}" = basic ]; then
		echo "phone:{PLAIN}bench-prov-password" >"$ng/htpasswd"
		chmod 0644 "$ng/htpasswd"
		auth="auth_basic \"hotdeskd\"; auth_basic_user_file $ng/htpasswd;"
	fi
	user=""
	[ "$(id -u)" -eq 0 ] && user="user nobody nogroup;"
	cat >"$ng/nginx.conf" <<CONF
$user
worker_processes $THREADS;
worker_rlimit_nofile $NG_NOFILE;
daemon off;
pid $ng/nginx.pid;
error_log $ng/logs/error.log warn;
events { worker_connections $NG_WORKER_CONNS; }
http {
	access_log off;
	sendfile $NG_SENDFILE;
	tcp_nopush on;
	tcp_nodelay on;
	keepalive_requests 100000000;
	keepalive_timeout 65;
	open_file_cache max=$NG_OFC inactive=60s;
	open_file_cache_valid 60s;
	default_type application/octet-stream;
	client_body_temp_path $ng/tmp;
	server {
		listen 127.0.0.1:$NG_PORT reuseport;
		location = / { return 204; } # the readiness probe
		location /provision/ { alias $tftp/; $auth }
	}
}
CONF
	/usr/sbin/nginx -e "$ng/logs/error.log" -p "$ng" -c "$ng/nginx.conf" &
	NG_PID=$!
	BENCH_PIDS="$BENCH_PIDS $NG_PID"
	i=0
	until curl -s -o /dev/null "http://127.0.0.1:$NG_PORT/"; do
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

# run_wrk LABEL URL SCRIPT [ARGS...] -- prints the figures, sets RPS, ERR
run_wrk() {
	label=$1 url=$2 script=$3
	shift 3
	# a short warm-up first (connections, caches), not measured
	wrk -t"$WRK_THREADS" -c"$CONNS" -d1s -s "$script" "$url" -- "$@" >/dev/null 2>&1 || true
	out=$(wrk -t"$WRK_THREADS" -c"$CONNS" -d"${DURATION}s" --latency -s "$script" "$url" -- "$@" 2>&1) ||
		{ echo "$out" >&2; die "wrk failed ($label)"; }
	line=$(echo "$out" | grep '^RESULT ') || { echo "$out" >&2; die "no result ($label)"; }
	eval "$(echo "$line" | sed 's/^RESULT //')"
	figure "$label req/s" "$rps"
	figure "$label latency p50 / p99 / max" "$(awk "BEGIN { printf \"%.2f / %.2f / %.2f ms\", $p50_us / 1000, $p99_us / 1000, $max_us / 1000 }")"
	figure "$label errors (of which non-2xx)" "$errors ($status_errors) of $requests"
	RPS=$rps ERR=$errors STATUS_ERR=$status_errors
}

# run_wrk_auth LABEL URL SCHEME -- the challenge-then-fetch dance; sets FPS,
# BAD (transport errors plus answers refused after credentials were sent)
run_wrk_auth() {
	label=$1 url=$2
	args="$BENCH_DIR/storm.paths $3 phone bench-prov-password hotdeskd $AUTH_CONNS"
	# shellcheck disable=SC2086
	wrk -t"$AUTH_CONNS" -c"$AUTH_CONNS" -d1s -s "$ROOT/bench/storm-auth.lua" "$url" -- $args >/dev/null 2>&1 || true
	# shellcheck disable=SC2086
	out=$(wrk -t"$AUTH_CONNS" -c"$AUTH_CONNS" -d"${DURATION}s" --latency -s "$ROOT/bench/storm-auth.lua" \
		"$url" -- $args 2>&1) || { echo "$out" >&2; die "wrk failed ($label)"; }
	line=$(echo "$out" | grep '^RESULT ') || { echo "$out" >&2; die "no result ($label)"; }
	eval "$(echo "$line" | sed 's/^RESULT //')"
	figure "$label fetches/s (HTTP req/s)" "$fps ($rps)"
	figure "$label latency p50 / p99 / max" "$(awk "BEGIN { printf \"%.2f / %.2f / %.2f ms\", $p50_us / 1000, $p99_us / 1000, $max_us / 1000 }")"
	# one 401 per fetch is the dance; more means credentials were refused
	refused=$((status_errors - fetches - AUTH_CONNS))
	[ "$refused" -lt 0 ] && refused=0
	figure "$label errors (refused after credentials)" "$errors ($refused) of $requests"
	FPS=$fps BAD=$((errors + refused))
}

check_same_files() { # a sample of files must be byte-identical from both servers
	for p in $(awk 'NR % 997 == 1' "$BENCH_DIR/storm.paths" | head -5); do
		a=$(curl -sf "$HD_URL/provision/$p" | md5sum) || die "hotdeskd: $p"
		b=$(curl -sf "http://127.0.0.1:$NG_PORT/provision/$p" | md5sum) || die "nginx: $p"
		[ "$a" = "$b" ] || die "hotdeskd and nginx serve different bytes for $p"
	done
}

# ng_log_check -- nginx's error log must stay empty of failures (a file it
# could not open is an error answer wrk counts, but a refused accept is
# not); sets NG_LOG_ERR, the number of failures logged
ng_log_check() {
	NG_LOG_ERR=$(grep -c '\[\(crit\|alert\|emerg\|error\)\]' "$BENCH_DIR/nginx/logs/error.log" || true)
	[ "$NG_LOG_ERR" = 0 ] && return 0
	sed -n '1,5p' "$BENCH_DIR/nginx/logs/error.log" >&2
	figure "nginx error log" "$NG_LOG_ERR failures (KEEP=1 keeps $BENCH_DIR/nginx/logs/)"
}

hd_start storm
figure "hotdeskd first start (every file written)" "wall $HD_START_MS ms, CPU $HD_START_CPU_MS ms"
phase "hotdeskd first start"
# the files just written are flushed before the storm, not during it
sync -f "$tftp"
phase "sync of the TFTP root"
# and read once, so that neither server's first read of a file updates
# its access time (relatime: the first read after a write dirties the
# inode; hotdeskd's own reads never do, O_NOATIME, a reader such as
# nginx does): the storm compares the serving paths alone
find "$tftp" -type f -print0 | xargs -0 cat >/dev/null
phase "access times of the TFTP root settled"
nginx_start
check_same_files
phase "nginx start, 5 files compared"
echo
echo "-- without authentication"
hd_sum=0 ng_sum=0 hd_err=0 ng_err=0
hd_one() {
	perf_start "storm-$DEVICES-round$r"
	run_wrk "hotdeskd" "$HD_URL" "$ROOT/bench/storm.lua" "$BENCH_DIR/storm.paths"
	perf_stop
	hd_sum=$((hd_sum + RPS)) hd_err=$((hd_err + ERR))
	phase "hotdeskd storm (1 s warm-up, ${DURATION} s)"
}
ng_one() {
	run_wrk "nginx" "http://127.0.0.1:$NG_PORT" "$ROOT/bench/storm.lua" "$BENCH_DIR/storm.paths"
	ng_sum=$((ng_sum + RPS)) ng_err=$((ng_err + ERR))
	phase "nginx storm (1 s warm-up, ${DURATION} s)"
}
r=1
while [ "$r" -le "$ROUNDS" ]; do
	if [ $((r % 2)) = 1 ]; then hd_one && ng_one; else ng_one && hd_one; fi
	r=$((r + 1))
done
ng_log_check
ng_err=$((ng_err + NG_LOG_ERR))
[ "$ng_sum" -gt 0 ] || die "nginx served nothing"
ratio=$(awk "BEGIN { printf \"%.2f\", $hd_sum / $ng_sum }")
[ "$ROUNDS" -gt 1 ] && figure "mean of $ROUNDS rounds hotdeskd / nginx req/s" "$((hd_sum / ROUNDS)) / $((ng_sum / ROUNDS))"
figure "ratio hotdeskd/nginx (target >= 1.0)" "$ratio"
nginx_stop
hd_stop
if [ "${AUTH:-1}" = 0 ]; then
	[ "$hd_err" = 0 ] && [ "$ng_err" = 0 ] || die "errors during the run without authentication"
	exit 0
fi

echo
echo "-- with authentication, each fetch as a booting phone does it: 401 challenge, then"
echo "   the authenticated GET (hotdeskd: digest, shared credentials; nginx: basic);"
echo "   wrk $AUTH_CONNS threads x 1 connection; fetches/s counts 200 answers"
$PY - "$BENCH_DIR/storm.db" <<'PY'
import sqlite3, sys
db = sqlite3.connect(sys.argv[1])
with db:
    db.execute("UPDATE orgs SET prov_auth = 'shared', prov_user = 'phone',"
               " prov_password = 'bench-prov-password'")
PY
hd_start storm
nginx_start basic
run_wrk_auth "hotdeskd digest" "$HD_URL" digest
hdd_fps=$FPS hdd_bad=$BAD hdd_fetches=$fetches ERRS_T=$errors
run_wrk_auth "nginx basic" "http://127.0.0.1:$NG_PORT" basic
ngb_fps=$FPS ngb_bad=$BAD ERRS_T=$((ERRS_T + errors))
figure "ratio hotdeskd digest / nginx basic" "$(awk "BEGIN { printf \"%.2f\", $hdd_fps / $ngb_fps }")"
ng_log_check
ngb_bad=$((ngb_bad + NG_LOG_ERR))
nginx_stop
hd_stop

[ "$hd_err" = 0 ] && [ "$ng_err" = 0 ] || die "errors during the run without authentication"
# a fetch refused after credentials is retried by a phone (a new
# challenge); libmicrohttpd 0.9.75 refuses some when its nonce table
# (4096 slots) is shared by thousands of booting phones: reported, and
# only a broken dance (more refused than served) fails the run
figure "hotdeskd digest refused / served" "$(awk "BEGIN { printf \"%.1f %%\", 100 * $hdd_bad / ($hdd_fetches + 1) }")"
[ "$ERRS_T" = 0 ] || die "transport errors during the run with authentication"
[ "$hdd_bad" -le "$hdd_fetches" ] && [ "$ngb_bad" = 0 ] ||
	die "too many refused fetches with authentication"
