/*
 * remote_wire.c - frames of the remote protocol (remote_wire.h says why).
 *
 * Every integer is little-endian.  A frame:
 *
 *   offset  size  field
 *   0       4     body length N (0..VV_RW_BODY_MAX = 1 MiB + 4096)
 *   4       4     request id (the client's choice; the reply echoes it)
 *   8       2     op (1..32, table below)
 *   10      2     flags: bit 0 = reply; every other bit 0
 *   12      4     status: requests 0; replies 0 or a VV_E* code (-4095..-1)
 *   16      N     body: the fields of the op's row, in order
 *
 * Field kinds (one letter each in the rows):
 *
 *   Q  8  u64
 *   I  4  u32
 *   N  2+L  a name: u16 L (1..255), L bytes, no NUL, no '/'
 *   T  2+L  a text: u16 L (0..4095), L bytes, no NUL
 *   B  4+L  a blob: u32 L (0..1 MiB), L bytes
 *   A  93 an attribute record: u64 ino, u64 gen, u32 mode, u32 nlink,
 *         u32 uid, u32 gid, u64 size, u64 blocks, u64 rdev, then atime,
 *         mtime, ctime each as i64 seconds + u32 nanoseconds (< 10^9),
 *         u8 flags: bit 0 cacheable, bit 1 no stored xattr (security.*,
 *         trusted.*, system.posix_acl_* are ENODATA); other bits 0
 *
 * A reply whose status is not 0 has an empty body.  The version travels
 * in the AUTH request (the first frame of a connection), so the header
 * needs none.  Rows (request / reply):
 *
 *   op  name         request                                reply
 *   1   auth         I version, I method, T user, T secret  I uid, T user
 *   2   lookup       Q parent, N name                       A
 *   3   forget       Q ino, Q nlookup                       -
 *   4   getattr      Q ino                                  A
 *   5   setattr      Q ino, I valid, I mode, I uid, I gid,  A
 *                    Q size, Q atime s, I ns, Q mtime s,
 *                    I ns, Q handle (0: none)
 *   6   readlink     Q ino                                  T target
 *   7   mknod        Q parent, N, I mode, Q rdev, I umask   A
 *   8   mkdir        Q parent, N, I mode, I umask           A
 *   9   symlink      Q parent, N, T target                  A
 *   10  link         Q ino, Q newparent, N newname          A
 *   11  unlink       Q parent, N                            -
 *   12  rmdir        Q parent, N                            -
 *   13  rename       Q parent, N, Q newparent, N, I flags   -
 *   14  open         Q ino, I flags                         Q handle, I keep_cache,
 *                                                           Q data generation, A (as
 *                                                           of the open)
 *   15  create       Q parent, N, I mode, I flags, I umask  A, Q handle
 *   16  read         Q handle, Q offset, I size (<= 1 MiB)  B data
 *   17  write        Q handle, Q offset, B data             I written
 *   18  flush        Q handle                               -
 *   19  fsync        Q handle, I datasync                   -
 *   20  release      Q handle                               -
 *   21  opendir      Q ino                                  Q handle
 *   22  readdir      Q handle, Q offset, I plus, I max      B entries, I eof (0 or 1:
 *                                                           the directory ends here)
 *   23  releasedir   Q handle                               -
 *   24  setxattr     Q ino, T name, B value, I flags        -
 *   25  getxattr     Q ino, T name, I size                  I size, B value
 *   26  listxattr    Q ino, I size                          I size, B names
 *   27  removexattr  Q ino, T name                          -
 *   28  access       Q ino, I mask                          -
 *   29  statfs       Q ino                                  Q bsize, blocks, bfree,
 *                                                           bavail, files, ffree, I namemax
 *   30  fallocate    Q handle, I mode, Q offset, Q length   -
 *   31  lseek        Q handle, Q offset, I whence           Q offset
 *   32  knn          Q handle, B request (knn_ioctl.h)      B reply
 *
 * READDIR's blob holds entries (remote_wire.h, vv_rw_dirent_put).
 */
