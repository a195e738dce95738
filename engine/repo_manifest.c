/*
 * repo_manifest.c - backup manifests in a repository (repo_int.h): the
 * rows cut into metadata packs, sealed and written as objects; a
 * manifest sealed and stored, loaded (version 1 or 2) and checked;
 * listed, found by prefix; the index of what the repository holds; and
 * the daemon's cache of manifests and packs.  The bytes are
 * repo_body.c's; their layout is docs/format.md "Backup repository"
 * (Manifests, Metadata packs).
 */
#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "buf.h"
#include "crypto_int.h"
#include "grow.h"
#include "repo_dest_int.h"
#include "vecvault/error.h"

#define MAN_MAGIC "VVBKMAN1"
#define MAN_VERSION 2                      /* written; 1 (rows inline) is still read */
#define MAN_VERSION_MIN 1
#define MAN_HDR 68

/*
 * The daemon's manifest cache (with the key cache, VV_REPO_KEY_CACHE): the
 * object list of each manifest of a repository it read or wrote, by name.
 * An incremental run needs every manifest's objects (vv_repo_index_load)
 * and decrypted all of them each time: a repository with a month of daily
 * backups cost a month of manifests per run.  A manifest never changes
 * (its name is its backup id, bound into its AEAD), so one read once
 * stays valid until it is gone from the listing (then dropped here).
 * Objects are still checked present at their size before being trusted.
 * Under vv_repo_cache_mu; at most MC_MAX repositories, the oldest
 * replaced.
 */
#define MC_MAX 4                           /* repositories, as the key cache */

struct mc_man {
	char name[VV_BACKUP_ID_HEX + 1];
	struct vv_bk_object *o;
	size_t n;
};

/* A metadata pack this daemon sealed or found, by the keyed hash of its
 * piece of the rows (pack_hash): an unchanged piece is neither sealed nor
 * written again (still checked present at its size before being named). */
struct mc_pack {
	uint8_t ph[VV_MAC_BYTES];
	struct vv_bk_pack p;
};
#define MC_PACKS_MAX 65536

static struct mc_repo {
	bool used;
	uint64_t last;
	uint8_t id[VV_REPO_ID_BYTES];
	struct mc_man *man;
	size_t n, cap;
	struct mc_pack *pk;
	size_t npk, cappk;
	uint32_t *ht;                      /* pk's index (mc_pack_find) */
	size_t htcap;
	/* The rows of the last manifest stored here and their packs: a run
	 * whose rows begin with the same bytes names the same packs for that
	 * prefix without cutting or hashing it again (encode_v2).  Plaintext
	 * metadata, as SQLite's page cache holds it; zeroed when dropped. */
	uint8_t *rows;
	size_t rlen;
	struct vv_bk_pack *rpk;
	size_t nrpk;
} mc[MC_MAX];
static uint64_t mc_tick;                   /* at each use: the oldest repository goes */
#define MC_ROWS_MAX (64u << 20)        /* larger rows are not kept */

static void mc_drop(struct mc_repo *c)
{
	for (size_t i = 0; i < c->n; i++)
		free(c->man[i].o);
	free(c->man);
	free(c->pk);
	free(c->ht);
	if (c->rows)
		vv_memzero(c->rows, c->rlen);
	free(c->rows);
	free(c->rpk);
	memset(c, 0, sizeof(*c));
}

/* The cache of repository id (made when absent), under vv_repo_cache_mu. */
static struct mc_repo *mc_of(const uint8_t id[VV_REPO_ID_BYTES])
{
	struct mc_repo *c = NULL;

	for (int i = 0; i < MC_MAX; i++) {
		if (mc[i].used && memcmp(mc[i].id, id, VV_REPO_ID_BYTES) == 0) {
			mc[i].last = ++mc_tick;
			return &mc[i];
		}
		if (!c || !mc[i].used || (c->used && mc[i].last < c->last))
			c = &mc[i];
	}
	mc_drop(c);
	c->used = true;
	c->last = ++mc_tick;
	memcpy(c->id, id, VV_REPO_ID_BYTES);
	return c;
}

