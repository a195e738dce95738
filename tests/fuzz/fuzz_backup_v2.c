/*
 * fuzz_backup_v2.c - libFuzzer target for a version 2 manifest body and
 * its metadata packs (engine/repo_body.c `vv_manifest_decode_v2`,
 * `vv_repo_pack_unseal`): what `backup list|verify|restore|forget` read
 * from DEST once the manifest's tag has passed.  Packs come from memory
 * through the decoder's pack source, sealed here under a fixed test key,
 * so the fuzzer reaches the parsing of authenticated but hostile bytes (a
 * key holder's: a repository shipped to others is read by whoever
 * restores it).
 *
 * Input: byte 0 the mode, a u32 (LE) body length L, L bytes of body (the
 * decrypted manifest body: head, pack list, END!, padding), then the
 * stream the pack source takes each pack from, in order:
 *   mode 0: plen bytes, the piece; framed here as the writer does (u32
 *           plen, the piece, zeros) and sealed: it must open to the piece;
 *   mode 1: the whole plaintext (pack size - 48 bytes: length field,
 *           piece, padding as the fuzzer likes), sealed here;
 *   mode 2: the sealed object itself (pack size bytes): it cannot
 *           authenticate (the fuzzer has no forgery), so must be refused;
 *   mode 3: as mode 0, sealed for another repository id: refused.
 * A stream too short for the next pack is a missing pack (VV_ECORRUPT).
 * Errors must be VV_ECORRUPT / VV_ENOMEM, never a crash.
 * Invariants asserted (abort() on violation):
 *   - every pack the list accepts has a piece length 1..262144 and the
 *     object size docs/format.md gives for it;
 *   - an accepted body has one spelling: its version 1 encoding
 *     (vv_manifest_encode) is the body's head followed by exactly the
 *     pieces it opened, and decodes again to the same counts; names are
 *     1..255 bytes without '/' and never "." or "..".
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "grow.h"
#include "repo_int.h"
#include "vecvault/error.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define HDR (8 + VV_XNONCE_BYTES)

struct src {
	int mode;
	const uint8_t *p;                  /* the stream left */
	size_t left;
	uint8_t *cat;                      /* the pieces given, concatenated */
	size_t catlen, catcap;
};

static const uint8_t key[VV_KEY_BYTES] = "fuzz_backup_v2 fixed pack key..";
static const uint8_t rid[VV_REPO_ID_BYTES] = "fuzz repo id....";

static size_t pack_bytes(uint32_t plen)
{
	size_t n = 4 + (size_t)plen;

	return HDR + n + (4096 - n % 4096) % 4096 + VV_TAG_BYTES;
}

static const uint8_t *take(struct src *s, size_t n)
{
	const uint8_t *p = s->p;

	if (n > s->left)
		return NULL;
	s->p += n;
	s->left -= n;
	return p;
}

/* The object sealed as repo_body.c vv_repo_pack_seal does (a fixed nonce: any will do). */
static uint8_t *seal(const uint8_t *pt, size_t ptlen, const uint8_t id[VV_REPO_ID_BYTES])
{
	uint8_t ad[8 + VV_REPO_ID_BYTES], *f = malloc(HDR + ptlen + VV_TAG_BYTES);

	if (!f)
		abort();
	memcpy(f, "VVBKPACK", 8);
	memset(f + 8, 0x5a, VV_XNONCE_BYTES);
	memcpy(ad, "VVBKPACK", 8);
	memcpy(ad + 8, id, VV_REPO_ID_BYTES);
	if (vv_xchacha_seal(f + HDR, f + HDR + ptlen, pt, ptlen, ad, sizeof(ad), f + 8, key) < 0)
		abort();
	return f;
}

