/*
 * meta_user.c - the vault users' and API keys' tables of meta.db
 * (meta_sql_int.h; schema in meta_int.h and docs/format.md).
 *
 *   users(id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT UNIQUE, uid,
 *         pwhash TEXT NULL, created, changed)
 *   user_roles(user, role)                     PRIMARY KEY(user, role)
 *   api_keys(id TEXT PRIMARY KEY, user, uname, hash BLOB(32), label,
 *            created, expires, last_used, revoked, allow)   INDEX(user)
 *   retired_uids(uid INTEGER PRIMARY KEY)      uids of deleted users
 *
 * meta.db is encrypted page by page, so names, uids, roles, password
 * hashes and key hashes are never on disk in the clear.  Like the rest of
 * the module every function runs under the caller's lock (v->mu) and
 * writes inside the open transaction (vv_meta_begin); the multi-row
 * changes are all or nothing through a savepoint.
 */
#include <stdio.h>
#include <string.h>

#include "meta_sql_int.h"
#include "vecvault/error.h"

int meta_user_schema(struct vv_meta *m)
{
	return meta_exec(m,
		"CREATE TABLE IF NOT EXISTS users(id INTEGER PRIMARY KEY AUTOINCREMENT,"
		" name TEXT NOT NULL UNIQUE, uid INTEGER NOT NULL, pwhash TEXT,"
		" created INTEGER NOT NULL, changed INTEGER NOT NULL);"
		"CREATE TABLE IF NOT EXISTS user_roles(user INTEGER NOT NULL, role TEXT NOT NULL,"
		" PRIMARY KEY(user, role)) WITHOUT ROWID;"
		"CREATE TABLE IF NOT EXISTS api_keys(id TEXT PRIMARY KEY, user INTEGER NOT NULL,"
		" uname TEXT NOT NULL, hash BLOB NOT NULL, label TEXT NOT NULL,"
		" created INTEGER NOT NULL, expires INTEGER NOT NULL, last_used INTEGER NOT NULL,"
		" revoked INTEGER NOT NULL, allow TEXT NOT NULL) WITHOUT ROWID;"
		"CREATE INDEX IF NOT EXISTS api_keys_user ON api_keys(user);");
}

/* The uids of deleted vault users: the files they made keep them, so the
 * allocator never hands one out again (vv_meta_user_uid_taken), or the
 * next user added would own them.  A store from before this table knows
 * the uids of users deleted then only from their files: every uid that
 * owns an inode (the live tree, the trash and every snapshot: a snapshot's
 * files keep their owners, and .snapshots shows them through the same
 * check) and that no user has is retired once, when the table is made (a
 * scan of inodes and of each snapshot's inodes at that upgrade).  Retiring
 * a local account's uid costs nothing: the allocator skips those anyway. */
int meta_user_retired_schema(struct vv_meta *m)
{
	int r = meta_exec(m, "CREATE TABLE IF NOT EXISTS retired_uids(uid INTEGER PRIMARY KEY);");

	return r < 0 ? r : vv_meta_user_retire_owners(m);
}

static const char q_retire_one[] =
	"INSERT OR IGNORE INTO retired_uids(uid) SELECT ?1 WHERE ?1 NOT IN (SELECT uid FROM users)";

static int retire_one(void *ctx, uint32_t uid)
{
	struct vv_meta *m = ctx;
	sqlite3_stmt *s = meta_sql(m, q_retire_one);

	if (!s)
		return VV_EIO;
	sqlite3_bind_int64(s, 1, uid);
	return meta_run(m, s);
}

int vv_meta_user_retire_owners(struct vv_meta *m)
{
	int r = meta_exec(m, "INSERT OR IGNORE INTO retired_uids(uid) SELECT DISTINCT uid FROM inodes"
			  " WHERE uid NOT IN (SELECT uid FROM users);");

	return r < 0 ? r : vv_meta_snap_owners(m, retire_one, m);
}

#define USER_COLS "id, name, uid, pwhash IS NOT NULL, created, changed"
#define KEY_COLS "id, user, uname, hash, label, created, expires, last_used, revoked, allow"

