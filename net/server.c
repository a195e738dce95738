/*
 * server.c - the remote listener: sockets, threads, the order of checks
 * (net.h), authentication with per-address backoff, and the request loop
 * of an authenticated session.
 *
 * Threads: one acceptor; per connection one reader (handshake,
 * authentication, then reading frames) and, once authenticated,
 * SESS_WORKERS workers that run requests and write replies, so requests
 * are answered out of order.  At most VV_RW_MAX_INFLIGHT requests of a
 * connection, and QUEUE_BYTES of their bodies, are read and not yet
 * answered: the reader stops reading until a worker is done (the peer's
 * own window).  The byte bound is what keeps memory down when a peer
 * stops reading its replies: the workers wait up to WRITE_MS on it, and
 * 64 queued writes of 1 MiB each per connection were 64 MiB of the
 * server's memory, 4 GiB over the 64 connections.
 *
 * Bounds against a peer: whitelist before TLS (--allow, or an active API
 * key's CIDRs: then only such a key logs in); max_conn connections in
 * all and max_per_addr per address; the handshake and the AUTH frame
 * within auth_ms, an AUTH body of at most AUTH_BODY_MAX bytes; a failed
 * authentication closes the connection and delays the address's next
 * attempt (BACKOFF_MIN_MS doubling up to BACKOFF_MAX_MS, each attempt of
 * an address taking the next slot, so parallel connections do not help;
 * only a success of the login that failed resets it, or BACKOFF_FORGET_MS
 * without a failure, so a peer holding one valid login cannot clear its
 * guesses at another's password by logging in between them);
 * idle_ms without a request closes a session; a reply not taken within
 * WRITE_MS closes it; a frame that does not parse closes it.
 *
 * Keys are checked again, at most once a second, before a request runs:
 * a revoked or expired key, or one whose user's uid or roles changed,
 * fails the request with EACCES and ends the session.  Password sessions
 * are re-checked the same way without evaluating the password again: the
 * same user row with the same stored hash (docs/remote.md).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "net_int.h"
#include "vecvault/error.h"
#include "vecvault/log.h"
#include "vecvault/net.h"
#include "vecvault/remote.h"

#define AUTH_BODY_MAX 8192
#define BACKOFF_MIN_MS 250
#define BACKOFF_MAX_MS 4000
#define BACKOFF_SLOTS 1024
#define BACKOFF_FORGET_MS 600000     /* failures forgotten after 10 min without one */
#define BACKOFF_WHO 48               /* "p:USER", "k:KEYID", "c:CN" */
#define WRITE_MS 30000
#define QUEUE_BYTES (8u << 20)       /* request bodies read and not yet answered, per connection */
#define RECHECK_MS 1000
#define REFUSE_WINDOW_MS 10000       /* per address: REFUSE_AUDITED records ... */
#define REFUSE_AUDITED 5             /* ... of refused connections, then a count */
#define REFUSE_SLOTS 256

struct backoff {
	uint8_t addr[16];            /* IPv4 mapped; IPv6 cut to its /64 */
	bool used;
	unsigned fails;
	int64_t next_ms, last_ms;
	int64_t fail_ms;             /* the last failure */
	char who[BACKOFF_WHO];       /* the login the failures tried ... */
	bool mixed;                  /* ... or they tried several */
};

/* Connections of one address refused before TLS, for the audit (the
 * acceptor's own: no lock). */
struct refusals {
	uint8_t addr[16];            /* as struct backoff's */
	bool used;
	int64_t since;               /* the start of its window */
	unsigned audited;            /* records written in the window */
	uint64_t more;               /* refusals counted in it, not written */
	int r;                       /* the last of those: code, reason, address */
	const char *why;
	char client[64];
};

struct vv_net_server {
	struct vv_vault *v;
	struct vv_allow *allow;
	struct tls_ctx *tls;
	int lfd, stop_pipe[2];
	unsigned port;
	unsigned auth_ms, idle_ms, max_conn, max_per_addr;
	bool mtls;                   /* --client-ca: a client certificate is required */
	pthread_t acceptor;
	bool started;
	pthread_mutex_t mu;          /* below */
	pthread_cond_t cond;         /* nconn dropped */
	bool stopping;
	unsigned nconn;
	struct conn *conns;
	struct backoff bo[BACKOFF_SLOTS];
	struct refusals rf[REFUSE_SLOTS];
	struct net_nodes *nodes;     /* what sessions may hold (nodes.c) */
};

struct job {
	struct job *next;
	uint8_t *body;
	size_t len;                  /* of body, counted in the connection's qbytes */
	struct vv_rw_msg m;
};

struct conn {
	struct vv_net_server *srv;
	struct conn *next;
	int fd;
	struct tls_conn *t;
	struct sockaddr_storage peer;
	uint8_t key[16];             /* the peer's address for caps and backoff */
	bool key_only;               /* outside --allow, admitted by an API key's CIDRs:
					only such a key may log in (docs/remote.md) */
	char client[64];
	struct sess s;
	char *token;                 /* the API key, kept to re-check it (locked memory) */
	size_t token_cap;
	char cert_user[33];          /* mTLS: the verified certificate's CN, a vault user */
	bool pw_session;             /* logged in by password (re-checked like a key) */
	char cert_fp[65];            /* and its SHA-256 */
	int64_t checked_ms;
	pthread_mutex_t qmu;
	pthread_cond_t qcond;        /* a job queued, or one finished, or closing */
	struct job *head, *tail;
	unsigned queued, running;
	size_t qbytes;               /* bodies of the queued and running jobs */
	bool closing;
	pthread_t workers[SESS_WORKERS];
	unsigned nworkers;
};

static void addr_key(const struct sockaddr *sa, uint8_t out[16])
{
	static const uint8_t mapped[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };

	memset(out, 0, 16);
	if (sa->sa_family == AF_INET) {
		memcpy(out, mapped, 12);
		memcpy(out + 12, &((const struct sockaddr_in *)sa)->sin_addr, 4);
	} else if (sa->sa_family == AF_INET6) {
		memcpy(out, &((const struct sockaddr_in6 *)sa)->sin6_addr, 16);
		if (memcmp(out, mapped, 12) != 0)
			memset(out + 8, 0, 8);        /* one host owns a /64 */
	}
}

