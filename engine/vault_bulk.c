/*
 * vault_bulk.c - the bulk read (knn_ioctl.h "the bulk read"): the bytes of
 * many small files of one directory written into the caller's buffer in
 * one round trip, each name checked and audited as its open would be.
 *
 * Why: `vecvault query` scanning segments itself on a mount opened each
 * one, an OPEN and a RELEASE round trip per file (~50 us of CPU here
 * against ~5 for a 51 KB file's bytes).  Here a name costs a step of one
 * walk over the directory's entries, its access check, two audit records
 * and a copy out of the offload's cache of decrypted files.
 *
 * Access: each name is decided by vault_dir_pick (vault_knn_dir.c) as the
 * caller's own LOOKUP and read-only OPEN of it would be now, whoever
 * opened the directory handle.  A name served gets "open" and "close"
 * records (the close with the bytes read), a name refused its "open"
 * record with the error; names the caller must read itself (-EAGAIN,
 * -EBUSY, -EFBIG, -ENOMEM: the cache could not give a copy now, or the
 * file is larger than the slot) and names that do not exist (as lookups)
 * get none: the caller's own open of them is audited.  Nothing is held
 * after the reply: no pin, no reference, no state per caller; a later
 * request is checked again.
 *
 * Where the bytes go is the host's business (vv_bulk_sink: fs/ops.c takes
 * the caller's memfd and writes into it): the engine hands it each served
 * file's bytes and the offset of its slot.
 */
#include <stdlib.h>
#include <string.h>

#include "knn_int.h"
#include "vault_int.h"
#include "vecvault/error.h"
#include "vecvault/knn_ioctl.h"

/* One name: what its check and copy found. */
struct bulk_name {
	struct node *n;                   /* pinned while its copy is made, or NULL */
	uint64_t ino;
	uint64_t size;
	int err;
	bool found;
	bool put_failed;                  /* checked and read, but the sink failed */
};

/* Not recorded: answers that leave the caller to open the file itself
 * (that open and its reads are audited then). */
static bool audited(int r, bool found)
{
	return found && r != VV_EAGAIN && r != VV_EBUSY && r != VV_EFBIG && r != VV_ENOMEM;
}

/* Node n's bytes, from the offload's cache (made now for a file of up to
 * 1 MiB, charged to c's uid), handed to the sink at off.  *size: the
 * bytes; *put_failed: the sink's error is the one returned. */
static int copy_one(struct vv_vault *v, const struct vv_ctx *c, struct node *n, uint64_t slot,
		    struct knn_budget *b, const struct vv_bulk_sink *sk, uint64_t off,
		    uint64_t *size, bool *put_failed)
{
	struct kent *e = NULL;
	const uint8_t *base = NULL;
	int r;

	*size = 0;
	if ((r = vault_knn_ready(v, n, &e, &base, size)) == VV_ENOENT) {
		if ((r = vault_data_rdlock(v, n)) < 0)
			return r == VV_EIO ? VV_ENOENT : r;  /* purged meanwhile */
		r = vault_knn_get(v, c->id.uid, n, b, &e, &base, size);
		pthread_rwlock_unlock(&n->rw);
		if (r == VV_ENOENT)
			r = VV_EFBIG;            /* over the inline bound: not cached */
	}
	if (r == 0 && *size > slot)
		r = VV_EFBIG;
	if (r == 0 && (r = sk->put(sk->arg, off, base, (size_t)*size)) < 0)
		*put_failed = true;
	vault_knn_put(v, e);
	if (r < 0)
		*size = 0;
	return r;
}

int vv_vault_bulk_read(struct vv_vault *v, const struct vv_ctx *c, struct vv_dir *dh,
		       struct vv_bulk_ioc *io, const struct vv_bulk_sink *sk)
{
	struct vv_bulk_hdr h = io->h;
	const char *names[VV_BULK_MAX_NAMES];
	struct knn_budget b = { VV_BULK_SPAN_MAX, 0 };
	struct bulk_name *bn = NULL;
	char dpath[VAULT_AUDIT_DIR_MAX];
	struct vv_bulk_stat *st;
	struct kjob *hold = NULL;
	uint8_t *in = NULL;
	const char *p;
	uint64_t served = 0, bytes = 0;
	int r, sink_err = 0;

