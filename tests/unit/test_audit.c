/*
 * test_audit.c - the audit log: chain, tamper findings, rotation, reopen,
 * a failing disk (through a vv_os table), pre-authentication import.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "audit_int.h"
#include "crypto_int.h"
#include "os.h"
#include "os_fault.h"
#include "tap.h"
#include "vecvault/audit.h"
#include "vecvault/error.h"
#include "vecvault/log.h"

static uint8_t key[32];
static char top[256];

/* ---- helpers ------------------------------------------------------------- */

static char *slurp(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	char *buf;
	long n;

	if (!f)
		return NULL;
	fseek(f, 0, SEEK_END);
	n = ftell(f);
	fseek(f, 0, SEEK_SET);
	buf = malloc((size_t)n + 1);
	if (fread(buf, 1, (size_t)n, f) != (size_t)n)
		n = 0;
	buf[n] = '\0';
	fclose(f);
	*len = (size_t)n;
	return buf;
}

static void spit(const char *path, const char *buf, size_t len)
{
	FILE *f = fopen(path, "wb");
	fwrite(buf, 1, len, f);
	fclose(f);
}

/* Split into lines (without '\n'); returns count, fills starts/lengths. */
static int lines_of(char *buf, size_t len, char **ls, size_t *ll, int max)
{
	int n = 0;
	size_t pos = 0;

	while (pos < len && n < max) {
		char *nl = memchr(buf + pos, '\n', len - pos);
		size_t l = nl ? (size_t)(nl - (buf + pos)) : len - pos;
		ls[n] = buf + pos;
		ll[n++] = l;
		pos += l + 1;
	}
	return n;
}

/* Write lines back, each with '\n' (the last one too unless torn_at). */
static void write_lines(const char *path, char **ls, size_t *ll, int n)
{
	FILE *f = fopen(path, "wb");
	for (int i = 0; i < n; i++) {
		fwrite(ls[i], 1, ll[i], f);
		fputc('\n', f);
	}
	fclose(f);
}

static void newdir(char *out, size_t n, const char *name)
{
	snprintf(out, n, "%s/%s", top, name);
	mkdir(out, 0700);
}

static int open_log(const char *path, struct vv_audit **a)
{
	struct vv_audit_opts o = { .path = path, .key = key, .flush_ms = 50 };
	return vv_audit_open(&o, a);
}

static void rec_n(struct vv_audit_rec *r, int i, char *pathbuf, size_t n)
{
	snprintf(pathbuf, n, "/products/seg-%04d.npy", i);
	*r = (struct vv_audit_rec){ .op = "open", .path = pathbuf, .ino = 100u + (unsigned)i,
				    .uid = 1000, .gid = 1000, .pid = 4242, .comm = "cat",
				    .mode = "r", .rbytes = (uint64_t)i * 4096 };
}

/* A log of n records in DIR/audit.log. */
static void make_log(const char *dir, int n, char *path, size_t plen)
{
	struct vv_audit *a = NULL;
	char pb[64];

	snprintf(path, plen, "%s/audit.log", dir);
	if (open_log(path, &a) < 0)
		return;
	for (int i = 0; i < n; i++) {
		struct vv_audit_rec r;
		rec_n(&r, i, pb, sizeof(pb));
		vv_audit_log(a, &r);
	}
	vv_audit_close(a);
}

static int verify(const char *path, struct vv_audit_verify_result *res)
{
	return vv_audit_verify(path, key, 0, NULL, res);
}

static int json_ok(const char *path)
{
	char cmd[1024];
	snprintf(cmd, sizeof(cmd), "/usr/bin/python3 -c 'import json,sys;"
		 "[json.loads(l) for l in sys.stdin]' < '%s'", path);
	return system(cmd) == 0;
}

/* ---- logging sink: count errors ---------------------------------------- */

static atomic_int n_err;
static void sink(void *ctx, enum vv_log_level lvl, const char *msg)
{
	if (lvl == VV_LOG_ERR) {
		atomic_fetch_add(&n_err, 1);
		printf("# [log] %s\n", msg);
	}
}

/* ---- 1000 records from 4 threads ------------------------------------------ */

struct thr { struct vv_audit *a; int id; int fails; };

