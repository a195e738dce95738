/*
 * vector_format.c - segment file formats, names, and the collection schema.
 *
 * Everything here is pure: callers hand in bytes (a file's head and its
 * size) and get a parsed struct vv_segment_info or a static reason.  The
 * daemon calls these to compute xattrs without reading whole files; the
 * query tool calls them before it maps a segment.  All input is hostile:
 * it is parsed through struct vv_rbuf only.
 *
 * TEXMEX (.fvecs f32, .bvecs u8, .ivecs i32), per row, repeated count times:
 *
 *   offset  size       field
 *   0       4          dim, int32 LE, 1..VV_VEC_MAX_DIM, equal in every row
 *   4       dim*esize  values, LE
 *
 *   count = file_size / (4 + dim*esize); a remainder means truncation.
 *
 * NumPy .npy, versions 1.0, 2.0, 3.0:
 *
 *   offset  size  field
 *   0       6     magic "\x93NUMPY"
 *   6       1     major version (1, 2 or 3)
 *   7       1     minor version (0)
 *   8       2|4   header length H, LE (u16 for 1.x, u32 for 2.x/3.x)
 *   10|12   H     Python dict literal, ASCII (3.x: UTF-8), ends with '\n':
 *                 {'descr': '<f4', 'fortran_order': False, 'shape': (N, D), }
 *   10+H|12+H     N*D values, C order
 *
 *   Accepted descr: '<f4' '<f2' '|u1' '|i1' (byte order ignored for 1-byte
 *   types), '<i4'; '<i8' only in id sidecars.  Refused: big-endian,
 *   Fortran order, other dtypes, shapes other than (N, D) (and (N,) or
 *   (N, 1) for sidecars), any byte past the data.
 */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "buf.h"
#include "vector_int.h"

/* ---- names --------------------------------------------------------------- */

static bool ends_with(const char *s, const char *suf)
{
	size_t n = strlen(s), m = strlen(suf);
	return n >= m && memcmp(s + n - m, suf, m) == 0;
}

bool vv_segment_name_is_ids(const char *name)
{
	return name && name[0] != '.' && strlen(name) > strlen(".ids.npy") &&
	       ends_with(name, ".ids.npy");
}

enum vv_seg_format vv_segment_format_from_name(const char *name)
{
	const char *dot = name ? strrchr(name, '.') : NULL;

	if (!dot || dot == name)
		return VV_SEG_NONE;
	if (strcmp(dot, ".fvecs") == 0)
		return VV_SEG_FVECS;
	if (strcmp(dot, ".bvecs") == 0)
		return VV_SEG_BVECS;
	if (strcmp(dot, ".ivecs") == 0)
		return VV_SEG_IVECS;
	if (strcmp(dot, ".npy") == 0)
		return VV_SEG_NPY;
	return VV_SEG_NONE;
}

bool vv_segment_name_is_segment(const char *name)
{
	/* Hidden files include rsync's ".NAME.XXXXXX" temporaries and editors'
	 * swap files; "~" suffixes are backups.  Neither is data yet. */
	if (!name || !name[0] || name[0] == '.' || ends_with(name, "~"))
		return false;
	if (strchr(name, '/'))
		return false;
	if (vv_segment_name_is_ids(name))
		return false;
	return vv_segment_format_from_name(name) != VV_SEG_NONE;
}

/* ---- enum names ------------------------------------------------------------ */

const char *vv_seg_format_name(enum vv_seg_format f)
{
	switch (f) {
	case VV_SEG_FVECS: return "fvecs";
	case VV_SEG_BVECS: return "bvecs";
	case VV_SEG_IVECS: return "ivecs";
	case VV_SEG_NPY: return "npy";
	default: return "?";
	}
}

const char *vv_dtype_name(enum vv_dtype t)
{
	switch (t) {
	case VV_DT_F32: return "f32";
	case VV_DT_F16: return "f16";
	case VV_DT_U8: return "u8";
	case VV_DT_I8: return "i8";
	case VV_DT_I32: return "i32";
	case VV_DT_I64: return "i64";
	default: return "?";
	}
}

