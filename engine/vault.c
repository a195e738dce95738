/*
 * vault.c - opening, creating and closing a vault; collection keys; the
 * commit pipeline; the audit hook.
 *
 * Commit pipeline (DESIGN invariant 4).  Operations change meta.db inside
 * one long transaction under v->mu.  A ticker thread commits it every
 * COMMIT_MS (not durable: the WAL is written, not fsync'd) and makes a
 * durable commit every DURABLE_MS; fsync, sync and close commit durably at
 * once.  Before every commit, vv_content_sync() makes each chunk written so
 * far durable, so no commit can ever reference a chunk a power cut could
 * lose.  Chunks whose last reference was dropped are unlinked only after a
 * durable commit.  The commit counter in meta.db is copied to the anchor
 * outside STORE after each durable commit, so an older meta.db is caught at
 * the next mount (rollback).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

#include "crypto_int.h"
#include "meta_vfs_int.h"
#include "os.h"
#include "vault_int.h"
#include "vecvault/error.h"
#include "vecvault/log.h"

#define COMMIT_MS 200
#define DURABLE_MS 5000
#define FLUSH_DATA_MS 2000
#define VV_AUDIT_ROTATE_BYTES (64ull << 20)

int64_t vault_now(void)
{
	struct timespec t;

	clock_gettime(CLOCK_REALTIME, &t);
	return (int64_t)t.tv_sec * 1000000000LL + t.tv_nsec;
}

int vault_txn(struct vv_vault *v)
{
	if (v->fatal)
		return v->fatal;
	if (v->flags & VV_VAULT_READONLY)
		return VV_EROFS;
	return vv_meta_begin(v->meta);
}

/* --- collection keys ------------------------------------------------------ */

static void coll_ad(uint32_t id, uint8_t ad[12])
{
	memcpy(ad, "vv-coll\0", 8);
	ad[8] = (uint8_t)id;
	ad[9] = (uint8_t)(id >> 8);
	ad[10] = (uint8_t)(id >> 16);
	ad[11] = (uint8_t)(id >> 24);
}

int vault_key(struct vv_vault *v, uint32_t coll, const uint8_t **key)
{
	uint8_t wrapped[VV_WRAPPED_BYTES], ad[12];
	struct collkey *nc;
	uint8_t *k;
	size_t len;
	int r;

	for (size_t i = 0; i < v->ncolls; i++)
		if (v->colls[i].id == coll) {
			*key = v->colls[i].key;
			return 0;
		}
	if ((r = vv_meta_coll_get(v->meta, coll, wrapped, sizeof(wrapped), &len)) < 0)
		return r == VV_ENOENT ? VV_ECORRUPT : r;
	if (len != VV_WRAPPED_BYTES)
		return VV_ECORRUPT;
	k = vv_secure_alloc(VV_KEY_BYTES);
	if (!k)
		return VV_ENOMEM;
	coll_ad(coll, ad);
	if ((r = vv_key_unwrap(k, wrapped, v->wrapkey, ad, sizeof(ad))) < 0) {
		vv_log(VV_LOG_ERR, "vault: key of collection %u does not authenticate", coll);
		vv_secure_free(k);
		return VV_ECORRUPT;
	}
	nc = realloc(v->colls, (v->ncolls + 1) * sizeof(*nc));
	if (!nc) {
		vv_secure_free(k);
		return VV_ENOMEM;
	}
	v->colls = nc;
	v->colls[v->ncolls].id = coll;
	v->colls[v->ncolls].key = k;
	v->ncolls++;
	*key = k;
	return 0;
}

/* A new collection with a fresh random data key, wrapped in meta.db. */
int vault_coll_new(struct vv_vault *v, uint32_t *id)
{
	uint8_t wrapped[VV_WRAPPED_BYTES], ad[12], probe[VV_WRAPPED_BYTES];
	uint8_t *k = vv_secure_alloc(VV_KEY_BYTES);
	int r;

	if (!k)
		return VV_ENOMEM;
	vv_random_bytes(k, VV_KEY_BYTES);
	/* The id is assigned by the insert; wrap with AD naming it, so insert a
	 * placeholder first, then store the real wrapping. */
	memset(probe, 0, sizeof(probe));
	if ((r = vv_meta_coll_add(v->meta, probe, sizeof(probe), id)) < 0)
		goto out;
	coll_ad(*id, ad);
	if ((r = vv_key_wrap(wrapped, k, v->wrapkey, ad, sizeof(ad))) < 0)
		goto out;
	if ((r = vv_meta_coll_del(v->meta, *id)) < 0)
		goto out;
	{
		uint32_t again;
		if ((r = vv_meta_coll_add(v->meta, wrapped, sizeof(wrapped), &again)) < 0)
			goto out;
		if (again != *id) {
			r = VV_EIO;
			goto out;
		}
	}
out:
	vv_secure_free(k);
	return r;
}

