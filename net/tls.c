/*
 * tls.c - TLS for the remote listener: the one file that includes libssl.
 *
 * Policy, fixed here and nowhere else: TLS 1.3 only (min = max = 1.3, so a
 * TLS 1.2 ClientHello fails the handshake with a protocol_version alert),
 * no session tickets or resumption (every connection is authenticated from
 * scratch), no renegotiation (not in 1.3).  net_int.h says how a
 * connection is shared between threads.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "net_int.h"
#include "vecvault/error.h"
#include "vecvault/log.h"

struct tls_ctx {
	SSL_CTX *ssl;
	char *ca_path;               /* --client-ca: the CRL's signer is one of these */
	char *crl_path;              /* --client-crl, NULL = none */
	pthread_mutex_t crl_mu;      /* crl and crl_st */
	X509_CRL *crl;               /* the CRL in force (verified) */
	struct stat crl_st;          /* the file it was read from, to notice a change */
	int64_t crl_looked;          /* net_now_ms() of the last stat */
};

/* A peer's TLS 1.3 KeyUpdate asks this side to update its keys too; each
 * costs both directions a key derivation and a record.  A client has no
 * reason to send many (ours sends none), so more than KU_MAX within
 * KU_WINDOW_MS ends the connection (net_tls_read: VV_ECANCELED). */
#define KU_MAX 32
#define KU_WINDOW_MS 60000

struct tls_conn {
	SSL *ssl;
	int fd;
	int64_t ku_since;            /* start of the current KeyUpdate window */
	unsigned ku_count;           /* KeyUpdates received in it */
	bool ku_flood;               /* more than KU_MAX: the connection ends */
	pthread_mutex_t mu;          /* every SSL_* call */
	pthread_mutex_t wmu;         /* one writer at a time */
};

int64_t net_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* OpenSSL's last error as text, for why. */
static void ssl_why(char *why, size_t whylen, const char *what)
{
	unsigned long e = ERR_get_error();
	char buf[256];

	if (e) {
		ERR_error_string_n(e, buf, sizeof(buf));
		snprintf(why, whylen, "%s: %s", what, buf);
	} else {
		snprintf(why, whylen, "%s", what);
	}
	ERR_clear_error();
}

/* --- client certificate revocation (--client-crl) -------------------------- */

/* Read the CRL at path and check it is signed by a CA in ca_path.  A new
 * reference in *out, or VV_EINVAL / VV_ESYS with why. */
static int crl_read(const char *path, const char *ca_path, X509_CRL **out, char *why,
		    size_t whylen)
{
	X509_CRL *crl = NULL;
	X509 *ca;
	FILE *f;
	bool signed_ok = false;

	*out = NULL;
	if (!(f = fopen(path, "re"))) {
		snprintf(why, whylen, "cannot read the CRL %s: %s", path, strerror(errno));
		return VV_ESYS;
	}
	crl = PEM_read_X509_CRL(f, NULL, NULL, NULL);
	fclose(f);
	if (!crl) {
		char what[4200];

		snprintf(what, sizeof(what), "the CRL %s (--client-crl) is not a PEM X.509 CRL", path);
		ssl_why(why, whylen, what);
		return VV_EINVAL;
	}
	if ((f = fopen(ca_path, "re"))) {
		while (!signed_ok && (ca = PEM_read_X509(f, NULL, NULL, NULL))) {
			signed_ok = X509_NAME_cmp(X509_get_subject_name(ca),
						  X509_CRL_get_issuer(crl)) == 0 &&
				    X509_CRL_verify(crl, X509_get0_pubkey(ca)) == 1;
			X509_free(ca);
		}
		fclose(f);
	}
	ERR_clear_error();
	if (!signed_ok) {
		snprintf(why, whylen, "the CRL %s is not signed by a CA of --client-ca %s", path,
			 ca_path);
		X509_CRL_free(crl);
		return VV_EINVAL;
	}
	*out = crl;
	return 0;
}

/* Load the CRL again when its file changed (looked at most once a
 * second).  A file that no longer reads or verifies leaves the CRL in
 * force as it was (revocations only ever stay), with a warning. */
