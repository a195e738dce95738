/*
 * vector_uring.c - batched opens, head reads and closes of segment files
 * through io_uring, for collections of many small segments
 * (vector_search.c).  Per file the plain path costs openat, statx, pread
 * and close: four system calls, each a user/kernel transition (~1.1 us on
 * a hypervisor guest) besides the kernel's work.  Here a batch of files
 * costs two io_uring_enter calls to open them and read their heads, and one
 * to close them, plus a statx each (docs/design.md, "Query scan").
 *
 * Built only with liburing (VV_HAVE_LIBURING, CMake finds it with
 * pkg-config); without it, or where io_uring_setup fails (a seccomp filter,
 * a container, io_uring disabled by sysctl), vv_uring_new fails and the
 * caller takes the system calls one by one.  A ring that fails mid-batch
 * is drained (vv_uring_drain: cancel, then reap every request) before its
 * buffers or descriptors are touched again.  The ring does only what the
 * process could do itself with the same credentials: openat(O_RDONLY)
 * relative to the caller's directory descriptor, statx of that descriptor,
 * a read of it, close.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "vector_int.h"

#ifdef VV_HAVE_LIBURING
#include <liburing.h>

struct vv_uring {
	struct io_uring ring;
	unsigned entries;
	bool lost;               /* requests the ring could not reap (vv_uring_lost) */
};

/* The test hook (vv_uring_test_fail): waits left before one fails. */
static atomic_uint fail_at;

void vv_uring_test_fail(unsigned nth)
{
	atomic_store(&fail_at, nth);
}

int vv_uring_wait(struct io_uring *ring)
{
	unsigned n = atomic_load(&fail_at);

	while (n && !atomic_compare_exchange_weak(&fail_at, &n, n - 1))
		;
	if (n == 1) {
		/* the requests go in, then the ring "fails": they are in
		 * flight, unreaped, as after a real failure mid-batch */
		io_uring_submit(ring);
		return -EIO;
	}
	return io_uring_submit_and_wait(ring, 1);
}

/* How long a drain waits for requests that a cancel could not stop. */
#define DRAIN_WAIT_S 10

int vv_uring_drain(struct io_uring *ring, unsigned pending, int *res, size_t nres)
{
	struct io_uring_sqe *sqe;
	unsigned waited = 0;

	if (!pending)
		return 0;
	/* whatever is still queued goes in first, so that the cancel finds
	 * room and every prepared request is one the kernel knows */
	io_uring_submit(ring);
	if ((sqe = io_uring_get_sqe(ring))) {
		/* 5.19+: every request of this ring; older kernels answer
		 * EINVAL and the drain waits for them instead */
		io_uring_prep_cancel(sqe, NULL, IORING_ASYNC_CANCEL_ANY);
		io_uring_sqe_set_data64(sqe, UINT64_MAX - 1);
		pending++;
		io_uring_submit(ring);
	}
	while (pending) {
		struct __kernel_timespec ts = { .tv_sec = 1 };
		struct io_uring_cqe *cqe;
		unsigned head, n = 0;
		/* without IORING_FEAT_EXT_ARG (before 5.11) liburing times a
		 * wait with a request of its own, whose completion would be
		 * counted here as one of ours: wait without a bound there */
		int r = ring->features & IORING_FEAT_EXT_ARG ? io_uring_wait_cqe_timeout(ring, &cqe, &ts)
							      : io_uring_wait_cqe(ring, &cqe);
		if (r == -ETIME && ++waited >= DRAIN_WAIT_S)
			return -1;
		if (r < 0 && r != -ETIME && r != -EINTR && r != -EAGAIN && r != -EBUSY)
			return -1;
		io_uring_for_each_cqe(ring, head, cqe) {
			if (cqe->user_data < nres)
				res[cqe->user_data] = cqe->res;
			n++;
		}
		io_uring_cq_advance(ring, n);
		pending -= n < pending ? n : pending;
	}
	return 0;
}

