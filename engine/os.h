/*
 * os.h - every system call on STORE goes through here.
 *
 * The engine's modules (store, meta's VFS, content, audit) never call open(2),
 * pwrite(2), fsync(2), rename(2) ... directly: they call vv_os_*(), which go
 * through a table of function pointers.  Tests swap the table to make calls
 * fail (ENOSPC, EIO) or to record every write and fsync and then replay a
 * "power cut" (synced data plus an arbitrary subset of unsynced writes).
 *
 * Convention: like the kernel, calls return >= 0 on success and -errno on
 * failure (never -1 with errno).  Callers convert with vv_err_from_errno(-r).
 */
#ifndef VV_OS_H
#define VV_OS_H

#include <dirent.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/stat.h>
#include <sys/types.h>

struct vv_os_ops {
	int (*open)(const char *path, int flags, mode_t mode);
	int (*close)(int fd);
	ssize_t (*pread)(int fd, void *buf, size_t n, off_t off);
	ssize_t (*pwrite)(int fd, const void *buf, size_t n, off_t off);
	int (*fsync)(int fd);             /* also used for directories */
	int (*ftruncate)(int fd, off_t len);
	int (*fstat)(int fd, struct stat *st);
	int (*stat)(const char *path, struct stat *st);
	int (*lstat)(const char *path, struct stat *st);
	int (*unlink)(const char *path);
	int (*rename)(const char *from, const char *to);
	int (*mkdir)(const char *path, mode_t mode);
	int (*rmdir)(const char *path);
	int (*flock)(int fd, int op);
	int (*fallocate)(int fd, int mode, off_t off, off_t len);
	/* Start write-back of [0, len) now (sync_file_range WRITE): a hint
	 * with no durability meaning; may be NULL in test tables. */
	void (*writeback)(int fd, off_t len);
};

/* The table in force.  Tests may replace it with vv_os_set(); NULL restores
 * the real one.  Not thread-safe: swap only while no vault is open. */
extern const struct vv_os_ops *vv_os;
void vv_os_set(const struct vv_os_ops *ops);
extern const struct vv_os_ops vv_os_real;

static inline int vv_os_open(const char *p, int fl, mode_t m) { return vv_os->open(p, fl, m); }
static inline int vv_os_close(int fd) { return vv_os->close(fd); }
static inline ssize_t vv_os_pread(int fd, void *b, size_t n, off_t o) { return vv_os->pread(fd, b, n, o); }
static inline ssize_t vv_os_pwrite(int fd, const void *b, size_t n, off_t o) { return vv_os->pwrite(fd, b, n, o); }
static inline int vv_os_fsync(int fd) { return vv_os->fsync(fd); }
static inline int vv_os_ftruncate(int fd, off_t l) { return vv_os->ftruncate(fd, l); }
static inline int vv_os_fstat(int fd, struct stat *st) { return vv_os->fstat(fd, st); }
static inline int vv_os_stat(const char *p, struct stat *st) { return vv_os->stat(p, st); }
static inline int vv_os_lstat(const char *p, struct stat *st) { return vv_os->lstat(p, st); }
static inline int vv_os_unlink(const char *p) { return vv_os->unlink(p); }
static inline int vv_os_rename(const char *a, const char *b) { return vv_os->rename(a, b); }
static inline int vv_os_mkdir(const char *p, mode_t m) { return vv_os->mkdir(p, m); }
static inline int vv_os_rmdir(const char *p) { return vv_os->rmdir(p); }
static inline int vv_os_flock(int fd, int op) { return vv_os->flock(fd, op); }
static inline int vv_os_fallocate(int fd, int mode, off_t o, off_t l) { return vv_os->fallocate(fd, mode, o, l); }
static inline void vv_os_writeback(int fd, off_t l) { if (vv_os->writeback) vv_os->writeback(fd, l); }

/* Helpers built on the table. */

/* Read up to n bytes at off, retrying EINTR and partial reads: returns the
 * bytes read (fewer than n only at end of file) or -errno. */
ssize_t vv_os_pread_full(int fd, void *buf, size_t n, off_t off);
/* Write exactly n bytes at off, retrying partial writes; 0 or -errno. */
int vv_os_pwrite_full(int fd, const void *buf, size_t n, off_t off);
/* fsync the directory at path (after creating/renaming/unlinking in it). */
int vv_os_fsync_dir(const char *path);
/* Write a whole file atomically: PATH.tmp (created O_EXCL|O_NOFOLLOW, so a
 * planted link or file there is never written through), fsync, rename over
 * path, and with sync_dir fsync the directory (without it the rename may be
 * lost in a power cut: old or new content, never torn). */
int vv_os_write_replace(const char *path, const void *buf, size_t n, mode_t mode, bool sync_dir);
/* vv_os_write_replace with sync_dir. */
int vv_os_write_atomic(const char *path, const void *buf, size_t n, mode_t mode);
/* Read a whole small regular file (<= max bytes) into a malloc'd buffer
 * (caller frees).  -EFBIG if larger than max; -ELOOP if path is a symbolic
 * link (never followed), -EINVAL if not a regular file. */
int vv_os_read_file(const char *path, size_t max, void **out, size_t *outlen);

#endif