/* A text column into buf; VV_ECORRUPT if it does not fit (never cut). */
static int text(sqlite3_stmt *s, int col, char *buf, size_t cap)
{
	const unsigned char *t = sqlite3_column_text(s, col);
	size_t n = (size_t)sqlite3_column_bytes(s, col);

	if (n >= cap)
		return VV_ECORRUPT;
	memcpy(buf, t ? (const char *)t : "", t ? n : 0);
	buf[t ? n : 0] = '\0';
	return 0;
}

static int changes(sqlite3_stmt *s)
{
	return sqlite3_changes(sqlite3_db_handle(s));
}

bool vv_meta_user_ready(struct vv_meta *m)
{
	return meta_has_table(m, "users");
}

static int user_row(sqlite3_stmt *s, struct vv_user_row *r)
{
	memset(r, 0, sizeof(*r));
	r->id = sqlite3_column_int64(s, 0);
	r->uid = (uint32_t)sqlite3_column_int64(s, 2);
	r->has_password = sqlite3_column_int(s, 3) != 0;
	r->created = sqlite3_column_int64(s, 4);
	r->changed = sqlite3_column_int64(s, 5);
	return text(s, 1, r->name, sizeof(r->name));
}

int vv_meta_user_get(struct vv_meta *m, const char *name, struct vv_user_row *r)
{
	sqlite3_stmt *s;
	int ret;

	if (!vv_meta_user_ready(m))
		return VV_ENOENT;
	if (!(s = meta_sql(m, "SELECT " USER_COLS " FROM users WHERE name = ?1")))
		return VV_EIO;
	sqlite3_bind_text(s, 1, name, -1, SQLITE_STATIC);
	if ((ret = meta_row(m, s)) < 0)
		return ret;
	ret = user_row(s, r);
	sqlite3_reset(s);
	return ret;
}

int vv_meta_user_pwhash(struct vv_meta *m, int64_t id, char *buf, size_t cap)
{
	sqlite3_stmt *s;
	int ret;

	buf[0] = '\0';
	if (!(s = meta_sql(m, "SELECT pwhash FROM users WHERE id = ?1 AND pwhash IS NOT NULL")))
		return VV_EIO;
	sqlite3_bind_int64(s, 1, id);
	if ((ret = meta_row(m, s)) < 0)
		return ret;
	ret = text(s, 0, buf, cap);
	sqlite3_reset(s);
	return ret;
}

/* Savepoints make a multi-row change all or nothing inside the vault's
 * long transaction. */
static int sp(struct vv_meta *m, const char *what, int ret)
{
	char sql[64];

	if (ret < 0) {
		snprintf(sql, sizeof(sql), "ROLLBACK TO %s", what);
		meta_exec(m, sql);
	}
	snprintf(sql, sizeof(sql), "RELEASE %s", what);
	meta_exec(m, sql);
	return ret;
}

static int role_add(struct vv_meta *m, int64_t id, const char *role)
{
	sqlite3_stmt *s = meta_sql(m, "INSERT OR IGNORE INTO user_roles(user, role) VALUES(?1, ?2)");

	if (!s)
		return VV_EIO;
	sqlite3_bind_int64(s, 1, id);
	sqlite3_bind_text(s, 2, role, -1, SQLITE_STATIC);
	return meta_run(m, s);
}

int vv_meta_user_add(struct vv_meta *m, struct vv_user_row *r, const char *pwhash,
		     const char *const *roles, size_t nroles)
{
	sqlite3_stmt *s;
	int ret;

	if ((ret = meta_exec(m, "SAVEPOINT user_add")) < 0)
		return ret;
	if (!(s = meta_sql(m, "INSERT INTO users(name, uid, pwhash, created, changed)"
			   " VALUES(?1, ?2, ?3, ?4, ?4)"))) {
		ret = VV_EIO;
		goto out;
	}
	sqlite3_bind_text(s, 1, r->name, -1, SQLITE_STATIC);
	sqlite3_bind_int64(s, 2, r->uid);
	if (pwhash)
		sqlite3_bind_text(s, 3, pwhash, -1, SQLITE_STATIC);
	sqlite3_bind_int64(s, 4, r->created);
	if ((ret = meta_run(m, s)) < 0)
		goto out;
	r->id = sqlite3_last_insert_rowid(sqlite3_db_handle(s));
	r->changed = r->created;
	r->has_password = pwhash != NULL;
	for (size_t i = 0; i < nroles && ret == 0; i++)
		ret = role_add(m, r->id, roles[i]);
out:
	return sp(m, "user_add", ret);
}

