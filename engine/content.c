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
#include "content_int.h"
#include "content_ra_int.h"
#include "crypto_int.h"
#include "grow.h"
#include "os.h"
#include "vecvault/error.h"
#include "vecvault/log.h"

#define AD_DOMAIN "vecvault-block/1"
#define AD_BYTES (16 + VV_OBJID_BYTES + 8 + VV_CHUNK_ID_BYTES + 4 + 4)
#define KFP_BYTES CONTENT_KFP_BYTES
#define NSHARDS 16
#define CTX_MAX 64               /* open chunk fds kept */
#define CTX_POOL 4               /* GCM contexts kept per open chunk */
#define HEX_ID (2 * VV_CHUNK_ID_BYTES)
#define EXTENT_BLOB_VERSION 1
#define BUF_BYTES (VV_BLOCK_SIZE + VV_TAG_BYTES)
#define FREE_MAX 64              /* block buffers kept for reuse */
#define SLOT_BYTES (VV_BLOCK_SIZE + 4096)  /* arena stride: BUF_BYTES, page-rounded */
#define DIO_ALIGN 4096           /* O_DIRECT: buffer, offset and length multiple */
#define IMG_BUFS 4               /* chunk image buffers kept (the vault's sealers, at most) */
#define DIO_MIN (256u << 10)     /* smaller chunks go through the page cache */
#define ARENA_SPARE 128          /* arena slots beyond the cache: in-flight reads */
#define HUGE_BYTES (2u << 20)    /* arena alignment, for transparent huge pages */

/* ---- decrypted-block cache ---------------------------------------------- */

struct bent {
	struct bent *hnext;                      /* hash chain */
	struct bent *prev, *next;                /* LRU: head.next is newest */
	uint8_t id[VV_CHUNK_ID_BYTES];
	uint32_t slot;
	uint8_t kfp[KFP_BYTES];
	uint8_t objid[VV_OBJID_BYTES];
	uint64_t fblock;
	uint32_t off, len;
	uint8_t *data;                           /* BUF_BYTES buffer (buf_get) */
	/* Read-ahead: a worker is decrypting into data.  A loading entry is
	 * in the hash (so nobody starts the same decrypt and readers wait on
	 * the shard's cv) but not on the LRU list (never evicted); its bytes
	 * are counted.  Taken out of the hash while loading (unlink, cache
	 * drop, a newer copy), it is dead: its worker frees it. */
	bool loading, dead;
	/* Decrypted by read-ahead and not yet read to its end: the first read
	 * that reaches the block's end drops it (use-once, see cache_get). */
	bool ra;
};

struct shard {
	pthread_mutex_t mu;
	pthread_cond_t cv;                       /* a loading entry finished */
	struct bent **tab;
	size_t nb;                               /* buckets, power of two */
	struct bent lru;                         /* sentinel */
	size_t bytes, cap;
};

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

struct vv_content {
	char *store;                             /* STORE */
	char *chunks;                            /* STORE/chunks */

	pthread_mutex_t mu;                      /* pending, dirty, dir_ok, wbuf */
	uint8_t (*pending)[VV_CHUNK_ID_BYTES];
	size_t npending, cappending;
	bool dirty[256];                         /* chunks/XX to fsync */
	bool dir_ok[256];                        /* chunks/XX known to exist */
	bool chunks_dirty;                       /* chunks/ gained an entry */
	bool store_dirty;                        /* STORE gained chunks/ */
	struct vv_content_batch *flight;         /* batches synced outside locks */
	struct {                                 /* reused chunk images, DIO_ALIGN-aligned: */
		uint8_t *p;                      /* one per sealer writing at once */
		size_t cap;
		bool busy;
	} img[IMG_BUFS];
	bool direct;                             /* write chunks with O_DIRECT (until refused) */
	/* The full-disk floor (vv_content_set_floor): free bytes every chunk
	 * write leaves on the store's file system; busy counts the bytes of
	 * chunk writes in progress, which statvfs may not show yet. */
	_Atomic uint64_t floor, busy;

	pthread_mutex_t cmu;                     /* ctx table */
	/* A chunk key while its GCM context is made (VV_KEY_BYTES, secure
	 * memory, zeroed after each use): one buffer for the vault, where a
	 * secure allocation per context (mmap, mprotect, munmap) cost more
	 * than the key schedule. */
	pthread_mutex_t kmu;
	uint8_t *kscratch;
	struct cent *ctx[CTX_MAX];
	int nctx;
	uint64_t clock;

