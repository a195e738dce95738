/*
 * remote_wire.h - the remote protocol's frames (vv:// mounts, `vecvault
 * serve`): requests that mirror the vault operations of vault.h, and their
 * replies.  The byte table is at the top of engine/remote_wire.c and in
 * docs/format.md.
 *
 * Why a format of our own, and why this shape: every byte a remote peer
 * sends is untrusted (the server reads it after TLS and, for the first
 * frame, before the peer is authenticated), and every byte a server sends
 * is untrusted to the client.  So a frame is a fixed 16-byte header (body
 * length, request id, op, flags, status) and a body whose layout is one
 * row of a table per op and direction: a short list of typed fields
 * (integers, a name, a text, a blob, an attribute record).  One decoder
 * walks the row through engine/buf.h; every length is checked against the
 * limits below and against what is left before anything is copied;
 * strings with NUL bytes are refused; a body must be consumed exactly.
 *
 * Requests carry a request id chosen by the client; the reply echoes it,
 * so many requests can be in flight on one connection and be answered in
 * any order (at most VV_RW_MAX_INFLIGHT).
 *
 * Errors: VV_EFORMAT (bad magic bits / flags, unknown op), VV_E2BIG (a
 * length past a limit), VV_ECORRUPT (a body that does not parse, or
 * trailing bytes), VV_EINVAL (encoding a message that breaks a limit).
 */
#ifndef VECVAULT_REMOTE_WIRE_H
#define VECVAULT_REMOTE_WIRE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "vecvault/vault.h"

#define VV_RW_VERSION 2                    /* 2: attribute flags byte, readdir eof,
                                              attributes in the open reply */
#define VV_RW_VERSION_S "2"
#define VV_RW_HDR 16                       /* bytes of a frame header */
#define VV_RW_DATA_MAX (1u << 20)          /* bytes of data in one read/write */
#define VV_RW_BODY_MAX (VV_RW_DATA_MAX + 4096)   /* bytes of a frame body */
#define VV_RW_TEXT_MAX 4095                /* a symlink target, an xattr name, a secret */
#define VV_RW_MAX_INFLIGHT 64              /* requests in flight per connection */
#define VV_RW_MAX_FIELDS 12                /* fields of one body */
#define VV_RW_ATTR_BYTES 93                /* bytes of an encoded struct vv_attr */

/* Flags in the header. */
#define VV_RW_F_REPLY 0x0001

/* Ops: one per vault operation, plus the authentication that must come
 * first.  Numbers are the wire's; never reuse one. */
enum vv_rw_op {
	VV_RW_AUTH = 1,
	VV_RW_LOOKUP = 2,
	VV_RW_FORGET = 3,
	VV_RW_GETATTR = 4,
	VV_RW_SETATTR = 5,
	VV_RW_READLINK = 6,
	VV_RW_MKNOD = 7,
	VV_RW_MKDIR = 8,
	VV_RW_SYMLINK = 9,
	VV_RW_LINK = 10,
	VV_RW_UNLINK = 11,
	VV_RW_RMDIR = 12,
	VV_RW_RENAME = 13,
	VV_RW_OPEN = 14,
	VV_RW_CREATE = 15,
	VV_RW_READ = 16,
	VV_RW_WRITE = 17,
	VV_RW_FLUSH = 18,
	VV_RW_FSYNC = 19,
	VV_RW_RELEASE = 20,
	VV_RW_OPENDIR = 21,
	VV_RW_READDIR = 22,
	VV_RW_RELEASEDIR = 23,
	VV_RW_SETXATTR = 24,
	VV_RW_GETXATTR = 25,
	VV_RW_LISTXATTR = 26,
	VV_RW_REMOVEXATTR = 27,
	VV_RW_ACCESS = 28,
	VV_RW_STATFS = 29,
	VV_RW_FALLOCATE = 30,
	VV_RW_LSEEK = 31,
	VV_RW_KNN = 32,
	VV_RW_OP_MAX = 33,
};

/* AUTH methods (first u32 of an AUTH request after the version). */
enum { VV_RW_AUTH_KEY = 1, VV_RW_AUTH_PASSWORD = 2, VV_RW_AUTH_CERT = 3 };

struct vv_rw_hdr {
	uint32_t len;                /* body bytes, <= VV_RW_BODY_MAX */
	uint32_t id;                 /* request id, echoed by the reply */
	uint16_t op;                 /* enum vv_rw_op */
	uint16_t flags;              /* VV_RW_F_REPLY or 0 */
	int32_t status;              /* replies: 0 or a VV_E* code; requests: 0 */
};

/*
 * A decoded body.  Fields land in order of their kind: integers in u[]
 * (u32 fields widened), names and texts in s[] (NUL-terminated copies in
 * sbuf), the blob as a pointer into the decoded body (borrowed: valid as
 * long as the body is), the attribute record in attr.  A reply with a
 * non-zero status has an empty body and no fields.
 */
struct vv_rw_msg {
	struct vv_rw_hdr h;
	unsigned nu, ns;
	uint64_t u[VV_RW_MAX_FIELDS];
	const char *s[3];
	size_t slen[3];
	const uint8_t *blob;
	size_t bloblen;
	bool has_blob, has_attr;
	struct vv_attr attr;
	char sbuf[3 * (VV_RW_TEXT_MAX + 1)];
};

/* The op's name ("lookup"), or NULL for an unknown op. */
const char *vv_rw_op_name(unsigned op);

/* Parse a header (VV_RW_HDR bytes): 0, VV_EFORMAT (unknown op or flags, a
 * request with a status), VV_E2BIG (len past VV_RW_BODY_MAX). */
int vv_rw_header(const void *hdr, struct vv_rw_hdr *out);

/* Decode the body (len bytes = h->len) of the frame whose header is h into
 * m, by the op's row for h's direction.  VV_ECORRUPT / VV_E2BIG /
 * VV_EFORMAT as above.  m->blob points into body. */
int vv_rw_decode(const struct vv_rw_hdr *h, const void *body, size_t len, struct vv_rw_msg *m)
	__attribute__((warn_unused_result));

/*
 * Encode a frame: header h (len is filled in) and the fields of m in the
 * op's row (m->u, m->s as NUL-terminated strings, m->blob, m->attr), into
 * out (cap bytes; VV_RW_HDR + VV_RW_BODY_MAX always suffices).  A reply
 * with a non-zero status is encoded with an empty body.  Returns the frame
 * length or VV_EINVAL (a field past its limit, unknown op) / VV_E2BIG
 * (cap too small).
 */
long vv_rw_encode(const struct vv_rw_hdr *h, const struct vv_rw_msg *m, void *out, size_t cap)
	__attribute__((warn_unused_result));

/*
 * Directory entries in a READDIR reply's blob, one after the other:
 * u64 ino, u32 mode, u64 next, u16 name length (1..255), the name, then
 * with plus an attribute record.  vv_rw_dirent_put appends one (0, or 1
 * when it does not fit: nothing written); vv_rw_dirent_next reads the one
 * at *off (0 and *off advanced, 1 at the end, VV_ECORRUPT); name is
 * NUL-terminated into namebuf (VV_NAME_MAX + 1 bytes).
 */
int vv_rw_dirent_put(uint8_t *buf, size_t cap, size_t *len, const struct vv_dirent *e,
		     const struct vv_attr *attr);
int vv_rw_dirent_next(const uint8_t *buf, size_t len, size_t *off, bool plus,
		      struct vv_dirent *e, char *namebuf, struct vv_attr *attr);

#endif
