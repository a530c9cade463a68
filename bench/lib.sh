# lib.sh -- shared helpers of the hotdeskd benchmarks (sourced, POSIX sh).
#
# Owns: building hotdeskd, the work directory of a run ($BENCH_DIR, removed
# on exit unless KEEP=1), generating a database with N devices (gen_db),
# starting and stopping one hotdeskd on a loopback port (hd_start/hd_stop),
# reading its resident memory, and printing the machine and the versions.
# Every daemon and helper process a benchmark starts is stopped on exit by
# its pid.  Only loopback addresses are used.
#
# Environment: QUICK=1 runs tiny sizes for a few seconds (CI: the scripts
# must not rot); THREADS = hotdeskd [server] threads (default: cores);
# BENCH_TMP = where the work directory goes (default /var/tmp: the TFTP
# root "on disk" is there; another file system to compare its mount
# options).

set -eu
ROOT=$(cd "$(dirname "$0")/.." && pwd)
# HOTDESKD=path runs that binary instead of building one (comparing two
# builds in the same minutes)
HOTDESKD_GIVEN=${HOTDESKD:-}
HOTDESKD=${HOTDESKD:-$ROOT/build/hotdeskd}
PY=/usr/bin/python3
QUICK=${QUICK:-0}
CORES=$(nproc)
THREADS=${THREADS:-$CORES}
PBX_TOKEN=bench-pbx-token-0123456789abcdef
ADMIN_TOKEN=bench-admin-token-0123456789abcdef
CODE=1234 # the secret code of every generated extension
BENCH_PIDS=""

BENCH_DIR=$(mktemp -d "${BENCH_TMP:-/var/tmp}/hotdeskd-bench.XXXXXX")
# tmpfs work space (TFTP roots on tmpfs), removed with the rest
BENCH_SHM=$(mktemp -d /dev/shm/hotdeskd-bench.XXXXXX 2>/dev/null || echo "")
bench_cleanup() {
	for p in $BENCH_PIDS; do
		kill -TERM "$p" 2>/dev/null || true
	done
	for p in $BENCH_PIDS; do
		wait "$p" 2>/dev/null || true
	done
	if [ -n "$BENCH_SHM" ]; then rm -rf "$BENCH_SHM"; fi
	if [ "${KEEP:-0}" = 1 ]; then
		echo "kept $BENCH_DIR" >&2
	else
		rm -rf "$BENCH_DIR"
	fi
}
trap bench_cleanup EXIT
trap 'exit 130' INT TERM

die() {
	echo "bench: $*" >&2
	exit 1
}

bench_build() {
	if [ "$(id -u)" -eq 0 ]; then
		sh "$ROOT/scripts/deps.sh" bench >/dev/null || die "scripts/deps.sh bench failed"
	fi
	for t in wrk nginx curl; do
		command -v $t >/dev/null 2>&1 || [ -x /usr/sbin/$t ] ||
			die "$t missing: run sh scripts/deps.sh bench as root"
	done
	if [ -z "$HOTDESKD_GIVEN" ]; then
		make -s -C "$ROOT" all >/dev/null || die "build failed"
	fi
}

# machine and versions, one "key: value" per line
bench_header() {
	echo "== $1"
	echo "date:        $(date -u +%Y-%m-%dT%H:%M:%SZ)"
	echo "cpu:         $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)"
	echo "cores:       $CORES"
	echo "memory:      $(awk '/MemTotal/ { printf "%d MiB", $2 / 1024 }' /proc/meminfo)"
	echo "kernel:      $(uname -sr)"
	if [ -n "$HOTDESKD_GIVEN" ]; then
		echo "hotdeskd:    $HOTDESKD_GIVEN"
	else
		echo "hotdeskd:    $(cd "$ROOT" && git rev-parse --short HEAD 2>/dev/null || echo unknown)$(cd "$ROOT" && git diff --quiet HEAD -- src 2>/dev/null || echo '+local changes')"
	fi
	echo "nginx:       $(/usr/sbin/nginx -v 2>&1 | sed 's/^nginx version: //')"
	echo "wrk:         $(wrk -v 2>&1 | head -1 | awk '{print $2}')"
	echo "microhttpd:  $(pkg-config --modversion libmicrohttpd)"
	echo "sqlite:      $(pkg-config --modversion sqlite3)"
	echo "quick mode:  $QUICK"
}

