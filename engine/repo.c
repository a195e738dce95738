/*
 * repo.c - backup repositories (vecvault/backup.h, repo_int.h): config and
 * key slots, init, open and close, the writer lock, the daemon's key
 * cache, safe opens inside DEST.  Objects are repo_object.c's, a
 * manifest's bytes repo_body.c's, manifests in DEST repo_manifest.c's
 * (repo_dest_int.h between them).
 *
 * The bytes of DEST (config and key slots, objects, manifests and their
 * bodies, metadata packs) are laid out, with magic and version, in one
 * place: the tables of docs/format.md "Backup repository".
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "buf.h"
#include "crypto_int.h"
#include "os.h"
#include "repo_dest_int.h"
#include "vecvault/error.h"
#include "vecvault/log.h"
#include "vecvault/vault.h"

#define CONF_MAGIC "VVBKREPO"
#define REPO_VERSION 2                     /* written by init; 1 is still read */
#define REPO_VERSION_MIN 1
#define SLOT_BYTES (4 + 8 + 8 + VV_SALT_BYTES + VV_WRAPPED_BYTES)
#define CONF_HDR 40
#define CONF_MAX (CONF_HDR + 16 * SLOT_BYTES + VV_MAC_BYTES)
#define MAX_SLOTS 16

/* ---- safe opens inside DEST ----------------------------------------------- */

/* Refuse what another user could have planted or may change: st is
 * what (named in the message); VV_EUNSAFE. */
static int owned_st_ok(const struct vv_repo *r, const struct stat *st, const char *what)
{
	if (!r->check)
		return 0;
	if (st->st_uid != r->uid || (st->st_mode & 022)) {
		vv_log(VV_LOG_ERR, "backup: %s belongs to uid %u or may be written by others "
		       "(mode %04o): refused", what, (unsigned)st->st_uid, (unsigned)(st->st_mode & 07777));
		return VV_EUNSAFE;
	}
	return 0;
}

/* owned_st_ok of open file fd; a failed fstat is its own error. */
static int owned_ok(const struct vv_repo *r, int fd, const char *what)
{
	struct stat st;
	int e;

	if ((e = vv_os_fstat(fd, &st)) < 0) {
		vv_log(VV_LOG_ERR, "backup: %s: cannot stat: %s", what, strerror(-e));
		return vv_repo_oserr(e);
	}
	return owned_st_ok(r, &st, what);
}

void vv_repo_give(const struct vv_repo *r, int fd)
{
	struct stat st;

	if (geteuid() == 0 && fstat(fd, &st) == 0 && (st.st_uid != r->uid || st.st_gid != r->gid))
		if (fchown(fd, r->uid, r->gid) < 0)
			vv_log(VV_LOG_WARN, "backup: cannot give a file to uid %u: %s",
			       (unsigned)r->uid, strerror(errno));
}

int vv_repo_subdir(struct vv_repo *r, int dirfd, const char *name, bool create, int *out)
{
	int fd = -1, e;

	fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0 && errno == ENOENT && create) {
		if (mkdirat(dirfd, name, 0700) < 0 && errno != EEXIST)
			return vv_repo_oserr(errno);
		fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (fd >= 0) {
			vv_repo_give(r, fd);
			if (fsync(dirfd) < 0) {
				e = errno;
				close(fd);
				return vv_repo_oserr(e);
			}
		}
	}
	if (fd < 0)
		return errno == ELOOP || errno == ENOTDIR ? VV_EUNSAFE : vv_repo_oserr(errno);
	if ((e = owned_ok(r, fd, name)) < 0) {
		close(fd);
		return e;
	}
	*out = fd;
	return 0;
}

