#!/bin/bash
# query-bench.sh [DIR [DIR2]] - `vecvault query` against faiss IndexFlatL2 and the
# machine's memory bandwidth, on synthetic clustered sets (1M x 128 and
# 200k x 768 float32), warm in the page cache.  DIR (default /tmp/vv-bench)
# holds or receives the data: point it at a vecvault mount to measure the
# mount, at a plain directory for the baseline.  Prints medians of
# interleaved repetitions and ratios.  With DIR2 (e.g. a directory in a
# vecvault mount), the data is copied there too and the same searches run
# interleaved on both: the DIR2/DIR ratio.  Not part of ctest.
# faiss gets OPENBLAS_NUM_THREADS=THREADS (its BLAS would otherwise use all
# CPUs whatever faiss's OpenMP setting); vecvault runs OpenBLAS
# single-threaded inside its own THREADS threads.
#   env: VV_BIN (default: vecvault on PATH), THREADS (default: all CPUs),
#        REPS (default 7), SIZES (default "1000000:128 200000:768")
set -eu
DIR=${1:-/tmp/vv-bench}
DIR2=${2:-}
VV=${VV_BIN:-$(command -v vecvault)}
THREADS=${THREADS:-$(nproc)}
REPS=${REPS:-7}
SIZES=${SIZES:-"1000000:128 200000:768"}
PY=/usr/bin/python3
export OPENBLAS_NUM_THREADS=$THREADS OMP_NUM_THREADS=$THREADS
HERE=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$DIR"

# STREAM-style read bandwidth: sum a 1 GiB array with $THREADS threads.
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
cat > "$T/stream.c" <<'C'
#include <immintrin.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#define N (1ul << 28)
static float *a; static int nt; static volatile float sink[64];
static void *rd(void *p) {
	long id = (long)p; size_t lo = N / nt * id, hi = N / nt * (id + 1);
	__m256 s0 = _mm256_setzero_ps(), s1 = s0, s2 = s0, s3 = s0;
	for (size_t i = lo; i < hi; i += 32) {
		s0 = _mm256_add_ps(s0, _mm256_load_ps(a + i)); s1 = _mm256_add_ps(s1, _mm256_load_ps(a + i + 8));
		s2 = _mm256_add_ps(s2, _mm256_load_ps(a + i + 16)); s3 = _mm256_add_ps(s3, _mm256_load_ps(a + i + 24));
	}
	float o[8]; _mm256_storeu_ps(o, _mm256_add_ps(_mm256_add_ps(s0, s1), _mm256_add_ps(s2, s3)));
	sink[id] = o[0]; return NULL;
}
int main(int c, char **v) {
	nt = atoi(v[1]); a = aligned_alloc(64, N * 4); memset(a, 1, N * 4);
	double best = 1e9;
	for (int r = 0; r < 7; r++) {
		pthread_t th[64]; struct timespec t0, t1; clock_gettime(CLOCK_MONOTONIC, &t0);
		for (long i = 0; i < nt; i++) pthread_create(&th[i], 0, rd, (void *)i);
		for (int i = 0; i < nt; i++) pthread_join(th[i], 0);
		clock_gettime(CLOCK_MONOTONIC, &t1);
		double s = t1.tv_sec - t0.tv_sec + (t1.tv_nsec - t0.tv_nsec) * 1e-9; if (s < best) best = s;
	}
	printf("%.2f\n", N * 4.0 / best / 1e9); return 0;
}
C
gcc -O2 -mavx2 -o "$T/stream" "$T/stream.c" -lpthread
STREAM=$("$T/stream" "$THREADS")
echo "# memory read bandwidth (STREAM-style sum, $THREADS threads, best of 7): $STREAM GB/s"
echo "# vecvault: $VV, data: $DIR, threads $THREADS, reps $REPS"
for s in $SIZES; do
	n=${s%%:*} d=${s##*:}
	$PY "$HERE/query_ref.py" gen "$DIR" "$n" "$d"
	cat "$DIR/c$d"/* > /dev/null       # warm the page cache
	$PY "$HERE/query_ref.py" bench "$VV" "$DIR" "$d" "$THREADS" "$REPS" "$STREAM"
	if [ -n "$DIR2" ]; then
		mkdir -p "$DIR2/c$d"
		[ -e "$DIR2/c$d/base.npy" ] || cp "$DIR/c$d/base.npy" "$DIR2/c$d/base.npy"
		cat "$DIR2/c$d"/* > /dev/null   # warm
		$PY "$HERE/query_ref.py" cmp "$VV" "$DIR" "$DIR2" "$d" "$THREADS" "$REPS"
	fi
done
