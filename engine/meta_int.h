/*
 * meta_int.h - the metadata store: schema and queries on meta.db.
 *
 * The only module using SQLite (with meta_vfs.c, which encrypts its pages).
 * One connection, used under the caller's lock (the vault's metadata mutex):
 * no function here is thread-safe on its own.  Writes happen inside a
 * transaction the caller opens with vv_meta_begin() and ends with
 * vv_meta_commit(); the vault batches many operations into one commit.
 *
 * Schema (see docs/format.md, "meta.db schema"):
 *   kv(k TEXT PRIMARY KEY, v)                       format, counters, checkpoints
 *   inodes(ino PK, gen, mode, uid, gid, nlink, size, rdev, atime, mtime,
 *          ctime, parent, coll, objid, stored, data) data: inline bytes / symlink
 *   dirents(id PK AUTOINCREMENT, parent, name, ino, mode)  UNIQUE(parent, name),
 *          INDEX(parent) (readdir by cookie; added to older stores by upgrade)
 *   xattrs(ino, name, value)                       PRIMARY KEY(ino, name)
 *   extents(ino, fblock, chunk, off, len, slot)   PRIMARY KEY(ino, fblock)
 *   chunks(id PK, coll, refs, size)
 *   colls(id PK, wrapped)                          per-collection data keys, wrapped
 *   users, user_roles, api_keys                    (meta_user.c) vault users and keys
 *   trash(id PK AUTOINCREMENT, ino, name, path, oparent, oname, deleted,
 *         uid, coll, size, gate)  INDEX(oparent), INDEX(deleted)   (meta_trash.c)
 *   roles(name PK, gid UNIQUE, created)            (meta_role.c; feature tables live in
 *                                                  meta_<feature>.c, see meta_sql_int.h)
 *   coll_admins(coll, gid)                         PRIMARY KEY(coll, gid): roles with admin
 *                                                  on a collection (meta_grant.c)
 */
#ifndef VV_META_INT_H
#define VV_META_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "content_int.h"
#include "vecvault/version.h"

#define VV_META_FORMAT VV_FORMAT_META

struct vv_meta;

struct vv_inode_row {
	uint64_t ino;
	uint64_t gen;
	uint32_t mode, uid, gid, nlink;
	uint64_t size, rdev;
	int64_t atime, mtime, ctime;      /* ns since the epoch */
	uint64_t parent;                  /* primary parent (a directory's only one) */
	uint32_t coll;                    /* collection id (0: top-level files) */
	uint8_t objid[VV_OBJID_BYTES];    /* immutable, bound into every block's AD */
	uint64_t stored;                  /* bytes stored in chunks */
};

/* Open meta.db.  flags: VV_META_CREATE a new one with the schema;
 * VV_META_READONLY changes no byte of meta.db or its WAL (fsck --dry-run,
 * ro mounts; meta_vfs_int.h).  key: the meta subkey. */
#define VV_META_CREATE 0x1
#define VV_META_READONLY 0x2
int vv_meta_open(const char *path, const uint8_t key[32], uint32_t page_size, unsigned flags,
		 struct vv_meta **out);
/* Bring a store written by an older build of the same format up to this
 * build's schema (today: the dirents_dir index), in a commit of its own.
 * Call with no write transaction pending.  A failure to add the index is
 * logged and not returned (listings are then slower, not wrong).  Not
 * called for read-only opens, which work without it.  Idempotent. */
int vv_meta_upgrade(struct vv_meta *m);
/* WAL frames dropped at open because they did not authenticate. */
int vv_meta_wal_discarded(struct vv_meta *m);
/* Commit what is pending, checkpoint and close.  NULL ok. */
int vv_meta_close(struct vv_meta *m);

/* Transactions.  begin is a no-op if one is open; commit (a no-op without
 * one) increments the commit counter (kv "commits"), writes the WAL frames
 * and syncs the WAL, so a commit that returned is durable: the durability
 * story is told once, in vault_commit.c.  commit_written stops before the
 * sync (SQLite runs synchronous=NORMAL): the commit is visible and survives
 * a process kill, but not a power cut, until the descriptor wal_fd returns
 * is fsync'd (by any thread; see vv_metavfs_wal_fd). */
int vv_meta_begin(struct vv_meta *m);
bool vv_meta_in_txn(const struct vv_meta *m);
int vv_meta_commit(struct vv_meta *m);
int vv_meta_commit_written(struct vv_meta *m);
int vv_meta_wal_fd(struct vv_meta *m);          /* >= 0, or VV_EIO */
int vv_meta_rollback(struct vv_meta *m);

