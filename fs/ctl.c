/*
 * ctl.c - the daemon's control socket: a UNIX stream socket on which the
 * CLI sends admin requests (engine/include/vecvault/admin_wire.h) that
 * vv_admin_call() authorizes, runs and audits.
 *
 * The socket is open to every local user (mode 0666): who may do what is
 * decided per request from the peer's credentials, which the kernel took
 * at connect time (SO_PEERCRED: uid, gid, pid; SO_PEERGROUPS: the
 * supplementary groups), never from /proc, which races with pid reuse.
 *
 * Every peer is untrusted, so each connection is bounded:
 *   - at most CTL_MAX_CONN at once (a peer beyond is closed at once); peers
 *     other than root and the daemon's own uid hold at most CTL_MAX_PER_UID
 *     each and never the last CTL_RESERVED slots, so one local user cannot
 *     lock the vault's administrators out;
 *   - a frame body of at most VV_ADMIN_WIRE_MAX bytes (checked from the
 *     header before anything is allocated);
 *   - CTL_IDLE_MS without a new request closes the connection; once a frame
 *     has started it must be complete within CTL_FRAME_MS, and a reply must
 *     be taken within CTL_FRAME_MS (a peer that stops reading loses its
 *     connection, not a thread);
 *   - garbage, a frame of another version or a malformed request gets an
 *     error reply where one can be framed, then the connection is closed.
 * One thread accepts; each connection has its own thread, which runs its
 * requests one after the other, so a verb that takes long delays only its
 * own connection.  fs_ctl_stop() wakes every thread, waits for the requests
 * in flight, and removes the socket (only if it is still the one we made).
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>
#include <linux/sockios.h>

#include "fs_int.h"
#include "vecvault/admin_wire.h"
#include "vecvault/error.h"
#include "vecvault/log.h"

#define CTL_MAX_PER_UID 8
#define CTL_RESERVED 4
#define CTL_IDLE_MS 60000
#define CTL_FRAME_MS 10000
#define CTL_MAX_GROUPS 65536

struct conn {
	struct ctl *ctl;
	int fd;
	int slot;
	uint32_t uid, gid, pid;
	uint32_t ngroups;
	uint32_t *groups;
};

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Wait until fd is ready for ev, or the stop pipe fires, or deadline (ms,
 * CLOCK_MONOTONIC).  0 ready, VV_EAGAIN timed out, VV_ECANCELED stopping,
 * VV_EIO the peer hung up or failed. */
static int wait_fd(struct ctl *c, int fd, short ev, int64_t deadline)
{
	for (;;) {
		struct pollfd p[2] = { { .fd = fd, .events = ev }, { .fd = c->stop_pipe[0], .events = POLLIN } };
		int64_t left = deadline - now_ms();
		int n;

		if (left <= 0)
			return VV_EAGAIN;
		n = poll(p, 2, left > 1000 ? 1000 : (int)left);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return VV_EIO;
		if (p[1].revents || atomic_load(&c->stopping))
			return VV_ECANCELED;
		if (p[0].revents & ev)
			return 0;
		if (p[0].revents & (POLLERR | POLLHUP | POLLNVAL))
			return VV_EIO;
	}
}

/* Read exactly n bytes before deadline.  VV_ENODATA if the peer closed
 * before the first byte (a clean end), VV_EIO if it closed mid-way. */
static int read_full(struct ctl *c, int fd, void *buf, size_t n, int64_t deadline)
{
	size_t got = 0;

	while (got < n) {
		ssize_t k = recv(fd, (char *)buf + got, n - got, 0);
		int r;

		if (k > 0) {
			got += (size_t)k;
			continue;
		}
		if (k == 0)
			return got ? VV_EIO : VV_ENODATA;
		if (errno == EINTR)
			continue;
		if (errno != EAGAIN && errno != EWOULDBLOCK)
			return VV_EIO;
		if ((r = wait_fd(c, fd, POLLIN, deadline)) < 0)
			return r;
	}
	return 0;
}

static int write_full(struct ctl *c, int fd, const void *buf, size_t n, int64_t deadline)
{
	size_t put = 0;

	while (put < n) {
		ssize_t k = send(fd, (const char *)buf + put, n - put, MSG_NOSIGNAL);
		int r;

		if (k > 0) {
			put += (size_t)k;
			continue;
		}
		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0 && errno != EAGAIN && errno != EWOULDBLOCK)
			return VV_EIO;
		if ((r = wait_fd(c, fd, POLLOUT, deadline)) < 0)
			return r;
	}
	return 0;
}

