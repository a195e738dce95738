/*
 * test_snap.c - snapshots (vault_snap.c, meta_snap*.c): the view under
 * .snapshots with the same access check, EROFS for every change, chunk
 * references (a chunk outlives the live file while a snapshot names it and
 * is freed with the snapshot), fsck's counts, restore, remount, and the
 * retention rule over a year of snapshots on a fake clock.
 */
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "admin_int.h"
#include "snap_int.h"
#include "vecvault/log.h"
#include "tap.h"
#include "vault_files.h"
#include "vault_int.h"
#include "vecvault/error.h"
#include "vecvault/vault.h"

#define PASS "snap unit test"

static char top[256], store[300], state[300];
static struct vv_ctx root_c = { .id = { .uid = 0, .gid = 0, .pid = 1 }, .umask = 022, .comm = "test" };
static struct vv_ctx nobody_c = { .id = { .uid = 65534, .gid = 65534, .pid = 2 }, .umask = 022,
				  .comm = "test" };

static int call(struct vv_vault *v, uint32_t uid, const char *verb,
		const struct vv_admin_arg *args, size_t nargs, struct vv_admin_reply *rep)
{
	struct vv_admin_req rq = { .peer = { .uid = uid, .gid = uid, .pid = 1 },
				   .client = "local", .verb = verb, .nargs = nargs, .args = args };

	return vv_admin_call(v, &rq, rep);
}

static struct vv_vault *open_vault(void)
{
	struct vv_vault_opts o = { .flags = VV_VAULT_ALLOW_TEST_KDF | VV_VAULT_NO_AUDIT,
				   .state_dir = state, .knn_off = true };
	struct vv_vault *v = NULL;
	int r = vv_vault_open(store, PASS, strlen(PASS), &o, &v);

	if (r < 0)
		printf("# open: %s\n", vv_strerror(r));
	return v;
}



/* Read all of ino as c: bytes read or an error. */
static ssize_t read_as(struct vv_vault *v, const struct vv_ctx *c, uint64_t ino, uint8_t *buf, size_t n)
{
	struct vv_file *fh;
	bool kc;
	ssize_t got;
	int r = vv_vault_open_file(v, c, ino, O_RDONLY, &fh, &kc);

	if (r < 0)
		return r;
	got = vv_vault_read(v, fh, buf, n, 0);
	vv_vault_release(v, fh);
	return got;
}

static uint64_t look(struct vv_vault *v, const struct vv_ctx *c, uint64_t dir, const char *name, int *err)
{
	struct vv_attr a;
	int r = vv_vault_lookup(v, c, dir, name, &a);

	if (err)
		*err = r;
	return r == 0 ? a.ino : 0;
}

/* Chunk objects on disk. */
static int count_chunks(void)
{
	char cmd[600], line[64];
	FILE *p;
	int n = -1;

	snprintf(cmd, sizeof(cmd), "find '%s/chunks' -type f ! -name '.tmp-*' | wc -l", store);
	if ((p = popen(cmd, "r"))) {
		if (fgets(line, sizeof(line), p))
			n = atoi(line);
		pclose(p);
	}
	return n;
}

struct names {
	char buf[4096];
};

static int list_fill(void *ctx, const struct vv_dirent *e, const struct vv_attr *a)
{
	struct names *l = ctx;

	(void)a;
	strncat(l->buf, e->name, sizeof(l->buf) - strlen(l->buf) - 2);
	strcat(l->buf, " ");
	return 0;
}

static int list_dir(struct vv_vault *v, const struct vv_ctx *c, uint64_t ino, struct names *l)
{
	struct vv_dir *dh;
	int r = vv_vault_opendir(v, c, ino, &dh);

	l->buf[0] = 0;
	if (r < 0)
		return r;
	r = vv_vault_readdir(v, dh, 0, true, list_fill, l);
	vv_vault_releasedir(v, dh);
	return r;
}

static int fsck_clean(struct vv_vault *v, struct vv_fsck_report *rep)
{
	return vv_vault_fsck(v, false, NULL, NULL, rep);
}

/* --- retention --------------------------------------------------------------- */

/* A second rule, written differently (day numbers from the epoch, months
 * and weeks by arithmetic on days), to check vv_snap_retain against. */
