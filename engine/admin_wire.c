/*
 * admin_wire.c - frames of the control socket (admin_wire.h says why).
 *
 * Every integer is little-endian.  A frame:
 *
 *   offset  size  field
 *   0       4     magic "VVCP"
 *   4       1     version (1)
 *   5       1     type: 1 request, 2 reply, 3 progress
 *   6       2     reserved, 0
 *   8       4     body length N (0..1048576)
 *   12      N     body
 *
 * Request body:
 *
 *   size  field
 *   1     verb length V (1..64)
 *   V     verb, e.g. "role.create" (no NUL)
 *   2     argument count A (0..1024, VV_ADMIN_MAX_ARGS)
 *   then A times:
 *     2   key length K (1..256)
 *     K   key (no NUL)
 *     4   value length L (0..N)
 *     L   value (no NUL; may be empty)
 *
 * Reply body:
 *
 *   size  field
 *   4     status: 0, or a negative VV_E* code (-4095..-1), two's complement
 *   2     message length M (0..255)
 *   M     message (no NUL)
 *   4     body length B
 *   B     body: text, or JSON when the request asked for it (no NUL)
 *
 * Progress body (sent by the daemon before the reply of a long verb,
 * only when the request carried progress=1; any number, then the reply):
 *
 *   size  field
 *   8     objects done
 *   8     objects in all (0: none to do)
 *   8     bytes done
 *   8     bytes in all (0: none, or not known)
 *
 * A body must be consumed exactly: trailing bytes are an error, like a
 * short one.  Limits are checked before anything is allocated, and the
 * decoded request takes at most the body's size plus 18 bytes per
 * argument in memory.
 */
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "vecvault/admin_wire.h"
#include "vecvault/error.h"

#define STATUS_MIN (-4095)

int vv_admin_wire_header(const void *hdr, int *type, uint32_t *bodylen, int *version)
{
	const uint8_t *h = hdr;
	uint32_t n;

	if (memcmp(h, VV_ADMIN_WIRE_MAGIC, 4) != 0)
		return VV_EFORMAT;
	if (version)
		*version = h[4];
	if (h[4] != VV_ADMIN_WIRE_VERSION)
		return VV_ENOTSUP;
	if ((h[5] != VV_ADMIN_WIRE_REQ && h[5] != VV_ADMIN_WIRE_REPLY &&
	     h[5] != VV_ADMIN_WIRE_PROGRESS) || h[6] || h[7])
		return VV_EFORMAT;
	n = vv_get_le32(h + 8);
	if (n > VV_ADMIN_WIRE_MAX)
		return VV_E2BIG;
	*type = h[5];
	*bodylen = n;
	return 0;
}

static void put_header(uint8_t *h, int type, uint32_t bodylen)
{
	memcpy(h, VV_ADMIN_WIRE_MAGIC, 4);
	h[4] = VV_ADMIN_WIRE_VERSION;
	h[5] = (uint8_t)type;
	h[6] = h[7] = 0;
	vv_put_le32(h + 8, bodylen);
}

/* A frame buffer of header + body bytes; the header is written last. */
static int frame_new(size_t body, uint8_t **out)
{
	if (body > VV_ADMIN_WIRE_MAX)
		return VV_E2BIG;
	*out = malloc(VV_ADMIN_WIRE_HDR + body);
	return *out ? 0 : VV_ENOMEM;
}

