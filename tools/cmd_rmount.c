/*
 * cmd_rmount.c - `vecvault mount vv://[USER@]HOST:PORT[/COLLECTION] MNT`:
 * the vv:// client (fs/remote.c over net/client.c).
 *
 * Like the local mount, the parent forks a daemon and waits for its
 * verdict on a pipe ('R' once mounted, 'E' and the reason).  The daemon
 * connects, verifies the server (--ca, --pin, else known_hosts: trust on
 * first use, a loud refusal when the certificate changed), logs in with
 * the API key or the password, looks up the collection and mounts.  It
 * holds no vault key: the server decides and audits every request as the
 * vault user.  The mount is private to the user who made it unless
 * -o allow_other; then every local user acts as that vault user (as with
 * sshfs).
 */
#include <errno.h>
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
#include "util.h"
#include "vecvault/error.h"
#include "vecvault/fs.h"
#include "vecvault/log.h"
#include "vecvault/net.h"
#include "vecvault/privfile.h"
#include "vecvault/remote_wire.h"
#include "vecvault/vault.h"

static const char usage[] =
	"usage: vecvault mount vv://[USER@]HOST:PORT[/COLLECTION] MNT\n"
	"                      (--key-file FILE | --password-file FILE |\n"
	"                       --cert FILE [--cert-key FILE])\n"
	"                      [--ca FILE | --pin SHA256] [--known-hosts FILE]\n"
	"                      [--bind ADDR] [--timeout SECONDS] [-o OPT[,OPT...]]\n"
	"                      [-f] [-d] [--log FILE]\n"
	"Mount a vault (or one collection of it) served by 'vecvault serve' or\n"
	"'vecvault mount --listen' on HOST:PORT, over TLS 1.3.\n"
	"  --key-file FILE    log in with the API key in FILE ('vecvault key create');\n"
	"                     with USER@, the key must be USER's\n"
	"  --password-file FILE  log in as USER (required) with the password in FILE\n"
	"  --cert FILE        mutual TLS: present this client certificate (PEM), for a\n"
	"                     server with --client-ca; its CN names the vault user.\n"
	"                     Alone it logs in as that user; with --key-file or\n"
	"                     --password-file, those must be the same user's\n"
	"  --cert-key FILE    the certificate's private key (default: in --cert)\n"
	"  --ca FILE          verify the server's certificate and name by this CA\n"
	"  --pin SHA256       accept only the certificate with this SHA-256\n"
	"                     fingerprint ('vecvault tls selfsigned' prints it)\n"
	"  --known-hosts FILE without --ca or --pin: trust the first certificate seen\n"
	"                     and refuse a changed one (default\n"
	"                     ~/.config/vecvault/known_hosts)\n"
	"  --bind ADDR        connect from this source address\n"
	"  --timeout SECONDS  a request the server does not answer in time fails\n"
	"                     with ENOTCONN (default 30); a server that then answers\n"
	"                     no ping within as long is left and reconnected to\n"
	"  --attr-timeout SECONDS  how long the kernel may cache names and\n"
	"                     attributes (what stat shows; 0 to 3600, decimals\n"
	"                     allowed, default 10, 0 = ask the server each time).\n"
	"                     A change on the server shows within this bound;\n"
	"                     opens, reads, writes and xattr reads are always\n"
	"                     decided by the server with its current permissions\n"
	"  -o OPTS            ro, rw, allow_other (every local user acts as the vault\n"
	"                     user), noallow_other (default), noexec, exec\n"
	"  -f, --foreground   stay in the foreground;  -d, --debug  trace requests\n"
	"  --log FILE         the client daemon's log (default: syslog)\n"
	"Unmount with: fusermount3 -u MNT\n";

struct rargs {
	char user[256], host[256], coll[VV_NAME_MAX + 1];
	unsigned port;
	const char *mnt, *key_file, *pw_file, *ca, *pin, *known_hosts, *bind, *log;
	const char *cert, *cert_key;
	unsigned timeout_s;
	bool foreground, debug;
	struct vv_fs_opts fo;
	char mnt_abs[PATH_MAX], ca_abs[PATH_MAX], kh_abs[PATH_MAX], log_abs[PATH_MAX];
	char cert_abs[PATH_MAX], ckey_abs[PATH_MAX];
	char fsname[1100];
};