/* --- listening ------------------------------------------------------------- */

/* "ADDR:PORT" or "[V6]:PORT" into a sockaddr. */
static int parse_listen(const char *s, struct sockaddr_storage *ss, socklen_t *len)
{
	char host[INET6_ADDRSTRLEN + 2];
	const char *colon, *h = s;
	size_t hl;
	unsigned long port;
	char *end;

	if (s[0] == '[') {
		const char *rb = strchr(s, ']');
		if (!rb || rb[1] != ':')
			return VV_EINVAL;
		h = s + 1;
		hl = (size_t)(rb - h);
		colon = rb + 1;
	} else {
		colon = strrchr(s, ':');
		if (!colon)
			return VV_EINVAL;
		hl = (size_t)(colon - s);
	}
	if (hl == 0 || hl >= sizeof(host))
		return VV_EINVAL;
	memcpy(host, h, hl);
	host[hl] = 0;
	errno = 0;
	port = strtoul(colon + 1, &end, 10);
	if (errno || *end || colon[1] == 0 || port > 65535)
		return VV_EINVAL;
	memset(ss, 0, sizeof(*ss));
	if (s[0] != '[' && inet_pton(AF_INET, host, &((struct sockaddr_in *)ss)->sin_addr) == 1) {
		((struct sockaddr_in *)ss)->sin_family = AF_INET;
		((struct sockaddr_in *)ss)->sin_port = htons((uint16_t)port);
		*len = sizeof(struct sockaddr_in);
		return 0;
	}
	if (inet_pton(AF_INET6, host, &((struct sockaddr_in6 *)ss)->sin6_addr) == 1) {
		((struct sockaddr_in6 *)ss)->sin6_family = AF_INET6;
		((struct sockaddr_in6 *)ss)->sin6_port = htons((uint16_t)port);
		*len = sizeof(struct sockaddr_in6);
		return 0;
	}
	return VV_EINVAL;
}

/* --- backoff ---------------------------------------------------------------- */

/* The slot of an address (made, or the least recently used one taken);
 * failures older than BACKOFF_FORGET_MS are forgotten here. */
static struct backoff *bo_find(struct vv_net_server *s, const uint8_t key[16], int64_t now)
{
	struct backoff *old = &s->bo[0];

	for (size_t i = 0; i < BACKOFF_SLOTS; i++) {
		struct backoff *b = &s->bo[i];
		if (b->used && memcmp(b->addr, key, 16) == 0) {
			if (b->fails && now - b->fail_ms >= BACKOFF_FORGET_MS) {
				b->fails = 0;
				b->who[0] = 0;
				b->mixed = false;
			}
			return b;
		}
		if (!b->used || (old->used && b->last_ms < old->last_ms))
			old = b;
	}
	memset(old, 0, sizeof(*old));
	memcpy(old->addr, key, 16);
	old->used = true;
	return old;
}

static int64_t bo_delay(unsigned fails)
{
	int64_t d = BACKOFF_MIN_MS;

	if (fails == 0)
		return 0;
	for (unsigned i = 1; i < fails && d < BACKOFF_MAX_MS; i++)
		d *= 2;
	return d < BACKOFF_MAX_MS ? d : BACKOFF_MAX_MS;
}

/* Reserve this address's next attempt slot and wait for it.  VV_ECANCELED
 * if the server stops meanwhile. */
static int bo_wait(struct conn *c)
{
	struct vv_net_server *s = c->srv;
	int64_t at, now = net_now_ms();
	struct backoff *b;

	pthread_mutex_lock(&s->mu);
	b = bo_find(s, c->key, now);
	at = b->next_ms > now ? b->next_ms : now;
	b->next_ms = at + bo_delay(b->fails);
	b->last_ms = now;
	pthread_mutex_unlock(&s->mu);
	while (net_now_ms() < at) {
		struct pollfd p = { .fd = s->stop_pipe[0], .events = POLLIN };
		int64_t left = at - net_now_ms();
		if (poll(&p, 1, left > 1000 ? 1000 : (int)(left > 0 ? left : 0)) > 0)
			return VV_ECANCELED;
	}
	return 0;
}

/* The outcome of an attempt at login who ("p:USER", "k:KEYID", "c:CN").
 * A success resets the address's backoff only when every failure since
 * the last reset tried that same login (a user who mistyped a password):
 * a success of another (the attacker's own key) leaves the count, else
 * logging in between guesses would keep every guess at the first delay. */
static void bo_result(struct conn *c, bool ok, const char *who)
{
	struct vv_net_server *s = c->srv;
	int64_t now = net_now_ms();
	struct backoff *b;

	pthread_mutex_lock(&s->mu);
	b = bo_find(s, c->key, now);
	if (ok) {
		if (b->fails == 0 || (!b->mixed && strcmp(b->who, who) == 0)) {
			b->fails = 0;
			b->next_ms = 0;
			b->who[0] = 0;
			b->mixed = false;
		}
	} else {
		int64_t t = now + bo_delay(++b->fails);
		if (b->fails == 1)
			snprintf(b->who, sizeof(b->who), "%s", who);
		else if (strncmp(b->who, who, sizeof(b->who) - 1) != 0)
			b->mixed = true;
		if (b->fails > 64)
			b->fails = 64;
		b->fail_ms = now;
		if (b->next_ms < t)
			b->next_ms = t;
	}
	pthread_mutex_unlock(&s->mu);
}

/* --- frames ------------------------------------------------------------------ */