/* Send a reply frame; a reply too large for a frame becomes an error. */
static int send_reply(struct ctl *c, int fd, int status, const char *msg,
		      const char *body, size_t bodylen)
{
	uint8_t *f = NULL;
	size_t len = 0;
	char why[VV_ADMIN_MSG_MAX];
	int r;

	r = vv_admin_wire_reply_encode(status, msg, body, bodylen, &f, &len);
	if (r == VV_E2BIG || r == VV_EINVAL) {
		snprintf(why, sizeof(why), "%s", r == VV_E2BIG
			 ? "the reply exceeds the 1 MiB frame limit: narrow the request"
			 : "the reply holds a NUL byte and cannot be sent");
		status = status < 0 ? status : VV_E2BIG;
		r = vv_admin_wire_reply_encode(status, why, NULL, 0, &f, &len);
	}
	if (r < 0)
		return r;
	r = write_full(c, fd, f, len, now_ms() + CTL_FRAME_MS);
	free(f);
	return r;
}

/* Progress frames of one request (vv_admin_req.progress).  The verb
 * must not wait on a peer that does not read: a frame is sent only when
 * the socket has room for it (SIOCOUTQ: what the peer has not taken is
 * under CTL_PROGRESS_QUEUE), at most every CTL_PROGRESS_MS but always for
 * the last step; one the socket cannot take whole is finished within the
 * frame deadline, and if even that fails no more are tried (the reply
 * will fail the same way and close the connection). */
#define CTL_PROGRESS_MS 200
#define CTL_PROGRESS_QUEUE 4096

struct prog {
	struct conn *k;
	int64_t last;                    /* ms of the last frame sent */
	bool dead;
};

