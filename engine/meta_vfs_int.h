/*
 * meta_vfs_int.h - the page-encrypting SQLite VFS behind meta.db.
 *
 * SQLite sees plaintext; every page of meta.db and every page inside a WAL
 * frame is stored encrypted and authenticated (XChaCha20-Poly1305 in the
 * page's 40 reserved bytes), and the WAL frame checksums, which SQLite
 * computes over plaintext, are masked with a keyed pad.  All file I/O goes
 * through engine/os.h.  Only the meta module's files (meta*.c) include
 * <sqlite3.h>.
 * Byte layout: docs/format.md and the table at the top of meta_vfs.c.
 */
#ifndef VV_META_VFS_INT_H
#define VV_META_VFS_INT_H

#include <stdbool.h>
#include <stdint.h>

#include <sqlite3.h>

#define VV_METAVFS_NAME "vecvault"
#define VV_METAVFS_CACHE_KIB 65536 /* SQLite page cache (PRAGMA cache_size=-N) */
#define VV_METAVFS_RESERVE 40    /* nonce(24) + tag(16) at the end of every page */

/*
 * Open meta.db at path through the encrypting VFS.
 *
 * create=true: path must not exist or be empty (and no path-wal may exist);
 * a new database with page size page_size and 40 reserved bytes is made.
 * create=false: path must exist and be non-empty, else VV_ECORRUPT with a log
 * naming the file (a missing or empty meta.db in an initialised vault is an
 * error, never a fresh database).
 *
 * page_size comes from the store's conf (power of two, 1024..65536), never
 * from the file: a file written with another page size or key fails with
 * VV_ECORRUPT.  Sets, in this order: page size + reserve bytes (create),
 * locking_mode=EXCLUSIVE (read-only and snapshot files; a read-write
 * database shares its WAL index with vv_metavfs_open_peer), journal_mode=WAL (checked), temp_store=MEMORY,
 * mmap_size=0, cache_size=-65536, foreign_keys=OFF; then checks page size
 * and reserve.  synchronous is meta.c's (the durability story).
 *
 * key (VV_KEY_BYTES) is copied into secure memory; the caller may wipe its
 * copy at once.  On success *out is a connection the caller owns and must
 * release with vv_metavfs_close(); on failure *out is NULL.  One open per
 * path at a time (VV_EBUSY otherwise).
 * Returns 0, VV_EINVAL, VV_EEXIST, VV_EBUSY, VV_ECORRUPT, VV_EIO, VV_ENOMEM.
 */
#define VV_METAVFS_CREATE 0x1     /* a new database (VV_EEXIST if one is there) */
#define VV_METAVFS_READONLY 0x2   /* leave the files as found: query_only, no
				   * checkpoint at close, and a WAL that did not
				   * exist before is removed again if empty */
int vv_metavfs_open(const char *path, const uint8_t key[32], uint32_t page_size,
		    unsigned flags, sqlite3 **out) __attribute__((warn_unused_result));

/*
 * PRAGMA wal_checkpoint(TRUNCATE), then close the connection (SQLite then
 * removes the empty WAL) and unbind the key.  Read-only: no checkpoint (so
 * a WAL left by a crash stays as it was), see VV_METAVFS_READONLY.  db may be NULL.  Returns 0 or
 * a VV_E* code (the connection is released either way; statements the
 * caller forgot to finalize are finalized here).
 */
int vv_metavfs_close(sqlite3 *db);

/*
 * A second connection to the read-write database db is open through this
 * VFS (same keys, same WAL, the WAL index in this process's heap): the
 * checkpointer's (meta.c, vv_meta_ckpt_pass), so that checkpoints run
 * beside the writer instead of inside its commits.  It runs no checkpoint
 * by itself or at close and writes no rows (query_only).  Close it with
 * vv_metavfs_close_peer before db.  VV_EINVAL for a read-only or snapshot
 * connection.  Returns 0 or VV_E*.
 */
int vv_metavfs_open_peer(sqlite3 *db, sqlite3 **out) __attribute__((warn_unused_result));
int vv_metavfs_close_peer(sqlite3 *peer);