/* Checkpoints beside the writer (docs/design.md, "Commit pipeline").
 * ckpt_open (read-write, at open) opens the checkpointer's own connection
 * through the same VFS and turns SQLite's automatic checkpoint off on the
 * writer's, whose commits then never write the database file: without it
 * (VV_E*), the writer keeps checkpointing inside its commits.
 * wal_frames: frames in the WAL after the last commit (writer's thread).
 * ckpt_pass copies every frame of committed transactions into the
 * database file and syncs it (PASSIVE: the writer goes on meanwhile), from
 * any thread but never holding the writer's lock; *log and *done are the
 * frames in the WAL and those now in the database; hook (tests; may be
 * NULL) runs inside it, before SQLite's checkpoint.  ckpt_finish (writer's
 * thread, no write transaction open) copies what is left, usually the few
 * frames committed during the last pass, so that the WAL starts over at
 * the next commit: 0, or 1 while a pass runs (or a statement is open: try
 * again later), or VV_EBUSY if frames are left, VV_EIO.
 * meta_checkpoint (snapshots) waits for a running pass. */
int vv_meta_ckpt_open(struct vv_meta *m);
void vv_meta_ckpt_close(struct vv_meta *m);     /* back to SQLite's own */
uint32_t vv_meta_wal_frames(const struct vv_meta *m);
int vv_meta_ckpt_pass(struct vv_meta *m, void (*hook)(void *), void *ctx, int *log, int *done);
int vv_meta_ckpt_finish(struct vv_meta *m);
/* Shredding a deleted row on disk (a dropped collection key, docs/design.md
 * "Collections and keys"): writable connections run secure_delete=ON, so
 * the deletion zeroed the row's bytes in its page and any page it freed;
 * this copies every WAL frame into meta.db (wal_checkpoint(TRUNCATE), which
 * syncs meta.db) and truncates the WAL to 0 bytes, so that no older frame
 * keeps the row.  Writer's thread, no write transaction open; never waits
 * for a running pass, nor ends a read while a statement runs (VV_EBUSY for
 * each: try again later).  0, VV_EBUSY, VV_EROFS (read-only), VV_EIO. */
int vv_meta_shred(struct vv_meta *m);

/* kv */
int vv_meta_kv_get_u64(struct vv_meta *m, const char *k, uint64_t *v);   /* VV_ENOENT if absent */
int vv_meta_kv_set_u64(struct vv_meta *m, const char *k, uint64_t v);
int vv_meta_kv_get_blob(struct vv_meta *m, const char *k, void *buf, size_t cap, size_t *len);
int vv_meta_kv_set_blob(struct vv_meta *m, const char *k, const void *buf, size_t len);

/* inodes */
int vv_meta_inode_get(struct vv_meta *m, uint64_t ino, struct vv_inode_row *r);
/* Insert or replace the row's attributes (data untouched on replace). */
int vv_meta_inode_put(struct vv_meta *m, const struct vv_inode_row *r);
/* data: inline file bytes or symlink target.  *data malloc'd (caller frees),
 * NULL with len 0 when empty. */
int vv_meta_inode_get_data(struct vv_meta *m, uint64_t ino, uint8_t **data, size_t *len);
int vv_meta_inode_set_data(struct vv_meta *m, uint64_t ino, const void *data, size_t len);
/* vv_meta_inode_put and vv_meta_inode_set_data in one statement: the row
 * (and its data, which may span overflow pages) is written once. */
int vv_meta_inode_put_data(struct vv_meta *m, const struct vv_inode_row *r, const void *data,
			   size_t len);
/* Delete the inode with its xattrs (extents: vv_meta_extents_trim first). */
int vv_meta_inode_del(struct vv_meta *m, uint64_t ino);
/* A fresh inode number from the never-reused counter. */
int vv_meta_next_ino(struct vv_meta *m, uint64_t *ino);
int vv_meta_inode_iter(struct vv_meta *m, int (*cb)(void *ctx, const struct vv_inode_row *r), void *ctx);

/* directory entries */
int vv_meta_dirent_get(struct vv_meta *m, uint64_t parent, const char *name, uint64_t *ino);
/* names[0..n) of directory parent looked up as vv_meta_dirent_get would
 * answer each (err[i]: 0 with ino[i] set, VV_ENOENT, or the error), in one
 * pass over the directory's entries in name order instead of n lookups:
 * names in ascending byte order cost a step each; others are put in order
 * first (duplicates allowed); a gap of many entries not asked for is
 * crossed by a new seek.  With rows (and xattrs), each name found also
 * gets its inode row and whether it has any stored xattr, read in the same
 * pass as vv_meta_dirent_list_plus does (rows[i].ino 0: not read, the
 * caller loads it; in .snapshots and the root, always).  Returns 0, or
 * VV_ENOMEM / VV_EIO with nothing answered. */
