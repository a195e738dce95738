/*
 * vault_knn.c - the daemon's side of the query offload (knn_ioctl.h).
 *
 * `vecvault query` opens a segment through the mount like any reader, then
 * asks, by an ioctl on that descriptor, for the best candidates of its
 * queries.  Here the segment is decrypted once into long-lived anonymous
 * memory (transparent huge pages where the kernel allows, never in core
 * dumps, locked against swap when the limits allow) and scanned with the
 * same code the tool uses (vv_segment_knn).
 *
 * Decrypting a large segment takes a while (on a VM, mostly the first touch
 * of fresh memory), so the first request for a segment starts a background
 * fill and is answered EAGAIN: the tool scans that segment itself, through
 * the page cache, and later requests find it ready.
 *
 * Cache: one entry per inode, least recently used first out, bounded by the
 * vault option knn_cache_bytes.  An entry is dropped whenever its file's
 * data changes (write, truncate) or the file is deleted, by the writer,
 * which holds the node's data lock.  A fill reads the file in pieces under
 * that lock held for reading, and gives up if the data generation moved or
 * the entry was dropped in between; it turns the entry ready under the same
 * lock, so a ready entry always matches the file.  A scan in progress keeps
 * its entry (a snapshot) alive by reference.
 *
 * Locking: c->mu is a leaf (knn_cache_drop runs as a node listener, under
 * v->mu or n->rw).  A filler pins its node and takes n->rw (read) per piece, then
 * c->mu inside it.
 */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "vault_int.h"
#include "vecvault/error.h"
#include "vecvault/knn_ioctl.h"
#include "vecvault/log.h"
#include "vecvault/vector.h"

#define FILL_PIECE (8u << 20)        /* bytes decrypted per hold of n->rw */

enum kstate { K_FILLING, K_READY };

struct kent {
	struct kent *prev, *next;        /* LRU list, most recently used first */
	uint64_t ino;
	uint64_t size;                   /* file size when the fill started */
	uint64_t gen;                    /* the node's data_gen then */
	uint8_t *base;                   /* PROT_READ, once ready */
	size_t maplen;
	uint32_t refs;                   /* the list's (while listed), the filler's, scans' */
	bool listed;
	enum kstate state;
};

struct knn_cache {
	pthread_mutex_t mu;
	pthread_cond_t cv;               /* a filler finished */
	struct kent *head, *tail;
	size_t bytes, cap;               /* listed entries' maplen; the bound */
	unsigned fillers;                /* background fills running */
	bool stopping;                   /* the vault is closing: fills give up */
	bool warned_lock;
};

struct fill_job {
	struct vv_vault *v;
	struct node *n;                  /* pinned */
	struct kent *e;
};

static size_t map_len(uint64_t size)
{
	size_t pg = (size_t)sysconf(_SC_PAGESIZE);

	return size ? ((size_t)size + pg - 1) / pg * pg : pg;
}

static void unlink_ent(struct knn_cache *c, struct kent *e)
{
	if (e->prev)
		e->prev->next = e->next;
	else
		c->head = e->next;
	if (e->next)
		e->next->prev = e->prev;
	else
		c->tail = e->prev;
	e->prev = e->next = NULL;
	e->listed = false;
	c->bytes -= e->maplen;
}

static void push_front(struct knn_cache *c, struct kent *e)
{
	e->prev = NULL;
	e->next = c->head;
	if (c->head)
		c->head->prev = e;
	else
		c->tail = e;
	c->head = e;
	e->listed = true;
	c->bytes += e->maplen;
}

/* Drop references: the list's if evict (taking e off the list), the
 * caller's own if own.  The memory goes with the last.  Under c->mu. */
static void ent_release(struct knn_cache *c, struct kent *e, bool evict, bool own)
{
	uint32_t drop = own;

	if (evict && e->listed) {
		unlink_ent(c, e);
		drop++;
	}
	e->refs -= drop;
	if (e->refs)
		return;
	if (e->base)
		munmap(e->base, e->maplen);
	free(e);
}

