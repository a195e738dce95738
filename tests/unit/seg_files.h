/*
 * seg_files.h - what the unit tests of collections of segment files share
 * (test_vector_uring.c, test_vector_tiny.c): writing files and npy
 * headers, counting this process's descriptors and threads, refusing
 * io_uring as container seccomp profiles do, running a check in a child
 * (as another uid).
 */
#ifndef VV_TEST_SEG_FILES_H
#define VV_TEST_SEG_FILES_H

#include <dirent.h>
#include <errno.h>
#include <grp.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

/* dir/name gets p[0 .. n); exits on failure. */
static inline void segf_write(const char *dir, const char *name, const void *p, size_t n)
{
	char path[300];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	if (!(f = fopen(path, "wb")) || fwrite(p, 1, n, f) != n || fclose(f) != 0) {
		perror(path);
		exit(1);
	}
}

/* An npy 1.0 header with dict, padded to 64 bytes, at buf; its length. */
static inline size_t segf_npy_head(uint8_t *buf, const char *dict)
{
	size_t hl = strlen(dict), pad = (64 - (10 + hl + 1) % 64) % 64, h = hl + pad + 1;

	memcpy(buf, "\x93NUMPY\x01\x00", 8);
	buf[8] = (uint8_t)h;
	buf[9] = (uint8_t)(h >> 8);
	memcpy(buf + 10, dict, hl);
	memset(buf + 10 + hl, ' ', pad);
	buf[10 + hl + pad] = '\n';
	return 10 + h;
}

/* Entries of /proc/self/WHAT ("fd", "task"), or -1. */
/* The tests' seeded generator (an LCG: the same rows on every run). */
static inline unsigned segf_rnd(unsigned *s)
{
	*s = *s * 1103515245u + 12345u;
	return *s >> 8;
}

/* n floats of segf_rnd in [-10, 10), steps of 0.001. */
static inline void segf_fill(float *v, size_t n, unsigned *seed)
{
	for (size_t i = 0; i < n; i++)
		v[i] = (float)(segf_rnd(seed) % 20000) / 1000.0f - 10.0f;
}

static inline int segf_proc_count(const char *what)
{
	char path[64];
	DIR *d;
	struct dirent *de;
	int n = 0;

	snprintf(path, sizeof(path), "/proc/self/%s", what);
	if (!(d = opendir(path)))
		return -1;
	while ((de = readdir(d)))
		n += de->d_name[0] != '.';
	closedir(d);
	return n;
}

/* Refuse io_uring_setup with ENOSYS, as container runtimes' default
 * seccomp profiles do. */
static inline int segf_deny_uring(void)
{
	struct sock_filter f[] = {
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_io_uring_setup, 0, 1),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | ENOSYS),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
	};
	struct sock_fprog p = { .len = sizeof(f) / sizeof(f[0]), .filter = f };

	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
		return -1;
	return prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &p);
}

/* Run fn(arg) in a child (as uid if uid >= 0); its exit status, or -1. */
static inline int segf_in_child(int uid, int (*fn)(void *), void *arg)
{
	int st;
	pid_t p = fork();

	if (p == 0) {
		if (uid >= 0 && (setgroups(0, NULL) < 0 || setresgid((gid_t)uid, (gid_t)uid, (gid_t)uid) < 0 ||
				 setresuid((uid_t)uid, (uid_t)uid, (uid_t)uid) < 0))
			_exit(90);
		_exit(fn(arg));
	}
	if (p < 0 || waitpid(p, &st, 0) < 0 || !WIFEXITED(st))
		return -1;
	return WEXITSTATUS(st);
}

#endif
