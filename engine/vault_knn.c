/*
 * vault_knn.c - the daemon's side of the query offload (knn_ioctl.h).
 *
 * `vecvault query` opens a segment through the mount like any reader, then
 * asks, by an ioctl on that descriptor, for the best candidates of its
 * queries.  Here the segment is decrypted once into long-lived anonymous
 * memory (transparent huge pages where the kernel allows, never in core
 * dumps, locked against swap within a fixed budget) and scanned with the
 * scan the tool runs (vector_scan.c, through vv_segment_knn).  The header
 * is parsed as the computed xattrs parse it (vault_data_segment_probe), then
 * again from the ready copy that is scanned (vv_segment_view_init).
 *
 * Who pays (docs/security.md "Offload limits"): any user who can read a
 * file can ask, so nothing here may let one user take the daemon from
 * others.  Scans therefore never run on the FUSE worker threads: the
 * daemon queues them (vv_vault_knn_submit) on a small pool of low-priority
 * threads (a directory request's per-name work, what the OPENs and READs
 * it replaces would cost, runs on the FUSE worker before it is queued:
 * vault_knn_dir.c) that take jobs from a queue fair between uids (fairq_int.h), a
 * few per uid at most; one request may cost at most VV_KNN_WORK_MAX
 * (vv_knn_work_check, knn_ioctl.h); each uid's entries count against
 * its share of the cache, and against a lock budget before any mlock.
 *
 * Decrypting a large segment takes a while, so the first request for a
 * segment queues a fill job and is answered EAGAIN: the tool scans that
 * segment itself, through the page cache, and later requests find it
 * ready.  A fill runs in 8 MiB pieces, each a turn of the fair queue, and
 * skips the file's holes (the fresh mapping reads as zeros already), so a
 * sparse segment costs neither decryption nor memory for its holes.
 *
 * Cache: one entry per inode, hashed by inode (a write's drop is O(1)),
 * least recently used first out, bounded by the vault option
 * knn_cache_bytes.  An entry is dropped whenever its file's data changes
 * (write, truncate) or the file is deleted, by the writer, which holds the
 * node's data lock.  A fill reads the file in pieces under that lock held
 * for reading, and gives up if the data generation moved or the entry was
 * dropped in between; it turns the entry ready under the same lock, so a
 * ready entry always matches the file.  A scan in progress keeps its entry
 * (a snapshot) alive by reference.
 *
 * Locking: c->mu (cache, queue, pool) is a leaf (vault_knn_cache_drop runs as a
 * node listener, under v->mu or n->rw) but for the small entries' arena's
 * own mutex (knn_slab.h), taken under it or alone.  A fill job pins its node and takes n->rw (read)
 * per piece, then c->mu inside it.  Done callbacks run with no lock held.
 */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "fairq_int.h"
#include "knn_int.h"
#include "knn_slab.h"
#include "vault_int.h"
#include "vecvault/error.h"
#include "vecvault/knn_ioctl.h"
#include "vecvault/log.h"
#include "vecvault/vector.h"

#define FILL_PIECE (8u << 20)        /* bytes decrypted per hold of n->rw, per turn */
#define KNN_SCAN_THREADS 1           /* threads per scan: the pool's size is the CPU bound */
#define KNN_SCANS_PER_UID 4          /* a uid's scans queued or running; more: EBUSY */
#define KNN_SLOTS_PER_UID 8          /* scans and fills together */
#define KNN_SHARE_DIV 4              /* an unprivileged uid holds <= 1/4 of the cache */
#define KNN_LOCK_UID (8u << 20)      /* bytes locked for one unprivileged uid (the
                                        kernel's default RLIMIT_MEMLOCK) */
#define KNN_POOL_NICE 10             /* pool threads yield to the FUSE workers */
#define KNN_HASH_MIN_BITS 6
#define KNN_SMALL_MAX KNN_SLAB_MAX  /* entries up to this size: the arena, or the heap */
#define KNN_SMALL_ALIGN KNN_SLAB_ALIGN
#define KNN_INLINE_MAX (1u << 20)    /* a directory request decrypts files up to this
					size in its own turn (knn_int.h, knn_budget) */

enum kstate { K_FILLING, K_READY };

struct kent {
	struct kent *prev, *next;        /* LRU list, most recently used first */
	struct kent *hnext;              /* hash chain (while listed) */
	uint64_t ino;
	uint32_t uid;                    /* whose share it is charged to */
	uint64_t size;                   /* file size when the fill started */
	uint64_t gen;                    /* the node's data_gen then */
	uint8_t *base;                   /* PROT_READ, once ready */
	size_t maplen;
	uint32_t refs;                   /* the list's (while listed), the filler's, scans' */
	bool listed;
	bool locked;                     /* maplen counted in the lock budget */
	bool heap;                       /* a small entry: base is a slot of c->slab or
					    malloc'd (vault_knn_slab_owns tells), not mapped */
	enum kstate state;
	/* its header parsed as view_fmt asked (0: not yet), once ready, under
	 * c->mu: a directory request's names skip the parse (vault_knn_view) */
	enum vv_seg_format view_fmt;
	struct vv_segment_view view;
};

/* What one uid holds in the cache (freed when nothing). */
struct kuse {
	struct kuse *next;
	uint32_t uid;
	size_t bytes, locked;
};

enum jtype { J_SCAN, J_FILL };

/* One job of the pool.  qi first: the queue hands back its address. */
struct kjob {
	struct fairq_item qi;
	enum jtype type;
	struct kjob *sprev, *snext;      /* scans: queued, not yet running */
	/* J_SCAN: vv_vault_knn_submit's arguments, or
	 * vv_vault_knn_dir_submit's (dh set, fh NULL) */
	const struct vv_ctx *ctx;
	struct vv_file *fh;
	struct vv_dir *dh;
	void *io;
	vv_knn_done_fn done;
	void *arg;
	struct knn_dir_req *dr;          /* dh: prepared, holding pins and references */
	bool stop;                       /* dh, preparing: canceled or drained (atomic) */
	/* J_FILL */
	struct node *n;                  /* pinned */
	struct kent *e;                  /* referenced */
	uint8_t *p;                      /* the mapping being filled */
	uint64_t off;                    /* bytes done */
};