/* Run sql binding ?1 = id and, if it has one, ?2 = now; *n: rows changed. */
static int by_id(struct vv_meta *m, const char *sql, int64_t id, int64_t now, int *n)
{
	sqlite3_stmt *s = meta_sql(m, sql);
	int ret;

	if (!s)
		return VV_EIO;
	sqlite3_bind_int64(s, 1, id);
	if (sqlite3_bind_parameter_count(s) >= 2)
		sqlite3_bind_int64(s, 2, now);
	ret = meta_run(m, s);
	if (n)
		*n = changes(s);
	return ret;
}

static const char sql_user_revoke[] =
	"UPDATE api_keys SET revoked = ?2 WHERE user = ?1 AND revoked = 0";
static const char sql_user_unrole[] = "DELETE FROM user_roles WHERE user = ?1";
static const char sql_user_retire[] =
	"INSERT OR IGNORE INTO retired_uids(uid) SELECT uid FROM users WHERE id = ?1";
static const char sql_user_del[] = "DELETE FROM users WHERE id = ?1";
static const char sql_user_touch[] = "UPDATE users SET changed = ?2 WHERE id = ?1";

int vv_meta_user_del(struct vv_meta *m, int64_t id, int64_t now)
{
	int ret, n = 0;

	if ((ret = meta_exec(m, "SAVEPOINT user_del")) < 0)
		return ret;
	if ((ret = by_id(m, sql_user_revoke, id, now, NULL)) == 0 &&
	    (ret = by_id(m, sql_user_unrole, id, 0, NULL)) == 0 &&
	    (!meta_has_table(m, "retired_uids") ||
	     (ret = by_id(m, sql_user_retire, id, 0, NULL)) == 0) &&
	    (ret = by_id(m, sql_user_del, id, 0, &n)) == 0 && n == 0)
		ret = VV_ENOENT;
	return sp(m, "user_del", ret);
}

int vv_meta_user_set_pw(struct vv_meta *m, int64_t id, const char *pwhash, int64_t now)
{
	sqlite3_stmt *s = meta_sql(m, "UPDATE users SET pwhash = ?2, changed = ?3 WHERE id = ?1");
	int ret;

	if (!s)
		return VV_EIO;
	sqlite3_bind_int64(s, 1, id);
	sqlite3_bind_text(s, 2, pwhash, -1, SQLITE_STATIC);
	sqlite3_bind_int64(s, 3, now);
	if ((ret = meta_run(m, s)) == 0 && changes(s) == 0)
		ret = VV_ENOENT;
	return ret;
}

int vv_meta_user_role(struct vv_meta *m, int64_t id, const char *role, bool add, int64_t now)
{
	sqlite3_stmt *s;
	int ret;

	if ((ret = meta_exec(m, "SAVEPOINT user_role")) < 0)
		return ret;
	if (add) {
		s = meta_sql(m, "INSERT OR IGNORE INTO user_roles(user, role) VALUES(?1, ?2)");
	} else {
		s = meta_sql(m, "DELETE FROM user_roles WHERE user = ?1 AND role = ?2");
	}
	if (!s) {
		ret = VV_EIO;
		goto out;
	}
	sqlite3_bind_int64(s, 1, id);
	sqlite3_bind_text(s, 2, role, -1, SQLITE_STATIC);
	if ((ret = meta_run(m, s)) < 0)
		goto out;
	if (changes(s) == 0) {
		ret = add ? VV_EEXIST : VV_ENOENT;
		goto out;
	}
	ret = by_id(m, sql_user_touch, id, now, NULL);
out:
	return sp(m, "user_role", ret);
}

int vv_meta_user_roles(struct vv_meta *m, int64_t id,
		       int (*cb)(void *ctx, const char *role), void *ctx)
{
	sqlite3_stmt *s;
	int rc, ret = 0;

	if (!(s = meta_sql(m, "SELECT role FROM user_roles WHERE user = ?1 ORDER BY role")))
		return VV_EIO;
	sqlite3_bind_int64(s, 1, id);
	while (ret == 0 && (rc = sqlite3_step(s)) == SQLITE_ROW) {
		const unsigned char *t = sqlite3_column_text(s, 0);

		ret = cb(ctx, t ? (const char *)t : "");
	}
	if (ret == 0 && rc != SQLITE_DONE)
		ret = meta_err(m, rc);
	sqlite3_reset(s);
	return ret;
}