static void *thread_main(void *arg)
{
	struct thr *t = arg;
	char pb[64];

	for (int i = 0; i < 250; i++) {
		struct vv_audit_rec r;
		rec_n(&r, t->id * 1000 + i, pb, sizeof(pb));
		r.pid = (uint32_t)t->id;
		if (vv_audit_log(t->a, &r) != 0)
			t->fails++;
	}
	return NULL;
}

static uint64_t last_ck_seq;
static void ck_cb(void *ctx, uint64_t seq, const uint8_t mac[32])
{
	last_ck_seq = seq;
}

static void test_threads(void)
{
	char dir[512], path[600];
	struct vv_audit *a = NULL;
	struct vv_audit_opts o = { .key = key, .checkpoint = ck_cb };
	struct vv_audit_verify_result res;
	pthread_t th[4];
	struct thr t[4];
	int fails = 0;

	newdir(dir, sizeof(dir), "threads");
	snprintf(path, sizeof(path), "%s/audit.log", dir);
	o.path = path;
	is_int(vv_audit_open(&o, &a), 0, "open a new log");
	for (int i = 0; i < 4; i++) {
		t[i] = (struct thr){ a, i, 0 };
		pthread_create(&th[i], NULL, thread_main, &t[i]);
	}
	for (int i = 0; i < 4; i++) {
		pthread_join(th[i], NULL);
		fails += t[i].fails;
	}
	is_int(fails, 0, "1000 records logged from 4 threads");
	is_int(vv_audit_close(a), 0, "close flushes");
	is_int(last_ck_seq, 1000, "checkpoint callback saw seq 1000");
	is_int(verify(path, &res), 0, "verify runs");
	ok(res.ok, "chain of 1000 verifies");
	is_int(res.records, 1000, "1000 records counted");
	is_str(res.ck_source, "sidecar", "sidecar checkpoint used");
	ok(json_ok(path), "every line is valid JSON (python json)");
	if (access("/usr/bin/jq", X_OK) == 0) {
		char cmd[700];
		snprintf(cmd, sizeof(cmd), "/usr/bin/jq -e -s 'length == 1000' '%s' >/dev/null", path);
		ok(system(cmd) == 0, "jq reads 1000 objects");
	}
	{
		struct stat st;
		stat(path, &st);
		is_int(st.st_mode & 0777, 0600, "log is mode 0600");
	}
}

/* ---- escaping -------------------------------------------------------------- */

static void test_escaping(void)
{
	char dir[512], path[600];
	const char *weird = "/a\"b\\c\nd\x01" "e\x7f" "f\xff" "g\xc3\xa9h\xe2\x82" "i\xed\xa0\x80";
	struct vv_audit *a = NULL;
	struct vv_audit_iter *it = NULL;
	struct vv_audit_entry e;
	struct vv_audit_rec r = { .op = "create", .path = weird, .comm = "x\ty",
				  .result = VV_EACCES, .client = "10.0.0.5:4433" };
	struct vv_audit_verify_result res;
	int got = 0, n;

	newdir(dir, sizeof(dir), "escape");
	snprintf(path, sizeof(path), "%s/audit.log", dir);
	if (open_log(path, &a) < 0)
		return;
	vv_audit_log(a, &r);
	vv_audit_close(a);
	ok(json_ok(path), "escaped line is valid JSON");
	verify(path, &res);
	ok(res.ok, "and verifies");
	is_int(vv_audit_iter_open(path, &it), 0, "iterate");
	while ((n = vv_audit_iter_next(it, &e)) == 1) {
		got++;
		ok(e.path && strcmp(e.path, weird) == 0, "path bytes round-trip exactly");
		is_str(e.comm, "x\ty", "comm round-trips");
		is_str(e.result, "EACCES", "result is the errno name");
		is_str(e.client, "10.0.0.5:4433", "client");
		is_int(e.seq, 1, "seq 1");
		ok(e.time && strlen(e.time) == 30 && e.time[29] == 'Z', "UTC time with ns");
	}
	is_int(got, 1, "one record");
	vv_audit_iter_free(it);
}

/* ---- tampering --------------------------------------------------------------- */

