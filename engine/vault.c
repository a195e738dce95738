/*
 * vault.c - a vault's life: creating a store, opening (unlock, rollback
 * check, the node table, the sealer, the audit log, the offload cache),
 * the ticker thread that batches commits, closing; statfs.
 *
 * The services the other vault files share live in their own files:
 * vault_commit.c (transactions, the commit pipeline, the full-disk reserve),
 * vault_keys.c (collection keys), vault_audit.c (audit records).
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
#include "os.h"
#include "snap_int.h"
#include "vault_int.h"
#include "vecvault/error.h"
#include "vecvault/log.h"

#define COMMIT_MS 200               /* the ticker's commit period */
#define ANCHOR_MS 5000              /* ... and how often it catches the anchor up */
#define FLUSH_DATA_MS 2000
#define VV_AUDIT_ROTATE_BYTES (64ull << 20)

static void *ticker(void *arg)
{
	struct vv_vault *v = arg;
	int64_t last_anchor = vault_now(), last_flush = vault_now();

	pthread_mutex_lock(&v->mu);
	while (v->tick.run) {
		struct timespec until;
		clock_gettime(CLOCK_REALTIME, &until);
		until.tv_nsec += COMMIT_MS * 1000000L;
		if (until.tv_nsec >= 1000000000L) {
			until.tv_sec++;
			until.tv_nsec -= 1000000000L;
		}
		pthread_cond_timedwait(&v->tick.cv, &v->mu, &until);
		if (!v->tick.run)
			break;
		int64_t now = vault_now();
		if (now - last_flush > FLUSH_DATA_MS * 1000000LL) {
			pthread_mutex_unlock(&v->mu);
			vault_flush_all(v);
			pthread_mutex_lock(&v->mu);
			last_flush = now;
		}
		vault_trash_tick(v, now);
		vault_backup_tick(v, now);
		if (v->snaps.every && now >= v->snaps.next) {
			pthread_mutex_unlock(&v->mu);
			vault_snap_tick(v);
			pthread_mutex_lock(&v->mu);
		}
		/* The WAL sync runs outside v->mu: requests go on meanwhile. */
		vault_commit_group(v, now - last_anchor > ANCHOR_MS * 1000000LL);
		if (now - last_anchor > ANCHOR_MS * 1000000LL)
			last_anchor = now;
		if (v->cm.unl_safe) {
			pthread_mutex_unlock(&v->mu);
			vault_unlink_freed(v, false);
			pthread_mutex_lock(&v->mu);
		}
	}
	pthread_mutex_unlock(&v->mu);
	return NULL;
}

/* --- create / open / close ------------------------------------------------ */

static int meta_path(struct vv_store *s, char *out, size_t cap)
{
	return vv_store_path(s, "meta.db", out, cap);
}

int vault_new_begin(const char *dir, const char *pass, size_t passlen, int kdf_profile,
		    unsigned flags, struct vault_new *nv)
{
	struct vv_store_create_opts so = { .kdf = (enum vv_store_kdf)kdf_profile, .page_size = 4096 };
	uint8_t mkey[VV_KEY_BYTES];
	char path[4096];
	int r;

	memset(nv, 0, sizeof(*nv));
	if ((r = vv_crypto_init()) < 0)
		return r;
	if ((r = vv_store_create(dir, pass, passlen, &so,
				 (flags & VV_VAULT_ALLOW_TEST_KDF) ? VV_STORE_ALLOW_TEST_KDF : 0,
				 &nv->store)) < 0)
		return r;
	nv->made = true;
	if (!(nv->wrapkey = vv_secure_alloc(VV_KEY_BYTES))) {
		r = VV_ENOMEM;
		goto fail;
	}
	if ((r = vv_store_subkey(nv->store, 1, VV_SUBKEY_META, mkey)) < 0 ||
	    (r = vv_store_subkey(nv->store, 1, VV_SUBKEY_COLLWRAP, nv->wrapkey)) < 0 ||
	    (r = meta_path(nv->store, path, sizeof(path))) < 0)
		goto fail;
	r = vv_meta_open(path, mkey, vv_store_page_size(nv->store), VV_META_CREATE, &nv->meta);
	vv_memzero(mkey, sizeof(mkey));
	if (r < 0 || (r = vv_meta_begin(nv->meta)) < 0)
		goto fail;
	return 0;
fail:
	vault_new_end(nv, r, NULL);
	return r;
}

