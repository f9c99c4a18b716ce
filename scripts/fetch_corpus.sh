#!/usr/bin/env bash
# fetch_corpus.sh - the text `gqa perplexity` is measured on: the King James
# Bible, from Debian, cut to the same slice on every machine.
#
# Debian's bible-kjv package is the `bible` program; it depends on
# bible-kjv-text, the whole text compressed in /usr/lib/bible.data (Debian 12:
# version 4.38 of both). Each is checked with dpkg first; apt-get runs (after
# one `apt-get update`) only when one is missing, via sudo only when not
# already root. `bible -f REF-REF` prints one verse per line, each preceded
# by its reference ("Luke1:1 Forasmuch as ..."); we normalise that to:
#   - the reference dropped: no book names, chapter or verse numbers;
#   - one verse per line, a blank line between chapters;
#   - plain ASCII (the text has no other characters), "\n" line ends.
#
# Files (in GQA_CORPUS_DIR, default data/corpus/, gitignored):
#   kjv.txt       the standard slice: the Gospel of Luke (Luke 1:1 - 24:53),
#                 24 chapters, 1151 verses, 134697 bytes, 33321 SmolLM2 tokens
#   kjv-full.txt  the whole Bible (Genesis 1:1 - Revelation 22:21), 31102
#                 verses, 4139038 bytes, 1024178 SmolLM2 tokens
# Both are checked against the SHA-256 pinned below, so every machine measures
# the same bytes; a different package version that changes them fails here.
# Nothing is rewritten when both files are already there and verified.
#
# Prints the slice's path on stdout (last line); messages go to stderr.
# Environment:
#   GQA_CORPUS_DIR   output directory (default: data/corpus in the repo root)
#   GQA_SKIP_APT=1   never call apt-get (fail if the packages are missing)
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
out_dir=${GQA_CORPUS_DIR:-$root/data/corpus}
slice_ref="Luke1:1-Luke24:53"
slice_sha256="db2af86cdf9937a979783d2638a9d1bfe7ac2a74a987d3c469cec9c59b9003e5"
full_ref="Gen1:1-Rev22:21"
full_sha256="82a24e4e23c644fe579ed387b20e54eb529cc0a87a25e0810064edb2216780c2"

say() { printf 'fetch_corpus: %s\n' "$*" >&2; }
die() { printf 'fetch_corpus: error: %s\n' "$*" >&2; exit 1; }

command -v sha256sum >/dev/null || die "sha256sum not found (coreutils)"
sha_of() { sha256sum "$1" | cut -d' ' -f1; }

slice=$out_dir/kjv.txt
full=$out_dir/kjv-full.txt
if [ -f "$slice" ] && [ -f "$full" ] && [ "$(sha_of "$slice")" = "$slice_sha256" ] &&
    [ "$(sha_of "$full")" = "$full_sha256" ]; then
    say "already present and verified"
    printf '%s\n' "$slice"
    exit 0
fi

# ------------------------------------------------------------ Debian packages --
packages=(bible-kjv bible-kjv-text)

installed() {
    dpkg -s "$1" 2>/dev/null | grep -q '^Status: install ok installed'
}

as_root() {
    if [ "$(id -u)" -eq 0 ]; then
        "$@"
    elif command -v sudo >/dev/null 2>&1; then
        sudo "$@"
    else
        die "need root for '$*'; run as root or install sudo"
    fi
}

if ! command -v dpkg >/dev/null 2>&1; then
    say "no dpkg here (not Debian?); assuming the packages are present: ${packages[*]}"
else
    missing=()
    for p in "${packages[@]}"; do
        installed "$p" || missing+=("$p")
    done
    if [ "${#missing[@]}" -gt 0 ]; then
        [ "${GQA_SKIP_APT:-0}" = 1 ] && die "missing Debian packages: ${missing[*]} (GQA_SKIP_APT=1)"
        command -v apt-get >/dev/null 2>&1 || die "missing packages ${missing[*]} and no apt-get"
        say "apt-get update"
        as_root env DEBIAN_FRONTEND=noninteractive apt-get update -q >&2
        say "apt-get install ${missing[*]}"
        as_root env DEBIAN_FRONTEND=noninteractive \
            apt-get install -y -q --no-install-recommends "${missing[@]}" >&2
    fi
fi
bible=$(command -v bible || true)
[ -n "$bible" ] || die "no 'bible' program after installing bible-kjv"

# ------------------------------------------------------------------ extract --
# extract REFS OUT: the verses of REFS, normalised as described above.
extract() {
    # -f: pretty-printing off (one verse per line, reference first, no line
    # breaks); -p /usr/lib: the packaged text, never a bible.data in the
    # current directory; stdin closed so it never turns interactive.
    "$bible" -f -p /usr/lib "$1" </dev/null | awk '
        {
            ref = $1
            chapter = ref
            sub(/:[0-9]+$/, "", chapter)          # "Luke1:1" -> "Luke1"
            sub(/^[^ ]+ /, "")                    # drop the reference
            if (NR > 1 && chapter != last) print ""
            last = chapter
            print
        }' >"$2"
    [ -s "$2" ] || die "'bible -f $1' printed nothing"
}

mkdir -p "$out_dir"
tmp=$(mktemp -d "$out_dir/.fetch.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

check_into() { # check_into FILE SHA256 TARGET NAME
    local got
    got=$(sha_of "$1")
    [ "$got" = "$2" ] || die "$4: SHA-256 $got, expected $2 (another bible-kjv version? $(dpkg-query -W -f='${Version}' bible-kjv-text 2>/dev/null || echo unknown))"
    mv -f "$1" "$3"
}

say "extracting $full_ref"
extract "$full_ref" "$tmp/full.txt"
check_into "$tmp/full.txt" "$full_sha256" "$full" "the full text"
say "extracting $slice_ref"
extract "$slice_ref" "$tmp/slice.txt"
check_into "$tmp/slice.txt" "$slice_sha256" "$slice" "the slice $slice_ref"
say "$full: $(wc -c <"$full") bytes; $slice: $(wc -c <"$slice") bytes"
printf '%s\n' "$slice"
