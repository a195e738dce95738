/*
 * net_int.h - internals of the remote listener (net/): the TLS layer
 * (tls.c, the only file that includes OpenSSL's libssl) and what the
 * server's files share.
 *
 * TLS connections are used from several threads at once: one reads
 * frames, several workers write replies.  OpenSSL allows one call on an
 * SSL object at a time, so every call takes the connection's lock, and
 * writers are serialized among themselves by a second lock (a write that
 * must be retried must be retried with the same bytes, before any other
 * write).  The socket is non-blocking: nobody holds the SSL lock while
 * waiting for the network.
 */
#ifndef VV_NET_INT_H
#define VV_NET_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct tls_ctx;
struct tls_conn;

/* Milliseconds on CLOCK_MONOTONIC. */
int64_t net_now_ms(void);

/* A copy of n bytes of secret s, NUL-terminated, in pages of their own
 * (*cap bytes), left out of core dumps; *locked: mlock succeeded (a fork
 * does not inherit it).  NULL without memory.  secret.c. */
char *net_secret_keep(const char *s, size_t n, size_t *cap, bool *locked);
/* Wipe, unlock and unmap what net_secret_keep gave; NULL ok. */
void net_secret_drop(char *p, size_t cap);

/* A server context: TLS 1.3 only, the certificate chain and key from PEM
 * files; with client_ca, a client certificate signed by it is required;
 * with client_crl (needs client_ca), a PEM CRL signed by a CA of
 * client_ca: the certificates it lists are refused (the file is read
 * again when it changes).  0, or VV_EINVAL / VV_ECRYPTO / VV_ESYS with the
 * reason in why. */
int net_tls_ctx_server(const char *cert, const char *key, const char *client_ca,
		   const char *client_crl, struct tls_ctx **out, char *why, size_t whylen);
void net_tls_ctx_free(struct tls_ctx *c);                    /* NULL ok */

/* Run the server handshake on the connected socket fd (made
 * non-blocking; *out owns it from then on, also on failure the caller
 * closes fd only if *out is NULL).  deadline: net_now_ms() value.  0, or
 * VV_EACCES with the peer's protocol error in why (TLS 1.2, garbage),
 * VV_EAGAIN (deadline passed). */
int net_tls_accept(struct tls_ctx *c, int fd, int64_t deadline, struct tls_conn **out,
	       char *why, size_t whylen);

/* Read up to n bytes: 0 with *got > 0; VV_ENODATA (the peer closed),
 * VV_EAGAIN (deadline), VV_EIO (an error or a shut-down socket),
 * VV_ECANCELED (on a server connection: the peer sent more than 32 TLS
 * KeyUpdates within a minute; end it). */
int net_tls_read(struct tls_conn *t, void *buf, size_t n, int64_t deadline, size_t *got);
/* Read exactly n bytes (same codes; VV_ENODATA only before the first). */
int net_tls_read_full(struct tls_conn *t, void *buf, size_t n, int64_t deadline);
/* Write all n bytes before deadline: 0, VV_EAGAIN, VV_EIO. */
int net_tls_write(struct tls_conn *t, const void *buf, size_t n, int64_t deadline);
/* Wake every thread waiting on t (shutdown(2) of the socket). */
void net_tls_abort(struct tls_conn *t);
/* Send close_notify if possible, close the socket, free.  NULL ok. */
void net_tls_free(struct tls_conn *t);

/* Client handshake on the connected socket fd (the caller still owns fd
 * on failure): TLS 1.3 only; with ca, the chain must verify and name host.
 * fp gets the server certificate's SHA-256 fingerprint (the caller checks
 * a pin or known_hosts).  0, VV_EACCES with why, VV_EAGAIN. */
int net_tls_connect(int fd, const char *host, const char *ca, const char *cert,
		const char *cert_key, int64_t deadline,
		struct tls_conn **out, char fp[65], char *why, size_t whylen);
/* The verified client certificate of a server-side connection (--client-ca):
 * its single subject CN (printable ASCII, shorter than cnlen) and SHA-256.
 * 0, or VV_EACCES when there is none, it did not verify, or the CN is
 * missing, repeated or odd. */
int net_tls_peer(struct tls_conn *t, char *cn, size_t cnlen, char fp[65]);
/* Is the client certificate of t listed in c's --client-crl?  The file is
 * read again when it changed (looked at most once a second; one that no
 * longer reads or verifies leaves the CRL before in force).  The
 * handshake checks new connections the same way (VV_EACCES, "certificate
 * revoked"); this is for the once-a-second recheck of open sessions. */
bool net_tls_peer_revoked(struct tls_ctx *c, struct tls_conn *t);
/* Has the client certificate of t, or a certificate of its verified
 * chain, passed its notAfter since the handshake?  The handshake refuses
 * an expired one; this is for the once-a-second recheck of open sessions. */
bool net_tls_peer_expired(struct tls_conn *t);

/* Write DIR/key.pem (0600) and DIR/cert.pem (0644): a P-256 key and a
 * self-signed certificate for name (CN and subjectAltName DNS, plus IP
 * when name is an address), valid ten years.  fp gets the certificate's
 * SHA-256 fingerprint as 64 hex digits.  0, VV_EEXIST (a file is there:
 * nothing overwritten), VV_ESYS / VV_ECRYPTO with why. */
