/*
 * net.h - the remote listener: serves an open vault to vv:// clients over
 * TLS 1.3 (docs/remote.md).  The only public entry of net/.
 *
 * The daemon that holds the vault's keys starts it next to (or instead
 * of) its FUSE mount.  Order of checks on every connection, each before
 * the next is attempted:
 *   1. the peer's address is in the whitelist (vecvault/remote.h), else
 *      the socket is closed right after accept(), before a TLS byte is
 *      read (audited: op "connect", EACCES, the address);
 *   2. connection caps (in all, per address);
 *   3. the TLS 1.3 handshake, within a deadline;
 *   4. authentication: the first frame must be AUTH (an API key, or a
 *      user and password; vecvault/users.h), within a deadline, after the
 *      per-address backoff of earlier failures; anything else closes the
 *      connection (audited "unauth");
 *   5. requests, each run through the same vv_vault_* call and access
 *      check as a local one, with the vault user's uid and role gids, and
 *      audited with client "addr:port" and user "name/key-id".
 */
#ifndef VECVAULT_NET_H
#define VECVAULT_NET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct vv_vault;
struct vv_allow;
struct vv_net_server;

struct vv_net_opts {
	const char *listen;          /* "ADDR:PORT", "[V6ADDR]:PORT"; port 0 = any */
	const char *cert, *key;      /* PEM files */
	const char *client_ca;       /* request client certificates signed by it; NULL = none */
	const char *client_crl;      /* with client_ca: a CRL of it, re-read on change; NULL = none */
	struct vv_allow *allow;      /* borrowed; must outlive the server */
	unsigned auth_ms;            /* handshake + AUTH deadline; 0 = 10000 */
	unsigned idle_ms;            /* an authenticated connection without a request; 0 = 600000 */
	unsigned max_conn;           /* 0 = 64 */
	unsigned max_per_addr;       /* 0 = 8 */
	size_t max_nodes;            /* nodes the sessions of one vault user may hold
	                                (docs/remote.md "Nodes a session holds");
	                                0 = 2^20; in all 4 times that, at most one
	                                per 4 KiB of RAM */
};

/* Bind, listen and start serving v (which must stay open until
 * vv_net_stop returns).  0, or a VV_E* code with the reason in why (the
 * address does not parse or cannot be bound, the certificate or key does
 * not load).  *out owned by the caller: vv_net_stop. */
int vv_net_start(struct vv_vault *v, const struct vv_net_opts *o, struct vv_net_server **out,
		 char *why, size_t whylen);
/* The port actually bound (for port 0). */
unsigned vv_net_port(const struct vv_net_server *s);
/* Stop accepting, end every connection (requests in flight finish and
 * every handle a client left open is released), free.  NULL ok. */
void vv_net_stop(struct vv_net_server *s);

/* --- the client side (the vv:// FUSE daemon, fs/remote.c) ----------------- */

struct vv_net_client;
struct vv_rw_msg;

struct vv_net_client_opts {
	const char *host;            /* name or address */
	unsigned port;
	const char *bind;            /* source address, or NULL */
	const char *ca;              /* verify the chain and the name by this CA */
	const char *pin;             /* else: the certificate's SHA-256, 64 hex digits */
	const char *known_hosts;     /* else: trust on first use, recorded in this file */
	const char *user;            /* password login: the vault user */
	const char *secret;          /* the API key token, or the password; NULL: log in
	                                by the client certificate (cert) alone */
	const char *cert;            /* mutual TLS: a PEM client certificate (chain) */
	const char *cert_key;        /* its PEM private key (NULL: in cert) */
	unsigned timeout_ms;         /* a request not answered in time: the
	                                connection is declared dead; 0 = 30000 */
};

