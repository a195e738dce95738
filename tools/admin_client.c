/*
 * admin_client.c - find a vault's daemon and talk to its control socket
 * (admin_client.h says how the daemon is found and why it is trusted).
 */
#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "admin_client.h"
#include "env.h"
#include "util.h"
#include "vecvault/admin_wire.h"
#include "vecvault/error.h"
#include "vecvault/store.h"

#define VAULT_ID_XATTR "user.vecvault.vault"
#define INSTANCE_XATTR "user.vecvault.instance"
#define FSTYPE "fuse.vecvault"
#define ID_LEN (2 * VV_STORE_ID_BYTES)

static void say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void say(const char *fmt, ...)
{
	va_list ap;

	fputs("vecvault: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

/* ---- which mount holds a path ------------------------------------------ */

/* Undo mountinfo's octal escapes (\040 for a space) in place. */
static void unescape(char *s)
{
	char *o = s;

	for (; *s; s++) {
		if (s[0] == '\\' && s[1] >= '0' && s[1] <= '3' && s[2] >= '0' && s[2] <= '7' &&
		    s[3] >= '0' && s[3] <= '7') {
			*o++ = (char)((s[1] - '0') * 64 + (s[2] - '0') * 8 + (s[3] - '0'));
			s += 3;
		} else {
			*o++ = *s;
		}
	}
	*o = '\0';
}

/* Is mnt a leading path of abs, component-wise? */
static bool under(const char *abs, const char *mnt)
{
	size_t n = strlen(mnt);

	if (strcmp(mnt, "/") == 0)
		return true;
	return strncmp(abs, mnt, n) == 0 && (abs[n] == '/' || abs[n] == '\0');
}

/* The innermost mount holding abs: its mount point, whether it is a
 * vecvault mount, and for a FUSE mount the uid that mounted it
 * (user_id=, else -1).  0, or -1 when mountinfo cannot be read. */
static int innermost_mount(const char *abs, char *mnt, size_t mntcap, bool *vecvault,
			   long *owner)
{
	FILE *f = fopen("/proc/self/mountinfo", "re");
	char *line = NULL;
	size_t cap = 0, best = 0;

	*vecvault = false;
	*owner = -1;
	mnt[0] = '\0';
	if (!f)
		return -1;
	while (getline(&line, &cap, f) > 0) {
		char *save = NULL, *tok, *point = NULL, *fstype = NULL, *super = NULL;
		int field = 0, after = -1;

		for (tok = strtok_r(line, " \n", &save); tok; tok = strtok_r(NULL, " \n", &save), field++) {
			if (field == 4)
				point = tok;
			else if (after < 0 && field > 5 && strcmp(tok, "-") == 0)
				after = 0;
			else if (after >= 0 && ++after == 1)
				fstype = tok;
			else if (after == 3)
				super = tok;
		}
		if (!point || !fstype)
			continue;
		unescape(point);
		/* A later mount on the same point hides an earlier one: >=. */
		if (under(abs, point) && strlen(point) >= best && strlen(point) < mntcap) {
			const char *u = super ? strstr(super, "user_id=") : NULL;

			best = strlen(point);
			snprintf(mnt, mntcap, "%s", point);
			*vecvault = strcmp(fstype, FSTYPE) == 0;
			*owner = u ? strtol(u + 8, NULL, 10) : -1;
		}
	}
	free(line);
	fclose(f);
	return 0;
}

/* path made absolute and free of ".", ".." and repeated '/', without
 * following links (for paths that realpath cannot resolve: not there yet,
 * or not searchable by the caller). */
static int lexical(const char *path, char *out, size_t cap)
{
	char buf[PATH_MAX * 2], *save = NULL, *tok;
	size_t n = 0;

	if (path[0] == '/')
		snprintf(buf, sizeof(buf), "%s", path);
	else {
		char cwd[PATH_MAX];

		if (!getcwd(cwd, sizeof(cwd)))
			return -1;
		snprintf(buf, sizeof(buf), "%s/%s", cwd, path);
	}
	out[0] = '\0';
	for (tok = strtok_r(buf, "/", &save); tok; tok = strtok_r(NULL, "/", &save)) {
		if (strcmp(tok, ".") == 0)
			continue;
		if (strcmp(tok, "..") == 0) {
			char *s = strrchr(out, '/');
			n = s ? (size_t)(s - out) : 0;
			out[n] = '\0';
			continue;
		}
		if (n + 1 + strlen(tok) + 1 > cap)
			return -1;
		out[n++] = '/';
		strcpy(out + n, tok);
		n += strlen(tok);
	}
	if (n == 0)
		snprintf(out, cap, "/");
	return 0;
}

/* path with its parent directory resolved (realpath) and its last name
 * as given, or the lexical form when the parent cannot be resolved.  The
 * last name is not followed: a symbolic link inside a vault is a file of
 * the vault, and a link planted there must not redirect an admin request
 * elsewhere. */
static int parent_resolved(const char *path, char *out, size_t cap)
{
	char tmp[PATH_MAX], *slash;

	if (lexical(path, tmp, sizeof(tmp)) < 0)
		return -1;
	slash = strrchr(tmp, '/');
	if (slash && slash != tmp) {
		char rp[PATH_MAX];

		*slash = '\0';
		if (realpath(tmp, rp)) {
			*slash = '/';
			return (size_t)snprintf(out, cap, "%s/%s", strcmp(rp, "/") ? rp : "",
						slash + 1) < cap ? 0 : -1;
		}
		*slash = '/';
	}
	return (size_t)snprintf(out, cap, "%s", tmp) < cap ? 0 : -1;
}

/* 0 with the mount point and vault path, or 2 (message printed). */
static int split(const char *path, char *mnt, size_t mntcap, char *vpath, size_t vpcap)
{
	char abs[PATH_MAX], full[PATH_MAX];
	bool vv;
	long owner;

	if (parent_resolved(path, abs, sizeof(abs)) < 0) {
		say("%s: cannot make it an absolute path", path);
		return ADMIN_EXIT_NODAEMON;
	}
	if (innermost_mount(abs, mnt, mntcap, &vv, &owner) < 0) {
		say("cannot read /proc/self/mountinfo (%s)", strerror(errno));
		return ADMIN_EXIT_NODAEMON;
	}
	/* Outside any vault, the whole path may still be a link to a mount
	 * point or into a vault (/data/vv -> /vv): follow it then. */
	if (!vv && realpath(path, full) && strlen(full) < sizeof(abs)) {
		snprintf(abs, sizeof(abs), "%s", full);
		if (innermost_mount(abs, mnt, mntcap, &vv, &owner) < 0)
			return ADMIN_EXIT_NODAEMON;
	}
	if (vv && owner != 0 && owner != (long)geteuid()) {
		say("refusing the mount at %s: mounted by uid %ld, neither root nor you", mnt, owner);
		return ADMIN_EXIT_NODAEMON;
	}
	if (!vv) {
		say("%s is not in a mounted vault (no vecvault mount at or above it): "
		    "is the vault mounted?", path);
		return ADMIN_EXIT_NODAEMON;
	}
	if ((size_t)snprintf(vpath, vpcap, "%s", abs[strlen(mnt)] ? abs + strlen(mnt) : "/") >= vpcap) {
		say("%s: path too long", path);
		return ADMIN_EXIT_NODAEMON;
	}
	return 0;
}

int admin_where(const char *mnt, const char *store, char *out, size_t cap)
{
	int n = store ? snprintf(out, cap, "store:%s", store) : snprintf(out, cap, "%s", mnt ? mnt : ".");

	return n < 0 || (size_t)n >= cap ? -1 : 0;
}

int admin_vault_path(const char *path, char *mnt, size_t mntcap, char *vpath, size_t vpcap)
{
	return split(path, mnt, mntcap, vpath, vpcap) == 0 ? 0 : -1;
}

bool admin_in_vault(const char *path)
{
	char abs[PATH_MAX], full[PATH_MAX], mnt[PATH_MAX];
	bool vv = false;
	long owner;

	if (parent_resolved(path, abs, sizeof(abs)) < 0 ||
	    innermost_mount(abs, mnt, sizeof(mnt), &vv, &owner) < 0)
		return false;
	if (!vv && realpath(path, full) && innermost_mount(full, mnt, sizeof(mnt), &vv, &owner) < 0)
		return false;
	return vv;
}

/* ---- which vault, which socket ------------------------------------------ */

static bool is_id(const char *s)
{
	return strlen(s) == ID_LEN && strspn(s, "0123456789abcdef") == ID_LEN;
}

/* What the daemon serving `where` must answer to vault.ping: the vault
 * id, and either the instance the mount's root names (a copy of the same
 * store mounted elsewhere has another) or the store directory. */
struct target {
	char id[ID_LEN + 1];
	char instance[ID_LEN + 1];       /* "" when named by --store */
	char store[PATH_MAX];            /* "" when named by a mount */
	char name[PATH_MAX + 32];        /* "the vault at /vv", for messages */
};

/* A hex attribute of the mount's root, ID_LEN digits; 0 or -1. */
static int root_attr(const char *mnt, const char *attr, char out[ID_LEN + 1])
{
	ssize_t n = getxattr(mnt, attr, out, ID_LEN + 1);

	out[n >= 0 && n <= ID_LEN ? n : 0] = '\0';
	return n < 0 ? -1 : 0;
}

static int find_target(const char *where, struct target *t)
{
	memset(t, 0, sizeof(*t));
	if (strncmp(where, "id:", 3) == 0) {
		/* Any daemon of ours or root's serving that vault id. */
		if (!is_id(where + 3)) {
			say("%s is not a vault id", where + 3);
			return ADMIN_EXIT_NODAEMON;
		}
		memcpy(t->id, where + 3, ID_LEN + 1);
		snprintf(t->name, sizeof(t->name), "vault %s", t->id);
		return 0;
	}
	if (strncmp(where, "store:", 6) == 0) {
		const char *store = where + 6;
		struct vv_store_info in;
		struct vv_store *s = NULL;
		char msg[1024];
		int r;

		snprintf(t->name, sizeof(t->name), "the vault in %s", store);
		if ((r = vv_store_open(store, VV_STORE_NOLOCK, &s)) < 0) {
			tool_open_error(store, r, msg, sizeof(msg));
			say("%s", msg);
			return ADMIN_EXIT_NODAEMON;
		}
		r = vv_store_info(s, &in);
		vv_store_close(s);
		if (r < 0 || !is_id(in.store_id) || !realpath(store, t->store)) {
			say("%s: cannot read its store id (%s)", store, vv_strerror(r < 0 ? r : VV_EFORMAT));
			return ADMIN_EXIT_NODAEMON;
		}
		memcpy(t->id, in.store_id, ID_LEN + 1);
		return 0;
	} else {
		char mnt[PATH_MAX], vpath[PATH_MAX];
		int r;

		if ((r = split(where, mnt, sizeof(mnt), vpath, sizeof(vpath))) != 0)
			return r;
		snprintf(t->name, sizeof(t->name), "the vault at %s", mnt);
		if (root_attr(mnt, VAULT_ID_XATTR, t->id) < 0 ||
		    root_attr(mnt, INSTANCE_XATTR, t->instance) < 0) {
			say("cannot ask the mount %s which vault it is (%s)%s", mnt, strerror(errno),
			    errno == EACCES ? ": the mount is private to the user who mounted it" : "");
			return ADMIN_EXIT_NODAEMON;
		}
		if (!is_id(t->id) || !is_id(t->instance)) {
			say("the mount %s does not name its vault (an older vecvault daemon?)", mnt);
			return ADMIN_EXIT_NODAEMON;
		}
		return 0;
	}
}

/* Send (out) or receive all n bytes; -1 on an error or an early end. */
static int io_all(int fd, uint8_t *p, size_t n, bool out)
{
	while (n) {
		ssize_t k = out ? send(fd, p, n, MSG_NOSIGNAL) : recv(fd, p, n, 0);

		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			return -1;
		p += k;
		n -= (size_t)k;
	}
	return 0;
}

/* One request on fd, its reply into rep.  0, or 2 with the reason printed. */
static int exchange(int fd, const char *sock, const char *verb, const struct vv_admin_arg *args,
		    size_t nargs, struct vv_admin_reply *rep, admin_progress_fn fn, void *ctx)
{
	uint8_t hdr[VV_ADMIN_WIRE_HDR], *f = NULL, *body = NULL;
	size_t flen = 0;
	uint32_t blen = 0;
	int r, type, ver = 0, ret = ADMIN_EXIT_NODAEMON;

	if ((r = vv_admin_wire_req_encode(verb, args, nargs, &f, &flen)) < 0) {
		say("%s: cannot send this request (%s)", verb,
		    r == VV_E2BIG ? "more than 1 MiB of arguments" : vv_strerror(r));
		return ADMIN_EXIT_FAILED;
	}
	errno = 0;
	if (io_all(fd, f, flen, true) < 0) {
		say("the daemon at %s closed the connection (%s)", sock,
		    errno ? strerror(errno) : "no reply");
		goto out;
	}
next:
	errno = 0;
	if (io_all(fd, hdr, sizeof(hdr), false) < 0) {
		say("the daemon at %s closed the connection (%s)", sock,
		    errno ? strerror(errno) : "no reply");
		goto out;
	}
	r = vv_admin_wire_header(hdr, &type, &blen, &ver);
	if (r == 0 && type == VV_ADMIN_WIRE_PROGRESS) {
		/* How far the verb has come: any number before the reply. */
		uint8_t pb[VV_ADMIN_WIRE_PROGRESS_BODY];
		struct vv_admin_progress p;

		if (blen != sizeof(pb) || io_all(fd, pb, sizeof(pb), false) < 0 ||
		    vv_admin_wire_progress_decode(pb, sizeof(pb), &p) < 0) {
			say("the daemon at %s sent a broken progress frame", sock);
			goto out;
		}
		if (fn)
			fn(ctx, &p);
		goto next;
	}
	if (r == VV_ENOTSUP) {
		say("the daemon at %s speaks control protocol version %d, this vecvault %d: "
		    "use the vecvault that runs the daemon", sock, ver, VV_ADMIN_WIRE_VERSION);
		goto out;
	}
	if (r < 0 || type != VV_ADMIN_WIRE_REPLY) {
		say("%s did not answer as a vecvault daemon", sock);
		goto out;
	}
	if (blen && !(body = malloc(blen))) {
		say("out of memory");
		goto out;
	}
	if (io_all(fd, body, blen, false) < 0 || vv_admin_wire_reply_decode(body, blen, rep) < 0) {
		say("the daemon at %s sent a broken reply", sock);
		goto out;
	}
	ret = 0;
out:
	free(body);
	if (f)
		explicit_bzero(f, flen);         /* the request may carry a password */
	free(f);
	return ret;
}

/* Connect to dir/ID.sock if it is trustworthy.  fd, or -1 when there is
 * nothing there (ENOENT, stale), or -2 after printing why it was refused. */
static int connect_sock(const char *path)
{
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	struct stat st;
	int fd;

	if (strlen(path) >= sizeof(a.sun_path) || lstat(path, &st) < 0)
		return -1;
	if (!S_ISSOCK(st.st_mode)) {
		say("refusing %s: not a socket", path);
		return -2;
	}
	/* Only root's daemons and our own hold a vault's keys for us: a
	 * socket made by anyone else could be a trap that collects requests. */
	if (st.st_uid != 0 && st.st_uid != geteuid()) {
		say("refusing %s: owned by uid %u, neither root nor you (planted?)", path,
		    (unsigned)st.st_uid);
		return -2;
	}
	snprintf(a.sun_path, sizeof(a.sun_path), "%s", path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	if (connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0) {
		close(fd);
		return -1;
	}
	/* The peer must run as the socket's owner, too. */
	{
		struct ucred cr;
		socklen_t l = sizeof(cr);

		if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &l) < 0 ||
		    (cr.uid != 0 && cr.uid != geteuid())) {
			say("refusing %s: served by uid %u, neither root nor you", path, (unsigned)cr.uid);
			close(fd);
			return -2;
		}
	}
	return fd;
}

/* Append s as a JSON string literal, as vault_admin_json_str writes it. */
static void json_str(char *out, size_t cap, const char *s)
{
	size_t n = strlen(out);

	for (n += (size_t)snprintf(out + n, cap - n, "\""); *s && n < cap; s++) {
		unsigned char c = (unsigned char)*s;

		if (c == '"' || c == '\\')
			n += (size_t)snprintf(out + n, cap - n, "\\%c", c);
		else if (c < 0x20 || c == 0x7f)
			n += (size_t)snprintf(out + n, cap - n, "\\u%04x", c);
		else
			n += (size_t)snprintf(out + n, cap - n, "%c", c);
	}
	if (n < cap)
		snprintf(out + n, cap - n, "\"");
}

/* Does the ping reply name t's vault, and the same instance or store
 * directory?  A copy of one store mounted twice has the same id. */
static bool ping_ok(const struct vv_admin_reply *rep, const struct target *t)
{
	char want[2 * PATH_MAX + 64];

	if (rep->status != 0 || !rep->body)
		return false;
	if (!t->store[0] && !t->instance[0]) {
		snprintf(want, sizeof(want), "\"vault\":\"%s\",\"instance\":\"", t->id);
		return strstr(rep->body, want) != NULL;
	}
	if (t->store[0]) {
		snprintf(want, sizeof(want), "\"vault\":\"%s\",\"instance\":\"", t->id);
		if (!strstr(rep->body, want))
			return false;
		snprintf(want, sizeof(want), "\"store\":");
		json_str(want, sizeof(want), t->store);
		return strstr(rep->body, want) != NULL;
	}
	snprintf(want, sizeof(want), "\"vault\":\"%s\",\"instance\":\"%s\"", t->id, t->instance);
	return strstr(rep->body, want) != NULL;
}

int admin_call(const char *where, const char *verb, const struct vv_admin_arg *args,
	       size_t nargs, struct vv_admin_reply *rep)
{
	return admin_call_progress(where, verb, args, nargs, rep, NULL, NULL);
}

int admin_call_progress(const char *where, const char *verb, const struct vv_admin_arg *args,
			size_t nargs, struct vv_admin_reply *rep, admin_progress_fn fn, void *ctx)
{
	static const struct vv_admin_arg ping_args[] = { { "json", "1" } };
	char dirs[2][PATH_MAX], path[PATH_MAX + 64];
	int nd = tool_ctl_dirs(dirs, 2), fd = -1, r;
	bool refused = false;
	struct target t;
	const char *id = t.id, *name = t.name;

	if ((r = find_target(where, &t)) != 0)
		return r;
	for (int i = 0; i < nd && fd < 0; i++) {
		if ((size_t)snprintf(path, sizeof(path), "%.*s/%s.sock", PATH_MAX - 1, dirs[i], id) >=
		    sizeof(path))
			continue;
		fd = connect_sock(path);
		if (fd == -2)
			refused = true;
		if (fd < 0)
			continue;
		vv_admin_reply_init(rep);
		r = exchange(fd, path, "vault.ping", ping_args, 1, rep, NULL, NULL);
		if (r == 0 && !ping_ok(rep, &t)) {
			say("refusing %s: its daemon does not serve %s (another copy of "
			    "vault %s, or not a vecvault daemon)", path, name, id);
			refused = true;
			r = ADMIN_EXIT_NODAEMON;
		}
		vv_admin_reply_release(rep);
		if (r != 0) {
			close(fd);
			fd = -1;
		}
	}
	if (fd < 0) {
		if (refused)
			say("no trustworthy daemon serves %s", name);
		else
			say("no daemon serves %s (is it mounted? no control socket %s.sock "
			    "in /run/vecvault or $XDG_RUNTIME_DIR/vecvault)", name, id);
		return ADMIN_EXIT_NODAEMON;
	}
	vv_admin_reply_init(rep);
	r = exchange(fd, path, verb, args, nargs, rep, fn, ctx);
	close(fd);
	return r;
}

/* Write s[0..n) to f; on a terminal, control bytes other than newline and
 * tab as \xHH: replies carry names other users chose (paths, roles), which
 * must not drive the admin's terminal. */
static void put_text(FILE *f, const char *s, size_t n, bool tty)
{
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];

		if (tty && ((c < 0x20 && c != '\n' && c != '\t') || c == 0x7f))
			fprintf(f, "\\x%02x", c);
		else
			fputc(c, f);
	}
}

