/*
 * fuzz_backup.c - libFuzzer target for the backup repository parsers
 * (engine/repo.c, repo_body.c, repo_manifest.c): byte 0 picks which, the
 * rest is the input.
 *   0: vv_manifest_decode, a manifest body.  It is sealed under the
 *      repository key, so only a holder of the key can write one; still,
 *      a repository shipped to others (rsync) is read by whoever restores,
 *      and the parser must hold against a key holder's malice.
 *   1: vv_repo_config_parse, DEST/config, plaintext and parsed before any
 *      key exists: whoever can write DEST chooses every byte.
 *   2: vv_repo_manifest_head, a manifest file's header, parsed before its
 *      tag is checked (whoever can write DEST).
 *   3: vv_repo_lock_pid, DEST/lock, shown when a second writer is refused.
 *   4: the other way round: the input is a recipe of rows (byte 1 the
 *      piece length, at most 65 pieces; then one op byte and its fields
 *      per row) built with
 *      vv_manifest_add_*; what the writer encodes must read back, as a
 *      version 1 body and as a version 2 body with its rows cut into
 *      pieces (vv_manifest_decode_v2 from memory).  A reader stricter
 *      than the writer makes backups that cannot be restored.
 * A version 2 body and its metadata packs: fuzz_backup_v2.c.
 * Errors must be VV_ECORRUPT / VV_EFORMAT / VV_ENOMEM, never a crash.
 * Invariants asserted (abort() on violation):
 *   - an accepted body encodes and decodes again to the same bytes (the
 *     format has one spelling), with the same counts; names are 1..255
 *     bytes without '/' or NUL and never "." or "..";
 *   - an accepted config has 1..16 slots and exactly the size they need;
 *   - an accepted header is of version 1 or 2, in a file long enough for
 *     the header and a tag;
 *   - an accepted pid is 1..999999999, and its bytes are its digits;
 *   - a built manifest decodes (both versions) to the same counts.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "repo_int.h"
#include "vecvault/error.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void manifest(const uint8_t *p, size_t n)
{
	struct vv_manifest m, m2;
	uint8_t *enc = NULL, *enc2 = NULL;
	size_t elen = 0, elen2 = 0;
	int r = vv_manifest_decode(p, n, &m);

	if (r < 0) {
		if (r != VV_ECORRUPT && r != VV_ENOMEM)
			abort();
		return;
	}
	for (size_t i = 0; i < m.ndirents; i++) {
		const char *s = m.dirents[i].name;
		size_t l = strlen(s);
		if (l < 1 || l > 255 || strchr(s, '/') || !strcmp(s, ".") || !strcmp(s, ".."))
			abort();
	}
	if (vv_manifest_encode(&m, &enc, &elen) == 0) {
		if (vv_manifest_decode(enc, elen, &m2) < 0)
			abort();
		if (m2.ninodes != m.ninodes || m2.ndirents != m.ndirents || m2.nxattrs != m.nxattrs ||
		    m2.nextents != m.nextents || m2.nobjs != m.nobjs || m2.ncolls != m.ncolls)
			abort();
		if (vv_manifest_encode(&m2, &enc2, &elen2) != 0 || elen2 != elen || memcmp(enc, enc2, elen))
			abort();
		vv_manifest_free(&m2);
	}
	free(enc);
	free(enc2);
	vv_manifest_free(&m);
}

static void config(const uint8_t *p, size_t n)
{
	uint8_t id[VV_REPO_ID_BYTES];
	uint32_t ver = 0;
	int slots = 0, r = vv_repo_config_parse(p, n, id, &slots, &ver);

	if (r < 0) {
		if (r != VV_ECORRUPT && r != VV_EFORMAT)
			abort();
		return;
	}
	if (slots < 1 || slots > 16 || n != 40 + (size_t)slots * 108 + 32 || ver < 1 || ver > 2)
		abort();
}

static void head(const uint8_t *p, size_t n)
{
	uint8_t rid[VV_REPO_ID_BYTES], bid[VV_BACKUP_ID_BYTES];
	uint32_t ver = 0;
	int r = vv_repo_manifest_head(p, n, &ver, rid, bid);

	if (r < 0) {
		if (r != VV_ECORRUPT && r != VV_EFORMAT)
			abort();
		return;
	}
	if ((ver != 1 && ver != 2) || n < 68 + 16 || memcmp(p, "VVBKMAN1", 8) != 0 ||
	    memcmp(rid, p + 12, sizeof(rid)) != 0 || memcmp(bid, p + 28, sizeof(bid)) != 0)
		abort();
}

static void lock_pid(const uint8_t *p, size_t n)
{
	char s[16];
	long pid = 0;
	int r = vv_repo_lock_pid(p, n, &pid);

	if (r < 0) {
		if (r != VV_ECORRUPT)
			abort();
		return;
	}
	if (pid < 1 || pid > 999999999)
		abort();
	r = snprintf(s, sizeof(s), "%ld\n", pid);
	if (n != (size_t)r && n != (size_t)r - 1)
		abort();
	if (memcmp(s, p, n) != 0)
		abort();           /* no leading zeros, nothing but the digits */
}

