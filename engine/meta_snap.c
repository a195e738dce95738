/*
 * meta_snap.c - the snapshot tables of meta.db and the read-only view of a
 * snapshot's rows under virtual inode numbers (meta_int.h, "snapshots";
 * docs/design.md "Snapshots"); the snapshot files are meta_snap_file.c's
 * (meta_snap_int.h between the two).
 *
 * A snapshot made by this build is a byte copy of the checkpointed meta.db
 * (STORE/snapshots/ID.db, made by vv_metavfs_copy right after the commit
 * that took its references), so it is exactly the state of one commit; its
 * rows are the live tables of that file, read on a connection of its own
 * with the live queries (meta_snap_file.c).  A snapshot of an older build
 * is a copy of the rows of inodes, dirents, xattrs and extents in the
 * snap_* tables, tagged with its id; both kinds are read, restored, backed
 * up, checked and deleted.  Nothing is decrypted or
 * copied in STORE/chunks: the snapshot takes one reference on each
 * distinct chunk it names, and the chunk is unlinked only when the live
 * tree and every snapshot have dropped theirs (DESIGN invariant 2).
 * Everything is encrypted and authenticated page by page like meta.db,
 * and a snapshot file is bound to its record by a keyed hash: a tampered
 * page or file reads as VV_ECORRUPT / EIO.
 *
 * Tables (docs/format.md, "meta.db schema"; created by vv_meta_upgrade):
 *   snaps(id PK, name UNIQUE, created, commit_no, uid, flags, inodes, bytes)
 *   snap_files(snap PK, state, mac)                   file snapshots
 *   snap_chunks(snap, chunk)                          PK; their references
 *   snap_colls(snap, coll)                            PK; INDEX(coll): keys kept
 * and, for snapshots of older builds:
 *   snap_inodes(snap, <every inodes column>)          PK(snap, ino)
 *   snap_dirents(snap, parent, name, id, ino, mode)   PK(snap, parent, name),
 *                INDEX(snap, parent, id) readdir, INDEX(snap, ino) names
 *   snap_xattrs(snap, ino, name, value)               PK(snap, ino, name)
 *   snap_extents(snap, ino, fblock, chunk, off, len, slot)  PK(snap, ino, fblock)
 * A backup exports one snapshot's rows (meta_backup.c) as a sealed unit.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crypto_int.h"
#include "grow.h"
#include "meta_snap_int.h"
#include "meta_sql_int.h"
#include "meta_vfs_int.h"
#include "vecvault/error.h"

static const char schema_sql[] =
	"CREATE TABLE IF NOT EXISTS snaps(id INTEGER PRIMARY KEY, name BLOB NOT NULL UNIQUE,"
	" created INTEGER NOT NULL, commit_no INTEGER NOT NULL, uid INTEGER NOT NULL,"
	" flags INTEGER NOT NULL, inodes INTEGER NOT NULL, bytes INTEGER NOT NULL);"
	"CREATE TABLE IF NOT EXISTS snap_inodes(snap INTEGER NOT NULL, ino INTEGER NOT NULL,"
	" gen INTEGER NOT NULL, mode INTEGER NOT NULL, uid INTEGER NOT NULL, gid INTEGER NOT NULL,"
	" nlink INTEGER NOT NULL, size INTEGER NOT NULL, rdev INTEGER NOT NULL,"
	" atime INTEGER NOT NULL, mtime INTEGER NOT NULL, ctime INTEGER NOT NULL,"
	" parent INTEGER NOT NULL, coll INTEGER NOT NULL, objid BLOB NOT NULL,"
	" stored INTEGER NOT NULL, data BLOB, PRIMARY KEY(snap, ino));"
	"CREATE TABLE IF NOT EXISTS snap_dirents(snap INTEGER NOT NULL, parent INTEGER NOT NULL,"
	" name BLOB NOT NULL, id INTEGER NOT NULL, ino INTEGER NOT NULL, mode INTEGER NOT NULL,"
	" PRIMARY KEY(snap, parent, name)) WITHOUT ROWID;"
	"CREATE INDEX IF NOT EXISTS snap_dirents_dir ON snap_dirents(snap, parent, id);"
	"CREATE INDEX IF NOT EXISTS snap_dirents_ino ON snap_dirents(snap, ino);"
	"CREATE TABLE IF NOT EXISTS snap_xattrs(snap INTEGER NOT NULL, ino INTEGER NOT NULL,"
	" name TEXT NOT NULL, value BLOB NOT NULL, PRIMARY KEY(snap, ino, name)) WITHOUT ROWID;"
	"CREATE TABLE IF NOT EXISTS snap_extents(snap INTEGER NOT NULL, ino INTEGER NOT NULL,"
	" fblock INTEGER NOT NULL, chunk BLOB NOT NULL, off INTEGER NOT NULL, len INTEGER NOT NULL,"
	" slot INTEGER NOT NULL, PRIMARY KEY(snap, ino, fblock)) WITHOUT ROWID;"
	"CREATE TABLE IF NOT EXISTS snap_colls(snap INTEGER NOT NULL, coll INTEGER NOT NULL,"
	" PRIMARY KEY(snap, coll)) WITHOUT ROWID;"
	"CREATE INDEX IF NOT EXISTS snap_colls_coll ON snap_colls(coll);";

#define SNAP_COLS "SELECT id, name, created, commit_no, uid, flags, inodes, bytes FROM snaps"
/* A pending snapshot (its file being made, or left by a crash) is not
 * shown: the _r queries, for stores that have snap_files. */