	if (!v->knn || !dh->n)
		return VV_ENOTTY;                    /* off, or a virtual directory (.trash) */
	if ((r = vv_bulk_request_check(io)) < 0)
		return r;
	/* the uid's slot first: a flood costs only its refusals */
	if ((r = vault_knn_hold(v, c, &hold)) < 0)
		return r;
	if ((r = vault_audit_gate(v)) < 0)
		goto out;
	if ((r = sk->open(sk->arg, &h)) < 0)
		goto out;
	if (!(in = malloc(h.names_len)) || !(bn = calloc(h.nnames, sizeof(*bn)))) {
		r = VV_ENOMEM;
		goto out;
	}
	memcpy(in, io->u, h.names_len);      /* the reply overwrites io->u */
	p = (const char *)in;
	for (uint32_t i = 0; i < h.nnames; i++) {   /* checked: back to back */
		names[i] = p;
		p += strlen(p) + 1;
	}
	for (uint32_t i0 = 0; i0 < h.nnames; i0 += VAULT_DIR_PICK_MAX) {
		uint32_t cnt = h.nnames - i0 < VAULT_DIR_PICK_MAX ? h.nnames - i0 : VAULT_DIR_PICK_MAX;
		struct dir_pick pk[VAULT_DIR_PICK_MAX];

		pthread_mutex_lock(&v->mu);
		vault_dir_pick(v, c, dh->n, names + i0, cnt, pk);
		for (uint32_t k = 0; k < cnt; k++) {
			struct bulk_name *x = &bn[i0 + k];

			x->n = pk[k].n;
			x->ino = pk[k].ino;
			x->err = pk[k].err;
			x->found = pk[k].found;
			if (x->err == 0 && x->n->a.size > h.slot)
				x->err = VV_EFBIG;   /* no decryption for a file that cannot fit */
		}
		pthread_mutex_unlock(&v->mu);
		for (uint32_t k = 0; k < cnt; k++) {
			struct bulk_name *x = &bn[i0 + k];

			if (x->err == 0 && sink_err < 0) {
				x->err = sink_err;   /* the buffer failed: nothing more is written, */
				x->found = false;    /* nothing read: no record */
			} else if (x->err == 0 &&
				 (x->err = copy_one(v, c, x->n, h.slot, &b, sk,
						    h.off + (uint64_t)(i0 + k) * h.slot, &x->size,
						    &x->put_failed)) < 0 && x->put_failed)
				sink_err = x->err;
		}
		/* the records of these names (the directory's path looked up
		 * once, the records made under no lock of the vault), then
		 * their pins: a name whose bytes the sink refused was opened
		 * and its read failed */
		pthread_mutex_lock(&v->mu);
		vault_audit_dir(v, dh->n->ino, dpath);
		pthread_mutex_unlock(&v->mu);
		for (uint32_t k = 0; k < cnt; k++) {
			struct bulk_name *x = &bn[i0 + k];

			if (x->put_failed || audited(x->err, x->found)) {
				vault_audit_name(v, c, "open", x->ino, dpath, names[i0 + k],
						 x->put_failed ? 0 : x->err, NULL, 0);
				if (x->err == 0 || x->put_failed)
					vault_audit_name(v, c, "close", x->ino, dpath, names[i0 + k],
							 x->err, NULL, x->size);
			}
		}
		pthread_mutex_lock(&v->mu);
		for (uint32_t k = 0; k < cnt; k++) {
			struct bulk_name *x = &bn[i0 + k];

			if (x->n)
				vault_node_put(v, x->n);
			x->n = NULL;
		}
		pthread_mutex_unlock(&v->mu);
	}
	st = (struct vv_bulk_stat *)(void *)io->u;
	memset(io->u, 0, sizeof(io->u));
	for (uint32_t i = 0; i < h.nnames; i++) {
		st[i].err = bn[i].err == 0 ? 0 : -vv_errno(bn[i].err);
		st[i].size = bn[i].err == 0 ? bn[i].size : 0;
		served += bn[i].err == 0;
		bytes += st[i].size;
	}
	io->h = h;
	io->h.magic = VV_BULK_MAGIC_REPLY;
	io->h.flags = 0;
	io->h.served = (uint32_t)served;
	io->h.bytes = bytes;
	r = 0;
out:
	free(in);
	free(bn);
	vault_knn_unhold(v, hold);
	return r;
}
