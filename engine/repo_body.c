/*
 * repo_body.c - a backup manifest's body and a metadata pack as bytes
 * (repo_int.h, repo_dest_int.h): the manifest's in-memory form; its body
 * encoded and decoded, version 1 (rows inline) and 2 (rows in packs);
 * where the rows are cut into pieces; a pack sealed and opened.  No file
 * is read or written here and no struct vv_repo is used: the fuzzers run
 * the decoders (tests/fuzz/fuzz_backup.c, fuzz_backup_v2.c), and
 * repo_manifest.c stores and loads what this file makes of bytes.
 *
 * Byte layouts: docs/format.md "Backup repository" (Manifests, Metadata
 * packs).  Every count and length is untrusted until checked against the
 * bytes left.
 */
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "crypto_int.h"
#include "grow.h"
#include "repo_dest_int.h"
#include "vecvault/error.h"

#define BODY_MAGIC "VVBKBODY"
#define BODY_PAD 4096
#define PACK_MAGIC "VVBKPACK"
#define PACK_HDR (8 + VV_XNONCE_BYTES)     /* magic, nonce; then ct, tag */
#define PACK_PAD 4096                      /* u32 length + piece + zeros: a multiple */
#define PACK_MIN (16u << 10)               /* content-defined cuts: no piece shorter, */
#define PACK_MAX (256u << 10)              /* ... none longer (but the last), */
#define PACK_MASK ((1u << 16) - 1)         /* ... about 64 KiB past the minimum */

/* ---- manifests: the in-memory form ------------------------------------------ */

void vv_manifest_free(struct vv_manifest *m)
{
	for (size_t i = 0; i < m->ninodes; i++)
		free(m->inodes[i].data);
	for (size_t i = 0; i < m->ndirents; i++)
		free(m->dirents[i].name);
	for (size_t i = 0; i < m->nxattrs; i++) {
		free(m->xattrs[i].name);
		free(m->xattrs[i].val);
	}
	if (m->colls)
		vv_memzero(m->colls, m->ncolls * sizeof(*m->colls));
	free(m->colls);
	free(m->objs);
	free(m->inodes);
	free(m->dirents);
	free(m->xattrs);
	free(m->extents);
	free(m->packs);
	memset(m, 0, sizeof(*m));
}

#define GROW(m, arr, n, cap) VV_GROW((m)->arr, (m)->n, (m)->cap)

static void *dupmem(const void *p, size_t n, bool nul)
{
	uint8_t *d = malloc(n + (nul ? 1 : 0) + (n == 0));

	if (d) {
		if (n)
			memcpy(d, p, n);
		if (nul)
			d[n] = 0;
	}
	return d;
}

int vv_manifest_add_inode(struct vv_manifest *m, const struct vv_inode_row *r, const void *data,
			  size_t len)
{
	struct vv_bk_inode *in;

	if (len > UINT32_MAX)
		return VV_EFBIG;
	if (GROW(m, inodes, ninodes, capi) < 0)
		return VV_ENOMEM;
	in = &m->inodes[m->ninodes];
	in->r = *r;
	in->datalen = (uint32_t)len;
	in->data = NULL;
	if (len && !(in->data = dupmem(data, len, false)))
		return VV_ENOMEM;
	m->ninodes++;
	return 0;
}

int vv_manifest_add_dirent(struct vv_manifest *m, uint64_t parent, const char *name, uint64_t id,
			   uint64_t ino, uint32_t mode)
{
	struct vv_bk_dirent *d;
	size_t nl = strlen(name);

	if (nl == 0 || nl > 255)
		return VV_ECORRUPT;
	if (GROW(m, dirents, ndirents, capd) < 0)
		return VV_ENOMEM;
	d = &m->dirents[m->ndirents];
	*d = (struct vv_bk_dirent){ .parent = parent, .id = id, .ino = ino, .mode = mode };
	if (!(d->name = dupmem(name, nl, true)))
		return VV_ENOMEM;
	m->ndirents++;
	return 0;
}