#include <string.h>

#include "buf.h"
#include "vecvault/error.h"
#include "vecvault/remote_wire.h"

#define STATUS_MIN (-4095)

struct row {
	const char *name;
	const char *req, *rep;
};

static const struct row rows[VV_RW_OP_MAX] = {
	[VV_RW_AUTH] = { "auth", "IITT", "IT" },
	[VV_RW_LOOKUP] = { "lookup", "QN", "A" },
	[VV_RW_FORGET] = { "forget", "QQ", "" },
	[VV_RW_GETATTR] = { "getattr", "Q", "A" },
	[VV_RW_SETATTR] = { "setattr", "QIIIIQQIQIQ", "A" },
	[VV_RW_READLINK] = { "readlink", "Q", "T" },
	[VV_RW_MKNOD] = { "mknod", "QNIQI", "A" },
	[VV_RW_MKDIR] = { "mkdir", "QNII", "A" },
	[VV_RW_SYMLINK] = { "symlink", "QNT", "A" },
	[VV_RW_LINK] = { "link", "QQN", "A" },
	[VV_RW_UNLINK] = { "unlink", "QN", "" },
	[VV_RW_RMDIR] = { "rmdir", "QN", "" },
	[VV_RW_RENAME] = { "rename", "QNQNI", "" },
	[VV_RW_OPEN] = { "open", "QI", "QIQA" },
	[VV_RW_CREATE] = { "create", "QNIII", "AQ" },
	[VV_RW_READ] = { "read", "QQI", "B" },
	[VV_RW_WRITE] = { "write", "QQB", "I" },
	[VV_RW_FLUSH] = { "flush", "Q", "" },
	[VV_RW_FSYNC] = { "fsync", "QI", "" },
	[VV_RW_RELEASE] = { "release", "Q", "" },
	[VV_RW_OPENDIR] = { "opendir", "Q", "Q" },
	[VV_RW_READDIR] = { "readdir", "QQII", "BI" },
	[VV_RW_RELEASEDIR] = { "releasedir", "Q", "" },
	[VV_RW_SETXATTR] = { "setxattr", "QTBI", "" },
	[VV_RW_GETXATTR] = { "getxattr", "QTI", "IB" },
	[VV_RW_LISTXATTR] = { "listxattr", "QI", "IB" },
	[VV_RW_REMOVEXATTR] = { "removexattr", "QT", "" },
	[VV_RW_ACCESS] = { "access", "QI", "" },
	[VV_RW_STATFS] = { "statfs", "Q", "QQQQQQI" },
	[VV_RW_FALLOCATE] = { "fallocate", "QIQQ", "" },
	[VV_RW_LSEEK] = { "lseek", "QQI", "Q" },
	[VV_RW_KNN] = { "knn", "QB", "B" },
};

const char *vv_rw_op_name(unsigned op)
{
	return op > 0 && op < VV_RW_OP_MAX ? rows[op].name : NULL;
}

static const char *row_of(const struct vv_rw_hdr *h)
{
	if (h->op == 0 || h->op >= VV_RW_OP_MAX)
		return NULL;
	return (h->flags & VV_RW_F_REPLY) ? rows[h->op].rep : rows[h->op].req;
}

int vv_rw_header(const void *hdr, struct vv_rw_hdr *out)
{
	const uint8_t *p = hdr;
	struct vv_rw_hdr h;

	h.len = vv_get_le32(p);
	h.id = vv_get_le32(p + 4);
	h.op = (uint16_t)(p[8] | (p[9] << 8));
	h.flags = (uint16_t)(p[10] | (p[11] << 8));
	h.status = (int32_t)vv_get_le32(p + 12);
	if (h.op == 0 || h.op >= VV_RW_OP_MAX || (h.flags & ~VV_RW_F_REPLY))
		return VV_EFORMAT;
	if (!(h.flags & VV_RW_F_REPLY) && h.status != 0)
		return VV_EFORMAT;
	if (h.status > 0 || h.status < STATUS_MIN)
		return VV_EFORMAT;
	if (h.len > VV_RW_BODY_MAX)
		return VV_E2BIG;
	*out = h;
	return 0;
}

