/*
 * test_backup.c - backup repositories (engine/repo*.c, vault_backup.c):
 * the manifest body round trip and its rejections, config and key slots
 * (wrong passphrase, the test-KDF flag, a non-empty DEST), objects
 * (altered, missing, a failed write leaves nothing), the writer lock
 * (each failure its own error, logged naming DEST/lock), the config's
 * version, the daemon's manifest cache under concurrent runs,
 * forget/prune with a fake clock, batches of objects synced while other
 * writers go on (a failed fsync loses one object, a rerun sends only
 * it), and backup.create through the control
 * plane (refused to non-owners) restored into a new store whose files read
 * back byte for byte.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "admin_int.h"
#include "buf.h"
#include "os_fault.h"
#include "repo_int.h"
#include "tap.h"
#include "vault_files.h"
#include "vault_int.h"
#include "vecvault/backup.h"
#include "vecvault/error.h"
#include "vecvault/log.h"
#include "vecvault/vault.h"

#define PASS "backup unit test"
#define RPASS "repository pass"
#define DAY (86400LL * 1000000000LL)

static char top[256];
static struct vv_ctx root_c = { .id = { .uid = 0, .gid = 0, .pid = 1 }, .umask = 022, .comm = "test" };

static void sample(struct vv_manifest *m, int64_t created)
{
	struct vv_inode_row r;
	struct vv_extent e;
	uint8_t w[VV_WRAPPED_BYTES], c[32], n[32];

	memset(m, 0, sizeof(*m));
	vv_random_bytes(m->id, sizeof(m->id));
	m->info.created = created;
	snprintf(m->info.snapshot, sizeof(m->info.snapshot), "snap");
	snprintf(m->info.tag, sizeof(m->info.tag), "tag");
	m->root_coll = 1;
	memset(&r, 0, sizeof(r));
	r.ino = 1;
	r.mode = 040755;
	vv_manifest_add_inode(m, &r, NULL, 0);
	r.ino = 2;
	r.mode = 0100644;
	r.size = 5;
	vv_manifest_add_inode(m, &r, "hello", 5);
	vv_manifest_add_dirent(m, 1, "f", 1, 2, 0100644);
	vv_manifest_add_xattr(m, 2, "user.x", "\0\1", 2);
	memset(&e, 0, sizeof(e));
	e.off = 16;
	e.len = 10;
	vv_manifest_add_extent(m, 2, &e);
	memset(w, 7, sizeof(w));
	vv_manifest_add_coll(m, 1, w);
	memset(c, 1, sizeof(c));
	memset(n, 2, sizeof(n));
	vv_manifest_add_object(m, c, n, 42);
}

static void test_body(void)
{
	struct vv_manifest m, d;
	uint8_t *buf = NULL;
	size_t len = 0;

	sample(&m, 123);
	is_int(vv_manifest_encode(&m, &buf, &len), 0, "encode a manifest body");
	ok(len % 4096 == 0, "the body is padded to 4 KiB");
	is_int(vv_manifest_decode(buf, len, &d), 0, "decode it");
	ok(d.ninodes == 2 && d.ndirents == 1 && d.nxattrs == 1 && d.nextents == 1 && d.ncolls == 1 &&
	   d.nobjs == 1, "every row comes back");
	ok(d.inodes[1].datalen == 5 && memcmp(d.inodes[1].data, "hello", 5) == 0, "with inline bytes");
	ok(strcmp(d.dirents[0].name, "f") == 0 && d.xattrs[0].vlen == 2, "names and values");
	ok(d.info.created == 123 && strcmp(d.info.tag, "tag") == 0 && d.info.stored == 42, "and the header");
	vv_manifest_free(&d);
	is_int(vv_manifest_decode(buf, len - 4096 + 100, &d), VV_ECORRUPT, "a truncated body is corrupt");
	buf[len - 1] = 1;
	is_int(vv_manifest_decode(buf, len, &d), VV_ECORRUPT, "non-zero padding is corrupt");
	buf[len - 1] = 0;
	buf[0] ^= 1;
	is_int(vv_manifest_decode(buf, len, &d), VV_ECORRUPT, "a wrong magic is corrupt");
	free(buf);
	vv_manifest_free(&m);
}

static int count_files(const char *dir)
{
	char cmd[600];
	FILE *f;
	int n = -1;

	snprintf(cmd, sizeof(cmd), "find '%s' -type f | wc -l", dir);
	if ((f = popen(cmd, "r"))) {
		if (fscanf(f, "%d", &n) != 1)
			n = -1;
		pclose(f);
	}
	return n;
}

struct fctx {
	int kept, forgot;
};

static int verdict(void *ctx, const struct vv_backup_info *b, bool kept)
{
	struct fctx *f = ctx;

	(void)b;
	if (kept)
		f->kept++;
	else
		f->forgot++;
	return 0;
}

static char logged[2048];

static void grab_log(void *ctx, enum vv_log_level lvl, const char *msg)
{
	(void)ctx;
	(void)lvl;
	snprintf(logged + strlen(logged), sizeof(logged) - strlen(logged), "%s|", msg);
}

static void test_repo(void)
{
	char dest[300], other[300], id[33];
	struct vv_repo *r = NULL, *r2 = NULL;
	uint8_t name[32], *got = NULL;
	struct vv_manifest m;
	struct vv_backup_keep k = { .daily = 2 };
	struct fctx fc = { 0 };
	uint64_t forgotten, pruned, pbytes, problems = 1, unref;
	size_t len;
	char path[700];
	int fd;

	snprintf(dest, sizeof(dest), "%s/repo", top);
	is_int(vv_repo_init(dest, RPASS, strlen(RPASS), VV_KDF_PROFILE_TEST, 0, id), VV_EDOWNGRADE,
	       "the test KDF needs its flag");
	is_int(vv_repo_init(dest, RPASS, strlen(RPASS), VV_KDF_PROFILE_TEST, VV_REPO_ALLOW_TEST_KDF, id), 0,
	       "init a repository");
	is_int(vv_repo_init(dest, RPASS, strlen(RPASS), VV_KDF_PROFILE_TEST, VV_REPO_ALLOW_TEST_KDF, id),
	       VV_EEXIST, "init refuses a non-empty DEST");
	{
		/* Version 2: objects named with HMAC-SHA-256 (docs/format.md);
		 * version 1 (BLAKE2b) is read: t6024's golden repository. */
		uint8_t conf[12] = { 0 };
		snprintf(path, sizeof(path), "%s/config", dest);
		fd = open(path, O_RDONLY);
		ok(fd >= 0 && read(fd, conf, sizeof(conf)) == (ssize_t)sizeof(conf) && conf[8] == 2 &&
		   !conf[9] && !conf[10] && !conf[11], "a new repository is version 2");
		if (fd >= 0)
			close(fd);
	}
	{
		/* A slot's Argon2id limits are read before the config's MAC
		 * can be checked: beyond the store's bounds the config is
		 * refused, not tried (an edited DEST must not cost hours). */
		uint8_t conf[4096], ed[4096];
		ssize_t cl;
		int slots = 0;
		snprintf(path, sizeof(path), "%s/config", dest);
		fd = open(path, O_RDONLY);
		cl = fd >= 0 ? read(fd, conf, sizeof(conf)) : -1;
		if (fd >= 0)
			close(fd);
		ok(cl > 60 && vv_repo_config_parse(conf, (size_t)cl, (uint8_t[VV_REPO_ID_BYTES]){ 0 }, &slots, NULL) == 0 &&
		   slots == 1, "config: parses, one slot");
		for (int k = 0; k < 4 && cl > 60; k++) {
			/* slot 0 at 40: u32 index, u64 ops (44), u64 mem (52), LE */
			static const uint64_t v[4] = { VV_KDF_OPS_BOUND, VV_KDF_OPS_BOUND + 1,
						       VV_KDF_MEM_BOUND, VV_KDF_MEM_BOUND + 1 };
			uint64_t x = v[k];
			memcpy(ed, conf, (size_t)cl);
			for (int i = 0; i < 8; i++)
				ed[(k < 2 ? 44 : 52) + i] = (uint8_t)(x >> (8 * i));
			is_int(vv_repo_config_parse(ed, (size_t)cl, (uint8_t[VV_REPO_ID_BYTES]){ 0 }, &slots, NULL),
			       k % 2 ? VV_ECORRUPT : 0,
			       k == 0   ? "config: ops at the bound parses"
			       : k == 1 ? "config: ops past the bound is refused"
			       : k == 2 ? "config: memory at the bound parses"
					: "config: memory past the bound is refused");
		}
		{
			/* The version (u32 LE at 8) comes from the parse, which
			 * bounds it; a config cut inside it is not a config. */
			static const uint32_t vs[4] = { 1, 2, 0, 3 };
			uint32_t ver = 0;
			int good = 0, e;
			char dir2[400];
			for (int k = 0; k < 4 && cl > 60; k++) {
				memcpy(ed, conf, (size_t)cl);
				vv_put_le32(ed + 8, vs[k]);
				ver = 0;
				e = vv_repo_config_parse(ed, (size_t)cl, (uint8_t[VV_REPO_ID_BYTES]){ 0 }, &slots, &ver);
				good += k < 2 ? e == 0 && ver == vs[k] : e == VV_EFORMAT && ver == 0;
			}
			is_int(good, 4, "config: version 1 and 2 parsed as such, 0 and 3 refused: EFORMAT");
			for (size_t l = 8; l < 12; l++)
				good += vv_repo_config_parse(conf, l, (uint8_t[VV_REPO_ID_BYTES]){ 0 }, &slots, &ver) ==
					VV_EFORMAT;
			is_int(good, 8, "config: cut at 8 to 11 bytes (in the version): EFORMAT");
			/* The same on disk: DEST/config of magic and half a version. */
			snprintf(dir2, sizeof(dir2), "%s/cutconf", top);
			snprintf(path, sizeof(path), "%s/config", dir2);
			mkdir(dir2, 0700);
			fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
			ok(fd >= 0 && cl > 60 && write(fd, conf, 10) == 10, "config: a DEST whose config is 10 bytes");
			if (fd >= 0)
				close(fd);
			is_int(vv_repo_open(dir2, RPASS, strlen(RPASS), VV_REPO_ALLOW_TEST_KDF, 0, &r), VV_EFORMAT,
			       "config: opening it is refused: EFORMAT");
		}
	}
	is_int(vv_repo_open(dest, "wrong", 5, VV_REPO_ALLOW_TEST_KDF, 0, &r), VV_EBADPASS, "a wrong passphrase");
	is_int(vv_repo_open(dest, RPASS, strlen(RPASS), 0, 0, &r), VV_EDOWNGRADE,
	       "a test-KDF slot is not tried without the flag");
	snprintf(other, sizeof(other), "%s/nothing", top);
	is_int(vv_repo_open(other, RPASS, strlen(RPASS), VV_REPO_ALLOW_TEST_KDF, 0, &r), VV_ENOENT,
	       "no directory: ENOENT");
	{
		/* The writer's lock: each failure is what it is, logged naming
		 * the lock file (every fstat and flock failure was EUNSAFE or
		 * went unsaid). */
		char lock[400], want[500];
		snprintf(lock, sizeof(lock), "%s/lock", dest);
		vv_log_set_sink(grab_log, NULL, VV_LOG_DEBUG);
		os_fault_install();
		os_fault_set(OSF_FSTAT, (struct os_fault){ .err = EIO, .path_has = "/repo/lock" });
		logged[0] = 0;
		is_int(vv_repo_open(dest, RPASS, strlen(RPASS), VV_REPO_ALLOW_TEST_KDF | VV_REPO_WRITE, 0, &r2),
		       VV_EIO, "lock: its fstat fails: EIO");
		snprintf(want, sizeof(want), "the lock file %s: cannot stat: %s", lock, strerror(EIO));
		ok(strstr(logged, want) != NULL, "lock: logged naming the lock file and the failed stat");
		os_fault_clear(OSF_FSTAT);
		os_fault_set(OSF_FLOCK, (struct os_fault){ .err = ENOLCK, .path_has = "/repo/lock" });
		logged[0] = 0;
		is_int(vv_repo_open(dest, RPASS, strlen(RPASS), VV_REPO_ALLOW_TEST_KDF | VV_REPO_WRITE, 0, &r2),
		       vv_err_from_errno(ENOLCK), "lock: flock fails with ENOLCK (no locks on that file system)");
		snprintf(want, sizeof(want), "the lock file %s: cannot lock: %s", lock, strerror(ENOLCK));
		ok(strstr(logged, want) != NULL && !strstr(logged, "another backup"),
		   "lock: logged as such, not as another backup");
		os_fault_uninstall();
		/* Another owner's lock file, one others may write, a directory,
		 * a symbolic link. */
		ok(chown(lock, 1000, 1000) == 0, "lock: given to uid 1000");
		logged[0] = 0;
		is_int(vv_repo_open(dest, RPASS, strlen(RPASS),
				    VV_REPO_ALLOW_TEST_KDF | VV_REPO_WRITE | VV_REPO_CHECK_OWNER, 0, &r2),
		       VV_EUNSAFE, "lock: another owner's: EUNSAFE");
		snprintf(want, sizeof(want), "the lock file %s belongs to uid 1000", lock);
		ok(strstr(logged, want) != NULL, "lock: logged naming the lock file and its owner");
		ok(chown(lock, 0, 0) == 0 && chmod(lock, 0666) == 0, "lock: mode 0666");
		is_int(vv_repo_open(dest, RPASS, strlen(RPASS),
				    VV_REPO_ALLOW_TEST_KDF | VV_REPO_WRITE | VV_REPO_CHECK_OWNER, 0, &r2),
		       VV_EUNSAFE, "lock: others may write it: EUNSAFE");
		ok(unlink(lock) == 0 && mkdir(lock, 0700) == 0, "lock: a directory");
		logged[0] = 0;
		is_int(vv_repo_open(dest, RPASS, strlen(RPASS), VV_REPO_ALLOW_TEST_KDF | VV_REPO_WRITE, 0, &r2),
		       VV_EISDIR, "lock: a directory: EISDIR");
		snprintf(want, sizeof(want), "the lock file %s: cannot open: %s", lock, strerror(EISDIR));
		ok(strstr(logged, want) != NULL, "lock: logged naming the lock file");
		ok(rmdir(lock) == 0 && symlink("/etc/passwd", lock) == 0, "lock: a symbolic link");
		logged[0] = 0;
		is_int(vv_repo_open(dest, RPASS, strlen(RPASS), VV_REPO_ALLOW_TEST_KDF | VV_REPO_WRITE, 0, &r2),
		       VV_EUNSAFE, "lock: a symbolic link: EUNSAFE");
		ok(strstr(logged, "(a symbolic link)") && strstr(logged, lock), "lock: logged as a link");
		unlink(lock);
		vv_log_set_sink(NULL, NULL, VV_LOG_INFO);
	}
	is_int(vv_repo_open(dest, RPASS, strlen(RPASS), VV_REPO_ALLOW_TEST_KDF | VV_REPO_WRITE, 0, &r), 0,
	       "open it for writing");
	is_int(vv_repo_open(dest, RPASS, strlen(RPASS), VV_REPO_ALLOW_TEST_KDF | VV_REPO_WRITE, 0, &r2),
	       VV_EBUSY, "a second writer is refused (lock)");
	{
		/* The lock's bytes are anyone's who can write DEST: the refusal
		 * shows a pid, never other bytes (a forged log line, escapes). */
		static const char evil[] = "66\nbackup: FAKE line\033[2J";
		snprintf(path, sizeof(path), "%s/lock", dest);
		fd = open(path, O_WRONLY | O_TRUNC);
		ok(fd >= 0 && write(fd, evil, sizeof(evil) - 1) == (ssize_t)sizeof(evil) - 1, "lock: forged bytes");
		if (fd >= 0)
			close(fd);
		vv_log_set_sink(grab_log, NULL, VV_LOG_DEBUG);
		logged[0] = 0;
		is_int(vv_repo_open(dest, RPASS, strlen(RPASS), VV_REPO_ALLOW_TEST_KDF | VV_REPO_WRITE, 0, &r2),
		       VV_EBUSY, "lock: still refused");
		ok(strstr(logged, "another backup") && !strstr(logged, "FAKE") && !strchr(logged, '\n') &&
		   !strchr(logged, 033), "lock: its forged bytes are not logged");
		fd = open(path, O_WRONLY | O_TRUNC);
		ok(fd >= 0 && write(fd, "4242\n", 5) == 5, "lock: a pid");
		if (fd >= 0)
			close(fd);
		logged[0] = 0;
		is_int(vv_repo_open(dest, RPASS, strlen(RPASS), VV_REPO_ALLOW_TEST_KDF | VV_REPO_WRITE, 0, &r2),
		       VV_EBUSY, "lock: refused");
		ok(strstr(logged, "(pid 4242)") != NULL, "lock: naming the holder's pid");
		vv_log_set_sink(NULL, NULL, VV_LOG_INFO);
	}

	/* Objects. */
	is_int(vv_repo_object_name(r, "abc", 3, name), 0, "name an object");
	is_int(vv_repo_object_put(r, name, "abc", 3), 0, "put it");
	ok(!vv_repo_object_have(r, name, 3), "not under its name before the batch is synced");
	is_int(vv_repo_objects_sync(r), 0, "sync the batch");
	ok(vv_repo_object_have(r, name, 3) && !vv_repo_object_have(r, name, 4), "have: by name and size");
	is_int(vv_repo_object_read(r, name, &got, &len), 0, "read it back");
	ok(got && len == 3 && memcmp(got, "abc", 3) == 0, "same bytes");
	free(got);
	{
		char hex[65];
		vv_hex_encode(hex, name, 32);
		snprintf(path, sizeof(path), "%s/objects/%.2s/%s", dest, hex, hex);
	}
	fd = open(path, O_WRONLY);
	if (fd >= 0) {
		ok(pwrite(fd, "x", 1, 1) == 1, "alter the object");
		close(fd);
	}
	got = NULL;
	is_int(vv_repo_object_read(r, name, &got, &len), VV_ECORRUPT, "an altered object is refused");
	unlink(path);
	is_int(vv_repo_object_read(r, name, &got, &len), VV_ENOENT, "a missing one is ENOENT");
	os_fault_install();
	os_fault_set(OSF_PWRITE, (struct os_fault){ .err = ENOSPC });
	is_int(vv_repo_object_put(r, name, "abc", 3), VV_ENOSPC, "a full disk fails the put");
	os_fault_uninstall();
	ok(!vv_repo_object_have(r, name, 3), "and leaves no object");
	ok(count_files(dest) == 2, "nor a temp file (config, lock)");

	/* Forget with a fake clock: one backup a day for 5 days, two a day
	 * on the last; keep-daily 2 keeps the newest of the last two days. */
	for (int i = 0; i < 6; i++) {
		int64_t t = 10 * DAY + (i < 5 ? i : 4) * DAY + (i == 5 ? 3600LL * 1000000000LL : 0);
		sample(&m, t);
		vv_repo_object_name(r, &i, sizeof(i), m.objs[0].name);
		m.objs[0].size = sizeof(i);
		vv_repo_object_put(r, m.objs[0].name, &i, sizeof(i));
		ok(vv_repo_manifest_store(r, &m) == 0, "store a manifest");
		vv_manifest_free(&m);
	}
	is_int(vv_repo_forget(r, &k, true, true, verdict, &fc, &forgotten, &pruned, &pbytes), 0, "dry run");
	/* Each sample's rows fit one metadata pack (its own: the objects
	 * differ), so a forgotten backup leaves an object and a pack. */
	ok(fc.kept == 2 && fc.forgot == 4 && forgotten == 4 && pruned == 8, "keep-daily 2: 2 kept, 4 go");
	printf("# kept %d forgot %d forgotten %llu pruned %llu\n", fc.kept, fc.forgot,
	       (unsigned long long)forgotten, (unsigned long long)pruned);
	ok(count_files(dest) == 2 + 6 + 6 + 6, "a dry run deletes nothing");
	is_int(vv_repo_forget(r, &k, true, false, NULL, NULL, &forgotten, &pruned, &pbytes), 0, "forget --prune");
	ok(count_files(dest) == 2 + 2 + 2 + 2, "4 manifests, their 4 objects and 4 packs are gone");
	vv_repo_close(r);
	is_int(vv_repo_open(dest, RPASS, strlen(RPASS), VV_REPO_ALLOW_TEST_KDF, 0, &r), 0, "reopen");
	/* The sample manifests name fake extents: structure problems, but
	 * every object they list is there. */
	vv_repo_verify(r, false, NULL, NULL, NULL, &problems, &unref);
	is_int((int)unref, 0, "no unreferenced object after prune");
	vv_repo_close(r);
}