static void test_tamper(void)
{
	char dir[512], path[600];
	struct vv_audit_verify_result res;
	char *ls[64], *buf;
	size_t ll[64], len;
	int n;

	/* edited byte */
	newdir(dir, sizeof(dir), "edit");
	make_log(dir, 20, path, sizeof(path));
	buf = slurp(path, &len);
	n = lines_of(buf, len, ls, ll, 64);
	is_int(n, 20, "20 lines");
	{
		char *c = strstr(ls[4], "\"cat\"");
		c[1] = 'd';   /* comm "cat" -> "dat" on record 5 */
	}
	write_lines(path, ls, ll, n);
	verify(path, &res);
	ok(!res.ok, "edited record fails");
	is_str(res.why, "edited", "  named 'edited'");
	is_int(res.first_bad_seq, 5, "  record 5");
	is_int(res.first_bad_line, 5, "  line 5");
	is_int(res.records, 4, "  4 good records before it");
	free(buf);

	/* edited sequence number: still "edited", not "missing" */
	newdir(dir, sizeof(dir), "editseq");
	make_log(dir, 20, path, sizeof(path));
	buf = slurp(path, &len);
	n = lines_of(buf, len, ls, ll, 64);
	memcpy(ls[9], "{\"seq\":11", 9);   /* 10 -> 11 */
	write_lines(path, ls, ll, n);
	verify(path, &res);
	is_str(res.why, "edited", "edited seq field named 'edited'");
	is_int(res.first_bad_seq, 10, "  record 10");
	free(buf);

	/* deleted middle line */
	newdir(dir, sizeof(dir), "delete");
	make_log(dir, 20, path, sizeof(path));
	buf = slurp(path, &len);
	n = lines_of(buf, len, ls, ll, 64);
	memmove(&ls[6], &ls[7], (size_t)(n - 7) * sizeof(ls[0]));
	memmove(&ll[6], &ll[7], (size_t)(n - 7) * sizeof(ll[0]));
	write_lines(path, ls, ll, n - 1);
	verify(path, &res);
	ok(!res.ok, "deleted record fails");
	is_str(res.why, "missing record", "  named 'missing record'");
	is_int(res.first_bad_seq, 7, "  record 7 missing");
	free(buf);

	/* swapped lines */
	newdir(dir, sizeof(dir), "swap");
	make_log(dir, 20, path, sizeof(path));
	buf = slurp(path, &len);
	n = lines_of(buf, len, ls, ll, 64);
	{
		char *tp = ls[7];
		size_t tl = ll[7];
		ls[7] = ls[8]; ll[7] = ll[8];
		ls[8] = tp; ll[8] = tl;
	}
	write_lines(path, ls, ll, n);
	verify(path, &res);
	ok(!res.ok, "swapped records fail");
	is_str(res.why, "reordered", "  named 'reordered'");
	is_int(res.first_bad_line, 8, "  at line 8");
	free(buf);

	/* truncated tail: the sidecar checkpoint catches it */
	newdir(dir, sizeof(dir), "trunc");
	make_log(dir, 20, path, sizeof(path));
	buf = slurp(path, &len);
	n = lines_of(buf, len, ls, ll, 64);
	write_lines(path, ls, ll, n - 3);
	verify(path, &res);
	ok(!res.ok, "truncated tail fails");
	is_str(res.why, "truncated", "  named 'truncated'");
	is_int(res.first_bad_seq, 18, "  from record 18");
	is_int(res.records, 17, "  17 records verify");
	/* and without the sidecar, the sealed checkpoint catches it */
	{
		char ck[700];
		uint8_t mac20[32];
		size_t bl;
		uint64_t s;
		snprintf(ck, sizeof(ck), "%s.checkpoint", path);
		unlink(ck);
		verify(path, &res);
		ok(res.ok, "without any checkpoint a cut tail is invisible (documented)");
		audit_split_line(ls[19], ll[19], &bl, &s, mac20);
		vv_audit_verify(path, key, 20, mac20, &res);
		is_str(res.why, "truncated", "sealed checkpoint finds the cut");
		is_str(res.ck_source, "sealed", "  from the sealed checkpoint");
		/* forged sidecar */
		spit(ck, "{\"seq\":1,\"mac\":\"00\",\"ck\":\"00\"}\n", 31);
		verify(path, &res);
		is_str(res.why, "bad checkpoint file", "forged sidecar is reported");
	}
	free(buf);

	/* torn last line (crash): checkpoint only covers what was synced */
	newdir(dir, sizeof(dir), "torn");
	make_log(dir, 20, path, sizeof(path));
	buf = slurp(path, &len);
	n = lines_of(buf, len, ls, ll, 64);
	{
		uint8_t mac19[32];
		size_t bl;
		uint64_t s;
		FILE *f;
		audit_split_line(ls[18], ll[18], &bl, &s, mac19);
		audit_sidecar_write(path, key, 19, mac19);
		f = fopen(path, "wb");
		for (int i = 0; i < 19; i++) {
			fwrite(ls[i], 1, ll[i], f);
			fputc('\n', f);
		}
		fwrite(ls[19], 1, ll[19] / 2, f);
		fclose(f);
	}
	verify(path, &res);
	ok(!res.ok && res.torn, "torn last line reported");
	is_str(res.why, "torn last line", "  named 'torn last line'");
	is_int(res.records, 19, "  19 records before it verify");
	is_int(res.first_bad_line, 20, "  on line 20");
	free(buf);
	/* reopening cuts the torn line, records the cut, and continues */
	{
		struct vv_audit *a = NULL;
		struct vv_audit_rec r = { .op = "mount" };
		is_int(open_log(path, &a), 0, "reopen after crash");
		vv_audit_log(a, &r);
		vv_audit_close(a);
		verify(path, &res);
		ok(res.ok, "chain verifies after recovery");
		is_int(res.records, 21, "  19 + recovery note + mount");
		buf = slurp(path, &len);
		ok(strstr(buf, "\"op\":\"audit-recover\"") != NULL, "  the cut is recorded");
		free(buf);
	}
}