struct knn_cache {
	pthread_mutex_t mu;
	pthread_cond_t cv;               /* a job finished */
	pthread_cond_t work;             /* a job was queued, hold lifted, or stop */
	struct vv_vault *v;
	struct kent *head, *tail;
	struct kent **htab;              /* 1 << hbits chains by inode */
	unsigned hbits;
	size_t nent;                     /* listed entries */
	size_t bytes, cap;               /* listed entries' maplen; the bound */
	size_t locked, lock_cap;         /* bytes under mlock; the budget */
	uint32_t owner;                  /* the daemon's uid: privileged like root */
	struct kuse *users;
	struct knn_slab *slab;           /* small entries' arena (NULL: all calloc'd) */
	struct fairq q;
	struct kjob *scans;              /* queued scans, for cancel and drain */
	struct kjob *preps;              /* directory requests being prepared (snext) */
	unsigned running_scans;
	unsigned fillers;                /* fill jobs queued or running */
	pthread_t *threads;
	unsigned nthreads;
	bool stopping;                   /* the vault is closing: jobs give up */
	bool scans_closed;               /* drained: no new scans */
	bool hold;                       /* tests: the pool takes no job */
	uint64_t drop_probes;            /* entries compared by the last drop */
	bool warned_lock;
};

/* A small entry is a slot of the arena (knn_slab.h: 2 MiB chunks of one
 * region, huge pages, not dumped) or, past the arena's bound, one calloc'd
 * buffer; never a mapping of its own: 10,000 segments of 100 rows would
 * otherwise take 10,000 of the process's vm.max_map_count (65530) and at
 * least a page each (a huge page each where the kernel backs the madvise).
 * The calloc fallback is below glibc's mmap threshold, so malloc does not
 * map them one by one either. */
static bool small_entry(uint64_t size)
{
	return size <= KNN_SMALL_MAX;
}

/* What an entry of size bytes is charged (and holds). */
static size_t map_len(uint64_t size)
{
	size_t pg = (size_t)sysconf(_SC_PAGESIZE);

	if (small_entry(size))
		return size ? ((size_t)size + KNN_SMALL_ALIGN - 1) / KNN_SMALL_ALIGN * KNN_SMALL_ALIGN :
			      KNN_SMALL_ALIGN;
	return ((size_t)size + pg - 1) / pg * pg;
}

/* ---- per-uid charges ------------------------------------------------------ */

static bool privileged(const struct knn_cache *c, uint32_t uid)
{
	return uid == 0 || uid == c->owner;
}

static size_t share_of(const struct knn_cache *c, uint32_t uid)
{
	return privileged(c, uid) ? c->cap : c->cap / KNN_SHARE_DIV;
}

static struct kuse *use_find(struct knn_cache *c, uint32_t uid, bool make)
{
	struct kuse *u;

	for (u = c->users; u; u = u->next)
		if (u->uid == uid)
			return u;
	if (make && (u = calloc(1, sizeof(*u)))) {
		u->uid = uid;
		u->next = c->users;
		c->users = u;
	}
	return u;
}

static void use_maybe_free(struct knn_cache *c, struct kuse *u)
{
	struct kuse **pp = &c->users;

	if (u->bytes || u->locked)
		return;
	while (*pp != u)
		pp = &(*pp)->next;
	*pp = u->next;
	free(u);
}

/* ---- the hash by inode and the LRU list ------------------------------------ */

static size_t hslot(const struct knn_cache *c, uint64_t ino)
{
	return (size_t)((ino * 0x9e3779b97f4a7c15ull) >> (64 - c->hbits));
}

/* Double the table when it gets as many entries as chains (allocation
 * failure leaves longer chains, never an error). */
static void hash_grow(struct knn_cache *c)
{
	unsigned bits = c->hbits + 1;
	struct kent **nt;
	size_t old = (size_t)1 << c->hbits;

	if (c->nent < old || !(nt = calloc((size_t)1 << bits, sizeof(*nt))))
		return;
	c->hbits = bits;
	for (size_t i = 0; i < old; i++)
		while (c->htab[i]) {
			struct kent *e = c->htab[i];
			size_t s = hslot(c, e->ino);
			c->htab[i] = e->hnext;
			e->hnext = nt[s];
			nt[s] = e;
		}
	free(c->htab);
	c->htab = nt;
}

/* The listed entry of ino or NULL; counts the entries compared. */
static struct kent *hash_find(struct knn_cache *c, uint64_t ino, uint64_t *probes)
{
	struct kent *e = c->htab[hslot(c, ino)];

	for (; e; e = e->hnext) {
		(*probes)++;
		if (e->ino == ino)
			break;
	}
	return e;
}

static void lru_unlink(struct knn_cache *c, struct kent *e)
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
}

static void lru_push_front(struct knn_cache *c, struct kent *e)
{
	e->prev = NULL;
	e->next = c->head;
	if (c->head)
		c->head->prev = e;
	else
		c->tail = e;
	c->head = e;
}

/* Put e in the hash and the list, charging its bytes to its uid (u). */
static void ent_list(struct knn_cache *c, struct kent *e, struct kuse *u)
{
	size_t s = hslot(c, e->ino);

	e->hnext = c->htab[s];
	c->htab[s] = e;
	lru_push_front(c, e);
	e->listed = true;
	c->nent++;
	c->bytes += e->maplen;
	u->bytes += e->maplen;
	hash_grow(c);
}

static void ent_unlist(struct knn_cache *c, struct kent *e)
{
	struct kent **pp = &c->htab[hslot(c, e->ino)];
	struct kuse *u = use_find(c, e->uid, false);

	while (*pp != e)
		pp = &(*pp)->hnext;
	*pp = e->hnext;
	e->hnext = NULL;
	lru_unlink(c, e);
	e->listed = false;
	c->nent--;
	c->bytes -= e->maplen;
	if (u) {
		u->bytes -= e->maplen;
		use_maybe_free(c, u);
	}
}

/* Free what fill_map made for e (its base, or a fill's buffer not yet
 * its base). */
static void fill_unmap(struct knn_cache *c, struct kent *e, uint8_t *p)
{
	if (!e->heap) {
		munmap(p, e->maplen);
	} else if (vault_knn_slab_owns(c->slab, p)) {
		vault_knn_slab_put(c->slab, p, e->maplen);
	} else {
		vault_knn_slab_outside(c->slab, e->maplen, false);
		free(p);
	}
}