static struct mc_man *mc_find(struct mc_repo *c, const char *name)
{
	for (size_t i = 0; i < c->n; i++)
		if (strcmp(c->man[i].name, name) == 0)
			return &c->man[i];
	return NULL;
}

/* Remember manifest name's objects (best effort: no memory, no entry). */
static void mc_add(struct mc_repo *c, const char *name, const struct vv_bk_object *o, size_t n)
{
	struct mc_man *e;

	if (mc_find(c, name))
		return;
	if (VV_GROW(c->man, c->n, c->cap) < 0)
		return;
	e = &c->man[c->n];
	snprintf(e->name, sizeof(e->name), "%s", name);
	e->n = n;
	e->o = NULL;
	if (n && !(e->o = malloc(n * sizeof(*o))))
		return;
	if (n)
		memcpy(e->o, o, n * sizeof(*o));
	c->n++;
}

/* c->pk is indexed by an open-addressing hash table of its positions + 1
 * (0: empty), at most half full, keyed by ph's first 8 bytes (ph is a
 * keyed MAC: uniform): a first backup of many packs looked each up in
 * all the others before. */
static const struct vv_bk_pack *mc_pack_find(struct mc_repo *c, const uint8_t ph[VV_MAC_BYTES])
{
	if (!c->htcap)
		return NULL;
	for (size_t h = (size_t)vv_get_le64(ph) & (c->htcap - 1);; h = (h + 1) & (c->htcap - 1)) {
		uint32_t v = c->ht[h];
		if (!v)
			return NULL;
		if (memcmp(c->pk[v - 1].ph, ph, VV_MAC_BYTES) == 0)
			return &c->pk[v - 1].p;
	}
}

static void mc_ht_put(uint32_t *ht, size_t htcap, const uint8_t ph[VV_MAC_BYTES], uint32_t v)
{
	size_t h = (size_t)vv_get_le64(ph) & (htcap - 1);

	while (ht[h])
		h = (h + 1) & (htcap - 1);
	ht[h] = v;
}

/* Best effort: no memory, no entry; full, start again. */
static void mc_pack_add(struct mc_repo *c, const uint8_t ph[VV_MAC_BYTES], const struct vv_bk_pack *p)
{
	if (mc_pack_find(c, ph))
		return;
	if (c->npk == MC_PACKS_MAX) {
		c->npk = 0;
		if (c->ht)
			memset(c->ht, 0, c->htcap * sizeof(*c->ht));
	}
	if ((c->npk + 1) * 2 > c->htcap) {
		size_t nc = c->htcap ? c->htcap * 2 : 256;
		uint32_t *nt = calloc(nc, sizeof(*nt));
		if (!nt)
			return;
		for (size_t i = 0; i < c->npk; i++)
			mc_ht_put(nt, nc, c->pk[i].ph, (uint32_t)i + 1);
		free(c->ht);
		c->ht = nt;
		c->htcap = nc;
	}
	if (VV_GROW(c->pk, c->npk, c->cappk) < 0)
		return;
	memcpy(c->pk[c->npk].ph, ph, VV_MAC_BYTES);
	c->pk[c->npk].p = *p;
	mc_ht_put(c->ht, c->htcap, ph, (uint32_t)++c->npk);
}

/* Keep only the manifests named in names (sorted). */
static void mc_keep(struct mc_repo *c, char **names, size_t n)
{
	size_t k = 0;

	for (size_t i = 0; i < c->n; i++) {
		bool listed = false;
		for (size_t j = 0; j < n && !listed; j++)
			listed = strcmp(names[j], c->man[i].name) == 0;
		if (listed)
			c->man[k++] = c->man[i];
		else
			free(c->man[i].o);
	}
	c->n = k;
}

void vv_repo_manifest_cache_drop(void)
{
	for (int i = 0; i < MC_MAX; i++)
		mc_drop(&mc[i]);
}

/* ---- manifests: metadata packs (version 2) ------------------------------------ */

