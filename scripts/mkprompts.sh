#!/bin/sh
# mkprompts.sh -- makes the prompts of one language from its text file.
#
#   sh scripts/mkprompts.sh prompts/en.txt OUTDIR [VOICE]
#
# Each line "name<TAB>text" of the text file becomes OUTDIR/name.ul: the
# text spoken by espeak-ng (VOICE, default: the text file's base name),
# converted by sox to raw G.711 mu-law, 8 kHz, mono -- the format hotdeskd
# plays (docs/VC.md).  Administrators replace any file with a recording in
# the same format.
set -eu
txt=$1 out=$2
voice=${3:-$(basename "$txt" .txt)}
command -v espeak-ng >/dev/null || { echo "mkprompts: espeak-ng is missing (sh scripts/deps.sh build)" >&2; exit 1; }
command -v sox >/dev/null || { echo "mkprompts: sox is missing (sh scripts/deps.sh build)" >&2; exit 1; }
mkdir -p "$out"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
tab=$(printf '\t')
grep -v '^#' "$txt" | while IFS="$tab" read -r name text; do
	[ -n "$name" ] || continue
	espeak-ng -v "$voice" -s 150 -w "$tmp/$name.wav" "$text"
	# 8 kHz mono mu-law; a little silence after each prompt
	sox "$tmp/$name.wav" -r 8000 -c 1 -t ul "$tmp/$name.ul" pad 0 0.15
	mv "$tmp/$name.ul" "$out/$name.ul"
done