/* ---- reopen, rotation --------------------------------------------------------- */

static void test_reopen_rotate(void)
{
	char dir[512], path[600], p[700];
	struct vv_audit_verify_result res;
	struct vv_audit *a = NULL;
	struct vv_audit_opts o = { .key = key, .rotate_bytes = 4096 };
	char **files = NULL;
	size_t nf = 0;
	char pb[64];

	newdir(dir, sizeof(dir), "reopen");
	make_log(dir, 5, path, sizeof(path));
	make_log(dir, 5, path, sizeof(path));
	verify(path, &res);
	ok(res.ok, "reopened log verifies");
	is_int(res.last_seq, 10, "sequence continued across reopen");

	newdir(dir, sizeof(dir), "busy");
	snprintf(path, sizeof(path), "%s/audit.log", dir);
	if (open_log(path, &a) == 0) {
		struct vv_audit *b = NULL;
		is_int(open_log(path, &b), VV_EBUSY, "second writer on the same log: EBUSY");
		vv_audit_close(b);
		vv_audit_close(a);
	}

	newdir(dir, sizeof(dir), "rotate");
	snprintf(path, sizeof(path), "%s/audit.log", dir);
	o.path = path;
	for (int round = 0; round < 2; round++) {   /* rotation across a reopen too */
		if (vv_audit_open(&o, &a) < 0)
			break;
		for (int i = 0; i < 20; i++) {
			struct vv_audit_rec r;
			rec_n(&r, i, pb, sizeof(pb));
			vv_audit_log(a, &r);
			if (i % 7 == 0)
				vv_audit_flush(a);
		}
		vv_audit_close(a);
	}
	audit_list_files(path, &files, &nf);
	ok(nf >= 3, "rotation made 3 or more files");
	{
		struct stat st;
		bool small = true;
		for (size_t i = 0; i < nf; i++)
			if (stat(files[i], &st) == 0 && st.st_size > 4096)
				small = false;
		ok(small, "each file within rotate_bytes");
	}
	verify(path, &res);
	ok(res.ok, "chain verifies across rotated files");
	is_int(res.records, 40, "  all 40 records");
	if (nf >= 3) {
		snprintf(p, sizeof(p), "%s", files[nf - 2]);
		unlink(p);
		verify(path, &res);
		ok(!res.ok, "removing a middle file fails");
		is_str(res.why, "missing record", "  named 'missing record'");
		ok(strcmp(res.file, files[nf - 1]) == 0, "  in the file after the gap");
	}
	audit_free_list(files, nf);
}

