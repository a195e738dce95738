/*
 * test_knn_slab.c - the query offload's arena for small entries
 * (knn_slab.h): slots aligned, apart and zeroed (also a slot or a chunk
 * reused after another entry's bytes), the bound on held bytes and the
 * fall back it forces, sparse chunks an adversary leaves and the moves
 * that undo them, chunks given back, one mapping for 10,000 entries, the
 * region's flags (huge pages, not dumped), and two threads at once.
 */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tap.h"
#include "knn_slab.h"

/* Mappings of the process that meet [lo, hi) (all: 0, UINTPTR_MAX); a
 * range, so that a sanitizer's shadow mappings do not count. */
static int nmaps(uintptr_t lo, uintptr_t hi)
{
	FILE *f = fopen("/proc/self/maps", "r");
	char line[512];
	int n = 0;

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f)) {
		unsigned long a, b;
		if (sscanf(line, "%lx-%lx", &a, &b) == 2 && a < hi && b > lo)
			n++;
	}
	fclose(f);
	return n;
}

/* The smaps block of the mapping holding p: its VmFlags line in flags,
 * its Rss in kB (-1: not found). */
static long smaps_of(const void *p, char *flags, size_t fl)
{
	FILE *f = fopen("/proc/self/smaps", "r");
	char line[512];
	bool in = false;
	long rss = -1;
	uintptr_t a = (uintptr_t)p;

	flags[0] = 0;
	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f)) {
		unsigned long lo, hi;
		if (sscanf(line, "%lx-%lx ", &lo, &hi) == 2 && strchr(line, '-') < strchr(line, ' ')) {
			in = a >= lo && a < hi;
			continue;
		}
		if (in && strncmp(line, "Rss:", 4) == 0)
			rss = strtol(line + 4, NULL, 10);
		if (in && strncmp(line, "VmFlags:", 8) == 0) {
			size_t n = strlen(line + 8);
			if (n >= fl)
				n = fl - 1;
			memcpy(flags, line + 8, n);
			flags[n] = 0;
			break;
		}
	}
	fclose(f);
	return rss;
}

static bool all_zero(const uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (p[i])
			return false;
	return true;
}

static void t_slots(void)
{
	struct knn_slab *s = vault_knn_slab_new(64u << 20);
	static const size_t lens[] = { 1, 63, 64, 65, 500, 513, 1000, 4096, 51328, 100000,
				       KNN_SLAB_MAX };
	uint8_t *p[11];
	void *ballast[100];
	bool aligned = true, zero = true, owned = true, apart = true;

	ok(s, "an arena of 64 MiB");
	if (!s)
		return;
	ok(!vault_knn_slab_get(s, 0) && !vault_knn_slab_get(s, KNN_SLAB_MAX + 1), "0 bytes and past the max: none");
	/* 12 MB live: room under the bound for a chunk per class below */
	for (size_t i = 0; i < 100; i++)
		ballast[i] = vault_knn_slab_get(s, KNN_SLAB_MAX);
	for (size_t i = 0; i < 11; i++) {
		p[i] = vault_knn_slab_get(s, lens[i]);
		aligned &= p[i] && (uintptr_t)p[i] % KNN_SLAB_ALIGN == 0;
		owned &= vault_knn_slab_owns(s, p[i]);
		zero &= p[i] && all_zero(p[i], lens[i]);
		if (p[i])
			memset(p[i], (int)i + 1, lens[i]);
	}
	for (size_t i = 0; i < 11; i++)
		for (size_t b = 0; p[i] && b < lens[i]; b++)
			apart &= p[i][b] == (uint8_t)(i + 1);
	ok(aligned && owned, "every size from 1 byte to 120 KiB: 64-byte aligned slots of the region");
	ok(zero, "zeroed");
	ok(apart, "apart: each keeps its own bytes");
	ok(!vault_knn_slab_owns(s, lens) && !vault_knn_slab_owns(NULL, p[0]), "a pointer elsewhere is not its");
	for (size_t i = 0; i < 11; i++)
		vault_knn_slab_put(s, p[i], lens[i]);
	for (size_t i = 0; i < 100; i++)
		vault_knn_slab_put(s, ballast[i], KNN_SLAB_MAX);

	/* a reused slot: another entry's bytes must not show */
	uint8_t *a = vault_knn_slab_get(s, 51328), *b = vault_knn_slab_get(s, 51328), *c;
	memset(a, 0xff, 51328);
	memset(b, 0xff, 51328);
	vault_knn_slab_put(s, a, 51328);
	c = vault_knn_slab_get(s, 51000);
	ok(c == a, "a freed slot is reused for the same class");
	ok(c && all_zero(c, 51000), "and reads as zeros, not as the 0xff of its last entry");
	vault_knn_slab_put(s, b, 51328);
	vault_knn_slab_put(s, c, 51000);

	/* a chunk reused by another class (the spare keeps its pages) */
	struct knn_slab_stats st;
	vault_knn_slab_stats(s, &st);
	ok(st.chunks == 0 && st.live == 0 && st.spare, "all put back: no chunk in use, one spare");
	a = vault_knn_slab_get(s, 7000);
	ok(a && all_zero(a, 7000), "a slot of the spare chunk under another class: zeros");
	vault_knn_slab_put(s, a, 7000);
	vault_knn_slab_free(s);
}

