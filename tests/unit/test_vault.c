/*
 * test_vault.c - the vault layer without FUSE: POSIX operations on inodes,
 * collection boundaries, open-unlinked files, readdir cookies, and failure
 * paths made by swapping the OS table (ENOSPC on chunk writes, EIO on the
 * metadata log): errors come back as codes, the vault never serves wrong
 * data, and what was committed survives a reopen.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "os.h"
#include "tap.h"
#include "vecvault/error.h"
#include "vecvault/vault.h"

#define PASS "vault unit test"

static char top[256], store[300];
static struct vv_ctx root_c = { .id = { .uid = 0, .gid = 0 }, .umask = 022, .comm = "test" };
static struct vv_ctx nobody_c = { .id = { .uid = 65534, .gid = 65534 }, .umask = 022, .comm = "test" };

/* --- fault injection ------------------------------------------------------- */
static int fail_chunk_writes;      /* -errno to return for pwrite on chunk files */
static int fail_wal_writes;        /* -errno for pwrite on meta.db-wal */
static char fdpath[1024][512];

static int f_open(const char *p, int fl, mode_t m)
{
	int fd = vv_os_real.open(p, fl, m);
	if (fd >= 0 && fd < 1024)
		snprintf(fdpath[fd], sizeof(fdpath[fd]), "%s", p);
	return fd;
}

static ssize_t f_pwrite(int fd, const void *b, size_t n, off_t o)
{
	if (fd >= 0 && fd < 1024) {
		if (fail_chunk_writes && strstr(fdpath[fd], "/chunks/"))
			return fail_chunk_writes;
		if (fail_wal_writes && strstr(fdpath[fd], "meta.db-wal"))
			return fail_wal_writes;
	}
	return vv_os_real.pwrite(fd, b, n, o);
}

static struct vv_os_ops faulty;

/* --- helpers ------------------------------------------------------------------ */
static struct vv_vault *open_vault(void)
{
	struct vv_vault_opts o = { .flags = VV_VAULT_ALLOW_TEST_KDF | VV_VAULT_NO_AUDIT };
	struct vv_vault *v = NULL;
	int r = vv_vault_open(store, PASS, strlen(PASS), &o, &v);

	if (r < 0)
		printf("# open: %s\n", vv_strerror(r));
	return v;
}

static uint8_t *pattern(size_t n, unsigned seed)
{
	uint8_t *b = malloc(n);
	for (size_t i = 0; i < n; i++)
		b[i] = (uint8_t)((i * 2654435761u + seed) >> 13);
	return b;
}

static int write_file(struct vv_vault *v, uint64_t dir, const char *name, const uint8_t *data,
		      size_t n, uint64_t *ino)
{
	struct vv_attr a;
	struct vv_file *fh;
	int r = vv_vault_create(v, &root_c, dir, name, 0644, O_WRONLY, &a, &fh);
	ssize_t w;

	if (r < 0)
		return r;
	*ino = a.ino;
	w = vv_vault_write(v, &root_c, fh, data, n, 0);
	r = vv_vault_release(v, fh);
	return w < 0 ? (int)w : r;
}

static int read_all(struct vv_vault *v, uint64_t ino, uint8_t *buf, size_t n)
{
	struct vv_file *fh;
	bool kc;
	ssize_t got;
	int r = vv_vault_open_file(v, &root_c, ino, O_RDONLY, &fh, &kc);

	if (r < 0)
		return r;
	got = vv_vault_read(v, fh, buf, n, 0);
	vv_vault_release(v, fh);
	return (int)got;
}

static int count_entry(void *ctx, const struct vv_dirent *e, const struct vv_attr *a)
{
	(*(int *)ctx)++;
	return 0;
}