/*
 * Connect, verify the server (CA, pin, or known_hosts: a changed
 * certificate is refused, naming both fingerprints), authenticate.  No
 * thread is started yet (the caller may fork): vv_net_client_start does.
 * The whole process is made non-dumpable with core files off first
 * (vecvault/harden.h): it holds the login secret, in locked memory, until
 * vv_net_client_close.
 * 0, or a VV_E* code with why (VV_EACCES: refused by the server or the
 * certificate check; VV_EIO: unreachable; VV_ESYS: the hardening failed).
 * *uid: the vault user's uid.
 */
int vv_net_client_connect(const struct vv_net_client_opts *o, struct vv_net_client **out,
			  unsigned *uid, char *why, size_t whylen);
/* Start the thread that reads replies (after a fork). */
int vv_net_client_start(struct vv_net_client *c);
/*
 * One request: rq's header op and fields (id and flags are set here);
 * blocks until the reply, decoded into rep (its blob points into *hold,
 * owned by the caller, free() it), or until the connection fails or the
 * timeout passes (VV_ENOTCONN; every later call too).  Returns the reply's
 * status.  Thread-safe: many calls are in flight at once.
 */
int vv_net_client_call(struct vv_net_client *c, const struct vv_rw_msg *rq, struct vv_rw_msg *rep,
		       uint8_t **hold);
/*
 * A request whose reply nobody waits for (FORGET): sent once fewer than
 * limit requests are in flight (so that foreground calls keep slots), its
 * reply dropped when it arrives.  0 when sent, or VV_ENOTCONN.
 */
int vv_net_client_post(struct vv_net_client *c, const struct vv_rw_msg *rq, unsigned limit);
/*
 * After the connection failed (vv_net_client_alive false): connect and log
 * in again with the same options, at most once per backoff interval (0.5 s
 * doubling to 30 s; sooner: VV_ENOTCONN at once).  The new session holds
 * no inode reference or handle of the old one: the caller re-establishes
 * them (fs/remote_conn.c).  0 with *epoch the new connection's number (also
 * when another thread reconnected already), VV_ENOTCONN, or VV_EACCES
 * (the login is refused now, or maps to another uid), with why.
 */
int vv_net_client_reconnect(struct vv_net_client *c, unsigned *epoch, char *why, size_t whylen);
/* The current connection's number (0 for the first). */
unsigned vv_net_client_epoch(struct vv_net_client *c);
/* The vault user the server logged this client in as. */
const char *vv_net_client_user(const struct vv_net_client *c);
/* false once the connection failed (closed, garbage, a write timed out). */
bool vv_net_client_alive(struct vv_net_client *c);
void vv_net_client_close(struct vv_net_client *c);       /* NULL ok */

/* `vecvault tls selfsigned`: DIR/key.pem and DIR/cert.pem for name, and
 * the certificate's SHA-256 fingerprint (64 hex digits) in fp.  Never
 * overwrites (VV_EEXIST). */
int vv_net_selfsigned(const char *dir, const char *name, char fp[65], char *why, size_t whylen);
/* `vecvault tls client-ca`: DIR/key.pem and DIR/cert.pem of a CA for
 * client certificates (the server's --client-ca is DIR/cert.pem), ten
 * years.  `vecvault tls client`: DIR/key.pem and DIR/cert.pem of a client
 * certificate with CN user, signed by the CA in ca_dir, valid days. */
int vv_net_client_ca(const char *dir, const char *name, char fp[65], char *why, size_t whylen);
int vv_net_client_cert(const char *dir, const char *user, const char *ca_dir, unsigned days,
		       char fp[65], char *why, size_t whylen);
/* `vecvault tls revoke`: list the client certificates (PEM files issued
 * by the CA in ca_dir) in ca_dir/crl.pem, the server's --client-crl,
 * keeping what it listed; the CRL is valid days (run it again, with no
 * certificate, to renew it).  *added: newly listed; *total: listed now. */
int vv_net_client_revoke(const char *ca_dir, const char *const *certs, size_t n, unsigned days,
			 size_t *added, size_t *total, char *why, size_t whylen);
/* The SHA-256 fingerprint of a PEM certificate file. */
int vv_net_fingerprint(const char *pem, char fp[65], char *why, size_t whylen);

#endif