static void crl_refresh(struct tls_ctx *c)
{
	struct stat st;
	X509_CRL *crl, *old = NULL;
	char why[512];
	int64_t now = net_now_ms();

	if (!c->crl_path)
		return;
	pthread_mutex_lock(&c->crl_mu);
	if (now - c->crl_looked < 1000) {
		pthread_mutex_unlock(&c->crl_mu);
		return;
	}
	c->crl_looked = now;
	if (stat(c->crl_path, &st) != 0)
		memset(&st, 0, sizeof(st));
	if (st.st_ino == c->crl_st.st_ino && st.st_dev == c->crl_st.st_dev &&
	    st.st_size == c->crl_st.st_size && st.st_mtim.tv_sec == c->crl_st.st_mtim.tv_sec &&
	    st.st_mtim.tv_nsec == c->crl_st.st_mtim.tv_nsec) {
		pthread_mutex_unlock(&c->crl_mu);
		return;
	}
	/* This version is dealt with, read or not: the one stat'ed before
	 * the read, so a change during the read is seen next time. */
	c->crl_st = st;
	pthread_mutex_unlock(&c->crl_mu);
	if (crl_read(c->crl_path, c->ca_path, &crl, why, sizeof(why)) < 0) {
		vv_log(VV_LOG_WARN, "remote: %s; the CRL read before stays in force", why);
		return;
	}
	pthread_mutex_lock(&c->crl_mu);
	old = c->crl;
	c->crl = crl;
	pthread_mutex_unlock(&c->crl_mu);
	X509_CRL_free(old);
	vv_log(VV_LOG_INFO, "remote: client CRL %s loaded (%d revoked)", c->crl_path,
	       crl && X509_CRL_get_REVOKED(crl) ? sk_X509_REVOKED_num(X509_CRL_get_REVOKED(crl)) : 0);
}

/* Is x listed in the CRL in force? */
static bool crl_lists(struct tls_ctx *c, X509 *x)
{
	X509_REVOKED *rev;
	bool hit;

	pthread_mutex_lock(&c->crl_mu);
	hit = c->crl && X509_NAME_cmp(X509_get_issuer_name(x), X509_CRL_get_issuer(c->crl)) == 0 &&
	      X509_CRL_get0_by_serial(c->crl, &rev, (ASN1_INTEGER *)X509_get0_serialNumber(x)) == 1;
	pthread_mutex_unlock(&c->crl_mu);
	return hit;
}

/* The handshake's verify callback: OpenSSL's chain verdict, then the
 * leaf against the CRL. */
static int verify_cb(int ok, X509_STORE_CTX *xs)
{
	SSL *ssl = X509_STORE_CTX_get_ex_data(xs, SSL_get_ex_data_X509_STORE_CTX_idx());
	struct tls_ctx *c = ssl ? SSL_CTX_get_app_data(SSL_get_SSL_CTX(ssl)) : NULL;
	X509 *x = X509_STORE_CTX_get_current_cert(xs);

	if (!ok || !c || X509_STORE_CTX_get_error_depth(xs) != 0 || !x)
		return ok;
	if (crl_lists(c, x)) {
		X509_STORE_CTX_set_error(xs, X509_V_ERR_CERT_REVOKED);
		return 0;
	}
	return 1;
}

bool net_tls_peer_revoked(struct tls_ctx *c, struct tls_conn *t)
{
	X509 *x;
	bool hit;

	if (!c->crl_path)
		return false;
	crl_refresh(c);
	pthread_mutex_lock(&t->mu);
	x = SSL_get1_peer_certificate(t->ssl);
	pthread_mutex_unlock(&t->mu);
	hit = x && crl_lists(c, x);
	X509_free(x);
	return hit;
}

bool net_tls_peer_expired(struct tls_conn *t)
{
	STACK_OF(X509) *chain;
	bool gone = false;

	pthread_mutex_lock(&t->mu);
	chain = SSL_get0_verified_chain(t->ssl);
	for (int i = 0; chain && !gone && i < sk_X509_num(chain); i++)
		gone = X509_cmp_current_time(X509_get0_notAfter(sk_X509_value(chain, i))) < 0;
	pthread_mutex_unlock(&t->mu);
	return gone;
}

