#!/bin/sh
# scale.sh -- the scale figures of SPEC 8: resident memory at 10,000 and
# 100,000 devices, start-up time with 100,000 devices (process start until
# the port file is written), and the time to re-render every device after
# a template change (the per-device template of all four profiles).
#
#   sh bench/scale.sh            10,000 and 100,000 devices (a few minutes)
#   QUICK=1 sh bench/scale.sh    200 and 1,000 devices
#
# Start-up is measured twice: the first start after the data was loaded
# (every file rendered and written to the TFTP root), and a restart (the
# normal case: files already there).  Memory is read from /proc after the
# start (VmRSS and the peak VmHWM).  The re-render runs the daemon's code
# (svc_open, pub_reconcile, pub_template_set, pub_update_profile) in the
# harness bench/rerender.c on the same database and TFTP root.
. "$(dirname "$0")/lib.sh"

if [ "$QUICK" = 1 ]; then
	SIZES=${SIZES:-"200 1000"}
else
	SIZES=${SIZES:-"10000 100000"}
fi

bench_build
bench_header "scale"
cc -O2 -std=c11 -D_GNU_SOURCE -I"$ROOT/src" $(pkg-config --cflags libxml-2.0) \
	-o "$BENCH_DIR/rerender" "$ROOT/bench/rerender.c" "$ROOT/build/libhotdeskd.a" \
	$(pkg-config --libs libmicrohttpd libxml-2.0 sqlite3 libsodium jansson inih) -lpthread -lm ||
	die "cannot build bench/rerender.c"

for n in $SIZES; do
	orgs=$(((n + 999) / 1000))
	echo
	echo "-- $n devices over $orgs organizations"
	gen_db "s$n" "$n" "$orgs" >/dev/null
	mkdir -m 0755 "$BENCH_DIR/tftp$n"
	hd_config "s$n" "$BENCH_DIR/s$n.db" "$BENCH_DIR/tftp$n"
	hd_start "s$n"
	figure "first start (render + write every file)" "$HD_START_MS ms"
	figure "  memory after it (VmRSS / VmHWM MiB)" "$(hd_mem | sed 's/ / \/ /')"
	hd_stop
	hd_start "s$n"
	figure "start-up, restart (target < 2000 ms at 100k)" "$HD_START_MS ms"
	figure "  memory (VmRSS / VmHWM MiB, target < 200)" "$(hd_mem | sed 's/ / \/ /')"
	curl -sf "$HD_URL/provision/$(head -1 "$BENCH_DIR/s$n.paths")" >/dev/null || die "fetch after start"
	hd_stop
	out=$("$BENCH_DIR/rerender" "$BENCH_DIR/s$n.db" "$ROOT/sql" "$ROOT/templates" \
		"$ROOT/provisioning" "$BENCH_DIR/tftp$n") || die "rerender failed"
	eval "$out"
	figure "re-render after a template change (< 10 s)" "$rerender_s s ($rerender_changed devices changed)"
	figure "  memory: world / world + published (MiB)" "$rss_world_mib / $rss_published_mib"
	[ "$rerender_changed" = "$n" ] || die "re-render changed $rerender_changed of $n devices"
done
