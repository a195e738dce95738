/*
 * content.c - encrypted chunk objects: write once, sync in batches, read
 * through a decrypted-block cache (see content_int.h for the contract).
 *
 * Chunk object STORE/chunks/XX/<64 hex id>  (XX = first two hex chars):
 *
 *   offset  size        field
 *   0       1           version = 1
 *   1       15          reserved, zero (checked on read)
 *   16      len0 + 16   block slot 0: AES-256-GCM ciphertext || tag
 *   ...     lenI + 16   block slot I, right after slot I-1
 *
 * Nothing else is in clear: no magic, no block count, no file sizes.  The
 * offsets and lengths live in the (encrypted) metadata's extent records.
 *
 *   chunk key = vv_chunk_key(collection key, chunk id)   (keyed BLAKE2b)
 *   nonce     = slot as u32 LE, then 8 zero bytes (12 bytes)
 *   AD (80 B) = "vecvault-block/1" (16) || object id (16) || fblock u64 LE
 *               || chunk id (32) || slot u32 LE || plaintext length u32 LE
 *
 * A chunk is written exactly once with a fresh random 256-bit id, so a
 * (key, nonce) pair never repeats; the AD makes a block fail authentication
 * if it is presented for another file, position, chunk, slot or length.
 *
 * Durability: a chunk is written under chunks/XX/.tmp-<id> and renamed, so a
 * partial object never carries a final name; no fsync happens on the write
 * path.  vv_content_sync() fsyncs the pending chunks and their directories.
 *
 * Read caches: (1) decrypted blocks, keyed by (chunk id, slot), LRU, sharded
 * so that many FUSE threads do not queue on one lock; an entry remembers the
 * key fingerprint, object id, fblock, offset and length it was authenticated
 * with, and a lookup that differs in any of them decrypts again, so the cache
 * never turns a wrong extent into right data.  (2) open chunk fds with a small
 * pool of GCM contexts (key schedules) each, so a cold read costs one pread
 * and one decrypt, not an open and a key derivation.  Read-ahead (the queue
 * and its workers) is content_ra.c; it reaches the cache only through
 * loads (content_ra_int.h), which are cache entries this file makes.
 *
 * This file is the read side and the object's layout; writing chunks,
 * their syncs, unlink and listing are content_store.c's (what the two
 * share: content_impl_int.h).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "buf.h"
#include "content_impl_int.h"
#include "content_int.h"
#include "content_ra_int.h"
#include "crypto_int.h"
#include "grow.h"
#include "os.h"
#include "vecvault/error.h"
#include "vecvault/log.h"

#define AD_DOMAIN "vecvault-block/1"
#define CTX_POOL 4               /* GCM contexts kept per open chunk */
#define EXTENT_BLOB_VERSION 1
#define BUF_BYTES (VV_BLOCK_SIZE + VV_TAG_BYTES)
#define SLOT_BYTES (VV_BLOCK_SIZE + 4096)  /* arena stride: BUF_BYTES, page-rounded */
#define ARENA_SPARE 128          /* arena slots beyond the cache: in-flight reads */

/* ---- open chunks ------------------------------------------------------ */

struct cent {
	uint8_t id[VV_CHUNK_ID_BYTES];
	uint8_t kfp[KFP_BYTES];
	int fd;
	int refs;
	bool dead;                               /* removed from table; free at refs 0 */
	uint64_t used;                           /* LRU clock */
	struct vv_gcm *pool[CTX_POOL];
	int npool;
};

/* ---- helpers -------------------------------------------------------------- */

void content_chunk_path(const struct vv_content *c, const uint8_t id[VV_CHUNK_ID_BYTES],
			char *out, size_t cap, bool tmp)
{
	char hex[HEX_ID + 1];

	vv_hex_encode(hex, id, VV_CHUNK_ID_BYTES);
	snprintf(out, cap, "%s/%.2s/%s%s", c->chunks, hex, tmp ? ".tmp-" : "", hex);
}

void content_make_nonce(uint8_t nonce[VV_GCM_NONCE_BYTES], uint32_t slot)
{
	memset(nonce, 0, VV_GCM_NONCE_BYTES);
	vv_put_le32(nonce, slot);
}

void content_make_ad(uint8_t ad[AD_BYTES], const uint8_t *objid, uint64_t fblock,
		     const uint8_t id[VV_CHUNK_ID_BYTES], uint32_t slot, uint32_t len)
{
	struct vv_wbuf w;

	vv_wbuf_init(&w, ad, AD_BYTES);
	vv_wbuf_put_bytes(&w, AD_DOMAIN, 16);
	vv_wbuf_put_bytes(&w, objid, VV_OBJID_BYTES);
	vv_wbuf_put_u64(&w, fblock);
	vv_wbuf_put_bytes(&w, id, VV_CHUNK_ID_BYTES);
	vv_wbuf_put_u32(&w, slot);
	vv_wbuf_put_u32(&w, len);
}