int net_tls_ctx_server(const char *cert, const char *key, const char *client_ca,
		   const char *client_crl, struct tls_ctx **out, char *why, size_t whylen)
{
	struct tls_ctx *c = calloc(1, sizeof(*c));
	int r = VV_ECRYPTO;

	*out = NULL;
	if (!c)
		return VV_ENOMEM;
	pthread_mutex_init(&c->crl_mu, NULL);
	if (!(c->ssl = SSL_CTX_new(TLS_server_method()))) {
		ssl_why(why, whylen, "cannot make a TLS context");
		goto fail;
	}
	if (!SSL_CTX_set_min_proto_version(c->ssl, TLS1_3_VERSION) ||
	    !SSL_CTX_set_max_proto_version(c->ssl, TLS1_3_VERSION)) {
		ssl_why(why, whylen, "cannot require TLS 1.3");
		goto fail;
	}
	SSL_CTX_set_options(c->ssl, SSL_OP_NO_TICKET | SSL_OP_NO_RENEGOTIATION);
	SSL_CTX_set_num_tickets(c->ssl, 0);
	SSL_CTX_set_session_cache_mode(c->ssl, SSL_SESS_CACHE_OFF);
	SSL_CTX_set_mode(c->ssl, SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
	if (SSL_CTX_use_certificate_chain_file(c->ssl, cert) != 1) {
		ssl_why(why, whylen, "cannot load the certificate (--tls-cert)");
		r = VV_EINVAL;
		goto fail;
	}
	if (SSL_CTX_use_PrivateKey_file(c->ssl, key, SSL_FILETYPE_PEM) != 1) {
		ssl_why(why, whylen, "cannot load the private key (--tls-key)");
		r = VV_EINVAL;
		goto fail;
	}
	if (SSL_CTX_check_private_key(c->ssl) != 1) {
		ssl_why(why, whylen, "the private key (--tls-key) does not match the certificate");
		r = VV_EINVAL;
		goto fail;
	}
	if (client_ca) {
		if (SSL_CTX_load_verify_locations(c->ssl, client_ca, NULL) != 1) {
			ssl_why(why, whylen, "cannot load the client CA (--client-ca)");
			r = VV_EINVAL;
			goto fail;
		}
		/* Required, checked in the handshake (chain, dates); no
		 * post-handshake authentication, no fallback without one. */
		STACK_OF(X509_NAME) *names = SSL_load_client_CA_file(client_ca);

		if (!names) {
			ssl_why(why, whylen, "the client CA (--client-ca) holds no certificate");
			r = VV_EINVAL;
			goto fail;
		}
		SSL_CTX_set_client_CA_list(c->ssl, names);
		SSL_CTX_set_app_data(c->ssl, c);
		SSL_CTX_set_verify(c->ssl, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT,
				   verify_cb);
		SSL_CTX_set_verify_depth(c->ssl, 4);
		if (!(c->ca_path = strdup(client_ca))) {
			r = VV_ENOMEM;
			goto fail;
		}
	}
	if (client_crl) {
		if (!client_ca) {
			snprintf(why, whylen, "--client-crl needs --client-ca");
			r = VV_EINVAL;
			goto fail;
		}
		if (!(c->crl_path = strdup(client_crl))) {
			r = VV_ENOMEM;
			goto fail;
		}
		/* At start a CRL that does not read or verify is an error. */
		if (stat(client_crl, &c->crl_st) != 0)
			memset(&c->crl_st, 0, sizeof(c->crl_st));
		if ((r = crl_read(client_crl, client_ca, &c->crl, why, whylen)) < 0)
			goto fail;
		c->crl_looked = net_now_ms();
	}
	*out = c;
	return 0;
fail:
	net_tls_ctx_free(c);
	return r;
}

void net_tls_ctx_free(struct tls_ctx *c)
{
	if (!c)
		return;
	SSL_CTX_free(c->ssl);
	X509_CRL_free(c->crl);
	free(c->ca_path);
	free(c->crl_path);
	pthread_mutex_destroy(&c->crl_mu);
	free(c);
}

/* Wait for fd to be readable (want_write false) or writable, until
 * deadline.  0, VV_EAGAIN, VV_EIO (hung up / error). */
static int wait_fd(int fd, bool want_write, int64_t deadline)
{
	for (;;) {
		struct pollfd p = { .fd = fd, .events = want_write ? POLLOUT : POLLIN };
		int64_t left = deadline - net_now_ms();
		int n;

		if (left <= 0)
			return VV_EAGAIN;
		n = poll(&p, 1, left > 1000 ? 1000 : (int)left);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return VV_EIO;
		if (n == 0)
			continue;
		if (p.revents & (POLLERR | POLLNVAL))
			return VV_EIO;
		/* POLLHUP with data still to read: let SSL_read see the end */
		return 0;
	}
}

/* OpenSSL's message callback, under t->mu (inside SSL_read): count the
 * peer's KeyUpdate handshake messages. */
static void on_msg(int write_p, int version, int content_type, const void *buf, size_t len,
		   SSL *ssl, void *arg)
{
	struct tls_conn *t = arg;
	int64_t now;

	(void)version;
	(void)ssl;
	if (write_p || content_type != SSL3_RT_HANDSHAKE || len < 1 ||
	    ((const uint8_t *)buf)[0] != SSL3_MT_KEY_UPDATE)
		return;
	now = net_now_ms();
	if (now - t->ku_since >= KU_WINDOW_MS) {
		t->ku_since = now;
		t->ku_count = 0;
	}
	if (++t->ku_count > KU_MAX)
		t->ku_flood = true;
}

int net_tls_accept(struct tls_ctx *c, int fd, int64_t deadline, struct tls_conn **out,
	       char *why, size_t whylen)
{
	struct tls_conn *t = calloc(1, sizeof(*t));
	int r;

	*out = NULL;
	if (!t)
		return VV_ENOMEM;
	fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
	t->fd = fd;
	pthread_mutex_init(&t->mu, NULL);
	pthread_mutex_init(&t->wmu, NULL);
	if (!(t->ssl = SSL_new(c->ssl)) || SSL_set_fd(t->ssl, fd) != 1) {
		ssl_why(why, whylen, "cannot start TLS");
		r = VV_ECRYPTO;
		goto fail;
	}
	crl_refresh(c);
	t->ku_since = net_now_ms();
	SSL_set_msg_callback(t->ssl, on_msg);
	SSL_set_msg_callback_arg(t->ssl, t);
	for (;;) {
		int k = SSL_accept(t->ssl), e;

		if (k == 1)
			break;
		e = SSL_get_error(t->ssl, k);
		if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
			if ((r = wait_fd(fd, e == SSL_ERROR_WANT_WRITE, deadline)) < 0) {
				snprintf(why, whylen, "TLS handshake %s",
					 r == VV_EAGAIN ? "timed out" : "aborted");
				goto fail;
			}
			continue;
		}
		if (SSL_get_verify_result(t->ssl) != X509_V_OK)
			snprintf(why, whylen, "TLS handshake failed: client certificate refused: %s",
				 X509_verify_cert_error_string(SSL_get_verify_result(t->ssl)));
		else
			ssl_why(why, whylen, "TLS handshake failed");
		ERR_clear_error();
		r = VV_EACCES;
		goto fail;
	}
	*out = t;
	return 0;
fail:
	/* The caller still owns fd. */
	SSL_free(t->ssl);
	pthread_mutex_destroy(&t->mu);
	pthread_mutex_destroy(&t->wmu);
	free(t);
	return r;
}