/* --- attribute records -------------------------------------------------- */

static int get_time(struct vv_rbuf *b, struct timespec *ts)
{
	uint64_t s;
	uint32_t ns;

	if (vv_rbuf_get_u64(b, &s) < 0 || vv_rbuf_get_u32(b, &ns) < 0)
		return VV_ECORRUPT;
	if (ns >= 1000000000u)
		return VV_ECORRUPT;
	ts->tv_sec = (time_t)(int64_t)s;
	ts->tv_nsec = (long)ns;
	return 0;
}

static int get_attr(struct vv_rbuf *b, struct vv_attr *a)
{
	uint8_t c;

	if (vv_rbuf_left(b) < VV_RW_ATTR_BYTES)
		return VV_ECORRUPT;
	memset(a, 0, sizeof(*a));
	if (vv_rbuf_get_u64(b, &a->ino) < 0 || vv_rbuf_get_u64(b, &a->gen) < 0 ||
	    vv_rbuf_get_u32(b, &a->mode) < 0 || vv_rbuf_get_u32(b, &a->nlink) < 0 ||
	    vv_rbuf_get_u32(b, &a->uid) < 0 || vv_rbuf_get_u32(b, &a->gid) < 0 ||
	    vv_rbuf_get_u64(b, &a->size) < 0 || vv_rbuf_get_u64(b, &a->blocks) < 0 ||
	    vv_rbuf_get_u64(b, &a->rdev) < 0 || get_time(b, &a->atime) < 0 ||
	    get_time(b, &a->mtime) < 0 || get_time(b, &a->ctime) < 0 ||
	    vv_rbuf_get_u8(b, &c) < 0 || (c & ~3u))
		return VV_ECORRUPT;
	a->cacheable = c & 1;
	a->noxattr = (c & 2) != 0;
	return 0;
}

static void put_time(struct vv_wbuf *w, const struct timespec *ts)
{
	vv_wbuf_put_u64(w, (uint64_t)(int64_t)ts->tv_sec);
	vv_wbuf_put_u32(w, (uint32_t)ts->tv_nsec);
}

static int put_attr(struct vv_wbuf *w, const struct vv_attr *a)
{
	if (a->atime.tv_nsec < 0 || a->atime.tv_nsec >= 1000000000L ||
	    a->mtime.tv_nsec < 0 || a->mtime.tv_nsec >= 1000000000L ||
	    a->ctime.tv_nsec < 0 || a->ctime.tv_nsec >= 1000000000L)
		return VV_EINVAL;
	vv_wbuf_put_u64(w, a->ino);
	vv_wbuf_put_u64(w, a->gen);
	vv_wbuf_put_u32(w, a->mode);
	vv_wbuf_put_u32(w, a->nlink);
	vv_wbuf_put_u32(w, a->uid);
	vv_wbuf_put_u32(w, a->gid);
	vv_wbuf_put_u64(w, a->size);
	vv_wbuf_put_u64(w, a->blocks);
	vv_wbuf_put_u64(w, a->rdev);
	put_time(w, &a->atime);
	put_time(w, &a->mtime);
	put_time(w, &a->ctime);
	vv_wbuf_put_u8(w, (uint8_t)((a->cacheable ? 1 : 0) | (a->noxattr ? 2 : 0)));
	return 0;
}

/* --- strings ---------------------------------------------------------------- */

/* A name or a text of len bytes at p: within its limit, no NUL, and for a
 * name no '/' and not empty. */
