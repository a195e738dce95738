/*
 * knn_int.h - the offload cache (vault_knn.c) as the directory request
 * (vault_knn_dir.c) uses it: one cache, one pool, one set of charges for
 * both kinds of request.
 */
#ifndef VV_KNN_INT_H
#define VV_KNN_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "vecvault/error.h"
#include "vecvault/vector.h"

struct vv_vault;
struct vv_ctx;
struct vv_dir;
struct vv_knn_dir_ioc;
struct node;
struct kent;
struct knn_dir_req;

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
/* One of uid's offload slots (KNN_SCANS_PER_UID, shared with its scans and
 * directory requests) for a request that runs on the caller's thread (the
 * bulk read): VV_EBUSY when they are taken, VV_ECANCELED once the offload
 * drains (unmount), VV_ENOTTY when it is off.  vault_knn_unhold gives it
 * back (NULL ok); a drain waits for every hold.  No lock held. */
struct kjob;
int vault_knn_hold(struct vv_vault *v, const struct vv_ctx *ctx, struct kjob **out);
void vault_knn_unhold(struct vv_vault *v, struct kjob *j);
/* Ready entry e parsed as a segment of format fmt into *sv, as
 * vv_segment_view_init(e's bytes) would: the last parse is kept with the
 * entry, keyed by the format asked, and goes with it. */
int vault_knn_view(struct vv_vault *v, struct kent *e, enum vv_seg_format fmt,
		   struct vv_segment_view *sv, const char **why);
/* e is still its file's cached copy: not dropped since it was referenced
 * (a write, truncate, delete, purge or revoke drops it). */
bool vault_knn_listed(struct vv_vault *v, struct kent *e);

/* The directory request (vault_knn_dir.c) in its two steps, so that
 * vv_vault_knn_dir_submit does the work of each name on the caller's
 * thread and the pool only the scan.  vault_knn_dir_prepare: the gate and the
 * header check (the request's errors, nothing held), then each name
 * checked and its copy made ready; 0 with *out, which holds node pins and
 * cache references until vault_knn_dir_scan (the scan, the audit records and the
 * reply in io; frees *out; always 0) or vault_knn_dir_discard (no record, no
 * reply; NULL ok).  io is only read; stop (NULL ok), once true, ends the
 * names' work early (the request will be discarded). */
int vault_knn_dir_prepare(struct vv_vault *v, const struct vv_ctx *c, struct vv_dir *dh,
			  const struct vv_knn_dir_ioc *io, const bool *stop, struct knn_dir_req **out);
int vault_knn_dir_scan(struct vv_vault *v, const struct vv_ctx *c, struct knn_dir_req *dr,
		       struct vv_knn_dir_ioc *io);
void vault_knn_dir_discard(struct vv_vault *v, struct knn_dir_req *dr);

/* Names of directory d as c's LOOKUP and read-only OPEN of each would
 * decide now (vault_knn_dir.c, shared with the bulk read, vault_bulk.c):
 * the directory checked once (search right, revoked, the trash settled),
 * the names looked up in one walk of its entries (vv_meta_dirent_get_many),
 * each then checked for reading (regular files only, a symlink never
 * followed, the lookup's rule for FIFOs and sockets).  out[i].n is pinned
 * when out[i].err is 0 (vault_node_put under v->mu); out[i].found: the
 * name exists, so its answer is audited.  count <= VAULT_DIR_PICK_MAX.
 * Under v->mu. */
#define VAULT_DIR_PICK_MAX 32u
struct dir_pick {
	struct node *n;
	uint64_t ino;
	int err;
	bool found;
};
void vault_dir_pick(struct vv_vault *v, const struct vv_ctx *c, struct node *d,
		    const char *const *names, uint32_t count, struct dir_pick *out);

/* A file the parser refuses (VV_ECORRUPT from a header that is no segment
 * of the format asked) is a bad request, not tampering: tampering shows up
 * as a failed decryption, which vault_data_read reports as VV_ECORRUPT itself. */
static inline int knn_not_segment(int r)
{
	return r == VV_ECORRUPT ? VV_EINVAL : r;
}

#endif