/* Object batches (repo_object.c "made durable in batches"): the worker that
 * fills a batch syncs it without the lock, so others keep writing. */
struct bput {
	struct vv_repo *r;
	int from, to;               /* objects from..to-1: 4 KiB of i each */
	int ret;
	int done;                   /* atomic */
};

static void obj_bytes(int i, uint8_t b[4096])
{
	memset(b, 0, 4096);
	memcpy(b, &i, sizeof(i));
}

static void *bput_main(void *arg)
{
	struct bput *p = arg;
	uint8_t b[4096], name[32];

	p->ret = 0;
	for (int i = p->from; i < p->to; i++) {
		int e;
		obj_bytes(i, b);
		if ((e = vv_repo_object_name(p->r, b, sizeof(b), name)) == 0)
			e = vv_repo_object_put(p->r, name, b, sizeof(b));
		if (e < 0 && p->ret == 0)
			p->ret = e;
	}
	__atomic_store_n(&p->done, 1, __ATOMIC_RELEASE);
	return NULL;
}

/* Wait up to 10 s for *flag. */
static bool wait_flag(const int *flag)
{
	for (int i = 0; i < 10000 && !__atomic_load_n(flag, __ATOMIC_ACQUIRE); i++)
		usleep(1000);
	return __atomic_load_n(flag, __ATOMIC_ACQUIRE);
}

