/*
 * meta_rows.c - the rows of meta.db's core tables (see meta_int.h):
 * inodes, directory entries, xattrs, extents, chunk references and
 * collection keys, and the reads under .snapshots that run the same
 * queries on a snapshot's tables.  The statements' SQL, the connection
 * and transactions: meta.c (meta_core_int.h between the two).
 */
#include <limits.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "grow.h"
#include "meta_core_int.h"
#include "meta_int.h"
#include "meta_sql_int.h"
#include "meta_vfs_int.h"
#include "os.h"
#include "vecvault/error.h"
#include "vecvault/log.h"

/*
 * Reads of a number under .snapshots run the same query on the snapshot's
 * tables (meta_snap.c: the same columns, the snapshot id bound to ?9),
 * with the stored number in place of the virtual one; *sid says which
 * snapshot (0: the live tree) for translating the numbers in the rows.
 */
static sqlite3_stmt *rd(struct vv_meta *m, int id, const char *snap_sql, uint64_t *ino, uint32_t *sid)
{
	sqlite3_stmt *s;

	*sid = 0;
	if (!vv_snap_ino(*ino))
		return meta_stmt(m, id);
	*sid = vv_snap_sid(*ino);
	*ino = vv_snap_real(*ino);
	/* A snapshot kept as a file of its own: the live query on its
	 * connection. */
	if (meta_snap_file_sql(m, *sid, meta_core_sql[id], &s))
		return s;
	if ((s = meta_sql(m, snap_sql)))
		sqlite3_bind_int64(s, 9, *sid);
	return s;
}

static const char *const meta_snap_sql[S_NSTMT] = {
	[S_INO_GET] = meta_snap_q_ino_get, [S_INO_DATA_GET] = meta_snap_q_data_get,
	[S_DE_GET] = meta_snap_q_de_get, [S_DE_LIST] = meta_snap_q_de_list,
	[S_DE_LIST_PLUS] = meta_snap_q_de_plus, [S_DE_FIND] = meta_snap_q_de_find,
	[S_DE_RANGE] = meta_snap_q_de_range, [S_DE_RANGE_PLUS] = meta_snap_q_de_range_plus,
	[S_X_GET] = meta_snap_q_x_get, [S_X_LIST] = meta_snap_q_x_list, [S_X_ANY] = meta_snap_q_x_any,
	[S_E_LOAD] = meta_snap_q_e_load,
};

#define RD(m, id, ino, sid) sqlite3_stmt *s = rd((m), (id), meta_snap_sql[id], &(ino), &(sid)); \
	if (!s) return VV_EIO

/* A stored inode number of snapshot sid (0: live) as the view shows it. */
static uint64_t xino(uint32_t sid, uint64_t ino)
{
	return sid ? vv_snap_mkino(sid, ino) : ino;
}

void meta_xlate_row(uint32_t sid, struct vv_inode_row *r)
{
	if (!sid)
		return;
	/* the snapshot's root sits in .snapshots */
	r->parent = r->ino == VV_META_ROOT_INO ? VV_SNAPDIR_INO : vv_snap_mkino(sid, r->parent);
	r->ino = vv_snap_mkino(sid, r->ino);
}

static void bind_name(sqlite3_stmt *s, int i, const char *name)
{
	sqlite3_bind_blob(s, i, name, (int)strlen(name), SQLITE_STATIC);
}

/* Column col, an entry's name (bind_name's blob), into name[cap] with its
 * NUL: VV_ECORRUPT if it is empty or does not fit. */
static int col_name(sqlite3_stmt *s, int col, char *name, size_t cap)
{
	int n = sqlite3_column_bytes(s, col);

	if (n <= 0 || (size_t)n >= cap)
		return VV_ECORRUPT;
	memcpy(name, sqlite3_column_blob(s, col), (size_t)n);
	name[n] = 0;
	return 0;
}

/* Columns gen.. in the order of S_INO_GET, starting at column c0. */
int meta_read_inode(sqlite3_stmt *s, int c0, struct vv_inode_row *r)
{
	const void *oid;

	r->gen = (uint64_t)sqlite3_column_int64(s, c0 + 0);
	r->mode = (uint32_t)sqlite3_column_int64(s, c0 + 1);
	r->uid = (uint32_t)sqlite3_column_int64(s, c0 + 2);
	r->gid = (uint32_t)sqlite3_column_int64(s, c0 + 3);
	r->nlink = (uint32_t)sqlite3_column_int64(s, c0 + 4);
	r->size = (uint64_t)sqlite3_column_int64(s, c0 + 5);
	r->rdev = (uint64_t)sqlite3_column_int64(s, c0 + 6);
	r->atime = sqlite3_column_int64(s, c0 + 7);
	r->mtime = sqlite3_column_int64(s, c0 + 8);
	r->ctime = sqlite3_column_int64(s, c0 + 9);
	r->parent = (uint64_t)sqlite3_column_int64(s, c0 + 10);
	r->coll = (uint32_t)sqlite3_column_int64(s, c0 + 11);
	oid = sqlite3_column_blob(s, c0 + 12);
	if (!oid || sqlite3_column_bytes(s, c0 + 12) != VV_OBJID_BYTES)
		return VV_ECORRUPT;
	memcpy(r->objid, oid, VV_OBJID_BYTES);
	r->stored = (uint64_t)sqlite3_column_int64(s, c0 + 13);
	return 0;
}

