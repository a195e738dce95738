/*
 * fuzz_admin.c - libFuzzer target for the control socket's frames
 * (engine/admin_wire.c: vv_admin_wire_header, vv_admin_wire_req_decode,
 * vv_admin_wire_reply_decode).
 *
 * Untrusted bytes: everything a local user writes to the daemon's control
 * socket (mode 0666), and everything the CLI reads back from a socket.
 * The input is a frame: 12 header bytes, then the body (whatever follows,
 * whatever the header claims).  Errors must be codes, never a crash.
 * Invariants asserted (abort() on violation) for what is accepted:
 *   - header: type request or reply, length <= 1 MiB;
 *   - request: a verb of 1..64 bytes, at most 1024 arguments, keys of
 *     1..256 bytes, no NUL inside any string, and re-encoding gives back
 *     exactly the input frame (one encoding per request: no slack a
 *     second parser could read differently);
 *   - reply: status in -4095..0, a message under 256 bytes, the body's
 *     length as decoded, and re-encoding gives back the input frame.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "vecvault/admin_wire.h"
#include "vecvault/error.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void same_frame(const uint8_t *f, size_t flen, const uint8_t *data, size_t size)
{
	if (flen != size || memcmp(f, data, size) != 0)
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct vv_admin_wire_req *rq = NULL;
	struct vv_admin_reply rep;
	const uint8_t *body = data + VV_ADMIN_WIRE_HDR;
	size_t blen;
	uint8_t *f = NULL;
	size_t flen = 0;
	uint32_t claimed;
	int type, ver;

	if (size < VV_ADMIN_WIRE_HDR)
		return 0;
	blen = size - VV_ADMIN_WIRE_HDR;
	if (vv_admin_wire_header(data, &type, &claimed, &ver) < 0)
		return 0;
	if (claimed > VV_ADMIN_WIRE_MAX || (type != VV_ADMIN_WIRE_REQ && type != VV_ADMIN_WIRE_REPLY))
		abort();
	if (type == VV_ADMIN_WIRE_REQ) {
		if (vv_admin_wire_req_decode(body, blen, &rq) < 0)
			return 0;
		if (!rq->verb[0] || strlen(rq->verb) > VV_ADMIN_VERB_MAX || rq->nargs > VV_ADMIN_MAX_ARGS)
			abort();
		for (size_t i = 0; i < rq->nargs; i++)
			if (!rq->args[i].key[0] || strlen(rq->args[i].key) > VV_ADMIN_WIRE_KEY_MAX)
				abort();
		if (vv_admin_wire_req_encode(rq->verb, rq->args, rq->nargs, &f, &flen) < 0)
			abort();
		if (claimed == blen)
			same_frame(f, flen, data, size);
		free(f);
		vv_admin_wire_req_free(rq);
		return 0;
	}
	vv_admin_reply_init(&rep);
	if (vv_admin_wire_reply_decode(body, blen, &rep) == 0) {
		if (rep.status > 0 || rep.status < -4095 || strlen(rep.msg) >= VV_ADMIN_MSG_MAX)
			abort();
		if (rep.body && strlen(rep.body) != rep.len)
			abort();
		if (vv_admin_wire_reply_encode(rep.status, rep.msg, rep.body, rep.len, &f, &flen) < 0)
			abort();
		if (claimed == blen)
			same_frame(f, flen, data, size);
		free(f);
	}
	vv_admin_reply_release(&rep);
	return 0;
}