int main(void)
{
	struct vv_vault *v;
	struct vv_attr a, c1, c2;
	struct vv_file *fh;
	uint64_t ino, big_ino, small_ino;
	uint8_t *big = pattern(4 << 20, 1), *buf = malloc(4 << 20);
	const char *tmp = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
	char cmd[600];
	bool kc;
	int r, n;

	setenv("VECVAULT_TEST_KDF", "1", 1);
	snprintf(top, sizeof(top), "%s/vv-vault-XXXXXX", tmp);
	if (!mkdtemp(top))
		tap_skip_all("cannot make a temp dir");
	snprintf(store, sizeof(store), "%s/store", top);
	snprintf(cmd, sizeof(cmd), "%s/state", top);
	setenv("VECVAULT_STATE_DIR", cmd, 1);
	faulty = vv_os_real;
	faulty.open = f_open;
	faulty.pwrite = f_pwrite;

	is_int(vv_vault_create_store(store, PASS, strlen(PASS), VV_KDF_PROFILE_TEST,
				     VV_VAULT_ALLOW_TEST_KDF, 0, 0), 0, "create a store");
	v = open_vault();
	ok(v != NULL, "open it");

	/* namespace and collections */
	is_int(vv_vault_mkdir(v, &root_c, VV_ROOT_INO, "c1", 0755, &c1), 0, "mkdir collection c1");
	is_int(vv_vault_mkdir(v, &root_c, VV_ROOT_INO, "c2", 0755, &c2), 0, "mkdir collection c2");
	is_int(vv_vault_mkdir(v, &root_c, VV_ROOT_INO, "c1", 0755, &a), VV_EEXIST, "mkdir twice: EEXIST");
	is_int(write_file(v, c1.ino, "big", big, 3 << 20, &big_ino), 0, "write 3 MiB");
	memset(buf, 0, 4 << 20);
	is_int(read_all(v, big_ino, buf, 4 << 20), 3 << 20, "read it back: full length");
	ok(memcmp(buf, big, 3 << 20) == 0, "read it back: same bytes");
	is_int(write_file(v, c1.ino, "small", (const uint8_t *)"hello", 5, &small_ino), 0, "small inline file");
	is_int(vv_vault_rename(v, &root_c, c1.ino, "small", c2.ino, "small", 0), VV_EXDEV,
	       "rename across collections: EXDEV");
	is_int(vv_vault_link(v, &root_c, small_ino, c2.ino, "l", &a), VV_EXDEV, "link across collections: EXDEV");
	is_int(vv_vault_rename(v, &root_c, c1.ino, "small", c1.ino, "small2", 0), 0, "rename within a collection");
	is_int(vv_vault_rename(v, &root_c, VV_ROOT_INO, "c2", VV_ROOT_INO, "c3", 0), 0, "rename a collection");
	is_int(vv_vault_create(v, &nobody_c, c1.ino, "x", 0644, O_WRONLY, &a, &fh), VV_EACCES,
	       "nobody cannot create in root's 0755 directory");
	is_int(vv_vault_lookup(v, &root_c, c1.ino, "missing", &a), VV_ENOENT, "lookup of a missing name");
	ok(a.ino == 0 && a.cacheable, "the negative entry may be cached (every user may search)");

	/* an unlinked file stays readable while open */
	is_int(vv_vault_open_file(v, &root_c, big_ino, O_RDONLY, &fh, &kc), 0, "open big");
	is_int(vv_vault_unlink(v, &root_c, c1.ino, "big"), 0, "unlink it while open");
	is_int(vv_vault_read(v, fh, buf, 65536, 65536), 65536, "still readable");
	ok(memcmp(buf, big + 65536, 65536) == 0, "with its bytes");
	vv_vault_release(v, fh);
	vv_vault_forget(v, big_ino, 1);
	is_int(vv_vault_getattr(v, &root_c, big_ino, &a), VV_ENOENT, "freed after the last reference");

	/* readdir cookies survive a removal in the middle */
	{
		struct vv_dir *dh;
		char nm[16];
		for (int i = 0; i < 300; i++) {
			snprintf(nm, sizeof(nm), "f%03d", i);
			write_file(v, c1.ino, nm, (const uint8_t *)"x", 1, &ino);
		}
		is_int(vv_vault_opendir(v, &root_c, c1.ino, &dh), 0, "opendir");
		n = 0;
		is_int(vv_vault_readdir(v, dh, 0, false, count_entry, &n), 0, "readdir");
		is_int(n, 2 + 300 + 1, "., .., 300 files and small2");
		vv_vault_releasedir(v, dh);
	}

	/* ENOSPC on chunk writes: the write fails, nothing is lost, recovery works */
	vv_vault_sync(v);
	vv_vault_close(v);
	vv_os_set(&faulty);
	v = open_vault();
	ok(v != NULL, "reopen with a failing disk table");
	fail_chunk_writes = -ENOSPC;
	r = vv_vault_create(v, &root_c, c1.ino, "full", 0644, O_WRONLY, &a, &fh);
	is_int(r, 0, "create succeeds (metadata only)");
	{
		ssize_t w = 0;
		for (int i = 0; i < 4 && w >= 0; i++)
			w = vv_vault_write(v, &root_c, fh, big + (size_t)i * (1 << 20), 1 << 20,
					   (uint64_t)i << 20);
		is_int(w, 1 << 20, "writes go to the write buffer");
		/* The full buffer went to the sealer, whose chunk write fails:
		 * the error comes back at flush (close) and the data stays. */
		is_int(vv_vault_flush(v, fh), VV_ENOSPC, "flush reports ENOSPC from the write-back");
		is_int(vv_vault_flush(v, fh), VV_ENOSPC, "again while the disk is full (retried)");
	}
	fail_chunk_writes = 0;
	is_int(vv_vault_fsync(v, fh, false), 0, "after space returns, fsync writes the buffered data");
	vv_vault_release(v, fh);
	is_int(read_all(v, small_ino, buf, 16), 5, "other files unaffected");

	/* EIO on the metadata log: the commit fails and the vault refuses writes */
	is_int(vv_vault_mkdir(v, &root_c, c1.ino, "d", 0755, &a), 0, "mkdir before the failure");
	fail_wal_writes = -EIO;
	ok(vv_vault_sync(v) < 0, "a commit with a failing WAL reports an error");
	is_int(vv_vault_mkdir(v, &root_c, c1.ino, "d2", 0755, &a), VV_EIO, "the vault then refuses changes");
	fail_wal_writes = 0;
	vv_vault_close(v);
	vv_os_set(NULL);

	v = open_vault();
	ok(v != NULL, "reopen after the failed commit");
	is_int(vv_vault_lookup(v, &root_c, VV_ROOT_INO, "c1", &c1), 0, "c1 is there");
	is_int(vv_vault_lookup(v, &root_c, c1.ino, "small2", &a), 0, "committed work survived");
	is_int(read_all(v, a.ino, buf, 16), 5, "and reads back");
	ok(memcmp(buf, "hello", 5) == 0, "same bytes");
	is_int(vv_vault_lookup(v, &root_c, c1.ino, "full", &a), 0, "the fsync'd file survived");
	is_int(read_all(v, a.ino, buf, 4 << 20), 4 << 20, "with all 4 MiB");
	ok(memcmp(buf, big, 4 << 20) == 0, "its bytes");
	{
		struct vv_fsck_report rep;
		is_int(vv_vault_fsck(v, true, NULL, NULL, &rep), 0, "fsck is clean");
	}
	vv_vault_close(v);

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", top);
	if (system(cmd) != 0)
		tap_diag("cleanup failed");
	free(big);
	free(buf);
	return tap_done();
}