/* ---- a failing disk --------------------------------------------------------- */

/* A filling disk: writes get half in, then ENOSPC; fsync fails too. */
static void disk_full(bool full)
{
	if (full) {
		os_fault_set(OSF_PWRITE, (struct os_fault){ .err = ENOSPC, .partial = true });
		os_fault_set(OSF_FSYNC, (struct os_fault){ .err = ENOSPC });
	} else {
		os_fault_clear(OSF_PWRITE);
		os_fault_clear(OSF_FSYNC);
	}
}

static void test_enospc(void)
{
	char dir[512], path[600];
	struct vv_audit_verify_result res;
	struct vv_audit *a = NULL;
	struct vv_audit_opts o = { .key = key, .required = true, .flush_ms = 20 };
	struct vv_audit_stats st;
	struct vv_audit_rec r = { .op = "open", .path = "/p/x" };
	int errs0;

	os_fault_install();

	newdir(dir, sizeof(dir), "enospc");
	snprintf(path, sizeof(path), "%s/audit.log", dir);
	o.path = path;
	is_int(vv_audit_open(&o, &a), 0, "open (required mode)");
	for (int i = 0; i < 5; i++)
		vv_audit_log(a, &r);
	is_int(vv_audit_flush(a), 0, "flush ok");
	errs0 = atomic_load(&n_err);
	disk_full(true);
	for (int i = 0; i < 3; i++)
		vv_audit_log(a, &r);
	is_int(vv_audit_flush(a), VV_ENOSPC, "flush reports ENOSPC");
	is_int(vv_audit_status(a), VV_ENOSPC, "status reports ENOSPC");
	ok(atomic_load(&n_err) > errs0, "the writer logged an error");
	is_int(vv_audit_log(a, &r), VV_EAUDIT, "required mode: vv_audit_log returns VV_EAUDIT");
	disk_full(false);
	is_int(vv_audit_flush(a), 0, "disk recovers: queued records written");
	is_int(vv_audit_status(a), 0, "status back to 0");
	is_int(vv_audit_log(a, &r), 0, "logging accepted again");
	is_int(vv_audit_close(a), 0, "close");
	verify(path, &res);
	ok(res.ok, "chain verifies (partial writes overwritten)");
	is_int(res.records, 10, "  nothing dropped: 5 + 3 + refused one + 1");

	/* queue overflow without required mode: drops are counted and recorded */
	newdir(dir, sizeof(dir), "overflow");
	snprintf(path, sizeof(path), "%s/audit.log", dir);
	o.required = false;
	o.queue_max = 4096;
	is_int(vv_audit_open(&o, &a), 0, "open with a 4 KiB queue");
	disk_full(true);
	{
		int bad = 0;
		for (int i = 0; i < 60; i++)
			if (vv_audit_log(a, &r) != 0)
				bad++;
		is_int(bad, 0, "not required: vv_audit_log keeps returning 0");
	}
	vv_audit_flush(a);
	vv_audit_get_stats(a, &st);
	ok(st.dropped_total > 0, "records were dropped (queue full)");
	disk_full(false);
	vv_audit_flush(a);
	vv_audit_log(a, &r);
	vv_audit_close(a);
	verify(path, &res);
	ok(res.ok, "chain verifies after overflow");
	{
		size_t len;
		char *buf = slurp(path, &len), want[128];
		snprintf(want, sizeof(want), "\"detail\":\"%llu records dropped",
			 (unsigned long long)st.dropped_total);
		ok(buf && strstr(buf, "\"op\":\"audit-gap\"") && strstr(buf, want),
		   "the gap is recorded explicitly with its count");
		is_int(res.records + st.dropped_total, 60 + 1 + 1, "written + dropped = logged + gap note");
		free(buf);
	}
	os_fault_uninstall();
}

/* A rotation that fails after part of the queue was written: the writer
 * MACs the queue before writing it (audit.c mac_chain), so the part left
 * for the next round must be neither MAC'd again nor skipped. */
