/*
 * vault_data.c - file bytes: open, read, write, truncate, flush, fsync.
 *
 * A file is either inline (at most VV_INLINE_MAX bytes, kept in its meta.db
 * row: no chunk object and no fsync of its own for small files) or a map of
 * VV_BLOCK_SIZE blocks, each an extent in a chunk object.  Writes land in
 * per-node dirty blocks (the write buffer).  VV_FLUSH_BLOCKS of them, or a
 * close, fsync or the ticker's periodic flush, hand the blocks to the sealer
 * thread, which encrypts them into one new chunk and repoints the extent
 * map while the request threads take the next data: copy-on-write, chunks
 * are never modified (DESIGN invariant 2).  Until a job is done its blocks
 * stay readable in the node's "sealing" list; fsync and close wait for the
 * node's jobs.  A dirty block's bytes past its len, and blocks with neither
 * extent nor buffer, read as zeros (sparse files).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "crypto_int.h"
#include "snap_int.h"
#include "grow.h"
#include "vault_int.h"
#include "vecvault/error.h"
#include "vecvault/log.h"

#define BS VV_BLOCK_SIZE
#define RA_WINDOW (8u << 20)         /* bytes decrypted ahead of a sequential reader */
#define RA_NEAR (2u << 20)           /* a read this close to the last one's end is sequential */

