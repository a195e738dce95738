/*
 * client.c - the client side of a vv:// connection: connect, verify the
 * server, authenticate, then many requests in flight on one TLS
 * connection, matched to their replies by request id (net.h).
 *
 * A reply that does not arrive within the timeout fails its call with
 * VV_ENOTCONN; a server that then answers nothing, not even a ping, for
 * another timeout (pinger), a frame that does not parse or a reply to no
 * request declares the connection dead: every waiting and later call
 * fails with VV_ENOTCONN, never hangs, and the caller reconnects.  The server
 * is untrusted too: its frames go through the same decoder as requests do
 * on the server.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "net_int.h"
#include "vecvault/error.h"
#include "vecvault/harden.h"
#include "vecvault/log.h"
#include "vecvault/net.h"
#include "vecvault/privfile.h"
#include "vecvault/remote_wire.h"
#include "vecvault/vault.h"

/* A slot whose caller gave up (its timeout passed) stays busy, abandoned,
 * until its late reply arrives: a stalled server (SIGSTOP, a congested
 * link) costs the requests that waited too long, not the connection. */
struct slot {
	bool busy, done, abandoned;
	uint32_t id;
	int64_t sent_ms;             /* when its request was sent */
	uint8_t hdr[VV_RW_HDR];
	uint8_t *body;
};

struct vv_net_client {
	struct tls_conn *t;
	unsigned timeout_ms;
	pthread_t reader;
	bool started;
	pthread_mutex_t mu;
	pthread_cond_t cond;         /* a slot finished or freed, or dead */
	bool dead;
	uint32_t next_id;
	struct slot slots[VV_RW_MAX_INFLIGHT];
	uint8_t *out;                /* one encoded request at a time (wmu) */
	pthread_mutex_t wmu;
	char user[VV_RW_TEXT_MAX + 1];   /* the vault user the server logged us in as */
	pthread_t pinger;
	bool pinging, stop;
	bool inited;                 /* the locks are initialised */
	struct vv_net_client_opts o; /* owned copies, for reconnecting (o.secret
	                                in secret_cap bytes of its own mapping) */
	size_t secret_cap;
	unsigned uid;
	pthread_mutex_t rmu;         /* one reconnect at a time */
	unsigned epoch;              /* bumped by each reconnect (mu) */
	int64_t next_try_ms;         /* backoff: no reconnect before (rmu) */
	bool refused;                /* the last attempt's login was refused (rmu) */
	unsigned backoff_ms;
	int64_t last_ms;             /* the last request sent (mu) */
	int64_t rx_ms;               /* the last frame received, or the login (mu) */
};

static int dial(const struct vv_net_client_opts *o, char *why, size_t whylen)
{
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM }, *res = NULL, *ai;
	char port[8];
	int fd = -1, e, one = 1;

	snprintf(port, sizeof(port), "%u", o->port);
	if ((e = getaddrinfo(o->host, port, &hints, &res)) != 0) {
		snprintf(why, whylen, "cannot resolve %s: %s", o->host, gai_strerror(e));
		return -1;
	}
	for (ai = res; ai; ai = ai->ai_next) {
		if ((fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0)
			continue;
		if (o->bind) {
			struct addrinfo bh = { .ai_family = ai->ai_family, .ai_flags = AI_NUMERICHOST },
					*br = NULL;
			if (getaddrinfo(o->bind, NULL, &bh, &br) != 0 ||
			    bind(fd, br->ai_addr, br->ai_addrlen) < 0) {
				snprintf(why, whylen, "cannot bind the source address %s: %s", o->bind,
					 br ? strerror(errno) : "not an address of this family");
				if (br)
					freeaddrinfo(br);
				close(fd);
				fd = -1;
				continue;
			}
			freeaddrinfo(br);
		}
		if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0)
			break;
		snprintf(why, whylen, "cannot connect to %s:%u: %s", o->host, o->port, strerror(errno));
		close(fd);
		fd = -1;
	}
	freeaddrinfo(res);
	if (fd >= 0)
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	return fd;
}