/* How many of objects 0..n-1 are under their names; sends the missing
 * ones when put (and counts them in *sent). */
static int objects_there(struct vv_repo *r, int n, bool put, int *sent)
{
	uint8_t b[4096], name[32];
	int have = 0;

	for (int i = 0; i < n; i++) {
		obj_bytes(i, b);
		vv_repo_object_name(r, b, sizeof(b), name);
		if (vv_repo_object_have(r, name, sizeof(b)))
			have++;
		else if (put && vv_repo_object_put(r, name, b, sizeof(b)) == 0)
			(*sent)++;
	}
	return have;
}

static int count_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	int n = 0;

	if (!d)
		return -1;
	while (readdir(d))
		n++;
	closedir(d);
	return n;
}

static void test_batches(void)
{
	char dest[300], id[33], cmd[400];
	struct vv_repo *r = NULL;
	struct bput a = { 0 }, b = { 0 };
	pthread_t ta, tb;
	int hold = 1, sent = 0, fds0;
	bool b_ran, b_started = false;

	snprintf(dest, sizeof(dest), "%s/brepo", top);
	if (vv_repo_init(dest, RPASS, strlen(RPASS), VV_KDF_PROFILE_TEST, VV_REPO_ALLOW_TEST_KDF, id) < 0 ||
	    vv_repo_open(dest, RPASS, strlen(RPASS), VV_REPO_ALLOW_TEST_KDF | VV_REPO_WRITE, 0, &r) < 0) {
		ok(false, "a repository for the batch tests");
		return;
	}
	fds0 = count_fds();
	/* 32 objects fill a batch: the first fsync of its sync fails with
	 * EIO, and is held until we let go. */
	os_fault_install();
	os_fault_set(OSF_FSYNC, (struct os_fault){ .err = EIO, .times = 1, .hold = &hold });
	a = (struct bput){ .r = r, .from = 0, .to = 32 };
	b = (struct bput){ .r = r, .from = 32, .to = 33 };
	pthread_create(&ta, NULL, bput_main, &a);
	for (int i = 0; i < 10000 && !os_fault_calls(OSF_FSYNC); i++)
		usleep(1000);
	ok(os_fault_calls(OSF_FSYNC) >= 1 && !__atomic_load_n(&a.done, __ATOMIC_ACQUIRE),
	   "a full batch is being synced (held)");
	/* Another writer meanwhile: with the syncs under the lock it stood
	 * still until the batch landed. */
	b_started = pthread_create(&tb, NULL, bput_main, &b) == 0;
	b_ran = b_started && wait_flag(&b.done);
	ok(b_ran, "a put goes on while a batch is synced");
	__atomic_store_n(&hold, 0, __ATOMIC_RELEASE);
	pthread_join(ta, NULL);
	if (b_started)
		pthread_join(tb, NULL);
	os_fault_uninstall();
	is_int(a.ret, VV_EIO, "the put that synced the batch reports the failed fsync");
	is_int(b.ret, 0, "the other put succeeded");
	is_int(vv_repo_objects_sync(r), 0, "sync what is pending (the other put's object)");
	is_int(objects_there(r, 33, false, NULL), 32, "every object but the one whose fsync failed is there");
	snprintf(cmd, sizeof(cmd), "%s/objects", dest);
	{
		char find[500];
		FILE *f;
		int tmps = -1;
		snprintf(find, sizeof(find), "find '%s' -name '.tmp-*' | wc -l", cmd);
		if ((f = popen(find, "r"))) {
			if (fscanf(f, "%d", &tmps) != 1)
				tmps = -1;
			pclose(f);
		}
		is_int(tmps, 0, "no tmp file is left");
	}
	objects_there(r, 33, true, &sent);
	is_int(sent, 1, "a rerun sends only the missing object");
	is_int(vv_repo_objects_sync(r), 0, "and syncs it");
	is_int(objects_there(r, 33, false, NULL), 33, "all 33 are there");
	/* Many writers over many batches (syncs overlapping fills). */
	{
		struct bput w[4];
		pthread_t th[4];
		for (int i = 0; i < 4; i++) {
			w[i] = (struct bput){ .r = r, .from = 100 + i * 50, .to = 150 + i * 50 };
			pthread_create(&th[i], NULL, bput_main, &w[i]);
		}
		for (int i = 0; i < 4; i++)
			pthread_join(th[i], NULL);
		ok(!w[0].ret && !w[1].ret && !w[2].ret && !w[3].ret, "4 writers put 200 objects");
		is_int(vv_repo_objects_sync(r), 0, "synced");
		sent = 0;
		objects_there(r, 300, true, &sent);
		is_int(sent, 67, "all 200 are there (a rerun would send only 67 never put)");
		vv_repo_objects_sync(r);
	}
	/* A directory's fsync failing fails the sync (the manifest is not
	 * written), and the next sync tries the directories again: 32 puts
	 * land one batch, whose directories only objects_sync syncs. */
	{
		struct bput w = { .r = r, .from = 400, .to = 432 };
		unsigned long f0;
		bput_main(&w);
		is_int(w.ret, 0, "32 more objects: a batch landed");
		os_fault_install();
		os_fault_set(OSF_FSYNC, (struct os_fault){ .err = EIO, .times = 1 });
		is_int(vv_repo_objects_sync(r), VV_EIO, "a directory's failed fsync fails the sync");
		f0 = os_fault_calls(OSF_FSYNC);
		ok(f0 >= 2, "the directories were synced");
		is_int(vv_repo_objects_sync(r), 0, "the next sync succeeds");
		ok(os_fault_calls(OSF_FSYNC) > f0 + 1, "and synced the directories again");
		os_fault_uninstall();
	}
	is_int(count_fds(), fds0, "no descriptor is left open");
	vv_repo_close(r);
}