int vv_meta_inode_get(struct vv_meta *m, uint64_t ino, struct vv_inode_row *r)
{
	uint32_t sid;
	int rc;

	if (ino == VV_SNAPDIR_INO)
		return meta_snap_dir_row(m, r);
	RD(m, S_INO_GET, ino, sid);
	sqlite3_bind_int64(s, 1, i64(ino));
	if ((rc = meta_row(m, s)) < 0)
		return rc;
	r->ino = ino;
	rc = meta_read_inode(s, 0, r);
	sqlite3_reset(s);
	if (rc < 0)
		vv_log(VV_LOG_ERR, "meta: inode %llu (snapshot %u) has a malformed object id",
		       (unsigned long long)ino, sid);
	meta_xlate_row(sid, r);
	return rc;
}

static void bind_row(sqlite3_stmt *s, const struct vv_inode_row *r)
{
	sqlite3_bind_int64(s, 1, i64(r->ino));
	sqlite3_bind_int64(s, 2, i64(r->gen));
	sqlite3_bind_int64(s, 3, r->mode);
	sqlite3_bind_int64(s, 4, r->uid);
	sqlite3_bind_int64(s, 5, r->gid);
	sqlite3_bind_int64(s, 6, r->nlink);
	sqlite3_bind_int64(s, 7, i64(r->size));
	sqlite3_bind_int64(s, 8, i64(r->rdev));
	sqlite3_bind_int64(s, 9, r->atime);
	sqlite3_bind_int64(s, 10, r->mtime);
	sqlite3_bind_int64(s, 11, r->ctime);
	sqlite3_bind_int64(s, 12, i64(r->parent));
	sqlite3_bind_int64(s, 13, r->coll);
	sqlite3_bind_blob(s, 14, r->objid, VV_OBJID_BYTES, SQLITE_STATIC);
	sqlite3_bind_int64(s, 15, i64(r->stored));
}

int vv_meta_inode_put(struct vv_meta *m, const struct vv_inode_row *r)
{
	if (vv_snap_ino(r->ino))
		return VV_EROFS;             /* snapshots are read-only */
	STMT(m, S_INO_PUT);

	bind_row(s, r);
	return meta_run(m, s);
}

int vv_meta_inode_put_data(struct vv_meta *m, const struct vv_inode_row *r, const void *data,
			   size_t len)
{
	if (vv_snap_ino(r->ino))
		return VV_EROFS;             /* snapshots are read-only */
	if (len > INT_MAX)
		return VV_EINVAL;
	STMT(m, S_INO_PUT_DATA);

	bind_row(s, r);
	if (len)
		sqlite3_bind_blob(s, 16, data, (int)len, SQLITE_STATIC);
	else
		sqlite3_bind_null(s, 16);
	return meta_run(m, s);
}

int vv_meta_inode_get_data(struct vv_meta *m, uint64_t ino, uint8_t **data, size_t *len)
{
	uint32_t sid;
	int r, n;
	RD(m, S_INO_DATA_GET, ino, sid);

	*data = NULL;
	*len = 0;
	sqlite3_bind_int64(s, 1, i64(ino));
	if ((r = meta_row(m, s)) < 0)
		return r;
	n = sqlite3_column_bytes(s, 0);
	if (n > 0) {
		*data = malloc((size_t)n + 1);
		if (!*data) {
			sqlite3_reset(s);
			return VV_ENOMEM;
		}
		memcpy(*data, sqlite3_column_blob(s, 0), (size_t)n);
		(*data)[n] = 0;
		*len = (size_t)n;
	}
	sqlite3_reset(s);
	return 0;
}

int vv_meta_inode_set_data(struct vv_meta *m, uint64_t ino, const void *data, size_t len)
{
	if (vv_snap_ino(ino))
		return VV_EROFS;             /* snapshots are read-only */
	STMT(m, S_INO_DATA_SET);

	sqlite3_bind_int64(s, 1, i64(ino));
	if (len)
		sqlite3_bind_blob(s, 2, data, (int)len, SQLITE_STATIC);
	else
		sqlite3_bind_null(s, 2);
	return meta_run(m, s);
}