static void test_rotate_fail(void)
{
	char dir[512], path[600];
	struct vv_audit_verify_result res;
	struct vv_audit *a = NULL;
	struct vv_audit_opts o = { .key = key, .rotate_bytes = 4096, .flush_ms = 600000 };
	struct vv_audit_rec r = { .op = "open", .path = "/p/a-longer-name-to-fill-the-file" };

	os_fault_install();
	newdir(dir, sizeof(dir), "rotfail");
	snprintf(path, sizeof(path), "%s/audit.log", dir);
	o.path = path;
	is_int(vv_audit_open(&o, &a), 0, "open (4 KiB files)");
	os_fault_set(OSF_RENAME, (struct os_fault){ .err = EIO, .times = 1 });
	for (int i = 0; i < 60; i++)   /* ~15 KB, one round: no timed flush */
		vv_audit_log(a, &r);
	is_int(vv_audit_flush(a), VV_EIO, "the first rotation fails, after a file's worth was written");
	for (int i = 0; i < 5; i++)
		vv_audit_log(a, &r);
	is_int(vv_audit_flush(a), 0, "the next round writes the rest");
	is_int(vv_audit_close(a), 0, "close");
	verify(path, &res);
	ok(res.ok, "the chain verifies across the failed rotation");
	is_int(res.records, 65, "  every record once");
	os_fault_clear(OSF_RENAME);
	os_fault_uninstall();
}

/* ---- pre-authentication file, default path ----------------------------------- */

static void test_preauth(void)
{
	char dir[512], path[600], pre[700];
	struct vv_audit_verify_result res;
	struct vv_audit *a = NULL;
	struct vv_audit_iter *it = NULL;
	struct vv_audit_entry e;
	struct vv_audit_rec r = { .op = "unlock", .uid = 1234, .pid = 99, .comm = "vecvault",
				  .result = VV_EBADPASS, .detail = "wrong passphrase" };
	int found = 0;

	newdir(dir, sizeof(dir), "preauth");
	snprintf(path, sizeof(path), "%s/audit.log", dir);
	snprintf(pre, sizeof(pre), "%s.preauth", path);
	is_int(vv_audit_preauth_append(path, &r), 0, "preauth append");
	is_int(vv_audit_preauth_append(path, &r), 0, "preauth append again");
	ok(json_ok(pre), "preauth file is JSON lines");
	is_int(open_log(path, &a), 0, "open after unlock");
	is_int(vv_audit_import_preauth(a), 2, "2 records imported");
	ok(access(pre, F_OK) != 0, "preauth file removed");
	vv_audit_close(a);
	verify(path, &res);
	ok(res.ok, "chain verifies with imported records");
	vv_audit_iter_open(path, &it);
	while (vv_audit_iter_next(it, &e) == 1)
		if (e.unauth && e.op && !strcmp(e.op, "unlock") && e.uid == 1234 &&
		    e.result && !strcmp(e.result, "EBADPASS") && e.detail &&
		    strstr(e.detail, "wrong passphrase"))
			found++;
	vv_audit_iter_free(it);
	is_int(found, 2, "imported as unauth records with their fields");
}

/* The directory is the host's (tools/env.c picks it from the environment;
 * test_env covers that); the engine only names the file in it. */
static void test_default_path(void)
{
	char out[512];

	is_int(vv_audit_default_path("/tmp/x", "abcd", out, sizeof(out)), 0, "default path");
	is_str(out, "/tmp/x/abcd/audit.log", "AUDIT_DIR/STORE-ID/audit.log");
	setenv("VECVAULT_AUDIT_DIR", "/elsewhere", 1);
	is_int(vv_audit_default_path("/tmp/x", "abcd", out, sizeof(out)), 0, "with the env set");
	is_str(out, "/tmp/x/abcd/audit.log", "the engine ignores VECVAULT_AUDIT_DIR");
	unsetenv("VECVAULT_AUDIT_DIR");
	is_int(vv_audit_default_path(NULL, "abcd", out, sizeof(out)), VV_EINVAL, "no directory: EINVAL");
	is_int(vv_audit_default_path("", "abcd", out, sizeof(out)), VV_EINVAL, "empty directory: EINVAL");
	is_int(vv_audit_default_path("/tmp/x", "../x", out, sizeof(out)), VV_EINVAL, "bad store id refused");
	is_int(vv_audit_default_path("/tmp/x", "abcd", out, 8), VV_ENAMETOOLONG, "short buffer");
}

/* ---- cost per record (information only, no assertion) ------------------------ */