const char *vv_metric_name(enum vv_metric m)
{
	switch (m) {
	case VV_METRIC_L2: return "l2";
	case VV_METRIC_IP: return "ip";
	case VV_METRIC_COSINE: return "cosine";
	default: return "?";
	}
}

size_t vv_dtype_size(enum vv_dtype t)
{
	switch (t) {
	case VV_DT_F32: case VV_DT_I32: return 4;
	case VV_DT_F16: return 2;
	case VV_DT_U8: case VV_DT_I8: return 1;
	case VV_DT_I64: return 8;
	default: return 0;
	}
}

static const struct { const char *s; enum vv_dtype t; } dtype_names[] = {
	{ "f32", VV_DT_F32 }, { "float32", VV_DT_F32 },
	{ "f16", VV_DT_F16 }, { "float16", VV_DT_F16 },
	{ "u8", VV_DT_U8 }, { "uint8", VV_DT_U8 },
	{ "i8", VV_DT_I8 }, { "int8", VV_DT_I8 },
	{ "i32", VV_DT_I32 }, { "int32", VV_DT_I32 },
};

static const struct { const char *s; enum vv_metric m; } metric_names[] = {
	{ "l2", VV_METRIC_L2 }, { "euclidean", VV_METRIC_L2 },
	{ "ip", VV_METRIC_IP }, { "dot", VV_METRIC_IP },
	{ "cosine", VV_METRIC_COSINE }, { "cos", VV_METRIC_COSINE },
};

int vv_dtype_parse(const char *s, enum vv_dtype *out)
{
	for (size_t i = 0; i < sizeof(dtype_names) / sizeof(dtype_names[0]); i++)
		if (strcasecmp(s, dtype_names[i].s) == 0) {
			*out = dtype_names[i].t;
			return 0;
		}
	return VV_EINVAL;
}

int vv_metric_parse(const char *s, enum vv_metric *out)
{
	for (size_t i = 0; i < sizeof(metric_names) / sizeof(metric_names[0]); i++)
		if (strcasecmp(s, metric_names[i].s) == 0) {
			*out = metric_names[i].m;
			return 0;
		}
	return VV_EINVAL;
}

float vv_f16_to_f32(uint16_t h)
{
	uint32_t sign = (uint32_t)(h & 0x8000) << 16;
	uint32_t exp = (h >> 10) & 0x1f, man = h & 0x3ff, bits;
	float f;

	if (exp == 0) {
		/* zero or subnormal: man * 2^-24, exact in float */
		f = (float)man * (1.0f / 16777216.0f);
		return sign ? -f : f;
	}
	if (exp == 31)
		bits = sign | 0x7f800000u | (man << 13);
	else
		bits = sign | ((exp + 112) << 23) | (man << 13);
	memcpy(&f, &bits, 4);
	return f;
}

/* ---- TEXMEX ------------------------------------------------------------ */

static int probe_texmex(enum vv_seg_format fmt, const uint8_t *head, size_t headlen,
			uint64_t file_size, struct vv_segment_info *out, const char **why)
{
	struct vv_rbuf b;
	uint32_t d;
	enum vv_dtype t = fmt == VV_SEG_FVECS ? VV_DT_F32 : fmt == VV_SEG_BVECS ? VV_DT_U8 : VV_DT_I32;
	uint64_t stride;

	vv_rbuf_init(&b, head, headlen);
	if (file_size == 0) {
		*why = "empty file (no dimension word)";
		return VV_ECORRUPT;
	}
	if (vv_rbuf_get_u32(&b, &d) < 0) {
		*why = "truncated: shorter than one dimension word";
		return VV_ECORRUPT;
	}
	if ((int32_t)d <= 0 || d > VV_VEC_MAX_DIM) {
		*why = "bad dimension word in row 0 (must be 1..65536)";
		return VV_ECORRUPT;
	}
	stride = 4 + (uint64_t)d * vv_dtype_size(t);
	if (file_size % stride != 0) {
		*why = "truncated: size is not a whole number of rows";
		return VV_ECORRUPT;
	}
	out->format = fmt;
	out->dtype = t;
	out->dim = d;
	out->count = file_size / stride;
	out->data_off = 4;
	out->stride = stride;
	out->one_d = false;
	return 0;
}

