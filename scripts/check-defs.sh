#!/bin/sh
# check-defs.sh -- every C function definition puts its return type on a
# line of its own and the function's name at the start of the next:
#
#   static int
#   name(int a, int b)
#   {
#
# Reads the files given (default: every .c and .h under src/, cli/ and
# tests/ but tests/lint/), prints file:line for each definition written
# otherwise and exits 1 if there was any.  Run by `make lint` (and so by
# `make test`).
if [ $# -eq 0 ]; then
	set -- $(find src cli tests -path tests/lint -prune -o \
	           \( -name '*.c' -o -name '*.h' \) -print | sort)
fi
awk '
FNR == 1 { last = ""; lastno = 0 }
# a definition whose body opens on its own line: the last line of its head
# that starts in column 0 must start with the name (attributes such as
# LOG_PRINTF(..) may stay on the type line above)
/^\{$/ {
	if (last != "" && last !~ /^[A-Za-z_][A-Za-z0-9_]*\(/ && last !~ /=/ &&
	    last !~ /^(struct|enum|union|typedef)[ \t]/) {
		printf "%s:%d: return type and name on one line: %s\n", FILENAME, lastno, last
		bad = 1
	}
}
# a definition whose body opens on the head line (one-line functions)
/^[A-Za-z_][^=;]*\)[ \t]*\{/ && !/^[A-Za-z_][A-Za-z0-9_]*\(/ {
	printf "%s:%d: function body on the definition line: %s\n", FILENAME, FNR, $0
	bad = 1
}
/^[A-Za-z_]/ { last = $0; lastno = FNR }
END { exit bad }
' "$@"