/* known_hosts: "HOST:PORT sha256HEX" lines.  0 trusted (recorded now if
 * new), VV_EACCES changed or not ours.  The file decides whom we trust, so
 * it is read and written only under the privfile rules (privfile.h): ours,
 * not writable by others, in a directory only we (or root) may change;
 * else someone else's entry would be trusted, or our line written through
 * their link into a file of their choosing (t7054). */
static int known_host(const char *file, const char *host, unsigned port, const char *fp,
		      char *why, size_t whylen)
{
	char key[300], line[512], want[80], unsafe[400] = "";
	FILE *f = NULL;
	int fd, r;

	snprintf(key, sizeof(key), "%s:%u", host, port);
	r = vv_privfile_open(file, O_RDONLY, 0, VV_PRIVFILE_PUBLIC, &fd, unsafe, sizeof(unsafe));
	if (r == 0 && !(f = fdopen(fd, "r"))) {
		close(fd);
		r = VV_ENOMEM;           /* unread, its entry would go unchecked */
	}
	if (r < 0 && r != VV_ENOENT) {
		snprintf(why, whylen, "known_hosts %s cannot be trusted: %s; give --pin or --ca, "
			 "or --known-hosts FILE of your own", file, unsafe[0] ? unsafe : vv_strerror(r));
		return VV_EACCES;
	}
	if (f) {
		while (fgets(line, sizeof(line), f)) {
			char k[300];

			if (sscanf(line, "%299s %79s", k, want) != 2 || strcmp(k, key) != 0)
				continue;
			fclose(f);
			if (strcmp(want + (strncmp(want, "sha256:", 7) ? 0 : 7), fp) == 0)
				return 0;
			snprintf(why, whylen, "THE CERTIFICATE OF %s HAS CHANGED: known_hosts (%s) "
				 "has sha256:%.64s, the server shows sha256:%s.  Someone may be "
				 "intercepting the connection; refused.  If the server's certificate "
				 "was replaced on purpose, remove its line from %s.",
				 key, file, want + (strncmp(want, "sha256:", 7) ? 0 : 7), fp, file);
			return VV_EACCES;
		}
		fclose(f);
	}
	if ((r = vv_privfile_open(file, O_WRONLY | O_CREAT | O_APPEND, 0600, VV_PRIVFILE_PUBLIC, &fd,
				  unsafe, sizeof(unsafe))) < 0) {
		snprintf(why, whylen, "cannot record %s in %s: %s", key, file,
			 unsafe[0] ? unsafe : vv_strerror(r));
		return VV_EACCES;
	}
	snprintf(line, sizeof(line), "%s sha256:%s\n", key, fp);
	if (write(fd, line, strlen(line)) != (ssize_t)strlen(line)) {
		close(fd);
		snprintf(why, whylen, "cannot record %s in %s", key, file);
		return VV_EACCES;
	}
	close(fd);
	fprintf(stderr, "vecvault: trusting %s on first use: sha256:%s (recorded in %s)\n", key, fp,
		file);
	return 0;
}

static int write_frame(struct vv_net_client *c, const struct vv_rw_msg *m)
{
	long n;
	int r;

	pthread_mutex_lock(&c->wmu);
	n = vv_rw_encode(&m->h, m, c->out, VV_RW_HDR + VV_RW_BODY_MAX);
	r = n < 0 ? (int)n : net_tls_write(c->t, c->out, (size_t)n, net_now_ms() + c->timeout_ms);
	pthread_mutex_unlock(&c->wmu);
	return r;
}

/* Dial, verify the server, log in: c->t is the new connection.  0, or a
 * VV_E* code with why. */