/* The file changed or is gone: its entry goes (node listener). */
static void knn_cache_drop(struct vv_vault *v, uint64_t ino)
{
	struct knn_cache *c = v->knn;

	if (!c)
		return;
	pthread_mutex_lock(&c->mu);
	for (struct kent *e = c->head; e; e = e->next)
		if (e->ino == ino) {
			/* a filler still running notices and gives up */
			ent_release(c, e, true, false);
			break;
		}
	pthread_mutex_unlock(&c->mu);
}

static void knn_data_changed(struct vv_vault *v, struct node *n)
{
	knn_cache_drop(v, n->ino);
}

static int knn_deleted(struct vv_vault *v, struct node *n)
{
	knn_cache_drop(v, n->ino);
	return 0;
}

int knn_cache_open(struct vv_vault *v, size_t cap)
{
	static const struct vault_listener knn_listener = {
		.data_changed = knn_data_changed, .deleted = knn_deleted,
	};
	struct knn_cache *c;

	if (!cap)
		return 0;
	if (!(c = calloc(1, sizeof(*c))))
		return VV_ENOMEM;
	pthread_mutex_init(&c->mu, NULL);
	pthread_cond_init(&c->cv, NULL);
	c->cap = cap;
	v->knn = c;
	vault_listen(v, &knn_listener);
	return 0;
}

void knn_cache_close(struct vv_vault *v)
{
	struct knn_cache *c = v->knn;

	if (!c)
		return;
	pthread_mutex_lock(&c->mu);
	c->stopping = true;
	while (c->fillers)
		pthread_cond_wait(&c->cv, &c->mu);
	/* no requests run any more: every entry holds only its list reference */
	while (c->head)
		ent_release(c, c->head, true, false);
	pthread_mutex_unlock(&c->mu);
	pthread_cond_destroy(&c->cv);
	pthread_mutex_destroy(&c->mu);
	free(c);
	v->knn = NULL;
}


/* Make room for len more bytes by evicting idle entries, oldest first.
 * Under c->mu. */
static bool make_room(struct knn_cache *c, size_t len)
{
	struct kent *e = c->tail;

	while (e && c->bytes + len > c->cap) {
		struct kent *prev = e->prev;
		if (e->refs == 1 && e->state == K_READY)
			ent_release(c, e, true, false);
		e = prev;
	}
	return c->bytes + len <= c->cap;
}

/* Still worth filling: the vault stays open, the entry listed, the data
 * unchanged.  Under n->rw (read). */
static bool fill_valid(struct knn_cache *c, struct node *n, struct kent *e)
{
	bool ok;

	pthread_mutex_lock(&c->mu);
	ok = !c->stopping && e->listed && n->data_gen == e->gen && n->a.size == e->size;
	pthread_mutex_unlock(&c->mu);
	return ok;
}