int vv_repo_read_at(int dirfd, const char *name, size_t max, bool direct, uint8_t **out,
		    size_t *len)
{
	struct stat st;
	uint8_t *b = NULL;
	int fd, r = 0;

	fd = openat(dirfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return errno == ELOOP ? VV_EUNSAFE : vv_repo_oserr(errno);
	if (fstat(fd, &st) < 0) {
		r = vv_repo_oserr(errno);
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
	return vv_repo_read_at(dirfd, name, max, true, out, len);
}

int vv_repo_write_at(struct vv_repo *r, int dirfd, const char *name, const void *buf, size_t len)
{
	char tmp[128];
	int fd, e = 0;

	snprintf(tmp, sizeof(tmp), ".tmp-%s", name);
	unlinkat(dirfd, tmp, 0);
	fd = openat(dirfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0)
		return vv_repo_oserr(errno);
	vv_repo_give(r, fd);
	if ((e = vv_repo_pwrite_file(fd, buf, len)) == 0 && (e = vv_os_fsync(fd)) < 0)
		e = vv_repo_oserr(e);
	close(fd);
	if (e == 0 && renameat(dirfd, tmp, dirfd, name) < 0)
		e = vv_repo_oserr(errno);
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

int vv_repo_config_parse(const uint8_t *buf, size_t len, uint8_t repo_id[VV_REPO_ID_BYTES], int *nslots,
			 uint32_t *version)
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
	if (version)
		*version = ver;
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
		return vv_repo_oserr(errno);
	r.dfd = open(dest, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (r.dfd < 0)
		return errno == ELOOP ? VV_EUNSAFE : vv_repo_oserr(errno);
	if (fstat(r.dfd, &st) < 0) {
		e = vv_repo_oserr(errno);
		goto out;
	}
	r.uid = st.st_uid;
	r.gid = st.st_gid;
	if ((fd = dup(r.dfd)) < 0 || !(d = fdopendir(fd))) {
		e = vv_repo_oserr(errno);
		if (fd >= 0)
			close(fd);               /* fdopendir failed: still ours */
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
	if ((e = vv_repo_subdir(&r, r.dfd, "objects", true, &r.objfd)) < 0 ||
	    (e = vv_repo_subdir(&r, r.dfd, "manifests", true, &r.manfd)) < 0)
		goto out;
	/* The config last: a directory without it is no repository yet. */
	if ((e = vv_repo_write_at(&r, r.dfd, "config", conf, w.len)) < 0)
		goto out;
	if (fsync(r.dfd) < 0) {
		e = vv_repo_oserr(errno);
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

/* Take DEST/lock (made when absent) for this writer.  VV_EBUSY while
 * another holds it; VV_EUNSAFE when it is a symbolic link, not a plain
 * file of one link, or (VV_REPO_CHECK_OWNER) not DEST's owner's alone;
 * else what the system said (VV_EACCES, VV_EROFS, VV_EIO, ...).  Each
 * refusal is logged naming the lock file and what failed. */
static int take_lock(struct vv_repo *r, const char *dest)
{
	char pid[32], what[PATH_MAX + 32];
	uint8_t *old = NULL;
	size_t len = 0;
	struct stat st;
	int n, e;

	snprintf(what, sizeof(what), "the lock file %s/lock", dest);
	/* Never O_CREAT on a name that may exist: a hard link planted there
	 * (to a file of root's) must be refused, not truncated or chowned. */
	r->lockfd = openat(r->dfd, "lock", O_RDWR | O_NOFOLLOW | O_CLOEXEC);
	if (r->lockfd < 0 && errno == ENOENT) {
		r->lockfd = openat(r->dfd, "lock", O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
		if (r->lockfd >= 0)
			vv_repo_give(r, r->lockfd);
	}
	if (r->lockfd < 0) {
		e = errno;
		vv_log(VV_LOG_ERR, "backup: %s: cannot open%s: %s", what, e == ELOOP ? " (a symbolic link)" : "",
		       strerror(e));
		return e == ELOOP ? VV_EUNSAFE : vv_repo_oserr(e);
	}
	if ((e = vv_os_fstat(r->lockfd, &st)) < 0) {
		vv_log(VV_LOG_ERR, "backup: %s: cannot stat: %s", what, strerror(-e));
		return vv_repo_oserr(e);
	}
	if (!S_ISREG(st.st_mode) || st.st_nlink != 1) {
		vv_log(VV_LOG_ERR, "backup: %s is not a plain file with one link: refused", what);
		return VV_EUNSAFE;
	}
	if ((e = owned_st_ok(r, &st, what)) < 0)
		return e;
	if ((e = vv_os_flock(r->lockfd, LOCK_EX | LOCK_NB)) < 0) {
		long holder = 0;
		if (e != -EWOULDBLOCK) {
			vv_log(VV_LOG_ERR, "backup: %s: cannot lock: %s", what, strerror(-e));
			return vv_repo_oserr(e);
		}
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

/* Also the manifest and pack cache's (repo_manifest.c). */
pthread_mutex_t vv_repo_cache_mu = PTHREAD_MUTEX_INITIALIZER;
static struct kc_ent kc[KC_MAX];
static uint8_t *kc_key;                    /* secure, random: keys the verifiers */
static uint64_t kc_tick;

/* The verifier of pass, under vv_repo_cache_mu.  VV_ENOMEM without a key. */
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

	pthread_mutex_lock(&vv_repo_cache_mu);
	for (int i = 0; i < KC_MAX && !hit; i++) {
		struct kc_ent *e = &kc[i];
		if (!e->used || memcmp(e->id, id, VV_REPO_ID_BYTES) != 0 ||
		    memcmp(e->slot, slot, SLOT_BYTES) != 0 || !vv_memeq_ct(e->sec, ver, VV_MAC_BYTES))
			continue;
		memcpy(key, e->sec + VV_MAC_BYTES, VV_KEY_BYTES);
		e->last = ++kc_tick;
		hit = true;
	}
	pthread_mutex_unlock(&vv_repo_cache_mu);
	return hit;
}

/* Remember key as unlocked by this slot and passphrase (best effort). */
static void kc_put(const uint8_t id[VV_REPO_ID_BYTES], const uint8_t *slot,
		   const uint8_t ver[VV_MAC_BYTES], const uint8_t *key)
{
	struct kc_ent *e = NULL;

	pthread_mutex_lock(&vv_repo_cache_mu);
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
		pthread_mutex_unlock(&vv_repo_cache_mu);
		return;
	}
	e->used = true;
	e->last = ++kc_tick;
	memcpy(e->id, id, VV_REPO_ID_BYTES);
	memcpy(e->slot, slot, SLOT_BYTES);
	memcpy(e->sec, ver, VV_MAC_BYTES);
	memcpy(e->sec + VV_MAC_BYTES, key, VV_KEY_BYTES);
	pthread_mutex_unlock(&vv_repo_cache_mu);
}

void vv_repo_key_cache_clear(void)
{
	pthread_mutex_lock(&vv_repo_cache_mu);
	vv_repo_manifest_cache_drop();
	for (int i = 0; i < KC_MAX; i++) {
		vv_secure_free(kc[i].sec);
		memset(&kc[i], 0, sizeof(kc[i]));
	}
	vv_secure_free(kc_key);
	kc_key = NULL;
	pthread_mutex_unlock(&vv_repo_cache_mu);
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
		pthread_mutex_lock(&vv_repo_cache_mu);
		e = kc_verifier(pass, passlen, ver);
		pthread_mutex_unlock(&vv_repo_cache_mu);
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
	vv_repo_objects_init(r);
	r->check = flags & VV_REPO_CHECK_OWNER;
	r->cache = flags & VV_REPO_KEY_CACHE;
	r->uid = uid;
	if ((e = vv_crypto_init()) < 0)
		goto out;
	r->dfd = open(dest, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (r->dfd < 0) {
		e = errno == ELOOP ? VV_EUNSAFE : vv_repo_oserr(errno);
		goto out;
	}
	if ((e = owned_ok(r, r->dfd, dest)) < 0)
		goto out;
	if (fstat(r->dfd, &st) < 0) {
		e = vv_repo_oserr(errno);
		goto out;
	}
	r->uid = st.st_uid;
	r->gid = st.st_gid;
	if ((e = read_at(r->dfd, "config", CONF_MAX, &conf, &len)) < 0) {
		if (e == VV_ENOENT)
			e = VV_ENOTINIT;
		goto out;
	}
	/* The version: 1 or 2, and the config MAC (unlock_conf) covers it,
	 * so a version 2 repository cannot be passed off as version 1. */
	if ((e = vv_repo_config_parse(conf, len, r->id, &nslots, &r->version)) < 0)
		goto out;
	if ((e = vv_repo_subdir(r, r->dfd, "objects", flags & VV_REPO_WRITE, &r->objfd)) < 0 ||
	    (e = vv_repo_subdir(r, r->dfd, "manifests", flags & VV_REPO_WRITE, &r->manfd)) < 0)
		goto out;
	if ((flags & VV_REPO_WRITE) && (e = take_lock(r, dest)) < 0)
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

void vv_repo_close(struct vv_repo *r)
{
	if (!r)
		return;
	vv_repo_objects_close(r);
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