# tftp_dir NAME KIND -- makes a TFTP root for a run and prints its path:
# KIND "disk" under $BENCH_DIR (the machine's file system), "tmpfs" under
# /dev/shm (removed on exit with the rest).  hotdeskd rewrites its TFTP
# root from the database at every start, so a tmpfs root loses nothing.
tftp_dir() {
	case "$2" in
	tmpfs)
		[ -n "$BENCH_SHM" ] || die "no tmpfs at /dev/shm"
		d=$BENCH_SHM/tftp-$1
		mkdir -p "$d"
		;;
	*)
		d=$BENCH_DIR/tftp-$1
		mkdir -p "$d"
		;;
	esac
	chmod 0755 "$d"
	echo "$d"
}

# hd_config NAME DB [TFTP_ROOT] -- writes $BENCH_DIR/NAME.ini
hd_config() {
	cat >"$BENCH_DIR/$1.ini" <<INI
; hotdeskd benchmark configuration ($1)
[server]
listen = 127.0.0.1
port = 0
port_file = $BENCH_DIR/$1.port
threads = $THREADS
check_invariants = false
[database]
path = $2
migrations = $ROOT/sql
[log]
level = warn
[pbx]
token = $PBX_TOKEN
[admin]
token = $ADMIN_TOKEN
[provisioning]
templates = $ROOT/templates
static = $ROOT/provisioning
tftp_root = ${3:-}
; every client is 127.0.0.1 here: the per-source miss throttle would
; treat a whole boot storm as one scanner
miss_threshold = 1000000
[sip]
bind = 127.0.0.1:0
[secrets]
; code hashes at once (0: one per core); each holds hash_mem_kib (32 MiB
; by default) while it runs
hash_parallel = ${HASH_PARALLEL:-0}
; the code hash's cost (hotdeskd's defaults: 4 passes over 32 MiB); a tiny
; one (HASH_OPS=1 HASH_MEM_KIB=8) leaves a move's own path to measure
hash_ops = ${HASH_OPS:-4}
hash_mem_kib = ${HASH_MEM_KIB:-32768}
INI
}

# hd_start NAME -- starts hotdeskd with NAME.ini; sets HD_PID, HD_PORT,
# HD_URL and HD_START_MS (process start until the port file is there)
hd_start() {
	rm -f "$BENCH_DIR/$1.port"
	t0=$(date +%s%N)
	"$HOTDESKD" --config "$BENCH_DIR/$1.ini" 2>>"$BENCH_DIR/$1.log" &
	HD_PID=$!
	BENCH_PIDS="$BENCH_PIDS $HD_PID"
	while [ ! -s "$BENCH_DIR/$1.port" ]; do
		kill -0 "$HD_PID" 2>/dev/null || { cat "$BENCH_DIR/$1.log" >&2; die "hotdeskd did not start"; }
		sleep 0.005
	done
	t1=$(date +%s%N)
	HD_START_MS=$(((t1 - t0) / 1000000))
	HD_START_CPU_MS=$(hd_cpu_ms)
	HD_PORT=$(cat "$BENCH_DIR/$1.port")
	HD_URL=http://127.0.0.1:$HD_PORT
}

# hd_cpu_ms -- CPU time (user + system, all threads) the running hotdeskd
# has used so far, in ms (/proc/PID/stat; on a loaded machine it tells
# far more than the wall time)
hd_cpu_ms() {
	awk -v hz="$(getconf CLK_TCK)" '{ sub(/^.*\) /, ""); printf "%d", ($12 + $13) * 1000 / hz }' \
		"/proc/$HD_PID/stat"
}

# loadavg -- the 1-minute load average now
loadavg() {
	cut -d' ' -f1 /proc/loadavg
}

hd_stop() {
	kill -TERM "$HD_PID" 2>/dev/null || true
	wait "$HD_PID" 2>/dev/null || die "hotdeskd exited non-zero on SIGTERM"
	BENCH_PIDS=$(echo "$BENCH_PIDS" | sed "s/ $HD_PID\b//")
}