/* The background fill: decrypt node n into a new mapping, piece by piece. */
static void *filler(void *arg)
{
	struct fill_job *j = arg;
	struct vv_vault *v = j->v;
	struct knn_cache *c = v->knn;
	struct node *n = j->n;
	struct kent *e = j->e;
	uint8_t *p;
	int r = 0;

	free(j);
	p = mmap(NULL, e->maplen, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
		 -1, 0);
	if (p == MAP_FAILED) {
		p = NULL;
		r = VV_ENOMEM;
	} else {
		/* plaintext: huge pages if allowed, never in a core dump, not
		 * swapped where the memlock limit allows */
		madvise(p, e->maplen, MADV_HUGEPAGE);
		madvise(p, e->maplen, MADV_DONTDUMP);
		if (mlock2(p, e->maplen, MLOCK_ONFAULT) < 0 &&
		    !__atomic_exchange_n(&c->warned_lock, true, __ATOMIC_RELAXED)) {
			vv_log(VV_LOG_INFO, "knn: cannot lock the offload cache in memory (%s): with "
			       "swap enabled, decrypted segments may be written to it", strerror(errno));
		}
	}
	for (uint64_t off = 0; r == 0 && off < e->size; off += FILL_PIECE) {
		uint64_t end = e->size - off < FILL_PIECE ? e->size : off + FILL_PIECE;
		if ((r = data_rdlock(v, n)) < 0)
			break;
		r = fill_valid(c, n, e) ? data_read(v, n, p + off, off, end) : VV_ECANCELED;
		pthread_rwlock_unlock(&n->rw);
	}
	if (r == 0)
		r = data_rdlock(v, n);
	if (r == 0) {
		/* ready only if nothing changed: a writer needs n->rw to */
		if (fill_valid(c, n, e)) {
			mprotect(p, e->maplen, PROT_READ);
			pthread_mutex_lock(&c->mu);
			e->base = p;
			p = NULL;
			e->state = K_READY;
			pthread_mutex_unlock(&c->mu);
		} else {
			r = VV_ECANCELED;
		}
		pthread_rwlock_unlock(&n->rw);
	}
	if (r < 0 && r != VV_ECANCELED)
		vv_log(VV_LOG_WARN, "knn: cannot decrypt inode %llu for the query offload: %s",
		       (unsigned long long)e->ino, vv_strerror(r));
	if (p)
		munmap(p, e->maplen);
	pthread_mutex_lock(&v->mu);
	node_put(v, n);
	pthread_mutex_unlock(&v->mu);
	pthread_mutex_lock(&c->mu);
	/* failed: off the list, so the next request tries again */
	ent_release(c, e, e->state != K_READY, true);
	c->fillers--;
	pthread_cond_broadcast(&c->cv);
	pthread_mutex_unlock(&c->mu);
	return NULL;
}

/* Start filling an entry for node n (under n->rw read, loaded; c->mu
 * held), handing the filler the caller's pin on n if it starts. */
static int start_fill(struct vv_vault *v, struct knn_cache *c, struct node *n, bool *pin_taken)
{
	struct fill_job *j;
	struct kent *e;
	pthread_attr_t at;
	pthread_t th;
	int r = VV_ENOMEM;

	if (!(e = calloc(1, sizeof(*e))) || !(j = malloc(sizeof(*j)))) {
		free(e);
		return VV_ENOMEM;
	}
	e->ino = n->ino;
	e->size = n->a.size;
	e->gen = n->data_gen;
	e->maplen = map_len(e->size);
	e->state = K_FILLING;
	if (e->maplen > c->cap || !make_room(c, e->maplen)) {
		/* too big for the cache at all, or it is full of segments in use */
		r = e->maplen > c->cap ? VV_EFBIG : VV_EBUSY;
		vv_log(VV_LOG_DEBUG, "knn: inode %llu (%llu bytes): %s (offload cache %zu bytes)",
		       (unsigned long long)n->ino, (unsigned long long)n->a.size,
		       r == VV_EFBIG ? "larger than the cache" : "no idle entry to evict", c->cap);
		free(e);
		free(j);
		return r;
	}
	e->refs = 2;                     /* the list's and the filler's */
	push_front(c, e);
	j->v = v;
	j->n = n;
	j->e = e;
	c->fillers++;
	pthread_attr_init(&at);
	pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
	if (pthread_create(&th, &at, filler, j) == 0) {
		*pin_taken = true;
		r = VV_EAGAIN;
	} else {
		c->fillers--;
		ent_release(c, e, true, true);
		free(j);
	}
	pthread_attr_destroy(&at);
	return r;
}

/* Under c->mu: the ready entry for inode ino, referenced, in *out (0), or
 * VV_EAGAIN while it is being filled, or VV_ENOENT. */
static int find_entry(struct knn_cache *c, uint64_t ino, struct kent **out)
{
	struct kent *e;

	for (e = c->head; e; e = e->next)
		if (e->ino == ino)
			break;
	if (!e)
		return VV_ENOENT;
	if (e->state != K_READY)
		return VV_EAGAIN;
	e->refs++;
	if (e != c->head) {
		unlink_ent(c, e);
		push_front(c, e);
	}
	*out = e;
	return 0;
}

