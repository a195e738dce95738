/*
 * meta.c - meta.db's connection (see meta_int.h): the core schema and its
 * statements, open, upgrade and close, transactions, checkpoints, the kv
 * table and integrity.  The core tables' rows are meta_rows.c's
 * (meta_core_int.h between the two), the features' tables meta_<feature>.c's.
 *
 * Every statement is prepared once and kept (meta_stmt()).  meta.db is opened
 * through the page-encrypting VFS (meta_vfs.c); this file never sees a
 * ciphertext byte.  Integers are stored as SQLite integers (64-bit signed:
 * inode numbers and sizes above 2^63 are refused by the vault layer).
 */
#include <limits.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "meta_core_int.h"
#include "meta_int.h"
#include "meta_sql_int.h"
#include "meta_vfs_int.h"
#include "os.h"
#include "vecvault/error.h"
#include "vecvault/log.h"

const char *const meta_core_sql[S_NSTMT] = {
	[S_KV_GET] = "SELECT v FROM kv WHERE k=?1",
	[S_KV_SET] = "INSERT OR REPLACE INTO kv(k, v) VALUES(?1, ?2)",
	[S_INO_GET] = "SELECT gen, mode, uid, gid, nlink, size, rdev, atime, mtime, ctime,"
		      " parent, coll, objid, stored FROM inodes WHERE ino=?1",
	[S_INO_PUT] = "INSERT INTO inodes(ino, gen, mode, uid, gid, nlink, size, rdev, atime,"
		      " mtime, ctime, parent, coll, objid, stored)"
		      " VALUES(?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,?11,?12,?13,?14,?15)"
		      " ON CONFLICT(ino) DO UPDATE SET gen=?2, mode=?3, uid=?4, gid=?5, nlink=?6,"
		      " size=?7, rdev=?8, atime=?9, mtime=?10, ctime=?11, parent=?12, coll=?13,"
		      " objid=?14, stored=?15",
	[S_INO_PUT_DATA] = "INSERT INTO inodes(ino, gen, mode, uid, gid, nlink, size, rdev, atime,"
		      " mtime, ctime, parent, coll, objid, stored, data)"
		      " VALUES(?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,?11,?12,?13,?14,?15,?16)"
		      " ON CONFLICT(ino) DO UPDATE SET gen=?2, mode=?3, uid=?4, gid=?5, nlink=?6,"
		      " size=?7, rdev=?8, atime=?9, mtime=?10, ctime=?11, parent=?12, coll=?13,"
		      " objid=?14, stored=?15, data=?16",
	[S_INO_DATA_GET] = "SELECT data FROM inodes WHERE ino=?1",
	[S_INO_DATA_SET] = "UPDATE inodes SET data=?2 WHERE ino=?1",
	[S_INO_DEL] = "DELETE FROM inodes WHERE ino=?1",
	[S_INO_XDEL] = "DELETE FROM xattrs WHERE ino=?1",
	[S_INO_ITER] = "SELECT ino, gen, mode, uid, gid, nlink, size, rdev, atime, mtime, ctime,"
		       " parent, coll, objid, stored FROM inodes ORDER BY ino",
	[S_DE_GET] = "SELECT ino FROM dirents WHERE parent=?1 AND name=?2",
	[S_DE_ADD] = "INSERT INTO dirents(parent, name, ino, mode) VALUES(?1, ?2, ?3, ?4)",
	[S_DE_DEL] = "DELETE FROM dirents WHERE parent=?1 AND name=?2",
	[S_DE_MOVE] = "UPDATE dirents SET parent=?3, name=?4 WHERE parent=?1 AND name=?2",
	[S_DE_SETINO] = "UPDATE dirents SET ino=?3, mode=?4 WHERE parent=?1 AND name=?2",
	[S_DE_ANY] = "SELECT 1 FROM dirents WHERE parent=?1 LIMIT 1",
	[S_DE_LIST] = "SELECT id, name, ino, mode FROM dirents WHERE parent=?1 AND id>?2"
		      " ORDER BY id LIMIT ?3",
	[S_DE_ALL] = "SELECT parent, name, ino FROM dirents",
	[S_DE_LIST_PLUS] = "SELECT d.id, d.name, d.ino, d.mode, i.gen, i.mode, i.uid, i.gid, i.nlink,"
			   " i.size, i.rdev, i.atime, i.mtime, i.ctime, i.parent, i.coll, i.objid,"
			   " i.stored, EXISTS(SELECT 1 FROM xattrs x WHERE x.ino=d.ino)"
			   " FROM dirents d LEFT JOIN inodes i ON i.ino=d.ino"
			   " WHERE d.parent=?1 AND d.id>?2 ORDER BY d.id LIMIT ?3",
	[S_DE_FIND] = "SELECT parent, name FROM dirents WHERE ino=?1 LIMIT 1",
	[S_DE_PARENTS] = "SELECT DISTINCT parent FROM dirents WHERE ino=?1 LIMIT ?2",
	/* a range of dirents_name from a name on (vv_meta_dirent_get_many):
	 * the name in column 1, the inode in 0 (S_DE_RANGE) or as in
	 * S_DE_LIST_PLUS's row (S_DE_RANGE_PLUS) */
	[S_DE_RANGE] = "SELECT ino, name FROM dirents WHERE parent=?1 AND name>=?2 ORDER BY name",
	[S_DE_RANGE_PLUS] = "SELECT d.id, d.name, d.ino, d.mode, i.gen, i.mode, i.uid, i.gid, i.nlink,"
			    " i.size, i.rdev, i.atime, i.mtime, i.ctime, i.parent, i.coll, i.objid,"
			    " i.stored, EXISTS(SELECT 1 FROM xattrs x WHERE x.ino=d.ino)"
			    " FROM dirents d LEFT JOIN inodes i ON i.ino=d.ino"
			    " WHERE d.parent=?1 AND d.name>=?2 ORDER BY d.name",
	[S_X_GET] = "SELECT value FROM xattrs WHERE ino=?1 AND name=?2",
	[S_X_SET] = "INSERT OR REPLACE INTO xattrs(ino, name, value) VALUES(?1, ?2, ?3)",
	[S_X_DEL] = "DELETE FROM xattrs WHERE ino=?1 AND name=?2",
	[S_X_LIST] = "SELECT name FROM xattrs WHERE ino=?1 ORDER BY name",
	[S_X_ANY] = "SELECT 1 FROM xattrs WHERE ino=?1 LIMIT 1",
	[S_E_LOAD] = "SELECT fblock, chunk, off, len, slot FROM extents WHERE ino=?1 ORDER BY fblock",
	[S_E_PUT] = "INSERT OR REPLACE INTO extents(ino, fblock, chunk, off, len, slot)"
		    " VALUES(?1, ?2, ?3, ?4, ?5, ?6)",
	[S_E_TRIM_SEL] = "SELECT fblock, chunk, off, len, slot FROM extents WHERE ino=?1 AND fblock>=?2",
	[S_E_TRIM_DEL] = "DELETE FROM extents WHERE ino=?1 AND fblock>=?2",
	[S_E_ALL] = "SELECT ino, fblock, chunk, off, len, slot FROM extents ORDER BY ino, fblock",
	[S_C_GET] = "SELECT refs FROM chunks WHERE id=?1",
	[S_C_INS] = "INSERT INTO chunks(id, coll, refs, size) VALUES(?1, ?2, ?3, ?4)",
	[S_C_UPD] = "UPDATE chunks SET refs=?2 WHERE id=?1",
	[S_C_DEL] = "DELETE FROM chunks WHERE id=?1",
	[S_C_ITER] = "SELECT id, coll, refs, size FROM chunks",
	[S_C_SETREFS] = "UPDATE chunks SET refs=?2 WHERE id=?1",
	[S_C_STATS] = "SELECT count(*), coalesce(sum(size), 0) FROM chunks",
	[S_COLL_GET] = "SELECT wrapped FROM colls WHERE id=?1",
	[S_COLL_ADD] = "INSERT INTO colls(wrapped) VALUES(?1)",
	[S_COLL_DEL] = "DELETE FROM colls WHERE id=?1",
	[S_COUNT_INO] = "SELECT count(*) FROM inodes",
	/* The one test before a collection's key goes (vv_meta_coll_needed):
	 * an index probe of inodes_coll and of snap_colls_coll. */
	[S_COLL_NEEDED] = "SELECT EXISTS(SELECT 1 FROM inodes WHERE coll=?1 AND ino<>?2)"
			  " OR EXISTS(SELECT 1 FROM snap_colls WHERE coll=?1)",
	[S_COLL_IDS] = "SELECT id FROM colls WHERE id<>?1 ORDER BY id",
	[S_BEGIN] = "BEGIN",
	[S_COMMIT] = "COMMIT",
	[S_ROLLBACK] = "ROLLBACK",
	[S_COMMITS_INC] = "UPDATE kv SET v=v+1 WHERE k='commits'",
};