static int send_msg(struct conn *c, const struct vv_rw_msg *m, uint8_t *buf, size_t cap)
{
	long n = vv_rw_encode(&m->h, m, buf, cap);

	if (n < 0) {
		/* a reply we cannot frame: say so instead */
		struct vv_rw_msg e = { .h = m->h };
		e.h.status = VV_EIO;
		n = vv_rw_encode(&e.h, &e, buf, cap);
		if (n < 0)
			return VV_EIO;
	}
	return net_tls_write(c->t, buf, (size_t)n, net_now_ms() + WRITE_MS);
}

static void audit(struct conn *c, const char *user, const char *op, int r, const char *detail)
{
	vv_vault_audit_remote(c->srv->v, c->client, user, op, r, detail);
}

/* --- authentication ----------------------------------------------------------- */

/* Keep the key a session logged in with, for the periodic re-check that
 * ends the session when the key is revoked or expires.  Without it the
 * session could not be re-checked, so a failure refuses the login. */
static int token_keep(struct conn *c, const char *tok, size_t n)
{
	bool locked;

	if (n >= 4096)
		return VV_EINVAL;
	if (!(c->token = net_secret_keep(tok, n, &c->token_cap, &locked)))
		return VV_ENOMEM;
	return 0;
}

static void token_drop(struct conn *c)
{
	net_secret_drop(c->token, c->token_cap);
	c->token = NULL;
}

/* A certificate (cert) or password login on a connection admitted for a
 * key only (c->key_only): refused unevaluated, audited by the users
 * engine.  VV_EACCES, or the audit log's failure. */
static int refuse_not_key(struct conn *c, bool cert)
{
	char what[40];

	snprintf(what, sizeof(what), "certificate sha256:%.16s", c->cert_fp);
	return vv_vault_auth_not_key(c->srv->v, cert ? what : "password", cert ? c->cert_user : NULL,
				     (const struct sockaddr *)&c->peer);
}

/* The first frame: AUTH, or the connection ends.  deadline: the one of the
 * handshake (auth_ms from accept() for both).  0 when authenticated. */