	struct shard shards[NSHARDS];

	/* Recycled block buffers: freeing 64 KiB buffers lets malloc give the
	 * pages back, and faulting in fresh zeroed pages for every miss cost
	 * more than the decryption. */
	pthread_mutex_t fmu;
	uint8_t *freel[FREE_MAX];
	int nfree;
	/* Buffers are first taken from one arena sized for the cache, mapped
	 * at open with transparent huge pages: a fresh mount otherwise faults
	 * in every buffer 4 KiB at a time while the cache fills, which made
	 * the first 64 MiB of a cold read 3-6x slower than the rest (page
	 * faults are costly on virtual machines).  Not dumped. */
	uint8_t *arena;                          /* HUGE_BYTES-aligned, nslots x SLOT_BYTES */
	void *amap;                              /* the mapping, amaplen bytes */
	size_t amaplen;
	uint32_t *afree;                         /* free slot indices (a stack) */
	uint32_t nslots, nafree;

	struct content_ra *ra;                   /* read-ahead (content_ra.c) */
};

/* ---- helpers -------------------------------------------------------------- */

static void chunk_path(const struct vv_content *c, const uint8_t id[VV_CHUNK_ID_BYTES],
		       char *out, size_t cap, bool tmp)
{
	char hex[HEX_ID + 1];

	vv_hex_encode(hex, id, VV_CHUNK_ID_BYTES);
	snprintf(out, cap, "%s/%.2s/%s%s", c->chunks, hex, tmp ? ".tmp-" : "", hex);
}

static void make_nonce(uint8_t nonce[VV_GCM_NONCE_BYTES], uint32_t slot)
{
	memset(nonce, 0, VV_GCM_NONCE_BYTES);
	vv_put_le32(nonce, slot);
}

static void make_ad(uint8_t ad[AD_BYTES], const uint8_t *objid, uint64_t fblock,
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
	make_nonce(nonce, e->slot);
	make_ad(ad, objid, e->fblock, e->chunk_id, e->slot, e->len);
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

static void cache_drop_chunk(struct vv_content *c, const uint8_t id[VV_CHUNK_ID_BYTES])
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

	chunk_path(c, id, path, sizeof(path), false);
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

static void ctx_drop(struct vv_content *c, const uint8_t *id)
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
	ctx_drop(c, NULL);
}

/* ---- write ---------------------------------------------------------------- */

/* Make sure chunks/XX (x = its byte, hex its name) exists; mu not held. */
static int ensure_dir(struct vv_content *c, uint8_t x, const char *hex)
{
	char path[PATH_MAX];
	bool known;
	int r;

	pthread_mutex_lock(&c->mu);
	known = c->dir_ok[x];
	pthread_mutex_unlock(&c->mu);
	if (known)
		return 0;
	snprintf(path, sizeof(path), "%s/%.2s", c->chunks, hex);
	r = vv_os_mkdir(path, 0700);
	if (r < 0 && r != -EEXIST)
		return vv_err_from_errno(-r);
	pthread_mutex_lock(&c->mu);
	c->dir_ok[x] = true;
	if (r == 0)
		c->chunks_dirty = true;
	pthread_mutex_unlock(&c->mu);
	return 0;
}

static int pending_add(struct vv_content *c, const uint8_t id[VV_CHUNK_ID_BYTES])
{
	int r;

	pthread_mutex_lock(&c->mu);
	if ((r = VV_GROW(c->pending, c->npending, c->cappending)) == 0) {
		memcpy(c->pending[c->npending++], id, VV_CHUNK_ID_BYTES);
		c->dirty[id[0]] = true;
	}
	pthread_mutex_unlock(&c->mu);
	return r;
}

/* A chunk image buffer aligned for O_DIRECT (NULL when out of memory).
 * Images of a huge page or more are huge-page aligned with a THP hint: an
 * O_DIRECT write pins the buffer's pages, which costs per page. */
static uint8_t *img_alloc(size_t need)
{
	size_t align = need >= HUGE_BYTES ? HUGE_BYTES : DIO_ALIGN;
	void *p = NULL;

	if (posix_memalign(&p, align, need) != 0)
		return NULL;
	if (align == HUGE_BYTES)
		madvise(p, need & ~(size_t)(HUGE_BYTES - 1), MADV_HUGEPAGE);   /* a hint */
	return p;
}