int vv_meta_dirent_get_many(struct vv_meta *m, uint64_t parent, const char *const *names, size_t n,
			    uint64_t *ino, int *err, struct vv_inode_row *rows, bool *xattrs);
int vv_meta_dirent_add(struct vv_meta *m, uint64_t parent, const char *name, uint64_t ino, uint32_t mode);
int vv_meta_dirent_del(struct vv_meta *m, uint64_t parent, const char *name);
/* Move an entry, keeping its cookie (readdir offsets stay valid). */
int vv_meta_dirent_move(struct vv_meta *m, uint64_t parent, const char *name, uint64_t nparent, const char *nname);
/* Point an existing entry at another inode (rename over, exchange). */
int vv_meta_dirent_set_ino(struct vv_meta *m, uint64_t parent, const char *name, uint64_t ino, uint32_t mode);
int vv_meta_dir_empty(struct vv_meta *m, uint64_t parent, bool *empty);
/* Entries of parent with cookie > after, in cookie order, at most max;
 * cb returns non-zero to stop (that value is returned). */
int vv_meta_dirent_list(struct vv_meta *m, uint64_t parent, uint64_t after, int max,
			int (*cb)(void *ctx, uint64_t cookie, const char *name, uint64_t ino, uint32_t mode),
			void *ctx);
/* Like vv_meta_dirent_list, with each entry's inode row (readdirplus: one
 * query instead of one per entry) and whether the inode has any stored
 * xattr (`ls -l` then asks each entry for security.* and its ACL: the
 * answer is known without a query per entry).  An entry without inode:
 * VV_ECORRUPT. */
int vv_meta_dirent_list_plus(struct vv_meta *m, uint64_t parent, uint64_t after, int max,
			     int (*cb)(void *ctx, uint64_t cookie, const char *name,
				       const struct vv_inode_row *r, bool xattrs),
			     void *ctx);
/* Every entry (fsck). */
int vv_meta_dirent_iter_all(struct vv_meta *m,
			    int (*cb)(void *ctx, uint64_t parent, const char *name, uint64_t ino), void *ctx);
/* One name under which ino is linked (for audit paths of hard links). */
int vv_meta_dirent_find_ino(struct vv_meta *m, uint64_t ino, uint64_t *parent, char *name, size_t cap);
/* The directories holding a name of ino in the live tree (not a snapshot
 * number: VV_EINVAL), each once, at most max of them into parents[*n]. */
int vv_meta_dirent_parents(struct vv_meta *m, uint64_t ino, uint64_t *parents, size_t max,
			   size_t *n);

/* xattrs */
int vv_meta_xattr_get(struct vv_meta *m, uint64_t ino, const char *name, uint8_t **val, size_t *len);
int vv_meta_xattr_set(struct vv_meta *m, uint64_t ino, const char *name, const void *val, size_t len);
int vv_meta_xattr_del(struct vv_meta *m, uint64_t ino, const char *name);   /* VV_ENODATA if absent */
/* Does ino have any stored xattr? */
int vv_meta_xattr_any(struct vv_meta *m, uint64_t ino, bool *any);
int vv_meta_xattr_list(struct vv_meta *m, uint64_t ino, int (*cb)(void *ctx, const char *name), void *ctx);

/* extents */
/* One extents row's columns, as SQLite gives them, into *e: the chunk id
 * must be VV_CHUNK_ID_BYTES and off, len, slot within u32 (VV_ECORRUPT
 * otherwise, never truncated).  fblock is stored as its i64 bit pattern.
 * The row is not checked against the chunk format here (content.c does
 * that before any read).  Pure: the fuzzer runs it (tests/fuzz). */
int vv_meta_extent_decode(int64_t fblock, const void *chunk, size_t chunklen, int64_t off,
			  int64_t len, int64_t slot, struct vv_extent *e);
int vv_meta_extents_load(struct vv_meta *m, uint64_t ino,
			 int (*cb)(void *ctx, const struct vv_extent *e), void *ctx);
int vv_meta_extent_put(struct vv_meta *m, uint64_t ino, const struct vv_extent *e);
/* Delete extents with fblock >= from; cb sees each one deleted. */
int vv_meta_extents_trim(struct vv_meta *m, uint64_t ino, uint64_t from,
			 int (*cb)(void *ctx, const struct vv_extent *e), void *ctx);
int vv_meta_extent_iter_all(struct vv_meta *m,
			    int (*cb)(void *ctx, uint64_t ino, const struct vv_extent *e), void *ctx);

