/*
 * admin_wire.h - the control socket's wire format: frames that carry one
 * admin request (verb + key/value arguments) or its reply (status,
 * message, body).  fs/ctl.c (the daemon's side) and tools/admin_client.c
 * (the CLI's side) both speak it; the byte table is at the top of
 * engine/admin_wire.c and in docs/format.md.
 *
 * Why a format of our own: the socket is open to every local user (mode
 * 0666, authorization is per request), so each frame is untrusted input.
 * Decoding never trusts a length: every count and size is checked against
 * what is left and against the limits below before anything is allocated,
 * strings with NUL bytes are refused (a key "path\0x" must not read as
 * "path"), and a frame must be consumed exactly.
 *
 * Errors: VV_EFORMAT (not a frame of ours: bad magic, unknown type),
 * VV_ENOTSUP (another protocol version: the reply can say which), VV_E2BIG
 * (a length past a limit), VV_ECORRUPT (a body that does not parse),
 * VV_ENOMEM.
 */
#ifndef VECVAULT_ADMIN_WIRE_H
#define VECVAULT_ADMIN_WIRE_H

#include <stddef.h>
#include <stdint.h>

#include "vecvault/admin.h"

#define VV_ADMIN_WIRE_MAGIC "VVCP"          /* 4 bytes, no NUL on the wire */
#define VV_ADMIN_WIRE_VERSION 1
#define VV_ADMIN_WIRE_HDR 12                /* bytes of a frame header */
#define VV_ADMIN_WIRE_MAX (1u << 20)        /* bytes of a frame body */
#define VV_ADMIN_WIRE_KEY_MAX 256           /* bytes of an argument key */

enum vv_admin_wire_type {
	VV_ADMIN_WIRE_REQ = 1,
	VV_ADMIN_WIRE_REPLY = 2,
	VV_ADMIN_WIRE_PROGRESS = 3,      /* daemon -> CLI, before a reply */
};

#define VV_ADMIN_WIRE_PROGRESS_BODY 32
#define VV_ADMIN_WIRE_PROGRESS_FRAME (VV_ADMIN_WIRE_HDR + VV_ADMIN_WIRE_PROGRESS_BODY)

/*
 * Check a frame header (VV_ADMIN_WIRE_HDR bytes).  On success *type is
 * VV_ADMIN_WIRE_REQ or _REPLY and *bodylen <= VV_ADMIN_WIRE_MAX.  *version
 * (may be NULL) gets the peer's version even when it is not ours
 * (VV_ENOTSUP), so the caller can name it.
 */
int vv_admin_wire_header(const void *hdr, int *type, uint32_t *bodylen, int *version);

/* A decoded request: every string NUL-terminated, in one allocation. */
struct vv_admin_wire_req {
	const char *verb;
	size_t nargs;
	struct vv_admin_arg *args;
	size_t alloc;                    /* bytes of this block, wiped when freed
	                                    (requests carry passwords) */
};

/* Encode a whole request frame (header + body) into a new malloc'd buffer
 * (*frame, owned by the caller).  VV_EINVAL for a verb or key that is
 * empty or too long, VV_E2BIG when the body would pass the frame limit. */
int vv_admin_wire_req_encode(const char *verb, const struct vv_admin_arg *args, size_t nargs,
			     uint8_t **frame, size_t *len) __attribute__((warn_unused_result));

/* Decode a request body (after the header).  *out is owned by the caller:
 * vv_admin_wire_req_free. */
int vv_admin_wire_req_decode(const void *body, size_t len, struct vv_admin_wire_req **out)
	__attribute__((warn_unused_result));
void vv_admin_wire_req_free(struct vv_admin_wire_req *r);       /* NULL ok */

/* Encode a reply frame.  msg is cut to VV_ADMIN_MSG_MAX - 1 bytes; a body
 * that does not fit the frame is VV_E2BIG (the server then sends an error
 * reply instead).  NUL bytes in msg or body are not allowed (VV_EINVAL). */
int vv_admin_wire_reply_encode(int status, const char *msg, const char *body, size_t bodylen,
			       uint8_t **frame, size_t *len) __attribute__((warn_unused_result));

/* Decode a reply body into rep (vv_admin_reply_init'ed; rep->body becomes
 * a new NUL-terminated buffer, or NULL when empty).  status must be 0 or a
 * negative code in the VV_E* range. */
int vv_admin_wire_reply_decode(const void *body, size_t len, struct vv_admin_reply *rep)
	__attribute__((warn_unused_result));

/* A progress frame (header + 4 x u64): sent by the daemon, any number of
 * them, between a request that carried ("progress", "1") and its reply. */
void vv_admin_wire_progress_encode(const struct vv_admin_progress *p,
				   uint8_t frame[VV_ADMIN_WIRE_PROGRESS_FRAME]);
/* Decode a progress body (after the header): exactly 32 bytes, else
 * VV_ECORRUPT. */
int vv_admin_wire_progress_decode(const void *body, size_t len, struct vv_admin_progress *p)
	__attribute__((warn_unused_result));

#endif
