/*
 * knn_int.h - the offload cache (vault_knn.c) as the directory request
 * (vault_knn_dir.c) uses it: one cache, one pool, one set of charges for
 * both kinds of request.
 */
#ifndef VV_KNN_INT_H
#define VV_KNN_INT_H

#include <stddef.h>
#include <stdint.h>

#include "vecvault/error.h"

struct vv_vault;
struct node;
struct kent;

/* What one directory request may still spend on fills: bytes of files up
 * to 1 MiB (vault_knn.c KNN_INLINE_MAX) decrypted inline in its own pool
 * turn, and fill jobs it may queue for larger files. */
struct knn_budget {
	size_t inline_bytes;
	unsigned fills;
};

/* Node n's ready entry for a scan charged to uid, referenced: 0 with *e,
 * *base and *size set.  Under n->rw (read), loaded.  A file of up to 1 MiB
 * not yet cached is decrypted here if b's inline bytes allow (charged to uid's
 * share: VV_EFBIG / VV_EBUSY if it does not fit), else VV_EAGAIN; VV_EAGAIN
 * while another request fills it; VV_ENOENT for a larger file not cached
 * (the caller probes it, then vault_knn_start). */
int vault_knn_get(struct vv_vault *v, uint32_t uid, struct node *n, struct knn_budget *b,
		  struct kent **e, const uint8_t **base, uint64_t *size);
/* n's ready entry, referenced (0), VV_EAGAIN while it is filled, VV_ENOENT:
 * the cache alone, no lock of n and nothing loaded (a ready entry always
 * matches the file: a writer drops it under n->rw). */
int vault_knn_ready(struct vv_vault *v, struct node *n, struct kent **e, const uint8_t **base,
		    uint64_t *size);
/* Queue the fill of n (under n->rw read, loaded) charged to uid, if b
 * allows another: VV_EAGAIN (queued, or over b), VV_EFBIG, VV_EBUSY. */
int vault_knn_start(struct vv_vault *v, uint32_t uid, struct node *n, struct knn_budget *b);
void vault_knn_put(struct vv_vault *v, struct kent *e);               /* NULL ok */

/* A file the parser refuses (VV_ECORRUPT from a header that is no segment
 * of the format asked) is a bad request, not tampering: tampering shows up
 * as a failed decryption, which vault_data_read reports as VV_ECORRUPT itself. */
static inline int knn_not_segment(int r)
{
	return r == VV_ECORRUPT ? VV_EINVAL : r;
}

#endif