int net_tls_read(struct tls_conn *t, void *buf, size_t n, int64_t deadline, size_t *got)
{
	for (;;) {
		int k, e, r;

		pthread_mutex_lock(&t->mu);
		k = SSL_read(t->ssl, buf, n > INT32_MAX ? INT32_MAX : (int)n);
		e = k > 0 ? SSL_ERROR_NONE : SSL_get_error(t->ssl, k);
		if (e != SSL_ERROR_NONE)
			ERR_clear_error();
		if (t->ku_flood) {
			pthread_mutex_unlock(&t->mu);
			return VV_ECANCELED;
		}
		pthread_mutex_unlock(&t->mu);
		if (k > 0) {
			*got = (size_t)k;
			return 0;
		}
		if (e == SSL_ERROR_ZERO_RETURN)
			return VV_ENODATA;
		if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE)
			return e == SSL_ERROR_SYSCALL && errno == 0 ? VV_ENODATA : VV_EIO;
		if ((r = wait_fd(t->fd, e == SSL_ERROR_WANT_WRITE, deadline)) < 0)
			return r;
	}
}

int net_tls_read_full(struct tls_conn *t, void *buf, size_t n, int64_t deadline)
{
	size_t done = 0, got;
	int r;

	while (done < n) {
		if ((r = net_tls_read(t, (char *)buf + done, n - done, deadline, &got)) < 0)
			return r == VV_ENODATA && done ? VV_EIO : r;
		done += got;
	}
	return 0;
}

int net_tls_write(struct tls_conn *t, const void *buf, size_t n, int64_t deadline)
{
	size_t done = 0;
	int r = 0;

	pthread_mutex_lock(&t->wmu);
	while (done < n) {
		size_t chunk = n - done > (1u << 30) ? (1u << 30) : n - done;
		int k, e;

		pthread_mutex_lock(&t->mu);
		k = SSL_write(t->ssl, (const char *)buf + done, (int)chunk);
		e = k > 0 ? SSL_ERROR_NONE : SSL_get_error(t->ssl, k);
		if (e != SSL_ERROR_NONE)
			ERR_clear_error();
		pthread_mutex_unlock(&t->mu);
		if (k > 0) {
			done += (size_t)k;
			continue;
		}
		if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE) {
			r = VV_EIO;
			break;
		}
		if ((r = wait_fd(t->fd, e == SSL_ERROR_WANT_WRITE, deadline)) < 0)
			break;
	}
	pthread_mutex_unlock(&t->wmu);
	return r;
}

void net_tls_abort(struct tls_conn *t)
{
	if (t)                       /* NULL: a client between connections */
		shutdown(t->fd, SHUT_RDWR);
}

void net_tls_free(struct tls_conn *t)
{
	if (!t)
		return;
	pthread_mutex_lock(&t->mu);
	(void)SSL_shutdown(t->ssl);     /* best effort, non-blocking */
	ERR_clear_error();
	pthread_mutex_unlock(&t->mu);
	SSL_free(t->ssl);
	close(t->fd);
	pthread_mutex_destroy(&t->mu);
	pthread_mutex_destroy(&t->wmu);
	free(t);
}

/* --- certificates ------------------------------------------------------- */