static bool str_ok(const uint8_t *p, size_t len, char kind)
{
	size_t max = kind == 'N' ? VV_NAME_MAX : VV_RW_TEXT_MAX;

	if (len > max || (kind == 'N' && len == 0))
		return false;
	for (size_t i = 0; i < len; i++)
		if (p[i] == 0 || (kind == 'N' && p[i] == '/'))
			return false;
	return true;
}

/* --- decode ----------------------------------------------------------------- */

int vv_rw_decode(const struct vv_rw_hdr *h, const void *body, size_t len, struct vv_rw_msg *m)
{
	const char *row = row_of(h);
	struct vv_rbuf b;
	size_t soff = 0;

	if (!row)
		return VV_EFORMAT;
	if (len != h->len)
		return VV_ECORRUPT;
	if (len > VV_RW_BODY_MAX)
		return VV_E2BIG;
	m->h = *h;
	m->nu = m->ns = 0;
	m->blob = NULL;
	m->bloblen = 0;
	m->has_blob = m->has_attr = false;
	if (h->status != 0)
		return len == 0 ? 0 : VV_ECORRUPT;
	vv_rbuf_init(&b, body, len);
	for (const char *k = row; *k; k++) {
		switch (*k) {
		case 'Q': {
			uint64_t v;
			if (vv_rbuf_get_u64(&b, &v) < 0)
				return VV_ECORRUPT;
			m->u[m->nu++] = v;
			break;
		}
		case 'I': {
			uint32_t v;
			if (vv_rbuf_get_u32(&b, &v) < 0)
				return VV_ECORRUPT;
			m->u[m->nu++] = v;
			break;
		}
		case 'N':
		case 'T': {
			const uint8_t *p;
			uint16_t n;
			if (vv_rbuf_get_u16(&b, &n) < 0)
				return VV_ECORRUPT;
			if (n > VV_RW_TEXT_MAX)
				return VV_E2BIG;
			if (vv_rbuf_get_ptr(&b, &p, n) < 0 || !str_ok(p, n, *k))
				return VV_ECORRUPT;
			memcpy(m->sbuf + soff, p, n);
			m->sbuf[soff + n] = '\0';
			m->s[m->ns] = m->sbuf + soff;
			m->slen[m->ns++] = n;
			soff += (size_t)n + 1;
			break;
		}
		case 'B': {
			uint32_t n;
			if (vv_rbuf_get_u32(&b, &n) < 0)
				return VV_ECORRUPT;
			if (n > VV_RW_DATA_MAX)
				return VV_E2BIG;
			if (vv_rbuf_get_ptr(&b, &m->blob, n) < 0)
				return VV_ECORRUPT;
			m->bloblen = n;
			m->has_blob = true;
			break;
		}
		case 'A':
			if (get_attr(&b, &m->attr) < 0)
				return VV_ECORRUPT;
			m->has_attr = true;
			break;
		default:
			return VV_EFORMAT;
		}
	}
	return vv_rbuf_left(&b) == 0 ? 0 : VV_ECORRUPT;
}

/* --- encode ----------------------------------------------------------------- */

