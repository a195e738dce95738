/*
 * vault_knn_dir.c - the directory request of the query offload
 * (knn_ioctl.h "the directory request"): many small segments of one
 * directory scanned in one round trip, on the offload's pool (vault_knn.c).
 *
 * Why: on a mount each segment the tool opens costs an OPEN and a RELEASE
 * round trip; 10,000 segments of 100 rows cost far more than their bytes.
 * Here each name costs a dirent lookup, the access check, one audit record,
 * a cache lookup and a merge, all in one pool turn.
 *
 * Access: each name is decided as the caller's own LOOKUP and read-only
 * OPEN of it would be now, through the same checks (vault_node_check,
 * access.c; the lookup's rule for FIFOs and sockets), whoever opened the
 * directory handle: search right on the directory, read right on the file,
 * revocation, the trash's settling, regular files only.  Nothing of a name
 * is decrypted before its check passed.  Each name served or refused gets
 * one "scan" audit record with its path; names answered EAGAIN, EBUSY,
 * EFBIG or E2BIG are not recorded (the caller opens and reads them itself,
 * audited as usual), nor names that do not exist (as lookups).
 *
 * Cache: the offload's one cache, charged to the caller's share.  A small
 * file (vault_knn.c: a heap entry) not yet cached is decrypted inline in
 * this request's turn within DIR_INLINE_BYTES; a larger one gets a fill
 * job (at most DIR_FILLS per request, so a request over 256 large files
 * does not fill the uid's queue slots) and answers EAGAIN.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "knn_int.h"
#include "meta_int.h"
#include "vault_int.h"
#include "vecvault/error.h"
#include "vecvault/knn_ioctl.h"
#include "vecvault/vector.h"

#define DIR_INLINE_BYTES (32u << 20)  /* small files decrypted inline per request */
#define DIR_FILLS 2u                  /* fill jobs one request may queue */

/* One request's copy of its input (the reply overwrites io) and its work. */
struct dir_req {
	struct vv_knn_dir_hdr h;
	const float *q;                   /* in in->u */
	const char *names[VV_KNN_DIR_MAX_NAMES];
	struct vv_knn_dir_ioc *in;
	struct vv_knn_ioc_xcand *one;     /* one file's nq * kk */
	struct vv_knn_dir_cand *best;     /* merged nq * kk, in io */
	struct vv_knn_dir_cand *tmp;      /* kk */
	struct vv_knn_dir_stat *st;       /* in io */
	uint64_t work;                    /* spent of VV_KNN_WORK_MAX */
	struct knn_budget b;
};

/* The node named name in directory d, pinned, if c may open it for
 * reading now, as its LOOKUP and read-only OPEN would decide.  *found:
 * the name exists (its refusal is audited).  Under v->mu. */
static int name_node(struct vv_vault *v, const struct vv_ctx *c, struct node *d, const char *name,
		     struct node **out, bool *found)
{
	struct node *n = NULL;
	uint64_t ino;
	int r;

	*out = NULL;
	*found = false;
	if (__atomic_load_n(&d->revoked, __ATOMIC_ACQUIRE) || !S_ISDIR(d->a.mode))
		return VV_ENOENT;
	/* LOOKUP: search right on the directory, a trashed tree settled */
	if ((r = vault_node_check(v, c, d, VV_MAY_EXEC)) < 0)
		return *found = true, r;
	if (d->a.parent == VV_TRASH_FILES_INO && (r = vault_trash_settle(v, d)) < 0)
		return r;
	if ((r = vv_meta_dirent_get(v->meta, d->ino, name, &ino)) < 0)
		return r;
	*found = true;
	if (trash_virt(ino))
		return VV_EINVAL;                    /* no regular file */
	if ((r = vault_node_get(v, ino, &n)) < 0)
		return r;
	if ((S_ISFIFO(n->a.mode) || S_ISSOCK(n->a.mode)) &&
	    (r = vault_special_lookup_check(v, c, n)) < 0)
		goto fail;
	/* OPEN for reading (vv_vault_open_file) */
	if (n->pushing)
		r = VV_EAGAIN;                       /* its open would wait: the caller's does */
	else if (__atomic_load_n(&n->revoked, __ATOMIC_ACQUIRE))
		r = VV_ENOENT;
	else if (!S_ISREG(n->a.mode))
		r = VV_EINVAL;
	else
		r = vault_node_check(v, c, n, VV_MAY_READ);
	if (r < 0)
		goto fail;
	*out = n;
	return 0;
fail:
	vault_node_put(v, n);
	return r;
}