/* Crypto-shredding: the collection's key is gone with its row. */
int vault_coll_drop(struct vv_vault *v, uint32_t id)
{
	for (size_t i = 0; i < v->ncolls; i++)
		if (v->colls[i].id == id) {
			vv_secure_free(v->colls[i].key);
			v->colls[i] = v->colls[--v->ncolls];
			break;
		}
	return vv_meta_coll_del(v->meta, id);
}

/* --- the full-disk reserve (DESIGN invariant 6) ------------------------------
 *
 * STORE/reserve holds v->reserve random bytes (1/32 of the file system,
 * between 256 KiB and 4 MiB: a deletion's commit needs a few dozen KiB).
 * When the disk's free space falls below twice that, growth is refused
 * (VV_ENOSPC) and the reserve is released, so that deletions and their
 * commits (WAL frames need space) still succeed; it is recreated once space
 * is back. */

static uint64_t free_bytes(struct vv_vault *v)
{
	struct statvfs sv;

	if (statvfs(vv_store_dir(v->store), &sv) < 0)
		return UINT64_MAX;
	return (uint64_t)sv.f_bavail * sv.f_frsize;
}

static void reserve_path(struct vv_vault *v, char *buf, size_t cap)
{
	if (vv_store_path(v->store, "reserve", buf, cap) < 0)
		buf[0] = 0;
}

static void reserve_release(struct vv_vault *v)
{
	char path[4096];

	reserve_path(v, path, sizeof(path));
	if (path[0] && vv_os_unlink(path) == 0)
		vv_log(VV_LOG_WARN, "vault: disk nearly full; released the %u KiB reserve so deletions "
		       "can proceed", v->reserve >> 10);
}

static void reserve_make(struct vv_vault *v)
{
	struct stat st;
	char path[4096];
	uint8_t *buf;
	int fd, r = 0;

	reserve_path(v, path, sizeof(path));
	if (!path[0] || vv_os_stat(path, &st) == 0 || free_bytes(v) < 4ull * v->reserve)
		return;
	buf = malloc(1 << 20);
	if (!buf)
		return;
	fd = vv_os_open(path, O_WRONLY | O_CREAT | O_EXCL, 0600);
	if (fd < 0) {
		free(buf);
		return;
	}
	for (uint32_t off = 0; r == 0 && off < v->reserve; off += 1 << 20) {
		uint32_t n = v->reserve - off < (1u << 20) ? v->reserve - off : 1u << 20;
		vv_random_bytes(buf, n);
		r = vv_os_pwrite_full(fd, buf, n, off);
	}
	if (r == 0)
		r = vv_os_fsync(fd);
	vv_os_close(fd);
	if (r < 0)
		vv_os_unlink(path);
	free(buf);
}

int vault_space_ok(struct vv_vault *v)
{
	int64_t now = vault_now();

	if (now - v->space_checked > 100000000LL) {
		uint64_t fb = free_bytes(v);
		v->space_checked = now;
		v->low_space = fb < 2ull * v->reserve;
		if (v->low_space)
			reserve_release(v);
	}
	return v->low_space ? VV_ENOSPC : 0;
}

/* --- commits ---------------------------------------------------------------- */

void vault_unlink_later(struct vv_vault *v, const uint8_t id[VV_CHUNK_ID_BYTES])
{
	if (v->nunl == v->unlcap) {
		size_t nc = v->unlcap ? v->unlcap * 2 : 64;
		struct pending_unlink *nu = realloc(v->unl, nc * sizeof(*nu));
		if (!nu) {
			vv_log(VV_LOG_WARN, "vault: out of memory; chunk left for fsck to free");
			return;
		}
		v->unl = nu;
		v->unlcap = nc;
	}
	memcpy(v->unl[v->nunl++].id, id, VV_CHUNK_ID_BYTES);
}

/* Audit writer thread: remember the checkpoint; sealed at the next commit
 * (taking v->mu here could deadlock against a request logging a record). */