int vv_meta_inode_del(struct vv_meta *m, uint64_t ino)
{
	if (vv_snap_ino(ino))
		return VV_EROFS;             /* snapshots are read-only */
	int r;
	{
		STMT(m, S_INO_XDEL);
		sqlite3_bind_int64(s, 1, i64(ino));
		if ((r = meta_run(m, s)) < 0)
			return r;
	}
	STMT(m, S_INO_DEL);
	sqlite3_bind_int64(s, 1, i64(ino));
	return meta_run(m, s);
}

int vv_meta_next_ino(struct vv_meta *m, uint64_t *ino)
{
	uint64_t n;
	int r;

	if ((r = vv_meta_kv_get_u64(m, "next_ino", &n)) < 0)
		return r == VV_ENOENT ? VV_ECORRUPT : r;
	if ((r = vv_meta_kv_set_u64(m, "next_ino", n + 1)) < 0)
		return r;
	*ino = n;
	return 0;
}

int vv_meta_inode_iter(struct vv_meta *m, int (*cb)(void *ctx, const struct vv_inode_row *r), void *ctx)
{
	struct vv_inode_row ir;
	int rc, r = 0;
	STMT(m, S_INO_ITER);

	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		ir.ino = (uint64_t)sqlite3_column_int64(s, 0);
		if ((r = meta_read_inode(s, 1, &ir)) < 0 || (r = cb(ctx, &ir)) != 0)
			break;
	}
	sqlite3_reset(s);
	if (r)
		return r;
	return rc == SQLITE_DONE ? 0 : meta_err(m, rc);
}

int vv_meta_dirent_get(struct vv_meta *m, uint64_t parent, const char *name, uint64_t *ino)
{
	uint32_t sid;
	int r;

	if (parent == VV_SNAPDIR_INO)
		return meta_snap_dir_lookup(m, name, ino);
	RD(m, S_DE_GET, parent, sid);

	sqlite3_bind_int64(s, 1, i64(parent));
	bind_name(s, 2, name);
	if ((r = meta_row(m, s)) < 0) {
		/* Hidden (not listed), but found by name: `ls /vv/.snapshots/`. */
		if (r == VV_ENOENT && parent == VV_META_ROOT_INO && !sid && strcmp(name, VV_SNAPDIR_NAME) == 0) {
			*ino = VV_SNAPDIR_INO;
			return 0;
		}
		return r;
	}
	*ino = xino(sid, (uint64_t)sqlite3_column_int64(s, 0));
	sqlite3_reset(s);
	return 0;
}

/* Entries stepped over between two names asked for before
 * vv_meta_dirent_get_many seeks instead: a step costs about a tenth of a
 * seek, and a sparse request must not walk a large directory. */
#define DE_SKIP_MAX 8

struct de_want {
	const char *name;
	size_t i;                         /* its place in the caller's arrays */
};

static int de_want_cmp(const void *a, const void *b)
{
	return strcmp(((const struct de_want *)a)->name, ((const struct de_want *)b)->name);
}

/* The range statement's current entry against name, in SQLite's order of
 * blobs (memcmp, then length: strcmp's order for names without NULs). */
static int de_row_cmp(sqlite3_stmt *s, const char *name)
{
	const void *col = sqlite3_column_blob(s, 1);
	size_t l = (size_t)sqlite3_column_bytes(s, 1), n = strlen(name);
	int c = col && l ? memcmp(name, col, n < l ? n : l) : 0;

	return c ? c : (n > l) - (n < l);
}

/* The inode row of the range statement's current entry (S_DE_RANGE_PLUS):
 * false when the entry has none or it does not read. */
static bool entry_row(sqlite3_stmt *s, uint32_t sid, struct vv_inode_row *row, bool *xattrs)
{
	if (sqlite3_column_type(s, 4) == SQLITE_NULL)
		return false;
	row->ino = (uint64_t)sqlite3_column_int64(s, 2);
	if (meta_read_inode(s, 4, row) < 0)
		return false;
	meta_xlate_row(sid, row);
	*xattrs = sqlite3_column_int(s, 18) != 0;
	return true;
}