/* vv://[USER@]HOST:PORT[/COLLECTION], HOST a name, an IPv4 address or
 * [IPv6]. */
static int parse_url(const char *url, struct rargs *a)
{
	const char *p = url + 5, *at, *hend, *slash;
	char port[16];
	size_t n;
	char *end;
	unsigned long v;

	slash = strchr(p, '/');
	at = strchr(p, '@');
	if (at && (!slash || at < slash)) {
		if ((n = (size_t)(at - p)) == 0 || n >= sizeof(a->user))
			return -1;
		memcpy(a->user, p, n);
		a->user[n] = '\0';
		p = at + 1;
	}
	if (*p == '[') {
		if (!(hend = strchr(p, ']')) || hend[1] != ':')
			return -1;
		n = (size_t)(hend - p - 1);
		if (n == 0 || n >= sizeof(a->host))
			return -1;
		memcpy(a->host, p + 1, n);
		a->host[n] = '\0';
		p = hend + 2;
	} else {
		if (!(hend = strchr(p, ':')) || (slash && hend > slash))
			return -1;
		n = (size_t)(hend - p);
		if (n == 0 || n >= sizeof(a->host))
			return -1;
		memcpy(a->host, p, n);
		a->host[n] = '\0';
		p = hend + 1;
	}
	slash = strchr(p, '/');
	n = slash ? (size_t)(slash - p) : strlen(p);
	if (n == 0 || n >= sizeof(port))
		return -1;
	memcpy(port, p, n);
	port[n] = '\0';
	errno = 0;
	v = strtoul(port, &end, 10);
	if (errno || *end || port[0] < '0' || port[0] > '9' || v == 0 || v > 65535)
		return -1;
	a->port = (unsigned)v;
	if (slash) {
		p = slash + 1;
		n = strlen(p);
		while (n && p[n - 1] == '/')
			n--;
		if (n >= sizeof(a->coll) || memchr(p, '/', n) || (n == 1 && p[0] == '.') ||
		    (n == 2 && p[0] == '.' && p[1] == '.'))
			return -1;
		memcpy(a->coll, p, n);
		a->coll[n] = '\0';
	}
	return 0;
}

static int parse_o(struct rargs *a, const char *list)
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
			die_msg("mount", "unsupported mount option '%s' (allow_other, "
				"noallow_other, ro, rw, noexec, exec)", tok);
			r = -1;
			break;
		}
	}
	free(dup);
	return r;
}