int vv_manifest_add_xattr(struct vv_manifest *m, uint64_t ino, const char *name, const void *val,
			  size_t len)
{
	struct vv_bk_xattr *x;
	size_t nl = strlen(name);

	if (nl == 0 || nl > 255 || len > UINT32_MAX)
		return VV_ECORRUPT;
	if (GROW(m, xattrs, nxattrs, capx) < 0)
		return VV_ENOMEM;
	x = &m->xattrs[m->nxattrs];
	*x = (struct vv_bk_xattr){ .ino = ino, .vlen = (uint32_t)len };
	if (!(x->name = dupmem(name, nl, true)) || !(x->val = dupmem(val, len, false))) {
		free(x->name);
		return VV_ENOMEM;
	}
	m->nxattrs++;
	return 0;
}

int vv_manifest_add_extent(struct vv_manifest *m, uint64_t ino, const struct vv_extent *e)
{
	if (GROW(m, extents, nextents, cape) < 0)
		return VV_ENOMEM;
	m->extents[m->nextents++] = (struct vv_bk_extent){ .ino = ino, .e = *e };
	return 0;
}

int vv_manifest_add_coll(struct vv_manifest *m, uint32_t id, const uint8_t wrapped[VV_WRAPPED_BYTES])
{
	if (GROW(m, colls, ncolls, capc) < 0)
		return VV_ENOMEM;
	m->colls[m->ncolls].id = id;
	memcpy(m->colls[m->ncolls].wrapped, wrapped, VV_WRAPPED_BYTES);
	m->ncolls++;
	return 0;
}

int vv_manifest_add_object(struct vv_manifest *m, const uint8_t *chunk, const uint8_t *name,
			   uint64_t size)
{
	struct vv_bk_object *o;

	if (GROW(m, objs, nobjs, capo) < 0)
		return VV_ENOMEM;
	o = &m->objs[m->nobjs++];
	memcpy(o->chunk, chunk, VV_CHUNK_ID_BYTES);
	memcpy(o->name, name, VV_REPO_NAME_BYTES);
	o->size = size;
	return 0;
}

/* ---- manifests: the body's bytes --------------------------------------------- */

/* The output buffer: struct repo_obuf (repo_dest_int.h). */

void vv_repo_ob_own(struct repo_obuf *o)
{
	size_t nc = o->cap > o->len ? o->cap : o->len;

	if (!o->ref)
		return;
	o->refsame = o->len;
	if (!(o->p = malloc(nc ? nc : 1))) {
		o->err = VV_ENOMEM;
		o->cap = 0;
	} else {
		memcpy(o->p, o->ref, o->len);
		o->cap = nc;
	}
	o->ref = NULL;
}

/* Capacity exactly nc (>= o->len): 0, or VV_ENOMEM, which sticks. */
static int ob_cap(struct repo_obuf *o, size_t nc)
{
	uint8_t *np = realloc(o->p, nc);

	if (!np)
		return o->err = VV_ENOMEM;
	o->p = np;
	o->cap = nc;
	return 0;
}

static void ob_put(struct repo_obuf *o, const void *v, size_t n)
{
	if (o->err || n == 0)
		return;            /* (v may then be NULL: no memcmp/memcpy of it) */
	if (o->ref) {
		if (n <= o->reflen - o->len && memcmp(o->ref + o->len, v, n) == 0) {
			o->len += n;
			return;
		}
		vv_repo_ob_own(o);
		if (o->err)
			return;
	}
	if (n > o->cap - o->len) {
		size_t nc = o->cap ? o->cap : 65536;
		while (nc - o->len < n) {
			if (nc > VV_REPO_MANIFEST_MAX) {
				o->err = VV_EFBIG;
				return;
			}
			nc *= 2;
		}
		if (ob_cap(o, nc) < 0)
			return;
	}
	if (n)
		memcpy(o->p + o->len, v, n);
	o->len += n;
}

