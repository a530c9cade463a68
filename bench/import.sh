#!/bin/sh
# import.sh -- CSV import and export of one organization (issue: people):
# 10,000 rows (an extension and its phone each) imported in one request,
# all or nothing, target under 5 s; then a dry run of the same file, a
# re-import where every row is unchanged, a one-row change, and the export.
# The TFTP root is on the machine's disk: an import publishes every new
# phone's files.  Secret codes are Argon2id-hashed per row with the
# default settings (hash_ops 4, 32 MiB), tens of milliseconds each, so
# the main file has no codes and their cost is measured separately on
# CODES rows (an administrator importing codes pays it once per code).
#
#   sh bench/import.sh            10,000 rows, 20 rows with codes
#   QUICK=1 sh bench/import.sh    300 rows, 2 rows with codes
#
# Settings: ROWS, CODES, THREADS.  Exit status non-zero when a request
# fails or an answer is not what the file says.
. "$(dirname "$0")/lib.sh"

if [ "$QUICK" = 1 ]; then
	ROWS=${ROWS:-300} CODES=${CODES:-2}
else
	ROWS=${ROWS:-10000} CODES=${CODES:-20}
fi

bench_build
bench_header "CSV import"
echo "rows:        $ROWS (extension + phone each), $CODES more with secret codes; threads = $THREADS"
hd_config import "$BENCH_DIR/import.db" "$(tftp_dir import disk)"
hd_start import
AUTH="Authorization: Bearer $ADMIN_TOKEN"
curl -sf -o /dev/null -X PUT -H "$AUTH" "$HD_URL/api/v1/orgs/bench" \
	-d '{"sip_server":{"host":"pbx.bench.test","port":5060,"transport":"udp"}}' ||
	die "organization"

# gen N FIRST CODES -- N rows from extension number FIRST
gen() {
	$PY - "$1" "$2" "$3" <<'PY'
import sys
n, first, codes = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3] == "1"
profiles = ["polycom", "yealink", "cisco-mpp", "cisco-enterprise"]
models = ["VVX_500", "T46S", "CP-8841-3PCC", "CP-8845"]
out = ["extension,display_name,label,sip_user,sip_password,secret_code,"
       "allow_virtualization,mac,profile,model,parking_user,parking_password"]
for i in range(n):
    k = first + i
    p = k % 4
    out.append('%d,"User %d, Bench",L%d,bench-%d,pw-%d-x7,%s,yes,02%010x,%s,%s,park-%d,ppw-%d'
               % (k, k, k, k, k, ("%06d" % k) if codes else "", k, profiles[p], models[p], k, k))
sys.stdout.write("\r\n".join(out) + "\r\n")
PY
}

# post FILE QUERY -- prints "seconds http_code", the answer in $BENCH_DIR/answer.json
post() {
	curl -s -o "$BENCH_DIR/answer.json" -w '%{time_total} %{http_code}' -X POST -H "$AUTH" \
		-H 'Content-Type: text/csv' --data-binary "@$1" "$HD_URL/api/v1/orgs/bench/import$2"
}

# check KEY VALUE -- a number in the last answer (dotted path)
check() {
	got=$($PY -c 'import json,sys
v = json.load(open(sys.argv[1]))
for k in sys.argv[2].split("."):
    v = v[k]
print(len(v) if isinstance(v, list) else v)' "$BENCH_DIR/answer.json" "$1") ||
		die "answer: $(head -c 300 "$BENCH_DIR/answer.json")"
	[ "$got" = "$2" ] || die "$1: expected $2, got $got: $(head -c 300 "$BENCH_DIR/answer.json")"
}

gen "$ROWS" 100000 0 >"$BENCH_DIR/people.csv"
figure "file size" "$(wc -c <"$BENCH_DIR/people.csv") bytes"

set -- $(post "$BENCH_DIR/people.csv" "?dry_run=1")
[ "$2" = 200 ] || die "dry run: HTTP $2: $(head -c 300 "$BENCH_DIR/answer.json")"
check extensions.created "$ROWS"
figure "dry run, $ROWS new rows" "$1 s"

set -- $(post "$BENCH_DIR/people.csv" "")
[ "$2" = 201 ] || die "import: HTTP $2: $(head -c 300 "$BENCH_DIR/answer.json")"
check devices.created "$ROWS"
IMPORT_S=$1
figure "import, $ROWS new rows (target < 5 s)" "$1 s"

set -- $(post "$BENCH_DIR/people.csv" "")
[ "$2" = 201 ] || die "re-import: HTTP $2"
check extensions.unchanged "$ROWS"
figure "re-import, $ROWS rows unchanged" "$1 s"

gen 1 100000 0 | sed 's/User 100000/Renamed/' >"$BENCH_DIR/one.csv"
set -- $(post "$BENCH_DIR/one.csv" "")
[ "$2" = 201 ] || die "one-row import: HTTP $2"
check extensions.changed 1
figure "import of 1 changed row (into $ROWS)" "$1 s"

t=$(curl -s -o "$BENCH_DIR/export.csv" -w '%{time_total}' -H "$AUTH" "$HD_URL/api/v1/orgs/bench/export")
[ "$(wc -l <"$BENCH_DIR/export.csv")" -eq $((ROWS + 1)) ] || die "export: wrong number of lines"
figure "export, $ROWS rows" "$t s"

gen "$CODES" 900000 1 >"$BENCH_DIR/codes.csv"
set -- $(post "$BENCH_DIR/codes.csv" "")
[ "$2" = 201 ] || die "import with codes: HTTP $2: $(head -c 300 "$BENCH_DIR/answer.json")"
check extensions.created "$CODES"
figure "import, $CODES new rows with secret codes" "$1 s"
figure "  per secret code (Argon2id, default cost)" "$($PY -c "print('%.3f s' % ($1 / $CODES))")"
figure "resident memory (VmRSS VmHWM MiB)" "$(hd_mem)"
hd_stop
if [ "$QUICK" != 1 ]; then
	$PY -c "import sys; sys.exit(0 if float('$IMPORT_S') < 5 else 1)" &&
		echo "import of $ROWS rows: under 5 s" || echo "import of $ROWS rows: NOT under 5 s"
fi