int vv_meta_dirent_get_many(struct vv_meta *m, uint64_t parent, const char *const *names, size_t n,
			    uint64_t *ino, int *err, struct vv_inode_row *rows, bool *xattrs)
{
	int id = rows ? S_DE_RANGE_PLUS : S_DE_RANGE;
	struct de_want *w;
	bool sorted = true, started = false;
	uint32_t sid;
	int rc = SQLITE_DONE, r = 0;

	if (n == 0)
		return 0;
	/* .snapshots' entries and the root's hidden .snapshots are no rows */
	if (parent == VV_SNAPDIR_INO || parent == VV_META_ROOT_INO) {
		for (size_t i = 0; i < n; i++) {
			err[i] = vv_meta_dirent_get(m, parent, names[i], &ino[i]);
			if (rows)
				rows[i].ino = 0;     /* not read: the caller loads it */
		}
		return 0;
	}
	if (!(w = malloc(n * sizeof(*w))))
		return VV_ENOMEM;
	for (size_t i = 0; i < n; i++) {
		w[i] = (struct de_want){ names[i], i };
		sorted = sorted && (i == 0 || strcmp(names[i - 1], names[i]) <= 0);
	}
	if (!sorted)
		qsort(w, n, sizeof(*w), de_want_cmp);
	sqlite3_stmt *s = rd(m, id, meta_snap_sql[id], &parent, &sid);
	if (!s) {
		free(w);
		return VV_EIO;
	}
	sqlite3_bind_int64(s, 1, i64(parent));
	for (size_t k = 0; k < n; k++) {
		size_t i = w[k].i, skips = 0;
		bool sought = false;
		int c = 1;

		if (k > 0 && strcmp(w[k - 1].name, w[k].name) == 0) {
			err[i] = err[w[k - 1].i];    /* the same name again */
			ino[i] = ino[w[k - 1].i];
			if (rows && err[i] == 0) {
				rows[i] = rows[w[k - 1].i];
				xattrs[i] = xattrs[w[k - 1].i];
			}
			continue;
		}
		/* to the first entry at or past the name: a step from the
		 * last one, or a seek (at the start, after a long gap) */
		while (r == 0) {
			if (!started || (!sought && skips == DE_SKIP_MAX)) {
				sqlite3_reset(s);
				bind_name(s, 2, w[k].name);
				started = sought = true;
			} else if (rc == SQLITE_ROW && (c = de_row_cmp(s, w[k].name)) > 0) {
				skips++;
			} else {
				break;
			}
			if ((rc = sqlite3_step(s)) != SQLITE_ROW && rc != SQLITE_DONE)
				r = meta_err(m, rc);
		}
		if (r < 0) {
			err[i] = r;
		} else if (rc == SQLITE_ROW && c == 0) {
			ino[i] = xino(sid, (uint64_t)sqlite3_column_int64(s, rows ? 2 : 0));
			err[i] = 0;
			if (rows && !entry_row(s, sid, &rows[i], &xattrs[i]))
				rows[i].ino = 0;     /* no inode row: the caller's lookup says */
		} else {
			err[i] = VV_ENOENT;
		}
	}
	sqlite3_reset(s);
	free(w);
	return 0;
}

int vv_meta_dirent_add(struct vv_meta *m, uint64_t parent, const char *name, uint64_t ino, uint32_t mode)
{
	if (vv_snap_ino(parent) || vv_snap_ino(ino))
		return VV_EROFS;             /* snapshots are read-only */
	int rc;
	STMT(m, S_DE_ADD);

	sqlite3_bind_int64(s, 1, i64(parent));
	bind_name(s, 2, name);
	sqlite3_bind_int64(s, 3, i64(ino));
	sqlite3_bind_int64(s, 4, mode);
	rc = sqlite3_step(s);
	sqlite3_reset(s);
	if (rc == SQLITE_DONE)
		return 0;
	if ((rc & 0xff) == SQLITE_CONSTRAINT)
		return VV_EEXIST;
	return meta_err(m, rc);
}

int vv_meta_dirent_del(struct vv_meta *m, uint64_t parent, const char *name)
{
	if (vv_snap_ino(parent))
		return VV_EROFS;             /* snapshots are read-only */
	STMT(m, S_DE_DEL);

	sqlite3_bind_int64(s, 1, i64(parent));
	bind_name(s, 2, name);
	return meta_run(m, s);
}

int vv_meta_dirent_move(struct vv_meta *m, uint64_t parent, const char *name, uint64_t nparent, const char *nname)
{
	if (vv_snap_ino(parent) || vv_snap_ino(nparent))
		return VV_EROFS;             /* snapshots are read-only */
	STMT(m, S_DE_MOVE);

	sqlite3_bind_int64(s, 1, i64(parent));
	bind_name(s, 2, name);
	sqlite3_bind_int64(s, 3, i64(nparent));
	bind_name(s, 4, nname);
	return meta_run(m, s);
}

int vv_meta_dirent_set_ino(struct vv_meta *m, uint64_t parent, const char *name, uint64_t ino, uint32_t mode)
{
	if (vv_snap_ino(parent) || vv_snap_ino(ino))
		return VV_EROFS;             /* snapshots are read-only */
	STMT(m, S_DE_SETINO);

	sqlite3_bind_int64(s, 1, i64(parent));
	bind_name(s, 2, name);
	sqlite3_bind_int64(s, 3, i64(ino));
	sqlite3_bind_int64(s, 4, mode);
	return meta_run(m, s);
}

int vv_meta_dir_empty(struct vv_meta *m, uint64_t parent, bool *empty)
{
	int r;
	STMT(m, S_DE_ANY);

	sqlite3_bind_int64(s, 1, i64(parent));
	r = meta_row(m, s);
	if (r == 0) {
		sqlite3_reset(s);
		*empty = false;
		return 0;
	}
	if (r == VV_ENOENT) {
		*empty = true;
		return 0;
	}
	return r;
}