/* chunks: reference counts.  delta may be negative; *refs gets the result.
 * A chunk row is created on first reference and deleted at zero. */
int vv_meta_chunk_ref(struct vv_meta *m, const uint8_t id[VV_CHUNK_ID_BYTES], uint32_t coll,
		      int64_t delta, uint64_t size, uint64_t *refs);
int vv_meta_chunk_iter(struct vv_meta *m,
		       int (*cb)(void *ctx, const uint8_t *id, uint32_t coll, uint64_t refs, uint64_t size),
		       void *ctx);
int vv_meta_chunk_set_refs(struct vv_meta *m, const uint8_t id[VV_CHUNK_ID_BYTES], uint64_t refs);
int vv_meta_chunk_stats(struct vv_meta *m, uint64_t *count, uint64_t *bytes);

/* collections: wrapped data keys */
int vv_meta_coll_get(struct vv_meta *m, uint32_t id, uint8_t *wrapped, size_t cap, size_t *len);
int vv_meta_coll_add(struct vv_meta *m, const uint8_t *wrapped, size_t len, uint32_t *id);
int vv_meta_coll_del(struct vv_meta *m, uint32_t id);
/* Does anything still need collection coll's key?  Any inode but except
 * (0: none) of the collection (live, trashed: items and parts of trees,
 * unlinked but open: they all keep their rows), or any snapshot naming it
 * in snap_colls (file snapshots name every collection of their moment,
 * row snapshots of older builds every collection their rows hold: the
 * golden store golden-snap-v1, t6046).  The one test before a key goes
 * (vault_coll_release); an error leaves *needed true. */
int vv_meta_coll_needed(struct vv_meta *m, uint32_t coll, uint64_t except, bool *needed);
/* The ids of every collection key but skip, ascending, in *ids (the
 * caller frees it). */
int vv_meta_coll_ids(struct vv_meta *m, uint32_t skip, uint32_t **ids, size_t *n);

/* Counts for statfs (the inode count is kept by triggers, docs/format.md
 * inode_count); fsck sets it to what it counted (inside a transaction). */
int vv_meta_counts(struct vv_meta *m, uint64_t *inodes);
int vv_meta_counts_set(struct vv_meta *m, uint64_t inodes);

/* Work SQLite did in this module's statements since the last call (virtual
 * machine steps and sorts, summed; the counters restart).  For tests that
 * guard query plans: work per row returned must not grow with table size. */
void vv_meta_work(struct vv_meta *m, uint64_t *vm_steps, uint64_t *sorts);
/* Runs of the core statements since the last call (each step from a
 * reset counts one): tests count the queries an operation makes. */
uint64_t vv_meta_runs(struct vv_meta *m);

/* PRAGMA integrity_check: reads (so decrypts and authenticates) every page.
 * cb gets each problem line.  0 when clean, VV_ECORRUPT otherwise. */
int vv_meta_integrity(struct vv_meta *m, void (*cb)(void *ctx, const char *line), void *ctx);

/* Roles (meta_role.c): a role is a POSIX group registered in the vault.
 * VV_EEXIST: name or gid already a role.  _get/_del: VV_ENOENT if absent. */
int vv_meta_role_add(struct vv_meta *m, const char *name, uint32_t gid, int64_t created);
int vv_meta_role_get(struct vv_meta *m, const char *name, uint32_t *gid);
int vv_meta_role_del(struct vv_meta *m, const char *name);
int vv_meta_role_iter(struct vv_meta *m,
		      int (*cb)(void *ctx, const char *name, uint32_t gid, int64_t created),
		      void *ctx);
/* Every stored ACL blob (access and default), in no particular order. */
int vv_meta_acl_iter(struct vv_meta *m,
		     int (*cb)(void *ctx, uint64_t ino, bool dflt, const uint8_t *blob, size_t len),
		     void *ctx);

/* --- snapshots (meta_snap.c, meta_snap_file.c) --------------------------------
 *
 * A snapshot is the state of one commit: a byte copy of meta.db in
 * STORE/snapshots/ID.db (or, made by an older build, a copy of the rows of
 * inodes, dirents, xattrs and extents in snap_* tables tagged with its id;
 * see docs/format.md and meta_snap.c).  Its files are served read-only under virtual inode
 * numbers (DESIGN "shared namespace decisions"):
 *
 *   2^61 | sid << 40 | ino     sid in 1..2^20-1, ino the inode number then
 *   2^61                       the `.snapshots` directory itself
 *
 * so the snapshot of the root is 2^61 | sid << 40 | 1 (the NAME
 * directory).  The read functions above (inode_get, inode_get_data,
 * dirent_get, dirent_list(_plus), dirent_find_ino, xattr_get/any/list,
 * extents_load) answer for such numbers from the snapshot's rows, with
 * every inode number in the rows they return translated; the write
 * functions return VV_EROFS for them.  vv_meta_dirent_get(root,
 * ".snapshots") finds the virtual directory when no stored entry has that
 * name (a store from an older build that has one keeps it).  Snapshot ids
 * come from a counter (kv "next_snap") and are never reused, so a stale
 * kernel inode can never name a later snapshot's file.
 */
