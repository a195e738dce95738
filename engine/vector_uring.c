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
 * caller takes the system calls one by one.  The ring does only what the
 * process could do itself with the same credentials: openat(O_RDONLY)
 * relative to the caller's directory descriptor, statx of that descriptor,
 * a read of it, close.
 */
#include <errno.h>
#include <fcntl.h>
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
};

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

/* Submit what is queued and reap `want` completions: res[user_data] gets
 * each result.  0 or a VV_E* code (the ring itself failed: the caller's
 * results are not to be trusted and it must fall back). */
static int reap(struct vv_uring *u, unsigned want, int *res, size_t nres)
{
	unsigned got = 0;

	while (got < want) {
		struct io_uring_cqe *cqe;
		unsigned head, n = 0;
		int r = io_uring_submit_and_wait(&u->ring, 1);
		if (r < 0 && r != -EINTR && r != -EAGAIN && r != -EBUSY)
			return vv_err_from_errno(-r);
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

/* The type, size and device of open file fd: statx, or fstat where a
 * seccomp filter refuses statx.  0 or an errno. */
static int file_stat(int fd, struct statx *sx)
{
	struct stat st;

	if (statx(fd, "", AT_EMPTY_PATH | AT_STATX_SYNC_AS_STAT, STATX_TYPE | STATX_SIZE, sx) == 0)
		return 0;
	if (errno != ENOSYS || fstat(fd, &st) < 0)
		return errno;
	memset(sx, 0, sizeof(*sx));
	sx->stx_mode = (uint16_t)st.st_mode;
	sx->stx_size = (uint64_t)st.st_size;
	sx->stx_dev_major = major(st.st_dev);
	sx->stx_dev_minor = minor(st.st_dev);
	return 0;
}

int vv_uring_open_batch(struct vv_uring *u, int dirfd, struct vv_uring_file *f, size_t n)
{
	unsigned want = 0;
	int *res;
	size_t i;
	int r;

	if (!n)
		return 0;
	if (n > u->entries)
		return VV_EINVAL;
	if (!(res = malloc(n * sizeof(*res))))
		return VV_ENOMEM;
	for (i = 0; i < n; i++) {
		struct io_uring_sqe *sqe = io_uring_get_sqe(&u->ring);
		io_uring_prep_openat(sqe, dirfd, f[i].name, O_RDONLY | O_CLOEXEC, 0);
		io_uring_sqe_set_data64(sqe, i);
		f[i].fd = -1;
		f[i].headlen = 0;
		res[i] = -ECANCELED;
	}
	if ((r = reap(u, (unsigned)n, res, n)) < 0)
		goto fail;
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
	/* the ring broke mid-batch: close what opened (a read still in
	 * flight holds its own reference to the file, and writes into head
	 * until the caller frees the ring) */
	for (i = 0; i < n; i++)
		if (f[i].fd >= 0) {
			close(f[i].fd);
			f[i].fd = -1;
		}
	free(res);
	return r;
}

int vv_uring_close_fds(struct vv_uring *u, const int *fds, size_t n)
{
	for (size_t i = 0; i < n;) {
		size_t b = n - i < u->entries ? n - i : u->entries;
		for (size_t k = 0; k < b; k++) {
			struct io_uring_sqe *sqe = io_uring_get_sqe(&u->ring);
			io_uring_prep_close(sqe, fds[i + k]);
			io_uring_sqe_set_data64(sqe, UINT64_MAX);
		}
		if (reap(u, (unsigned)b, NULL, 0) < 0) {
			/* The ring broke with this batch submitted or not: which
			 * of its descriptors are closed is unknown, and closing
			 * one twice could close another thread's new descriptor
			 * with the same number.  Leave this batch (a leak of
			 * descriptors of read-only files until exit), close the
			 * rest one by one. */
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