static void ob_u16(struct repo_obuf *o, uint16_t v)
{
	uint8_t b[2] = { (uint8_t)v, (uint8_t)(v >> 8) };

	ob_put(o, b, 2);
}

static void ob_u32(struct repo_obuf *o, uint32_t v)
{
	uint8_t b[4];

	vv_put_le32(b, v);
	ob_put(o, b, 4);
}

static void ob_u64(struct repo_obuf *o, uint64_t v)
{
	uint8_t b[8];

	vv_put_le64(b, v);
	ob_put(o, b, 8);
}

static void ob_str(struct repo_obuf *o, const char *s)
{
	size_t n = strnlen(s, 255);

	ob_u16(o, (uint16_t)n);
	ob_put(o, s, n);
}

/* The body's fields up to and with the collections: what is this
 * backup's own (ids, times, names, keys wrapped with a fresh nonce). */
static void enc_head(struct repo_obuf *o, const struct vv_manifest *m)
{
	ob_put(o, BODY_MAGIC, 8);
	ob_put(o, m->id, VV_BACKUP_ID_BYTES);
	ob_put(o, m->store_id, 16);
	ob_u64(o, (uint64_t)m->info.created);
	ob_u64(o, (uint64_t)m->info.snap_created);
	ob_str(o, m->info.snapshot);
	ob_str(o, m->info.tag);
	ob_u64(o, m->info.files);
	ob_u64(o, m->info.bytes);
	ob_u32(o, m->root_coll);
	ob_u32(o, (uint32_t)m->ncolls);
	for (size_t i = 0; i < m->ncolls; i++) {
		ob_u32(o, m->colls[i].id);
		ob_put(o, m->colls[i].wrapped, VV_WRAPPED_BYTES);
	}
}

/* The bytes enc_rows writes for m (SIZE_MAX: more than fits). */
static size_t rows_size(const struct vv_manifest *m)
{
	size_t n = 8 + m->nobjs * (VV_CHUNK_ID_BYTES + VV_REPO_NAME_BYTES + 8) + 8 + 8 + 8 + 8 + 4;

	for (size_t i = 0; i < m->ninodes; i++)
		n += 8 + 8 + 4 * 4 + 8 * 6 + 4 + VV_OBJID_BYTES + 8 + 4 + m->inodes[i].datalen;
	for (size_t i = 0; i < m->ndirents; i++)
		n += 8 * 3 + 4 + 2 + strnlen(m->dirents[i].name, 255);
	for (size_t i = 0; i < m->nxattrs; i++)
		n += 8 + 2 + strnlen(m->xattrs[i].name, 255) + 4 + m->xattrs[i].vlen;
	if (m->nextents > (SIZE_MAX - n) / (8 + 8 + VV_CHUNK_ID_BYTES + 12))
		return SIZE_MAX;
	return n + m->nextents * (8 + 8 + VV_CHUNK_ID_BYTES + 12);
}

/* The buffer is sized once (rows_size): megabytes of rows are not copied
 * again as it grows. */