/* Borrow a kept chunk image buffer (each sealer writing at once has its
 * own: a fresh 4 MiB one would be faulted in again), or a private one if
 * all are in use. */
static uint8_t *wbuf_get(struct vv_content *c, size_t need)
{
	uint8_t *p = NULL;
	size_t i;

	pthread_mutex_lock(&c->mu);
	for (i = 0; i < IMG_BUFS && c->img[i].busy; i++)
		;
	if (i < IMG_BUFS) {
		if (c->img[i].cap < need) {
			free(c->img[i].p);
			c->img[i].p = img_alloc(need);
			c->img[i].cap = c->img[i].p ? need : 0;
		}
		if (c->img[i].p) {
			c->img[i].busy = true;
			p = c->img[i].p;
		}
	}
	pthread_mutex_unlock(&c->mu);
	return p ? p : img_alloc(need);
}

bool vv_content_direct_io(struct vv_content *c)
{
	bool d;

	pthread_mutex_lock(&c->mu);
	d = c->direct;
	pthread_mutex_unlock(&c->mu);
	return d;
}

/* The STORE's file system refused O_DIRECT: write through the page cache
 * from now on (said once). */
static void direct_refused(struct vv_content *c, const char *what)
{
	bool was;

	pthread_mutex_lock(&c->mu);
	was = c->direct;
	c->direct = false;
	pthread_mutex_unlock(&c->mu);
	if (was)
		vv_log(VV_LOG_INFO, "content: the store's file system refuses O_DIRECT (%s): "
		       "chunks are written through the page cache", what);
}

/* Write a chunk image of total bytes to the new file tmp (created here,
 * O_EXCL).  Its largest DIO_ALIGN multiple goes with O_DIRECT from the
 * aligned image, so the kernel copies nothing into the page cache (perf:
 * that copy was half of the daemon's time in a sequential write); the
 * tail (under 4 KiB) then through the page cache on the same descriptor,
 * O_DIRECT cleared (a second open and close per chunk cost about as much
 * as the tail's write; padding the image and cutting it back by ftruncate
 * was slower still: ext4 reads the last block back to zero its end).
 * Small or refused chunks go through the page cache.  Neither is durable
 * before vv_content_sync's fsync (O_DIRECT only bypasses the page cache:
 * the device's cache and the file's size and extents still need it), so
 * invariant 4 is unchanged.  0 or -errno; on failure tmp may exist (the
 * caller unlinks it). */
static int chunk_put(struct vv_content *c, const char *tmp, const uint8_t *img, size_t total)
{
	size_t dlen = total & ~(size_t)(DIO_ALIGN - 1), done = 0;
	bool created = false;
	int fd, r, rc, fl;

	if (dlen >= DIO_MIN && vv_content_direct_io(c)) {
		fd = vv_os_open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_DIRECT, 0600);
		if (fd == -EINVAL) {
			/* Refused at open (the file may exist by then). */
			direct_refused(c, "open");
			if ((r = vv_os_unlink(tmp)) < 0 && r != -ENOENT)
				return r;
		} else if (fd < 0) {
			return fd;
		} else {
			created = true;
			r = vv_os_pwrite_full(fd, img, dlen, 0);
			if (r == 0) {
				done = dlen;
				/* The tail on this descriptor, without O_DIRECT (if
				 * that cannot be cleared, a second open below). */
				fl = fcntl(fd, F_GETFL);
				if (done < total && fl >= 0 && fcntl(fd, F_SETFL, fl & ~O_DIRECT) == 0 &&
				    (r = vv_os_pwrite_full(fd, img + done, total - done, (off_t)done)) == 0)
					done = total;
			} else if (r == -EINVAL) {   /* refused at write: all goes below */
				direct_refused(c, "write");
			}
			rc = vv_os_close(fd);
			if (r < 0 && (r != -EINVAL || done))
				return r;
			if (rc < 0)
				return rc;
		}
	}
	if (done == total)
		return 0;
	fd = vv_os_open(tmp, O_WRONLY | O_NOFOLLOW | (created ? 0 : O_CREAT | O_EXCL), 0600);
	if (fd < 0)
		return fd;
	r = vv_os_pwrite_full(fd, img + done, total - done, (off_t)done);
	/* Start writing it to disk now, on this (the sealer's) thread:
	 * vv_content_sync() runs before every commit, under the vault mutex,
	 * and would otherwise push all the chunks of the last commit interval
	 * through the disk while every request waits.  A hint only:
	 * durability still comes from the fsync in vv_content_sync(). */
	if (r == 0)
		vv_os_writeback(fd, (off_t)total);
	rc = vv_os_close(fd);   /* NFS and some others report ENOSPC only at close */
	return r < 0 ? r : rc;
}

