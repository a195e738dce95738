/*
 * test_admin_wire.c - the control socket's frames (engine/admin_wire.c):
 * requests and replies round-trip; the decoder refuses every length that
 * lies, NUL bytes inside strings, counts past the limits, trailing bytes,
 * other versions and types; truncating a valid frame at any byte fails
 * cleanly.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "tap.h"
#include "vecvault/admin_wire.h"
#include "vecvault/error.h"

/* Decode a whole request frame (header + body). */
static int dec_req(const uint8_t *f, size_t len, struct vv_admin_wire_req **out)
{
	int type, r;
	uint32_t bl;

	*out = NULL;
	if (len < VV_ADMIN_WIRE_HDR)
		return VV_ECORRUPT;
	if ((r = vv_admin_wire_header(f, &type, &bl, NULL)) < 0)
		return r;
	if (type != VV_ADMIN_WIRE_REQ || bl != len - VV_ADMIN_WIRE_HDR)
		return VV_ECORRUPT;
	return vv_admin_wire_req_decode(f + VV_ADMIN_WIRE_HDR, bl, out);
}

int main(void)
{
	struct vv_admin_arg args[3] = { { "path", "/products/a.npy" }, { "json", "1" }, { "empty", "" } };
	struct vv_admin_wire_req *rq = NULL;
	struct vv_admin_reply rep;
	uint8_t *f = NULL;
	size_t len = 0;
	int type, ver;
	uint32_t bl;

	/* round trip */
	is_int(vv_admin_wire_req_encode("role.create", args, 3, &f, &len), 0, "encode a request");
	is_int(dec_req(f, len, &rq), 0, "decode it");
	ok(rq && strcmp(rq->verb, "role.create") == 0, "verb survives");
	ok(rq && rq->nargs == 3 && strcmp(rq->args[0].key, "path") == 0 &&
	   strcmp(rq->args[0].val, "/products/a.npy") == 0 && strcmp(rq->args[2].val, "") == 0,
	   "arguments survive, empty value included");
	vv_admin_wire_req_free(rq);
	ok(memcmp(f, "VVCP", 4) == 0 && f[4] == 1 && f[5] == 1, "magic, version 1, type request");

	/* truncation at every byte, and one byte more */
	{
		int bad = 0;
		for (size_t n = 0; n < len; n++) {
			uint8_t *c = malloc(n ? n : 1);
			memcpy(c, f, n);
			if (n >= VV_ADMIN_WIRE_HDR)
				vv_put_le32(c + 8, (uint32_t)(n - VV_ADMIN_WIRE_HDR));
			if (dec_req(c, n, &rq) == 0) {
				bad++;
				vv_admin_wire_req_free(rq);
			}
			free(c);
		}
		is_int(bad, 0, "every truncated request is refused");
	}
	{
		uint8_t *c = malloc(len + 1);
		memcpy(c, f, len);
		c[len] = 'x';
		vv_put_le32(c + 8, (uint32_t)(len + 1 - VV_ADMIN_WIRE_HDR));
		is_int(dec_req(c, len + 1, &rq), VV_ECORRUPT, "trailing byte refused");
		free(c);
	}

	/* header checks */
	{
		uint8_t h[VV_ADMIN_WIRE_HDR];
		memcpy(h, f, sizeof(h));
		h[0] = 'X';
		is_int(vv_admin_wire_header(h, &type, &bl, NULL), VV_EFORMAT, "bad magic");
		memcpy(h, f, sizeof(h));
		h[4] = 2;
		is_int(vv_admin_wire_header(h, &type, &bl, &ver), VV_ENOTSUP, "version 2: not supported");
		is_int(ver, 2, "and the peer's version is reported");
		memcpy(h, f, sizeof(h));
		h[5] = 4;
		is_int(vv_admin_wire_header(h, &type, &bl, NULL), VV_EFORMAT, "unknown type");
		h[5] = 0;
		is_int(vv_admin_wire_header(h, &type, &bl, NULL), VV_EFORMAT, "type 0");
		memcpy(h, f, sizeof(h));
		h[6] = 1;
		is_int(vv_admin_wire_header(h, &type, &bl, NULL), VV_EFORMAT, "reserved bytes must be 0");
		memcpy(h, f, sizeof(h));
		vv_put_le32(h + 8, VV_ADMIN_WIRE_MAX + 1);
		is_int(vv_admin_wire_header(h, &type, &bl, NULL), VV_E2BIG, "body over 1 MiB");
		vv_put_le32(h + 8, 0xffffffffu);
		is_int(vv_admin_wire_header(h, &type, &bl, NULL), VV_E2BIG, "body length 4 GiB");
		vv_put_le32(h + 8, VV_ADMIN_WIRE_MAX);
		is_int(vv_admin_wire_header(h, &type, &bl, NULL), 0, "exactly 1 MiB is fine");
	}
	free(f);

	/* hand-made bodies, one defect each (sizeof - 1: the literal's NUL) */
	{
#define BODY(s) (const uint8_t *)(s), sizeof(s) - 1
		static const struct {
			const uint8_t *b;
			size_t len;
			const char *what;
		} bad[] = {
			{ BODY("\x04" "a\0bc" "\0\0"), "NUL in the verb" },
			{ BODY("\x01v" "\x01\0" "\x06\0" "path\0x" "\0\0\0\0"), "NUL in a key" },
			{ BODY("\x01v" "\x01\0" "\x01\0k" "\x03\0\0\0" "a\0b"), "NUL in a value" },
			{ BODY("\x01v" "\x01\0" "\x01\0k" "\xf0\xff\xff\xff"), "value length past the body" },
			{ BODY("\x01v" "\xff\xff"), "65535 arguments claimed" },
			{ BODY("\x00" "\0\0"), "empty verb" },
			{ BODY("\xc8"), "verb longer than 64" },
			{ BODY("\x01v" "\x01\0" "\0\0" "\0\0\0\0"), "empty key" },
			{ BODY("\x01v" "\0\0" "x"), "trailing byte after the arguments" },
		};
#undef BODY
		for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
			rq = NULL;
			is_int(vv_admin_wire_req_decode(bad[i].b, bad[i].len, &rq), VV_ECORRUPT, bad[i].what);
			ok(rq == NULL, "and nothing is returned");
		}
		is_int(vv_admin_wire_req_decode((const uint8_t *)"\x01v\0\0", 4, &rq), 0,
		       "the same shape without the defect decodes");
		vv_admin_wire_req_free(rq);
	}

	/* encoder limits */
	is_int(vv_admin_wire_req_encode("", NULL, 0, &f, &len), VV_EINVAL, "encode: empty verb");
	is_int(vv_admin_wire_req_encode("x", (struct vv_admin_arg[]){ { "", "v" } }, 1, &f, &len),
	       VV_EINVAL, "encode: empty key");
	is_int(vv_admin_wire_req_encode("x", args, VV_ADMIN_MAX_ARGS + 1, &f, &len), VV_E2BIG,
	       "encode: too many arguments");
	{
		char *big = malloc(VV_ADMIN_WIRE_MAX + 1);
		memset(big, 'a', VV_ADMIN_WIRE_MAX);
		big[VV_ADMIN_WIRE_MAX] = '\0';
		is_int(vv_admin_wire_req_encode("x", (struct vv_admin_arg[]){ { "k", big } }, 1, &f, &len),
		       VV_E2BIG, "encode: a 1 MiB value does not fit");
		is_int(vv_admin_wire_reply_encode(0, "m", big, VV_ADMIN_WIRE_MAX, &f, &len), VV_E2BIG,
		       "encode: a 1 MiB reply body does not fit");
		free(big);
	}
	{
		/* the most arguments a request may carry round-trip */
		struct vv_admin_arg *many = calloc(VV_ADMIN_MAX_ARGS, sizeof(*many));
		for (size_t i = 0; i < VV_ADMIN_MAX_ARGS; i++)
			many[i] = (struct vv_admin_arg){ "path", "/c" };
		is_int(vv_admin_wire_req_encode("x", many, VV_ADMIN_MAX_ARGS, &f, &len), 0,
		       "encode 1024 arguments");
		is_int(dec_req(f, len, &rq), 0, "decode 1024 arguments");
		ok(rq && rq->nargs == VV_ADMIN_MAX_ARGS && strcmp(rq->args[1023].val, "/c") == 0,
		   "all of them");
		vv_admin_wire_req_free(rq);
		free(f);
		free(many);
	}

	/* replies */
	vv_admin_reply_init(&rep);
	is_int(vv_admin_wire_reply_encode(VV_EACCES, "role.create: only root", "body\n", 5, &f, &len), 0,
	       "encode a reply");
	is_int(vv_admin_wire_header(f, &type, &bl, NULL), 0, "its header");
	is_int(type, VV_ADMIN_WIRE_REPLY, "type reply");
	is_int(vv_admin_wire_reply_decode(f + VV_ADMIN_WIRE_HDR, bl, &rep), 0, "decode it");
	is_int(rep.status, VV_EACCES, "negative status survives");
	is_str(rep.msg, "role.create: only root", "message survives");
	ok(rep.body && rep.len == 5 && strcmp(rep.body, "body\n") == 0, "body survives");
	{
		int bad = 0;
		for (uint32_t n = 0; n < bl; n++)
			if (vv_admin_wire_reply_decode(f + VV_ADMIN_WIRE_HDR, n, &rep) == 0)
				bad++;
		is_int(bad, 0, "every truncated reply is refused");
	}
	vv_put_le32(f + VV_ADMIN_WIRE_HDR, 5);
	is_int(vv_admin_wire_reply_decode(f + VV_ADMIN_WIRE_HDR, bl, &rep), VV_ECORRUPT,
	       "positive status refused");
	free(f);
	is_int(vv_admin_wire_reply_encode(0, NULL, "a\0b", 3, &f, &len), VV_EINVAL, "encode: NUL in body");
	is_int(vv_admin_wire_reply_encode(1, NULL, NULL, 0, &f, &len), VV_EINVAL, "encode: positive status");
	{
		char lm[600];
		memset(lm, 'm', sizeof(lm) - 1);
		lm[sizeof(lm) - 1] = '\0';
		is_int(vv_admin_wire_reply_encode(0, lm, NULL, 0, &f, &len), 0, "a long message is cut");
		is_int(vv_admin_wire_reply_decode(f + VV_ADMIN_WIRE_HDR, (uint32_t)(len - VV_ADMIN_WIRE_HDR),
						  &rep), 0, "and decodes");
		is_int((int)strlen(rep.msg), VV_ADMIN_MSG_MAX - 1, "to 255 bytes");
		ok(rep.body == NULL, "no body: NULL");
		free(f);
	}
	vv_admin_reply_release(&rep);

	/* progress frames */
	{
		struct vv_admin_progress p = { 3, 7, 3000, UINT64_MAX }, q;
		uint8_t pf[VV_ADMIN_WIRE_PROGRESS_FRAME];
		vv_admin_wire_progress_encode(&p, pf);
		is_int(vv_admin_wire_header(pf, &type, &bl, NULL), 0, "progress: header checks");
		is_int(type, VV_ADMIN_WIRE_PROGRESS, "type 3");
		is_int((int)bl, 32, "body of 32 bytes");
		is_int(vv_admin_wire_progress_decode(pf + VV_ADMIN_WIRE_HDR, 32, &q), 0, "decodes");
		ok(q.objects_done == 3 && q.objects_total == 7 && q.bytes_done == 3000 &&
		   q.bytes_total == UINT64_MAX, "every field survives");
		is_int(vv_admin_wire_progress_decode(pf + VV_ADMIN_WIRE_HDR, 31, &q), VV_ECORRUPT, "short: refused");
		is_int(vv_admin_wire_progress_decode(pf + VV_ADMIN_WIRE_HDR, 33, &q), VV_ECORRUPT,
		       "trailing byte: refused");
	}
	return tap_done();
}