/* The largest regular file under dir (depth 2: XX/NAME) into out. */
/* Metadata packs (manifest version 2): the same rows give the same packs,
 * written once; a change re-writes some; a pack gone is named. */
static void packs_sample(struct vv_manifest *m, int changed)
{
	struct vv_inode_row r;
	uint8_t data[4000];   /* 1.6 MB of rows: at least 7 packs whatever the key (PACK_MAX) */

	sample(m, 1000000000LL);
	memset(&r, 0, sizeof(r));
	r.mode = 0100644;
	for (int i = 0; i < 400; i++) {
		uint32_t x = 2463534242u + (uint32_t)i * 7919u;
		for (size_t j = 0; j < sizeof(data); j++) {
			x ^= x << 13, x ^= x >> 17, x ^= x << 5;
			data[j] = (uint8_t)x;
		}
		data[0] = (uint8_t)(i == changed ? 0xee : 0x11);
		r.ino = 10 + (uint64_t)i;
		r.size = sizeof(data);
		vv_manifest_add_inode(m, &r, data, sizeof(data));
	}
}

static void test_packs(void)
{
	char dest[300], id[33], hex[33], path[700];
	uint64_t n1, w1, b1, n2, w2, b2;
	struct vv_manifest m, got;
	struct vv_repo *r = NULL;
	char **names = NULL;
	size_t nn = 0;

	snprintf(dest, sizeof(dest), "%s/prepo", top);
	is_int(vv_repo_init(dest, RPASS, strlen(RPASS), VV_KDF_PROFILE_TEST, VV_REPO_ALLOW_TEST_KDF, id), 0,
	       "packs: a repository");
	for (int round = 0; round < 2; round++) {
		/* Round 0 without the daemon's caches, round 1 with them. */
		unsigned fl = VV_REPO_ALLOW_TEST_KDF | VV_REPO_WRITE | (round ? VV_REPO_KEY_CACHE : 0);
		is_int(vv_repo_open(dest, RPASS, strlen(RPASS), fl, 0, &r), 0, "packs: open");
		packs_sample(&m, -1);
		is_int(vv_repo_manifest_store(r, &m), 0, "packs: store");
		vv_repo_packs_stats(r, &n1, &w1, &b1);
		vv_manifest_free(&m);
		ok(n1 > 3 && (round || w1 == n1), "packs: 1.6 MB of rows in several packs");
		packs_sample(&m, -1);
		is_int(vv_repo_manifest_store(r, &m), 0, "packs: the same rows again");
		vv_repo_packs_stats(r, &n2, &w2, &b2);
		vv_manifest_free(&m);
		ok(n2 == n1 && w2 == 0 && b2 == 0, "packs: the same packs, none written");
		packs_sample(&m, round ? 300 : 200);
		is_int(vv_repo_manifest_store(r, &m), 0, "packs: one row changed");
		vv_hex_encode(hex, m.id, sizeof(m.id));
		vv_manifest_free(&m);
		vv_repo_packs_stats(r, &n2, &w2, &b2);
		ok(w2 >= 1 && w2 < n2, "packs: some written, not all");
		printf("# round %d: %llu packs; after a change %llu of %llu written\n", round,
		       (unsigned long long)n1, (unsigned long long)w2, (unsigned long long)n2);
		is_int(vv_repo_manifest_load(r, hex, &got), 0, "packs: it loads");
		ok(got.ninodes == 402 && got.npacks == n2 && got.inodes[202].datalen == 4000 &&
		   got.inodes[round ? 302 : 202].data[0] == 0xee && got.inodes[201].data[0] == 0x11,
		   "packs: with its rows");
		vv_manifest_free(&got);
		vv_repo_close(r);
	}
	/* A pack removed: no manifest that names it loads, and why names it. */
	is_int(vv_repo_open(dest, RPASS, strlen(RPASS), VV_REPO_ALLOW_TEST_KDF, 0, &r), 0, "packs: reopen");
	is_int(vv_repo_manifest_names(r, &names, &nn), 0, "packs: the manifests");
	is_int(vv_repo_manifest_load(r, names[0], &got), 0, "packs: the first loads");
	{
		char nh[65];
		vv_hex_encode(nh, got.packs[0].name, 32);
		snprintf(path, sizeof(path), "%s/objects/%.2s/%s", dest, nh, nh);
		ok(unlink(path) == 0, "packs: remove one");
		vv_manifest_free(&got);
		is_int(vv_repo_manifest_load(r, names[0], &got), VV_ECORRUPT, "packs: then it does not load");
		ok(strstr(vv_repo_why(r), "metadata pack") && strstr(vv_repo_why(r), nh) &&
		   strstr(vv_repo_why(r), "missing"), "packs: naming the pack missing");
	}
	vv_repo_names_free(names, nn);
	vv_repo_close(r);
	vv_repo_key_cache_clear();
}