static int authenticate(struct conn *c, int64_t deadline)
{
	struct vv_net_server *s = c->srv;
	uint8_t hb[VV_RW_HDR], *body = NULL, out[VV_RW_HDR + 256];
	struct vv_rw_msg *m = NULL, rep;
	struct vv_rw_hdr h;
	char detail[160];
	const char *tried = NULL;
	char keyid[20] = "", tried_buf[64], who[BACKOFF_WHO];
	int r;

	if ((r = net_tls_read_full(c->t, hb, sizeof(hb), deadline)) < 0) {
		audit(c, NULL, "unauth", VV_EACCES, r == VV_EAGAIN ? "no authentication in time"
			    : r == VV_ECANCELED ? "a TLS KeyUpdate flood before authenticating"
			    : "closed before authenticating");
		return VV_EACCES;
	}
	if ((r = vv_rw_header(hb, &h)) < 0 || h.op != VV_RW_AUTH || (h.flags & VV_RW_F_REPLY)) {
		snprintf(detail, sizeof(detail), "%s frame before authentication",
			 r < 0 ? "a malformed" : vv_rw_op_name(h.op));
		audit(c, NULL, "unauth", VV_EACCES, detail);
		return VV_EACCES;
	}
	if (h.len > AUTH_BODY_MAX) {
		audit(c, NULL, "unauth", VV_EACCES, "an oversized auth frame");
		return VV_EACCES;
	}
	r = VV_ENOMEM;
	if (!(body = malloc(h.len ? h.len : 1)) || !(m = malloc(sizeof(*m))))
		goto out;
	if ((r = net_tls_read_full(c->t, body, h.len, deadline)) < 0) {
		audit(c, NULL, "unauth", VV_EACCES, "a truncated auth frame");
		r = VV_EACCES;
		goto out;
	}
	if ((r = vv_rw_decode(&h, body, h.len, m)) < 0 || m->u[0] != VV_RW_VERSION ||
	    (m->u[1] != VV_RW_AUTH_KEY && m->u[1] != VV_RW_AUTH_PASSWORD &&
	     (m->u[1] != VV_RW_AUTH_CERT || !c->cert_user[0]))) {
		snprintf(detail, sizeof(detail), r < 0 ? "a malformed auth frame"
				 : m->u[0] != VV_RW_VERSION ? "protocol version %llu (this server speaks " VV_RW_VERSION_S ")"
				 : m->u[1] == VV_RW_AUTH_CERT ? "certificate login without a client "
								"certificate (the server has no --client-ca)"
				 : "unknown auth method", (unsigned long long)m->u[0]);
		audit(c, NULL, "unauth", VV_EACCES, detail);
		memset(&rep, 0, sizeof(rep));
		rep.h = (struct vv_rw_hdr){ .id = h.id, .op = VV_RW_AUTH, .flags = VV_RW_F_REPLY,
					    .status = r < 0 ? VV_EINVAL : VV_ENOTSUP };
		(void)send_msg(c, &rep, out, sizeof(out));
		r = VV_EACCES;
		goto out;
	}
	if ((r = bo_wait(c)) < 0)
		goto out;
	if (c->key_only && m->u[1] != VV_RW_AUTH_KEY) {
		/* Admitted for a key only: no other login is even evaluated
		 * (not a password's Argon2id, not a certificate's user). */
		snprintf(tried_buf, sizeof(tried_buf), "%s",
			 m->u[1] == VV_RW_AUTH_CERT ? c->cert_user : m->s[0]);
		tried = tried_buf;
		r = refuse_not_key(c, m->u[1] == VV_RW_AUTH_CERT);
	} else if (m->u[1] == VV_RW_AUTH_CERT) {
		snprintf(tried_buf, sizeof(tried_buf), "%s", c->cert_user);
		tried = tried_buf;
		r = vv_vault_auth_cert(s->v, c->cert_user, c->cert_fp,
				       (const struct sockaddr *)&c->peer, false, &c->s.auth);
	} else if (m->u[1] == VV_RW_AUTH_KEY) {
		tried = NULL;
		if (c->key_only)
			r = vv_vault_auth_key_cidr(s->v, m->s[1], (const struct sockaddr *)&c->peer,
						   &c->s.auth);
		else
			r = vv_vault_auth_key(s->v, m->s[1], (const struct sockaddr *)&c->peer,
					      &c->s.auth);
		if (r == 0)
			r = token_keep(c, m->s[1], m->slen[1]);
	} else {
		snprintf(tried_buf, sizeof(tried_buf), "%s", m->s[0]);
		tried = tried_buf;
		r = vv_vault_auth_password(s->v, m->s[0], m->s[1], m->slen[1],
					   (const struct sockaddr *)&c->peer, &c->s.auth);
	}
	if (m->u[1] == VV_RW_AUTH_KEY && m->slen[1] >= 21 && !strncmp(m->s[1], "vvk_", 4)) {
		/* the key's public id, never its secret */
		memcpy(keyid, m->s[1] + 4, 16);
		keyid[16] = 0;
		for (int i = 0; i < 16; i++)
			if (!strchr("0123456789abcdef", keyid[i]))
				keyid[0] = 0;
	}
	/* the login tried, for the backoff: the user, or the key's id */
	snprintf(who, sizeof(who), "%s:%.40s", m->u[1] == VV_RW_AUTH_KEY ? "k"
		 : m->u[1] == VV_RW_AUTH_PASSWORD ? "p" : "c", tried ? tried : keyid);
	if (r == 0 && c->cert_user[0] && strcmp(c->s.auth.user, c->cert_user) != 0) {
		/* mTLS precedes the key or password: they may only log in as
		 * the certificate's own user */
		snprintf(detail, sizeof(detail), "%s of user %s refused: the client certificate "
			 "is %s's", m->u[1] == VV_RW_AUTH_KEY ? "API key" : "password",
			 c->s.auth.user, c->cert_user);
		audit(c, c->s.auth.user, "unauth", VV_EACCES, detail);
		/* (an assignment: GCC 12 with ASan takes explicit_bzero of it
		 * here for a write past auth.user; conn_end wipes it anyway) */
		c->s.auth = (struct vv_auth){ 0 };
		token_drop(c);
		r = VV_EPERM;
	}
	explicit_bzero(body, h.len);
	explicit_bzero(m->sbuf, sizeof(m->sbuf));
	bo_result(c, r == 0, who);
	memset(&rep, 0, sizeof(rep));
	rep.h = (struct vv_rw_hdr){ .id = h.id, .op = VV_RW_AUTH, .flags = VV_RW_F_REPLY };
	if (r < 0) {
		vv_allow_count(s->allow, VV_ALLOW_AUTH_FAILED);
		snprintf(detail, sizeof(detail), "%s refused%s%s%s%s",
			 m->u[1] == VV_RW_AUTH_CERT ? "client certificate" : tried ? "password" : "API key",
			 keyid[0] ? ": key " : "", keyid,
			 r == VV_EBUSY ? ": too many password checks at once" : "",
			 !c->key_only ? "" : m->u[1] == VV_RW_AUTH_KEY
			 ? " (address admitted for a key only)" : ": address admitted for a key only");
		if (r != VV_EPERM)   /* a user mismatch is audited above */
			audit(c, tried ? tried : (keyid[0] ? keyid : NULL), "unauth", VV_EACCES, detail);
		/* Only a verdict on the credentials is EACCES (a certificate's
		 * user mismatch too); busy, or a failure to read them, says
		 * nothing about them: the client may retry. */
		rep.h.status = r == VV_EACCES || r == VV_EPERM ? VV_EACCES : r;
		(void)send_msg(c, &rep, out, sizeof(out));
		r = VV_EACCES;
		goto out;
	}
	vv_allow_count(s->allow, VV_ALLOW_AUTHENTICATED);
	c->pw_session = m->u[1] == VV_RW_AUTH_PASSWORD;
	if (c->s.auth.key_id[0])
		snprintf(c->s.user, sizeof(c->s.user), "%s/%s", c->s.auth.user, c->s.auth.key_id);
	else if (m->u[1] == VV_RW_AUTH_CERT)
		snprintf(c->s.user, sizeof(c->s.user), "%s/cert:%.16s", c->s.auth.user, c->cert_fp);
	else
		snprintf(c->s.user, sizeof(c->s.user), "%s", c->s.auth.user);
	c->checked_ms = net_now_ms();
	rep.u[0] = c->s.auth.uid;
	rep.nu = 1;
	rep.s[0] = c->s.auth.user;
	rep.ns = 1;
	r = send_msg(c, &rep, out, sizeof(out));
out:
	if (body)
		explicit_bzero(body, h.len);
	if (m)
		explicit_bzero(m, sizeof(*m));
	free(body);
	free(m);
	return r;
}

/* Is the session's login still valid (its API key; its password: the
 * same user with the same password; its certificate: not revoked, not
 * expired, its user)?  At most once a second; a login that stopped being
 * valid revokes the session for good. */
