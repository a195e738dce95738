/*
 * cmd_mount.c - `vecvault mount STORE MNT`: start the FUSE daemon.
 *
 *   vecvault mount STORE MNT [--passfile F | --extpass CMD] [-f] [-d]
 *                  [-o allow_other,ro,...] [--audit-log PATH]
 *                  [--audit-required] [--accept-rollback]
 *                  [--log FILE] [--pid-file FILE]
 *
 * The passphrase is read before forking (the terminal belongs to the
 * parent).  The child starts a new session, opens and unlocks the vault
 * itself (memory locks and the store's flock belong to the process that
 * takes them), mounts, and reports through a pipe: 'R' once the mount is
 * live, or 'E' and the error text.  The parent prints that text and exits
 * non-zero, or exits 0 once mounted.  `fusermount3 -u MNT` unmounts; the
 * daemon then closes the vault (a durable final commit) and exits.
 *
 * With --listen the same daemon also serves vv:// clients over TLS 1.3
 * (net/, docs/remote.md); `vecvault serve STORE --listen ...` does that
 * without a local mount.
 */
#include <errno.h>
#include <stdint.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cmd.h"
#include "vecvault/backup.h"
#include "vecvault/fs.h"
#include "env.h"
#include "util.h"
#include "vecvault/error.h"
#include "vecvault/log.h"
#include "vecvault/net.h"
#include "vecvault/remote.h"
#include "vecvault/privfile.h"
#include "vecvault/vault.h"

static const char usage[] =
	"usage: vecvault mount STORE MNT [--passfile FILE | --extpass CMD] [-f] [-d]\n"
	"                      [-o OPT[,OPT...]] [--audit-log PATH] [--audit-required]\n"
	"                      [--accept-rollback] [--audit-lookups] [--no-audit]\n"
	"                      [--log FILE] [--pid-file FILE] [--knn-cache SIZE]\n"
	"                      [--trash-days N]\n"
	"                      [--snapshot-every DUR [--keep-hourly N] [--keep-daily N]\n"
	"                       [--keep-weekly N] [--keep-monthly N]]\n"
	"                      [--backup-to DEST --backup-every DUR --backup-passfile F]\n"
	"Mount the vault in STORE at the directory MNT.\n"
	"  -f, --foreground   stay in the foreground (log to stderr)\n"
	"  -d, --debug        trace every FUSE request (implies -f)\n"
	"  -o OPTS            allow_other (default as root), noallow_other, ro, rw,\n"
	"                     noexec, exec (the last of each pair wins)\n"
	"  --audit-log PATH   audit log file (default: outside STORE, per store id)\n"
	"  --audit-required   refuse requests that cannot be audited\n"
	"  --accept-rollback  accept metadata older than this machine has seen\n"
	"                     (an intended restore from backup)\n"
	"  --audit-lookups    also record successful lookups and getattrs\n"
	"  --no-audit         run without an audit log (benchmarks, diagnostics only;\n"
	"                     nothing is recorded, not even denials)\n"
	"  --log FILE         daemon log (default: syslog)\n"
	"  --pid-file FILE    write the daemon's pid (removed at exit)\n"
	"  --knn-cache SIZE   memory for decrypted segments that `vecvault query`\n"
	"                     has the daemon scan (K/M/G/T suffixes; default a\n"
	"                     quarter of RAM; 0 turns the query offload off)\n"
	"  --trash-days N     keep removed files in MNT/.trash for N days (default\n"
	"                     30; 0: removals are final).  N with an 's' suffix\n"
	"                     counts seconds (for tests only)\n"
	"  --snapshot-every DUR  take a snapshot every DUR (30s, 15m, 1h, 1d; default\n"
	"                     never), visible under MNT/.snapshots/\n"
	"  --keep-hourly N, --keep-daily N, --keep-weekly N, --keep-monthly N\n"
	"                     after each scheduled snapshot, keep the newest scheduled\n"
	"                     one of each of the last N hours/days/weeks/months (UTC)\n"
	"                     and delete the other scheduled ones, like restic forget;\n"
	"                     none given: keep all.  Snapshots made by hand are kept.\n"
	"                     With --backup-to the same policy forgets backups in DEST\n"
	"  --backup-to DEST   back up into the repository DEST (vecvault backup init;\n"
	"                     owned by this user, written by no one else)\n"
	"  --backup-every DUR  ... every DUR (as --snapshot-every); the first run is\n"
	"                     due one DUR after this vault's newest backup in DEST\n"
	"  --backup-passfile F  DEST's passphrase (first line of F), read once now;\n"
	"                     failures go to the log and the audit log (op backup)\n"
	"                     and are retried at the next DUR\n"
	"Remote clients (vv://, docs/remote.md):\n"
	"  --listen ADDR:PORT also serve vv:// clients on this address over TLS 1.3\n"
	"                     ([IPV6]:PORT for IPv6; one address = a private link)\n"
	"  --tls-cert FILE    the server's certificate chain (PEM)\n"
	"  --tls-key FILE     its private key (PEM; see 'vecvault tls selfsigned')\n"
	"  --allow CIDR       admit clients from CIDR (repeatable); default: loopback\n"
	"                     only (127.0.0.0/8, ::1); 0.0.0.0/0 and ::/0 must be\n"
	"                     given explicitly; others are closed before TLS\n"
	"  --client-ca FILE   mutual TLS: require a client certificate signed by FILE\n"
	"                     whose CN names a vault user (it logs in as that user)\n"
	"  --client-crl FILE  refuse the client certificates this CRL of --client-ca\n"
	"                     lists (see 'vecvault tls revoke'); re-read when it\n"
	"                     changes, open sessions of a revoked one end\n"
	"  --remote-nodes N   the inodes the vv:// sessions of one vault user may hold\n"
	"                     at once (default 1048576, ~0.9 KB of memory each); in all\n"
	"                     4 N, at most one per 4 KiB of RAM; beyond, new names\n"
	"                     are refused ENOMEM until clients forget some\n"
	"Unmount with: fusermount3 -u MNT\n"
	"A remote vault: vecvault mount vv://[USER@]HOST:PORT[/COLLECTION] MNT ...\n"
	"                (vecvault mount vv:// --help)\n";