static void audit_checkpoint(void *ctx, uint64_t seq, const uint8_t mac[VV_AUDIT_MAC_BYTES])
{
	struct vv_vault *v = ctx;

	pthread_mutex_lock(&v->ckpt_mu);
	v->ckpt_have = true;
	v->ckpt_seq = seq;
	memcpy(v->ckpt_mac, mac, VV_AUDIT_MAC_BYTES);
	pthread_mutex_unlock(&v->ckpt_mu);
}

static int seal_checkpoint(struct vv_vault *v)
{
	uint8_t mac[VV_AUDIT_MAC_BYTES];
	uint64_t seq;
	bool have;
	int r;

	pthread_mutex_lock(&v->ckpt_mu);
	have = v->ckpt_have;
	seq = v->ckpt_seq;
	memcpy(mac, v->ckpt_mac, sizeof(mac));
	v->ckpt_have = false;
	pthread_mutex_unlock(&v->ckpt_mu);
	if (!have)
		return 0;
	if ((r = vault_txn(v)) < 0 || (r = vv_meta_kv_set_u64(v->meta, "audit_seq", seq)) < 0 ||
	    (r = vv_meta_kv_set_blob(v->meta, "audit_mac", mac, sizeof(mac))) < 0)
		return r;
	return 0;
}

/* Commit the open transaction (under v->mu). */
int vault_commit(struct vv_vault *v, bool durable)
{
	uint64_t commits;
	int r;

	if (v->fatal)
		return v->fatal;
	if (v->flags & VV_VAULT_READONLY)
		return 0;
	seal_checkpoint(v);
	if (!vv_meta_in_txn(v->meta) && !(durable && v->dirty_commit))
		return 0;
	if (!vv_meta_in_txn(v->meta)) {
		/* Only the anchor lags: catch it up without a commit. */
		uint64_t c;
		v->dirty_commit = false;
		if (vv_meta_kv_get_u64(v->meta, "commits", &c) == 0 &&
		    vv_store_anchor_put(v->store, c, false) < 0)
			vv_log(VV_LOG_WARN, "vault: cannot update the rollback anchor");
		return 0;
	}
	v->space_checked = 0;
	vault_space_ok(v);                  /* releases the reserve if needed */
	if ((r = vv_content_sync(v->content)) < 0) {
		vv_log(VV_LOG_ERR, "vault: cannot make chunks durable: %s", vv_strerror(r));
		return r;
	}
	if ((r = vv_meta_commit(v->meta, durable)) < 0) {
		vv_log(VV_LOG_ERR, "vault: metadata commit failed: %s; refusing further writes",
		       vv_strerror(r));
		v->fatal = r;
		return r;
	}
	/* The commit is durable (the WAL is synced): every chunk it released
	 * may go now (vault_unlink_freed, outside v->mu). */
	v->unl_safe = v->nunl;
	v->dirty_commit = true;             /* the anchor lags this commit */
	if (!durable)
		return 0;
	v->dirty_commit = false;
	if (vv_meta_kv_get_u64(v->meta, "commits", &commits) == 0 &&
	    vv_store_anchor_put(v->store, commits, false) < 0)
		vv_log(VV_LOG_WARN, "vault: cannot update the rollback anchor");
	if (!(v->flags & VV_VAULT_READONLY))
		reserve_make(v);
	return 0;
}

/* Unlink the chunks that durable commits released.  Not under v->mu: an
 * unlink can take milliseconds (a discard on the store's file system), and
 * every request would wait.  locked: the caller holds v->mu (fsck). */
void vault_unlink_freed(struct vv_vault *v, bool locked)
{
	struct pending_unlink *list;
	size_t n;

	if (!locked)
		pthread_mutex_lock(&v->mu);
	n = v->unl_safe;
	list = n ? malloc(n * sizeof(*list)) : NULL;
	if (list) {
		memcpy(list, v->unl, n * sizeof(*list));
		memmove(v->unl, v->unl + n, (v->nunl - n) * sizeof(*list));
		v->nunl -= n;
		v->unl_safe = 0;
	}
	if (!locked)
		pthread_mutex_unlock(&v->mu);
	for (size_t i = 0; list && i < n; i++)
		vv_content_unlink(v->content, list[i].id);
	free(list);
}

