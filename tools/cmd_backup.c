/*
 * cmd_backup.c - `vecvault backup init|create|list|verify|restore`:
 * encrypted, incremental backups of a vault into a repository directory
 * (docs/design.md "Backups", engine/include/vecvault/backup.h).
 *
 *   vecvault backup init DEST [--passfile F]
 *   vecvault backup create MNT DEST [--snapshot NAME] [--tag T] [--passfile F] [--json]
 *   vecvault backup list DEST [--passfile F] [--json]
 *   vecvault backup verify DEST [--read-data] [--passfile F]
 *   vecvault backup restore DEST ID NEWSTORE [--repo-passfile F] [--passfile F]
 *   vecvault backup restore DEST ID --into DIR [--path /products] [--passfile F]
 *   vecvault backup forget DEST --keep-daily N ... [--prune] [--dry-run] [--passfile F]
 *
 * create runs in the daemon serving MNT (it holds the collection keys):
 * the CLI sends DEST and the repository passphrase over the control
 * socket.  Everything else needs only DEST and its passphrase.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <time.h>
#include <unistd.h>

#include "admin_client.h"
#include "cmd.h"
#include "env.h"
#include "progress.h"
#include "util.h"
#include "vecvault/backup.h"
#include "vecvault/error.h"
#include "vecvault/store.h"
#include "vecvault/vault.h"

static const char usage[] =
	"usage: vecvault backup init DEST [--passfile F] [--kdf PROFILE]\n"
	"       vecvault backup create MNT DEST [--snapshot NAME] [--tag T] [--passfile F] [--json]\n"
	"       vecvault backup list DEST [--passfile F] [--json]\n"
	"       vecvault backup verify DEST [--read-data] [--passfile F]\n"
	"       vecvault backup restore DEST ID NEWSTORE [--repo-passfile F] [--passfile F]\n"
	"       vecvault backup restore DEST ID --into DIR [--path /products] [--passfile F]\n"
	"       vecvault backup forget DEST [--keep-hourly N] [--keep-daily N] [--keep-weekly N]\n"
	"                              [--keep-monthly N] [--prune] [--dry-run] [--passfile F]\n"
	"                              [--vault MNT | --without-vault]\n"
	"Encrypted, incremental backups of a vault into a repository directory DEST\n"
	"(local disk, NFS, USB; copy it anywhere with rsync -a).  A backup restores\n"
	"with DEST's passphrase alone, after the vault and its passphrase are gone.\n"
	"  init DEST        make a repository with its own passphrase\n"
	"  create MNT DEST  export a snapshot of the vault mounted at MNT (a new one,\n"
	"                   or --snapshot NAME); only chunks DEST lacks are copied;\n"
	"                   an interrupted run resumes (root or the vault's owner;\n"
	"                   DEST must be yours and writable by no one else)\n"
	"  list DEST        one backup a line: ID, time, snapshot, tag, files, size,\n"
	"                   objects\n"
	"  verify DEST      check every manifest and object (--read-data: decrypt\n"
	"                   every block too)\n"
	"  restore DEST ID NEWSTORE\n"
	"                   a new vault from backup ID (or a unique prefix of it),\n"
	"                   with a new passphrase; mount it like any vault\n"
	"  restore DEST ID --into DIR\n"
	"                   write the backup's files (or those below --path) into DIR,\n"
	"                   e.g. a directory of a mounted vault, as the user running\n"
	"                   it (so the vault's access checks and audit apply); never\n"
	"                   overwrites; owners are kept only when run as root\n"
	"  forget DEST      forget the backups the --keep-* policy does not keep (as\n"
	"                   restic forget: per hour/day/ISO week/month, newest first;\n"
	"                   no policy keeps all); --prune then deletes the objects no\n"
	"                   backup names; --dry-run only shows the verdicts.  It runs in\n"
	"                   the daemon of a mounted vault whose backups DEST holds (or\n"
	"                   --vault MNT), which records it in its audit log; with none\n"
	"                   mounted it is refused unless --without-vault (the vault is\n"
	"                   gone): then no audit log records it\n"
	"  --passfile F     the repository's passphrase = first line of F; for\n"
	"                   restore, the NEW vault's passphrase (as for init)\n"
	"  --repo-passfile F  restore: the repository's passphrase\n"
	"  --kdf PROFILE    init: Argon2id cost: interactive (default), moderate,\n"
	"                   test (tests only; needs VECVAULT_TEST_KDF=1)\n"
	"Without a passfile the passphrase is asked on the terminal.\n"
	"Exit status: 0 done, 1 failed (the message says why), 2 usage or no daemon.\n";

struct opts {
	const char *passfile, *repo_passfile, *snapshot, *tag, *into, *path;
	const char *vault;
	bool json, read_data, prune, dry_run, without_vault;
	int kdf;
	struct vv_backup_keep keep;
};

static unsigned repo_flags(void)
{
	return tool_test_kdf_allowed() ? VV_REPO_ALLOW_TEST_KDF : 0;
}

/* Open dest with pass; the reason printed on failure.  0 or 1. */
static int open_repo_pass(const char *dest, const struct tool_pass *pass, unsigned flags,
			  struct vv_repo **out)
{
	int r = vv_repo_open(dest, pass->buf, pass->len, repo_flags() | flags, 0, out);