int vv_uring_new(unsigned entries, struct vv_uring **out)
{
	struct vv_uring *u = calloc(1, sizeof(*u));
	int r;

	*out = NULL;
	if (!u)
		return VV_ENOMEM;
	/* one thread submits and reaps: let the kernel skip the cross-thread
	 * completion work; kernels before 6.1 refuse the flags */
	r = io_uring_queue_init(entries, &u->ring, IORING_SETUP_SINGLE_ISSUER |
						  IORING_SETUP_DEFER_TASKRUN);
	if (r == -EINVAL)
		r = io_uring_queue_init(entries, &u->ring, 0);
	if (r < 0) {
		free(u);
		return vv_err_from_errno(-r);
	}
	u->entries = entries;
	*out = u;
	return 0;
}

void vv_uring_free(struct vv_uring *u)
{
	if (!u)
		return;
	io_uring_queue_exit(&u->ring);
	free(u);
}

bool vv_uring_lost(const struct vv_uring *u)
{
	return u && u->lost;
}

/* Submit what is queued and reap `want` completions: res[user_data] gets
 * each result.  0 or a VV_E* code: the ring itself failed, and then the
 * requests not reaped yet are cancelled and reaped (vv_uring_drain; their
 * results in res too), or, when even that fails, u->lost is set. */
static int reap(struct vv_uring *u, unsigned want, int *res, size_t nres)
{
	unsigned got = 0;

	while (got < want) {
		struct io_uring_cqe *cqe;
		unsigned head, n = 0;
		int r = vv_uring_wait(&u->ring);
		if (r < 0 && r != -EINTR && r != -EAGAIN && r != -EBUSY) {
			if (vv_uring_drain(&u->ring, want - got, res, nres) < 0)
				u->lost = true;
			return vv_err_from_errno(-r);
		}
		io_uring_for_each_cqe(&u->ring, head, cqe) {
			if (cqe->user_data < nres)
				res[cqe->user_data] = cqe->res;
			n++;
		}
		io_uring_cq_advance(&u->ring, n);
		got += n;
	}
	return 0;
}

/* The type, size, device, inode and ctime of open file fd: statx, or fstat where a
 * seccomp filter refuses statx.  0 or an errno. */
static int file_stat(int fd, struct statx *sx)
{
	struct stat st;

	if (statx(fd, "", AT_EMPTY_PATH | AT_STATX_SYNC_AS_STAT, VV_SEG_STATX, sx) == 0)
		return 0;
	if (errno != ENOSYS || fstat(fd, &st) < 0)
		return errno;
	memset(sx, 0, sizeof(*sx));
	sx->stx_mode = (uint16_t)st.st_mode;
	sx->stx_size = (uint64_t)st.st_size;
	sx->stx_dev_major = major(st.st_dev);
	sx->stx_dev_minor = minor(st.st_dev);
	sx->stx_ino = (uint64_t)st.st_ino;
	sx->stx_ctime.tv_sec = st.st_ctim.tv_sec;
	sx->stx_ctime.tv_nsec = (uint32_t)st.st_ctim.tv_nsec;
	return 0;
}