#define STR_(x) #x
#define STR(x) STR_(x)
/* readdir resumes at a cookie (the entry's id) in id order.  An index on
 * parent alone holds (parent, rowid) in order, so "parent=? AND id>? ORDER
 * BY id LIMIT n" is a range scan that starts at the cookie.  Without it,
 * SQLite reads every entry of the directory through dirents_name and sorts
 * them for each batch: a listing costs O(n^2).  Added in place (same
 * format 1) by vv_meta_upgrade(); SQLite maintains it in older builds too. */
#define DIRENTS_DIR_INDEX "CREATE INDEX IF NOT EXISTS dirents_dir ON dirents(parent)"
/* Whether a collection still has an inode (vv_meta_coll_needed, asked at
 * every inode's deletion) is a probe of this index, not a scan of inodes.
 * Added in place like dirents_dir. */
#define INODES_COLL_INDEX "CREATE INDEX IF NOT EXISTS inodes_coll ON inodes(coll)"

static const char schema[] =
	"CREATE TABLE kv(k TEXT PRIMARY KEY, v) WITHOUT ROWID;"
	"CREATE TABLE inodes(ino INTEGER PRIMARY KEY, gen INTEGER NOT NULL,"
	" mode INTEGER NOT NULL, uid INTEGER NOT NULL, gid INTEGER NOT NULL,"
	" nlink INTEGER NOT NULL, size INTEGER NOT NULL, rdev INTEGER NOT NULL,"
	" atime INTEGER NOT NULL, mtime INTEGER NOT NULL, ctime INTEGER NOT NULL,"
	" parent INTEGER NOT NULL, coll INTEGER NOT NULL, objid BLOB NOT NULL,"
	" stored INTEGER NOT NULL, data BLOB);"
	"CREATE TABLE dirents(id INTEGER PRIMARY KEY AUTOINCREMENT, parent INTEGER NOT NULL,"
	" name BLOB NOT NULL, ino INTEGER NOT NULL, mode INTEGER NOT NULL);"
	"CREATE UNIQUE INDEX dirents_name ON dirents(parent, name);"
	"CREATE INDEX dirents_ino ON dirents(ino);"
	DIRENTS_DIR_INDEX ";"
	INODES_COLL_INDEX ";"
	"CREATE TABLE xattrs(ino INTEGER NOT NULL, name TEXT NOT NULL, value BLOB NOT NULL,"
	" PRIMARY KEY(ino, name)) WITHOUT ROWID;"
	"CREATE TABLE extents(ino INTEGER NOT NULL, fblock INTEGER NOT NULL, chunk BLOB NOT NULL,"
	" off INTEGER NOT NULL, len INTEGER NOT NULL, slot INTEGER NOT NULL,"
	" PRIMARY KEY(ino, fblock)) WITHOUT ROWID;"
	"CREATE TABLE chunks(id BLOB PRIMARY KEY, coll INTEGER NOT NULL, refs INTEGER NOT NULL,"
	" size INTEGER NOT NULL) WITHOUT ROWID;"
	"CREATE TABLE colls(id INTEGER PRIMARY KEY, wrapped BLOB NOT NULL);"
	"INSERT INTO kv VALUES('format', " STR(VV_META_FORMAT) "), ('next_ino', 2), ('commits', 0);";

