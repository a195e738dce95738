/*
 * privfile.c - opening the files we keep outside STORE without trusting the
 * directories they live in (see vecvault/privfile.h for the rules).
 *
 * Everything goes through vv_os so tests can fail it.  The checks run on the
 * opened descriptor (fstat), never on a path looked up a second time, so a
 * name swapped between the check and the use cannot slip through.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "os.h"
#include "vecvault/error.h"
#include "vecvault/log.h"
#include "vecvault/privfile.h"

/* Log the reason and copy it to why: the one place the text is made. */
static int refuse(char *why, size_t whylen, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static int refuse(char *why, size_t whylen, const char *fmt, ...)
{
	char msg[PATH_MAX + 256];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	vv_log(VV_LOG_ERR, "%s", msg);
	if (why && whylen)
		snprintf(why, whylen, "%s", msg);
	return VV_EUNSAFE;
}

int vv_privfile_dir_of(char *out, size_t n, const char *path)
{
	char *slash;

	if (snprintf(out, n, "%s", path) >= (int)n)
		return VV_ENAMETOOLONG;
	slash = strrchr(out, '/');
	if (!slash)
		snprintf(out, n, ".");
	else if (slash == out)
		slash[1] = '\0';
	else
		*slash = '\0';
	return 0;
}

/* The directory may be a symbolic link (/var/log -> elsewhere is common):
 * what matters is who can change the directory it leads to. */
static int check_dir(const char *dir, char *why, size_t whylen)
{
	struct stat st;
	uid_t me = geteuid();
	int r;

	if ((r = vv_os_stat(dir, &st)) < 0) {
		if (why && whylen)
			snprintf(why, whylen, "directory %s: %s", dir, strerror(-r));
		return vv_err_from_errno(-r);
	}
	if (!S_ISDIR(st.st_mode))
		return refuse(why, whylen, "%s is not a directory", dir);
	if (st.st_uid != me && st.st_uid != 0)
		return refuse(why, whylen, "directory %s is owned by uid %u, neither this user "
			      "(uid %u) nor root: its owner could replace the files in it",
			      dir, (unsigned)st.st_uid, (unsigned)me);
	if ((st.st_mode & 022) && !(st.st_mode & S_ISVTX))
		return refuse(why, whylen, "directory %s has mode %04o: group or others may "
			      "rename and replace files in it (and it is not sticky)",
			      dir, (unsigned)(st.st_mode & 07777));
	return 0;
}

int vv_privfile_check_parent(const char *path, char *why, size_t whylen)
{
	char dir[PATH_MAX];
	int r;

	if ((r = vv_privfile_dir_of(dir, sizeof(dir), path)) < 0)
		return r;
	return check_dir(dir, why, whylen);
}

int vv_privfile_open(const char *path, int flags, mode_t mode, mode_t deny, int *fd_out,
		     char *why, size_t whylen)
{
	struct stat st;
	uid_t me = geteuid();
	int fd = -1, r;

	*fd_out = -1;
	if (why && whylen)
		why[0] = '\0';
	if ((r = vv_privfile_check_parent(path, why, whylen)) < 0)
		goto out;
	/* O_TRUNC waits until we know whose file it is. */
	fd = vv_os_open(path, (flags & ~O_TRUNC) | O_NOFOLLOW | O_NOCTTY, mode);
	/* A link makes O_NOFOLLOW fail with ELOOP, or with EACCES on kernels
	 * that check O_CREAT first: look before saying which. */
	if ((fd == -ELOOP || fd == -EACCES) && vv_os_lstat(path, &st) == 0 && S_ISLNK(st.st_mode)) {
		r = refuse(why, whylen, "%s is a symbolic link; refusing to follow it", path);
		goto out;
	}
	if (fd < 0) {
		r = vv_err_from_errno(-fd);
		if (why && whylen)
			snprintf(why, whylen, "%s: %s", path, strerror(-fd));
		goto out;
	}
	if ((r = vv_os_fstat(fd, &st)) < 0) {
		r = vv_err_from_errno(-r);
		goto out;
	}
	if (!S_ISREG(st.st_mode)) {
		r = refuse(why, whylen, "%s is not a regular file", path);
		goto out;
	}
	if (st.st_uid != me) {
		r = refuse(why, whylen, "%s is owned by uid %u, not by this user (uid %u): "
			   "someone else created it; remove it or choose another path",
			   path, (unsigned)st.st_uid, (unsigned)me);
		goto out;
	}
	if (st.st_nlink != 1) {
		r = refuse(why, whylen, "%s has %lu hard links: it may be another file's name too",
			   path, (unsigned long)st.st_nlink);
		goto out;
	}
	if (st.st_mode & deny) {
		r = refuse(why, whylen, "%s has mode %04o: group or others may %s it; "
			   "expected at most %04o", path, (unsigned)(st.st_mode & 07777),
			   (st.st_mode & deny & 022) ? "write" : "read",
			   (unsigned)(0666 & ~deny));
		goto out;
	}
	if ((flags & O_TRUNC) && (r = vv_os_ftruncate(fd, 0)) < 0) {
		r = vv_err_from_errno(-r);
		goto out;
	}
	*fd_out = fd;
	fd = -1;
	r = 0;
out:
	if (fd >= 0)
		vv_os_close(fd);
	return r;
}

int vv_privfile_read(const char *path, size_t max, mode_t deny, void **out, size_t *outlen)
{
	struct stat st;
	char *buf = NULL;
	ssize_t n;
	int fd = -1, r;

	*out = NULL;
	*outlen = 0;
	if ((r = vv_privfile_open(path, O_RDONLY, 0, deny, &fd, NULL, 0)) < 0)
		goto out;
	if ((r = vv_os_fstat(fd, &st)) < 0) {
		r = vv_err_from_errno(-r);
		goto out;
	}
	if ((size_t)st.st_size > max) {
		r = VV_EFBIG;
		goto out;
	}
	if (!(buf = malloc((size_t)st.st_size + 1))) {
		r = VV_ENOMEM;
		goto out;
	}
	n = vv_os_pread_full(fd, buf, (size_t)st.st_size, 0);
	if (n < 0) {
		r = vv_err_from_errno((int)-n);
		goto out;
	}
	buf[n] = '\0';
	*out = buf;
	*outlen = (size_t)n;
	buf = NULL;
	r = 0;
out:
	free(buf);
	if (fd >= 0)
		vv_os_close(fd);
	return r;
}

int vv_privfile_replace(const char *path, const void *buf, size_t n, bool durable)
{
	int r;

	if ((r = vv_privfile_check_parent(path, NULL, 0)) < 0)
		return r;
	r = vv_os_write_replace(path, buf, n, 0600, durable);
	if (r < 0) {
		vv_log(VV_LOG_ERR, "%s: cannot replace: %s", path, strerror(-r));
		return vv_err_from_errno(-r);
	}
	return 0;
}

int vv_privfile_mkdir(const char *dir)
{
	char tmp[PATH_MAX];
	size_t n = strlen(dir);
	int r;

	if (n == 0 || n >= sizeof(tmp))
		return VV_ENAMETOOLONG;
	memcpy(tmp, dir, n + 1);
	for (size_t i = 1; i <= n; i++) {
		if (tmp[i] != '/' && tmp[i] != '\0')
			continue;
		tmp[i] = '\0';
		r = vv_os_mkdir(tmp, 0700);
		if (r < 0 && r != -EEXIST) {
			vv_log(VV_LOG_ERR, "cannot create directory %s: %s", tmp, strerror(-r));
			return vv_err_from_errno(-r);
		}
		if (i < n)
			tmp[i] = '/';
	}
	return check_dir(dir, NULL, 0);
}
