/*
 * store.c - the store directory: vecvault.conf, key slots, lock, anchors.
 *
 * vecvault.conf is the only plaintext file in STORE.  It holds what opening
 * needs and nothing else, as text lines (easy to show in `vecvault info`,
 * easy to parse with bounds).  Byte format, version 1:
 *
 *   line                                                        notes
 *   vecvault-conf 1\n                                           magic + version, always first
 *   store_id = <32 hex>\n                                       16 random bytes
 *   page_size = <decimal>\n                                     meta.db page size, 2^9..2^16
 *   created = <decimal>\n                                       unix time
 *   slot.<N> = argon2id ops=<dec> mem=<dec> salt=<32 hex> wrapped=<144 hex>\n
 *                                                               N in 0..15, one line per slot
 *   mac = <64 hex>\n                                            always last
 *
 * - Exactly "key = value", one space each side, '\n' endings, lower-case
 *   hex, decimal without sign or leading zeros, lines <= 1024 bytes, file
 *   <= 64 KiB.  Lines between the first and mac may come in any order (the
 *   writer uses the order above, slots ascending); unknown and duplicate
 *   keys are refused.
 * - mac = keyed BLAKE2b-256 over every byte before the "mac = " line, key =
 *   subkey(master, 0, VV_SUBKEY_CONF).  It can only be checked after unlock.
 * - wrapped = vv_key_wrap(master, KEK, AD): nonce(24) || ct(32) || tag(16),
 *   KEK = Argon2id(passphrase, salt, ops, mem), and AD (68 bytes) =
 *     "vecvault-slot-v1" (16) || store id (16) || N (u32 le)
 *     || ops (u64 le) || mem (u64 le) || salt (16)
 *   so editing the store id or a slot's parameters makes that slot fail.
 *   Before deriving, a slot whose parameters are below the minimum
 *   (vv_kdf_params_ok) is not tried: VV_EDOWNGRADE.
 *
 * Anchor file STATE_DIR/anchors/<store id hex>, 64 bytes:
 *
 *   off len  field
 *   0   8    magic "VVANCHR1"
 *   8   16   store id
 *   24  8    commit counter (u64 le)
 *   32  32   keyed BLAKE2b-256 of bytes 0..31, key = subkey(master, 0, VV_SUBKEY_ANCHOR)
 *
 * Every file operation goes through vv_os_* (os.h), except the one read-only
 * emptiness check of a directory handed to create (vv_os has no readdir).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <time.h>
#include <unistd.h>

#include "buf.h"
#include "crypto_int.h"
#include "os.h"
#include "vecvault/error.h"
#include "vecvault/log.h"
#include "vecvault/privfile.h"
#include "vecvault/store.h"
#include "vecvault/version.h"

_Static_assert(VV_STORE_KEY_BYTES == VV_KEY_BYTES, "store key size");

#define CONF_VERSION VV_FORMAT_CONF
#define CONF_MAGIC "vecvault-conf"
#define CONF_MAX (64 * 1024)
#define LINE_MAX_LEN 1024
#define SLOT_AD_LABEL "vecvault-slot-v1"     /* 16 bytes, no NUL */
#define SLOT_AD_BYTES (16 + VV_STORE_ID_BYTES + 4 + 8 + 8 + VV_SALT_BYTES)
#define ANCHOR_MAGIC "VVANCHR1"
#define ANCHOR_BYTES (8 + VV_STORE_ID_BYTES + 8 + VV_MAC_BYTES)
/* Bounds on slot parameters read from an untrusted conf (crypto_int.h). */
#define SLOT_OPS_MAX VV_KDF_OPS_BOUND
#define SLOT_MEM_MAX VV_KDF_MEM_BOUND

struct slot {
	bool used;
	struct vv_kdf_params p;
	uint8_t salt[VV_SALT_BYTES];
	uint8_t wrapped[VV_WRAPPED_BYTES];
};

struct vv_store {
	char *dir;
	int lockfd;                 /* directory fd holding the flock; -1 with NOLOCK */
	bool allow_test;
	int version;
	uint8_t id[VV_STORE_ID_BYTES];
	char idhex[2 * VV_STORE_ID_BYTES + 1];
	uint32_t page_size;
	int64_t created;
	struct slot slots[VV_STORE_MAX_SLOTS];
	uint8_t mac[VV_MAC_BYTES];
	uint8_t *conf;              /* raw conf bytes as read/written */
	size_t conflen;
	size_t macoff;              /* bytes covered by the mac */
	uint8_t *master;            /* vv_secure_alloc; NULL while locked */
};

static int oserr(int r)
{
	return r < 0 ? vv_err_from_errno(-r) : r;
}

static enum vv_kdf_profile profile_of(enum vv_store_kdf k)
{
	switch (k) {
	case VV_STORE_KDF_MODERATE:
		return VV_KDF_MODERATE;
	case VV_STORE_KDF_TEST:
		return VV_KDF_TEST;
	default:
		return VV_KDF_INTERACTIVE;
	}
}

static bool page_size_ok(uint64_t v)
{
	return v >= 512 && v <= 65536 && (v & (v - 1)) == 0;
}

