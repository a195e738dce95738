/*
 * buf.h - bounds-checked reading and writing of untrusted bytes.
 *
 * Everything that comes from outside the process (conf, chunk headers, xattr
 * blobs, segment headers, network frames) is parsed through a struct vv_rbuf:
 * each get either succeeds and advances, or fails with VV_ECORRUPT and leaves
 * the cursor where it was.  Integers are little-endian unless the name says
 * _be.  struct vv_wbuf builds such bytes into a caller-owned array.
 */
#ifndef VV_BUF_H
#define VV_BUF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "vecvault/error.h"

struct vv_rbuf {
	const uint8_t *p;
	size_t len;
	size_t off;
};

static inline void vv_rbuf_init(struct vv_rbuf *b, const void *p, size_t len)
{
	b->p = p;
	b->len = len;
	b->off = 0;
}

static inline size_t vv_rbuf_left(const struct vv_rbuf *b) { return b->len - b->off; }

static inline int vv_rbuf_get_bytes(struct vv_rbuf *b, void *out, size_t n)
{
	if (n > vv_rbuf_left(b))
		return VV_ECORRUPT;
	for (size_t i = 0; i < n; i++)
		((uint8_t *)out)[i] = b->p[b->off + i];
	b->off += n;
	return 0;
}

/* Point *out at the next n bytes without copying. */
static inline int vv_rbuf_get_ptr(struct vv_rbuf *b, const uint8_t **out, size_t n)
{
	if (n > vv_rbuf_left(b))
		return VV_ECORRUPT;
	*out = b->p + b->off;
	b->off += n;
	return 0;
}

static inline int vv_rbuf_skip(struct vv_rbuf *b, size_t n)
{
	if (n > vv_rbuf_left(b))
		return VV_ECORRUPT;
	b->off += n;
	return 0;
}

static inline int vv_rbuf_get_u8(struct vv_rbuf *b, uint8_t *v)
{
	return vv_rbuf_get_bytes(b, v, 1);
}

static inline int vv_rbuf_get_u16(struct vv_rbuf *b, uint16_t *v)
{
	uint8_t x[2];
	if (vv_rbuf_get_bytes(b, x, 2) < 0)
		return VV_ECORRUPT;
	*v = (uint16_t)(x[0] | (x[1] << 8));
	return 0;
}

static inline int vv_rbuf_get_u32(struct vv_rbuf *b, uint32_t *v)
{
	uint8_t x[4];
	if (vv_rbuf_get_bytes(b, x, 4) < 0)
		return VV_ECORRUPT;
	*v = (uint32_t)x[0] | ((uint32_t)x[1] << 8) | ((uint32_t)x[2] << 16) | ((uint32_t)x[3] << 24);
	return 0;
}

static inline int vv_rbuf_get_u64(struct vv_rbuf *b, uint64_t *v)
{
	uint32_t lo, hi;
	size_t save = b->off;
	if (vv_rbuf_get_u32(b, &lo) < 0 || vv_rbuf_get_u32(b, &hi) < 0) {
		b->off = save;
		return VV_ECORRUPT;
	}
	*v = (uint64_t)lo | ((uint64_t)hi << 32);
	return 0;
}

static inline int vv_rbuf_get_u32_be(struct vv_rbuf *b, uint32_t *v)
{
	uint8_t x[4];
	if (vv_rbuf_get_bytes(b, x, 4) < 0)
		return VV_ECORRUPT;
	*v = ((uint32_t)x[0] << 24) | ((uint32_t)x[1] << 16) | ((uint32_t)x[2] << 8) | (uint32_t)x[3];
	return 0;
}

/* Writing: a fixed caller-owned array; overflow sets .err and drops bytes. */
struct vv_wbuf {
	uint8_t *p;
	size_t cap;
	size_t len;
	int err;
};

static inline void vv_wbuf_init(struct vv_wbuf *b, void *p, size_t cap)
{
	b->p = p;
	b->cap = cap;
	b->len = 0;
	b->err = 0;
}

static inline void vv_wbuf_put_bytes(struct vv_wbuf *b, const void *v, size_t n)
{
	if (b->err || n > b->cap - b->len) {
		b->err = VV_E2BIG;
		return;
	}
	for (size_t i = 0; i < n; i++)
		b->p[b->len + i] = ((const uint8_t *)v)[i];
	b->len += n;
}

static inline void vv_wbuf_put_u8(struct vv_wbuf *b, uint8_t v) { vv_wbuf_put_bytes(b, &v, 1); }

static inline void vv_wbuf_put_u16(struct vv_wbuf *b, uint16_t v)
{
	uint8_t x[2] = { (uint8_t)v, (uint8_t)(v >> 8) };
	vv_wbuf_put_bytes(b, x, 2);
}

static inline void vv_wbuf_put_u32(struct vv_wbuf *b, uint32_t v)
{
	uint8_t x[4] = { (uint8_t)v, (uint8_t)(v >> 8), (uint8_t)(v >> 16), (uint8_t)(v >> 24) };
	vv_wbuf_put_bytes(b, x, 4);
}

static inline void vv_wbuf_put_u64(struct vv_wbuf *b, uint64_t v)
{
	vv_wbuf_put_u32(b, (uint32_t)v);
	vv_wbuf_put_u32(b, (uint32_t)(v >> 32));
}

/* Little-endian stores into raw memory, for fixed layouts. */
static inline void vv_put_le32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)v; p[1] = (uint8_t)(v >> 8); p[2] = (uint8_t)(v >> 16); p[3] = (uint8_t)(v >> 24);
}
static inline void vv_put_le64(uint8_t *p, uint64_t v)
{
	vv_put_le32(p, (uint32_t)v);
	vv_put_le32(p + 4, (uint32_t)(v >> 32));
}
static inline uint32_t vv_get_le32(const uint8_t *p)
{
	return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}
static inline uint64_t vv_get_le64(const uint8_t *p)
{
	return (uint64_t)vv_get_le32(p) | ((uint64_t)vv_get_le32(p + 4) << 32);
}
static inline uint32_t vv_get_be32(const uint8_t *p)
{
	return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | (uint32_t)p[3];
}

#endif
