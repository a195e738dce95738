/*
 * fuzz_remote_reply.c - libFuzzer target for the remote protocol's
 * replies (the client's side: bytes from a server): vv_rw_header, vv_rw_decode (engine/remote_wire.c), and for
 * READDIR replies vv_rw_dirent_next over the blob.
 *
 * The input is a frame: 16 header bytes, then whatever follows.  The
 * direction bit is forced to this side's, so every input exercises it.
 * Errors must be codes, never a crash.  Invariants asserted (abort()) for
 * what is accepted: op known, body <= 1 MiB + 4096, names 1..255 bytes
 * without '/' or NUL, texts <= 4095 bytes without NUL, blobs <= 1 MiB and
 * inside the body, and re-encoding the decoded message gives back the
 * input frame exactly (one encoding per message).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "vecvault/error.h"
#include "vecvault/remote_wire.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static uint8_t in[VV_RW_HDR + VV_RW_BODY_MAX], out[VV_RW_HDR + VV_RW_BODY_MAX];
static struct vv_rw_msg m;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct vv_rw_hdr h;
	long n;

	if (size < VV_RW_HDR || size > sizeof(in))
		return 0;
	memcpy(in, data, size);
	in[10] = (uint8_t)((in[10] & ~1u) | 1);
	if (vv_rw_header(in, &h) < 0)
		return 0;
	if (!vv_rw_op_name(h.op) || h.len > VV_RW_BODY_MAX)
		abort();
	if (vv_rw_decode(&h, in + VV_RW_HDR, size - VV_RW_HDR, &m) < 0)
		return 0;
	for (unsigned i = 0; i < m.ns; i++) {
		size_t l = strlen(m.s[i]);
		if (l != m.slen[i] || l > VV_RW_TEXT_MAX)
			abort();
	}
	if (m.has_blob && (m.bloblen > VV_RW_DATA_MAX || m.blob < in + VV_RW_HDR ||
			   m.blob + m.bloblen > in + size))
		abort();
	n = vv_rw_encode(&h, &m, out, sizeof(out));
	if (n < 0 || (size_t)n != size || memcmp(out, in, size) != 0)
		abort();
	if (1 && h.op == VV_RW_READDIR && m.has_blob) {
		struct vv_dirent e;
		struct vv_attr a;
		char nb[VV_NAME_MAX + 1];
		size_t off = 0, prev;
		int r;
		for (;;) {
			prev = off;
			r = vv_rw_dirent_next(m.blob, m.bloblen, &off, data[0] & 1, &e, nb, &a);
			if (r != 0)
				break;
			if (off <= prev || off > m.bloblen || !nb[0] || strchr(nb, '/'))
				abort();
		}
	}
	return 0;
}