static struct vv_store *store_new(const char *dir, unsigned flags)
{
	struct vv_store *s = calloc(1, sizeof(*s));
	size_t n;

	if (!s)
		return NULL;
	s->lockfd = -1;
	/* Only the caller's explicit flag: the engine reads no environment, so
	 * no variable can lower the KDF floor behind a caller's back. */
	s->allow_test = (flags & VV_STORE_ALLOW_TEST_KDF) != 0;
	s->dir = strdup(dir);
	if (!s->dir) {
		free(s);
		return NULL;
	}
	/* "STORE/" and "STORE" name the same store; keep "/" as is. */
	n = strlen(s->dir);
	while (n > 1 && s->dir[n - 1] == '/')
		s->dir[--n] = '\0';
	return s;
}

void vv_store_close(struct vv_store *s)
{
	if (!s)
		return;
	vv_secure_free(s->master);
	if (s->lockfd >= 0)
		vv_os_close(s->lockfd);   /* releases the flock */
	free(s->conf);
	free(s->dir);
	vv_memzero(s, sizeof(*s));
	free(s);
}

int vv_store_path(const struct vv_store *s, const char *rel, char *out, size_t outlen)
{
	int n;

	if (!rel || rel[0] == '/')
		return VV_EINVAL;
	n = snprintf(out, outlen, "%s/%s", s->dir, rel);
	if (n < 0 || (size_t)n >= outlen)
		return VV_ENAMETOOLONG;
	return 0;
}

/* ---- lock ------------------------------------------------------------ */

static int take_lock(struct vv_store *s)
{
	int fd, r;

	fd = vv_os_open(s->dir, O_RDONLY | O_DIRECTORY, 0);
	if (fd < 0)
		return oserr(fd);
	r = vv_os_flock(fd, LOCK_EX | LOCK_NB);
	if (r < 0) {
		vv_os_close(fd);
		if (r == -EWOULDBLOCK) {
			vv_log(VV_LOG_INFO, "store %s is locked by another process (a mounted daemon?)",
			       s->dir);
			return VV_EBUSY;
		}
		return oserr(r);
	}
	s->lockfd = fd;
	return 0;
}

/* ---- conf parsing ---------------------------------------------------- */

/* Strict decimal: digits only, no leading zero (except "0"), <= max. */
static int parse_dec(const char *p, size_t n, uint64_t max, uint64_t *out)
{
	uint64_t v = 0;

	if (n == 0 || n > 20 || (n > 1 && p[0] == '0'))
		return VV_ECORRUPT;
	for (size_t i = 0; i < n; i++) {
		unsigned d;
		if (p[i] < '0' || p[i] > '9')
			return VV_ECORRUPT;
		d = (unsigned)(p[i] - '0');
		if (v > (UINT64_MAX - d) / 10)
			return VV_ECORRUPT;
		v = v * 10 + d;
	}
	if (v > max)
		return VV_ECORRUPT;
	*out = v;
	return 0;
}

/* Match "name=" at *p and return the token up to the next space or end. */
static int take_field(const char **p, const char *end, const char *name,
		      const char **val, size_t *vlen)
{
	size_t nl = strlen(name);
	const char *q = *p, *e;

	if ((size_t)(end - q) < nl + 1 || memcmp(q, name, nl) != 0 || q[nl] != '=')
		return VV_ECORRUPT;
	q += nl + 1;
	e = memchr(q, ' ', (size_t)(end - q));
	if (!e)
		e = end;
	*val = q;
	*vlen = (size_t)(e - q);
	*p = e < end ? e + 1 : e;
	return 0;
}

static int parse_slot(struct slot *sl, const char *v, size_t vlen)
{
	const char *p = v, *end = v + vlen, *f;
	size_t fl;
	int r = VV_ECORRUPT;

	if (vlen < 9 || memcmp(p, "argon2id ", 9) != 0)
		goto out;
	p += 9;
	if (take_field(&p, end, "ops", &f, &fl) < 0 ||
	    parse_dec(f, fl, SLOT_OPS_MAX, &sl->p.opslimit) < 0 || sl->p.opslimit == 0)
		goto out;
	if (take_field(&p, end, "mem", &f, &fl) < 0 ||
	    parse_dec(f, fl, SLOT_MEM_MAX, &sl->p.memlimit) < 0)
		goto out;
	if (take_field(&p, end, "salt", &f, &fl) < 0 ||
	    vv_hex_decode(sl->salt, VV_SALT_BYTES, f, fl) < 0)
		goto out;
	if (take_field(&p, end, "wrapped", &f, &fl) < 0 ||
	    vv_hex_decode(sl->wrapped, VV_WRAPPED_BYTES, f, fl) < 0)
		goto out;
	if (p != end || end[-1] == ' ')
		goto out;
	sl->used = true;
	r = 0;
out:
	return r;
}