static void wbuf_put(struct vv_content *c, uint8_t *p)
{
	pthread_mutex_lock(&c->mu);
	for (size_t i = 0; i < IMG_BUFS; i++)
		if (p == c->img[i].p) {
			c->img[i].busy = false;
			p = NULL;
			break;
		}
	pthread_mutex_unlock(&c->mu);
	free(p);
}

void vv_content_set_floor(struct vv_content *c, uint64_t bytes)
{
	if (c)
		atomic_store(&c->floor, bytes);
}

/* Claim room for a chunk of total bytes: VV_ENOSPC, before a byte is
 * written, when the free space less the chunk writes in progress (this
 * one included) would fall below the floor.  On success the caller gives
 * the claim back (c->busy) once the chunk is written or has failed.  A
 * chunk write that fails half way holds its space until it is unlinked;
 * checking before writing is what keeps the sealer's writes, retried
 * while the disk is full, out of the space the vault released for its
 * commits (vault_commit.c, the full-disk reserve). */
static int room_take(struct vv_content *c, size_t total)
{
	uint64_t floor = atomic_load(&c->floor), busy;
	struct statvfs sv;

	busy = atomic_fetch_add(&c->busy, total) + total;
	if (!floor || statvfs(c->store, &sv) < 0)
		return 0;                           /* unknown: the write itself will tell */
	if ((uint64_t)sv.f_bavail * sv.f_frsize >= floor + busy)
		return 0;
	atomic_fetch_sub(&c->busy, total);
	return VV_ENOSPC;
}

int vv_content_write_chunk(struct vv_content *c, const uint8_t coll_key[32],
			   const struct vv_block_in *blocks, size_t n, struct vv_extent *ext)
{
	uint8_t id[VV_CHUNK_ID_BYTES], nonce[VV_GCM_NONCE_BYTES], ad[AD_BYTES];
	char hex[HEX_ID + 1], tmp[PATH_MAX], path[PATH_MAX];
	uint8_t *key = NULL, *img = NULL;
	struct vv_gcm *g = NULL;
	size_t total = VV_CHUNK_HDR_BYTES, off, claim = 0;
	int r = VV_EINVAL;

	if (!c || !coll_key || !blocks || !ext || n == 0 || n > VV_CHUNK_MAX_BLOCKS)
		goto out;
	for (size_t i = 0; i < n; i++) {
		if (!blocks[i].objid || !blocks[i].data || blocks[i].len == 0 ||
		    blocks[i].len > VV_BLOCK_SIZE)
			goto out;
		total += (size_t)blocks[i].len + VV_TAG_BYTES;
	}

	vv_random_bytes(id, sizeof(id));
	vv_hex_encode(hex, id, sizeof(id));
	r = VV_ENOMEM;
	if (!(key = vv_secure_alloc(VV_KEY_BYTES)) || !(img = wbuf_get(c, total)))
		goto out;
	if ((r = vv_chunk_key(key, coll_key, id, sizeof(id))) < 0 ||
	    (r = vv_gcm_new(key, &g)) < 0)
		goto out;

	memset(img, 0, VV_CHUNK_HDR_BYTES);
	img[0] = VV_CHUNK_VERSION;
	off = VV_CHUNK_HDR_BYTES;
	for (size_t i = 0; i < n; i++) {
		uint32_t len = blocks[i].len, slot = (uint32_t)i;

		make_nonce(nonce, slot);
		make_ad(ad, blocks[i].objid, blocks[i].fblock, id, slot, len);
		if ((r = vv_gcm_seal(g, nonce, ad, sizeof(ad), blocks[i].data, len,
				     img + off, img + off + len)) < 0)
			goto out;
		ext[i].fblock = blocks[i].fblock;
		memcpy(ext[i].chunk_id, id, sizeof(id));
		ext[i].off = (uint32_t)off;
		ext[i].len = len;
		ext[i].slot = slot;
		off += (size_t)len + VV_TAG_BYTES;
	}

	if ((r = room_take(c, total)) < 0)
		goto out;
	claim = total;
	if ((r = ensure_dir(c, id[0], hex)) < 0)
		goto out;
	chunk_path(c, id, tmp, sizeof(tmp), true);
	chunk_path(c, id, path, sizeof(path), false);
	if ((r = chunk_put(c, tmp, img, total)) < 0)
		goto out_unlink;
	if ((r = vv_os_rename(tmp, path)) < 0)
		goto out_unlink;
	r = pending_add(c, id);
	goto out;
out_unlink:
	vv_log(VV_LOG_ERR, "content: writing chunk %s failed: %s", tmp, strerror(-r));
	vv_os_unlink(tmp);
	r = vv_err_from_errno(-r);
out:
	if (claim)                               /* written, or unlinked again */
		atomic_fetch_sub(&c->busy, claim);
	if (r < 0 && ext && n <= VV_CHUNK_MAX_BLOCKS)
		memset(ext, 0, n * sizeof(*ext));
	if (img)
		wbuf_put(c, img);
	vv_gcm_free(g);
	vv_secure_free(key);
	return r;
}