#define VV_META_ROOT_INO 1              /* = VV_ROOT_INO (vault.h) */
#define VV_SNAP_BIT (1ULL << 61)
#define VV_SNAPDIR_INO VV_SNAP_BIT
#define VV_SNAP_ID_MAX ((1u << 20) - 1)
#define VV_SNAP_INO_MAX ((1ULL << 40) - 1)
#define VV_SNAPDIR_NAME ".snapshots"
#define VV_SNAP_NAME_MAX 255

static inline bool vv_snap_ino(uint64_t ino)
{
	return (ino >> 61) == 1;
}

static inline uint64_t vv_snap_mkino(uint32_t sid, uint64_t ino)
{
	return VV_SNAP_BIT | (uint64_t)sid << 40 | ino;
}

static inline uint32_t vv_snap_sid(uint64_t vino)
{
	return (uint32_t)((vino >> 40) & VV_SNAP_ID_MAX);
}

static inline uint64_t vv_snap_real(uint64_t vino)
{
	return vino & VV_SNAP_INO_MAX;
}

#define VV_SNAP_AUTO 0x1                 /* made by the schedule (retention may delete it) */

struct vv_snap_row {
	uint32_t id;
	char name[VV_SNAP_NAME_MAX + 1];
	int64_t created;                     /* ns since the epoch */
	uint64_t commit;                     /* the commit that holds it */
	uint32_t uid;                        /* who made it (0 for the schedule) */
	uint32_t flags;                      /* VV_SNAP_AUTO */
	uint64_t inodes, bytes;              /* files and their sizes, summed */
};

/* A snapshot is made in three steps (vault_snap_create;
 * meta_snap_file.c):
 * 1. vv_meta_snap_create, inside the caller's transaction: a pending
 *    snapshot (hidden from get/list) with one reference on each distinct
 *    chunk the live extents name (snap_chunks).  VV_EEXIST: the name is
 *    taken (pending ones too); VV_ENOSPC: ids or inode numbers past the
 *    virtual-number scheme.  out gets id, name, times (no counts yet).
 * 2. after that commit, with no transaction open: vv_meta_snap_copy
 *    checkpoints the WAL and copies meta.db to snapshots/ID.db (tags: the
 *    tag of each of its pages; free with vv_meta_snap_tags_free).  The
 *    caller fsyncs the file and the directory (vv_meta_snap_file_path;
 *    id 0: the directory).
 * 3. vv_meta_snap_scan (no lock), then vv_meta_snap_ready in a
 *    transaction: records the tags (snap_tags), makes the snapshot
 *    visible, with its file counts and collections; out: its row.
 * A crash before 3's commit leaves a pending snapshot: vv_meta_snap_recover
 * (read-write open, in a transaction) drops it and its references
 * (freed as in delete), and after that commit vv_meta_snap_sweep removes
 * every file under snapshots/ that no ready snapshot owns. */
int vv_meta_snap_create(struct vv_meta *m, const char *name, int64_t now, uint32_t uid,
			uint32_t flags, struct vv_snap_row *out);
struct vv_snap_tags {
	uint8_t *tags;                       /* 16 bytes per page, in page order */
	uint32_t npages;
};
int vv_meta_snap_copy(struct vv_meta *m, uint32_t id, struct vv_snap_tags *tags);
void vv_meta_snap_tags_free(struct vv_snap_tags *tags);
int vv_meta_snap_file_path(struct vv_meta *m, uint32_t id, char *buf, size_t cap);
/* 3a, without the vault's lock: the file counts, bytes and collections of
 * snapshot id's file at path (vv_meta_snap_file_path), read on a
 * connection of its own; free with vv_meta_snap_scan_free. */
struct vv_snap_scan {
	uint64_t files, bytes;
	uint32_t *colls;
	size_t ncolls;
};
int vv_meta_snap_scan(struct vv_meta *m, uint32_t id, const char *path, const struct vv_snap_tags *tags,
		      struct vv_snap_scan *out);