static int64_t ref_bucket(int64_t t, int p)
{
	int64_t s = t / 1000000000LL, day = s / 86400;
	/* 1970-01-01 was a Thursday: ISO weeks start on Monday */
	int64_t monday = day - ((day + 3) % 7);
	time_t ts = (time_t)s;
	struct tm tm;

	gmtime_r(&ts, &tm);
	switch (p) {
	case 0: return s / 3600;
	case 1: return day;
	case 2: return monday;
	default: return (tm.tm_year + 1900) * 12 + tm.tm_mon;
	}
}

static void ref_retain(const int64_t *t, size_t n, const uint32_t *counts, bool *keep)
{
	/* t is sorted oldest first: walk from the end */
	for (size_t i = 0; i < n; i++)
		keep[i] = false;
	for (int p = 0; p < 4; p++) {
		uint32_t left = counts[p];
		int64_t last = INT64_MIN;
		for (size_t j = n; j-- > 0 && left;) {
			int64_t b = ref_bucket(t[j], p);
			if (b == last)
				continue;
			last = b;
			keep[j] = true;
			left--;
		}
	}
}

static void test_retention(void)
{
	/* hourly snapshots for a year, plus a few extra per hour on some days */
	size_t n = 0, cap = 365 * 24 + 400;
	int64_t *t = malloc(cap * sizeof(*t));
	bool *k1 = malloc(cap), *k2 = malloc(cap);
	int64_t start = 1764547200LL * 1000000000LL;   /* 2025-12-01T00:00:00Z */
	struct vv_snap_keep keep = { 24, 30, 8, 12 };
	uint32_t counts[4] = { 24, 30, 8, 12 };
	size_t kept = 0, same = 0;
	bool newest_24 = true;

	for (int h = 0; h < 365 * 24; h++) {
		t[n++] = start + (int64_t)h * 3600 * 1000000000LL + 7 * 1000000000LL;
		if (h % 97 == 0 && n < cap)
			t[n++] = start + (int64_t)h * 3600 * 1000000000LL + 1800 * 1000000000LL;
	}
	vv_snap_retain(t, n, &keep, k1);
	ref_retain(t, n, counts, k2);
	for (size_t i = 0; i < n; i++) {
		kept += k1[i];
		same += k1[i] == k2[i];
	}
	is_int((long long)same, (long long)n, "retention: a year of snapshots, same answer as the reference rule");
	ok(kept > 24 && kept <= 24 + 30 + 8 + 12, "retention: keeps at most the sum of the counts");
	for (size_t i = n - 24; i < n; i++)
		newest_24 &= k1[i];
	ok(newest_24, "retention: the newest 24 (one per hour) are kept");
	ok(!k1[0], "retention: the oldest (a year ago, past 12 months) is not kept");
	{
		/* shuffled input gives the same answer per snapshot */
		int64_t *t2 = malloc(n * sizeof(*t2));
		bool *k3 = malloc(n);
		size_t agree = 0;
		for (size_t i = 0; i < n; i++)
			t2[i] = t[n - 1 - i];
		vv_snap_retain(t2, n, &keep, k3);
		for (size_t i = 0; i < n; i++)
			agree += k3[i] == k1[n - 1 - i];
		is_int((long long)agree, (long long)n, "retention: order of the input does not matter");
		free(t2);
		free(k3);
	}
	{
		struct vv_snap_keep none = { 0, 0, 0, 0 };
		size_t all = 0;
		vv_snap_retain(t, n, &none, k1);
		for (size_t i = 0; i < n; i++)
			all += k1[i];
		is_int((long long)all, (long long)n, "retention: no policy keeps everything");
	}
	{
		struct vv_snap_keep monthly = { 0, 0, 0, 3 };
		size_t c = 0;
		vv_snap_retain(t, n, &monthly, k1);
		for (size_t i = 0; i < n; i++)
			c += k1[i];
		is_int((long long)c, 3, "retention: --keep-monthly 3 keeps 3");
		ok(k1[n - 1], "retention: ... the newest among them");
	}
	free(t);
	free(k1);
	free(k2);
}