static const char serve_usage[] =
	"usage: vecvault serve STORE --listen ADDR:PORT --tls-cert FILE --tls-key FILE\n"
	"                      [--allow CIDR ...] [--client-ca FILE [--client-crl FILE]]\n"
	"                      [--remote-nodes N] [-f]\n"
	"                      [--passfile FILE | --extpass CMD] [--log FILE] [--pid-file FILE]\n"
	"                      [--audit-log PATH] [--audit-required] [--knn-cache SIZE]\n"
	"                      [--backup-to DEST --backup-every DUR --backup-passfile F [--keep-* N]]\n"
	"Serve the vault in STORE to vv:// clients only, without a local mount.\n"
	"Options as for 'vecvault mount' (see vecvault mount --help).  The daemon\n"
	"stops on SIGTERM, SIGINT or SIGHUP.\n";

#define MAX_ALLOW 64

struct mount_args {
	const char *store, *mnt;
	struct pass_src src;
	bool foreground, debug;
	const char *audit_log, *log, *pid_file;
	bool audit_required, accept_rollback, audit_lookups, no_audit;
	bool knn_off;
	size_t knn_cache;
	int64_t trash_secs;
	uint32_t snap_every, keep[4];    /* seconds; hourly, daily, weekly, monthly */
	const char *backup_to, *backup_passfile;
	uint32_t backup_every;           /* seconds */
	struct tool_pass bk_pass;        /* DEST's passphrase, read once here */
	char backup_abs[PATH_MAX];
	struct vv_fs_opts fo;
	char store_abs[PATH_MAX], mnt_abs[PATH_MAX];
	char log_abs[PATH_MAX], pid_abs[PATH_MAX], audit_abs[PATH_MAX];
	char fsname[PATH_MAX + 16];
	char ctl_path[PATH_MAX];
	bool headless;               /* `vecvault serve`: no mount */
	const char *listen, *tls_cert, *tls_key, *client_ca, *client_crl;
	size_t remote_nodes;             /* 0: the listener's default */
	const char *allow[MAX_ALLOW];
	size_t nallow;
	char cert_abs[PATH_MAX], key_abs[PATH_MAX], ca_abs[PATH_MAX], crl_abs[PATH_MAX];
};

/* "90", "30s", "15m", "1h", "1d", "1w": seconds, at least 1, at most a year. */
static int parse_dur(const char *s, uint32_t *out)
{
	unsigned long long v, mul = 1;
	char *end;

	if (!*s || *s < '0' || *s > '9')
		return -1;
	v = strtoull(s, &end, 10);
	if (*end && end[1])
		return -1;
	switch (*end) {
	case 0: case 's': break;
	case 'm': mul = 60; break;
	case 'h': mul = 3600; break;
	case 'd': mul = 86400; break;
	case 'w': mul = 7 * 86400; break;
	default: return -1;
	}
	if (v == 0 || v > 366ULL * 86400 / mul)
		return -1;
	*out = (uint32_t)(v * mul);
	return 0;
}

