/*
 * bulk.c - the daemon's side of the bulk read (knn_ioctl.h "the bulk
 * read"): the caller's buffer taken from its process and written into.
 *
 * The ioctl names a memfd by its descriptor number in the caller's
 * process and its identity (st_dev, st_ino).  While the calling thread is
 * blocked in the ioctl, pidfd_getfd(2) duplicates that descriptor here: the
 * same open file description, so the same access mode, nothing more.  It
 * is written through a mapping the daemon keeps from one request to the
 * next (bulk_map.c: what that allows and how it is bounded), never with
 * write(2): the caller can hold the memfd's inode lock (a write of its own
 * from a mapping of a file it never serves) and a pwrite would wait for
 * it uninterruptibly, where a fault on the mapping takes no such lock.
 * Only a memfd made with MFD_ALLOW_SEALING, sealed against shrinking (so
 * the mapping cannot fault past its end) and not against writes (tmpfs,
 * not hugetlbfs, no set-id bits, open for reading and writing, the
 * identity named) is taken: no file on a disk, no tmpfs file others may
 * have open by name, nothing a write by the daemon (root: no quota, no
 * set-id clearing) could do more with than the caller's own write.
 *
 * Who: the request's thread id (FUSE: the caller's thread, in the
 * daemon's pid namespace) is opened as a pidfd, its fsuid must be the
 * request's uid, and the pidfd must still name a live task after that
 * check (pidfd_send_signal 0), so a thread killed and its id reused meanwhile is
 * refused, not written to.  A daemon that may not take descriptors from
 * other processes (not root, no CAP_SYS_PTRACE, Yama) answers EPERM and
 * the tool opens the files itself.  The memfd must hold no hole (the
 * caller allocated it: fallocate), so the daemon's writes allocate
 * nothing: a page would be charged to the daemon's memory cgroup for as
 * long as the caller keeps the memfd.  A hole the caller punches while
 * the request runs is never filled here either: the mapping is
 * registered with a userfaultfd that turns a fault on a missing page into
 * SIGBUS (bulk_map.c), the copy stops there and the request fails
 * (EINVAL).  vv_fs_opts.no_bulk (the CLI's
 * VECVAULT_BULK=0) answers ENOTTY in fs_ioctl, as a daemon without the
 * request (tests use it for the fallback).
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/magic.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/vfs.h>
#include <unistd.h>

#include "vecvault/error.h"
#include "vecvault/knn_ioctl.h"
#include "vecvault/log.h"
#include "fs_int.h"

#ifndef PIDFD_THREAD
#define PIDFD_THREAD O_EXCL
#endif
#ifndef F_SEAL_EXEC
#define F_SEAL_EXEC 0x0020               /* Linux 6.3: no chmod of the x bits */
#endif

struct bulk_sink {
	fuse_req_t req;
	uint32_t uid;
	struct bulk_maps *maps;
	int fd;                          /* the caller's memfd, duplicated; -1 */
	int pidfd;                       /* the calling thread's; -1 */
	struct bulk_map *map;            /* the memfd kept mapped */
	bool map_failed;
	bool hole;                       /* a copy found a page punched out */
};

/* The fsuid of task tid, from /proc, or -1. */
static long task_fsuid(pid_t tid)
{
	char path[64], line[256];
	long uid = -1, r, e, s, f;
	FILE *fp;

	snprintf(path, sizeof(path), "/proc/%d/status", (int)tid);
	if (!(fp = fopen(path, "re")))
		return -1;
	while (fgets(line, sizeof(line), fp))
		if (sscanf(line, "Uid: %ld %ld %ld %ld", &r, &e, &s, &f) == 4) {
			uid = f;
			break;
		}
	fclose(fp);
	return uid;
}

/* ---- what a descriptor is, before and after it is taken ----------------
 *
 * A descriptor taken from the caller is a reference to its file here:
 * fstat(2) and fstatfs(2) of a file on a FUSE filesystem ask that
 * filesystem's server, and close(2) sends it FLUSH and waits for the
 * answer, uninterruptibly.  The caller may be that server (fusermount3
 * needs no privilege; FLUSH is sent whatever its mount's allow_other) and
 * never answer: the worker would wait with the uid's slot, and the
 * unmount behind it (t1051).  So the descriptor is looked at first: the
 * very file a kept mapping was made from (kcmp, fs_bulk_map_same), or else
 * in /proc/TID/fdinfo (its mount and inode, read without calling into its
 * file system), and taken only when it is a file of the kernel's own shmem
 * mount (where memfds live: no server, no flush) of the inode named; once
 * taken it must answer F_GET_SEALS (shmem or hugetlbfs: no server either),
 * since another thread of the caller may have put another file under that
 * number meanwhile, and a file that does not is closed aside, on a thread
 * of its own that may wait (at most ASIDE_MAX at a time; beyond, requests
 * are refused EBUSY before any descriptor is taken). */