/* A few live bytes in many classes: held stays within 2 x live + slack,
 * and past that the caller is told to use calloc. */
static void t_bound(void)
{
	struct knn_slab *s = vault_knn_slab_new(512u << 20);
	struct knn_slab_stats st;
	void *p[64];
	size_t len[64], n = 0, refused = 0;
	bool within = true;

	for (size_t sz = 64; sz <= KNN_SLAB_MAX && n < 64; sz = sz * 5 / 4 + 64) {
		len[n] = sz;
		if (!(p[n] = vault_knn_slab_get(s, sz))) {
			refused++;
			continue;
		}
		n++;
		vault_knn_slab_stats(s, &st);
		within &= st.held <= 2 * st.live + KNN_SLAB_SLACK;
	}
	vault_knn_slab_stats(s, &st);
	ok(within, "one slot per class: held never past 2 x live + 8 MiB");
	ok(refused > 0, "a slot past the bound is refused (the cache then uses calloc)");
	printf("# %zu slots in the arena, %zu refused; held %zu, live %zu\n", n, refused, st.held,
	       st.live);
	for (size_t i = 0; i < n; i++)
		vault_knn_slab_put(s, p[i], len[i]);
	vault_knn_slab_stats(s, &st);
	ok(st.held <= KNN_SLAB_CHUNK && st.chunks == 0, "all put back: chunks given back, one spare kept");

	/* sparse chunks of tiny slots take the slack; entries the owner keeps
	 * outside count as live, so a new class is not locked out for good */
	for (n = 0; n < 5; n++)
		p[n] = vault_knn_slab_get(s, 64 + n * 1024);
	ok(p[0] && p[3] && !p[4], "4 chunks of one tiny slot each: a fifth class refused");
	vault_knn_slab_outside(s, 12u << 20, true);
	p[4] = vault_knn_slab_get(s, 64 + 4 * 1024);
	ok(p[4], "12 MB of small entries kept outside: the fifth class gets its chunk");
	vault_knn_slab_stats(s, &st);
	ok(!vault_knn_slab_over(s) && st.outside == 12u << 20, "within the bound, counting them");
	vault_knn_slab_outside(s, 12u << 20, false);
	ok(vault_knn_slab_over(s), "they go: over (the owner moves the sparse chunks' slots out)");
	for (n = 0; n < 5; n++)
		vault_knn_slab_put(s, p[n], 64 + n * 1024);

	/* a region full: refused too */
	struct knn_slab *small = vault_knn_slab_new(KNN_SLAB_CHUNK);
	size_t got = 0;
	void *q[40];
	while (got < 40 && (q[got] = vault_knn_slab_get(small, KNN_SLAB_MAX)))
		got++;
	ok(got == KNN_SLAB_CHUNK / KNN_SLAB_MAX, "a one-chunk region: 17 slots of 120 KiB, then none");
	while (got)
		vault_knn_slab_put(small, q[--got], KNN_SLAB_MAX);
	vault_knn_slab_free(small);
	vault_knn_slab_free(s);
}