static void hex(const uint8_t *p, size_t n, char *out)
{
	static const char d[] = "0123456789abcdef";

	for (size_t i = 0; i < n; i++) {
		out[2 * i] = d[p[i] >> 4];
		out[2 * i + 1] = d[p[i] & 15];
	}
	out[2 * n] = '\0';
}

static int fingerprint(X509 *x, char fp[65])
{
	uint8_t md[EVP_MAX_MD_SIZE];
	unsigned mdlen = 0;

	if (X509_digest(x, EVP_sha256(), md, &mdlen) != 1 || mdlen != 32)
		return VV_ECRYPTO;
	hex(md, 32, fp);
	return 0;
}

int net_tls_fingerprint_file(const char *pem, char fp[65], char *why, size_t whylen)
{
	FILE *f = fopen(pem, "r");
	X509 *x;
	int r;

	if (!f) {
		snprintf(why, whylen, "%s: %s", pem, strerror(errno));
		return VV_ESYS;
	}
	x = PEM_read_X509(f, NULL, NULL, NULL);
	fclose(f);
	if (!x) {
		ssl_why(why, whylen, "not a PEM certificate");
		return VV_EINVAL;
	}
	r = fingerprint(x, fp);
	X509_free(x);
	return r;
}

/* Create path exclusively with mode and write the PEM through fn. */
static int write_pem(const char *path, mode_t mode, int (*fn)(FILE *, void *), void *obj,
		     char *why, size_t whylen)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode);
	FILE *f;
	int ok;

	if (fd < 0) {
		snprintf(why, whylen, "%s: %s", path, strerror(errno));
		return errno == EEXIST ? VV_EEXIST : VV_ESYS;
	}
	if (!(f = fdopen(fd, "w"))) {
		close(fd);
		snprintf(why, whylen, "%s: %s", path, strerror(errno));
		return VV_ESYS;
	}
	ok = fn(f, obj);
	if (fflush(f) != 0 || fsync(fileno(f)) != 0)
		ok = 0;
	fclose(f);
	if (!ok) {
		unlink(path);
		snprintf(why, whylen, "cannot write %s", path);
		return VV_ESYS;
	}
	return 0;
}

static int put_key(FILE *f, void *k)
{
	return PEM_write_PrivateKey(f, k, NULL, NULL, 0, NULL, NULL);
}

static int put_cert(FILE *f, void *x)
{
	return PEM_write_X509(f, x);
}

static int add_ext(X509 *x, X509V3_CTX *v3, int nid, const char *val)
{
	X509_EXTENSION *e = X509V3_EXT_conf_nid(NULL, v3, nid, val);
	int ok = e && X509_add_ext(x, e, -1);

	X509_EXTENSION_free(e);
	return ok;
}

/* Load DIR/cert.pem and DIR/key.pem of the issuing CA (tls client-ca). */
static int load_ca(const char *dir, X509 **x, EVP_PKEY **k, char *why, size_t whylen)
{
	char path[4096];
	FILE *f;

	*x = NULL;
	*k = NULL;
	snprintf(path, sizeof(path), "%s/cert.pem", dir);
	if ((f = fopen(path, "re"))) {
		*x = PEM_read_X509(f, NULL, NULL, NULL);
		fclose(f);
	}
	snprintf(path, sizeof(path), "%s/key.pem", dir);
	if (*x && (f = fopen(path, "re"))) {
		*k = PEM_read_PrivateKey(f, NULL, NULL, NULL);
		fclose(f);
	}
	if (!*x || !*k || X509_check_private_key(*x, *k) != 1 || X509_check_ca(*x) < 1) {
		ERR_clear_error();
		snprintf(why, whylen, "%s/cert.pem and key.pem are not a CA's certificate and key "
			 "('vecvault tls client-ca' makes them)", dir);
		X509_free(*x);
		EVP_PKEY_free(*k);
		*x = NULL;
		*k = NULL;
		return VV_EINVAL;
	}
	return 0;
}

