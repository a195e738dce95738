/*
 * meta_sql_int.h - for the meta module's feature files (meta_<feature>.c).
 *
 * meta.c owns the connection and the core schema.  Features that keep
 * tables of their own (roles, grants, users and keys, trash, snapshots)
 * put their SQL in a file of the meta module and reach the connection
 * through these helpers, so only meta*.c include <sqlite3.h>.
 *
 * Each feature's tables are created by one schema function listed in
 * meta.c's feature table: run at create and, for older stores, by
 * vv_meta_upgrade() at the next read-write open, in a commit of its own,
 * only when the feature's first table is missing.  A read-only open of an
 * older store has no such tables: readers check meta_has_table() and treat
 * a missing table as empty.
 */
#ifndef VV_META_SQL_INT_H
#define VV_META_SQL_INT_H

#include <sqlite3.h>
#include <stdbool.h>

#include "meta_int.h"

/* A statement prepared once per connection for this sql text (the
 * pointer is the key: pass a string literal or a static), reset and with
 * its bindings cleared; NULL after logging if it cannot be prepared. */
sqlite3_stmt *meta_sql(struct vv_meta *m, const char *sql);
/* Step a statement that returns no rows (or ignore them): 0 or VV_E*. */
int meta_run(struct vv_meta *m, sqlite3_stmt *s);
/* Step expecting a row: 0 (row ready), VV_ENOENT (none), or VV_E*.  After
 * 0 the caller reads columns and, for one-row queries, sqlite3_reset()s. */
int meta_row(struct vv_meta *m, sqlite3_stmt *s);
/* An SQLite result code as a VV_E* code (I/O, corruption, full disk...). */
int meta_err(struct vv_meta *m, int rc);
/* Run schema text (CREATE TABLE IF NOT EXISTS ...): 0 or VV_E*. */
int meta_exec(struct vv_meta *m, const char *sql);
/* Does the table exist in this store? */
bool meta_has_table(struct vv_meta *m, const char *name);
/* Is this a read-only open (no schema can be added to the store)? */
bool meta_readonly(struct vv_meta *m);

/* A feature's schema: its tables, created inside the caller's transaction. */
struct meta_feature {
	const char *first_table;          /* present once the schema has run */
	int (*schema)(struct vv_meta *m);
};

/* A row's inode columns (gen, mode, ... stored, in the inodes table's
 * order) and extent columns (fblock, chunk, off, len, slot) from c0 on. */
int meta_read_inode(sqlite3_stmt *s, int c0, struct vv_inode_row *r);
int meta_read_extent(sqlite3_stmt *s, int c0, struct vv_extent *e);

/* ---- roles (meta_role.c) ---- */
int meta_role_schema(struct vv_meta *m);
/* ---- grants (meta_grant.c) ---- */
int meta_grant_schema(struct vv_meta *m);

/* The connection itself (meta_snap_file.c: a snapshot file is copied and
 * opened under its keys), and the snapshot files' connections it owns. */
sqlite3 *meta_db(struct vv_meta *m);
struct meta_snapc;
struct meta_snapc **meta_snapc_of(struct vv_meta *m);
/* With no write transaction open: PRAGMA wal_checkpoint(TRUNCATE), the
 * WAL then empty and meta.db whole.  VV_EBUSY if a transaction is open. */
int meta_checkpoint(struct vv_meta *m);
/* Hold off the checkpointer's passes (vv_meta_ckpt_pass) around
 * meta_checkpoint and whatever must see the file as it left it (a snapshot
 * copy); taken after the vault's lock, never while holding it the other way. */
void meta_ckpt_hold(struct vv_meta *m, bool hold);

/* ---- snapshots (meta_snap.c; the files, their schema and connections:
 * meta_snap_file.c) ---- */
int meta_snap_schema(struct vv_meta *m);
int meta_snap_file_schema(struct vv_meta *m);
int meta_snap_tags_schema(struct vv_meta *m);
/* Snapshot sid is a file of its own (snapshots/ID.db, made by this build):
 * true, with *s the statement for the live query text sql prepared on the
 * file's connection (NULL if the file cannot be opened or fails its
 * check: the caller answers VV_EIO).  false: sid keeps its rows in the
 * snap_* tables (a store from an older build), or there is no such
 * snapshot.  The statement is the caller's until it resets it. */
bool meta_snap_file_sql(struct vv_meta *m, uint32_t sid, const char *sql, sqlite3_stmt **s);
/* Close every snapshot file's connection (vv_meta_close). */
void meta_snap_files_close(struct vv_meta *m);
/* meta.c's read queries on the snapshot tables (same columns and
 * parameters, the snapshot id as ?9), and the rows a snapshot's view
 * translates: sid 0 leaves r alone. */
extern const char meta_snap_q_ino_get[], meta_snap_q_data_get[], meta_snap_q_de_get[],
	meta_snap_q_de_list[], meta_snap_q_de_plus[], meta_snap_q_de_find[], meta_snap_q_de_range[],
	meta_snap_q_de_range_plus[],
	meta_snap_q_x_get[], meta_snap_q_x_list[], meta_snap_q_x_any[], meta_snap_q_e_load[];
void meta_xlate_row(uint32_t sid, struct vv_inode_row *r);
/* What meta.c cannot read from the snapshot tables: the .snapshots
 * directory (its attributes, its entries: one per snapshot, cookie = id)
 * and the names of .snapshots and of each snapshot's root. */
int meta_snap_dir_row(struct vv_meta *m, struct vv_inode_row *r);
int meta_snap_dir_lookup(struct vv_meta *m, const char *name, uint64_t *ino);
int meta_snap_dir_list(struct vv_meta *m, uint64_t after, int max,
		       int (*cb)(void *ctx, uint64_t cookie, const char *name, uint64_t ino, uint32_t mode),
		       int (*cbp)(void *ctx, uint64_t cookie, const char *name,
				  const struct vv_inode_row *r, bool xattrs),
		       void *ctx);
int meta_snap_root_name(struct vv_meta *m, uint64_t vino, uint64_t *parent, char *name, size_t cap);
/* ---- vault users and API keys (meta_user.c) ---- */
int meta_user_schema(struct vv_meta *m);
int meta_user_retired_schema(struct vv_meta *m);
/* ---- trash (meta_trash.c) ---- */
/* A trash item's row by its inode (vv_meta_trash_get_ino, _name_of: the
 * audit path of anything in the trash, a vv:// session's walk ending
 * there) is a probe of this index, newest first, not a scan of the whole
 * table.  In the trash's schema for new stores; older ones get it from
 * vv_meta_upgrade like dirents_dir. */
#define META_TRASH_INO_INDEX "CREATE INDEX IF NOT EXISTS trash_ino ON trash(ino)"
int meta_trash_schema(struct vv_meta *m);
int meta_trash_migrate(struct vv_meta *m);

#endif
