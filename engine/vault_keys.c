/*
 * vault_keys.c - collection data keys: each collection has its own random
 * key, wrapped by the master key's wrapping subkey in meta.db (AD: the
 * collection id) and unwrapped on first use into secure memory.  Dropping a
 * collection's row destroys its data (crypto-shredding).
 */
#include <stdlib.h>
#include <string.h>

#include "crypto_int.h"
#include "snap_int.h"
#include "vault_int.h"
#include "vecvault/error.h"
#include "vecvault/log.h"

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

	for (size_t i = 0; i < v->keys.n; i++)
		if (v->keys.colls[i].id == coll) {
			*key = v->keys.colls[i].key;
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
	if ((r = vv_key_unwrap(k, wrapped, v->keys.wrap, ad, sizeof(ad))) < 0) {
		vv_log(VV_LOG_ERR, "vault: key of collection %u does not authenticate", coll);
		vv_secure_free(k);
		return VV_ECORRUPT;
	}
	nc = realloc(v->keys.colls, (v->keys.n + 1) * sizeof(*nc));
	if (!nc) {
		vv_secure_free(k);
		return VV_ENOMEM;
	}
	v->keys.colls = nc;
	v->keys.colls[v->keys.n].id = coll;
	v->keys.colls[v->keys.n].key = k;
	v->keys.n++;
	*key = k;
	return 0;
}

/* A new collection holding data key k, wrapped under wrapkey in m's open
 * transaction.  Shared by vault_coll_key_new and backup restore (which
 * brings the keys of its collections). */
int vault_coll_key_put(struct vv_meta *m, const uint8_t *wrapkey, const uint8_t *k, uint32_t *id)
{
	uint8_t wrapped[VV_WRAPPED_BYTES], ad[12], probe[VV_WRAPPED_BYTES];
	uint32_t again;
	int r;

	/* The id is assigned by the insert; wrap with AD naming it, so insert a
	 * placeholder first, then store the real wrapping. */
	memset(probe, 0, sizeof(probe));
	if ((r = vv_meta_coll_add(m, probe, sizeof(probe), id)) < 0)
		return r;
	coll_ad(*id, ad);
	if ((r = vv_key_wrap(wrapped, k, wrapkey, ad, sizeof(ad))) < 0 ||
	    (r = vv_meta_coll_del(m, *id)) < 0 ||
	    (r = vv_meta_coll_add(m, wrapped, sizeof(wrapped), &again)) < 0)
		return r;
	return again == *id ? 0 : VV_EIO;
}

/* A new collection with a fresh random data key, wrapped under wrapkey in
 * m's open transaction.  Shared by vault_coll_new and store creation (which
 * has no open vault yet). */
int vault_coll_key_new(struct vv_meta *m, const uint8_t *wrapkey, uint32_t *id)
{
	uint8_t *k = vv_secure_alloc(VV_KEY_BYTES);
	int r;

	if (!k)
		return VV_ENOMEM;
	vv_random_bytes(k, VV_KEY_BYTES);
	r = vault_coll_key_put(m, wrapkey, k, id);
	vv_secure_free(k);
	return r;
}

int vault_coll_new(struct vv_vault *v, uint32_t *id)
{
	return vault_coll_key_new(v->meta, v->keys.wrap, id);
}

/* Crypto-shredding: collection id's key goes, its row in the caller's
 * transaction (the one that deleted the last row needing it, or a later
 * one: never before it) and every copy in memory now.  A crash before
 * that commit leaves the key and its user, or, once the user's deletion
 * is durable, the key alone for the next writable open (vault_coll_gc). */
static int coll_drop(struct vv_vault *v, uint32_t id)
{
	for (size_t i = 0; i < v->keys.n; i++)
		if (v->keys.colls[i].id == id) {
			vv_secure_free(v->keys.colls[i].key);
			v->keys.colls[i] = v->keys.colls[--v->keys.n];
			/* Nothing derived from the key outlives it: the block
			 * cache's plaintext and chunk-key contexts, and the copy
			 * read-ahead keeps between requests. */
			vv_content_cache_drop(v->content);
			break;
		}
	v->keys.dropping = true;            /* the settle after its commit */
	return vv_meta_coll_del(v->meta, id);
}

/* The wrapped key of a dropped row stays on disk after its commit: in the
 * WAL frames of the pages that held it (the last commit's and older ones,
 * which the WAL keeps past a restart until overwritten; journal_size_limit
 * truncates it to 4 MiB, not to 0) and, until a checkpoint copies the
 * zeroed page (secure_delete=ON, meta_vfs_open.c), in meta.db.  Once the
 * dropping commit is durable (so the zeroed page is the one a crash keeps)
 * and no transaction is open, the settle copies the WAL into meta.db and
 * truncates it to 0 bytes.  A crash before it leaves the bytes for the
 * next writable open, which settles unconditionally (force).  It runs
 * under mu: the frames a pass has not copied yet (up to the bound, a few
 * MiB) and two fsyncs, once per commit that dropped keys, never for other
 * commits. */
void vault_keys_settle(struct vv_vault *v, bool force)
{
	int r;

	if (v->flags & VV_VAULT_READONLY)
		return;
	if (!force && (!v->keys.shred_seq || v->cm.durable < v->keys.shred_seq))
		return;
	if (vv_meta_in_txn(v->meta))
		return;                     /* the next commit or transaction start */
	r = vv_meta_shred(v->meta);
	if (r == VV_EBUSY)
		return;                     /* a pass runs: later */
	if (r < 0) {
		if (!v->keys.shred_failing)
			vv_log(VV_LOG_WARN, "vault: cannot shred dropped collection keys on disk (%s); "
			       "tried again after the next commits", vv_strerror(r));
		v->keys.shred_failing = true;
		return;
	}
	v->keys.shred_failing = false;
	v->keys.shred_seq = 0;
	v->keys.shreds++;
	/* The log is empty now: no pass has anything to finish. */
	v->ckpt.ready = false;
	v->ckpt.last = 0;
}

int vault_coll_release(struct vv_vault *v, uint32_t id, uint64_t except)
{
	bool needed = true;
	int r;

	if (id == v->root_coll || (v->flags & VV_VAULT_READONLY))
		return 0;
	if ((r = vault_txn(v)) < 0 || (r = vv_meta_coll_needed(v->meta, id, except, &needed)) < 0)
		return r;
	if (needed)
		return 0;
	return (r = coll_drop(v, id)) < 0 ? r : 1;
}

int vault_coll_gc(struct vv_vault *v, int *dropped)
{
	uint32_t *ids = NULL;
	size_t n = 0;
	int r;

	*dropped = 0;
	if ((r = vv_meta_coll_ids(v->meta, v->root_coll, &ids, &n)) < 0)
		return r;
	for (size_t i = 0; r >= 0 && i < n; i++)
		if ((r = vault_coll_release(v, ids[i], 0)) > 0)
			(*dropped)++;
	free(ids);
	return r < 0 ? r : 0;
}