static int session(struct vv_net_client *c, const struct vv_net_client_opts *o, unsigned *uid,
		   char *why, size_t whylen)
{
	struct vv_rw_msg *m = calloc(1, sizeof(*m));
	uint8_t hb[VV_RW_HDR], body[2 + VV_RW_TEXT_MAX + 8];
	struct vv_rw_hdr h;
	char fp[65];
	int fd = -1, r;

	if (!m)
		return VV_ENOMEM;
	r = VV_EIO;
	if ((fd = dial(o, why, whylen)) < 0)
		goto out;
	if ((r = net_tls_connect(fd, o->host, o->ca, o->cert, o->cert_key, net_now_ms() + c->timeout_ms, &c->t, fp, why,
			     whylen)) < 0) {
		close(fd);
		goto out;
	}
	if (o->pin) {
		const char *p = strncmp(o->pin, "sha256:", 7) ? o->pin : o->pin + 7;
		if (strcasecmp(p, fp) != 0) {
			snprintf(why, whylen, "the server's certificate is sha256:%s, not the pinned "
				 "sha256:%.64s: refused", fp, p);
			r = VV_EACCES;
			goto out;
		}
	} else if (!o->ca && o->known_hosts) {
		if ((r = known_host(o->known_hosts, o->host, o->port, fp, why, whylen)) < 0)
			goto out;
	} else if (!o->ca) {
		snprintf(why, whylen, "no way to verify the server (give --ca or --pin)");
		r = VV_EACCES;
		goto out;
	}
	/* AUTH */
	m->h = (struct vv_rw_hdr){ .id = 1, .op = VV_RW_AUTH };
	m->u[0] = VV_RW_VERSION;
	m->u[1] = !o->secret ? VV_RW_AUTH_CERT : o->user ? VV_RW_AUTH_PASSWORD : VV_RW_AUTH_KEY;
	m->nu = 2;
	m->s[0] = o->user && o->secret ? o->user : "";
	m->s[1] = o->secret ? o->secret : "";
	m->ns = 2;
	r = write_frame(c, m);
	explicit_bzero(c->out, VV_RW_HDR + VV_RW_TEXT_MAX * 2 + 64);
	if (r < 0 || (r = net_tls_read_full(c->t, hb, sizeof(hb), net_now_ms() + c->timeout_ms)) < 0) {
		snprintf(why, whylen, "the server closed the connection during authentication%s",
			 o->cert ? " (was the client certificate (--cert) refused: another CA, "
				   "expired, or its CN names no vault user? the server's audit log "
				   "says which)"
				 : " (does the server require a client certificate (--cert)?)");
		r = VV_EIO;
		goto out;
	}
	if ((r = vv_rw_header(hb, &h)) < 0 || h.op != VV_RW_AUTH || !(h.flags & VV_RW_F_REPLY) ||
	    h.len > sizeof(body) || (r = net_tls_read_full(c->t, body, h.len, net_now_ms() + c->timeout_ms)) < 0 ||
	    (r = vv_rw_decode(&h, body, h.len, m)) < 0) {
		snprintf(why, whylen, "not a vecvault server (a malformed reply to AUTH)");
		r = VV_EIO;
		goto out;
	}
	if (h.status < 0) {
		snprintf(why, whylen, "%s", h.status == VV_EACCES
			 ? (!o->secret ? "authentication refused (the client certificate's user)"
			    : o->cert ? "authentication refused (wrong, revoked or expired key or "
					"password, or it is not the client certificate's user)"
			    : "authentication refused (wrong, revoked or expired key or password, or "
			      "this address is not allowed for the key)")
			 : vv_strerror(h.status));
		r = h.status;
		goto out;
	}
	if (!vv_user_name_ok(m->s[0])) {
		/* the name goes to the mount's messages and log: a server
		 * must not put control characters or lines of its own there */
		snprintf(why, whylen, "not a vecvault server (its AUTH reply names no vault user: "
			 "%zu bytes that are not 1-32 of a-z 0-9 _ -)", m->slen[0]);
		r = VV_EIO;
		goto out;
	}
	*uid = (unsigned)m->u[0];
	snprintf(c->user, sizeof(c->user), "%s", m->s[0]);
	r = 0;
out:
	if (r < 0 && c->t) {
		net_tls_free(c->t);
		c->t = NULL;
	}
	free(m);
	return r;
}