/* Engine errors on stderr (TAP ignores it): a failure says why. */
static void log_sink(void *ctx, enum vv_log_level lvl, const char *msg)
{
	(void)ctx;
	(void)lvl;
	fprintf(stderr, "# log: %s\n", msg);
}

int main(void)
{
	const char *tmp = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
	const size_t big = 3 << 20;

	vv_log_set_sink(log_sink, NULL, VV_LOG_WARN);
	struct vv_admin_reply rep;
	struct vv_fsck_report fr;
	struct vv_vault *v;
	struct vv_attr a, c1;
	struct vv_setattr sa = { .valid = VV_SET_MODE, .mode = 0777 };
	struct names l;
	struct vv_file *fh;
	uint8_t *data = vt_pattern(big, 1), *buf = malloc(big), *small = vt_pattern(1000, 2);
	uint64_t bino, sino, secret, snapdir, s1, sc1, sbig, ssecret;
	int chunks0, err;
	bool kc;
	char cmd[600];

	test_retention();

	snprintf(top, sizeof(top), "%s/vv-snap-XXXXXX", tmp);
	if (!mkdtemp(top))
		tap_skip_all("cannot make a temp dir");
	snprintf(store, sizeof(store), "%s/store", top);
	snprintf(state, sizeof(state), "%s/state", top);
	is_int(vv_vault_create_store(store, PASS, strlen(PASS), VV_KDF_PROFILE_TEST,
				     VV_VAULT_ALLOW_TEST_KDF, 1000, 1000, state), 0, "create a store owned by 1000");
	v = open_vault();
	ok(v != NULL, "open it");
	is_int(vv_vault_mkdir(v, &root_c, VV_ROOT_INO, "c1", 0755, &c1), 0, "mkdir /c1");
	is_int(vt_write_file(v, &root_c, c1.ino, "big", data, big, 0644, &bino), 0,
	       "write /c1/big (3 MiB: chunks)");
	is_int(vt_write_file(v, &root_c, c1.ino, "small", small, 1000, 0644, &sino), 0,
	       "write /c1/small (inline)");
	is_int(vt_write_file(v, &root_c, c1.ino, "secret", small, 1000, 0600, &secret), 0,
	       "write /c1/secret, 0600 root");
	is_int(vv_vault_sync(v), 0, "sync");
	chunks0 = count_chunks();
	ok(chunks0 > 0, "the big file is in chunk objects");

	vv_admin_reply_init(&rep);
	is_int(call(v, 1001, "snapshot.create", (struct vv_admin_arg[]){ { "name", "x" } }, 1, &rep),
	       VV_EACCES, "create: 1001 is not the owner");
	is_int(call(v, 1000, "snapshot.create", (struct vv_admin_arg[]){ { "name", "a/b" } }, 1, &rep),
	       VV_EINVAL, "create: a name with / is refused");
	ok(strstr(rep.msg, "a/b") != NULL, "create: the message names it");
	is_int(call(v, 1000, "snapshot.create", (struct vv_admin_arg[]){ { "name", "s1" } }, 1, &rep), 0,
	       "create s1 as the owner");
	is_int(call(v, 0, "snapshot.create", (struct vv_admin_arg[]){ { "name", "s1" } }, 1, &rep),
	       VV_EEXIST, "create s1 again: EEXIST");
	is_int(count_chunks(), chunks0, "create copied no chunk");
	is_int(call(v, 65534, "snapshot.list", (struct vv_admin_arg[]){ { "json", "1" } }, 1, &rep), 0,
	       "list: anyone may");
	ok(rep.body && strstr(rep.body, "\"name\":\"s1\"") && strstr(rep.body, "\"files\":3"),
	   "list json names s1 with its 3 files");

	/* the view */
	snapdir = look(v, &nobody_c, VV_ROOT_INO, ".snapshots", &err);
	is_int(err, 0, "lookup /.snapshots as nobody");
	ok(snapdir == VV_SNAPDIR_INO, ".snapshots has its reserved inode number");
	is_int(list_dir(v, &root_c, VV_ROOT_INO, &l), 0, "list /");
	ok(strstr(l.buf, "c1 ") && !strstr(l.buf, ".snapshots"), "/ lists c1 but not .snapshots");
	is_int(list_dir(v, &nobody_c, snapdir, &l), 0, "list /.snapshots as nobody");
	ok(strstr(l.buf, "s1 ") != NULL, "it lists s1");
	s1 = look(v, &nobody_c, snapdir, "s1", &err);
	ok(s1 == vv_snap_mkino(1, 1), "s1 is snapshot 1's root");
	sc1 = look(v, &nobody_c, s1, "c1", NULL);
	sbig = look(v, &nobody_c, sc1, "big", NULL);
	ssecret = look(v, &nobody_c, sc1, "secret", NULL);
	ok(sbig && sbig != bino && vv_snap_real(sbig) == bino, "the snapshot's big has its own inode number");
	is_int((long long)read_as(v, &nobody_c, sbig, buf, big), (long long)big, "read it as nobody");
	ok(memcmp(buf, data, big) == 0, "same bytes");
	is_int((long long)read_as(v, &nobody_c, ssecret, buf, big), VV_EACCES,
	       "the snapshot's 0600 file: nobody may not read it (same check)");
	is_int(vv_vault_getattr(v, &root_c, sc1, &a), 0, "getattr in the snapshot");
	ok(S_ISDIR(a.mode) && (a.mode & 0777) == 0755, "the snapshot's c1 is a 0755 directory");

	/* EROFS for every change */
	is_int(vv_vault_mkdir(v, &root_c, sc1, "d", 0755, &a), VV_EROFS, "mkdir in a snapshot: EROFS");
	is_int(vv_vault_create(v, &root_c, sc1, "n", 0644, O_WRONLY, &a, &fh), VV_EROFS, "create: EROFS");
	is_int(vv_vault_mknod(v, &root_c, sc1, "p", S_IFIFO | 0644, 0, &a), VV_EROFS, "mknod: EROFS");
	is_int(vv_vault_symlink(v, &root_c, sc1, "l", "big", &a), VV_EROFS, "symlink: EROFS");
	is_int(vv_vault_unlink(v, &root_c, sc1, "big"), VV_EROFS, "unlink: EROFS");
	is_int(vv_vault_rmdir(v, &root_c, s1, "c1"), VV_EROFS, "rmdir: EROFS");
	is_int(vv_vault_rename(v, &root_c, sc1, "big", sc1, "big2", 0), VV_EROFS, "rename inside: EROFS");
	is_int(vv_vault_rename(v, &root_c, sc1, "big", c1.ino, "big2", 0), VV_EROFS, "rename out: EROFS");
	is_int(vv_vault_rename(v, &root_c, c1.ino, "small", sc1, "x", 0), VV_EROFS, "rename in: EROFS");
	is_int(vv_vault_link(v, &root_c, sbig, c1.ino, "hl", &a), VV_EROFS, "link out of: EROFS");
	is_int(vv_vault_link(v, &root_c, bino, sc1, "hl", &a), VV_EROFS, "link into: EROFS");
	is_int(vv_vault_setattr(v, &root_c, sbig, &sa, &a), VV_EROFS, "chmod: EROFS");
	sa.valid = VV_SET_SIZE;
	sa.size = 0;
	is_int(vv_vault_setattr(v, &root_c, sbig, &sa, &a), VV_EROFS, "truncate: EROFS");
	is_int(vv_vault_setxattr(v, &root_c, sbig, "user.x", "1", 1, 0), VV_EROFS, "setxattr: EROFS");
	is_int(vv_vault_removexattr(v, &root_c, sbig, "user.x"), VV_EROFS, "removexattr: EROFS");
	is_int(vv_vault_open_file(v, &root_c, sbig, O_RDWR, &fh, &kc), VV_EROFS, "open O_RDWR: EROFS");
	is_int(vv_vault_open_file(v, &root_c, sbig, O_WRONLY, &fh, &kc), VV_EROFS, "open O_WRONLY: EROFS");
	is_int(vv_vault_open_file(v, &root_c, sbig, O_RDONLY | O_TRUNC, &fh, &kc), VV_EROFS,
	       "open O_TRUNC: EROFS");
	is_int(vv_vault_access(v, &root_c, sbig, W_OK), VV_EROFS, "access(W_OK): EROFS");
	is_int(vv_vault_access(v, &root_c, sbig, R_OK), 0, "access(R_OK): fine");
	is_int(vv_vault_mkdir(v, &root_c, snapdir, "new", 0755, &a), VV_EROFS, "mkdir in .snapshots: EROFS");
	is_int(vv_vault_mkdir(v, &root_c, VV_ROOT_INO, ".snapshots", 0755, &a), VV_EEXIST,
	       "mkdir /.snapshots: EEXIST");
	is_int(vv_vault_rmdir(v, &root_c, VV_ROOT_INO, ".snapshots"), VV_EPERM, "rmdir /.snapshots: EPERM");
	is_int(vv_vault_rename(v, &root_c, VV_ROOT_INO, ".snapshots", VV_ROOT_INO, "x", 0), VV_EPERM,
	       "rename /.snapshots: EPERM");
	is_int(vv_vault_rename(v, &root_c, VV_ROOT_INO, "c1", VV_ROOT_INO, ".snapshots", 0), VV_EPERM,
	       "rename onto /.snapshots: EPERM");

	/* GC: the live file goes, the snapshot keeps its chunks */
	is_int(vv_vault_unlink(v, &root_c, c1.ino, "big"), 0, "unlink the live big");
	vv_vault_forget(v, bino, 1);
	is_int(vv_vault_sync(v), 0, "sync");
	vault_unlink_freed(v, false);
	is_int(count_chunks(), chunks0, "its chunks stay: the snapshot names them");
	is_int((long long)read_as(v, &root_c, sbig, buf, big), (long long)big, "the snapshot's copy reads");
	ok(memcmp(buf, data, big) == 0, "same bytes");
	is_int(fsck_clean(v, &fr), 0, "fsck: clean");
	ok(fr.snapshots == 1 && fr.snapshot_refs == (uint64_t)chunks0 && fr.errors == 0,
	   "fsck counted the snapshot's references");

	/* restore */
	is_int(call(v, 1000, "snapshot.restore",
		    (struct vv_admin_arg[]){ { "name", "s1" }, { "path", "/c1/big" } }, 2, &rep), 0,
	       "restore /c1/big");
	bino = look(v, &root_c, c1.ino, "big", &err);
	is_int(err, 0, "the live /c1/big is back");
	is_int((long long)read_as(v, &root_c, bino, buf, big), (long long)big, "read it");
	ok(memcmp(buf, data, big) == 0, "same bytes as before the unlink");
	is_int(count_chunks(), chunks0, "restore copied no chunk");
	is_int(vt_write_file(v, &root_c, c1.ino, "extra", small, 10, 0644, &a.ino), 0,
	       "a file made after s1");
	is_int(call(v, 1000, "snapshot.restore",
		    (struct vv_admin_arg[]){ { "name", "s1" }, { "path", "/c1" } }, 2, &rep), 0,
	       "restore the collection /c1");
	ok(rep.body && strstr(rep.body, "pre-restore"), "the reply names where the live /c1 went");
	{
		uint64_t nc1 = look(v, &root_c, VV_ROOT_INO, "c1", NULL);
		ok(nc1 && nc1 != c1.ino, "/c1 is a new directory");
		ok(look(v, &root_c, nc1, "extra", &err) == 0 && err == VV_ENOENT, "without the later file");
		ok(look(v, &root_c, nc1, "big", NULL) != 0 && look(v, &root_c, nc1, "secret", NULL) != 0,
		   "with the snapshot's files");
		is_int(list_dir(v, &root_c, VV_ROOT_INO, &l), 0, "list /");
		ok(strstr(l.buf, "c1.pre-restore-") != NULL, "the old /c1 was moved aside, not lost");
		secret = look(v, &root_c, nc1, "secret", NULL);
		is_int((long long)read_as(v, &nobody_c, secret, buf, big), VV_EACCES,
		       "the restored secret keeps its mode");
	}
	is_int(call(v, 1000, "snapshot.restore",
		    (struct vv_admin_arg[]){ { "name", "s1" }, { "path", "/nope" } }, 2, &rep), VV_ENOENT,
	       "restore of a path not in the snapshot: ENOENT");
	ok(strstr(rep.msg, "/nope") && strstr(rep.msg, "s1"), "the message names the path and snapshot");
	is_int(call(v, 1001, "snapshot.restore", (struct vv_admin_arg[]){ { "name", "s1" } }, 1, &rep),
	       VV_EACCES, "restore: only the owner");
	is_int(fsck_clean(v, &fr), 0, "fsck after restores: clean");

	/* remount */
	is_int(vv_vault_close(v), 0, "close");
	v = open_vault();
	ok(v != NULL, "reopen");
	snapdir = look(v, &root_c, VV_ROOT_INO, ".snapshots", NULL);
	s1 = look(v, &root_c, snapdir, "s1", NULL);
	sc1 = look(v, &root_c, s1, "c1", NULL);
	ok(look(v, &root_c, sc1, "big", NULL) == sbig, "after a remount, the same inode number");
	is_int((long long)read_as(v, &root_c, sbig, buf, big), (long long)big, "and the same bytes");
	ok(memcmp(buf, data, big) == 0, "equal");

	/* delete: the live tree and the aside copy hold the chunks still;
	 * remove those too and the snapshot's delete frees them */
	{
		struct names top_l;
		char aside[256] = "";
		list_dir(v, &root_c, VV_ROOT_INO, &top_l);
		sscanf(strstr(top_l.buf, "c1.pre-restore-"), "%255s", aside);
		uint64_t ac = look(v, &root_c, VV_ROOT_INO, aside, NULL);
		uint64_t nc1 = look(v, &root_c, VV_ROOT_INO, "c1", NULL);
		const char *files[] = { "big", "small", "secret", "extra" };
		for (int i = 0; i < 4; i++) {
			vv_vault_unlink(v, &root_c, ac, files[i]);
			vv_vault_unlink(v, &root_c, nc1, files[i]);
		}
		is_int(vv_vault_rmdir(v, &root_c, VV_ROOT_INO, aside), 0, "remove the aside copy");
		is_int(vv_vault_rmdir(v, &root_c, VV_ROOT_INO, "c1"), 0, "remove /c1");
	}
	is_int(vv_vault_sync(v), 0, "sync");
	vault_unlink_freed(v, false);
	is_int(count_chunks(), chunks0, "the snapshot still holds every chunk");
	is_int(vv_vault_open_file(v, &root_c, sbig, O_RDONLY, &fh, &kc), 0, "open a snapshot file");
	is_int(call(v, 1000, "snapshot.delete", (struct vv_admin_arg[]){ { "name", "s1" } }, 1, &rep),
	       VV_EBUSY, "delete while it is open: EBUSY");
	vv_vault_release(v, fh);
	is_int(call(v, 1001, "snapshot.delete", (struct vv_admin_arg[]){ { "name", "s1" } }, 1, &rep),
	       VV_EACCES, "delete: only the owner");
	is_int(call(v, 1000, "snapshot.delete", (struct vv_admin_arg[]){ { "name", "s1" } }, 1, &rep), 0,
	       "delete s1");
	is_int(call(v, 1000, "snapshot.delete", (struct vv_admin_arg[]){ { "name", "s1" } }, 1, &rep),
	       VV_ENOENT, "delete s1 again: ENOENT");
	vault_unlink_freed(v, false);
	is_int(count_chunks(), 0, "deleting the last holder freed every chunk");
	is_int(fsck_clean(v, &fr), 0, "fsck: clean");
	is_int((int)fr.snapshots, 0, "no snapshot left");
	ok(look(v, &root_c, snapdir, "s1", &err) == 0 && err == VV_ENOENT, "s1 is gone from .snapshots");
	is_int(call(v, 0, "snapshot.create", NULL, 0, &rep), 0, "create without a name");
	ok(rep.body && strstr(rep.body, "created snapshot 20") && strstr(rep.body, "Z "),
	   "it is named by the UTC time");
	vv_admin_reply_release(&rep);

	is_int(vv_vault_close(v), 0, "close");
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", top);
	if (system(cmd) != 0)
		tap_diag("could not remove the temp dir");
	free(data);
	free(buf);
	free(small);
	return tap_done();
}