int vv_meta_role_holders(struct vv_meta *m, const char *role, uint64_t *n, char *first,
			 size_t cap)
{
	sqlite3_stmt *s;
	int rc, ret = 0;

	*n = 0;
	if (cap)
		first[0] = '\0';
	if (!vv_meta_user_ready(m))
		return 0;
	if (!(s = meta_sql(m, "SELECT u.name FROM user_roles r JOIN users u ON u.id = r.user "
			   "WHERE r.role = ?1 ORDER BY u.name")))
		return VV_EIO;
	sqlite3_bind_text(s, 1, role, -1, SQLITE_TRANSIENT);
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		const unsigned char *t = sqlite3_column_text(s, 0);

		if (*n == 0 && cap)
			snprintf(first, cap, "%s", t ? (const char *)t : "");
		(*n)++;
	}
	if (rc != SQLITE_DONE)
		ret = meta_err(m, rc);
	sqlite3_reset(s);
	return ret;
}

int vv_meta_role_del_held(struct vv_meta *m, const char *role)
{
	sqlite3_stmt *s;
	int ret;

	if ((ret = meta_exec(m, "SAVEPOINT role_del")) < 0)
		return ret;
	if (vv_meta_user_ready(m)) {
		if (!(s = meta_sql(m, "DELETE FROM user_roles WHERE role = ?1"))) {
			ret = VV_EIO;
			goto out;
		}
		sqlite3_bind_text(s, 1, role, -1, SQLITE_TRANSIENT);
		if ((ret = meta_run(m, s)) < 0)
			goto out;
	}
	ret = vv_meta_role_del(m, role);
out:
	return sp(m, "role_del", ret);
}

int vv_meta_user_iter(struct vv_meta *m, int (*cb)(void *ctx, const struct vv_user_row *r),
		      void *ctx)
{
	struct vv_user_row row;
	sqlite3_stmt *s;
	int rc, ret = 0;

	if (!vv_meta_user_ready(m))
		return 0;
	if (!(s = meta_sql(m, "SELECT " USER_COLS " FROM users ORDER BY name")))
		return VV_EIO;
	while (ret == 0 && (rc = sqlite3_step(s)) == SQLITE_ROW)
		if ((ret = user_row(s, &row)) == 0)
			ret = cb(ctx, &row);
	if (ret == 0 && rc != SQLITE_DONE)
		ret = meta_err(m, rc);
	sqlite3_reset(s);
	return ret;
}

int vv_meta_user_uid_taken(struct vv_meta *m, uint32_t uid, bool *taken)
{
	sqlite3_stmt *s;
	int ret;

	*taken = false;
	if (!vv_meta_user_ready(m))
		return 0;
	s = meta_sql(m, meta_has_table(m, "retired_uids") ?
		     "SELECT 1 FROM users WHERE uid = ?1"
		     " UNION ALL SELECT 1 FROM retired_uids WHERE uid = ?1" :
		     "SELECT 1 FROM users WHERE uid = ?1");
	if (!s)
		return VV_EIO;
	sqlite3_bind_int64(s, 1, uid);
	ret = meta_row(m, s);
	sqlite3_reset(s);
	*taken = ret == 0;
	return ret == VV_ENOENT ? 0 : ret;
}

/* ---- API keys ---------------------------------------------------------------- */

int vv_meta_key_add(struct vv_meta *m, const struct vv_key_row *k)
{
	sqlite3_stmt *s = meta_sql(m, "INSERT INTO api_keys(" KEY_COLS ")"
				   " VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)");

	if (!s)
		return VV_EIO;
	sqlite3_bind_text(s, 1, k->id, -1, SQLITE_STATIC);
	sqlite3_bind_int64(s, 2, k->user);
	sqlite3_bind_text(s, 3, k->uname, -1, SQLITE_STATIC);
	sqlite3_bind_blob(s, 4, k->hash, sizeof(k->hash), SQLITE_STATIC);
	sqlite3_bind_text(s, 5, k->label, -1, SQLITE_STATIC);
	sqlite3_bind_int64(s, 6, k->created);
	sqlite3_bind_int64(s, 7, k->expires);
	sqlite3_bind_int64(s, 8, k->last_used);
	sqlite3_bind_int64(s, 9, k->revoked);
	sqlite3_bind_text(s, 10, k->allow, -1, SQLITE_STATIC);
	return meta_run(m, s);
}