	if (r == VV_EBUSY)
		die_msg("backup", "%s is locked by a backup that is running now; wait for it to finish",
			dest);
	else if (r == VV_EBADPASS)
		die_msg("backup", "wrong passphrase for the repository %s", dest);
	else if (r == VV_ENOTINIT || r == VV_ENOENT)
		die_msg("backup", "%s is not a backup repository (vecvault backup init makes one)", dest);
	else if (r == VV_ECORRUPT)
		die_msg("backup", "the config of repository %s is malformed or altered", dest);
	else if (r == VV_EUNSAFE)
		die_msg("backup", "%s or a directory in it is a symbolic link or not a directory: refused",
			dest);
	else if (r < 0)
		die_msg("backup", "cannot open the repository %s: %s", dest, vv_strerror(r));
	return r < 0 ? 1 : 0;
}

static int open_repo_flags(const char *dest, const char *passfile, unsigned flags,
			   struct vv_repo **out)
{
	struct pass_src src = { .file = passfile };
	struct tool_pass pass = { 0 };
	int r;

	if (tool_get_pass("backup", &src, "repository passphrase", false, &pass) < 0)
		return 1;
	r = open_repo_pass(dest, &pass, flags, out);
	tool_pass_free(&pass);
	return r;
}

/* dest as an absolute path (the daemon and the audit log need one) into
 * buf; dest itself when it is one, NULL (message printed) when too long. */
static const char *absolute(const char *dest, char *buf, size_t cap)
{
	char cwd[PATH_MAX];

	if (dest[0] == '/')
		return dest;
	if (!getcwd(cwd, sizeof(cwd)) || (size_t)snprintf(buf, cap, "%s/%s", cwd, dest) >= cap) {
		die_msg("backup", "%s: path too long", dest);
		return NULL;
	}
	return buf;
}

static int open_repo(const char *dest, const char *passfile, struct vv_repo **out)
{
	return open_repo_flags(dest, passfile, 0, out);
}

static int do_init(const char *dest, const struct opts *o)
{
	struct pass_src src = { .file = o->passfile };
	struct tool_pass pass = { 0 };
	char id[2 * VV_REPO_ID_BYTES + 1];
	int r;

	if (o->kdf == VV_KDF_PROFILE_TEST && !tool_test_kdf_allowed()) {
		die_msg("backup", "--kdf test makes a passphrase cheap to guess; it is for test suites "
			"only and needs VECVAULT_TEST_KDF=1");
		return 2;
	}
	if (tool_get_pass("backup", &src, "repository passphrase", true, &pass) < 0)
		return 1;
	r = vv_repo_init(dest, pass.buf, pass.len, o->kdf, repo_flags(), id);
	tool_pass_free(&pass);
	if (r == VV_EEXIST) {
		die_msg("backup", "%s exists and is not empty", dest);
		return 1;
	}
	if (r < 0) {
		die_msg("backup", "cannot make a repository in %s: %s", dest, vv_strerror(r));
		return 1;
	}
	printf("created backup repository %s in %s\n", id, dest);
	return 0;
}

struct pctx {
	struct tool_progress p;
	struct vv_repo_progress last;
};

static void on_problem(void *ctx, const char *line)
{
	struct pctx *c = ctx;

	tool_progress_end(&c->p);
	die_msg("backup", "%s", line);
}

static void on_progress(void *ctx, const struct vv_repo_progress *p)
{
	struct pctx *c = ctx;

	c->last = *p;
	tool_progress_xfer(&c->p, p->objects_done, p->objects_total, p->bytes_done, p->bytes_total);
}

static void summary(const char *what, const struct pctx *c)
{
	tool_progress_summary(&c->p, what, c->last.objects_done, c->last.bytes_done);
}

/* backup.create's progress frames (the copy runs in the daemon). */
static void create_progress(void *ctx, const struct vv_admin_progress *p)
{
	struct pctx *c = ctx;

	c->last.objects_done = p->objects_done;
	c->last.objects_total = p->objects_total;
	c->last.bytes_done = p->bytes_done;
	c->last.bytes_total = p->bytes_total;
	tool_progress_xfer(&c->p, p->objects_done, p->objects_total, p->bytes_done, p->bytes_total);
}