static char *dup_or_null(const char *s, bool *fail)
{
	char *d;

	if (!s)
		return NULL;
	if (!(d = strdup(s)))
		*fail = true;
	return d;
}

/* A copy of the login secret (net_secret_keep: a fork does not inherit
 * the lock, vv_net_client_start locks it again).  NULL without memory;
 * *cap: the mapping's size. */
static char *secret_keep(const char *s, size_t *cap)
{
	bool locked;
	char *p = net_secret_keep(s, strlen(s), cap, &locked);

	if (p && !locked)
		vv_log(VV_LOG_WARN, "remote: cannot lock the login secret in memory (%s); "
		       "it may reach swap", strerror(errno));
	return p;
}

int vv_net_client_connect(const struct vv_net_client_opts *o, struct vv_net_client **out,
			  unsigned *uid, char *why, size_t whylen)
{
	struct vv_net_client *c = calloc(1, sizeof(*c));
	bool oom = false;
	int r = VV_ENOMEM;

	*out = NULL;
	if (!c || !(c->out = malloc(VV_RW_HDR + VV_RW_BODY_MAX)))
		goto fail;
	/* this process holds the login secret (or a client certificate's
	 * key) and the connection's keys from here on: nobody else reads
	 * them (the vault daemon does the same for the vault's keys) */
	if (vv_crypto_harden_process() < 0) {
		snprintf(why, whylen, "cannot keep the login secret private: the process "
			 "stays dumpable or may write a core file");
		r = VV_ESYS;
		goto fail;
	}
	c->timeout_ms = o->timeout_ms ? o->timeout_ms : 30000;
	pthread_mutex_init(&c->mu, NULL);
	pthread_mutex_init(&c->wmu, NULL);
	pthread_mutex_init(&c->rmu, NULL);
	{
		pthread_condattr_t ca;
		pthread_condattr_init(&ca);
		pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
		pthread_cond_init(&c->cond, &ca);
		pthread_condattr_destroy(&ca);
	}
	c->inited = true;
	/* kept for reconnecting (the secret too: a mount that outlives a
	 * server restart must log in again; wiped at close) */
	c->o = *o;
	c->o.host = dup_or_null(o->host, &oom);
	c->o.bind = dup_or_null(o->bind, &oom);
	c->o.ca = dup_or_null(o->ca, &oom);
	c->o.pin = dup_or_null(o->pin, &oom);
	c->o.known_hosts = dup_or_null(o->known_hosts, &oom);
	c->o.user = dup_or_null(o->user, &oom);
	if (o->secret && !(c->o.secret = secret_keep(o->secret, &c->secret_cap)))
		oom = true;
	c->o.cert = dup_or_null(o->cert, &oom);
	c->o.cert_key = dup_or_null(o->cert_key, &oom);
	if (oom)
		goto fail;
	if ((r = session(c, o, uid, why, whylen)) < 0)
		goto fail;
	c->uid = *uid;
	c->next_id = 2;
	*out = c;
	return 0;
fail:
	vv_net_client_close(c);
	return r;
}

static void die(struct vv_net_client *c)
{
	pthread_mutex_lock(&c->mu);
	c->dead = true;
	net_tls_abort(c->t);
	pthread_cond_broadcast(&c->cond);
	pthread_mutex_unlock(&c->mu);
}