int vv_meta_dirent_list(struct vv_meta *m, uint64_t parent, uint64_t after, int max,
			int (*cb)(void *ctx, uint64_t cookie, const char *name, uint64_t ino, uint32_t mode),
			void *ctx)
{
	char name[256];
	uint32_t sid;
	int rc, r = 0;

	if (parent == VV_SNAPDIR_INO)
		return meta_snap_dir_list(m, after, max, cb, NULL, ctx);
	RD(m, S_DE_LIST, parent, sid);

	sqlite3_bind_int64(s, 1, i64(parent));
	sqlite3_bind_int64(s, 2, i64(after));
	sqlite3_bind_int(s, 3, max);
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		if ((r = col_name(s, 1, name, sizeof(name))) < 0)
			break;
		r = cb(ctx, (uint64_t)sqlite3_column_int64(s, 0), name,
		       xino(sid, (uint64_t)sqlite3_column_int64(s, 2)), (uint32_t)sqlite3_column_int64(s, 3));
		if (r)
			break;
	}
	sqlite3_reset(s);
	if (r)
		return r;
	return rc == SQLITE_DONE ? 0 : meta_err(m, rc);
}

int vv_meta_dirent_iter_all(struct vv_meta *m,
			    int (*cb)(void *ctx, uint64_t parent, const char *name, uint64_t ino), void *ctx)
{
	char name[256];
	int rc, r = 0;
	STMT(m, S_DE_ALL);

	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		if ((r = col_name(s, 1, name, sizeof(name))) < 0)
			break;
		if ((r = cb(ctx, (uint64_t)sqlite3_column_int64(s, 0), name,
			    (uint64_t)sqlite3_column_int64(s, 2))) != 0)
			break;
	}
	sqlite3_reset(s);
	if (r)
		return r;
	return rc == SQLITE_DONE ? 0 : meta_err(m, rc);
}

int vv_meta_dirent_list_plus(struct vv_meta *m, uint64_t parent, uint64_t after, int max,
			     int (*cb)(void *ctx, uint64_t cookie, const char *name,
				       const struct vv_inode_row *r, bool xattrs),
			     void *ctx)
{
	struct vv_inode_row row;
	char name[256];
	uint32_t sid;
	int rc, r = 0;

	if (parent == VV_SNAPDIR_INO)
		return meta_snap_dir_list(m, after, max, NULL, cb, ctx);
	RD(m, S_DE_LIST_PLUS, parent, sid);

	sqlite3_bind_int64(s, 1, i64(parent));
	sqlite3_bind_int64(s, 2, i64(after));
	sqlite3_bind_int(s, 3, max);
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		if (sqlite3_column_type(s, 4) == SQLITE_NULL || col_name(s, 1, name, sizeof(name)) < 0) {
			vv_log(VV_LOG_ERR, "meta: entry in directory %llu (snapshot %u) is malformed or "
			       "has no inode", (unsigned long long)parent, sid);
			r = VV_ECORRUPT;
			break;
		}
		row.ino = (uint64_t)sqlite3_column_int64(s, 2);
		if ((r = meta_read_inode(s, 4, &row)) < 0)
			break;
		meta_xlate_row(sid, &row);
		if ((r = cb(ctx, (uint64_t)sqlite3_column_int64(s, 0), name, &row,
			    sqlite3_column_int(s, 18) != 0)) != 0)
			break;
	}
	sqlite3_reset(s);
	if (r)
		return r;
	return rc == SQLITE_DONE ? 0 : meta_err(m, rc);
}

int vv_meta_dirent_find_ino(struct vv_meta *m, uint64_t ino, uint64_t *parent, char *name, size_t cap)
{
	uint32_t sid;
	int r;

	if (ino == VV_SNAPDIR_INO || (vv_snap_ino(ino) && vv_snap_real(ino) == VV_META_ROOT_INO))
		return meta_snap_root_name(m, ino, parent, name, cap);
	RD(m, S_DE_FIND, ino, sid);

	sqlite3_bind_int64(s, 1, i64(ino));
	if ((r = meta_row(m, s)) < 0)
		return r;
	*parent = xino(sid, (uint64_t)sqlite3_column_int64(s, 0));
	r = col_name(s, 1, name, cap);
	sqlite3_reset(s);
	return r;
}

int vv_meta_dirent_parents(struct vv_meta *m, uint64_t ino, uint64_t *parents, size_t max,
			   size_t *n)
{
	sqlite3_stmt *s;
	int rc;

	*n = 0;
	if (vv_snap_ino(ino))
		return VV_EINVAL;
	if (!(s = meta_stmt(m, S_DE_PARENTS)))
		return VV_EIO;
	sqlite3_bind_int64(s, 1, i64(ino));
	sqlite3_bind_int64(s, 2, (int64_t)max);
	while ((rc = sqlite3_step(s)) == SQLITE_ROW && *n < max)
		parents[(*n)++] = (uint64_t)sqlite3_column_int64(s, 0);
	sqlite3_reset(s);
	return rc == SQLITE_DONE || rc == SQLITE_ROW ? 0 : meta_err(m, rc);
}

