/*
 * vault_knn_dir.c - the directory request of the query offload
 * (knn_ioctl.h "the directory request"): many small segments of one
 * directory scanned in one round trip.
 *
 * Why: on a mount each segment the tool opens costs an OPEN and a RELEASE
 * round trip; 10,000 segments of 100 rows cost far more than their bytes.
 * Here each name costs a step of one walk over the directory's entries
 * (vv_meta_dirent_get_many), the access check, one audit record and a
 * cache lookup, and the names served are scanned together in one call
 * (vv_segments_knn_exact).
 *
 * Two steps (docs/design.md "The directory request"): vault_knn_dir_prepare does
 * the work of each name (lookup, check, cache lookup or inline decryption,
 * header parse) on the thread that received the request, as an OPEN and
 * READs of that file would on a FUSE worker; vault_knn_dir_scan, a turn of the
 * offload's pool (vault_knn.c), does the arithmetic, the audit records and
 * the releases.  The pool's CPU bound is thus for the arithmetic only.
 * vv_vault_knn_dir (tests) runs both in a row; the local mount and vv://
 * servers submit (vv_vault_knn_dir_submit).
 *
 * Access: each name is decided as the caller's own LOOKUP and read-only
 * OPEN of it would be at prepare time, through the same checks
 * (vault_node_check, access.c; the lookup's rule for FIFOs and sockets),
 * whoever opened the directory handle: search right on the directory, read
 * right on the file, revocation, the trash's settling, regular files only.
 * Nothing of a name is decrypted before its check passed.  Between the two
 * steps a request may wait in the pool's queue: at scan time a name whose
 * node was revoked, has no link left (unlinked for good, purged) or whose
 * cached copy was dropped meanwhile (its data changed) is not scanned; it answers what its
 * lookup and open would answer now (ENOENT for a revoked or removed file,
 * audited as such when the name still exists), or EAGAIN (unaudited: the
 * caller reads it itself) for a file that is still there.  A change of
 * mode or ACL between the steps is like one after an open: the check was
 * made (POSIX checks at open, not per read).  Each name served or refused
 * gets one "scan" audit record with its path, written after the scan;
 * names answered EAGAIN, EBUSY, EFBIG or E2BIG are not recorded (the
 * caller opens and reads them itself, audited as usual), nor names that do
 * not exist (as lookups), nor the names of a scan that failed as a whole
 * (below), nor any name of a request canceled or drained before its scan.
 *
 * Cache: the offload's one cache, charged to the caller's share.  A file
 * of up to 1 MiB (vault_knn.c KNN_INLINE_MAX: a heap entry up to 120 KiB,
 * a mapping as a fill job's above) not yet cached is decrypted inline at
 * prepare time within DIR_INLINE_BYTES; a larger one gets a fill job (at
 * most DIR_FILLS per request, so a request over 256 large files does not
 * fill the uid's queue slots) and answers EAGAIN.  A prepared request holds
 * a pin on each checked node and a reference to each cached copy to scan
 * until vault_knn_dir_scan or vault_knn_dir_discard lets them go.
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
#define DIR_LOCK_NAMES VAULT_DIR_PICK_MAX  /* names checked or recorded per hold of v->mu */

/* One name of a request: what its check and preparation found. */
struct dir_name {
	struct node *n;                   /* pinned, or NULL */
	struct kent *e;                   /* its cached copy, referenced, while it is to be scanned */
	uint64_t ino;
	uint64_t bytes;                   /* scanned, for the audit */
	const char *why;                  /* the parser's reason, for the audit */
	int err;
	bool found;                       /* it exists: its answer is audited */
	bool unscanned;                   /* the scan of all failed: the caller reads it */
};

/* One request's copy of its input (the reply overwrites io) and its work,
 * from vault_knn_dir_prepare to vault_knn_dir_scan or vault_knn_dir_discard. */
struct knn_dir_req {
	struct node *d;                   /* the directory (the handle's: held by it) */
	struct vv_knn_dir_hdr h;
	const float *q;                   /* in in->u */
	const char *names[VV_KNN_DIR_MAX_NAMES];
	struct vv_knn_dir_ioc *in;
	struct dir_name *dn;              /* nnames */
	struct vv_segment_view *sv;       /* the names to scan, in request order */
	uint32_t *idx;                    /* sv[i] is name idx[i] */
	uint32_t ns;                      /* names prepared to scan */
	struct vv_knn_dir_cand *best;     /* nq * kk, in io (at scan time) */
	struct vv_knn_dir_stat *st;       /* in io (at scan time) */
	uint64_t work;                    /* spent of VV_KNN_WORK_MAX */
	struct knn_budget b;
};

