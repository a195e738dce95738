/*
 * test_privfile.c - the rules for files kept outside STORE (privfile.h):
 * links are never followed, someone else's or over-permissive files and
 * directories others can change are refused, O_TRUNC waits for the checks,
 * and a planted temporary name is replaced, never written through.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tap.h"
#include "vecvault/error.h"
#include "vecvault/log.h"
#include "vecvault/privfile.h"

static char top[256];

static void sink(void *ctx, enum vv_log_level lvl, const char *msg)
{
	(void)ctx;
	(void)lvl;
	printf("# [log] %s\n", msg);
}

static void put(const char *path, const char *text, mode_t mode)
{
	FILE *f = fopen(path, "w");

	if (f) {
		fputs(text, f);
		fclose(f);
	}
	chmod(path, mode);
}

static int same(const char *path, const char *text)
{
	char buf[256] = "";
	FILE *f = fopen(path, "r");
	size_t n;

	if (!f)
		return 0;
	n = fread(buf, 1, sizeof(buf) - 1, f);
	buf[n] = '\0';
	fclose(f);
	return strcmp(buf, text) == 0;
}

static void sub(char *out, size_t n, const char *name)
{
	snprintf(out, n, "%s/%s", top, name);
}

static int try_open(const char *path, int flags, mode_t mode, mode_t deny, char *why, size_t wl)
{
	int fd = -1, r = vv_privfile_open(path, flags, mode, deny, &fd, why, wl);

	if (fd >= 0)
		close(fd);
	return r;
}

static void test_files(void)
{
	char p[512], victim[512], why[1024];
	struct stat st;

	sub(victim, sizeof(victim), "victim");
	put(victim, "secret\n", 0600);

	sub(p, sizeof(p), "new.log");
	is_int(try_open(p, O_WRONLY | O_CREAT | O_APPEND, 0600, VV_PRIVFILE_SECRET, why, sizeof(why)),
	       0, "a new file in our 0700 directory opens");
	ok(stat(p, &st) == 0 && (st.st_mode & 0777) == 0600, "  created 0600");
	is_int(try_open(p, O_RDWR, 0, VV_PRIVFILE_SECRET, NULL, 0), 0, "  and reopens");

	sub(p, sizeof(p), "link.log");
	symlink(victim, p);
	is_int(try_open(p, O_WRONLY | O_CREAT | O_APPEND, 0600, VV_PRIVFILE_SECRET, why, sizeof(why)),
	       VV_EUNSAFE, "a symbolic link is refused");
	ok(strstr(why, p) && strstr(why, "symbolic link"), "  the reason names the file and the link");
	is_int(try_open(p, O_RDONLY, 0, VV_PRIVFILE_SECRET, NULL, 0), VV_EUNSAFE,
	       "  also for reading");
	ok(same(victim, "secret\n"), "  the victim is untouched");

	sub(p, sizeof(p), "hard.log");
	link(victim, p);
	is_int(try_open(p, O_WRONLY | O_APPEND, 0, VV_PRIVFILE_SECRET, why, sizeof(why)), VV_EUNSAFE,
	       "a second hard link is refused");
	ok(strstr(why, "hard links") != NULL, "  the reason says so");

	sub(p, sizeof(p), "wide.log");
	put(p, "keep\n", 0644);
	is_int(try_open(p, O_WRONLY | O_TRUNC, 0, VV_PRIVFILE_SECRET, why, sizeof(why)), VV_EUNSAFE,
	       "mode 0644 is refused for a secret file");
	ok(strstr(why, "0644") != NULL, "  the reason gives the mode");
	ok(same(p, "keep\n"), "  and O_TRUNC did not truncate it before the check");
	is_int(try_open(p, O_RDONLY, 0, VV_PRIVFILE_PUBLIC, NULL, 0), 0,
	       "mode 0644 is fine for a public (pid) file");
	chmod(p, 0666);
	is_int(try_open(p, O_RDONLY, 0, VV_PRIVFILE_PUBLIC, NULL, 0), VV_EUNSAFE,
	       "mode 0666 is refused even for a public file");

	sub(p, sizeof(p), "other.log");
	put(p, "theirs\n", 0600);
	if (geteuid() == 0 && chown(p, 65534, 65534) == 0) {
		is_int(try_open(p, O_WRONLY | O_APPEND, 0, VV_PRIVFILE_SECRET, why, sizeof(why)),
		       VV_EUNSAFE, "a file owned by uid 65534 is refused");
		ok(strstr(why, "uid 65534") != NULL, "  the reason names the owner");
	} else {
		ok(1, "# SKIP not root: cannot chown");
		ok(1, "# SKIP not root");
	}
	sub(p, sizeof(p), "missing");
	is_int(try_open(p, O_RDONLY, 0, VV_PRIVFILE_SECRET, NULL, 0), VV_ENOENT,
	       "a missing file without O_CREAT: VV_ENOENT");
}

static void test_dirs(void)
{
	char d[512], p[600], why[1024];

	sub(d, sizeof(d), "open");
	mkdir(d, 0777);
	chmod(d, 0777);
	snprintf(p, sizeof(p), "%s/a.log", d);
	is_int(try_open(p, O_WRONLY | O_CREAT, 0600, VV_PRIVFILE_SECRET, why, sizeof(why)), VV_EUNSAFE,
	       "a world-writable, non-sticky directory is refused");
	ok(access(p, F_OK) != 0, "  and nothing was created in it");
	is_int(vv_privfile_mkdir(d), VV_EUNSAFE, "  vv_privfile_mkdir refuses it too");
	chmod(d, 01777);
	is_int(try_open(p, O_WRONLY | O_CREAT, 0600, VV_PRIVFILE_SECRET, NULL, 0), 0,
	       "a sticky world-writable directory (like /tmp) is fine");

	sub(d, sizeof(d), "theirs");
	mkdir(d, 0755);
	if (geteuid() == 0 && chown(d, 65534, 65534) == 0) {
		snprintf(p, sizeof(p), "%s/a.log", d);
		is_int(try_open(p, O_WRONLY | O_CREAT, 0600, VV_PRIVFILE_SECRET, why, sizeof(why)),
		       VV_EUNSAFE, "a directory owned by uid 65534 is refused");
		ok(strstr(why, d) != NULL, "  the reason names the directory");
	} else {
		ok(1, "# SKIP not root: cannot chown");
		ok(1, "# SKIP not root");
	}

	sub(d, sizeof(d), "deep/er/state");
	is_int(vv_privfile_mkdir(d), 0, "vv_privfile_mkdir makes nested directories");
	{
		struct stat st;
		ok(stat(d, &st) == 0 && (st.st_mode & 0777) == 0700, "  mode 0700");
	}
}

static void test_replace(void)
{
	char p[512], tmp[600], victim[512];
	void *data = NULL;
	size_t len = 0;
	struct stat st;

	sub(victim, sizeof(victim), "victim2");
	put(victim, "secret2\n", 0600);
	sub(p, sizeof(p), "ck");
	snprintf(tmp, sizeof(tmp), "%s.tmp", p);
	symlink(victim, tmp);
	is_int(vv_privfile_replace(p, "new\n", 4, true), 0, "replace with a planted .tmp link works");
	ok(same(victim, "secret2\n"), "  the link's target is untouched");
	ok(lstat(tmp, &st) != 0, "  the planted name is gone");
	ok(lstat(p, &st) == 0 && S_ISREG(st.st_mode) && (st.st_mode & 0777) == 0600,
	   "  the file is a regular 0600 file");
	is_int(vv_privfile_read(p, 100, VV_PRIVFILE_SECRET, &data, &len), 0, "  and reads back");
	ok(len == 4 && memcmp(data, "new\n", 4) == 0, "  with the new bytes");
	free(data);
	data = NULL;
	is_int(vv_privfile_read(p, 2, VV_PRIVFILE_SECRET, &data, &len), VV_EFBIG,
	       "read past max: VV_EFBIG");
	unlink(p);
	symlink(victim, p);
	is_int(vv_privfile_read(p, 100, VV_PRIVFILE_SECRET, &data, &len), VV_EUNSAFE,
	       "reading through a link is refused");
	ok(data == NULL, "  nothing returned");
}

int main(void)
{
	char cmd[300];

	vv_log_set_sink(sink, NULL, VV_LOG_ERR);
	umask(022);
	snprintf(top, sizeof(top), "/tmp/vv-privfile-XXXXXX");
	if (!mkdtemp(top))
		tap_skip_all("mkdtemp");
	test_files();
	test_dirs();
	test_replace();
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", top);
	if (!tap_fail && system(cmd) != 0)
		tap_diag("cleanup failed");
	return tap_done();
}