/* Parse conf bytes into s (id, page size, created, slots, mac, macoff). */
static int parse_conf(struct vv_store *s, const uint8_t *buf, size_t len, const char *path)
{
	struct vv_rbuf b;
	const uint8_t *line;
	const char *l, *eq, *v;
	size_t ll, kl, vl, lineoff;
	bool have_id = false, have_ps = false, have_created = false, have_mac = false;
	int nslots = 0, lineno = 1, r = VV_EFORMAT;
	uint64_t x;
	const char *what = "not a vecvault conf";

	vv_rbuf_init(&b, buf, len);
	/* First line: magic and version.  Anything else is not ours. */
	{
		const uint8_t *nl = len ? memchr(buf, '\n', len < 64 ? len : 64) : NULL;
		size_t ml = strlen(CONF_MAGIC);

		if (!nl || (size_t)(nl - buf) <= ml + 1 || memcmp(buf, CONF_MAGIC " ", ml + 1) != 0)
			goto bad;
		if (parse_dec((const char *)buf + ml + 1, (size_t)(nl - buf) - ml - 1, INT32_MAX, &x) < 0)
			goto bad;
		if (x != CONF_VERSION) {
			vv_log(VV_LOG_ERR, "%s: unsupported conf version %llu (this build reads %d)",
			       path, (unsigned long long)x, CONF_VERSION);
			goto out;
		}
		s->version = (int)x;
		vv_rbuf_skip(&b, (size_t)(nl - buf) + 1);
	}

	r = VV_ECORRUPT;
	what = "malformed";
	if (memchr(buf, '\0', len)) {
		what = "NUL byte";
		goto bad;
	}
	while (vv_rbuf_left(&b) > 0) {
		const uint8_t *nl = memchr(b.p + b.off, '\n', vv_rbuf_left(&b));

		lineno++;
		lineoff = b.off;
		if (have_mac) {
			what = "bytes after the mac line";
			goto bad;
		}
		if (!nl) {
			what = "last line not terminated (truncated?)";
			goto bad;
		}
		ll = (size_t)(nl - (b.p + b.off));
		if (ll > LINE_MAX_LEN || vv_rbuf_get_ptr(&b, &line, ll + 1) < 0) {
			what = "line too long";
			goto bad;
		}
		l = (const char *)line;
		eq = memmem(l, ll, " = ", 3);
		if (!eq) {
			what = "line is not 'key = value'";
			goto bad;
		}
		kl = (size_t)(eq - l);
		v = eq + 3;
		vl = ll - kl - 3;

#define KEY_IS(k) (kl == sizeof(k) - 1 && memcmp(l, k, kl) == 0)
		if (KEY_IS("store_id")) {
			if (have_id) {
				what = "duplicate store_id";
				goto bad;
			}
			if (vv_hex_decode(s->id, VV_STORE_ID_BYTES, v, vl) < 0) {
				what = "bad store_id";
				goto bad;
			}
			vv_hex_encode(s->idhex, s->id, VV_STORE_ID_BYTES);
			have_id = true;
		} else if (KEY_IS("page_size")) {
			if (have_ps) {
				what = "duplicate page_size";
				goto bad;
			}
			if (parse_dec(v, vl, 65536, &x) < 0 || !page_size_ok(x)) {
				what = "bad page_size (power of two, 512..65536)";
				goto bad;
			}
			s->page_size = (uint32_t)x;
			have_ps = true;
		} else if (KEY_IS("created")) {
			if (have_created) {
				what = "duplicate created";
				goto bad;
			}
			if (parse_dec(v, vl, INT64_MAX, &x) < 0) {
				what = "bad created";
				goto bad;
			}
			s->created = (int64_t)x;
			have_created = true;
		} else if (kl > 5 && memcmp(l, "slot.", 5) == 0) {
			if (parse_dec(l + 5, kl - 5, VV_STORE_MAX_SLOTS - 1, &x) < 0) {
				what = "bad slot number";
				goto bad;
			}
			if (s->slots[x].used) {
				what = "duplicate slot";
				goto bad;
			}
			if (parse_slot(&s->slots[x], v, vl) < 0) {
				what = "bad slot (argon2id ops= mem= salt= wrapped=)";
				goto bad;
			}
			nslots++;
		} else if (KEY_IS("mac")) {
			if (vv_hex_decode(s->mac, VV_MAC_BYTES, v, vl) < 0) {
				what = "bad mac";
				goto bad;
			}
			s->macoff = lineoff;
			have_mac = true;
		} else {
			what = "unknown key";
			goto bad;
		}
#undef KEY_IS
	}
	if (!have_id || !have_ps || !have_created || nslots == 0 || !have_mac) {
		lineno = 0;
		what = !have_mac ? "missing mac line (truncated?)" : !have_id ? "missing store_id" :
		       !have_ps ? "missing page_size" : !have_created ? "missing created" :
		       "no key slot";
		goto bad;
	}
	r = 0;
	goto out;
bad:
	if (r == VV_EFORMAT)
		vv_log(VV_LOG_ERR, "%s: %s (bad magic line)", path, what);
	else if (lineno > 0)
		vv_log(VV_LOG_ERR, "%s: line %d: %s", path, lineno, what);
	else
		vv_log(VV_LOG_ERR, "%s: %s", path, what);
out:
	return r;
}