enum { NET_CERT_SERVER, NET_CERT_CA, NET_CERT_CLIENT };
/* Make DIR/key.pem (0600) and DIR/cert.pem: NET_CERT_SERVER self-signed
 * for a host name or address (CN and subjectAltName), NET_CERT_CA a
 * self-signed CA for client certificates, NET_CERT_CLIENT a clientAuth
 * certificate with CN name signed by the CA in ca_dir (its cert.pem and
 * key.pem).  Valid days.  fp: the SHA-256; never overwrites. */
int net_tls_make(const char *dir, const char *name, int kind, const char *ca_dir, unsigned days,
		 char fp[65], char *why, size_t whylen);
/* Add the certificates (PEM files, each issued by the CA in ca_dir) to
 * ca_dir/crl.pem, signed by that CA, next update in days; the entries of
 * the CRL already there are kept.  Written to a temporary file and
 * renamed.  *added: newly listed; *total: listed now. */
int net_tls_revoke(const char *ca_dir, const char *const *certs, size_t n, unsigned days,
		   size_t *added, size_t *total, char *why, size_t whylen);
/* The SHA-256 fingerprint of the first certificate in a PEM file. */
int net_tls_fingerprint_file(const char *pem, char fp[65], char *why, size_t whylen);

#endif

/* --- server.c / serve_ops.c: one authenticated session --------------------- */

#include <pthread.h>
#include <stdatomic.h>
#include <sys/socket.h>

#include "vecvault/remote_wire.h"
#include "vecvault/users.h"
#include "vecvault/vault.h"

#define SESS_WORKERS 4               /* requests of one session run at once */
#define SESS_MAX_HANDLES 4096        /* open files and directories of a session */

/* --- nodes.c: the node budget of remote sessions ---------------------------
 * Each inode a session holds lookup references on is one entry of its
 * table and, once for all sessions, a node of the vault's in memory:
 * charged to the session's vault user (all their sessions together) and
 * to the listener in all (docs/remote.md "Nodes a session holds").
 * Thread-safe; its lock is a leaf. */
struct net_nodes;
struct net_nodes_user;
#define NET_NODES_USER_DEFAULT ((size_t)1 << 20)   /* --remote-nodes */

/* A budget: user_max entries per vault user, total_max in all. */
int net_nodes_new(size_t user_max, size_t total_max, struct net_nodes **out);
void net_nodes_free(struct net_nodes *b);                   /* NULL ok */
/* A session of vault user user_id starts: *out its user's account (shared
 * by their sessions).  0 or VV_ENOMEM. */
int net_nodes_join(struct net_nodes *b, int64_t user_id, struct net_nodes_user **out);
/* A session that gave back every entry (net_nodes_give) ends; u NULL ok. */
void net_nodes_leave(struct net_nodes *b, struct net_nodes_user *u);
/* One entry more for u: 0, or VV_ENOMEM past u's bound or the total's.
 * why (whylen bytes) gets the reason at the first refusal of an episode
 * (until the count is back to 3/4 of the bound), else "": audit it then. */
int net_nodes_take(struct net_nodes *b, struct net_nodes_user *u, char *why, size_t whylen);
/* n entries of u given back (forgotten, or the session ended). */
void net_nodes_give(struct net_nodes *b, struct net_nodes_user *u, size_t n);
/* u's entries (0 for NULL) and the total, for tests and the log. */
void net_nodes_count(struct net_nodes *b, struct net_nodes_user *u, size_t *user, size_t *total);

enum { H_FREE = 0, H_FILE = 1, H_DIR = 2 };

struct sess_handle {
	int kind;
	uint32_t gen;                /* bumped at each reuse: stale ids miss */
	void *p;                     /* struct vv_file * or struct vv_dir * */
	unsigned busy;               /* requests running on it (h_get .. h_put) */
	bool closing;                /* a release waits for busy 0: no new user */
};

/* The inodes this session holds lookup references on: only those (and
 * the root) may be named by its requests, as the kernel names only
 * inodes it looked up.  Open addressing on ino; count 0 = free slot. */
struct sess_ino {
	uint64_t ino, count;
};

struct sess {
	struct vv_vault *v;
	struct vv_ctx ctx;           /* the vault user's identity (groups in auth) */
	struct vv_auth auth;
	char client[64];             /* "addr:port" */
	char user[64];               /* "name/key-id" or "name" */
	pthread_mutex_t mu;          /* handles and inodes */
	pthread_cond_t hcond;        /* a handle's busy count fell to 0 */
	struct sess_handle *h;
	size_t nh;
	struct sess_ino *ino;
	size_t ino_cap, ino_used;    /* ino_used entries are charged to nodes */
	struct net_nodes *nodes;     /* the listener's budget ... */
	struct net_nodes_user *nu;   /* ... and the vault user's account in it */
	atomic_bool revoked;         /* the key stopped being valid: refuse all */
};

/* Run one decoded request of s; fill the reply message rep (its header's
 * status and fields); data: a VV_RW_DATA_MAX scratch buffer for the
 * reply's blob.  Never fails itself: errors go into rep->h.status. */
void net_sess_run(struct sess *s, const struct vv_rw_msg *rq, struct vv_rw_msg *rep, uint8_t *data);
/* Release every handle and lookup reference s still holds. */
void net_sess_release(struct sess *s);