static void create_done(void *ctx)
{
	tool_progress_end(&((struct pctx *)ctx)->p);
}

static int do_create(const char *mnt, const char *dest, const struct opts *o)
{
	struct pass_src src = { .file = o->passfile };
	struct tool_pass pass = { 0 };
	struct vv_admin_arg args[7];
	struct pctx c = { 0 };
	char abs[PATH_MAX + 1], where[PATH_MAX + 16];
	size_t n = 0;
	int r;

	if (!(dest = absolute(dest, abs, sizeof(abs))))
		return 2;
	if (admin_where(mnt, NULL, where, sizeof(where)) < 0) {
		die_msg("backup", "path too long");
		return 2;
	}
	if (tool_get_pass("backup", &src, "repository passphrase", false, &pass) < 0)
		return 1;
	args[n++] = (struct vv_admin_arg){ "dest", dest };
	args[n++] = (struct vv_admin_arg){ "pass", pass.buf };
	if (o->snapshot)
		args[n++] = (struct vv_admin_arg){ "snapshot", o->snapshot };
	if (o->tag)
		args[n++] = (struct vv_admin_arg){ "tag", o->tag };
	if (o->json)
		args[n++] = (struct vv_admin_arg){ "json", "1" };
	args[n++] = (struct vv_admin_arg){ "progress", "1" };
	tool_progress_start(&c.p, "backup", "creating");
	r = admin_run_progress(where, "backup.create", args, n, create_progress, create_done, &c);
	tool_pass_free(&pass);
	if (r == 0)
		summary("create", &c);
	return r;
}