static void recheck(struct conn *c)
{
	struct vv_auth a;
	int64_t now = net_now_ms();
	bool due;
	int r;

	if (!c->token && !c->pw_session && !c->cert_user[0])
		return;
	pthread_mutex_lock(&c->qmu);
	due = now - c->checked_ms >= RECHECK_MS;
	if (due)
		c->checked_ms = now;
	pthread_mutex_unlock(&c->qmu);
	if (!due)
		return;
	/* A certificate revoked since the handshake ends the session, whatever
	 * the login on top of it (--client-crl). */
	if (c->cert_user[0] && net_tls_peer_revoked(c->srv->tls, c->t)) {
		if (!atomic_exchange(&c->s.revoked, true))
			audit(c, c->s.user, "unauth", VV_EACCES,
			      "the client certificate was revoked (--client-crl): session ended");
		return;
	}
	/* So does its expiry, as an expired key ends a key session: a
	 * certificate made for a day must not serve a session kept busy
	 * for a month. */
	if (c->cert_user[0] && net_tls_peer_expired(c->t)) {
		if (!atomic_exchange(&c->s.revoked, true))
			audit(c, c->s.user, "unauth", VV_EACCES,
			      "the client certificate expired: session ended");
		return;
	}
	r = c->token ? (c->key_only ? vv_vault_auth_key_cidr : vv_vault_auth_key)(
			c->srv->v, c->token, (const struct sockaddr *)&c->peer, &a)
	    : c->pw_session ? vv_vault_auth_password_recheck(c->srv->v, &c->s.auth,
							     (const struct sockaddr *)&c->peer, &a)
	    : vv_vault_auth_cert(c->srv->v, c->cert_user, c->cert_fp,
				 (const struct sockaddr *)&c->peer, true, &a);
	if (r < 0) {
		/* Only the verdict on the key or certificate ends the session;
		 * a failure to read it (EIO, ENOMEM, the audit log down) is
		 * tried again in a second, and requests meanwhile meet the
		 * same failure. */
		if (r != VV_EACCES)
			vv_log(VV_LOG_WARN, "remote: %s: re-checking the session's login: %s",
			       c->client, vv_strerror(r));
		else if (!atomic_exchange(&c->s.revoked, true)) {
			audit(c, c->s.user, "unauth", VV_EACCES, c->token
			      ? "API key no longer valid (revoked, expired or deleted): session ended"
			      : c->pw_session
			      ? "password login no longer valid (user deleted or password changed): "
				"session ended"
			      : "the client certificate's user no longer exists: session ended");
		}
	} else if (a.uid != c->s.auth.uid || a.ngroups != c->s.auth.ngroups ||
		   memcmp(a.groups, c->s.auth.groups, a.ngroups * sizeof(a.groups[0])) != 0) {
		/* The session's identity is fixed at AUTH; a role taken away
		 * (or a uid changed) must not live on in it: end it, and the
		 * client's next AUTH gets the user as it is now. */
		if (!atomic_exchange(&c->s.revoked, true)) {
			audit(c, c->s.user, "unauth", VV_EACCES,
			      c->token ? "the key's user changed (uid or roles): session ended"
			      : c->pw_session ? "the user changed (uid or roles): session ended"
			      : "the certificate's user changed (uid or roles): session ended");
		}
	}
	explicit_bzero(&a, sizeof(a));
}

/* --- the session ------------------------------------------------------------- */

static void *worker(void *arg)
{
	struct conn *c = arg;
	uint8_t *data = malloc(VV_RW_DATA_MAX + 8), *frame = malloc(VV_RW_HDR + VV_RW_BODY_MAX);
	struct vv_rw_msg *rep = malloc(sizeof(*rep));

	for (;;) {
		struct job *j;
		size_t len;
		int r;

		pthread_mutex_lock(&c->qmu);
		while (!c->head && !c->closing)
			pthread_cond_wait(&c->qcond, &c->qmu);
		if (!c->head) {
			pthread_mutex_unlock(&c->qmu);
			break;
		}
		j = c->head;
		c->head = j->next;
		if (!c->head)
			c->tail = NULL;
		c->queued--;
		c->running++;
		pthread_mutex_unlock(&c->qmu);

		if (!data || !frame || !rep) {
			r = VV_ENOMEM;
		} else {
			recheck(c);
			net_sess_run(&c->s, &j->m, rep, data);
			r = send_msg(c, rep, frame, VV_RW_HDR + VV_RW_BODY_MAX);
		}
		len = j->len;
		free(j->body);
		free(j);
		if (r < 0 || atomic_load(&c->s.revoked))
			shutdown(c->fd, SHUT_RDWR);    /* the reader ends the session */
		pthread_mutex_lock(&c->qmu);
		c->running--;
		c->qbytes -= len;
		pthread_cond_broadcast(&c->qcond);
		pthread_mutex_unlock(&c->qmu);
	}
	free(data);
	free(frame);
	free(rep);
	return NULL;
}

/* Read and queue requests until the peer leaves, misbehaves or idles. */
static void serve(struct conn *c)
{
	struct vv_net_server *s = c->srv;
	char detail[128] = "";

	for (;;) {
		uint8_t hb[VV_RW_HDR];
		struct vv_rw_hdr h;
		struct job *j;
		int r;

		pthread_mutex_lock(&c->qmu);
		while (c->queued + c->running >= VV_RW_MAX_INFLIGHT && !c->closing)
			pthread_cond_wait(&c->qcond, &c->qmu);
		pthread_mutex_unlock(&c->qmu);
		if ((r = net_tls_read_full(c->t, hb, sizeof(hb), net_now_ms() + s->idle_ms)) < 0) {
			if (r == VV_EAGAIN)
				snprintf(detail, sizeof(detail), "idle for %u s", s->idle_ms / 1000);
			else if (r == VV_ECANCELED)
				snprintf(detail, sizeof(detail), "protocol error: a TLS KeyUpdate flood");
			break;
		}
		if ((r = vv_rw_header(hb, &h)) < 0 || (h.flags & VV_RW_F_REPLY) || h.op == VV_RW_AUTH) {
			snprintf(detail, sizeof(detail), "protocol error: %s",
				 r < 0 ? "a malformed frame header" : "an unexpected frame");
			break;
		}
		/* room for this body among those not yet answered (one body
		 * alone always fits: at most VV_RW_BODY_MAX) */
		pthread_mutex_lock(&c->qmu);
		while (c->qbytes && c->qbytes + h.len > QUEUE_BYTES && !c->closing)
			pthread_cond_wait(&c->qcond, &c->qmu);
		pthread_mutex_unlock(&c->qmu);
		if (!(j = calloc(1, sizeof(*j))) || !(j->body = malloc(h.len ? h.len : 1))) {
			free(j);
			snprintf(detail, sizeof(detail), "out of memory");
			break;
		}
		if ((r = net_tls_read_full(c->t, j->body, h.len, net_now_ms() + WRITE_MS)) < 0 ||
		    (r = vv_rw_decode(&h, j->body, h.len, &j->m)) < 0) {
			snprintf(detail, sizeof(detail), "protocol error: a %s %s request",
				 r == VV_ECANCELED ? "TLS KeyUpdate flood in a"
				 : r == VV_EAGAIN || r == VV_EIO || r == VV_ENODATA ? "truncated"
				 : "malformed", vv_rw_op_name(h.op));
			free(j->body);
			free(j);
			break;
		}
		j->len = h.len;
		pthread_mutex_lock(&c->qmu);
		if (c->tail)
			c->tail->next = j;
		else
			c->head = j;
		c->tail = j;
		c->queued++;
		c->qbytes += j->len;
		pthread_cond_signal(&c->qcond);
		pthread_mutex_unlock(&c->qmu);
	}
	if (detail[0])
		audit(c, c->s.user, "disconnect", VV_EIO, detail);
}