static void *reader(void *arg)
{
	struct vv_net_client *c = arg;

	for (;;) {
		uint8_t hb[VV_RW_HDR], *body;
		struct vv_rw_hdr h;
		struct slot *s = NULL;

		/* idle waits are fine: a timeout is judged by the callers */
		if (net_tls_read_full(c->t, hb, sizeof(hb), INT64_MAX / 2) < 0 ||
		    vv_rw_header(hb, &h) < 0 || !(h.flags & VV_RW_F_REPLY))
			break;
		if (!(body = malloc(h.len ? h.len : 1)))
			break;
		if (net_tls_read_full(c->t, body, h.len, net_now_ms() + c->timeout_ms) < 0) {
			free(body);
			break;
		}
		pthread_mutex_lock(&c->mu);
		c->rx_ms = net_now_ms();
		for (size_t i = 0; i < VV_RW_MAX_INFLIGHT; i++)
			if (c->slots[i].busy && !c->slots[i].done && c->slots[i].id == h.id)
				s = &c->slots[i];
		if (s && s->abandoned) {
			free(body);      /* late: its caller has given up */
			s->busy = s->abandoned = false;
			pthread_cond_broadcast(&c->cond);
		} else if (s) {
			memcpy(s->hdr, hb, sizeof(hb));
			s->body = body;
			s->done = true;
			pthread_cond_broadcast(&c->cond);
		}
		pthread_mutex_unlock(&c->mu);
		if (!s) {
			free(body);      /* a reply to nothing: the server is broken */
			break;
		}
	}
	die(c);
	return NULL;
}

/*
 * Keep an idle connection alive: the server ends one that sends nothing
 * for its idle time (10 minutes by default), so a quiet mount asks for the
 * root's attributes (not audited) after a minute without a request.
 *
 * And find a dead one.  A request not answered within the timeout fails
 * alone (a server stopped for a while, a long scan: the connection and
 * the rest of its requests go on), so a server that stopped answering
 * with its TCP connection up (hung, SIGSTOPped for good, a peer whose
 * kernel still acknowledges) used to fail every request, one timeout
 * each, and never be reconnected to.  Once a reply is owed for a whole
 * timeout and nothing at all arrived meanwhile, the server is asked for
 * the root's attributes (a ping); if nothing arrives before that times out
 * too, the connection is declared dead, and the next request reconnects
 * (fs/remote_conn.c).  So a silent server is left after about twice the
 * timeout.
 */
#define PING_MS 60000

/* Does the server owe a reply for a whole timeout, and has it sent
 * nothing for as long?  (c->mu held.) */
static bool silent(const struct vv_net_client *c, int64_t now)
{
	if (c->dead || now - c->rx_ms < (int64_t)c->timeout_ms)
		return false;
	for (size_t i = 0; i < VV_RW_MAX_INFLIGHT; i++)
		if (c->slots[i].busy && !c->slots[i].done &&
		    now - c->slots[i].sent_ms >= (int64_t)c->timeout_ms)
			return true;
	return false;
}

static void *pinger(void *arg)
{
	struct vv_net_client *c = arg;
	struct timespec ts;

	pthread_mutex_lock(&c->mu);
	while (!c->stop) {
		int64_t now = net_now_ms(), rx = c->rx_ms;
		bool probe = silent(c, now);
		int r = 0;

		if (!probe && (now < c->last_ms + PING_MS || c->dead)) {
			/* dead: the next request reconnects */
			clock_gettime(CLOCK_MONOTONIC, &ts);
			ts.tv_sec += 1;
			pthread_cond_timedwait(&c->cond, &c->mu, &ts);
			continue;
		}
		pthread_mutex_unlock(&c->mu);
		{
			struct vv_rw_msg *rq = calloc(1, sizeof(*rq)), *rep = calloc(1, sizeof(*rep));
			uint8_t *hold = NULL;

			if (rq && rep) {
				rq->h.op = VV_RW_GETATTR;
				rq->u[0] = VV_ROOT_INO;
				rq->nu = 1;
				r = vv_net_client_call(c, rq, rep, &hold);
			}
			free(hold);
			free(rq);
			free(rep);
		}
		pthread_mutex_lock(&c->mu);
		if (probe && r == VV_ENOTCONN && !c->dead && !c->stop && c->rx_ms == rx) {
			vv_log(VV_LOG_WARN, "remote: the server answered nothing for %lld s, a ping "
			       "included: connection closed (the next request reconnects)",
			       (long long)((net_now_ms() - rx) / 1000));
			c->dead = true;
			net_tls_abort(c->t);
			pthread_cond_broadcast(&c->cond);
		}
	}
	pthread_mutex_unlock(&c->mu);
	return NULL;
}

