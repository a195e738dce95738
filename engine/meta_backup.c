/*
 * meta_backup.c - the reads a backup needs from the snapshot tables
 * (backup_int.h): one snapshot's rows, whole, in a stable order.  The
 * tables and their meaning are meta_snap*.c's; nothing here writes.
 */
#include <string.h>

#include "backup_int.h"
#include "meta_sql_int.h"
#include "vecvault/error.h"

static const char q_ino[] = "SELECT ino, gen, mode, uid, gid, nlink, size, rdev, atime, mtime, ctime,"
			    " parent, coll, objid, stored, data FROM snap_inodes WHERE snap=?1 ORDER BY ino";
static const char q_de[] = "SELECT parent, name, id, ino, mode FROM snap_dirents WHERE snap=?1"
			   " ORDER BY parent, id";
static const char q_x[] = "SELECT ino, name, value FROM snap_xattrs WHERE snap=?1 ORDER BY ino, name";
static const char q_e[] = "SELECT ino, fblock, chunk, off, len, slot FROM snap_extents WHERE snap=?1"
			  " ORDER BY ino, fblock";
static const char q_c[] = "SELECT coll FROM snap_colls WHERE snap=?1 ORDER BY coll";
/* The same rows of a snapshot kept as a file (meta_snap_file.c): its live
 * tables, on its own connection. */
static const char qf_ino[] = "SELECT ino, gen, mode, uid, gid, nlink, size, rdev, atime, mtime, ctime,"
			     " parent, coll, objid, stored, data FROM inodes ORDER BY ino";
static const char qf_de[] = "SELECT parent, name, id, ino, mode FROM dirents ORDER BY parent, id";
static const char qf_x[] = "SELECT ino, name, value FROM xattrs ORDER BY ino, name";
static const char qf_e[] = "SELECT ino, fblock, chunk, off, len, slot FROM extents ORDER BY ino, fblock";

/* Step through s (bound to sid), calling row(m, s, k) per row. */
static int each(struct vv_meta *m, const char *q, uint32_t sid, const struct vv_meta_bk_sink *k,
		int (*row)(sqlite3_stmt *s, const struct vv_meta_bk_sink *k))
{
	sqlite3_stmt *s;
	int r;

	/* A file snapshot's rows come from its file (q is then the qf_ text);
	 * its collections, like every snapshot's, from snap_colls. */
	if (q == q_c || !meta_snap_file_sql(m, sid, q, &s))
		s = meta_sql(m, q);
	if (!s)
		return VV_EIO;
	sqlite3_bind_int64(s, 1, sid);
	while ((r = meta_row(m, s)) == 0)
		if ((r = row(s, k)) < 0)
			break;
	sqlite3_reset(s);
	return r == VV_ENOENT ? 0 : r;
}

static int row_ino(sqlite3_stmt *s, const struct vv_meta_bk_sink *k)
{
	struct vv_inode_row r;
	int e;

	memset(&r, 0, sizeof(r));
	r.ino = (uint64_t)sqlite3_column_int64(s, 0);
	if ((e = meta_read_inode(s, 1, &r)) < 0)
		return e;
	return k->inode(k->ctx, &r, sqlite3_column_blob(s, 15), (size_t)sqlite3_column_bytes(s, 15));
}

static int row_de(sqlite3_stmt *s, const struct vv_meta_bk_sink *k)
{
	char name[256];
	int n = sqlite3_column_bytes(s, 1);
	const void *p = sqlite3_column_blob(s, 1);

	if (!p || n <= 0 || n > 255 || memchr(p, 0, (size_t)n))
		return VV_ECORRUPT;
	memcpy(name, p, (size_t)n);
	name[n] = 0;
	return k->dirent(k->ctx, (uint64_t)sqlite3_column_int64(s, 0), name,
			 (uint64_t)sqlite3_column_int64(s, 2), (uint64_t)sqlite3_column_int64(s, 3),
			 (uint32_t)sqlite3_column_int64(s, 4));
}

