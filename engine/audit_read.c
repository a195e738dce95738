/*
 * audit_read.c - reading the audit log back: the line grammar, the chain
 * check (vv_audit_verify), the sidecar checkpoint and the record iterator
 * used by `vecvault audit show`.  The format is described in audit.c.
 *
 * Everything read here is untrusted (anyone who can write the log directory
 * can put anything in it): lines are parsed with explicit bounds, and a
 * malformed line is a finding, never a crash.
 */
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "audit_int.h"
#include "buf.h"
#include "crypto_int.h"
#include "grow.h"
#include "os.h"
#include "vecvault/error.h"
#include "vecvault/privfile.h"

#define MAX_LOG_FILE (1ull << 32)   /* 4 GiB per file read back */
#define CK_DOMAIN "vvaudit-checkpoint"

/* ---- line grammar --------------------------------------------------------- */

static int parse_u64(const char *s, size_t n, size_t *used, uint64_t *v)
{
	uint64_t x = 0;
	size_t i = 0;

	while (i < n && s[i] >= '0' && s[i] <= '9') {
		unsigned d = (unsigned)(s[i] - '0');
		if (x > (UINT64_MAX - d) / 10)
			return VV_ECORRUPT;
		x = x * 10 + d;
		i++;
	}
	if (i == 0 || (i > 1 && s[0] == '0'))
		return VV_ECORRUPT;
	*used = i;
	*v = x;
	return 0;
}

int audit_line_seq(const char *line, size_t len, uint64_t *seq)
{
	static const char pre[] = "{\"seq\":";
	size_t used;

	if (len < sizeof(pre) - 1 || memcmp(line, pre, sizeof(pre) - 1) != 0)
		return VV_ECORRUPT;
	line += sizeof(pre) - 1;
	len -= sizeof(pre) - 1;
	if (parse_u64(line, len, &used, seq) < 0 || used >= len || line[used] != ',')
		return VV_ECORRUPT;
	return 0;
}

int audit_split_line(const char *line, size_t len, size_t *bodylen, uint64_t *seq,
		     uint8_t mac[VV_AUDIT_MAC_BYTES])
{
	const char *suf;
	size_t bl;

	if (len < AUDIT_MAC_SUFFIX_LEN + 8)
		return VV_ECORRUPT;
	bl = len - AUDIT_MAC_SUFFIX_LEN;
	suf = line + bl;
	/* A '"' inside a string value is always escaped, so ,"mac":" cannot
	 * occur inside one: the suffix is unambiguous. */
	if (memcmp(suf, ",\"mac\":\"", 8) != 0 || memcmp(line + len - 2, "\"}", 2) != 0)
		return VV_ECORRUPT;
	if (vv_hex_decode(mac, VV_AUDIT_MAC_BYTES, suf + 8, 2 * VV_AUDIT_MAC_BYTES) < 0)
		return VV_ECORRUPT;
	if (audit_line_seq(line, bl, seq) < 0)
		return VV_ECORRUPT;
	*bodylen = bl;
	return 0;
}

int audit_chain_mac(const uint8_t *key, const uint8_t prev[VV_AUDIT_MAC_BYTES],
		    const char *body, size_t len, uint8_t out[VV_AUDIT_MAC_BYTES])
{
	struct vv_mac_state st;
	int r;

	if ((r = vv_mac_init(&st, key)) == 0 &&
	    (r = vv_mac_update(&st, prev, VV_AUDIT_MAC_BYTES)) == 0 &&
	    (r = vv_mac_update(&st, body, len)) == 0)
		r = vv_mac_final(&st, out);
	vv_memzero(&st, sizeof(st));
	return r;
}

/* ---- the list of files ---------------------------------------------------- */

struct numbered { unsigned long k; char *path; };

static int by_k_desc(const void *x, const void *y)
{
	const struct numbered *a = x, *b = y;
	return a->k < b->k ? 1 : a->k > b->k ? -1 : 0;
}