/* ---- sync ----------------------------------------------------------------- */

/* A set of chunks to make durable: chunk files, then the chunks/XX
 * directories naming them, then chunks/ and STORE if a directory was
 * created.  Taken from the pending set under c->mu; while a batch is synced
 * outside the caller's locks it is *in flight* (c->flight), and a sync
 * started meanwhile (vv_content_sync, under the vault mutex, before a
 * commit) fsyncs its chunks too, so no commit can name a chunk only the
 * other thread's fsync will make durable. */
struct vv_content_batch {
	struct vv_content_batch *next;           /* c->flight list */
	uint8_t (*ids)[VV_CHUNK_ID_BYTES];
	size_t n;
	bool dirty[256];
	bool chunks_dirty, store_dirty;
};

/* Move the pending set into b (c->mu held). */
static void batch_take(struct vv_content *c, struct vv_content_batch *b)
{
	b->ids = c->pending;
	b->n = c->npending;
	c->pending = NULL;
	c->npending = c->cappending = 0;
	memcpy(b->dirty, c->dirty, sizeof(b->dirty));
	memset(c->dirty, 0, sizeof(c->dirty));
	b->chunks_dirty = c->chunks_dirty;
	b->store_dirty = c->store_dirty;
	c->chunks_dirty = c->store_dirty = false;
}

/* Put b's chunks and directories back into the pending set: after a failed
 * sync nothing of it may be assumed durable. */
static void batch_restore(struct vv_content *c, const struct vv_content_batch *b)
{
	for (size_t i = 0; i < b->n; i++)
		(void)pending_add(c, b->ids[i]);
	pthread_mutex_lock(&c->mu);
	for (int x = 0; x < 256; x++)
		c->dirty[x] |= b->dirty[x];
	c->chunks_dirty |= b->chunks_dirty;
	c->store_dirty |= b->store_dirty;
	pthread_mutex_unlock(&c->mu);
}

/* fsync b's chunks (and extra, n2 more ids: another thread's batch in
 * flight), then the directories.  Nothing locked.  0 or a VV_E* code.  A
 * chunk file that is gone (ENOENT) needs no sync: chunks are unlinked only
 * after a durable commit released their last reference, so no metadata
 * can name it. */
static int batch_fsync(struct vv_content *c, const struct vv_content_batch *b,
		       uint8_t (*extra)[VV_CHUNK_ID_BYTES], size_t n2)
{
	char path[PATH_MAX];
	int r = 0, fd;

	for (size_t i = 0; i < b->n + n2 && r == 0; i++) {
		chunk_path(c, i < b->n ? b->ids[i] : extra[i - b->n], path, sizeof(path), false);
		fd = vv_os_open(path, O_RDONLY, 0);
		if (fd == -ENOENT)
			continue;
		if (fd < 0) {
			r = fd;
			break;
		}
		r = vv_os_fsync(fd);
		vv_os_close(fd);
	}
	for (int x = 0; x < 256 && r == 0; x++) {
		if (!b->dirty[x])
			continue;
		snprintf(path, sizeof(path), "%s/%02x", c->chunks, x);
		r = vv_os_fsync_dir(path);
	}
	if (r == 0 && b->chunks_dirty)
		r = vv_os_fsync_dir(c->chunks);
	if (r == 0 && b->store_dirty)
		r = vv_os_fsync_dir(c->store);
	if (r < 0) {
		vv_log(VV_LOG_ERR, "content: sync failed: %s", strerror(-r));
		r = vv_err_from_errno(-r);
	}
	return r;
}

