/*
 * repo.c - backup repositories (vecvault/backup.h, repo_int.h): config and
 * key slots, the writer lock, immutable objects, sealed manifests.
 *
 * DEST/config (plaintext, every integer little-endian):
 *
 *   offset  size   field
 *   0       8      magic "VVBKREPO"
 *   8       4      version = 2 (1 still read: object names below)
 *   12      16     repo id (random)
 *   28      8      created, unix seconds
 *   36      4      nslots (1..16)
 *   40      108*n  key slots: u32 index, u64 opslimit, u64 memlimit,
 *                  16 salt, 72 wrapped repo key (vv_key_wrap under
 *                  Argon2id(passphrase, salt); AD "vvbk-slot" || repo id ||
 *                  index u32)
 *   ...     32     MAC: keyed BLAKE2b-256 of every byte before it, key
 *                  vv_subkey(repo key, 1, "vvbkconf")
 *
 * DEST/objects/XX/<64 hex> (XX: its first two digits): a store chunk file,
 * byte for byte; the name is HMAC-SHA-256 (version 2; keyed BLAKE2b-256 in
 * version 1) of its bytes with vv_subkey(repo key, 1, "vvbkobjn"), so it neither repeats the chunk's
 * store name nor lets anyone without the key confirm a guess.
 *
 * DEST/manifests/<32 hex backup id>:
 *
 *   0       8      magic "VVBKMAN1"
 *   8       4      version = 1
 *   12      16     repo id
 *   28      16     backup id (= the file name)
 *   44      24     nonce (random)
 *   68      n      body, XChaCha20-Poly1305 under vv_subkey(repo key, 1,
 *                  "vvbkmani"), AD = bytes 0..67
 *   68+n    16     tag
 *
 * Body (plaintext inside the seal; n a multiple of 4096, zero padded):
 *
 *   8  magic "VVBKBODY"           16 backup id       16 store id
 *   8  created ns                 8  snapshot created ns
 *   2+ snapshot name (u16 len)    2+ tag (u16 len)
 *   8  files                      8  bytes           4  root collection id
 *   4  ncolls,    each: u32 id, 72 data key wrapped under vv_subkey(repo
 *                 key, 1, "vvbkcoll"), AD "vvbk-coll" || backup id || id
 *   8  nobjects,  each: 32 chunk id, 32 object name, u64 size
 *   8  ninodes,   each: u64 ino, u64 gen, u32 mode, u32 uid, u32 gid,
 *                 u32 nlink, u64 size, u64 rdev, i64 atime, mtime, ctime,
 *                 u64 parent, u32 coll, 16 objid, u64 stored, u32 len, data
 *   8  ndirents,  each: u64 parent, u64 id, u64 ino, u32 mode, u16 len, name
 *   8  nxattrs,   each: u64 ino, u16 len, name, u32 len, value
 *   8  nextents,  each: u64 ino, u64 fblock, 32 chunk, u32 off, len, slot
 *   4  "END!"  then zeros
 *
 * Every directory and file is opened relative to DEST without following a
 * symbolic link (O_NOFOLLOW on each step), so a link planted in DEST never
 * redirects a write.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "buf.h"
#include "crypto_int.h"
#include "os.h"
#include "grow.h"
#include "repo_int.h"
#include "vecvault/error.h"
#include "vecvault/log.h"
#include "vecvault/vault.h"

#define CONF_MAGIC "VVBKREPO"
#define MAN_MAGIC "VVBKMAN1"
#define BODY_MAGIC "VVBKBODY"
#define REPO_VERSION 2                     /* written by init; 1 is still read */
#define REPO_VERSION_MIN 1
#define MAN_VERSION 2                      /* written; 1 (rows inline) is still read */
#define MAN_VERSION_MIN 1
#define PACK_MAGIC "VVBKPACK"
#define PACK_HDR (8 + VV_XNONCE_BYTES)     /* magic, nonce; then ct, tag */
#define PACK_PAD 4096                      /* u32 length + piece + zeros: a multiple */
#define PACK_MIN (16u << 10)               /* content-defined cuts: no piece shorter, */
#define PACK_MAX (256u << 10)              /* ... none longer (but the last), */
#define PACK_MASK ((1u << 16) - 1)         /* ... about 64 KiB past the minimum */
#define SLOT_BYTES (4 + 8 + 8 + VV_SALT_BYTES + VV_WRAPPED_BYTES)
#define CONF_HDR 40
#define CONF_MAX (CONF_HDR + 16 * SLOT_BYTES + VV_MAC_BYTES)
#define MAN_HDR 68
#define BODY_PAD 4096
#define MAX_SLOTS 16
#define PEND_MAX 32                        /* objects synced and renamed together */
#define PEND_BYTES (128u << 20)            /* ... or that many bytes of them */

struct vv_repo {
	int dfd, objfd, manfd, lockfd;
	bool check;                        /* VV_REPO_CHECK_OWNER */
	bool cache;                        /* VV_REPO_KEY_CACHE: also the manifest cache */
	uint32_t version;                  /* of the config: 2 names objects with HMAC-SHA-256 */
	uint32_t uid, gid;                 /* DEST's owner: new files get it */
	uint8_t id[VV_REPO_ID_BYTES];
	uint8_t *key;                      /* secure: repo key */
	uint8_t *kman, *kobj, *kcoll;      /* secure: subkeys */
	uint8_t *kpack, *kpackn, *kgear;   /* secure: metadata packs (seal, nonce, cuts) */
	char why[160];                     /* vv_repo_why */
	uint64_t pk_named, pk_written, pk_bytes;   /* vv_repo_packs_stats */
	bool dirty[256], objdirty;         /* objects/XX and objects/ to fsync */
	/* Objects written under their tmp name, write-back started, not yet
	 * synced nor renamed (vv_repo_object_put, flush_pending); under pmu. */
	pthread_mutex_t pmu;
	pthread_cond_t pcv;                /* a batch landed or was taken */
	bool pinit;
	struct pend {
		int dfd, fd;                   /* objects/XX, the tmp file */
		uint8_t name[VV_REPO_NAME_BYTES];
	} pend[PEND_MAX], fly[PEND_MAX];   /* filling; being synced (nfly > 0) */
	int npend, nfly;
	uint64_t pbytes;
};

static int oserr(int e)
{
	return vv_err_from_errno(e < 0 ? -e : e);
}

/* ---- direct I/O --------------------------------------------------------------- */

/*
 * Objects and restored chunks move with O_DIRECT where the file system
 * takes it: on the VMs we measure on, allocating page-cache pages costs
 * more than the copy (perf: copy_folio_from_iter_atomic was a quarter of
 * a restore; a buffered 512 MiB write took 4.0 s of which 1.2 s system
 * time, O_DIRECT 1.5-2.1 s and 0.1-0.3 s), and a backup's data is read or
 * written once, so caching it only evicts what the host needs.  The
 * largest DIO_ALIGN multiple goes direct from an aligned buffer
 * (vv_repo_buf_alloc); the tail, and everything on a file system that
 * refuses O_DIRECT (tmpfs, some FUSE), through the page cache.  Neither
 * is durable without an fsync: O_DIRECT bypasses the page cache only, not
 * the device's cache nor the file's size and extents.
 */
#define DIO_ALIGN 4096u
#define DIO_HUGE (2u << 20)                /* buffers this big: huge-page aligned */

void *vv_repo_buf_alloc(size_t len)
{
	size_t align = len >= DIO_HUGE ? DIO_HUGE : DIO_ALIGN;
	size_t n = (len + DIO_ALIGN - 1) & ~(size_t)(DIO_ALIGN - 1);
	void *p = NULL;

	if (posix_memalign(&p, align, n ? n : DIO_ALIGN) != 0)
		return NULL;
	if (align == DIO_HUGE)
		(void)madvise(p, n & ~(size_t)(DIO_HUGE - 1), MADV_HUGEPAGE);   /* a hint */
	return p;
}

/* Turn O_DIRECT on or off for fd; false when the file system refuses. */
static bool set_direct(int fd, bool on)
{
	int fl = fcntl(fd, F_GETFL);

	if (fl < 0)
		return false;
	fl = on ? fl | O_DIRECT : fl & ~O_DIRECT;
	return fcntl(fd, F_SETFL, fl) == 0;
}

static bool dio_ok(const void *buf, size_t len)
{
	return len >= DIO_ALIGN && ((uintptr_t)buf & (DIO_ALIGN - 1)) == 0;
}

int vv_repo_pread_file(int fd, void *buf, size_t len)
{
	size_t dlen = len & ~(size_t)(DIO_ALIGN - 1), done = 0;
	ssize_t got;

	if (dio_ok(buf, len) && set_direct(fd, true)) {
		got = vv_os_pread_full(fd, buf, dlen, 0);
		set_direct(fd, false);
		if (got == (ssize_t)dlen)
			done = dlen;
		else if (got >= 0)
			return VV_ECORRUPT;          /* shorter than its size */
		else if (got != -EINVAL)
			return oserr((int)-got);
		/* EINVAL: refused at the read; all of it below. */
	}
	got = vv_os_pread_full(fd, (uint8_t *)buf + done, len - done, (off_t)done);
	if (got < 0)
		return oserr((int)-got);
	return (size_t)got == len - done ? 0 : VV_ECORRUPT;
}

int vv_repo_pwrite_file(int fd, const void *buf, size_t len)
{
	size_t dlen = len & ~(size_t)(DIO_ALIGN - 1), done = 0;
	int e;

	if (dio_ok(buf, len) && set_direct(fd, true)) {
		e = vv_os_pwrite_full(fd, buf, dlen, 0);
		set_direct(fd, false);
		if (e == 0)
			done = dlen;
		else if (e != -EINVAL)
			return oserr(-e);
		/* EINVAL: refused at the write; all of it below. */
	}
	if (done < len) {
		if ((e = vv_os_pwrite_full(fd, (const uint8_t *)buf + done, len - done, (off_t)done)) < 0)
			return oserr(-e);
		vv_os_writeback(fd, (off_t)len);
	}
	return 0;
}

/* ---- safe opens inside DEST ----------------------------------------------- */

/* Refuse what another user could have planted or may change. */
static int owned_ok(const struct vv_repo *r, int fd, const char *what)
{
	struct stat st;

	if (fstat(fd, &st) < 0)
		return oserr(errno);
	if (!r->check)
		return 0;
	if (st.st_uid != r->uid || (st.st_mode & 022)) {
		vv_log(VV_LOG_ERR, "backup: %s belongs to uid %u or may be written by others "
		       "(mode %04o): refused", what, (unsigned)st.st_uid, (unsigned)(st.st_mode & 07777));
		return VV_EUNSAFE;
	}
	return 0;
}

static void give(const struct vv_repo *r, int fd)
{
	struct stat st;

	if (geteuid() == 0 && fstat(fd, &st) == 0 && (st.st_uid != r->uid || st.st_gid != r->gid))
		if (fchown(fd, r->uid, r->gid) < 0)
			vv_log(VV_LOG_WARN, "backup: cannot give a file to uid %u: %s",
			       (unsigned)r->uid, strerror(errno));
}

/* Open (creating with mkdir) directory name under dirfd. */
static int subdir(struct vv_repo *r, int dirfd, const char *name, bool create, int *out)
{
	int fd = -1, e;

	fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0 && errno == ENOENT && create) {
		if (mkdirat(dirfd, name, 0700) < 0 && errno != EEXIST)
			return oserr(errno);
		fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (fd >= 0) {
			give(r, fd);
			if (fsync(dirfd) < 0) {
				e = errno;
				close(fd);
				return oserr(e);
			}
		}
	}
	if (fd < 0)
		return errno == ELOOP || errno == ENOTDIR ? VV_EUNSAFE : oserr(errno);
	if ((e = owned_ok(r, fd, name)) < 0) {
		close(fd);
		return e;
	}
	*out = fd;
	return 0;
}