/* Index of the first extent of n at or after block fb (the map is sorted). */
static size_t ext_lower(struct node *n, uint64_t fb)
{
	size_t lo = 0, hi = n->next;

	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		if (n->ext[mid].fblock < fb)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

static struct vv_extent *find_ext(struct node *n, uint64_t fb)
{
	size_t i = ext_lower(n, fb);

	return i < n->next && n->ext[i].fblock == fb ? &n->ext[i] : NULL;
}

static size_t dirty_pos(struct node *n, uint64_t fb)
{
	size_t lo = 0, hi = n->ndirty;

	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		if (n->dirty[mid].fblock < fb)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

static struct dblock *find_dirty(struct node *n, uint64_t fb)
{
	size_t i = dirty_pos(n, fb);

	return i < n->ndirty && n->dirty[i].fblock == fb ? &n->dirty[i] : NULL;
}

/* The newest block of fb handed to the sealer and not yet an extent. */
static struct dblock *find_sealing(struct node *n, uint64_t fb)
{
	for (size_t i = n->nsealing; i-- > 0;)
		if (n->sealing[i].fblock == fb)
			return &n->sealing[i];
	return NULL;
}

#define POOL_MAX 256                 /* 16 MiB of recycled block buffers */

/* Block buffers are recycled: a fresh 64 KiB allocation costs page faults
 * and zeroing in the kernel, more than the copy itself. */
static uint8_t *blk_alloc(struct vv_vault *v)
{
	uint8_t *b = NULL;

	pthread_mutex_lock(&v->seal.mu);
	if (v->seal.npool)
		b = v->seal.pool[--v->seal.npool];
	pthread_mutex_unlock(&v->seal.mu);
	return b ? b : malloc(BS);
}

static void blk_free(struct vv_vault *v, uint8_t *b)
{
	if (!b)
		return;
	pthread_mutex_lock(&v->seal.mu);
	if (v->seal.npool < POOL_MAX) {
		v->seal.pool[v->seal.npool++] = b;
		b = NULL;
	}
	pthread_mutex_unlock(&v->seal.mu);
	free(b);
}

static int ext_set(struct node *n, const struct vv_extent *e)
{
	size_t lo = 0, hi = n->next;
	struct vv_extent *x = find_ext(n, e->fblock);

	if (x) {
		*x = *e;
		return 0;
	}
	if (VV_GROW(n->ext, n->next, n->extcap) < 0)
		return VV_ENOMEM;
	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		if (n->ext[mid].fblock < e->fblock)
			lo = mid + 1;
		else
			hi = mid;
	}
	memmove(&n->ext[lo + 1], &n->ext[lo], (n->next - lo) * sizeof(*e));
	n->ext[lo] = *e;
	n->next++;
	return 0;
}

/* Under v->mu: drop one reference to a chunk; free it after a durable commit. */
static int unref(struct vv_vault *v, uint32_t coll, const struct vv_extent *e)
{
	uint64_t refs;
	int r = vv_meta_chunk_ref(v->meta, e->chunk_id, coll, -1, 0, &refs);

	if (r == 0 && refs == 0)
		vault_unlink_later(v, e->chunk_id);
	return r;
}

struct unref_ctx {
	struct vv_vault *v;
	uint32_t coll;
	uint64_t freed;
};

static int unref_cb(void *ctx, const struct vv_extent *e)
{
	struct unref_ctx *u = ctx;

	u->freed += e->len;
	return unref(u->v, u->coll, e);
}

/* The data layer's node listener: a deleted node's extents are released
 * (their chunks freed when no longer referenced). */
static int data_release_all(struct vv_vault *v, struct node *n)
{
	struct unref_ctx u = { v, n->a.coll, 0 };

	if (!S_ISREG(n->a.mode))
		return 0;
	return vv_meta_extents_trim(v->meta, n->ino, 0, unref_cb, &u);
}

/* Make room for size inline bytes; new bytes are zero. */
static int inl_reserve(struct node *n, size_t size)
{
	size_t cap = n->inlcap ? n->inlcap : 256;
	uint8_t *p;

	if (size <= n->inlcap && n->inl)
		return 0;
	while (cap < size)
		cap *= 2;
	if (cap > VV_INLINE_MAX)
		cap = VV_INLINE_MAX;
	p = realloc(n->inl, cap);
	if (!p)
		return VV_ENOMEM;
	memset(p + n->inlcap, 0, cap - n->inlcap);
	n->inl = p;
	n->inlcap = cap;
	return 0;
}

/* Forget a closed file's bytes (reloaded at the next open): keeps the
 * daemon's memory bounded by what is open, not by what the kernel caches.
 * Under n->rw (write); the node must have nothing dirty. */
static void data_unload(struct node *n)
{
	if (!n->data_loaded || n->data_dirty || n->ndirty || n->nsealing ||
	    __atomic_load_n(&n->jobs, __ATOMIC_ACQUIRE))
		return;
	free(n->inl);
	n->inl = NULL;
	n->inlcap = 0;
	free(n->ext);
	n->ext = NULL;
	n->next = n->extcap = 0;
	node_set_data(&n->is_inline, false);
	node_set_data(&n->data_loaded, false);
}

static int get_dirty(struct vv_vault *v, struct node *n, const uint8_t *key, uint64_t fb,
		     uint32_t cover, struct dblock **out);

static int load_ext_cb(void *ctx, const struct vv_extent *e)
{
	return ext_set(ctx, e);
}

int vault_data_load(struct vv_vault *v, struct node *n)
{
	uint8_t *data = NULL;
	size_t len = 0;
	int r;

	if (n->data_loaded)
		return 0;
	pthread_mutex_lock(&v->mu);
	n->next = 0;
	n->row_inl = false;
	r = vv_meta_extents_load(v->meta, n->ino, load_ext_cb, n);
	if (r == 0 && !find_ext(n, 0) && S_ISREG(n->a.mode))
		r = vv_meta_inode_get_data(v->meta, n->ino, &data, &len);
	if (r == 0 && n->next == 0 && n->a.size <= VV_INLINE_MAX && data && len >= n->a.size &&
	    !n->inl) {
		/* The usual case: the row holds the file's bytes.  Keep the
		 * buffer the row was read into rather than zero a new one and
		 * copy (a cold read of a small file: one copy instead of three
		 * passes over it). */
		memset(data + n->a.size, 0, len - n->a.size);    /* zero past size */
		n->inl = data;
		n->inlcap = len;
		data = NULL;
		node_set_data(&n->is_inline, true);
		n->row_inl = true;
	} else if (r == 0 && n->next == 0 && n->a.size <= VV_INLINE_MAX) {
		if ((r = inl_reserve(n, n->a.size)) == 0) {
			if (data)
				memcpy(n->inl, data, len < n->a.size ? len : n->a.size);
			node_set_data(&n->is_inline, true);
			n->row_inl = len > 0;
		}
	}
	pthread_mutex_unlock(&v->mu);
	if (r == 0 && !n->is_inline && data && len > 0 && n->a.size > 0) {
		/* A file that grew past VV_INLINE_MAX, cut off (a crash) after
		 * a commit saved its new size but before block 0's chunk was
		 * durable: the row's inline bytes are still block 0's last
		 * committed content (vault_data_flush keeps them until then).
		 * They become block 0's write buffer, sealed at the next flush
		 * (nothing is written by a read-only open, nor for a file seen
		 * in a snapshot, whose copy can hold the same state). */
		struct dblock *d;
		size_t keep = len < n->a.size ? len : (size_t)n->a.size;
		if (keep > BS)
			keep = BS;
		if ((r = get_dirty(v, n, NULL, 0, (uint32_t)keep, &d)) == 0) {
			memcpy(d->buf, data, keep);
			d->len = (uint32_t)keep;
			n->row_inl = true;
			n->data_dirty = !(v->flags & VV_VAULT_READONLY) && vault_snap_ro(n->ino) == 0;
			vv_log(VV_LOG_WARN, "vault: inode %llu: block 0 recovered from its inline bytes "
			       "(a crash while the file grew past %u bytes)", (unsigned long long)n->ino,
			       (unsigned)VV_INLINE_MAX);
		}
	}
	free(data);
	if (r == 0)
		node_set_data(&n->data_loaded, true);
	return r;
}

/* Key of the node's collection (stable until the vault closes). */
static int node_key(struct vv_vault *v, struct node *n, const uint8_t **key)
{
	int r;

	pthread_mutex_lock(&v->mu);
	r = vault_key(v, n->a.coll, key);
	pthread_mutex_unlock(&v->mu);
	return r;
}

/* Read plaintext bytes [lo, hi) of block fb into out. */
/* Bytes [lo, hi) of block fb into out.  taken (may be NULL): the block
 * cache may hand over the block's buffer instead (vv_content_read_take);
 * then *taken is set and out is not written. */
static int read_block(struct vv_vault *v, struct node *n, const uint8_t *key, uint64_t fb,
		      uint32_t lo, uint32_t hi, uint8_t *out, uint8_t **taken)
{
	struct dblock *d;
	struct vv_extent *e;
	int r;

	if ((d = find_dirty(n, fb)) || (d = find_sealing(n, fb))) {
		memcpy(out, d->buf + lo, hi - lo);
		return 0;
	}
	if (!(e = find_ext(n, fb)) || lo >= e->len) {
		memset(out, 0, hi - lo);
		return 0;
	}
	{
		uint32_t end = hi < e->len ? hi : e->len;
		/* Handed over only when the block holds every byte asked. */
		if ((r = vv_content_read_take(v->content, key, n->a.objid, e, lo, end - lo, out,
					      end == hi ? taken : NULL)) < 0) {
			vv_log(VV_LOG_ERR, "vault: inode %llu block %llu: %s",
			       (unsigned long long)n->ino, (unsigned long long)fb, vv_strerror(r));
			return r == VV_ECORRUPT ? VV_EIO : r;
		}
		if (end < hi)
			memset(out + (end - lo), 0, hi - end);
	}
	return 0;
}

/* Dirty buffer for block fb, created from its newest content if needed.
 * cover: the caller overwrites [0, cover) at once; when that covers all the
 * block's current bytes, they need not be read. */
static int get_dirty(struct vv_vault *v, struct node *n, const uint8_t *key, uint64_t fb,
		     uint32_t cover, struct dblock **out)
{
	size_t i = dirty_pos(n, fb);
	struct dblock *sb;
	struct vv_extent *e;
	struct dblock nd;
	uint32_t len = 0;
	int r;

	if (i < n->ndirty && n->dirty[i].fblock == fb) {
		*out = &n->dirty[i];
		return 0;
	}
	if (VV_GROW(n->dirty, n->ndirty, n->dirtycap) < 0)
		return VV_ENOMEM;
	nd.fblock = fb;
	nd.buf = blk_alloc(v);
	if (!nd.buf)
		return VV_ENOMEM;
	sb = find_sealing(n, fb);
	e = sb ? NULL : find_ext(n, fb);
	len = sb ? sb->len : e ? e->len : 0;
	if (cover < len) {
		if (sb) {
			memcpy(nd.buf, sb->buf, len);
		} else if ((r = read_block(v, n, key, fb, 0, len, nd.buf, NULL)) < 0) {
			blk_free(v, nd.buf);
			return r;
		}
	}
	{
		uint32_t keep = cover > len ? cover : len;
		memset(nd.buf + keep, 0, BS - keep);
	}
	nd.len = len;
	memmove(&n->dirty[i + 1], &n->dirty[i], (n->ndirty - i) * sizeof(nd));
	n->dirty[i] = nd;
	n->ndirty++;
	*out = &n->dirty[i];
	return 0;
}

/* Inline file grows past VV_INLINE_MAX: its bytes become dirty block 0. */
static int uninline(struct vv_vault *v, struct node *n)
{
	struct dblock *d;
	int r;

	if (!n->is_inline)
		return 0;
	node_set_data(&n->is_inline, false);
	if (n->a.size > 0) {
		if ((r = get_dirty(v, n, NULL, 0, (uint32_t)n->a.size, &d)) < 0) {
			node_set_data(&n->is_inline, true);
			return r;
		}
		if (n->inl)
			memcpy(d->buf, n->inl, n->a.size);
		d->len = (uint32_t)n->a.size;
	}
	free(n->inl);
	n->inl = NULL;
	n->inlcap = 0;
	n->data_dirty = true;
	return 0;
}

/* Queue a job for the sealer (never blocks: callers hold n->rw, which the
 * sealer needs; the throttle is seal_throttle(), taken before n->rw). */
static void seal_enqueue(struct vv_vault *v, struct seal_job *j)
{
	pthread_mutex_lock(&v->seal.mu);
	j->n->jobs++;
	j->seq = v->seal.seq++;
	if (v->seal.tail)
		v->seal.tail->next = j;
	else
		v->seal.head = j;
	v->seal.tail = j;
	v->seal.len++;
	pthread_cond_signal(&v->seal.cv);
	pthread_mutex_unlock(&v->seal.mu);
}

/* Wait while the sealer has too much queued: bounds the memory held. */
static void seal_throttle(struct vv_vault *v)
{
	pthread_mutex_lock(&v->seal.mu);
	while (v->seal.len >= 4 && v->seal.run)
		pthread_cond_wait(&v->seal.done, &v->seal.mu);
	pthread_mutex_unlock(&v->seal.mu);
}

/* Wait until n has no job in flight.  Not under n->rw. */
static void seal_wait(struct vv_vault *v, struct node *n)
{
	pthread_mutex_lock(&v->seal.mu);
	while (n->jobs)
		pthread_cond_wait(&v->seal.done, &v->seal.mu);
	pthread_mutex_unlock(&v->seal.mu);
}

int vault_data_flush(struct vv_vault *v, struct node *n)
{
	int r = 0;

	if (!n->data_loaded || !n->data_dirty)
		return 0;
	if (n->is_inline) {
		pthread_mutex_lock(&v->mu);
		n->a.stored = 0;
		/* Attributes and bytes in one statement: a second one would
		 * rewrite the whole row (its bytes too) again. */
		if ((r = vault_txn(v)) == 0 &&
		    (r = vv_meta_inode_put_data(v->meta, &n->a, n->inl, n->a.size)) == 0) {
			n->data_dirty = false;
			n->row_inl = n->a.size > 0;
		}
		pthread_mutex_unlock(&v->mu);
		return r;
	}
	while (n->ndirty) {
		size_t k = n->ndirty < VV_CHUNK_MAX_BLOCKS ? n->ndirty : VV_CHUNK_MAX_BLOCKS;
		struct seal_job *j = calloc(1, sizeof(*j));
		struct dblock *b = malloc(k * sizeof(*b));
		if (!j || !b || vv_grow(&n->sealing, &n->sealcap, n->nsealing + k, sizeof(*b)) < 0) {
			free(j);
			free(b);
			return VV_ENOMEM;
		}
		memcpy(b, n->dirty, k * sizeof(*b));
		memcpy(n->sealing + n->nsealing, b, k * sizeof(*b));
		n->nsealing += k;
		memmove(n->dirty, n->dirty + k, (n->ndirty - k) * sizeof(*b));
		n->ndirty -= k;
		j->n = n;
		j->b = b;
		j->nb = k;
		pthread_mutex_lock(&v->mu);
		n->pins++;
		pthread_mutex_unlock(&v->mu);
		seal_enqueue(v, j);
	}
	/* Size and times now (the blocks' extents when their job is done).
	 * Inline bytes still in the row stay there while block 0 is in
	 * flight: a commit before its chunk is durable must not lose them
	 * (the sealer drops them with block 0's extent; vault_data_load
	 * reads them as block 0 after a crash).  Otherwise block 0 is an
	 * extent or a hole now, and the row's bytes go. */
	pthread_mutex_lock(&v->mu);
	r = vault_txn(v);
	if (r == 0 && n->row_inl && !find_sealing(n, 0) &&
	    (r = vv_meta_inode_set_data(v->meta, n->ino, NULL, 0)) == 0)
		n->row_inl = false;
	if (r == 0 && (r = vault_node_save(v, n)) == 0)
		n->data_dirty = false;
	pthread_mutex_unlock(&v->mu);
	return r;
}

/* A sealer's work on one job, first part (any number of jobs at once, no
 * lock held): encrypt the blocks into a new chunk and write it. */
static int seal_write(struct vv_vault *v, struct seal_job *j, struct vv_extent *ext)
{
	struct vv_block_in in[VV_CHUNK_MAX_BLOCKS];
	struct node *n = j->n;
	const uint8_t *key = NULL;
	int r;

	for (size_t k = 0; k < j->nb; k++) {
		in[k].objid = n->a.objid;
		in[k].fblock = j->b[k].fblock;
		in[k].data = j->b[k].buf;
		in[k].len = j->b[k].len ? j->b[k].len : 1;   /* an all-zero block keeps one byte */
	}
	r = node_key(v, n, &key);
	if (r == 0)
		r = vv_content_write_chunk(v->content, key, in, j->nb, ext);
	return r;
}

/* Second part, in queue order (the caller's turn): repoint the extent map
 * to the chunk seal_write made (r: its result). */
static void seal_apply(struct vv_vault *v, struct seal_job *j, const struct vv_extent *ext, int r)
{
	struct node *n = j->n;
	uint64_t csize = VV_CHUNK_HDR_BYTES;

	for (size_t k = 0; k < j->nb; k++)
		csize += (j->b[k].len ? j->b[k].len : 1) + 16;
	pthread_rwlock_wrlock(&n->rw);
	if (r == 0) {
		pthread_mutex_lock(&v->mu);
		if ((r = vault_txn(v)) == 0)
			r = vv_meta_chunk_ref(v->meta, ext[0].chunk_id, n->a.coll, (int64_t)j->nb, csize, NULL);
		for (size_t k = 0; r == 0 && k < j->nb; k++) {
			struct vv_extent *old = find_ext(n, ext[k].fblock);
			if (old) {
				n->a.stored -= old->len < n->a.stored ? old->len : n->a.stored;
				r = unref(v, n->a.coll, old);
			}
			if (r == 0)
				r = vv_meta_extent_put(v->meta, n->ino, &ext[k]);
			if (r == 0 && ext[k].fblock == 0 && n->row_inl &&
			    (r = vv_meta_inode_set_data(v->meta, n->ino, NULL, 0)) == 0)
				n->row_inl = false;     /* block 0 has its extent: same commit */
			if (r == 0)
				r = ext_set(n, &ext[k]);
			n->a.stored += ext[k].len;
		}
		if (r == 0)
			r = vault_node_save(v, n);
		pthread_mutex_unlock(&v->mu);
	}
	/* The job's blocks leave the sealing list; on failure they go back to
	 * the write buffer (unless newer data replaced them) and are retried. */
	for (size_t k = 0; k < j->nb; k++) {
		for (size_t i = 0; i < n->nsealing; i++)
			if (n->sealing[i].buf == j->b[k].buf) {
				memmove(&n->sealing[i], &n->sealing[i + 1],
					(n->nsealing - i - 1) * sizeof(n->sealing[0]));
				n->nsealing--;
				break;
			}
		/* (A later job's block of fb, still sealing, is newer too: it
		 * is repointed after this one, and the old bytes must not be
		 * sealed again over it.) */
		if (r == 0 || find_dirty(n, j->b[k].fblock) || find_sealing(n, j->b[k].fblock)) {
			blk_free(v, j->b[k].buf);
		} else {
			size_t i = dirty_pos(n, j->b[k].fblock);
			/* (the capacity changes only with the array: raising it
			 * before a realloc that failed let the next insert write
			 * past the end) */
			if (VV_GROW(n->dirty, n->ndirty, n->dirtycap) < 0) {
				blk_free(v, j->b[k].buf);
				continue;
			}
			memmove(&n->dirty[i + 1], &n->dirty[i], (n->ndirty - i) * sizeof(n->dirty[0]));
			n->dirty[i] = j->b[k];
			n->ndirty++;
		}
	}
	if (r < 0) {
		vv_log(VV_LOG_ERR, "vault: write-back of inode %llu failed: %s (kept in memory, retried)",
		       (unsigned long long)n->ino, vv_strerror(r));
		n->seal_err = r;
		n->data_dirty = true;
	}
	pthread_rwlock_unlock(&n->rw);
	free(j->b);
	free(j);
	pthread_mutex_lock(&v->seal.mu);
	n->jobs--;
	pthread_cond_broadcast(&v->seal.done);
	pthread_mutex_unlock(&v->seal.mu);
	pthread_mutex_lock(&v->mu);
	vault_node_put(v, n);
	pthread_mutex_unlock(&v->mu);
}

static void *sealer(void *arg)
{
	struct vv_extent ext[VV_CHUNK_MAX_BLOCKS];
	struct vv_vault *v = arg;

	pthread_mutex_lock(&v->seal.mu);
	for (;;) {
		struct seal_job *j;
		int r;
		while (!v->seal.head && v->seal.run)
			pthread_cond_wait(&v->seal.cv, &v->seal.mu);
		if (!v->seal.head)
			break;
		j = v->seal.head;
		v->seal.head = j->next;
		if (!v->seal.head)
			v->seal.tail = NULL;
		v->seal.len--;
		v->seal.busy++;
		pthread_mutex_unlock(&v->seal.mu);
		r = seal_write(v, j, ext);
		/* Jobs are taken in queue order, so every earlier job is with a
		 * sealer already: waiting for them cannot wait for this one. */
		pthread_mutex_lock(&v->seal.mu);
		while (v->seal.applied != j->seq)
			pthread_cond_wait(&v->seal.turn, &v->seal.mu);
		pthread_mutex_unlock(&v->seal.mu);
		seal_apply(v, j, ext, r);     /* frees j */
		pthread_mutex_lock(&v->seal.mu);
		v->seal.applied++;
		v->seal.busy--;
		pthread_cond_broadcast(&v->seal.turn);
		pthread_cond_broadcast(&v->seal.done);
	}
	pthread_mutex_unlock(&v->seal.mu);
	return NULL;
}

int vault_data_sealer_start(struct vv_vault *v, unsigned nthread)
{
	static const struct vault_listener data_listener = { .deleted = data_release_all };

	if (nthread == 0) {
		/* One per CPU, and at least two: one encrypts while another
		 * waits for the disk. */
		long cpus = sysconf(_SC_NPROCESSORS_ONLN);
		nthread = cpus < 2 ? 2 : (unsigned)cpus;
	}
	if (nthread > VAULT_SEALERS_MAX)
		nthread = VAULT_SEALERS_MAX;
	vault_listen(v, &data_listener);
	v->seal.pool = calloc(POOL_MAX, sizeof(*v->seal.pool));
	if (!v->seal.pool)
		return VV_ENOMEM;
	v->seal.run = true;
	for (unsigned i = 0; i < nthread; i++) {
		if (pthread_create(&v->seal.thread[i], NULL, sealer, v) != 0) {
			if (i > 0)
				break;                  /* fewer sealers: slower, not wrong */
			v->seal.run = false;
			return VV_ENOMEM;
		}
		v->seal.nthread = i + 1;
	}
	return 0;
}

void vault_data_sealer_stop(struct vv_vault *v)
{
	if (v->seal.run) {
		pthread_mutex_lock(&v->seal.mu);
		v->seal.run = false;
		pthread_cond_broadcast(&v->seal.cv);
		pthread_cond_broadcast(&v->seal.done);
		pthread_mutex_unlock(&v->seal.mu);
		for (unsigned i = 0; i < v->seal.nthread; i++)
			pthread_join(v->seal.thread[i], NULL);    /* they drain the queue first */
		v->seal.nthread = 0;
	}
	for (size_t i = 0; i < v->seal.npool; i++)
		free(v->seal.pool[i]);
	free(v->seal.pool);
	v->seal.pool = NULL;
	v->seal.npool = 0;
}

int vault_data_truncate(struct vv_vault *v, struct node *n, uint64_t size)
{
	const uint8_t *key = NULL;
	uint64_t old, from;
	uint32_t within;
	int r;

	if ((r = vault_data_load(v, n)) < 0)
		return r;
	while (n->jobs) {
		/* Blocks in flight could land past the new end: let them land. */
		pthread_rwlock_unlock(&n->rw);
		seal_wait(v, n);
		pthread_rwlock_wrlock(&n->rw);
	}
	old = n->a.size;
	if (n->is_inline && size <= VV_INLINE_MAX) {
		if ((r = inl_reserve(n, size)) < 0)
			return r;
		if (size < old)
			memset(n->inl + size, 0, old - size);
		goto done;
	}
	if ((r = uninline(v, n)) < 0)
		return r;
	if (size >= old)
		goto done;
	within = (uint32_t)(size % BS);
	from = size / BS + (within ? 1 : 0);
	/* Blocks wholly past the end go: dirty ones and stored ones. */
	{
		size_t i = dirty_pos(n, from);
		for (size_t j = i; j < n->ndirty; j++)
			blk_free(v, n->dirty[j].buf);
		n->ndirty = i;
	}
	{
		struct unref_ctx u = { v, n->a.coll, 0 };
		size_t keep = 0;
		pthread_mutex_lock(&v->mu);
		if ((r = vault_txn(v)) == 0)
			r = vv_meta_extents_trim(v->meta, n->ino, from, unref_cb, &u);
		pthread_mutex_unlock(&v->mu);
		if (r < 0)
			return r;
		while (keep < n->next && n->ext[keep].fblock < from)
			keep++;
		n->next = keep;
		n->a.stored -= u.freed < n->a.stored ? u.freed : n->a.stored;
	}
	if (within) {
		struct dblock *d;
		if ((r = node_key(v, n, &key)) < 0 || (r = get_dirty(v, n, key, size / BS, 0, &d)) < 0)
			return r;
		memset(d->buf + within, 0, BS - within);
		if (d->len > within)
			d->len = within;
	}
	if (size == 0 && n->next == 0 && n->ndirty == 0)
		node_set_data(&n->is_inline, true);   /* empty again: small writes go inline */
done:
	pthread_mutex_lock(&v->mu);
	n->a.size = size;
	n->data_gen = vault_gen_next(v);
	pthread_mutex_unlock(&v->mu);
	vault_data_changed(v, n);
	n->data_dirty = true;
	return vault_data_flush(v, n);
}

/* --- handles ---------------------------------------------------------------- */

uint64_t vv_vault_file_ino(const struct vv_file *fh)
{
	return fh->n ? fh->n->ino : 0;
}

/* A virtual file (a .trashinfo: no node) has its bytes made at its open,
 * and keeps no page cache on the local mount either: a generation no open
 * had before.  It used to be read from the NULL node, which killed the
 * daemon at a remote OPEN of any .trashinfo (t7049). */
uint64_t vv_vault_file_gen(struct vv_vault *v, const struct vv_file *fh)
{
	uint64_t g;

	if (!fh->n)
		return vault_gen_next(v);
	pthread_mutex_lock(&v->mu);
	g = fh->n->data_gen;
	pthread_mutex_unlock(&v->mu);
	return g;
}

int vv_vault_open_file(struct vv_vault *v, const struct vv_ctx *c, uint64_t ino,
		       int flags, struct vv_file **fh, bool *keep_cache)
{
	struct node *n = NULL;
	struct vv_file *f;
	int acc = flags & O_ACCMODE, mask = 0, r;

	*fh = NULL;
	*keep_cache = false;
	f = calloc(1, sizeof(*f));
	if (!f)
		return VV_ENOMEM;
	/* The kernel's ACC_MODE(): mode 3 (ioctl-only) needs read and write
	 * permission, like O_RDWR.  An exec open needs read as well as
	 * execute, stricter than do_open_execat(): the kernel makes the
	 * process of a binary its user may not read non-dumpable by asking
	 * MAY_READ (would_dump), which FUSE without default_permissions
	 * grants without asking us, so /proc/PID/mem would show the binary
	 * (docs/access.md "Handles, open modes and exec"; t1031). */
	if (flags & VV_OPEN_EXEC) {
		mask = VV_MAY_EXEC | VV_MAY_READ;
	} else {
		if (acc != O_WRONLY)
			mask |= VV_MAY_READ;
		if (acc != O_RDONLY || (flags & O_TRUNC))
			mask |= VV_MAY_WRITE;
	}
	pthread_mutex_lock(&v->mu);
	if (trash_virt(ino)) {
		free(f);
		if ((r = vault_audit_gate(v)) == 0)
			r = vault_trash_open_info(v, c, ino, flags, fh);   /* audits itself */
		pthread_mutex_unlock(&v->mu);
		return r;
	}
	if ((r = vault_audit_gate(v)) < 0 || (r = vault_node_get(v, ino, &n)) < 0)
		goto out;
	while (n->pushing)                           /* vv_vault_open_push */
		pthread_cond_wait(&v->push_cv, &v->mu);
	if (__atomic_load_n(&n->revoked, __ATOMIC_ACQUIRE)) {
		r = VV_ENOENT;                           /* purged: reopened via /proc/PID/fd */
		goto out;
	}
	if ((mask & VV_MAY_WRITE) && vault_trash_in(v, n)) {
		r = VV_EROFS;                            /* the trash is read-only */
		goto out;
	}
	/* Only regular files have a data path.  The kernel sends OPENDIR for
	 * directories, follows symlinks and opens FIFOs and devices itself; a
	 * remote peer sends OPEN by inode as it likes, and a handle on any
	 * other type would read bytes no readdir or readlink gives (t7026). */
	if ((flags & VV_OPEN_EXEC) && !S_ISREG(n->a.mode)) {
		r = VV_EACCES;
		goto out;
	}
	if (!S_ISREG(n->a.mode)) {
		r = S_ISDIR(n->a.mode) ? VV_EISDIR : S_ISLNK(n->a.mode) ? VV_ELOOP : VV_ENOTSUP;
		goto out;
	}
	if ((mask & VV_MAY_WRITE) && (r = vault_snap_ro(ino)) < 0)
		goto out;
	if ((r = vault_node_check(v, c, n, mask)) < 0)
		goto out;
	node_opened(n, flags);
	f->n = n;
	f->flags = flags;
	vault_file_owner(v, f, c);
	vault_data_file_track(v, f);
	*keep_cache = n->open_gen == n->data_gen;
	n->open_gen = n->data_gen;
out:
	if (r < 0)
		vault_audit_open_denied(v, c, ino, n, flags, r);
	else if (!(flags & O_TRUNC) || !S_ISREG(n->a.mode))
		vault_audit_file(v, c, "open", f, 0);
	vault_node_put(v, n);
	pthread_mutex_unlock(&v->mu);
	if (r < 0) {
		vault_file_free(f);
		return r;
	}
	if ((flags & O_TRUNC) && S_ISREG(n->a.mode)) {
		struct vv_perm p;
		pthread_rwlock_wrlock(&n->rw);
		r = n->a.size ? vault_data_truncate(v, n, 0) : 0;
		pthread_mutex_lock(&v->mu);
		if (r == 0) {
			uint32_t mode;
			vault_xattr_killcap(v, c, n);
			vault_node_perm(v, n, &p);
			mode = vv_access_killpriv(&c->id, &p);
			if (mode != n->a.mode && v->inval)
				v->inval(v->inval_ctx, n->ino, NULL);
			n->a.mode = mode;
			n->a.mtime = n->a.ctime = vault_now();
			r = vault_node_save(v, n);
		}
		vault_audit_file(v, c, "open", f, r);
		pthread_mutex_unlock(&v->mu);
		pthread_rwlock_unlock(&n->rw);
		*keep_cache = false;
		if (r < 0) {
			vv_vault_release(v, f);
			return r;
		}
	}
	*fh = f;
	return 0;
}

/* Take the data lock for reading with the data loaded. */
int vault_data_rdlock(struct vv_vault *v, struct node *n)
{
	int r = 0;

	pthread_rwlock_rdlock(&n->rw);
	/* Purged from the trash while open: the handle reads nothing more. */
	if (__atomic_load_n(&n->revoked, __ATOMIC_ACQUIRE)) {
		pthread_rwlock_unlock(&n->rw);
		return VV_EIO;
	}
	if (n->data_loaded)
		return 0;
	pthread_rwlock_unlock(&n->rw);
	pthread_rwlock_wrlock(&n->rw);
	r = vault_data_load(v, n);
	pthread_rwlock_unlock(&n->rw);
	if (r < 0)
		return r;
	pthread_rwlock_rdlock(&n->rw);
	return 0;
}

/* Append len bytes at p (own: a handed-over block behind them, or NULL: p
 * is in the caller's buffer, merged with a preceding piece of it). */
static void rvec_add(struct vv_read_vec *rv, uint8_t *p, size_t len, uint8_t *own)
{
	struct iovec *last = rv->n ? &rv->iov[rv->n - 1] : NULL;

	if (!own && last && !rv->own[rv->n - 1] && (uint8_t *)last->iov_base + last->iov_len == p) {
		last->iov_len += len;
		return;
	}
	rv->iov[rv->n].iov_base = p;
	rv->iov[rv->n].iov_len = len;
	rv->own[rv->n++] = own;
}

/* vault_data_read; rv (may be NULL): also list the bytes as segments, which
 * may be blocks handed over by the cache instead of copied into out. */
static int data_read(struct vv_vault *v, struct node *n, uint8_t *out, uint64_t off,
		     uint64_t end, struct vv_read_vec *rv)
{
	const uint8_t *key = NULL;
	int r;

	if (n->is_inline) {
		if (n->inl)
			memcpy(out, n->inl + off, end - off);
		else
			memset(out, 0, end - off);
		if (rv)
			rvec_add(rv, out, end - off, NULL);
		return 0;
	}
	if (n->next && (r = node_key(v, n, &key)) < 0)
		return r;
	for (uint64_t pos = off; pos < end;) {
		uint64_t fb = pos / BS, bstart = fb * BS;
		uint32_t lo = (uint32_t)(pos - bstart);
		uint32_t hi = (uint32_t)((end - bstart) < BS ? end - bstart : BS);
		uint8_t *tk = NULL, *o = out + (pos - off);
		/* Room for this piece and one more (the rest, copied). */
		bool take = rv && rv->n + 2 < VV_READ_VEC_MAX;
		if ((r = read_block(v, n, key, fb, lo, hi, o, take ? &tk : NULL)) < 0)
			return r;
		if (rv)
			rvec_add(rv, tk ? tk + lo : o, hi - lo, tk);
		pos = bstart + hi;
	}
	return 0;
}

/* Bytes [off, end) of n (end <= size) into out.  Under n->rw (read) with the
 * data loaded. */
int vault_data_read(struct vv_vault *v, struct node *n, uint8_t *out, uint64_t off, uint64_t end)
{
	return data_read(v, n, out, off, end, NULL);
}

int vault_data_segment_probe(struct vv_vault *v, struct node *n, enum vv_seg_format f,
		       struct vv_segment_info *si, const char **why)
{
	uint8_t head[VV_VEC_PROBE_LEN];
	uint64_t hl = n->a.size < sizeof(head) ? n->a.size : sizeof(head);
	int r;

	if ((r = vault_data_read(v, n, head, 0, hl)) < 0)
		return r;
	return vv_segment_probe(f, head, (size_t)hl, n->a.size, si, why);
}

/* Extents of blocks [lo, hi) of n: *first and the count (contiguous: the
 * map is sorted by block). */
static size_t ext_range(struct node *n, uint64_t lo, uint64_t hi, size_t *first)
{
	size_t i;

	*first = ext_lower(n, lo);
	for (i = *first; i < n->next && n->ext[i].fblock < hi; i++)
		;
	return i - *first;
}

/* Read-ahead for a read of [off, end) on fh (under n->rw, read, with the
 * data loaded).  The request's blocks after its first are handed to the
 * content module's workers, so they decrypt in parallel with the first;
 * when fh reads sequentially (this read starts near where its previous one
 * ended) the next RA_WINDOW bytes are queued as well, topped up once half
 * of the window is consumed.  Only cache work: nothing is served or counted
 * here, so the audit and the handle's rights are untouched, and a block
 * that fails to decrypt is left for the reader, who reports it.  Requests
 * of one handle may run concurrently: the two positions are hints, and a
 * lost update costs a skipped or repeated (no-op) prefetch, never bytes. */
static void read_ahead(struct vv_vault *v, struct vv_file *fh, struct node *n, uint64_t off,
		      uint64_t end)
{
	uint64_t next = __atomic_load_n(&fh->ra_next, __ATOMIC_RELAXED);
	uint64_t queued = __atomic_load_n(&fh->ra_end, __ATOMIC_RELAXED);
	uint64_t lo = off / BS + 1, hi = (end + BS - 1) / BS, ra_to = 0;
	bool seq = off + RA_NEAR >= next && off <= next + RA_NEAR;
	const uint8_t *key = NULL;
	size_t first, cnt, covered = 0;

	__atomic_store_n(&fh->ra_next, end, __ATOMIC_RELAXED);
	if (n->is_inline || !n->next)
		return;
	if (seq && end + RA_WINDOW / 2 > queued) {
		ra_to = end + RA_WINDOW < n->a.size ? end + RA_WINDOW : n->a.size;
		if (queued > end)
			lo = queued / BS;        /* up to queued was queued before */
		hi = (ra_to + BS - 1) / BS;
	} else if (seq && queued >= end) {
		return;                      /* this request's blocks were queued */
	}
	if (lo >= hi)
		return;
	cnt = ext_range(n, lo, hi, &first);
	if (!cnt || node_key(v, n, &key) < 0)
		return;
	vv_content_prefetch(v->content, key, n->a.objid, &n->ext[first], cnt, &covered);
	/* The queue may be full (other readers, or the window's previous half
	 * still decrypting): the window then ends where queueing stopped, and
	 * the next request queues the rest.  Recording ra_to regardless left
	 * those blocks to the reader's own thread, one after another (13% of
	 * a cold 512 MiB read). */
	if (ra_to && covered < cnt)
		ra_to = n->ext[first + covered].fblock * BS;
	if (ra_to)
		__atomic_store_n(&fh->ra_end, ra_to, __ATOMIC_RELAXED);
}

static ssize_t file_read(struct vv_vault *v, struct vv_file *fh, void *buf, size_t size,
			 uint64_t off, struct vv_read_vec *rv)
{
	struct node *n = fh->n;
	uint64_t end;
	int r;

	if (!file_may_read(fh))
		return VV_EBADF;
	if ((r = vault_audit_gate(v)) < 0)
		return r;
	if (!n) {                                    /* a virtual file (.trashinfo) */
		if (off >= fh->virt_len)
			return 0;
		end = off + size < fh->virt_len ? off + size : fh->virt_len;
		memcpy(buf, fh->virt + off, end - off);
		if (rv)
			rvec_add(rv, buf, end - off, NULL);
		return (ssize_t)(end - off);
	}
	if ((r = vault_data_rdlock(v, n)) < 0)
		return r;
	if (off >= n->a.size) {
		pthread_rwlock_unlock(&n->rw);
		return 0;
	}
	end = off + size < n->a.size ? off + size : n->a.size;
	if (!__atomic_load_n(&n->pushed, __ATOMIC_RELAXED))
		__atomic_store_n(&n->pushed, true, __ATOMIC_RELAXED);   /* the kernel has pages */
	read_ahead(v, fh, n, off, end);
	r = data_read(v, n, buf, off, end, rv);
	pthread_rwlock_unlock(&n->rw);
	if (r < 0)
		return r;
	__atomic_fetch_add(&fh->rbytes, end - off, __ATOMIC_RELAXED);
	__atomic_fetch_add(&fh->rcount, 1, __ATOMIC_RELAXED);
	return (ssize_t)(end - off);
}

ssize_t vv_vault_read(struct vv_vault *v, struct vv_file *fh, void *buf, size_t size, uint64_t off)
{
	return file_read(v, fh, buf, size, off, NULL);
}

ssize_t vv_vault_read_vec(struct vv_vault *v, struct vv_file *fh, void *buf, size_t size,
			  uint64_t off, struct vv_read_vec *rv)
{
	ssize_t r;

	rv->n = 0;
	r = file_read(v, fh, buf, size, off, rv);
	if (r < 0)
		vv_vault_read_vec_done(v, rv);  /* nothing of a failed read is sent */
	return r;
}

void vv_vault_read_vec_done(struct vv_vault *v, struct vv_read_vec *rv)
{
	for (int i = 0; i < rv->n; i++)
		vv_content_buf_put(v->content, rv->own[i]);
	rv->n = 0;
}

bool vv_vault_file_shared(struct vv_vault *v, const struct vv_file *fh)
{
	bool shared;

	if (!fh || !fh->n)
		return false;
	pthread_mutex_lock(&v->mu);
	shared = fh->n->nopen > 1;
	pthread_mutex_unlock(&v->mu);
	return shared;
}

ssize_t vv_vault_write(struct vv_vault *v, const struct vv_ctx *c, struct vv_file *fh,
		       const void *buf, size_t size, uint64_t off)
{
	struct node *n = fh->n;
	const uint8_t *in = buf, *key = NULL;
	uint64_t end, pos;
	int r = 0;

	if (!file_may_write(fh) || !n)
		return VV_EBADF;
	if ((r = vault_audit_gate(v)) < 0)
		return r;
	seal_throttle(v);
	pthread_rwlock_wrlock(&n->rw);
	if (n->seal_err) {
		/* An earlier write-back failed (the data is still buffered and
		 * retried): report it, once, like a delayed write error. */
		r = n->seal_err;
		n->seal_err = 0;
		goto out;
	}
	if ((r = vault_data_load(v, n)) < 0)
		goto out;
	if (fh->flags & O_APPEND)
		off = n->a.size;
	if (off > VV_MAX_FILE_SIZE || size > VV_MAX_FILE_SIZE - off) {
		r = VV_EFBIG;
		goto out;
	}
	end = off + size;
	if (size == 0)
		goto out;
	pthread_mutex_lock(&v->mu);
	r = vault_space_ok(v);
	if (r == 0 && c)
		vault_xattr_killcap(v, c, n);
	pthread_mutex_unlock(&v->mu);
	if (r < 0)
		goto out;
	if ((n->a.mode & (S_ISUID | S_ISGID)) && c && c->id.uid != 0) {
		struct vv_perm p;
		uint32_t mode;
		pthread_mutex_lock(&v->mu);
		vault_node_perm(v, n, &p);
		mode = vv_access_killpriv(&c->id, &p);
		if (mode != n->a.mode) {
			n->a.mode = mode;
			n->a.ctime = vault_now();
			/* The kernel caches the old mode: drop its attributes. */
			if (v->inval)
				v->inval(v->inval_ctx, n->ino, NULL);
		}
		pthread_mutex_unlock(&v->mu);
	}
	if (n->is_inline && end <= VV_INLINE_MAX) {
		if ((r = inl_reserve(n, end)) < 0)
			goto out;
		memcpy(n->inl + off, in, size);
	} else {
		if ((r = uninline(v, n)) < 0)
			goto out;
		if (n->next && (r = node_key(v, n, &key)) < 0)
			goto out;
		for (pos = off; pos < end;) {
			uint64_t fb = pos / BS, bstart = fb * BS;
			uint32_t lo = (uint32_t)(pos - bstart);
			uint32_t hi = (uint32_t)((end - bstart) < BS ? end - bstart : BS);
			struct dblock *d;
			if ((r = get_dirty(v, n, key, fb, lo == 0 ? hi : 0, &d)) < 0)
				goto out;
			memcpy(d->buf + lo, in + (pos - off), hi - lo);
			if (d->len < hi)
				d->len = hi;
			pos = bstart + hi;
		}
	}
	pthread_mutex_lock(&v->mu);
	if (end > n->a.size)
		n->a.size = end;
	n->a.mtime = n->a.ctime = vault_now();
	n->data_gen = vault_gen_next(v);
	n->data_dirty = true;
	pthread_mutex_unlock(&v->mu);
	vault_data_changed(v, n);
	if (n->ndirty >= VV_FLUSH_BLOCKS)
		r = vault_data_flush(v, n);
out:
	pthread_rwlock_unlock(&n->rw);
	if (r < 0) {
		fh->err = r;
		return r;
	}
	__atomic_fetch_add(&fh->wbytes, size, __ATOMIC_RELAXED);
	__atomic_fetch_add(&fh->wcount, 1, __ATOMIC_RELAXED);
	return (ssize_t)size;
}

/* Hand n's buffered data to the sealer and wait until it is in the extent
 * map (or failed).  take: a writer's flush, fsync or close, which reports a
 * failed write-back once (and clears it).  Otherwise a background flush
 * (the ticker's, sync, snapshot, backup, fsck, the vault's close): it
 * leaves the error for the writer, who would never see it if the ticker
 * took it (the failed blocks are retried and may well be written by then),
 * and fails only while n's blocks are still not written. */
static int flush_node(struct vv_vault *v, struct node *n, bool take)
{
	int r, e;

	pthread_rwlock_wrlock(&n->rw);
	r = vault_data_flush(v, n);
	pthread_rwlock_unlock(&n->rw);
	seal_wait(v, n);
	if (take) {
		e = __atomic_exchange_n(&n->seal_err, 0, __ATOMIC_ACQ_REL);
	} else {
		pthread_rwlock_rdlock(&n->rw);
		e = n->ndirty ? __atomic_load_n(&n->seal_err, __ATOMIC_ACQUIRE) : 0;
		pthread_rwlock_unlock(&n->rw);
	}
	return r < 0 ? r : e;
}

int vv_vault_flush(struct vv_vault *v, struct vv_file *fh)
{
	int r = fh->n ? flush_node(v, fh->n, true) : 0;

	if (r == 0 && fh->err) {
		r = fh->err;
		fh->err = 0;
	}
	return r;
}

int vv_vault_fsync(struct vv_vault *v, struct vv_file *fh, bool datasync)
{
	int r = fh->n ? flush_node(v, fh->n, true) : 0, r2;

	(void)datasync;
	pthread_mutex_lock(&v->mu);
	r2 = vault_commit_group(v, true);
	pthread_mutex_unlock(&v->mu);
	return r < 0 ? r : r2;
}

void vault_data_file_track(struct vv_vault *v, struct vv_file *f)
{
	f->prev = NULL;
	f->next = v->files;
	if (v->files)
		v->files->prev = f;
	v->files = f;
}

void vault_data_files_free(struct vv_vault *v)
{
	size_t n = 0;

	while (v->files) {
		struct vv_file *f = v->files;
		v->files = f->next;
		vault_file_free(f);
		n++;
	}
	if (n)
		vv_log(VV_LOG_INFO, "vault: %zu handle(s) were still open at close (unmounted "
		       "with files open); their data was flushed", n);
}

int vv_vault_release(struct vv_vault *v, struct vv_file *fh)
{
	struct node *n = fh->n;
	int r;

	if (!n) {                                    /* a virtual file: nothing kept */
		free(fh->virt);
		free(fh);
		return 0;
	}
	/* A handle that could not write, on a file with nothing buffered or
	 * in flight, has nothing to flush or wait for: one lock instead of
	 * flush_node's three (the sealer's among them).  It takes no
	 * write-back error either: that is a writer's to see. */
	pthread_rwlock_wrlock(&n->rw);
	if (file_may_write(fh) || (fh->flags & O_TRUNC) || n->data_dirty || n->ndirty ||
	    n->nsealing || __atomic_load_n(&n->jobs, __ATOMIC_ACQUIRE)) {
		pthread_rwlock_unlock(&n->rw);
		r = flush_node(v, n, true);
		pthread_rwlock_wrlock(&n->rw);
	} else {
		r = 0;
	}
	if (r < 0 && n->ndirty && __atomic_load_n(&n->nopen, __ATOMIC_RELAXED) == 1) {
		/* The last close of a file whose buffered data cannot be written
		 * (the error is returned to close(2) now): drop it, as the kernel
		 * drops pages it cannot write back, rather than hold it and
		 * retry forever.  The unwritten ranges read as zeros. */
		vv_log(VV_LOG_ERR, "vault: inode %llu: %zu buffered block(s) could not be written (%s) "
		       "and are dropped", (unsigned long long)n->ino, n->ndirty, vv_strerror(r));
		for (size_t i = 0; i < n->ndirty; i++)
			blk_free(v, n->dirty[i].buf);
		n->ndirty = 0;
		n->data_dirty = false;
	}
	if (r == 0 && __atomic_load_n(&n->nopen, __ATOMIC_RELAXED) == 1)
		data_unload(n);
	pthread_rwlock_unlock(&n->rw);

	pthread_mutex_lock(&v->mu);
	vault_audit_file(v, NULL, "close", fh, r);
	if (fh->prev)
		fh->prev->next = fh->next;
	else
		v->files = fh->next;
	if (fh->next)
		fh->next->prev = fh->prev;
	__atomic_fetch_sub(&n->nopen, 1, __ATOMIC_RELAXED);
	if (open_may_change(fh->flags))
		n->nwrite--;
	vault_node_maybe_free(v, n);
	pthread_mutex_unlock(&v->mu);
	vault_file_free(fh);
	return r;
}

int vv_vault_fallocate(struct vv_vault *v, const struct vv_ctx *c, struct vv_file *fh,
		       int mode, uint64_t off, uint64_t len)
{
	struct node *n = fh->n;
	int r = 0;

	if (mode & ~FALLOC_FL_KEEP_SIZE)
		return VV_ENOTSUP;
	if (len == 0)
		return VV_EINVAL;
	if (off > VV_MAX_FILE_SIZE || len > VV_MAX_FILE_SIZE - off)
		return VV_EFBIG;
	if (!file_may_write(fh))
		return VV_EBADF;
	pthread_mutex_lock(&v->mu);
	vault_xattr_killcap(v, c, n);      /* a change of the file, like a write */
	pthread_mutex_unlock(&v->mu);
	if (mode & FALLOC_FL_KEEP_SIZE)
		return 0;           /* chunks are written on demand: nothing to reserve */
	pthread_rwlock_wrlock(&n->rw);
	if (off + len > n->a.size) {
		r = vault_data_truncate(v, n, off + len);
		if (r == 0) {
			pthread_mutex_lock(&v->mu);
			n->a.ctime = vault_now();
			r = vault_node_save(v, n);
			pthread_mutex_unlock(&v->mu);
		}
	}
	pthread_rwlock_unlock(&n->rw);
	return r;
}

int vault_data_seek(struct node *n, uint64_t off, int whence, uint64_t *out)
{
	uint64_t size = n->a.size, fb;

	if (whence != SEEK_DATA && whence != SEEK_HOLE)
		return VV_EINVAL;            /* the loop below ends only for these */
	if (off >= size)
		return VV_ENXIO;
	if (n->is_inline) {
		*out = whence == SEEK_DATA ? off : size;
		return 0;
	}
	for (fb = off / BS; fb * BS < size; fb++) {
		bool data = find_ext(n, fb) || find_dirty(n, fb) || find_sealing(n, fb);
		if (whence == SEEK_DATA && data)
			break;
		if (whence == SEEK_HOLE && !data)
			break;
		/* Skip long holes quickly: jump to the next extent or dirty block. */
		if (whence == SEEK_DATA) {
			uint64_t next = UINT64_MAX;
			size_t i = dirty_pos(n, fb + 1);
			if (i < n->ndirty)
				next = n->dirty[i].fblock;
			for (size_t j = 0; j < n->nsealing; j++)
				if (n->sealing[j].fblock > fb && n->sealing[j].fblock < next)
					next = n->sealing[j].fblock;
			for (size_t j = 0; j < n->next; j++)
				if (n->ext[j].fblock > fb) {
					if (n->ext[j].fblock < next)
						next = n->ext[j].fblock;
					break;
				}
			if (next == UINT64_MAX) {
				fb = (size + BS - 1) / BS;
				break;
			}
			fb = next - 1;
		}
	}
	if (fb * BS >= size) {
		if (whence == SEEK_DATA)
			return VV_ENXIO;
		*out = size;
		return 0;
	}
	*out = fb * BS > off ? fb * BS : off;
	return 0;
}

int vv_vault_lseek(struct vv_vault *v, struct vv_file *fh, int64_t off, int whence, int64_t *out)
{
	struct node *n = fh->n;
	uint64_t pos;
	int r;

	/* The kernel sends only these (it answers SEEK_SET, SEEK_CUR and
	 * SEEK_END itself); a remote peer sends any number, and any other
	 * made vault_data_seek walk every block of the file: 2^46 steps
	 * under the node's lock for a sparse file of 4 EiB. */
	if (whence != SEEK_DATA && whence != SEEK_HOLE)
		return VV_EINVAL;
	if (off < 0 || (!n && (uint64_t)off >= fh->virt_len))
		return VV_ENXIO;
	if (!n) {                                    /* a virtual file: all data */
		*out = whence == SEEK_DATA ? off : (int64_t)fh->virt_len;
		return 0;
	}
	if ((r = vault_data_rdlock(v, n)) < 0)
		return r;
	r = vault_data_seek(n, (uint64_t)off, whence, &pos);
	pthread_rwlock_unlock(&n->rw);
	if (r == 0)
		*out = (int64_t)pos;
	return r;
}

int vault_flush_all(struct vv_vault *v)
{
	struct node **list = NULL;
	size_t n = 0, cap = 0;
	int r = 0;

	pthread_mutex_lock(&v->mu);
	for (size_t i = 0; i < v->nodes.hsize; i++)
		for (struct node *x = v->nodes.htab[i]; x; x = x->hnext) {
			if (!x->data_dirty)
				continue;
			if (VV_GROW(list, n, cap) < 0) {
				r = VV_ENOMEM;
				goto done;
			}
			x->pins++;
			list[n++] = x;
		}
done:
	pthread_mutex_unlock(&v->mu);
	for (size_t i = 0; i < n; i++) {
		int r2 = flush_node(v, list[i], false);
		if (r == 0)
			r = r2;
	}
	pthread_mutex_lock(&v->mu);
	for (size_t i = 0; i < n; i++)
		vault_node_put(v, list[i]);
	pthread_mutex_unlock(&v->mu);
	free(list);
	/* And whatever else is queued: after this, everything written is in
	 * the extent maps of the open transaction. */
	pthread_mutex_lock(&v->seal.mu);
	while (v->seal.head || v->seal.busy)
		pthread_cond_wait(&v->seal.done, &v->seal.mu);
	pthread_mutex_unlock(&v->seal.mu);
	return r;
}