int admin_run(const char *where, const char *verb, const struct vv_admin_arg *args, size_t nargs)
{
	return admin_run_progress(where, verb, args, nargs, NULL, NULL, NULL);
}

int admin_run_progress(const char *where, const char *verb, const struct vv_admin_arg *args,
		       size_t nargs, admin_progress_fn fn, void (*before)(void *ctx), void *ctx)
{
	struct vv_admin_reply rep;
	int r;

	vv_admin_reply_init(&rep);
	r = admin_call_progress(where, verb, args, nargs, &rep, fn, ctx);
	if (before)
		before(ctx);
	if (r != 0)
		goto out;
	if (rep.body && rep.len)
		put_text(stdout, rep.body, rep.len, isatty(STDOUT_FILENO));
	fflush(stdout);
	if (rep.status < 0 || rep.msg[0]) {
		const char *m = rep.msg[0] ? rep.msg : vv_strerror(rep.status);

		fputs("vecvault: ", stderr);
		put_text(stderr, m, strlen(m), true);
		fputc('\n', stderr);
	}
	r = rep.status < 0 ? ADMIN_EXIT_FAILED : ADMIN_EXIT_OK;
out:
	vv_admin_reply_release(&rep);
	return r;
}

bool admin_id_served(const char *id)
{
	char dirs[2][PATH_MAX], path[PATH_MAX + 64];
	int nd = tool_ctl_dirs(dirs, 2);
	struct stat st;

	if (!is_id(id))
		return false;
	for (int i = 0; i < nd; i++)
		if ((size_t)snprintf(path, sizeof(path), "%.*s/%s.sock", PATH_MAX - 1, dirs[i], id) <
		    sizeof(path) && lstat(path, &st) == 0 && S_ISSOCK(st.st_mode))
			return true;
	return false;
}
