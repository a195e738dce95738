/*
 * os.c - the real system-call table and helpers built on vv_os (see os.h).
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

#include "os.h"

static int r_open(const char *p, int fl, mode_t m)
{
	int fd = open(p, fl | O_CLOEXEC, m);
	return fd < 0 ? -errno : fd;
}
static int r_close(int fd) { return close(fd) < 0 ? -errno : 0; }
static ssize_t r_pread(int fd, void *b, size_t n, off_t o)
{
	ssize_t r = pread(fd, b, n, o);
	return r < 0 ? -errno : r;
}
static ssize_t r_pwrite(int fd, const void *b, size_t n, off_t o)
{
	ssize_t r = pwrite(fd, b, n, o);
	return r < 0 ? -errno : r;
}
static int r_fsync(int fd) { return fsync(fd) < 0 ? -errno : 0; }
static int r_ftruncate(int fd, off_t l) { return ftruncate(fd, l) < 0 ? -errno : 0; }
static int r_fstat(int fd, struct stat *st) { return fstat(fd, st) < 0 ? -errno : 0; }
static int r_stat(const char *p, struct stat *st) { return stat(p, st) < 0 ? -errno : 0; }
static int r_lstat(const char *p, struct stat *st) { return lstat(p, st) < 0 ? -errno : 0; }
static int r_unlink(const char *p) { return unlink(p) < 0 ? -errno : 0; }
static int r_rename(const char *a, const char *b) { return rename(a, b) < 0 ? -errno : 0; }
static int r_mkdir(const char *p, mode_t m) { return mkdir(p, m) < 0 ? -errno : 0; }
static int r_rmdir(const char *p) { return rmdir(p) < 0 ? -errno : 0; }
static int r_flock(int fd, int op) { return flock(fd, op) < 0 ? -errno : 0; }
static int r_fallocate(int fd, int mode, off_t o, off_t l)
{
	return fallocate(fd, mode, o, l) < 0 ? -errno : 0;
}

static void r_writeback(int fd, off_t len)
{
	(void)sync_file_range(fd, 0, len, SYNC_FILE_RANGE_WRITE);
}

const struct vv_os_ops vv_os_real = {
	.open = r_open, .close = r_close, .pread = r_pread, .pwrite = r_pwrite,
	.fsync = r_fsync, .ftruncate = r_ftruncate, .fstat = r_fstat,
	.stat = r_stat, .lstat = r_lstat, .unlink = r_unlink, .rename = r_rename, .mkdir = r_mkdir,
	.rmdir = r_rmdir, .flock = r_flock, .fallocate = r_fallocate,
	.writeback = r_writeback,
};

const struct vv_os_ops *vv_os = &vv_os_real;

void vv_os_set(const struct vv_os_ops *ops)
{
	vv_os = ops ? ops : &vv_os_real;
}

ssize_t vv_os_pread_full(int fd, void *buf, size_t n, off_t off)
{
	size_t done = 0;

	while (done < n) {
		ssize_t r = vv_os_pread(fd, (char *)buf + done, n - done, off + (off_t)done);
		if (r == -EINTR)
			continue;
		if (r < 0)
			return r;
		if (r == 0)
			break;
		done += (size_t)r;
	}
	return (ssize_t)done;
}

int vv_os_pwrite_full(int fd, const void *buf, size_t n, off_t off)
{
	size_t done = 0;

	while (done < n) {
		ssize_t r = vv_os_pwrite(fd, (const char *)buf + done, n - done, off + (off_t)done);
		if (r == -EINTR)
			continue;
		if (r < 0)
			return (int)r;
		if (r == 0)
			return -EIO;
		done += (size_t)r;
	}
	return 0;
}

int vv_os_fsync_dir(const char *path)
{
	int fd = vv_os_open(path, O_RDONLY | O_DIRECTORY, 0);
	int r;

	if (fd < 0)
		return fd;
	r = vv_os_fsync(fd);
	vv_os_close(fd);
	return r;
}

/* Create path's temporary sibling for writing.  O_EXCL|O_NOFOLLOW: a name
 * someone planted there (a symbolic link to a victim, a file they own) is
 * never opened, let alone truncated; it is unlinked (unlink does not follow
 * links) and the create tried once more.  A stale file from a crash takes
 * the same path.  If the name is taken again at once, fail: someone is
 * racing us. */
static int open_tmp(const char *tmp, mode_t mode)
{
	int fd = vv_os_open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW, mode);

	if (fd != -EEXIST)
		return fd;
	fd = vv_os_unlink(tmp);
	if (fd < 0 && fd != -ENOENT)
		return fd;
	return vv_os_open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW, mode);
}

int vv_os_write_replace(const char *path, const void *buf, size_t n, mode_t mode, bool sync_dir)
{
	char tmp[PATH_MAX], dir[PATH_MAX];
	char *slash;
	int fd, r;

	if (snprintf(tmp, sizeof(tmp), "%s.tmp", path) >= (int)sizeof(tmp))
		return -ENAMETOOLONG;
	fd = open_tmp(tmp, mode);
	if (fd < 0)
		return fd;
	r = vv_os_pwrite_full(fd, buf, n, 0);
	if (r == 0)
		r = vv_os_fsync(fd);
	vv_os_close(fd);
	if (r == 0)
		r = vv_os_rename(tmp, path);
	if (r < 0) {
		vv_os_unlink(tmp);
		return r;
	}
	if (!sync_dir)
		return 0;
	snprintf(dir, sizeof(dir), "%s", path);
	slash = strrchr(dir, '/');
	if (slash == dir)
		slash[1] = '\0';
	else if (slash)
		*slash = '\0';
	else
		snprintf(dir, sizeof(dir), ".");
	return vv_os_fsync_dir(dir);
}

int vv_os_write_atomic(const char *path, const void *buf, size_t n, mode_t mode)
{
	return vv_os_write_replace(path, buf, n, mode, true);
}

int vv_os_read_file(const char *path, size_t max, void **out, size_t *outlen)
{
	struct stat st;
	void *buf = NULL;
	ssize_t n;
	int fd, r;

	*out = NULL;
	*outlen = 0;
	/* O_NOFOLLOW: a symbolic link planted under one of our names must not
	 * make us read (and maybe show) a file of someone else's choosing. */
	fd = vv_os_open(path, O_RDONLY | O_NOFOLLOW, 0);
	if (fd < 0)
		return fd;
	if ((r = vv_os_fstat(fd, &st)) < 0)
		goto out;
	if (!S_ISREG(st.st_mode)) {
		r = -EINVAL;
		goto out;
	}
	if ((size_t)st.st_size > max) {
		r = -EFBIG;
		goto out;
	}
	buf = malloc((size_t)st.st_size + 1);
	if (!buf) {
		r = -ENOMEM;
		goto out;
	}
	n = vv_os_pread_full(fd, buf, (size_t)st.st_size, 0);
	if (n < 0) {
		r = (int)n;
		goto out;
	}
	((char *)buf)[n] = '\0';
	*out = buf;
	*outlen = (size_t)n;
	buf = NULL;
	r = 0;
out:
	free(buf);
	vv_os_close(fd);
	return r;
}