/* The adversary keeps one entry per chunk: the arena says it is over its
 * bound and which chunks are sparse; moving those entries out brings it
 * back, and the chunks go back to the OS. */
static void t_sparse(void)
{
	enum { CH = 20, PER = KNN_SLAB_CHUNK / KNN_SLAB_MAX, N = CH * PER };
	struct knn_slab *s = vault_knn_slab_new(128u << 20);
	struct knn_slab_stats st;
	static void *p[N];
	bool sparse = true;
	size_t kept = 0;
	char flags[256];
	long rss;

	for (size_t i = 0; i < N; i++) {
		p[i] = vault_knn_slab_get(s, KNN_SLAB_MAX);
		if (p[i])
			memset(p[i], 0x5a, KNN_SLAB_MAX);
	}
	vault_knn_slab_stats(s, &st);
	ok(st.chunks == CH, "340 slots of 120 KiB fill 20 chunks");
	ok(!vault_knn_slab_over(s), "packed: not over the bound");
	rss = smaps_of(p[0], flags, sizeof(flags));
	ok(strstr(flags, " hg") && strstr(flags, " dd"),
	   "the region is advised huge pages (hg) and out of core dumps (dd)");
	printf("# VmFlags:%s# Rss %ld kB\n", flags, rss);
	for (size_t i = 0; i < N; i++)
		if (i % PER) {
			vault_knn_slab_put(s, p[i], KNN_SLAB_MAX);
			p[i] = NULL;
		}
	vault_knn_slab_stats(s, &st);
	ok(vault_knn_slab_over(s), "one live slot per chunk: over 2 x live + 8 MiB");
	for (size_t i = 0; i < N; i++)
		if (p[i])
			sparse &= vault_knn_slab_sparse(s, p[i]);
	ok(sparse, "each of their chunks is sparse");
	/* the owner moves them out, oldest first, until back under */
	for (size_t i = 0; i < N && vault_knn_slab_over(s); i++)
		if (p[i] && vault_knn_slab_sparse(s, p[i])) {
			vault_knn_slab_put(s, p[i], KNN_SLAB_MAX);
			p[i] = NULL;
		}
	vault_knn_slab_settle(s);
	vault_knn_slab_stats(s, &st);
	for (size_t i = 0; i < N; i++)
		kept += p[i] != NULL;
	ok(!vault_knn_slab_over(s) && st.held <= 2 * st.live + KNN_SLAB_SLACK, "moved: within the bound again");
	printf("# kept %zu in the arena; held %zu, live %zu\n", kept, st.held, st.live);
	for (size_t i = 0; i < N; i++)
		if (p[i])
			vault_knn_slab_put(s, p[i], KNN_SLAB_MAX);
	vault_knn_slab_stats(s, &st);
	ok(st.held == KNN_SLAB_CHUNK && st.spare, "emptied: every chunk given back but the spare");

	/* the pages really went (Rss of the region: the spare at most) */
	void *x = vault_knn_slab_get(s, 64);
	rss = smaps_of(x, flags, sizeof(flags));
	ok(rss >= 0 && rss <= 2048 + 4, "the region's Rss: one chunk at most");
	printf("# Rss %ld kB\n", rss);
	vault_knn_slab_put(s, x, 64);

	/* a pass that cannot move what is in use is excused until more frees */
	p[0] = vault_knn_slab_get(s, KNN_SLAB_MAX);
	for (size_t i = 1; i < N; i++)
		p[i] = vault_knn_slab_get(s, KNN_SLAB_MAX);
	for (size_t i = 0; i < N; i++)
		if (i % PER) {
			vault_knn_slab_put(s, p[i], KNN_SLAB_MAX);
			p[i] = NULL;
		}
	ok(vault_knn_slab_over(s), "sparse again");
	vault_knn_slab_settle(s);                  /* nothing moved: all in use */
	ok(!vault_knn_slab_over(s), "a pass that moved nothing: excused");
	for (size_t i = 0; i < N; i++)
		if (p[i])
			vault_knn_slab_put(s, p[i], KNN_SLAB_MAX);
	vault_knn_slab_free(s);
}