void vv_meta_snap_scan_free(struct vv_snap_scan *sc);
int vv_meta_snap_ready(struct vv_meta *m, uint32_t id, const struct vv_snap_tags *tags,
		       const struct vv_snap_scan *scan, struct vv_snap_row *out);
int vv_meta_snap_recover(struct vv_meta *m, void (*freed)(void *ctx, const uint8_t *chunk), void *ctx,
			 uint32_t *dropped);
int vv_meta_snap_sweep(struct vv_meta *m);
/* After the commit of a delete: close and remove snapshot id's file (if it
 * has one; a failure is logged, and the next sweep removes it). */
int vv_meta_snap_unlink_file(struct vv_meta *m, uint32_t id);
/* Delete snapshot id and drop its chunk references; freed(ctx, chunk) for
 * each chunk whose count reached zero (the caller unlinks it after the
 * commit, and then the snapshot's file: vv_meta_snap_unlink_file).  Inside
 * the caller's transaction. */
int vv_meta_snap_delete(struct vv_meta *m, uint32_t id,
			void (*freed)(void *ctx, const uint8_t *chunk), void *ctx);
int vv_meta_snap_get(struct vv_meta *m, const char *name, struct vv_snap_row *out);   /* VV_ENOENT */
int vv_meta_snap_get_id(struct vv_meta *m, uint32_t id, struct vv_snap_row *out);
/* Every snapshot in id (= creation) order; cb non-zero stops. */
int vv_meta_snap_list(struct vv_meta *m, int (*cb)(void *ctx, const struct vv_snap_row *r), void *ctx);
/* cb(uid) for the owners of every snapshot's files (older builds' rows
 * and each ready snapshot file: a scan of each; a uid may come more than
 * once).  A snapshot file that cannot be read is logged and skipped; an
 * error of cb or of meta.db stops and is returned. */
int vv_meta_snap_owners(struct vv_meta *m, int (*cb)(void *ctx, uint32_t uid), void *ctx);
/* fsck: each snapshot's references, one per (snapshot, distinct chunk). */
/* What snapshots hold: how many, the file bytes they name (shared with
 * the live tree where unchanged), and the bytes of the chunk objects that
 * only snapshots still reference (what deleting them all would free). */
int vv_meta_snap_space(struct vv_meta *m, uint64_t *count, uint64_t *bytes, uint64_t *only);
/* The disk the snapshot files take (each a copy of meta.db then). */
int vv_meta_snap_file_bytes(struct vv_meta *m, uint64_t *bytes);
int vv_meta_snap_chunk_iter(struct vv_meta *m, int (*cb)(void *ctx, uint32_t sid, const uint8_t *chunk),
			    void *ctx);
/* fsck: structural problems of snapshot sid (entries without inodes,
 * extents of missing inodes), one line each to cb; returns how many. */
int vv_meta_snap_check(struct vv_meta *m, uint32_t sid, void (*cb)(void *ctx, const char *line),
		       void *ctx, uint64_t *problems);

/* Restore: insert snapshot sid's inode real as live inode ino (new, from
 * vv_meta_next_ino) with nlink and parent, with its xattrs and extents,
 * taking the live tree's references on its chunks.  The entry naming it
 * is the caller's (vv_meta_dirent_add). */
int vv_meta_snap_restore_inode(struct vv_meta *m, uint32_t sid, uint64_t real, uint64_t ino,
			       uint32_t nlink, uint64_t parent);
/* A savepoint inside the open transaction: _end(m, r) releases it, or
 * rolls back to it first when r < 0; returns r. */
int vv_meta_savepoint(struct vv_meta *m);
int vv_meta_savepoint_end(struct vv_meta *m, int r);
/* A bulk copy (snapshot create) keeps every page it touches in SQLite's
 * cache until its commit: on, the cache may grow to VV_META_BULK_CACHE_KIB
 * (no spill into the WAL mid-transaction, so no page is written twice);
 * off, back to the normal size (the pages beyond it are freed). */
#define VV_META_BULK_CACHE_KIB (1024 * 1024)
void vv_meta_bulk_cache(struct vv_meta *m, bool on);
/* Vault users and API keys (meta_user.c; tables in docs/format.md).  Ids
 * are never reused (AUTOINCREMENT), so a key of a deleted user can never
 * belong to a later user of the same name.  pwhash: libsodium's Argon2id
 * string; a key's hash: SHA-256 of its secret.  Times: ns since the epoch;
 * expires, last_used and revoked 0 for "never".  A read-only open of an
 * older store has no tables: lookups answer VV_ENOENT, iterators nothing. */
#define VV_USER_NAME_MAX 32
#define VV_KEY_ID_CHARS 16
#define VV_KEY_LABEL_MAX 128
#define VV_KEY_ALLOW_MAX 2048             /* the CIDR list, comma-separated */