# hd_mem -- "VmRSS VmHWM" of the running hotdeskd, in MiB
hd_mem() {
	awk '/^VmRSS/ { r = $2 } /^VmHWM/ { h = $2 } END { printf "%.1f %.1f", r / 1024, h / 1024 }' \
		"/proc/$HD_PID/status"
}

# hd_mem_mb -- "VmRSS MB (MiB)" of the running hotdeskd (SPEC 8 counts MB)
hd_mem_mb() {
	awk '/^VmRSS/ { printf "%.1f MB (%.1f MiB)", $2 * 1.024 / 1000, $2 / 1024 }' "/proc/$HD_PID/status"
}

# gen_db NAME DEVICES ORGS [PROV_AUTH] -- a database with DEVICES devices
# and extensions over ORGS organizations in $BENCH_DIR/NAME.db: the
# daemon applies the migrations to an empty file and makes one real
# Argon2id hash through the API (default hash settings), then gen.py
# inserts every row directly (the API would take minutes for 100,000).
gen_db() {
	db=$BENCH_DIR/$1.db
	hd_config "$1-seed" "$db"
	hd_start "$1-seed"
	curl -sf -o /dev/null -X PUT -H "Authorization: Bearer $ADMIN_TOKEN" "$HD_URL/api/v1/orgs/seed" \
		-d '{"sip_server":{"host":"pbx.seed.test","port":5060,"transport":"udp"}}' ||
		die "seed organization"
	curl -sf -o /dev/null -X PUT -H "Authorization: Bearer $ADMIN_TOKEN" \
		"$HD_URL/api/v1/orgs/seed/extensions/1" \
		-d "{\"sip_user\":\"seed-1\",\"sip_password\":\"x\",\"secret_code\":\"$CODE\"}" ||
		die "seed extension"
	hd_stop
	$PY "$ROOT/bench/gen.py" --db "$db" --devices "$2" --orgs "$3" \
		--prov-auth "${4:-none}" --paths "$BENCH_DIR/$1.paths" --moves "$BENCH_DIR/$1.moves" ||
		die "gen.py failed"
}

# io_avg10 -- the share of the last 10 s in which some task waited for
# the disk (/proc/pressure/io), "?" where the kernel does not tell
io_avg10() {
	_v=$(io_some10)
	[ -n "$_v" ] && echo "$_v %" || echo "?"
}

# io_some10 -- io_avg10's number alone (nothing where the kernel does not
# tell)
io_some10() {
	sed -n 's/^some avg10=\([0-9.]*\).*/\1/p' /proc/pressure/io 2>/dev/null || true
}

# io_settle SECONDS -- waits, at most SECONDS, until tasks waited for the
# disk less than 1 % of the last 10 s (/proc/pressure/io); prints the
# seconds waited (at once where the kernel does not tell)
io_settle() {
	_waited=0
	while [ "$_waited" -lt "$1" ]; do
		_v=$(io_some10)
		[ -n "$_v" ] || break
		awk -v v="$_v" 'BEGIN { exit !(v < 1.0) }' && break
		sleep 1
		_waited=$((_waited + 1))
	done
	echo "$_waited"
}

# figure LABEL VALUE -- one result line
figure() {
	printf '%-44s %s\n' "$1" "$2"
}

# perf_start NAME / perf_stop -- with PERF_DIR set, records where the
# daemon spends its CPU meanwhile into PERF_DIR/NAME.data (perf report -i)
perf_start() {
	[ -n "${PERF_DIR:-}" ] || return 0
	mkdir -p "$PERF_DIR"
	perf record -q -F 499 -g -p "$HD_PID" -o "$PERF_DIR/$1.data" 2>/dev/null &
	perf_pid=$!
	BENCH_PIDS="$BENCH_PIDS $perf_pid"
	sleep 0.5 # perf attached
}
perf_stop() {
	[ -n "${PERF_DIR:-}" ] || return 0
	kill -INT "$perf_pid" 2>/dev/null || true
	wait "$perf_pid" || true
}