/* The daemon's caches under concurrent runs (repo_manifest.c
 * mc_rows_take): five repositories, one more than the cache keeps, so
 * their runs evict each other's entries, each get four manifests from a
 * thread of their own while the caches are cleared meanwhile; every store
 * succeeds and each last manifest loads with its rows.  Built with
 * clang -fsanitize=thread it shows the cache race-free. */
#define PT_N 5

struct pthr {
	char dest[300];
	char last[33];                     /* the last manifest's id */
	int ret;
	int done;                          /* atomic */
};

static void *packs_thread(void *arg)
{
	struct pthr *t = arg;
	struct vv_repo *r = NULL;
	struct vv_manifest m;
	char id[33];
	int e;

	e = vv_repo_init(t->dest, RPASS, strlen(RPASS), VV_KDF_PROFILE_TEST, VV_REPO_ALLOW_TEST_KDF, id);
	if (e == 0)
		e = vv_repo_open(t->dest, RPASS, strlen(RPASS),
				 VV_REPO_ALLOW_TEST_KDF | VV_REPO_WRITE | VV_REPO_KEY_CACHE, 0, &r);
	for (int i = 0; e == 0 && i < 4; i++) {
		packs_sample(&m, i ? 100 * i : -1);   /* the last: row 300 changed */
		e = vv_repo_manifest_store(r, &m);
		vv_hex_encode(t->last, m.id, sizeof(m.id));
		vv_manifest_free(&m);
	}
	vv_repo_close(r);
	t->ret = e;
	__atomic_store_n(&t->done, 1, __ATOMIC_RELEASE);
	return NULL;
}

static void test_packs_threads(void)
{
	struct pthr t[PT_N];
	pthread_t th[PT_N];
	struct vv_manifest got;
	struct vv_repo *r = NULL;
	int stored = 0, loaded = 0, clears = 0;
	bool all;

	memset(t, 0, sizeof(t));
	for (int i = 0; i < PT_N; i++) {
		snprintf(t[i].dest, sizeof(t[i].dest), "%s/threpo%d", top, i);
		pthread_create(&th[i], NULL, packs_thread, &t[i]);
	}
	do {
		all = true;
		for (int i = 0; i < PT_N; i++)
			all = all && __atomic_load_n(&t[i].done, __ATOMIC_ACQUIRE);
		if (!all && clears < 50) {
			vv_repo_key_cache_clear();
			clears++;
		}
		usleep(2000);
	} while (!all);
	for (int i = 0; i < PT_N; i++) {
		pthread_join(th[i], NULL);
		stored += t[i].ret == 0;
	}
	printf("# %d cache clears while the runs went on\n", clears);
	is_int(stored, PT_N, "threads: five repositories, four manifests each, stored at once");
	for (int i = 0; i < PT_N; i++) {
		if (vv_repo_open(t[i].dest, RPASS, strlen(RPASS), VV_REPO_ALLOW_TEST_KDF, 0, &r) < 0)
			continue;
		if (vv_repo_manifest_load(r, t[i].last, &got) == 0) {
			loaded += got.ninodes == 402 && got.inodes[302].data[0] == 0xee &&
				  got.inodes[202].data[0] == 0x11 && got.inodes[401].data[0] == 0x11;
			vv_manifest_free(&got);
		}
		vv_repo_close(r);
	}
	is_int(loaded, PT_N, "threads: each last manifest loads with its rows");
	vv_repo_key_cache_clear();
}

/*
 * Hostile version 2 manifests: sealed with the repository's own key (a
 * key holder's, or a repository shipped to others), so they pass the tag
 * and reach the parser.  The key comes from slot 0 of DEST/config as
 * vv_repo_open gets it.
 */
#define HOSTILE_PACKS 4096                 /* x 256 KiB claimed: the 1 GiB cap */

static size_t v2_pack_size(uint32_t plen)
{
	size_t n = 4 + (size_t)plen;

	return 32 + n + (4096 - n % 4096) % 4096 + 16;
}

/* The head of m's body (its bytes up to the objects' count). */
static size_t v2_head(const struct vv_manifest *m, uint8_t *out, size_t cap)
{
	struct vv_manifest h = *m;
	uint8_t *enc = NULL;
	size_t len = 0, used, hl = 0;

	h.nobjs = h.ninodes = h.ndirents = h.nxattrs = h.nextents = 0;
	if (vv_manifest_encode(&h, &enc, &len) == 0) {
		for (used = len; used && !enc[used - 1]; used--)
			;
		hl = used - (5 * 8 + 4);   /* five empty counts, END! */
		if (hl <= cap)
			memcpy(out, enc, hl);
		else
			hl = 0;
	}
	free(enc);
	return hl;
}

/* Seal body as manifest id (version 2) of the repository at dest. */
static int seal_manifest(const char *dest, const uint8_t *id, const uint8_t *body, size_t blen)
{
	uint8_t conf[4096], key[VV_KEY_BYTES], kek[VV_KEY_BYTES], kman[VV_KEY_BYTES], ad[29], *f;
	struct vv_kdf_params p;
	char path[700], hex[33];
	ssize_t clen;
	int fd, e = -1;

	snprintf(path, sizeof(path), "%s/config", dest);
	if ((fd = open(path, O_RDONLY)) < 0)
		return -1;
	clen = read(fd, conf, sizeof(conf));
	close(fd);
	if (clen < 40 + 108 + 32 || !(f = malloc(68 + blen + 16)))
		return -1;
	p.opslimit = vv_get_le64(conf + 44);
	p.memlimit = vv_get_le64(conf + 52);
	memcpy(ad, "vvbk-slot", 9);
	memcpy(ad + 9, conf + 12, 16);
	memcpy(ad + 25, conf + 40, 4);
	if (vv_kdf_derive(kek, RPASS, strlen(RPASS), conf + 60, &p) < 0 ||
	    vv_key_unwrap(key, conf + 76, kek, ad, sizeof(ad)) < 0 || vv_subkey(kman, key, 1, "vvbkmani") < 0)
		goto out;
	memcpy(f, "VVBKMAN1", 8);
	vv_put_le32(f + 8, 2);
	memcpy(f + 12, conf + 12, 16);
	memcpy(f + 28, id, 16);
	vv_random_bytes(f + 44, 24);
	if (vv_xchacha_seal(f + 68, f + 68 + blen, body, blen, f, 68, f + 44, kman) < 0)
		goto out;
	vv_hex_encode(hex, id, 16);
	snprintf(path, sizeof(path), "%s/manifests/%s", dest, hex);
	if ((fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600)) < 0)
		goto out;
	if (write(fd, f, 68 + blen + 16) == (ssize_t)(68 + blen + 16))
		e = 0;
	close(fd);