#define READY " AND id NOT IN (SELECT snap FROM snap_files WHERE state=0)"
static const char q_name[] = "SELECT id FROM snaps WHERE name=?1";
static const char q_name_r[] = "SELECT id FROM snaps WHERE name=?1" READY;
static const char q_get[] = SNAP_COLS " WHERE id=?1";
static const char q_get_r[] = SNAP_COLS " WHERE id=?1" READY;
static const char q_list[] = SNAP_COLS " ORDER BY id";
static const char q_list_r[] = SNAP_COLS " WHERE 1" READY " ORDER BY id";
static const char q_add[] = "INSERT INTO snaps(id, name, created, commit_no, uid, flags, inodes, bytes)"
			    " VALUES(?1, ?2, ?3, ?4, ?5, ?6, 0, 0)";
static const char q_chunks[] = "SELECT DISTINCT chunk FROM snap_extents WHERE snap=?1";
static const char q_all_chunks[] = "SELECT DISTINCT snap, chunk FROM snap_extents";
static const char q_all_chunks_f[] = "SELECT snap, chunk FROM snap_extents UNION SELECT snap, chunk FROM snap_chunks";
const char meta_snap_q_del_s[] = "DELETE FROM snaps WHERE id=?1";
static const char q_del_i[] = "DELETE FROM snap_inodes WHERE snap=?1";
static const char q_del_d[] = "DELETE FROM snap_dirents WHERE snap=?1";
static const char q_del_x[] = "DELETE FROM snap_xattrs WHERE snap=?1";
static const char q_del_e[] = "DELETE FROM snap_extents WHERE snap=?1";
const char meta_snap_q_del_c[] = "DELETE FROM snap_colls WHERE snap=?1";
static const char q_space[] = "SELECT count(*), coalesce(sum(bytes), 0) FROM snaps";
static const char q_space_only[] = "SELECT coalesce(sum(size), 0) FROM chunks WHERE refs > 0 AND id IN"
				   " (SELECT chunk FROM snap_extents) AND id NOT IN (SELECT chunk FROM extents)";
static const char q_space_only_f[] = "SELECT coalesce(sum(size), 0) FROM chunks WHERE refs > 0 AND id IN"
				     " (SELECT chunk FROM snap_extents UNION SELECT chunk FROM snap_chunks)"
				     " AND id NOT IN (SELECT chunk FROM extents)";
/* Older builds' snapshots: their rows in meta.db (no index on uid). */
static const char q_owners[] = "SELECT DISTINCT uid FROM snap_inodes";
static const char q_chk_de[] = "SELECT d.parent, d.ino FROM snap_dirents d WHERE d.snap=?1 AND NOT EXISTS"
			       " (SELECT 1 FROM snap_inodes i WHERE i.snap=?1 AND i.ino=d.ino)";