int vv_store_conf_parse(const void *buf, size_t len, struct vv_store_info *out, size_t *macoff)
{
	struct vv_store *s = calloc(1, sizeof(*s));
	int r;

	if (!s)
		return VV_ENOMEM;
	s->lockfd = -1;
	if ((r = parse_conf(s, buf, len, VV_STORE_CONF_NAME)) < 0)
		goto out;
	if ((r = vv_store_info(s, out)) < 0)
		goto out;
	if (macoff)
		*macoff = s->macoff;
out:
	vv_store_close(s);
	return r;
}

static int read_conf(struct vv_store *s)
{
	char path[PATH_MAX];
	void *buf = NULL;
	size_t len = 0;
	int r;

	if ((r = vv_store_path(s, VV_STORE_CONF_NAME, path, sizeof(path))) < 0)
		goto out;
	r = vv_os_read_file(path, CONF_MAX, &buf, &len);
	if (r == -ENOENT) {
		vv_log(VV_LOG_ERR, "%s: no %s: not an initialised vault", s->dir, VV_STORE_CONF_NAME);
		r = VV_ENOTINIT;
		goto out;
	}
	if (r == -EFBIG) {
		vv_log(VV_LOG_ERR, "%s: larger than %d bytes: not a vecvault conf", path, CONF_MAX);
		r = VV_EFORMAT;
		goto out;
	}
	if (r < 0) {
		vv_log(VV_LOG_ERR, "%s: cannot read: %s", path, strerror(-r));
		r = oserr(r);
		goto out;
	}
	if (len == 0) {
		vv_log(VV_LOG_ERR, "%s: empty file: not a vecvault conf", path);
		r = VV_EFORMAT;
		goto out;
	}
	if ((r = parse_conf(s, buf, len, path)) < 0)
		goto out;
	s->conf = buf;
	s->conflen = len;
	buf = NULL;
out:
	free(buf);
	return r;
}

/* ---- conf writing ---------------------------------------------------- */

static void put_str(struct vv_wbuf *w, const char *str)
{
	vv_wbuf_put_bytes(w, str, strlen(str));
}

static int conf_mac(const struct vv_store *s, const uint8_t *buf, size_t len,
		    uint8_t out[VV_MAC_BYTES])
{
	uint8_t *k = vv_secure_alloc(VV_KEY_BYTES);
	int r;

	if (!k)
		return VV_ENOMEM;
	r = vv_subkey(k, s->master, 0, VV_SUBKEY_CONF);
	if (r == 0)
		r = vv_mac(out, k, buf, len);
	vv_secure_free(k);
	return r;
}

/* Serialise s (with s->master set) to a malloc'd buffer. */
static int build_conf(const struct vv_store *s, uint8_t **out, size_t *outlen, size_t *macoff,
		      uint8_t mac[VV_MAC_BYTES])
{
	struct vv_wbuf w;
	char line[LINE_MAX_LEN + 2];
	char salt[2 * VV_SALT_BYTES + 1], wr[2 * VV_WRAPPED_BYTES + 1], mhex[2 * VV_MAC_BYTES + 1];
	size_t cap = 8192;
	uint8_t *buf = malloc(cap);
	int r;

	if (!buf)
		return VV_ENOMEM;
	vv_wbuf_init(&w, buf, cap);
	snprintf(line, sizeof(line), "%s %d\nstore_id = %s\npage_size = %u\ncreated = %lld\n",
		 CONF_MAGIC, CONF_VERSION, s->idhex, s->page_size, (long long)s->created);
	put_str(&w, line);
	for (int i = 0; i < VV_STORE_MAX_SLOTS; i++) {
		const struct slot *sl = &s->slots[i];
		if (!sl->used)
			continue;
		vv_hex_encode(salt, sl->salt, VV_SALT_BYTES);
		vv_hex_encode(wr, sl->wrapped, VV_WRAPPED_BYTES);
		snprintf(line, sizeof(line), "slot.%d = argon2id ops=%llu mem=%llu salt=%s wrapped=%s\n",
			 i, (unsigned long long)sl->p.opslimit, (unsigned long long)sl->p.memlimit,
			 salt, wr);
		put_str(&w, line);
	}
	*macoff = w.len;
	if (w.err || (r = conf_mac(s, buf, w.len, mac)) < 0) {
		r = w.err ? w.err : r;
		goto out;
	}
	vv_hex_encode(mhex, mac, VV_MAC_BYTES);
	snprintf(line, sizeof(line), "mac = %s\n", mhex);
	put_str(&w, line);
	if ((r = w.err) < 0)
		goto out;
	*out = buf;
	*outlen = w.len;
	buf = NULL;
out:
	free(buf);
	return r;
}

/* Write the conf for the current in-memory state; on success s->conf is
 * replaced.  On failure the file on disk is untouched (atomic rename). */