/*
 * A version 2 manifest holds this backup's own fields (ids, times, names,
 * wrapped keys) and a list of packs; the rows (objects to extents, END!:
 * the same bytes for the same metadata) are cut into pieces at
 * content-defined boundaries (a gear hash over the bytes, its table keyed,
 * so where a cut falls tells nothing of the bytes around it), and each
 * piece is sealed deterministically (XChaCha20-Poly1305, the nonce a keyed
 * hash of the piece: equal pieces give equal packs under one repository
 * key, and nothing else repeats a nonce) and stored as an object named
 * like a chunk's.  An unchanged vault gives the same pieces, so a re-run
 * writes only its small manifest; a change re-seals the pieces it falls in.
 */
static int gear_table(struct vv_repo *r, uint64_t g[256])
{
	for (uint32_t i = 0; i < 256; i++) {
		uint8_t in[4], out[VV_MAC_BYTES];
		vv_put_le32(in, i);
		if (vv_mac(out, r->kgear, in, sizeof(in)) < 0)
			return VV_ECRYPTO;
		g[i] = vv_get_le64(out);
	}
	return 0;
}

/* A pack's bytes (buffered: small, and read by every list and index),
 * checked against its name: VV_ENOENT, VV_ECORRUPT. */
static int pack_read(struct vv_repo *r, const struct vv_bk_pack *pk, const char *hex, uint8_t **out,
		     size_t *len)
{
	uint8_t got[VV_REPO_NAME_BYTES];
	char xx[3] = { hex[0], hex[1], 0 };
	int dfd = -1, e;

	*out = NULL;
	if ((e = vv_repo_subdir(r, r->objfd, xx, false, &dfd)) < 0)
		return e;
	e = vv_repo_read_at(dfd, hex, pk->size, false, out, len);
	close(dfd);
	if (e == VV_EFBIG)
		e = VV_ECORRUPT;
	if (e == 0 && ((e = vv_repo_object_name(r, *out, *len, got)) < 0 ||
		       !vv_memeq_ct(got, pk->name, sizeof(got)))) {
		free(*out);
		*out = NULL;
		e = e < 0 ? e : VV_ECORRUPT;
	}
	return e;
}

/* decode_v2's pack source: the piece pack pk holds, from its object,
 * which must hash to its name, have its size and open. */
static int pack_open(void *ctx, const struct vv_bk_pack *pk, uint8_t *piece)
{
	struct vv_repo *r = ctx;
	uint8_t *f = NULL;
	char hex[65];
	size_t len = 0;
	int e;

	vv_hex_encode(hex, pk->name, VV_REPO_NAME_BYTES);
	if ((e = pack_read(r, pk, hex, &f, &len)) < 0) {
		snprintf(r->why, sizeof(r->why), "metadata pack %s: %s", hex, e == VV_ENOENT ? "missing" :
			 e == VV_ECORRUPT ? "altered: its bytes do not match its name" : vv_strerror(e));
		return e == VV_ENOENT ? VV_ECORRUPT : e;
	}
	if ((e = vv_repo_pack_unseal(r->kpack, r->id, pk, f, len, piece)) == VV_ECORRUPT)
		snprintf(r->why, sizeof(r->why), "metadata pack %s: altered or not of this repository "
			 "(does not authenticate)", hex);
	free(f);
	return e;
}

/* The pack of one piece: the cached one when its object is there, else
 * sealed and written (unless an earlier run wrote the same bytes). */