static void *ticker(void *arg)
{
	struct vv_vault *v = arg;
	int64_t last_durable = vault_now(), last_flush = vault_now();

	pthread_mutex_lock(&v->mu);
	while (v->tick_run) {
		struct timespec until;
		clock_gettime(CLOCK_REALTIME, &until);
		until.tv_nsec += COMMIT_MS * 1000000L;
		if (until.tv_nsec >= 1000000000L) {
			until.tv_sec++;
			until.tv_nsec -= 1000000000L;
		}
		pthread_cond_timedwait(&v->tick_cv, &v->mu, &until);
		if (!v->tick_run)
			break;
		int64_t now = vault_now();
		if (now - last_flush > FLUSH_DATA_MS * 1000000LL) {
			pthread_mutex_unlock(&v->mu);
			vault_flush_all(v);
			pthread_mutex_lock(&v->mu);
			last_flush = now;
		}
		bool durable = now - last_durable > DURABLE_MS * 1000000LL;
		vault_commit(v, durable);
		if (durable)
			last_durable = now;
		if (v->unl_safe) {
			pthread_mutex_unlock(&v->mu);
			vault_unlink_freed(v, false);
			pthread_mutex_lock(&v->mu);
		}
	}
	pthread_mutex_unlock(&v->mu);
	return NULL;
}

/* --- audit hook ----------------------------------------------------------- */

void vault_audit(struct vv_vault *v, const struct vv_ctx *c, const char *op, uint64_t ino,
		 uint64_t parent, const char *name, int result, const char *detail)
{
	struct vv_audit_rec rec;
	char path[4096 + VV_NAME_MAX + 2];

	if (!v->audit)
		return;
	if (result == 0 && !v->audit_lookups &&
	    (strcmp(op, "lookup") == 0 || strcmp(op, "getattr") == 0))
		return;
	if (name) {
		size_t pl = 0, nl = strlen(name);
		if (parent != VV_ROOT_INO) {
			node_path(v, parent, path, 4096);
			pl = strlen(path);
		}
		path[pl] = '/';
		memcpy(path + pl + 1, name, nl < VV_NAME_MAX ? nl + 1 : VV_NAME_MAX + 1);
		path[pl + 1 + (nl < VV_NAME_MAX ? nl : VV_NAME_MAX)] = 0;
	} else {
		node_path(v, ino, path, sizeof(path));
	}
	if (c) {
		memset(&rec, 0, sizeof(rec));
		rec.op = op;
		rec.uid = c->id.uid;
		rec.gid = c->id.gid;
		rec.pid = c->id.pid;
		rec.comm = c->comm;
		rec.user = c->user;
		rec.client = c->client ? c->client : "local";
		rec.result = result;
		rec.detail = detail;
	} else {
		/* The daemon or CLI itself: mount, close, admin actions. */
		vv_audit_rec_self(&rec, op, result, detail);
	}
	rec.path = path;
	rec.ino = ino;
	vv_audit_log(v->audit, &rec);
}

int vault_audit_gate(struct vv_vault *v)
{
	if (!v->audit_required || !v->audit)
		return 0;
	return vv_audit_status(v->audit) < 0 ? VV_EAUDIT : 0;
}

/* Remember who opened fh: the release record names them. */
void vault_file_owner(struct vv_file *fh, const struct vv_ctx *c)
{
	if (!c)
		return;
	fh->who = *c;
	fh->who.id.groups = NULL;
	fh->who.id.ngroups = 0;
	snprintf(fh->comm, sizeof(fh->comm), "%s", c->comm ? c->comm : "");
	snprintf(fh->client, sizeof(fh->client), "%s", c->client ? c->client : "local");
	fh->who.comm = fh->comm;
	fh->who.client = fh->client;
	fh->who.user = NULL;
}

void vault_audit_file(struct vv_vault *v, const struct vv_ctx *c, const char *op,
		      struct vv_file *fh, int result)
{
	if (!c && fh->who.client)
		c = &fh->who;
	struct vv_audit_rec rec;
	char path[4096];
	int acc = fh->flags & 3;

	if (!v->audit)
		return;
	node_path(v, fh->n->ino, path, sizeof(path));
	memset(&rec, 0, sizeof(rec));
	rec.op = op;
	rec.path = path;
	rec.ino = fh->n->ino;
	if (c) {
		rec.uid = c->id.uid;
		rec.gid = c->id.gid;
		rec.pid = c->id.pid;
		rec.comm = c->comm;
		rec.user = c->user;
	}
	rec.client = c && c->client ? c->client : "local";
	rec.result = result;
	rec.mode = (fh->flags & VV_OPEN_EXEC) ? "x" : acc == 0 ? "r" : acc == 1 ? "w" : "rw";
	rec.rbytes = fh->rbytes;
	rec.wbytes = fh->wbytes;
	rec.rcount = fh->rcount;
	rec.wcount = fh->wcount;
	vv_audit_log(v->audit, &rec);
}