static int write_conf(struct vv_store *s)
{
	char path[PATH_MAX];
	uint8_t *buf = NULL, mac[VV_MAC_BYTES];
	size_t len = 0, macoff = 0;
	int r;

	if ((r = vv_store_path(s, VV_STORE_CONF_NAME, path, sizeof(path))) < 0)
		goto out;
	if ((r = build_conf(s, &buf, &len, &macoff, mac)) < 0)
		goto out;
	r = vv_os_write_atomic(path, buf, len, 0600);
	if (r < 0) {
		vv_log(VV_LOG_ERR, "%s: cannot write: %s", path, strerror(-r));
		r = oserr(r);
		goto out;
	}
	free(s->conf);
	s->conf = buf;
	s->conflen = len;
	s->macoff = macoff;
	memcpy(s->mac, mac, VV_MAC_BYTES);
	buf = NULL;
out:
	free(buf);
	return r;
}

/* ---- slots ----------------------------------------------------------- */

static void slot_ad(const struct vv_store *s, int idx, const struct slot *sl,
		    uint8_t ad[SLOT_AD_BYTES])
{
	struct vv_wbuf w;

	vv_wbuf_init(&w, ad, SLOT_AD_BYTES);
	vv_wbuf_put_bytes(&w, SLOT_AD_LABEL, 16);
	vv_wbuf_put_bytes(&w, s->id, VV_STORE_ID_BYTES);
	vv_wbuf_put_u32(&w, (uint32_t)idx);
	vv_wbuf_put_u64(&w, sl->p.opslimit);
	vv_wbuf_put_u64(&w, sl->p.memlimit);
	vv_wbuf_put_bytes(&w, sl->salt, VV_SALT_BYTES);
}

/* Fill slot idx for pass with params p: fresh salt, KEK, wrap s->master. */
static int slot_seal(struct vv_store *s, int idx, const struct vv_kdf_params *p,
		     const char *pass, size_t passlen)
{
	struct slot sl = { .used = true, .p = *p };
	uint8_t ad[SLOT_AD_BYTES];
	uint8_t *kek = vv_secure_alloc(VV_KEY_BYTES);
	int r;

	if (!kek)
		return VV_ENOMEM;
	vv_random_bytes(sl.salt, VV_SALT_BYTES);
	if ((r = vv_kdf_derive(kek, pass, passlen, sl.salt, p)) < 0)
		goto out;
	slot_ad(s, idx, &sl, ad);
	if ((r = vv_key_wrap(sl.wrapped, s->master, kek, ad, sizeof(ad))) < 0)
		goto out;
	s->slots[idx] = sl;
out:
	vv_secure_free(kek);
	return r;
}

static int check_new_slot(const struct vv_store *s, const char *pass, size_t passlen,
			  enum vv_store_kdf kdf, struct vv_kdf_params *p)
{
	if (!pass || passlen == 0) {
		vv_log(VV_LOG_ERR, "empty passphrase refused");
		return VV_EINVAL;
	}
	vv_kdf_params_for(profile_of(kdf), p);
	if (!vv_kdf_params_ok(p, s->allow_test)) {
		vv_log(VV_LOG_ERR, "the test-only KDF profile needs VV_STORE_ALLOW_TEST_KDF "
		       "(test suites only)");
		return VV_EDOWNGRADE;
	}
	return 0;
}

static int need_writable(const struct vv_store *s)
{
	if (!s->master) {
		vv_log(VV_LOG_ERR, "store %s: not unlocked", s->dir);
		return VV_EINVAL;
	}
	if (s->lockfd < 0) {
		vv_log(VV_LOG_ERR, "store %s: opened without the lock, read-only", s->dir);
		return VV_EINVAL;
	}
	return 0;
}

int vv_store_slot_add(struct vv_store *s, const char *pass, size_t passlen,
		      enum vv_store_kdf kdf, int *slot_out)
{
	struct vv_kdf_params p;
	int idx = -1, r;

	if ((r = need_writable(s)) < 0 || (r = check_new_slot(s, pass, passlen, kdf, &p)) < 0)
		goto out;
	for (int i = 0; i < VV_STORE_MAX_SLOTS && idx < 0; i++)
		if (!s->slots[i].used)
			idx = i;
	if (idx < 0) {
		vv_log(VV_LOG_ERR, "store %s: all %d key slots are in use", s->dir, VV_STORE_MAX_SLOTS);
		r = VV_ENOSPC;
		goto out;
	}
	if ((r = slot_seal(s, idx, &p, pass, passlen)) < 0)
		goto out;
	if ((r = write_conf(s)) < 0) {
		vv_memzero(&s->slots[idx], sizeof(s->slots[idx]));
		goto out;
	}
	if (slot_out)
		*slot_out = idx;
out:
	return r;
}

int vv_store_slot_remove(struct vv_store *s, int slot)
{
	struct slot saved;
	int used = 0, r;

	if ((r = need_writable(s)) < 0)
		goto out;
	if (slot < 0 || slot >= VV_STORE_MAX_SLOTS || !s->slots[slot].used) {
		r = VV_ENOENT;
		goto out;
	}
	for (int i = 0; i < VV_STORE_MAX_SLOTS; i++)
		used += s->slots[i].used;
	if (used == 1) {
		vv_log(VV_LOG_ERR, "store %s: refusing to remove the last key slot", s->dir);
		r = VV_EINVAL;
		goto out;
	}
	saved = s->slots[slot];
	vv_memzero(&s->slots[slot], sizeof(s->slots[slot]));
	if ((r = write_conf(s)) < 0)
		s->slots[slot] = saved;
out:
	return r;
}