static int pack_put(struct vv_repo *r, const uint8_t *p, size_t len, struct vv_bk_pack *pk)
{
	uint8_t ph[VV_MAC_BYTES], *f = NULL;
	const struct vv_bk_pack *c;
	size_t flen = 0;
	bool hit = false;
	int e;

	if ((e = vv_hmac_sha256(ph, r->kpackn, p, len)) < 0)
		return e;
	if (r->cache) {
		pthread_mutex_lock(&vv_repo_cache_mu);
		if ((c = mc_pack_find(mc_of(r->id), ph))) {
			*pk = *c;
			hit = true;
		}
		pthread_mutex_unlock(&vv_repo_cache_mu);
		if (hit && pk->plen == len && vv_repo_object_have(r, pk->name, pk->size))
			return 0;
	}
	if ((e = vv_repo_pack_seal(r->kpack, r->id, p, len, ph, &f, &flen)) < 0)
		return e;
	pk->size = flen;
	pk->plen = (uint32_t)len;
	if ((e = vv_repo_object_name(r, f, flen, pk->name)) == 0 && !vv_repo_object_have(r, pk->name, flen)) {
		e = vv_repo_object_put(r, pk->name, f, flen);
		r->pk_written++;
		r->pk_bytes += flen;
	}
	free(f);
	if (e == 0 && r->cache) {
		pthread_mutex_lock(&vv_repo_cache_mu);
		mc_pack_add(mc_of(r->id), ph, pk);
		pthread_mutex_unlock(&vv_repo_cache_mu);
	}
	return e;
}

static int cmp_obj_chunk(const void *a, const void *b)
{
	return memcmp(((const struct vv_bk_object *)a)->chunk, ((const struct vv_bk_object *)b)->chunk,
		      VV_CHUNK_ID_BYTES);
}

/* The rows of the last manifest stored in repository r and their packs,
 * taken out of the cache (its slot left empty) so that a run compares and
 * stats them without vv_repo_cache_mu: the lock is held only to move the
 * pointers, never while a manifest is encoded or its packs are looked up.
 * A concurrent run of the same repository (the repository lock forbids
 * one; another daemon has its own cache) would find no rows and cut all
 * of its own: slower, never wrong. */
struct mc_rows {
	uint8_t *rows;
	size_t rlen;
	struct vv_bk_pack *rpk;
	size_t nrpk;
};

static void mc_rows_take(struct vv_repo *r, struct mc_rows *h)
{
	struct mc_repo *c;

	pthread_mutex_lock(&vv_repo_cache_mu);
	c = mc_of(r->id);
	h->rows = c->rows;
	h->rlen = c->rlen;
	h->rpk = c->rpk;
	h->nrpk = c->nrpk;
	c->rows = NULL;
	c->rlen = 0;
	c->rpk = NULL;
	c->nrpk = 0;
	pthread_mutex_unlock(&vv_repo_cache_mu);
}

static void mc_rows_free(struct mc_rows *h)
{
	if (h->rows)
		vv_memzero(h->rows, h->rlen);
	free(h->rows);
	free(h->rpk);
	memset(h, 0, sizeof(*h));
}

/* Hand h (rows and packs, taken over: *h emptied) to the cache of r;
 * unless newer, rows already there stay (h freed). */
static void mc_rows_give(struct vv_repo *r, struct mc_rows *h, bool newer)
{
	struct mc_repo *c;
	struct mc_rows old = { 0 };

	pthread_mutex_lock(&vv_repo_cache_mu);
	c = mc_of(r->id);
	if (newer || !c->rows) {
		old = (struct mc_rows){ c->rows, c->rlen, c->rpk, c->nrpk };
		c->rows = h->rows;
		c->rlen = h->rlen;
		c->rpk = h->rpk;
		c->nrpk = h->nrpk;
		memset(h, 0, sizeof(*h));
	}
	pthread_mutex_unlock(&vv_repo_cache_mu);
	mc_rows_free(&old);
	mc_rows_free(h);
}