static int row_x(sqlite3_stmt *s, const struct vv_meta_bk_sink *k)
{
	const char *name = (const char *)sqlite3_column_text(s, 1);

	if (!name)
		return VV_ECORRUPT;
	return k->xattr(k->ctx, (uint64_t)sqlite3_column_int64(s, 0), name, sqlite3_column_blob(s, 2),
			(size_t)sqlite3_column_bytes(s, 2));
}

static int row_e(sqlite3_stmt *s, const struct vv_meta_bk_sink *k)
{
	struct vv_extent e;
	int r;

	if ((r = meta_read_extent(s, 1, &e)) < 0)
		return r;
	return k->extent(k->ctx, (uint64_t)sqlite3_column_int64(s, 0), &e);
}

static int row_c(sqlite3_stmt *s, const struct vv_meta_bk_sink *k)
{
	return k->coll(k->ctx, (uint32_t)sqlite3_column_int64(s, 0));
}

int vv_meta_backup_read(struct vv_meta *m, uint32_t sid, const struct vv_meta_bk_sink *k)
{
	int r;

	if (!meta_has_table(m, "snap_colls"))
		return VV_ENOENT;
	sqlite3_stmt *probe;
	bool file = meta_snap_file_sql(m, sid, qf_ino, &probe);

	if (file && !probe)
		return VV_ECORRUPT;              /* its file is missing or fails its check */
	if ((r = each(m, file ? qf_ino : q_ino, sid, k, row_ino)) < 0 ||
	    (r = each(m, file ? qf_de : q_de, sid, k, row_de)) < 0 ||
	    (r = each(m, file ? qf_x : q_x, sid, k, row_x)) < 0 ||
	    (r = each(m, file ? qf_e : q_e, sid, k, row_e)) < 0)
		return r;
	return each(m, q_c, sid, k, row_c);
}

/* ---- the live tables ----------------------------------------------------------
 * The same rows, columns and order that a snapshot taken now would hold
 * (meta_snap_file.c's copy holds exactly these tables), read from the live
 * tables.  vault_backup.c uses them, under v->mu, for a backup whose every
 * chunk the repository holds already: it copies no chunk, so it needs no
 * snapshot's references to keep chunks alive while it runs. */

static const char q_live_ino[] = "SELECT ino, gen, mode, uid, gid, nlink, size, rdev, atime, mtime,"
				 " ctime, parent, coll, objid, stored, data FROM inodes ORDER BY ino";
static const char q_live_de[] = "SELECT parent, name, id, ino, mode FROM dirents ORDER BY parent, id";
static const char q_live_x[] = "SELECT ino, name, value FROM xattrs ORDER BY ino, name";
static const char q_live_e[] = "SELECT ino, fblock, chunk, off, len, slot FROM extents ORDER BY ino, fblock";
static const char q_live_c[] = "SELECT DISTINCT coll FROM inodes ORDER BY coll";

static int each_live(struct vv_meta *m, const char *q, const struct vv_meta_bk_sink *k,
		     int (*row)(sqlite3_stmt *s, const struct vv_meta_bk_sink *k))
{
	sqlite3_stmt *s = meta_sql(m, q);
	int r;

	if (!s)
		return VV_EIO;
	while ((r = meta_row(m, s)) == 0)
		if ((r = row(s, k)) < 0)
			break;
	sqlite3_reset(s);
	return r == VV_ENOENT ? 0 : r;
}

int vv_meta_backup_read_live(struct vv_meta *m, const struct vv_meta_bk_sink *k)
{
	int r;

	if ((r = each_live(m, q_live_ino, k, row_ino)) < 0 || (r = each_live(m, q_live_de, k, row_de)) < 0 ||
	    (r = each_live(m, q_live_x, k, row_x)) < 0 || (r = each_live(m, q_live_e, k, row_e)) < 0)
		return r;
	return each_live(m, q_live_c, k, row_c);
}
