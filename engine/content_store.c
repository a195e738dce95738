/*
 * content_store.c - the chunk store on disk: writing a chunk object (sealed
 * blocks, tmp + rename, O_DIRECT for large ones, the full-disk floor), the
 * pending set and its batched fsyncs (vv_content_sync*), unlink, listing
 * and sizes.  The object's byte layout and the read side (block cache,
 * open chunks, read-ahead loads): content.c; what the two share:
 * content_impl_int.h.
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

		content_make_nonce(nonce, slot);
		content_make_ad(ad, blocks[i].objid, blocks[i].fblock, id, slot, len);
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
	content_chunk_path(c, id, tmp, sizeof(tmp), true);
	content_chunk_path(c, id, path, sizeof(path), false);
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
		content_chunk_path(c, i < b->n ? b->ids[i] : extra[i - b->n], path, sizeof(path), false);
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

/* ---- unlink, list, size --------------------------------------------------- */

int vv_content_unlink(struct vv_content *c, const uint8_t chunk_id[VV_CHUNK_ID_BYTES])
{
	char path[PATH_MAX];
	int r;

	if (!c || !chunk_id)
		return VV_EINVAL;
	content_ctx_drop(c, chunk_id);
	content_cache_drop_chunk(c, chunk_id);
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
	content_chunk_path(c, chunk_id, path, sizeof(path), false);
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
	content_chunk_path(c, id, path, sizeof(path), false);
	if ((r = vv_os_stat(path, &st)) < 0)
		return vv_err_from_errno(-r);
	*size = (uint64_t)st.st_size;
	return 0;
}