/* Frees left the arena over its bound (knn_slab.h): move every idle entry
 * of its sparse chunks to the heap.  All of them, not just until it is
 * under: then every chunk left is at least half live, and the next pass
 * waits for another KNN_SLAB_SLACK of excess (a few MiB of frees), not
 * for the next release.  An entry in use (a scan's reference, a fill)
 * stays where it is; the arena excuses what such entries pin until the
 * excess grows by the slack again, so a stuck pass is not repeated at
 * every release either.  Not while the cache closes: everything goes
 * anyway.  Under c->mu: an entry's base changes only while the list's is
 * its only reference, and every reader of base holds one. */
static void slab_compact(struct knn_cache *c)
{
	struct kent *e;
	uint8_t *q;

	if (c->stopping || !vault_knn_slab_over(c->slab))
		return;
	for (e = c->tail; e; e = e->prev) {
		if (e->refs != 1 || e->state != K_READY || !vault_knn_slab_sparse(c->slab, e->base))
			continue;
		if (!(q = malloc(e->maplen)))
			break;
		memcpy(q, e->base, e->maplen);
		vault_knn_slab_put(c->slab, e->base, e->maplen);
		vault_knn_slab_outside(c->slab, e->maplen, true);
		e->base = q;
		e->view_fmt = 0;             /* its parsed view pointed into the slot */
	}
	vault_knn_slab_settle(c->slab);
}

/* Drop references: the list's if evict (taking e off the list), the
 * caller's own if own.  The memory, and its lock charge, go with the last.
 * Under c->mu. */
static void ent_release(struct knn_cache *c, struct kent *e, bool evict, bool own)
{
	uint32_t drop = own;

	if (evict && e->listed) {
		ent_unlist(c, e);
		drop++;
	}
	e->refs -= drop;
	if (e->refs)
		return;
	if (e->locked) {
		struct kuse *u = use_find(c, e->uid, false);
		c->locked -= e->maplen;
		if (u) {
			u->locked -= e->maplen;
			use_maybe_free(c, u);
		}
	}
	if (e->base)
		fill_unmap(c, e, e->base);
	if (e->heap)
		slab_compact(c);
	free(e);
}

/* ---- the pool ---------------------------------------------------------------- */

static void scan_link(struct knn_cache *c, struct kjob *j)
{
	j->sprev = NULL;
	j->snext = c->scans;
	if (c->scans)
		c->scans->sprev = j;
	c->scans = j;
}

static void scan_unlink(struct knn_cache *c, struct kjob *j)
{
	if (j->sprev)
		j->sprev->snext = j->snext;
	else
		c->scans = j->snext;
	if (j->snext)
		j->snext->sprev = j->sprev;
	j->sprev = j->snext = NULL;
}

static void fill_finish(struct vv_vault *v, struct knn_cache *c, struct kjob *j, int r);
static int fill_step(struct vv_vault *v, struct knn_cache *c, struct kjob *j);

/* A pool thread: jobs in fair order until the vault closes.  Scans reply
 * through their callback; fills run one piece per turn and queue again. */
static void *pool_main(void *arg)
{
	struct knn_cache *c = arg;
	struct vv_vault *v = c->v;

	/* below the FUSE workers: a busy pool must not slow ordinary requests */
	setpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid), KNN_POOL_NICE);
	pthread_mutex_lock(&c->mu);
	while (!c->stopping) {
		struct fairq_item *it = c->hold ? NULL : fairq_pop(&c->q);
		struct kjob *j = (struct kjob *)it;
		int r;

		if (!j) {
			pthread_cond_wait(&c->work, &c->mu);
			continue;
		}
		if (j->type == J_SCAN) {
			scan_unlink(c, j);
			c->running_scans++;
			pthread_mutex_unlock(&c->mu);
			/* a directory request was prepared by its submitter:
			 * here only its scan, records and releases */
			r = j->dh ? vault_knn_dir_scan(v, j->ctx, j->dr, j->io) :
				    vv_vault_knn(v, j->ctx, j->fh, j->io);
			j->dr = NULL;
			j->done(j->arg, r);
			pthread_mutex_lock(&c->mu);
			fairq_done(&c->q, &j->qi);
			c->running_scans--;
			pthread_cond_broadcast(&c->cv);
			free(j);
			continue;
		}
		pthread_mutex_unlock(&c->mu);
		r = fill_step(v, c, j);
		pthread_mutex_lock(&c->mu);
		if (r == 1 && !c->stopping) {
			fairq_requeue(&c->q, &j->qi);    /* next piece: back in line */
			continue;
		}
		pthread_mutex_unlock(&c->mu);
		fill_finish(v, c, j, r == 1 ? VV_ECANCELED : r);
		pthread_mutex_lock(&c->mu);
	}
	pthread_mutex_unlock(&c->mu);
	return NULL;
}

/* Node listener: a file's entry goes when its bytes change or it is deleted. */static void knn_data_changed(struct vv_vault *v, struct node *n)
{
	vault_knn_cache_drop(v, n->ino);
}

static int knn_deleted(struct vv_vault *v, struct node *n)
{
	vault_knn_cache_drop(v, n->ino);
	return 0;
}

static void knn_revoked(struct vv_vault *v, struct node *n)
{
	vault_knn_cache_drop(v, n->ino);
}

/* A deleted snapshot's files: every entry in the range goes at once (the
 * numbers are never reused, so they would otherwise only age out). */
static void knn_gone(struct vv_vault *v, uint64_t lo, uint64_t hi)
{
	struct knn_cache *c = v->knn;
	struct kent *e, *next;

	if (!c)
		return;
	pthread_mutex_lock(&c->mu);
	for (e = c->head; e; e = next) {
		next = e->next;
		if (e->ino >= lo && e->ino < hi && e->listed)
			ent_release(c, e, true, false);
	}
	pthread_mutex_unlock(&c->mu);
}

