/*
 * content_int.h - encrypted chunk objects: the bytes of files.
 *
 * File bytes are cut into AEAD blocks of up to VV_BLOCK_SIZE plaintext bytes
 * (the copy-on-write unit).  Up to VV_CHUNK_MAX_BLOCKS blocks, possibly of
 * different files of one collection, are sealed together into one immutable
 * chunk object STORE/chunks/XX/<64 hex>.  Each block is AES-256-GCM under a
 * per-chunk key, bound by associated data to (object id, file block index,
 * chunk id, slot, length): see docs/format.md and the table at the top
 * of content.c.
 *
 * This module knows nothing of SQLite: it returns extent records and takes
 * them back.  It never fsyncs on write; vv_content_sync() makes every chunk
 * written so far durable, and the caller must call it before any metadata
 * commit that references those chunks (DESIGN invariant 4).  It unlinks only
 * when told to, after the commit that dropped the last reference is durable.
 *
 * Thread safety: every function may be called from many threads at once on
 * one struct vv_content, except vv_content_close().
 */
#ifndef VV_CONTENT_INT_H
#define VV_CONTENT_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "vecvault/version.h"

#define VV_BLOCK_SIZE 65536          /* max plaintext bytes per block */
#define VV_CHUNK_ID_BYTES 32         /* random chunk id */
#define VV_OBJID_BYTES 16            /* immutable file object id */
#define VV_CHUNK_MAX_BLOCKS 64       /* blocks (slots) per chunk: chunk <= ~4 MiB */
#define VV_CHUNK_HDR_BYTES 16        /* plaintext chunk header (version + reserved) */
#define VV_CHUNK_VERSION VV_FORMAT_CHUNK
#define VV_CONTENT_DEFAULT_CACHE (64u << 20)

struct vv_content;

/* Open the content module on STORE (store_dir must exist; STORE/chunks is
 * created if missing).  cache_bytes bounds the decrypted-block cache (0
 * disables it).  *out is owned by the caller: vv_content_close(). */
int vv_content_open(const char *store_dir, size_t cache_bytes, struct vv_content **out);
/* Free everything (NULL ok).  Does NOT sync: call vv_content_sync() first if
 * the chunks written must survive a power cut. */
void vv_content_close(struct vv_content *c);

/* One block to write.  Pointers are borrowed for the duration of the call. */
struct vv_block_in {
	const uint8_t *objid;        /* VV_OBJID_BYTES */
	uint64_t fblock;             /* block index within the file */
	const uint8_t *data;
	uint32_t len;                /* 1 .. VV_BLOCK_SIZE */
};

/* Where a block lives: what the metadata stores per file block. */
struct vv_extent {
	uint64_t fblock;
	uint8_t chunk_id[VV_CHUNK_ID_BYTES];
	uint32_t off;                /* byte offset of ciphertext||tag in the chunk */
	uint32_t len;                /* plaintext length (ciphertext is the same, tag follows) */
	uint32_t slot;               /* index in the chunk; the GCM nonce */
};

/* Seal n blocks (1 .. VV_CHUNK_MAX_BLOCKS, all of one collection, key
 * coll_key) into one new chunk with a fresh random id; fills ext[i] for
 * blocks[i] (caller-owned array of n).  The chunk is visible under its final
 * name only complete; it is not yet durable (see vv_content_sync).
 * VV_EINVAL on bad arguments, VV_ENOSPC on a full disk (nothing left behind). */
int vv_content_write_chunk(struct vv_content *c, const uint8_t coll_key[32],
			   const struct vv_block_in *blocks, size_t n, struct vv_extent *ext);

/* Keep at least `bytes` free on the store's file system: from then on a
 * chunk write that would leave less (counting the other chunk writes in
 * progress) fails with VV_ENOSPC before it writes anything.  The vault sets
 * it to twice its full-disk reserve, so that its own write-back never
 * takes the room its commits need (DESIGN invariant 6).  0 (the default):
 * no floor. */
void vv_content_set_floor(struct vv_content *c, uint64_t bytes);

/* Whether chunks are written with O_DIRECT (true from open until the
 * STORE's file system refuses it once, at open or at write; then every chunk
 * goes through the page cache, which is also how chunks under 256 KiB and
 * each chunk's last partial 4 KiB are written).  Either way a chunk is
 * durable only after vv_content_sync(). */
bool vv_content_direct_io(struct vv_content *c);

/* fsync every chunk written (by this handle) since the last successful sync,
 * then each chunks/XX directory touched, then chunks/ and STORE if a directory
 * was created; each once.  On failure the chunks stay pending and the error
 * is returned (treat it as fatal for the pending commit). */
int vv_content_sync(struct vv_content *c);

/* The same sync in two steps, so that its fsyncs can run outside the
 * caller's locks (the group commit, vault_commit.c): _begin takes the
 * chunks pending so far (*out NULL when there are none), _end fsyncs them
 * and frees the batch.  Until _end returns the batch is in flight: a
 * vv_content_sync() meanwhile fsyncs its chunks as well, so a commit that
 * names them after that sync is safe.  On failure _end puts them back as
 * pending and returns the error. */
struct vv_content_batch;
int vv_content_sync_begin(struct vv_content *c, struct vv_content_batch **out);
int vv_content_sync_end(struct vv_content *c, struct vv_content_batch *b);

/* Decrypt the block described by e, written for file objid, into out (at
 * least e->len bytes).  VV_ECORRUPT if anything does not authenticate (wrong
 * key, file, position, chunk, slot, truncated or altered bytes): out is then
 * zeroed.  VV_EIO if the chunk file is missing, VV_EINVAL on a malformed
 * extent.  Served from the decrypted-block cache when possible. */