int vv_content_sync(struct vv_content *c)
{
	struct vv_content_batch b = { 0 };
	uint8_t (*extra)[VV_CHUNK_ID_BYTES] = NULL;
	size_t n2 = 0;
	int r;

	pthread_mutex_lock(&c->mu);
	batch_take(c, &b);
	for (const struct vv_content_batch *f = c->flight; f; f = f->next)
		n2 += f->n;
	if (n2 && (extra = malloc(n2 * VV_CHUNK_ID_BYTES))) {
		size_t k = 0;
		for (const struct vv_content_batch *f = c->flight; f; f = f->next) {
			memcpy(extra + k, f->ids, f->n * VV_CHUNK_ID_BYTES);
			k += f->n;
			for (int x = 0; x < 256; x++)
				b.dirty[x] |= f->dirty[x];
			b.chunks_dirty |= f->chunks_dirty;
			b.store_dirty |= f->store_dirty;
		}
	}
	pthread_mutex_unlock(&c->mu);
	if (n2 && !extra) {
		r = VV_ENOMEM;
		vv_log(VV_LOG_ERR, "content: sync failed: out of memory");
	} else {
		r = batch_fsync(c, &b, extra, extra ? n2 : 0);
	}
	if (r < 0)
		batch_restore(c, &b);
	free(extra);
	free(b.ids);
	return r;
}

int vv_content_sync_begin(struct vv_content *c, struct vv_content_batch **out)
{
	struct vv_content_batch *b;

	*out = NULL;
	if (!(b = calloc(1, sizeof(*b))))
		return VV_ENOMEM;
	pthread_mutex_lock(&c->mu);
	batch_take(c, b);
	if (b->n == 0 && !b->chunks_dirty && !b->store_dirty &&
	    !memchr(b->dirty, true, sizeof(b->dirty))) {
		pthread_mutex_unlock(&c->mu);
		free(b);
		return 0;
	}
	b->next = c->flight;
	c->flight = b;
	pthread_mutex_unlock(&c->mu);
	*out = b;
	return 0;
}