int vault_new_end(struct vault_new *nv, int r, const char *state_dir)
{
	uint64_t commits;
	int r2;

	/* A new vault: its own anchor from its first commit on, so opening
	 * it is no rollback. */
	if (r == 0 && (r = vv_meta_commit(nv->meta)) == 0 &&
	    (r = vv_meta_kv_get_u64(nv->meta, "commits", &commits)) == 0)
		r = vv_store_anchor_put(nv->store, state_dir, commits, true);
	r2 = vv_meta_close(nv->meta);
	if (r == 0)
		r = r2;
	if (r == 0 && nv->committed)
		nv->committed(nv->committed_ctx, nv->store);
	vv_secure_free(nv->wrapkey);
	vv_store_close(nv->store);
	nv->meta = NULL;
	nv->wrapkey = NULL;
	nv->store = NULL;
	return r;
}

int vv_vault_create_store(const char *dir, const char *pass, size_t passlen,
			  int kdf_profile, unsigned flags, uint32_t uid, uint32_t gid,
			  const char *state_dir)
{
	struct vault_new nv;
	struct vv_inode_row root;
	uint32_t coll;
	int r;

	if ((r = vault_new_begin(dir, pass, passlen, kdf_profile, flags, &nv)) < 0)
		return r;
	if ((r = vault_coll_key_new(nv.meta, nv.wrapkey, &coll)) < 0 ||
	    (r = vv_meta_kv_set_u64(nv.meta, "root_coll", coll)) < 0)
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
	r = vv_meta_inode_put(nv.meta, &root);
out:
	return vault_new_end(&nv, r, state_dir);
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
		if ((r = vault_node_get(v, list[i], &nd)) == 0)
			vault_node_put(v, nd);      /* no links, no users: deleted */
	}
	if (r == 0 && n)
		vv_log(VV_LOG_INFO, "vault: freed %zu unlinked inode(s) left by a crash", n);
	free(list);
	return r;
}

/* Collection keys nothing needs (crypto-shredding): what a crash after
 * the commit that deleted a key's last user, or an older build, which
 * dropped keys only at some removals, left behind.  Never fatal: an error
 * keeps the keys. */
