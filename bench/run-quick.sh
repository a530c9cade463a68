#!/bin/sh
# run-quick.sh -- runs every benchmark once in its quick form (a few
# hundred devices, a few seconds each) so that CI notices when one breaks.
# The figures of a quick run mean nothing; the exit status is what counts:
# non-zero when any benchmark fails.
#
#   sh bench/run-quick.sh
cd "$(dirname "$0")/.." || exit 1
failed=""
for b in bootstorm move scale startup walbuf import vc tlsstorm kamstorm; do
	echo "==== bench/$b.sh (quick)"
	if ! QUICK=1 sh "bench/$b.sh"; then
		failed="$failed $b"
	fi
done
if [ -n "$failed" ]; then
	echo "bench/run-quick.sh: failed:$failed" >&2
	exit 1
fi
echo "bench/run-quick.sh: all benchmarks ran"