static int parse_count(const char *s, uint32_t *out)
{
	char *end;
	unsigned long v;

	if (!*s || *s < '0' || *s > '9')
		return -1;
	v = strtoul(s, &end, 10);
	if (*end || v > 100000)
		return -1;
	*out = (uint32_t)v;
	return 0;
}

/* "0", "4096", "512M", "8G", "1T" (powers of 1024). */
static int parse_size(const char *s, size_t *out)
{
	unsigned long long v, mul = 1;
	char *end;

	errno = 0;
	if (!s[0] || s[0] == '-')
		return -1;
	v = strtoull(s, &end, 10);
	if (errno || end == s)
		return -1;
	switch (*end) {
	case 'K': case 'k': mul = 1ull << 10; end++; break;
	case 'M': case 'm': mul = 1ull << 20; end++; break;
	case 'G': case 'g': mul = 1ull << 30; end++; break;
	case 'T': case 't': mul = 1ull << 40; end++; break;
	default: break;
	}
	if (*end || (v && mul > SIZE_MAX / v))
		return -1;
	*out = (size_t)(v * mul);
	return 0;
}

static int parse_o(struct mount_args *a, const char *list)
{
	char *dup = strdup(list), *save = NULL, *tok;
	int r = 0;

	if (!dup)
		return -1;
	for (tok = strtok_r(dup, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		if (!strcmp(tok, "allow_other")) {
			a->fo.allow_other = true;
		} else if (!strcmp(tok, "noallow_other")) {
			a->fo.allow_other = false;
		} else if (!strcmp(tok, "ro")) {
			a->fo.ro = true;
		} else if (!strcmp(tok, "rw")) {
			a->fo.ro = false;
		} else if (!strcmp(tok, "noexec")) {
			a->fo.noexec = true;
		} else if (!strcmp(tok, "exec")) {
			a->fo.noexec = false;
		} else {
			/* default_permissions, suid, dev, ... would undermine the
			 * daemon's own checks; only known options pass. */
			die_msg("mount", "unsupported mount option '%s' (allow_other, "
				"noallow_other, ro, rw, noexec, exec)", tok);
			r = -1;
			break;
		}
	}
	free(dup);
	return r;
}

/* MNT must be an existing directory that nothing is mounted on yet. */
static int check_mountpoint(const char *mnt, char *abs)
{
	struct stat st, pst;
	char parent[PATH_MAX + 4];

	if (stat(mnt, &st) < 0) {
		if (errno == ENOTCONN)
			die_msg("mount", "%s is a dead FUSE mount (%s); run 'fusermount3 -u %s'",
				mnt, strerror(errno), mnt);
		else
			die_msg("mount", "mount point %s (%s)", mnt, strerror(errno));
		return -1;
	}
	if (!S_ISDIR(st.st_mode)) {
		die_msg("mount", "mount point %s is not a directory", mnt);
		return -1;
	}
	if (!realpath(mnt, abs)) {
		die_msg("mount", "mount point %s (%s)", mnt, strerror(errno));
		return -1;
	}
	snprintf(parent, sizeof(parent), "%s/..", abs);
	if (stat(parent, &pst) < 0) {
		die_msg("mount", "parent of %s (%s)", abs, strerror(errno));
		return -1;
	}
	/* A mount root has another device than its parent ("/" is its own
	 * parent: same inode). */
	if (st.st_dev != pst.st_dev || st.st_ino == pst.st_ino) {
		die_msg("mount", "%s is already a mount point", abs);
		return -1;
	}
	return 0;
}

/* Others may read the pid file, never write it: a stale one of ours is
 * reused, a planted link or someone else's file refused (privfile.h), so
 * nobody can make the daemon truncate a file of their choosing. */
static int write_pid_file(const char *path, char *why, size_t whylen)
{
	char buf[32];
	int fd, n, r;

	if ((r = vv_privfile_open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644, VV_PRIVFILE_PUBLIC,
				  &fd, why, whylen)) < 0)
		return r;
	n = snprintf(buf, sizeof(buf), "%d\n", (int)getpid());
	if (write(fd, buf, (size_t)n) != n) {
		snprintf(why, whylen, "%s: %s", path, strerror(errno));
		r = VV_EIO;
	}
	close(fd);
	return r;
}

/* --backup-to DEST: refused now, with the reason, rather than at the
 * first tick in the daemon log: DEST must be a repository owned by us and
 * written by no one else, and the passphrase must open it.  The
 * passphrase is read once (never from argv) and handed to the vault. */