static void conn_end(struct conn *c)
{
	struct vv_net_server *s = c->srv;

	pthread_mutex_lock(&c->qmu);
	c->closing = true;
	pthread_cond_broadcast(&c->qcond);
	pthread_mutex_unlock(&c->qmu);
	for (unsigned i = 0; i < c->nworkers; i++)
		pthread_join(c->workers[i], NULL);
	while (c->head) {
		struct job *j = c->head;
		c->head = j->next;
		free(j->body);
		free(j);
	}
	net_sess_release(&c->s);
	net_nodes_leave(s->nodes, c->s.nu);
	token_drop(c);
	/* Off the list before the fd is closed: vv_net_stop must never
	 * shutdown() a descriptor number that was reused meanwhile. */
	pthread_mutex_lock(&s->mu);
	for (struct conn **p = &s->conns; *p; p = &(*p)->next)
		if (*p == c) {
			*p = c->next;
			break;
		}
	pthread_mutex_unlock(&s->mu);
	if (c->t)
		net_tls_free(c->t);          /* closes fd */
	else
		close(c->fd);
	pthread_mutex_lock(&s->mu);
	s->nconn--;
	pthread_cond_broadcast(&s->cond);
	pthread_mutex_unlock(&s->mu);
	pthread_mutex_destroy(&c->s.mu);
	pthread_cond_destroy(&c->s.hcond);
	pthread_mutex_destroy(&c->qmu);
	pthread_cond_destroy(&c->qcond);
	explicit_bzero(&c->s.auth, sizeof(c->s.auth));
	free(c);
}

static void *conn_main(void *arg)
{
	struct conn *c = arg;
	struct vv_net_server *s = c->srv;
	/* One deadline for the handshake and the AUTH frame together: a peer
	 * that takes nearly auth_ms over its handshake does not get auth_ms
	 * more for its AUTH (each such connection holds one of the caps). */
	int64_t deadline = net_now_ms() + s->auth_ms;
	char why[256];
	int r;

	vv_allow_count(s->allow, VV_ALLOW_HANDSHAKE);
	if ((r = net_tls_accept(s->tls, c->fd, deadline, &c->t, why, sizeof(why))) < 0) {
		audit(c, NULL, "connect", VV_EACCES, why);
		goto out;
	}
	if (s->mtls) {
		struct vv_auth a;

		if (net_tls_peer(c->t, c->cert_user, sizeof(c->cert_user), c->cert_fp) < 0) {
			audit(c, NULL, "unauth", VV_EACCES,
			      "client certificate without a single printable CN: refused");
			goto out;
		}
		/* a certificate naming no vault user goes no further (audited) */
		r = vv_vault_auth_cert(s->v, c->cert_user, c->cert_fp,
				       (const struct sockaddr *)&c->peer, true, &a);
		explicit_bzero(&a, sizeof(a));
		if (r < 0) {
			audit(c, c->cert_user, "unauth", VV_EACCES,
			      "client certificate names no vault user: refused");
			goto out;
		}
	}
	if (authenticate(c, deadline) < 0)
		goto out;
	if (net_nodes_join(s->nodes, c->s.auth.user_id, &c->s.nu) < 0) {
		audit(c, c->s.user, "disconnect", VV_ENOMEM, "out of memory");
		goto out;
	}
	c->s.nodes = s->nodes;
	c->s.v = s->v;
	c->s.ctx.client = c->client;
	c->s.ctx.user = c->s.user;
	c->s.ctx.comm = "remote";
	c->s.ctx.umask = 022;
	vv_auth_ident(&c->s.auth, 0, &c->s.ctx.id);
	for (; c->nworkers < SESS_WORKERS; c->nworkers++)
		if (pthread_create(&c->workers[c->nworkers], NULL, worker, c) != 0)
			break;
	if (c->nworkers == 0)
		goto out;
	serve(c);
out:
	conn_end(c);
	return NULL;
}

/* --- accepting ---------------------------------------------------------------- */

/* One record for the refusals of x counted and not written yet. */
static void refuse_sum(struct vv_net_server *s, struct refusals *x)
{
	char detail[256];

	if (!x->more)
		return;
	snprintf(detail, sizeof(detail), "%llu more connections from this address refused "
		 "within %u s, not audited one by one (the last: %s)", (unsigned long long)x->more,
		 REFUSE_WINDOW_MS / 1000, x->why);
	vv_vault_audit_remote(s->v, x->client, NULL, "connect", x->r, detail);
	x->more = 0;
}

/*
 * Close fd, refused before TLS, and audit it.  Anyone who can reach the
 * port can be refused as fast as it connects, thousands of times a
 * second: one record each filled the audit log's disk at megabytes a
 * second, without a credential or even the whitelist.  So the first
 * REFUSE_AUDITED refusals of an address (key, as for the caps) in each
 * REFUSE_WINDOW_MS are recorded one by one and the rest counted, summed
 * up in one record when the window ends (refuse_tick) or the address's
 * slot is taken for another.  The listener's counters count them all.
 */
