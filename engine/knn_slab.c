/*
 * knn_slab.c - the query offload's arena for small cache entries
 * (knn_slab.h says what it promises).
 *
 * Layout: one reserved region, chunk i at base + i x 2 MiB.  A chunk in
 * use serves one class: slot j at chunk + j x size.  Slots never handed
 * out since the chunk's pages were dropped are zero; `dirty` is how far
 * from the chunk's start its bytes may not be, so a slot below it is
 * cleared at the get (outside the lock: the slot is the caller's then)
 * and one above it is not touched before the caller fills it.  Free slots
 * are listed through their first four bytes (below `dirty`, so cleared
 * at their next get).
 *
 * A chunk with free slots is on its class's list (partial); a full one on
 * none; an empty one becomes the spare (pages kept, `dirty` kept) or goes
 * back to the OS and its index to the free stack.
 */
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "grow.h"
#include "knn_slab.h"

#define NCLASS_MAX 64
#define NONE UINT32_MAX

struct chunk {
	uint32_t cls;                    /* NONE: not in use */
	uint32_t nslots, used;           /* slots of the class; live ones */
	uint32_t bump;                   /* slots handed out at least once */
	uint32_t free_head;              /* a free slot below bump + 1, 0: none */
	uint32_t prev, next;             /* its class's partial list */
	size_t dirty;                    /* bytes from the start that may be non-zero */
	size_t live;                     /* bytes asked for by its live slots */
};

struct knn_slab {
	pthread_mutex_t mu;
	uint8_t *map;                    /* the mapping, for munmap */
	size_t maplen;
	uint8_t *base;                   /* 2 MiB aligned */
	size_t nmax;                     /* chunks the region holds */
	struct chunk *ch;                /* chunks ever used: [0, nch) */
	size_t nch, chcap;
	uint32_t *freec;                 /* indices below nch not in use */
	size_t nfree, freecap;
	uint32_t spare;                  /* an empty chunk kept mapped, or NONE */
	size_t held, live, inuse;
	size_t ext;                      /* the owner's small entries outside (calloc'd) */
	size_t excused;                  /* excess the last pass could not move */
	uint32_t partial[NCLASS_MAX];    /* class -> first chunk with a free slot */
	uint32_t csize[NCLASS_MAX];
	unsigned ncls;
};

/* Classes: 64-byte steps up to 512 bytes, then steps of an eighth of the
 * size (rounded down to 64), up to KNN_SLAB_MAX. */
static void classes_init(struct knn_slab *s)
{
	uint32_t sz = KNN_SLAB_ALIGN;

	s->ncls = 0;
	while (s->ncls < NCLASS_MAX) {
		s->csize[s->ncls++] = sz < KNN_SLAB_MAX ? sz : KNN_SLAB_MAX;
		if (sz >= KNN_SLAB_MAX)
			break;
		sz += sz < 512 ? KNN_SLAB_ALIGN : sz / 8 / KNN_SLAB_ALIGN * KNN_SLAB_ALIGN;
	}
}

static unsigned class_of(const struct knn_slab *s, size_t len)
{
	unsigned lo = 0, hi = s->ncls - 1;

	while (lo < hi) {
		unsigned mid = (lo + hi) / 2;
		if (s->csize[mid] >= len)
			hi = mid;
		else
			lo = mid + 1;
	}
	return lo;
}

struct knn_slab *vault_knn_slab_new(size_t max_bytes)
{
	struct knn_slab *s;
	size_t n = max_bytes / KNN_SLAB_CHUNK + (max_bytes % KNN_SLAB_CHUNK != 0);
	uintptr_t a;