/* The ready entry for node n, referenced, in *out (0), VV_EAGAIN while it
 * is being filled, or VV_ENOENT. */
static int lookup_entry(struct vv_vault *v, struct node *n, struct kent **out)
{
	int r;

	*out = NULL;
	pthread_mutex_lock(&v->knn->mu);
	r = find_entry(v->knn, n->ino, out);
	pthread_mutex_unlock(&v->knn->mu);
	return r;
}

/* After lookup_entry found nothing: start filling an entry for node n
 * (under n->rw read, loaded) and return VV_EAGAIN, or return the entry
 * another request made ready meanwhile.  Lock order: v->mu and c->mu are
 * never held together here, since knn_cache_drop runs under v->mu. */
static int fill_entry(struct vv_vault *v, struct node *n, struct kent **out)
{
	struct knn_cache *c = v->knn;
	bool pin_taken = false;
	int r;

	*out = NULL;
	/* a filler needs the node pinned; pin before taking c->mu */
	pthread_mutex_lock(&v->mu);
	n->pins++;
	pthread_mutex_unlock(&v->mu);
	pthread_mutex_lock(&c->mu);
	r = find_entry(c, n->ino, out);
	if (r == VV_ENOENT)
		r = c->stopping ? VV_EAGAIN : start_fill(v, c, n, &pin_taken);
	pthread_mutex_unlock(&c->mu);
	if (!pin_taken) {
		pthread_mutex_lock(&v->mu);
		node_put(v, n);
		pthread_mutex_unlock(&v->mu);
	}
	return r;
}

static void put_entry(struct vv_vault *v, struct kent *e)
{
	pthread_mutex_lock(&v->knn->mu);
	ent_release(v->knn, e, false, true);
	pthread_mutex_unlock(&v->knn->mu);
}

/* A file the parser refuses (VV_ECORRUPT from a header that is no segment
 * of the format asked) is a bad request, not tampering: tampering shows up
 * as a failed decryption, which data_read reports as VV_ECORRUPT itself. */
static int not_segment(int r)
{
	return r == VV_ECORRUPT ? VV_EINVAL : r;
}

/* The request's fields, checked before anything is decrypted; then the
 * queries it announces (q: h->nq * h->dim floats, inside the ioctl's buffer
 * once the header passed): a NaN or infinite query has no nearest
 * neighbours, so it is refused rather than answered with nothing. */
static int check_request(const struct vv_knn_ioc_hdr *h, const float *q)
{
	size_t row;
	uint32_t col;

	if (h->magic != VV_KNN_MAGIC || h->version != VV_KNN_VERSION)
		return VV_EINVAL;
	if (h->metric != VV_METRIC_L2 && h->metric != VV_METRIC_IP && h->metric != VV_METRIC_COSINE)
		return VV_EINVAL;
	if (h->format != VV_SEG_FVECS && h->format != VV_SEG_BVECS && h->format != VV_SEG_IVECS &&
	    h->format != VV_SEG_NPY)
		return VV_EINVAL;
	if (!h->dim || !h->nq || !h->kk || h->kk > VV_VEC_MAX_K + 1024)
		return VV_EINVAL;
	if ((uint64_t)h->nq * h->dim > VV_KNN_MAX_FLOATS || (uint64_t)h->nq * h->kk > VV_KNN_MAX_CANDS)
		return VV_E2BIG;
	if (vv_vectors_nonfinite(q, h->nq, h->dim, &row, &col))
		return VV_EINVAL;
	return 0;
}

int vv_vault_knn(struct vv_vault *v, const struct vv_ctx *c, struct vv_file *fh,
		 struct vv_knn_ioc *io)
{
	struct node *n = fh->n;
	struct vv_knn_ioc_hdr h = io->h;
	struct vv_segment_info si;
	struct kent *e = NULL;
	float *q = NULL;
	const char *why = NULL;
	char name[32];
	long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
	int r;