int vv_store_slot_change(struct vv_store *s, int slot, const char *pass, size_t passlen)
{
	struct slot saved;
	int r;

	if ((r = need_writable(s)) < 0)
		goto out;
	if (slot < 0 || slot >= VV_STORE_MAX_SLOTS || !s->slots[slot].used) {
		r = VV_ENOENT;
		goto out;
	}
	if (!pass || passlen == 0) {
		vv_log(VV_LOG_ERR, "empty passphrase refused");
		r = VV_EINVAL;
		goto out;
	}
	saved = s->slots[slot];
	if ((r = slot_seal(s, slot, &saved.p, pass, passlen)) < 0 || (r = write_conf(s)) < 0)
		s->slots[slot] = saved;
out:
	return r;
}

/* ---- create / open / unlock ------------------------------------------ */

/* Is the directory at path empty?  Read-only, so plain readdir. */
static int dir_empty(const char *path)
{
	DIR *d = opendir(path);
	struct dirent *e;
	int r = 1;

	if (!d)
		return vv_err_from_errno(errno);
	while ((e = readdir(d)) != NULL) {
		if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0) {
			r = 0;
			break;
		}
	}
	closedir(d);
	return r;
}

static int fsync_parent(const char *dir)
{
	char parent[PATH_MAX];
	char *slash;

	snprintf(parent, sizeof(parent), "%s", dir);
	slash = strrchr(parent, '/');
	if (!slash)
		snprintf(parent, sizeof(parent), ".");
	else if (slash == parent)
		parent[1] = '\0';
	else
		*slash = '\0';
	return vv_os_fsync_dir(parent);
}

int vv_store_create(const char *dir, const char *pass, size_t passlen,
		    const struct vv_store_create_opts *o, unsigned flags, struct vv_store **out)
{
	struct vv_store_create_opts def = { VV_STORE_KDF_INTERACTIVE, 0 };
	struct vv_kdf_params p;
	struct vv_store *s = NULL;
	struct stat st;
	char chunks[PATH_MAX];
	bool made_dir = false, made_chunks = false;
	int r;

	*out = NULL;
	if ((r = vv_crypto_init()) < 0)
		goto out;
	if (!o)
		o = &def;
	if (!(s = store_new(dir, flags))) {
		r = VV_ENOMEM;
		goto out;
	}
	if ((r = check_new_slot(s, pass, passlen, o->kdf, &p)) < 0)
		goto out;
	s->page_size = o->page_size ? o->page_size : 4096;
	if (!page_size_ok(s->page_size)) {
		vv_log(VV_LOG_ERR, "page size %u: must be a power of two in 512..65536", s->page_size);
		r = VV_EINVAL;
		goto out;
	}
	if ((r = vv_store_path(s, VV_STORE_CHUNKS_DIR, chunks, sizeof(chunks))) < 0)
		goto out;

	r = vv_os_stat(s->dir, &st);
	if (r == -ENOENT) {
		if ((r = vv_os_mkdir(s->dir, 0700)) < 0) {
			vv_log(VV_LOG_ERR, "%s: cannot create: %s", s->dir, strerror(-r));
			r = oserr(r);
			goto out;
		}
		made_dir = true;
	} else if (r < 0) {
		r = oserr(r);
		goto out;
	} else if (!S_ISDIR(st.st_mode)) {
		vv_log(VV_LOG_ERR, "%s: exists and is not a directory", s->dir);
		r = VV_EEXIST;
		goto out;
	}
	/* Lock first, then check emptiness: two racing creates cannot both
	 * pass. */
	if ((r = take_lock(s)) < 0)
		goto out;
	if (!made_dir) {
		if ((r = dir_empty(s->dir)) < 0)
			goto out;
		if (r == 0) {
			vv_log(VV_LOG_ERR, "%s: directory is not empty; refusing to create a vault there",
			       s->dir);
			r = VV_EEXIST;
			goto out;
		}
	}
	if ((r = vv_os_mkdir(chunks, 0700)) < 0) {
		r = oserr(r);
		goto out;
	}
	made_chunks = true;

	s->version = CONF_VERSION;
	vv_random_bytes(s->id, VV_STORE_ID_BYTES);
	vv_hex_encode(s->idhex, s->id, VV_STORE_ID_BYTES);
	s->created = (int64_t)time(NULL);
	if (!(s->master = vv_secure_alloc(VV_KEY_BYTES))) {
		r = VV_ENOMEM;
		goto out;
	}
	vv_random_bytes(s->master, VV_KEY_BYTES);
	if ((r = slot_seal(s, 0, &p, pass, passlen)) < 0)
		goto out;
	/* The conf last: its presence is what makes the directory a vault. */
	if ((r = write_conf(s)) < 0)
		goto out;
	if (made_dir && (r = oserr(fsync_parent(s->dir))) < 0)
		goto out;
	*out = s;
	s = NULL;
out:
	if (s && r < 0) {
		char conf[PATH_MAX];
		if (s->conf && vv_store_path(s, VV_STORE_CONF_NAME, conf, sizeof(conf)) == 0)
			vv_os_unlink(conf);
		if (made_chunks)
			vv_os_rmdir(chunks);
		if (made_dir)
			vv_os_rmdir(s->dir);
	}
	vv_store_close(s);
	return r;
}