void audit_free_list(char **paths, size_t n)
{
	if (!paths)
		return;
	for (size_t i = 0; i < n; i++)
		free(paths[i]);
	free(paths);
}

int audit_list_files(const char *log_path, char ***paths, size_t *n)
{
	char dir[PATH_MAX];
	const char *base;
	struct numbered *v = NULL;
	size_t nv = 0, cap = 0, blen;
	struct stat st;
	DIR *d = NULL;
	struct dirent *de;
	char **out = NULL;
	int r;

	*paths = NULL;
	*n = 0;
	base = strrchr(log_path, '/');
	if (base) {
		size_t dl = (size_t)(base - log_path);
		if (dl >= sizeof(dir))
			return VV_ENAMETOOLONG;
		memcpy(dir, log_path, dl ? dl : 1);
		dir[dl ? dl : 1] = '\0';
		base++;
	} else {
		strcpy(dir, ".");
		base = log_path;
	}
	blen = strlen(base);
	/* Reading a directory listing is not a STORE operation (the log lives
	 * outside STORE), so readdir is used directly. */
	d = opendir(dir);
	if (!d) {
		r = vv_err_from_errno(errno);
		goto out;
	}
	while ((de = readdir(d))) {
		const char *s = de->d_name;
		char *end;
		unsigned long k;

		if (strncmp(s, base, blen) != 0 || s[blen] != '.' || s[blen + 1] < '1' ||
		    s[blen + 1] > '9')
			continue;
		errno = 0;
		k = strtoul(s + blen + 1, &end, 10);
		if (*end || errno)
			continue;
		if ((r = VV_GROW(v, nv, cap)) < 0)
			goto out;
		v[nv].k = k;
		if (asprintf(&v[nv].path, "%s.%lu", log_path, k) < 0) {
			r = VV_ENOMEM;
			goto out;
		}
		nv++;
	}
	if (nv)
		qsort(v, nv, sizeof(*v), by_k_desc);
	out = calloc(nv + 1, sizeof(*out));
	if (!out) {
		r = VV_ENOMEM;
		goto out;
	}
	for (size_t i = 0; i < nv; i++) {
		out[i] = v[i].path;
		v[i].path = NULL;
	}
	*n = nv;
	if (vv_os_stat(log_path, &st) == 0) {
		if (!(out[nv] = strdup(log_path))) {
			r = VV_ENOMEM;
			goto out;
		}
		(*n)++;
	}
	if (*n == 0) {
		r = VV_ENOENT;
		goto out;
	}
	*paths = out;
	out = NULL;
	r = 0;
out:
	if (out)
		audit_free_list(out, nv + 1);
	for (size_t i = 0; i < nv; i++)
		free(v[i].path);
	free(v);
	if (d)
		closedir(d);
	if (r < 0)
		*n = 0;
	return r;
}

/* ---- sidecar checkpoint --------------------------------------------------- */

static int ck_mac(const uint8_t *key, uint64_t seq, const uint8_t mac[VV_AUDIT_MAC_BYTES],
		  uint8_t out[VV_AUDIT_MAC_BYTES])
{
	uint8_t msg[sizeof(CK_DOMAIN) - 1 + 8 + VV_AUDIT_MAC_BYTES];

	memcpy(msg, CK_DOMAIN, sizeof(CK_DOMAIN) - 1);
	vv_put_le64(msg + sizeof(CK_DOMAIN) - 1, seq);
	memcpy(msg + sizeof(CK_DOMAIN) - 1 + 8, mac, VV_AUDIT_MAC_BYTES);
	return vv_mac(out, key, msg, sizeof(msg));
}