#define ASIDE_MAX 4u

static unsigned aside_n;                 /* atomic: files being closed aside */
static long shm_mnt = -1;                /* the mount id of memfds */
static pthread_once_t shm_once = PTHREAD_ONCE_INIT;

/* The mount id and inode of descriptor fd of task tid (0: this process),
 * from fdinfo: 0, VV_EBADF (no such descriptor), VV_EPERM (unreadable). */
static int fd_where(pid_t tid, int fd, long *mnt, unsigned long long *ino)
{
	char path[64], line[128];
	FILE *fp;
	int seen = 0;

	if (tid)
		snprintf(path, sizeof(path), "/proc/%d/fdinfo/%d", (int)tid, fd);
	else
		snprintf(path, sizeof(path), "/proc/self/fdinfo/%d", fd);
	if (!(fp = fopen(path, "re")))
		return errno == ENOENT ? VV_EBADF : VV_EPERM;
	/* the file's own lines come first; lines a file type adds later
	 * (inotify, fanotify) start otherwise */
	while (seen != 3 && fgets(line, sizeof(line), fp)) {
		if (!(seen & 1) && sscanf(line, "mnt_id: %ld", mnt) == 1)
			seen |= 1;
		else if (!(seen & 2) && sscanf(line, "ino: %llu", ino) == 1)
			seen |= 2;
	}
	fclose(fp);
	return seen == 3 ? 0 : VV_EPERM;
}

static void shm_learn(void)
{
	unsigned long long ino;
	int fd = memfd_create("vecvault-shm-id", MFD_CLOEXEC);

	if (fd >= 0 && fd_where(0, fd, &shm_mnt, &ino) < 0)
		shm_mnt = -1;
	if (fd >= 0)
		close(fd);
	if (shm_mnt < 0)
		vv_log(VV_LOG_WARN, "fs: bulk read: cannot tell memfds' mount; refusing bulk reads");
}

static void *aside(void *arg)
{
	close((int)(intptr_t)arg);               /* may wait for a FUSE server */
	__atomic_sub_fetch(&aside_n, 1, __ATOMIC_RELEASE);
	return NULL;
}

/* Closes fd, a file taken that is no memfd, on a thread of its own. */
static void close_aside(int fd)
{
	pthread_attr_t a;
	pthread_t t;

	__atomic_add_fetch(&aside_n, 1, __ATOMIC_ACQUIRE);
	pthread_attr_init(&a);
	pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED);
	if (pthread_create(&t, &a, aside, (void *)(intptr_t)fd) != 0)
		/* kept open (and counted) rather than closed here: a close
		 * may wait for as long as that file's server likes */
		vv_log(VV_LOG_WARN, "fs: bulk read: no thread to close a taken descriptor; kept");
	pthread_attr_destroy(&a);
}