static void when(int64_t ns, char *out, size_t cap)
{
	time_t t = (time_t)(ns / 1000000000LL);
	struct tm tm;

	gmtime_r(&t, &tm);
	strftime(out, cap, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static void json_str(const char *s)
{
	putchar('"');
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		if (c == '"' || c == '\\')
			printf("\\%c", c);
		else if (c < 0x20)
			printf("\\u%04x", c);
		else
			putchar(c);
	}
	putchar('"');
}

struct lctx {
	bool json;
	int n;
	int64_t last;                     /* the newest backup: the last success */
	char last_id[VV_BACKUP_ID_HEX + 1];
};

static int list_one(void *ctx, const struct vv_backup_info *b)
{
	struct lctx *l = ctx;
	char t[32];

	when(b->created, t, sizeof(t));
	if (b->created >= l->last) {
		l->last = b->created;
		memcpy(l->last_id, b->id, sizeof(l->last_id));
	}
	if (!l->json) {
		printf("%s  %s  %-28s %-12s %8llu files %14llu bytes %8llu objects %14llu stored\n", b->id,
		       t, b->snapshot, b->tag[0] ? b->tag : "-", (unsigned long long)b->files,
		       (unsigned long long)b->bytes, (unsigned long long)b->objects,
		       (unsigned long long)b->stored);
		l->n++;
		return 0;
	}
	printf("%s{\"id\":\"%s\",\"time\":\"%s\",\"time_ns\":%lld,\"snapshot\":", l->n++ ? "," : "",
	       b->id, t, (long long)b->created);
	json_str(b->snapshot);
	printf(",\"tag\":");
	json_str(b->tag);
	printf(",\"vault\":\"%s\",\"files\":%llu,\"bytes\":%llu,\"objects\":%llu,\"stored\":%llu}",
	       b->store_id, (unsigned long long)b->files, (unsigned long long)b->bytes,
	       (unsigned long long)b->objects, (unsigned long long)b->stored);
	return 0;
}

static void bad_manifest(void *ctx, const char *name, int code)
{
	(void)ctx;
	die_msg("backup", "manifest %s: %s", name, code == VV_ECORRUPT ? "altered, truncated or not "
		"of this repository (does not authenticate); vecvault backup verify tells more" :
		vv_strerror(code));
}

static int do_list(const char *dest, const struct opts *o)
{
	struct vv_repo *repo = NULL;
	struct lctx l = { .json = o->json };
	int r;

	if (open_repo(dest, o->passfile, &repo))
		return 1;
	if (l.json)
		printf("[");
	r = vv_repo_list(repo, list_one, bad_manifest, &l);
	if (l.json)
		printf("]\n");
	else if (l.n == 0 && r == 0)
		printf("no backups in %s\n", dest);
	if (!l.json && l.n) {
		/* On stderr: stdout stays one backup a line.  Failures of the
		 * daemon's schedule are not in DEST (it may be what failed):
		 * they are in the vault's audit log (op "backup"). */
		char t[32];
		when(l.last, t, sizeof(t));
		fprintf(stderr, "last success: %s, backup %s\n", t, l.last_id);
	}
	vv_repo_close(repo);
	return r < 0 ? 1 : 0;
}

static int do_verify(const char *dest, const struct opts *o)
{
	struct vv_repo *repo = NULL;
	struct pctx c = { 0 };
	uint64_t problems = 0, unref = 0;
	int r;

	if (open_repo(dest, o->passfile, &repo))
		return 1;
	tool_progress_start(&c.p, "backup", o->read_data ? "verifying (reading data)" : "verifying");
	r = vv_repo_verify(repo, o->read_data, on_problem, on_progress, &c, &problems, &unref);
	tool_progress_end(&c.p);
	vv_repo_close(repo);
	summary("verify", &c);
	if (r == VV_ECORRUPT) {
		die_msg("backup", "%s: %llu problem%s found", dest, (unsigned long long)problems,
			problems == 1 ? "" : "s");
		return 1;
	}
	if (r < 0) {
		die_msg("backup", "cannot verify %s: %s", dest, vv_strerror(r));
		return 1;
	}
	printf("%s: no problems%s", dest, o->read_data ? " (every block decrypted)" : "");
	if (unref)
		printf("; %llu objects no backup names (vecvault backup forget --prune removes them)",
		       (unsigned long long)unref);
	printf("\n");
	return 0;
}

/* The restored vault's first audit record: where it came from. */
struct made_ctx {
	struct pctx pc;                   /* first: the progress callbacks' ctx */
	const char *dest, *id;
};

static void made(void *ctx, struct vv_store *s)
{
	struct made_ctx *m = ctx;
	char detail[PATH_MAX + 64];

	snprintf(detail, sizeof(detail), "backup.restore %s from %s", m->id, m->dest);
	tool_audit_admin(s, "admin", 0, detail);
}

static int do_restore(const char *dest, const char *id, const char *newstore, const struct opts *o)
{
	struct pass_src rsrc = { .file = o->repo_passfile }, src = { .file = o->passfile };
	struct tool_pass rpass = { 0 }, pass = { 0 };
	struct vv_repo *repo = NULL;
	struct vv_restore_target *t = NULL;
	char full[VV_BACKUP_ID_HEX + 1], state[PATH_MAX];
	struct made_ctx mc = { .dest = dest, .id = full };
	struct pctx *c = &mc.pc;
	int r, ret = 1;

	/* Both passphrases first: the new vault's key derivation then runs
	 * on a thread while the repository's slot is unlocked here (two
	 * Argon2id at once, not one after the other). */
	if (tool_get_pass("backup", &rsrc, "repository passphrase", false, &rpass) < 0)
		return 1;
	if (tool_get_pass("backup", &src, "passphrase for the new vault", true, &pass) < 0)
		goto out;
	if ((r = vv_repo_restore_begin(newstore, pass.buf, pass.len, o->kdf,
				       tool_test_kdf_allowed() ? VV_VAULT_ALLOW_TEST_KDF : 0, &t)) < 0) {
		die_msg("backup", "restore into %s failed: %s", newstore, vv_strerror(r));
		goto out;
	}
	tool_pass_free(&pass);
	if (open_repo_pass(dest, &rpass, 0, &repo))
		goto out;
	r = vv_repo_find(repo, id, full);
	if (r < 0) {
		die_msg("backup", "%s", r == VV_EEXIST ? "that ID prefix names more than one backup; give "
			"more digits" : r == VV_EINVAL ? "a backup ID is 4 to 32 hex digits (vecvault backup "
			"list shows them)" : "no such backup in the repository (vecvault backup list)");
		goto out;
	}
	tool_progress_start(&c->p, "backup", "restoring");
	r = vv_repo_restore_finish(t, repo, full, tool_state_dir(state, sizeof(state)) == 0 ? state : NULL,
				   on_problem, on_progress, made, &mc);
	t = NULL;
	tool_progress_end(&c->p);
	if (r < 0) {
		die_msg("backup", "restore of %s into %s failed: %s%s", full, newstore, vv_strerror(r),
			r == VV_EEXIST ? " (NEWSTORE must not exist or be empty)" : " (nothing was kept)");
		goto out;
	}
	summary("restore", c);
	printf("restored backup %s into %s\n", full, newstore);
	ret = 0;
out:
	vv_repo_restore_abort(t);          /* not restored into: nothing is kept */
	tool_pass_free(&pass);
	tool_pass_free(&rpass);
	vv_repo_close(repo);
	return ret;
}

/* ---- restore --into: the files through a mount ---- */

struct into {
	int dfd;                          /* DIR */
	int fd;                           /* the file being written */
	const char *dir;
	struct pctx pc;
	uint64_t files, bytes;
};

static const char *rel(const char *p)
{
	return *p ? p : ".";
}

static void attrs(struct into *t, const struct vv_rt_entry *e, int fd)
{
	const char *p = rel(e->path);
	struct timespec ts[2] = { { (time_t)(e->atime / 1000000000LL), (long)(e->atime % 1000000000LL) },
				  { (time_t)(e->mtime / 1000000000LL), (long)(e->mtime % 1000000000LL) } };
	bool lnk = S_ISLNK(e->mode);

	if (geteuid() == 0 && fchownat(t->dfd, p, e->uid, e->gid, AT_SYMLINK_NOFOLLOW) < 0)
		fprintf(stderr, "vecvault backup: warning: %s/%s: cannot set the owner: %s\n", t->dir, p,
			strerror(errno));
	if (!lnk && (fd >= 0 ? fchmod(fd, e->mode & 07777) : fchmodat(t->dfd, p, e->mode & 07777, 0)) < 0)
		fprintf(stderr, "vecvault backup: warning: %s/%s: cannot set the mode: %s\n", t->dir, p,
			strerror(errno));
	for (size_t i = 0; i < e->nxattrs && !lnk; i++) {
		int r;
		if (fd >= 0) {
			r = fsetxattr(fd, e->xattrs[i].name, e->xattrs[i].value, e->xattrs[i].len, 0);
		} else {
			int dfd = openat(t->dfd, p, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
			r = dfd < 0 ? -1 : fsetxattr(dfd, e->xattrs[i].name, e->xattrs[i].value,
						     e->xattrs[i].len, 0);
			if (dfd >= 0)
				close(dfd);
		}
		if (r < 0)
			fprintf(stderr, "vecvault backup: warning: %s/%s: cannot set %s: %s\n", t->dir, p,
				e->xattrs[i].name, strerror(errno));
	}
	/* Times last (setting the rest changed ctime, not mtime); best
	 * effort: a mount refuses them to non-owners. */
	if ((fd >= 0 ? futimens(fd, ts) : utimensat(t->dfd, p, ts, AT_SYMLINK_NOFOLLOW)) < 0 && !lnk)
		fprintf(stderr, "vecvault backup: warning: %s/%s: cannot set the times: %s\n", t->dir, p,
			strerror(errno));
}

static int into_entry(void *ctx, const struct vv_rt_entry *e)
{
	struct into *t = ctx;
	const char *p = rel(e->path);

	switch (e->kind) {
	case VV_RT_DIR:
		if (!*e->path)
			return 0;
		if (mkdirat(t->dfd, p, 0700) < 0)
			goto fail;
		return 0;
	case VV_RT_DIR_END:
		attrs(t, e, -1);
		return 0;
	case VV_RT_FILE:
		t->fd = openat(t->dfd, p, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
		if (t->fd < 0)
			goto fail;
		t->files++;
		return 0;
	case VV_RT_FILE_END:
		if (ftruncate(t->fd, (off_t)e->size) < 0)
			goto fail;
		attrs(t, e, t->fd);
		if (close(t->fd) < 0) {
			t->fd = -1;
			goto fail;
		}
		t->fd = -1;
		return 0;
	case VV_RT_SYMLINK:
		if (symlinkat(e->target, t->dfd, p) < 0)
			goto fail;
		attrs(t, e, -1);
		return 0;
	case VV_RT_LINK:
		if (linkat(t->dfd, e->link_to, t->dfd, p, 0) < 0)
			goto fail;
		return 0;
	case VV_RT_OTHER:
		if (mknodat(t->dfd, p, e->mode, (dev_t)e->rdev) < 0)
			goto fail;
		attrs(t, e, -1);
		return 0;
	}
	return 0;
fail:
	die_msg("backup", "%s/%s: %s%s", t->dir, p, strerror(errno),
		errno == EEXIST ? " (restore --into never overwrites: restore into an empty directory)" : "");
	return VV_EIO;
}

static int into_data(void *ctx, uint64_t off, const void *buf, size_t len)
{
	struct into *t = ctx;
	const char *b = buf;

	while (len) {
		ssize_t w = pwrite(t->fd, b, len, (off_t)off);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			die_msg("backup", "writing into %s: %s", t->dir, strerror(errno));
			return VV_EIO;
		}
		b += w;
		off += (uint64_t)w;
		len -= (size_t)w;
		t->bytes += (uint64_t)w;
	}
	return 0;
}

static void into_problem(void *ctx, const char *line)
{
	on_problem(&((struct into *)ctx)->pc, line);
}

static void into_progress(void *ctx, const struct vv_repo_progress *p)
{
	on_progress(&((struct into *)ctx)->pc, p);
}

/* Tell the daemon of the vault DIR is in about this restore (verb
 * backup.restore: a record of its audit log).  t: the counts at the end.
 * 0, or -1 with the reason printed. */
static int note(const char *into, const char *dest, const char *id, const char *vpath,
		const char *path, const char *phase, const struct into *t)
{
	struct vv_admin_arg args[8];
	struct vv_admin_reply rep;
	char files[24], bytes[24];
	size_t n = 0;
	int r;

	args[n++] = (struct vv_admin_arg){ "dest", dest };
	args[n++] = (struct vv_admin_arg){ "id", id };
	args[n++] = (struct vv_admin_arg){ "into", vpath };
	args[n++] = (struct vv_admin_arg){ "phase", phase };
	if (path)
		args[n++] = (struct vv_admin_arg){ "path", path };
	if (t) {
		snprintf(files, sizeof(files), "%llu", (unsigned long long)t->files);
		snprintf(bytes, sizeof(bytes), "%llu", (unsigned long long)t->bytes);
		args[n++] = (struct vv_admin_arg){ "files", files };
		args[n++] = (struct vv_admin_arg){ "bytes", bytes };
	}
	vv_admin_reply_init(&rep);
	r = admin_call(into, "backup.restore", args, n, &rep);
	if (r == 0 && rep.status < 0) {
		die_msg("backup", "%s", rep.msg[0] ? rep.msg : vv_strerror(rep.status));
		r = 1;
	}
	vv_admin_reply_release(&rep);
	if (r && !strcmp(phase, "start"))
		die_msg("backup", "the vault at %s cannot record this restore in its audit log: not "
			"restoring", into);
	return r ? -1 : 0;
}

static int do_restore_into(const char *dest, const char *id, const struct opts *o)
{
	struct into t = { .fd = -1, .dir = o->into };
	struct vv_rt_ops ops = { .entry = into_entry, .data = into_data, .problem = into_problem,
				 .progress = into_progress, .ctx = &t };
	char full[VV_BACKUP_ID_HEX + 1], mnt[PATH_MAX], vpath[PATH_MAX], abs[PATH_MAX + 1];
	const char *absdest = NULL;
	struct vv_repo *repo = NULL;
	bool noted = false;
	int r, ret = 1;

	if (open_repo(dest, o->passfile ? o->passfile : o->repo_passfile, &repo))
		return 1;
	if ((r = vv_repo_find(repo, id, full)) < 0) {
		die_msg("backup", "no such backup in the repository (vecvault backup list)");
		goto out;
	}
	t.dfd = open(o->into, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (t.dfd < 0) {
		die_msg("backup", "%s: %s", o->into, strerror(errno));
		goto out;
	}
	/* Into a vault: its audit log gets the restore around the writes. */
	if (admin_in_vault(o->into)) {
		if (admin_vault_path(o->into, mnt, sizeof(mnt), vpath, sizeof(vpath)) < 0 ||
		    !(absdest = absolute(dest, abs, sizeof(abs))) ||
		    note(o->into, absdest, full, vpath, o->path, "start", NULL) < 0) {
			close(t.dfd);
			goto out;
		}
		noted = true;
	}
	tool_progress_start(&t.pc.p, "backup", "restoring");
	r = vv_repo_restore_tree(repo, full, o->path ? o->path : "/", &ops);
	tool_progress_end(&t.pc.p);
	if (t.fd >= 0)
		close(t.fd);
	close(t.dfd);
	if (noted)
		note(o->into, absdest, full, vpath, o->path, r ? "failed" : "done", &t);
	if (r != 0) {
		die_msg("backup", "restore of %s into %s stopped: %s (what was written stays; no file "
			"holds wrong bytes)", full, o->into, vv_strerror(r));
		goto out;
	}
	summary("restore", &t.pc);
	fprintf(stderr, "vecvault backup: restore: %llu files, %llu bytes\n", (unsigned long long)t.files,
		(unsigned long long)t.bytes);
	printf("restored %s of backup %s into %s\n", o->path ? o->path : "/", full, o->into);
	ret = 0;
out:
	vv_repo_close(repo);
	return ret;
}

static int forget_one(void *ctx, const struct vv_backup_info *b, bool kept)
{
	char t[32];

	(void)ctx;
	when(b->created, t, sizeof(t));
	printf("%-6s %s  %s  %s\n", kept ? "keep" : "forget", b->id, t, b->snapshot);
	return 0;
}

/* The local forget: no vault involved (--without-vault). */
static int forget_here(const char *dest, const struct opts *o)
{
	struct vv_repo *repo = NULL;
	uint64_t forgotten = 0, pruned = 0, bytes = 0;
	int r;

	if (open_repo_flags(dest, o->passfile, VV_REPO_WRITE, &repo))
		return 1;
	r = vv_repo_forget(repo, &o->keep, o->prune, o->dry_run, forget_one, NULL, &forgotten, &pruned,
			   &bytes);
	vv_repo_close(repo);
	if (r < 0) {
		die_msg("backup", "forget in %s failed: %s%s", dest, vv_strerror(r),
			r == VV_ECORRUPT ? " (a manifest does not read: prune refused, nothing deleted; "
			"vecvault backup verify names it)" : "");
		return 1;
	}
	printf("%s%llu backups forgotten", o->dry_run ? "dry run: " : "", (unsigned long long)forgotten);
	if (o->prune)
		printf(", %llu objects (%llu bytes) pruned", (unsigned long long)pruned,
		       (unsigned long long)bytes);
	printf("\n");
	fprintf(stderr, "vecvault backup: note: --without-vault: no vault's audit log records this %s\n",
		o->prune ? "forget and prune" : "forget");
	return 0;
}

struct ids {
	char id[16][33];
	int n;
};

static int id_of(void *ctx, const struct vv_backup_info *b)
{
	struct ids *x = ctx;

	for (int i = 0; i < x->n; i++)
		if (!strcmp(x->id[i], b->store_id))
			return 0;
	if (x->n < 16)
		snprintf(x->id[x->n++], sizeof(x->id[0]), "%s", b->store_id);
	return 0;
}

/*
 * forget runs in the daemon of a mounted vault (verb backup.forget), so
 * that the forget and the prune are records of its audit log: the vault
 * named by --vault MNT, else the first vault whose backups DEST holds and
 * whose daemon runs here.  With none, it is refused unless --without-vault
 * says to do it here, unrecorded (the vault is gone, or elsewhere).
 */
static int do_forget(const char *dest, const struct opts *o)
{
	struct pass_src src = { .file = o->passfile };
	struct tool_pass pass = { 0 };
	struct vv_admin_arg args[9];
	char abs[PATH_MAX + 1], where[PATH_MAX + 16], kh[4][16];
	struct vv_repo *repo = NULL;
	struct ids x = { .n = 0 };
	size_t n = 0;
	int r = 1;

	if (o->without_vault)
		return forget_here(dest, o);
	if (!(dest = absolute(dest, abs, sizeof(abs))))
		return 2;
	if (tool_get_pass("backup", &src, "repository passphrase", false, &pass) < 0)
		return 1;
	if (o->vault) {
		if (admin_where(o->vault, NULL, where, sizeof(where)) < 0) {
			die_msg("backup", "path too long");
			goto out;
		}
	} else {
		if (open_repo_pass(dest, &pass, 0, &repo))
			goto out;
		vv_repo_list(repo, id_of, NULL, &x);
		vv_repo_close(repo);
		where[0] = 0;
		for (int i = 0; i < x.n && !where[0]; i++)
			if (admin_id_served(x.id[i]))
				snprintf(where, sizeof(where), "id:%s", x.id[i]);
		if (!where[0]) {
			die_msg("backup", "no vault whose backups %s holds is mounted here, so no audit log "
				"would record this forget: mount it (or name a mounted vault with --vault MNT), "
				"or give --without-vault when the vault is gone", dest);
			r = 2;
			goto out;
		}
	}
	args[n++] = (struct vv_admin_arg){ "dest", dest };
	args[n++] = (struct vv_admin_arg){ "pass", pass.buf };
	snprintf(kh[0], sizeof(kh[0]), "%u", o->keep.hourly);
	snprintf(kh[1], sizeof(kh[1]), "%u", o->keep.daily);
	snprintf(kh[2], sizeof(kh[2]), "%u", o->keep.weekly);
	snprintf(kh[3], sizeof(kh[3]), "%u", o->keep.monthly);
	args[n++] = (struct vv_admin_arg){ "keep_hourly", kh[0] };
	args[n++] = (struct vv_admin_arg){ "keep_daily", kh[1] };
	args[n++] = (struct vv_admin_arg){ "keep_weekly", kh[2] };
	args[n++] = (struct vv_admin_arg){ "keep_monthly", kh[3] };
	if (o->prune)
		args[n++] = (struct vv_admin_arg){ "prune", "1" };
	if (o->dry_run)
		args[n++] = (struct vv_admin_arg){ "dry_run", "1" };
	r = admin_run(where, "backup.forget", args, n);
out:
	tool_pass_free(&pass);
	return r;
}

static int keep_arg(const char *s, uint32_t *out)
{
	char *end;
	unsigned long v = strtoul(s, &end, 10);

	if (!*s || *end || v > 1000000) {
		die_msg("backup", "'%s' is not a count (0 to 1000000)", s);
		return -1;
	}
	*out = (uint32_t)v;
	return 0;
}

int cmd_backup(int argc, char **argv)
{
	static const struct option lopts[] = {
		{ "passfile", required_argument, NULL, 'p' },
		{ "repo-passfile", required_argument, NULL, 'P' },
		{ "snapshot", required_argument, NULL, 's' },
		{ "tag", required_argument, NULL, 't' },
		{ "kdf", required_argument, NULL, 'k' },
		{ "read-data", no_argument, NULL, 'r' },
		{ "json", no_argument, NULL, 'j' },
		{ "keep-hourly", required_argument, NULL, '1' },
		{ "keep-daily", required_argument, NULL, '2' },
		{ "keep-weekly", required_argument, NULL, '3' },
		{ "keep-monthly", required_argument, NULL, '4' },
		{ "prune", no_argument, NULL, 'x' },
		{ "dry-run", no_argument, NULL, 'n' },
		{ "into", required_argument, NULL, 'I' },
		{ "path", required_argument, NULL, 'T' },
		{ "vault", required_argument, NULL, 'V' },
		{ "without-vault", no_argument, NULL, 'W' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct opts o = { .kdf = VV_KDF_PROFILE_INTERACTIVE };
	const char *sub, *pos[3];
	int opt, np = 0, want;

	if ((opt = tool_sub_start(argc, argv, usage, &sub)) >= 0)
		return opt;
	while ((opt = getopt_long(argc, argv, "h", lopts, NULL)) != -1) {
		switch (opt) {
		case 'p': o.passfile = optarg; break;
		case 'P': o.repo_passfile = optarg; break;
		case 's': o.snapshot = optarg; break;
		case 't': o.tag = optarg; break;
		case 'r': o.read_data = true; break;
		case 'j': o.json = true; break;
		case 'x': o.prune = true; break;
		case 'n': o.dry_run = true; break;
		case 'I': o.into = optarg; break;
		case 'T': o.path = optarg; break;
		case 'V': o.vault = optarg; break;
		case 'W': o.without_vault = true; break;
		case '1': if (keep_arg(optarg, &o.keep.hourly) < 0) return 2; break;
		case '2': if (keep_arg(optarg, &o.keep.daily) < 0) return 2; break;
		case '3': if (keep_arg(optarg, &o.keep.weekly) < 0) return 2; break;
		case '4': if (keep_arg(optarg, &o.keep.monthly) < 0) return 2; break;
		case 'k':
			if (!strcmp(optarg, "interactive"))
				o.kdf = VV_KDF_PROFILE_INTERACTIVE;
			else if (!strcmp(optarg, "moderate"))
				o.kdf = VV_KDF_PROFILE_MODERATE;
			else if (!strcmp(optarg, "test"))
				o.kdf = VV_KDF_PROFILE_TEST;
			else {
				die_msg("backup", "unknown KDF profile '%s' (interactive, moderate, test)", optarg);
				return 2;
			}
			break;
		default:
			fputs(usage, stderr);
			return 2;
		}
	}
	want = !strcmp(sub, "create") ? 2 : !strcmp(sub, "restore") ? (o.into ? 2 : 3) :
	       (!strcmp(sub, "init") || !strcmp(sub, "list") || !strcmp(sub, "verify") ||
		!strcmp(sub, "forget")) ? 1 : -1;
	if (want < 0) {
		die_msg("backup", "unknown subcommand '%s' (init, create, list, verify, restore, forget)", sub);
		return 2;
	}
	while (optind < argc && np < 3)
		pos[np++] = argv[optind++];
	if (np != want || optind < argc) {
		die_msg("backup", "%s takes %s", sub, want == 1 ? "DEST" : o.into ? "DEST ID --into DIR" :
			want == 2 ? "MNT DEST" : "DEST ID NEWSTORE");
		return 2;
	}
	if (!strcmp(sub, "init"))
		return do_init(pos[0], &o);
	if (!strcmp(sub, "create"))
		return do_create(pos[0], pos[1], &o);
	if (!strcmp(sub, "list"))
		return do_list(pos[0], &o);
	if (!strcmp(sub, "verify"))
		return do_verify(pos[0], &o);
	if (!strcmp(sub, "forget"))
		return do_forget(pos[0], &o);
	if (o.path && !o.into) {
		die_msg("backup", "--path goes with --into");
		return 2;
	}
	if (o.into)
		return do_restore_into(pos[0], pos[1], &o);
	if (!o.repo_passfile) {
		/* One passfile for both is no secret kept apart: say which is which. */
		if (o.passfile) {
			die_msg("backup", "restore reads the repository's passphrase from --repo-passfile "
				"and the new vault's from --passfile");
			return 2;
		}
	}
	return do_restore(pos[0], pos[1], pos[2], &o);
}