int audit_sidecar_write(const char *log_path, const uint8_t *key, uint64_t seq,
			const uint8_t mac[VV_AUDIT_MAC_BYTES])
{
	char path[PATH_MAX], line[256], h1[65], h2[65];
	uint8_t ck[VV_AUDIT_MAC_BYTES];
	int n, r;

	if (snprintf(path, sizeof(path), "%s.checkpoint", log_path) >= (int)sizeof(path))
		return VV_ENAMETOOLONG;
	if ((r = ck_mac(key, seq, mac, ck)) < 0)
		return r;
	vv_hex_encode(h1, mac, VV_AUDIT_MAC_BYTES);
	vv_hex_encode(h2, ck, VV_AUDIT_MAC_BYTES);
	n = snprintf(line, sizeof(line), "{\"seq\":%llu,\"mac\":\"%s\",\"ck\":\"%s\"}\n",
		     (unsigned long long)seq, h1, h2);
	return vv_privfile_replace(path, line, (size_t)n, true);
}

/* Exactly: {"seq":N,"mac":"<64>","ck":"<64>"}\n (what audit_sidecar_write
 * prints, N without leading zeros), nothing else. */
int audit_checkpoint_parse(const char *s, size_t len, uint64_t *seq,
			   uint8_t mac[VV_AUDIT_MAC_BYTES], uint8_t ck[VV_AUDIT_MAC_BYTES])
{
	size_t used;

	if (audit_line_seq(s, len, seq) < 0)
		return VV_ECORRUPT;
	if (parse_u64(s + 7, len - 7, &used, seq) < 0)
		return VV_ECORRUPT;
	s += 7 + used;
	len -= 7 + used;
	if (len != 8 + 64 + 8 + 64 + 3 || memcmp(s, ",\"mac\":\"", 8) != 0 ||
	    memcmp(s + 72, "\",\"ck\":\"", 8) != 0 || memcmp(s + 144, "\"}\n", 3) != 0)
		return VV_ECORRUPT;
	if (vv_hex_decode(mac, VV_AUDIT_MAC_BYTES, s + 8, 64) < 0 ||
	    vv_hex_decode(ck, VV_AUDIT_MAC_BYTES, s + 80, 64) < 0)
		return VV_ECORRUPT;
	return 0;
}

int audit_sidecar_read(const char *log_path, const uint8_t *key, uint64_t *seq,
		       uint8_t mac[VV_AUDIT_MAC_BYTES])
{
	char path[PATH_MAX];
	uint8_t ck[VV_AUDIT_MAC_BYTES], want[VV_AUDIT_MAC_BYTES];
	void *data = NULL;
	size_t len;
	int r;

	if (snprintf(path, sizeof(path), "%s.checkpoint", log_path) >= (int)sizeof(path))
		return VV_ENAMETOOLONG;
	if ((r = vv_privfile_read(path, 4096, VV_PRIVFILE_SECRET, &data, &len)) < 0)
		return r;
	r = VV_ECORRUPT;
	if (audit_checkpoint_parse(data, len, seq, mac, ck) < 0)
		goto out;
	if (ck_mac(key, *seq, mac, want) < 0)
		goto out;
	if (!vv_memeq_ct(ck, want, sizeof(ck)))
		goto out;
	r = 0;
out:
	free(data);
	return r;
}

/* ---- verify --------------------------------------------------------------- */

struct line {
	const char *p;
	size_t len;
	unsigned file;
	uint64_t lineno;
	bool complete;
};

struct loaded {
	char **paths;
	size_t npaths;
	char **data;
	struct line *lines;
	size_t nlines, cap;
};

static void loaded_free(struct loaded *L)
{
	for (size_t i = 0; L->data && i < L->npaths; i++)
		free(L->data[i]);
	free(L->data);
	free(L->lines);
	audit_free_list(L->paths, L->npaths);
}

static int load(const char *log_path, struct loaded *L)
{
	int r;

	memset(L, 0, sizeof(*L));
	if ((r = audit_list_files(log_path, &L->paths, &L->npaths)) < 0)
		return r;
	L->data = calloc(L->npaths, sizeof(*L->data));
	if (!L->data)
		return VV_ENOMEM;
	for (size_t f = 0; f < L->npaths; f++) {
		size_t len, pos = 0;
		uint64_t no = 0;
		void *d;

		r = vv_os_read_file(L->paths[f], MAX_LOG_FILE, &d, &len);
		if (r < 0)
			return vv_err_from_errno(-r);
		L->data[f] = d;
		while (pos < len) {
			const char *p = L->data[f] + pos;
			const char *nl = memchr(p, '\n', len - pos);
			size_t ll = nl ? (size_t)(nl - p) : len - pos;

			if (VV_GROW(L->lines, L->nlines, L->cap) < 0)
				return VV_ENOMEM;
			L->lines[L->nlines++] = (struct line){ p, ll, (unsigned)f, ++no, nl != NULL };
			pos += ll + (nl ? 1 : 0);
		}
	}
	return 0;
}