void vv_vault_audit_admin(struct vv_vault *v, const char *op, int result, const char *detail)
{
	struct vv_ctx c;

	memset(&c, 0, sizeof(c));
	c.id.uid = (uint32_t)getuid();
	c.id.gid = (uint32_t)getgid();
	c.id.pid = (uint32_t)getpid();
	c.comm = "vecvault";
	c.client = "local";
	pthread_mutex_lock(&v->mu);
	vault_audit(v, &c, op, VV_ROOT_INO, 0, NULL, result, detail);
	pthread_mutex_unlock(&v->mu);
}

int vv_vault_audit_sealed(struct vv_vault *v, uint64_t *seq, uint8_t mac[32])
{
	size_t ml = 0;
	int r;

	*seq = 0;
	pthread_mutex_lock(&v->mu);
	seal_checkpoint(v);
	r = vv_meta_kv_get_u64(v->meta, "audit_seq", seq);
	if (r == 0)
		r = vv_meta_kv_get_blob(v->meta, "audit_mac", mac, 32, &ml);
	pthread_mutex_unlock(&v->mu);
	if (r == VV_ENOENT || (r == 0 && ml != 32)) {
		*seq = 0;
		return 0;
	}
	return r;
}

/* A failed unlock: no key yet, so the record goes to the pre-authentication
 * file beside the audit log, imported (unauthenticated) at the next unlock. */
static void audit_failed_unlock(struct vv_store *s, const struct vv_vault_opts *o, int result)
{
	struct vv_audit_rec rec;
	char path[4096];

	if (o->audit_log)
		snprintf(path, sizeof(path), "%s", o->audit_log);
	else if (vv_audit_default_path(vv_store_id(s), path, sizeof(path)) < 0)
		return;
	vv_audit_rec_self(&rec, "unlock", result, o->purpose ? o->purpose : "open");
	vv_audit_preauth_append(path, &rec);
}

/* --- create / open / close ------------------------------------------------ */

static int meta_path(struct vv_store *s, char *out, size_t cap)
{
	return vv_store_path(s, "meta.db", out, cap);
}

int vv_vault_create_store(const char *dir, const char *pass, size_t passlen,
			  int kdf_profile, unsigned flags, uint32_t uid, uint32_t gid)
{
	struct vv_store_create_opts so = { .kdf = (enum vv_store_kdf)kdf_profile, .page_size = 4096 };
	struct vv_vault v;
	struct vv_inode_row root;
	uint8_t mkey[VV_KEY_BYTES];
	char path[4096];
	uint64_t commits;
	uint32_t coll;
	int r;

	memset(&v, 0, sizeof(v));
	if ((r = vv_crypto_init()) < 0)
		return r;
	if ((r = vv_store_create(dir, pass, passlen, &so,
				 (flags & VV_VAULT_ALLOW_TEST_KDF) ? VV_STORE_ALLOW_TEST_KDF : 0,
				 &v.store)) < 0)
		return r;
	v.wrapkey = vv_secure_alloc(VV_KEY_BYTES);
	if (!v.wrapkey) {
		r = VV_ENOMEM;
		goto out;
	}
	if ((r = vv_store_subkey(v.store, 1, VV_SUBKEY_META, mkey)) < 0 ||
	    (r = vv_store_subkey(v.store, 1, VV_SUBKEY_COLLWRAP, v.wrapkey)) < 0 ||
	    (r = meta_path(v.store, path, sizeof(path))) < 0)
		goto out;
	r = vv_meta_open(path, mkey, vv_store_page_size(v.store), true, &v.meta);
	vv_memzero(mkey, sizeof(mkey));
	if (r < 0)
		goto out;
	if ((r = vv_meta_begin(v.meta)) < 0 || (r = vault_coll_new(&v, &coll)) < 0 ||
	    (r = vv_meta_kv_set_u64(v.meta, "root_coll", coll)) < 0)
		goto out;
	memset(&root, 0, sizeof(root));
	root.ino = VV_ROOT_INO;
	root.gen = 1;
	root.mode = S_IFDIR | 0755;
	root.uid = uid;
	root.gid = gid;
	root.nlink = 2;
	root.atime = root.mtime = root.ctime = vault_now();
	root.parent = VV_ROOT_INO;
	root.coll = coll;
	vv_random_bytes(root.objid, sizeof(root.objid));
	if ((r = vv_meta_inode_put(v.meta, &root)) < 0 || (r = vv_meta_commit(v.meta, true)) < 0)
		goto out;
	if ((r = vv_meta_kv_get_u64(v.meta, "commits", &commits)) < 0 ||
	    (r = vv_store_anchor_put(v.store, commits, true)) < 0)
		goto out;
out:
	for (size_t i = 0; i < v.ncolls; i++)
		vv_secure_free(v.colls[i].key);
	free(v.colls);
	{
		int r2 = vv_meta_close(v.meta);
		if (r == 0)
			r = r2;
	}
	vv_secure_free(v.wrapkey);
	vv_store_close(v.store);
	return r;
}

