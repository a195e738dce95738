#!/bin/sh
# Build the libFuzzer targets (tests/fuzz/fuzz_*.c, or those named after the
# output dir) with clang into ${1:-build-fuzz}/, linked against the engine
# sources, e.g.:
#   tests/fuzz/build.sh /tmp/fz fuzz_npy
#   cp -r tests/fuzz/corpus/npy /tmp/c && /tmp/fz/fuzz_npy -runs=10000000 /tmp/c
# (fuzz a copy of the corpus unless new inputs should be added to the tree).
set -e
SRC=$(cd "$(dirname "$0")/../.." && pwd)
OUT=${1:-build-fuzz}
[ $# -gt 0 ] && shift
mkdir -p "$OUT"
CF="-std=c11 -D_GNU_SOURCE -g -O1 -fsanitize=fuzzer,address,undefined -I$SRC/engine -I$SRC/engine/include"
LIBS="$(pkg-config --libs libsodium sqlite3 libcrypto libssl libacl) -lpthread -lm"
# the engine, compiled once without the fuzzer's main
mkdir -p "$OUT/obj"
for c in "$SRC"/engine/*.c; do
	clang -std=c11 -D_GNU_SOURCE -g -O1 -fsanitize=fuzzer-no-link,address,undefined \
		-I"$SRC/engine" -I"$SRC/engine/include" -c "$c" -o "$OUT/obj/$(basename "$c" .c).o"
done
# an archive, so each target pulls in only the objects it uses
rm -f "$OUT/libvv-fuzz.a"
ar rcs "$OUT/libvv-fuzz.a" "$OUT"/obj/*.o
TARGETS="$*"
[ -n "$TARGETS" ] || TARGETS=$(cd "$SRC/tests/fuzz" && ls fuzz_*.c | sed 's/\.c$//')
for n in $TARGETS; do
	clang $CF -o "$OUT/$n" "$SRC/tests/fuzz/$n.c" "$OUT/libvv-fuzz.a" $LIBS
	echo "built $OUT/$n  (corpus: $SRC/tests/fuzz/corpus/${n#fuzz_})"
done