int vv_net_client_start(struct vv_net_client *c)
{
	/* locks are not inherited by a fork (the caller may have forked) */
	if (c->o.secret && mlock(c->o.secret, c->secret_cap) != 0)
		vv_log(VV_LOG_WARN, "remote: cannot lock the login secret in memory (%s); "
		       "it may reach swap", strerror(errno));
	if (pthread_create(&c->reader, NULL, reader, c) != 0)
		return VV_ENOMEM;
	c->started = true;
	c->last_ms = c->rx_ms = net_now_ms();
	if (pthread_create(&c->pinger, NULL, pinger, c) == 0)
		c->pinging = true;
	return 0;
}

/* Backoff between reconnect attempts: 0.5 s doubling to 30 s. */
#define BACKOFF_MIN_MS 500
#define BACKOFF_MAX_MS 30000

int vv_net_client_reconnect(struct vv_net_client *c, unsigned *epoch, char *why, size_t whylen)
{
	struct tls_conn *old;
	unsigned uid = 0;
	int r = 0;

	pthread_mutex_lock(&c->rmu);
	pthread_mutex_lock(&c->mu);
	if (!c->dead || c->stop) {
		r = c->stop ? VV_ENOTCONN : 0;
		*epoch = c->epoch;
		pthread_mutex_unlock(&c->mu);
		pthread_mutex_unlock(&c->rmu);
		if (r == 0)
			snprintf(why, whylen, "connected");
		return r;
	}
	pthread_mutex_unlock(&c->mu);
	if (net_now_ms() < c->next_try_ms) {
		r = c->refused ? VV_EACCES : VV_ENOTCONN;
		pthread_mutex_unlock(&c->rmu);
		snprintf(why, whylen, "waiting before the next reconnect attempt");
		return r;
	}
	/* the old reader has ended (die) or ends now */
	net_tls_abort(c->t);
	if (c->started) {
		pthread_join(c->reader, NULL);
		c->started = false;
	}
	old = c->t;
	c->t = NULL;
	/* every caller of the old connection has seen it dead and left, or is
	 * leaving; abandoned slots are freed */
	pthread_mutex_lock(&c->mu);
	for (;;) {
		bool busy = false;
		for (size_t i = 0; i < VV_RW_MAX_INFLIGHT; i++) {
			struct slot *sl = &c->slots[i];
			if (sl->busy && sl->abandoned) {
				free(sl->body);
				sl->body = NULL;
				sl->busy = sl->abandoned = sl->done = false;
			} else if (sl->busy) {
				busy = true;
			}
		}
		if (!busy)
			break;
		pthread_cond_wait(&c->cond, &c->mu);
	}
	pthread_mutex_unlock(&c->mu);
	net_tls_free(old);
	r = session(c, &c->o, &uid, why, whylen);
	if (r == 0 && uid != c->uid) {
		snprintf(why, whylen, "the server now maps this login to uid %u, not %u: refused", uid,
			 c->uid);
		net_tls_free(c->t);
		c->t = NULL;
		r = VV_EACCES;
	}
	if (r == 0 && pthread_create(&c->reader, NULL, reader, c) != 0) {
		net_tls_free(c->t);
		c->t = NULL;
		r = VV_ENOMEM;
	}
	if (r < 0) {
		c->backoff_ms = c->backoff_ms ? c->backoff_ms * 2 : BACKOFF_MIN_MS;
		if (c->backoff_ms > BACKOFF_MAX_MS)
			c->backoff_ms = BACKOFF_MAX_MS;
		c->next_try_ms = net_now_ms() + c->backoff_ms;
		c->refused = r == VV_EACCES;
		pthread_mutex_unlock(&c->rmu);
		return r == VV_EACCES ? VV_EACCES : VV_ENOTCONN;
	}
	c->started = true;
	c->backoff_ms = 0;
	c->refused = false;
	pthread_mutex_lock(&c->mu);
	c->dead = false;
	*epoch = ++c->epoch;
	c->last_ms = c->rx_ms = net_now_ms();
	pthread_cond_broadcast(&c->cond);
	pthread_mutex_unlock(&c->mu);
	pthread_mutex_unlock(&c->rmu);
	return 0;
}