static const char q_chk_e[] = "SELECT DISTINCT e.ino FROM snap_extents e WHERE e.snap=?1 AND NOT EXISTS"
			      " (SELECT 1 FROM snap_inodes i WHERE i.snap=?1 AND i.ino=e.ino)";

int meta_snap_step_done(struct vv_meta *m, sqlite3_stmt *s)
{
	int rc = sqlite3_step(s);

	sqlite3_reset(s);
	return rc == SQLITE_DONE || rc == SQLITE_ROW ? 0 : meta_err(m, rc);
}

/* The vault's one open transaction holds other requests' changes too: a
 * snapshot operation that fails half-way undoes only its own rows. */
static int sp_begin(struct vv_meta *m)
{
	return meta_exec(m, "SAVEPOINT snap_op");
}

static int sp_end(struct vv_meta *m, int r)
{
	if (r < 0)
		meta_exec(m, "ROLLBACK TO snap_op");
	meta_exec(m, "RELEASE snap_op");
	return r;
}

int meta_snap_exec_id(struct vv_meta *m, const char *q, uint32_t id)
{
	XSTMT(m, q);

	if (!s)
		return VV_EIO;
	sqlite3_bind_int64(s, 1, id);
	return meta_snap_step_done(m, s);
}

int meta_snap_schema(struct vv_meta *m)
{
	return meta_exec(m, schema_sql);
}

/* A store from an older build opened read-only has no snapshot tables:
 * it has no snapshots. */
static bool have(struct vv_meta *m)
{
	return meta_has_table(m, "snap_colls");
}

static int read_snap(sqlite3_stmt *s, struct vv_snap_row *o)
{
	int n = sqlite3_column_bytes(s, 1);

	if (n <= 0 || n > VV_SNAP_NAME_MAX)
		return VV_ECORRUPT;
	memset(o, 0, sizeof(*o));
	o->id = (uint32_t)sqlite3_column_int64(s, 0);
	memcpy(o->name, sqlite3_column_blob(s, 1), (size_t)n);
	o->created = sqlite3_column_int64(s, 2);
	o->commit = (uint64_t)sqlite3_column_int64(s, 3);
	o->uid = (uint32_t)sqlite3_column_int64(s, 4);
	o->flags = (uint32_t)sqlite3_column_int64(s, 5);
	o->inodes = (uint64_t)sqlite3_column_int64(s, 6);
	o->bytes = (uint64_t)sqlite3_column_int64(s, 7);
	return 0;
}

int vv_meta_snap_get_id(struct vv_meta *m, uint32_t id, struct vv_snap_row *out)
{
	int rc, r;

	if (!have(m))
		return VV_ENOENT;
	sqlite3_stmt *s = meta_sql(m, meta_snap_have_files(m) ? q_get_r : q_get);
	if (!s)
		return VV_ENOENT;
	sqlite3_bind_int64(s, 1, id);
	rc = sqlite3_step(s);
	r = rc == SQLITE_ROW ? read_snap(s, out) : rc == SQLITE_DONE ? VV_ENOENT : meta_err(m, rc);
	sqlite3_reset(s);
	return r;
}

/* any: pending snapshots too (a name is taken while its file is made). */
static int name_to_id_any(struct vv_meta *m, const char *name, uint32_t *id, bool any)
{
	int rc;

	if (!have(m))
		return VV_ENOENT;
	sqlite3_stmt *s = meta_sql(m, any || !meta_snap_have_files(m) ? q_name : q_name_r);
	if (!s)
		return VV_ENOENT;
	sqlite3_bind_blob(s, 1, name, (int)strlen(name), SQLITE_STATIC);
	rc = sqlite3_step(s);
	if (rc == SQLITE_ROW)
		*id = (uint32_t)sqlite3_column_int64(s, 0);
	sqlite3_reset(s);
	return rc == SQLITE_ROW ? 0 : rc == SQLITE_DONE ? VV_ENOENT : meta_err(m, rc);
}

static int name_to_id(struct vv_meta *m, const char *name, uint32_t *id)
{
	return name_to_id_any(m, name, id, false);
}