int vv_meta_xattr_get(struct vv_meta *m, uint64_t ino, const char *name, uint8_t **val, size_t *len)
{
	int r, n;
	uint32_t sid;
	RD(m, S_X_GET, ino, sid);

	*val = NULL;
	*len = 0;
	sqlite3_bind_int64(s, 1, i64(ino));
	sqlite3_bind_text(s, 2, name, -1, SQLITE_STATIC);
	if ((r = meta_row(m, s)) < 0)
		return r == VV_ENOENT ? VV_ENODATA : r;
	n = sqlite3_column_bytes(s, 0);
	*val = malloc((size_t)n + 1);
	if (!*val) {
		sqlite3_reset(s);
		return VV_ENOMEM;
	}
	if (n)
		memcpy(*val, sqlite3_column_blob(s, 0), (size_t)n);
	*len = (size_t)n;
	sqlite3_reset(s);
	return 0;
}

int vv_meta_xattr_set(struct vv_meta *m, uint64_t ino, const char *name, const void *val, size_t len)
{
	if (vv_snap_ino(ino))
		return VV_EROFS;             /* snapshots are read-only */
	static const uint8_t empty;
	STMT(m, S_X_SET);

	sqlite3_bind_int64(s, 1, i64(ino));
	sqlite3_bind_text(s, 2, name, -1, SQLITE_STATIC);
	sqlite3_bind_blob(s, 3, len ? val : &empty, (int)len, SQLITE_STATIC);
	return meta_run(m, s);
}

int vv_meta_xattr_del(struct vv_meta *m, uint64_t ino, const char *name)
{
	if (vv_snap_ino(ino))
		return VV_EROFS;             /* snapshots are read-only */
	int r;
	STMT(m, S_X_DEL);

	sqlite3_bind_int64(s, 1, i64(ino));
	sqlite3_bind_text(s, 2, name, -1, SQLITE_STATIC);
	if ((r = meta_run(m, s)) < 0)
		return r;
	return sqlite3_changes(m->db) ? 0 : VV_ENODATA;
}

int vv_meta_xattr_any(struct vv_meta *m, uint64_t ino, bool *any)
{
	int r;
	uint32_t sid;
	RD(m, S_X_ANY, ino, sid);

	sqlite3_bind_int64(s, 1, i64(ino));
	r = meta_row(m, s);
	if (r == 0)
		sqlite3_reset(s);
	*any = r == 0;
	return r == VV_ENOENT ? 0 : r;
}

int vv_meta_xattr_list(struct vv_meta *m, uint64_t ino, int (*cb)(void *ctx, const char *name), void *ctx)
{
	int rc, r = 0;
	uint32_t sid;
	RD(m, S_X_LIST, ino, sid);

	sqlite3_bind_int64(s, 1, i64(ino));
	while ((rc = sqlite3_step(s)) == SQLITE_ROW)
		if ((r = cb(ctx, (const char *)sqlite3_column_text(s, 0))) != 0)
			break;
	sqlite3_reset(s);
	if (r)
		return r;
	return rc == SQLITE_DONE ? 0 : meta_err(m, rc);
}

int vv_meta_extent_decode(int64_t fblock, const void *chunk, size_t chunklen, int64_t off,
			  int64_t len, int64_t slot, struct vv_extent *e)
{
	if (!chunk || chunklen != VV_CHUNK_ID_BYTES)
		return VV_ECORRUPT;
	/* Written from u32 fields: anything else is a damaged row, and a
	 * truncated value would name other bytes of the chunk. */
	if (off < 0 || off > UINT32_MAX || len < 0 || len > UINT32_MAX || slot < 0 || slot > UINT32_MAX)
		return VV_ECORRUPT;
	e->fblock = (uint64_t)fblock;
	memcpy(e->chunk_id, chunk, VV_CHUNK_ID_BYTES);
	e->off = (uint32_t)off;
	e->len = (uint32_t)len;
	e->slot = (uint32_t)slot;
	return 0;
}

int meta_read_extent(sqlite3_stmt *s, int c0, struct vv_extent *e)
{
	const void *chunk = sqlite3_column_blob(s, c0 + 1);
	int n = sqlite3_column_bytes(s, c0 + 1);

	return vv_meta_extent_decode(sqlite3_column_int64(s, c0), chunk, n < 0 ? 0 : (size_t)n,
				     sqlite3_column_int64(s, c0 + 2), sqlite3_column_int64(s, c0 + 3),
				     sqlite3_column_int64(s, c0 + 4), e);
}