int net_tls_make(const char *dir, const char *name, int kind, const char *ca_dir, unsigned days,
		 char fp[65], char *why, size_t whylen)
{
	char kpath[4096], cpath[4096], san[300];
	EVP_PKEY *k = NULL, *ik = NULL;
	X509 *x = NULL, *ix = NULL;
	X509_NAME *nm;
	X509V3_CTX v3;
	uint8_t serial[16];
	BIGNUM *bn = NULL;
	unsigned char ip[16];
	bool is_ip, ok;
	int r = VV_ECRYPTO;

	if (snprintf(kpath, sizeof(kpath), "%s/key.pem", dir) >= (int)sizeof(kpath) ||
	    snprintf(cpath, sizeof(cpath), "%s/cert.pem", dir) >= (int)sizeof(cpath)) {
		snprintf(why, whylen, "directory name too long");
		return VV_ENAMETOOLONG;
	}
	if (access(kpath, F_OK) == 0 || access(cpath, F_OK) == 0) {
		snprintf(why, whylen, "%s or %s already exists: not overwritten", kpath, cpath);
		return VV_EEXIST;
	}
	if (kind == NET_CERT_CLIENT && (r = load_ca(ca_dir, &ix, &ik, why, whylen)) < 0)
		return r;
	r = VV_ECRYPTO;
	is_ip = inet_pton(AF_INET, name, ip) == 1 || inet_pton(AF_INET6, name, ip) == 1;
	snprintf(san, sizeof(san), "%s:%s", is_ip ? "IP" : "DNS", name);
	if (!(k = EVP_EC_gen("P-256")) || !(x = X509_new()) ||
	    RAND_bytes(serial, sizeof(serial)) != 1) {
		ssl_why(why, whylen, "cannot make a key");
		goto out;
	}
	serial[0] &= 0x7f;
	if (!(bn = BN_bin2bn(serial, sizeof(serial), NULL)) ||
	    !BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x)) ||
	    !X509_set_version(x, 2) ||
	    !X509_gmtime_adj(X509_getm_notBefore(x), -3600) ||
	    !X509_gmtime_adj(X509_getm_notAfter(x), (long)days * 24 * 3600) ||
	    !X509_set_pubkey(x, k) || !(nm = X509_get_subject_name(x)) ||
	    !X509_NAME_add_entry_by_txt(nm, "CN", MBSTRING_UTF8, (const unsigned char *)name, -1, -1, 0) ||
	    !X509_set_issuer_name(x, ix ? X509_get_subject_name(ix) : nm)) {
		ssl_why(why, whylen, "cannot fill the certificate");
		goto out;
	}
	X509V3_set_ctx(&v3, ix ? ix : x, x, NULL, NULL, 0);
	if (kind == NET_CERT_SERVER)
		ok = add_ext(x, &v3, NID_subject_alt_name, san);
	else if (kind == NET_CERT_CA)
		ok = add_ext(x, &v3, NID_basic_constraints, "critical,CA:TRUE,pathlen:0") &&
		     add_ext(x, &v3, NID_key_usage, "critical,keyCertSign,cRLSign") &&
		     add_ext(x, &v3, NID_subject_key_identifier, "hash");
	else
		ok = add_ext(x, &v3, NID_basic_constraints, "critical,CA:FALSE") &&
		     add_ext(x, &v3, NID_key_usage, "critical,digitalSignature") &&
		     add_ext(x, &v3, NID_ext_key_usage, "clientAuth") &&
		     add_ext(x, &v3, NID_authority_key_identifier, "keyid:always");
	if (!ok || !X509_sign(x, ik ? ik : k, EVP_sha256())) {
		ssl_why(why, whylen, "cannot sign the certificate");
		goto out;
	}
	if ((r = fingerprint(x, fp)) < 0)
		goto out;
	if ((r = write_pem(kpath, 0600, put_key, k, why, whylen)) < 0)
		goto out;
	if ((r = write_pem(cpath, 0644, put_cert, x, why, whylen)) < 0) {
		unlink(kpath);
		goto out;
	}
	r = 0;
out:
	BN_free(bn);
	X509_free(x);
	X509_free(ix);
	EVP_PKEY_free(k);
	EVP_PKEY_free(ik);
	return r;
}

static int put_crl(FILE *f, void *crl)
{
	return PEM_write_X509_CRL(f, crl);
}