	if (!v->knn)
		return VV_ENOTTY;
	if ((r = vault_audit_gate(v)) < 0)
		return r;
	/* Only a handle opened for reading by its holder: not write-only, not
	 * mode 3 (ioctl-only, no read right), not the kernel's exec open. */
	if (!file_user_readable(fh)) {
		r = VV_EBADF;
		goto out;
	}
	if ((r = check_request(&h, io->u.q)) < 0)
		goto out;
	if (!S_ISREG(n->a.mode)) {
		r = VV_EINVAL;
		goto out;
	}
	if (!(q = malloc((size_t)h.nq * h.dim * sizeof(float)))) {
		r = VV_ENOMEM;
		goto out;
	}
	memcpy(q, io->u.q, (size_t)h.nq * h.dim * sizeof(float));

	/* The segment as the daemon reads it (the caller's format, our parse):
	 * from the ready copy that is scanned, or, while there is none, from
	 * the file's head (so that nothing else is decrypted for a file that is
	 * no such segment); only a ready copy is parsed without decrypting. */
	snprintf(name, sizeof(name), "segment.%s", vv_seg_format_name((enum vv_seg_format)h.format));
	if ((r = data_rdlock(v, n)) < 0)
		goto out;
	r = lookup_entry(v, n, &e);
	if (r == VV_ENOENT || r == VV_EAGAIN) {
		uint8_t head[VV_VEC_PROBE_LEN];
		uint64_t hl = n->a.size < sizeof(head) ? n->a.size : sizeof(head);
		int s = data_read(v, n, head, 0, hl);
		if (s == 0 && (s = not_segment(vv_segment_probe(name, head, (size_t)hl, n->a.size,
								&si, &why))) == 0 && si.dim != h.dim)
			s = VV_EINVAL;
		if (s < 0)
			r = s;
		else if (r == VV_ENOENT)
			r = fill_entry(v, n, &e);
	}
	pthread_rwlock_unlock(&n->rw);
	if (r < 0)
		goto out;
	if ((r = not_segment(vv_segment_probe(name, e->base, e->size < VV_VEC_PROBE_LEN ? e->size :
					      VV_VEC_PROBE_LEN, e->size, &si, &why))) < 0)
		goto out;
	if (si.dim != h.dim) {
		r = VV_EINVAL;
		goto out;
	}
	if (ncpu < 1)
		ncpu = 1;
	r = vv_segment_knn(e->base, e->size, &si, (enum vv_metric)h.metric, q, h.nq, h.kk,
			   h.threads && h.threads < (unsigned long)ncpu ? h.threads : (unsigned)ncpu,
			   io->u.c);
	if (r < 0)
		goto out;
	memset(&io->h, 0, sizeof(io->h));
	io->h.magic = VV_KNN_MAGIC_REPLY;
	io->h.version = VV_KNN_VERSION;
	io->h.metric = h.metric;
	io->h.format = h.format;
	io->h.dim = h.dim;
	io->h.nq = h.nq;
	io->h.kk = h.kk;
	io->h.rows = si.count;
	__atomic_fetch_add(&fh->rbytes, e->size, __ATOMIC_RELAXED);
	__atomic_fetch_add(&fh->rcount, 1, __ATOMIC_RELAXED);
out:
	if (e)
		put_entry(v, e);
	free(q);
	/* not audited: refusals that read nothing and leave the tool to read
	 * the file itself, as audited opens and reads */
	if (r != VV_ENOTTY && r != VV_EFBIG && r != VV_EBUSY && r != VV_EAGAIN) {
		pthread_mutex_lock(&v->mu);
		char detail[160];
		if (r == VV_EINVAL && why)
			snprintf(detail, sizeof(detail), "not a %s segment: %s",
				 vv_seg_format_name((enum vv_seg_format)h.format), why);
		vault_audit_file_why(v, c, "scan", fh, r, r == VV_EINVAL && why ? detail : NULL);
		pthread_mutex_unlock(&v->mu);
	}
	return r;
}