static int piece_of(void *ctx, const struct vv_bk_pack *pk, uint8_t *piece)
{
	struct src *s = ctx;
	size_t flen = pack_bytes(pk->plen), ptlen = flen - HDR - VV_TAG_BYTES;
	const uint8_t *in;
	uint8_t *pt = NULL, *f = NULL;
	int e;

	if (pk->plen < 1 || pk->plen > (256u << 10) || pk->size != flen)
		abort();
	if (!(in = take(s, s->mode == 0 || s->mode == 3 ? pk->plen : s->mode == 1 ? ptlen : flen)))
		return VV_ECORRUPT;
	if (s->mode == 2) {
		if (vv_repo_pack_unseal(key, rid, pk, in, flen, piece) != VV_ECORRUPT)
			abort();
		return VV_ECORRUPT;
	}
	if (s->mode == 1) {
		f = seal(in, ptlen, rid);
	} else {
		if (!(pt = calloc(1, ptlen)))
			abort();
		vv_put_le32(pt, pk->plen);
		memcpy(pt + 4, in, pk->plen);
		f = seal(pt, ptlen, s->mode == 3 ? (const uint8_t *)"another repo id." : rid);
	}
	e = vv_repo_pack_unseal(key, rid, pk, f, flen, piece);
	if (s->mode == 0 && e != 0 && e != VV_ENOMEM)
		abort();                   /* as written: always opens */
	if (s->mode == 3 && e != VV_ECORRUPT)
		abort();
	if (e == 0) {
		/* Exactly the framed piece: length field, then zeros only. */
		const uint8_t *want = s->mode == 1 ? in + 4 : in;
		if (memcmp(piece, want, pk->plen) != 0)
			abort();
		if (s->mode == 1) {
			if (vv_get_le32(in) != pk->plen)
				abort();
			for (size_t i = 4 + pk->plen; i < ptlen; i++)
				if (in[i])
					abort();
		}
		if (vv_grow(&s->cat, &s->catcap, s->catlen + pk->plen, 1) < 0)
			abort();
		memcpy(s->cat + s->catlen, piece, pk->plen);
		s->catlen += pk->plen;
	}
	free(pt);
	free(f);
	return e;
}

static void check(const uint8_t *body, size_t blen, const struct src *s, const struct vv_manifest *m)
{
	struct vv_manifest m2;
	uint8_t *enc = NULL;
	size_t elen = 0, used;

	for (size_t i = 0; i < m->ndirents; i++) {
		const char *n = m->dirents[i].name;
		size_t l = strlen(n);
		if (l < 1 || l > 255 || strchr(n, '/') || !strcmp(n, ".") || !strcmp(n, ".."))
			abort();
	}
	if (vv_manifest_encode(m, &enc, &elen) != 0)
		return;                    /* VV_ENOMEM */
	/* The version 1 body ends at END! then zeros. */
	for (used = elen; used && !enc[used - 1]; used--)
		;
	if (used < s->catlen || used - s->catlen > blen || memcmp(enc, body, used - s->catlen) != 0 ||
	    memcmp(enc + used - s->catlen, s->cat, s->catlen) != 0)
		abort();
	if (vv_manifest_decode(enc, elen, &m2) != 0)
		abort();
	if (m2.ninodes != m->ninodes || m2.ndirents != m->ndirents || m2.nxattrs != m->nxattrs ||
	    m2.nextents != m->nextents || m2.nobjs != m->nobjs || m2.ncolls != m->ncolls)
		abort();
	vv_manifest_free(&m2);
	free(enc);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct src s = { 0 };
	struct vv_manifest m;
	size_t blen;
	int e;

	if (size < 5)
		return 0;
	if (vv_crypto_init() < 0)
		abort();
	s.mode = data[0] & 3;
	blen = vv_get_le32(data + 1);
	if (blen > size - 5)
		blen = size - 5;
	s.p = data + 5 + blen;
	s.left = size - 5 - blen;
	e = vv_manifest_decode_v2(data + 5, blen, piece_of, &s, &m);
	if (e < 0) {
		if (e != VV_ECORRUPT && e != VV_ENOMEM)
			abort();
	} else {
		if (s.mode >= 2 && m.npacks)
			abort();           /* refused packs, yet a manifest */
		check(data + 5, blen, &s, &m);
		vv_manifest_free(&m);
	}
	free(s.cat);
	return 0;
}
