/*
 * vault_push.c - the open push: a small file's bytes handed to the
 * kernel's page cache at the first open of its node, so its first read
 * needs no READ round trip (docs/design.md "Small files: per-file daemon
 * cost").  The engine decides and copies; fs/ops.c sends the bytes with
 * FUSE_NOTIFY_STORE before the OPEN reply.  The node's push state (pushed,
 * pushing, nwrite, wopens) is kept by vault_data.c's open, read and release
 * and by create (node_opened, vault_int.h).
 */
#include <fcntl.h>
#include <string.h>

#include "vault_int.h"

/* See vault.h.  The kernel holds no page of n when nothing was read,
 * pushed or opened for writing since its node was made or last went idle:
 * a node outlives the kernel's inode only idle (vault_node.c), and a
 * forgotten inode takes its pages with it.  So one open per node pushes.
 * It pushes only as the file's one handle, and other opens of the file
 * wait until the push is sent (push_end): the store locks the file's
 * pages in the kernel, and a page locked by another
 * handle's read would wait for a READ that needs a free worker; with no
 * other handle no page of the file can be locked for a request.
 *
 * This takes v->mu a second time after vv_vault_open_file's, and must:
 * between the two another open of the file may get in (nopen 2) and read,
 * so "the only handle" holds only if it is checked in the same critical
 * section that sets pushing (which holds later opens back).  Deciding it
 * once, in the open, would mean claiming the push there, and every claim
 * must then end in push_end: a caller that never pushes (the remote
 * server, net/serve_ops.c; fs/ops.c's open_push when it has no buffer)
 * would leave every later open of the file waiting.  That takes an
 * opt-in flag through the open's API (vault.h, fs/ops.c), for one take of
 * v->mu per first open of a small file: not done. */
ssize_t vv_vault_open_push(struct vv_vault *v, struct vv_file *fh, void *buf, size_t cap,
			   struct vv_push *p)
{
	struct node *n = fh->n;
	ssize_t r = 0;
	bool go;

	if (!n || (fh->flags & O_ACCMODE) != O_RDONLY || (fh->flags & (VV_OPEN_EXEC | O_TRUNC)))
		return 0;
	pthread_mutex_lock(&v->mu);
	go = !__atomic_load_n(&n->pushed, __ATOMIC_RELAXED) && !n->pushing && n->nopen == 1 &&
	     n->nwrite == 0 && n->a.size > 0 && n->a.size <= cap && n->open_gen == n->data_gen &&
	     !__atomic_load_n(&n->revoked, __ATOMIC_ACQUIRE);
	if (go) {
		__atomic_store_n(&n->pushed, true, __ATOMIC_RELAXED);
		n->pushing = true;
		p->gen = n->data_gen;
		p->wopens = n->wopens;
	}
	pthread_mutex_unlock(&v->mu);
	if (!go)
		return 0;
	if ((r = vault_data_rdlock(v, n)) == 0) {
		if (n->is_inline && n->a.size <= cap) {
			r = (ssize_t)n->a.size;
			memcpy(buf, n->inl, (size_t)r);
		}
		pthread_rwlock_unlock(&n->rw);
	}
	if (r <= 0) {
		vv_vault_open_push_end(v, fh, p);     /* nothing to send */
		return r;
	}
	__atomic_fetch_add(&fh->rbytes, (uint64_t)r, __ATOMIC_RELAXED);
	__atomic_fetch_add(&fh->rcount, 1, __ATOMIC_RELAXED);
	return r;
}

bool vv_vault_open_push_end(struct vv_vault *v, struct vv_file *fh, const struct vv_push *p)
{
	struct node *n = fh->n;
	bool stale;

	pthread_mutex_lock(&v->mu);
	stale = n->data_gen != p->gen || n->wopens != p->wopens ||
		__atomic_load_n(&n->revoked, __ATOMIC_ACQUIRE);
	n->pushing = false;
	pthread_cond_broadcast(&v->push_cv);
	pthread_mutex_unlock(&v->mu);
	return stale;
}
