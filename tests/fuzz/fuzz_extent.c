/*
 * fuzz_extent.c - libFuzzer target for extent records: the compact extent
 * blob (engine/content.c: vv_extent_unpack, the format in content_int.h)
 * and the extents row of meta.db as read back (engine/meta.c:
 * vv_meta_extent_decode, what read_extent runs on each SQLite row).
 *
 * Untrusted bytes: an extent names the chunk, offset, length and slot that
 * a read decrypts; a damaged or edited meta.db row or blob must be refused,
 * never turned into a read of other bytes or past a buffer.  Input: byte 0
 * picks the decoder; for rows, the five columns follow (fblock, off, len,
 * slot as i64 le, then a chunk id blob whose length is byte 1 % 40).
 * Invariants asserted (abort() on violation):
 *   - an accepted blob is exactly 5 + 52 * n bytes, every extent is in
 *     range (1 <= len <= VV_BLOCK_SIZE, slot < VV_CHUNK_MAX_BLOCKS, off past
 *     the chunk header, off + len + tag within u32), and packing it again
 *     gives the same bytes; VV_ERANGE only when the count exceeds max;
 *   - an accepted row has a 32-byte chunk id and off, len, slot equal to
 *     the column values (nothing truncated); its extent packs and unpacks
 *     back unchanged when in range, and is refused by unpack otherwise.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "crypto_int.h"
#include "meta_int.h"
#include "vecvault/error.h"

#define MAX_EXT 16

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int in_range(const struct vv_extent *e)
{
	return e->len >= 1 && e->len <= VV_BLOCK_SIZE && e->slot < VV_CHUNK_MAX_BLOCKS &&
	       e->off >= VV_CHUNK_HDR_BYTES && (uint64_t)e->off + e->len + VV_TAG_BYTES <= UINT32_MAX;
}

static void blob(const uint8_t *in, size_t len)
{
	struct vv_extent ext[MAX_EXT];
	uint8_t *back;
	size_t n = 0, blen = 0;
	int r = vv_extent_unpack(in, len, ext, MAX_EXT, &n);

	if (r == VV_ERANGE) {
		if (len < 5 || (in[1] | in[2] << 8 | in[3] << 16 | (uint32_t)in[4] << 24) <= MAX_EXT)
			abort();
		return;
	}
	if (r != 0) {
		if (r != VV_ECORRUPT || n != 0)
			abort();
		return;
	}
	if (n > MAX_EXT || len != vv_extent_packed_size(n))
		abort();
	for (size_t i = 0; i < n; i++)
		if (!in_range(&ext[i]))
			abort();
	if (!(back = malloc(len)))
		return;
	if (vv_extent_pack(ext, n, back, len, &blen) != 0 || blen != len || memcmp(back, in, len) != 0)
		abort();
	free(back);
}

static int64_t le64(const uint8_t *p)
{
	uint64_t v = 0;

	for (int i = 7; i >= 0; i--)
		v = v << 8 | p[i];
	return (int64_t)v;
}

static void row(const uint8_t *in, size_t len)
{
	struct vv_extent e, back;
	uint8_t packed[5 + VV_EXTENT_PACKED_BYTES];
	int64_t fb, off, ln, slot;
	size_t clen, plen, n;
	const uint8_t *chunk;

	if (len < 1 + 32)
		return;
	clen = in[0] % 40;
	fb = le64(in + 1);
	off = le64(in + 9);
	ln = le64(in + 17);
	slot = le64(in + 25);
	chunk = in + 33;
	if (clen > len - 33)
		clen = len - 33;
	if (vv_meta_extent_decode(fb, chunk, clen, off, ln, slot, &e) != 0)
		return;
	if (clen != VV_CHUNK_ID_BYTES || (uint64_t)fb != e.fblock || off != (int64_t)e.off ||
	    ln != (int64_t)e.len || slot != (int64_t)e.slot || memcmp(e.chunk_id, chunk, clen) != 0)
		abort();
	if (vv_extent_pack(&e, 1, packed, sizeof(packed), &plen) != 0 || plen != sizeof(packed))
		abort();
	n = 0;
	if (vv_extent_unpack(packed, plen, &back, 1, &n) == 0) {
		if (!in_range(&e) || n != 1 || back.fblock != e.fblock || back.off != e.off ||
		    back.len != e.len || back.slot != e.slot ||
		    memcmp(back.chunk_id, e.chunk_id, VV_CHUNK_ID_BYTES) != 0)
			abort();
	} else if (in_range(&e)) {
		abort();
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* An exact-size copy, so ASan catches any read past the input. */
	uint8_t *p;

	if (size < 1 || !(p = malloc(size - 1 ? size - 1 : 1)))
		return 0;
	memcpy(p, data + 1, size - 1);
	if (data[0] & 1)
		row(p, size - 1);
	else
		blob(p, size - 1);
	free(p);
	return 0;
}