void vv_manifest_enc_rows(struct repo_obuf *o, const struct vv_manifest *m)
{
	size_t need = rows_size(m);

	if (o->err)
		return;
	if (need > VV_REPO_MANIFEST_MAX) {   /* could not be read back */
		o->err = VV_EFBIG;
		return;
	}
	if (o->ref)
		o->cap = o->len + need;    /* what vv_repo_ob_own allocates */
	else if (need > o->cap - o->len && ob_cap(o, o->len + need) < 0)
		return;
	ob_u64(o, m->nobjs);
	for (size_t i = 0; i < m->nobjs; i++) {
		ob_put(o, m->objs[i].chunk, VV_CHUNK_ID_BYTES);
		ob_put(o, m->objs[i].name, VV_REPO_NAME_BYTES);
		ob_u64(o, m->objs[i].size);
	}
	ob_u64(o, m->ninodes);
	for (size_t i = 0; i < m->ninodes; i++) {
		const struct vv_inode_row *r = &m->inodes[i].r;
		ob_u64(o, r->ino);
		ob_u64(o, r->gen);
		ob_u32(o, r->mode);
		ob_u32(o, r->uid);
		ob_u32(o, r->gid);
		ob_u32(o, r->nlink);
		ob_u64(o, r->size);
		ob_u64(o, r->rdev);
		ob_u64(o, (uint64_t)r->atime);
		ob_u64(o, (uint64_t)r->mtime);
		ob_u64(o, (uint64_t)r->ctime);
		ob_u64(o, r->parent);
		ob_u32(o, r->coll);
		ob_put(o, r->objid, VV_OBJID_BYTES);
		ob_u64(o, r->stored);
		ob_u32(o, m->inodes[i].datalen);
		ob_put(o, m->inodes[i].data, m->inodes[i].datalen);
	}
	ob_u64(o, m->ndirents);
	for (size_t i = 0; i < m->ndirents; i++) {
		const struct vv_bk_dirent *d = &m->dirents[i];
		ob_u64(o, d->parent);
		ob_u64(o, d->id);
		ob_u64(o, d->ino);
		ob_u32(o, d->mode);
		ob_str(o, d->name);
	}
	ob_u64(o, m->nxattrs);
	for (size_t i = 0; i < m->nxattrs; i++) {
		const struct vv_bk_xattr *x = &m->xattrs[i];
		ob_u64(o, x->ino);
		ob_str(o, x->name);
		ob_u32(o, x->vlen);
		ob_put(o, x->val, x->vlen);
	}
	ob_u64(o, m->nextents);
	for (size_t i = 0; i < m->nextents; i++) {
		const struct vv_bk_extent *e = &m->extents[i];
		ob_u64(o, e->ino);
		ob_u64(o, e->e.fblock);
		ob_put(o, e->e.chunk_id, VV_CHUNK_ID_BYTES);
		ob_u32(o, e->e.off);
		ob_u32(o, e->e.len);
		ob_u32(o, e->e.slot);
	}
	ob_put(o, "END!", 4);
}

int vv_manifest_encode(const struct vv_manifest *m, uint8_t **out, size_t *outlen)
{
	struct repo_obuf o = { 0 };
	static const uint8_t zero[BODY_PAD];

	enc_head(&o, m);
	vv_manifest_enc_rows(&o, m);
	/* Pad, so the sealed size tells only the metadata's size to 4 KiB. */
	ob_put(&o, zero, (BODY_PAD - o.len % BODY_PAD) % BODY_PAD);
	if (o.err) {
		free(o.p);
		return o.err;
	}
	*out = o.p;
	*outlen = o.len;
	return 0;
}

int vv_manifest_encode_v2(const struct vv_manifest *m, const struct vv_bk_pack *pk, size_t npk,
			  uint8_t **out, size_t *outlen)
{
	static const uint8_t zero[BODY_PAD];
	struct repo_obuf o = { 0 };

	enc_head(&o, m);
	ob_u32(&o, (uint32_t)npk);
	for (size_t i = 0; i < npk; i++) {
		ob_put(&o, pk[i].name, VV_REPO_NAME_BYTES);
		ob_u64(&o, pk[i].size);
		ob_u32(&o, pk[i].plen);
	}
	ob_put(&o, "END!", 4);
	ob_put(&o, zero, (BODY_PAD - o.len % BODY_PAD) % BODY_PAD);
	if (o.err) {
		free(o.p);
		return o.err;
	}
	*out = o.p;
	*outlen = o.len;
	return 0;
}

static int get_str(struct vv_rbuf *b, char *out, size_t cap, bool need)
{
	uint16_t n;

	if (vv_rbuf_get_u16(b, &n) < 0 || n >= cap || (need && n == 0))
		return VV_ECORRUPT;
	if (vv_rbuf_get_bytes(b, out, n) < 0 || memchr(out, 0, n))
		return VV_ECORRUPT;
	out[n] = 0;
	return 0;
}