/* ---- 4: built manifests read back ---- */

struct pieces {
	const uint8_t *rows;
	size_t at;
};

static int piece_of(void *ctx, const struct vv_bk_pack *pk, uint8_t *piece)
{
	struct pieces *s = ctx;

	memcpy(piece, s->rows + s->at, pk->plen);
	s->at += pk->plen;
	return 0;
}

/* A name of 1..255 bytes from the input: no NUL, no '/', not . or .. */
static void take_name(struct vv_rbuf *b, char *out)
{
	uint8_t l = 1;
	size_t n;

	vv_rbuf_get_u8(b, &l);
	n = l ? l : 1;
	if (n > vv_rbuf_left(b))
		n = vv_rbuf_left(b) ? vv_rbuf_left(b) : 1;
	memset(out, 'x', n);
	vv_rbuf_get_bytes(b, out, n);
	out[n] = 0;
	for (size_t i = 0; i < n; i++)
		if (!out[i] || out[i] == '/')
			out[i] = 'x';
	if (!strcmp(out, ".") || !strcmp(out, ".."))
		out[0] = 'x';
}

static size_t unpadded(const uint8_t *p, size_t n)
{
	while (n && !p[n - 1])
		n--;
	return n;
}

static void same_counts(const struct vv_manifest *a, const struct vv_manifest *b)
{
	if (a->ninodes != b->ninodes || a->ndirents != b->ndirents || a->nxattrs != b->nxattrs ||
	    a->nextents != b->nextents || a->nobjs != b->nobjs || a->ncolls != b->ncolls)
		abort();
}

