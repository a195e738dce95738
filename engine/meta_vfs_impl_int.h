/*
 * meta_vfs_impl_int.h - what the three files of the page-encrypting VFS
 * share; nothing else includes it.
 *
 *   meta_vfs.c       the VFS: page sealing, the file methods, the WAL index,
 *                    registration, the WAL's descriptor; the byte layout
 *                    is at its top
 *   meta_vfs_open.c  connections: open, close, the checkpointer's peer,
 *                    error mapping
 *   meta_vfs_copy.c  snapshot files: copy, open a copy, check a copy
 *
 * The registry of bindings (path -> keys) is guarded by meta_vfs_lock.
 */
#ifndef VV_META_VFS_IMPL_INT_H
#define VV_META_VFS_IMPL_INT_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include <sqlite3.h>

#include "meta_vfs_int.h"

#define RESERVE VV_METAVFS_RESERVE
#define WAL_HDR 32
#define FRAME_HDR 24
#define KDF_CTX "vvmetavf"
#define STR_(x) #x
#define STR(x) STR_(x)

/* Layout of the secure key block each binding and file holds. */
enum { K_DB = 0, K_WAL = 1, K_PAD = 2, K_SNAP = 3, NKEYS = 4 };

/* path -> keys, for the files SQLite will ask us to open. */
struct binding {
	struct binding *next;
	char *path;             /* as the default VFS's xFullPathname spells it */
	uint8_t *keys;          /* NKEYS * VV_KEY_BYTES, secure memory */
	uint32_t psz;
	int discarded;          /* WAL frames recovery dropped as unauthentic */
	sqlite3 *db;            /* set once open; found again by vv_metavfs_close */
	bool readonly;          /* VV_METAVFS_READONLY */
	bool wal_absent;        /* readonly, and no WAL before we opened */
	bool snap;              /* a snapshot file: its WAL must stay empty */
	uint8_t *tags;          /* its recorded page tags, until the main file takes them */
	uint32_t ntags;         /* pages the record has (0: none, older snapshot) */
	struct wshm *shm;       /* the WAL index its connections share */
};

struct wshm;

struct mfile {
	sqlite3_file base;      /* must be first */
	int fd;
	bool wal;
	bool dirsync;           /* we created it: fsync its directory at first xSync */
	uint32_t psz;
	uint8_t *keys;          /* own copy (secure memory): outlives any unbind */
	uint8_t *pg;            /* scratch for one frame (24 + P bytes) */
	char *name;             /* full path, for logs and the directory fsync */
	int64_t hoff;           /* offset of the frame header cached in hdr, or -1 */
	uint8_t hdr[FRAME_HDR]; /* last frame header written, unmasked */
	bool snap;              /* of a snapshot file (top of meta_vfs.c) */
	uint8_t *tags;          /* main file of a snapshot: the recorded tag of each page */
	uint32_t ntags;
	struct wshm *shm;       /* main file: its database's WAL index */
	uint16_t shm_shared;    /* locks this file holds, by bit */
	uint16_t shm_excl;
};

enum { R_WALHDR, R_FHDR, R_PAGE };

/* One piece of a file in the layout at the top of meta_vfs.c. */
struct region {
	int kind;
	int64_t start, len;
	int64_t frame;          /* WAL: offset of this frame's header */
	uint32_t pgno;          /* main db: page number */
};

/* meta_vfs.c */
extern pthread_mutex_t meta_vfs_lock;
extern struct binding *meta_vfs_bindings;   /* under meta_vfs_lock */
extern sqlite3_vfs *meta_vfs_base;          /* the default VFS, for non-I/O methods */
extern sqlite3_vfs meta_vfs_sqlite;         /* ours (mxPathname: the default's) */
/* Register the VFS (once); SQLITE_OK when it can be used. */
int meta_vfs_register(void);
/* The binding of path (len bytes); caller holds meta_vfs_lock. */
struct binding *meta_vfs_find_path(const char *path, size_t len);
/* A WAL index with one reference; NULL if out of memory. */
struct wshm *meta_vfs_shm_new(void);
/* Drop a reference (m may be NULL); caller holds meta_vfs_lock. */
void meta_vfs_shm_put(struct wshm *m);
/* Open the sealed page in buf in place (hdr: its WAL frame header, or NULL
 * for the main file); SQLITE_OK, or SQLITE_IOERR_AUTH logged. */
int meta_vfs_open_page(const struct mfile *f, uint8_t *buf, const struct region *r,
		       const uint8_t *hdr);

/* meta_vfs_open.c: open with the store's key, or (key NULL) with a block of
 * NKEYS subkeys and a snapshot's page tags (ntags > 0). */
int meta_vfs_open_with(const char *path, const uint8_t key[32], const uint8_t *keys, const uint8_t *tags,
		       uint32_t ntags, uint32_t page_size, unsigned flags, sqlite3 **out);

#endif