/* A count of entries of at least min bytes each that the rest can hold. */
static int get_count(struct vv_rbuf *b, size_t min, size_t *n)
{
	uint64_t v;

	if (vv_rbuf_get_u64(b, &v) < 0 || v > vv_rbuf_left(b) / min)
		return VV_ECORRUPT;
	*n = (size_t)v;
	return 0;
}

static int decode_head(struct vv_rbuf *b, struct vv_manifest *m)
{
	uint8_t magic[8];
	uint32_t u32;
	uint64_t u64;
	int e;

	if (vv_rbuf_get_bytes(b, magic, 8) < 0 || memcmp(magic, BODY_MAGIC, 8) != 0 ||
	    vv_rbuf_get_bytes(b, m->id, VV_BACKUP_ID_BYTES) < 0 || vv_rbuf_get_bytes(b, m->store_id, 16) < 0)
		return VV_ECORRUPT;
	vv_hex_encode(m->info.id, m->id, VV_BACKUP_ID_BYTES);
	vv_hex_encode(m->info.store_id, m->store_id, 16);
	if (vv_rbuf_get_u64(b, &u64) < 0)
		return VV_ECORRUPT;
	m->info.created = (int64_t)u64;
	if (vv_rbuf_get_u64(b, &u64) < 0)
		return VV_ECORRUPT;
	m->info.snap_created = (int64_t)u64;
	if (get_str(b, m->info.snapshot, sizeof(m->info.snapshot), false) < 0 ||
	    get_str(b, m->info.tag, sizeof(m->info.tag), false) < 0 ||
	    vv_rbuf_get_u64(b, &m->info.files) < 0 || vv_rbuf_get_u64(b, &m->info.bytes) < 0 ||
	    vv_rbuf_get_u32(b, &m->root_coll) < 0 || vv_rbuf_get_u32(b, &u32) < 0 ||
	    u32 > vv_rbuf_left(b) / (4 + VV_WRAPPED_BYTES))
		return VV_ECORRUPT;
	for (uint32_t i = 0; i < u32; i++) {
		uint8_t w[VV_WRAPPED_BYTES];
		uint32_t id;
		if (vv_rbuf_get_u32(b, &id) < 0 || vv_rbuf_get_bytes(b, w, sizeof(w)) < 0)
			return VV_ECORRUPT;
		if ((e = vv_manifest_add_coll(m, id, w)) < 0)
			return e;
	}
	return 0;
}

