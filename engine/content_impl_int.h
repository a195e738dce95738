/*
 * content_impl_int.h - what the content module's files share; nothing
 * outside content*.c includes it.
 *
 *   content.c        the object's layout, the block cache, open chunks,
 *                    open/close, reads, read-ahead loads, extent blobs
 *   content_store.c  writing chunks, the batched syncs, unlink, listing
 *   content_ra.c     read-ahead (through content_ra_int.h only)
 *
 * struct vv_content is defined here because both halves use its fields:
 * the read side its caches, the store side mu and what it guards.
 */
#ifndef VV_CONTENT_IMPL_INT_H
#define VV_CONTENT_IMPL_INT_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "content_int.h"
#include "content_ra_int.h"
#include "crypto_int.h"

#define AD_BYTES (16 + VV_OBJID_BYTES + 8 + VV_CHUNK_ID_BYTES + 4 + 4)
#define KFP_BYTES CONTENT_KFP_BYTES
#define NSHARDS 16
#define CTX_MAX 64               /* open chunk fds kept */
#define HEX_ID (2 * VV_CHUNK_ID_BYTES)
#define FREE_MAX 64              /* block buffers kept for reuse */
#define DIO_ALIGN 4096           /* O_DIRECT: buffer, offset and length multiple */
#define IMG_BUFS 4               /* chunk image buffers kept (the vault's sealers, at most) */
#define DIO_MIN (256u << 10)     /* smaller chunks go through the page cache */
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

struct cent;

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

/* content.c */
/* STORE/chunks/XX/<hex id>, or its .tmp- name (tmp), into out (cap bytes). */
void content_chunk_path(const struct vv_content *c, const uint8_t id[VV_CHUNK_ID_BYTES],
			char *out, size_t cap, bool tmp);
/* A block's nonce and AD (the layout at the top of content.c). */
void content_make_nonce(uint8_t nonce[VV_GCM_NONCE_BYTES], uint32_t slot);
void content_make_ad(uint8_t ad[AD_BYTES], const uint8_t *objid, uint64_t fblock,
		     const uint8_t id[VV_CHUNK_ID_BYTES], uint32_t slot, uint32_t len);
/* Forget chunk id: its cached blocks, and its open fds (id NULL: all). */
void content_cache_drop_chunk(struct vv_content *c, const uint8_t id[VV_CHUNK_ID_BYTES]);
void content_ctx_drop(struct vv_content *c, const uint8_t *id);

#endif