int vv_admin_wire_req_encode(const char *verb, const struct vv_admin_arg *args, size_t nargs,
			     uint8_t **frame, size_t *len)
{
	size_t vl = verb ? strlen(verb) : 0, body = 1 + vl + 2;
	struct vv_wbuf w;
	uint8_t *f = NULL;
	int r;

	*frame = NULL;
	if (vl == 0 || vl > VV_ADMIN_VERB_MAX)
		return VV_EINVAL;
	if (nargs > VV_ADMIN_MAX_ARGS)
		return VV_E2BIG;
	for (size_t i = 0; i < nargs; i++) {
		size_t kl = args[i].key ? strlen(args[i].key) : 0;
		size_t al = args[i].val ? strlen(args[i].val) : 0;

		if (kl == 0 || kl > VV_ADMIN_WIRE_KEY_MAX)
			return VV_EINVAL;
		if (al > VV_ADMIN_WIRE_MAX)
			return VV_E2BIG;
		body += 2 + kl + 4 + al;
		if (body > VV_ADMIN_WIRE_MAX)
			return VV_E2BIG;
	}
	if ((r = frame_new(body, &f)) < 0)
		return r;
	put_header(f, VV_ADMIN_WIRE_REQ, (uint32_t)body);
	vv_wbuf_init(&w, f + VV_ADMIN_WIRE_HDR, body);
	vv_wbuf_put_u8(&w, (uint8_t)vl);
	vv_wbuf_put_bytes(&w, verb, vl);
	vv_wbuf_put_u16(&w, (uint16_t)nargs);
	for (size_t i = 0; i < nargs; i++) {
		size_t kl = strlen(args[i].key), al = args[i].val ? strlen(args[i].val) : 0;

		vv_wbuf_put_u16(&w, (uint16_t)kl);
		vv_wbuf_put_bytes(&w, args[i].key, kl);
		vv_wbuf_put_u32(&w, (uint32_t)al);
		if (al)
			vv_wbuf_put_bytes(&w, args[i].val, al);
	}
	if (w.err || w.len != body) {
		free(f);
		return VV_EINVAL;           /* cannot happen: sizes computed above */
	}
	*frame = f;
	*len = VV_ADMIN_WIRE_HDR + body;
	return 0;
}

/* The next n bytes as a string copied into *dst (NUL-terminated), which
 * advances; refuses NUL bytes inside. */
static int get_str(struct vv_rbuf *b, size_t n, char **dst)
{
	const uint8_t *p;

	if (vv_rbuf_get_ptr(b, &p, n) < 0 || memchr(p, 0, n))
		return VV_ECORRUPT;
	memcpy(*dst, p, n);
	(*dst)[n] = '\0';
	*dst += n + 1;
	return 0;
}

int vv_admin_wire_req_decode(const void *body, size_t len, struct vv_admin_wire_req **out)
{
	struct vv_admin_wire_req *rq = NULL;
	struct vv_rbuf b;
	size_t alloc;
	uint8_t vl;
	uint16_t na;
	char *s;
	int r = VV_ECORRUPT;

	*out = NULL;
	if (len > VV_ADMIN_WIRE_MAX)
		return VV_E2BIG;
	vv_rbuf_init(&b, body, len);
	if (vv_rbuf_get_u8(&b, &vl) < 0 || vl == 0 || vl > VV_ADMIN_VERB_MAX)
		return VV_ECORRUPT;
	/* Each argument takes at least 7 bytes of body (2 + 1 + 4), so the
	 * count is checked against what is left before allocating for it;
	 * strings take at most len bytes plus one NUL each. */
	if (vv_rbuf_skip(&b, vl) < 0 || vv_rbuf_get_u16(&b, &na) < 0 ||
	    na > VV_ADMIN_MAX_ARGS || (size_t)na * 7 > vv_rbuf_left(&b))
		return VV_ECORRUPT;
	alloc = sizeof(*rq) + (size_t)na * sizeof(rq->args[0]) + len + 1 + 2 * (size_t)na;
	rq = malloc(alloc);
	if (!rq)
		return VV_ENOMEM;
	rq->alloc = alloc;
	rq->nargs = na;
	rq->args = (struct vv_admin_arg *)(rq + 1);
	s = (char *)(rq->args + na);
	vv_rbuf_init(&b, body, len);
	b.off = 1;
	rq->verb = s;
	if (get_str(&b, vl, &s) < 0)
		goto out;
	b.off += 2;
	for (size_t i = 0; i < na; i++) {
		uint16_t kl;
		uint32_t al;

		if (vv_rbuf_get_u16(&b, &kl) < 0 || kl == 0 || kl > VV_ADMIN_WIRE_KEY_MAX)
			goto out;
		rq->args[i].key = s;
		if (get_str(&b, kl, &s) < 0 || vv_rbuf_get_u32(&b, &al) < 0)
			goto out;
		rq->args[i].val = s;
		if (get_str(&b, al, &s) < 0)
			goto out;
	}
	if (vv_rbuf_left(&b) != 0)
		goto out;
	*out = rq;
	rq = NULL;
	r = 0;
out:
	vv_admin_wire_req_free(rq);
	return r;
}

void vv_admin_wire_req_free(struct vv_admin_wire_req *r)
{
	if (!r)
		return;
	explicit_bzero(r, r->alloc);
	free(r);
}

