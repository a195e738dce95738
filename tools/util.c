/*
 * util.c - CLI helpers: passphrase input, log sinks, open-error messages.
 *
 * Passphrases are kept in one buffer that is mlock'ed (best effort, so it
 * does not reach swap) and zeroed with explicit_bzero before it is freed;
 * intermediate copies (confirmation, pipe reads) are zeroed the same way.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <syslog.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "cmd.h"
#include "env.h"
#include "util.h"
#include "vecvault/audit.h"
#include "vecvault/store.h"
#include "vecvault/error.h"
#include "vecvault/log.h"
#include "vecvault/privfile.h"

void die_msg(const char *verb, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "vecvault %s: ", verb);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

bool tool_want_help(int argc, char **argv)
{
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--"))
			break;
		if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help"))
			return true;
	}
	return false;
}

int tool_sub_start(int argc, char **argv, const char *usage, const char **sub)
{
	if (tool_want_help(argc, argv)) {
		fputs(usage, stdout);
		return 0;
	}
	if (argc < 2) {
		fputs(usage, stderr);
		return 2;
	}
	*sub = argv[1];
	optind = 2;
	return -1;
}

/* ---- passphrases ------------------------------------------------------------ */

static int pass_alloc(struct tool_pass *p)
{
	p->len = 0;
	p->buf = calloc(1, TOOL_PASS_MAX + 1);
	if (!p->buf)
		return -1;
	/* Best effort: without CAP_IPC_LOCK the limit may be small. */
	(void)mlock(p->buf, TOOL_PASS_MAX + 1);
	p->buf[0] = '\0';
	return 0;
}

void tool_pass_free(struct tool_pass *p)
{
	if (!p || !p->buf)
		return;
	explicit_bzero(p->buf, TOOL_PASS_MAX + 1);
	munlock(p->buf, TOOL_PASS_MAX + 1);
	free(p->buf);
	p->buf = NULL;
	p->len = 0;
}

/* Read fd to EOF (or TOOL_PASS_MAX bytes), keep the first line. */
static int read_first_line(int fd, struct tool_pass *p, bool *toolong)
{
	char junk[256];
	ssize_t n;

	*toolong = false;
	p->len = 0;
	for (;;) {
		if (p->len < TOOL_PASS_MAX)
			n = read(fd, p->buf + p->len, TOOL_PASS_MAX - p->len);
		else
			n = read(fd, junk, sizeof(junk));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			break;
		if (p->len < TOOL_PASS_MAX) {
			p->len += (size_t)n;
		} else if (!memchr(p->buf, '\n', p->len)) {
			*toolong = true;
		}
	}
	explicit_bzero(junk, sizeof(junk));
	p->buf[p->len] = '\0';
	{
		size_t nl = strcspn(p->buf, "\n");

		if (nl == p->len && p->len == TOOL_PASS_MAX)
			*toolong = true;
		explicit_bzero(p->buf + nl, p->len - nl);
		p->len = nl;
	}
	/* A file written on Windows: drop the CR of CRLF. */
	if (p->len && p->buf[p->len - 1] == '\r')
		p->buf[--p->len] = '\0';
	return 0;
}

static int pass_from_file(const char *verb, const char *path, struct tool_pass *p)
{
	struct stat st;
	bool toolong;
	int fd, r = -1;

	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0) {
		die_msg(verb, "cannot open passphrase file %s (%s)", path, strerror(errno));
		return -1;
	}
	if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && (st.st_mode & S_IROTH))
		die_msg(verb, "warning: passphrase file %s is readable by everyone", path);
	if ((r = read_first_line(fd, p, &toolong)) < 0) {
		die_msg(verb, "cannot read passphrase file %s (%s)", path, strerror(-r));
		r = -1;
		goto out;
	}
	if (toolong) {
		die_msg(verb, "passphrase in %s is longer than %d bytes", path, TOOL_PASS_MAX);
		r = -1;
		goto out;
	}
	r = 0;
out:
	close(fd);
	return r;
}

static int pass_from_cmd(const char *verb, const char *cmd, struct tool_pass *p)
{
	int pfd[2], status = 0, r = -1;
	bool toolong = false;
	pid_t pid;

	if (pipe2(pfd, O_CLOEXEC) < 0) {
		die_msg(verb, "--extpass: pipe (%s)", strerror(errno));
		return -1;
	}
	pid = fork();
	if (pid < 0) {
		die_msg(verb, "--extpass: fork (%s)", strerror(errno));
		close(pfd[0]);
		close(pfd[1]);
		return -1;
	}
	if (pid == 0) {
		/* stdin and stderr stay: the helper may ask the user itself. */
		dup2(pfd[1], 1);
		execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
		_exit(127);
	}
	close(pfd[1]);
	r = read_first_line(pfd[0], p, &toolong);
	close(pfd[0]);
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	if (r < 0) {
		die_msg(verb, "--extpass: reading from '%s' (%s)", cmd, strerror(-r));
		return -1;
	}
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
		die_msg(verb, "--extpass: '%s' failed (exit status %d)", cmd,
			WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status));
		return -1;
	}
	if (toolong) {
		die_msg(verb, "--extpass: passphrase longer than %d bytes", TOOL_PASS_MAX);
		return -1;
	}
	return 0;
}