int vv_content_read_block(struct vv_content *c, const uint8_t coll_key[32],
			  const uint8_t objid[VV_OBJID_BYTES], const struct vv_extent *e,
			  uint8_t *out);
/* Same, but copies only plaintext bytes [from, from + n) of the block into
 * out (n bytes), so a 4 KiB read from a cached block costs a 4 KiB copy.
 * VV_EINVAL if the range is outside the block. */
int vv_content_read_range(struct vv_content *c, const uint8_t coll_key[32],
			  const uint8_t objid[VV_OBJID_BYTES], const struct vv_extent *e,
			  uint32_t from, uint32_t n, uint8_t *out);
/* Same, but when the block was decrypted by read-ahead and this read
 * reaches its end (the block's use-once point, when the cache would drop
 * it), the block's buffer is handed over instead of copied: *taken is set,
 * the bytes are (*taken)[from, from + n), nothing is written to out, and the
 * caller owns the buffer until vv_content_buf_put.  Otherwise *taken is
 * NULL and out is filled as by vv_content_read_range (errors alike). */
int vv_content_read_take(struct vv_content *c, const uint8_t coll_key[32],
			 const uint8_t objid[VV_OBJID_BYTES], const struct vv_extent *e,
			 uint32_t from, uint32_t n, uint8_t *out, uint8_t **taken);
/* Give back a buffer from vv_content_read_take (NULL ok). */
void vv_content_buf_put(struct vv_content *c, uint8_t *buf);

/* Decrypt the block described by e from a chunk's bytes held in memory
 * (a copy outside STORE: backup verify and restore), checking its header
 * and bounds first.  Errors as vv_content_read_block's (VV_ECORRUPT: out
 * zeroed).  Uses no cache; thread-safe. */
int vv_content_open_mem(const uint8_t coll_key[32], const uint8_t objid[VV_OBJID_BYTES],
			const struct vv_extent *e, const uint8_t *chunk, size_t chunklen,
			uint8_t *out);

/* Read-ahead: queue blocks e[0..n) of file objid to be decrypted into the
 * block cache by a few worker threads (started at the first call), so a
 * later vv_content_read_range finds them there or waits for the one being
 * decrypted instead of decrypting it again.  Blocks already cached or
 * queued are skipped; at most a bounded number (8 MiB) are queued, the rest
 * are left to the readers.  A prefetched block is dropped from the cache
 * once a read reaches its end (use-once: see vv_content_read_take).  A
 * block that fails to authenticate is not
 * cached (the reader's own decrypt then reports it).  Returns the number
 * of blocks queued, or a negative VV_E* code; *covered (may be NULL): how
 * many of e[0..n), from the first, are now queued, loading or cached (less
 * than n when the queue was full: the caller may ask again for the rest).
 * e is borrowed for the call.  Nothing is prefetched when the cache is
 * disabled.  vv_content_close and vv_content_cache_drop cancel queued
 * blocks and wait for running ones. */
int vv_content_prefetch(struct vv_content *c, const uint8_t coll_key[32],
			const uint8_t objid[VV_OBJID_BYTES], const struct vv_extent *e, size_t n,
			size_t *covered);

/* Delete a chunk file and drop its cache entries.  Call only once the commit
 * that dropped its last reference is durable.  VV_ENOENT if it was not there.
 * The unlink itself is made durable by the next vv_content_sync(). */
int vv_content_unlink(struct vv_content *c, const uint8_t chunk_id[VV_CHUNK_ID_BYTES]);

/* fsck: call cb once per well-named chunk file on disk with its id and size
 * in bytes (a non-zero return from cb stops the walk and is returned).  Names
 * that are not chunks (temp files left by a crash, strangers) are skipped and
 * logged at WARN; vv_content_list_all also passes them, relative to
 * STORE/chunks, to junk (which may be NULL). */
int vv_content_list(struct vv_content *c,
		    int (*cb)(void *ctx, const uint8_t id[VV_CHUNK_ID_BYTES], uint64_t size),
		    void *ctx);
int vv_content_list_all(struct vv_content *c,
			int (*cb)(void *ctx, const uint8_t id[VV_CHUNK_ID_BYTES], uint64_t size),
			int (*junk)(void *ctx, const char *relpath), void *ctx);
/* Size in bytes of one chunk file; VV_ENOENT if absent. */
int vv_content_chunk_size(struct vv_content *c, const uint8_t id[VV_CHUNK_ID_BYTES],
			  uint64_t *size);
/* Size a chunk file must have at least, given its extents: fsck compares. */
uint64_t vv_content_extent_end(const struct vv_extent *e);

/* Forget all cached plaintext, open chunk fds and key schedules (tests,
 * unmount, after a key is dropped). */
void vv_content_cache_drop(struct vv_content *c);

/* Extent lists as compact blobs (e.g. one meta.db column per file):
 *   [u8 version = 1][u32 count] then count x
 *   [u64 fblock][32 chunk id][u32 off][u32 len][u32 slot]   (little-endian)
 * vv_extent_pack writes into out (cap bytes; caller-owned) and sets *outlen;
 * VV_ERANGE if cap < vv_extent_packed_size(n).  vv_extent_unpack parses an
 * untrusted blob into out (max entries; caller-owned), sets *n; VV_ECORRUPT
 * on any malformed or out-of-range field, VV_ERANGE if more than max. */
#define VV_EXTENT_PACKED_BYTES 52
size_t vv_extent_packed_size(size_t n);
int vv_extent_pack(const struct vv_extent *e, size_t n, uint8_t *out, size_t cap, size_t *outlen);
int vv_extent_unpack(const uint8_t *in, size_t len, struct vv_extent *out, size_t max, size_t *n);

#endif