/* The rows and END!. */
static int decode_rows(struct vv_rbuf *b, struct vv_manifest *m)
{
	uint8_t magic[4];
	char name[256];
	uint32_t u32;
	uint64_t u64;
	size_t n;
	int e;

	if (get_count(b, VV_CHUNK_ID_BYTES + VV_REPO_NAME_BYTES + 8, &n) < 0)
		return VV_ECORRUPT;
	for (size_t i = 0; i < n; i++) {
		const uint8_t *c, *nm;
		if (vv_rbuf_get_ptr(b, &c, VV_CHUNK_ID_BYTES) < 0 || vv_rbuf_get_ptr(b, &nm, VV_REPO_NAME_BYTES) < 0 ||
		    vv_rbuf_get_u64(b, &u64) < 0 || u64 > VV_REPO_OBJECT_MAX)
			return VV_ECORRUPT;
		if ((e = vv_manifest_add_object(m, c, nm, u64)) < 0)
			return e;
	}
	m->info.objects = m->nobjs;
	for (size_t i = 0; i < m->nobjs; i++)
		m->info.stored += m->objs[i].size;
	/* An inode row without bytes is 112: a bound of 120 refused rows of
	 * many empty inodes with little after them (trashed empty files). */
	if (get_count(b, 8 + 8 + 4 * 4 + 8 * 6 + 4 + VV_OBJID_BYTES + 8 + 4, &n) < 0)
		return VV_ECORRUPT;
	for (size_t i = 0; i < n; i++) {
		struct vv_inode_row r;
		const uint8_t *data;
		if (vv_rbuf_get_u64(b, &r.ino) < 0 || vv_rbuf_get_u64(b, &r.gen) < 0 ||
		    vv_rbuf_get_u32(b, &r.mode) < 0 || vv_rbuf_get_u32(b, &r.uid) < 0 ||
		    vv_rbuf_get_u32(b, &r.gid) < 0 || vv_rbuf_get_u32(b, &r.nlink) < 0 ||
		    vv_rbuf_get_u64(b, &r.size) < 0 || vv_rbuf_get_u64(b, &r.rdev) < 0 ||
		    vv_rbuf_get_u64(b, (uint64_t *)&r.atime) < 0 || vv_rbuf_get_u64(b, (uint64_t *)&r.mtime) < 0 ||
		    vv_rbuf_get_u64(b, (uint64_t *)&r.ctime) < 0 || vv_rbuf_get_u64(b, &r.parent) < 0 ||
		    vv_rbuf_get_u32(b, &r.coll) < 0 || vv_rbuf_get_bytes(b, r.objid, VV_OBJID_BYTES) < 0 ||
		    vv_rbuf_get_u64(b, &r.stored) < 0 || vv_rbuf_get_u32(b, &u32) < 0 ||
		    vv_rbuf_get_ptr(b, &data, u32) < 0)
			return VV_ECORRUPT;
		if (r.ino == 0 || r.ino > VV_SNAP_INO_MAX)
			return VV_ECORRUPT;
		if ((e = vv_manifest_add_inode(m, &r, data, u32)) < 0)
			return e;
	}
	if (get_count(b, 31, &n) < 0)
		return VV_ECORRUPT;
	for (size_t i = 0; i < n; i++) {
		uint64_t parent, id, ino;
		uint32_t mode;
		if (vv_rbuf_get_u64(b, &parent) < 0 || vv_rbuf_get_u64(b, &id) < 0 ||
		    vv_rbuf_get_u64(b, &ino) < 0 || vv_rbuf_get_u32(b, &mode) < 0 ||
		    get_str(b, name, sizeof(name), true) < 0 || strchr(name, '/') ||
		    !strcmp(name, ".") || !strcmp(name, ".."))
			return VV_ECORRUPT;
		if ((e = vv_manifest_add_dirent(m, parent, name, id, ino, mode)) < 0)
			return e;
	}
	if (get_count(b, 15, &n) < 0)
		return VV_ECORRUPT;
	for (size_t i = 0; i < n; i++) {
		const uint8_t *val;
		uint64_t ino;
		if (vv_rbuf_get_u64(b, &ino) < 0 || get_str(b, name, sizeof(name), true) < 0 ||
		    vv_rbuf_get_u32(b, &u32) < 0 || vv_rbuf_get_ptr(b, &val, u32) < 0)
			return VV_ECORRUPT;
		if ((e = vv_manifest_add_xattr(m, ino, name, val, u32)) < 0)
			return e;
	}
	if (get_count(b, 60, &n) < 0)
		return VV_ECORRUPT;
	for (size_t i = 0; i < n; i++) {
		struct vv_extent x;
		uint64_t ino;
		if (vv_rbuf_get_u64(b, &ino) < 0 || vv_rbuf_get_u64(b, &x.fblock) < 0 ||
		    vv_rbuf_get_bytes(b, x.chunk_id, VV_CHUNK_ID_BYTES) < 0 || vv_rbuf_get_u32(b, &x.off) < 0 ||
		    vv_rbuf_get_u32(b, &x.len) < 0 || vv_rbuf_get_u32(b, &x.slot) < 0)
			return VV_ECORRUPT;
		if ((e = vv_manifest_add_extent(m, ino, &x)) < 0)
			return e;
	}
	if (vv_rbuf_get_bytes(b, magic, 4) < 0 || memcmp(magic, "END!", 4) != 0)
		return VV_ECORRUPT;
	return 0;
}