int vv_content_sync_end(struct vv_content *c, struct vv_content_batch *b)
{
	struct vv_content_batch **pp;
	int r;

	if (!b)
		return 0;
	r = batch_fsync(c, b, NULL, 0);
	pthread_mutex_lock(&c->mu);
	for (pp = &c->flight; *pp && *pp != b; pp = &(*pp)->next)
		;
	if (*pp)
		*pp = b->next;
	pthread_mutex_unlock(&c->mu);
	if (r < 0)
		batch_restore(c, b);
	free(b->ids);
	free(b);
	return r;
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
		make_nonce(nonce, slot);
		make_ad(ad, objid, fblock, id, slot, len);
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

/* ---- unlink, list, size --------------------------------------------------- */

int vv_content_unlink(struct vv_content *c, const uint8_t chunk_id[VV_CHUNK_ID_BYTES])
{
	char path[PATH_MAX];
	int r;

	if (!c || !chunk_id)
		return VV_EINVAL;
	ctx_drop(c, chunk_id);
	cache_drop_chunk(c, chunk_id);
	pthread_mutex_lock(&c->mu);
	for (size_t i = 0; i < c->npending; i++) {
		if (memcmp(c->pending[i], chunk_id, VV_CHUNK_ID_BYTES) == 0) {
			memmove(c->pending[i], c->pending[i + 1],
				(c->npending - i - 1) * VV_CHUNK_ID_BYTES);
			c->npending--;
			break;
		}
	}
	pthread_mutex_unlock(&c->mu);
	chunk_path(c, chunk_id, path, sizeof(path), false);
	r = vv_os_unlink(path);
	if (r < 0) {
		r = vv_err_from_errno(-r);
		goto out;
	}
	pthread_mutex_lock(&c->mu);
	c->dirty[chunk_id[0]] = true;   /* next sync makes the removal durable */
	pthread_mutex_unlock(&c->mu);
out:
	return r;
}

static bool is_lhex(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
			return false;
	return s[n] == '\0';
}

static int report_junk(int (*junk)(void *, const char *), void *ctx, const char *rel)
{
	vv_log(VV_LOG_WARN, "content: not a chunk: chunks/%s", rel);
	return junk ? junk(ctx, rel) : 0;
}

/* Open a directory for reading through vv_os (so tests can fail it). */
static DIR *dir_open(const char *path, int *err)
{
	int fd = vv_os_open(path, O_RDONLY | O_DIRECTORY, 0);
	DIR *d;

	if (fd < 0) {
		*err = fd;
		return NULL;
	}
	if (!(d = fdopendir(fd))) {
		*err = -errno;
		vv_os_close(fd);
	}
	return d;
}

static int list_sub(struct vv_content *c, const char *xx,
		    int (*cb)(void *, const uint8_t *, uint64_t),
		    int (*junk)(void *, const char *), void *ctx)
{
	char path[PATH_MAX], rel[PATH_MAX];
	uint8_t id[VV_CHUNK_ID_BYTES];
	struct dirent *de;
	struct stat st;
	DIR *d;
	int r = 0, err = 0;

	snprintf(path, sizeof(path), "%s/%s", c->chunks, xx);
	if (!(d = dir_open(path, &err)))
		return vv_err_from_errno(-err);
	while (r == 0 && (errno = 0, de = readdir(d))) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		snprintf(path, sizeof(path), "%s/%s/%s", c->chunks, xx, de->d_name);
		snprintf(rel, sizeof(rel), "%s/%s", xx, de->d_name);
		if (strlen(de->d_name) != HEX_ID || !is_lhex(de->d_name, HEX_ID) ||
		    memcmp(de->d_name, xx, 2) != 0 || vv_os_stat(path, &st) < 0 ||
		    !S_ISREG(st.st_mode)) {
			r = report_junk(junk, ctx, rel);
			continue;
		}
		if ((r = vv_hex_decode(id, sizeof(id), de->d_name, HEX_ID)) < 0)
			break;
		r = cb(ctx, id, (uint64_t)st.st_size);
	}
	if (r == 0 && errno)
		r = vv_err_from_errno(errno);
	closedir(d);
	return r;
}

int vv_content_list_all(struct vv_content *c,
			int (*cb)(void *ctx, const uint8_t id[VV_CHUNK_ID_BYTES], uint64_t size),
			int (*junk)(void *ctx, const char *relpath), void *ctx)
{
	char path[PATH_MAX];
	struct dirent *de;
	struct stat st;
	DIR *d;
	int r = 0, err = 0;

	if (!c || !cb)
		return VV_EINVAL;
	if (!(d = dir_open(c->chunks, &err)))
		return vv_err_from_errno(-err);
	while (r == 0 && (errno = 0, de = readdir(d))) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		snprintf(path, sizeof(path), "%s/%s", c->chunks, de->d_name);
		if (strlen(de->d_name) != 2 || !is_lhex(de->d_name, 2) ||
		    vv_os_stat(path, &st) < 0 || !S_ISDIR(st.st_mode)) {
			r = report_junk(junk, ctx, de->d_name);
			continue;
		}
		r = list_sub(c, de->d_name, cb, junk, ctx);
	}
	if (r == 0 && errno)
		r = vv_err_from_errno(errno);
	closedir(d);
	return r;
}

int vv_content_list(struct vv_content *c,
		    int (*cb)(void *ctx, const uint8_t id[VV_CHUNK_ID_BYTES], uint64_t size),
		    void *ctx)
{
	return vv_content_list_all(c, cb, NULL, ctx);
}

int vv_content_chunk_size(struct vv_content *c, const uint8_t id[VV_CHUNK_ID_BYTES],
			  uint64_t *size)
{
	char path[PATH_MAX];
	struct stat st;
	int r;

	if (!c || !id || !size)
		return VV_EINVAL;
	chunk_path(c, id, path, sizeof(path), false);
	if ((r = vv_os_stat(path, &st)) < 0)
		return vv_err_from_errno(-r);
	*size = (uint64_t)st.st_size;
	return 0;
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