static int read_at_how(int dirfd, const char *name, size_t max, bool direct, uint8_t **out,
		       size_t *len)
{
	struct stat st;
	uint8_t *b = NULL;
	int fd, r = 0;

	fd = openat(dirfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return errno == ELOOP ? VV_EUNSAFE : oserr(errno);
	if (fstat(fd, &st) < 0) {
		r = oserr(errno);
		goto out;
	}
	if (!S_ISREG(st.st_mode)) {
		r = VV_EUNSAFE;
		goto out;
	}
	if ((uint64_t)st.st_size > max) {
		r = VV_EFBIG;
		goto out;
	}
	/* Aligned: a manifest of megabytes is read O_DIRECT; not: through
	 * the page cache (metadata packs: small, read again by every list). */
	if (!(b = direct ? vv_repo_buf_alloc((size_t)st.st_size) : malloc(st.st_size ? (size_t)st.st_size : 1))) {
		r = VV_ENOMEM;
		goto out;
	}
	if ((r = vv_repo_pread_file(fd, b, (size_t)st.st_size)) < 0)
		goto out;
	*len = (size_t)st.st_size;
	*out = b;
	b = NULL;
out:
	free(b);
	close(fd);
	return r;
}

static int read_at(int dirfd, const char *name, size_t max, uint8_t **out, size_t *len)
{
	return read_at_how(dirfd, name, max, true, out, len);
}

/* tmp + write + fsync + rename in dirfd; the directory is not synced. */
static int write_at(struct vv_repo *r, int dirfd, const char *name, const void *buf, size_t len)
{
	char tmp[128];
	int fd, e = 0;

	snprintf(tmp, sizeof(tmp), ".tmp-%s", name);
	unlinkat(dirfd, tmp, 0);
	fd = openat(dirfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0)
		return oserr(errno);
	give(r, fd);
	if ((e = vv_repo_pwrite_file(fd, buf, len)) == 0 && (e = vv_os_fsync(fd)) < 0)
		e = oserr(e);
	close(fd);
	if (e == 0 && renameat(dirfd, tmp, dirfd, name) < 0)
		e = oserr(errno);
	if (e < 0)
		unlinkat(dirfd, tmp, 0);
	return e;
}

/* ---- keys and config -------------------------------------------------------- */

static void slot_ad(const uint8_t id[VV_REPO_ID_BYTES], uint32_t idx, uint8_t ad[29])
{
	memcpy(ad, "vvbk-slot", 9);
	memcpy(ad + 9, id, VV_REPO_ID_BYTES);
	vv_put_le32(ad + 25, idx);
}

static int subkeys(struct vv_repo *r)
{
	if (!(r->kman = vv_secure_alloc(VV_KEY_BYTES)) || !(r->kobj = vv_secure_alloc(VV_KEY_BYTES)) ||
	    !(r->kcoll = vv_secure_alloc(VV_KEY_BYTES)) || !(r->kpack = vv_secure_alloc(VV_KEY_BYTES)) ||
	    !(r->kpackn = vv_secure_alloc(VV_KEY_BYTES)) || !(r->kgear = vv_secure_alloc(VV_KEY_BYTES)))
		return VV_ENOMEM;
	if (vv_subkey(r->kman, r->key, 1, "vvbkmani") < 0 || vv_subkey(r->kobj, r->key, 1, "vvbkobjn") < 0 ||
	    vv_subkey(r->kcoll, r->key, 1, "vvbkcoll") < 0 || vv_subkey(r->kpack, r->key, 1, "vvbkpack") < 0 ||
	    vv_subkey(r->kpackn, r->key, 1, "vvbkpakn") < 0 || vv_subkey(r->kgear, r->key, 1, "vvbkgear") < 0)
		return VV_ECRYPTO;
	return 0;
}

static int conf_mac(const uint8_t *key, const uint8_t *buf, size_t len, uint8_t mac[VV_MAC_BYTES])
{
	uint8_t k[VV_KEY_BYTES];
	int r;

	if ((r = vv_subkey(k, key, 1, "vvbkconf")) == 0)
		r = vv_mac(mac, k, buf, len);
	vv_memzero(k, sizeof(k));
	return r;
}

int vv_repo_config_parse(const uint8_t *buf, size_t len, uint8_t repo_id[VV_REPO_ID_BYTES], int *nslots)
{
	struct vv_rbuf b;
	uint8_t magic[8];
	uint32_t ver, n;

	vv_rbuf_init(&b, buf, len);
	if (vv_rbuf_get_bytes(&b, magic, 8) < 0 || memcmp(magic, CONF_MAGIC, 8) != 0)
		return VV_EFORMAT;
	if (vv_rbuf_get_u32(&b, &ver) < 0 || ver < REPO_VERSION_MIN || ver > REPO_VERSION)
		return VV_EFORMAT;
	if (vv_rbuf_get_bytes(&b, repo_id, VV_REPO_ID_BYTES) < 0 || vv_rbuf_skip(&b, 8) < 0 ||
	    vv_rbuf_get_u32(&b, &n) < 0 || n < 1 || n > MAX_SLOTS)
		return VV_ECORRUPT;
	if (vv_rbuf_left(&b) != (size_t)n * SLOT_BYTES + VV_MAC_BYTES)
		return VV_ECORRUPT;
	for (uint32_t i = 0; i < n; i++) {
		uint32_t idx;
		uint64_t ops, mem;
		if (vv_rbuf_get_u32(&b, &idx) < 0 || vv_rbuf_get_u64(&b, &ops) < 0 ||
		    vv_rbuf_get_u64(&b, &mem) < 0 || vv_rbuf_skip(&b, VV_SALT_BYTES + VV_WRAPPED_BYTES) < 0)
			return VV_ECORRUPT;
		/* the bounds the store's conf has (crypto_int.h): the config
		 * is read before its MAC can be checked, and an edited slot
		 * must not make root's scheduled backup spend hours in
		 * Argon2id (it was 2^20 passes and 4 TiB) */
		if (idx >= MAX_SLOTS || ops == 0 || ops > VV_KDF_OPS_BOUND || mem == 0 ||
		    mem > VV_KDF_MEM_BOUND)
			return VV_ECORRUPT;
	}
	*nslots = (int)n;
	return 0;
}

static int kdf_of(int profile, struct vv_kdf_params *p, bool allow_test)
{
	switch (profile) {
	case VV_KDF_PROFILE_INTERACTIVE: vv_kdf_params_for(VV_KDF_INTERACTIVE, p); return 0;
	case VV_KDF_PROFILE_MODERATE: vv_kdf_params_for(VV_KDF_MODERATE, p); return 0;
	case VV_KDF_PROFILE_TEST:
		if (!allow_test)
			return VV_EDOWNGRADE;
		vv_kdf_params_for(VV_KDF_TEST, p);
		return 0;
	}
	return VV_EINVAL;
}

int vv_repo_init(const char *dest, const char *pass, size_t passlen, int kdf_profile,
		 unsigned flags, char id_hex[2 * VV_REPO_ID_BYTES + 1])
{
	struct vv_repo r = { .dfd = -1, .objfd = -1, .manfd = -1, .lockfd = -1 };
	uint8_t conf[CONF_MAX], salt[VV_SALT_BYTES], ad[29];
	uint8_t *kek = NULL, *key = NULL;
	struct vv_kdf_params p;
	struct vv_wbuf w;
	struct dirent *de;
	struct stat st;
	DIR *d;
	int e, fd;

	if ((e = vv_crypto_init()) < 0)
		return e;
	if (!passlen)
		return VV_EINVAL;
	if ((e = kdf_of(kdf_profile, &p, flags & VV_REPO_ALLOW_TEST_KDF)) < 0)
		return e;
	if (mkdir(dest, 0700) < 0 && errno != EEXIST)
		return oserr(errno);
	r.dfd = open(dest, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (r.dfd < 0)
		return errno == ELOOP ? VV_EUNSAFE : oserr(errno);
	if (fstat(r.dfd, &st) < 0) {
		e = oserr(errno);
		goto out;
	}
	r.uid = st.st_uid;
	r.gid = st.st_gid;
	if ((fd = dup(r.dfd)) < 0 || !(d = fdopendir(fd))) {
		e = oserr(errno);
		goto out;
	}
	e = 0;
	while ((de = readdir(d)))
		if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
			e = VV_EEXIST;
	closedir(d);
	if (e < 0)
		goto out;
	if (!(kek = vv_secure_alloc(VV_KEY_BYTES)) || !(key = vv_secure_alloc(VV_KEY_BYTES))) {
		e = VV_ENOMEM;
		goto out;
	}
	vv_random_bytes(r.id, sizeof(r.id));
	vv_random_bytes(key, VV_KEY_BYTES);
	vv_random_bytes(salt, sizeof(salt));
	if ((e = vv_kdf_derive(kek, pass, passlen, salt, &p)) < 0)
		goto out;
	vv_wbuf_init(&w, conf, sizeof(conf));
	vv_wbuf_put_bytes(&w, CONF_MAGIC, 8);
	vv_wbuf_put_u32(&w, REPO_VERSION);
	vv_wbuf_put_bytes(&w, r.id, VV_REPO_ID_BYTES);
	vv_wbuf_put_u64(&w, (uint64_t)time(NULL));
	vv_wbuf_put_u32(&w, 1);
	vv_wbuf_put_u32(&w, 0);
	vv_wbuf_put_u64(&w, p.opslimit);
	vv_wbuf_put_u64(&w, p.memlimit);
	vv_wbuf_put_bytes(&w, salt, sizeof(salt));
	slot_ad(r.id, 0, ad);
	if (w.len + VV_WRAPPED_BYTES + VV_MAC_BYTES > sizeof(conf)) {
		e = VV_EIO;
		goto out;
	}
	if ((e = vv_key_wrap(conf + w.len, key, kek, ad, sizeof(ad))) < 0)
		goto out;
	w.len += VV_WRAPPED_BYTES;
	if ((e = conf_mac(key, conf, w.len, conf + w.len)) < 0)
		goto out;
	w.len += VV_MAC_BYTES;
	if ((e = subdir(&r, r.dfd, "objects", true, &r.objfd)) < 0 ||
	    (e = subdir(&r, r.dfd, "manifests", true, &r.manfd)) < 0)
		goto out;
	/* The config last: a directory without it is no repository yet. */
	if ((e = write_at(&r, r.dfd, "config", conf, w.len)) < 0)
		goto out;
	if (fsync(r.dfd) < 0) {
		e = oserr(errno);
		goto out;
	}
	if (id_hex)
		vv_hex_encode(id_hex, r.id, VV_REPO_ID_BYTES);
out:
	vv_secure_free(kek);
	vv_secure_free(key);
	if (r.objfd >= 0)
		close(r.objfd);
	if (r.manfd >= 0)
		close(r.manfd);
	close(r.dfd);
	return e;
}

int vv_repo_lock_pid(const uint8_t *buf, size_t len, long *pid)
{
	long v = 0;

	if (len && buf[len - 1] == '\n')
		len--;
	if (len < 1 || len > 9 || buf[0] == '0')
		return VV_ECORRUPT;         /* as written: "%ld\n", never 0 */
	for (size_t i = 0; i < len; i++) {
		if (buf[i] < '0' || buf[i] > '9')
			return VV_ECORRUPT;
		v = v * 10 + (buf[i] - '0');
	}
	*pid = v;
	return 0;
}

static int take_lock(struct vv_repo *r)
{
	char pid[32];
	uint8_t *old = NULL;
	size_t len = 0;
	int n;

	struct stat st;

	/* Never O_CREAT on a name that may exist: a hard link planted there
	 * (to a file of root's) must be refused, not truncated or chowned. */
	r->lockfd = openat(r->dfd, "lock", O_RDWR | O_NOFOLLOW | O_CLOEXEC);
	if (r->lockfd < 0 && errno == ENOENT) {
		r->lockfd = openat(r->dfd, "lock", O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
		if (r->lockfd >= 0)
			give(r, r->lockfd);
	}
	if (r->lockfd < 0)
		return errno == ELOOP ? VV_EUNSAFE : oserr(errno);
	if (fstat(r->lockfd, &st) < 0)
		return oserr(errno);
	if (!S_ISREG(st.st_mode) || st.st_nlink != 1) {
		vv_log(VV_LOG_ERR, "backup: the lock file is not a plain file with one link: refused");
		return VV_EUNSAFE;
	}
	if (owned_ok(r, r->lockfd, "lock") < 0)
		return VV_EUNSAFE;
	if (flock(r->lockfd, LOCK_EX | LOCK_NB) < 0) {
		long holder = 0;
		if (errno != EWOULDBLOCK)
			return oserr(errno);
		/* Whoever writes DEST writes this file: only a pid is shown. */
		if (read_at(r->dfd, "lock", 64, &old, &len) == 0 && vv_repo_lock_pid(old, len, &holder) == 0)
			vv_log(VV_LOG_ERR, "backup: the repository is being written by another "
			       "backup (pid %ld); wait for it to finish", holder);
		else
			vv_log(VV_LOG_ERR, "backup: the repository is being written by another "
			       "backup; wait for it to finish");
		free(old);
		return VV_EBUSY;
	}
	/* The lock dies with its holder (flock), so a pid left by a killed
	 * writer is stale by construction: overwrite it.  The pid first, then
	 * cut what a longer one left, and only then: a truncate costs a
	 * journal transaction (1-5 ms on ext4), and the daemon's pid is the
	 * same at every run. */
	n = snprintf(pid, sizeof(pid), "%ld\n", (long)getpid());
	if (vv_os_pwrite_full(r->lockfd, pid, (size_t)n, 0) < 0 ||
	    (st.st_size > n && ftruncate(r->lockfd, n) < 0))
		vv_log(VV_LOG_WARN, "backup: cannot record the pid in the lock file");
	return 0;
}

/*
 * The daemon's key cache (VV_REPO_KEY_CACHE; docs/security.md "Backup
 * repository keys in the daemon").  A backup run used to pay one Argon2id
 * of the repository's slot per run: most of a run that has nothing to
 * send.  An entry holds, in secure memory, a repository key that a slot
 * unlocked in this process, the slot's exact bytes, and a verifier of the
 * passphrase that unlocked it: keyed BLAKE2b under a key drawn at random
 * per process (never stored, never leaves secure memory).  A later open
 * with the same passphrase (verifier equal, compared in constant time)
 * and the same slot bytes (a changed or removed slot: no hit) takes the
 * key without a second Argon2id; the config MAC then checks the key as
 * before.  Any other passphrase misses and pays the full Argon2id, so a
 * wrong guess costs what it did.  Cleared when the vault closes.
 */
#define KC_MAX 4

struct kc_ent {
	bool used;
	uint64_t last;                     /* kc_tick at the last use: the oldest goes */
	uint8_t id[VV_REPO_ID_BYTES];
	uint8_t slot[SLOT_BYTES];          /* the slot's bytes as it was unlocked */
	uint8_t *sec;                      /* secure: verifier || repo key */
};

static pthread_mutex_t kc_mu = PTHREAD_MUTEX_INITIALIZER;
static struct kc_ent kc[KC_MAX];
static uint8_t *kc_key;                    /* secure, random: keys the verifiers */
static uint64_t kc_tick;

/* The verifier of pass, under kc_mu.  VV_ENOMEM without a key. */
static int kc_verifier(const char *pass, size_t passlen, uint8_t ver[VV_MAC_BYTES])
{
	if (!kc_key) {
		if (!(kc_key = vv_secure_alloc(VV_KEY_BYTES)))
			return VV_ENOMEM;
		vv_random_bytes(kc_key, VV_KEY_BYTES);
	}
	return vv_mac(ver, kc_key, pass, passlen);
}

/* The cached key of this slot for this passphrase into key: true if any. */
static bool kc_find(const uint8_t id[VV_REPO_ID_BYTES], const uint8_t *slot,
		    const uint8_t ver[VV_MAC_BYTES], uint8_t *key)
{
	bool hit = false;

	pthread_mutex_lock(&kc_mu);
	for (int i = 0; i < KC_MAX && !hit; i++) {
		struct kc_ent *e = &kc[i];
		if (!e->used || memcmp(e->id, id, VV_REPO_ID_BYTES) != 0 ||
		    memcmp(e->slot, slot, SLOT_BYTES) != 0 || !vv_memeq_ct(e->sec, ver, VV_MAC_BYTES))
			continue;
		memcpy(key, e->sec + VV_MAC_BYTES, VV_KEY_BYTES);
		e->last = ++kc_tick;
		hit = true;
	}
	pthread_mutex_unlock(&kc_mu);
	return hit;
}

/* Remember key as unlocked by this slot and passphrase (best effort). */
static void kc_put(const uint8_t id[VV_REPO_ID_BYTES], const uint8_t *slot,
		   const uint8_t ver[VV_MAC_BYTES], const uint8_t *key)
{
	struct kc_ent *e = NULL;

	pthread_mutex_lock(&kc_mu);
	for (int i = 0; i < KC_MAX; i++) {
		/* One entry per repository: a new passphrase or slot replaces it. */
		if (kc[i].used && memcmp(kc[i].id, id, VV_REPO_ID_BYTES) == 0) {
			e = &kc[i];
			break;
		}
		if (!e || !kc[i].used || (e->used && kc[i].last < e->last))
			e = &kc[i];
	}
	if (!e->sec && !(e->sec = vv_secure_alloc(VV_MAC_BYTES + VV_KEY_BYTES))) {
		pthread_mutex_unlock(&kc_mu);
		return;
	}
	e->used = true;
	e->last = ++kc_tick;
	memcpy(e->id, id, VV_REPO_ID_BYTES);
	memcpy(e->slot, slot, SLOT_BYTES);
	memcpy(e->sec, ver, VV_MAC_BYTES);
	memcpy(e->sec + VV_MAC_BYTES, key, VV_KEY_BYTES);
	pthread_mutex_unlock(&kc_mu);
}

/*
 * The daemon's manifest cache (with the key cache, VV_REPO_KEY_CACHE): the
 * object list of each manifest of a repository it read or wrote, by name.
 * An incremental run needs every manifest's objects (vv_repo_index_load)
 * and decrypted all of them each time: a repository with a month of daily
 * backups cost a month of manifests per run.  A manifest never changes
 * (its name is its backup id, bound into its AEAD), so one read once
 * stays valid until it is gone from the listing (then dropped here).
 * Objects are still checked present at their size before being trusted.
 * Under kc_mu; at most KC_MAX repositories, the oldest replaced.
 */
struct mc_man {
	char name[VV_BACKUP_ID_HEX + 1];
	struct vv_bk_object *o;
	size_t n;
};

/* A metadata pack this daemon sealed or found, by the keyed hash of its
 * piece of the rows (pack_hash): an unchanged piece is neither sealed nor
 * written again (still checked present at its size before being named). */
struct mc_pack {
	uint8_t ph[VV_MAC_BYTES];
	struct vv_bk_pack p;
};
#define MC_PACKS_MAX 65536

static struct mc_repo {
	bool used;
	uint64_t last;
	uint8_t id[VV_REPO_ID_BYTES];
	struct mc_man *man;
	size_t n, cap;
	struct mc_pack *pk;
	size_t npk, cappk;
	uint32_t *ht;                      /* pk's index (mc_pack_find) */
	size_t htcap;
	/* The rows of the last manifest stored here and their packs: a run
	 * whose rows begin with the same bytes names the same packs for that
	 * prefix without cutting or hashing it again (encode_v2).  Plaintext
	 * metadata, as SQLite's page cache holds it; zeroed when dropped. */
	uint8_t *rows;
	size_t rlen;
	struct vv_bk_pack *rpk;
	size_t nrpk;
} mc[KC_MAX];
#define MC_ROWS_MAX (64u << 20)        /* larger rows are not kept */

static void mc_drop(struct mc_repo *c)
{
	for (size_t i = 0; i < c->n; i++)
		free(c->man[i].o);
	free(c->man);
	free(c->pk);
	free(c->ht);
	if (c->rows)
		vv_memzero(c->rows, c->rlen);
	free(c->rows);
	free(c->rpk);
	memset(c, 0, sizeof(*c));
}

/* The cache of repository id (made when absent), under kc_mu. */
static struct mc_repo *mc_of(const uint8_t id[VV_REPO_ID_BYTES])
{
	struct mc_repo *c = NULL;

	for (int i = 0; i < KC_MAX; i++) {
		if (mc[i].used && memcmp(mc[i].id, id, VV_REPO_ID_BYTES) == 0) {
			mc[i].last = ++kc_tick;
			return &mc[i];
		}
		if (!c || !mc[i].used || (c->used && mc[i].last < c->last))
			c = &mc[i];
	}
	mc_drop(c);
	c->used = true;
	c->last = ++kc_tick;
	memcpy(c->id, id, VV_REPO_ID_BYTES);
	return c;
}

static struct mc_man *mc_find(struct mc_repo *c, const char *name)
{
	for (size_t i = 0; i < c->n; i++)
		if (strcmp(c->man[i].name, name) == 0)
			return &c->man[i];
	return NULL;
}

/* Remember manifest name's objects (best effort: no memory, no entry). */
static void mc_add(struct mc_repo *c, const char *name, const struct vv_bk_object *o, size_t n)
{
	struct mc_man *e;

	if (mc_find(c, name))
		return;
	if (VV_GROW(c->man, c->n, c->cap) < 0)
		return;
	e = &c->man[c->n];
	snprintf(e->name, sizeof(e->name), "%s", name);
	e->n = n;
	e->o = NULL;
	if (n && !(e->o = malloc(n * sizeof(*o))))
		return;
	if (n)
		memcpy(e->o, o, n * sizeof(*o));
	c->n++;
}

/* c->pk is indexed by an open-addressing hash table of its positions + 1
 * (0: empty), at most half full, keyed by ph's first 8 bytes (ph is a
 * keyed MAC: uniform): a first backup of many packs looked each up in
 * all the others before. */
static const struct vv_bk_pack *mc_pack_find(struct mc_repo *c, const uint8_t ph[VV_MAC_BYTES])
{
	if (!c->htcap)
		return NULL;
	for (size_t h = (size_t)vv_get_le64(ph) & (c->htcap - 1);; h = (h + 1) & (c->htcap - 1)) {
		uint32_t v = c->ht[h];
		if (!v)
			return NULL;
		if (memcmp(c->pk[v - 1].ph, ph, VV_MAC_BYTES) == 0)
			return &c->pk[v - 1].p;
	}
}

static void mc_ht_put(uint32_t *ht, size_t htcap, const uint8_t ph[VV_MAC_BYTES], uint32_t v)
{
	size_t h = (size_t)vv_get_le64(ph) & (htcap - 1);

	while (ht[h])
		h = (h + 1) & (htcap - 1);
	ht[h] = v;
}

/* Best effort: no memory, no entry; full, start again. */
static void mc_pack_add(struct mc_repo *c, const uint8_t ph[VV_MAC_BYTES], const struct vv_bk_pack *p)
{
	if (mc_pack_find(c, ph))
		return;
	if (c->npk == MC_PACKS_MAX) {
		c->npk = 0;
		if (c->ht)
			memset(c->ht, 0, c->htcap * sizeof(*c->ht));
	}
	if ((c->npk + 1) * 2 > c->htcap) {
		size_t nc = c->htcap ? c->htcap * 2 : 256;
		uint32_t *nt = calloc(nc, sizeof(*nt));
		if (!nt)
			return;
		for (size_t i = 0; i < c->npk; i++)
			mc_ht_put(nt, nc, c->pk[i].ph, (uint32_t)i + 1);
		free(c->ht);
		c->ht = nt;
		c->htcap = nc;
	}
	if (VV_GROW(c->pk, c->npk, c->cappk) < 0)
		return;
	memcpy(c->pk[c->npk].ph, ph, VV_MAC_BYTES);
	c->pk[c->npk].p = *p;
	mc_ht_put(c->ht, c->htcap, ph, (uint32_t)++c->npk);
}

/* Keep only the manifests named in names (sorted). */
static void mc_keep(struct mc_repo *c, char **names, size_t n)
{
	size_t k = 0;

	for (size_t i = 0; i < c->n; i++) {
		bool listed = false;
		for (size_t j = 0; j < n && !listed; j++)
			listed = strcmp(names[j], c->man[i].name) == 0;
		if (listed)
			c->man[k++] = c->man[i];
		else
			free(c->man[i].o);
	}
	c->n = k;
}

void vv_repo_key_cache_clear(void)
{
	pthread_mutex_lock(&kc_mu);
	for (int i = 0; i < KC_MAX; i++)
		mc_drop(&mc[i]);
	for (int i = 0; i < KC_MAX; i++) {
		vv_secure_free(kc[i].sec);
		memset(&kc[i], 0, sizeof(kc[i]));
	}
	vv_secure_free(kc_key);
	kc_key = NULL;
	pthread_mutex_unlock(&kc_mu);
}

static int unlock_conf(struct vv_repo *r, const uint8_t *conf, size_t len, const char *pass,
		       size_t passlen, bool allow_test, bool cache)
{
	uint8_t ver[VV_MAC_BYTES];
	struct vv_rbuf b;
	uint8_t *kek = NULL, mac[VV_MAC_BYTES], ad[29];
	bool weak = false;
	uint32_t n = 0;
	int e = VV_EBADPASS;

	if (!(kek = vv_secure_alloc(VV_KEY_BYTES)) || !(r->key = vv_secure_alloc(VV_KEY_BYTES))) {
		vv_secure_free(kek);
		return VV_ENOMEM;
	}
	if (cache) {
		pthread_mutex_lock(&kc_mu);
		e = kc_verifier(pass, passlen, ver);
		pthread_mutex_unlock(&kc_mu);
		if (e < 0) {
			vv_secure_free(kek);
			return e;
		}
		e = VV_EBADPASS;
	}
	vv_rbuf_init(&b, conf, len);
	vv_rbuf_skip(&b, 36);
	vv_rbuf_get_u32(&b, &n);
	for (uint32_t i = 0; i < n; i++) {
		struct vv_kdf_params p;
		const uint8_t *salt, *wr;
		uint32_t idx;
		if (vv_rbuf_get_u32(&b, &idx) < 0 || vv_rbuf_get_u64(&b, &p.opslimit) < 0 ||
		    vv_rbuf_get_u64(&b, &p.memlimit) < 0 || vv_rbuf_get_ptr(&b, &salt, VV_SALT_BYTES) < 0 ||
		    vv_rbuf_get_ptr(&b, &wr, VV_WRAPPED_BYTES) < 0) {
			e = VV_ECORRUPT;
			break;
		}
		if (!vv_kdf_params_ok(&p, allow_test)) {
			weak = true;
			continue;
		}
		if (cache && kc_find(r->id, conf + CONF_HDR + (size_t)i * SLOT_BYTES, ver, r->key)) {
			e = 0;
			break;
		}
		if (vv_kdf_derive(kek, pass, passlen, salt, &p) < 0)
			continue;
		slot_ad(r->id, idx, ad);
		if (vv_key_unwrap(r->key, wr, kek, ad, sizeof(ad)) == 0) {
			if (cache)
				kc_put(r->id, conf + CONF_HDR + (size_t)i * SLOT_BYTES, ver, r->key);
			e = 0;
			break;
		}
	}
	vv_secure_free(kek);
	vv_memzero(ver, sizeof(ver));
	if (e == VV_EBADPASS && weak)
		e = VV_EDOWNGRADE;
	if (e < 0)
		return e;
	if ((e = conf_mac(r->key, conf, len - VV_MAC_BYTES, mac)) < 0)
		return e;
	if (!vv_memeq_ct(mac, conf + len - VV_MAC_BYTES, VV_MAC_BYTES)) {
		vv_log(VV_LOG_ERR, "backup: the repository config does not authenticate (altered)");
		return VV_ECORRUPT;
	}
	return subkeys(r);
}

int vv_repo_open(const char *dest, const char *pass, size_t passlen, unsigned flags, uint32_t uid,
		 struct vv_repo **out)
{
	struct vv_repo *r = calloc(1, sizeof(*r));
	uint8_t *conf = NULL;
	size_t len = 0;
	struct stat st;
	int e, nslots;

	if (!r)
		return VV_ENOMEM;
	r->dfd = r->objfd = r->manfd = r->lockfd = -1;
	pthread_mutex_init(&r->pmu, NULL);
	pthread_cond_init(&r->pcv, NULL);
	r->pinit = true;
	r->check = flags & VV_REPO_CHECK_OWNER;
	r->cache = flags & VV_REPO_KEY_CACHE;
	r->uid = uid;
	if ((e = vv_crypto_init()) < 0)
		goto out;
	r->dfd = open(dest, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (r->dfd < 0) {
		e = errno == ELOOP ? VV_EUNSAFE : oserr(errno);
		goto out;
	}
	if ((e = owned_ok(r, r->dfd, dest)) < 0)
		goto out;
	if (fstat(r->dfd, &st) < 0) {
		e = oserr(errno);
		goto out;
	}
	r->uid = st.st_uid;
	r->gid = st.st_gid;
	if ((e = read_at(r->dfd, "config", CONF_MAX, &conf, &len)) < 0) {
		if (e == VV_ENOENT)
			e = VV_ENOTINIT;
		goto out;
	}
	if ((e = vv_repo_config_parse(conf, len, r->id, &nslots)) < 0)
		goto out;
	/* Parsed: 1 or 2, and the config MAC (unlock_conf) covers it, so a
	 * version 2 repository cannot be passed off as version 1. */
	r->version = (uint32_t)conf[8] | (uint32_t)conf[9] << 8 | (uint32_t)conf[10] << 16 |
		     (uint32_t)conf[11] << 24;
	if ((e = subdir(r, r->dfd, "objects", flags & VV_REPO_WRITE, &r->objfd)) < 0 ||
	    (e = subdir(r, r->dfd, "manifests", flags & VV_REPO_WRITE, &r->manfd)) < 0)
		goto out;
	if ((flags & VV_REPO_WRITE) && (e = take_lock(r)) < 0)
		goto out;
	e = unlock_conf(r, conf, len, pass, passlen, flags & VV_REPO_ALLOW_TEST_KDF,
			flags & VV_REPO_KEY_CACHE);
out:
	free(conf);
	if (e < 0)
		vv_repo_close(r);
	else
		*out = r;
	return e;
}

static int flush_pending(struct vv_repo *r);

void vv_repo_close(struct vv_repo *r)
{
	if (!r)
		return;
	if (r->pinit) {
		/* A failed or stopped run: what arrived complete stays. */
		int e;
		pthread_mutex_lock(&r->pmu);
		e = flush_pending(r);
		pthread_mutex_unlock(&r->pmu);
		if (e < 0)
			vv_log(VV_LOG_WARN, "backup: objects of the last batch could not be synced "
			       "(removed; a rerun sends them again)");
		pthread_cond_destroy(&r->pcv);
		pthread_mutex_destroy(&r->pmu);
	}
	if (r->lockfd >= 0)
		close(r->lockfd);
	if (r->objfd >= 0)
		close(r->objfd);
	if (r->manfd >= 0)
		close(r->manfd);
	if (r->dfd >= 0)
		close(r->dfd);
	vv_secure_free(r->key);
	vv_secure_free(r->kman);
	vv_secure_free(r->kobj);
	vv_secure_free(r->kcoll);
	vv_secure_free(r->kpack);
	vv_secure_free(r->kpackn);
	vv_secure_free(r->kgear);
	free(r);
}

const uint8_t *vv_repo_id(const struct vv_repo *r)
{
	return r->id;
}

int vv_repo_objfd(const struct vv_repo *r)
{
	return r->objfd;
}

int vv_repo_manfd(const struct vv_repo *r)
{
	return r->manfd;
}

void vv_repo_owner(const struct vv_repo *r, uint32_t *uid, uint32_t *gid)
{
	*uid = r->uid;
	*gid = r->gid;
}

static void coll_ad(const uint8_t bid[VV_BACKUP_ID_BYTES], uint32_t coll, uint8_t ad[29])
{
	memcpy(ad, "vvbk-coll", 9);
	memcpy(ad + 9, bid, VV_BACKUP_ID_BYTES);
	vv_put_le32(ad + 25, coll);
}

int vv_repo_coll_wrap(struct vv_repo *r, const uint8_t bid[VV_BACKUP_ID_BYTES], uint32_t coll,
		      const uint8_t key[VV_KEY_BYTES], uint8_t out[VV_WRAPPED_BYTES])
{
	uint8_t ad[29];

	coll_ad(bid, coll, ad);
	return vv_key_wrap(out, key, r->kcoll, ad, sizeof(ad));
}

int vv_repo_coll_unwrap(struct vv_repo *r, const uint8_t bid[VV_BACKUP_ID_BYTES], uint32_t coll,
			const uint8_t in[VV_WRAPPED_BYTES], uint8_t key[VV_KEY_BYTES])
{
	uint8_t ad[29];

	coll_ad(bid, coll, ad);
	return vv_key_unwrap(key, in, r->kcoll, ad, sizeof(ad));
}

/* ---- objects ---------------------------------------------------------------- */

int vv_repo_object_name(struct vv_repo *r, const void *bytes, size_t len,
			uint8_t name[VV_REPO_NAME_BYTES])
{
	/* Version 2: HMAC-SHA-256, 2.7x the speed of BLAKE2b here (the
	 * first backup hashes every chunk it reads); version 1: BLAKE2b. */
	if (r->version >= 2)
		return vv_hmac_sha256(name, r->kobj, bytes, len);
	return vv_mac(name, r->kobj, bytes, len);
}

static void obj_names(const uint8_t name[VV_REPO_NAME_BYTES], char xx[3], char hex[65])
{
	vv_hex_encode(hex, name, VV_REPO_NAME_BYTES);
	xx[0] = hex[0];
	xx[1] = hex[1];
	xx[2] = 0;
}

bool vv_repo_object_have(struct vv_repo *r, const uint8_t name[VV_REPO_NAME_BYTES], uint64_t size)
{
	char xx[3], hex[65], rel[80];
	struct stat st;

	obj_names(name, xx, hex);
	snprintf(rel, sizeof(rel), "%s/%s", xx, hex);
	return fstatat(r->objfd, rel, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISREG(st.st_mode) &&
	       (uint64_t)st.st_size == size;
}

/*
 * Objects are made durable in batches: each is written under its tmp name
 * and its write-back started at once (vv_os_writeback); every PEND_MAX
 * objects or PEND_BYTES bytes, and before a manifest or at close, the
 * batch is fsync'ed and only then renamed to its name.  So a file under
 * an object's name is always complete and durable (what a kill or power
 * cut leaves under a name is never torn, and a rerun trusts its size),
 * while the disk writes of a batch overlap each other and the hashing of
 * the next chunks: one fsync per object, each waited for in turn, cost
 * more than the copy itself.  The worker that fills a batch syncs it
 * without r->pmu held (r->fly), so the other workers go on reading,
 * hashing and writing the next batch meanwhile (with the syncs under the
 * lock, every worker stood still for the 32 fsyncs of each batch); at
 * most one batch is in flight, and a full batch waits for it to land.
 */

/*
 * The fsyncs of a batch run on up to SYNC_THREADS threads at once: each
 * waits for the device (on ext4 without a journal, an inode write and a
 * cache flush per file), and concurrent flushes are merged by the block
 * layer, so 32 of them one after another cost several times the wait of
 * 32 together (the metadata packs are written by one thread, with no
 * other worker to overlap their syncs).
 */
#define SYNC_THREADS 4

struct sync_job {
	const int *fds;
	int *res;
	int n, next;
	pthread_mutex_t mu;
};

static void *sync_main(void *arg)
{
	struct sync_job *j = arg;

	for (;;) {
		int i, f;
		pthread_mutex_lock(&j->mu);
		i = j->next++;
		pthread_mutex_unlock(&j->mu);
		if (i >= j->n)
			return NULL;
		f = vv_os_fsync(j->fds[i]);
		j->res[i] = f < 0 ? oserr(-f) : 0;
	}
}

/* fsync the n files fds, up to SYNC_THREADS at once; res[i]: 0 or the
 * error of fds[i]. */
static void sync_fds(const int *fds, int n, int *res)
{
	struct sync_job j = { .fds = fds, .res = res, .n = n };
	pthread_t th[SYNC_THREADS - 1];
	int started = 0;

	pthread_mutex_init(&j.mu, NULL);
	for (int t = 0; t < SYNC_THREADS - 1 && t + 1 < n; t++)
		if (pthread_create(&th[t], NULL, sync_main, &j) == 0)
			started++;
	sync_main(&j);
	for (int t = 0; t < started; t++)
		pthread_join(th[t], NULL);
	pthread_mutex_destroy(&j.mu);
}

/* Sync, close and rename the n objects of b (no lock needed: b is the
 * caller's); marks their directories in dirty[].  The first error. */
static int sync_batch(const struct pend *b, int n, bool dirty[256])
{
	char tmp[80], hex[65], xx[3];
	int fds[PEND_MAX] = { 0 }, res[PEND_MAX] = { 0 }, e = 0;

	for (int i = 0; i < n; i++)
		fds[i] = b[i].fd;
	sync_fds(fds, n, res);
	for (int i = 0; i < n; i++) {
		const struct pend *p = &b[i];
		int f = res[i];
		obj_names(p->name, xx, hex);
		snprintf(tmp, sizeof(tmp), ".tmp-%s", hex);
		close(p->fd);
		if (f == 0 && renameat(p->dfd, tmp, p->dfd, hex) < 0)
			f = oserr(errno);
		if (f < 0) {
			unlinkat(p->dfd, tmp, 0);
			if (e == 0)
				e = f;
		} else {
			dirty[p->name[0]] = true;
		}
		close(p->dfd);
	}
	return e;
}

/* Under r->pmu: mark the directories a synced batch renamed into. */
static void batch_landed(struct vv_repo *r, const bool dirty[256])
{
	for (int i = 0; i < 256; i++)
		if (dirty[i])
			r->dirty[i] = r->objdirty = true;
}

/* Under r->pmu: wait for the batch in flight, then sync the pending one. */
static int flush_pending(struct vv_repo *r)
{
	bool dirty[256] = { false };
	int e;

	while (r->nfly)
		pthread_cond_wait(&r->pcv, &r->pmu);
	e = sync_batch(r->pend, r->npend, dirty);
	batch_landed(r, dirty);
	r->npend = 0;
	r->pbytes = 0;
	pthread_cond_broadcast(&r->pcv);
	return e;
}

static bool pend_has(const struct pend *b, int n, const uint8_t name[VV_REPO_NAME_BYTES])
{
	for (int i = 0; i < n; i++)
		if (memcmp(b[i].name, name, VV_REPO_NAME_BYTES) == 0)
			return true;
	return false;
}

int vv_repo_object_put(struct vv_repo *r, const uint8_t name[VV_REPO_NAME_BYTES], const void *bytes,
		       size_t len)
{
	char xx[3], hex[65], tmp[80];
	int dfd = -1, fd, e;

	obj_names(name, xx, hex);
	pthread_mutex_lock(&r->pmu);
	if (pend_has(r->pend, r->npend, name) || pend_has(r->fly, r->nfly, name)) {
		/* The same bytes twice in one batch: written once. */
		pthread_mutex_unlock(&r->pmu);
		return 0;
	}
	pthread_mutex_unlock(&r->pmu);
	if ((e = subdir(r, r->objfd, xx, true, &dfd)) < 0)
		return e;
	snprintf(tmp, sizeof(tmp), ".tmp-%s", hex);
	unlinkat(dfd, tmp, 0);
	fd = openat(dfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0) {
		e = oserr(errno);
		close(dfd);
		return e;
	}
	give(r, fd);
	if ((e = vv_repo_pwrite_file(fd, bytes, len)) < 0) {
		close(fd);
		unlinkat(dfd, tmp, 0);
		close(dfd);
		return e;
	}
	pthread_mutex_lock(&r->pmu);
	while (r->npend == PEND_MAX)           /* full, waiting for the one in flight */
		pthread_cond_wait(&r->pcv, &r->pmu);
	r->pend[r->npend].dfd = dfd;
	r->pend[r->npend].fd = fd;
	memcpy(r->pend[r->npend].name, name, VV_REPO_NAME_BYTES);
	r->npend++;
	r->pbytes += len;
	e = 0;
	while (r->npend == PEND_MAX || r->pbytes >= PEND_BYTES) {
		bool dirty[256] = { false };
		int n;
		if (r->nfly) {
			pthread_cond_wait(&r->pcv, &r->pmu);
			continue;                  /* another may have taken it */
		}
		memcpy(r->fly, r->pend, (size_t)r->npend * sizeof(r->pend[0]));
		n = r->nfly = r->npend;
		r->npend = 0;
		r->pbytes = 0;
		pthread_cond_broadcast(&r->pcv);
		pthread_mutex_unlock(&r->pmu);
		e = sync_batch(r->fly, n, dirty);  /* r->fly is ours until nfly = 0 */
		pthread_mutex_lock(&r->pmu);
		batch_landed(r, dirty);
		r->nfly = 0;
		pthread_cond_broadcast(&r->pcv);
		break;
	}
	pthread_mutex_unlock(&r->pmu);
	return e;
}

int vv_repo_objects_sync(struct vv_repo *r)
{
	char xx[3], hex[65];
	uint8_t nm[VV_REPO_NAME_BYTES] = { 0 };
	int fds[64], res[64], n = 0, e;

	pthread_mutex_lock(&r->pmu);
	e = flush_pending(r);
	pthread_mutex_unlock(&r->pmu);
	if (e < 0)
		return e;
	/* The directories the batches renamed into, 64 at a time, their
	 * fsyncs side by side (a first backup dirties all 256). */
	for (int i = 0; i <= 256 && e == 0; i++) {
		if (i < 256 && r->dirty[i]) {
			nm[0] = (uint8_t)i;
			obj_names(nm, xx, hex);
			if ((e = subdir(r, r->objfd, xx, false, &fds[n])) < 0)
				break;
			n++;
		}
		if (n == 64 || (i == 256 && n)) {
			sync_fds(fds, n, res);
			for (int k = 0; k < n; k++) {
				if (res[k] < 0 && e == 0)
					e = res[k];
				close(fds[k]);
			}
			n = 0;
		}
	}
	for (int k = 0; k < n; k++)
		close(fds[k]);
	if (e < 0)
		return e;
	memset(r->dirty, 0, sizeof(r->dirty));
	if (r->objdirty && fsync(r->objfd) < 0)
		return oserr(errno);
	r->objdirty = false;
	return 0;
}

int vv_repo_object_load(struct vv_repo *r, const uint8_t name[VV_REPO_NAME_BYTES], uint8_t **buf,
			size_t *cap, size_t *len)
{
	char xx[3], hex[65];
	struct stat st;
	uint8_t *b;
	int dfd = -1, fd, e;

	obj_names(name, xx, hex);
	if ((e = subdir(r, r->objfd, xx, false, &dfd)) < 0)
		return e;
	fd = openat(dfd, hex, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	e = fd < 0 ? (errno == ELOOP ? VV_EUNSAFE : oserr(errno)) : 0;
	close(dfd);
	if (e < 0)
		return e;
	if (fstat(fd, &st) < 0)
		e = oserr(errno);
	else if (!S_ISREG(st.st_mode))
		e = VV_EUNSAFE;
	else if ((uint64_t)st.st_size > VV_REPO_OBJECT_MAX)
		e = VV_EFBIG;
	else if (*cap < (size_t)st.st_size || !*buf) {
		free(*buf);
		*cap = 0;
		if (!(*buf = b = vv_repo_buf_alloc((size_t)st.st_size)))
			e = VV_ENOMEM;
		else
			*cap = (size_t)st.st_size;
	}
	if (e == 0 && (e = vv_repo_pread_file(fd, *buf, (size_t)st.st_size)) == 0)
		*len = (size_t)st.st_size;
	close(fd);
	return e;
}

int vv_repo_object_read(struct vv_repo *r, const uint8_t name[VV_REPO_NAME_BYTES], uint8_t **out,
			size_t *len)
{
	uint8_t got[VV_REPO_NAME_BYTES];
	size_t cap = 0;
	int e;

	*out = NULL;
	if ((e = vv_repo_object_load(r, name, out, &cap, len)) < 0) {
		free(*out);
		*out = NULL;
		return e;
	}
	if ((e = vv_repo_object_name(r, *out, *len, got)) < 0 || !vv_memeq_ct(got, name, sizeof(got))) {
		free(*out);
		*out = NULL;
		return e < 0 ? e : VV_ECORRUPT;
	}
	return 0;
}

/* ---- manifests: the in-memory form ------------------------------------------ */

void vv_manifest_free(struct vv_manifest *m)
{
	for (size_t i = 0; i < m->ninodes; i++)
		free(m->inodes[i].data);
	for (size_t i = 0; i < m->ndirents; i++)
		free(m->dirents[i].name);
	for (size_t i = 0; i < m->nxattrs; i++) {
		free(m->xattrs[i].name);
		free(m->xattrs[i].val);
	}
	if (m->colls)
		vv_memzero(m->colls, m->ncolls * sizeof(*m->colls));
	free(m->colls);
	free(m->objs);
	free(m->inodes);
	free(m->dirents);
	free(m->xattrs);
	free(m->extents);
	free(m->packs);
	memset(m, 0, sizeof(*m));
}

#define GROW(m, arr, n, cap) VV_GROW((m)->arr, (m)->n, (m)->cap)

static void *dupmem(const void *p, size_t n, bool nul)
{
	uint8_t *d = malloc(n + (nul ? 1 : 0) + (n == 0));

	if (d) {
		if (n)
			memcpy(d, p, n);
		if (nul)
			d[n] = 0;
	}
	return d;
}

int vv_manifest_add_inode(struct vv_manifest *m, const struct vv_inode_row *r, const void *data,
			  size_t len)
{
	struct vv_bk_inode *in;

	if (len > UINT32_MAX)
		return VV_EFBIG;
	if (GROW(m, inodes, ninodes, capi) < 0)
		return VV_ENOMEM;
	in = &m->inodes[m->ninodes];
	in->r = *r;
	in->datalen = (uint32_t)len;
	in->data = NULL;
	if (len && !(in->data = dupmem(data, len, false)))
		return VV_ENOMEM;
	m->ninodes++;
	return 0;
}

int vv_manifest_add_dirent(struct vv_manifest *m, uint64_t parent, const char *name, uint64_t id,
			   uint64_t ino, uint32_t mode)
{
	struct vv_bk_dirent *d;
	size_t nl = strlen(name);

	if (nl == 0 || nl > 255)
		return VV_ECORRUPT;
	if (GROW(m, dirents, ndirents, capd) < 0)
		return VV_ENOMEM;
	d = &m->dirents[m->ndirents];
	*d = (struct vv_bk_dirent){ .parent = parent, .id = id, .ino = ino, .mode = mode };
	if (!(d->name = dupmem(name, nl, true)))
		return VV_ENOMEM;
	m->ndirents++;
	return 0;
}

int vv_manifest_add_xattr(struct vv_manifest *m, uint64_t ino, const char *name, const void *val,
			  size_t len)
{
	struct vv_bk_xattr *x;
	size_t nl = strlen(name);

	if (nl == 0 || nl > 255 || len > UINT32_MAX)
		return VV_ECORRUPT;
	if (GROW(m, xattrs, nxattrs, capx) < 0)
		return VV_ENOMEM;
	x = &m->xattrs[m->nxattrs];
	*x = (struct vv_bk_xattr){ .ino = ino, .vlen = (uint32_t)len };
	if (!(x->name = dupmem(name, nl, true)) || !(x->val = dupmem(val, len, false))) {
		free(x->name);
		return VV_ENOMEM;
	}
	m->nxattrs++;
	return 0;
}

int vv_manifest_add_extent(struct vv_manifest *m, uint64_t ino, const struct vv_extent *e)
{
	if (GROW(m, extents, nextents, cape) < 0)
		return VV_ENOMEM;
	m->extents[m->nextents++] = (struct vv_bk_extent){ .ino = ino, .e = *e };
	return 0;
}

int vv_manifest_add_coll(struct vv_manifest *m, uint32_t id, const uint8_t wrapped[VV_WRAPPED_BYTES])
{
	if (GROW(m, colls, ncolls, capc) < 0)
		return VV_ENOMEM;
	m->colls[m->ncolls].id = id;
	memcpy(m->colls[m->ncolls].wrapped, wrapped, VV_WRAPPED_BYTES);
	m->ncolls++;
	return 0;
}

int vv_manifest_add_object(struct vv_manifest *m, const uint8_t *chunk, const uint8_t *name,
			   uint64_t size)
{
	struct vv_bk_object *o;

	if (GROW(m, objs, nobjs, capo) < 0)
		return VV_ENOMEM;
	o = &m->objs[m->nobjs++];
	memcpy(o->chunk, chunk, VV_CHUNK_ID_BYTES);
	memcpy(o->name, name, VV_REPO_NAME_BYTES);
	o->size = size;
	return 0;
}

/* ---- manifests: the body's bytes --------------------------------------------- */

/* A growing output buffer; err sticks.  With ref set (and p NULL), the
 * bytes are compared with ref's instead of stored, until one differs:
 * then ref's equal prefix becomes p (ob_own) and storing goes on.  An
 * unchanged vault's rows thus cost no fresh megabytes (page faults) and
 * no second pass to compare them with the last run's. */
struct obuf {
	uint8_t *p;
	size_t len, cap;
	int err;
	const uint8_t *ref;
	size_t reflen;
	size_t refsame;                    /* ob_own: bytes equal to ref's when it stopped */
};

/* Stop comparing: the bytes so far (ref's) into p, of capacity cap. */
static void ob_own(struct obuf *o)
{
	size_t nc = o->cap > o->len ? o->cap : o->len;

	if (!o->ref)
		return;
	o->refsame = o->len;
	if (!(o->p = malloc(nc ? nc : 1))) {
		o->err = VV_ENOMEM;
		o->cap = 0;
	} else {
		memcpy(o->p, o->ref, o->len);
		o->cap = nc;
	}
	o->ref = NULL;
}

static void ob_put(struct obuf *o, const void *v, size_t n)
{
	if (o->err || n == 0)
		return;            /* (v may then be NULL: no memcmp/memcpy of it) */
	if (o->ref) {
		if (n <= o->reflen - o->len && memcmp(o->ref + o->len, v, n) == 0) {
			o->len += n;
			return;
		}
		ob_own(o);
		if (o->err)
			return;
	}
	if (n > o->cap - o->len) {
		size_t nc = o->cap ? o->cap : 65536;
		uint8_t *np;
		while (nc - o->len < n) {
			if (nc > VV_REPO_MANIFEST_MAX) {
				o->err = VV_EFBIG;
				return;
			}
			nc *= 2;
		}
		if (!(np = realloc(o->p, nc))) {
			o->err = VV_ENOMEM;
			return;
		}
		o->p = np;
		o->cap = nc;
	}
	if (n)
		memcpy(o->p + o->len, v, n);
	o->len += n;
}

static void ob_u16(struct obuf *o, uint16_t v)
{
	uint8_t b[2] = { (uint8_t)v, (uint8_t)(v >> 8) };

	ob_put(o, b, 2);
}

static void ob_u32(struct obuf *o, uint32_t v)
{
	uint8_t b[4];

	vv_put_le32(b, v);
	ob_put(o, b, 4);
}

static void ob_u64(struct obuf *o, uint64_t v)
{
	uint8_t b[8];

	vv_put_le64(b, v);
	ob_put(o, b, 8);
}

static void ob_str(struct obuf *o, const char *s)
{
	size_t n = strnlen(s, 255);

	ob_u16(o, (uint16_t)n);
	ob_put(o, s, n);
}

/* The body's fields up to and with the collections: what is this
 * backup's own (ids, times, names, keys wrapped with a fresh nonce). */
static void enc_head(struct obuf *o, const struct vv_manifest *m)
{
	ob_put(o, BODY_MAGIC, 8);
	ob_put(o, m->id, VV_BACKUP_ID_BYTES);
	ob_put(o, m->store_id, 16);
	ob_u64(o, (uint64_t)m->info.created);
	ob_u64(o, (uint64_t)m->info.snap_created);
	ob_str(o, m->info.snapshot);
	ob_str(o, m->info.tag);
	ob_u64(o, m->info.files);
	ob_u64(o, m->info.bytes);
	ob_u32(o, m->root_coll);
	ob_u32(o, (uint32_t)m->ncolls);
	for (size_t i = 0; i < m->ncolls; i++) {
		ob_u32(o, m->colls[i].id);
		ob_put(o, m->colls[i].wrapped, VV_WRAPPED_BYTES);
	}
}

/* The bytes enc_rows writes for m (SIZE_MAX: more than fits). */
static size_t rows_size(const struct vv_manifest *m)
{
	size_t n = 8 + m->nobjs * (VV_CHUNK_ID_BYTES + VV_REPO_NAME_BYTES + 8) + 8 + 8 + 8 + 8 + 4;

	for (size_t i = 0; i < m->ninodes; i++)
		n += 8 + 8 + 4 * 4 + 8 * 6 + 4 + VV_OBJID_BYTES + 8 + 4 + m->inodes[i].datalen;
	for (size_t i = 0; i < m->ndirents; i++)
		n += 8 * 3 + 4 + 2 + strnlen(m->dirents[i].name, 255);
	for (size_t i = 0; i < m->nxattrs; i++)
		n += 8 + 2 + strnlen(m->xattrs[i].name, 255) + 4 + m->xattrs[i].vlen;
	if (m->nextents > (SIZE_MAX - n) / (8 + 8 + VV_CHUNK_ID_BYTES + 12))
		return SIZE_MAX;
	return n + m->nextents * (8 + 8 + VV_CHUNK_ID_BYTES + 12);
}

/* The rows (objects to extents) and END!: the same bytes for the same
 * metadata, whatever the backup.  The buffer is sized once (rows_size):
 * megabytes of rows are not copied again as it grows. */
static void enc_rows(struct obuf *o, const struct vv_manifest *m)
{
	size_t need = rows_size(m);

	if (o->err)
		return;
	if (need > VV_REPO_MANIFEST_MAX) {   /* could not be read back */
		o->err = VV_EFBIG;
		return;
	}
	if (o->ref) {
		o->cap = o->len + need;    /* what ob_own allocates */
	} else if (need > o->cap - o->len) {
		uint8_t *np = realloc(o->p, o->len + need);
		if (!np) {
			o->err = VV_ENOMEM;
			return;
		}
		o->p = np;
		o->cap = o->len + need;
	}
	ob_u64(o, m->nobjs);
	for (size_t i = 0; i < m->nobjs; i++) {
		ob_put(o, m->objs[i].chunk, VV_CHUNK_ID_BYTES);
		ob_put(o, m->objs[i].name, VV_REPO_NAME_BYTES);
		ob_u64(o, m->objs[i].size);
	}
	ob_u64(o, m->ninodes);
	for (size_t i = 0; i < m->ninodes; i++) {
		const struct vv_inode_row *r = &m->inodes[i].r;
		ob_u64(o, r->ino);
		ob_u64(o, r->gen);
		ob_u32(o, r->mode);
		ob_u32(o, r->uid);
		ob_u32(o, r->gid);
		ob_u32(o, r->nlink);
		ob_u64(o, r->size);
		ob_u64(o, r->rdev);
		ob_u64(o, (uint64_t)r->atime);
		ob_u64(o, (uint64_t)r->mtime);
		ob_u64(o, (uint64_t)r->ctime);
		ob_u64(o, r->parent);
		ob_u32(o, r->coll);
		ob_put(o, r->objid, VV_OBJID_BYTES);
		ob_u64(o, r->stored);
		ob_u32(o, m->inodes[i].datalen);
		ob_put(o, m->inodes[i].data, m->inodes[i].datalen);
	}
	ob_u64(o, m->ndirents);
	for (size_t i = 0; i < m->ndirents; i++) {
		const struct vv_bk_dirent *d = &m->dirents[i];
		ob_u64(o, d->parent);
		ob_u64(o, d->id);
		ob_u64(o, d->ino);
		ob_u32(o, d->mode);
		ob_str(o, d->name);
	}
	ob_u64(o, m->nxattrs);
	for (size_t i = 0; i < m->nxattrs; i++) {
		const struct vv_bk_xattr *x = &m->xattrs[i];
		ob_u64(o, x->ino);
		ob_str(o, x->name);
		ob_u32(o, x->vlen);
		ob_put(o, x->val, x->vlen);
	}
	ob_u64(o, m->nextents);
	for (size_t i = 0; i < m->nextents; i++) {
		const struct vv_bk_extent *e = &m->extents[i];
		ob_u64(o, e->ino);
		ob_u64(o, e->e.fblock);
		ob_put(o, e->e.chunk_id, VV_CHUNK_ID_BYTES);
		ob_u32(o, e->e.off);
		ob_u32(o, e->e.len);
		ob_u32(o, e->e.slot);
	}
	ob_put(o, "END!", 4);
}

int vv_manifest_encode(const struct vv_manifest *m, uint8_t **out, size_t *outlen)
{
	struct obuf o = { 0 };
	static const uint8_t zero[BODY_PAD];

	enc_head(&o, m);
	enc_rows(&o, m);
	/* Pad, so the sealed size tells only the metadata's size to 4 KiB. */
	ob_put(&o, zero, (BODY_PAD - o.len % BODY_PAD) % BODY_PAD);
	if (o.err) {
		free(o.p);
		return o.err;
	}
	*out = o.p;
	*outlen = o.len;
	return 0;
}

static int get_str(struct vv_rbuf *b, char *out, size_t cap, bool need)
{
	uint16_t n;

	if (vv_rbuf_get_u16(b, &n) < 0 || n >= cap || (need && n == 0))
		return VV_ECORRUPT;
	if (vv_rbuf_get_bytes(b, out, n) < 0 || memchr(out, 0, n))
		return VV_ECORRUPT;
	out[n] = 0;
	return 0;
}

/* A count of entries of at least min bytes each that the rest can hold. */
static int get_count(struct vv_rbuf *b, size_t min, size_t *n)
{
	uint64_t v;

	if (vv_rbuf_get_u64(b, &v) < 0 || v > vv_rbuf_left(b) / min)
		return VV_ECORRUPT;
	*n = (size_t)v;
	return 0;
}

static int decode_head(struct vv_rbuf *b, struct vv_manifest *m)
{
	uint8_t magic[8];
	uint32_t u32;
	uint64_t u64;
	int e;

	if (vv_rbuf_get_bytes(b, magic, 8) < 0 || memcmp(magic, BODY_MAGIC, 8) != 0 ||
	    vv_rbuf_get_bytes(b, m->id, VV_BACKUP_ID_BYTES) < 0 || vv_rbuf_get_bytes(b, m->store_id, 16) < 0)
		return VV_ECORRUPT;
	vv_hex_encode(m->info.id, m->id, VV_BACKUP_ID_BYTES);
	vv_hex_encode(m->info.store_id, m->store_id, 16);
	if (vv_rbuf_get_u64(b, &u64) < 0)
		return VV_ECORRUPT;
	m->info.created = (int64_t)u64;
	if (vv_rbuf_get_u64(b, &u64) < 0)
		return VV_ECORRUPT;
	m->info.snap_created = (int64_t)u64;
	if (get_str(b, m->info.snapshot, sizeof(m->info.snapshot), false) < 0 ||
	    get_str(b, m->info.tag, sizeof(m->info.tag), false) < 0 ||
	    vv_rbuf_get_u64(b, &m->info.files) < 0 || vv_rbuf_get_u64(b, &m->info.bytes) < 0 ||
	    vv_rbuf_get_u32(b, &m->root_coll) < 0 || vv_rbuf_get_u32(b, &u32) < 0 ||
	    u32 > vv_rbuf_left(b) / (4 + VV_WRAPPED_BYTES))
		return VV_ECORRUPT;
	for (uint32_t i = 0; i < u32; i++) {
		uint8_t w[VV_WRAPPED_BYTES];
		uint32_t id;
		if (vv_rbuf_get_u32(b, &id) < 0 || vv_rbuf_get_bytes(b, w, sizeof(w)) < 0)
			return VV_ECORRUPT;
		if ((e = vv_manifest_add_coll(m, id, w)) < 0)
			return e;
	}
	return 0;
}

/* The rows and END!. */
static int decode_rows(struct vv_rbuf *b, struct vv_manifest *m)
{
	uint8_t magic[4];
	char name[256];
	uint32_t u32;
	uint64_t u64;
	size_t n;
	int e;

	if (get_count(b, VV_CHUNK_ID_BYTES + VV_REPO_NAME_BYTES + 8, &n) < 0)
		return VV_ECORRUPT;
	for (size_t i = 0; i < n; i++) {
		const uint8_t *c, *nm;
		if (vv_rbuf_get_ptr(b, &c, VV_CHUNK_ID_BYTES) < 0 || vv_rbuf_get_ptr(b, &nm, VV_REPO_NAME_BYTES) < 0 ||
		    vv_rbuf_get_u64(b, &u64) < 0 || u64 > VV_REPO_OBJECT_MAX)
			return VV_ECORRUPT;
		if ((e = vv_manifest_add_object(m, c, nm, u64)) < 0)
			return e;
	}
	m->info.objects = m->nobjs;
	for (size_t i = 0; i < m->nobjs; i++)
		m->info.stored += m->objs[i].size;
	/* An inode row without bytes is 112: a bound of 120 refused rows of
	 * many empty inodes with little after them (trashed empty files). */
	if (get_count(b, 8 + 8 + 4 * 4 + 8 * 6 + 4 + VV_OBJID_BYTES + 8 + 4, &n) < 0)
		return VV_ECORRUPT;
	for (size_t i = 0; i < n; i++) {
		struct vv_inode_row r;
		const uint8_t *data;
		if (vv_rbuf_get_u64(b, &r.ino) < 0 || vv_rbuf_get_u64(b, &r.gen) < 0 ||
		    vv_rbuf_get_u32(b, &r.mode) < 0 || vv_rbuf_get_u32(b, &r.uid) < 0 ||
		    vv_rbuf_get_u32(b, &r.gid) < 0 || vv_rbuf_get_u32(b, &r.nlink) < 0 ||
		    vv_rbuf_get_u64(b, &r.size) < 0 || vv_rbuf_get_u64(b, &r.rdev) < 0 ||
		    vv_rbuf_get_u64(b, (uint64_t *)&r.atime) < 0 || vv_rbuf_get_u64(b, (uint64_t *)&r.mtime) < 0 ||
		    vv_rbuf_get_u64(b, (uint64_t *)&r.ctime) < 0 || vv_rbuf_get_u64(b, &r.parent) < 0 ||
		    vv_rbuf_get_u32(b, &r.coll) < 0 || vv_rbuf_get_bytes(b, r.objid, VV_OBJID_BYTES) < 0 ||
		    vv_rbuf_get_u64(b, &r.stored) < 0 || vv_rbuf_get_u32(b, &u32) < 0 ||
		    vv_rbuf_get_ptr(b, &data, u32) < 0)
			return VV_ECORRUPT;
		if (r.ino == 0 || r.ino > VV_SNAP_INO_MAX)
			return VV_ECORRUPT;
		if ((e = vv_manifest_add_inode(m, &r, data, u32)) < 0)
			return e;
	}
	if (get_count(b, 31, &n) < 0)
		return VV_ECORRUPT;
	for (size_t i = 0; i < n; i++) {
		uint64_t parent, id, ino;
		uint32_t mode;
		if (vv_rbuf_get_u64(b, &parent) < 0 || vv_rbuf_get_u64(b, &id) < 0 ||
		    vv_rbuf_get_u64(b, &ino) < 0 || vv_rbuf_get_u32(b, &mode) < 0 ||
		    get_str(b, name, sizeof(name), true) < 0 || strchr(name, '/') ||
		    !strcmp(name, ".") || !strcmp(name, ".."))
			return VV_ECORRUPT;
		if ((e = vv_manifest_add_dirent(m, parent, name, id, ino, mode)) < 0)
			return e;
	}
	if (get_count(b, 15, &n) < 0)
		return VV_ECORRUPT;
	for (size_t i = 0; i < n; i++) {
		const uint8_t *val;
		uint64_t ino;
		if (vv_rbuf_get_u64(b, &ino) < 0 || get_str(b, name, sizeof(name), true) < 0 ||
		    vv_rbuf_get_u32(b, &u32) < 0 || vv_rbuf_get_ptr(b, &val, u32) < 0)
			return VV_ECORRUPT;
		if ((e = vv_manifest_add_xattr(m, ino, name, val, u32)) < 0)
			return e;
	}
	if (get_count(b, 60, &n) < 0)
		return VV_ECORRUPT;
	for (size_t i = 0; i < n; i++) {
		struct vv_extent x;
		uint64_t ino;
		if (vv_rbuf_get_u64(b, &ino) < 0 || vv_rbuf_get_u64(b, &x.fblock) < 0 ||
		    vv_rbuf_get_bytes(b, x.chunk_id, VV_CHUNK_ID_BYTES) < 0 || vv_rbuf_get_u32(b, &x.off) < 0 ||
		    vv_rbuf_get_u32(b, &x.len) < 0 || vv_rbuf_get_u32(b, &x.slot) < 0)
			return VV_ECORRUPT;
		if ((e = vv_manifest_add_extent(m, ino, &x)) < 0)
			return e;
	}
	if (vv_rbuf_get_bytes(b, magic, 4) < 0 || memcmp(magic, "END!", 4) != 0)
		return VV_ECORRUPT;
	return 0;
}

/* Zero padding to the end. */
static int decode_pad(struct vv_rbuf *b)
{
	while (vv_rbuf_left(b)) {
		uint8_t z;
		if (vv_rbuf_get_u8(b, &z) < 0 || z)
			return VV_ECORRUPT;
	}
	return 0;
}

static int decode(struct vv_rbuf *b, struct vv_manifest *m)
{
	int e;

	if ((e = decode_head(b, m)) < 0 || (e = decode_rows(b, m)) < 0)
		return e;
	return decode_pad(b);
}

int vv_manifest_decode(const uint8_t *buf, size_t len, struct vv_manifest *m)
{
	struct vv_rbuf b;
	int e;

	memset(m, 0, sizeof(*m));
	vv_rbuf_init(&b, buf, len);
	if ((e = decode(&b, m)) < 0)
		vv_manifest_free(m);
	return e;
}

/* ---- manifests: metadata packs (version 2) ------------------------------------ */

/*
 * A version 2 manifest holds this backup's own fields (ids, times, names,
 * wrapped keys) and a list of packs; the rows (objects to extents, END!:
 * the same bytes for the same metadata) are cut into pieces at
 * content-defined boundaries (a gear hash over the bytes, its table keyed,
 * so where a cut falls tells nothing of the bytes around it), and each
 * piece is sealed deterministically (XChaCha20-Poly1305, the nonce a keyed
 * hash of the piece: equal pieces give equal packs under one repository
 * key, and nothing else repeats a nonce) and stored as an object named
 * like a chunk's.  An unchanged vault gives the same pieces, so a re-run
 * writes only its small manifest; a change re-seals the pieces it falls in.
 */
static int gear_table(struct vv_repo *r, uint64_t g[256])
{
	for (uint32_t i = 0; i < 256; i++) {
		uint8_t in[4], out[VV_MAC_BYTES];
		vv_put_le32(in, i);
		if (vv_mac(out, r->kgear, in, sizeof(in)) < 0)
			return VV_ECRYPTO;
		g[i] = vv_get_le64(out);
	}
	return 0;
}

/* Length of the next piece of p (len bytes left): cut where the top 16
 * bits of the hash of the last 64 bytes are zero, between PACK_MIN and
 * PACK_MAX. */
static size_t pack_cut(const uint64_t g[256], const uint8_t *p, size_t len)
{
	size_t max = len < PACK_MAX ? len : PACK_MAX;
	uint64_t h = 0;

	if (len <= PACK_MIN)
		return len;
	for (size_t i = PACK_MIN - 64; i < max; i++) {
		h = (h << 1) + g[p[i]];
		if (i + 1 >= PACK_MIN && !(h & ((uint64_t)PACK_MASK << 48)))
			return i + 1;
	}
	return max;
}

static size_t pack_size(size_t plen)
{
	size_t n = 4 + plen;

	return PACK_HDR + n + (PACK_PAD - n % PACK_PAD) % PACK_PAD + VV_TAG_BYTES;
}

static void pack_ad(const uint8_t repo_id[VV_REPO_ID_BYTES], uint8_t ad[8 + VV_REPO_ID_BYTES])
{
	memcpy(ad, PACK_MAGIC, 8);
	memcpy(ad + 8, repo_id, VV_REPO_ID_BYTES);
}

/* Seal piece p (len bytes, hash ph) into *out (vv_repo_buf_alloc'd). */
static int pack_seal(struct vv_repo *r, const uint8_t *p, size_t len, const uint8_t ph[VV_MAC_BYTES],
		     uint8_t **out, size_t *outlen)
{
	size_t flen = pack_size(len), ptlen = flen - PACK_HDR - VV_TAG_BYTES;
	uint8_t ad[8 + VV_REPO_ID_BYTES], *pt = calloc(1, ptlen), *f = vv_repo_buf_alloc(flen);
	int e = VV_ENOMEM;

	if (!pt || !f)
		goto out;
	vv_put_le32(pt, (uint32_t)len);
	memcpy(pt + 4, p, len);
	memcpy(f, PACK_MAGIC, 8);
	memcpy(f + 8, ph, VV_XNONCE_BYTES);
	pack_ad(r->id, ad);
	if ((e = vv_xchacha_seal(f + PACK_HDR, f + PACK_HDR + ptlen, pt, ptlen, ad, sizeof(ad), f + 8,
				 r->kpack)) < 0)
		goto out;
	*out = f;
	*outlen = flen;
	f = NULL;
out:
	if (pt)
		vv_memzero(pt, ptlen);
	free(pt);
	free(f);
	return e;
}

/* A pack's bytes (buffered: small, and read by every list and index),
 * checked against its name: VV_ENOENT, VV_ECORRUPT. */
static int pack_read(struct vv_repo *r, const struct vv_bk_pack *pk, const char *hex, uint8_t **out,
		     size_t *len)
{
	uint8_t got[VV_REPO_NAME_BYTES];
	char xx[3] = { hex[0], hex[1], 0 };
	int dfd = -1, e;

	*out = NULL;
	if ((e = subdir(r, r->objfd, xx, false, &dfd)) < 0)
		return e;
	e = read_at_how(dfd, hex, pk->size, false, out, len);
	close(dfd);
	if (e == VV_EFBIG)
		e = VV_ECORRUPT;
	if (e == 0 && ((e = vv_repo_object_name(r, *out, *len, got)) < 0 ||
		       !vv_memeq_ct(got, pk->name, sizeof(got)))) {
		free(*out);
		*out = NULL;
		e = e < 0 ? e : VV_ECORRUPT;
	}
	return e;
}

int vv_repo_pack_unseal(const uint8_t key[VV_KEY_BYTES], const uint8_t repo_id[VV_REPO_ID_BYTES],
			const struct vv_bk_pack *pk, const uint8_t *f, size_t len, uint8_t *piece)
{
	uint8_t ad[8 + VV_REPO_ID_BYTES], *pt = NULL;
	size_t ptlen = 0;
	int e = VV_ECORRUPT;

	if (len != pk->size || len < PACK_HDR + 4 + VV_TAG_BYTES || memcmp(f, PACK_MAGIC, 8) != 0)
		return VV_ECORRUPT;
	ptlen = len - PACK_HDR - VV_TAG_BYTES;
	if (!(pt = malloc(ptlen)))
		return VV_ENOMEM;
	pack_ad(repo_id, ad);
	if (vv_xchacha_open(pt, f + PACK_HDR, ptlen, f + PACK_HDR + ptlen, ad, sizeof(ad), f + 8, key) < 0)
		goto out;
	/* Authenticated from here on, still untrusted (a key holder's). */
	if (vv_get_le32(pt) != pk->plen || pk->plen > ptlen - 4)
		goto out;
	for (size_t i = 4 + pk->plen; i < ptlen; i++)
		if (pt[i])
			goto out;
	memcpy(piece, pt + 4, pk->plen);
	e = 0;
out:
	vv_memzero(pt, ptlen);
	free(pt);
	return e;
}

/* decode_v2's pack source: the piece pack pk holds, from its object,
 * which must hash to its name, have its size and open. */
static int pack_open(void *ctx, const struct vv_bk_pack *pk, uint8_t *piece)
{
	struct vv_repo *r = ctx;
	uint8_t *f = NULL;
	char hex[65];
	size_t len = 0;
	int e;

	vv_hex_encode(hex, pk->name, VV_REPO_NAME_BYTES);
	if ((e = pack_read(r, pk, hex, &f, &len)) < 0) {
		snprintf(r->why, sizeof(r->why), "metadata pack %s: %s", hex, e == VV_ENOENT ? "missing" :
			 e == VV_ECORRUPT ? "altered: its bytes do not match its name" : vv_strerror(e));
		return e == VV_ENOENT ? VV_ECORRUPT : e;
	}
	if ((e = vv_repo_pack_unseal(r->kpack, r->id, pk, f, len, piece)) == VV_ECORRUPT)
		snprintf(r->why, sizeof(r->why), "metadata pack %s: altered or not of this repository "
			 "(does not authenticate)", hex);
	free(f);
	return e;
}

/* The pack of one piece: the cached one when its object is there, else
 * sealed and written (unless an earlier run wrote the same bytes). */
static int pack_put(struct vv_repo *r, const uint8_t *p, size_t len, struct vv_bk_pack *pk)
{
	uint8_t ph[VV_MAC_BYTES], *f = NULL;
	const struct vv_bk_pack *c;
	size_t flen = 0;
	bool hit = false;
	int e;

	if ((e = vv_hmac_sha256(ph, r->kpackn, p, len)) < 0)
		return e;
	if (r->cache) {
		pthread_mutex_lock(&kc_mu);
		if ((c = mc_pack_find(mc_of(r->id), ph))) {
			*pk = *c;
			hit = true;
		}
		pthread_mutex_unlock(&kc_mu);
		if (hit && pk->plen == len && vv_repo_object_have(r, pk->name, pk->size))
			return 0;
	}
	if ((e = pack_seal(r, p, len, ph, &f, &flen)) < 0)
		return e;
	pk->size = flen;
	pk->plen = (uint32_t)len;
	if ((e = vv_repo_object_name(r, f, flen, pk->name)) == 0 && !vv_repo_object_have(r, pk->name, flen)) {
		e = vv_repo_object_put(r, pk->name, f, flen);
		r->pk_written++;
		r->pk_bytes += flen;
	}
	free(f);
	if (e == 0 && r->cache) {
		pthread_mutex_lock(&kc_mu);
		mc_pack_add(mc_of(r->id), ph, pk);
		pthread_mutex_unlock(&kc_mu);
	}
	return e;
}

static int cmp_obj_chunk(const void *a, const void *b)
{
	return memcmp(((const struct vv_bk_object *)a)->chunk, ((const struct vv_bk_object *)b)->chunk,
		      VV_CHUNK_ID_BYTES);
}

/* The version 2 body of m: head, packs (written as needed), END!, pad. */
static int encode_v2(struct vv_repo *r, const struct vv_manifest *m, uint8_t **out, size_t *outlen)
{
	static const uint8_t zero[BODY_PAD];
	struct vv_manifest sm = *m;
	struct obuf rows = { 0 }, o = { 0 };
	struct vv_bk_pack *pk = NULL;
	size_t npk = 0, cap = 0, off0 = 0;
	uint64_t g[256];
	int e = 0;

	/* Objects in chunk order whatever order the copy found them in. */
	if (m->nobjs) {
		if (!(sm.objs = malloc(m->nobjs * sizeof(*sm.objs))))
			return VV_ENOMEM;
		memcpy(sm.objs, m->objs, m->nobjs * sizeof(*sm.objs));
		qsort(sm.objs, sm.nobjs, sizeof(*sm.objs), cmp_obj_chunk);
	}
	r->pk_named = r->pk_written = r->pk_bytes = 0;
	if ((e = gear_table(r, g)) < 0)
		goto out;
	if (!r->cache) {
		enc_rows(&rows, &sm);
		if ((e = rows.err) < 0)
			goto out;
	} else {
		/* The prefix the last run's rows share: its pieces and cuts are
		 * the same (a cut depends only on the bytes before it), except a
		 * last piece that ended with those rows rather than at a cut.
		 * The rows are compared with the last run's as they are made;
		 * when all are equal, they are never stored (rows.p NULL).
		 * Under kc_mu throughout: c->rows is the cache's. */
		size_t same = 0, at = 0;
		struct mc_repo *c;
		bool equal;
		pthread_mutex_lock(&kc_mu);
		c = mc_of(r->id);
		if (c->rows) {
			rows.ref = c->rows;
			rows.reflen = c->rlen;
		}
		enc_rows(&rows, &sm);
		if (rows.ref && rows.len != rows.reflen)
			ob_own(&rows);         /* a strict prefix of the last rows */
		equal = rows.ref != NULL;
		if ((e = rows.err) == 0 && c->rows) {
			size_t lim = c->rlen < rows.len ? c->rlen : rows.len;
			same = equal || rows.refsame > lim ? lim : rows.refsame;
			while (same < lim) {
				size_t b = lim - same < 65536 ? lim - same : 65536;
				if (memcmp(c->rows + same, rows.p + same, b) != 0)
					break;
				same += b;
			}
			while (same < lim && c->rows[same] == rows.p[same])
				same++;
			for (size_t i = 0; i < c->nrpk; i++) {
				size_t end = at + c->rpk[i].plen;
				if (end > same || (end == c->rlen && (same != c->rlen || rows.len != c->rlen)))
					break;
				if ((e = VV_GROW(pk, npk, cap)) < 0)
					break;
				pk[npk++] = c->rpk[i];
				at = end;
			}
		}
		/* Still there at their size, else sealed and written again
		 * (from stored rows). */
		for (size_t i = 0; e == 0 && i < npk; i++)
			if (!vv_repo_object_have(r, pk[i].name, pk[i].size)) {
				npk = i;
				break;
			}
		for (size_t i = 0; i < npk; i++)
			off0 += pk[i].plen;
		if (off0 < rows.len)
			ob_own(&rows);         /* pieces to cut and seal: the bytes */
		if (e == 0)
			e = rows.err;
		pthread_mutex_unlock(&kc_mu);
		if (e < 0)
			goto out;
	}
	for (size_t off = off0, n; off < rows.len; off += n) {
		n = pack_cut(g, rows.p + off, rows.len - off);
		if ((e = VV_GROW(pk, npk, cap)) < 0 ||
		    (e = pack_put(r, rows.p + off, n, &pk[npk])) < 0)
			goto out;
		npk++;
	}
	r->pk_named = npk;
	if (r->cache && rows.p && rows.len <= MC_ROWS_MAX) {
		/* Keep these rows (handed over, not copied) for the next run. */
		struct vv_bk_pack *keep = malloc(npk * sizeof(*keep) + 1);
		struct mc_repo *c;
		if (keep) {
			memcpy(keep, pk, npk * sizeof(*keep));
			pthread_mutex_lock(&kc_mu);
			c = mc_of(r->id);
			if (c->rows)
				vv_memzero(c->rows, c->rlen);
			free(c->rows);
			free(c->rpk);
			c->rows = rows.p;
			c->rlen = rows.len;
			c->rpk = keep;
			c->nrpk = npk;
			pthread_mutex_unlock(&kc_mu);
			rows.p = NULL;
		}
	}
	enc_head(&o, m);
	ob_u32(&o, (uint32_t)npk);
	for (size_t i = 0; i < npk; i++) {
		ob_put(&o, pk[i].name, VV_REPO_NAME_BYTES);
		ob_u64(&o, pk[i].size);
		ob_u32(&o, pk[i].plen);
	}
	ob_put(&o, "END!", 4);
	ob_put(&o, zero, (BODY_PAD - o.len % BODY_PAD) % BODY_PAD);
	if ((e = o.err) < 0)
		goto out;
	*out = o.p;
	*outlen = o.len;
	o.p = NULL;
out:
	if (sm.objs != m->objs)
		free(sm.objs);
	if (rows.p)
		vv_memzero(rows.p, rows.len);
	free(rows.p);
	free(o.p);
	free(pk);
	return e;
}

/* Make room for need bytes of rows: doubling, never past need's next
 * power of two, and the plaintext moved is wiped from the old buffer. */
static int rows_room(uint8_t **rows, size_t *cap, size_t need)
{
	size_t c = *cap ? *cap : 65536;
	uint8_t *p;

	if (need <= *cap)
		return 0;
	while (c < need)
		c *= 2;
	if (!(p = malloc(c)))
		return VV_ENOMEM;
	if (*rows) {
		memcpy(p, *rows, *cap);
		vv_memzero(*rows, *cap);
		free(*rows);
	}
	*rows = p;
	*cap = c;
	return 0;
}

int vv_manifest_decode_v2(const uint8_t *body, size_t blen, vv_pack_src_fn src, void *ctx,
			  struct vv_manifest *m)
{
	struct vv_rbuf b, rb;
	uint8_t magic[4], *rows = NULL;
	uint64_t total = 0;
	uint32_t n;
	size_t at = 0, cap = 0;
	int e;

	memset(m, 0, sizeof(*m));
	vv_rbuf_init(&b, body, blen);
	if ((e = decode_head(&b, m)) < 0)
		goto out;
	e = VV_ECORRUPT;
	if (vv_rbuf_get_u32(&b, &n) < 0 || n > vv_rbuf_left(&b) / (VV_REPO_NAME_BYTES + 12))
		goto out;
	for (uint32_t i = 0; i < n; i++) {
		struct vv_bk_pack p;
		if (vv_rbuf_get_bytes(&b, p.name, VV_REPO_NAME_BYTES) < 0 || vv_rbuf_get_u64(&b, &p.size) < 0 ||
		    vv_rbuf_get_u32(&b, &p.plen) < 0 || p.plen == 0 || p.plen > PACK_MAX ||
		    p.size != pack_size(p.plen) || (total += p.plen) > VV_REPO_MANIFEST_MAX)
			goto out;
		if ((e = GROW(m, packs, npacks, capp)) < 0)
			goto out;
		e = VV_ECORRUPT;
		m->packs[m->npacks++] = p;
	}
	if (vv_rbuf_get_bytes(&b, magic, 4) < 0 || memcmp(magic, "END!", 4) != 0 || decode_pad(&b) < 0)
		goto out;
	/* The rows grow as packs open: the list's lengths (up to 256 KiB
	 * each for 44 bytes) are claims, not bytes anyone has read yet. */
	for (size_t i = 0; i < m->npacks; i++) {
		if ((e = rows_room(&rows, &cap, at + m->packs[i].plen)) < 0 ||
		    (e = src(ctx, &m->packs[i], rows + at)) < 0)
			goto out;
		at += m->packs[i].plen;
	}
	vv_rbuf_init(&rb, rows, at);
	if ((e = decode_rows(&rb, m)) == 0 && vv_rbuf_left(&rb))
		e = VV_ECORRUPT;
out:
	if (rows)
		vv_memzero(rows, cap);
	free(rows);
	if (e < 0)
		vv_manifest_free(m);
	return e;
}

const char *vv_repo_why(const struct vv_repo *r)
{
	return r->why;
}

void vv_repo_packs_stats(const struct vv_repo *r, uint64_t *named, uint64_t *written,
			 uint64_t *bytes_written)
{
	*named = r->pk_named;
	*written = r->pk_written;
	*bytes_written = r->pk_bytes;
}

/* ---- manifests: sealed files -------------------------------------------------- */

int vv_repo_manifest_store(struct vv_repo *r, const struct vv_manifest *m)
{
	uint8_t *body = NULL, *file = NULL;
	char hex[VV_BACKUP_ID_HEX + 1];
	struct vv_wbuf w;
	size_t blen = 0, flen;
	int e;

	if ((e = encode_v2(r, m, &body, &blen)) < 0)
		return e;
	flen = MAN_HDR + blen + VV_TAG_BYTES;
	if (!(file = vv_repo_buf_alloc(flen))) {   /* aligned: written O_DIRECT */
		e = VV_ENOMEM;
		goto out;
	}
	vv_wbuf_init(&w, file, MAN_HDR);
	vv_wbuf_put_bytes(&w, MAN_MAGIC, 8);
	vv_wbuf_put_u32(&w, MAN_VERSION);
	vv_wbuf_put_bytes(&w, r->id, VV_REPO_ID_BYTES);
	vv_wbuf_put_bytes(&w, m->id, VV_BACKUP_ID_BYTES);
	vv_random_bytes(file + 44, VV_XNONCE_BYTES);
	if ((e = vv_xchacha_seal(file + MAN_HDR, file + MAN_HDR + blen, body, blen, file, MAN_HDR,
				 file + 44, r->kman)) < 0)
		goto out;
	/* Every object it names is durable first (the caller wrote them). */
	if ((e = vv_repo_objects_sync(r)) < 0)
		goto out;
	vv_hex_encode(hex, m->id, VV_BACKUP_ID_BYTES);
	if ((e = write_at(r, r->manfd, hex, file, flen)) < 0)
		goto out;
	if (fsync(r->manfd) < 0)
		e = oserr(errno);
	else if (r->cache) {
		/* The next run's index need not read it back. */
		pthread_mutex_lock(&kc_mu);
		mc_add(mc_of(r->id), hex, m->objs, m->nobjs);
		pthread_mutex_unlock(&kc_mu);
	}
out:
	if (body)
		vv_memzero(body, blen);
	free(body);
	free(file);
	return e;
}

static bool is_hex(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
			return false;
	return s[n] == 0;
}

int vv_repo_manifest_head(const uint8_t *file, size_t len, uint32_t *ver, uint8_t rid[VV_REPO_ID_BYTES],
			  uint8_t bid[VV_BACKUP_ID_BYTES])
{
	struct vv_rbuf b;
	uint8_t magic[8];

	vv_rbuf_init(&b, file, len);
	if (len < MAN_HDR + VV_TAG_BYTES || vv_rbuf_get_bytes(&b, magic, 8) < 0 ||
	    memcmp(magic, MAN_MAGIC, 8) != 0 || vv_rbuf_get_u32(&b, ver) < 0)
		return VV_ECORRUPT;
	if (*ver < MAN_VERSION_MIN || *ver > MAN_VERSION)
		return VV_EFORMAT;
	if (vv_rbuf_get_bytes(&b, rid, VV_REPO_ID_BYTES) < 0 || vv_rbuf_get_bytes(&b, bid, VV_BACKUP_ID_BYTES) < 0)
		return VV_ECORRUPT;
	return 0;
}

int vv_repo_manifest_load(struct vv_repo *r, const char *id_hex, struct vv_manifest *m)
{
	uint8_t *file = NULL, *body = NULL, bid[VV_BACKUP_ID_BYTES];
	uint8_t rid[VV_REPO_ID_BYTES], fid[VV_BACKUP_ID_BYTES];
	uint32_t ver;
	size_t len = 0, blen;
	int e;

	memset(m, 0, sizeof(*m));
	r->why[0] = 0;
	if (!is_hex(id_hex, VV_BACKUP_ID_HEX) || vv_hex_decode(bid, sizeof(bid), id_hex, VV_BACKUP_ID_HEX) < 0)
		return VV_EINVAL;
	if ((e = read_at(r->manfd, id_hex, VV_REPO_MANIFEST_MAX, &file, &len)) < 0)
		return e;
	if ((e = vv_repo_manifest_head(file, len, &ver, rid, fid)) < 0)
		goto out;
	/* A manifest of another repository, or renamed: not this backup. */
	if (memcmp(rid, r->id, sizeof(rid)) != 0 || memcmp(fid, bid, sizeof(fid)) != 0) {
		e = VV_ECORRUPT;
		goto out;
	}
	blen = len - MAN_HDR - VV_TAG_BYTES;
	if (!(body = malloc(blen ? blen : 1))) {
		e = VV_ENOMEM;
		goto out;
	}
	if ((e = vv_xchacha_open(body, file + MAN_HDR, blen, file + MAN_HDR + blen, file, MAN_HDR,
				 file + 44, r->kman)) < 0) {
		e = VV_ECORRUPT;
		goto out;
	}
	if ((e = ver == 1 ? vv_manifest_decode(body, blen, m) :
	     vv_manifest_decode_v2(body, blen, pack_open, r, m)) < 0)
		goto out;
	if (memcmp(m->id, bid, sizeof(bid)) != 0) {
		vv_manifest_free(m);
		e = VV_ECORRUPT;
	}
out:
	if (body)
		vv_memzero(body, blen);
	free(body);
	free(file);
	return e;
}

void vv_repo_names_free(char **names, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(names[i]);
	free(names);
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

int vv_repo_manifest_names(struct vv_repo *r, char ***out, size_t *nout)
{
	char **names = NULL;
	size_t n = 0, cap = 0;
	struct dirent *de;
	DIR *d;
	int fd, e = 0;

	if ((fd = dup(r->manfd)) < 0 || !(d = fdopendir(fd))) {
		if (fd >= 0)
			close(fd);
		return oserr(errno);
	}
	rewinddir(d);
	while ((de = readdir(d))) {
		if (!is_hex(de->d_name, VV_BACKUP_ID_HEX))
			continue;       /* ., .., .tmp-* of an interrupted run */
		if (VV_GROW(names, n, cap) < 0) {
			e = VV_ENOMEM;
			break;
		}
		if (!(names[n] = strdup(de->d_name))) {
			e = VV_ENOMEM;
			break;
		}
		n++;
	}
	closedir(d);
	if (e < 0) {
		vv_repo_names_free(names, n);
		return e;
	}
	if (n > 1)      /* (NULL when empty, which qsort must not be given) */
		qsort(names, n, sizeof(*names), cmp_str);
	*out = names;
	*nout = n;
	return 0;
}

static int cmp_info(const void *a, const void *b)
{
	const struct vv_backup_info *x = a, *y = b;

	return x->created < y->created ? -1 : x->created > y->created ? 1 : strcmp(x->id, y->id);
}

int vv_repo_list(struct vv_repo *r, int (*cb)(void *ctx, const struct vv_backup_info *b),
		 void (*bad)(void *ctx, const char *manifest, int code), void *ctx)
{
	struct vv_backup_info *infos = NULL;
	struct vv_manifest m;
	char **names = NULL;
	size_t n = 0, k = 0;
	int e, ret = 0;

	if ((e = vv_repo_manifest_names(r, &names, &n)) < 0)
		return e;
	if (n && !(infos = calloc(n, sizeof(*infos)))) {
		e = VV_ENOMEM;
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		if ((e = vv_repo_manifest_load(r, names[i], &m)) < 0) {
			if (bad)
				bad(ctx, names[i], e);
			ret = VV_ECORRUPT;
			continue;
		}
		infos[k++] = m.info;
		vv_manifest_free(&m);
	}
	if (k > 1)
		qsort(infos, k, sizeof(*infos), cmp_info);
	e = 0;
	for (size_t i = 0; i < k && e == 0; i++)
		e = cb(ctx, &infos[i]);
	if (e == 0)
		e = ret;
out:
	free(infos);
	vv_repo_names_free(names, n);
	return e;
}

int vv_repo_find(struct vv_repo *r, const char *prefix, char id_hex[VV_BACKUP_ID_HEX + 1])
{
	char **names = NULL;
	size_t n = 0, pl = strlen(prefix), hits = 0;
	int e;

	if (pl < 4 || pl > VV_BACKUP_ID_HEX)
		return VV_EINVAL;
	if ((e = vv_repo_manifest_names(r, &names, &n)) < 0)
		return e;
	for (size_t i = 0; i < n; i++)
		if (strncmp(names[i], prefix, pl) == 0) {
			if (hits++ == 0)
				memcpy(id_hex, names[i], VV_BACKUP_ID_HEX + 1);
		}
	vv_repo_names_free(names, n);
	return hits == 0 ? VV_ENOENT : hits > 1 ? VV_EEXIST : 0;
}

/* ---- the index of what is there ------------------------------------------------ */

static int cmp_obj(const void *a, const void *b)
{
	return memcmp(((const struct vv_bk_object *)a)->chunk, ((const struct vv_bk_object *)b)->chunk,
		      VV_CHUNK_ID_BYTES);
}

/* Append n objects to ix (capacity *cap). */
static int ix_add(struct vv_repo_index *ix, size_t *cap, const struct vv_bk_object *o, size_t n)
{
	if (vv_grow(&ix->o, cap, ix->n + n, sizeof(*ix->o)) < 0)
		return VV_ENOMEM;
	if (n)
		memcpy(ix->o + ix->n, o, n * sizeof(*o));
	ix->n += n;
	return 0;
}

int vv_repo_index_load(struct vv_repo *r, struct vv_repo_index *ix)
{
	struct vv_manifest m;
	char **names = NULL;
	size_t n = 0, cap = 0;
	int e;

	memset(ix, 0, sizeof(*ix));
	if ((e = vv_repo_manifest_names(r, &names, &n)) < 0)
		return e;
	for (size_t i = 0; i < n; i++) {
		if (r->cache) {
			struct mc_man *f;
			bool hit = false;
			pthread_mutex_lock(&kc_mu);
			if ((f = mc_find(mc_of(r->id), names[i]))) {
				e = ix_add(ix, &cap, f->o, f->n);
				hit = true;
			}
			pthread_mutex_unlock(&kc_mu);
			if (e < 0)
				goto out;
			if (hit)
				continue;
		}
		/* A manifest that does not read adds nothing: its objects are
		 * then hashed and checked again. */
		if (vv_repo_manifest_load(r, names[i], &m) < 0)
			continue;
		e = ix_add(ix, &cap, m.objs, m.nobjs);
		if (e == 0 && r->cache) {
			pthread_mutex_lock(&kc_mu);
			mc_add(mc_of(r->id), names[i], m.objs, m.nobjs);
			pthread_mutex_unlock(&kc_mu);
		}
		vv_manifest_free(&m);
		if (e < 0)
			goto out;
	}
	if (r->cache) {
		/* Forgotten manifests leave the cache too. */
		pthread_mutex_lock(&kc_mu);
		mc_keep(mc_of(r->id), names, n);
		pthread_mutex_unlock(&kc_mu);
	}
	if (ix->n)
		qsort(ix->o, ix->n, sizeof(*ix->o), cmp_obj);
out:
	vv_repo_names_free(names, n);
	if (e < 0)
		vv_repo_index_free(ix);
	return e;
}

const struct vv_bk_object *vv_repo_index_find(const struct vv_repo_index *ix,
					      const uint8_t chunk[VV_CHUNK_ID_BYTES])
{
	struct vv_bk_object key;

	if (!ix->n)
		return NULL;
	memcpy(key.chunk, chunk, VV_CHUNK_ID_BYTES);
	return bsearch(&key, ix->o, ix->n, sizeof(*ix->o), cmp_obj);
}

void vv_repo_index_free(struct vv_repo_index *ix)
{
	free(ix->o);
	memset(ix, 0, sizeof(*ix));
}