/* Inodes left with no links by a crash while they were open. */
static int free_orphan(void *ctx, const struct vv_inode_row *row)
{
	uint64_t *list = ((uint64_t **)ctx)[0];
	size_t *n = ((size_t **)ctx)[1];

	if (row->nlink == 0 && *n < 4096)
		list[(*n)++] = row->ino;
	return 0;
}

static int recover_orphans(struct vv_vault *v)
{
	uint64_t *list = calloc(4096, sizeof(*list));
	size_t n = 0;
	void *ctx[2] = { list, &n };
	int r;

	if (!list)
		return VV_ENOMEM;
	r = vv_meta_inode_iter(v->meta, free_orphan, ctx);
	for (size_t i = 0; r == 0 && i < n; i++) {
		struct node *nd;
		if ((r = node_get(v, list[i], &nd)) == 0)
			node_put(v, nd);      /* no links, no users: deleted */
	}
	if (r == 0 && n)
		vv_log(VV_LOG_INFO, "vault: freed %zu unlinked inode(s) left by a crash", n);
	free(list);
	return r;
}

int vv_vault_open(const char *dir, const char *pass, size_t passlen,
		  const struct vv_vault_opts *o, struct vv_vault **out)
{
	struct vv_vault_opts defo = { 0 };
	struct vv_vault *v;
	uint8_t mkey[VV_KEY_BYTES];
	char path[4096];
	uint64_t commits = 0, anchor = 0, rc64;
	int r;

	*out = NULL;
	if (!o)
		o = &defo;
	if ((r = vv_crypto_init()) < 0)
		return r;
	vv_crypto_harden_process();
	v = calloc(1, sizeof(*v));
	if (!v)
		return VV_ENOMEM;
	pthread_mutex_init(&v->mu, NULL);
	pthread_cond_init(&v->tick_cv, NULL);
	pthread_mutex_init(&v->sealmu, NULL);
	pthread_mutex_init(&v->ckpt_mu, NULL);
	pthread_cond_init(&v->sealcv, NULL);
	pthread_cond_init(&v->sealdone, NULL);
	v->flags = o->flags;
	v->perm_gen = 1;
	v->audit_lookups = o->audit_lookups;
	v->audit_required = o->audit_required;
	if ((r = vv_store_open(dir, (o->flags & VV_VAULT_ALLOW_TEST_KDF) ? VV_STORE_ALLOW_TEST_KDF : 0,
			       &v->store)) < 0)
		goto fail;
	if ((r = vv_store_unlock(v->store, pass, passlen, NULL)) < 0) {
		if (r == VV_EBADPASS)
			audit_failed_unlock(v->store, o, r);
		goto fail;
	}
	v->wrapkey = vv_secure_alloc(VV_KEY_BYTES);
	if (!v->wrapkey) {
		r = VV_ENOMEM;
		goto fail;
	}
	if ((r = vv_store_subkey(v->store, 1, VV_SUBKEY_META, mkey)) < 0 ||
	    (r = vv_store_subkey(v->store, 1, VV_SUBKEY_COLLWRAP, v->wrapkey)) < 0 ||
	    (r = meta_path(v->store, path, sizeof(path))) < 0)
		goto fail;
	{
		struct stat st;
		if (vv_os_stat(path, &st) < 0 || st.st_size == 0) {
			vv_log(VV_LOG_ERR, "vault: %s is missing or empty; an initialised vault needs it",
			       path);
			vv_memzero(mkey, sizeof(mkey));
			r = VV_ENOMETA;
			goto fail;
		}
	}
	r = vv_meta_open(path, mkey, vv_store_page_size(v->store), false, &v->meta);
	vv_memzero(mkey, sizeof(mkey));
	if (r < 0)
		goto fail;
	if (vv_meta_wal_discarded(v->meta) > 0)
		vv_log(VV_LOG_WARN, "vault: %d WAL frame(s) of meta.db did not authenticate and were "
		       "dropped (a torn write at a crash, or tampering); the commit counter check "
		       "below decides whether this is a rollback", vv_meta_wal_discarded(v->meta));
	if ((r = vv_meta_kv_get_u64(v->meta, "commits", &commits)) < 0 ||
	    (r = vv_store_anchor_get(v->store, &anchor)) < 0)
		goto fail;
	if (commits < anchor) {
		if (!(o->flags & VV_VAULT_ACCEPT_ROLLBACK)) {
			vv_log(VV_LOG_ERR, "vault: meta.db is at commit %llu but this machine has seen "
			       "commit %llu: the metadata was rolled back (restore from backup?)",
			       (unsigned long long)commits, (unsigned long long)anchor);
			r = VV_EROLLBACK;
			goto fail;
		}
		vv_log(VV_LOG_WARN, "vault: accepting metadata at commit %llu (anchor was %llu) as asked",
		       (unsigned long long)commits, (unsigned long long)anchor);
	}
	if ((r = vv_store_anchor_put(v->store, commits, true)) < 0)
		goto fail;
	if ((r = vv_meta_kv_get_u64(v->meta, "root_coll", &rc64)) < 0)
		goto fail;
	v->root_coll = (uint32_t)rc64;
	{
		struct statvfs sv;
		uint64_t total = statvfs(dir, &sv) == 0 ? (uint64_t)sv.f_blocks * sv.f_frsize : 0;
		uint64_t res = total / 32;
		v->reserve = res > VV_RESERVE_MAX ? VV_RESERVE_MAX :
			     res < VV_RESERVE_MIN ? VV_RESERVE_MIN : (uint32_t)res;
	}
	if ((r = vv_content_open(dir, o->cache_bytes ? o->cache_bytes : VV_CONTENT_DEFAULT_CACHE,
				 &v->content)) < 0 || (r = data_sealer_start(v)) < 0)
		goto fail;
	if (!(o->flags & VV_VAULT_READONLY)) {
		if ((r = vv_meta_upgrade(v->meta)) < 0 || (r = recover_orphans(v)) < 0 ||
		    (r = vault_commit(v, true)) < 0)
			goto fail;
	}
	if (!(o->flags & VV_VAULT_NO_AUDIT)) {
		struct vv_audit_opts ao = { 0 };
		uint8_t akey[VV_KEY_BYTES], smac[VV_AUDIT_MAC_BYTES];
		char apath[4096];
		uint64_t sseq = 0;
		size_t ml = 0;
		if (o->audit_log)
			snprintf(apath, sizeof(apath), "%s", o->audit_log);
		else if ((r = vv_audit_default_path(vv_store_id(v->store), apath, sizeof(apath))) < 0)
			goto fail;
		if (vv_meta_kv_get_u64(v->meta, "audit_seq", &sseq) < 0 ||
		    vv_meta_kv_get_blob(v->meta, "audit_mac", smac, sizeof(smac), &ml) < 0 ||
		    ml != sizeof(smac))
			sseq = 0;
		if ((r = vv_store_subkey(v->store, VV_AUDIT_SUBKEY_ID, VV_SUBKEY_AUDIT, akey)) < 0)
			goto fail;
		ao.path = apath;
		ao.key = akey;
		ao.required = o->audit_required;
		ao.rotate_bytes = VV_AUDIT_ROTATE_BYTES;   /* the chain continues across files */
		ao.checkpoint = audit_checkpoint;
		ao.ctx = v;
		ao.sealed_seq = sseq;
		ao.sealed_mac = sseq ? smac : NULL;
		r = vv_audit_open(&ao, &v->audit);
		vv_memzero(akey, sizeof(akey));
		if (r < 0) {
			vv_log(VV_LOG_ERR, "vault: cannot open the audit log %s: %s", apath, vv_strerror(r));
			goto fail;
		}
		vv_audit_import_preauth(v->audit);
	}
	if (!o->knn_off) {
		size_t cap = o->knn_cache_bytes;
		if (!cap) {
			long pages = sysconf(_SC_PHYS_PAGES), pg = sysconf(_SC_PAGESIZE);
			cap = pages > 0 && pg > 0 ? (size_t)pages / 4 * (size_t)pg : (size_t)1 << 30;
		}
		if ((r = knn_cache_open(v, cap)) < 0)
			goto fail;
	}
	v->purpose = o->purpose ? o->purpose : "open";
	pthread_mutex_lock(&v->mu);
	if (!(o->flags & VV_VAULT_READONLY))
		reserve_make(v);
	vault_audit(v, NULL, v->purpose, VV_ROOT_INO, 0, NULL, 0, dir);
	pthread_mutex_unlock(&v->mu);
	v->tick_run = true;
	if (pthread_create(&v->tick, NULL, ticker, v) != 0) {
		v->tick_run = false;
		r = VV_ENOMEM;
		goto fail;
	}
	*out = v;
	return 0;
fail:
	vv_vault_close(v);
	return r;
}