static void send_progress(void *pctx, const struct vv_admin_progress *p)
{
	struct prog *g = pctx;
	uint8_t f[VV_ADMIN_WIRE_PROGRESS_FRAME];
	bool last = p->objects_done >= p->objects_total && p->bytes_done >= p->bytes_total;
	int64_t t = now_ms();
	int queued = 0;
	ssize_t k;

	if (g->dead || (!last && t - g->last < CTL_PROGRESS_MS))
		return;
	if (ioctl(g->k->fd, SIOCOUTQ, &queued) < 0 || queued > CTL_PROGRESS_QUEUE)
		return;
	vv_admin_wire_progress_encode(p, f);
	k = send(g->k->fd, f, sizeof(f), MSG_NOSIGNAL | MSG_DONTWAIT);
	if (k < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
		return;                  /* nothing went: skip this one */
	if (k < 0 || ((size_t)k < sizeof(f) &&
		      write_full(g->k->ctl, g->k->fd, f + k, sizeof(f) - (size_t)k,
				 now_ms() + CTL_FRAME_MS) < 0)) {
		g->dead = true;
		return;
	}
	g->last = t;
}

/* Run one decoded request as the connection's peer and answer it. */
static int serve_one(struct conn *k, const struct vv_admin_wire_req *wr)
{
	struct prog g = { .k = k };
	struct vv_admin_reply rep;
	struct vv_admin_req rq;
	int r;

	memset(&rq, 0, sizeof(rq));
	rq.peer.uid = k->uid;
	rq.peer.gid = k->gid;
	rq.peer.pid = k->pid;
	rq.peer.ngroups = k->ngroups;
	rq.peer.groups = k->groups;
	rq.client = "local";
	rq.verb = wr->verb;
	rq.nargs = wr->nargs;
	rq.args = wr->args;
	for (size_t i = 0; i < wr->nargs; i++)
		if (!strcmp(wr->args[i].key, "progress") && !strcmp(wr->args[i].val, "1")) {
			rq.progress = send_progress;
			rq.pctx = &g;
		}
	vv_admin_reply_init(&rep);
	vv_admin_call(k->ctl->v, &rq, &rep);
	r = send_reply(k->ctl, k->fd, rep.status, rep.msg, rep.body, rep.len);
	vv_admin_reply_release(&rep);
	return r;
}

/* One connection's life: frames until the peer leaves, errs or stalls. */
static void conn_loop(struct conn *k)
{
	struct ctl *c = k->ctl;
	uint8_t hdr[VV_ADMIN_WIRE_HDR];
	char msg[VV_ADMIN_MSG_MAX];

	for (;;) {
		struct vv_admin_wire_req *wr = NULL;
		uint8_t *body = NULL;
		uint32_t blen;
		int64_t deadline;
		int type, ver = 0, r;

		/* The first byte may take up to the idle time; the rest of the
		 * frame must follow within the frame deadline. */
		if ((r = wait_fd(c, k->fd, POLLIN, now_ms() + CTL_IDLE_MS)) < 0)
			break;
		deadline = now_ms() + CTL_FRAME_MS;
		if ((r = read_full(c, k->fd, hdr, sizeof(hdr), deadline)) < 0)
			break;
		r = vv_admin_wire_header(hdr, &type, &blen, &ver);
		if (r == 0 && type != VV_ADMIN_WIRE_REQ)
			r = VV_EFORMAT;
		if (r < 0) {
			if (r == VV_ENOTSUP)
				snprintf(msg, sizeof(msg), "control protocol version %d is not supported "
					 "(this daemon speaks %d): use a vecvault of the same version",
					 ver, VV_ADMIN_WIRE_VERSION);
			else if (r == VV_E2BIG)
				snprintf(msg, sizeof(msg), "frame of %u bytes exceeds the limit of %u",
					 (unsigned)hdr[8] | (unsigned)hdr[9] << 8 |
					 (unsigned)hdr[10] << 16 | (unsigned)hdr[11] << 24, VV_ADMIN_WIRE_MAX);
			else
				snprintf(msg, sizeof(msg), "not a vecvault control request");
			send_reply(c, k->fd, r, msg, NULL, 0);
			break;
		}
		if (blen && !(body = malloc(blen))) {
			send_reply(c, k->fd, VV_ENOMEM, "out of memory", NULL, 0);
			break;
		}
		r = read_full(c, k->fd, body, blen, deadline);
		if (r == 0 && (r = vv_admin_wire_req_decode(body, blen, &wr)) < 0) {
			snprintf(msg, sizeof(msg), "malformed request: %s", vv_strerror(r));
			send_reply(c, k->fd, r, msg, NULL, 0);
		}
		if (body)
			explicit_bzero(body, blen);      /* may hold a password */
		free(body);
		if (r < 0)
			break;
		r = serve_one(k, wr);
		vv_admin_wire_req_free(wr);
		if (r < 0)
			break;
	}
}

static void release_slot(struct ctl *c, int slot)
{
	pthread_mutex_lock(&c->mu);
	c->slots[slot].used = false;
	c->nconn--;
	pthread_cond_broadcast(&c->cond);
	pthread_mutex_unlock(&c->mu);
}

static void conn_free(struct conn *k)
{
	close(k->fd);
	free(k->groups);
	release_slot(k->ctl, k->slot);
	free(k);
}

static void *conn_thread(void *arg)
{
	struct conn *k = arg;

	conn_loop(k);
	conn_free(k);
	return NULL;
}

/* The peer's supplementary groups as the kernel recorded them at connect. */
static int peer_groups(int fd, uint32_t **out, uint32_t *n)
{
	socklen_t len = 64 * sizeof(gid_t);
	gid_t *g = NULL;

	*out = NULL;
	*n = 0;
	for (int tries = 0; tries < 3; tries++) {
		gid_t *ng = realloc(g, len ? len : sizeof(gid_t));

		if (!ng)
			break;
		g = ng;
		if (getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, g, &len) == 0) {
			*n = (uint32_t)(len / sizeof(gid_t));
			*out = (uint32_t *)g;       /* gid_t is uint32_t on Linux */
			return 0;
		}
		if (errno != ERANGE || len > CTL_MAX_GROUPS * sizeof(gid_t))
			break;
	}
	free(g);
	return VV_ESYS;
}

_Static_assert(sizeof(gid_t) == sizeof(uint32_t), "gid_t is 32 bits");

/* Take a slot for uid, or -1 when it must be refused. */
static int take_slot(struct ctl *c, uint32_t uid)
{
	bool privileged = uid == 0 || uid == c->euid;
	unsigned mine = 0;
	int slot = -1;

	pthread_mutex_lock(&c->mu);
	for (int i = 0; i < CTL_MAX_CONN; i++) {
		if (c->slots[i].used && c->slots[i].uid == uid)
			mine++;
		else if (!c->slots[i].used && slot < 0)
			slot = i;
	}
	if (!privileged && (c->nconn >= CTL_MAX_CONN - CTL_RESERVED || mine >= CTL_MAX_PER_UID))
		slot = -1;
	if (slot >= 0) {
		c->slots[slot].used = true;
		c->slots[slot].uid = uid;
		c->nconn++;
	}
	pthread_mutex_unlock(&c->mu);
	return slot;
}