int vault_knn_cache_open(struct vv_vault *v, size_t cap)
{
	static const struct vault_listener knn_listener = {
		.data_changed = knn_data_changed, .deleted = knn_deleted,
		.revoked = knn_revoked, .gone = knn_gone,
	};
	struct knn_cache *c;
	long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
	long pages = sysconf(_SC_PHYS_PAGES), pg = sysconf(_SC_PAGESIZE);
	size_t phys = pages > 0 && pg > 0 ? (size_t)pages * (size_t)pg : cap;
	int r = VV_ENOMEM;

	if (!cap)
		return 0;
	if (!(c = calloc(1, sizeof(*c))))
		return VV_ENOMEM;
	pthread_mutex_init(&c->mu, NULL);
	pthread_cond_init(&c->cv, NULL);
	pthread_cond_init(&c->work, NULL);
	c->v = v;
	c->cap = cap;
	/* locked memory: a fixed budget, however large the cache */
	c->lock_cap = cap < phys / 8 ? cap : phys / 8;
	c->owner = (uint32_t)geteuid();
	/* the small entries' arena: room for its bound over a cache full of
	 * them (reserved, not committed); without it they are calloc'd */
	if (cap <= (SIZE_MAX - KNN_SLAB_SLACK) / 4)
		c->slab = vault_knn_slab_new(2 * cap + KNN_SLAB_SLACK + KNN_SLAB_CHUNK);
	if (!c->slab)
		vv_log(VV_LOG_INFO, "knn: cannot reserve the arena for small cache entries (%zu "
		       "bytes): they are calloc'd, on 4 KiB pages", 2 * cap + KNN_SLAB_SLACK);
	c->hbits = KNN_HASH_MIN_BITS;
	fairq_init(&c->q, KNN_SLOTS_PER_UID);
	/* one scan thread on up to 3 CPUs, two from 4: the offload never
	 * takes more than half the machine, whoever asks */
	c->nthreads = ncpu >= 4 ? 2 : 1;
	if (!(c->htab = calloc((size_t)1 << c->hbits, sizeof(*c->htab))) ||
	    !(c->threads = calloc(c->nthreads, sizeof(*c->threads))))
		goto fail;
	v->knn = c;
	for (unsigned i = 0; i < c->nthreads; i++)
		if (pthread_create(&c->threads[i], NULL, pool_main, c) != 0) {
			c->nthreads = i;
			vault_knn_cache_close(v);
			return VV_ENOMEM;
		}
	vault_listen(v, &knn_listener);
	return 0;
fail:
	vault_knn_slab_free(c->slab);
	free(c->htab);
	free(c->threads);
	pthread_cond_destroy(&c->work);
	pthread_cond_destroy(&c->cv);
	pthread_mutex_destroy(&c->mu);
	free(c);
	return r;
}

void vv_vault_knn_drain(struct vv_vault *v)
{
	struct knn_cache *c = v ? v->knn : NULL;
	struct kjob *list = NULL, *j;

	if (!c)
		return;
	pthread_mutex_lock(&c->mu);
	c->scans_closed = true;
	for (j = c->preps; j; j = j->snext)
		__atomic_store_n(&j->stop, true, __ATOMIC_RELAXED);
	while ((j = c->scans)) {
		scan_unlink(c, j);
		fairq_remove(&c->q, &j->qi);
		j->snext = list;
		list = j;
	}
	pthread_mutex_unlock(&c->mu);
	/* every queued request gets its one reply, outside the lock */
	while ((j = list)) {
		list = j->snext;
		vault_knn_dir_discard(v, j->dr);
		j->done(j->arg, VV_ECANCELED);
		free(j);
	}
	/* and for the running ones, and the ones being prepared (they find
	 * the queue closed and let go of what they hold) */
	pthread_mutex_lock(&c->mu);
	while (c->running_scans || c->preps)
		pthread_cond_wait(&c->cv, &c->mu);
	pthread_mutex_unlock(&c->mu);
}

void vault_knn_cache_close(struct vv_vault *v)
{
	struct knn_cache *c = v->knn;
	struct fairq_item *it;

	if (!c)
		return;
	vv_vault_knn_drain(v);
	pthread_mutex_lock(&c->mu);
	c->stopping = true;
	pthread_cond_broadcast(&c->work);
	pthread_mutex_unlock(&c->mu);
	for (unsigned i = 0; i < c->nthreads; i++)
		pthread_join(c->threads[i], NULL);
	/* no thread runs jobs any more: end the fills still queued */
	pthread_mutex_lock(&c->mu);
	while ((it = fairq_pop(&c->q))) {
		pthread_mutex_unlock(&c->mu);
		fill_finish(v, c, (struct kjob *)it, VV_ECANCELED);
		pthread_mutex_lock(&c->mu);
	}
	/* no requests run any more: every entry holds only its list reference */
	while (c->head)
		ent_release(c, c->head, true, false);
	pthread_mutex_unlock(&c->mu);
	vault_knn_slab_free(c->slab);              /* no slot is live: no entry is left */
	fairq_release(&c->q);
	free(c->htab);
	free(c->threads);
	pthread_cond_destroy(&c->work);
	pthread_cond_destroy(&c->cv);
	pthread_mutex_destroy(&c->mu);
	free(c);
	v->knn = NULL;
}

/* Scans uid holds: queued or running (fairq's slots, fills too) and
 * directory requests being prepared.  Under c->mu. */
static unsigned scan_slots(const struct knn_cache *c, uint32_t uid)
{
	unsigned k = fairq_slots(&c->q, uid);

	for (const struct kjob *j = c->preps; j; j = j->snext)
		k += j->ctx->id.uid == uid;
	return k;
}

static void prep_unlink(struct knn_cache *c, struct kjob *j)
{
	struct kjob **pp = &c->preps;

	while (*pp != j)
		pp = &(*pp)->snext;
	*pp = j->snext;
	j->snext = NULL;
}

/* Queue one request, on a file (fh) or a directory (dh): the same queue,
 * slots, cancel and drain for both kinds.  The uid's slots are decided
 * first, so a flood costs only its refusals; a directory request is then
 * prepared here, on the caller's thread (vault_knn_dir_prepare: the work of each
 * name), counted as one of its uid's slots meanwhile, and queued for its
 * scan.  Nothing is held when it is refused: a failed queueing after the
 * preparation lets go of its pins and references. */
static int submit_scan(struct vv_vault *v, const struct vv_ctx *ctx, struct vv_file *fh,
		       struct vv_dir *dh, void *io, vv_knn_done_fn done, void *arg)
{
	struct knn_cache *c = v->knn;
	struct kjob *j;
	int r;