unsigned vv_net_client_epoch(struct vv_net_client *c)
{
	unsigned e;

	pthread_mutex_lock(&c->mu);
	e = c->epoch;
	pthread_mutex_unlock(&c->mu);
	return e;
}

const char *vv_net_client_user(const struct vv_net_client *c)
{
	return c->user;
}

bool vv_net_client_alive(struct vv_net_client *c)
{
	bool alive;

	pthread_mutex_lock(&c->mu);
	alive = !c->dead;
	pthread_mutex_unlock(&c->mu);
	return alive;
}

static void deadline(const struct vv_net_client *c, struct timespec *ts)
{
	clock_gettime(CLOCK_MONOTONIC, ts);
	ts->tv_sec += c->timeout_ms / 1000;
	ts->tv_nsec += (long)(c->timeout_ms % 1000) * 1000000L;
	if (ts->tv_nsec >= 1000000000L) {
		ts->tv_sec++;
		ts->tv_nsec -= 1000000000L;
	}
}

/* A free slot with a fresh request id, once fewer than limit are busy
 * (c->mu held; NULL when the connection is dead or ts passed).  An
 * abandoned one is freed by the reader when its reply arrives. */
static struct slot *take_slot(struct vv_net_client *c, const struct timespec *ts, size_t limit,
			      bool abandoned)
{
	struct slot *s = NULL;

	while (!c->dead && !s) {
		size_t busy = 0;
		for (size_t i = 0; i < VV_RW_MAX_INFLIGHT; i++)
			busy += c->slots[i].busy;
		for (size_t i = 0; i < VV_RW_MAX_INFLIGHT && !s && busy < limit; i++)
			if (!c->slots[i].busy)
				s = &c->slots[i];
		if (!s && pthread_cond_timedwait(&c->cond, &c->mu, ts) == ETIMEDOUT)
			break;
	}
	if (c->dead || !s)
		return NULL;
	s->busy = true;
	s->done = false;
	s->abandoned = abandoned;
	c->last_ms = s->sent_ms = net_now_ms();
	s->id = c->next_id++;
	if (c->next_id == 0)
		c->next_id = 2;
	return s;
}

/* Take a slot (limit, abandoned: take_slot) into *out and send rq in it:
 * 0, or VV_ENOTCONN (no slot: *out NULL; or the write failed, which ends
 * the connection). */
static int send_req(struct vv_net_client *c, const struct vv_rw_msg *rq, size_t limit,
		    bool abandoned, struct slot **out)
{
	struct vv_rw_msg m;
	struct timespec ts;

	deadline(c, &ts);
	pthread_mutex_lock(&c->mu);
	*out = take_slot(c, &ts, limit, abandoned);
	pthread_mutex_unlock(&c->mu);
	if (!*out)
		return VV_ENOTCONN;
	m = *rq;
	m.h.id = (*out)->id;
	m.h.flags = 0;
	m.h.status = 0;
	if (write_frame(c, &m) < 0) {
		die(c);
		return VV_ENOTCONN;
	}
	return 0;
}