/* ---- npy --------------------------------------------------------------- */

struct npy_hdr {
	char descr[8];
	int fortran;             /* -1 unset, 0, 1 */
	int ndim;                /* -1 unset */
	uint64_t shape[2];
};

static void skip_ws(struct vv_rbuf *b)
{
	while (vv_rbuf_left(b) && (b->p[b->off] == ' ' || b->p[b->off] == '\t'))
		b->off++;
}

static int peek(struct vv_rbuf *b)
{
	return vv_rbuf_left(b) ? b->p[b->off] : -1;
}

static bool eat(struct vv_rbuf *b, char c)
{
	skip_ws(b);
	if (peek(b) != (unsigned char)c)
		return false;
	b->off++;
	return true;
}

/* A quoted string ('...' or "...") of at most cap-1 bytes, no escapes. */
static int get_str(struct vv_rbuf *b, char *s, size_t cap)
{
	int q;
	size_t n = 0;

	skip_ws(b);
	q = peek(b);
	if (q != '\'' && q != '"')
		return VV_ECORRUPT;
	b->off++;
	while (peek(b) != q) {
		int c = peek(b);
		if (c < 0 || c == '\\' || c == '\n' || n + 1 >= cap)
			return VV_ECORRUPT;
		s[n++] = (char)c;
		b->off++;
	}
	b->off++;
	s[n] = 0;
	return 0;
}

static int get_uint(struct vv_rbuf *b, uint64_t *v)
{
	uint64_t x = 0;
	int nd = 0;

	skip_ws(b);
	while (peek(b) >= '0' && peek(b) <= '9') {
		if (x > (UINT64_C(1) << 56))
			return VV_ECORRUPT;
		x = x * 10 + (uint64_t)(peek(b) - '0');
		b->off++;
		nd++;
	}
	if (!nd)
		return VV_ECORRUPT;
	if (peek(b) == 'L')     /* Python 2 longs in old files */
		b->off++;
	*v = x;
	return 0;
}

static int parse_dict(struct vv_rbuf *b, struct npy_hdr *h, const char **why)
{
	char key[32];

	h->descr[0] = 0;
	h->fortran = -1;
	h->ndim = -1;
	if (!eat(b, '{')) {
		*why = "bad npy header: not a dict";
		return VV_ECORRUPT;
	}
	for (;;) {
		if (eat(b, '}'))
			break;
		if (get_str(b, key, sizeof(key)) < 0 || !eat(b, ':')) {
			*why = "bad npy header: bad key";
			return VV_ECORRUPT;
		}
		if (strcmp(key, "descr") == 0 && !h->descr[0]) {
			if (get_str(b, h->descr, sizeof(h->descr)) < 0 || !h->descr[0]) {
				*why = "bad npy header: descr is not a simple type string";
				return VV_ENOTSUP;
			}
		} else if (strcmp(key, "fortran_order") == 0 && h->fortran < 0) {
			skip_ws(b);
			if (vv_rbuf_left(b) >= 4 && memcmp(b->p + b->off, "True", 4) == 0) {
				h->fortran = 1;
				b->off += 4;
			} else if (vv_rbuf_left(b) >= 5 && memcmp(b->p + b->off, "False", 5) == 0) {
				h->fortran = 0;
				b->off += 5;
			} else {
				*why = "bad npy header: fortran_order is not True/False";
				return VV_ECORRUPT;
			}
		} else if (strcmp(key, "shape") == 0 && h->ndim < 0) {
			h->ndim = 0;
			if (!eat(b, '(')) {
				*why = "bad npy header: shape is not a tuple";
				return VV_ECORRUPT;
			}
			for (;;) {
				uint64_t v;
				if (eat(b, ')'))
					break;
				if (get_uint(b, &v) < 0) {
					*why = "bad npy header: bad shape";
					return VV_ECORRUPT;
				}
				if (h->ndim >= 2) {
					*why = "npy array has more than 2 dimensions";
					return VV_ENOTSUP;
				}
				h->shape[h->ndim++] = v;
				if (!eat(b, ',')) {
					if (!eat(b, ')')) {
						*why = "bad npy header: bad shape";
						return VV_ECORRUPT;
					}
					break;
				}
			}
		} else {
			*why = "bad npy header: unknown or repeated key";
			return VV_ECORRUPT;
		}
		if (!eat(b, ',')) {
			if (!eat(b, '}')) {
				*why = "bad npy header: expected ',' or '}'";
				return VV_ECORRUPT;
			}
			break;
		}
	}
	if (!h->descr[0] || h->fortran < 0 || h->ndim < 0) {
		*why = "bad npy header: missing descr, fortran_order or shape";
		return VV_ECORRUPT;
	}
	/* The rest is padding: spaces, then one newline (numpy also allows
	 * trailing NULs in 1.0 files written by old versions). */
	skip_ws(b);
	while (vv_rbuf_left(b)) {
		int c = peek(b);
		if (c != '\n' && c != ' ' && c != 0) {
			*why = "bad npy header: junk after dict";
			return VV_ECORRUPT;
		}
		b->off++;
	}
	return 0;
}