/* The version 2 body of m: head, packs (written as needed), END!, pad. */
static int encode_v2(struct vv_repo *r, const struct vv_manifest *m, uint8_t **out, size_t *outlen)
{
	struct vv_manifest sm = *m;
	struct repo_obuf rows = { 0 };
	struct mc_rows last = { 0 };
	struct vv_bk_pack *pk = NULL;
	size_t npk = 0, cap = 0, off0 = 0;
	uint64_t g[256];
	int e = 0;

	/* Objects in chunk order whatever order the copy found them in. */
	if (m->nobjs) {
		if (!(sm.objs = malloc(m->nobjs * sizeof(*sm.objs))))
			return VV_ENOMEM;
		memcpy(sm.objs, m->objs, m->nobjs * sizeof(*sm.objs));
		qsort(sm.objs, sm.nobjs, sizeof(*sm.objs), cmp_obj_chunk);
	}
	r->pk_named = r->pk_written = r->pk_bytes = 0;
	if ((e = gear_table(r, g)) < 0)
		goto out;
	if (!r->cache) {
		vv_manifest_enc_rows(&rows, &sm);
		if ((e = rows.err) < 0)
			goto out;
	} else {
		/* The prefix the last run's rows share: its pieces and cuts are
		 * the same (a cut depends only on the bytes before it), except a
		 * last piece that ended with those rows rather than at a cut.
		 * The rows are compared with the last run's as they are made;
		 * when all are equal, they are never stored (rows.p NULL).
		 * The last run's rows are this run's alone meanwhile
		 * (mc_rows_take). */
		size_t same = 0, at = 0;
		bool equal;
		mc_rows_take(r, &last);
		if (last.rows) {
			rows.ref = last.rows;
			rows.reflen = last.rlen;
		}
		vv_manifest_enc_rows(&rows, &sm);
		if (rows.ref && rows.len != rows.reflen)
			vv_repo_ob_own(&rows);         /* a strict prefix of the last rows */
		equal = rows.ref != NULL;
		if ((e = rows.err) == 0 && last.rows) {
			size_t lim = last.rlen < rows.len ? last.rlen : rows.len;
			same = equal || rows.refsame > lim ? lim : rows.refsame;
			while (same < lim) {
				size_t b = lim - same < 65536 ? lim - same : 65536;
				if (memcmp(last.rows + same, rows.p + same, b) != 0)
					break;
				same += b;
			}
			while (same < lim && last.rows[same] == rows.p[same])
				same++;
			for (size_t i = 0; i < last.nrpk; i++) {
				size_t end = at + last.rpk[i].plen;
				if (end > same || (end == last.rlen && (same != last.rlen || rows.len != last.rlen)))
					break;
				if ((e = VV_GROW(pk, npk, cap)) < 0)
					break;
				pk[npk++] = last.rpk[i];
				at = end;
			}
		}
		/* Still there at their size, else sealed and written again
		 * (from stored rows). */
		for (size_t i = 0; e == 0 && i < npk; i++)
			if (!vv_repo_object_have(r, pk[i].name, pk[i].size)) {
				npk = i;
				break;
			}
		for (size_t i = 0; i < npk; i++)
			off0 += pk[i].plen;
		if (off0 < rows.len)
			vv_repo_ob_own(&rows);         /* pieces to cut and seal: the bytes */
		if (e == 0)
			e = rows.err;
		if (e < 0)
			goto out;
	}
	for (size_t off = off0, n; off < rows.len; off += n) {
		n = vv_repo_pack_cut(g, rows.p + off, rows.len - off);
		if ((e = VV_GROW(pk, npk, cap)) < 0 ||
		    (e = pack_put(r, rows.p + off, n, &pk[npk])) < 0)
			goto out;
		npk++;
	}
	r->pk_named = npk;
	if (r->cache && rows.p && rows.len <= MC_ROWS_MAX) {
		/* Keep these rows (handed over, not copied) for the next run;
		 * rows never stored (all equal to the last run's) leave those. */
		struct mc_rows keep = { rows.p, rows.len, malloc(npk * sizeof(*pk) + 1), npk };
		if (keep.rpk) {
			memcpy(keep.rpk, pk, npk * sizeof(*pk));
			rows.p = NULL;
			mc_rows_give(r, &keep, true);
		}
	}
	e = vv_manifest_encode_v2(m, pk, npk, out, outlen);
out:
	if (r->cache)                          /* not kept: back, unless newer ones came */
		mc_rows_give(r, &last, false);
	if (sm.objs != m->objs)
		free(sm.objs);
	if (rows.p)
		vv_memzero(rows.p, rows.len);
	free(rows.p);
	free(pk);
	return e;
}

const char *vv_repo_why(const struct vv_repo *r)
{
	return r->why;
}