/* The caller's descriptor h->memfd, checked (above), into b->fd. */
static int sink_open(void *arg, const struct vv_bulk_hdr *h)
{
	struct bulk_sink *b = arg;
	const struct fuse_ctx *cx = fuse_req_ctx(b->req);
	struct statfs sf;
	struct stat st;
	unsigned long long ino;
	long mnt;
	int pfd, fd = -1, seals, fl, r = 0;

	if (cx->pid <= 0)
		return VV_EPERM;                 /* another pid namespace */
	pfd = (int)syscall(SYS_pidfd_open, cx->pid, PIDFD_THREAD);
	if (pfd < 0 && errno == EINVAL)
		pfd = (int)syscall(SYS_pidfd_open, cx->pid, 0);   /* before 6.9: a leader */
	if (pfd < 0)
		return errno == ESRCH ? VV_EPERM : vv_err_from_errno(errno);
	if (task_fsuid(cx->pid) != (long)b->uid ||
	    syscall(SYS_pidfd_send_signal, pfd, 0, NULL, 0) < 0) {
		r = VV_EPERM;                    /* not the caller (any more) */
		goto out;
	}
	pthread_once(&shm_once, shm_learn);
	if (shm_mnt < 0) {
		r = VV_EPERM;
		goto out;
	}
	/* what it is, before it is taken (above): the file a kept mapping
	 * was made from (kcmp, ~1 us), or else its fdinfo (8-18 us) */
	if (!fs_bulk_map_same(b->maps, b->uid, h->mem_dev, h->mem_ino, cx->pid, h->memfd)) {
		if ((r = fd_where(cx->pid, h->memfd, &mnt, &ino)) < 0)
			goto out;
		if (mnt != shm_mnt) {
			r = VV_EINVAL;           /* no memfd: never taken */
			goto out;
		}
		if (ino != h->mem_ino) {
			r = VV_EBADF;            /* not the buffer named */
			goto out;
		}
	}
	if (__atomic_load_n(&aside_n, __ATOMIC_ACQUIRE) >= ASIDE_MAX) {
		r = VV_EBUSY;
		goto out;
	}
	if ((fd = (int)syscall(SYS_pidfd_getfd, pfd, h->memfd, 0)) < 0) {
		r = errno == EBADF ? VV_EBADF : VV_EPERM;
		goto out;
	}
	/* F_GET_SEALS answers for shmem and hugetlbfs files only, without
	 * calling into any file system: anything else was swapped in
	 * meanwhile (maybe a FUSE file).  For those two fstat, fstatfs and
	 * close ask no server: the checks below find which file it is */
	if (fcntl(fd, F_GET_SEALS) < 0) {
		close_aside(fd);
		fd = -1;
		r = VV_EBADF;
		goto out;
	}
	if (fstat(fd, &st) < 0 || fstatfs(fd, &sf) < 0) {
		r = vv_err_from_errno(errno);
		goto out;
	}
	if (!S_ISREG(st.st_mode) || (uint64_t)st.st_dev != h->mem_dev ||
	    (uint64_t)st.st_ino != h->mem_ino) {
		r = VV_EBADF;                    /* not the buffer named */
		goto out;
	}
	seals = fcntl(fd, F_GET_SEALS);
	if (sf.f_type != TMPFS_MAGIC || (st.st_mode & (S_ISUID | S_ISGID)) || seals < 0 ||
	    (seals & ~(F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_EXEC)) || !(seals & F_SEAL_SHRINK)) {
		r = VV_EINVAL;                   /* no memfd, sealed against writes, may shrink */
		goto out;
	}
	fl = fcntl(fd, F_GETFL);
	if (fl < 0 || (fl & O_ACCMODE) != O_RDWR) {   /* a shared mapping needs both */
		r = VV_EBADF;
		goto out;
	}
	if ((uint64_t)st.st_size < h->off + (uint64_t)h->nnames * h->slot) {
		r = VV_ENOSPC;                   /* the slots must lie inside it */
		goto out;
	}
	/* and be the caller's pages already (a copy into a hole fails
	 * anyway: bulk_map.c's userfaultfd; this refuses it before any name
	 * is looked at).  The whole memfd allocated (st_blocks: O(1), where
	 * SEEK_HOLE walked every page, 10% of the daemon's CPU in perf) */
	if ((uint64_t)st.st_blocks * 512 < (uint64_t)st.st_size) {
		r = VV_EINVAL;
		goto out;
	}
	b->fd = fd;
	b->pidfd = pfd;
	fd = pfd = -1;
	/* never write(2): the caller can hold the memfd's inode lock (a
	 * write of its own from a mapping of a file it never serves), and a
	 * pwrite would wait for it uninterruptibly; a fault on the mapping
	 * takes no such lock.  No mapping to be had (the bounds): EBUSY, the
	 * tool opens those files itself */
	if (!(b->map = fs_bulk_map_get(b->maps, b->uid, b->fd, &st, b->pidfd,
				       h->off + (uint64_t)h->nnames * h->slot)))
		r = VV_EBUSY;
out:
	if (fd >= 0)
		close(fd);
	if (pfd >= 0)
		close(pfd);
	return r;
}

static int sink_put(void *arg, uint64_t off, const void *p, size_t len)
{
	struct bulk_sink *b = arg;
	int r;

	if ((r = fs_bulk_map_put(b->map, off, p, len)) < 0)
		b->map_failed = true;
	if (r == VV_EINVAL)
		b->hole = true;
	return r;
}

int fs_bulk_read(struct vv_fs *fs, fuse_req_t req, const struct vv_ctx *c, struct vv_dir *dh,
		 struct vv_bulk_ioc *io)
{
	struct bulk_sink b = { req, c->id.uid, &fs->maps, -1, -1, NULL, false, false };
	struct vv_bulk_sink sk = { sink_open, sink_put, &b };
	int r;

	r = vv_vault_bulk_read(fs->v, c, dh, io, &sk);
	fs_bulk_map_release(b.maps, b.map, b.map_failed);
	/* a hole punched while the request ran, which a copy met and left a
	 * hole: the caller broke its side, the request fails (what it read
	 * is audited) */
	if (b.hole)
		r = VV_EINVAL;
	if (b.fd >= 0)
		close(b.fd);
	if (b.pidfd >= 0)
		close(b.pidfd);
	return r;
}