/* The number of inodes, kept by triggers in the transaction that adds or
 * removes one, so statfs needs no count(*) over the whole table (O(n):
 * 10 ms at 10k inodes, paid by every `df` and every query's fstatfs).  An
 * upsert that updates is no insert; a REPLACE would fire no delete
 * trigger, and none is used on inodes. */
static int inode_count_schema(struct vv_meta *m)
{
	return meta_exec(m, "CREATE TABLE IF NOT EXISTS inode_count(n INTEGER NOT NULL);"
			 "DELETE FROM inode_count;"
			 "INSERT INTO inode_count(n) SELECT count(*) FROM inodes;"
			 "CREATE TRIGGER IF NOT EXISTS inode_count_add AFTER INSERT ON inodes"
			 " BEGIN UPDATE inode_count SET n=n+1; END;"
			 "CREATE TRIGGER IF NOT EXISTS inode_count_del AFTER DELETE ON inodes"
			 " BEGIN UPDATE inode_count SET n=n-1; END;");
}

/* Feature files' tables (meta_sql_int.h), created at create and by
 * vv_meta_upgrade() for older stores. */
static const struct meta_feature features[] = {
	{ "roles", meta_role_schema },
	{ "snap_colls", meta_snap_schema },
	{ "snap_files", meta_snap_file_schema },
	{ "snap_tags", meta_snap_tags_schema },
	{ "users", meta_user_schema },
	{ "retired_uids", meta_user_retired_schema },
	{ "coll_admins", meta_grant_schema },
	{ "trash", meta_trash_schema },
	{ "trash_parts", meta_trash_migrate },     /* the layout without entries */
	{ "inode_count", inode_count_schema },
	{ NULL, NULL },
};

/* Keep a deferred transaction open between commits: every query then runs
 * inside it, and SQLite does not re-validate its page cache against the
 * files (an fstat and header read) for each statement. */
static void read_txn(struct vv_meta *m)
{
	m->reading = sqlite3_exec(m->db, "BEGIN", NULL, NULL, NULL) == SQLITE_OK;
}