int vv_meta_snap_get(struct vv_meta *m, const char *name, struct vv_snap_row *out)
{
	uint32_t id;
	int r = name_to_id(m, name, &id);

	return r < 0 ? r : vv_meta_snap_get_id(m, id, out);
}

int vv_meta_snap_list(struct vv_meta *m, int (*cb)(void *ctx, const struct vv_snap_row *r), void *ctx)
{
	struct vv_snap_row row;
	int rc, r = 0;

	if (!have(m))
		return 0;
	sqlite3_stmt *s = meta_sql(m, meta_snap_have_files(m) ? q_list_r : q_list);
	if (!s)
		return 0;
	while ((rc = sqlite3_step(s)) == SQLITE_ROW)
		if ((r = read_snap(s, &row)) < 0 || (r = cb(ctx, &row)) != 0)
			break;
	sqlite3_reset(s);
	if (r)
		return r;
	return rc == SQLITE_DONE ? 0 : meta_err(m, rc);
}

static int snap_create(struct vv_meta *m, const char *name, int64_t now, uint32_t uid,
		       uint32_t flags, struct vv_snap_row *out);

int vv_meta_snap_create(struct vv_meta *m, const char *name, int64_t now, uint32_t uid,
			uint32_t flags, struct vv_snap_row *out)
{
	int r = sp_begin(m);

	return r < 0 ? r : sp_end(m, snap_create(m, name, now, uid, flags, out));
}

static int snap_create(struct vv_meta *m, const char *name, int64_t now, uint32_t uid,
		       uint32_t flags, struct vv_snap_row *out)
{
	uint64_t next = 1, next_ino = 0, commits = 0;
	uint32_t id, old;
	int r;

	if (!meta_snap_have_files(m))
		return VV_EROFS;                 /* a read-only open of an older store */
	if ((r = name_to_id_any(m, name, &old, true)) == 0)
		return VV_EEXIST;
	if (r != VV_ENOENT)
		return r;
	if ((r = vv_meta_kv_get_u64(m, "next_snap", &next)) < 0 && r != VV_ENOENT)
		return r;
	if (r == VV_ENOENT)
		next = 1;
	if ((r = vv_meta_kv_get_u64(m, "next_ino", &next_ino)) < 0 ||
	    (r = vv_meta_kv_get_u64(m, "commits", &commits)) < 0)
		return r;
	/* The virtual numbers have 20 bits of id and 40 of inode. */
	if (next == 0 || next > VV_SNAP_ID_MAX || next_ino > VV_SNAP_INO_MAX)
		return VV_ENOSPC;
	id = (uint32_t)next;
	{
		XSTMT(m, q_add);
		if (!s)
			return VV_EIO;
		sqlite3_bind_int64(s, 1, id);
		sqlite3_bind_blob(s, 2, name, (int)strlen(name), SQLITE_STATIC);
		sqlite3_bind_int64(s, 3, now);
		sqlite3_bind_int64(s, 4, (int64_t)(commits + 1));
		sqlite3_bind_int64(s, 5, uid);
		sqlite3_bind_int64(s, 6, flags);
		if ((r = meta_snap_step_done(m, s)) < 0)
			return r;
	}
	if ((r = meta_snap_file_begin(m, id)) < 0 || (r = vv_meta_kv_set_u64(m, "next_snap", next + 1)) < 0)
		return r;
	if (out) {
		memset(out, 0, sizeof(*out));
		out->id = id;
		snprintf(out->name, sizeof(out->name), "%s", name);
		out->created = now;
		out->commit = commits + 1;
		out->uid = uid;
		out->flags = flags;
	}
	return 0;
}

struct idlist {
	uint8_t (*ids)[VV_CHUNK_ID_BYTES];
	size_t n, cap;
};

static int snap_delete(struct vv_meta *m, uint32_t id,
		       void (*freed)(void *ctx, const uint8_t *chunk), void *ctx);

int vv_meta_snap_delete(struct vv_meta *m, uint32_t id,
			void (*freed)(void *ctx, const uint8_t *chunk), void *ctx)
{
	int r = sp_begin(m);

	return r < 0 ? r : sp_end(m, snap_delete(m, id, freed, ctx));
}