static void bad(struct vv_audit_verify_result *res, const struct loaded *L, size_t i,
		uint64_t seq, const char *why)
{
	res->ok = false;
	res->why = why;
	res->first_bad_seq = seq;
	if (i < L->nlines) {
		res->first_bad_line = L->lines[i].lineno;
		snprintf(res->file, sizeof(res->file), "%s", L->paths[L->lines[i].file]);
	}
}

/* Line i does not continue the chain.  Say why, as precisely as the
 * evidence allows. */
static void classify(struct vv_audit_verify_result *res, const struct loaded *L, size_t i,
		     uint64_t want, const uint8_t *key)
{
	const struct line *ln = &L->lines[i];
	uint8_t mac[VV_AUDIT_MAC_BYTES], m2[VV_AUDIT_MAC_BYTES], calc[VV_AUDIT_MAC_BYTES];
	uint64_t s, s2;
	size_t bl, bl2;

	if (audit_split_line(ln->p, ln->len, &bl, &s, mac) < 0) {
		bad(res, L, i, want, "edited");
		return;
	}
	if (s == want) {
		bad(res, L, i, s, "edited");
		return;
	}
	/* The next line chains onto this one's MAC: this is record `want` with
	 * its sequence number edited. */
	if (i + 1 < L->nlines &&
	    audit_split_line(L->lines[i + 1].p, L->lines[i + 1].len, &bl2, &s2, m2) == 0 &&
	    s2 == want + 1 && audit_chain_mac(key, mac, L->lines[i + 1].p, bl2, calc) == 0 &&
	    vv_memeq_ct(calc, m2, sizeof(calc))) {
		bad(res, L, i, want, "edited");
		return;
	}
	if (s < want) {
		bad(res, L, i, s, "reordered");
		return;
	}
	/* s > want: is record `want` further on?  Then lines were moved. */
	for (size_t j = i + 1; j < L->nlines; j++) {
		uint64_t sj;
		if (audit_line_seq(L->lines[j].p, L->lines[j].len, &sj) == 0 && sj == want) {
			bad(res, L, i, s, "reordered");
			return;
		}
	}
	bad(res, L, i, want, "missing record");
}

int vv_audit_verify(const char *log_path, const uint8_t key[VV_AUDIT_KEY_BYTES],
		    uint64_t ck_seq, const uint8_t *ck_mac_in,
		    struct vv_audit_verify_result *res)
{
	struct loaded L;
	uint8_t prev[VV_AUDIT_MAC_BYTES] = { 0 }, ckm[VV_AUDIT_MAC_BYTES], side[VV_AUDIT_MAC_BYTES];
	uint8_t at_ck[VV_AUDIT_MAC_BYTES];
	bool have_at_ck = false;
	uint64_t want = 1, side_seq;
	size_t i;
	int r, sr;