static int descr_dtype(const char *d, enum vv_dtype *t, const char **why)
{
	if ((d[0] == '|' || d[0] == '<' || d[0] == '>' || d[0] == '=') && d[1] && strcmp(d + 2, "1") == 0) {
		d++;    /* byte order means nothing for one-byte types */
	}
	if (strcmp(d, "u1") == 0)
		*t = VV_DT_U8;
	else if (strcmp(d, "i1") == 0)
		*t = VV_DT_I8;
	else if (strcmp(d, "<f4") == 0)
		*t = VV_DT_F32;
	else if (strcmp(d, "<f2") == 0)
		*t = VV_DT_F16;
	else if (strcmp(d, "<i4") == 0)
		*t = VV_DT_I32;
	else if (strcmp(d, "<i8") == 0)
		*t = VV_DT_I64;
	else if (d[0] == '>') {
		*why = "big-endian npy data is not supported";
		return VV_ENOTSUP;
	} else {
		*why = "unsupported npy dtype (want <f4, <f2, |u1 or |i1)";
		return VV_ENOTSUP;
	}
	return 0;
}

static int probe_npy(const uint8_t *head, size_t headlen, uint64_t file_size,
		     struct vv_segment_info *out, const char **why)
{
	struct vv_rbuf b, hb;
	const uint8_t *magic, *hdr;
	uint8_t major, minor;
	uint32_t hlen;
	struct npy_hdr h;
	enum vv_dtype t;
	uint64_t rows, cols, need, esize;
	int r;

	vv_rbuf_init(&b, head, headlen < file_size ? headlen : (size_t)file_size);
	if (vv_rbuf_get_ptr(&b, &magic, 6) < 0 || memcmp(magic, "\x93NUMPY", 6) != 0) {
		*why = "not an npy file (bad magic)";
		return VV_ECORRUPT;
	}
	if (vv_rbuf_get_u8(&b, &major) < 0 || vv_rbuf_get_u8(&b, &minor) < 0) {
		*why = "truncated npy header";
		return VV_ECORRUPT;
	}
	if (major < 1 || major > 3 || minor != 0) {
		*why = "unsupported npy version (want 1.0, 2.0 or 3.0)";
		return VV_ENOTSUP;
	}
	if (major == 1) {
		uint16_t l16 = 0;
		r = vv_rbuf_get_u16(&b, &l16);
		hlen = l16;
	} else {
		r = vv_rbuf_get_u32(&b, &hlen);
	}
	if (r < 0) {
		*why = "truncated npy header";
		return VV_ECORRUPT;
	}
	if (vv_rbuf_get_ptr(&b, &hdr, hlen) < 0) {
		*why = hlen > VV_VEC_PROBE_LEN - 12 ? "npy header too long" : "truncated npy header";
		return VV_ECORRUPT;
	}
	if (hlen == 0 || hdr[hlen - 1] != '\n') {
		*why = "bad npy header: does not end with a newline";
		return VV_ECORRUPT;
	}
	vv_rbuf_init(&hb, hdr, hlen);
	if ((r = parse_dict(&hb, &h, why)) < 0)
		return r;
	if ((r = descr_dtype(h.descr, &t, why)) < 0)
		return r;
	if (h.fortran) {
		*why = "npy array is in Fortran order (want C order)";
		return VV_ENOTSUP;
	}
	if (h.ndim == 2) {
		rows = h.shape[0];
		cols = h.shape[1];
	} else if (h.ndim == 1) {
		rows = h.shape[0];
		cols = 1;
	} else {
		*why = "npy array is 0-D (want 2-D)";
		return VV_ENOTSUP;
	}
	if (cols == 0 || cols > VV_VEC_MAX_DIM) {
		*why = "npy row length must be 1..65536";
		return VV_ECORRUPT;
	}
	esize = vv_dtype_size(t);
	/* rows < 2^56 and cols*esize <= 2^19, so this cannot overflow 2^64 ... */
	if (rows > (UINT64_MAX - b.off) / (cols * esize)) {
		*why = "npy shape too large";
		return VV_ECORRUPT;
	}
	need = b.off + rows * cols * esize;
	if (file_size < need) {
		*why = "truncated: npy data shorter than its shape";
		return VV_ECORRUPT;
	}
	if (file_size > need) {
		*why = "npy file has bytes past the end of its data";
		return VV_ECORRUPT;
	}
	out->format = VV_SEG_NPY;
	out->dtype = t;
	out->dim = (uint32_t)cols;
	out->count = rows;
	out->data_off = b.off;
	out->stride = cols * esize;
	out->one_d = h.ndim == 1;
	return 0;
}