	if (!(j = calloc(1, sizeof(*j))))
		return VV_ENOMEM;
	j->type = J_SCAN;
	j->ctx = ctx;
	j->fh = fh;
	j->dh = dh;
	j->io = io;
	j->done = done;
	j->arg = arg;
	pthread_mutex_lock(&c->mu);
	if (c->scans_closed)
		r = VV_ECANCELED;
	else if (scan_slots(c, ctx->id.uid) >= KNN_SCANS_PER_UID)
		r = VV_EBUSY;                /* the caller scans itself */
	else if (dh) {
		j->snext = c->preps;         /* a slot while it is prepared */
		c->preps = j;
		r = 0;
	} else {
		r = fairq_push(&c->q, &j->qi, ctx->id.uid);
	}
	if (r == 0 && !dh) {
		scan_link(c, j);
		pthread_cond_signal(&c->work);
	}
	pthread_mutex_unlock(&c->mu);
	if (r == 0 && dh) {
		r = vault_knn_dir_prepare(v, ctx, dh, io, &j->stop, &j->dr);
		pthread_mutex_lock(&c->mu);
		prep_unlink(c, j);
		if (r == 0 && (c->scans_closed || __atomic_load_n(&j->stop, __ATOMIC_RELAXED)))
			r = VV_ECANCELED;    /* drained, or canceled while prepared */
		if (r == 0)
			r = fairq_push(&c->q, &j->qi, ctx->id.uid);  /* EBUSY: fills took the slots */
		if (r == 0) {
			scan_link(c, j);
			pthread_cond_signal(&c->work);
		}
		pthread_cond_broadcast(&c->cv);   /* a drain waits for the preparers */
		pthread_mutex_unlock(&c->mu);
	}
	if (r < 0) {
		vault_knn_dir_discard(v, j->dr);
		free(j);
	}
	return r;
}

/* A bulk read (vault_bulk.c) holds one of its uid's slots while it runs,
 * listed with the directory requests being prepared: the same bound per
 * uid (EBUSY beyond), and a drain waits for it. */
int vault_knn_hold(struct vv_vault *v, const struct vv_ctx *ctx, struct kjob **out)
{
	struct knn_cache *c = v->knn;
	struct kjob *j;
	int r = 0;

	*out = NULL;
	if (!c)
		return VV_ENOTTY;
	if (!(j = calloc(1, sizeof(*j))))
		return VV_ENOMEM;
	j->type = J_SCAN;
	j->ctx = ctx;
	pthread_mutex_lock(&c->mu);
	if (c->scans_closed)
		r = VV_ECANCELED;
	else if (scan_slots(c, ctx->id.uid) >= KNN_SCANS_PER_UID)
		r = VV_EBUSY;
	if (r == 0) {
		j->snext = c->preps;
		c->preps = j;
	}
	pthread_mutex_unlock(&c->mu);
	if (r < 0)
		free(j);
	else
		*out = j;
	return r;
}

void vault_knn_unhold(struct vv_vault *v, struct kjob *j)
{
	struct knn_cache *c = v->knn;

	if (!j)
		return;
	pthread_mutex_lock(&c->mu);
	prep_unlink(c, j);
	pthread_cond_broadcast(&c->cv);   /* a drain waits for the holders */
	pthread_mutex_unlock(&c->mu);
	free(j);
}

int vv_vault_knn_submit(struct vv_vault *v, const struct vv_ctx *ctx, struct vv_file *fh,
			struct vv_knn_ioc *io, vv_knn_done_fn done, void *arg)
{
	if (!v->knn || !fh->n)
		return VV_ENOTTY;                   /* off, or a virtual file (.trashinfo) */
	return submit_scan(v, ctx, fh, NULL, io, done, arg);
}

int vv_vault_knn_dir_submit(struct vv_vault *v, const struct vv_ctx *ctx, struct vv_dir *dh,
			    struct vv_knn_dir_ioc *io, vv_knn_done_fn done, void *arg)
{
	if (!v->knn || !dh->n)
		return VV_ENOTTY;                   /* off, or a virtual directory (.trash) */
	return submit_scan(v, ctx, NULL, dh, io, done, arg);
}

int vv_vault_knn_cancel(struct vv_vault *v, void *arg)
{
	struct knn_cache *c = v->knn;
	struct kjob *j;

	if (!c)
		return VV_ENOENT;
	pthread_mutex_lock(&c->mu);
	for (j = c->scans; j && j->arg != arg; j = j->snext)
		;
	if (j) {
		scan_unlink(c, j);
		fairq_remove(&c->q, &j->qi);
	} else {
		/* still being prepared: its submitter refuses it (VV_ECANCELED)
		 * and replies itself, so done is never called either */
		struct kjob *p;
		for (p = c->preps; p && p->arg != arg; p = p->snext)
			;
		if (p)
			__atomic_store_n(&p->stop, true, __ATOMIC_RELAXED);
	}
	pthread_mutex_unlock(&c->mu);
	if (j)
		vault_knn_dir_discard(v, j->dr);
	free(j);
	return j ? 0 : VV_ENOENT;
}

void vault_knn_pool_hold(struct vv_vault *v, bool hold)
{
	struct knn_cache *c = v->knn;

	if (!c)
		return;
	pthread_mutex_lock(&c->mu);
	c->hold = hold;
	pthread_cond_broadcast(&c->work);
	pthread_mutex_unlock(&c->mu);
}

void vault_knn_cache_stats(struct vv_vault *v, struct knn_stats *st)
{
	struct knn_cache *c = v->knn;
	struct knn_slab_stats ss;

	memset(st, 0, sizeof(*st));
	if (!c)
		return;
	pthread_mutex_lock(&c->mu);
	st->entries = c->nent;
	st->bytes = c->bytes;
	st->locked = c->locked;
	st->lock_cap = c->lock_cap;
	st->chains = (size_t)1 << c->hbits;
	st->drop_probes = c->drop_probes;
	st->queued = c->q.queued;
	st->threads = c->nthreads;
	st->fillers = c->fillers;
	for (const struct kent *e = c->head; e; e = e->next)
		st->held += e->state == K_READY ? e->refs - 1 : 0;   /* all but the list's */
	pthread_mutex_unlock(&c->mu);
	vault_knn_slab_stats(c->slab, &ss);
	st->slab_held = ss.held;
	st->slab_live = ss.live;
	st->slab_outside = ss.outside;
}

void vault_knn_cache_drop(struct vv_vault *v, uint64_t ino)
{
	struct knn_cache *c = v->knn;
	struct kent *e;
	uint64_t probes = 0;

	if (!c)
		return;
	pthread_mutex_lock(&c->mu);
	/* a filler still running notices and gives up */
	if ((e = hash_find(c, ino, &probes)))
		ent_release(c, e, true, false);
	c->drop_probes = probes;
	pthread_mutex_unlock(&c->mu);
}

/* ---- fills ------------------------------------------------------------------- */