void vv_repo_packs_stats(const struct vv_repo *r, uint64_t *named, uint64_t *written,
			 uint64_t *bytes_written)
{
	*named = r->pk_named;
	*written = r->pk_written;
	*bytes_written = r->pk_bytes;
}

/* ---- manifests: sealed files -------------------------------------------------- */

int vv_repo_manifest_store(struct vv_repo *r, const struct vv_manifest *m)
{
	uint8_t *body = NULL, *file = NULL;
	char hex[VV_BACKUP_ID_HEX + 1];
	struct vv_wbuf w;
	size_t blen = 0, flen;
	int e;

	if ((e = encode_v2(r, m, &body, &blen)) < 0)
		return e;
	flen = MAN_HDR + blen + VV_TAG_BYTES;
	if (!(file = vv_repo_buf_alloc(flen))) {   /* aligned: written O_DIRECT */
		e = VV_ENOMEM;
		goto out;
	}
	vv_wbuf_init(&w, file, MAN_HDR);
	vv_wbuf_put_bytes(&w, MAN_MAGIC, 8);
	vv_wbuf_put_u32(&w, MAN_VERSION);
	vv_wbuf_put_bytes(&w, r->id, VV_REPO_ID_BYTES);
	vv_wbuf_put_bytes(&w, m->id, VV_BACKUP_ID_BYTES);
	vv_random_bytes(file + 44, VV_XNONCE_BYTES);
	if ((e = vv_xchacha_seal(file + MAN_HDR, file + MAN_HDR + blen, body, blen, file, MAN_HDR,
				 file + 44, r->kman)) < 0)
		goto out;
	/* Every object it names is durable first (the caller wrote them). */
	if ((e = vv_repo_objects_sync(r)) < 0)
		goto out;
	vv_hex_encode(hex, m->id, VV_BACKUP_ID_BYTES);
	if ((e = vv_repo_write_at(r, r->manfd, hex, file, flen)) < 0)
		goto out;
	if (fsync(r->manfd) < 0)
		e = vv_repo_oserr(errno);
	else if (r->cache) {
		/* The next run's index need not read it back. */
		pthread_mutex_lock(&vv_repo_cache_mu);
		mc_add(mc_of(r->id), hex, m->objs, m->nobjs);
		pthread_mutex_unlock(&vv_repo_cache_mu);
	}
out:
	if (body)
		vv_memzero(body, blen);
	free(body);
	free(file);
	return e;
}

static bool is_hex(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
			return false;
	return s[n] == 0;
}

int vv_repo_manifest_head(const uint8_t *file, size_t len, uint32_t *ver, uint8_t rid[VV_REPO_ID_BYTES],
			  uint8_t bid[VV_BACKUP_ID_BYTES])
{
	struct vv_rbuf b;
	uint8_t magic[8];

	vv_rbuf_init(&b, file, len);
	if (len < MAN_HDR + VV_TAG_BYTES || vv_rbuf_get_bytes(&b, magic, 8) < 0 ||
	    memcmp(magic, MAN_MAGIC, 8) != 0 || vv_rbuf_get_u32(&b, ver) < 0)
		return VV_ECORRUPT;
	if (*ver < MAN_VERSION_MIN || *ver > MAN_VERSION)
		return VV_EFORMAT;
	if (vv_rbuf_get_bytes(&b, rid, VV_REPO_ID_BYTES) < 0 || vv_rbuf_get_bytes(&b, bid, VV_BACKUP_ID_BYTES) < 0)
		return VV_ECORRUPT;
	return 0;
}