/* Scan node n (checked) for the request: its candidates merged into
 * dr->best as name index i.  *rows and *bytes: what was scanned; *why: the
 * parser's reason for a file that is no such segment. */
static int scan_one(struct vv_vault *v, const struct vv_ctx *c, struct dir_req *dr, struct node *n,
		    uint32_t i, uint64_t *rows, uint64_t *bytes, const char **why)
{
	const struct vv_knn_dir_hdr *h = &dr->h;
	enum vv_seg_format fmt = (enum vv_seg_format)h->format;
	uint64_t per_row = (uint64_t)h->nq * ((uint64_t)h->dim + VV_KNN_ROW_COST);
	struct vv_segment_view sv;
	struct vv_segment_info si;
	struct kent *e = NULL;
	const uint8_t *base = NULL;
	uint64_t size = 0;
	int r;

	/* a ready copy needs neither n->rw nor n's extents loaded (a node
	 * the kernel forgot would load them from meta.db: ~80 us) */
	if ((r = vault_knn_ready(v, n, &e, &base, &size)) != VV_ENOENT)
		goto scan;
	if ((r = vault_data_rdlock(v, n)) < 0)
		return r == VV_EIO ? VV_ENOENT : r;  /* purged meanwhile */
	r = vault_knn_get(v, c->id.uid, n, &dr->b, &e, &base, &size);
	if (r == VV_ENOENT) {
		/* a larger file, not cached: its head only, then a fill */
		r = knn_not_segment(vault_data_segment_probe(v, n, fmt, &si, why));
		if (r == 0 && (si.dim != h->dim || si.dtype != (enum vv_dtype)h->dtype))
			r = VV_EINVAL;
		if (r == 0 && si.count && per_row > (VV_KNN_WORK_MAX - dr->work) / si.count)
			r = VV_E2BIG;
		if (r == 0)
			r = vault_knn_start(v, c->id.uid, n, &dr->b);
	}
	pthread_rwlock_unlock(&n->rw);
scan:
	if (r < 0)
		return r;
	r = knn_not_segment(vv_segment_view_init(&sv, base, size, fmt, why));
	if (r == 0 && (sv.info.dim != h->dim || sv.info.dtype != (enum vv_dtype)h->dtype))
		r = VV_EINVAL;
	if (r == 0 && sv.info.count && per_row > (VV_KNN_WORK_MAX - dr->work) / sv.info.count)
		r = VV_E2BIG;
	if (r == 0)
		r = vv_segment_knn_exact(&sv, (enum vv_metric)h->metric, dr->q, h->nq, h->kk, 1,
					 dr->one);
	if (r == 0) {
		dr->work += per_row * sv.info.count;
		for (uint32_t qi = 0; qi < h->nq; qi++)
			vv_knn_dir_merge(dr->best + (size_t)qi * h->kk, dr->one + (size_t)qi * h->kk,
					 i, h->kk, dr->tmp);
		*rows = sv.info.count;
		*bytes = size;
	}
	vault_knn_put(v, e);
	return r;
}

/* Not recorded: answers that read nothing and leave the caller to open
 * the file itself (its open and reads are audited then). */
static bool audited(int r, bool found)
{
	return found && r != VV_EAGAIN && r != VV_EBUSY && r != VV_EFBIG && r != VV_E2BIG;
}