int vv_segment_probe(enum vv_seg_format f, const uint8_t *head, size_t headlen,
		     uint64_t file_size, struct vv_segment_info *out, const char **why)
{
	const char *dummy;
	int r;

	if (!why)
		why = &dummy;
	*why = NULL;
	if (headlen > file_size)
		headlen = (size_t)file_size;
	if (f != VV_SEG_FVECS && f != VV_SEG_BVECS && f != VV_SEG_IVECS && f != VV_SEG_NPY) {
		*why = "not a segment format (fvecs, bvecs, ivecs, npy)";
		return VV_EINVAL;
	}
	memset(out, 0, sizeof(*out));
	if (f == VV_SEG_NPY) {
		r = probe_npy(head, headlen, file_size, out, why);
		if (r == 0 && (out->one_d || out->dtype == VV_DT_I64)) {
			*why = out->one_d ? "npy array is 1-D (want 2-D: rows x dim)"
					  : "int64 npy is an id array, not vectors";
			r = VV_ENOTSUP;
		}
	} else {
		r = probe_texmex(f, head, headlen, file_size, out, why);
	}
	return r;
}

int vv_segment_view_init(struct vv_segment_view *sv, const uint8_t *base, size_t len,
			 enum vv_seg_format f, const char **why)
{
	int r;

	memset(sv, 0, sizeof(*sv));
	if ((r = vv_segment_probe(f, base, len < VV_VEC_PROBE_LEN ? len : VV_VEC_PROBE_LEN, len,
				  &sv->info, why)) < 0)
		return r;
	sv->base = base;
	sv->len = len;
	return 0;
}

int vv_segment_probe_ids(const uint8_t *head, size_t headlen, uint64_t file_size,
			 struct vv_segment_info *out, const char **why)
{
	const char *dummy;
	int r;

	if (!why)
		why = &dummy;
	*why = NULL;
	if (headlen > file_size)
		headlen = (size_t)file_size;
	memset(out, 0, sizeof(*out));
	r = probe_npy(head, headlen, file_size, out, why);
	if (r == 0 && (out->dtype != VV_DT_I64 || out->dim != 1)) {
		*why = "id sidecar must be int64 ('<i8') of shape (N,) or (N, 1)";
		r = VV_ENOTSUP;
	}
	return r;
}

/* ---- schema ------------------------------------------------------------- */

int vv_schema_match(const struct vv_schema *s, const struct vv_segment_info *si,
		    const char **why)
{
	const char *dummy;

	if (!why)
		why = &dummy;
	*why = NULL;
	if (s->dim && si->dim != s->dim) {
		*why = "dimension differs from the collection's";
		return VV_ESCHEMA;
	}
	if (s->dtype != VV_DT_ANY && si->dtype != s->dtype) {
		*why = "element type differs from the collection's";
		return VV_ESCHEMA;
	}
	return 0;
}