out:
	vv_memzero(key, sizeof(key));
	vv_memzero(kek, sizeof(kek));
	vv_memzero(kman, sizeof(kman));
	free(f);
	return e;
}

struct memsrc {
	size_t calls;
	const uint8_t *rows;               /* NULL: every pack missing */
	size_t at;
};

static int mem_piece(void *ctx, const struct vv_bk_pack *pk, uint8_t *piece)
{
	struct memsrc *s = ctx;

	s->calls++;
	if (!s->rows)
		return VV_ECORRUPT;
	memcpy(piece, s->rows + s->at, pk->plen);
	s->at += pk->plen;
	return 0;
}

/* The version 2 body of m with its rows (rowslen bytes) in packs of plen
 * bytes (the last shorter), or with plen 0 HOSTILE_PACKS of 256 KiB
 * claimed; malloc'd. */
static uint8_t *v2_body(const struct vv_manifest *m, uint32_t plen, size_t rowslen, size_t *blen)
{
	size_t cap = 8192 + 44 * (size_t)HOSTILE_PACKS, n = 0, hl, np;
	uint8_t *b = calloc(1, cap + 4096);

	if (!b || !(hl = v2_head(m, b, cap)))
		return NULL;
	n = hl;
	np = plen ? (rowslen + plen - 1) / plen : HOSTILE_PACKS;
	vv_put_le32(b + n, (uint32_t)np);
	n += 4;
	for (size_t i = 0; i < np; i++) {
		uint32_t l = !plen ? 262144 : i + 1 < np ? plen : (uint32_t)(rowslen - i * plen);
		vv_random_bytes(b + n, 32);
		vv_put_le64(b + n + 32, v2_pack_size(l));
		vv_put_le32(b + n + 40, l);
		n += 44;
	}
	memcpy(b + n, "END!", 4);
	n += 4;
	*blen = n + (4096 - n % 4096) % 4096;
	return b;
}

static void test_packs_hostile(void)
{
	char dest[300], id[33], hex[33];
	struct vv_manifest m, got;
	struct memsrc src = { 0 };
	struct vv_repo *r = NULL;
	uint8_t *body, *enc = NULL;
	uint8_t head[8192];
	size_t blen = 0, elen = 0, used, hl;
	int e;

	/* The memory source: rows in three packs come back; a pack that
	 * fails fails the decode, before any later one is asked for. */
	sample(&m, 5);
	vv_manifest_encode(&m, &enc, &elen);
	for (used = elen; used && !enc[used - 1]; used--)
		;
	hl = v2_head(&m, head, sizeof(head));
	body = v2_body(&m, 100, used - hl, &blen);
	src.rows = enc + hl;
	is_int(vv_manifest_decode_v2(body, blen, mem_piece, &src, &got), 0, "v2 body: decodes from memory");
	ok(got.npacks == src.calls && got.npacks >= 2 && got.ninodes == 2 && got.nobjs == 1 &&
	   got.inodes[1].datalen == 5, "v2 body: its rows from every pack");
	vv_manifest_free(&got);
	src = (struct memsrc){ 0 };
	is_int(vv_manifest_decode_v2(body, blen, mem_piece, &src, &got), VV_ECORRUPT,
	       "v2 body: a missing pack is corrupt");
	ok(src.calls == 1, "v2 body: ... found at the first");
	free(body);
	free(enc);
	vv_manifest_free(&m);

	/* 4096 packs of 256 KiB each claimed in 180 KB: the old decoder
	 * took 1 GiB for the rows before it looked for the first pack (so,
	 * with the address space limited, VV_ENOMEM for a missing pack).
	 * In a child with 256 MiB of address space to spare. */
	snprintf(dest, sizeof(dest), "%s/hrepo", top);
	is_int(vv_repo_init(dest, RPASS, strlen(RPASS), VV_KDF_PROFILE_TEST, VV_REPO_ALLOW_TEST_KDF, id), 0,
	       "hostile packs: a repository");
	sample(&m, 7);
	body = v2_body(&m, 0, 0, &blen);
	ok(body && seal_manifest(dest, m.id, body, blen) == 0, "hostile packs: a sealed manifest claiming 1 GiB");
	vv_hex_encode(hex, m.id, sizeof(m.id));
	free(body);
	vv_manifest_free(&m);
	is_int(vv_repo_open(dest, RPASS, strlen(RPASS), VV_REPO_ALLOW_TEST_KDF, 0, &r), 0, "hostile packs: open");
#if defined(__SANITIZE_ADDRESS__)
	tap_diag("hostile packs: no address space limit under ASan");
#else
	{
		pid_t pid = fork();
		int st = 0;
		if (pid == 0) {
			struct rlimit rl;
			FILE *f = fopen("/proc/self/statm", "r");
			unsigned long pages = 0;
			if (!f || fscanf(f, "%lu", &pages) != 1)
				_exit(3);
			fclose(f);
			rl.rlim_cur = rl.rlim_max = pages * (unsigned long)sysconf(_SC_PAGESIZE) + (256ul << 20);
			if (setrlimit(RLIMIT_AS, &rl) < 0)
				_exit(3);
			e = vv_repo_manifest_load(r, hex, &got);
			_exit(e == VV_ECORRUPT && strstr(vv_repo_why(r), "missing") ? 0 : e == VV_ENOMEM ? 2 : 1);
		}
		ok(pid > 0 && waitpid(pid, &st, 0) == pid && WIFEXITED(st) && WEXITSTATUS(st) == 0,
		   "hostile packs: the first pack missing, named, within 256 MiB");
	}
#endif
	e = vv_repo_manifest_load(r, hex, &got);
	is_int(e, VV_ECORRUPT, "hostile packs: it does not load");
	vv_repo_close(r);
}

static void tree_problem(void *ctx, const char *msg)
{
	(void)ctx;
	printf("# %s\n", msg);
}

/* Rows of inodes without bytes and nothing much after them (a snapshot
 * holds trashed inodes, which have no entries): each is 112 bytes, and a
 * reader that counted 120 refused such a backup as altered. */
static void test_empty_inodes(void)
{
	char dest[300], id[33], hex[33];
	struct vv_manifest m, got;
	struct vv_inode_row row;
	struct vv_repo *r = NULL;
	uint8_t *buf = NULL;
	size_t len = 0;

	memset(&m, 0, sizeof(m));
	vv_random_bytes(m.id, sizeof(m.id));
	memset(&row, 0, sizeof(row));
	row.mode = 040755;
	for (uint64_t i = 1; i <= 1000; i++) {
		row.ino = i;
		vv_manifest_add_inode(&m, &row, NULL, 0);
		row.mode = 0100644;
	}
	is_int(vv_manifest_encode(&m, &buf, &len), 0, "empty inodes: a version 1 body");
	is_int(vv_manifest_decode(buf, len, &got), 0, "empty inodes: 1000 read back (version 1)");
	ok(got.ninodes == 1000, "empty inodes: all of them");
	vv_manifest_free(&got);
	free(buf);
	snprintf(dest, sizeof(dest), "%s/erepo", top);
	is_int(vv_repo_init(dest, RPASS, strlen(RPASS), VV_KDF_PROFILE_TEST, VV_REPO_ALLOW_TEST_KDF, id), 0,
	       "empty inodes: a repository");
	is_int(vv_repo_open(dest, RPASS, strlen(RPASS), VV_REPO_ALLOW_TEST_KDF | VV_REPO_WRITE, 0, &r), 0,
	       "empty inodes: open");
	is_int(vv_repo_manifest_store(r, &m), 0, "empty inodes: store (packs)");
	vv_hex_encode(hex, m.id, sizeof(m.id));
	is_int(vv_repo_manifest_load(r, hex, &got), 0, "empty inodes: it loads (version 2)");
	ok(got.ninodes == 1000, "empty inodes: every one");
	vv_manifest_free(&got);
	vv_manifest_free(&m);
	vv_repo_close(r);
}

