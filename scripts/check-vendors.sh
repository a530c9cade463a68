#!/bin/sh
# check-vendors.sh -- only a family's own files name it.  For every vendor
# file src/vendor_<x>.c (src/vendor.c is the registry's code, not a family),
# its profile name (`.name = "..."`, also spelt with '_' for '-') and its
# C symbol (vendor_<x>) may appear in no other file under src/: per-family
# settings are keyed by the registry (generated, build/gen/), never by a
# list.  Prints file:line: for each occurrence and exits 1 if there was any.
# Run by `make lint` (and so by `make test`); SRC overrides the folder.
src=${SRC:-src}
bad=0
for f in "$src"/vendor_*.c; do
	name=$(sed -n 's/^	\.name = "\([a-z0-9-]*\)",$/\1/p' "$f")
	sym=$(sed -n 's/^const struct vendor_profile \(vendor_[a-z0-9_]*\) = {$/\1/p' "$f")
	if [ -z "$name" ] || [ -z "$sym" ]; then
		echo "$f: no '.name = \"...\",' or 'const struct vendor_profile vendor_<x> = {' line"
		bad=1
		continue
	fi
	under=$(printf '%s' "$name" | tr - _)
	for g in "$src"/*.c "$src"/*.h; do
		[ "$g" = "$f" ] && continue
		if grep -nE "(^|[^A-Za-z0-9_-])($name|$under|$sym)([^A-Za-z0-9_-]|\$)" "$g" |
		   sed "s|^|$g:|" | grep .; then
			bad=1
		fi
	done
done
[ "$bad" -eq 0 ] || echo "check-vendors.sh: a family is named outside its own vendor file (above)"
exit "$bad"