static void accept_one(struct ctl *c)
{
	struct ucred cr;
	socklen_t crl = sizeof(cr);
	struct conn *k = NULL;
	pthread_attr_t at;
	pthread_t t;
	int fd, slot = -1;

	fd = accept4(c->lfd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
	if (fd < 0) {
		/* Out of descriptors or memory: the pending connection stays
		 * queued and poll() would report it again at once; wait a
		 * little instead of spinning. */
		if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
			struct timespec ts = { 0, 100 * 1000 * 1000 };

			nanosleep(&ts, NULL);
		}
		return;
	}
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &crl) < 0 || crl != sizeof(cr))
		goto refuse;
	if ((slot = take_slot(c, (uint32_t)cr.uid)) < 0) {
		/* At most one line a second: refusals must not flood the log. */
		int64_t now = now_ms();

		c->refused++;
		if (now - c->refused_logged >= 1000) {
			vv_log(VV_LOG_WARN, "ctl: too many control connections; refused uid %u pid %d "
			       "(%u refused since the last such message)",
			       (unsigned)cr.uid, (int)cr.pid, c->refused);
			c->refused_logged = now;
			c->refused = 0;
		}
		goto refuse;
	}
	if (!(k = calloc(1, sizeof(*k))))
		goto refuse;
	k->ctl = c;
	k->fd = fd;
	k->slot = slot;
	k->uid = (uint32_t)cr.uid;
	k->gid = (uint32_t)cr.gid;
	k->pid = (uint32_t)cr.pid;
	/* Without the groups the peer would be judged on fewer rights than
	 * it has: refuse rather than guess. */
	if (peer_groups(fd, &k->groups, &k->ngroups) < 0)
		goto refuse;
	pthread_attr_init(&at);
	pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
	if (pthread_create(&t, &at, conn_thread, k) != 0) {
		pthread_attr_destroy(&at);
		goto refuse;
	}
	pthread_attr_destroy(&at);
	return;
refuse:
	if (k) {
		free(k->groups);
		free(k);
	}
	if (slot >= 0)
		release_slot(c, slot);
	close(fd);
}

static void *accept_thread(void *arg)
{
	struct ctl *c = arg;

	while (!atomic_load(&c->stopping)) {
		struct pollfd p[2] = { { .fd = c->lfd, .events = POLLIN },
				       { .fd = c->stop_pipe[0], .events = POLLIN } };
		int n = poll(p, 2, -1);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 || p[1].revents)
			break;
		if (p[0].revents & POLLIN)
			accept_one(c);
	}
	return NULL;
}

/* Is path a socket somebody still listens on? */
static bool live_socket(const char *path)
{
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	bool live;

	if (fd < 0)
		return true;            /* cannot tell: do not remove it */
	snprintf(a.sun_path, sizeof(a.sun_path), "%s", path);
	live = connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0 || errno != ECONNREFUSED;
	close(fd);
	return live;
}

/* The socket's directory: made if missing (0755), and only ever used when
 * it is a real directory of ours that nobody else can write, so nobody can
 * swap or plant names in it. */
static int check_dir(struct ctl *c, const char *path, char *why, size_t whylen)
{
	char dir[sizeof(c->path)];
	char *slash;
	struct stat st;

	snprintf(dir, sizeof(dir), "%s", path);
	slash = strrchr(dir, '/');
	if (!slash || slash == dir) {
		snprintf(why, whylen, "control socket %s: not an absolute path in a directory", path);
		return VV_EINVAL;
	}
	*slash = '\0';
	if (mkdir(dir, 0755) < 0 && errno != EEXIST) {
		snprintf(why, whylen, "cannot create %s: %s", dir, strerror(errno));
		return VV_ESYS;
	}
	if (lstat(dir, &st) < 0) {
		snprintf(why, whylen, "%s: %s", dir, strerror(errno));
		return VV_ESYS;
	}
	if (!S_ISDIR(st.st_mode) || st.st_uid != c->euid || (st.st_mode & 022)) {
		snprintf(why, whylen, "%s is not a directory of uid %u closed to others "
			 "(a link, another owner, or writable by group/others): "
			 "no control socket there", dir, (unsigned)c->euid);
		return VV_EUNSAFE;
	}
	return 0;
}

/* Prepare path for bind: nothing there, or our own stale socket (removed).
 * A live socket, a link, or anything not ours is refused. */