static int count_entry(void *ctx, const struct vv_rt_entry *e)
{
	(void)e;
	return ++*(long *)ctx > 10000000 ? VV_ECANCELED : 0;
}

/* Restore --into walks what a manifest's entries say: 20 directories
 * each naming the next twice were 2^20 walks (2M entries), and a
 * directory naming its parent walked until the depth cap. */
static void test_tree_hostile(void)
{
	char dest[300], id[33], hex[33];
	struct vv_manifest m;
	struct vv_repo *r = NULL;
	struct vv_inode_row row;
	long n = 0;
	struct vv_rt_ops ops = { .entry = count_entry, .problem = tree_problem, .ctx = &n };

	snprintf(dest, sizeof(dest), "%s/trepo", top);
	is_int(vv_repo_init(dest, RPASS, strlen(RPASS), VV_KDF_PROFILE_TEST, VV_REPO_ALLOW_TEST_KDF, id), 0,
	       "tree: a repository");
	is_int(vv_repo_open(dest, RPASS, strlen(RPASS), VV_REPO_ALLOW_TEST_KDF | VV_REPO_WRITE, 0, &r), 0,
	       "tree: open");
	for (int cyc = 0; cyc < 2; cyc++) {
		memset(&m, 0, sizeof(m));
		vv_random_bytes(m.id, sizeof(m.id));
		memset(&row, 0, sizeof(row));
		row.mode = 040755;
		for (uint64_t i = 1; i <= 21; i++) {
			row.ino = i;
			vv_manifest_add_inode(&m, &row, NULL, 0);
			if (i < 21 && !cyc) {
				vv_manifest_add_dirent(&m, i, "a", 2 * i, i + 1, 040755);
				vv_manifest_add_dirent(&m, i, "b", 2 * i + 1, i + 1, 040755);
			}
		}
		if (cyc) {
			vv_manifest_add_dirent(&m, 1, "d", 2, 2, 040755);
			vv_manifest_add_dirent(&m, 2, "up", 3, 1, 040755);
		}
		/* (Inodes 3..21 without entries, as trashed ones are.) */
		is_int(vv_repo_manifest_store(r, &m), 0, "tree: store a manifest of hostile entries");
		vv_hex_encode(hex, m.id, sizeof(m.id));
		vv_manifest_free(&m);
		n = 0;
		is_int(vv_repo_restore_tree(r, hex, "", &ops), VV_ECORRUPT,
		       cyc ? "tree: a directory naming its parent is refused"
			   : "tree: directories named twice are refused");
		ok(n < 100, "tree: ... before walking them again");
	}
	vv_repo_close(r);
}

static long largest(const char *dir, char *out, size_t cap)
{
	DIR *d = opendir(dir), *e;
	struct dirent *x, *y;
	struct stat st;
	char sub[600], f[900];
	long best = -1;

	while (d && (x = readdir(d))) {
		if (x->d_name[0] == '.')
			continue;
		snprintf(sub, sizeof(sub), "%s/%s", dir, x->d_name);
		if (!(e = opendir(sub)))
			continue;
		while ((y = readdir(e)))
			if (y->d_name[0] != '.' && snprintf(f, sizeof(f), "%s/%s", sub, y->d_name) > 0 &&
			    stat(f, &st) == 0 && S_ISREG(st.st_mode) && st.st_size > best) {
				best = st.st_size;
				snprintf(out, cap, "%s", f);
			}
		closedir(e);
	}
	if (d)
		closedir(d);
	return best;
}

static void flip_at(const char *path, long off)
{
	int fd = open(path, O_RDWR);
	uint8_t b = 0;

	if (fd >= 0 && pread(fd, &b, 1, off) == 1) {
		b ^= 0x40;
		if (pwrite(fd, &b, 1, off) != 1)
			b = 0;
	}
	if (fd >= 0)
		close(fd);
}

/*
 * Restore authenticates every block it keeps with AES-GCM instead of the
 * object's name (vault_backup.c "The copy of a restore"): a flipped byte
 * in a dead slot (block 3 of /c1/big was rewritten) is not restored (the
 * new chunk holds zeros there) while verify still names the object; a
 * flipped byte in a live block is refused, and no store is left.
 */
static void tamper_restore(struct vv_repo *r, const char *dest, const char *state)
{
	char store3[300];
	char objs[400], obj[900], chunks[400], chunk[900], **names = NULL;
	const long slot = 65536 + 16, dead = 16 + 3 * slot;
	uint64_t problems = 0;
	size_t n = 0;
	uint8_t buf[256];
	int fd;

	snprintf(store3, sizeof(store3), "%s/store3", top);
	snprintf(objs, sizeof(objs), "%s/objects", dest);
	if (largest(objs, obj, sizeof(obj)) < 16 + 16 * slot) {
		ok(0, "the first chunk of /c1/big is in the repository");
		return;
	}
	vv_repo_manifest_names(r, &names, &n);
	if (n != 1)
		goto out;
	flip_at(obj, dead + 1000);
	is_int(vv_repo_verify(r, false, NULL, NULL, NULL, &problems, NULL), VV_ECORRUPT,
	       "a flipped byte in a dead slot: verify names the object altered");
	ok(problems > 0, "one problem or more");
	is_int(vv_repo_restore_store(r, names[0], store3, "new", 3, VV_KDF_PROFILE_TEST,
				     VV_VAULT_ALLOW_TEST_KDF, state, NULL, NULL, NULL, NULL), 0,
	       "restore does not need the dead slot's bytes");
	snprintf(chunks, sizeof(chunks), "%s/chunks", store3);
	ok(largest(chunks, chunk, sizeof(chunk)) >= dead + slot, "the restored chunk");
	memset(buf, 1, sizeof(buf));
	if ((fd = open(chunk, O_RDONLY)) >= 0) {
		bool zero = pread(fd, buf, sizeof(buf), dead + 1000 - 128) == (ssize_t)sizeof(buf);
		for (size_t i = 0; i < sizeof(buf); i++)
			zero = zero && buf[i] == 0;
		ok(zero, "holds zeros where the dead slot was, not the flipped bytes");
		close(fd);
	}
	/* Removed again, for the refusal below. */
	snprintf(chunk, sizeof(chunk), "rm -rf '%s'", store3);
	if (system(chunk) != 0)
		ok(0, "remove the restored store");
	flip_at(obj, dead + 1000);
	flip_at(obj, 16 + 5);                     /* slot 0, live */
	is_int(vv_repo_restore_store(r, names[0], store3, "new", 3, VV_KDF_PROFILE_TEST,
				     VV_VAULT_ALLOW_TEST_KDF, state, NULL, NULL, NULL, NULL), VV_ECORRUPT,
	       "a flipped byte in a live block: restore refuses");
	ok(access(store3, F_OK) != 0, "and leaves no store");
	flip_at(obj, 16 + 5);
	problems = 0;
	is_int(vv_repo_verify(r, false, NULL, NULL, NULL, &problems, NULL), 0, "flipped back: verify is clean");
out:
	vv_repo_names_free(names, n);
}