static void refuse(struct vv_net_server *s, int fd, const uint8_t key[16], const char *client,
		   int r, const char *why)
{
	int64_t now = net_now_ms();
	struct refusals *x = NULL, *take = NULL;

	close(fd);
	for (size_t i = 0; i < REFUSE_SLOTS && !x; i++) {
		struct refusals *y = &s->rf[i];
		if (y->used && memcmp(y->addr, key, 16) == 0)
			x = y;
		else if (!take || (take->used && (!y->used || y->since < take->since)))
			take = y;
	}
	if (!x) {
		x = take;
		refuse_sum(s, x);
		memset(x, 0, sizeof(*x));
		memcpy(x->addr, key, 16);
		x->used = true;
		x->since = now;
	}
	if (now - x->since >= REFUSE_WINDOW_MS) {
		refuse_sum(s, x);
		x->since = now;
		x->audited = 0;
	}
	if (x->audited < REFUSE_AUDITED) {
		x->audited++;
		vv_vault_audit_remote(s->v, client, NULL, "connect", r, why);
		return;
	}
	x->more++;
	x->r = r;
	x->why = why;
	snprintf(x->client, sizeof(x->client), "%s", client);
}

/* The sums of the windows that ended (all, when the listener stops).
 * True while a window still counts refusals. */
static bool refuse_tick(struct vv_net_server *s, bool all)
{
	int64_t now = net_now_ms();
	bool counting = false;

	for (size_t i = 0; i < REFUSE_SLOTS; i++) {
		struct refusals *x = &s->rf[i];
		if (!x->more)
			continue;
		if (all || now - x->since >= REFUSE_WINDOW_MS) {
			refuse_sum(s, x);
			x->since = now;
			x->audited = 0;
		} else {
			counting = true;
		}
	}
	return counting;
}