/* Prompt on /dev/tty with echo off. */
static int pass_from_tty(const char *verb, const char *prompt, struct tool_pass *p)
{
	struct termios old, noecho;
	bool toolong = false;
	size_t n = 0;
	int fd, r = -1;
	char c;

	fd = open("/dev/tty", O_RDWR | O_CLOEXEC | O_NOCTTY);
	if (fd < 0) {
		die_msg(verb, "no terminal to ask for the passphrase; use --passfile or --extpass");
		return -1;
	}
	if (tcgetattr(fd, &old) < 0) {
		die_msg(verb, "cannot set up the terminal (%s); use --passfile or --extpass",
			strerror(errno));
		goto out;
	}
	noecho = old;
	noecho.c_lflag &= ~(tcflag_t)(ECHO | ECHOE | ECHOK | ECHONL);
	noecho.c_lflag |= ICANON;
	if (write(fd, prompt, strlen(prompt)) < 0 || tcsetattr(fd, TCSAFLUSH, &noecho) < 0) {
		die_msg(verb, "cannot set up the terminal (%s)", strerror(errno));
		goto out;
	}
	for (;;) {
		ssize_t k = read(fd, &c, 1);

		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0 || c == '\n')
			break;
		if (n < TOOL_PASS_MAX)
			p->buf[n++] = c;
		else
			toolong = true;
	}
	c = 0;
	p->buf[n] = '\0';
	p->len = n;
	tcsetattr(fd, TCSAFLUSH, &old);
	if (write(fd, "\n", 1) < 0) {
		/* Cosmetic only. */
	}
	if (toolong) {
		die_msg(verb, "passphrase longer than %d bytes", TOOL_PASS_MAX);
		goto out;
	}
	r = 0;
out:
	close(fd);
	return r;
}

int tool_get_pass(const char *verb, const struct pass_src *src, const char *what,
		  bool confirm, struct tool_pass *out)
{
	struct tool_pass again = { 0 };
	char prompt[128];
	int r = -1;

	if (pass_alloc(out) < 0) {
		die_msg(verb, "out of memory");
		return -1;
	}
	if (src && src->file) {
		r = pass_from_file(verb, src->file, out);
	} else if (src && src->cmd) {
		r = pass_from_cmd(verb, src->cmd, out);
	} else {
		snprintf(prompt, sizeof(prompt), "Enter %s: ", what);
		r = pass_from_tty(verb, prompt, out);
		if (r == 0 && confirm) {
			snprintf(prompt, sizeof(prompt), "Repeat %s: ", what);
			r = -1;
			if (pass_alloc(&again) < 0) {
				die_msg(verb, "out of memory");
				goto out;
			}
			if (pass_from_tty(verb, prompt, &again) < 0)
				goto out;
			if (again.len != out->len || memcmp(again.buf, out->buf, out->len)) {
				die_msg(verb, "the passphrases do not match");
				goto out;
			}
			r = 0;
		}
	}
	if (r == 0 && out->len == 0) {
		die_msg(verb, "empty %s", what);
		r = -1;
	}
out:
	tool_pass_free(&again);
	if (r < 0)
		tool_pass_free(out);
	return r;
}

/* ---- logging ----------------------------------------------------------------- */

static const char *lvl_name[] = { "error", "warning", "info", "debug" };
static char last_err[512];

const char *tool_last_error(void)
{
	return last_err;
}

void tool_clear_last_error(void)
{
	last_err[0] = '\0';
}

/* Every sink keeps the engine's last error: the daemon's stderr is not the
 * user's, so the reason travels back in the report instead. */
static void remember(enum vv_log_level lvl, const char *msg)
{
	if (lvl == VV_LOG_ERR)
		snprintf(last_err, sizeof(last_err), "%s", msg);
}

static void sink_stderr(void *ctx, enum vv_log_level lvl, const char *msg)
{
	remember(lvl, msg);
	fprintf(stderr, "vecvault: %s: %s\n", lvl_name[lvl], msg);
}

static enum vv_log_level env_level(enum vv_log_level dflt)
{
	const char *e = getenv("VECVAULT_DEBUG");

	return e && !strcmp(e, "1") ? VV_LOG_DEBUG : dflt;
}

void tool_log_stderr(void)
{
	vv_log_set_sink(sink_stderr, NULL, env_level(VV_LOG_WARN));
}

static FILE *logf;

