/*
 * meta_snap_int.h - what the two files of the snapshot tables share;
 * nothing outside meta_snap*.c includes it.
 *
 *   meta_snap.c       the tables every snapshot has (snaps, snap_colls),
 *                     the rows of older builds' snapshots, the view
 *   meta_snap_file.c  snapshots kept as files (snapshots/ID.db)
 *
 * A public vv_meta_snap_* call on a snapshot asks meta_snap_file_kind
 * which kind it is and, for a file snapshot, hands it to the
 * meta_snap_file_* function of the same job.  Everything runs on the
 * meta.db connection, inside the caller's transaction where it writes.
 */
#ifndef VV_META_SNAP_INT_H
#define VV_META_SNAP_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <sqlite3.h>

#include "crypto_int.h"
#include "meta_sql_int.h"

/* The inodes table's columns after ino, in order (the live table, the
 * snap_inodes copy and a snapshot file's inodes alike). */
#define INODE_COLS "gen, mode, uid, gid, nlink, size, rdev, atime, mtime, ctime, parent, coll, objid, stored"

/* Bind the common first parameter. */
#define XSTMT(m, q) sqlite3_stmt *s = meta_sql((m), (q))

/* --- meta_snap.c ------------------------------------------------------------ */

/* Delete snapshot ?1's rows in snaps and snap_colls (both kinds have them). */
extern const char meta_snap_q_del_s[], meta_snap_q_del_c[];
/* Step s once (a row is no error) and reset it: 0 or VV_E*. */
int meta_snap_step_done(struct vv_meta *m, sqlite3_stmt *s);
/* Run q with id bound to ?1: 0 or VV_E*. */
int meta_snap_exec_id(struct vv_meta *m, const char *q, uint32_t id);
/* Drop the references of the chunks qchunks lists for id (freed(ctx,
 * chunk) for each that has none left), then run each of dels[0..ndels)
 * for id (the rows of one kind of snapshot). */
int meta_snap_drop_refs_rows(struct vv_meta *m, uint32_t id, const char *qchunks,
			     const char *const *dels, size_t ndels,
			     void (*freed)(void *ctx, const uint8_t *chunk), void *ctx);

/* --- meta_snap_file.c ------------------------------------------------------- */

/* Does this store keep snapshots as files (has snap_files)?  A read-only
 * open of an older store does not. */
bool meta_snap_have_files(struct vv_meta *m);
/* Is sid a file snapshot: 1 (*state 0 pending / 1 ready, mac its whole
 * file's hash or all zeros), 0 (rows, or no such snapshot), or VV_E*. */
int meta_snap_file_kind(struct vv_meta *m, uint32_t sid, int *state, uint8_t mac[VV_MAC_BYTES]);
/* Step 1 of vv_meta_snap_create, inside its savepoint: the rows that make
 * snapshot id pending, and its references. */
int meta_snap_file_begin(struct vv_meta *m, uint32_t id);
/* vv_meta_snap_delete of a file snapshot: its references and rows (the
 * file goes after the commit: vv_meta_snap_unlink_file). */
int meta_snap_file_delete(struct vv_meta *m, uint32_t id,
			  void (*freed)(void *ctx, const uint8_t *chunk), void *ctx);
/* vv_meta_snap_owners of the file snapshots. */
int meta_snap_file_owners(struct vv_meta *m, int (*cb)(void *ctx, uint32_t uid), void *ctx);
/* vv_meta_snap_check of a file snapshot. */
int meta_snap_file_check(struct vv_meta *m, uint32_t sid, void (*cb)(void *ctx, const char *line),
			 void *ctx, uint64_t *problems);
/* vv_meta_snap_restore_inode from a file snapshot. */
int meta_snap_file_restore(struct vv_meta *m, uint32_t sid, uint64_t real, uint64_t ino,
			   uint32_t nlink, uint64_t parent);

#endif