static void build(const uint8_t *p, size_t n)
{
	struct vv_manifest m, h, d;
	struct vv_rbuf b;
	uint8_t *enc = NULL, *henc = NULL, *body = NULL, op, plenb = 0;
	size_t elen = 0, hlen = 0, used, hl, rl, np, bl;
	struct pieces src;
	uint32_t plen;
	char name[256];

	memset(&m, 0, sizeof(m));
	vv_rbuf_init(&b, p, n);
	vv_rbuf_get_u8(&b, &plenb);
	plen = 1 + (uint32_t)plenb * 1024;          /* 1 .. 261121 */
	while (vv_rbuf_get_u8(&b, &op) == 0) {
		uint8_t x[VV_WRAPPED_BYTES] = { 0 }, y[32] = { 0 };
		uint64_t a = 0, c = 0, e = 0;
		uint32_t u = 0, v = 0;
		uint16_t l = 0;
		uint8_t l8 = 0;
		const uint8_t *bytes;
		vv_rbuf_get_u64(&b, &a);
		switch (op % 6) {
		case 0: {
			struct vv_inode_row r;
			memset(&r, 0, sizeof(r));
			r.ino = 1 + a % VV_SNAP_INO_MAX;
			vv_rbuf_get_u32(&b, &r.mode);
			vv_rbuf_get_u64(&b, &r.size);
			vv_rbuf_get_u8(&b, &l8);
			l = l8;
			if (l > vv_rbuf_left(&b))
				l = (uint16_t)vv_rbuf_left(&b);
			vv_rbuf_get_ptr(&b, &bytes, l);
			vv_manifest_add_inode(&m, &r, l ? bytes : NULL, l);
			break;
		}
		case 1:
			vv_rbuf_get_u64(&b, &c);
			vv_rbuf_get_u64(&b, &e);
			vv_rbuf_get_u32(&b, &u);
			take_name(&b, name);
			vv_manifest_add_dirent(&m, a, name, c, e, u);
			break;
		case 2:
			take_name(&b, name);
			vv_rbuf_get_u16(&b, &l);
			l %= 512;
			if (l > vv_rbuf_left(&b))
				l = (uint16_t)vv_rbuf_left(&b);
			vv_rbuf_get_ptr(&b, &bytes, l);
			vv_manifest_add_xattr(&m, a, name, l ? bytes : NULL, l);
			break;
		case 3: {
			struct vv_extent x3;
			memset(&x3, 0, sizeof(x3));
			vv_rbuf_get_u64(&b, &x3.fblock);
			vv_rbuf_get_bytes(&b, x3.chunk_id, VV_CHUNK_ID_BYTES);
			vv_rbuf_get_u32(&b, &x3.off);
			vv_rbuf_get_u32(&b, &x3.len);
			vv_rbuf_get_u32(&b, &x3.slot);
			vv_manifest_add_extent(&m, a, &x3);
			break;
		}
		case 4:
			vv_rbuf_get_bytes(&b, x, 32);
			vv_rbuf_get_bytes(&b, y, 32);
			vv_manifest_add_object(&m, x, y, a % (VV_REPO_OBJECT_MAX + 1));
			break;
		default:
			vv_rbuf_get_u32(&b, &v);
			vv_rbuf_get_bytes(&b, x, sizeof(x));
			vv_manifest_add_coll(&m, v, x);
			break;
		}
	}
	if (vv_manifest_encode(&m, &enc, &elen) != 0)
		goto out;
	if (vv_manifest_decode(enc, elen, &d) != 0)
		abort();                   /* written, but refused */
	same_counts(&m, &d);
	vv_manifest_free(&d);
	/* The same as version 2: the head (the body without rows), the
	 * rows in pieces of plen bytes. */
	h = m;
	h.nobjs = h.ninodes = h.ndirents = h.nxattrs = h.nextents = 0;
	if (vv_manifest_encode(&h, &henc, &hlen) != 0)
		goto out;
	hl = unpadded(henc, hlen) - (5 * 8 + 4);
	used = unpadded(enc, elen);
	rl = used - hl;
	if (rl / plen > 64)
		plen = (uint32_t)((rl + 63) / 64);   /* at most 65 pieces: speed */
	np = (rl + plen - 1) / plen;
	if (!(body = calloc(1, hl + 4 + 44 * np + 4 + 4096)))
		goto out;
	memcpy(body, enc, hl);
	bl = hl;
	vv_put_le32(body + bl, (uint32_t)np);
	bl += 4;
	for (size_t i = 0; i < np; i++) {
		uint32_t l2 = i + 1 < np ? plen : (uint32_t)(rl - i * plen);
		size_t k = 4 + (size_t)l2;
		vv_put_le64(body + bl + 32, 32 + k + (4096 - k % 4096) % 4096 + 16);
		vv_put_le32(body + bl + 40, l2);
		bl += 44;
	}
	memcpy(body + bl, "END!", 4);
	bl += 4;
	bl += (4096 - bl % 4096) % 4096;
	src.rows = enc + hl;
	src.at = 0;
	if (vv_manifest_decode_v2(body, bl, piece_of, &src, &d) != 0)
		abort();
	same_counts(&m, &d);
	vv_manifest_free(&d);
out:
	free(body);
	free(henc);
	free(enc);
	vv_manifest_free(&m);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	if (data[0] == 0)
		manifest(data + 1, size - 1);
	else if (data[0] == 1)
		config(data + 1, size - 1);
	else if (data[0] == 2)
		head(data + 1, size - 1);
	else if (data[0] == 3)
		lock_pid(data + 1, size - 1);
	else if (data[0] == 4)
		build(data + 1, size - 1);
	return 0;
}
