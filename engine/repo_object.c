/*
 * repo_object.c - a backup repository's objects (repo_int.h): their
 * names, put in batches synced on parallel threads, have, load and read;
 * and the direct I/O that moves them.  DEST/objects/XX/NAME is described
 * in docs/format.md "Backup repository" (Objects).
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "crypto_int.h"
#include "os.h"
#include "repo_dest_int.h"
#include "vecvault/error.h"
#include "vecvault/log.h"

#define PEND_BYTES (128u << 20)            /* objects synced and renamed together:
					    * VV_REPO_PEND_MAX, or that many bytes */

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
			return vv_repo_oserr((int)-got);
		/* EINVAL: refused at the read; all of it below. */
	}
	got = vv_os_pread_full(fd, (uint8_t *)buf + done, len - done, (off_t)done);
	if (got < 0)
		return vv_repo_oserr((int)-got);
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
			return vv_repo_oserr(-e);
		/* EINVAL: refused at the write; all of it below. */
	}
	if (done < len) {
		if ((e = vv_os_pwrite_full(fd, (const uint8_t *)buf + done, len - done, (off_t)done)) < 0)
			return vv_repo_oserr(-e);
		vv_os_writeback(fd, (off_t)len);
	}
	return 0;
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
 * and its write-back started at once (vv_os_writeback); every
 * VV_REPO_PEND_MAX objects or PEND_BYTES bytes, and before a manifest or
 * at close, the batch is fsync'ed and only then renamed to its name.  So
 * a file under an object's name is always complete and durable (what a
 * kill or power cut leaves under a name is never torn, and a rerun trusts
 * its size), while the disk writes of a batch overlap each other and the
 * hashing of the next chunks: one fsync per object, each waited for in
 * turn, cost more than the copy itself.  The worker that fills a batch syncs it
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
		j->res[i] = f < 0 ? vv_repo_oserr(-f) : 0;
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
	int fds[VV_REPO_PEND_MAX] = { 0 }, res[VV_REPO_PEND_MAX] = { 0 }, e = 0;

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
			f = vv_repo_oserr(errno);
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

void vv_repo_objects_init(struct vv_repo *r)
{
	pthread_mutex_init(&r->pmu, NULL);
	pthread_cond_init(&r->pcv, NULL);
	r->pinit = true;
}

void vv_repo_objects_close(struct vv_repo *r)
{
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
	if ((e = vv_repo_subdir(r, r->objfd, xx, true, &dfd)) < 0)
		return e;
	snprintf(tmp, sizeof(tmp), ".tmp-%s", hex);
	unlinkat(dfd, tmp, 0);
	fd = openat(dfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0) {
		e = vv_repo_oserr(errno);
		close(dfd);
		return e;
	}
	vv_repo_give(r, fd);
	if ((e = vv_repo_pwrite_file(fd, bytes, len)) < 0) {
		close(fd);
		unlinkat(dfd, tmp, 0);
		close(dfd);
		return e;
	}
	pthread_mutex_lock(&r->pmu);
	while (r->npend == VV_REPO_PEND_MAX)   /* full, waiting for the one in flight */
		pthread_cond_wait(&r->pcv, &r->pmu);
	r->pend[r->npend].dfd = dfd;
	r->pend[r->npend].fd = fd;
	memcpy(r->pend[r->npend].name, name, VV_REPO_NAME_BYTES);
	r->npend++;
	r->pbytes += len;
	e = 0;
	while (r->npend == VV_REPO_PEND_MAX || r->pbytes >= PEND_BYTES) {
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
			if ((e = vv_repo_subdir(r, r->objfd, xx, false, &fds[n])) < 0)
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
		return vv_repo_oserr(errno);
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
	if ((e = vv_repo_subdir(r, r->objfd, xx, false, &dfd)) < 0)
		return e;
	fd = openat(dfd, hex, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	e = fd < 0 ? (errno == ELOOP ? VV_EUNSAFE : vv_repo_oserr(errno)) : 0;
	close(dfd);
	if (e < 0)
		return e;
	if (fstat(fd, &st) < 0)
		e = vv_repo_oserr(errno);
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