static void bench(void)
{
	char dir[512], path[600], pb[64], msg[128];
	struct vv_audit *a = NULL;
	struct timespec t0, t1;
	const int n = 20000;

	newdir(dir, sizeof(dir), "bench");
	snprintf(path, sizeof(path), "%s/audit.log", dir);
	if (open_log(path, &a) < 0)
		return;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (int i = 0; i < n; i++) {
		struct vv_audit_rec r;
		rec_n(&r, i, pb, sizeof(pb));
		vv_audit_log(a, &r);
	}
	clock_gettime(CLOCK_MONOTONIC, &t1);
	vv_audit_close(a);
	snprintf(msg, sizeof(msg), "vv_audit_log: %.0f ns per record (%d records, 1 thread)",
		 ((double)(t1.tv_sec - t0.tv_sec) * 1e9 + (double)(t1.tv_nsec - t0.tv_nsec)) / n, n);
	tap_diag(msg);
}

/* Names planted beside a running log (a rotated file's next name, the
 * checkpoint's temp file) are replaced by rename, never written through;
 * a planted audit.log.1 before the first open is refused (the chain would
 * continue from whatever it says). */
static void test_planted(void)
{
	char dir[512], path[600], p[700], victim[600], buf[64];
	struct vv_audit_verify_result res;
	struct vv_audit *a = NULL;
	struct vv_audit_opts o = { .key = key, .rotate_bytes = 4096 };
	size_t len = 0;
	char *v;
	int r;

	newdir(dir, sizeof(dir), "planted");
	snprintf(path, sizeof(path), "%s/audit.log", dir);
	snprintf(victim, sizeof(victim), "%s/victim", dir);
	spit(victim, "victim\n", 7);
	o.path = path;
	r = vv_audit_open(&o, &a);
	is_int(r, 0, "open a fresh log");
	if (r < 0)
		return;
	snprintf(p, sizeof(p), "%s.2", path);
	ok(symlink(victim, p) == 0, "plant audit.log.2 -> victim");
	snprintf(p, sizeof(p), "%s.checkpoint.tmp", path);
	ok(symlink(victim, p) == 0, "plant audit.log.checkpoint.tmp -> victim");
	for (int i = 0; i < 60; i++) {
		struct vv_audit_rec rec;
		rec_n(&rec, i, buf, sizeof(buf));
		vv_audit_log(a, &rec);
		if (i % 5 == 0)
			vv_audit_flush(a);
	}
	is_int(vv_audit_close(a), 0, "rotations past the planted names succeed");
	v = slurp(victim, &len);
	ok(v && len == 7 && memcmp(v, "victim\n", 7) == 0, "  the victim is untouched");
	free(v);
	verify(path, &res);
	ok(res.ok, "  the chain verifies across the rotated files");
	if (!res.ok)
		printf("# why %s in %s\n", res.why ? res.why : "?", res.file);

	newdir(dir, sizeof(dir), "planted1");
	snprintf(path, sizeof(path), "%s/audit.log", dir);
	snprintf(p, sizeof(p), "%s.1", path);
	spit(p, "{\"seq\":1000}\n", 14);
	if (geteuid() == 0 && chown(p, 65534, 65534) == 0) {
		o.path = path;
		a = NULL;
		is_int(vv_audit_open(&o, &a), VV_EUNSAFE, "someone else's audit.log.1: refused");
		vv_audit_close(a);
	} else {
		ok(1, "# SKIP not root: cannot chown");
	}
}

int main(void)
{
	char cmd[300];

	if (vv_crypto_init() < 0)
		tap_skip_all("crypto init failed");
	vv_log_set_sink(sink, NULL, VV_LOG_ERR);
	vv_random_bytes(key, sizeof(key));
	snprintf(top, sizeof(top), "/tmp/vv-audit-XXXXXX");
	if (!mkdtemp(top))
		tap_skip_all("mkdtemp");
	test_threads();
	test_rotate_fail();
	test_escaping();
	test_tamper();
	test_reopen_rotate();
	test_planted();
	test_enospc();
	test_preauth();
	test_default_path();
	bench();
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", top);
	if (!tap_fail && system(cmd) != 0)
		tap_diag("cleanup failed");
	return tap_done();
}