struct vv_user_row {
	int64_t id;
	char name[VV_USER_NAME_MAX + 1];
	uint32_t uid;
	bool has_password;
	int64_t created, changed;
};

struct vv_key_row {
	char id[VV_KEY_ID_CHARS + 1];
	int64_t user;                     /* users.id */
	char uname[VV_USER_NAME_MAX + 1]; /* the user's name when it was made */
	uint8_t hash[32];
	char label[VV_KEY_LABEL_MAX + 1];
	int64_t created, expires, last_used, revoked;
	char allow[VV_KEY_ALLOW_MAX];
};

bool vv_meta_user_ready(struct vv_meta *m);
int vv_meta_user_get(struct vv_meta *m, const char *name, struct vv_user_row *r);
/* The stored password hash into buf; VV_ENOENT if the user has none. */
int vv_meta_user_pwhash(struct vv_meta *m, int64_t id, char *buf, size_t cap);
/* Add a user with its roles, all or nothing; sets r->id.  VV_EEXIST if
 * the name is taken.  pwhash may be NULL (keys only). */
int vv_meta_user_add(struct vv_meta *m, struct vv_user_row *r, const char *pwhash,
		     const char *const *roles, size_t nroles);
/* Delete the user and its roles, revoke (at now) its keys, which stay
 * listed for the record, and retire its uid; all or nothing.  VV_ENOENT
 * if no such user. */
int vv_meta_user_del(struct vv_meta *m, int64_t id, int64_t now);
int vv_meta_user_set_pw(struct vv_meta *m, int64_t id, const char *pwhash, int64_t now);
/* Add (VV_EEXIST if held) or remove (VV_ENOENT if not held) one role. */
int vv_meta_user_role(struct vv_meta *m, int64_t id, const char *role, bool add, int64_t now);
/* The user's roles by name; cb returns non-zero to stop (returned). */
int vv_meta_user_roles(struct vv_meta *m, int64_t id,
		       int (*cb)(void *ctx, const char *role), void *ctx);
/* How many vault users hold role; the first by name into first (cap
 * bytes, "" when none). */
int vv_meta_role_holders(struct vv_meta *m, const char *role, uint64_t *n, char *first,
			 size_t cap);
/* Delete role and take it from every vault user, all or nothing
 * (role.delete).  VV_ENOENT if no such role. */
int vv_meta_role_del_held(struct vv_meta *m, const char *role);
/* Every user by name. */
int vv_meta_user_iter(struct vv_meta *m, int (*cb)(void *ctx, const struct vv_user_row *r),
		      void *ctx);
/* *taken: a vault user acts as uid, or a deleted one did (retired_uids). */
int vv_meta_user_uid_taken(struct vv_meta *m, uint32_t uid, bool *taken);
/* Retire every uid that owns an inode and that no user has: a store whose
 * past users are not known (restored from a backup, which carries files
 * but no users; upgraded from before retired_uids).  Scans inodes and
 * every snapshot's (vv_meta_snap_owners). */
int vv_meta_user_retire_owners(struct vv_meta *m);
/* VV_EEXIST if the id is taken (the caller draws another). */
int vv_meta_key_add(struct vv_meta *m, const struct vv_key_row *k);
int vv_meta_key_get(struct vv_meta *m, const char *id, struct vv_key_row *k);   /* VV_ENOENT */
/* Keys of user (every key with user < 0) by (user name, creation). */
int vv_meta_key_iter(struct vv_meta *m, int64_t user,
		     int (*cb)(void *ctx, const struct vv_key_row *k), void *ctx);
/* VV_ENOENT if no such key; a revoked key keeps its first revocation time. */
int vv_meta_key_revoke(struct vv_meta *m, const char *id, int64_t now);
int vv_meta_key_used(struct vv_meta *m, const char *id, int64_t now);
/* Grants (meta_grant.c): the roles holding the admin privilege on a
 * collection (coll: the inode number of its directory).  _set inside the
 * caller's transaction (VV_EROFS on a read-only open of a store without the
 * table); _list: the gids in order, up to max into gids, *n how many exist
 * (none without the table). */
int vv_meta_admin_set(struct vv_meta *m, uint64_t coll, uint32_t gid, bool on);
int vv_meta_admin_list(struct vv_meta *m, uint64_t coll, uint32_t *gids, size_t max, size_t *n);
/* --- the recycle bin's table (meta_trash.c) ------------------------------ */
/* One trashed item: a tree (a file, or a directory with everything that
 * was removed from under it in the same removal) that .trash/files lists
 * as name (its row is that name: no entry in dirents).  gate: the
 * permissions of the directories that led to it when it was removed
 * (vault_trash.c says how they are used). */