static int clear_path(struct ctl *c, const char *path, char *why, size_t whylen)
{
	struct stat st;

	if (lstat(path, &st) < 0) {
		if (errno == ENOENT)
			return 0;
		snprintf(why, whylen, "%s: %s", path, strerror(errno));
		return VV_ESYS;
	}
	if (S_ISLNK(st.st_mode)) {
		snprintf(why, whylen, "%s is a symbolic link: refused as control socket", path);
		return VV_EUNSAFE;
	}
	if (!S_ISSOCK(st.st_mode) || st.st_uid != c->euid) {
		snprintf(why, whylen, "%s exists and is not a socket of uid %u: left alone",
			 path, (unsigned)c->euid);
		return VV_EUNSAFE;
	}
	if (live_socket(path)) {
		snprintf(why, whylen, "%s: another daemon already serves this vault id "
			 "(a copy of the same store mounted twice?)", path);
		return VV_EBUSY;
	}
	if (unlink(path) < 0 && errno != ENOENT) {
		snprintf(why, whylen, "cannot remove the stale socket %s: %s", path, strerror(errno));
		return VV_ESYS;
	}
	return 0;
}

void fs_ctl_init(struct ctl *c)
{
	memset(c, 0, sizeof(*c));
	c->lfd = c->stop_pipe[0] = c->stop_pipe[1] = -1;
	pthread_mutex_init(&c->mu, NULL);
	pthread_cond_init(&c->cond, NULL);
	atomic_init(&c->stopping, false);
}

int fs_ctl_start(struct ctl *c, struct vv_vault *v, const char *path, char *why, size_t whylen)
{
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	struct stat st;
	int r;

	c->v = v;
	c->euid = (uint32_t)geteuid();
	why[0] = '\0';
	if (!path || path[0] != '/' || strlen(path) >= sizeof(a.sun_path)) {
		snprintf(why, whylen, "control socket path %s is not absolute or longer than %zu bytes",
			 path ? path : "(none)", sizeof(a.sun_path) - 1);
		return VV_ENAMETOOLONG;
	}
	snprintf(c->path, sizeof(c->path), "%s", path);
	if ((r = check_dir(c, path, why, whylen)) < 0 || (r = clear_path(c, path, why, whylen)) < 0)
		return r;
	r = VV_ESYS;
	if (pipe2(c->stop_pipe, O_CLOEXEC) < 0) {
		snprintf(why, whylen, "pipe: %s", strerror(errno));
		goto fail;
	}
	c->lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	snprintf(a.sun_path, sizeof(a.sun_path), "%s", path);
	if (c->lfd < 0 || bind(c->lfd, (struct sockaddr *)&a, sizeof(a)) < 0) {
		snprintf(why, whylen, "cannot bind %s: %s", path, strerror(errno));
		goto fail;
	}
	/* The directory is ours and closed to others, so this chmod and
	 * lstat name the socket just bound. */
	if (chmod(path, 0666) < 0 || lstat(path, &st) < 0 || listen(c->lfd, 64) < 0) {
		snprintf(why, whylen, "control socket %s: %s", path, strerror(errno));
		unlink(path);
		goto fail;
	}
	c->dev = st.st_dev;
	c->ino = st.st_ino;
	if (pthread_create(&c->acceptor, NULL, accept_thread, c) != 0) {
		snprintf(why, whylen, "cannot start the control thread");
		unlink(path);
		goto fail;
	}
	c->started = true;
	vv_log(VV_LOG_INFO, "ctl: control socket %s", path);
	return 0;
fail:
	if (c->lfd >= 0)
		close(c->lfd);
	c->lfd = -1;
	return r;
}

void fs_ctl_stop(struct ctl *c)
{
	struct stat st;

	if (c->started) {
		atomic_store(&c->stopping, true);
		if (write(c->stop_pipe[1], "x", 1) < 0) {
			/* the pipe is ours and empty: cannot fail */
		}
		pthread_join(c->acceptor, NULL);
		/* Connection threads see the pipe within a poll; requests in
		 * flight finish first (they hold the vault). */
		pthread_mutex_lock(&c->mu);
		while (c->nconn > 0)
			pthread_cond_wait(&c->cond, &c->mu);
		pthread_mutex_unlock(&c->mu);
		if (lstat(c->path, &st) == 0 && st.st_dev == c->dev && st.st_ino == c->ino)
			unlink(c->path);
		close(c->lfd);
		c->started = false;
	}
	if (c->stop_pipe[0] >= 0) {
		close(c->stop_pipe[0]);
		close(c->stop_pipe[1]);
	}
	c->stop_pipe[0] = c->stop_pipe[1] = c->lfd = -1;
	pthread_mutex_destroy(&c->mu);
	pthread_cond_destroy(&c->cond);
}