#define XA_DIM "user.vecvault.dim"
#define XA_METRIC "user.vecvault.metric"
#define XA_DTYPE "user.vecvault.dtype"

/* Copy a value into a NUL-terminated buffer, dropping one trailing NUL or
 * newline (setfattr and echo add them); refuse embedded NULs. */
static int value_str(const char *v, size_t len, char *s, size_t cap)
{
	if (len && (v[len - 1] == 0 || v[len - 1] == '\n'))
		len--;
	if (len == 0 || len >= cap || memchr(v, 0, len))
		return VV_EINVAL;
	memcpy(s, v, len);
	s[len] = 0;
	return 0;
}

static int check_xattr(const char *name, const char *value, size_t len, char *canon,
		       size_t canonlen, struct vv_schema *apply)
{
	char s[32];
	const char *c = NULL;
	char num[16];
	int r = 0;

	if (!name || (strcmp(name, XA_DIM) && strcmp(name, XA_METRIC) && strcmp(name, XA_DTYPE)))
		return VV_ENODATA;
	if (!value || value_str(value, len, s, sizeof(s)) < 0)
		return VV_EINVAL;
	if (strcmp(name, XA_DIM) == 0) {
		uint64_t d = 0;
		for (const char *p = s; *p; p++) {
			if (*p < '0' || *p > '9' || d > VV_VEC_MAX_DIM)
				return VV_EINVAL;
			d = d * 10 + (uint64_t)(*p - '0');
		}
		if (d == 0 || d > VV_VEC_MAX_DIM)
			return VV_EINVAL;
		snprintf(num, sizeof(num), "%u", (unsigned)d);
		c = num;
		if (apply)
			apply->dim = (uint32_t)d;
	} else if (strcmp(name, XA_METRIC) == 0) {
		enum vv_metric m;
		if (vv_metric_parse(s, &m) < 0)
			return VV_EINVAL;
		c = vv_metric_name(m);
		if (apply)
			apply->metric = m;
	} else {
		enum vv_dtype t;
		if (vv_dtype_parse(s, &t) < 0)
			return VV_EINVAL;
		c = vv_dtype_name(t);
		if (apply)
			apply->dtype = t;
	}
	if (canon) {
		if (strlen(c) + 1 > canonlen)
			r = VV_ERANGE;
		else
			memcpy(canon, c, strlen(c) + 1);
	}
	return r;
}

int vv_schema_check_xattr(const char *name, const char *value, size_t len,
			  char *canon, size_t canonlen)
{
	return check_xattr(name, value, len, canon, canonlen, NULL);
}

int vv_schema_set_xattr(struct vv_schema *s, const char *name, const char *value, size_t len)
{
	return check_xattr(name, value, len, NULL, 0, s);
}

static const char *const seg_xattrs[] = {
	"user.vecvault.format", "user.vecvault.dtype", "user.vecvault.dim",
	"user.vecvault.count", NULL
};

const char *const *vv_segment_xattr_names(void)
{
	return seg_xattrs;
}

int vv_segment_xattr(const struct vv_segment_info *si, const char *name, char *buf, size_t bufsize)
{
	char v[32];
	int n;

	if (!name)
		return VV_ENODATA;
	if (strcmp(name, seg_xattrs[0]) == 0)
		n = snprintf(v, sizeof(v), "%s", vv_seg_format_name(si->format));
	else if (strcmp(name, seg_xattrs[1]) == 0)
		n = snprintf(v, sizeof(v), "%s", vv_dtype_name(si->dtype));
	else if (strcmp(name, seg_xattrs[2]) == 0)
		n = snprintf(v, sizeof(v), "%u", (unsigned)si->dim);
	else if (strcmp(name, seg_xattrs[3]) == 0)
		n = snprintf(v, sizeof(v), "%llu", (unsigned long long)si->count);
	else
		return VV_ENODATA;
	if ((size_t)n + 1 > bufsize)
		return VV_ERANGE;
	memcpy(buf, v, (size_t)n + 1);
	return n;
}
