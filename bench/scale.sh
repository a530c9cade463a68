#!/bin/sh
# scale.sh -- the scale figures of SPEC 8: resident memory at 10,000 and
# 100,000 devices, start-up time with 100,000 devices (process start until
# the port file is written), and the time to re-render every device after
# a template change (the per-device template of all four profiles, replaced
# through the template API, as an administrator does).
#
#   sh bench/scale.sh            10,000 and 100,000 devices (a few minutes)
#   QUICK=1 sh bench/scale.sh    200 and 1,000 devices
#   TFTP_KINDS="tmpfs disk"      where the TFTP root lives (default: both)
#   GEN_DIR=/var/tmp/...         reuse the databases a KEEP=1 run left there
#                                (s<N>.db and s<N>.paths): 1,000,000 devices
#                                take minutes to generate
#   DURING=0                     no second re-render with moves and fetches
#   DURING_PAIRS=N               move pairs (a *30 with its code, then a
#                                bare *30) during it, one after the other
#                                (default: one per 2,000 devices, 10 to
#                                200: they should last about as long as
#                                the re-render; quick 3)
#   FETCH_RATE=1000              the phones' fetches per second during it
#                                (0: back to back on one connection)
#   PERF_DIR=/var/tmp/...        a CPU profile of the daemon (perf record
#                                -g) during each re-render, one file each
#
# Start-up is measured twice: the first start after the data was loaded
# (every file rendered and written to the TFTP root), and a restart (the
# normal case: files already there).  Memory is read from /proc (VmRSS and
# the peak VmHWM) after the start, after a boot storm that fetched every
# device's file (each device then has its fetch record), and after the
# re-render.  The re-render is timed around the four PUT requests (each
# validates against every device of its profile, re-renders and publishes
# the changed ones over HTTP and TFTP, and queues their resyncs).
. "$(dirname "$0")/lib.sh"

if [ "$QUICK" = 1 ]; then
	SIZES=${SIZES:-"200 1000"}
else
	SIZES=${SIZES:-"10000 100000"}
fi

bench_build
bench_header "scale"

# rerender_all -- changes the per-device template of every profile through
# the API; prints the seconds it took and the number of devices changed
# rerender_all [WORD] -- the comment line says "revised WORD"
rerender_all() {
	$PY - "$HD_PORT" "$ADMIN_TOKEN" "${1:-}" <<'PYEOF'
import http.client, json, sys, time
port, token, word = int(sys.argv[1]), sys.argv[2], sys.argv[3]
h = {"Authorization": "Bearer " + token}
# a comment line that changes every file of the profile
w = ("revised " + word).strip()
files = {"polycom": ("line.cfg", "<!-- %s -->\n" % w),
         "yealink": ("device.cfg", "# %s\n" % w),
         "cisco-mpp": ("device.xml", "<!-- %s -->\n" % w),
         "cisco-enterprise": ("device.cnf.xml", "<!-- %s -->\n" % w)}
bodies = []
for prof, (name, extra) in files.items():
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
    c.request("GET", "/api/v1/templates/%s/%s" % (prof, name), headers=h)
    r = c.getresponse()
    t = json.loads(r.read())
    if r.status != 200:
        sys.exit("GET template %s/%s: %d" % (prof, name, r.status))
    text = t["content"]
    if text.startswith("<?xml"):  # the comment goes after the declaration
        i = text.index("?>") + 2
        text = text[:i] + "\n" + extra + text[i:].lstrip("\n")
    else:
        i = text.index("\n") + 1  # after Yealink's version line
        text = text[:i] + extra + text[i:]
    bodies.append((prof, name, text.encode()))
changed = 0
t0 = time.perf_counter()
for prof, name, body in bodies:
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
    c.request("PUT", "/api/v1/templates/%s/%s?comment=bench" % (prof, name), body=body,
              headers=dict(h, **{"Content-Type": "text/plain"}))
    r = c.getresponse()
    a = json.loads(r.read())
    if r.status != 200:
        sys.exit("PUT template %s/%s: %d %s" % (prof, name, r.status, a))
    changed += len(a["changed"])
print("%.3f %d" % (time.perf_counter() - t0, changed))
PYEOF
}