	if (!n || n >= NONE || n > (SIZE_MAX - KNN_SLAB_CHUNK) / KNN_SLAB_CHUNK ||
	    !(s = calloc(1, sizeof(*s))))
		return NULL;
	s->nmax = n;
	s->maplen = n * KNN_SLAB_CHUNK + KNN_SLAB_CHUNK;
	s->map = mmap(NULL, s->maplen, PROT_READ | PROT_WRITE,
		      MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (s->map == MAP_FAILED) {
		free(s);
		return NULL;
	}
	a = ((uintptr_t)s->map + KNN_SLAB_CHUNK - 1) & ~(uintptr_t)(KNN_SLAB_CHUNK - 1);
	s->base = (uint8_t *)a;
	/* Hints: without them only speed changes (HUGEPAGE) or a core dump
	 * could hold plaintext (DONTDUMP; the daemon is not dumpable anyway). */
	madvise(s->base, n * KNN_SLAB_CHUNK, MADV_HUGEPAGE);
	madvise(s->base, n * KNN_SLAB_CHUNK, MADV_DONTDUMP);
	pthread_mutex_init(&s->mu, NULL);
	s->spare = NONE;
	classes_init(s);
	for (unsigned i = 0; i < NCLASS_MAX; i++)
		s->partial[i] = NONE;
	return s;
}

void vault_knn_slab_free(struct knn_slab *s)
{
	if (!s)
		return;
	munmap(s->map, s->maplen);
	free(s->ch);
	free(s->freec);
	pthread_mutex_destroy(&s->mu);
	free(s);
}

bool vault_knn_slab_owns(const struct knn_slab *s, const void *p)
{
	const uint8_t *q = p;

	return s && q >= s->base && q < s->base + s->nmax * KNN_SLAB_CHUNK;
}

static uint8_t *chunk_at(const struct knn_slab *s, uint32_t i)
{
	return s->base + (size_t)i * KNN_SLAB_CHUNK;
}

static void partial_push(struct knn_slab *s, uint32_t i)
{
	struct chunk *c = &s->ch[i];
	uint32_t h = s->partial[c->cls];

	c->prev = NONE;
	c->next = h;
	if (h != NONE)
		s->ch[h].prev = i;
	s->partial[c->cls] = i;
}

static void partial_unlink(struct knn_slab *s, uint32_t i)
{
	struct chunk *c = &s->ch[i];

	if (c->prev != NONE)
		s->ch[c->prev].next = c->next;
	else
		s->partial[c->cls] = c->next;
	if (c->next != NONE)
		s->ch[c->next].prev = c->prev;
	c->prev = c->next = NONE;
}

/* A chunk for class cls, on its partial list: the spare, a free index or
 * a new one.  NONE when the region is full or an array cannot grow. */
static uint32_t chunk_take(struct knn_slab *s, unsigned cls)
{
	uint32_t i;

	if (s->spare != NONE) {
		i = s->spare;                    /* pages still there: held already */
		s->spare = NONE;
	} else if (s->nfree) {
		i = s->freec[--s->nfree];
		s->held += KNN_SLAB_CHUNK;
	} else {
		/* freec grows with the chunks: a put never needs memory */
		if (s->nch >= s->nmax || VV_GROW(s->ch, s->nch, s->chcap) < 0 ||
		    vv_grow(&s->freec, &s->freecap, s->nch + 1, sizeof(*s->freec)) < 0)
			return NONE;
		i = (uint32_t)s->nch++;
		s->ch[i].dirty = 0;
		s->held += KNN_SLAB_CHUNK;
	}
	s->ch[i].cls = cls;
	s->ch[i].nslots = (uint32_t)(KNN_SLAB_CHUNK / s->csize[cls]);
	s->ch[i].used = s->ch[i].bump = s->ch[i].free_head = 0;
	s->ch[i].live = 0;
	s->inuse++;
	partial_push(s, i);
	return i;
}

/* Chunk i has no live slot: keep it as the spare or give its pages back. */
static void chunk_empty(struct knn_slab *s, uint32_t i)
{
	struct chunk *c = &s->ch[i];

	partial_unlink(s, i);
	c->cls = NONE;
	s->inuse--;
	if (s->spare == NONE) {
		s->spare = i;
		return;
	}
	/* the pages go; the next touch faults in zeros (the VMA, and its
	 * advice, stay) */
	madvise(chunk_at(s, i), KNN_SLAB_CHUNK, MADV_DONTNEED);
	c->dirty = 0;
	s->held -= KNN_SLAB_CHUNK;
	s->freec[s->nfree++] = i;
}

void *vault_knn_slab_get(struct knn_slab *s, size_t len)
{
	unsigned cls;
	uint32_t i, j;
	struct chunk *c;
	size_t sz, off, clear = 0;
	uint8_t *p;

	if (!s || !len || len > KNN_SLAB_MAX)
		return NULL;
	cls = class_of(s, len);
	sz = s->csize[cls];
	pthread_mutex_lock(&s->mu);
	if ((i = s->partial[cls]) == NONE) {
		/* a new chunk only within the bound, counted with this slot */
		size_t need = s->held + (s->spare == NONE ? KNN_SLAB_CHUNK : 0);
		if (need > 2 * (s->live + s->ext + len) + KNN_SLAB_SLACK ||
		    (i = chunk_take(s, cls)) == NONE) {
			pthread_mutex_unlock(&s->mu);
			return NULL;
		}
	}
	c = &s->ch[i];
	if (c->free_head) {
		j = c->free_head - 1;
		p = chunk_at(s, i) + (size_t)j * sz;
		memcpy(&c->free_head, p, sizeof(c->free_head));
	} else {
		j = c->bump++;
		p = chunk_at(s, i) + (size_t)j * sz;
	}
	off = (size_t)j * sz;
	if (off < c->dirty)
		clear = c->dirty - off < sz ? c->dirty - off : sz;
	if (c->dirty < off + sz)
		c->dirty = off + sz;
	c->used++;
	c->live += len;
	s->live += len;
	if (c->used == c->nslots)
		partial_unlink(s, i);
	pthread_mutex_unlock(&s->mu);
	/* calloc's promise: holes the fill skips read as zeros, and no byte of
	 * an earlier entry (another file's plaintext) shows in this one */
	memset(p, 0, clear);
	return p;
}

void vault_knn_slab_put(struct knn_slab *s, void *p, size_t len)
{
	uint32_t i = (uint32_t)(((uint8_t *)p - s->base) / KNN_SLAB_CHUNK);
	struct chunk *c = &s->ch[i];
	uint32_t j = (uint32_t)(((uint8_t *)p - chunk_at(s, i)) / s->csize[c->cls]);

	pthread_mutex_lock(&s->mu);
	if (c->used == c->nslots)
		partial_push(s, i);
	memcpy(p, &c->free_head, sizeof(c->free_head));
	c->free_head = j + 1;
	c->used--;
	c->live -= len;
	s->live -= len;
	if (!c->used)
		chunk_empty(s, i);
	pthread_mutex_unlock(&s->mu);
}

bool vault_knn_slab_over(struct knn_slab *s)
{
	bool over;

	if (!s)
		return false;
	pthread_mutex_lock(&s->mu);
	over = s->held > 2 * (s->live + s->ext) + KNN_SLAB_SLACK + s->excused;
	pthread_mutex_unlock(&s->mu);
	return over;
}

void vault_knn_slab_settle(struct knn_slab *s)
{
	size_t bound;

	if (!s)
		return;
	pthread_mutex_lock(&s->mu);
	bound = 2 * (s->live + s->ext) + KNN_SLAB_SLACK;
	s->excused = s->held > bound ? s->held - bound : 0;
	pthread_mutex_unlock(&s->mu);
}

bool vault_knn_slab_sparse(struct knn_slab *s, const void *p)
{
	bool sparse;
	uint32_t i;

	if (!vault_knn_slab_owns(s, p))
		return false;
	i = (uint32_t)(((const uint8_t *)p - s->base) / KNN_SLAB_CHUNK);
	pthread_mutex_lock(&s->mu);
	sparse = s->ch[i].live < KNN_SLAB_CHUNK / 2;
	pthread_mutex_unlock(&s->mu);
	return sparse;
}

void vault_knn_slab_outside(struct knn_slab *s, size_t len, bool add)
{
	if (!s)
		return;
	pthread_mutex_lock(&s->mu);
	s->ext = add ? s->ext + len : s->ext - len;
	pthread_mutex_unlock(&s->mu);
}

void vault_knn_slab_stats(struct knn_slab *s, struct knn_slab_stats *st)
{
	memset(st, 0, sizeof(*st));
	if (!s)
		return;
	pthread_mutex_lock(&s->mu);
	st->held = s->held;
	st->live = s->live;
	st->outside = s->ext;
	st->chunks = s->inuse;
	st->reserved = s->nmax * KNN_SLAB_CHUNK;
	st->spare = s->spare != NONE;
	pthread_mutex_unlock(&s->mu);
}