/* Zero padding to the end. */
static int decode_pad(struct vv_rbuf *b)
{
	while (vv_rbuf_left(b)) {
		uint8_t z;
		if (vv_rbuf_get_u8(b, &z) < 0 || z)
			return VV_ECORRUPT;
	}
	return 0;
}

static int decode(struct vv_rbuf *b, struct vv_manifest *m)
{
	int e;

	if ((e = decode_head(b, m)) < 0 || (e = decode_rows(b, m)) < 0)
		return e;
	return decode_pad(b);
}

int vv_manifest_decode(const uint8_t *buf, size_t len, struct vv_manifest *m)
{
	struct vv_rbuf b;
	int e;

	memset(m, 0, sizeof(*m));
	vv_rbuf_init(&b, buf, len);
	if ((e = decode(&b, m)) < 0)
		vv_manifest_free(m);
	return e;
}

/* ---- metadata packs (version 2) ------------------------------------------------ */

/* Length of the next piece of p (len bytes left): cut where the top 16
 * bits of the hash of the last 64 bytes are zero, between PACK_MIN and
 * PACK_MAX. */
size_t vv_repo_pack_cut(const uint64_t g[256], const uint8_t *p, size_t len)
{
	size_t max = len < PACK_MAX ? len : PACK_MAX;
	uint64_t h = 0;

	if (len <= PACK_MIN)
		return len;
	for (size_t i = PACK_MIN - 64; i < max; i++) {
		h = (h << 1) + g[p[i]];
		if (i + 1 >= PACK_MIN && !(h & ((uint64_t)PACK_MASK << 48)))
			return i + 1;
	}
	return max;
}

static size_t pack_size(size_t plen)
{
	size_t n = 4 + plen;

	return PACK_HDR + n + (PACK_PAD - n % PACK_PAD) % PACK_PAD + VV_TAG_BYTES;
}

static void pack_ad(const uint8_t repo_id[VV_REPO_ID_BYTES], uint8_t ad[8 + VV_REPO_ID_BYTES])
{
	memcpy(ad, PACK_MAGIC, 8);
	memcpy(ad + 8, repo_id, VV_REPO_ID_BYTES);
}

int vv_repo_pack_seal(const uint8_t key[VV_KEY_BYTES], const uint8_t repo_id[VV_REPO_ID_BYTES],
		      const uint8_t *p, size_t len, const uint8_t ph[VV_MAC_BYTES], uint8_t **out,
		      size_t *outlen)
{
	size_t flen = pack_size(len), ptlen = flen - PACK_HDR - VV_TAG_BYTES;
	uint8_t ad[8 + VV_REPO_ID_BYTES], *pt = calloc(1, ptlen), *f = vv_repo_buf_alloc(flen);
	int e = VV_ENOMEM;

	if (!pt || !f)
		goto out;
	vv_put_le32(pt, (uint32_t)len);
	memcpy(pt + 4, p, len);
	memcpy(f, PACK_MAGIC, 8);
	memcpy(f + 8, ph, VV_XNONCE_BYTES);
	pack_ad(repo_id, ad);
	if ((e = vv_xchacha_seal(f + PACK_HDR, f + PACK_HDR + ptlen, pt, ptlen, ad, sizeof(ad), f + 8,
				 key)) < 0)
		goto out;
	*out = f;
	*outlen = flen;
	f = NULL;
out:
	if (pt)
		vv_memzero(pt, ptlen);
	free(pt);
	free(f);
	return e;
}