/* A fingerprint of the collection key, so cache entries made under one key
 * are never served to a caller holding another. */
static int key_fp(uint8_t fp[KFP_BYTES], const uint8_t coll_key[VV_KEY_BYTES])
{
	static const char msg[] = "vecvault content cache key fingerprint";
	uint8_t m[VV_MAC_BYTES];
	int r = vv_mac(m, coll_key, msg, sizeof(msg) - 1);

	memcpy(fp, m, KFP_BYTES);
	return r;
}

static size_t id_hash(const uint8_t id[VV_CHUNK_ID_BYTES], uint32_t slot)
{
	/* Chunk ids are uniformly random; mixing the slot spreads one chunk's
	 * blocks over all shards, so a sequential reader does not pin one lock. */
	uint64_t h = vv_get_le64(id) ^ ((uint64_t)slot * 0x9e3779b97f4a7c15ull);

	h ^= h >> 29;
	return (size_t)h;
}

static bool extent_ok(const struct vv_extent *e)
{
	return e->len >= 1 && e->len <= VV_BLOCK_SIZE && e->slot < VV_CHUNK_MAX_BLOCKS &&
	       e->off >= VV_CHUNK_HDR_BYTES &&
	       (uint64_t)e->off + e->len + VV_TAG_BYTES <= UINT32_MAX;
}

uint64_t vv_content_extent_end(const struct vv_extent *e)
{
	return (uint64_t)e->off + e->len + VV_TAG_BYTES;
}

int vv_content_open_mem(const uint8_t coll_key[32], const uint8_t objid[VV_OBJID_BYTES],
			const struct vv_extent *e, const uint8_t *chunk, size_t chunklen,
			uint8_t *out)
{
	uint8_t nonce[VV_GCM_NONCE_BYTES], ad[AD_BYTES], key[VV_KEY_BYTES];
	struct vv_gcm *g = NULL;
	int r;

	if (!extent_ok(e))
		return VV_EINVAL;
	if (chunklen < VV_CHUNK_HDR_BYTES || chunk[0] != VV_CHUNK_VERSION ||
	    vv_content_extent_end(e) > chunklen)
		return VV_ECORRUPT;
	for (int i = 1; i < VV_CHUNK_HDR_BYTES; i++)
		if (chunk[i])
			return VV_ECORRUPT;
	if ((r = vv_chunk_key(key, coll_key, e->chunk_id, VV_CHUNK_ID_BYTES)) < 0 ||
	    (r = vv_gcm_new(key, &g)) < 0)
		goto out;
	content_make_nonce(nonce, e->slot);
	content_make_ad(ad, objid, e->fblock, e->chunk_id, e->slot, e->len);
	r = vv_gcm_open(g, nonce, ad, sizeof(ad), chunk + e->off, e->len, chunk + e->off + e->len, out);
out:
	vv_gcm_free(g);
	vv_memzero(key, sizeof(key));
	if (r < 0)
		memset(out, 0, e->len);
	return r;
}

/* ---- block cache ---------------------------------------------------------- */

static struct shard *shard_of(struct vv_content *c, size_t h)
{
	return &c->shards[(h >> 8) % NSHARDS];
}

static void lru_unlink(struct bent *b)
{
	b->prev->next = b->next;
	b->next->prev = b->prev;
}

static void lru_push(struct shard *s, struct bent *b)
{
	b->next = s->lru.next;
	b->prev = &s->lru;
	s->lru.next->prev = b;
	s->lru.next = b;
}

static struct bent **bucket(struct shard *s, size_t h)
{
	return &s->tab[h & (s->nb - 1)];
}

static bool in_arena(const struct vv_content *c, const uint8_t *p)
{
	return c->arena && p >= c->arena && p < c->arena + (size_t)c->nslots * SLOT_BYTES;
}