long vv_rw_encode(const struct vv_rw_hdr *h, const struct vv_rw_msg *m, void *out, size_t cap)
{
	const char *row = row_of(h);
	struct vv_wbuf w;
	unsigned nu = 0, ns = 0;
	uint8_t *o = out;

	if (!row || (h->flags & ~VV_RW_F_REPLY) || h->status > 0 || h->status < STATUS_MIN ||
	    (!(h->flags & VV_RW_F_REPLY) && h->status != 0))
		return VV_EINVAL;
	if (cap < VV_RW_HDR)
		return VV_E2BIG;
	vv_wbuf_init(&w, o + VV_RW_HDR, cap - VV_RW_HDR > VV_RW_BODY_MAX ? VV_RW_BODY_MAX
									 : cap - VV_RW_HDR);
	for (const char *k = h->status ? "" : row; *k; k++) {
		switch (*k) {
		case 'Q':
			if (nu >= m->nu)
				return VV_EINVAL;
			vv_wbuf_put_u64(&w, m->u[nu++]);
			break;
		case 'I':
			if (nu >= m->nu || m->u[nu] > UINT32_MAX)
				return VV_EINVAL;
			vv_wbuf_put_u32(&w, (uint32_t)m->u[nu++]);
			break;
		case 'N':
		case 'T': {
			size_t n;
			if (ns >= m->ns || !m->s[ns])
				return VV_EINVAL;
			n = strlen(m->s[ns]);
			if (!str_ok((const uint8_t *)m->s[ns], n, *k))
				return VV_EINVAL;
			vv_wbuf_put_u16(&w, (uint16_t)n);
			vv_wbuf_put_bytes(&w, m->s[ns++], n);
			break;
		}
		case 'B':
			if (m->bloblen > VV_RW_DATA_MAX || (m->bloblen && !m->blob))
				return VV_EINVAL;
			vv_wbuf_put_u32(&w, (uint32_t)m->bloblen);
			if (m->bloblen)
				vv_wbuf_put_bytes(&w, m->blob, m->bloblen);
			break;
		case 'A':
			if (put_attr(&w, &m->attr) < 0)
				return VV_EINVAL;
			break;
		default:
			return VV_EINVAL;
		}
	}
	if (w.err)
		return VV_E2BIG;
	vv_put_le32(o, (uint32_t)w.len);
	vv_put_le32(o + 4, h->id);
	o[8] = (uint8_t)h->op;
	o[9] = (uint8_t)(h->op >> 8);
	o[10] = (uint8_t)h->flags;
	o[11] = (uint8_t)(h->flags >> 8);
	vv_put_le32(o + 12, (uint32_t)h->status);
	return (long)(VV_RW_HDR + w.len);
}

/* --- directory entries ---------------------------------------------------- */

int vv_rw_dirent_put(uint8_t *buf, size_t cap, size_t *len, const struct vv_dirent *e,
		     const struct vv_attr *attr)
{
	size_t n = strlen(e->name);
	struct vv_wbuf w;

	if (!str_ok((const uint8_t *)e->name, n, 'N'))
		return VV_EINVAL;
	vv_wbuf_init(&w, buf + *len, cap - *len);
	vv_wbuf_put_u64(&w, e->ino);
	vv_wbuf_put_u32(&w, e->mode);
	vv_wbuf_put_u64(&w, e->next);
	vv_wbuf_put_u16(&w, (uint16_t)n);
	vv_wbuf_put_bytes(&w, e->name, n);
	if (attr && put_attr(&w, attr) < 0)
		return VV_EINVAL;
	if (w.err)
		return 1;
	*len += w.len;
	return 0;
}

int vv_rw_dirent_next(const uint8_t *buf, size_t len, size_t *off, bool plus,
		      struct vv_dirent *e, char *namebuf, struct vv_attr *attr)
{
	struct vv_rbuf b;
	const uint8_t *p;
	uint16_t n;

	if (*off > len)
		return VV_ECORRUPT;
	if (*off == len)
		return 1;
	vv_rbuf_init(&b, buf + *off, len - *off);
	if (vv_rbuf_get_u64(&b, &e->ino) < 0 || vv_rbuf_get_u32(&b, &e->mode) < 0 ||
	    vv_rbuf_get_u64(&b, &e->next) < 0 || vv_rbuf_get_u16(&b, &n) < 0 ||
	    vv_rbuf_get_ptr(&b, &p, n) < 0 || !str_ok(p, n, 'N'))
		return VV_ECORRUPT;
	memcpy(namebuf, p, n);
	namebuf[n] = '\0';
	e->name = namebuf;
	if (plus && get_attr(&b, attr) < 0)
		return VV_ECORRUPT;
	*off += b.off;
	return 0;
}