int vv_meta_extents_load(struct vv_meta *m, uint64_t ino,
			 int (*cb)(void *ctx, const struct vv_extent *e), void *ctx)
{
	struct vv_extent e;
	int rc, r = 0;
	uint32_t sid;
	RD(m, S_E_LOAD, ino, sid);

	sqlite3_bind_int64(s, 1, i64(ino));
	while ((rc = sqlite3_step(s)) == SQLITE_ROW)
		if ((r = meta_read_extent(s, 0, &e)) < 0 || (r = cb(ctx, &e)) != 0)
			break;
	sqlite3_reset(s);
	if (r)
		return r;
	return rc == SQLITE_DONE ? 0 : meta_err(m, rc);
}

int vv_meta_extent_put(struct vv_meta *m, uint64_t ino, const struct vv_extent *e)
{
	if (vv_snap_ino(ino))
		return VV_EROFS;             /* snapshots are read-only */
	STMT(m, S_E_PUT);

	sqlite3_bind_int64(s, 1, i64(ino));
	sqlite3_bind_int64(s, 2, i64(e->fblock));
	sqlite3_bind_blob(s, 3, e->chunk_id, VV_CHUNK_ID_BYTES, SQLITE_STATIC);
	sqlite3_bind_int64(s, 4, e->off);
	sqlite3_bind_int64(s, 5, e->len);
	sqlite3_bind_int64(s, 6, e->slot);
	return meta_run(m, s);
}

int vv_meta_extents_trim(struct vv_meta *m, uint64_t ino, uint64_t from,
			 int (*cb)(void *ctx, const struct vv_extent *e), void *ctx)
{
	if (vv_snap_ino(ino))
		return VV_EROFS;             /* snapshots are read-only */
	struct vv_extent e;
	int rc, r = 0;

	if (cb) {
		STMT(m, S_E_TRIM_SEL);
		sqlite3_bind_int64(s, 1, i64(ino));
		sqlite3_bind_int64(s, 2, i64(from));
		while ((rc = sqlite3_step(s)) == SQLITE_ROW)
			if ((r = meta_read_extent(s, 0, &e)) < 0 || (r = cb(ctx, &e)) != 0)
				break;
		sqlite3_reset(s);
		if (r)
			return r;
		if (rc != SQLITE_DONE && rc != SQLITE_ROW)
			return meta_err(m, rc);
	}
	STMT(m, S_E_TRIM_DEL);
	sqlite3_bind_int64(s, 1, i64(ino));
	sqlite3_bind_int64(s, 2, i64(from));
	return meta_run(m, s);
}

int vv_meta_extent_iter_all(struct vv_meta *m,
			    int (*cb)(void *ctx, uint64_t ino, const struct vv_extent *e), void *ctx)
{
	struct vv_extent e;
	int rc, r = 0;
	STMT(m, S_E_ALL);

	while ((rc = sqlite3_step(s)) == SQLITE_ROW)
		if ((r = meta_read_extent(s, 1, &e)) < 0 ||
		    (r = cb(ctx, (uint64_t)sqlite3_column_int64(s, 0), &e)) != 0)
			break;
	sqlite3_reset(s);
	if (r)
		return r;
	return rc == SQLITE_DONE ? 0 : meta_err(m, rc);
}

int vv_meta_chunk_ref(struct vv_meta *m, const uint8_t id[VV_CHUNK_ID_BYTES], uint32_t coll,
		      int64_t delta, uint64_t size, uint64_t *refs)
{
	int64_t cur = 0;
	int r;
	{
		STMT(m, S_C_GET);
		sqlite3_bind_blob(s, 1, id, VV_CHUNK_ID_BYTES, SQLITE_STATIC);
		r = meta_row(m, s);
		if (r == 0) {
			cur = sqlite3_column_int64(s, 0);
			sqlite3_reset(s);
		} else if (r != VV_ENOENT) {
			return r;
		}
		if (r == VV_ENOENT && delta <= 0) {
			vv_log(VV_LOG_ERR, "meta: dropping a reference to an unknown chunk");
			return VV_ECORRUPT;
		}
		if (r == VV_ENOENT) {
			STMT(m, S_C_INS);
			sqlite3_bind_blob(s, 1, id, VV_CHUNK_ID_BYTES, SQLITE_STATIC);
			sqlite3_bind_int64(s, 2, coll);
			sqlite3_bind_int64(s, 3, delta);
			sqlite3_bind_int64(s, 4, i64(size));
			if (refs)
				*refs = (uint64_t)delta;
			return meta_run(m, s);
		}
	}
	cur += delta;
	if (cur < 0) {
		vv_log(VV_LOG_ERR, "meta: chunk reference count below zero");
		return VV_ECORRUPT;
	}
	if (refs)
		*refs = (uint64_t)cur;
	if (cur == 0) {
		STMT(m, S_C_DEL);
		sqlite3_bind_blob(s, 1, id, VV_CHUNK_ID_BYTES, SQLITE_STATIC);
		return meta_run(m, s);
	}
	STMT(m, S_C_UPD);
	sqlite3_bind_blob(s, 1, id, VV_CHUNK_ID_BYTES, SQLITE_STATIC);
	sqlite3_bind_int64(s, 2, cur);
	return meta_run(m, s);
}