int vv_store_open(const char *dir, unsigned flags, struct vv_store **out)
{
	struct vv_store *s = NULL;
	struct stat st;
	int r;

	*out = NULL;
	if ((r = vv_crypto_init()) < 0)
		goto out;
	if (!(s = store_new(dir, flags))) {
		r = VV_ENOMEM;
		goto out;
	}
	if ((r = vv_os_stat(s->dir, &st)) < 0) {
		vv_log(VV_LOG_ERR, "%s: %s", s->dir, strerror(-r));
		r = oserr(r);
		goto out;
	}
	if (!S_ISDIR(st.st_mode)) {
		vv_log(VV_LOG_ERR, "%s: not a directory", s->dir);
		r = VV_ENOTDIR;
		goto out;
	}
	if (!(flags & VV_STORE_NOLOCK) && (r = take_lock(s)) < 0)
		goto out;
	if ((r = read_conf(s)) < 0)
		goto out;
	*out = s;
	s = NULL;
out:
	vv_store_close(s);
	return r;
}

int vv_store_unlock(struct vv_store *s, const char *pass, size_t passlen, int *slot_out)
{
	uint8_t ad[SLOT_AD_BYTES], mac[VV_MAC_BYTES];
	uint8_t *kek = NULL, *master = NULL;
	bool downgrade = false;
	int hit = -1, r;

	if (s->master) {
		r = VV_EINVAL;
		goto out;
	}
	kek = vv_secure_alloc(VV_KEY_BYTES);
	master = vv_secure_alloc(VV_KEY_BYTES);
	if (!kek || !master) {
		r = VV_ENOMEM;
		goto out;
	}
	for (int i = 0; i < VV_STORE_MAX_SLOTS && hit < 0; i++) {
		const struct slot *sl = &s->slots[i];
		if (!sl->used)
			continue;
		/* Refuse before deriving: weak parameters are either an edit
		 * meant to make guessing cheap, or a test vault. */
		if (!vv_kdf_params_ok(&sl->p, s->allow_test)) {
			vv_log(VV_LOG_ERR, "store %s: slot %d: KDF parameters ops=%llu mem=%llu are "
			       "below the minimum; not used", s->dir, i,
			       (unsigned long long)sl->p.opslimit, (unsigned long long)sl->p.memlimit);
			downgrade = true;
			continue;
		}
		if ((r = vv_kdf_derive(kek, pass, passlen, sl->salt, &sl->p)) < 0)
			goto out;
		slot_ad(s, i, sl, ad);
		if (vv_key_unwrap(master, sl->wrapped, kek, ad, sizeof(ad)) == 0)
			hit = i;
	}
	if (hit < 0) {
		r = downgrade ? VV_EDOWNGRADE : VV_EBADPASS;
		goto out;
	}
	s->master = master;
	if ((r = conf_mac(s, s->conf, s->macoff, mac)) < 0)
		goto out;
	if (!vv_memeq_ct(mac, s->mac, VV_MAC_BYTES)) {
		vv_log(VV_LOG_ERR, "store %s: %s failed authentication (edited?)", s->dir,
		       VV_STORE_CONF_NAME);
		r = VV_ECORRUPT;
		goto out;
	}
	master = NULL;
	if (slot_out)
		*slot_out = hit;
	r = 0;
out:
	if (master && s->master == master)
		s->master = NULL;
	vv_secure_free(master);
	vv_secure_free(kek);
	return r;
}

bool vv_store_is_unlocked(const struct vv_store *s)
{
	return s && s->master;
}

/* ---- accessors ------------------------------------------------------- */

int vv_store_info(const struct vv_store *s, struct vv_store_info *out)
{
	memset(out, 0, sizeof(*out));
	out->version = s->version;
	memcpy(out->store_id, s->idhex, sizeof(out->store_id));
	out->page_size = s->page_size;
	out->created = s->created;
	for (int i = 0; i < VV_STORE_MAX_SLOTS; i++) {
		if (!s->slots[i].used)
			continue;
		out->slots[out->nslots].index = i;
		out->slots[out->nslots].opslimit = s->slots[i].p.opslimit;
		out->slots[out->nslots].memlimit = s->slots[i].p.memlimit;
		out->nslots++;
	}
	return 0;
}

const char *vv_store_dir(const struct vv_store *s)
{
	return s->dir;
}

const char *vv_store_id(const struct vv_store *s)
{
	return s->idhex;
}

uint32_t vv_store_page_size(const struct vv_store *s)
{
	return s->page_size;
}

int vv_store_subkey(const struct vv_store *s, uint64_t id, const char ctx[8],
		    uint8_t out[VV_STORE_KEY_BYTES])
{
	if (!s->master) {
		vv_log(VV_LOG_ERR, "store %s: subkey requested while locked", s->dir);
		return VV_EINVAL;
	}
	return vv_subkey(out, s->master, id, ctx);
}

