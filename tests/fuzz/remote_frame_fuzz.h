/*
 * remote_frame_fuzz.h - the body of the two remote-protocol fuzz targets
 * (fuzz_remote_req.c: the server's side, fuzz_remote_reply.c: the
 * client's), which differ only in the direction bit forced on the input.
 *
 * The input is a frame: 16 header bytes, then whatever follows.  Errors
 * must be codes, never a crash.  Invariants asserted (abort()) for what is
 * accepted: op known, body <= 1 MiB + 4096, names 1..255 bytes without '/'
 * or NUL, texts <= 4095 bytes without NUL, blobs <= 1 MiB and inside the
 * body, re-encoding the decoded message gives back the input frame exactly
 * (one encoding per message), and READDIR reply entries walk forward.
 */
#ifndef VV_REMOTE_FRAME_FUZZ_H
#define VV_REMOTE_FRAME_FUZZ_H

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "vecvault/error.h"
#include "vecvault/remote_wire.h"

static uint8_t in[VV_RW_HDR + VV_RW_BODY_MAX], out[VV_RW_HDR + VV_RW_BODY_MAX];
static struct vv_rw_msg m;

/* One input, decoded as this side sees it (reply: the client's side). */
static int fuzz_frame(const uint8_t *data, size_t size, bool reply)
{
	struct vv_rw_hdr h;
	long n;

	if (size < VV_RW_HDR || size > sizeof(in))
		return 0;
	memcpy(in, data, size);
	in[10] = (uint8_t)((in[10] & ~1u) | (reply ? 1u : 0u));
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
	if (reply && h.op == VV_RW_READDIR && m.has_blob) {
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

#endif