int vv_repo_pack_unseal(const uint8_t key[VV_KEY_BYTES], const uint8_t repo_id[VV_REPO_ID_BYTES],
			const struct vv_bk_pack *pk, const uint8_t *f, size_t len, uint8_t *piece)
{
	uint8_t ad[8 + VV_REPO_ID_BYTES], *pt = NULL;
	size_t ptlen = 0;
	int e = VV_ECORRUPT;

	if (len != pk->size || len < PACK_HDR + 4 + VV_TAG_BYTES || memcmp(f, PACK_MAGIC, 8) != 0)
		return VV_ECORRUPT;
	ptlen = len - PACK_HDR - VV_TAG_BYTES;
	if (!(pt = malloc(ptlen)))
		return VV_ENOMEM;
	pack_ad(repo_id, ad);
	if (vv_xchacha_open(pt, f + PACK_HDR, ptlen, f + PACK_HDR + ptlen, ad, sizeof(ad), f + 8, key) < 0)
		goto out;
	/* Authenticated from here on, still untrusted (a key holder's). */
	if (vv_get_le32(pt) != pk->plen || pk->plen > ptlen - 4)
		goto out;
	for (size_t i = 4 + pk->plen; i < ptlen; i++)
		if (pt[i])
			goto out;
	memcpy(piece, pt + 4, pk->plen);
	e = 0;
out:
	vv_memzero(pt, ptlen);
	free(pt);
	return e;
}

/* Make room for need bytes of rows: doubling, never past need's next
 * power of two, and the plaintext moved is wiped from the old buffer. */
static int rows_room(uint8_t **rows, size_t *cap, size_t need)
{
	size_t c = *cap ? *cap : 65536;
	uint8_t *p;

	if (need <= *cap)
		return 0;
	while (c < need)
		c *= 2;
	if (!(p = malloc(c)))
		return VV_ENOMEM;
	if (*rows) {
		memcpy(p, *rows, *cap);
		vv_memzero(*rows, *cap);
		free(*rows);
	}
	*rows = p;
	*cap = c;
	return 0;
}

int vv_manifest_decode_v2(const uint8_t *body, size_t blen, vv_pack_src_fn src, void *ctx,
			  struct vv_manifest *m)
{
	struct vv_rbuf b, rb;
	uint8_t magic[4], *rows = NULL;
	uint64_t total = 0;
	uint32_t n;
	size_t at = 0, cap = 0;
	int e;

	memset(m, 0, sizeof(*m));
	vv_rbuf_init(&b, body, blen);
	if ((e = decode_head(&b, m)) < 0)
		goto out;
	e = VV_ECORRUPT;
	if (vv_rbuf_get_u32(&b, &n) < 0 || n > vv_rbuf_left(&b) / (VV_REPO_NAME_BYTES + 12))
		goto out;
	for (uint32_t i = 0; i < n; i++) {
		struct vv_bk_pack p;
		if (vv_rbuf_get_bytes(&b, p.name, VV_REPO_NAME_BYTES) < 0 || vv_rbuf_get_u64(&b, &p.size) < 0 ||
		    vv_rbuf_get_u32(&b, &p.plen) < 0 || p.plen == 0 || p.plen > PACK_MAX ||
		    p.size != pack_size(p.plen) || (total += p.plen) > VV_REPO_MANIFEST_MAX)
			goto out;
		if ((e = GROW(m, packs, npacks, capp)) < 0)
			goto out;
		e = VV_ECORRUPT;
		m->packs[m->npacks++] = p;
	}
	if (vv_rbuf_get_bytes(&b, magic, 4) < 0 || memcmp(magic, "END!", 4) != 0 || decode_pad(&b) < 0)
		goto out;
	/* The rows grow as packs open: the list's lengths (up to 256 KiB
	 * each for 44 bytes) are claims, not bytes anyone has read yet. */
	for (size_t i = 0; i < m->npacks; i++) {
		if ((e = rows_room(&rows, &cap, at + m->packs[i].plen)) < 0 ||
		    (e = src(ctx, &m->packs[i], rows + at)) < 0)
			goto out;
		at += m->packs[i].plen;
	}
	vv_rbuf_init(&rb, rows, at);
	if ((e = decode_rows(&rb, m)) == 0 && vv_rbuf_left(&rb))
		e = VV_ECORRUPT;
out:
	if (rows)
		vv_memzero(rows, cap);
	free(rows);
	if (e < 0)
		vv_manifest_free(m);
	return e;
}