static int err(struct vv_meta *m, int rc)
{
	return vv_metavfs_err(m->db, rc);
}

/* The prepared statement for id, reset and with bindings cleared. */
sqlite3_stmt *meta_stmt(struct vv_meta *m, int id)
{
	sqlite3_stmt *s = m->st[id];

	if (!s) {
		if (sqlite3_prepare_v3(m->db, meta_core_sql[id], -1, SQLITE_PREPARE_PERSISTENT, &s, NULL) != SQLITE_OK) {
			vv_log(VV_LOG_ERR, "meta: cannot prepare statement %d: %s", id, sqlite3_errmsg(m->db));
			return NULL;
		}
		m->st[id] = s;
	}
	sqlite3_reset(s);
	sqlite3_clear_bindings(s);
	return s;
}

/* Run a statement that returns no rows. */
static int run(struct vv_meta *m, sqlite3_stmt *s)
{
	int rc = sqlite3_step(s);

	sqlite3_reset(s);
	if (rc == SQLITE_DONE || rc == SQLITE_ROW)
		return 0;
	return err(m, rc);
}

/* Step expecting one row: 0 (row), VV_ENOENT (none), or an error. */
static int row(struct vv_meta *m, sqlite3_stmt *s)
{
	int rc = sqlite3_step(s);

	if (rc == SQLITE_ROW)
		return 0;
	sqlite3_reset(s);
	if (rc == SQLITE_DONE)
		return VV_ENOENT;
	return err(m, rc);
}

sqlite3_stmt *meta_sql(struct vv_meta *m, const char *text)
{
	sqlite3_stmt *s = NULL;

	for (size_t i = 0; i < m->nx; i++) {
		if (m->x[i].sql == text) {
			s = m->x[i].s;
			sqlite3_reset(s);
			sqlite3_clear_bindings(s);
			return s;
		}
	}
	if (m->nx == META_XSTMT_MAX) {
		vv_log(VV_LOG_ERR, "meta: more than %d feature statements", META_XSTMT_MAX);
		return NULL;
	}
	if (sqlite3_prepare_v3(m->db, text, -1, SQLITE_PREPARE_PERSISTENT, &s, NULL) != SQLITE_OK) {
		vv_log(VV_LOG_ERR, "meta: cannot prepare \"%.60s\": %s", text, sqlite3_errmsg(m->db));
		return NULL;
	}
	m->x[m->nx].sql = text;
	m->x[m->nx].s = s;
	m->nx++;
	return s;
}

sqlite3 *meta_db(struct vv_meta *m)
{
	return m->db;
}

struct meta_snapc **meta_snapc_of(struct vv_meta *m)
{
	return &m->snapc;
}

/* Frames in the WAL after each commit of the writer's connection (the hook
 * that replaces SQLite's automatic checkpoint). */
static int wal_hook(void *arg, sqlite3 *db, const char *name, int frames)
{
	struct vv_meta *m = arg;

	(void)db;
	(void)name;
	m->wal_frames = frames > 0 ? (uint32_t)frames : 0;
	return SQLITE_OK;
}

int vv_meta_ckpt_open(struct vv_meta *m)
{
	int r;

	if (m->ro || !m->ckpt_mu_ok)
		return VV_EINVAL;
	if (m->peer)
		return 0;
	if ((r = vv_metavfs_open_peer(m->db, &m->peer)) < 0) {
		vv_log(VV_LOG_WARN, "meta: no checkpointer connection (%s); commits checkpoint "
		       "the WAL themselves", vv_strerror(r));
		return r;
	}
	sqlite3_wal_hook(m->db, wal_hook, m);
	return 0;
}

void vv_meta_ckpt_close(struct vv_meta *m)
{
	if (!m->peer)
		return;
	pthread_mutex_lock(&m->ckpt_mu);
	vv_metavfs_close_peer(m->peer);
	m->peer = NULL;
	pthread_mutex_unlock(&m->ckpt_mu);
	sqlite3_wal_autocheckpoint(m->db, 1000);
}

uint32_t vv_meta_wal_frames(const struct vv_meta *m)
{
	return m->wal_frames;
}

int vv_meta_ckpt_pass(struct vv_meta *m, void (*hook)(void *), void *ctx, int *log, int *done)
{
	int rc;

	*log = *done = 0;
	if (!m->peer)
		return VV_EINVAL;
	pthread_mutex_lock(&m->ckpt_mu);
	if (hook)
		hook(ctx);
	rc = sqlite3_wal_checkpoint_v2(m->peer, "main", SQLITE_CHECKPOINT_PASSIVE, log, done);
	pthread_mutex_unlock(&m->ckpt_mu);
	if (rc == SQLITE_BUSY)
		return VV_EBUSY;
	if (rc != SQLITE_OK) {
		if (!m->ckpt_failing)
			vv_log(VV_LOG_WARN, "meta: background checkpoint: %s (the WAL keeps the "
			       "changes; tried again after later commits)", sqlite3_errmsg(m->peer));
		m->ckpt_failing = true;
		rc = vv_metavfs_err(m->peer, rc);
		return rc < 0 ? rc : VV_EIO;
	}
	if (m->ckpt_failing)
		vv_log(VV_LOG_INFO, "meta: background checkpoints work again");
	m->ckpt_failing = false;
	return 0;
}