static int snap_delete(struct vv_meta *m, uint32_t id,
		       void (*freed)(void *ctx, const uint8_t *chunk), void *ctx)
{
	static const char *const dels[] = { q_del_i, q_del_d, q_del_x, q_del_e, meta_snap_q_del_c,
					    meta_snap_q_del_s };
	uint8_t mac[VV_MAC_BYTES];
	int r, state;

	if ((r = meta_snap_file_kind(m, id, &state, mac)) != 0)
		return r < 0 ? r : meta_snap_file_delete(m, id, freed, ctx);
	return meta_snap_drop_refs_rows(m, id, q_chunks, dels, sizeof(dels) / sizeof(dels[0]), freed, ctx);
}

int meta_snap_drop_refs_rows(struct vv_meta *m, uint32_t id, const char *qchunks,
			     const char *const *dels, size_t ndels,
			     void (*freed)(void *ctx, const uint8_t *chunk), void *ctx)
{
	struct idlist l = { 0 };
	int rc, r = 0;

	/* The chunk ids first: the references are dropped while no statement
	 * reads snap_extents. */
	{
		XSTMT(m, qchunks);
		if (!s)
			return VV_ENOENT;
		sqlite3_bind_int64(s, 1, id);
		while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
			if (sqlite3_column_bytes(s, 0) != VV_CHUNK_ID_BYTES) {
				r = VV_ECORRUPT;
				break;
			}
			if ((r = VV_GROW(l.ids, l.n, l.cap)) < 0)
				break;
			memcpy(l.ids[l.n++], sqlite3_column_blob(s, 0), VV_CHUNK_ID_BYTES);
		}
		sqlite3_reset(s);
		if (r == 0 && rc != SQLITE_DONE && rc != SQLITE_ROW)
			r = meta_err(m, rc);
	}
	for (size_t i = 0; r == 0 && i < l.n; i++) {
		uint64_t refs = 0;
		if ((r = vv_meta_chunk_ref(m, l.ids[i], 0, -1, 0, &refs)) < 0)
			break;
		if (refs == 0 && freed)
			freed(ctx, l.ids[i]);
	}
	for (size_t i = 0; r == 0 && i < ndels; i++)
		r = meta_snap_exec_id(m, dels[i], id);
	free(l.ids);
	return r;
}

int vv_meta_snap_space(struct vv_meta *m, uint64_t *count, uint64_t *bytes, uint64_t *only)
{
	int rc = SQLITE_DONE;

	*count = *bytes = *only = 0;
	if (!have(m))
		return 0;
	for (int i = 0; i < 2 && (rc == SQLITE_DONE || rc == SQLITE_ROW); i++) {
		sqlite3_stmt *s = meta_sql(m, i ? (meta_snap_have_files(m) ? q_space_only_f : q_space_only) :
					   q_space);
		if (!s)
			return VV_EIO;
		if ((rc = sqlite3_step(s)) == SQLITE_ROW) {
			if (i) {
				*only = (uint64_t)sqlite3_column_int64(s, 0);
			} else {
				*count = (uint64_t)sqlite3_column_int64(s, 0);
				*bytes = (uint64_t)sqlite3_column_int64(s, 1);
			}
		}
		sqlite3_reset(s);
	}
	return rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 : meta_err(m, rc);
}

int vv_meta_snap_owners(struct vv_meta *m, int (*cb)(void *ctx, uint32_t uid), void *ctx)
{
	int rc = SQLITE_DONE, r = 0;

	if (!have(m))
		return 0;
	sqlite3_stmt *s = meta_sql(m, q_owners);
	if (!s)
		return VV_EIO;
	while (r == 0 && (rc = sqlite3_step(s)) == SQLITE_ROW)
		r = cb(ctx, (uint32_t)sqlite3_column_int64(s, 0));
	sqlite3_reset(s);
	if (r == 0 && rc != SQLITE_DONE)
		r = meta_err(m, rc);
	return r < 0 ? r : meta_snap_file_owners(m, cb, ctx);
}