int vv_uring_open_batch(struct vv_uring *u, int dirfd, struct vv_uring_file *f, size_t n)
{
	unsigned want = 0;
	int *res;
	size_t i;
	int r;
	bool opening = true;

	if (!n)
		return 0;
	if (n > u->entries || u->lost)
		return VV_EINVAL;
	if (!(res = malloc(n * sizeof(*res))))
		return VV_ENOMEM;
	for (i = 0; i < n; i++) {
		struct io_uring_sqe *sqe = io_uring_get_sqe(&u->ring);
		io_uring_prep_openat(sqe, dirfd, f[i].name, VV_SEG_OPEN, 0);
		io_uring_sqe_set_data64(sqe, i);
		f[i].fd = -1;
		f[i].headlen = 0;
		res[i] = -ECANCELED;
	}
	if ((r = reap(u, (unsigned)n, res, n)) < 0)
		goto fail;
	opening = false;
	/* Type and size one system call each: io_uring's STATX always runs
	 * on a kernel worker thread (io-wq), whose hand-off costs as much as
	 * the call, and whose threads outlive the query by seconds.  Then
	 * the heads of the regular files, in one submission. */
	for (i = 0; i < n; i++) {
		struct io_uring_sqe *sqe;
		f[i].open_err = res[i] < 0 ? -res[i] : 0;
		if (res[i] < 0)
			continue;
		f[i].fd = res[i];
		if ((f[i].statx_err = file_stat(f[i].fd, &f[i].sx)) != 0 || !S_ISREG(f[i].sx.stx_mode))
			continue;
		res[i] = -ECANCELED;
		sqe = io_uring_get_sqe(&u->ring);
		io_uring_prep_read(sqe, f[i].fd, f[i].head,
				   (unsigned)(f[i].sx.stx_size < f[i].headcap ? f[i].sx.stx_size : f[i].headcap), 0);
		io_uring_sqe_set_data64(sqe, i);
		want++;
	}
	if ((r = reap(u, want, res, n)) < 0)
		goto fail;
	for (i = 0; i < n; i++)
		if (f[i].fd >= 0 && !f[i].statx_err && S_ISREG(f[i].sx.stx_mode))
			f[i].headlen = res[i];
	free(res);
	return 0;
fail:
	/* The ring broke mid-batch.  reap drained it: every request has
	 * completed, so no read writes into a head any more, and the opens'
	 * results are in res (while opening) or f[].fd: close what opened.
	 * When it could not (u->lost), the opens not reaped may still install
	 * descriptors that nobody knows (a leak), and the heads belong to the
	 * kernel: the caller must not free or reuse them. */
	for (i = 0; i < n; i++) {
		if (opening && res[i] >= 0)
			close(res[i]);
		else if (!opening && f[i].fd >= 0)
			close(f[i].fd);
		f[i].fd = -1;
	}
	free(res);
	return r;
}

int vv_uring_close_fds(struct vv_uring *u, const int *fds, size_t n)
{
	int res[256];

	if (u->lost) {
		for (size_t k = 0; k < n; k++)
			close(fds[k]);
		return VV_EIO;
	}
	for (size_t i = 0; i < n;) {
		size_t b = n - i < u->entries ? n - i : u->entries;
		if (b > sizeof(res) / sizeof(*res))
			b = sizeof(res) / sizeof(*res);
		for (size_t k = 0; k < b; k++) {
			struct io_uring_sqe *sqe = io_uring_get_sqe(&u->ring);
			io_uring_prep_close(sqe, fds[i + k]);
			io_uring_sqe_set_data64(sqe, k);
			res[k] = -ECANCELED;
		}
		if (reap(u, (unsigned)b, res, b) < 0) {
			/* The ring broke mid-batch.  Drained, each close of the
			 * batch either ran or never will: close the ones that did
			 * not (ECANCELED, not reached) and the rest one by one.
			 * Not drained (u->lost): which are closed is unknown, and
			 * closing one twice could close another thread's new
			 * descriptor with the same number: leave this batch (a
			 * leak of read-only descriptors until exit). */
			for (size_t k = 0; k < b && !u->lost; k++)
				if (res[k] == -ECANCELED)
					close(fds[i + k]);
			for (size_t k = i + b; k < n; k++)
				close(fds[k]);
			return VV_EIO;
		}
		i += b;
	}
	return 0;
}

#else /* !VV_HAVE_LIBURING */

int vv_uring_new(unsigned entries, struct vv_uring **out)
{
	(void)entries;
	*out = NULL;
	return VV_ENOTSUP;
}

void vv_uring_free(struct vv_uring *u)
{
	(void)u;
}

bool vv_uring_lost(const struct vv_uring *u)
{
	(void)u;
	return false;
}

void vv_uring_test_fail(unsigned nth)
{
	(void)nth;
}

int vv_uring_open_batch(struct vv_uring *u, int dirfd, struct vv_uring_file *f, size_t n)
{
	(void)u;
	(void)dirfd;
	(void)f;
	(void)n;
	return VV_ENOTSUP;
}

int vv_uring_close_fds(struct vv_uring *u, const int *fds, size_t n)
{
	(void)u;
	(void)fds;
	(void)n;
	return VV_ENOTSUP;
}

#endif