static void *acceptor(void *arg)
{
	struct vv_net_server *s = arg;
	bool counting = false;           /* refusals counted, a sum to write */

	for (;;) {
		struct pollfd p[2] = { { .fd = s->lfd, .events = POLLIN },
				       { .fd = s->stop_pipe[0], .events = POLLIN } };
		struct sockaddr_storage ss;
		socklen_t sl = sizeof(ss);
		char client[64];
		struct conn *c;
		unsigned same = 0;
		bool key_only;
		pthread_attr_t at;
		pthread_t th;
		int fd, one = 1;
		uint8_t key[16];

		if (poll(p, 2, counting ? 1000 : -1) < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		if (p[1].revents)
			break;
		counting = refuse_tick(s, false);
		if (!(p[0].revents & POLLIN))
			continue;
		fd = accept4(s->lfd, (struct sockaddr *)&ss, &sl, SOCK_CLOEXEC);
		if (fd < 0)
			continue;
		vv_allow_count(s->allow, VV_ALLOW_ACCEPTED);
		vv_sockaddr_format((struct sockaddr *)&ss, client);
		addr_key((struct sockaddr *)&ss, key);
		/* 1. the whitelist, before a byte is read: the --allow CIDRs,
		 * else those of an active API key (held in memory: a flood from
		 * outside both costs no meta.db query), and then only such a
		 * key may log in */
		key_only = !vv_allow_match(s->allow, (struct sockaddr *)&ss);
		if (key_only && !vv_vault_keys_admit(s->v, (struct sockaddr *)&ss)) {
			vv_allow_count(s->allow, VV_ALLOW_REFUSED);
			refuse(s, fd, key, client, VV_EACCES,
			       "address not in the whitelist: closed before TLS");
			counting = true;
			continue;
		}
		/* 2. connection caps */
		pthread_mutex_lock(&s->mu);
		for (struct conn *o = s->conns; o; o = o->next)
			same += memcmp(o->key, key, 16) == 0;
		if (s->stopping || s->nconn >= s->max_conn || same >= s->max_per_addr) {
			pthread_mutex_unlock(&s->mu);
			refuse(s, fd, key, client, VV_EBUSY, same >= s->max_per_addr
			       ? "too many connections from this address" : "too many connections");
			counting = true;
			continue;
		}
		if (!(c = calloc(1, sizeof(*c)))) {
			pthread_mutex_unlock(&s->mu);
			refuse(s, fd, key, client, VV_ENOMEM, "out of memory");
			counting = true;
			continue;
		}
		c->srv = s;
		c->fd = fd;
		c->peer = ss;
		c->key_only = key_only;
		memcpy(c->key, key, 16);
		snprintf(c->client, sizeof(c->client), "%s", client);
		pthread_mutex_init(&c->s.mu, NULL);
		pthread_cond_init(&c->s.hcond, NULL);
		pthread_mutex_init(&c->qmu, NULL);
		pthread_cond_init(&c->qcond, NULL);
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		c->next = s->conns;
		s->conns = c;
		s->nconn++;
		pthread_attr_init(&at);
		pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
		if (pthread_create(&th, &at, conn_main, c) != 0) {
			s->conns = c->next;
			s->nconn--;
			pthread_mutex_unlock(&s->mu);
			pthread_mutex_destroy(&c->s.mu);
			pthread_cond_destroy(&c->s.hcond);
			pthread_mutex_destroy(&c->qmu);
			pthread_cond_destroy(&c->qcond);
			free(c);
			refuse(s, fd, key, client, VV_ENOMEM, "cannot start a thread");
			counting = true;
		} else {
			pthread_mutex_unlock(&s->mu);
		}
		pthread_attr_destroy(&at);
	}
	refuse_tick(s, true);
	return NULL;
}

int vv_net_start(struct vv_vault *v, const struct vv_net_opts *o, struct vv_net_server **out,
		 char *why, size_t whylen)
{
	struct vv_net_server *s;
	struct sockaddr_storage ss;
	socklen_t sl;
	int r, one = 1;

	*out = NULL;
	if (!o->listen || parse_listen(o->listen, &ss, &sl) < 0) {
		snprintf(why, whylen, "--listen '%s' is not ADDRESS:PORT or [IPV6]:PORT",
			 o->listen ? o->listen : "");
		return VV_EINVAL;
	}
	if (!o->cert || !o->key || !o->allow) {
		snprintf(why, whylen, "a listener needs --tls-cert and --tls-key");
		return VV_EINVAL;
	}
	if (!(s = calloc(1, sizeof(*s))))
		return VV_ENOMEM;
	/* A peer that hangs up must cost its connection, not the daemon:
	 * writes to its socket return EPIPE instead of raising SIGPIPE. */
	signal(SIGPIPE, SIG_IGN);
	s->v = v;
	s->allow = o->allow;
	s->lfd = s->stop_pipe[0] = s->stop_pipe[1] = -1;
	s->auth_ms = o->auth_ms ? o->auth_ms : 10000;
	s->idle_ms = o->idle_ms ? o->idle_ms : 600000;
	s->max_conn = o->max_conn ? o->max_conn : 64;
	s->max_per_addr = o->max_per_addr ? o->max_per_addr : 8;
	pthread_mutex_init(&s->mu, NULL);
	pthread_cond_init(&s->cond, NULL);
	{
		/* in all: 4 users' worth, at most one node per 4 KiB of RAM
		 * (~0.9 KB each: about a fifth of it) */
		size_t user = o->max_nodes ? o->max_nodes : NET_NODES_USER_DEFAULT;
		size_t total = user > SIZE_MAX / 4 ? SIZE_MAX : user * 4;
		long pages = sysconf(_SC_PHYS_PAGES), psize = sysconf(_SC_PAGESIZE);
		size_t ram = pages > 0 && psize > 0 ? (size_t)pages / 4096 * (size_t)psize : 0;

		if (ram && total > ram)
			total = ram;
		if ((r = net_nodes_new(user, total, &s->nodes)) < 0) {
			snprintf(why, whylen, "%s", vv_strerror(r));
			goto fail;
		}
		vv_log(VV_LOG_INFO, "remote: sessions may hold %zu nodes per vault user, %zu in all",
		       user, total);
	}
	if ((r = net_tls_ctx_server(o->cert, o->key, o->client_ca, o->client_crl, &s->tls, why,
				    whylen)) < 0)
		goto fail;
	s->mtls = o->client_ca != NULL;
	r = VV_ESYS;
	if (pipe2(s->stop_pipe, O_CLOEXEC) < 0 ||
	    (s->lfd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0) {
		snprintf(why, whylen, "socket: %s", strerror(errno));
		goto fail;
	}
	setsockopt(s->lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (ss.ss_family == AF_INET6) {
		/* "[::]:PORT" serves IPv4 too, as mapped addresses (judged as IPv4) */
		int off = 0;
		setsockopt(s->lfd, IPPROTO_IPV6, IPV6_V6ONLY, &off, sizeof(off));
	}
	if (bind(s->lfd, (struct sockaddr *)&ss, sl) < 0 || listen(s->lfd, 64) < 0) {
		snprintf(why, whylen, "cannot listen on %s: %s", o->listen, strerror(errno));
		goto fail;
	}
	sl = sizeof(ss);
	getsockname(s->lfd, (struct sockaddr *)&ss, &sl);
	s->port = ntohs(ss.ss_family == AF_INET ? ((struct sockaddr_in *)&ss)->sin_port
						: ((struct sockaddr_in6 *)&ss)->sin6_port);
	if (pthread_create(&s->acceptor, NULL, acceptor, s) != 0) {
		snprintf(why, whylen, "cannot start the listener thread");
		goto fail;
	}
	s->started = true;
	vv_vault_set_allow(v, s->allow);
	*out = s;
	return 0;
fail:
	vv_net_stop(s);
	return r;
}

unsigned vv_net_port(const struct vv_net_server *s)
{
	return s->port;
}

void vv_net_stop(struct vv_net_server *s)
{
	if (!s)
		return;
	if (s->started) {
		vv_vault_set_allow(s->v, NULL);
		pthread_mutex_lock(&s->mu);
		s->stopping = true;
		pthread_mutex_unlock(&s->mu);
		if (write(s->stop_pipe[1], "x", 1) != 1) {
			/* the pipe is ours and empty: cannot fail */
		}
		pthread_join(s->acceptor, NULL);
		pthread_mutex_lock(&s->mu);
		for (struct conn *c = s->conns; c; c = c->next)
			shutdown(c->fd, SHUT_RDWR);
		while (s->nconn)
			pthread_cond_wait(&s->cond, &s->mu);
		pthread_mutex_unlock(&s->mu);
	}
	if (s->lfd >= 0)
		close(s->lfd);
	if (s->stop_pipe[0] >= 0) {
		close(s->stop_pipe[0]);
		close(s->stop_pipe[1]);
	}
	net_tls_ctx_free(s->tls);
	net_nodes_free(s->nodes);
	pthread_mutex_destroy(&s->mu);
	pthread_cond_destroy(&s->cond);
	free(s);
}

int vv_net_selfsigned(const char *dir, const char *name, char fp[65], char *why, size_t whylen)
{
	return net_tls_make(dir, name, NET_CERT_SERVER, NULL, 3650, fp, why, whylen);
}

int vv_net_client_ca(const char *dir, const char *name, char fp[65], char *why, size_t whylen)
{
	return net_tls_make(dir, name, NET_CERT_CA, NULL, 3650, fp, why, whylen);
}

int vv_net_client_cert(const char *dir, const char *user, const char *ca_dir, unsigned days,
		       char fp[65], char *why, size_t whylen)
{
	return net_tls_make(dir, user, NET_CERT_CLIENT, ca_dir, days, fp, why, whylen);
}

int vv_net_client_revoke(const char *ca_dir, const char *const *certs, size_t n, unsigned days,
			 size_t *added, size_t *total, char *why, size_t whylen)
{
	return net_tls_revoke(ca_dir, certs, n, days, added, total, why, whylen);
}

int vv_net_fingerprint(const char *pem, char fp[65], char *why, size_t whylen)
{
	return net_tls_fingerprint_file(pem, fp, why, whylen);
}