int vv_admin_wire_reply_encode(int status, const char *msg, const char *body, size_t bodylen,
			       uint8_t **frame, size_t *len)
{
	size_t ml = msg ? strnlen(msg, VV_ADMIN_MSG_MAX - 1) : 0, n;
	struct vv_wbuf w;
	uint8_t *f = NULL;
	int r;

	*frame = NULL;
	if (status > 0 || status < STATUS_MIN)
		return VV_EINVAL;
	if (!body)
		bodylen = 0;
	if ((body && memchr(body, 0, bodylen)))
		return VV_EINVAL;
	if (bodylen > VV_ADMIN_WIRE_MAX - 10 - ml)
		return VV_E2BIG;
	n = 4 + 2 + ml + 4 + bodylen;
	if ((r = frame_new(n, &f)) < 0)
		return r;
	put_header(f, VV_ADMIN_WIRE_REPLY, (uint32_t)n);
	vv_wbuf_init(&w, f + VV_ADMIN_WIRE_HDR, n);
	vv_wbuf_put_u32(&w, (uint32_t)status);
	vv_wbuf_put_u16(&w, (uint16_t)ml);
	vv_wbuf_put_bytes(&w, msg, ml);
	vv_wbuf_put_u32(&w, (uint32_t)bodylen);
	if (bodylen)
		vv_wbuf_put_bytes(&w, body, bodylen);
	if (w.err || w.len != n) {
		free(f);
		return VV_EINVAL;
	}
	*frame = f;
	*len = VV_ADMIN_WIRE_HDR + n;
	return 0;
}

int vv_admin_wire_reply_decode(const void *body, size_t len, struct vv_admin_reply *rep)
{
	struct vv_rbuf b;
	const uint8_t *p;
	uint32_t st, bl;
	uint16_t ml;
	int32_t status;

	if (len > VV_ADMIN_WIRE_MAX)
		return VV_E2BIG;
	vv_rbuf_init(&b, body, len);
	if (vv_rbuf_get_u32(&b, &st) < 0)
		return VV_ECORRUPT;
	/* two's complement without relying on implementation-defined casts */
	status = st <= INT32_MAX ? (int32_t)st : -(int32_t)(~st) - 1;
	if (status > 0 || status < STATUS_MIN)
		return VV_ECORRUPT;
	if (vv_rbuf_get_u16(&b, &ml) < 0 || ml >= VV_ADMIN_MSG_MAX ||
	    vv_rbuf_get_ptr(&b, &p, ml) < 0 || memchr(p, 0, ml))
		return VV_ECORRUPT;
	memcpy(rep->msg, p, ml);
	rep->msg[ml] = '\0';
	if (vv_rbuf_get_u32(&b, &bl) < 0 || bl != vv_rbuf_left(&b) ||
	    vv_rbuf_get_ptr(&b, &p, bl) < 0 || memchr(p, 0, bl)) {
		rep->msg[0] = '\0';
		return VV_ECORRUPT;
	}
	free(rep->body);
	rep->body = NULL;
	rep->len = rep->cap = 0;
	if (bl) {
		if (!(rep->body = malloc((size_t)bl + 1))) {
			rep->msg[0] = '\0';
			return VV_ENOMEM;
		}
		memcpy(rep->body, p, bl);
		rep->body[bl] = '\0';
		rep->len = bl;
		rep->cap = (size_t)bl + 1;
	}
	rep->status = status;
	return 0;
}

void vv_admin_wire_progress_encode(const struct vv_admin_progress *p,
				   uint8_t frame[VV_ADMIN_WIRE_PROGRESS_FRAME])
{
	put_header(frame, VV_ADMIN_WIRE_PROGRESS, VV_ADMIN_WIRE_PROGRESS_BODY);
	vv_put_le64(frame + VV_ADMIN_WIRE_HDR, p->objects_done);
	vv_put_le64(frame + VV_ADMIN_WIRE_HDR + 8, p->objects_total);
	vv_put_le64(frame + VV_ADMIN_WIRE_HDR + 16, p->bytes_done);
	vv_put_le64(frame + VV_ADMIN_WIRE_HDR + 24, p->bytes_total);
}

int vv_admin_wire_progress_decode(const void *body, size_t len, struct vv_admin_progress *p)
{
	const uint8_t *b = body;

	if (len != VV_ADMIN_WIRE_PROGRESS_BODY)
		return VV_ECORRUPT;
	p->objects_done = vv_get_le64(b);
	p->objects_total = vv_get_le64(b + 8);
	p->bytes_done = vv_get_le64(b + 16);
	p->bytes_total = vv_get_le64(b + 24);
	return 0;
}