int vv_meta_ckpt_finish(struct vv_meta *m)
{
	int rc, log = 0, done = 0;

	if (!m->peer || m->txn)
		return 1;
	if (pthread_mutex_trylock(&m->ckpt_mu) != 0)
		return 1;
	/* The deferred read transaction would hold the frames it reads, and
	 * the WAL starts over only for a reader that began after them all.
	 * It cannot end while a statement runs: later, then. */
	if (m->reading) {
		if (sqlite3_exec(m->db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK) {
			pthread_mutex_unlock(&m->ckpt_mu);
			return 1;
		}
		m->reading = false;
	}
	rc = sqlite3_wal_checkpoint_v2(m->db, "main", SQLITE_CHECKPOINT_PASSIVE, &log, &done);
	pthread_mutex_unlock(&m->ckpt_mu);
	read_txn(m);
	if (rc != SQLITE_OK && rc != SQLITE_BUSY) {
		vv_log(VV_LOG_WARN, "meta: checkpoint: %s (the WAL keeps the changes)", sqlite3_errmsg(m->db));
		return VV_EIO;
	}
	return rc == SQLITE_OK && log == done ? 0 : VV_EBUSY;
}

void meta_ckpt_hold(struct vv_meta *m, bool hold)
{
	if (!m->ckpt_mu_ok)
		return;
	if (hold)
		pthread_mutex_lock(&m->ckpt_mu);
	else
		pthread_mutex_unlock(&m->ckpt_mu);
}

int meta_checkpoint(struct vv_meta *m)
{
	int rc, busy = 1;
	sqlite3_stmt *s = NULL;

	if (m->txn)
		return VV_EBUSY;
	/* The deferred read transaction would hold the WAL's frames. */
	if (m->reading) {
		sqlite3_exec(m->db, "COMMIT", NULL, NULL, NULL);
		m->reading = false;
	}
	rc = sqlite3_prepare_v2(m->db, "PRAGMA wal_checkpoint(TRUNCATE)", -1, &s, NULL);
	if (rc == SQLITE_OK && (rc = sqlite3_step(s)) == SQLITE_ROW) {
		busy = sqlite3_column_int(s, 0);
		rc = SQLITE_OK;
	}
	sqlite3_finalize(s);
	read_txn(m);
	if (rc != SQLITE_OK)
		return err(m, rc);
	if (busy) {
		vv_log(VV_LOG_ERR, "meta: the WAL could not be checkpointed (busy)");
		return VV_EBUSY;
	}
	return 0;
}

int vv_meta_shred(struct vv_meta *m)
{
	int rc, log = 0, done = 0;

	if (m->ro)
		return VV_EROFS;
	if (m->txn)
		return VV_EBUSY;
	if (m->ckpt_mu_ok && pthread_mutex_trylock(&m->ckpt_mu) != 0)
		return VV_EBUSY;
	/* The deferred read transaction would hold the WAL's frames; it
	 * cannot end while a statement runs: later, then. */
	if (m->reading) {
		if (sqlite3_exec(m->db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK) {
			if (m->ckpt_mu_ok)
				pthread_mutex_unlock(&m->ckpt_mu);
			return VV_EBUSY;
		}
		m->reading = false;
	}
	rc = sqlite3_wal_checkpoint_v2(m->db, "main", SQLITE_CHECKPOINT_TRUNCATE, &log, &done);
	if (m->ckpt_mu_ok)
		pthread_mutex_unlock(&m->ckpt_mu);
	read_txn(m);
	if (rc == SQLITE_BUSY)
		return VV_EBUSY;
	if (rc != SQLITE_OK) {
		vv_log(VV_LOG_WARN, "meta: shredding checkpoint: %s", sqlite3_errmsg(m->db));
		return err(m, rc);
	}
	m->wal_frames = 0;
	return 0;
}

int meta_run(struct vv_meta *m, sqlite3_stmt *s)
{
	return run(m, s);
}

int meta_row(struct vv_meta *m, sqlite3_stmt *s)
{
	return row(m, s);
}

int meta_err(struct vv_meta *m, int rc)
{
	return err(m, rc);
}

int meta_exec(struct vv_meta *m, const char *text)
{
	char *emsg = NULL;
	int rc = sqlite3_exec(m->db, text, NULL, NULL, &emsg);

	if (rc != SQLITE_OK) {
		vv_log(VV_LOG_ERR, "meta: \"%.60s\": %s", text, emsg ? emsg : "?");
		sqlite3_free(emsg);
		return err(m, rc);
	}
	return 0;
}

bool meta_readonly(struct vv_meta *m)
{
	return m->ro;
}

bool meta_has_table(struct vv_meta *m, const char *name)
{
	sqlite3_stmt *s = NULL;
	bool have;

	if (sqlite3_prepare_v2(m->db, "SELECT 1 FROM sqlite_master WHERE type='table' AND name=?1",
			       -1, &s, NULL) != SQLITE_OK)
		return false;
	sqlite3_bind_text(s, 1, name, -1, SQLITE_STATIC);
	have = sqlite3_step(s) == SQLITE_ROW;
	sqlite3_finalize(s);
	return have;
}

/* Create the tables of every feature whose first table is missing. */
static int feature_schemas(struct vv_meta *m, bool *ran)
{
	int r = 0;

	*ran = false;
	for (const struct meta_feature *f = features; f->schema && r == 0; f++) {
		if (meta_has_table(m, f->first_table))
			continue;
		r = f->schema(m);
		*ran = true;
	}
	return r;
}

int vv_meta_open(const char *path, const uint8_t key[32], uint32_t page_size, unsigned flags,
		 struct vv_meta **out)
{
	struct vv_meta *m;
	char *emsg = NULL;
	uint64_t fmt;
	bool create = flags & VV_META_CREATE;
	int r;

	*out = NULL;
	m = calloc(1, sizeof(*m));
	if (!m)
		return VV_ENOMEM;
	m->ro = flags & VV_META_READONLY;
	m->ckpt_mu_ok = pthread_mutex_init(&m->ckpt_mu, NULL) == 0;
	if ((r = vv_metavfs_open(path, key, page_size,
				 (create ? VV_METAVFS_CREATE : 0) |
				 ((flags & VV_META_READONLY) ? VV_METAVFS_READONLY : 0), &m->db)) < 0)
		goto fail;
	/* Commits write their WAL frames without syncing them (NORMAL: SQLite
	 * stays consistent across a crash, and syncs the WAL before every
	 * checkpoint); vv_meta_commit then syncs the WAL itself, and the vault's
	 * group commit syncs it outside its mutex (vv_meta_commit_written +
	 * vv_meta_wal_fd).  The durability story is told in vault_commit.c. */
	if (sqlite3_exec(m->db, "PRAGMA synchronous=NORMAL; PRAGMA journal_size_limit=4194304",
			 NULL, NULL, &emsg) != SQLITE_OK) {
		vv_log(VV_LOG_ERR, "meta: cannot set synchronous=NORMAL: %s", emsg ? emsg : "?");
		sqlite3_free(emsg);
		r = VV_EIO;
		goto fail;
	}
	/* A read-only open may hold a stand-in table in its temp schema
	 * (vv_meta_trash_ready); the VFS opens no temporary files, and the
	 * setting cannot change once a transaction is open. */
	if (m->ro && sqlite3_exec(m->db, "PRAGMA temp_store=MEMORY", NULL, NULL, NULL) != SQLITE_OK) {
		r = VV_EIO;
		goto fail;
	}
	if (create) {
		if (sqlite3_exec(m->db, schema, NULL, NULL, &emsg) != SQLITE_OK) {
			vv_log(VV_LOG_ERR, "meta: cannot create schema: %s", emsg ? emsg : "?");
			sqlite3_free(emsg);
			r = VV_EIO;
			goto fail;
		}
		if ((r = feature_schemas(m, &(bool){ false })) < 0)
			goto fail;
	}
	if ((r = vv_meta_kv_get_u64(m, "format", &fmt)) < 0) {
		vv_log(VV_LOG_ERR, "meta: %s has no format record", path);
		r = r == VV_ENOENT ? VV_ECORRUPT : r;
		goto fail;
	}
	if (fmt != VV_META_FORMAT) {
		vv_log(VV_LOG_ERR, "meta: %s has format %llu, this build reads %d", path,
		       (unsigned long long)fmt, VV_META_FORMAT);
		r = VV_EFORMAT;
		goto fail;
	}
	read_txn(m);
	*out = m;
	return 0;
fail:
	vv_meta_close(m);
	return r;
}

/* An index of the core schema that stores made before it existed lack:
 * made once, by name. */
static int upgrade_index(struct vv_meta *m, const char *name, const char *sql, const char *what,
			 bool *ran)
{
	sqlite3_stmt *s = NULL;
	int rc;

	rc = sqlite3_prepare_v2(m->db, "SELECT 1 FROM sqlite_master WHERE type='index'"
				" AND name=?1", -1, &s, NULL);
	if (rc != SQLITE_OK)
		return err(m, rc);
	sqlite3_bind_text(s, 1, name, -1, SQLITE_STATIC);
	rc = sqlite3_step(s);
	sqlite3_finalize(s);
	if (rc == SQLITE_ROW)
		return 0;
	if (rc != SQLITE_DONE)
		return err(m, rc);
	vv_log(VV_LOG_INFO, "meta: adding the %s index (once per store)", what);
	*ran = true;
	rc = sqlite3_exec(m->db, sql, NULL, NULL, NULL);
	return rc == SQLITE_OK ? 0 : err(m, rc);
}

int vv_meta_upgrade(struct vv_meta *m)
{
	bool idx = false, feat = false;
	int r;

	/* In a commit of its own, and never fatal: a full disk must not stop a
	 * mount (that would block deletions, invariant 6); the next writable
	 * open tries again.  Features read a missing table as empty. */
	if ((r = vv_meta_begin(m)) < 0)
		return r;
	if ((r = upgrade_index(m, "dirents_dir", DIRENTS_DIR_INDEX, "directory-listing", &idx)) == 0 &&
	    (r = upgrade_index(m, "inodes_coll", INODES_COLL_INDEX, "collection", &idx)) == 0 &&
	    (r = feature_schemas(m, &feat)) == 0)
		/* after the features: the trash table exists by then */
		r = upgrade_index(m, "trash_ino", META_TRASH_INO_INDEX, "trash-by-inode", &idx);
	if (r == 0 && (idx || feat))
		r = vv_meta_commit(m);
	else if (r == 0)
		r = vv_meta_rollback(m);
	if (r < 0) {
		vv_log(VV_LOG_WARN, "meta: cannot upgrade the store's schema (%s); the next "
		       "writable mount tries again", vv_strerror(r));
		vv_meta_rollback(m);
	}
	return 0;
}

int vv_meta_wal_discarded(struct vv_meta *m)
{
	return vv_metavfs_wal_discarded(m->db);
}

int vv_meta_close(struct vv_meta *m)
{
	int r = 0;

	if (!m)
		return 0;
	if (m->txn)
		r = vv_meta_commit(m);
	if (m->reading && !m->txn) {
		sqlite3_exec(m->db, "COMMIT", NULL, NULL, NULL);
		m->reading = false;
	}
	meta_snap_files_close(m);
	/* Before the writer's final checkpoint: it must be the last
	 * connection for SQLite to remove the WAL. */
	vv_meta_ckpt_close(m);
	for (int i = 0; i < S_NSTMT; i++)
		sqlite3_finalize(m->st[i]);
	for (size_t i = 0; i < m->nx; i++)
		sqlite3_finalize(m->x[i].s);
	if (m->db) {
		int r2 = vv_metavfs_close(m->db);
		if (r == 0)
			r = r2;
	}
	if (m->ckpt_mu_ok)
		pthread_mutex_destroy(&m->ckpt_mu);
	free(m);
	return r;
}

int vv_meta_begin(struct vv_meta *m)
{
	int r;

	if (m->txn)
		return 0;
	if (m->reading) {
		m->txn = true;               /* the open BEGIN becomes the write txn */
		return 0;
	}
	STMT(m, S_BEGIN);
	if ((r = run(m, s)) < 0)
		return r;
	m->txn = true;
	m->reading = true;
	return 0;
}

bool vv_meta_in_txn(const struct vv_meta *m)
{
	return m->txn;
}

int vv_meta_commit_written(struct vv_meta *m)
{
	int r;

	if (!m->txn)
		return 0;
	{
		STMT(m, S_COMMITS_INC);
		if ((r = run(m, s)) < 0)
			return r;
	}
	{
		STMT(m, S_COMMIT);
		r = run(m, s);
	}
	if (r < 0) {
		vv_log(VV_LOG_ERR, "meta: commit failed: %s", sqlite3_errmsg(m->db));
		if (sqlite3_get_autocommit(m->db))
			m->txn = m->reading = false;
		return r;
	}
	m->txn = false;
	read_txn(m);
	return 0;
}

int vv_meta_wal_fd(struct vv_meta *m)
{
	return vv_metavfs_wal_fd(m->db);
}

int vv_meta_commit(struct vv_meta *m)
{
	bool had = m->txn;
	int r, fd;

	if ((r = vv_meta_commit_written(m)) < 0 || !had)
		return r;
	if ((fd = vv_meta_wal_fd(m)) < 0)
		return fd;
	if (vv_os_fsync(fd) < 0) {
		vv_log(VV_LOG_ERR, "meta: cannot sync the WAL");
		return VV_EIO;
	}
	return 0;
}

int vv_meta_rollback(struct vv_meta *m)
{
	int r;

	if (!m->txn)
		return 0;
	STMT(m, S_ROLLBACK);
	r = run(m, s);
	m->txn = false;
	read_txn(m);
	return r;
}

int vv_meta_kv_get_u64(struct vv_meta *m, const char *k, uint64_t *v)
{
	int r;
	STMT(m, S_KV_GET);

	sqlite3_bind_text(s, 1, k, -1, SQLITE_STATIC);
	if ((r = row(m, s)) < 0)
		return r;
	*v = (uint64_t)sqlite3_column_int64(s, 0);
	sqlite3_reset(s);
	return 0;
}

int vv_meta_kv_set_u64(struct vv_meta *m, const char *k, uint64_t v)
{
	STMT(m, S_KV_SET);

	sqlite3_bind_text(s, 1, k, -1, SQLITE_STATIC);
	sqlite3_bind_int64(s, 2, i64(v));
	return run(m, s);
}

int vv_meta_kv_get_blob(struct vv_meta *m, const char *k, void *buf, size_t cap, size_t *len)
{
	int r, n;
	STMT(m, S_KV_GET);

	sqlite3_bind_text(s, 1, k, -1, SQLITE_STATIC);
	if ((r = row(m, s)) < 0)
		return r;
	n = sqlite3_column_bytes(s, 0);
	if ((size_t)n > cap) {
		sqlite3_reset(s);
		return VV_ERANGE;
	}
	if (n)
		memcpy(buf, sqlite3_column_blob(s, 0), (size_t)n);
	*len = (size_t)n;
	sqlite3_reset(s);
	return 0;
}

int vv_meta_kv_set_blob(struct vv_meta *m, const char *k, const void *buf, size_t len)
{
	STMT(m, S_KV_SET);

	sqlite3_bind_text(s, 1, k, -1, SQLITE_STATIC);
	sqlite3_bind_blob(s, 2, buf, (int)len, SQLITE_STATIC);
	return run(m, s);
}

int vv_meta_counts(struct vv_meta *m, uint64_t *inodes)
{
	sqlite3_stmt *s;
	int r;

	/* a read-only open of an older store has no kept count */
	if (!m->icount_known) {
		m->icount = meta_has_table(m, "inode_count");
		m->icount_known = true;
	}
	s = m->icount ? meta_sql(m, "SELECT n FROM inode_count") : meta_stmt(m, S_COUNT_INO);
	if (!s)
		return VV_EIO;
	if ((r = row(m, s)) < 0)
		return r;
	*inodes = (uint64_t)sqlite3_column_int64(s, 0);
	sqlite3_reset(s);
	return 0;
}

int vv_meta_counts_set(struct vv_meta *m, uint64_t inodes)
{
	sqlite3_stmt *s;

	if (!meta_has_table(m, "inode_count"))
		return 0;                    /* an older store: counted at each statfs */
	if (!(s = meta_sql(m, "UPDATE inode_count SET n=?1")))
		return VV_EIO;
	sqlite3_bind_int64(s, 1, (sqlite3_int64)inodes);
	return meta_run(m, s);
}

void vv_meta_work(struct vv_meta *m, uint64_t *vm_steps, uint64_t *sorts)
{
	*vm_steps = *sorts = 0;
	for (int i = 0; i < S_NSTMT; i++) {
		if (!m->st[i])
			continue;
		*vm_steps += (uint64_t)sqlite3_stmt_status(m->st[i], SQLITE_STMTSTATUS_VM_STEP, 1);
		*sorts += (uint64_t)sqlite3_stmt_status(m->st[i], SQLITE_STMTSTATUS_SORT, 1);
	}
}

uint64_t vv_meta_runs(struct vv_meta *m)
{
	uint64_t n = 0;

	for (int i = 0; i < S_NSTMT; i++)
		if (m->st[i])
			n += (uint64_t)sqlite3_stmt_status(m->st[i], SQLITE_STMTSTATUS_RUN, 1);
	return n;
}

int vv_meta_integrity(struct vv_meta *m, void (*cb)(void *ctx, const char *line), void *ctx)
{
	sqlite3_stmt *s = NULL;
	int rc, r = 0;

	rc = sqlite3_prepare_v2(m->db, "PRAGMA integrity_check", -1, &s, NULL);
	if (rc != SQLITE_OK)
		return err(m, rc);
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		const char *line = (const char *)sqlite3_column_text(s, 0);
		if (line && strcmp(line, "ok") != 0) {
			r = VV_ECORRUPT;
			if (cb)
				cb(ctx, line);
		}
	}
	if (rc != SQLITE_DONE) {
		if (cb)
			cb(ctx, sqlite3_errmsg(m->db));
		r = err(m, rc);
		if (r == 0 || r == VV_EIO)
			r = VV_ECORRUPT;
	}
	sqlite3_finalize(s);
	return r;
}