int vv_meta_snap_chunk_iter(struct vv_meta *m, int (*cb)(void *ctx, uint32_t sid, const uint8_t *chunk),
			    void *ctx)
{
	int rc, r = 0;

	if (!have(m))
		return 0;
	sqlite3_stmt *s = meta_sql(m, meta_snap_have_files(m) ? q_all_chunks_f : q_all_chunks);
	if (!s)
		return 0;
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		if (sqlite3_column_bytes(s, 1) != VV_CHUNK_ID_BYTES) {
			r = VV_ECORRUPT;
			break;
		}
		if ((r = cb(ctx, (uint32_t)sqlite3_column_int64(s, 0), sqlite3_column_blob(s, 1))) != 0)
			break;
	}
	sqlite3_reset(s);
	if (r)
		return r;
	return rc == SQLITE_DONE ? 0 : meta_err(m, rc);
}

int vv_meta_snap_check(struct vv_meta *m, uint32_t sid, void (*cb)(void *ctx, const char *line),
		       void *ctx, uint64_t *problems)
{
	char line[160];
	uint8_t mac[VV_MAC_BYTES];
	int rc = SQLITE_DONE, state, r;

	*problems = 0;
	if ((r = meta_snap_file_kind(m, sid, &state, mac)) != 0)
		return r < 0 ? r : meta_snap_file_check(m, sid, cb, ctx, problems);
	{
		XSTMT(m, q_chk_de);
		if (!s)
			return VV_EIO;
		sqlite3_bind_int64(s, 1, sid);
		while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
			(*problems)++;
			snprintf(line, sizeof(line), "error: snapshot %u: entry in directory %lld names missing inode %lld",
				 sid, (long long)sqlite3_column_int64(s, 0), (long long)sqlite3_column_int64(s, 1));
			cb(ctx, line);
		}
		sqlite3_reset(s);
		if (rc != SQLITE_DONE)
			return meta_err(m, rc);
	}
	{
		XSTMT(m, q_chk_e);
		if (!s)
			return VV_EIO;
		sqlite3_bind_int64(s, 1, sid);
		while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
			(*problems)++;
			snprintf(line, sizeof(line), "error: snapshot %u: extents of missing inode %lld",
				 sid, (long long)sqlite3_column_int64(s, 0));
			cb(ctx, line);
		}
		sqlite3_reset(s);
	}
	return rc == SQLITE_DONE ? 0 : meta_err(m, rc);
}

/* --- restore: a snapshot's inode as a new live one ------------------------- */

static const char q_rs_ino[] =
	"INSERT INTO inodes(ino, " INODE_COLS ", data) SELECT ?3, gen, mode, uid, gid, ?4, size, rdev,"
	" atime, mtime, ctime, ?5, coll, objid, stored, data FROM snap_inodes WHERE snap=?1 AND ino=?2";
static const char q_rs_x[] = "INSERT INTO xattrs(ino, name, value) SELECT ?3, name, value"
			     " FROM snap_xattrs WHERE snap=?1 AND ino=?2";
static const char q_rs_e[] = "INSERT INTO extents(ino, fblock, chunk, off, len, slot)"
			     " SELECT ?3, fblock, chunk, off, len, slot FROM snap_extents WHERE snap=?1 AND ino=?2";
/* The live tree counts one reference per extent (the snapshot's own, one
 * per chunk, stay with the snapshot). */
static const char q_rs_ref[] =
	"UPDATE chunks SET refs = refs + (SELECT count(*) FROM snap_extents e"
	" WHERE e.snap=?1 AND e.ino=?2 AND e.chunk=chunks.id)"
	" WHERE id IN (SELECT chunk FROM snap_extents WHERE snap=?1 AND ino=?2)";