# fetch_probe PID -- phones fetch a random device's file, FETCH_RATE
# requests a second on one connection (default 1,000: a million phones
# each polling every 17 minutes), while process PID runs; prints the
# latencies (ms), each from the moment its request was due (a stall
# delays the requests behind it, and they count it), and the count.
# FETCH_RATE=0: one after another, as fast as the server answers.
fetch_probe() {
	$PY - "$HD_PORT" "$BENCH_DIR/s$n.paths" "$1" "${FETCH_RATE:-1000}" <<'PYEOF'
import http.client, os, random, sys, time
port, paths, pid = int(sys.argv[1]), open(sys.argv[2]).read().split(), sys.argv[3]
rate = float(sys.argv[4])
lat, bad, dropped = [], 0, 0
c = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
due = time.perf_counter()
while os.path.exists("/proc/" + pid):
    if rate > 0:
        due += 1 / rate
        wait = due - time.perf_counter()
        if wait > 0:
            time.sleep(wait)
        t0 = due
    else:
        t0 = time.perf_counter()
    try:
        c.request("GET", "/provision/" + random.choice(paths))
        r = c.getresponse()
        r.read()
    except (OSError, http.client.HTTPException):
        # the server closed the connection (its request deadline)
        dropped += 1
        c.close()
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
        continue
    lat.append((time.perf_counter() - t0) * 1e3)
    bad += r.status != 200
lat.sort()
if not lat:
    print("no fetch answered (%d dropped)" % dropped)
else:
    print("p50 %.2f / p99 %.2f / max %.1f ms (%d fetches, %s, %d not 200, %d dropped)" % (
        lat[len(lat) // 2], lat[int(len(lat) * 0.99)], lat[-1], len(lat),
        "%g/s" % rate if rate > 0 else "back to back", bad, dropped))
PYEOF
}

# during_pairs -- the move pairs measured during the re-render of $n devices
during_pairs() {
	if [ "$QUICK" = 1 ]; then
		echo 3
	elif [ -n "${DURING_PAIRS:-}" ]; then
		echo "$DURING_PAIRS"
	else
		p=$((n / 2000))
		echo $((p < 10 ? 10 : p > 200 ? 200 : p))
	fi
}

# during_rerender -- moves and fetches while every device is re-rendered
during_rerender() {
	rm -f "$BENCH_DIR/go"
	$PY "$ROOT/bench/moves.py" --port "$HD_PORT" --token "$PBX_TOKEN" \
		--moves "$BENCH_DIR/s$n.moves" --code "$CODE" --latency-pairs "$(during_pairs)" \
		--clients 0 --seconds 0 --start-after "$BENCH_DIR/go" >"$BENCH_DIR/during.moves" 2>&1 &
	mv_pid=$!
	BENCH_PIDS="$BENCH_PIDS $mv_pid"
	while ! grep -qs registered "$BENCH_DIR/during.moves"; do
		kill -0 "$mv_pid" 2>/dev/null || { cat "$BENCH_DIR/during.moves" >&2; die "moves.py failed"; }
		sleep 0.05
	done
	perf_start "s$n-$kind-during"
	cpu1=$(hd_cpu_ms)
	rerender_all again >"$BENCH_DIR/during.rr" &
	rr_pid=$!
	BENCH_PIDS="$BENCH_PIDS $rr_pid"
	sleep 0.2
	touch "$BENCH_DIR/go"
	fetch_probe "$rr_pid" >"$BENCH_DIR/during.fetch" &
	fp_pid=$!
	wait "$mv_pid" || { cat "$BENCH_DIR/during.moves" >&2; die "moves during the re-render failed"; }
	moves_end=$(date +%s%N)
	wait "$rr_pid" || die "the second re-render failed"
	rr_end=$(date +%s%N)
	perf_stop
	wait "$fp_pid" || die "the fetch probe failed"
	set -- $(cat "$BENCH_DIR/during.rr")
	figure "re-render again, with moves and fetches" "$1 s ($2 devices changed, CPU $(($(hd_cpu_ms) - cpu1)) ms, load $(loadavg))"
	[ "$moves_end" -le "$rr_end" ] || echo "  (the moves outlasted the re-render)"
	sed -n 's/^move -> answer (hash excluded): */  move -> answer during it           /p; s/^move -> last file published: */  move -> last file published during it /p; s/^move -> first NOTIFY sent: */  move -> first NOTIFY during it     /p; s/^client round trip, accepted: */  move round trip (with hash) during it /p; s/^moves within target: */  moves within target during it     /p' \
		"$BENCH_DIR/during.moves"
	figure "  phone fetch during it" "$(cat "$BENCH_DIR/during.fetch")"
	figure "  memory after it (VmRSS / VmHWM MiB)" "$(hd_mem | sed 's/ / \/ /')"
}

for n in $SIZES; do
	orgs=$(((n + 999) / 1000))
	echo
	echo "-- $n devices over $orgs organizations"
	if [ -n "${GEN_DIR:-}" ] && [ -f "$GEN_DIR/s$n.db" ]; then
		cp "$GEN_DIR/s$n.db" "$GEN_DIR/s$n.paths" "$GEN_DIR/s$n.moves" "$BENCH_DIR/"
	else
		gen_db "s$n" "$n" "$orgs" >/dev/null
	fi
	for kind in ${TFTP_KINDS:-tmpfs disk}; do
		echo "   TFTP root on $kind"
		cp "$BENCH_DIR/s$n.db" "$BENCH_DIR/s$n-$kind.db"
		hd_config "s$n-$kind" "$BENCH_DIR/s$n-$kind.db" "$(tftp_dir "s$n" "$kind")"
		hd_start "s$n-$kind"
		figure "first start (render + write every file)" "$HD_START_MS ms (CPU $HD_START_CPU_MS ms, load $(loadavg))"
		figure "  memory after it (VmRSS / VmHWM MiB)" "$(hd_mem | sed 's/ / \/ /')"
		hd_stop
		hd_start "s$n-$kind"
		figure "start-up, restart (< 1 s at 100k, < 10 s at 1M)" "$HD_START_MS ms (CPU $HD_START_CPU_MS ms, load $(loadavg))"
		figure "  memory after start (VmRSS / VmHWM MiB)" "$(hd_mem | sed 's/ / \/ /')"
		# every device fetches its file once (a boot storm's worth)
		wrk -t2 -c32 -d"$( [ "$QUICK" = 1 ] && echo 1 || echo 4 )s" \
			-s "$ROOT/bench/storm.lua" "$HD_URL" -- "$BENCH_DIR/s$n.paths" >/dev/null 2>&1 ||
			die "boot storm for the memory figure failed"
		figure "  memory after every device fetched (target < 200 MB)" "$(hd_mem_mb)"
		perf_start "s$n-$kind-alone"
		cpu0=$(hd_cpu_ms)
		out=$(rerender_all) || die "re-render through the API failed"
		perf_stop
		set -- $out
		figure "re-render after a template change (< 10 s)" "$1 s ($2 devices changed, CPU $(($(hd_cpu_ms) - cpu0)) ms, load $(loadavg))"
		[ "$2" = "$n" ] || die "re-render changed $2 of $n devices"
		figure "  memory after it (VmRSS / VmHWM MiB)" "$(hd_mem | sed 's/ / \/ /')"
		curl -sf "$HD_URL/provision/$(head -1 "$BENCH_DIR/s$n.paths")" | grep -q revised ||
			die "the re-rendered file is not served"
		if [ "${DURING:-1}" = 1 ]; then
			during_rerender
			curl -sf "$HD_URL/provision/$(head -1 "$BENCH_DIR/s$n.paths")" | grep -q "revised again" ||
				die "the file re-rendered again is not served"
		fi
		hd_stop
		rm -f "$BENCH_DIR/s$n-$kind.db"*
	done
done