int vv_meta_chunk_iter(struct vv_meta *m,
		       int (*cb)(void *ctx, const uint8_t *id, uint32_t coll, uint64_t refs, uint64_t size),
		       void *ctx)
{
	int rc, r = 0;
	STMT(m, S_C_ITER);

	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		if (sqlite3_column_bytes(s, 0) != VV_CHUNK_ID_BYTES) {
			r = VV_ECORRUPT;
			break;
		}
		r = cb(ctx, sqlite3_column_blob(s, 0), (uint32_t)sqlite3_column_int64(s, 1),
		       (uint64_t)sqlite3_column_int64(s, 2), (uint64_t)sqlite3_column_int64(s, 3));
		if (r)
			break;
	}
	sqlite3_reset(s);
	if (r)
		return r;
	return rc == SQLITE_DONE ? 0 : meta_err(m, rc);
}

int vv_meta_chunk_set_refs(struct vv_meta *m, const uint8_t id[VV_CHUNK_ID_BYTES], uint64_t refs)
{
	if (refs == 0) {
		STMT(m, S_C_DEL);
		sqlite3_bind_blob(s, 1, id, VV_CHUNK_ID_BYTES, SQLITE_STATIC);
		return meta_run(m, s);
	}
	STMT(m, S_C_SETREFS);
	sqlite3_bind_blob(s, 1, id, VV_CHUNK_ID_BYTES, SQLITE_STATIC);
	sqlite3_bind_int64(s, 2, i64(refs));
	return meta_run(m, s);
}

int vv_meta_chunk_stats(struct vv_meta *m, uint64_t *count, uint64_t *bytes)
{
	int r;
	STMT(m, S_C_STATS);

	if ((r = meta_row(m, s)) < 0)
		return r;
	*count = (uint64_t)sqlite3_column_int64(s, 0);
	*bytes = (uint64_t)sqlite3_column_int64(s, 1);
	sqlite3_reset(s);
	return 0;
}

int vv_meta_coll_get(struct vv_meta *m, uint32_t id, uint8_t *wrapped, size_t cap, size_t *len)
{
	int r, n;
	STMT(m, S_COLL_GET);

	sqlite3_bind_int64(s, 1, id);
	if ((r = meta_row(m, s)) < 0)
		return r;
	n = sqlite3_column_bytes(s, 0);
	if ((size_t)n > cap) {
		sqlite3_reset(s);
		return VV_ECORRUPT;
	}
	memcpy(wrapped, sqlite3_column_blob(s, 0), (size_t)n);
	*len = (size_t)n;
	sqlite3_reset(s);
	return 0;
}

int vv_meta_coll_add(struct vv_meta *m, const uint8_t *wrapped, size_t len, uint32_t *id)
{
	int r;
	STMT(m, S_COLL_ADD);

	sqlite3_bind_blob(s, 1, wrapped, (int)len, SQLITE_STATIC);
	if ((r = meta_run(m, s)) < 0)
		return r;
	*id = (uint32_t)sqlite3_last_insert_rowid(m->db);
	return 0;
}

int vv_meta_coll_del(struct vv_meta *m, uint32_t id)
{
	STMT(m, S_COLL_DEL);

	sqlite3_bind_int64(s, 1, id);
	return meta_run(m, s);
}

int vv_meta_coll_needed(struct vv_meta *m, uint32_t coll, uint64_t except, bool *needed)
{
	int r;
	STMT(m, S_COLL_NEEDED);

	*needed = true;
	sqlite3_bind_int64(s, 1, coll);
	sqlite3_bind_int64(s, 2, i64(except));
	if ((r = meta_row(m, s)) < 0)
		return r;
	*needed = sqlite3_column_int(s, 0) != 0;
	sqlite3_reset(s);
	return 0;
}

int vv_meta_coll_ids(struct vv_meta *m, uint32_t skip, uint32_t **ids, size_t *n)
{
	uint32_t *a = NULL;
	size_t cap = 0, k = 0;
	int rc, r = 0;
	STMT(m, S_COLL_IDS);

	sqlite3_bind_int64(s, 1, skip);
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		if ((r = VV_GROW(a, k, cap)) < 0)
			break;
		a[k++] = (uint32_t)sqlite3_column_int64(s, 0);
	}
	if (r == 0 && rc != SQLITE_DONE)
		r = meta_err(m, rc);
	sqlite3_reset(s);
	if (r < 0) {
		free(a);
		return r;
	}
	*ids = a;
	*n = k;
	return 0;
}