static void sink_file(void *ctx, enum vv_log_level lvl, const char *msg)
{
	struct timespec ts;
	struct tm tm;
	char when[32];

	remember(lvl, msg);
	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%S", &tm);
	fprintf(logf, "%s.%03ldZ [%d] %s: %s\n", when, ts.tv_nsec / 1000000,
		(int)getpid(), lvl_name[lvl], msg);
	fflush(logf);
}

static void sink_syslog(void *ctx, enum vv_log_level lvl, const char *msg)
{
	static const int prio[] = { LOG_ERR, LOG_WARNING, LOG_INFO, LOG_DEBUG };

	remember(lvl, msg);

	syslog(prio[lvl], "%s", msg);
}

int tool_log_daemon(const char *verb, const char *path, bool debug, char *why, size_t whylen)
{
	enum vv_log_level max = env_level(debug ? VV_LOG_DEBUG : VV_LOG_INFO);
	int fd;

	if (!path) {
		openlog("vecvault", LOG_PID, LOG_DAEMON);
		vv_log_set_sink(sink_syslog, NULL, max);
		return 0;
	}
	/* The daemon's log names files and users: never a planted link or a
	 * file someone else made (vecvault/privfile.h). */
	if (vv_privfile_open(path, O_WRONLY | O_APPEND | O_CREAT, 0600, VV_PRIVFILE_SECRET, &fd,
			     why, whylen) < 0) {
		die_msg(verb, "cannot open log file %s (%s)", path, why);
		return -1;
	}
	if (!(logf = fdopen(fd, "a"))) {
		snprintf(why, whylen, "%s", strerror(errno));
		die_msg(verb, "cannot open log file %s (%s)", path, why);
		close(fd);
		return -1;
	}
	vv_log_set_sink(sink_file, NULL, max);
	return 0;
}

/* ---- open errors ---------------------------------------------------------------- */

void tool_open_error(const char *store, int r, char *buf, size_t buflen)
{
	switch (r) {
	case VV_EBADPASS:
		snprintf(buf, buflen, "wrong passphrase");
		break;
	case VV_EBUSY:
		snprintf(buf, buflen, "%s is in use by another vecvault daemon (or fsck/passwd)",
			 store);
		break;
	case VV_ENOENT:
		snprintf(buf, buflen, "%s does not exist (%s)", store, vv_strerror(r));
		break;
	case VV_ENOTINIT:
	case VV_EFORMAT:
		snprintf(buf, buflen, "%s is not a vecvault store (%s); create one with "
			 "'vecvault init'", store, vv_strerror(r));
		break;
	case VV_EROLLBACK:
		snprintf(buf, buflen, "%s: metadata is older than the newest this machine "
			 "has seen (%s); if you restored a backup on purpose, use "
			 "--accept-rollback", store, vv_strerror(r));
		break;
	case VV_EDOWNGRADE:
		snprintf(buf, buflen, "%s: key slot parameters are below the allowed "
			 "minimum (%s)", store, vv_strerror(r));
		break;
	case VV_EUNSAFE:
		/* The engine's reason (which file, what is wrong) follows. */
		snprintf(buf, buflen, "%s: refused an unsafe file outside the store "
			 "(docs/security.md)", store);
		break;
	default:
		snprintf(buf, buflen, "cannot open vault %s (%s)", store, vv_strerror(r));
		break;
	}
}

void tool_audit_admin(struct vv_store *s, const char *op, int result, const char *detail)
{
	struct vv_audit_opts ao;
	struct vv_audit_rec rec;
	struct vv_audit *a = NULL;
	uint8_t key[VV_STORE_KEY_BYTES];
	char path[PATH_MAX], dir[PATH_MAX];
	int r;

	if (!s || tool_audit_dir(dir, sizeof(dir)) < 0 ||
	    vv_audit_default_path(dir, vv_store_id(s), path, sizeof(path)) < 0)
		return;
	vv_audit_rec_self(&rec, op, result, detail);
	if (!vv_store_is_unlocked(s)) {
		if (vv_audit_preauth_append(path, &rec) < 0)
			fprintf(stderr, "vecvault: warning: cannot record the failed unlock in %s.preauth\n",
				path);
		return;
	}
	if ((r = vv_store_subkey(s, VV_AUDIT_SUBKEY_ID, VV_SUBKEY_AUDIT, key)) < 0)
		goto out;
	memset(&ao, 0, sizeof(ao));
	ao.path = path;
	ao.key = key;
	if ((r = vv_audit_open(&ao, &a)) < 0)
		goto out;
	vv_audit_import_preauth(a);
	vv_audit_log(a, &rec);
	r = vv_audit_close(a);
out:
	explicit_bzero(key, sizeof(key));
	if (r < 0)
		fprintf(stderr, "vecvault: warning: cannot record '%s' in the audit log %s (%s)\n", op,
			path, vv_strerror(r));
}