/* 10,000 entries of a 100-row segment: one mapping, not thousands. */
static void t_maps(void)
{
	struct knn_slab *s = vault_knn_slab_new((size_t)1200 << 20);
	static void *p[10000];
	size_t n = 0;
	uintptr_t lo = UINTPTR_MAX, hi = 0;
	int m;

	for (; n < 10000; n++)
		if (!(p[n] = vault_knn_slab_get(s, 51328)))
			break;
	if (n) {                             /* the first and the last: 2 huge pages */
		memset(p[0], 1, 51328);
		memset(p[n - 1], 1, 51328);
	}
	for (size_t i = 0; i < n; i++) {
		lo = (uintptr_t)p[i] < lo ? (uintptr_t)p[i] : lo;
		hi = (uintptr_t)p[i] + 51328 > hi ? (uintptr_t)p[i] + 51328 : hi;
	}
	m = nmaps(lo, hi);
	is_int(n, 10000, "10,000 slots of 51,328 bytes");
	is_int(m, 1, "all in one mapping");
	printf("# %d mapping(s) over %zu MiB of slots; %d in the process\n", m, (hi - lo) >> 20,
	       nmaps(0, UINTPTR_MAX));
	for (size_t i = 0; i < n; i++)
		vault_knn_slab_put(s, p[i], 51328);
	vault_knn_slab_free(s);
}

struct thr {
	struct knn_slab *s;
	uint8_t tag;
	bool ok;
};

static void *churn(void *arg)
{
	struct thr *t = arg;
	void *p[32] = { 0 };
	size_t len[32] = { 0 };

	t->ok = true;
	for (unsigned it = 0; it < 20000; it++) {
		unsigned k = (it * 7 + t->tag) % 32;
		if (p[k]) {
			const uint8_t *b = p[k];
			for (size_t i = 0; i < len[k]; i += 61)
				t->ok &= b[i] == t->tag;
			vault_knn_slab_put(t->s, p[k], len[k]);
			p[k] = NULL;
		}
		len[k] = 64 + (it * 2654435761u) % 20000;
		if ((p[k] = vault_knn_slab_get(t->s, len[k]))) {
			t->ok &= all_zero(p[k], len[k]);
			memset(p[k], t->tag, len[k]);
		}
	}
	for (unsigned k = 0; k < 32; k++)
		if (p[k])
			vault_knn_slab_put(t->s, p[k], len[k]);
	return NULL;
}

static void t_threads(void)
{
	struct knn_slab *s = vault_knn_slab_new(256u << 20);
	struct thr t[2] = { { s, 0xa1, false }, { s, 0xb2, false } };
	pthread_t th[2];
	struct knn_slab_stats st;

	for (int i = 0; i < 2; i++)
		pthread_create(&th[i], NULL, churn, &t[i]);
	for (int i = 0; i < 2; i++)
		pthread_join(th[i], NULL);
	vault_knn_slab_stats(s, &st);
	ok(t[0].ok && t[1].ok, "two threads getting and putting: every slot zeroed, none shared");
	ok(st.live == 0 && st.chunks == 0, "and all put back");
	vault_knn_slab_free(s);
}

int main(void)
{
	t_slots();
	t_bound();
	t_sparse();
	t_maps();
	t_threads();
	ok(!vault_knn_slab_new(0), "no region: no arena (every entry calloc'd)");
	vault_knn_slab_free(NULL);
	return tap_done();
}
