/*
 * knn_slab.h - the query offload's arena for small cache entries
 * (vault_knn.c "heap entries", up to 120 KiB): decrypted segments packed
 * into 2 MiB chunks of one reserved region, so that a scan over thousands
 * of them runs on huge pages (one TLB entry per 2 MiB, the prefetcher
 * never stopped at a 4 KiB edge) and the plaintext never reaches a core
 * dump.
 *
 * What it is: one MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE region,
 * 2 MiB aligned, advised MADV_HUGEPAGE and MADV_DONTDUMP once (one VMA
 * however many entries), cut into 2 MiB chunks; each chunk in use serves
 * one size class (64-byte steps up to 512 bytes, then steps of an eighth:
 * a slot wastes under 12.5% of what it holds).  A chunk emptied goes back
 * to the OS (MADV_DONTNEED), but one spare is kept.
 *
 * What it promises: slots KNN_SLAB_ALIGN aligned and zeroed (a reused slot
 * never shows an earlier entry's bytes); held bytes (chunks in use and the
 * spare) never grow past 2 x live bytes + KNN_SLAB_SLACK, where live
 * counts the slots and the owner's small entries it keeps elsewhere
 * (vault_knn_slab_outside): past that vault_knn_slab_get returns NULL and
 * the caller uses calloc.  (Counting only the slots would lock a size
 * class out for good once the slack is taken by sparse chunks of tiny
 * entries: its entries would go to calloc and never raise the count.)
 * Frees can still leave chunks sparse (a few live entries each);
 * vault_knn_slab_over says so, and the owner then moves the entries of
 * sparse chunks (vault_knn_slab_sparse) out of the arena, which brings it
 * back under the bound.
 *
 * What it does not know: who the entries are (no back pointers), the
 * cache's charges, locks of the cache.  Thread safety: its own mutex, a
 * leaf (taken under the cache's, never the other way).
 */
#ifndef VV_KNN_SLAB_H
#define VV_KNN_SLAB_H

#include <stdbool.h>
#include <stddef.h>

#define KNN_SLAB_CHUNK  ((size_t)2 << 20)   /* a huge page */
#define KNN_SLAB_ALIGN  64u
#define KNN_SLAB_MAX    (120u << 10)        /* the largest slot */
#define KNN_SLAB_SLACK  ((size_t)8 << 20)   /* held may exceed 2 x live by this */

struct knn_slab;

/* Counters, for tests and stats. */
struct knn_slab_stats {
	size_t held;                     /* chunks in use and the spare, bytes */
	size_t live;                     /* bytes asked for by live slots */
	size_t outside;                  /* the owner's small entries elsewhere */
	size_t chunks;                   /* chunks in use (not the spare) */
	size_t reserved;                 /* the region's length */
	bool spare;
};

/* An arena whose chunks never exceed max_bytes (the region reserved; 0 or
 * a failed mmap: NULL, and every entry takes calloc).  Owned by the
 * caller: vault_knn_slab_free (NULL ok) once no slot is live. */
struct knn_slab *vault_knn_slab_new(size_t max_bytes);
void vault_knn_slab_free(struct knn_slab *s);

/* A zeroed, KNN_SLAB_ALIGN-aligned slot of at least len (1..KNN_SLAB_MAX)
 * bytes, or NULL: len out of range, s NULL, no room in the region, or a
 * new chunk would take the arena past its bound.  Keep len for the put. */
void *vault_knn_slab_get(struct knn_slab *s, size_t len);
/* Give back a slot that vault_knn_slab_get returned for len bytes. */
void vault_knn_slab_put(struct knn_slab *s, void *p, size_t len);
/* Whether p is a slot of s (NULL s: false). */
bool vault_knn_slab_owns(const struct knn_slab *s, const void *p);

/* The owner keeps (add) or frees a small entry of len bytes outside the
 * arena (calloc'd past the bound, or moved out): counted as live. */
void vault_knn_slab_outside(struct knn_slab *s, size_t len, bool add);

/* Whether held exceeds 2 x live + KNN_SLAB_SLACK (frees left chunks
 * sparse) plus what the last pass was excused, and whether p's chunk is
 * one to empty: under half its bytes live.  Moving every slot of the
 * sparse chunks out brings the arena back under the bound. */
bool vault_knn_slab_over(struct knn_slab *s);
bool vault_knn_slab_sparse(struct knn_slab *s, const void *p);
/* After a pass of moves: what is still over the bound (slots the owner
 * could not move: in use) is excused, so that vault_knn_slab_over asks for the
 * next pass only after another KNN_SLAB_SLACK of frees, not at each. */
void vault_knn_slab_settle(struct knn_slab *s);

void vault_knn_slab_stats(struct knn_slab *s, struct knn_slab_stats *st);

#endif