/* Make room for len more bytes charged to uid by evicting idle entries,
 * oldest first: uid's own while it is over its share, then anyone's while
 * the cache is full.  0, VV_EFBIG (larger than uid's share: never fits) or
 * VV_EBUSY (full of entries in use).  Under c->mu. */
static int make_room(struct knn_cache *c, uint32_t uid, size_t len)
{
	struct kuse *u = use_find(c, uid, false);
	size_t share = share_of(c, uid);
	struct kent *e, *prev;

	if (len > share)
		return VV_EFBIG;
	for (e = c->tail; e && u && u->bytes + len > share; e = prev) {
		prev = e->prev;
		if (e->uid == uid && e->refs == 1 && e->state == K_READY) {
			bool last = u->bytes == e->maplen;
			ent_release(c, e, true, false);
			if (last)
				u = NULL;            /* freed with its last byte */
		}
	}
	if (u && u->bytes + len > share)
		return VV_EBUSY;
	for (e = c->tail; e && c->bytes + len > c->cap; e = prev) {
		prev = e->prev;
		if (e->refs == 1 && e->state == K_READY)
			ent_release(c, e, true, false);
	}
	return c->bytes + len <= c->cap ? 0 : VV_EBUSY;
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

/* mlock e's mapping p if lock_grant granted it; if the kernel refuses,
 * give the grant back.  c->mu not held. */
static void lock_apply(struct knn_cache *c, struct kent *e, uint8_t *p)
{
	int err;
	struct kuse *u;

	if (!e->locked || mlock2(p, e->maplen, MLOCK_ONFAULT) == 0)
		return;
	err = errno;
	pthread_mutex_lock(&c->mu);
	if ((u = use_find(c, e->uid, false)))
		u->locked -= e->maplen;
	c->locked -= e->maplen;
	e->locked = false;
	if (u)
		use_maybe_free(c, u);
	if (!c->warned_lock) {
		c->warned_lock = true;
		vv_log(VV_LOG_INFO, "knn: cannot lock the offload cache in memory (%s): with "
		       "swap enabled, decrypted segments may be written to it", strerror(err));
	}
	pthread_mutex_unlock(&c->mu);
}

/* The fill's mapping: huge pages if allowed, never in a core dump, locked
 * against swap if the entry was granted part of the lock budget. */
static int fill_map(struct knn_cache *c, struct kent *e, uint8_t **out)
{
	uint8_t *p;

	if (e->heap) {
		/* zeroed: the holes read as zeros, as a fresh mapping's; the
		 * arena's slot, or calloc past its bound */
		if ((*out = vault_knn_slab_get(c->slab, e->maplen)))
			return 0;
		if (!(*out = calloc(1, e->maplen)))
			return VV_ENOMEM;
		vault_knn_slab_outside(c->slab, e->maplen, true);
		return 0;
	}
	p = mmap(NULL, e->maplen, PROT_READ | PROT_WRITE,
			  MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);

	if (p == MAP_FAILED)
		return VV_ENOMEM;
	madvise(p, e->maplen, MADV_HUGEPAGE);
	madvise(p, e->maplen, MADV_DONTDUMP);
	lock_apply(c, e, p);
	*out = p;
	return 0;
}

/* Decrypt n's bytes [pos, end) into p + pos, the data ranges only: holes
 * stay as p holds them (zeros).  Under n->rw (read), loaded. */
static int read_data(struct vv_vault *v, struct node *n, uint8_t *p, uint64_t pos, uint64_t end)
{
	int r = 0;

	for (uint64_t d, h; r == 0 && pos < end; pos = h) {
		if (vault_data_seek(n, pos, SEEK_DATA, &d) < 0 || d >= end)
			break;                   /* the rest is a hole */
		if (vault_data_seek(n, d, SEEK_HOLE, &h) < 0 || h > end)
			h = end;
		r = vault_data_read(v, n, p + d, d, h);
	}
	return r;
}

/* One turn of a fill: decrypt the next FILL_PIECE bytes of the file into
 * the job's mapping, the data ranges only (holes stay the mapping's zero
 * pages: no decryption, no memory).  1: more to do, 0: all read, or an
 * error (VV_ECANCELED: the file changed or the vault closes). */
static int fill_step(struct vv_vault *v, struct knn_cache *c, struct kjob *j)
{
	struct kent *e = j->e;
	struct node *n = j->n;
	uint64_t end;
	int r;

	if (!j->p && (r = fill_map(c, e, &j->p)) < 0)
		return r;
	if (j->off >= e->size)
		return 0;
	end = e->size - j->off < FILL_PIECE ? e->size : j->off + FILL_PIECE;
	if ((r = vault_data_rdlock(v, n)) < 0)
		return r;
	if (!fill_valid(c, n, e))
		r = VV_ECANCELED;
	if (r == 0)
		r = read_data(v, n, j->p, j->off, end);
	pthread_rwlock_unlock(&n->rw);
	j->off = end;
	return r < 0 ? r : end < e->size;
}

/* End a fill job: with r == 0 the entry turns ready if the file is still
 * what was read; otherwise it goes, so the next request tries again. */
static void fill_finish(struct vv_vault *v, struct knn_cache *c, struct kjob *j, int r)
{
	struct kent *e = j->e;
	struct node *n = j->n;

	if (r == 0)
		r = vault_data_rdlock(v, n);
	if (r == 0) {
		/* ready only if nothing changed: a writer needs n->rw to */
		if (fill_valid(c, n, e)) {
			if (!e->heap)
				mprotect(j->p, e->maplen, PROT_READ);
			pthread_mutex_lock(&c->mu);
			e->base = j->p;
			j->p = NULL;
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
	if (j->p)
		fill_unmap(c, e, j->p);
	pthread_mutex_lock(&v->mu);
	vault_node_put(v, n);
	pthread_mutex_unlock(&v->mu);
	pthread_mutex_lock(&c->mu);
	ent_release(c, e, e->state != K_READY, true);
	fairq_done(&c->q, &j->qi);
	c->fillers--;
	pthread_cond_broadcast(&c->cv);
	pthread_mutex_unlock(&c->mu);
	free(j);
}

/* A new entry for node n's bytes as they are now, charged to uid, not
 * listed, holding nothing yet (under n->rw read: its size and data
 * generation stay what the entry says). */
static struct kent *ent_new(uint32_t uid, const struct node *n)
{
	struct kent *e = calloc(1, sizeof(*e));

	if (!e)
		return NULL;
	e->ino = n->ino;
	e->uid = uid;
	e->size = n->a.size;
	e->gen = n->data_gen;
	e->maplen = map_len(e->size);
	e->heap = small_entry(e->size);
	return e;
}

/* Lock entry e (of uid u) against swap if the budget allows: within the
 * cache's lock budget, and for an unprivileged uid no more than it could
 * lock itself by default; small entries share their pages (arena chunks
 * or the heap: docs/design.md "Query offload").  Under c->mu; the mlock
 * itself is lock_apply's. */
static void lock_grant(struct knn_cache *c, struct kent *e, struct kuse *u)
{
	if (!e->heap && c->locked + e->maplen <= c->lock_cap &&
	    (privileged(c, e->uid) || u->locked + e->maplen <= KNN_LOCK_UID)) {
		e->locked = true;
		c->locked += e->maplen;
		u->locked += e->maplen;
	}
}

/* Start filling an entry for node n charged to uid (under n->rw read,
 * loaded; c->mu held): queue a fill job, handing it the caller's pin on n.
 * VV_EAGAIN when queued; VV_EFBIG / VV_EBUSY when it does not fit uid's
 * share or the cache, or uid has too many jobs. */
static int start_fill(struct knn_cache *c, uint32_t uid, struct node *n, bool *pin_taken)
{
	struct kjob *j;
	struct kent *e;
	struct kuse *u;
	int r = VV_ENOMEM;

	if (!(e = ent_new(uid, n)) || !(j = calloc(1, sizeof(*j)))) {
		free(e);
		return VV_ENOMEM;
	}
	e->state = K_FILLING;
	/* the whole mapping counts, holes too: what it may come to hold */
	if ((r = make_room(c, uid, e->maplen)) < 0 || !(u = use_find(c, uid, true)) ||
	    (r = fairq_push(&c->q, &j->qi, uid)) < 0) {
		if (r == 0)
			r = VV_ENOMEM;
		vv_log(VV_LOG_DEBUG, "knn: inode %llu (%llu bytes) for uid %u: %s (offload cache %zu "
		       "bytes, share %zu)", (unsigned long long)n->ino, (unsigned long long)n->a.size,
		       uid, vv_strerror(r), c->cap, share_of(c, uid));
		if ((u = use_find(c, uid, false)))
			use_maybe_free(c, u);
		free(e);
		free(j);
		return r;
	}
	lock_grant(c, e, u);
	e->refs = 2;                     /* the list's and the filler's */
	ent_list(c, e, u);
	j->type = J_FILL;
	j->n = n;
	j->e = e;
	c->fillers++;
	*pin_taken = true;
	pthread_cond_signal(&c->work);
	return VV_EAGAIN;
}

/* Under c->mu: the ready entry for inode ino, referenced, in *out (0), or
 * VV_EAGAIN while it is being filled, or VV_ENOENT. */
static int find_entry(struct knn_cache *c, uint64_t ino, struct kent **out)
{
	uint64_t probes = 0;
	struct kent *e = hash_find(c, ino, &probes);

	if (!e)
		return VV_ENOENT;
	if (e->state != K_READY)
		return VV_EAGAIN;
	e->refs++;
	if (e != c->head) {
		lru_unlink(c, e);
		lru_push_front(c, e);
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
 * (under n->rw read, loaded) on uid's behalf and return VV_EAGAIN, or
 * return the entry another request made ready meanwhile.  Lock order: v->mu
 * and c->mu are never held together here, since vault_knn_cache_drop runs under
 * v->mu. */
static int fill_entry(struct vv_vault *v, uint32_t uid, struct node *n, struct kent **out)
{
	struct knn_cache *c = v->knn;
	bool pin_taken = false;
	int r;

	*out = NULL;
	/* a fill job needs the node pinned; pin before taking c->mu */
	pthread_mutex_lock(&v->mu);
	n->pins++;
	pthread_mutex_unlock(&v->mu);
	pthread_mutex_lock(&c->mu);
	r = find_entry(c, n->ino, out);
	if (r == VV_ENOENT)
		r = c->stopping ? VV_EAGAIN : start_fill(c, uid, n, &pin_taken);
	pthread_mutex_unlock(&c->mu);
	if (!pin_taken) {
		pthread_mutex_lock(&v->mu);
		vault_node_put(v, n);
		pthread_mutex_unlock(&v->mu);
	}
	return r;
}

static void put_entry(struct vv_vault *v, struct kent *e)
{
	if (!e)
		return;
	pthread_mutex_lock(&v->knn->mu);
	ent_release(v->knn, e, false, true);
	pthread_mutex_unlock(&v->knn->mu);
}

/* Decrypt file n (up to KNN_INLINE_MAX) whole into a new entry, on the
 * heap or mapped as a fill job's, and list it ready, charged to uid; under
 * n->rw (read), so no writer can change the bytes between the read and
 * the listing (a writer drops the entry under n->rw).  Mapped entries are
 * locked as a fill job's are, after the read (the pages are there). */
static int fill_inline(struct vv_vault *v, uint32_t uid, struct node *n, struct kent **out)
{
	struct knn_cache *c = v->knn;
	struct kent *e = ent_new(uid, n);
	struct kuse *u;
	uint8_t *p = NULL;
	int r;

	if (!e)
		return VV_ENOMEM;
	if ((r = fill_map(c, e, &p)) < 0) {
		free(e);
		return r;
	}
	if ((r = read_data(v, n, p, 0, e->size)) < 0) {
		fill_unmap(c, e, p);
		free(e);
		return r;
	}
	if (!e->heap)
		mprotect(p, e->maplen, PROT_READ);
	pthread_mutex_lock(&c->mu);
	/* another request may have listed one meanwhile: that one serves */
	r = find_entry(c, n->ino, out);
	if (r == VV_ENOENT)
		r = c->stopping ? VV_EAGAIN : make_room(c, uid, e->maplen);
	else
		r = r == 0 ? 1 : r;
	if (r == 0 && !(u = use_find(c, uid, true)))
		r = VV_ENOMEM;
	if (r == 0) {
		lock_grant(c, e, u);
		e->base = p;
		e->state = K_READY;
		e->refs = 2;                 /* the list's and the caller's */
		ent_list(c, e, u);
		*out = e;
		e = NULL;
	}
	pthread_mutex_unlock(&c->mu);
	if (e) {
		fill_unmap(c, e, p);
		free(e);
	} else {
		lock_apply(c, *out, p);
	}
	return r == 1 ? 0 : r;
}

int vault_knn_get(struct vv_vault *v, uint32_t uid, struct node *n, struct knn_budget *b,
		  struct kent **e, const uint8_t **base, uint64_t *size)
{
	int r = lookup_entry(v, n, e);

	if (r == VV_ENOENT && n->a.size <= KNN_INLINE_MAX) {
		if (b->inline_bytes < n->a.size)
			return VV_EAGAIN;
		b->inline_bytes -= n->a.size;
		r = fill_inline(v, uid, n, e);
	}
	if (r < 0)
		return r;
	*base = (*e)->base;
	*size = (*e)->size;
	return 0;
}

int vault_knn_ready(struct vv_vault *v, struct node *n, struct kent **e, const uint8_t **base,
		    uint64_t *size)
{
	int r = lookup_entry(v, n, e);

	if (r == 0) {
		*base = (*e)->base;
		*size = (*e)->size;
	}
	return r;
}

int vault_knn_start(struct vv_vault *v, uint32_t uid, struct node *n, struct knn_budget *b)
{
	struct kent *e = NULL;
	int r;

	if (!b->fills)
		return VV_EAGAIN;
	b->fills--;
	r = fill_entry(v, uid, n, &e);
	if (e) {
		put_entry(v, e);             /* made ready meanwhile: the next request */
		r = VV_EAGAIN;
	}
	return r;
}

void vault_knn_put(struct vv_vault *v, struct kent *e)
{
	put_entry(v, e);
}

int vault_knn_view(struct vv_vault *v, struct kent *e, enum vv_seg_format fmt,
		   struct vv_segment_view *sv, const char **why)
{
	struct knn_cache *c = v->knn;
	bool hit;
	int r;

	pthread_mutex_lock(&c->mu);
	if ((hit = e->view_fmt == fmt && fmt != 0))
		*sv = e->view;
	pthread_mutex_unlock(&c->mu);
	if (hit)
		return 0;
	/* base and size stay while the caller holds its reference (the
	 * arena's compaction moves only unreferenced entries, and drops their
	 * view): any thread's parse is the same, the last one stays */
	if ((r = vv_segment_view_init(sv, e->base, e->size, fmt, why)) < 0)
		return r;
	pthread_mutex_lock(&c->mu);
	e->view = *sv;
	e->view_fmt = fmt;
	pthread_mutex_unlock(&c->mu);
	return 0;
}

bool vault_knn_listed(struct vv_vault *v, struct kent *e)
{
	bool listed;

	pthread_mutex_lock(&v->knn->mu);
	listed = e->listed && e->state == K_READY;
	pthread_mutex_unlock(&v->knn->mu);
	return listed;
}

int vv_vault_knn(struct vv_vault *v, const struct vv_ctx *c, struct vv_file *fh,
		 struct vv_knn_ioc *io)
{
	struct node *n = fh->n;
	struct vv_knn_ioc_hdr h = io->h;
	enum vv_seg_format fmt = (enum vv_seg_format)h.format;
	struct vv_segment_info si;
	struct vv_segment_view sv;
	struct kent *e = NULL;
	float *q = NULL;
	const char *why = NULL;
	long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
	int r;

	if (!v->knn || !n)
		return VV_ENOTTY;
	if ((r = vault_audit_gate(v)) < 0)
		return r;
	/* Only a handle opened for reading by its holder: not write-only, not
	 * mode 3 (ioctl-only, no read right), not the kernel's exec open. */
	if (!file_user_readable(fh)) {
		r = VV_EBADF;
		goto out;
	}
	if ((r = vv_knn_request_check(io)) < 0)
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
	if ((r = vault_data_rdlock(v, n)) < 0)
		goto out;
	r = lookup_entry(v, n, &e);
	if (r == VV_ENOENT || r == VV_EAGAIN) {
		int s = knn_not_segment(vault_data_segment_probe(v, n, fmt, &si, &why));
		if (s == 0 && si.dim != h.dim)
			s = VV_EINVAL;
		if (s == 0)
			s = vv_knn_work_check(&h, si.count);     /* before any fill for a request never served */
		if (s < 0)
			r = s;
		else if (r == VV_ENOENT)
			r = fill_entry(v, c->id.uid, n, &e);
	}
	pthread_rwlock_unlock(&n->rw);
	if (r < 0)
		goto out;
	if ((r = knn_not_segment(vv_segment_view_init(&sv, e->base, e->size, fmt, &why))) < 0)
		goto out;
	if (sv.info.dim != h.dim) {
		r = VV_EINVAL;
		goto out;
	}
	if ((r = vv_knn_work_check(&h, sv.info.count)) < 0)
		goto out;
	if (ncpu < 1)
		ncpu = 1;
	if (ncpu > KNN_SCAN_THREADS)
		ncpu = KNN_SCAN_THREADS;
	ncpu = h.threads && h.threads < (unsigned long)ncpu ? h.threads : ncpu;
	/* exact: the candidates' double distances too, so the caller need not
	 * read their rows back (through a vv:// mount each is a round trip) */
	if (h.flags & VV_KNN_F_EXACT)
		r = vv_segment_knn_exact(&sv, (enum vv_metric)h.metric, q, h.nq, h.kk,
					 (unsigned)ncpu, io->u.x);
	else
		r = vv_segment_knn(&sv, (enum vv_metric)h.metric, q, h.nq, h.kk, (unsigned)ncpu,
				   io->u.c);
	if (r < 0)
		goto out;
	memset(&io->h, 0, sizeof(io->h));
	io->h.magic = VV_KNN_MAGIC_REPLY;
	io->h.version = h.flags & VV_KNN_F_EXACT ? VV_KNN_VERSION_EXACT : VV_KNN_VERSION;
	io->h.flags = h.flags & VV_KNN_F_EXACT;
	io->h.metric = h.metric;
	io->h.format = h.format;
	io->h.dim = h.dim;
	io->h.nq = h.nq;
	io->h.kk = h.kk;
	io->h.rows = sv.info.count;
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
			snprintf(detail, sizeof(detail), "not a %s segment: %s", vv_seg_format_name(fmt),
				 why);
		vault_audit_file_why(v, c, "scan", fh, r, r == VV_EINVAL && why ? detail : NULL);
		pthread_mutex_unlock(&v->mu);
	}
	return r;
}