	memset(res, 0, sizeof(*res));
	memset(&L, 0, sizeof(L));
	res->ck_source = "none";
	if (!log_path || !key || (ck_seq && !ck_mac_in))
		return VV_EINVAL;
	if ((r = vv_crypto_init()) < 0)
		return r;
	if (ck_seq) {
		memcpy(ckm, ck_mac_in, sizeof(ckm));
		res->ck_source = "sealed";
	}
	r = audit_sidecar_read(log_path, key, &side_seq, side);
	if (r == 0 && side_seq > ck_seq) {
		ck_seq = side_seq;
		memcpy(ckm, side, sizeof(ckm));
		res->ck_source = "sidecar";
	}
	res->ck_seq = ck_seq;
	if ((r = load(log_path, &L)) < 0)
		goto out;
	if (r == 0 && ((sr = audit_sidecar_read(log_path, key, &side_seq, side)) == VV_ECORRUPT ||
		       sr == VV_EUNSAFE)) {
		/* Someone wrote a checkpoint without the key, or put a link or a
		 * file of theirs in its place (privfile.h). */
		res->ok = false;
		res->why = "bad checkpoint file";
		snprintf(res->file, sizeof(res->file), "%s.checkpoint", log_path);
		r = 0;
		goto out;
	}
	res->ok = true;
	for (i = 0; i < L.nlines; i++) {
		const struct line *ln = &L.lines[i];
		uint8_t mac[VV_AUDIT_MAC_BYTES], calc[VV_AUDIT_MAC_BYTES];
		uint64_t s;
		size_t bl;

		if (!ln->complete) {
			if (i + 1 == L.nlines) {
				res->torn = true;
				bad(res, &L, i, want, "torn last line");
			} else {
				bad(res, &L, i, want, "edited");
			}
			break;
		}
		if (audit_split_line(ln->p, ln->len, &bl, &s, mac) == 0 && s == want &&
		    audit_chain_mac(key, prev, ln->p, bl, calc) == 0 &&
		    vv_memeq_ct(calc, mac, sizeof(mac))) {
			memcpy(prev, mac, sizeof(prev));
			if (s == ck_seq) {
				memcpy(at_ck, mac, sizeof(at_ck));
				have_at_ck = true;
			}
			res->records++;
			res->last_seq = s;
			want++;
			continue;
		}
		classify(res, &L, i, want, key);
		break;
	}
	/* Tampering outranks a torn line; a checkpoint past the end means
	 * records that were once durable are gone. */
	if ((res->ok || res->torn) && ck_seq > res->last_seq) {
		res->ok = false;
		res->why = "truncated";
		res->first_bad_seq = res->last_seq + 1;
		res->first_bad_line = 0;
		snprintf(res->file, sizeof(res->file), "%s", L.paths[L.npaths - 1]);
	} else if ((res->ok || res->torn) && ck_seq && have_at_ck &&
		   !vv_memeq_ct(at_ck, ckm, sizeof(at_ck))) {
		res->ok = false;
		res->torn = false;
		res->why = "checkpoint mismatch";
		res->first_bad_seq = ck_seq;
	}
	r = 0;
out:
	if (r < 0)
		res->ok = false;
	loaded_free(&L);
	return r;
}

/* ---- decoding one JSON line ----------------------------------------------- */