int net_tls_revoke(const char *ca_dir, const char *const *certs, size_t n, unsigned days,
		   size_t *added, size_t *total, char *why, size_t whylen)
{
	char path[4096], tmp[4112];
	X509_CRL *crl = NULL, *old = NULL;
	EVP_PKEY *ik = NULL;
	X509 *ix = NULL, *x = NULL;
	ASN1_TIME *now = NULL, *next = NULL;
	FILE *f;
	int r;

	*added = *total = 0;
	if (snprintf(path, sizeof(path), "%s/crl.pem", ca_dir) >= (int)sizeof(path) ||
	    snprintf(tmp, sizeof(tmp), "%s/.crl.pem.%ld", ca_dir, (long)getpid()) >= (int)sizeof(tmp)) {
		snprintf(why, whylen, "directory name too long");
		return VV_ENAMETOOLONG;
	}
	if ((r = load_ca(ca_dir, &ix, &ik, why, whylen)) < 0)
		return r;
	r = VV_ECRYPTO;
	/* The entries of the CRL there, if it is this CA's. */
	if ((f = fopen(path, "re"))) {
		old = PEM_read_X509_CRL(f, NULL, NULL, NULL);
		fclose(f);
		if (!old || X509_CRL_verify(old, X509_get0_pubkey(ix)) != 1) {
			ERR_clear_error();
			snprintf(why, whylen, "%s is not a CRL of this CA: not overwritten", path);
			r = VV_EINVAL;
			goto out;
		}
	} else if (errno != ENOENT) {
		snprintf(why, whylen, "cannot read %s: %s", path, strerror(errno));
		r = VV_ESYS;
		goto out;
	}
	if (!(crl = X509_CRL_new()) || !X509_CRL_set_version(crl, 1) ||
	    !X509_CRL_set_issuer_name(crl, X509_get_subject_name(ix)) ||
	    !(now = X509_gmtime_adj(NULL, 0)) ||
	    !(next = X509_gmtime_adj(NULL, (long)days * 24 * 3600)) ||
	    !X509_CRL_set1_lastUpdate(crl, now) || !X509_CRL_set1_nextUpdate(crl, next)) {
		ssl_why(why, whylen, "cannot make a CRL");
		goto out;
	}
	for (int i = 0; old && i < sk_X509_REVOKED_num(X509_CRL_get_REVOKED(old)); i++) {
		X509_REVOKED *rv = X509_REVOKED_dup(sk_X509_REVOKED_value(X509_CRL_get_REVOKED(old), i));

		if (!rv || !X509_CRL_add0_revoked(crl, rv)) {
			X509_REVOKED_free(rv);
			ssl_why(why, whylen, "cannot copy the CRL's entries");
			goto out;
		}
		++*total;
	}
	for (size_t i = 0; i < n; i++) {
		X509_REVOKED *rv, *had;

		x = NULL;
		if ((f = fopen(certs[i], "re"))) {
			x = PEM_read_X509(f, NULL, NULL, NULL);
			fclose(f);
		}
		if (!x) {
			ERR_clear_error();
			snprintf(why, whylen, "%s: not a PEM certificate", certs[i]);
			r = VV_EINVAL;
			goto out;
		}
		if (X509_NAME_cmp(X509_get_issuer_name(x), X509_get_subject_name(ix)) != 0 ||
		    X509_verify(x, X509_get0_pubkey(ix)) != 1) {
			ERR_clear_error();
			snprintf(why, whylen, "%s was not issued by the CA in %s: nothing revoked",
				 certs[i], ca_dir);
			r = VV_EINVAL;
			goto out;
		}
		if (X509_CRL_get0_by_serial(crl, &had, (ASN1_INTEGER *)X509_get0_serialNumber(x)) == 1) {
			X509_free(x);
			continue;                   /* already listed */
		}
		if (!(rv = X509_REVOKED_new()) ||
		    !X509_REVOKED_set_serialNumber(rv, (ASN1_INTEGER *)X509_get0_serialNumber(x)) ||
		    !X509_REVOKED_set_revocationDate(rv, now) || !X509_CRL_add0_revoked(crl, rv)) {
			X509_REVOKED_free(rv);
			ssl_why(why, whylen, "cannot add to the CRL");
			goto out;
		}
		X509_free(x);
		x = NULL;
		++*added;
		++*total;
	}
	if (!X509_CRL_sort(crl) || !X509_CRL_sign(crl, ik, EVP_sha256())) {
		ssl_why(why, whylen, "cannot sign the CRL");
		goto out;
	}
	/* Whole or not at all: a server re-reads the file when it changes. */
	if ((r = write_pem(tmp, 0644, put_crl, crl, why, whylen)) < 0)
		goto out;
	if (rename(tmp, path) < 0) {
		snprintf(why, whylen, "cannot rename %s to %s: %s", tmp, path, strerror(errno));
		unlink(tmp);
		r = VV_ESYS;
		goto out;
	}
	r = 0;
out:
	X509_free(x);
	X509_CRL_free(crl);
	X509_CRL_free(old);
	ASN1_TIME_free(now);
	ASN1_TIME_free(next);
	X509_free(ix);
	EVP_PKEY_free(ik);
	return r;
}

int net_tls_peer(struct tls_conn *t, char *cn, size_t cnlen, char fp[65])
{
	X509 *x = SSL_get1_peer_certificate(t->ssl);
	X509_NAME *n;
	int r = VV_EACCES, i, len;
	const unsigned char *p;
	ASN1_STRING *d;

	cn[0] = 0;
	fp[0] = 0;
	if (!x || SSL_get_verify_result(t->ssl) != X509_V_OK)
		goto out;
	if (fingerprint(x, fp) < 0 || !(n = X509_get_subject_name(x)))
		goto out;
	/* exactly one CN, printable, no NUL inside */
	if ((i = X509_NAME_get_index_by_NID(n, NID_commonName, -1)) < 0 ||
	    X509_NAME_get_index_by_NID(n, NID_commonName, i) >= 0)
		goto out;
	d = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(n, i));
	p = ASN1_STRING_get0_data(d);
	len = ASN1_STRING_length(d);
	if (len <= 0 || (size_t)len >= cnlen)
		goto out;
	for (int k = 0; k < len; k++)
		if (p[k] < 0x21 || p[k] > 0x7e)
			goto out;
	memcpy(cn, p, (size_t)len);
	cn[len] = 0;
	r = 0;