static int keys_gc(struct vv_vault *v)
{
	int dropped = 0, r;

	pthread_mutex_lock(&v->mu);
	if ((r = vault_txn(v)) == 0)
		r = vault_coll_gc(v, &dropped);
	if (r == 0 && dropped && (r = vault_commit(v)) == 0)
		vv_log(VV_LOG_INFO, "vault: dropped %d collection key(s) nothing needs", dropped);
	if (r < 0)
		vv_log(VV_LOG_WARN, "vault: cannot drop unused collection keys: %s (kept)", vv_strerror(r));
	pthread_mutex_unlock(&v->mu);
	return 0;
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
	pthread_mutex_init(&v->admit.mu, NULL);
	vv_random_bytes(&v->gen_seq, 4);
	v->gen_seq <<= 32;
	pthread_cond_init(&v->tick.cv, NULL);
	pthread_cond_init(&v->cm.synced, NULL);
	pthread_cond_init(&v->push_cv, NULL);
	pthread_mutex_init(&v->seal.mu, NULL);
	pthread_mutex_init(&v->aud.ckpt_mu, NULL);
	pthread_cond_init(&v->seal.cv, NULL);
	pthread_cond_init(&v->seal.done, NULL);
	pthread_cond_init(&v->seal.turn, NULL);
	v->flags = o->flags;
	{
		static const char hex[] = "0123456789abcdef";
		uint8_t rnd[16];

		vv_random_bytes(rnd, sizeof(rnd));
		for (size_t i = 0; i < sizeof(rnd); i++) {
			v->instance[2 * i] = hex[rnd[i] >> 4];
			v->instance[2 * i + 1] = hex[rnd[i] & 15];
		}
	}
	v->nodes.perm_gen = 1;
	v->nodes.idle_max = VAULT_IDLE_NODES;
	v->nodes.idle_max_bytes = VAULT_IDLE_BYTES;
	v->aud.lookups = o->audit_lookups;
	v->aud.required = o->audit_required;
	v->progress = o->progress;
	v->progress_ctx = o->progress_ctx;
	if ((o->state_dir && !(v->state_dir = strdup(o->state_dir))) ||
	    (o->audit_dir && !(v->audit_dir = strdup(o->audit_dir)))) {
		r = VV_ENOMEM;
		goto fail;
	}
	if ((r = vv_store_open(dir, (o->flags & VV_VAULT_ALLOW_TEST_KDF) ? VV_STORE_ALLOW_TEST_KDF : 0,
			       &v->store)) < 0)
		goto fail;
	if ((r = vv_store_unlock(v->store, pass, passlen, NULL)) < 0) {
		if (r == VV_EBADPASS)
			vault_audit_failed_unlock(v->store, o, r);
		goto fail;
	}
	v->keys.wrap = vv_secure_alloc(VV_KEY_BYTES);
	if (!v->keys.wrap) {
		r = VV_ENOMEM;
		goto fail;
	}
	if ((r = vv_store_subkey(v->store, 1, VV_SUBKEY_META, mkey)) < 0 ||
	    (r = vv_store_subkey(v->store, 1, VV_SUBKEY_COLLWRAP, v->keys.wrap)) < 0 ||
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
	r = vv_meta_open(path, mkey, vv_store_page_size(v->store),
			 (o->flags & VV_VAULT_READONLY) ? VV_META_READONLY : 0, &v->meta);
	vv_memzero(mkey, sizeof(mkey));
	if (r < 0)
		goto fail;
	if (vv_meta_wal_discarded(v->meta) > 0)
		vv_log(VV_LOG_WARN, "vault: %d WAL frame(s) of meta.db did not authenticate and were "
		       "dropped (a torn write at a crash, or tampering); the commit counter check "
		       "below decides whether this is a rollback", vv_meta_wal_discarded(v->meta));
	if ((r = vv_meta_kv_get_u64(v->meta, "commits", &commits)) < 0 ||
	    (r = vv_store_anchor_get(v->store, v->state_dir, &anchor)) < 0)
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
	if ((r = vv_store_anchor_put(v->store, v->state_dir, commits, true)) < 0)
		goto fail;
	if ((r = vv_meta_kv_get_u64(v->meta, "root_coll", &rc64)) < 0)
		goto fail;
	v->root_coll = (uint32_t)rc64;
	{
		struct statvfs sv;
		uint64_t total = statvfs(dir, &sv) == 0 ? (uint64_t)sv.f_blocks * sv.f_frsize : 0;
		uint64_t res = total / 32;
		v->cm.reserve = res > VV_RESERVE_MAX ? VV_RESERVE_MAX :
			     res < VV_RESERVE_MIN ? VV_RESERVE_MIN : (uint32_t)res;
	}
	if ((r = vv_content_open(dir, o->cache_bytes ? o->cache_bytes : VV_CONTENT_DEFAULT_CACHE,
				 &v->content)) < 0 || (r = vault_data_sealer_start(v, o->sealers)) < 0)
		goto fail;
	vv_content_set_floor(v->content, 2ull * v->cm.reserve);
	if (!(o->flags & VV_VAULT_READONLY)) {
		if ((r = vv_meta_upgrade(v->meta)) < 0 || (r = recover_orphans(v)) < 0 ||
		    (r = vault_snap_recover(v)) < 0 || (r = keys_gc(v)) < 0 ||
		    (r = vault_commit_anchor(v)) < 0)
			goto fail;
		/* A crash may have come between a key drop's commit and its
		 * settle (older WAL frames keep the wrapped key), and keys_gc may
		 * just have dropped some: settle now, whatever the state. */
		pthread_mutex_lock(&v->mu);
		vault_keys_settle(v, true);
		pthread_mutex_unlock(&v->mu);
		vault_ckpt_start(v, o->ckpt_frames);
		v->snaps = (struct vault_snap_sched){ .every = o->snap_every,
			.keep_hourly = o->snap_keep_hourly, .keep_daily = o->snap_keep_daily,
			.keep_weekly = o->snap_keep_weekly, .keep_monthly = o->snap_keep_monthly };
		vault_snap_schedule_init(v);
	}

	if (!(o->flags & VV_VAULT_NO_AUDIT)) {
		struct vv_audit_opts ao = { 0 };
		uint8_t akey[VV_KEY_BYTES], smac[VV_AUDIT_MAC_BYTES];
		char apath[4096];
		uint64_t sseq = 0;
		size_t ml = 0;
		if (o->audit_log)
			snprintf(apath, sizeof(apath), "%s", o->audit_log);
		else if ((r = vv_audit_default_path(v->audit_dir, vv_store_id(v->store), apath,
							   sizeof(apath))) < 0)
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
		ao.checkpoint = vault_audit_checkpoint;
		ao.ctx = v;
		ao.sealed_seq = sseq;
		ao.sealed_mac = sseq ? smac : NULL;
		r = vv_audit_open(&ao, &v->aud.log);
		vv_memzero(akey, sizeof(akey));
		if (r < 0) {
			/* A refused file's reason, naming it, is already the last
			 * error logged: do not bury it under a vaguer one. */
			if (r != VV_EUNSAFE)
				vv_log(VV_LOG_ERR, "vault: cannot open the audit log %s: %s", apath,
				       vv_strerror(r));
			goto fail;
		}
		vv_audit_import_preauth(v->aud.log);
	}
	if (!o->knn_off) {
		size_t cap = o->knn_cache_bytes;
		if (!cap) {
			long pages = sysconf(_SC_PHYS_PAGES), pg = sysconf(_SC_PAGESIZE);
			cap = pages > 0 && pg > 0 ? (size_t)pages / 4 * (size_t)pg : (size_t)1 << 30;
		}
		if ((r = vault_knn_cache_open(v, cap)) < 0)
			goto fail;
	}
	v->purpose = o->purpose ? o->purpose : "open";
	pthread_mutex_lock(&v->mu);
	vault_audit(v, NULL, v->purpose, VV_ROOT_INO, 0, NULL, 0, dir);
	pthread_mutex_unlock(&v->mu);
	/* After the open record: purges of expired items are audited. */
	if ((r = vault_trash_open(v, o->trash_secs > 0 ? o->trash_secs * 1000000000LL : 0)) < 0)
		goto fail;
	/* Before the ticker, which reads bk.running to mark runs due. */
	if (!(o->flags & VV_VAULT_READONLY) && (r = vault_backup_sched_start(v, o)) < 0)
		goto fail;
	v->tick.run = true;
	if (pthread_create(&v->tick.thread, NULL, ticker, v) != 0) {
		v->tick.run = false;
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
	vault_knn_cache_close(v);                 /* background fills stop first */
	vault_backup_sched_stop(v);               /* a run ends between two objects */
	if (v->tick.run) {
		pthread_mutex_lock(&v->mu);
		v->tick.run = false;
		pthread_cond_signal(&v->tick.cv);
		pthread_mutex_unlock(&v->mu);
		pthread_join(v->tick.thread, NULL);
	}
	vault_ckpt_stop(v);                       /* before meta's final checkpoint */
	if (v->aud.log && v->purpose) {
		pthread_mutex_lock(&v->mu);
		vault_audit(v, NULL, "close", VV_ROOT_INO, 0, NULL, 0, v->purpose);
		pthread_mutex_unlock(&v->mu);
	}
	if (v->meta && !(v->flags & VV_VAULT_READONLY)) {
		r = vault_flush_all(v);
		pthread_mutex_lock(&v->mu);
		vault_trash_settle_all(v);            /* the next open need not */
		{
			int r2 = vault_commit_anchor(v);
			if (r == 0)
				r = r2;
		}
		pthread_mutex_unlock(&v->mu);
	}
	vault_trash_close(v);
	vault_data_sealer_stop(v);                /* nothing queued after flush_all */
	if (v->content)
		vault_unlink_freed(v, false);
	if (v->aud.log) {
		vv_audit_close(v->aud.log);
		v->aud.log = NULL;
		/* The final checkpoint arrives from the writer at close. */
		if (v->meta && !(v->flags & VV_VAULT_READONLY)) {
			pthread_mutex_lock(&v->mu);
			if (vault_seal_checkpoint(v) == 0)
				vault_commit_anchor(v);
			pthread_mutex_unlock(&v->mu);
		}
	}
	vault_data_files_free(v);
	vault_node_table_free(v);
	pthread_mutex_lock(&v->mu);
	vault_commit_quiesce(v);                  /* no WAL sync outside mu remains */
	pthread_mutex_unlock(&v->mu);
	{
		int r2 = vv_meta_close(v->meta);
		if (r == 0)
			r = r2;
	}
	vv_content_close(v->content);
	for (size_t i = 0; i < v->keys.n; i++)
		vv_secure_free(v->keys.colls[i].key);
	free(v->keys.colls);
	free(v->cm.unl);
	vv_secure_free(v->keys.wrap);
	vv_store_close(v->store);
	free(v->state_dir);
	free(v->audit_dir);
	pthread_mutex_destroy(&v->mu);
	pthread_mutex_destroy(&v->admit.mu);
	free(v->admit.c);
	pthread_cond_destroy(&v->tick.cv);
	pthread_cond_destroy(&v->cm.synced);
	pthread_cond_destroy(&v->push_cv);
	pthread_mutex_destroy(&v->seal.mu);
	pthread_mutex_destroy(&v->aud.ckpt_mu);
	pthread_cond_destroy(&v->seal.cv);
	pthread_cond_destroy(&v->seal.done);
	pthread_cond_destroy(&v->seal.turn);
	free(v);
	return r;
}

const char *vv_vault_id(const struct vv_vault *v)
{
	return vv_store_id(v->store);
}

const char *vv_vault_instance(const struct vv_vault *v)
{
	return v->instance;
}

int vv_vault_sync(struct vv_vault *v)
{
	int r = vault_flush_all(v), r2;

	pthread_mutex_lock(&v->mu);
	r2 = vault_commit_group(v, true);
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

void vv_vault_set_inval_wait(struct vv_vault *v, vv_inval_wait_fn wait)
{
	pthread_mutex_lock(&v->mu);
	v->inval_wait = wait;
	pthread_mutex_unlock(&v->mu);
}

void vv_vault_inval(struct vv_vault *v, uint64_t parent_or_ino, const char *name)
{
	if (v->inval)
		v->inval(v->inval_ctx, parent_or_ino, name);
}

void vv_vault_inval_flush(struct vv_vault *v)
{
	if (v->inval_wait)
		v->inval_wait(v->inval_ctx);
}

int vv_vault_statfs(struct vv_vault *v, const struct vv_ctx *c, uint64_t ino,
		    struct vv_statfs *out)
{
	struct statvfs sv;
	uint64_t inodes = 0;
	int r = 0;

	if (statvfs(vv_store_dir(v->store), &sv) < 0)
		r = vv_err_from_errno(errno);
	pthread_mutex_lock(&v->mu);
	if (r == 0)
		vv_meta_counts(v->meta, &inodes);
	if (c)
		vault_audit(v, c, "statfs", ino, 0, NULL, r, NULL);
	pthread_mutex_unlock(&v->mu);
	if (r < 0)
		return r;
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