static int dir_req_init(struct dir_req *dr, struct vv_knn_dir_ioc *io)
{
	const char *p;
	size_t kk;

	memset(dr, 0, sizeof(*dr));
	if (!(dr->in = malloc(sizeof(*dr->in))))
		return VV_ENOMEM;
	memcpy(dr->in, io, sizeof(*io));
	dr->h = io->h;
	kk = dr->h.kk;
	if (!(dr->one = malloc((size_t)dr->h.nq * kk * sizeof(*dr->one))) ||
	    !(dr->tmp = malloc(kk * sizeof(*dr->tmp))))
		return VV_ENOMEM;
	dr->q = (const float *)(const void *)dr->in->u;
	p = (const char *)dr->in->u + (size_t)dr->h.nq * dr->h.dim * sizeof(float);
	/* checked: nnames NUL-terminated names, back to back */
	for (uint32_t i = 0; i < dr->h.nnames; i++) {
		dr->names[i] = p;
		p += strlen(p) + 1;
	}
	dr->st = (struct vv_knn_dir_stat *)(void *)io->u;
	dr->best = (struct vv_knn_dir_cand *)(void *)(io->u + (size_t)dr->h.nnames * sizeof(*dr->st));
	dr->b.inline_bytes = DIR_INLINE_BYTES;
	dr->b.fills = DIR_FILLS;
	return 0;
}

int vv_vault_knn_dir(struct vv_vault *v, const struct vv_ctx *c, struct vv_dir *dh,
		     struct vv_knn_dir_ioc *io)
{
	struct node *d = dh->n;
	struct dir_req dr;
	uint64_t served = 0, total = 0;
	int r;

	if (!v->knn || !d)
		return VV_ENOTTY;
	if ((r = vault_audit_gate(v)) < 0)
		return r;
	if ((r = vv_knn_dir_request_check(io)) < 0)
		return r;
	if ((r = dir_req_init(&dr, io)) < 0)
		goto out;
	memset(io->u, 0, sizeof(io->u));
	for (size_t s = 0; s < (size_t)dr.h.nq * dr.h.kk; s++) {
		dr.best[s].d = INFINITY;
		dr.best[s].name = VV_KNN_DIR_NO_NAME;
		dr.best[s].row = VV_KNN_NO_ROW;
	}
	for (uint32_t i = 0; i < dr.h.nnames; i++) {
		struct node *n;
		uint64_t rows = 0, bytes = 0, ino = 0;
		const char *why = NULL;
		char detail[160];
		bool found;
		int e;

		pthread_mutex_lock(&v->mu);
		e = name_node(v, c, d, dr.names[i], &n, &found);
		if (n)
			ino = n->ino;
		pthread_mutex_unlock(&v->mu);
		if (e == 0)
			e = scan_one(v, c, &dr, n, i, &rows, &bytes, &why);
		dr.st[i].err = e == 0 ? 0 : -vv_errno(e);
		dr.st[i].rows = rows;
		served += e == 0;
		total += rows;
		pthread_mutex_lock(&v->mu);
		if (audited(e, found)) {
			if (e == VV_EINVAL && why)
				snprintf(detail, sizeof(detail), "not a %s segment: %s",
					 vv_seg_format_name((enum vv_seg_format)dr.h.format), why);
			vault_audit_scan(v, c, ino, d->ino, dr.names[i], e,
					 e == VV_EINVAL && why ? detail : NULL, bytes);
		}
		vault_node_put(v, n);
		pthread_mutex_unlock(&v->mu);
	}
	io->h = dr.h;
	io->h.magic = VV_KNN_DIR_MAGIC_REPLY;
	io->h.flags = 0;
	io->h.served = (uint32_t)served;
	io->h.rows = total;
out:
	free(dr.in);
	free(dr.one);
	free(dr.tmp);
	return r;
}