int vv_meta_snap_restore_inode(struct vv_meta *m, uint32_t sid, uint64_t real, uint64_t ino,
			       uint32_t nlink, uint64_t parent)
{
	static const char *const qs[] = { q_rs_ino, q_rs_x, q_rs_e, q_rs_ref };
	uint8_t mac[VV_MAC_BYTES];
	int r = 0, state;

	if ((r = meta_snap_file_kind(m, sid, &state, mac)) != 0)
		return r < 0 ? r : meta_snap_file_restore(m, sid, real, ino, nlink, parent);

	for (size_t i = 0; r == 0 && i < sizeof(qs) / sizeof(qs[0]); i++) {
		XSTMT(m, qs[i]);
		if (!s)
			return VV_EIO;
		sqlite3_bind_int64(s, 1, sid);
		sqlite3_bind_int64(s, 2, (int64_t)real);
		sqlite3_bind_int64(s, 3, (int64_t)ino);
		if (i == 0) {
			sqlite3_bind_int64(s, 4, nlink);
			sqlite3_bind_int64(s, 5, (int64_t)parent);
		}
		r = meta_snap_step_done(m, s);
		if (r == 0 && i == 0 && sqlite3_changes(sqlite3_db_handle(s)) != 1)
			r = VV_ENOENT;
	}
	return r;
}

void vv_meta_bulk_cache(struct vv_meta *m, bool on)
{
	char q[64];

	/* Lowering the size trims the cache to it (SQLite frees the pages
	 * beyond): the live tree's hot pages stay. */
	snprintf(q, sizeof(q), "PRAGMA cache_size=-%d", on ? VV_META_BULK_CACHE_KIB : VV_METAVFS_CACHE_KIB);
	meta_exec(m, q);
}

int vv_meta_savepoint(struct vv_meta *m)
{
	return sp_begin(m);
}

int vv_meta_savepoint_end(struct vv_meta *m, int r)
{
	return sp_end(m, r);
}

/* --- the view: rows of a snapshot under virtual inode numbers ---------------- */

/* The live read queries of meta.c on the snapshot tables: the same
 * columns, the same parameters, plus the snapshot id as ?9 (meta.c's rd()
 * picks these for a virtual number and translates the numbers in the
 * rows). */
const char meta_snap_q_ino_get[] = "SELECT " INODE_COLS " FROM snap_inodes WHERE snap=?9 AND ino=?1";
const char meta_snap_q_data_get[] = "SELECT data FROM snap_inodes WHERE snap=?9 AND ino=?1";
const char meta_snap_q_de_get[] = "SELECT ino FROM snap_dirents WHERE snap=?9 AND parent=?1 AND name=?2";
const char meta_snap_q_de_list[] = "SELECT id, name, ino, mode FROM snap_dirents WHERE snap=?9 AND parent=?1"
				   " AND id>?2 ORDER BY id LIMIT ?3";
const char meta_snap_q_de_plus[] =
	"SELECT d.id, d.name, d.ino, d.mode, i.gen, i.mode, i.uid, i.gid, i.nlink, i.size, i.rdev,"
	" i.atime, i.mtime, i.ctime, i.parent, i.coll, i.objid, i.stored,"
	" EXISTS(SELECT 1 FROM snap_xattrs x WHERE x.snap=d.snap AND x.ino=d.ino)"
	" FROM snap_dirents d LEFT JOIN snap_inodes i ON i.snap=d.snap AND i.ino=d.ino"
	" WHERE d.snap=?9 AND d.parent=?1 AND d.id>?2 ORDER BY d.id LIMIT ?3";
const char meta_snap_q_de_range[] = "SELECT ino, name FROM snap_dirents WHERE snap=?9 AND parent=?1"
				    " AND name>=?2 ORDER BY name";
const char meta_snap_q_de_range_plus[] =
	"SELECT d.id, d.name, d.ino, d.mode, i.gen, i.mode, i.uid, i.gid, i.nlink, i.size, i.rdev,"
	" i.atime, i.mtime, i.ctime, i.parent, i.coll, i.objid, i.stored,"
	" EXISTS(SELECT 1 FROM snap_xattrs x WHERE x.snap=d.snap AND x.ino=d.ino)"
	" FROM snap_dirents d LEFT JOIN snap_inodes i ON i.snap=d.snap AND i.ino=d.ino"
	" WHERE d.snap=?9 AND d.parent=?1 AND d.name>=?2 ORDER BY d.name";