/* The directory's part of a name's LOOKUP, the same for every name of
 * the directory under one hold of v->mu: d still a directory, search
 * right on it, a trashed tree settled.  *found: a refusal of the search
 * right is audited with the name.  Under v->mu. */
static int dir_check(struct vv_vault *v, const struct vv_ctx *c, struct node *d, bool *found)
{
	int r;

	*found = false;
	if (__atomic_load_n(&d->revoked, __ATOMIC_ACQUIRE) || !S_ISDIR(d->a.mode))
		return VV_ENOENT;
	if ((r = vault_node_check(v, c, d, VV_MAY_EXEC)) < 0)
		return *found = true, r;
	if (d->a.parent == VV_TRASH_FILES_INO && (r = vault_trash_settle(v, d)) < 0)
		return r;
	return 0;
}

/* The rest of the LOOKUP and the read-only OPEN of an entry found in a
 * directory that passed dir_check: node ino, pinned into *out, if c may
 * open it for reading now.  row (or NULL): its inode row and whether it
 * has xattrs, read with the entry, for a node not in memory (as
 * readdirplus builds them).  Under v->mu. */
static int entry_node(struct vv_vault *v, const struct vv_ctx *c, uint64_t ino,
		      const struct vv_inode_row *row, bool xattrs, struct node **out)
{
	struct node *n = NULL;
	int r;

	*out = NULL;
	if (trash_virt(ino))
		return VV_EINVAL;                    /* no regular file */
	if ((r = row ? vault_node_get_row(v, row, &n) : vault_node_get(v, ino, &n)) < 0)
		return r;
	if (row)
		vault_node_xattrs_known(n, xattrs);
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

/* The node named name in directory d, pinned, if c may open it for
 * reading now, as its LOOKUP and read-only OPEN would decide.  *found:
 * the name exists (its refusal is audited).  Under v->mu. */
static int name_node(struct vv_vault *v, const struct vv_ctx *c, struct node *d, const char *name,
		     struct node **out, bool *found)
{
	uint64_t ino;
	int r;

	*out = NULL;
	if ((r = dir_check(v, c, d, found)) < 0)
		return r;
	if ((r = vv_meta_dirent_get(v->meta, d->ino, name, &ino)) < 0)
		return r;
	*found = true;
	return entry_node(v, c, ino, NULL, false, out);
}

void vault_dir_pick(struct vv_vault *v, const struct vv_ctx *c, struct node *d,
		    const char *const *names, uint32_t count, struct dir_pick *out)
{
	struct vv_inode_row crow[DIR_LOCK_NAMES];
	const struct vv_inode_row *row[DIR_LOCK_NAMES] = { 0 };
	const char *cold[DIR_LOCK_NAMES];
	uint64_t ino[DIR_LOCK_NAMES], cino[DIR_LOCK_NAMES];
	uint32_t ci[DIR_LOCK_NAMES], nc = 0;
	int err[DIR_LOCK_NAMES], cerr[DIR_LOCK_NAMES], r;
	bool found, cx[DIR_LOCK_NAMES], xattrs[DIR_LOCK_NAMES] = { 0 };

	if ((r = dir_check(v, c, d, &found)) == 0 &&
	    (r = vv_meta_dirent_get_many(v->meta, d->ino, names, count, ino, err, NULL, NULL)) < 0)
		found = false;
	for (uint32_t i = 0; r == 0 && i < count; i++)
		if (err[i] == 0 && !trash_virt(ino[i]) && !vault_node_find(v, ino[i])) {
			ci[nc] = i;
			cold[nc++] = names[i];
		}
	/* the same lock hold: the same entries, now with their rows */
	if (nc > 0 && vv_meta_dirent_get_many(v->meta, d->ino, cold, nc, cino, cerr, crow, cx) == 0)
		for (uint32_t k = 0; k < nc; k++)
			if (cerr[k] == 0 && cino[k] == ino[ci[k]] && crow[k].ino == cino[k]) {
				row[ci[k]] = &crow[k];
				xattrs[ci[k]] = cx[k];
			}
	for (uint32_t i = 0; i < count; i++) {
		struct dir_pick *x = &out[i];

		x->n = NULL;
		x->ino = 0;
		x->err = r < 0 ? r : err[i];
		x->found = r < 0 ? found : x->err == 0;
		if (x->err == 0 && (x->err = entry_node(v, c, ino[i], row[i], xattrs[i], &x->n)) == 0)
			x->ino = x->n->ino;
	}
}

/* vault_dir_pick for names i0 .. end of the request. */
static void names_nodes(struct vv_vault *v, const struct vv_ctx *c, struct knn_dir_req *dr,
			uint32_t i0, uint32_t end)
{
	struct dir_pick pk[DIR_LOCK_NAMES];

	vault_dir_pick(v, c, dr->d, dr->names + i0, end - i0, pk);
	for (uint32_t i = i0; i < end; i++) {
		struct dir_name *x = &dr->dn[i];

		x->n = pk[i - i0].n;
		x->ino = pk[i - i0].ino;
		x->err = pk[i - i0].err;
		x->found = pk[i - i0].found;
	}
}

/* Node n (checked) ready for the request's scan: its cached copy,
 * referenced (*e, to vault_knn_put after the scan), parsed as the request
 * asks into *sv and counted against the request's work budget; *why: the
 * parser's reason for a file that is no such segment. */
static int prepare_one(struct vv_vault *v, const struct vv_ctx *c, struct knn_dir_req *dr,
		       struct node *n, struct kent **e, struct vv_segment_view *sv, const char **why)
{
	const struct vv_knn_dir_hdr *h = &dr->h;
	enum vv_seg_format fmt = (enum vv_seg_format)h->format;
	uint64_t per_row = (uint64_t)h->nq * ((uint64_t)h->dim + VV_KNN_ROW_COST);
	struct vv_segment_info si;
	const uint8_t *base = NULL;
	uint64_t size = 0;
	int r;

	*e = NULL;
	/* a ready copy needs neither n->rw nor n's extents loaded (a node
	 * the kernel forgot would load them from meta.db: ~80 us) */
	if ((r = vault_knn_ready(v, n, e, &base, &size)) != VV_ENOENT)
		goto parse;
	if ((r = vault_data_rdlock(v, n)) < 0)
		return r == VV_EIO ? VV_ENOENT : r;  /* purged meanwhile */
	r = vault_knn_get(v, c->id.uid, n, &dr->b, e, &base, &size);
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
parse:
	if (r == 0)
		r = knn_not_segment(vault_knn_view(v, *e, fmt, sv, why));
	if (r == 0 && (sv->info.dim != h->dim || sv->info.dtype != (enum vv_dtype)h->dtype))
		r = VV_EINVAL;
	if (r == 0 && sv->info.count && per_row > (VV_KNN_WORK_MAX - dr->work) / sv->info.count)
		r = VV_E2BIG;
	if (r < 0) {
		vault_knn_put(v, *e);
		*e = NULL;
		return r;
	}
	dr->work += per_row * sv->info.count;
	return 0;
}

/* Not recorded: answers that read nothing and leave the caller to open
 * the file itself (its open and reads are audited then). */
static bool audited(int r, bool found)
{
	return found && r != VV_EAGAIN && r != VV_EBUSY && r != VV_EFBIG && r != VV_E2BIG;
}

static int dir_req_init(struct knn_dir_req *dr, struct node *d, const struct vv_knn_dir_ioc *io)
{
	const char *p;
	size_t nn;

	dr->d = d;
	if (!(dr->in = malloc(sizeof(*dr->in))))
		return VV_ENOMEM;
	memcpy(dr->in, io, sizeof(*io));
	dr->h = io->h;
	nn = dr->h.nnames;
	if (!(dr->dn = calloc(nn, sizeof(*dr->dn))) || !(dr->sv = malloc(nn * sizeof(*dr->sv))) ||
	    !(dr->idx = malloc(nn * sizeof(*dr->idx))))
		return VV_ENOMEM;
	dr->q = (const float *)(const void *)dr->in->u;
	p = (const char *)dr->in->u + (size_t)dr->h.nq * dr->h.dim * sizeof(float);
	/* checked: nnames NUL-terminated names, back to back */
	for (uint32_t i = 0; i < dr->h.nnames; i++) {
		dr->names[i] = p;
		p += strlen(p) + 1;
	}
	dr->b.inline_bytes = DIR_INLINE_BYTES;
	dr->b.fills = DIR_FILLS;
	return 0;
}

/* Every name checked and its copy made ready, in request order (checks
 * DIR_LOCK_NAMES at a time, then those names' preparations in order, so
 * the work budget and the fills go to the first names); no lock held.  Once *stop is set (the
 * request was canceled or the offload drains) the names left are not
 * looked at: the request is discarded anyway. */
static void prepare_all(struct vv_vault *v, const struct vv_ctx *c, struct knn_dir_req *dr,
			const bool *stop)
{
	uint32_t ns = 0;

	for (uint32_t i0 = 0; i0 < dr->h.nnames; i0 += DIR_LOCK_NAMES) {
		uint32_t end = dr->h.nnames - i0 < DIR_LOCK_NAMES ? dr->h.nnames : i0 + DIR_LOCK_NAMES;

		if (stop && __atomic_load_n(stop, __ATOMIC_RELAXED))
			break;
		/* the checks of a few names per hold of the vault lock: two
		 * requests prepared at once (the tool keeps two in flight)
		 * would otherwise hand it over at every name, a futex wait and
		 * wake each */
		pthread_mutex_lock(&v->mu);
		names_nodes(v, c, dr, i0, end);
		pthread_mutex_unlock(&v->mu);
		for (uint32_t i = i0; i < end; i++) {
			struct dir_name *x = &dr->dn[i];
			if (x->err == 0)
				x->err = prepare_one(v, c, dr, x->n, &x->e, &dr->sv[ns], &x->why);
			if (x->err == 0) {
				x->bytes = dr->sv[ns].len;
				dr->idx[ns++] = i;
			}
		}
	}
	dr->ns = ns;
}

/* At scan time: a prepared name whose node was revoked, has no link left
 * (unlinked for good, or purged: a purge revokes only nodes open as files,
 * a pin does not count) or whose cached copy was dropped since (its data
 * changed: a writer drops the copy under the node's data lock) is not
 * scanned.  It answers what its lookup and open answer now, or EAGAIN when
 * those would pass (the file is there, its bytes are not the ones
 * prepared: the caller reads it itself).  A name renamed or moved to the
 * trash meanwhile is scanned as prepared, like a file opened before the
 * move.  The others keep their place, in request order. */
static void recheck(struct vv_vault *v, const struct vv_ctx *c, struct knn_dir_req *dr)
{
	uint32_t ns = 0;

	pthread_mutex_lock(&v->mu);
	for (uint32_t j = 0; j < dr->ns; j++) {
		struct dir_name *x = &dr->dn[dr->idx[j]];
		struct node *n;
		int r;

		if (!__atomic_load_n(&x->n->revoked, __ATOMIC_ACQUIRE) && x->n->a.nlink > 0 &&
		    vault_knn_listed(v, x->e)) {
			dr->sv[ns] = dr->sv[j];
			dr->idx[ns++] = dr->idx[j];
			continue;
		}
		vault_knn_put(v, x->e);      /* c->mu: a leaf */
		x->e = NULL;
		x->bytes = 0;
		x->why = NULL;
		vault_node_put(v, x->n);
		r = name_node(v, c, dr->d, dr->names[dr->idx[j]], &n, &x->found);
		x->n = n;
		if (n)
			x->ino = n->ino;
		x->err = r == 0 ? VV_EAGAIN : r;
	}
	pthread_mutex_unlock(&v->mu);
	dr->ns = ns;
}

/* Let go of everything a request holds (no lock held), then the request. */
static void dir_req_free(struct vv_vault *v, struct knn_dir_req *dr)
{
	if (!dr)
		return;
	for (uint32_t i = 0; dr->dn && i < dr->h.nnames; i++) {
		struct dir_name *x = &dr->dn[i];

		if (x->n) {
			pthread_mutex_lock(&v->mu);
			vault_node_put(v, x->n);
			pthread_mutex_unlock(&v->mu);
		}
		vault_knn_put(v, x->e);
	}
	free(dr->in);
	free(dr->dn);
	free(dr->sv);
	free(dr->idx);
	free(dr);
}

int vault_knn_dir_prepare(struct vv_vault *v, const struct vv_ctx *c, struct vv_dir *dh,
			  const struct vv_knn_dir_ioc *io, const bool *stop, struct knn_dir_req **out)
{
	struct knn_dir_req *dr = NULL;
	int r;

	*out = NULL;
	if (!v->knn || !dh->n)
		return VV_ENOTTY;
	if ((r = vault_audit_gate(v)) < 0)
		return r;
	if ((r = vv_knn_dir_request_check(io)) < 0)
		return r;
	if (!(dr = calloc(1, sizeof(*dr))))
		return VV_ENOMEM;
	if ((r = dir_req_init(dr, dh->n, io)) < 0) {
		dir_req_free(v, dr);
		return r;
	}
	prepare_all(v, c, dr, stop);
	*out = dr;
	return 0;
}

void vault_knn_dir_discard(struct vv_vault *v, struct knn_dir_req *dr)
{
	dir_req_free(v, dr);
}

int vault_knn_dir_scan(struct vv_vault *v, const struct vv_ctx *c, struct knn_dir_req *dr,
		       struct vv_knn_dir_ioc *io)
{
	struct node *d = dr->d;
	char dpath[VAULT_AUDIT_DIR_MAX];
	uint64_t served = 0, total = 0;
	uint32_t ns;
	int s = 0;

	recheck(v, c, dr);
	ns = dr->ns;
	memset(io->u, 0, sizeof(io->u));
	dr->st = (struct vv_knn_dir_stat *)(void *)io->u;
	dr->best = (struct vv_knn_dir_cand *)(void *)(io->u + (size_t)dr->h.nnames * sizeof(*dr->st));
	for (size_t k = 0; k < (size_t)dr->h.nq * dr->h.kk; k++) {
		dr->best[k].d = INFINITY;
		dr->best[k].name = VV_KNN_DIR_NO_NAME;
		dr->best[k].row = VV_KNN_NO_ROW;
	}
	/* the names served scanned together, as one collection of ns
	 * segments: one pass, no per-file setup; a failure fails them all */
	if (ns > 0 && (s = vv_segments_knn_exact(dr->sv, ns, (enum vv_metric)dr->h.metric, dr->q,
						 dr->h.nq, dr->h.kk, dr->best)) == 0) {
		for (size_t k = 0; k < (size_t)dr->h.nq * dr->h.kk; k++)
			if (dr->best[k].name != VV_KNN_DIR_NO_NAME)
				dr->best[k].name = dr->idx[dr->best[k].name];
	}
	for (uint32_t j = 0; j < ns; j++) {
		struct dir_name *x = &dr->dn[dr->idx[j]];
		/* a failed scan (a TEXMEX row with a wrong dim word in one
		 * file, no memory) fails every name of it: none is recorded,
		 * the caller opens and scans them itself and its own scan names
		 * the file at fault (an audited ECORRUPT here would accuse the
		 * innocent files too) */
		x->err = s;
		x->unscanned = s < 0;
		if (s == 0) {
			dr->st[dr->idx[j]].rows = dr->sv[j].info.count;
			served++;
			total += dr->sv[j].info.count;
		}
	}
	if (s < 0)
		for (size_t k = 0; k < (size_t)dr->h.nq * dr->h.kk; k++)
			dr->best[k] = (struct vv_knn_dir_cand){ INFINITY, VV_KNN_DIR_NO_NAME, 0,
								VV_KNN_NO_ROW };
	/* the records, under no lock of the vault: the directory's path is
	 * looked up once, not per name (this runs on the pool's one thread,
	 * the query's critical path, while the FUSE workers prepare the
	 * next requests under v->mu) */
	pthread_mutex_lock(&v->mu);
	vault_audit_dir(v, d->ino, dpath);
	pthread_mutex_unlock(&v->mu);
	for (uint32_t i = 0; i < dr->h.nnames; i++) {
		struct dir_name *x = &dr->dn[i];
		char detail[160];
		int e = x->err;

		dr->st[i].err = e == 0 ? 0 : -vv_errno(e);
		if (audited(e, x->found) && !x->unscanned) {
			if (e == VV_EINVAL && x->why)
				snprintf(detail, sizeof(detail), "not a %s segment: %s",
					 vv_seg_format_name((enum vv_seg_format)dr->h.format), x->why);
			vault_audit_name(v, c, "scan", x->ino, dpath, dr->names[i], e,
					 e == VV_EINVAL && x->why ? detail : NULL,
					 e == 0 ? x->bytes : 0);
		}
		vault_knn_put(v, x->e);      /* c->mu: a leaf */
		x->e = NULL;
	}
	for (uint32_t i = 0; i < dr->h.nnames; i++) {
		struct dir_name *x = &dr->dn[i];

		if (i % DIR_LOCK_NAMES == 0)
			pthread_mutex_lock(&v->mu);
		vault_node_put(v, x->n);
		x->n = NULL;
		if (i % DIR_LOCK_NAMES == DIR_LOCK_NAMES - 1 || i + 1 == dr->h.nnames)
			pthread_mutex_unlock(&v->mu);
	}
	io->h = dr->h;
	io->h.magic = VV_KNN_DIR_MAGIC_REPLY;
	io->h.flags = 0;
	io->h.served = (uint32_t)served;
	io->h.rows = total;
	dir_req_free(v, dr);
	return 0;
}

int vv_vault_knn_dir(struct vv_vault *v, const struct vv_ctx *c, struct vv_dir *dh,
		     struct vv_knn_dir_ioc *io)
{
	struct knn_dir_req *dr;
	int r;

	if ((r = vault_knn_dir_prepare(v, c, dh, io, NULL, &dr)) < 0)
		return r;
	return vault_knn_dir_scan(v, c, dr, io);
}