int vv_net_client_post(struct vv_net_client *c, const struct vv_rw_msg *rq, unsigned limit)
{
	struct slot *s;

	return send_req(c, rq, limit < VV_RW_MAX_INFLIGHT ? limit : VV_RW_MAX_INFLIGHT, true, &s);
}

int vv_net_client_call(struct vv_net_client *c, const struct vv_rw_msg *rq, struct vv_rw_msg *rep,
		       uint8_t **hold)
{
	struct slot *s;
	struct timespec ts;
	struct vv_rw_hdr h;
	bool dead;
	int r = 0;

	*hold = NULL;
	deadline(c, &ts);               /* the wait for the reply */
	r = send_req(c, rq, VV_RW_MAX_INFLIGHT, false, &s);
	if (!s)
		return r;
	pthread_mutex_lock(&c->mu);
	while (r == 0 && !s->done && !c->dead)
		if (pthread_cond_timedwait(&c->cond, &c->mu, &ts) == ETIMEDOUT)
			break;
	if (r == 0 && !s->done && !c->dead) {
		/* timed out: the slot waits for the late reply (struct slot) */
		s->abandoned = true;
		pthread_cond_broadcast(&c->cond);
		pthread_mutex_unlock(&c->mu);
		return VV_ENOTCONN;
	}
	if (r == 0 && !s->done)
		r = VV_ENOTCONN;
	if (r == 0) {
		*hold = s->body;
		memcpy(&h, s->hdr, sizeof(h));
		if (vv_rw_header(s->hdr, &h) < 0 || h.op != rq->h.op ||
		    vv_rw_decode(&h, s->body, h.len, rep) < 0) {
			const char *op = vv_rw_op_name(rq->h.op);
			vv_log(VV_LOG_WARN, "remote: the server's %s reply does not parse (another op, "
			       "a field or length beyond the frame, a bad name or attribute record): "
			       "connection closed", op ? op : "?");
			r = VV_ENOTCONN;      /* a server that answers garbage is gone */
			c->dead = true;
			pthread_cond_broadcast(&c->cond);
		} else {
			r = h.status;
		}
	}
	dead = c->dead;
	if (dead)
		net_tls_abort(c->t);  /* before the slot is free: no reconnect yet */
	s->busy = s->done = s->abandoned = false;
	s->body = NULL;
	pthread_cond_broadcast(&c->cond);
	pthread_mutex_unlock(&c->mu);
	return r;
}

void vv_net_client_close(struct vv_net_client *c)
{
	if (!c)
		return;
	if (c->pinging) {
		pthread_mutex_lock(&c->mu);
		c->stop = true;
		pthread_cond_broadcast(&c->cond);
		pthread_mutex_unlock(&c->mu);
	}
	if (c->t)
		net_tls_abort(c->t);
	if (c->pinging)
		pthread_join(c->pinger, NULL);
	if (c->started)
		pthread_join(c->reader, NULL);
	for (size_t i = 0; i < VV_RW_MAX_INFLIGHT; i++)
		free(c->slots[i].body);
	net_tls_free(c->t);
	if (c->inited) {
		pthread_mutex_destroy(&c->mu);
		pthread_mutex_destroy(&c->wmu);
		pthread_mutex_destroy(&c->rmu);
		pthread_cond_destroy(&c->cond);
	}
	net_secret_drop((char *)c->o.secret, c->secret_cap);
	free((char *)c->o.host);
	free((char *)c->o.bind);
	free((char *)c->o.ca);
	free((char *)c->o.pin);
	free((char *)c->o.known_hosts);
	free((char *)c->o.user);
	free((char *)c->o.cert);
	free((char *)c->o.cert_key);
	free(c->out);
	free(c);
}