/* A row into k; VV_ECORRUPT for a hash of the wrong size (never a short
 * compare later) or an over-long text. */
static int key_row(sqlite3_stmt *s, struct vv_key_row *k)
{
	int r;

	memset(k, 0, sizeof(*k));
	k->user = sqlite3_column_int64(s, 1);
	if (sqlite3_column_bytes(s, 3) != (int)sizeof(k->hash))
		return VV_ECORRUPT;
	memcpy(k->hash, sqlite3_column_blob(s, 3), sizeof(k->hash));
	k->created = sqlite3_column_int64(s, 5);
	k->expires = sqlite3_column_int64(s, 6);
	k->last_used = sqlite3_column_int64(s, 7);
	k->revoked = sqlite3_column_int64(s, 8);
	if ((r = text(s, 0, k->id, sizeof(k->id))) < 0 ||
	    (r = text(s, 2, k->uname, sizeof(k->uname))) < 0 ||
	    (r = text(s, 4, k->label, sizeof(k->label))) < 0)
		return r;
	return text(s, 9, k->allow, sizeof(k->allow));
}

int vv_meta_key_get(struct vv_meta *m, const char *id, struct vv_key_row *k)
{
	sqlite3_stmt *s;
	int ret;

	if (!vv_meta_user_ready(m))
		return VV_ENOENT;
	if (!(s = meta_sql(m, "SELECT " KEY_COLS " FROM api_keys WHERE id = ?1")))
		return VV_EIO;
	sqlite3_bind_text(s, 1, id, -1, SQLITE_STATIC);
	if ((ret = meta_row(m, s)) < 0)
		return ret;
	ret = key_row(s, k);
	sqlite3_reset(s);
	return ret;
}

int vv_meta_key_iter(struct vv_meta *m, int64_t user,
		     int (*cb)(void *ctx, const struct vv_key_row *k), void *ctx)
{
	struct vv_key_row k;
	sqlite3_stmt *s;
	int rc, ret = 0;

	if (!vv_meta_user_ready(m))
		return 0;
	if (!(s = meta_sql(m, "SELECT " KEY_COLS " FROM api_keys WHERE ?1 < 0 OR user = ?1"
			   " ORDER BY uname, created, id")))
		return VV_EIO;
	sqlite3_bind_int64(s, 1, user);
	while (ret == 0 && (rc = sqlite3_step(s)) == SQLITE_ROW)
		if ((ret = key_row(s, &k)) == 0)
			ret = cb(ctx, &k);
	if (ret == 0 && rc != SQLITE_DONE)
		ret = meta_err(m, rc);
	sqlite3_reset(s);
	return ret;
}

/* Update one key: ?1 = id, ?2 = now; VV_ENOENT if no such row. */
static int key_set(struct vv_meta *m, const char *sql, const char *id, int64_t now)
{
	sqlite3_stmt *s = meta_sql(m, sql);
	int ret;

	if (!s)
		return VV_EIO;
	sqlite3_bind_text(s, 1, id, -1, SQLITE_STATIC);
	sqlite3_bind_int64(s, 2, now);
	if ((ret = meta_run(m, s)) == 0 && changes(s) == 0)
		ret = VV_ENOENT;
	return ret;
}

static const char sql_key_revoke[] =
	"UPDATE api_keys SET revoked = CASE WHEN revoked = 0 THEN ?2 ELSE revoked END"
	" WHERE id = ?1";
static const char sql_key_used[] = "UPDATE api_keys SET last_used = ?2 WHERE id = ?1";

int vv_meta_key_revoke(struct vv_meta *m, const char *id, int64_t now)
{
	return key_set(m, sql_key_revoke, id, now);
}

int vv_meta_key_used(struct vv_meta *m, const char *id, int64_t now)
{
	return key_set(m, sql_key_used, id, now);
}