out:
	X509_free(x);
	return r;
}

/* --- the client side ------------------------------------------------------ */

int net_tls_connect(int fd, const char *host, const char *ca, const char *cert,
		const char *cert_key, int64_t deadline,
		struct tls_conn **out, char fp[65], char *why, size_t whylen)
{
	struct tls_conn *t = calloc(1, sizeof(*t));
	SSL_CTX *ctx = NULL;
	X509 *peer = NULL;
	int r = VV_ECRYPTO;

	*out = NULL;
	if (!t)
		return VV_ENOMEM;
	fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
	t->fd = fd;
	pthread_mutex_init(&t->mu, NULL);
	pthread_mutex_init(&t->wmu, NULL);
	if (!(ctx = SSL_CTX_new(TLS_client_method())) ||
	    !SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION) ||
	    !SSL_CTX_set_max_proto_version(ctx, TLS1_3_VERSION)) {
		ssl_why(why, whylen, "cannot make a TLS context");
		goto fail;
	}
	SSL_CTX_set_mode(ctx, SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
	if (ca) {
		if (SSL_CTX_load_verify_locations(ctx, ca, NULL) != 1) {
			ssl_why(why, whylen, "cannot load the CA (--ca)");
			r = VV_EINVAL;
			goto fail;
		}
		SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
	}
	if (cert) {
		if (SSL_CTX_use_certificate_chain_file(ctx, cert) != 1) {
			ssl_why(why, whylen, "cannot load the client certificate (--cert)");
			r = VV_EINVAL;
			goto fail;
		}
		if (SSL_CTX_use_PrivateKey_file(ctx, cert_key ? cert_key : cert, SSL_FILETYPE_PEM) != 1 ||
		    SSL_CTX_check_private_key(ctx) != 1) {
			ssl_why(why, whylen, "cannot load the client certificate's key (--cert-key), "
				"or it does not match --cert");
			r = VV_EINVAL;
			goto fail;
		}
	}
	if (!(t->ssl = SSL_new(ctx)) || SSL_set_fd(t->ssl, fd) != 1 ||
	    SSL_set_tlsext_host_name(t->ssl, host) != 1 ||
	    (ca && SSL_set1_host(t->ssl, host) != 1)) {
		ssl_why(why, whylen, "cannot start TLS");
		goto fail;
	}
	for (;;) {
		int k = SSL_connect(t->ssl), e;

		if (k == 1)
			break;
		e = SSL_get_error(t->ssl, k);
		if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
			if ((r = wait_fd(fd, e == SSL_ERROR_WANT_WRITE, deadline)) == VV_EAGAIN) {
				snprintf(why, whylen, "TLS handshake with %s timed out", host);
				goto fail;
			}
			if (r < 0) {
				/* an error on the socket: a reset by a server that
				 * closed it with our ClientHello unread (what a
				 * whitelist refusal does when the hello arrived
				 * first), the same event as a close (below) */
				snprintf(why, whylen, "TLS handshake with %s failed (the server closed "
					 "the connection: is this address on its whitelist?)", host);
				r = VV_ENOTCONN;
				goto fail;
			}
			continue;
		}
		/* A bad certificate is a refusal; a connection closed during the
		 * handshake may be one (an address off the whitelist) or a server
		 * that is going down or starting up, so it is not: a reconnecting
		 * client retries it and its callers see ENOTCONN meanwhile. */
		if (ca && SSL_get_verify_result(t->ssl) != X509_V_OK) {
			snprintf(why, whylen, "the server's certificate is not valid for %s under "
				 "the CA %s: %s", host, ca,
				 X509_verify_cert_error_string(SSL_get_verify_result(t->ssl)));
			r = VV_EACCES;
		} else {
			ssl_why(why, whylen, "TLS handshake failed (the server closed the "
				"connection: is this address on its whitelist?)");
			r = VV_ENOTCONN;
		}
		goto fail;
	}
	if (!(peer = SSL_get1_peer_certificate(t->ssl)) || fingerprint(peer, fp) < 0) {
		snprintf(why, whylen, "the server sent no certificate");
		r = VV_EACCES;
		goto fail;
	}
	X509_free(peer);
	SSL_CTX_free(ctx);      /* the SSL keeps its own reference */
	*out = t;
	return 0;
fail:
	X509_free(peer);
	SSL_free(t->ssl);
	SSL_CTX_free(ctx);
	pthread_mutex_destroy(&t->mu);
	pthread_mutex_destroy(&t->wmu);
	free(t);
	return r;
}