int vv_vault_close(struct vv_vault *v)
{
	int r = 0;

	if (!v)
		return 0;
	knn_cache_close(v);                 /* background fills stop first */
	if (v->tick_run) {
		pthread_mutex_lock(&v->mu);
		v->tick_run = false;
		pthread_cond_signal(&v->tick_cv);
		pthread_mutex_unlock(&v->mu);
		pthread_join(v->tick, NULL);
	}
	if (v->audit && v->purpose) {
		pthread_mutex_lock(&v->mu);
		vault_audit(v, NULL, "close", VV_ROOT_INO, 0, NULL, 0, v->purpose);
		pthread_mutex_unlock(&v->mu);
	}
	if (v->meta && !(v->flags & VV_VAULT_READONLY)) {
		r = vault_flush_all(v);
		pthread_mutex_lock(&v->mu);
		{
			int r2 = vault_commit(v, true);
			if (r == 0)
				r = r2;
		}
		pthread_mutex_unlock(&v->mu);
	}
	data_sealer_stop(v);                /* nothing queued after flush_all */
	if (v->content)
		vault_unlink_freed(v, false);
	if (v->audit) {
		vv_audit_close(v->audit);
		v->audit = NULL;
		/* The final checkpoint arrives from the writer at close. */
		if (v->meta && !(v->flags & VV_VAULT_READONLY)) {
			pthread_mutex_lock(&v->mu);
			if (seal_checkpoint(v) == 0)
				vault_commit(v, true);
			pthread_mutex_unlock(&v->mu);
		}
	}
	node_table_free(v);
	{
		int r2 = vv_meta_close(v->meta);
		if (r == 0)
			r = r2;
	}
	vv_content_close(v->content);
	for (size_t i = 0; i < v->ncolls; i++)
		vv_secure_free(v->colls[i].key);
	free(v->colls);
	free(v->unl);
	vv_secure_free(v->wrapkey);
	vv_store_close(v->store);
	pthread_mutex_destroy(&v->mu);
	pthread_cond_destroy(&v->tick_cv);
	pthread_mutex_destroy(&v->sealmu);
	pthread_mutex_destroy(&v->ckpt_mu);
	pthread_cond_destroy(&v->sealcv);
	pthread_cond_destroy(&v->sealdone);
	free(v);
	return r;
}