struct vv_trash_row {
	uint64_t id;                      /* its .trashinfo is VV_TRASH_INFO_FIRST + id */
	uint64_t ino;                     /* the item's own inode (kept) */
	char name[256];                   /* in .trash/files (VV_NAME_MAX + 1) */
	char path[4096];                  /* original vault path */
	uint64_t oparent;                 /* original parent directory */
	char oname[256];                  /* original name */
	int64_t deleted;                  /* ns since the epoch */
	uint32_t uid;                     /* who removed it */
	uint32_t coll;
	uint64_t size;                    /* bytes of the files of the tree */
	uint8_t gate[1024];
	size_t gatelen;
};
/* A new item, for vv_meta_trash_add: the caller's strings and gate, not
 * copied (a removal builds no row buffer). */
struct vv_trash_new {
	uint64_t ino, oparent, size;
	const char *name, *path, *oname;
	int64_t deleted;
	uint32_t uid, coll;
	const uint8_t *gate;
	size_t gatelen;
};
/* Has this store the trash tables?  (A read-only open of a store without
 * them has the trash empty and off; of one in the older layout, a stand-in
 * for trash_parts is made in memory.) */
bool vv_meta_trash_ready(struct vv_meta *m);
/* Insert t as an item; *id its row id.  VV_EEXIST: t->name is taken in
 * .trash/files (nothing inserted: try another). */
int vv_meta_trash_add(struct vv_meta *m, const struct vv_trash_new *t, uint64_t *id);
int vv_meta_trash_get(struct vv_meta *m, uint64_t id, struct vv_trash_row *r);  /* VV_ENOENT */
/* The item called name in .trash/files.  VV_ENOENT */
int vv_meta_trash_get_name(struct vv_meta *m, const char *name, struct vv_trash_row *r);
/* The name in .trash/files of the newest row (item or part) of inode ino,
 * for paths in messages (a scan: rare).  VV_ENOENT */
int vv_meta_trash_name_of(struct vv_meta *m, uint64_t ino, char *name, size_t cap);
/* The newest row of inode ino, an item's or a part's of a removed tree
 * not yet settled (a scan: no index by inode).  VV_ENOENT */
int vv_meta_trash_get_ino(struct vv_meta *m, uint64_t ino, struct vv_trash_row *r);
int vv_meta_trash_del(struct vv_meta *m, uint64_t id);
/* Items with id > after in id order, at most max (0: all); cb returns
 * non-zero to stop (returned).  r is only valid during the call. */
typedef int (*vv_trash_cb)(void *ctx, const struct vv_trash_row *r);
int vv_meta_trash_list(struct vv_meta *m, uint64_t after, int max, vv_trash_cb cb, void *ctx);
/* A part of a removed tree: its row's narrow part and its inode's mode
 * (entry false: the inode is missing, damage fsck names). */
struct vv_trash_kid {
	uint64_t id, ino, size;
	int64_t deleted;
	uint32_t uid, mode;
	bool entry;
	char name[256], oname[256];
};
typedef int (*vv_trash_kid_cb)(void *ctx, const struct vv_trash_kid *k);
/* rm -rf's grouping: the n items ids, removed from dir (the caller knows
 * they are in the table), become parts of dir's tree (trash_parts): no
 * longer items of their own, without entries until vv_meta_trash_settle.
 * The caller has checked that they have distinct original names.
 * *marked: how many were (not those that were parts already). */
int vv_meta_trash_mark(struct vv_meta *m, uint64_t dir, const uint64_t *ids, size_t n, uint64_t *marked);
/* The parts of dir's tree, by id. */
int vv_meta_trash_parts(struct vv_meta *m, uint64_t dir, vv_trash_kid_cb cb, void *ctx);
/* Give them their entries under dir (by their original names), their
 * inodes' parent, and drop their rows and marks.  *n: entries made. */
int vv_meta_trash_settle(struct vv_meta *m, uint64_t dir, uint64_t *n);
/* Directories with parts still to settle, at most max. */
int vv_meta_trash_pending(struct vv_meta *m, uint64_t *dirs, size_t max, size_t *n);
/* Every row, items and parts (each is one link of its inode: fsck). */
int vv_meta_trash_links(struct vv_meta *m, int (*cb)(void *ctx, uint64_t ino, const char *name), void *ctx);
int vv_meta_trash_older(struct vv_meta *m, int64_t before, vv_trash_cb cb, void *ctx);
int vv_meta_trash_stats(struct vv_meta *m, uint64_t *items, uint64_t *bytes);

#endif