static int check_backup_dest(struct mount_args *a)
{
	struct pass_src src = { .file = a->backup_passfile };
	unsigned flags = VV_REPO_CHECK_OWNER;
	struct vv_repo *repo = NULL;
	int r;

	if (!realpath(a->backup_to, a->backup_abs)) {
		die_msg("mount", "--backup-to %s (%s)", a->backup_to, strerror(errno));
		return -1;
	}
	if (tool_get_pass("mount", &src, "backup repository passphrase", false, &a->bk_pass) < 0)
		return -1;
	if (tool_test_kdf_allowed())
		flags |= VV_REPO_ALLOW_TEST_KDF;
	r = vv_repo_open(a->backup_abs, a->bk_pass.buf, a->bk_pass.len, flags, geteuid(), &repo);
	vv_repo_close(repo);
	if (r == 0)
		return 0;
	if (r == VV_ENOTINIT || r == VV_ENOENT)
		die_msg("mount", "--backup-to %s is not a backup repository (make one with "
			"vecvault backup init)", a->backup_abs);
	else if (r == VV_EBADPASS)
		die_msg("mount", "--backup-passfile: wrong passphrase for the repository %s",
			a->backup_abs);
	else if (r == VV_EUNSAFE)
		die_msg("mount", "--backup-to %s (or a file in it) is a symbolic link, is not owned "
			"by uid %u or may be written by others: refused", a->backup_abs,
			(unsigned)geteuid());
	else
		die_msg("mount", "--backup-to %s: %s", a->backup_abs, vv_strerror(r));
	tool_pass_free(&a->bk_pass);
	return -1;
}