static int hexval(uint8_t c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* Decode the JSON string at s (after the opening quote) into *out (malloc'd
 * chunk of store).  \u00XX with XX >= 0x80 is a raw byte (see audit.c). */
static int json_str(struct vv_rbuf *b, char **out)
{
	size_t cap = 0, n = 0;
	char *o = NULL;
	uint8_t c;

	for (;;) {
		if (vv_grow(&o, &cap, n + 8, 1) < 0) {   /* the longest step and a NUL */
			free(o);
			return VV_ENOMEM;
		}
		if (vv_rbuf_get_u8(b, &c) < 0)
			goto bad;
		if (c == '"')
			break;
		if (c < 0x20)
			goto bad;
		if (c != '\\') {
			o[n++] = (char)c;
			continue;
		}
		if (vv_rbuf_get_u8(b, &c) < 0)
			goto bad;
		switch (c) {
		case '"': case '\\': case '/': o[n++] = (char)c; break;
		case 'n': o[n++] = '\n'; break;
		case 't': o[n++] = '\t'; break;
		case 'r': o[n++] = '\r'; break;
		case 'b': o[n++] = '\b'; break;
		case 'f': o[n++] = '\f'; break;
		case 'u': {
			uint8_t hx[4];
			unsigned cp = 0;
			if (vv_rbuf_get_bytes(b, hx, 4) < 0)
				goto bad;
			for (int i = 0; i < 4; i++) {
				int d = hexval(hx[i]);
				if (d < 0)
					goto bad;
				cp = (cp << 4) | (unsigned)d;
			}
			if (cp < 0x100) {
				o[n++] = (char)cp;     /* raw byte, or a control char */
			} else if (cp < 0x800) {
				o[n++] = (char)(0xc0 | (cp >> 6));
				o[n++] = (char)(0x80 | (cp & 0x3f));
			} else {
				o[n++] = (char)(0xe0 | (cp >> 12));
				o[n++] = (char)(0x80 | ((cp >> 6) & 0x3f));
				o[n++] = (char)(0x80 | (cp & 0x3f));
			}
			break;
		}
		default:
			goto bad;
		}
	}
	o[n] = '\0';
	*out = o;
	return 0;
bad:
	free(o);
	return VV_ECORRUPT;
}

/* Strings decoded for one entry: a small arena of malloc'd pieces, kept as a
 * NULL-terminated array in *store so the caller frees one pointer.  It grows
 * geometrically: a hostile line may hold millions of tiny strings, and
 * growing by one would copy the array once per string. */
struct arena { char **v; size_t n, cap; };

static int arena_add(struct arena *A, char *s)
{
	if (vv_grow(&A->v, &A->cap, A->n + 2, sizeof(*A->v)) < 0) {   /* s and the NULL */
		free(s);
		return VV_ENOMEM;
	}
	A->v[A->n++] = s;
	A->v[A->n] = NULL;
	return 0;
}

static void skip_ws(struct vv_rbuf *b)
{
	while (vv_rbuf_left(b) && (b->p[b->off] == ' ' || b->p[b->off] == '\t'))
		b->off++;
}

static int expect(struct vv_rbuf *b, char c)
{
	skip_ws(b);
	if (!vv_rbuf_left(b) || b->p[b->off] != (uint8_t)c)
		return VV_ECORRUPT;
	b->off++;
	return 0;
}

static int lit(struct vv_rbuf *b, const char *w)
{
	size_t n = strlen(w);
	if (vv_rbuf_left(b) < n || memcmp(b->p + b->off, w, n) != 0)
		return VV_ECORRUPT;
	b->off += n;
	return 0;
}

static void set_str(struct vv_audit_entry *e, const char *k, const char *v)
{
	static const struct { const char *k; size_t off; } f[] = {
		{ "time", offsetof(struct vv_audit_entry, time) },
		{ "op", offsetof(struct vv_audit_entry, op) },
		{ "path", offsetof(struct vv_audit_entry, path) },
		{ "comm", offsetof(struct vv_audit_entry, comm) },
		{ "user", offsetof(struct vv_audit_entry, user) },
		{ "client", offsetof(struct vv_audit_entry, client) },
		{ "result", offsetof(struct vv_audit_entry, result) },
		{ "mode", offsetof(struct vv_audit_entry, mode) },
		{ "detail", offsetof(struct vv_audit_entry, detail) },
	};
	for (size_t i = 0; i < sizeof(f) / sizeof(f[0]); i++)
		if (strcmp(k, f[i].k) == 0)
			memcpy((char *)e + f[i].off, &v, sizeof(v));
}

static void set_num(struct vv_audit_entry *e, const char *k, uint64_t v)
{
	if (!strcmp(k, "seq")) e->seq = v;
	else if (!strcmp(k, "ino")) e->ino = v;
	else if (!strcmp(k, "uid")) e->uid = (int64_t)v;
	else if (!strcmp(k, "gid")) e->gid = (int64_t)v;
	else if (!strcmp(k, "pid")) e->pid = (int64_t)v;
	else if (!strcmp(k, "rbytes")) e->rbytes = v;
	else if (!strcmp(k, "wbytes")) e->wbytes = v;
	else if (!strcmp(k, "rcount")) e->rcount = v;
	else if (!strcmp(k, "wcount")) e->wcount = v;
}

/* A flat object of string/number/true/false/null values: all we write. */
int audit_parse_entry(const char *line, size_t len, struct vv_audit_entry *e, char **store)
{
	struct vv_rbuf b;
	struct arena A = { 0 };
	int r;

	memset(e, 0, sizeof(*e));
	e->uid = e->gid = e->pid = -1;
	*store = NULL;
	vv_rbuf_init(&b, line, len);
	if ((r = expect(&b, '{')) < 0)
		goto out;
	for (bool first = true;; first = false) {
		char *k = NULL;
		skip_ws(&b);
		if (first && vv_rbuf_left(&b) && b.p[b.off] == '}') {
			b.off++;
			break;
		}
		if ((r = expect(&b, '"')) < 0 || (r = json_str(&b, &k)) < 0 ||
		    (r = arena_add(&A, k)) < 0 || (r = expect(&b, ':')) < 0)
			goto out;
		skip_ws(&b);
		if (!vv_rbuf_left(&b)) {
			r = VV_ECORRUPT;
			goto out;
		}
		if (b.p[b.off] == '"') {
			char *v;
			b.off++;
			if ((r = json_str(&b, &v)) < 0 || (r = arena_add(&A, v)) < 0)
				goto out;
			set_str(e, k, v);
		} else if (b.p[b.off] >= '0' && b.p[b.off] <= '9') {
			uint64_t v;
			size_t used;
			if ((r = parse_u64((const char *)b.p + b.off, vv_rbuf_left(&b), &used, &v)) < 0)
				goto out;
			b.off += used;
			set_num(e, k, v);
		} else if (lit(&b, "true") == 0) {
			if (!strcmp(k, "unauth"))
				e->unauth = true;
		} else if (lit(&b, "false") == 0 || lit(&b, "null") == 0) {
			/* defaults stand */
		} else {
			r = VV_ECORRUPT;
			goto out;
		}
		skip_ws(&b);
		if (vv_rbuf_left(&b) && b.p[b.off] == ',') {
			b.off++;
			continue;
		}
		if ((r = expect(&b, '}')) < 0)
			goto out;
		break;
	}
	skip_ws(&b);
	r = vv_rbuf_left(&b) ? VV_ECORRUPT : 0;
out:
	*store = (char *)A.v;
	return r;
}

/* ---- iterator ------------------------------------------------------------- */

struct vv_audit_iter {
	struct loaded L;
	size_t next;
	char **store;
	char *line;
};

void audit_free_store(char *store)
{
	char **v = (char **)store;

	for (size_t i = 0; v && v[i]; i++)
		free(v[i]);
	free(v);
}

int vv_audit_iter_open(const char *log_path, struct vv_audit_iter **out)
{
	struct vv_audit_iter *it;
	int r;

	*out = NULL;
	it = calloc(1, sizeof(*it));
	if (!it)
		return VV_ENOMEM;
	if ((r = load(log_path, &it->L)) < 0) {
		vv_audit_iter_free(it);
		return r;
	}
	*out = it;
	return 0;
}

int vv_audit_iter_next(struct vv_audit_iter *it, struct vv_audit_entry *e)
{
	const struct line *ln;
	char *store = NULL;
	int r;

	audit_free_store((char *)it->store);
	it->store = NULL;
	free(it->line);
	it->line = NULL;
	memset(e, 0, sizeof(*e));
	if (it->next >= it->L.nlines)
		return 0;
	ln = &it->L.lines[it->next++];
	it->line = strndup(ln->p, ln->len);
	if (!it->line)
		return VV_ENOMEM;
	r = audit_parse_entry(ln->p, ln->len, e, &store);
	it->store = (char **)store;
	e->line = it->line;
	e->file = it->L.paths[ln->file];
	e->lineno = ln->lineno;
	if (r == 0 && !ln->complete)
		r = VV_ECORRUPT;
	return r < 0 ? r : 1;
}

void vv_audit_iter_free(struct vv_audit_iter *it)
{
	if (!it)
		return;
	audit_free_store((char *)it->store);
	free(it->line);
	loaded_free(&it->L);
	free(it);
}