int vv_repo_manifest_load(struct vv_repo *r, const char *id_hex, struct vv_manifest *m)
{
	uint8_t *file = NULL, *body = NULL, bid[VV_BACKUP_ID_BYTES];
	uint8_t rid[VV_REPO_ID_BYTES], fid[VV_BACKUP_ID_BYTES];
	uint32_t ver;
	size_t len = 0, blen;
	int e;

	memset(m, 0, sizeof(*m));
	r->why[0] = 0;
	if (!is_hex(id_hex, VV_BACKUP_ID_HEX) || vv_hex_decode(bid, sizeof(bid), id_hex, VV_BACKUP_ID_HEX) < 0)
		return VV_EINVAL;
	if ((e = vv_repo_read_at(r->manfd, id_hex, VV_REPO_MANIFEST_MAX, true, &file, &len)) < 0)
		return e;
	if ((e = vv_repo_manifest_head(file, len, &ver, rid, fid)) < 0)
		goto out;
	/* A manifest of another repository, or renamed: not this backup. */
	if (memcmp(rid, r->id, sizeof(rid)) != 0 || memcmp(fid, bid, sizeof(fid)) != 0) {
		e = VV_ECORRUPT;
		goto out;
	}
	blen = len - MAN_HDR - VV_TAG_BYTES;
	if (!(body = malloc(blen ? blen : 1))) {
		e = VV_ENOMEM;
		goto out;
	}
	if ((e = vv_xchacha_open(body, file + MAN_HDR, blen, file + MAN_HDR + blen, file, MAN_HDR,
				 file + 44, r->kman)) < 0) {
		e = VV_ECORRUPT;
		goto out;
	}
	if ((e = ver == 1 ? vv_manifest_decode(body, blen, m) :
	     vv_manifest_decode_v2(body, blen, pack_open, r, m)) < 0)
		goto out;
	if (memcmp(m->id, bid, sizeof(bid)) != 0) {
		vv_manifest_free(m);
		e = VV_ECORRUPT;
	}
out:
	if (body)
		vv_memzero(body, blen);
	free(body);
	free(file);
	return e;
}