/* Report an error to the waiting parent ('E' + text), or print it. */
static void report(int fd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void report(int fd, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	vv_log(VV_LOG_ERR, "%s", msg);
	if (fd >= 0) {
		if (write(fd, "E", 1) != 1 || write(fd, msg, strlen(msg)) < 0) {
			/* The parent is gone; nobody left to tell. */
		}
	} else {
		die_msg("mount", "%s", msg);
	}
}

/* The whitelist (--allow, else loopback only) and the TLS listener. */
static int start_listener(struct mount_args *a, struct vv_vault *v, struct vv_allow **allow,
			  struct vv_net_server **srv, char *why, size_t whylen)
{
	static const char *const loopback[] = { "127.0.0.0/8", "::1" };
	struct vv_net_opts no;
	struct vv_cidr c;
	const char *const *list = a->nallow ? a->allow : loopback;
	size_t n = a->nallow ? a->nallow : 2;
	int r;

	if ((r = vv_allow_new(allow)) < 0) {
		snprintf(why, whylen, "%s", vv_strerror(r));
		return r;
	}
	for (size_t i = 0; i < n; i++) {
		if (vv_cidr_parse(list[i], &c) < 0 || (r = vv_allow_add(*allow, &c)) == VV_ENOSPC) {
			snprintf(why, whylen, "--allow '%s' is not a CIDR (ADDRESS or ADDRESS/BITS, "
				 "host bits zero)", list[i]);
			return VV_EINVAL;
		}
	}
	memset(&no, 0, sizeof(no));
	no.listen = a->listen;
	no.cert = a->tls_cert;
	no.key = a->tls_key;
	no.client_ca = a->client_ca;
	no.client_crl = a->client_crl;
	no.max_nodes = a->remote_nodes;
	no.allow = *allow;
	if ((r = vv_net_start(v, &no, srv, why, whylen)) < 0)
		return r;
	vv_log(VV_LOG_INFO, "remote: listening on %s (port %u)", a->listen, vv_net_port(*srv));
	return 0;
}

/* Open the vault and serve it: the daemon's life.  report_fd < 0 in the
 * foreground.  Returns the exit status. */
static int serve(struct mount_args *a, struct tool_pass *pass, int report_fd)
{
	struct vv_vault_opts vo;
	struct tool_dirs dirs;
	struct vv_vault *v = NULL;
	struct vv_net_server *srv = NULL;
	struct vv_allow *allow = NULL;
	char msg[1024];
	int r, ret = 1;
	bool pidf = false;

	memset(&vo, 0, sizeof(vo));
	vo.audit_log = a->audit_log;
	vo.audit_required = a->audit_required;
	vo.audit_lookups = a->audit_lookups;
	if (a->no_audit)
		vo.flags |= VV_VAULT_NO_AUDIT;
	vo.purpose = "mount";
	vo.knn_off = a->knn_off;
	vo.knn_cache_bytes = a->knn_cache;
	vo.trash_secs = a->trash_secs;
	vo.snap_every = a->snap_every;
	vo.snap_keep_hourly = a->keep[0];
	vo.snap_keep_daily = a->keep[1];
	vo.snap_keep_weekly = a->keep[2];
	vo.snap_keep_monthly = a->keep[3];
	if (a->backup_every) {
		vo.backup_dest = a->backup_abs;
		vo.backup_pass = a->bk_pass.buf;
		vo.backup_passlen = a->bk_pass.len;
		vo.backup_every = a->backup_every;
		vo.backup_keep_hourly = a->keep[0];
		vo.backup_keep_daily = a->keep[1];
		vo.backup_keep_weekly = a->keep[2];
		vo.backup_keep_monthly = a->keep[3];
	}
	if (a->accept_rollback)
		vo.flags |= VV_VAULT_ACCEPT_ROLLBACK;
	if (a->fo.ro)
		vo.flags |= VV_VAULT_READONLY;
	tool_env_vault_opts(&dirs, &vo);

	/* The pid file first: a refused one stops us before the vault is
	 * unlocked or anything is recorded. */
	if (a->pid_file) {
		if (write_pid_file(a->pid_file, msg, sizeof(msg)) < 0) {
			tool_pass_free(pass);
			report(report_fd, "cannot write pid file: %s", msg);
			goto out;
		}
		pidf = true;
	}
	tool_clear_last_error();
	r = vv_vault_open(a->store_abs, pass->buf, pass->len, &vo, &v);
	tool_pass_free(pass);
	tool_pass_free(&a->bk_pass);     /* the vault keeps a copy in secure memory */
	if (r < 0) {
		tool_open_error(a->store, r, msg, sizeof(msg));
		/* In the background the engine's reason went to the daemon log;
		 * pass it on (the passphrase case needs no detail). */
		if (report_fd >= 0 && r != VV_EBADPASS && tool_last_error()[0])
			report(report_fd, "%s: %s", msg, tool_last_error());
		else
			report(report_fd, "%s", msg);
		goto out;
	}
	/* The control socket is named after the vault id, which is known
	 * once the store is open; tools/env.c picks its directory. */
	if ((r = tool_ctl_socket(vv_vault_id(v), a->ctl_path, sizeof(a->ctl_path))) == 0)
		a->fo.ctl_socket = a->ctl_path;
	else
		vv_log(VV_LOG_WARN, "no control socket (%s): admin requests unavailable",
		       r == VV_ENOENT ? "$XDG_RUNTIME_DIR is not set" : vv_strerror(r));
	if (a->listen && (r = start_listener(a, v, &allow, &srv, msg, sizeof(msg))) < 0) {
		report(report_fd, "cannot listen for remote clients: %s", msg);
		goto out;
	}
	if (a->headless)
		r = vv_fs_run_headless(v, &a->fo, report_fd);
	else
		r = vv_fs_run(v, a->mnt_abs, &a->fo, report_fd);
	/* Remote sessions end (their handles released) before the vault closes. */
	vv_net_stop(srv);
	srv = NULL;
	if (r > 0) {
		/* Served, then the loop failed: already logged; the parent has
		 * long gone with "mounted". */
		goto out;
	}
	if (r < 0) {
		/* Only reached before the ready byte: vv_fs_run reports ready
		 * once mounted and then returns 0 or a loop error. */
		report(report_fd, "cannot mount %s on %s: %s", a->store, a->mnt_abs,
		       vv_fs_last_error()[0] ? vv_fs_last_error() : vv_strerror(r));
		goto out;
	}
	ret = 0;
out:
	vv_net_stop(srv);
	vv_allow_free(allow);
	if (v && (r = vv_vault_close(v)) < 0) {
		vv_log(VV_LOG_ERR, "closing the vault %s: %s", a->store_abs, vv_strerror(r));
		ret = 1;
	}
	if (pidf)
		unlink(a->pid_file);
	return ret;
}

/* Parent: wait for the child's verdict. */
static int wait_child(pid_t pid, int fd, const char *mnt)
{
	char buf[1100];
	size_t n = 0;
	ssize_t k;
	int status;

	for (;;) {
		k = read(fd, buf + n, sizeof(buf) - 1 - n);
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			break;
		n += (size_t)k;
		if (buf[0] == 'R')
			return 0;
		if (n == sizeof(buf) - 1)
			break;
	}
	buf[n] = '\0';
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	if (n > 0 && buf[0] == 'E')
		die_msg("mount", "%s", buf + 1);
	else if (WIFSIGNALED(status))
		die_msg("mount", "the daemon died (signal %d) before %s was mounted",
			WTERMSIG(status), mnt);
	else
		die_msg("mount", "the daemon exited (status %d) before %s was mounted",
			WIFEXITED(status) ? WEXITSTATUS(status) : -1, mnt);
	return 1;
}

/* Make *path (a file that may not exist yet) absolute, in buf. */
static int absolute(const char **path, char buf[PATH_MAX])
{
	char cwd[PATH_MAX];

	if (!*path || (*path)[0] == '/')
		return 0;
	if (!getcwd(cwd, sizeof(cwd)) ||
	    snprintf(buf, PATH_MAX, "%s/%s", cwd, *path) >= PATH_MAX) {
		die_msg("mount", "cannot make %s an absolute path", *path);
		return -1;
	}
	*path = buf;
	return 0;
}

static int mount_or_serve(int argc, char **argv, bool headless)
{
	static const struct option lopts[] = {
		{ "passfile", required_argument, NULL, 'p' },
		{ "extpass", required_argument, NULL, 'e' },
		{ "foreground", no_argument, NULL, 'f' },
		{ "debug", no_argument, NULL, 'd' },
		{ "audit-log", required_argument, NULL, 'a' },
		{ "audit-required", no_argument, NULL, 'A' },
		{ "accept-rollback", no_argument, NULL, 'R' },
		{ "audit-lookups", no_argument, NULL, 'L' },
		{ "no-audit", no_argument, NULL, 'N' },
		{ "log", required_argument, NULL, 'l' },
		{ "pid-file", required_argument, NULL, 'P' },
		{ "knn-cache", required_argument, NULL, 'K' },
		{ "listen", required_argument, NULL, 1001 },
		{ "tls-cert", required_argument, NULL, 1002 },
		{ "tls-key", required_argument, NULL, 1003 },
		{ "allow", required_argument, NULL, 1004 },
		{ "client-ca", required_argument, NULL, 1005 },
		{ "client-crl", required_argument, NULL, 1020 },
		{ "remote-nodes", required_argument, NULL, 1021 },
		{ "trash-days", required_argument, NULL, 'T' },
		{ "snapshot-every", required_argument, NULL, 'S' },
		{ "keep-hourly", required_argument, NULL, '1' },
		{ "keep-daily", required_argument, NULL, '2' },
		{ "keep-weekly", required_argument, NULL, '3' },
		{ "keep-monthly", required_argument, NULL, '4' },
		{ "backup-to", required_argument, NULL, 1006 },
		{ "backup-every", required_argument, NULL, 1007 },
		{ "backup-passfile", required_argument, NULL, 1008 },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	char why[512];
	struct tool_pass pass = { 0 };
	struct mount_args a;
	int pfd[2], opt, ret = 1;
	pid_t pid;

	/* vv://...: the remote client (cmd_rmount.c), its own options */
	for (int i = 1; !headless && i < argc; i++)
		if (!strncmp(argv[i], "vv://", 5))
			return cmd_mount_remote(argc, argv);
	memset(&a, 0, sizeof(a));
	a.headless = headless;
	a.trash_secs = 30LL * 86400;
	/* As root the daemon serves every user, each checked by the daemon. */
	a.fo.allow_other = geteuid() == 0;
	optind = 0;
	while ((opt = getopt_long(argc, argv, "fdo:h", lopts, NULL)) != -1) {
		switch (opt) {
		case 'p': a.src.file = optarg; break;
		case 'e': a.src.cmd = optarg; break;
		case 'f': a.foreground = true; break;
		case 'd': a.debug = a.foreground = true; break;
		case 'a': a.audit_log = optarg; break;
		case 'A': a.audit_required = true; break;
		case 'R': a.accept_rollback = true; break;
		case 'L': a.audit_lookups = true; break;
		case 'N': a.no_audit = true; break;
		case 'l': a.log = optarg; break;
		case 'P': a.pid_file = optarg; break;
		case 'K':
			if (parse_size(optarg, &a.knn_cache) < 0) {
				die_msg("mount", "bad --knn-cache '%s' (a size such as 512M, 8G or 0)",
					optarg);
				return 2;
			}
			a.knn_off = a.knn_cache == 0;
			break;
		case 'T': {
			char *end;
			unsigned long long n = strtoull(optarg, &end, 10);
			bool secs = *end == 's' && end[1] == '\0';
			if (!*optarg || *optarg == '-' || (*end && !secs) || n > 36500ULL * (secs ? 86400 : 1)) {
				die_msg("mount", "bad --trash-days '%s' (whole days, 0 to 36500; 0 "
					"turns the trash off)", optarg);
				return 2;
			}
			a.trash_secs = (int64_t)n * (secs ? 1 : 86400);
			break;
		}
		case 'S':
			if (parse_dur(optarg, &a.snap_every) < 0) {
				die_msg("mount", "bad --snapshot-every '%s' (a duration such as 30s, "
					"15m, 1h, 1d or 1w, at most a year)", optarg);
				return 2;
			}
			break;
		case '1': case '2': case '3': case '4':
			if (parse_count(optarg, &a.keep[opt - '1']) < 0) {
				die_msg("mount", "bad --%s '%s' (a count, 0 to 100000)",
					(const char *[]){ "keep-hourly", "keep-daily", "keep-weekly", "keep-monthly" }[opt - '1'], optarg);
				return 2;
			}
			break;
		case 'o':
			if (parse_o(&a, optarg) < 0)
				return 2;
			break;
		case 1001: a.listen = optarg; break;
		case 1002: a.tls_cert = optarg; break;
		case 1003: a.tls_key = optarg; break;
		case 1004:
			if (a.nallow == MAX_ALLOW) {
				die_msg("mount", "at most %d --allow (add more with 'vecvault allow add')",
					MAX_ALLOW);
				return 2;
			}
			a.allow[a.nallow++] = optarg;
			break;
		case 1005: a.client_ca = optarg; break;
		case 1020: a.client_crl = optarg; break;
		case 1021: {
			char *end;
			unsigned long long n;
			errno = 0;
			n = strtoull(optarg, &end, 10);
			if (errno || *optarg < '1' || *optarg > '9' || *end || n > (1ull << 32)) {
				die_msg("mount", "bad --remote-nodes '%s' (a count of nodes, 1 to "
					"4294967296; default 1048576)", optarg);
				return 2;
			}
			a.remote_nodes = (size_t)n;
			break;
		}
		case 1006: a.backup_to = optarg; break;
		case 1007:
			if (parse_dur(optarg, &a.backup_every) < 0) {
				die_msg("mount", "bad --backup-every '%s' (a duration such as 30s, "
					"15m, 1h, 1d or 1w, at most a year)", optarg);
				return 2;
			}
			break;
		case 1008: a.backup_passfile = optarg; break;
		case 'h':
			fputs(headless ? serve_usage : usage, stdout);
			return 0;
		default:
			fputs(usage, stderr);
			return 2;
		}
	}
	if (optind != argc - (headless ? 1 : 2)) {
		fputs(headless ? serve_usage : usage, stderr);
		return 2;
	}
	a.store = argv[optind];
	a.mnt = headless ? NULL : argv[optind + 1];
	if (headless && !a.listen) {
		die_msg("serve", "--listen ADDR:PORT is required (what would it serve otherwise?)");
		return 2;
	}
	if ((a.tls_cert || a.tls_key || a.nallow || a.client_ca || a.client_crl ||
	     a.remote_nodes) && !a.listen) {
		die_msg("mount", "--tls-cert, --tls-key, --allow, --client-ca, --client-crl and "
			"--remote-nodes need --listen");
		return 2;
	}
	if (a.client_crl && !a.client_ca) {
		die_msg("mount", "--client-crl needs --client-ca (the CA whose certificates it "
			"revokes)");
		return 2;
	}
	if (a.listen && (!a.tls_cert || !a.tls_key)) {
		die_msg("mount", "--listen needs --tls-cert and --tls-key "
			"(a first pair: vecvault tls selfsigned --out DIR)");
		return 2;
	}
	for (size_t i = 0; i < a.nallow; i++) {
		struct vv_cidr c;
		if (vv_cidr_parse(a.allow[i], &c) < 0) {
			die_msg("mount", "--allow '%s' is not a CIDR (ADDRESS or ADDRESS/BITS with the "
				"host bits zero, e.g. 10.0.0.0/8, fd00::/8, 0.0.0.0/0)", a.allow[i]);
			return 2;
		}
	}
	if (!a.snap_every && !a.backup_to && (a.keep[0] || a.keep[1] || a.keep[2] || a.keep[3])) {
		die_msg("mount", "--keep-* applies to scheduled snapshots or backups: give "
			"--snapshot-every or --backup-to too");
		return 2;
	}
	if ((a.backup_to || a.backup_passfile) && !a.backup_every) {
		die_msg("mount", "--backup-to and --backup-passfile need --backup-every DUR "
			"(how often to back up)");
		return 2;
	}
	if (a.backup_every && (!a.backup_to || !a.backup_passfile)) {
		die_msg("mount", "--backup-every needs --backup-to DEST and --backup-passfile F "
			"(the repository's passphrase, read once at mount time)");
		return 2;
	}
	if (a.backup_every && a.fo.ro) {
		die_msg("mount", "--backup-every needs a writable mount (a backup exports a snapshot, "
			"which a read-only mount cannot take)");
		return 2;
	}
	if (a.backup_every && check_backup_dest(&a) < 0)
		return 1;
	if (a.src.file && a.src.cmd) {
		die_msg("mount", "--passfile and --extpass exclude each other");
		return 2;
	}
	if (!realpath(a.store, a.store_abs)) {
		die_msg("mount", "store %s (%s)", a.store, strerror(errno));
		return 1;
	}
	if (!headless && check_mountpoint(a.mnt, a.mnt_abs) < 0)
		return 1;
	/* The daemon changes to / after forking: relative paths would land there. */
	if (absolute(&a.log, a.log_abs) < 0 || absolute(&a.pid_file, a.pid_abs) < 0 ||
	    absolute(&a.audit_log, a.audit_abs) < 0 || absolute(&a.tls_cert, a.cert_abs) < 0 ||
	    absolute(&a.tls_key, a.key_abs) < 0 || absolute(&a.client_ca, a.ca_abs) < 0 ||
	    absolute(&a.client_crl, a.crl_abs) < 0)
		return 1;
	if (headless) {
		/* SIGTERM and friends are taken by vv_fs_run_headless's sigwait:
		 * blocked before any thread (the listener's) starts. */
		sigset_t set;
		sigemptyset(&set);
		sigaddset(&set, SIGINT);
		sigaddset(&set, SIGTERM);
		sigaddset(&set, SIGHUP);
		sigprocmask(SIG_BLOCK, &set, NULL);
		snprintf(a.mnt_abs, sizeof(a.mnt_abs), "(no mount)");
	}
	snprintf(a.fsname, sizeof(a.fsname), "vecvault:%s", a.store_abs);
	a.fo.fsname = a.fsname;
	a.fo.debug = a.debug;

	if (tool_get_pass("mount", &a.src, "passphrase", false, &pass) < 0)
		return 1;

	a.fo.no_bulk = tool_env_no_bulk();
	if (a.foreground) {
		/* Only the process systemd started may say READY=1 (vecvault@.service
		 * runs mount -f); a background daemon is not that process. */
		a.fo.notify_socket = tool_notify_socket();
		if (a.log && tool_log_daemon("mount", a.log, a.debug, why, sizeof(why)) < 0)
			goto out;
		if (!a.log && a.debug) {
			setenv("VECVAULT_DEBUG", "1", 1);
			tool_log_stderr();
		}
		ret = serve(&a, &pass, -1);
		goto out;
	}

	if (pipe2(pfd, O_CLOEXEC) < 0) {
		die_msg("mount", "pipe (%s)", strerror(errno));
		goto out;
	}
	fflush(NULL);
	pid = fork();
	if (pid < 0) {
		die_msg("mount", "fork (%s)", strerror(errno));
		close(pfd[0]);
		close(pfd[1]);
		goto out;
	}
	if (pid == 0) {
		close(pfd[0]);
		setsid();
		/* A parent killed while waiting must not kill the daemon. */
		signal(SIGPIPE, SIG_IGN);
		/* Do not pin the caller's working directory (paths are absolute). */
		if (chdir("/") < 0) {
			/* "/" always exists. */
		}
		if (tool_log_daemon("mount", a.log, a.debug, why, sizeof(why)) < 0) {
			report(pfd[1], "cannot open log file: %s", why);
			_exit(1);
		}
		a.fo.detach_stdio = true;
		ret = serve(&a, &pass, pfd[1]);
		close(pfd[1]);
		_exit(ret);
	}
	close(pfd[1]);
	tool_pass_free(&pass);
	tool_pass_free(&a.bk_pass);
	ret = wait_child(pid, pfd[0], a.mnt_abs);
	close(pfd[0]);
out:
	tool_pass_free(&pass);
	tool_pass_free(&a.bk_pass);
	return ret;
}

int cmd_mount(int argc, char **argv)
{
	return mount_or_serve(argc, argv, false);
}

int cmd_serve(int argc, char **argv)
{
	return mount_or_serve(argc, argv, true);
}