static void test_vault(void)
{
	char store[300], state[300], dest[300], store2[300], id[33];
	struct vv_vault_opts o = { .flags = VV_VAULT_ALLOW_TEST_KDF | VV_VAULT_NO_AUDIT, .knn_off = true };
	struct vv_admin_arg args[2];
	struct vv_admin_reply rep;
	struct vv_vault *v = NULL;
	struct vv_repo *r = NULL;
	struct vv_attr c1, a;
	struct vv_file *fh;
	uint8_t *data = malloc(1 << 20), *back = malloc(1 << 20);
	uint64_t ino = 0, problems = 0;
	bool kc;

	snprintf(store, sizeof(store), "%s/store", top);
	snprintf(state, sizeof(state), "%s/state", top);
	snprintf(dest, sizeof(dest), "%s/vdest", top);
	snprintf(store2, sizeof(store2), "%s/store2", top);
	o.state_dir = state;
	for (size_t i = 0; i < (1 << 20); i++)
		data[i] = (uint8_t)(i * 2654435761u >> 13);
	is_int(vv_vault_create_store(store, PASS, strlen(PASS), VV_KDF_PROFILE_TEST, VV_VAULT_ALLOW_TEST_KDF,
				     0, 0, state), 0, "a vault owned by root");
	is_int(vv_vault_open(store, PASS, strlen(PASS), &o, &v), 0, "open it");
	if (!v)
		return;
	is_int(vv_vault_mkdir(v, &root_c, VV_ROOT_INO, "c1", 0755, &c1), 0, "mkdir /c1");
	is_int(vt_write_file(v, &root_c, c1.ino, "big", data, 1 << 20, 0644, &ino), 0,
	       "write /c1/big");
	/* Rewrite block 3: slot 3 of the first chunk is dead from now on. */
	if (vv_vault_open_file(v, &root_c, ino, O_RDWR, &fh, &kc) == 0) {
		memset(data + 3 * 65536, 0x5a, 65536);
		ok(vv_vault_write(v, &root_c, fh, data + 3 * 65536, 65536, 3 * 65536) == 65536,
		   "rewrite block 3 of /c1/big");
		is_int(vv_vault_fsync(v, fh, false), 0, "fsync it");
		vv_vault_release(v, fh);
	}
	is_int(vv_repo_init(dest, RPASS, strlen(RPASS), VV_KDF_PROFILE_TEST, VV_REPO_ALLOW_TEST_KDF, id), 0,
	       "a repository");
	args[0] = (struct vv_admin_arg){ "dest", dest };
	args[1] = (struct vv_admin_arg){ "pass", RPASS };
	vv_admin_reply_init(&rep);
	{
		struct vv_admin_req rq = { .peer = { .uid = 1000, .gid = 1000, .pid = 1 }, .client = "local",
					   .verb = "backup.create", .nargs = 2, .args = args };
		is_int(vv_admin_call(v, &rq, &rep), VV_EACCES, "uid 1000 may not run backup.create");
		rq.peer.uid = rq.peer.gid = 0;
		is_int(vv_admin_call(v, &rq, &rep), 0, "root may");
		tap_diag(rep.body ? rep.body : "");
		args[1].val = "wrong";
		is_int(vv_admin_call(v, &rq, &rep), VV_EBADPASS, "a wrong repository passphrase is refused");
	}
	vv_admin_reply_release(&rep);
	vv_vault_close(v);
	v = NULL;
	is_int(vv_repo_open(dest, RPASS, strlen(RPASS), VV_REPO_ALLOW_TEST_KDF, 0, &r), 0, "open the repository");
	is_int(vv_repo_verify(r, true, NULL, NULL, NULL, &problems, NULL), 0, "verify --read-data: clean");
	{
		char **names = NULL;
		size_t n = 0;
		vv_repo_manifest_names(r, &names, &n);
		is_int((int)n, 1, "one backup");
		if (n == 1)
			is_int(vv_repo_restore_store(r, names[0], store2, "new", 3, VV_KDF_PROFILE_TEST,
						     VV_VAULT_ALLOW_TEST_KDF, state, NULL, NULL, NULL, NULL), 0,
			       "restore it into a new store");
		vv_repo_names_free(names, n);
	}
	tamper_restore(r, dest, state);
	vv_repo_close(r);
	is_int(vv_vault_open(store2, "new", 3, &o, &v), 0, "the new store opens with the new passphrase");
	if (!v)
		return;
	is_int(vv_vault_lookup(v, &root_c, VV_ROOT_INO, "c1", &c1), 0, "/c1 is there");
	is_int(vv_vault_lookup(v, &root_c, c1.ino, "big", &a), 0, "/c1/big is there");
	if (vv_vault_open_file(v, &root_c, a.ino, O_RDONLY, &fh, &kc) == 0) {
		ok(vv_vault_read(v, fh, back, 1 << 20, 0) == (1 << 20) && memcmp(back, data, 1 << 20) == 0,
		   "with the same bytes");
		vv_vault_release(v, fh);
	}
	vv_vault_close(v);
	free(data);
	free(back);
}

/* A backup of an empty vault (the root alone: no dirents, no objects, no
 * extents) restores: its empty arrays are NULL, which the restore must not
 * hand to qsort (UBSan aborted it there: build with -DVV_SANITIZE=ON). */
static void test_vault_empty(void)
{
	char store[300], state[300], dest[300], store2[300], id[33];
	struct vv_vault_opts o = { .flags = VV_VAULT_ALLOW_TEST_KDF | VV_VAULT_NO_AUDIT, .knn_off = true };
	struct vv_admin_arg args[2] = { { "dest", dest }, { "pass", RPASS } };
	struct vv_admin_req rq = { .peer = { .uid = 0, .gid = 0, .pid = 1 }, .client = "local",
				   .verb = "backup.create", .nargs = 2, .args = args };
	struct vv_admin_reply rep;
	struct vv_vault *v = NULL;
	struct vv_repo *r = NULL;
	struct vv_attr a;
	char **names = NULL;
	size_t n = 0;

	snprintf(store, sizeof(store), "%s/estore", top);
	snprintf(state, sizeof(state), "%s/estate", top);
	snprintf(dest, sizeof(dest), "%s/edest", top);
	snprintf(store2, sizeof(store2), "%s/estore2", top);
	o.state_dir = state;
	is_int(vv_vault_create_store(store, PASS, strlen(PASS), VV_KDF_PROFILE_TEST, VV_VAULT_ALLOW_TEST_KDF,
				     0, 0, state), 0, "empty: a vault");
	is_int(vv_vault_open(store, PASS, strlen(PASS), &o, &v), 0, "empty: open it");
	if (!v)
		return;
	is_int(vv_repo_init(dest, RPASS, strlen(RPASS), VV_KDF_PROFILE_TEST, VV_REPO_ALLOW_TEST_KDF, id), 0,
	       "empty: a repository");
	vv_admin_reply_init(&rep);
	is_int(vv_admin_call(v, &rq, &rep), 0, "empty: backup.create");
	vv_admin_reply_release(&rep);
	vv_vault_close(v);
	v = NULL;
	is_int(vv_repo_open(dest, RPASS, strlen(RPASS), VV_REPO_ALLOW_TEST_KDF, 0, &r), 0,
	       "empty: open the repository");
	if (!r)
		return;
	vv_repo_manifest_names(r, &names, &n);
	is_int((int)n, 1, "empty: one backup");
	if (n == 1)
		is_int(vv_repo_restore_store(r, names[0], store2, "new", 3, VV_KDF_PROFILE_TEST,
					     VV_VAULT_ALLOW_TEST_KDF, state, NULL, NULL, NULL, NULL), 0,
		       "empty: restore it into a new store");
	vv_repo_names_free(names, n);
	vv_repo_close(r);
	is_int(vv_vault_open(store2, "new", 3, &o, &v), 0, "empty: the new store opens");
	if (!v)
		return;
	is_int(vv_vault_lookup(v, &root_c, VV_ROOT_INO, "c1", &a), VV_ENOENT, "empty: and holds nothing");
	vv_vault_close(v);
}

int main(void)
{
	const char *tmp = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
	char cmd[300];

	if (vv_crypto_init() < 0)
		tap_skip_all("no crypto");
	snprintf(top, sizeof(top), "%s/vv-backup-XXXXXX", tmp);
	if (!mkdtemp(top))
		tap_skip_all("cannot make a temp dir");
	test_body();
	test_repo();
	test_batches();
	test_packs();
	test_packs_threads();
	test_packs_hostile();
	test_empty_inodes();
	test_tree_hostile();
	test_vault();
	test_vault_empty();
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", top);
	if (system(cmd) != 0)
		tap_diag("cannot remove the temp dir");
	return tap_done();
}