/*
 * WAL frames that failed authentication during this connection's WAL
 * recovery and were treated as the end of the log (0 normally).  After a
 * crash the last frames may legitimately be torn; a non-zero count can also
 * mean tampering (a truncated log), so meta.c should trust the result only
 * if the commit counter still matches the anchor.  Page reads of frames
 * already accepted, and every main-db page, fail with VV_ECORRUPT instead.
 */
int vv_metavfs_wal_discarded(sqlite3 *db);

/*
 * The WAL's file descriptor, for a WAL sync made outside the connection
 * (vv_meta_wal_fd, the vault's group commit): SQLite runs synchronous=NORMAL,
 * so a commit writes its frames without syncing them.  The descriptor stays
 * open until vv_metavfs_close (the connection keeps its WAL open).
 * Syncs the WAL's directory first if this connection created the WAL and
 * has not synced it yet.  Call from the thread that owns db; the fsync of
 * the returned descriptor may run on any thread.  VV_EIO if db has no WAL.
 */
int vv_metavfs_wal_fd(sqlite3 *db);

/*
 * Snapshot files (meta_snap_file.c).  vv_metavfs_copy copies the main file of
 * db, which the caller has checkpointed (wal_checkpoint(TRUNCATE): the WAL
 * holds nothing), byte for byte to dst (created 0600, O_EXCL|O_NOFOLLOW;
 * removed again on failure; not synced: the caller fsyncs it and its
 * directory).  Nothing is decrypted or sealed again: the pages keep their
 * AD (page number) under the same key, so the copy is a database of its
 * own.  *tags receives (malloc, the caller frees) the 16-byte Poly1305 tag
 * of each of its *npages pages, in page order, for the caller to record in
 * meta.db: they bind every page to its place in this copy.
 *
 * vv_metavfs_open_copy opens such a file read-only under db's keys.  With
 * tags (npages > 0): every page read is compared with its recorded tag
 * before it is opened, and the file's size with npages (a mismatch:
 * SQLITE_IOERR_AUTH, VV_ECORRUPT, for that read); nothing is read up
 * front; a missing file is VV_ECORRUPT at once.  With mac instead (a
 * snapshot of an older build): the keyed BLAKE2b (subkey 4) of "vecvault
 * snapshot file" || tag (u32 LE) || the bytes || their length (u64 LE) is
 * checked against the whole file first; mac and tags both NULL: already
 * checked in this process.  Either way a WAL beside the file that has
 * content is refused (never written by us), and writes are refused.
 * Release the connection with vv_metavfs_close.
 *
 * vv_metavfs_check_copy (fsck) reads every page of the file at path and
 * counts in *dmg the pages whose tag differs from the record or that fail
 * authentication, or are missing; dmg->size is the file's size, dmg->want
 * npages * page size.  Returns 0 (damage in *dmg) or a VV_E* code
 * for a failure of its own.
 */
struct vv_metavfs_damage {
	uint32_t bad;           /* pages that differ from the record (incl. missing ones) */
	uint32_t first;         /* the first of them (1-based) */
	uint64_t size;          /* the file's size in bytes */
	uint64_t want;          /* what its record says: npages * page size */
	bool missing;           /* the file cannot be opened or read (err: -errno) */
	int err;
};
int vv_metavfs_copy(sqlite3 *db, const char *dst, uint8_t **tags, uint32_t *npages)
	__attribute__((warn_unused_result));
int vv_metavfs_open_copy(sqlite3 *db, const char *path, uint32_t tag, const uint8_t mac[32],
			 const uint8_t *tags, uint32_t npages, sqlite3 **out)
	__attribute__((warn_unused_result));
int vv_metavfs_check_copy(sqlite3 *db, const char *path, const uint8_t *tags, uint32_t npages,
			  struct vv_metavfs_damage *dmg) __attribute__((warn_unused_result));

/*
 * Map an SQLite result code (rc from a call on db; db may be NULL) to a
 * VV_E* code: authentication failures and malformed files -> VV_ECORRUPT,
 * SQLITE_FULL -> VV_ENOSPC, other I/O -> VV_EIO, SQLITE_NOMEM -> VV_ENOMEM,
 * SQLITE_OK/ROW/DONE -> 0.  For meta.c's own error paths.
 */
int vv_metavfs_err(sqlite3 *db, int rc);

#endif
