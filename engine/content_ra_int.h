/*
 * content_ra_int.h - the read-ahead of the content module: the interface
 * between the block cache (content.c) and the read-ahead queue and its
 * workers (content_ra.c).
 *
 * Why two files: the block cache owns what a cached block is and how it is
 * authenticated (keys, AD, the entry's identity); read-ahead only decides
 * when and on which thread a block is decrypted.  content_ra.c never sees a
 * cache entry's fields or a shard: it asks the cache for a *load* (a cache
 * entry marked loading, so readers wait for it instead of decrypting the
 * block twice), runs it on a worker and ends it.  A load can only ever
 * produce what vv_content_read_range would decrypt itself: the cache keys
 * and checks it exactly like an entry a reader made, and a load that fails
 * to authenticate leaves no entry (the reader then decrypts and reports).
 *
 * Thread safety: all functions may be called from any thread, except that
 * content_ra_free must be the last call on its queue.
 */
#ifndef VV_CONTENT_RA_INT_H
#define VV_CONTENT_RA_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "content_int.h"

#define CONTENT_KFP_BYTES 16         /* key fingerprint kept in cache entries */

struct content_ra;
struct content_load;

/* ---- content.c, used by content_ra.c --------------------------------- */

/* A fingerprint of a collection key (keyed BLAKE2b), so an entry made under
 * one key is never served to a caller holding another. */
int content_key_fp(uint8_t fp[CONTENT_KFP_BYTES], const uint8_t coll_key[32]);

/* Start a load of block e of file objid under key fingerprint kfp: a
 * loading entry is put in the cache (evicting others as for any entry).
 * 1 and *out set: the caller must run it (content_load_run) and end it
 * (content_load_end) exactly once.  0: nothing to do (cached or loading
 * already, the cache is disabled, or e is malformed or larger than a
 * shard).  VV_ENOMEM.  e is borrowed for the call. */
int content_load_begin(struct vv_content *c, const uint8_t kfp[CONTENT_KFP_BYTES],
		       const uint8_t objid[VV_OBJID_BYTES], const struct vv_extent *e,
		       struct content_load **out);
/* Decrypt the load's block with coll_key (whose fingerprint began it):
 * one pread and one AES-GCM open into the entry.  Nothing locked. */
int content_load_run(struct vv_content *c, const uint8_t coll_key[32], struct content_load *l);
/* End a load with the result of its run (or VV_ECANCELED if never run):
 * on 0 the entry becomes an ordinary cache entry, otherwise it is zeroed
 * and dropped, and readers waiting for it decrypt for themselves.  Frees l. */
void content_load_end(struct vv_content *c, struct content_load *l, int r);

/* ---- content_ra.c, used by content.c ---------------------------------- */

/* A read-ahead queue for c (no thread yet: workers start at the first
 * queued block).  NULL when out of memory.  Owned by c. */
struct content_ra *content_ra_new(struct vv_content *c);
/* vv_content_prefetch's work (see content_int.h); at most
 * CONTENT_RA_QUEUE_MAX blocks queued or decrypting at once. */
int content_ra_queue(struct content_ra *ra, const uint8_t coll_key[32],
		     const uint8_t objid[VV_OBJID_BYTES], const struct vv_extent *e, size_t n,
		     size_t *covered);
/* Cancel every queued block (each load ended VV_ECANCELED) and wait for
 * the running ones; stop: also end the workers (no block is queued after
 * that).  NULL ok. */
void content_ra_quiesce(struct content_ra *ra, bool stop);
/* Stop and free (NULL ok). */
void content_ra_free(struct content_ra *ra);

#define CONTENT_RA_THREADS_MAX 4     /* workers: at most, and at most the CPUs */
#define CONTENT_RA_QUEUE_MAX 128     /* blocks queued or decrypting (8 MiB) */

#endif