void vv_repo_names_free(char **names, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(names[i]);
	free(names);
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

int vv_repo_manifest_names(struct vv_repo *r, char ***out, size_t *nout)
{
	char **names = NULL;
	size_t n = 0, cap = 0;
	struct dirent *de;
	DIR *d;
	int fd, e = 0;

	if ((fd = dup(r->manfd)) < 0 || !(d = fdopendir(fd))) {
		if (fd >= 0)
			close(fd);
		return vv_repo_oserr(errno);
	}
	rewinddir(d);
	while ((de = readdir(d))) {
		if (!is_hex(de->d_name, VV_BACKUP_ID_HEX))
			continue;       /* ., .., .tmp-* of an interrupted run */
		if (VV_GROW(names, n, cap) < 0) {
			e = VV_ENOMEM;
			break;
		}
		if (!(names[n] = strdup(de->d_name))) {
			e = VV_ENOMEM;
			break;
		}
		n++;
	}
	closedir(d);
	if (e < 0) {
		vv_repo_names_free(names, n);
		return e;
	}
	if (n > 1)      /* (NULL when empty, which qsort must not be given) */
		qsort(names, n, sizeof(*names), cmp_str);
	*out = names;
	*nout = n;
	return 0;
}

static int cmp_info(const void *a, const void *b)
{
	const struct vv_backup_info *x = a, *y = b;

	return x->created < y->created ? -1 : x->created > y->created ? 1 : strcmp(x->id, y->id);
}

int vv_repo_list(struct vv_repo *r, int (*cb)(void *ctx, const struct vv_backup_info *b),
		 void (*bad)(void *ctx, const char *manifest, int code), void *ctx)
{
	struct vv_backup_info *infos = NULL;
	struct vv_manifest m;
	char **names = NULL;
	size_t n = 0, k = 0;
	int e, ret = 0;

	if ((e = vv_repo_manifest_names(r, &names, &n)) < 0)
		return e;
	if (n && !(infos = calloc(n, sizeof(*infos)))) {
		e = VV_ENOMEM;
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		if ((e = vv_repo_manifest_load(r, names[i], &m)) < 0) {
			if (bad)
				bad(ctx, names[i], e);
			ret = VV_ECORRUPT;
			continue;
		}
		infos[k++] = m.info;
		vv_manifest_free(&m);
	}
	if (k > 1)
		qsort(infos, k, sizeof(*infos), cmp_info);
	e = 0;
	for (size_t i = 0; i < k && e == 0; i++)
		e = cb(ctx, &infos[i]);
	if (e == 0)
		e = ret;
out:
	free(infos);
	vv_repo_names_free(names, n);
	return e;
}

int vv_repo_find(struct vv_repo *r, const char *prefix, char id_hex[VV_BACKUP_ID_HEX + 1])
{
	char **names = NULL;
	size_t n = 0, pl = strlen(prefix), hits = 0;
	int e;

	if (pl < 4 || pl > VV_BACKUP_ID_HEX)
		return VV_EINVAL;
	if ((e = vv_repo_manifest_names(r, &names, &n)) < 0)
		return e;
	for (size_t i = 0; i < n; i++)
		if (strncmp(names[i], prefix, pl) == 0) {
			if (hits++ == 0)
				memcpy(id_hex, names[i], VV_BACKUP_ID_HEX + 1);
		}
	vv_repo_names_free(names, n);
	return hits == 0 ? VV_ENOENT : hits > 1 ? VV_EEXIST : 0;
}

/* ---- the index of what is there ------------------------------------------------ */

/* Append n objects to ix (capacity *cap). */
static int ix_add(struct vv_repo_index *ix, size_t *cap, const struct vv_bk_object *o, size_t n)
{
	if (vv_grow(&ix->o, cap, ix->n + n, sizeof(*ix->o)) < 0)
		return VV_ENOMEM;
	if (n)
		memcpy(ix->o + ix->n, o, n * sizeof(*o));
	ix->n += n;
	return 0;
}

int vv_repo_index_load(struct vv_repo *r, struct vv_repo_index *ix)
{
	struct vv_manifest m;
	char **names = NULL;
	size_t n = 0, cap = 0;
	int e;

	memset(ix, 0, sizeof(*ix));
	if ((e = vv_repo_manifest_names(r, &names, &n)) < 0)
		return e;
	for (size_t i = 0; i < n; i++) {
		if (r->cache) {
			struct mc_man *f;
			bool hit = false;
			pthread_mutex_lock(&vv_repo_cache_mu);
			if ((f = mc_find(mc_of(r->id), names[i]))) {
				e = ix_add(ix, &cap, f->o, f->n);
				hit = true;
			}
			pthread_mutex_unlock(&vv_repo_cache_mu);
			if (e < 0)
				goto out;
			if (hit)
				continue;
		}
		/* A manifest that does not read adds nothing: its objects are
		 * then hashed and checked again. */
		if (vv_repo_manifest_load(r, names[i], &m) < 0)
			continue;
		e = ix_add(ix, &cap, m.objs, m.nobjs);
		if (e == 0 && r->cache) {
			pthread_mutex_lock(&vv_repo_cache_mu);
			mc_add(mc_of(r->id), names[i], m.objs, m.nobjs);
			pthread_mutex_unlock(&vv_repo_cache_mu);
		}
		vv_manifest_free(&m);
		if (e < 0)
			goto out;
	}
	if (r->cache) {
		/* Forgotten manifests leave the cache too. */
		pthread_mutex_lock(&vv_repo_cache_mu);
		mc_keep(mc_of(r->id), names, n);
		pthread_mutex_unlock(&vv_repo_cache_mu);
	}
	if (ix->n)
		qsort(ix->o, ix->n, sizeof(*ix->o), cmp_obj_chunk);
out:
	vv_repo_names_free(names, n);
	if (e < 0)
		vv_repo_index_free(ix);
	return e;
}

const struct vv_bk_object *vv_repo_index_find(const struct vv_repo_index *ix,
					      const uint8_t chunk[VV_CHUNK_ID_BYTES])
{
	struct vv_bk_object key;

	if (!ix->n)
		return NULL;
	memcpy(key.chunk, chunk, VV_CHUNK_ID_BYTES);
	return bsearch(&key, ix->o, ix->n, sizeof(*ix->o), cmp_obj_chunk);
}

void vv_repo_index_free(struct vv_repo_index *ix)
{
	free(ix->o);
	memset(ix, 0, sizeof(*ix));
}