/* ---- anchors --------------------------------------------------------- */

static int anchor_path(const struct vv_store *s, const char *state, char *out, size_t outlen,
		       char *dir, size_t dirlen)
{
	int n;

	if (!state || !state[0]) {
		vv_log(VV_LOG_ERR, "store %s: no state directory for the rollback anchor", s->dir);
		return VV_ENOENT;
	}
	n = snprintf(dir, dirlen, "%s/anchors", state);
	if (n < 0 || (size_t)n >= dirlen)
		return VV_ENAMETOOLONG;
	n = snprintf(out, outlen, "%s/%s", dir, s->idhex);
	if (n < 0 || (size_t)n >= outlen)
		return VV_ENAMETOOLONG;
	return 0;
}

static int anchor_mac(const struct vv_store *s, const uint8_t *body, uint8_t out[VV_MAC_BYTES])
{
	uint8_t *k = vv_secure_alloc(VV_KEY_BYTES);
	int r;

	if (!k)
		return VV_ENOMEM;
	r = vv_subkey(k, s->master, 0, VV_SUBKEY_ANCHOR);
	if (r == 0)
		r = vv_mac(out, k, body, ANCHOR_BYTES - VV_MAC_BYTES);
	vv_secure_free(k);
	return r;
}

int vv_store_anchor_get(const struct vv_store *s, const char *state_dir, uint64_t *counter)
{
	char path[PATH_MAX], dir[PATH_MAX];
	void *buf = NULL;
	size_t len = 0;
	struct vv_rbuf b;
	const uint8_t *magic, *id, *mac;
	uint8_t want[VV_MAC_BYTES];
	uint64_t c;
	int r;

	*counter = 0;
	if (!s->master) {
		r = VV_EINVAL;
		goto out;
	}
	if ((r = anchor_path(s, state_dir, path, sizeof(path), dir, sizeof(dir))) < 0)
		goto out;
	/* A link or someone else's file in our place is refused (privfile.h):
	 * whoever can replace the anchor can roll the store back unnoticed. */
	r = vv_privfile_read(path, 4096, VV_PRIVFILE_SECRET, &buf, &len);
	if (r == VV_ENOENT) {
		r = 0;   /* first mount on this machine */
		goto out;
	}
	if (r < 0 && r != VV_EFBIG)
		goto out;
	r = VV_ECORRUPT;
	vv_rbuf_init(&b, buf, len);
	if (len != ANCHOR_BYTES || vv_rbuf_get_ptr(&b, &magic, 8) < 0 ||
	    memcmp(magic, ANCHOR_MAGIC, 8) != 0 || vv_rbuf_get_ptr(&b, &id, VV_STORE_ID_BYTES) < 0 ||
	    vv_rbuf_get_u64(&b, &c) < 0 || vv_rbuf_get_ptr(&b, &mac, VV_MAC_BYTES) < 0) {
		vv_log(VV_LOG_ERR, "anchor %s: malformed", path);
		goto out;
	}
	if (memcmp(id, s->id, VV_STORE_ID_BYTES) != 0) {
		vv_log(VV_LOG_ERR, "anchor %s: belongs to another store", path);
		goto out;
	}
	if ((r = anchor_mac(s, buf, want)) < 0)
		goto out;
	if (!vv_memeq_ct(want, mac, VV_MAC_BYTES)) {
		vv_log(VV_LOG_ERR, "anchor %s: failed authentication (forged or edited)", path);
		r = VV_ECORRUPT;
		goto out;
	}
	*counter = c;
	r = 0;
out:
	free(buf);
	return r;
}

int vv_store_anchor_put(const struct vv_store *s, const char *state_dir, uint64_t counter,
			bool durable)
{
	char path[PATH_MAX], dir[PATH_MAX];
	uint8_t buf[ANCHOR_BYTES];
	struct vv_wbuf w;
	int r;

	if (!s->master) {
		r = VV_EINVAL;
		goto out;
	}
	if ((r = anchor_path(s, state_dir, path, sizeof(path), dir, sizeof(dir))) < 0)
		goto out;
	if ((r = vv_privfile_mkdir(dir)) < 0) {
		vv_log(VV_LOG_ERR, "anchor directory %s: cannot create or use it", dir);
		goto out;
	}
	vv_wbuf_init(&w, buf, sizeof(buf));
	vv_wbuf_put_bytes(&w, ANCHOR_MAGIC, 8);
	vv_wbuf_put_bytes(&w, s->id, VV_STORE_ID_BYTES);
	vv_wbuf_put_u64(&w, counter);
	if ((r = anchor_mac(s, buf, buf + w.len)) < 0)
		goto out;
	/* Not durable: the file's bytes are fsync'd before the rename, so a
	 * power cut leaves the old or the new anchor, never a torn one; only
	 * the rename itself may be lost (the anchor then lags, which is safe). */
	r = vv_privfile_replace(path, buf, sizeof(buf), durable);
out:
	vv_memzero(buf, sizeof(buf));
	return r;
}