int vv_vault_sync(struct vv_vault *v)
{
	int r = vault_flush_all(v), r2;

	pthread_mutex_lock(&v->mu);
	r2 = vault_commit(v, true);
	pthread_mutex_unlock(&v->mu);
	vault_unlink_freed(v, false);
	return r < 0 ? r : r2;
}

void vv_vault_set_inval(struct vv_vault *v, vv_inval_fn fn, void *ctx)
{
	pthread_mutex_lock(&v->mu);
	v->inval = fn;
	v->inval_ctx = ctx;
	pthread_mutex_unlock(&v->mu);
}

int vv_vault_statfs(struct vv_vault *v, struct vv_statfs *out)
{
	struct statvfs sv;
	uint64_t inodes = 0;

	if (statvfs(vv_store_dir(v->store), &sv) < 0)
		return vv_err_from_errno(errno);
	pthread_mutex_lock(&v->mu);
	vv_meta_counts(v->meta, &inodes);
	pthread_mutex_unlock(&v->mu);
	memset(out, 0, sizeof(*out));
	out->bsize = sv.f_frsize;
	out->blocks = sv.f_blocks;
	out->bfree = sv.f_bfree;
	out->bavail = sv.f_bavail;
	out->files = inodes + sv.f_ffree;
	out->ffree = sv.f_ffree;
	out->namemax = VV_NAME_MAX;
	return 0;
}