static void report(int fd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void report(int fd, const char *fmt, ...)
{
	char msg[1400];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	vv_log(VV_LOG_ERR, "%s", msg);
	if (fd >= 0) {
		if (write(fd, "E", 1) != 1 || write(fd, msg, strlen(msg)) < 0) {
			/* the parent is gone */
		}
	} else {
		die_msg("mount", "%s", msg);
	}
}

/* The server's inode of the collection (a directory), or the root. */
static int find_root(struct vv_net_client *c, const char *coll, uint64_t *root, uint64_t *gen,
		     char *why, size_t whylen)
{
	struct vv_rw_msg *rq = calloc(1, sizeof(*rq)), *rep = calloc(1, sizeof(*rep));
	uint8_t *hold = NULL;
	int r = VV_ENOMEM;

	*root = VV_ROOT_INO;
	*gen = 0;
	if (!coll[0]) {
		r = 0;
		goto out;
	}
	if (!rq || !rep)
		goto out;
	rq->h.op = VV_RW_LOOKUP;
	rq->u[0] = VV_ROOT_INO;
	rq->nu = 1;
	rq->s[0] = coll;
	rq->ns = 1;
	if ((r = vv_net_client_call(c, rq, rep, &hold)) < 0) {
		snprintf(why, whylen, "collection %s: %s", coll, vv_strerror(r));
		goto out;
	}
	if (!rep->has_attr || !S_ISDIR(rep->attr.mode)) {
		snprintf(why, whylen, "%s on the server is not a collection (a directory)", coll);
		r = VV_ENOTDIR;
		goto out;
	}
	*root = rep->attr.ino;
	*gen = rep->attr.gen;
out:
	free(hold);
	free(rq);
	free(rep);
	return r;
}

/* The daemon: connect, log in, mount.  Returns the exit status. */
static int run_client(struct rargs *a, struct tool_pass *secret, int report_fd)
{
	struct vv_net_client_opts o;
	struct vv_net_client *c = NULL;
	char why[1024];
	uint64_t root, gen;
	unsigned uid = 0;
	int r, ret = 1;

	memset(&o, 0, sizeof(o));
	o.host = a->host;
	o.port = a->port;
	o.bind = a->bind;
	o.ca = a->ca;
	o.pin = a->pin;
	o.known_hosts = a->known_hosts;
	o.user = a->pw_file ? a->user : NULL;
	o.secret = a->key_file || a->pw_file ? secret->buf : NULL;
	o.cert = a->cert;
	o.cert_key = a->cert_key;
	o.timeout_ms = a->timeout_s * 1000;
	why[0] = '\0';
	r = vv_net_client_connect(&o, &c, &uid, why, sizeof(why));
	tool_pass_free(secret);
	if (r < 0) {
		report(report_fd, "vv://%s:%u: %s", a->host, a->port, why[0] ? why : vv_strerror(r));
		goto out;
	}
	if ((a->key_file || !a->pw_file) && a->user[0] &&
	    strcmp(a->user, vv_net_client_user(c)) != 0) {
		report(report_fd, "vv://%s:%u: the %s %s belongs to the vault user %s, not %s: "
		       "refused", a->host, a->port, a->key_file ? "key in" : "client certificate",
		       a->key_file ? a->key_file : a->cert, vv_net_client_user(c), a->user);
		goto out;
	}
	if ((r = vv_net_client_start(c)) < 0 || (r = find_root(c, a->coll, &root, &gen, why,
								 sizeof(why))) < 0) {
		report(report_fd, "vv://%s:%u: %s", a->host, a->port, r == VV_ENOMEM ?
		       vv_strerror(r) : why);
		goto out;
	}
	vv_log(VV_LOG_INFO, "vv://%s:%u%s%s: logged in as %s (uid %u)", a->host, a->port,
	       a->coll[0] ? "/" : "", a->coll, vv_net_client_user(c), uid);
	r = vv_fs_run_remote(c, root, gen, a->coll[0] ? a->coll : NULL, a->mnt_abs, &a->fo,
			     report_fd);
	if (r < 0) {
		report(report_fd, "cannot mount vv://%s:%u on %s: %s", a->host, a->port,
		       a->mnt_abs, vv_fs_last_error()[0] ? vv_fs_last_error() : vv_strerror(r));
		goto out;
	}
	ret = r;
out:
	vv_net_client_close(c);
	return ret;
}

static int wait_child(pid_t pid, int fd, const char *mnt)
{
	char buf[1500];
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
	else
		die_msg("mount", "the client daemon exited before %s was mounted", mnt);
	return 1;
}

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

/* ~/.config/vecvault/known_hosts, its directories made private.  $HOME
 * and the directories below it must be ours (or root's) and closed to
 * others (privfile.h): root run with a user's $HOME (sudo -E) would else
 * trust the entries that user wrote, or write through their link into a
 * file of their choosing (t7054). */
static int default_known_hosts(char buf[PATH_MAX])
{
	const char *home = getenv("HOME");
	char dir[PATH_MAX], sub[PATH_MAX], why[512];

	if (!home || home[0] != '/') {
		die_msg("mount", "no $HOME for known_hosts: give --ca, --pin or --known-hosts");
		return -1;
	}
	snprintf(dir, sizeof(dir), "%s/.config", home);
	snprintf(sub, sizeof(sub), "%s/.config/vecvault", home);
	if (snprintf(buf, PATH_MAX, "%s/known_hosts", sub) >= PATH_MAX)
		return -1;
	/* each directory on the way ($HOME, .config, vecvault) checked, by
	 * the name inside it, before anything is made in it */
	if (vv_privfile_check_parent(dir, why, sizeof(why)) < 0)
		goto unsafe;
	(void)mkdir(dir, 0700);
	if (vv_privfile_check_parent(sub, why, sizeof(why)) < 0)
		goto unsafe;
	if (mkdir(sub, 0700) < 0 && errno != EEXIST) {
		die_msg("mount", "cannot make %s (%s)", sub, strerror(errno));
		return -1;
	}
	if (vv_privfile_check_parent(buf, why, sizeof(why)) < 0)
		goto unsafe;
	return 0;
unsafe:
	die_msg("mount", "the default known_hosts under $HOME cannot be trusted: %s; give "
		"--pin, --ca or --known-hosts FILE", why);
	return -1;
}

int cmd_mount_remote(int argc, char **argv)
{
	static const struct option lopts[] = {
		{ "key-file", required_argument, NULL, 'k' },
		{ "password-file", required_argument, NULL, 'w' },
		{ "ca", required_argument, NULL, 'c' },
		{ "cert", required_argument, NULL, 'C' },
		{ "cert-key", required_argument, NULL, 'X' },
		{ "pin", required_argument, NULL, 'P' },
		{ "known-hosts", required_argument, NULL, 'K' },
		{ "bind", required_argument, NULL, 'b' },
		{ "timeout", required_argument, NULL, 't' },
		{ "attr-timeout", required_argument, NULL, 'A' },
		{ "foreground", no_argument, NULL, 'f' },
		{ "debug", no_argument, NULL, 'd' },
		{ "log", required_argument, NULL, 'l' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct tool_pass secret = { 0 };
	struct pass_src src = { 0 };
	struct rargs a;
	struct stat st;
	char why[512];
	int pfd[2], opt, ret = 1;
	pid_t pid;

	memset(&a, 0, sizeof(a));
	a.timeout_s = 30;
	a.fo.attr_timeout_ms = 10000;
	{
		/* tests (t7033): a daemon whose FUSE INIT fails */
		const char *t = getenv("VECVAULT_TEST_INIT_FAIL");
		a.fo.test_init_fail = t && !strcmp(t, "1");
		/* tests (t7031): hold early releases back (remote.c) */
		t = getenv("VECVAULT_TEST_RELEASE_GATE");
		a.fo.test_release_gate = t && t[0] == '/' ? t : NULL;
	}
	optind = 0;
	while ((opt = getopt_long(argc, argv, "fdo:h", lopts, NULL)) != -1) {
		switch (opt) {
		case 'k': a.key_file = optarg; break;
		case 'w': a.pw_file = optarg; break;
		case 'c': a.ca = optarg; break;
		case 'C': a.cert = optarg; break;
		case 'X': a.cert_key = optarg; break;
		case 'P': a.pin = optarg; break;
		case 'K': a.known_hosts = optarg; break;
		case 'b': a.bind = optarg; break;
		case 't': {
			char *end;
			unsigned long v;
			errno = 0;
			v = strtoul(optarg, &end, 10);
			if (errno || *end || optarg[0] < '0' || optarg[0] > '9' || v == 0 ||
			    v > 86400) {
				die_msg("mount", "bad --timeout '%s' (whole seconds, 1 to 86400)",
					optarg);
				return 2;
			}
			a.timeout_s = (unsigned)v;
			break;
		}
		case 'A': {
			char *end;
			double v;
			errno = 0;
			v = strtod(optarg, &end);
			if (errno || *end || end == optarg || optarg[0] < '0' || optarg[0] > '9' ||
			    !(v >= 0 && v <= 3600)) {
				die_msg("mount", "bad --attr-timeout '%s' (seconds, 0 to 3600)", optarg);
				return 2;
			}
			a.fo.attr_timeout_ms = (unsigned)(v * 1000 + 0.5);
			break;
		}
		case 'f': a.foreground = true; break;
		case 'd': a.debug = a.foreground = true; break;
		case 'l': a.log = optarg; break;
		case 'o':
			if (parse_o(&a, optarg) < 0)
				return 2;
			break;
		case 'h':
			fputs(usage, stdout);
			return 0;
		default:
			fputs(usage, stderr);
			return 2;
		}
	}
	if (optind != argc - 2 || strncmp(argv[optind], "vv://", 5) != 0) {
		fputs(usage, stderr);
		return 2;
	}
	if (parse_url(argv[optind], &a) < 0) {
		die_msg("mount", "'%s' is not vv://[USER@]HOST:PORT[/COLLECTION] (an IPv6 "
			"address in brackets, a port 1-65535, one collection name)", argv[optind]);
		return 2;
	}
	a.mnt = argv[optind + 1];
	if (a.key_file && a.pw_file) {
		die_msg("mount", "give only one of --key-file and --password-file");
		return 2;
	}
	if (!a.key_file && !a.pw_file && !a.cert) {
		die_msg("mount", "give --key-file, --password-file or --cert (a client certificate)");
		return 2;
	}
	if (a.cert_key && !a.cert) {
		die_msg("mount", "--cert-key needs --cert");
		return 2;
	}
	if ((a.cert && access(a.cert, R_OK) < 0) || (a.cert_key && access(a.cert_key, R_OK) < 0)) {
		die_msg("mount", "%s %s (%s)", a.cert_key && access(a.cert_key, R_OK) < 0 ?
			"--cert-key" : "--cert", a.cert_key && access(a.cert_key, R_OK) < 0 ?
			a.cert_key : a.cert, strerror(errno));
		return 1;
	}
	if (a.pw_file && !a.user[0]) {
		die_msg("mount", "--password-file needs the vault user: vv://USER@%s:%u", a.host,
			a.port);
		return 2;
	}
	if (a.ca && a.pin) {
		die_msg("mount", "--ca and --pin exclude each other");
		return 2;
	}
	if (a.pin) {
		const char *p = strncmp(a.pin, "sha256:", 7) ? a.pin : a.pin + 7;
		if (strlen(p) != 64 || strspn(p, "0123456789abcdefABCDEF") != 64) {
			die_msg("mount", "--pin '%s' is not a SHA-256 fingerprint (64 hex digits, "
				"as 'vecvault tls selfsigned' prints)", a.pin);
			return 2;
		}
	}
	if (a.ca && access(a.ca, R_OK) < 0) {
		die_msg("mount", "--ca %s (%s)", a.ca, strerror(errno));
		return 1;
	}
	if (stat(a.mnt, &st) < 0 || !S_ISDIR(st.st_mode) || !realpath(a.mnt, a.mnt_abs)) {
		die_msg("mount", "mount point %s is not a directory (%s)", a.mnt,
			errno ? strerror(errno) : "not a directory");
		return 1;
	}
	if (!a.ca && !a.pin && !a.known_hosts) {
		if (default_known_hosts(a.kh_abs) < 0)
			return 1;
		a.known_hosts = a.kh_abs;
	}
	if (absolute(&a.ca, a.ca_abs) < 0 || absolute(&a.known_hosts, a.kh_abs) < 0 ||
	    absolute(&a.log, a.log_abs) < 0 || absolute(&a.cert, a.cert_abs) < 0 ||
	    absolute(&a.cert_key, a.ckey_abs) < 0)
		return 1;
	snprintf(a.fsname, sizeof(a.fsname), "vv://%s%s%s:%u%s%s", a.user, a.user[0] ? "@" : "",
		 a.host, a.port, a.coll[0] ? "/" : "", a.coll);
	for (char *q = a.fsname; *q; q++)
		if (*q == ',')
			*q = '_';
	a.fo.fsname = a.fsname;
	a.fo.debug = a.debug;
	src.file = a.key_file ? a.key_file : a.pw_file;
	if (src.file &&
	    tool_get_pass("mount", &src, a.key_file ? "API key" : "password", false, &secret) < 0)
		return 1;
	/* A server gone mid-write must not kill the client with SIGPIPE. */
	signal(SIGPIPE, SIG_IGN);

	if (a.foreground) {
		if (a.log && tool_log_daemon("mount", a.log, a.debug, why, sizeof(why)) < 0)
			goto out;
		if (!a.log)
			tool_log_stderr();
		ret = run_client(&a, &secret, -1);
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
		if (chdir("/") < 0) {
			/* "/" always exists */
		}
		if (tool_log_daemon("mount", a.log, a.debug, why, sizeof(why)) < 0) {
			report(pfd[1], "cannot open log file: %s", why);
			_exit(1);
		}
		a.fo.detach_stdio = true;
		ret = run_client(&a, &secret, pfd[1]);
		close(pfd[1]);
		_exit(ret);
	}
	close(pfd[1]);
	tool_pass_free(&secret);
	ret = wait_child(pid, pfd[0], a.mnt_abs);
	close(pfd[0]);
out:
	tool_pass_free(&secret);
	return ret;
}