const char meta_snap_q_de_find[] = "SELECT parent, name FROM snap_dirents WHERE snap=?9 AND ino=?1 LIMIT 1";
const char meta_snap_q_x_get[] = "SELECT value FROM snap_xattrs WHERE snap=?9 AND ino=?1 AND name=?2";
const char meta_snap_q_x_list[] = "SELECT name FROM snap_xattrs WHERE snap=?9 AND ino=?1 ORDER BY name";
const char meta_snap_q_x_any[] = "SELECT 1 FROM snap_xattrs WHERE snap=?9 AND ino=?1 LIMIT 1";
const char meta_snap_q_e_load[] = "SELECT fblock, chunk, off, len, slot FROM snap_extents"
				  " WHERE snap=?9 AND ino=?1 ORDER BY fblock";

/* The .snapshots directory: read and search for everyone (names of
 * snapshots are not secret; what is inside each is guarded by that
 * snapshot's own modes and ACLs), owned like the root, never writable. */
int meta_snap_dir_row(struct vv_meta *m, struct vv_inode_row *r)
{
	int e = vv_meta_inode_get(m, VV_META_ROOT_INO, r);

	if (e < 0)
		return e;
	r->ino = VV_SNAPDIR_INO;
	r->gen = 1;
	r->mode = 0040555;
	r->nlink = 2;
	r->size = 0;
	r->rdev = 0;
	r->parent = VV_META_ROOT_INO;
	r->stored = 0;
	memset(r->objid, 0, sizeof(r->objid));
	return 0;
}

int meta_snap_dir_lookup(struct vv_meta *m, const char *name, uint64_t *ino)
{
	uint32_t sid = 0;
	int e = name_to_id(m, name, &sid);

	if (e == 0)
		*ino = vv_snap_mkino(sid, VV_META_ROOT_INO);
	return e;
}

/* .snapshots lists the snapshots, cookie = id. */
struct snapdir_ls {
	struct vv_meta *m;
	uint64_t after;
	int max, count;
	int (*cb)(void *ctx, uint64_t cookie, const char *name, uint64_t ino, uint32_t mode);
	int (*cbp)(void *ctx, uint64_t cookie, const char *name, const struct vv_inode_row *r, bool xattrs);
	void *ctx;
};

static int snapdir_one(void *ctx, const struct vv_snap_row *sr)
{
	struct snapdir_ls *l = ctx;
	struct vv_inode_row row;
	uint64_t vino = vv_snap_mkino(sr->id, VV_META_ROOT_INO);
	bool any = false;
	int r;

	if (sr->id <= l->after)
		return 0;
	if (l->count++ >= l->max)
		return 1;
	if (l->cb)
		return l->cb(l->ctx, sr->id, sr->name, vino, 0040000);
	if ((r = vv_meta_inode_get(l->m, vino, &row)) < 0 || (r = vv_meta_xattr_any(l->m, vino, &any)) < 0)
		return r;
	return l->cbp(l->ctx, sr->id, sr->name, &row, any);
}

int meta_snap_dir_list(struct vv_meta *m, uint64_t after, int max,
		       int (*cb)(void *ctx, uint64_t cookie, const char *name, uint64_t ino, uint32_t mode),
		       int (*cbp)(void *ctx, uint64_t cookie, const char *name,
				  const struct vv_inode_row *r, bool xattrs),
		       void *ctx)
{
	struct snapdir_ls l = { .m = m, .after = after, .max = max, .cb = cb, .cbp = cbp, .ctx = ctx };
	int r = vv_meta_snap_list(m, snapdir_one, &l);

	return r == 1 ? 0 : r;
}

int meta_snap_root_name(struct vv_meta *m, uint64_t vino, uint64_t *parent, char *name, size_t cap)
{
	struct vv_snap_row sr;
	int r;

	if (vino == VV_SNAPDIR_INO) {
		*parent = VV_META_ROOT_INO;
		snprintf(name, cap, "%s", VV_SNAPDIR_NAME);
		return 0;
	}
	if ((r = vv_meta_snap_get_id(m, vv_snap_sid(vino), &sr)) < 0)
		return r;
	if (strlen(sr.name) >= cap)
		return VV_ECORRUPT;
	*parent = VV_SNAPDIR_INO;
	memcpy(name, sr.name, strlen(sr.name) + 1);
	return 0;
}