/* Map the buffer arena (best effort: without it buffers come from malloc). */
static void arena_map(struct vv_content *c, size_t cache_bytes)
{
	size_t n = cache_bytes / VV_BLOCK_SIZE + ARENA_SPARE, len;
	uintptr_t a;

	if (!cache_bytes || n > UINT32_MAX)
		return;
	len = n * SLOT_BYTES + HUGE_BYTES;
	c->amap = mmap(NULL, len, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (c->amap == MAP_FAILED) {
		c->amap = NULL;
		return;
	}
	if (!(c->afree = malloc(n * sizeof(*c->afree)))) {
		munmap(c->amap, len);
		c->amap = NULL;
		return;
	}
	c->amaplen = len;
	a = ((uintptr_t)c->amap + HUGE_BYTES - 1) & ~(uintptr_t)(HUGE_BYTES - 1);
	c->arena = (uint8_t *)a;
	c->nslots = (uint32_t)n;
	/* Hints only: failures change speed, not behaviour. */
	madvise(c->arena, n * SLOT_BYTES, MADV_HUGEPAGE);
	madvise(c->arena, n * SLOT_BYTES, MADV_DONTDUMP);
	/* Lowest slots on top: the first buffers share huge pages. */
	for (uint32_t i = 0; i < c->nslots; i++)
		c->afree[i] = c->nslots - 1 - i;
	c->nafree = c->nslots;
}

static uint8_t *buf_get(struct vv_content *c)
{
	uint8_t *p = NULL;

	pthread_mutex_lock(&c->fmu);
	if (c->nafree > 0)
		p = c->arena + (size_t)c->afree[--c->nafree] * SLOT_BYTES;
	else if (c->nfree > 0)
		p = c->freel[--c->nfree];
	pthread_mutex_unlock(&c->fmu);
	return p ? p : malloc(BUF_BYTES);
}

static void buf_put(struct vv_content *c, uint8_t *p)
{
	if (!p)
		return;
	pthread_mutex_lock(&c->fmu);
	if (in_arena(c, p)) {
		c->afree[c->nafree++] = (uint32_t)((size_t)(p - c->arena) / SLOT_BYTES);
		p = NULL;
	} else if (c->nfree < FREE_MAX) {
		c->freel[c->nfree++] = p;
		p = NULL;
	}
	pthread_mutex_unlock(&c->fmu);
	free(p);
}

static void bent_free(struct vv_content *c, struct bent *b)
{
	if (!b)
		return;
	buf_put(c, b->data);
	free(b);
}

/* Remove b from its shard (lock held); caller frees. */
static void shard_remove(struct shard *s, struct bent *b, size_t h)
{
	struct bent **pp = bucket(s, h);

	while (*pp && *pp != b)
		pp = &(*pp)->hnext;
	if (*pp)
		*pp = b->hnext;
	lru_unlink(b);
	s->bytes -= b->len;
}

static struct bent *shard_find(struct shard *s, size_t h, const uint8_t id[VV_CHUNK_ID_BYTES],
			       uint32_t slot)
{
	struct bent *b;

	for (b = *bucket(s, h); b; b = b->hnext)
		if (b->slot == slot && memcmp(b->id, id, VV_CHUNK_ID_BYTES) == 0)
			return b;
	return NULL;
}

/* Take b out of its shard (lock held) and add it to the victims list the
 * caller frees; a loading entry is only marked dead (its worker frees it). */
static struct bent *shard_take(struct shard *s, struct bent *b, size_t h, struct bent *victims)
{
	shard_remove(s, b, h);
	if (b->loading) {
		b->dead = true;
		return victims;
	}
	b->hnext = victims;
	return b;
}

/* Evict least recently used entries until len more bytes fit (lock held). */
static struct bent *shard_make_room(struct shard *s, uint32_t len, struct bent *victims)
{
	while (s->bytes + len > s->cap && s->lru.prev != &s->lru) {
		struct bent *old = s->lru.prev;
		victims = shard_take(s, old, id_hash(old->id, old->slot), victims);
	}
	return victims;
}

/* free() outside the shard lock keeps the critical section short. */
static void bents_free(struct vv_content *c, struct bent *victims)
{
	while (victims) {
		struct bent *next = victims->hnext;
		bent_free(c, victims);
		victims = next;
	}
}

/* Copy [from, from+n) of a cached block authenticated with exactly these
 * parameters into out; true on a hit.  taken (may be NULL): at the block's
 * use-once point its buffer is handed over in *taken instead of copied. */
static bool cache_get(struct vv_content *c, const uint8_t kfp[KFP_BYTES], const uint8_t *objid,
		      const struct vv_extent *e, uint32_t from, uint32_t n, uint8_t *out,
		      uint8_t **taken)
{
	size_t h = id_hash(e->chunk_id, e->slot);
	struct shard *s = shard_of(c, h);
	struct bent *b, *victim = NULL;
	bool hit = false;

	if (!s->cap)
		return false;
	pthread_mutex_lock(&s->mu);
	/* A read-ahead worker is decrypting this block: wait for it rather
	 * than decrypt it twice.  Re-found after each wake-up: it may be gone. */
	while ((b = shard_find(s, h, e->chunk_id, e->slot)) && b->loading)
		pthread_cond_wait(&s->cv, &s->mu);
	if (b && b->len == e->len && b->off == e->off && b->fblock == e->fblock &&
	    memcmp(b->kfp, kfp, KFP_BYTES) == 0 && memcmp(b->objid, objid, VV_OBJID_BYTES) == 0) {
		hit = true;
		if (taken && b->ra && from + n == b->len) {
			shard_remove(s, b, h);   /* handed over whole: no copy */
			*taken = b->data;
			b->data = NULL;
			victim = b;
		} else if (b->ra && from + n == b->len) {
			memcpy(out, b->data + from, n);
			/* Use-once: a block decrypted ahead of a sequential
			 * reader and now read to its end is dropped, and its
			 * buffer is the next one handed out.  Kept, a stream
			 * pushed every other block out and touched the whole
			 * arena, fresh memory the kernel zeroes on first use
			 * (a quarter of a cold read's CPU); the reader's pages
			 * are in the kernel's page cache now anyway. */
			shard_remove(s, b, h);
			b->hnext = NULL;
			victim = b;
		} else {
			memcpy(out, b->data + from, n);
			lru_unlink(b);
			lru_push(s, b);
		}
	}
	pthread_mutex_unlock(&s->mu);
	bent_free(c, victim);
	return hit;
}

/* A cache entry for extent e of objid under key fingerprint kfp, without
 * data (calloc'd; NULL when out of memory). */
static struct bent *bent_new(const uint8_t kfp[KFP_BYTES], const uint8_t *objid,
			     const struct vv_extent *e)
{
	struct bent *b = calloc(1, sizeof(*b));

	if (!b)
		return NULL;
	memcpy(b->id, e->chunk_id, VV_CHUNK_ID_BYTES);
	b->slot = e->slot;
	memcpy(b->kfp, kfp, KFP_BYTES);
	memcpy(b->objid, objid, VV_OBJID_BYTES);
	b->fblock = e->fblock;
	b->off = e->off;
	b->len = e->len;
	return b;
}

/* Insert freshly authenticated plaintext; takes ownership of data (freed if
 * not cached). */
static void cache_put(struct vv_content *c, const uint8_t kfp[KFP_BYTES], const uint8_t *objid,
		      const struct vv_extent *e, uint8_t *data)
{
	size_t h = id_hash(e->chunk_id, e->slot);
	struct shard *s = shard_of(c, h);
	struct bent *b = NULL, *old, *victims = NULL;

	if (e->len > s->cap || !(b = bent_new(kfp, objid, e))) {
		buf_put(c, data);
		return;
	}
	b->data = data;

	pthread_mutex_lock(&s->mu);
	/* A different authenticated view of the same slot (or a racing reader's
	 * copy) is replaced: the newest successful decrypt wins. */
	if ((old = shard_find(s, h, b->id, b->slot)))
		victims = shard_take(s, old, h, victims);
	victims = shard_make_room(s, b->len, victims);
	b->hnext = *bucket(s, h);
	*bucket(s, h) = b;
	lru_push(s, b);
	s->bytes += b->len;
	pthread_mutex_unlock(&s->mu);
	bents_free(c, victims);
}

void content_cache_drop_chunk(struct vv_content *c, const uint8_t id[VV_CHUNK_ID_BYTES])
{
	for (uint32_t slot = 0; slot < VV_CHUNK_MAX_BLOCKS; slot++) {
		size_t h = id_hash(id, slot);
		struct shard *s = shard_of(c, h);
		struct bent *b;

		if (!s->cap)
			continue;
		pthread_mutex_lock(&s->mu);
		if ((b = shard_find(s, h, id, slot)))
			b = shard_take(s, b, h, NULL);
		pthread_mutex_unlock(&s->mu);
		bent_free(c, b);
	}
}

static void shard_clear(struct vv_content *c, struct shard *s)
{
	struct bent *victims = NULL;

	pthread_mutex_lock(&s->mu);
	for (size_t i = 0; s->tab && i < s->nb; i++)
		while (s->tab[i])
			victims = shard_take(s, s->tab[i], i, victims);
	pthread_mutex_unlock(&s->mu);
	bents_free(c, victims);
}

/* ---- open-chunk table ---------------------------------------------------- */

static void cent_free(struct cent *ce)
{
	if (!ce)
		return;
	if (ce->fd >= 0)
		vv_os_close(ce->fd);
	for (int i = 0; i < ce->npool; i++)
		vv_gcm_free(ce->pool[i]);
	free(ce);
}

/* Remove entry i from the table (cmu held); returns it if it can be freed
 * now (no reader holds it), else marks it dead for the last release. */
static struct cent *ctx_remove(struct vv_content *c, int i)
{
	struct cent *ce = c->ctx[i];

	c->ctx[i] = c->ctx[--c->nctx];
	c->ctx[c->nctx] = NULL;
	ce->dead = true;
	return ce->refs == 0 ? ce : NULL;
}

static struct cent *ctx_find(struct vv_content *c, const uint8_t id[VV_CHUNK_ID_BYTES],
			     const uint8_t kfp[KFP_BYTES])
{
	for (int i = 0; i < c->nctx; i++)
		if (memcmp(c->ctx[i]->id, id, VV_CHUNK_ID_BYTES) == 0 &&
		    memcmp(c->ctx[i]->kfp, kfp, KFP_BYTES) == 0)
			return c->ctx[i];
	return NULL;
}

/* Open a chunk file and check its header. */
static int chunk_open(struct vv_content *c, const uint8_t id[VV_CHUNK_ID_BYTES], int *fdout)
{
	char path[PATH_MAX];
	uint8_t hdr[VV_CHUNK_HDR_BYTES];
	struct vv_rbuf rb;
	uint8_t ver;
	ssize_t got;
	int fd, r;

	content_chunk_path(c, id, path, sizeof(path), false);
	fd = vv_os_open(path, O_RDONLY, 0);
	if (fd < 0) {
		vv_log(VV_LOG_ERR, "content: cannot open chunk %s: %s", path, strerror(-fd));
		r = fd == -ENOENT ? VV_EIO : vv_err_from_errno(-fd);
		goto out;
	}
	got = vv_os_pread_full(fd, hdr, sizeof(hdr), 0);
	if (got < 0) {
		r = vv_err_from_errno((int)-got);
		goto out_close;
	}
	r = VV_ECORRUPT;
	vv_rbuf_init(&rb, hdr, (size_t)got);
	if (vv_rbuf_get_u8(&rb, &ver) < 0 || ver != VV_CHUNK_VERSION)
		goto out_bad;
	for (int i = 1; i < VV_CHUNK_HDR_BYTES; i++) {
		uint8_t z;
		if (vv_rbuf_get_u8(&rb, &z) < 0 || z != 0)
			goto out_bad;
	}
	*fdout = fd;
	r = 0;
	goto out;
out_bad:
	vv_log(VV_LOG_ERR, "content: chunk %s has a bad header", path);
out_close:
	vv_os_close(fd);
out:
	return r;
}

/* Get the open chunk for (id, key) with a GCM context for the caller's
 * exclusive use; release with ctx_release(). */
static int ctx_acquire(struct vv_content *c, const uint8_t coll_key[VV_KEY_BYTES],
		       const uint8_t kfp[KFP_BYTES], const uint8_t id[VV_CHUNK_ID_BYTES],
		       struct cent **ceout, struct vv_gcm **gout)
{
	struct cent *ce, *fresh = NULL, *victim = NULL;
	struct vv_gcm *g = NULL;
	int fd = -1, r = 0;

	pthread_mutex_lock(&c->cmu);
	ce = ctx_find(c, id, kfp);
	if (ce) {
		ce->refs++;
		ce->used = ++c->clock;
		if (ce->npool > 0)
			g = ce->pool[--ce->npool];
	}
	pthread_mutex_unlock(&c->cmu);

	if (!ce) {
		/* Open outside the lock: it is I/O. */
		if ((r = chunk_open(c, id, &fd)) < 0)
			goto out;
		if (!(fresh = calloc(1, sizeof(*fresh)))) {
			vv_os_close(fd);
			r = VV_ENOMEM;
			goto out;
		}
		memcpy(fresh->id, id, VV_CHUNK_ID_BYTES);
		memcpy(fresh->kfp, kfp, KFP_BYTES);
		fresh->fd = fd;
		pthread_mutex_lock(&c->cmu);
		ce = ctx_find(c, id, kfp);
		if (!ce) {
			if (c->nctx == CTX_MAX) {
				/* Evict the least recently used idle entry; if all
				 * are busy the new one is used once and dropped. */
				int vi = -1;
				for (int i = 0; i < c->nctx; i++)
					if (c->ctx[i]->refs == 0 &&
					    (vi < 0 || c->ctx[i]->used < c->ctx[vi]->used))
						vi = i;
				if (vi >= 0)
					victim = ctx_remove(c, vi);
			}
			ce = fresh;
			fresh = NULL;
			if (c->nctx < CTX_MAX)
				c->ctx[c->nctx++] = ce;
			else
				ce->dead = true;
		}
		ce->refs++;
		ce->used = ++c->clock;
		if (ce->npool > 0)
			g = ce->pool[--ce->npool];
		pthread_mutex_unlock(&c->cmu);
	}
	if (!g) {
		pthread_mutex_lock(&c->kmu);
		if ((r = vv_chunk_key(c->kscratch, coll_key, id, VV_CHUNK_ID_BYTES)) >= 0)
			r = vv_gcm_new(c->kscratch, &g);
		vv_memzero(c->kscratch, VV_KEY_BYTES);
		pthread_mutex_unlock(&c->kmu);
		if (r < 0)
			goto out_release;
	}
	*ceout = ce;
	*gout = g;
	goto out;
out_release:
	pthread_mutex_lock(&c->cmu);
	ce->refs--;
	if (!(ce->dead && ce->refs == 0))
		ce = NULL;
	pthread_mutex_unlock(&c->cmu);
	cent_free(ce);
out:
	cent_free(fresh);
	cent_free(victim);
	return r;
}

static void ctx_release(struct vv_content *c, struct cent *ce, struct vv_gcm *g)
{
	struct cent *dead = NULL;

	pthread_mutex_lock(&c->cmu);
	if (!ce->dead && ce->npool < CTX_POOL) {
		ce->pool[ce->npool++] = g;
		g = NULL;
	}
	if (--ce->refs == 0 && ce->dead)
		dead = ce;
	pthread_mutex_unlock(&c->cmu);
	vv_gcm_free(g);
	cent_free(dead);
}

void content_ctx_drop(struct vv_content *c, const uint8_t *id)
{
	struct cent *freeable[CTX_MAX];
	int nf = 0;

	pthread_mutex_lock(&c->cmu);
	for (int i = 0; i < c->nctx;) {
		if (id && memcmp(c->ctx[i]->id, id, VV_CHUNK_ID_BYTES) != 0) {
			i++;
			continue;
		}
		struct cent *ce = ctx_remove(c, i);
		if (ce)
			freeable[nf++] = ce;
	}
	pthread_mutex_unlock(&c->cmu);
	for (int i = 0; i < nf; i++)
		cent_free(freeable[i]);
}

/* ---- open / close -------------------------------------------------------- */

int vv_content_open(const char *store_dir, size_t cache_bytes, struct vv_content **out)
{
	struct vv_content *c = NULL;
	struct stat st;
	size_t per, nb;
	int r;

	*out = NULL;
	if ((r = vv_crypto_init()) < 0)
		goto out;
	r = VV_ENOMEM;
	if (!(c = calloc(1, sizeof(*c))))
		goto out;
	pthread_mutex_init(&c->mu, NULL);
	pthread_mutex_init(&c->cmu, NULL);
	pthread_mutex_init(&c->kmu, NULL);
	pthread_mutex_init(&c->fmu, NULL);
	if (!(c->kscratch = vv_secure_alloc(VV_KEY_BYTES)))
		goto out;
	per = cache_bytes / NSHARDS;
	/* About one bucket per cached full block, at least a few. */
	for (nb = 16; nb < per / VV_BLOCK_SIZE * 2; nb <<= 1)
		;
	for (int i = 0; i < NSHARDS; i++) {
		struct shard *s = &c->shards[i];
		pthread_mutex_init(&s->mu, NULL);
		pthread_cond_init(&s->cv, NULL);
		s->lru.next = s->lru.prev = &s->lru;
		s->cap = per;
		s->nb = nb;
		if (per && !(s->tab = calloc(nb, sizeof(*s->tab))))
			goto out;
	}
	if (!(c->ra = content_ra_new(c)))
		goto out;
	c->direct = true;
	arena_map(c, cache_bytes);
	if (!(c->store = strdup(store_dir)) ||
	    asprintf(&c->chunks, "%s/chunks", store_dir) < 0) {
		c->chunks = NULL;
		goto out;
	}
	if ((r = vv_os_stat(store_dir, &st)) < 0) {
		r = vv_err_from_errno(-r);
		goto out;
	}
	r = vv_os_mkdir(c->chunks, 0700);
	if (r == 0)
		c->store_dirty = true;   /* next sync makes chunks/ durable */
	else if (r != -EEXIST) {
		r = vv_err_from_errno(-r);
		goto out;
	}
	*out = c;
	c = NULL;
	r = 0;
out:
	vv_content_close(c);
	return r;
}

void vv_content_close(struct vv_content *c)
{
	if (!c)
		return;
	content_ra_free(c->ra);   /* no load may outlive the cache */
	c->ra = NULL;
	vv_content_cache_drop(c);
	for (int i = 0; i < NSHARDS; i++) {
		free(c->shards[i].tab);
		pthread_mutex_destroy(&c->shards[i].mu);
		pthread_cond_destroy(&c->shards[i].cv);
	}
	pthread_mutex_destroy(&c->mu);
	pthread_mutex_destroy(&c->cmu);
	vv_secure_free(c->kscratch);
	pthread_mutex_destroy(&c->kmu);
	for (int i = 0; i < c->nfree; i++)
		free(c->freel[i]);
	pthread_mutex_destroy(&c->fmu);
	if (c->amap)
		munmap(c->amap, c->amaplen);
	free(c->afree);
	for (size_t i = 0; i < IMG_BUFS; i++)
		free(c->img[i].p);
	free(c->pending);
	free(c->store);
	free(c->chunks);
	free(c);
}

void vv_content_cache_drop(struct vv_content *c)
{
	if (!c)
		return;
	/* No decrypt may outlive the drop (it follows a key's removal). */
	content_ra_quiesce(c->ra, false);
	for (int i = 0; i < NSHARDS; i++)
		shard_clear(c, &c->shards[i]);
	content_ctx_drop(c, NULL);
}

/* ---- read ----------------------------------------------------------------- */

/* One pread of a block's ciphertext||tag from its chunk into buf (BUF_BYTES),
 * then an AES-GCM open in place.  Shared by readers and read-ahead loads, so
 * both authenticate a block exactly alike.  Nothing locked. */
static int block_decrypt(struct vv_content *c, const uint8_t coll_key[32],
			 const uint8_t kfp[KFP_BYTES], const uint8_t *objid,
			 const uint8_t id[VV_CHUNK_ID_BYTES], uint32_t slot, uint64_t fblock,
			 uint32_t off, uint32_t len, uint8_t *buf)
{
	uint8_t nonce[VV_GCM_NONCE_BYTES], ad[AD_BYTES];
	size_t clen = (size_t)len + VV_TAG_BYTES;
	struct cent *ce = NULL;
	struct vv_gcm *g = NULL;
	ssize_t got;
	int r;

	if ((r = ctx_acquire(c, coll_key, kfp, id, &ce, &g)) < 0)
		return r;
	got = vv_os_pread_full(ce->fd, buf, clen, off);
	if (got < 0) {
		r = vv_err_from_errno((int)-got);
	} else if ((size_t)got != clen) {
		r = VV_ECORRUPT;         /* the chunk was truncated */
	} else {
		content_make_nonce(nonce, slot);
		content_make_ad(ad, objid, fblock, id, slot, len);
		r = vv_gcm_open(g, nonce, ad, sizeof(ad), buf, len, buf + len, buf);
	}
	ctx_release(c, ce, g);
	return r;
}

int vv_content_read_take(struct vv_content *c, const uint8_t coll_key[32],
			 const uint8_t objid[VV_OBJID_BYTES], const struct vv_extent *e,
			 uint32_t from, uint32_t n, uint8_t *out, uint8_t **taken)
{
	uint8_t kfp[KFP_BYTES];
	uint8_t *buf = NULL;
	bool zero = false;
	int r = VV_EINVAL;

	if (taken)
		*taken = NULL;
	if (!c || !coll_key || !objid || !e || !out)
		goto out;
	zero = true;
	if (!extent_ok(e) || from > e->len || n > e->len - from)
		goto out;
	if ((r = key_fp(kfp, coll_key)) < 0)
		goto out;
	if (cache_get(c, kfp, objid, e, from, n, out, taken)) {
		r = 0;
		goto out;
	}

	r = VV_ENOMEM;
	if (!(buf = buf_get(c)))
		goto out;
	r = block_decrypt(c, coll_key, kfp, objid, e->chunk_id, e->slot, e->fblock, e->off,
			  e->len, buf);
	if (r < 0) {
		char hex[HEX_ID + 1];
		vv_hex_encode(hex, e->chunk_id, VV_CHUNK_ID_BYTES);
		vv_log(VV_LOG_ERR, "content: chunk %s slot %u (fblock %llu): %s", hex,
		       (unsigned)e->slot, (unsigned long long)e->fblock, vv_strerror(r));
		goto out;
	}
	memcpy(out, buf + from, n);
	cache_put(c, kfp, objid, e, buf);
	buf = NULL;
out:
	if (r < 0 && zero)
		vv_memzero(out, n);
	buf_put(c, buf);
	return r;
}

int vv_content_read_range(struct vv_content *c, const uint8_t coll_key[32],
			  const uint8_t objid[VV_OBJID_BYTES], const struct vv_extent *e,
			  uint32_t from, uint32_t n, uint8_t *out)
{
	return vv_content_read_take(c, coll_key, objid, e, from, n, out, NULL);
}

void vv_content_buf_put(struct vv_content *c, uint8_t *buf)
{
	if (c)
		buf_put(c, buf);
	else
		free(buf);
}

int vv_content_read_block(struct vv_content *c, const uint8_t coll_key[32],
			  const uint8_t objid[VV_OBJID_BYTES], const struct vv_extent *e,
			  uint8_t *out)
{
	if (!e)
		return VV_EINVAL;
	if (!extent_ok(e))
		return VV_EINVAL;
	return vv_content_read_range(c, coll_key, objid, e, 0, e->len, out);
}

/* ---- loads: the block cache's side of read-ahead (content_ra_int.h) ------- */

struct content_load {
	struct bent *b;                          /* the loading entry (holds the extent) */
};

int content_key_fp(uint8_t fp[CONTENT_KFP_BYTES], const uint8_t coll_key[32])
{
	return key_fp(fp, coll_key);
}

int content_load_begin(struct vv_content *c, const uint8_t kfp[CONTENT_KFP_BYTES],
		       const uint8_t objid[VV_OBJID_BYTES], const struct vv_extent *e,
		       struct content_load **out)
{
	size_t h = id_hash(e->chunk_id, e->slot);
	struct shard *s = shard_of(c, h);
	struct bent *b = NULL, *victims = NULL;
	struct content_load *l = NULL;
	bool there;
	int r;

	*out = NULL;
	if (!extent_ok(e) || e->len > s->cap)
		return 0;
	pthread_mutex_lock(&s->mu);
	there = shard_find(s, h, e->chunk_id, e->slot) != NULL;
	pthread_mutex_unlock(&s->mu);
	if (there)
		return 0;
	r = VV_ENOMEM;
	if (!(l = calloc(1, sizeof(*l))) || !(b = bent_new(kfp, objid, e)) ||
	    !(b->data = buf_get(c)))
		goto fail;
	b->loading = true;
	b->prev = b->next = b;   /* off the LRU list: lru_unlink is a no-op */

	pthread_mutex_lock(&s->mu);
	if (shard_find(s, h, e->chunk_id, e->slot)) {
		pthread_mutex_unlock(&s->mu);   /* a reader was quicker */
		r = 0;
		goto fail;
	}
	victims = shard_make_room(s, b->len, NULL);
	b->hnext = *bucket(s, h);
	*bucket(s, h) = b;
	s->bytes += b->len;
	pthread_mutex_unlock(&s->mu);
	bents_free(c, victims);
	l->b = b;
	*out = l;
	return 1;
fail:
	if (b)
		buf_put(c, b->data);
	free(b);
	free(l);
	return r;
}

int content_load_run(struct vv_content *c, const uint8_t coll_key[32], struct content_load *l)
{
	struct bent *b = l->b;

	return block_decrypt(c, coll_key, b->kfp, b->objid, b->id, b->slot, b->fblock, b->off,
			     b->len, b->data);
}

void content_load_end(struct vv_content *c, struct content_load *l, int r)
{
	struct bent *b = l->b, *victims = NULL;
	size_t h = id_hash(b->id, b->slot);
	struct shard *s = shard_of(c, h);

	pthread_mutex_lock(&s->mu);
	if (b->dead) {
		victims = b;             /* already out of the shard */
	} else if (r < 0) {
		shard_remove(s, b, h);
		victims = b;
	} else {
		b->loading = false;
		b->ra = true;
		lru_push(s, b);
	}
	if (victims)
		victims->hnext = NULL;
	pthread_cond_broadcast(&s->cv);
	pthread_mutex_unlock(&s->mu);
	if (victims)
		vv_memzero(victims->data, victims->len);
	bents_free(c, victims);
	free(l);
}

int vv_content_prefetch(struct vv_content *c, const uint8_t coll_key[32],
			const uint8_t objid[VV_OBJID_BYTES], const struct vv_extent *e, size_t n,
			size_t *covered)
{
	if (covered)
		*covered = 0;
	if (!c || !coll_key || !objid || (!e && n))
		return VV_EINVAL;
	if (!n || !c->shards[0].cap)
		return 0;
	return content_ra_queue(c->ra, coll_key, objid, e, n, covered);
}

/* ---- extent blobs ---------------------------------------------------------- */

size_t vv_extent_packed_size(size_t n)
{
	return 1 + 4 + n * VV_EXTENT_PACKED_BYTES;
}

int vv_extent_pack(const struct vv_extent *e, size_t n, uint8_t *out, size_t cap, size_t *outlen)
{
	struct vv_wbuf w;

	if (!out || !outlen || (n && !e) || n > UINT32_MAX)
		return VV_EINVAL;
	if (cap < vv_extent_packed_size(n))
		return VV_ERANGE;
	vv_wbuf_init(&w, out, cap);
	vv_wbuf_put_u8(&w, EXTENT_BLOB_VERSION);
	vv_wbuf_put_u32(&w, (uint32_t)n);
	for (size_t i = 0; i < n; i++) {
		vv_wbuf_put_u64(&w, e[i].fblock);
		vv_wbuf_put_bytes(&w, e[i].chunk_id, VV_CHUNK_ID_BYTES);
		vv_wbuf_put_u32(&w, e[i].off);
		vv_wbuf_put_u32(&w, e[i].len);
		vv_wbuf_put_u32(&w, e[i].slot);
	}
	if (w.err)
		return VV_ERANGE;
	*outlen = w.len;
	return 0;
}

int vv_extent_unpack(const uint8_t *in, size_t len, struct vv_extent *out, size_t max, size_t *n)
{
	struct vv_rbuf rb;
	uint32_t count;
	uint8_t ver;
	int r = VV_ECORRUPT;

	if (!in || !n || (max && !out))
		return VV_EINVAL;
	*n = 0;
	vv_rbuf_init(&rb, in, len);
	if (vv_rbuf_get_u8(&rb, &ver) < 0 || ver != EXTENT_BLOB_VERSION ||
	    vv_rbuf_get_u32(&rb, &count) < 0)
		goto out;
	/* The count must match the bytes exactly: no trailing garbage. */
	if (vv_rbuf_left(&rb) != (size_t)count * VV_EXTENT_PACKED_BYTES)
		goto out;
	if (count > max) {
		r = VV_ERANGE;
		goto out;
	}
	for (uint32_t i = 0; i < count; i++) {
		struct vv_extent *e = &out[i];
		if (vv_rbuf_get_u64(&rb, &e->fblock) < 0 ||
		    vv_rbuf_get_bytes(&rb, e->chunk_id, VV_CHUNK_ID_BYTES) < 0 ||
		    vv_rbuf_get_u32(&rb, &e->off) < 0 || vv_rbuf_get_u32(&rb, &e->len) < 0 ||
		    vv_rbuf_get_u32(&rb, &e->slot) < 0 || !extent_ok(e))
			goto out;
	}
	*n = count;
	r = 0;
out:
	return r;
}

