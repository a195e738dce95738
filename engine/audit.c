/*
 * audit.c - writing the tamper-evident audit log (see vecvault/audit.h).
 *
 * Request threads format a record and give it its sequence number under
 * one mutex and append it to an in-memory queue; one writer thread
 * chain-MACs the queued records in order, writes them, fsyncs and reports
 * the checkpoint.  The request path never waits for the disk, nor for the
 * MAC (a query's directory request records 10,000 scans at once: their
 * MACs took a fifth of the offload pool's turn).
 *
 * Line format (one per record, UTF-8-ish JSON, '\n' terminated):
 *
 *   {"seq":N,"time":"YYYY-MM-DDTHH:MM:SS.nnnnnnnnnZ","op":S,"path":S,
 *    "ino":N,"uid":N,"gid":N,"pid":N,"comm":S,"user":S,"client":S,
 *    "result":S,"mode":S,"rbytes":N,"wbytes":N,"rcount":N,"wcount":N,
 *    "detail":S,"unauth":B,"mac":"<64 hex>"}
 *
 *   S is a JSON string or null; N a decimal integer; B true/false.
 *   body  = the line up to (not including) ,"mac":"
 *   mac_1 = BLAKE2b-256_K(32 zero bytes || body_1)
 *   mac_i = BLAKE2b-256_K(mac_{i-1} || body_i),   K = audit subkey
 *   seq starts at 1 and increases by one across rotated files.
 *
 * String escaping: '"' and '\' as \" and \\; bytes < 0x20 and 0x7f as
 * \u00XX (\n, \t as such); valid UTF-8 passes through; every byte of an
 * invalid UTF-8 sequence becomes \u00XX with XX >= 80.  Since valid code
 * points >= U+0080 are never escaped, \u0080..\u00ff always mean a raw byte
 * and the original bytes can be recovered exactly (audit_read.c does).
 *
 * Sidecar LOG.checkpoint (rewritten atomically after each synced write):
 *   {"seq":N,"mac":"<64 hex>","ck":"<64 hex>"}\n
 *   ck = BLAKE2b-256_K("vvaudit-checkpoint" || le64(seq) || mac)
 *
 * Pre-authentication file LOG.preauth (no key exists yet): the same object
 * with "seq":0 and no "mac"; imported at unlock as records with
 * "unauth":true whose "detail" holds the original line.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <time.h>
#include <unistd.h>

#include "audit_int.h"
#include "crypto_int.h"
#include "os.h"
#include "vecvault/audit.h"
#include "vecvault/error.h"
#include "vecvault/log.h"
#include "vecvault/privfile.h"

#define DEFAULT_QUEUE_MAX (64u << 20)
#define KICK_BYTES (1u << 20)         /* wake the writer early past this */
#define TAIL_READ (1u << 20)          /* how much of the log open() reads back */
#define MAX_FIELD 8192                /* longer strings are cut (and say so) */

/* A growable byte string. */
struct sbuf {
	char *p;
	size_t len, cap;
	int err;
	bool fixed;               /* p is caller storage: never freed or realloc'd */
};

struct vv_audit {
	pthread_mutex_t mu;
	pthread_cond_t kick;      /* wakes the writer */
	pthread_cond_t done;      /* writer finished a round */
	pthread_t thread;
	bool thread_started;

	char *path;
	uint8_t *key;             /* secure memory */
	uint8_t *mac0;            /* secure memory: a struct vv_mac_state keyed
	                           * with key and nothing else absorbed; copied
	                           * per record instead of re-keying */
	bool required;
	uint64_t rotate_bytes;
	int flush_ms;
	size_t queue_max;
	vv_audit_checkpoint_fn checkpoint;
	void *ctx;

	int fd;
	uint64_t off;             /* bytes of the current file known written */

	/* the writer's (before it starts: open's) */
	uint8_t prev[VV_AUDIT_MAC_BYTES];   /* MAC of the last record MAC'd */
	size_t pend_macd;         /* pend[0..pend_macd) is MAC'd */

	/* under mu */
	struct sbuf q;            /* formatted, not MAC'd, not yet handed to the writer */
	struct sbuf pend;         /* handed to the writer, not yet durable; only
	                           * the writer touches its bytes */
	uint64_t seq;             /* last sequence number handed out */
	uint64_t pend_seq;        /* last seq in pend */
	uint64_t written_seq;
	uint64_t dropped, dropped_total;
	int status;
	bool stop;
	uint64_t flush_req, flush_done;
	time_t tsec;              /* fmt_time's cache: tstr[0..tlen) is */
	size_t tlen;              /* tsec as YYYY-MM-DDTHH:MM:SS; 0: empty */
	char tstr[32];
};

/* ---- string building ---------------------------------------------------- */

/* sb_init_fixed: a buffer that starts in caller storage (the stack), so a
 * typical record costs no malloc; it moves to the heap only if it outgrows
 * that storage. */
static void sb_init_fixed(struct sbuf *b, char *mem, size_t cap)
{
	b->p = mem;
	b->len = 0;
	b->cap = cap;
	b->err = 0;
	b->fixed = true;
}

static void sb_grow_slow(struct sbuf *b, size_t n)
{
	size_t cap;
	char *p;

	if (b->err)
		return;
	cap = b->cap ? b->cap : 512;
	while (cap < b->len + n)
		cap *= 2;
	if (b->fixed) {
		p = malloc(cap);
		if (p && b->len)
			memcpy(p, b->p, b->len);
	} else {
		p = realloc(b->p, cap);
	}
	if (!p) {
		b->err = VV_ENOMEM;
		return;
	}
	b->p = p;
	b->cap = cap;
	b->fixed = false;
}

static inline void sb_grow(struct sbuf *b, size_t n)
{
	if (__builtin_expect(b->len + n > b->cap, 0))
		sb_grow_slow(b, n);
}

static inline void sb_put(struct sbuf *b, const void *s, size_t n)
{
	sb_grow(b, n);
	if (__builtin_expect(b->err != 0, 0))
		return;
	memcpy(b->p + b->len, s, n);
	b->len += n;
}

/* A string literal, without strlen. */
#define SB_LIT(b, lit) sb_put((b), "" lit, sizeof(lit) - 1)

static void sb_free(struct sbuf *b)
{
	if (!b->fixed)
		free(b->p);
	memset(b, 0, sizeof(*b));
}

/* Decimal of v into out (at least 20 bytes); returns the length.  No
 * printf: this is on the request path. */
static size_t fmt_u64(char *out, uint64_t v)
{
	char tmp[20];
	size_t i = sizeof(tmp), n;

	do {
		tmp[--i] = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	n = sizeof(tmp) - i;
	memcpy(out, tmp + i, n);
	return n;
}

static void put_u64(struct sbuf *b, uint64_t v)
{
	sb_grow(b, 20);
	if (b->err)
		return;
	b->len += fmt_u64(b->p + b->len, v);
}

/* ,"name":N  (prefix is the literal ,"name": ) */
#define PUT_NUM(b, prefix, v) do { SB_LIT(b, prefix); put_u64(b, v); } while (0)

static const char hexdig[] = "0123456789abcdef";

/* Lower-case hex of in[0..n) into out (2n bytes, no terminator).  The MAC
 * is public, so no constant-time encoder is needed here. */
static void fmt_hex(char *out, const uint8_t *in, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		out[2 * i] = hexdig[in[i] >> 4];
		out[2 * i + 1] = hexdig[in[i] & 15];
	}
}

/* Length of the valid UTF-8 sequence at s (1..4), or 0 if invalid
 * (overlong forms, surrogates and code points past U+10FFFF are invalid). */
static size_t utf8_len(const unsigned char *s, size_t n)
{
	unsigned c = s[0];
	size_t len;
	uint32_t cp;

	if (c < 0x80)
		return 1;
	if (c >= 0xc2 && c <= 0xdf) {
		len = 2;
		cp = c & 0x1f;
	} else if (c >= 0xe0 && c <= 0xef) {
		len = 3;
		cp = c & 0x0f;
	} else if (c >= 0xf0 && c <= 0xf4) {
		len = 4;
		cp = c & 0x07;
	} else {
		return 0;
	}
	if (n < len)
		return 0;
	for (size_t i = 1; i < len; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		cp = (cp << 6) | (s[i] & 0x3f);
	}
	if ((len == 3 && cp < 0x800) || (len == 4 && (cp < 0x10000 || cp > 0x10ffff)) ||
	    (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	return len;
}

/* Append s as a JSON string (or null), escaped as the header describes. */
static void put_str(struct sbuf *b, const char *s)
{
	const unsigned char *u = (const unsigned char *)s;
	size_t n, i = 0;
	bool cut;
	char esc[6];

	if (!s) {
		SB_LIT(b, "null");
		return;
	}
	n = strnlen(s, MAX_FIELD + 1);
	cut = n > MAX_FIELD;
	if (cut)
		n = MAX_FIELD;
	/* Room for the common case (nothing escaped) in one step. */
	sb_grow(b, n + 2);
	SB_LIT(b, "\"");
	while (i < n) {
		size_t run = i, l;

		/* Plain printable ASCII goes out in one piece. */
		while (run < n && u[run] >= 0x20 && u[run] < 0x7f && u[run] != '"' && u[run] != '\\')
			run++;
		if (run > i) {
			sb_put(b, u + i, run - i);
			i = run;
			continue;
		}
		if (u[i] == '"' || u[i] == '\\') {
			esc[0] = '\\';
			esc[1] = (char)u[i];
			sb_put(b, esc, 2);
			i++;
		} else if (u[i] == '\n') {
			SB_LIT(b, "\\n");
			i++;
		} else if (u[i] == '\t') {
			SB_LIT(b, "\\t");
			i++;
		} else if (u[i] < 0x20 || u[i] == 0x7f || (l = utf8_len(u + i, n - i)) == 0) {
			esc[0] = '\\';
			esc[1] = 'u';
			esc[2] = '0';
			esc[3] = '0';
			esc[4] = hexdig[u[i] >> 4];
			esc[5] = hexdig[u[i] & 15];
			sb_put(b, esc, 6);
			i++;
		} else {
			sb_put(b, u + i, l);
			i += l;
		}
	}
	if (cut)
		SB_LIT(b, "...(cut)");
	SB_LIT(b, "\"");
}

/* Everything after "time": the fields the caller gave.  Formatted outside
 * the mutex. */
static void put_fields(struct sbuf *b, const struct vv_audit_rec *r)
{
	SB_LIT(b, ",\"op\":");
	put_str(b, r->op);
	SB_LIT(b, ",\"path\":");
	put_str(b, r->path);
	PUT_NUM(b, ",\"ino\":", r->ino);
	PUT_NUM(b, ",\"uid\":", r->uid);
	PUT_NUM(b, ",\"gid\":", r->gid);
	PUT_NUM(b, ",\"pid\":", r->pid);
	SB_LIT(b, ",\"comm\":");
	put_str(b, r->comm);
	SB_LIT(b, ",\"user\":");
	put_str(b, r->user);
	SB_LIT(b, ",\"client\":");
	put_str(b, r->client ? r->client : "local");
	SB_LIT(b, ",\"result\":");
	put_str(b, r->result == 0 ? "ok" : vv_errname(r->result));
	SB_LIT(b, ",\"mode\":");
	put_str(b, r->mode);
	PUT_NUM(b, ",\"rbytes\":", r->rbytes);
	PUT_NUM(b, ",\"wbytes\":", r->wbytes);
	PUT_NUM(b, ",\"rcount\":", r->rcount);
	PUT_NUM(b, ",\"wcount\":", r->wcount);
	SB_LIT(b, ",\"detail\":");
	put_str(b, r->detail);
	if (r->unauth)
		SB_LIT(b, ",\"unauth\":true");
	else
		SB_LIT(b, ",\"unauth\":false");
}

static void put2(char *p, unsigned v)
{
	p[0] = (char)('0' + v / 10 % 10);
	p[1] = (char)('0' + v % 10);
}

#define UTC_SEC_MAX 31

/* "YYYY-MM-DDTHH:MM:SS" of t in UTC into out (up to UTC_SEC_MAX bytes, no
 * terminator; 19 for years 1000..9999), exactly as strftime("%Y-%m-%dT%H:%M:%S")
 * of gmtime_r() gives it; returns the length.  Days to civil date:
 * H. Hinnant's algorithm (proleptic Gregorian, as gmtime). */
static size_t fmt_utc_sec(char *out, time_t t)
{
	int64_t days = (int64_t)t / 86400, rem = (int64_t)t % 86400;
	int64_t era, y;
	unsigned doe, yoe, doy, mp, d, m;

	if (rem < 0) {
		rem += 86400;
		days--;
	}
	days += 719468;
	era = (days >= 0 ? days : days - 146096) / 146097;
	doe = (unsigned)(days - era * 146097);
	yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	y = (int64_t)yoe + era * 400;
	doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
	mp = (5 * doy + 2) / 153;
	d = doy - (153 * mp + 2) / 5 + 1;
	m = mp < 10 ? mp + 3 : mp - 9;
	y += m <= 2;
	if (y < 1000 || y > 9999) {
		/* Out of the 4-digit range: whatever strftime says (rare). */
		struct tm tm;
		char tmp[UTC_SEC_MAX + 1];
		size_t n = 0;
		if (gmtime_r(&t, &tm))
			n = strftime(tmp, sizeof(tmp), "%Y-%m-%dT%H:%M:%S", &tm);
		if (n == 0) {
			memcpy(out, "0000-00-00T00:00:00", 19);
			return 19;
		}
		memcpy(out, tmp, n);
		return n;
	}
	put2(out, (unsigned)(y / 100));
	put2(out + 2, (unsigned)(y % 100));
	out[4] = '-';
	put2(out + 5, m);
	out[7] = '-';
	put2(out + 8, d);
	out[10] = 'T';
	put2(out + 11, (unsigned)(rem / 3600));
	out[13] = ':';
	put2(out + 14, (unsigned)(rem / 60 % 60));
	out[16] = ':';
	put2(out + 17, (unsigned)(rem % 60));
	return 19;
}

#define TIME_FIELD_LEN (8 + UTC_SEC_MAX + 1 + 9 + 2)   /* at most */

/* "time":"YYYY-MM-DDTHH:MM:SS.nnnnnnnnnZ" into out (at most TIME_FIELD_LEN
 * bytes); returns the length.
 * The part up to the second is cached per log (a is NULL for the preauth
 * file); under a->mu when a is not NULL. */
static size_t fmt_time(struct vv_audit *a, char *out)
{
	struct timespec ts;
	size_t n;
	long ns;

	clock_gettime(CLOCK_REALTIME, &ts);
	memcpy(out, "\"time\":\"", 8);
	if (!a) {
		n = 8 + fmt_utc_sec(out + 8, ts.tv_sec);
	} else {
		if (!a->tlen || a->tsec != ts.tv_sec) {
			a->tlen = fmt_utc_sec(a->tstr, ts.tv_sec);
			a->tsec = ts.tv_sec;
		}
		memcpy(out + 8, a->tstr, a->tlen);
		n = 8 + a->tlen;
	}
	out[n] = '.';
	ns = ts.tv_nsec;
	for (int i = 9; i >= 1; i--) {
		out[n + i] = (char)('0' + ns % 10);
		ns /= 10;
	}
	out[n + 10] = 'Z';
	out[n + 11] = '"';
	return n + 12;
}

/* ---- the queue ------------------------------------------------------------ */

#define HEAD_MAX (7 + 20 + 1 + TIME_FIELD_LEN)   /* {"seq":N,"time":"..." */

/* Under a->mu: give the record the next sequence number and append it to
 * the queue, its MAC left for the writer (mac_chain).  No malloc unless the
 * queue grows; the line is built in place at the end of the queue. */
static int enqueue_locked(struct vv_audit *a, const char *fields, size_t flen)
{
	char *p;
	size_t hl;
	int r;

	sb_grow(&a->q, HEAD_MAX + flen + AUDIT_MAC_SUFFIX_LEN + 1);
	if ((r = a->q.err) < 0) {
		a->q.err = 0;
		return r;
	}
	p = a->q.p + a->q.len;
	memcpy(p, "{\"seq\":", 7);
	hl = 7 + fmt_u64(p + 7, a->seq + 1);
	p[hl++] = ',';
	hl += fmt_time(a, p + hl);
	memcpy(p + hl, fields, flen);
	p += hl + flen;
	memcpy(p, ",\"mac\":\"", 8);
	memset(p + 8, '0', 2 * VV_AUDIT_MAC_BYTES);   /* mac_chain fills it in */
	memcpy(p + 8 + 2 * VV_AUDIT_MAC_BYTES, "\"}\n", 3);
	a->q.len += hl + flen + AUDIT_MAC_SUFFIX_LEN + 1;
	a->seq++;
	return 0;
}

/* The writer, without the lock: chain-MAC pend's records from pend_macd to
 * n (whole lines as enqueue_locked builds them) in order onto a->prev,
 * advancing pend_macd past each. */
static int mac_chain(struct vv_audit *a, size_t n)
{
	struct vv_mac_state st;
	uint8_t mac[VV_AUDIT_MAC_BYTES];
	char *p = a->pend.p;
	size_t at = a->pend_macd;
	int r = 0;

	while (at < n) {
		char *nl = memchr(p + at, '\n', n - at);
		size_t len = nl ? (size_t)(nl - (p + at)) + 1 : n - at;
		size_t body = len - AUDIT_MAC_SUFFIX_LEN - 1;

		if (!nl || len < AUDIT_MAC_SUFFIX_LEN + 1) {
			r = VV_EINVAL;   /* enqueue_locked builds no such line */
			break;
		}
		memcpy(&st, a->mac0, sizeof(st));   /* = vv_mac_init(&st, a->key) */
		if ((r = vv_mac_update(&st, a->prev, sizeof(a->prev))) < 0 ||
		    (r = vv_mac_update(&st, p + at, body)) < 0 ||
		    (r = vv_mac_final(&st, mac)) < 0)
			break;
		fmt_hex(p + at + body + 8, mac, sizeof(mac));
		memcpy(a->prev, mac, sizeof(mac));
		at += len;
		a->pend_macd = at;
	}
	vv_memzero(&st, sizeof(st));
	return r;
}

#define FIELDS_STACK 1024   /* typical records fit; longer ones use the heap */

/* Under a->mu: a note from the audit module itself. */
static int note_locked(struct vv_audit *a, const char *op, const char *detail, int result)
{
	struct vv_audit_rec rec = { .op = op, .detail = detail, .result = result,
				    .uid = (uint32_t)getuid(), .gid = (uint32_t)getgid(),
				    .pid = (uint32_t)getpid(), .comm = "vecvault" };
	char mem[FIELDS_STACK];
	struct sbuf f;
	int r;

	sb_init_fixed(&f, mem, sizeof(mem));
	put_fields(&f, &rec);
	r = f.err < 0 ? f.err : enqueue_locked(a, f.p, f.len);
	sb_free(&f);
	return r;
}

int vv_audit_log(struct vv_audit *a, const struct vv_audit_rec *r)
{
	char mem[FIELDS_STACK];
	struct sbuf f;
	int ret;

	if (!a || !r || !r->op)
		return VV_EINVAL;
	/* Everything but seq, time and the MAC is formatted before the lock. */
	sb_init_fixed(&f, mem, sizeof(mem));
	put_fields(&f, r);
	if (f.err < 0) {
		ret = f.err;
		sb_free(&f);
		return ret;
	}
	pthread_mutex_lock(&a->mu);
	/* Report drops as soon as there is room again, so a gap is explicit. */
	if (__builtin_expect(a->dropped != 0, 0) && a->q.len + a->pend.len < a->queue_max / 2) {
		char msg[128];
		snprintf(msg, sizeof(msg), "%llu records dropped: audit log could not be written",
			 (unsigned long long)a->dropped);
		if (note_locked(a, "audit-gap", msg, VV_EAUDIT) == 0)
			a->dropped = 0;
	}
	if (a->q.len + a->pend.len + f.len > a->queue_max) {
		if (a->dropped++ == 0)
			vv_log(VV_LOG_ERR, "audit: queue full (%zu bytes), dropping records until "
			       "the log can be written", a->q.len + a->pend.len);
		a->dropped_total++;
		ret = VV_EAUDIT;
	} else {
		ret = enqueue_locked(a, f.p, f.len);
	}
	if (ret == 0 && a->q.len >= KICK_BYTES)
		pthread_cond_signal(&a->kick);
	if (ret == 0 && a->required && a->status < 0)
		ret = VV_EAUDIT;
	if (ret == VV_EAUDIT && !a->required)
		ret = 0;   /* counted and reported; the request itself goes on */
	pthread_mutex_unlock(&a->mu);
	sb_free(&f);
	return ret;
}

/* ---- the writer ----------------------------------------------------------- */

/* Path of LOG.k (k > 0) or LOG (k == 0). */
static int numbered(char *out, size_t n, const char *path, unsigned k)
{
	int w = k ? snprintf(out, n, "%s.%u", path, k) : snprintf(out, n, "%s", path);
	return (w < 0 || (size_t)w >= n) ? VV_ENAMETOOLONG : 0;
}

/* The log, like every file beside it, is opened under the rules of
 * vecvault/privfile.h: a planted link or someone else's file is refused. */
static int open_log(const char *path, int *fd_out)
{
	int fd, r;

	if ((r = vv_privfile_open(path, O_RDWR | O_CREAT, 0600, VV_PRIVFILE_SECRET, &fd,
				  NULL, 0)) < 0)
		return r;
	r = vv_os_flock(fd, LOCK_EX | LOCK_NB);
	if (r < 0) {
		vv_os_close(fd);
		return r == -EWOULDBLOCK ? VV_EBUSY : vv_err_from_errno(-r);
	}
	*fd_out = fd;
	return 0;
}

/* LOG.k -> LOG.k+1 for every k, LOG -> LOG.1, then a fresh LOG.  The chain
 * simply continues in the new file. */
static int rotate(struct vv_audit *a)
{
	char from[PATH_MAX], to[PATH_MAX], dir[PATH_MAX];
	struct stat st;
	unsigned top = 0;
	int r, fd = -1;

	/* Count our rotated files.  The first name that is not one (missing,
	 * or a link or file someone planted) ends the run: the rename below
	 * replaces it, so a planted name is dropped, never written through
	 * or carried along. */
	while (top < 100000) {
		if ((r = numbered(from, sizeof(from), a->path, top + 1)) < 0)
			goto out;
		if (vv_os_lstat(from, &st) < 0 || !S_ISREG(st.st_mode) || st.st_uid != geteuid() ||
		    st.st_nlink != 1)
			break;
		top++;
	}
	for (unsigned k = top + 1; k > 0; k--) {
		if ((r = numbered(from, sizeof(from), a->path, k - 1)) < 0 ||
		    (r = numbered(to, sizeof(to), a->path, k)) < 0)
			goto out;
		if ((r = vv_os_rename(from, to)) < 0) {
			r = vv_err_from_errno(-r);
			goto out;
		}
	}
	if ((r = open_log(a->path, &fd)) < 0)
		goto out;
	if ((r = vv_privfile_dir_of(dir, sizeof(dir), a->path)) < 0)
		goto out;
	vv_os_fsync_dir(dir);
	vv_os_close(a->fd);
	a->fd = fd;
	a->off = 0;
	fd = -1;
	vv_log(VV_LOG_INFO, "audit: rotated %s", a->path);
out:
	if (fd >= 0)
		vv_os_close(fd);
	return r;
}

/* Write p[0..n) (whole lines), rotating at line boundaries so a file stays
 * under rotate_bytes when it can.  *done is the prefix made durable. */
static int write_out(struct vv_audit *a, const char *p, size_t n, size_t *done)
{
	int r = 0;

	*done = 0;
	while (*done < n) {
		size_t chunk = n - *done;

		if (a->rotate_bytes) {
			const char *s = p + *done;
			size_t fit = 0, i = 0;
			while (i < chunk) {
				const char *nl = memchr(s + i, '\n', chunk - i);
				size_t end = nl ? (size_t)(nl - s) + 1 : chunk;
				if (a->off + end > a->rotate_bytes)
					break;
				fit = end;
				i = end;
			}
			if (fit == 0 && a->off > 0) {
				if ((r = rotate(a)) < 0)
					return r;
				continue;
			}
			if (fit == 0) {   /* one line bigger than the limit: write it */
				const char *nl = memchr(s, '\n', chunk);
				fit = nl ? (size_t)(nl - s) + 1 : chunk;
			}
			chunk = fit;
		}
		if ((r = vv_os_pwrite_full(a->fd, p + *done, chunk, (off_t)a->off)) < 0 ||
		    (r = vv_os_fsync(a->fd)) < 0)
			return vv_err_from_errno(-r);
		a->off += chunk;
		*done += chunk;
	}
	return 0;
}

static void *writer(void *arg)
{
	struct vv_audit *a = arg;

	pthread_mutex_lock(&a->mu);
	for (;;) {
		struct timespec until;
		uint64_t req, seq;
		uint8_t mac[VV_AUDIT_MAC_BYTES];
		size_t done = 0, n;
		bool stopping;
		int r = 0;

		clock_gettime(CLOCK_REALTIME, &until);
		until.tv_sec += a->flush_ms / 1000;
		until.tv_nsec += (long)(a->flush_ms % 1000) * 1000000L;
		if (until.tv_nsec >= 1000000000L) {
			until.tv_sec++;
			until.tv_nsec -= 1000000000L;
		}
		while (!a->stop && a->flush_req == a->flush_done && a->q.len < KICK_BYTES)
			if (pthread_cond_timedwait(&a->kick, &a->mu, &until) == ETIMEDOUT)
				break;
		req = a->flush_req;
		stopping = a->stop;
		if (a->q.len) {
			sb_put(&a->pend, a->q.p, a->q.len);
			if (a->pend.err == 0) {
				a->q.len = 0;
				a->pend_seq = a->seq;
			}
			a->pend.err = 0;
		}
		n = a->pend.len;
		seq = a->pend_seq;
		pthread_mutex_unlock(&a->mu);

		/* Only this thread touches pend's bytes or grows it, so MACing
		 * and writing them without the lock is safe. */
		if (a->pend_macd < n && (r = mac_chain(a, n)) < 0)
			vv_log(VV_LOG_ERR, "audit: cannot MAC records: %s", vv_strerror(r));
		memcpy(mac, a->prev, sizeof(mac));   /* the chain after pend: the checkpoint's */
		if (n && r == 0)
			r = write_out(a, a->pend.p, n, &done);

		pthread_mutex_lock(&a->mu);
		if (done) {
			memmove(a->pend.p, a->pend.p + done, a->pend.len - done);
			a->pend.len -= done;
			a->pend_macd -= done;
		}
		if (r < 0) {
			if (a->status == 0)
				vv_log(VV_LOG_ERR, "audit: cannot write %s: %s; %zu bytes of records "
				       "held in memory", a->path, vv_strerror(r), a->pend.len);
			a->status = r;
		} else if (n) {
			if (a->status < 0)
				vv_log(VV_LOG_WARN, "audit: %s writable again", a->path);
			a->status = 0;
			a->written_seq = seq;
		}
		a->flush_done = req;
		pthread_cond_broadcast(&a->done);
		if (r == 0 && n) {
			/* Outside the lock: the host may take its own locks. */
			pthread_mutex_unlock(&a->mu);
			if (a->checkpoint)
				a->checkpoint(a->ctx, seq, mac);
			if (audit_sidecar_write(a->path, a->key, seq, mac) < 0)
				vv_log(VV_LOG_WARN, "audit: cannot write the checkpoint file");
			pthread_mutex_lock(&a->mu);
		}
		if (stopping && a->q.len == 0)
			break;
		if (stopping && r < 0)
			break;
	}
	pthread_mutex_unlock(&a->mu);
	return NULL;
}

int vv_audit_flush(struct vv_audit *a)
{
	uint64_t want;
	int r;

	if (!a)
		return VV_EINVAL;
	pthread_mutex_lock(&a->mu);
	want = ++a->flush_req;
	pthread_cond_signal(&a->kick);
	while (a->flush_done < want && a->thread_started && !a->stop)
		pthread_cond_wait(&a->done, &a->mu);
	r = a->status;
	pthread_mutex_unlock(&a->mu);
	return r;
}

int vv_audit_status(struct vv_audit *a)
{
	int r;

	if (!a)
		return VV_EINVAL;
	pthread_mutex_lock(&a->mu);
	r = a->status;
	pthread_mutex_unlock(&a->mu);
	return r;
}

void vv_audit_get_stats(struct vv_audit *a, struct vv_audit_stats *st)
{
	memset(st, 0, sizeof(*st));
	if (!a)
		return;
	pthread_mutex_lock(&a->mu);
	st->last_seq = a->seq;
	st->written_seq = a->written_seq;
	st->dropped = a->dropped;
	st->dropped_total = a->dropped_total;
	st->queued_bytes = a->q.len + a->pend.len;
	st->status = a->status;
	pthread_mutex_unlock(&a->mu);
}

int vv_audit_close(struct vv_audit *a)
{
	int r;

	if (!a)
		return 0;
	if (a->thread_started) {
		pthread_mutex_lock(&a->mu);
		if (a->dropped)
			(void)note_locked(a, "audit-gap", "records dropped: audit log could not be "
					  "written", VV_EAUDIT);
		a->stop = true;
		pthread_cond_signal(&a->kick);
		pthread_mutex_unlock(&a->mu);
		pthread_join(a->thread, NULL);
	}
	r = a->status;
	if (a->q.len + a->pend.len) {
		vv_log(VV_LOG_ERR, "audit: closing with %zu bytes of records unwritten",
		       a->q.len + a->pend.len);
		if (r == 0)
			r = VV_EAUDIT;
	}
	if (a->fd >= 0)
		vv_os_close(a->fd);
	pthread_mutex_destroy(&a->mu);
	pthread_cond_destroy(&a->kick);
	pthread_cond_destroy(&a->done);
	sb_free(&a->q);
	sb_free(&a->pend);
	vv_secure_free(a->key);
	vv_secure_free(a->mac0);
	free(a->path);
	free(a);
	return r;
}

/* ---- open: pick up the chain where the file left it ----------------------- */

/* mkdir -p the directory holding path, and check it (privfile.h). */
static int mkdirs(const char *path)
{
	char dir[PATH_MAX];
	int r;

	if ((r = vv_privfile_dir_of(dir, sizeof(dir), path)) < 0)
		return r;
	return vv_privfile_mkdir(dir);
}

/* Find the last record of the open file at fd (cutting a torn last line:
 * *torn gets its length) and, if the file holds none, of LOG.1.
 * *seq = 0 when there is no record at all. */
static int find_tail(struct vv_audit *a, uint64_t *seq, uint8_t mac[VV_AUDIT_MAC_BYTES],
		     size_t *torn, unsigned *skipped)
{
	char p1[PATH_MAX];
	char *buf = NULL;
	struct stat st;
	int fd = a->fd, r, fd1 = -1;

	*seq = 0;
	*torn = 0;
	*skipped = 0;
	memset(mac, 0, VV_AUDIT_MAC_BYTES);
	for (int pass = 0; pass < 2; pass++) {
		size_t n, end;
		ssize_t got;
		off_t base;

		if ((r = vv_os_fstat(fd, &st)) < 0) {
			r = vv_err_from_errno(-r);
			goto out;
		}
		n = (size_t)st.st_size < TAIL_READ ? (size_t)st.st_size : TAIL_READ;
		base = st.st_size - (off_t)n;
		free(buf);
		buf = malloc(n + 1);
		if (!buf) {
			r = VV_ENOMEM;
			goto out;
		}
		got = vv_os_pread_full(fd, buf, n, base);
		if (got < 0 || (size_t)got != n) {
			r = got < 0 ? vv_err_from_errno((int)-got) : VV_EIO;
			goto out;
		}
		end = n;
		if (pass == 0 && n && buf[n - 1] != '\n') {
			/* A crash mid-write: cut the partial line so the chain can go on. */
			char *nl = memrchr(buf, '\n', n);
			end = nl ? (size_t)(nl - buf) + 1 : 0;
			if (!nl && base > 0) {
				r = VV_ECORRUPT;   /* a "line" longer than TAIL_READ */
				goto out;
			}
			*torn = n - end;
			if ((r = vv_os_ftruncate(fd, base + (off_t)end)) < 0 ||
			    (r = vv_os_fsync(fd)) < 0) {
				r = vv_err_from_errno(-r);
				goto out;
			}
		}
		if (pass == 0)
			a->off = (uint64_t)(base + (off_t)end);
		/* Walk back to the last line that parses. */
		while (end > 0) {
			char *nl = end >= 2 ? memrchr(buf, '\n', end - 1) : NULL;
			size_t start = nl ? (size_t)(nl - buf) + 1 : 0;
			size_t bl;
			if (start == 0 && base > 0 && !nl)
				break;
			if (audit_split_line(buf + start, end - 1 - start, &bl, seq, mac) == 0) {
				r = 0;
				goto out;
			}
			(*skipped)++;
			end = start;
		}
		if (pass == 1)
			break;
		/* Nothing usable here (fresh file after rotation): look in LOG.1. */
		if ((r = numbered(p1, sizeof(p1), a->path, 1)) < 0)
			goto out;
		r = vv_privfile_open(p1, O_RDONLY, 0, VV_PRIVFILE_SECRET, &fd1, NULL, 0);
		if (r == VV_ENOENT)
			break;
		if (r < 0)
			goto out;
		fd = fd1;
	}
	*seq = 0;
	memset(mac, 0, VV_AUDIT_MAC_BYTES);
	r = 0;
out:
	if (fd1 >= 0)
		vv_os_close(fd1);
	free(buf);
	return r;
}

int vv_audit_open(const struct vv_audit_opts *o, struct vv_audit **out)
{
	struct vv_audit *a = NULL;
	uint64_t last_seq, ck_seq = 0, side_seq;
	uint8_t last_mac[VV_AUDIT_MAC_BYTES], ck_mac[VV_AUDIT_MAC_BYTES];
	uint8_t side_mac[VV_AUDIT_MAC_BYTES];
	size_t torn;
	unsigned skipped;
	char msg[256];
	int r;

	*out = NULL;
	if (!o || !o->path || !*o->path || !o->key || (o->sealed_seq && !o->sealed_mac))
		return VV_EINVAL;
	if ((r = vv_crypto_init()) < 0)
		return r;
	a = calloc(1, sizeof(*a));
	if (!a)
		return VV_ENOMEM;
	a->fd = -1;
	pthread_mutex_init(&a->mu, NULL);
	pthread_cond_init(&a->kick, NULL);
	pthread_cond_init(&a->done, NULL);
	a->path = strdup(o->path);
	a->key = vv_secure_alloc(VV_AUDIT_KEY_BYTES);
	if (!a->path || !a->key) {
		r = VV_ENOMEM;
		goto out;
	}
	memcpy(a->key, o->key, VV_AUDIT_KEY_BYTES);
	{
		/* BLAKE2b's keyed initial state holds no pointers: a byte copy of
		 * it gives the same MAC as vv_mac_init() with the key. */
		struct vv_mac_state st0;
		a->mac0 = vv_secure_alloc(sizeof(st0));
		if (!a->mac0) {
			r = VV_ENOMEM;
			goto out;
		}
		r = vv_mac_init(&st0, a->key);
		memcpy(a->mac0, &st0, sizeof(st0));
		vv_memzero(&st0, sizeof(st0));
		if (r < 0)
			goto out;
	}
	a->required = o->required;
	a->rotate_bytes = o->rotate_bytes;
	a->flush_ms = o->flush_ms > 0 ? o->flush_ms : 1000;
	a->queue_max = o->queue_max ? o->queue_max : DEFAULT_QUEUE_MAX;
	a->checkpoint = o->checkpoint;
	a->ctx = o->ctx;

	if ((r = mkdirs(a->path)) < 0 || (r = open_log(a->path, &a->fd)) < 0)
		goto out;
	if ((r = find_tail(a, &last_seq, last_mac, &torn, &skipped)) < 0)
		goto out;

	/* The newer of the sealed and the sidecar checkpoint. */
	if (o->sealed_seq) {
		ck_seq = o->sealed_seq;
		memcpy(ck_mac, o->sealed_mac, sizeof(ck_mac));
	}
	r = audit_sidecar_read(a->path, a->key, &side_seq, side_mac);
	if (r == 0 && side_seq > ck_seq) {
		ck_seq = side_seq;
		memcpy(ck_mac, side_mac, sizeof(ck_mac));
	} else if (r == VV_ECORRUPT) {
		vv_log(VV_LOG_ERR, "audit: %s.checkpoint is not authentic; ignored", a->path);
	} else if (r == VV_EUNSAFE) {
		goto out;   /* planted or someone else's: the reason is logged */
	}

	a->seq = last_seq;
	memcpy(a->prev, last_mac, sizeof(a->prev));
	a->written_seq = last_seq;
	if (ck_seq > last_seq) {
		vv_log(VV_LOG_ERR, "audit: log ends at record %llu but the checkpoint says %llu: "
		       "records were truncated or deleted", (unsigned long long)last_seq,
		       (unsigned long long)ck_seq);
		a->seq = ck_seq;
		memcpy(a->prev, ck_mac, sizeof(a->prev));
		snprintf(msg, sizeof(msg), "log ended at record %llu, checkpoint at %llu: records "
			 "%llu..%llu missing; chain continued from the checkpoint",
			 (unsigned long long)last_seq, (unsigned long long)ck_seq,
			 (unsigned long long)last_seq + 1, (unsigned long long)ck_seq);
		note_locked(a, "audit-gap", msg, VV_ECORRUPT);
	}
	if (torn) {
		vv_log(VV_LOG_WARN, "audit: cut a torn last line of %zu bytes (crash?)", torn);
		snprintf(msg, sizeof(msg), "torn last line of %zu bytes cut after a crash", torn);
		note_locked(a, "audit-recover", msg, 0);
	}
	if (skipped) {
		vv_log(VV_LOG_ERR, "audit: %u unreadable lines at the end of %s", skipped, a->path);
		snprintf(msg, sizeof(msg), "%u unreadable lines at the end of the log", skipped);
		note_locked(a, "audit-recover", msg, VV_ECORRUPT);
	}
	if (pthread_create(&a->thread, NULL, writer, a) != 0) {
		r = VV_ESYS;
		goto out;
	}
	a->thread_started = true;
	*out = a;
	a = NULL;
	r = 0;
out:
	vv_memzero(ck_mac, sizeof(ck_mac));
	vv_audit_close(a);
	return r;
}

/* ---- paths and the pre-authentication file ------------------------------ */

void vv_audit_rec_self(struct vv_audit_rec *r, const char *op, int result, const char *detail)
{
	memset(r, 0, sizeof(*r));
	r->op = op;
	r->path = "/";
	r->uid = (uint32_t)getuid();
	r->gid = (uint32_t)getgid();
	r->pid = (uint32_t)getpid();
	r->comm = "vecvault";
	r->client = "local";
	r->result = result;
	r->detail = detail;
}

int vv_audit_default_path(const char *audit_dir, const char *store_id, char *out, size_t outlen)
{
	int n;

	if (!out || !outlen)
		return VV_EINVAL;
	if (!store_id || !*store_id || strchr(store_id, '/') || store_id[0] == '.')
		return VV_EINVAL;
	if (!audit_dir || !*audit_dir)
		return VV_EINVAL;   /* the host found no location (no home) */
	n = snprintf(out, outlen, "%s/%s/audit.log", audit_dir, store_id);
	return (n < 0 || (size_t)n >= outlen) ? VV_ENAMETOOLONG : 0;
}

int vv_audit_preauth_append(const char *log_path, const struct vv_audit_rec *rec)
{
	char path[PATH_MAX];
	struct sbuf b = { 0 };
	struct vv_audit_rec copy;
	int fd = -1, r;

	if (!log_path || !rec || !rec->op)
		return VV_EINVAL;
	if (snprintf(path, sizeof(path), "%s.preauth", log_path) >= (int)sizeof(path))
		return VV_ENAMETOOLONG;
	if ((r = mkdirs(log_path)) < 0)
		return r;
	copy = *rec;
	copy.unauth = true;   /* written without a key */
	SB_LIT(&b, "{\"seq\":0,");
	sb_grow(&b, TIME_FIELD_LEN);
	if (b.err == 0)
		b.len += fmt_time(NULL, b.p + b.len);
	put_fields(&b, &copy);
	SB_LIT(&b, "}\n");
	if ((r = b.err) < 0)
		goto out;
	/* O_APPEND: concurrent failed attempts each land as a whole line. */
	if ((r = vv_privfile_open(path, O_WRONLY | O_CREAT | O_APPEND, 0600,
				  VV_PRIVFILE_SECRET, &fd, NULL, 0)) < 0)
		goto out;
	if ((r = vv_os_pwrite_full(fd, b.p, b.len, 0)) < 0 || (r = vv_os_fsync(fd)) < 0)
		r = vv_err_from_errno(-r);
out:
	if (fd >= 0)
		vv_os_close(fd);
	sb_free(&b);
	return r;
}

/* "EACCES" -> VV_EACCES; unknown names -> VV_EIO. */
static int code_of(const char *name)
{
	if (!name || strcmp(name, "ok") == 0)
		return 0;
	for (int c = -1; c > VV_EMIN; c--)
		if (strcmp(vv_errname(c), name) == 0)
			return c;
	return VV_EIO;
}

int vv_audit_import_preauth(struct vv_audit *a)
{
	char path[PATH_MAX];
	void *data = NULL;
	size_t len, pos = 0;
	int r, count = 0;

	if (!a)
		return VV_EINVAL;
	if (snprintf(path, sizeof(path), "%s.preauth", a->path) >= (int)sizeof(path))
		return VV_ENAMETOOLONG;
	r = vv_privfile_read(path, 16u << 20, VV_PRIVFILE_SECRET, &data, &len);
	if (r == VV_ENOENT)
		return 0;
	if (r < 0)
		return r;
	while (pos < len) {
		const char *line = (const char *)data + pos;
		const char *nl = memchr(line, '\n', len - pos);
		size_t ll = nl ? (size_t)(nl - line) : len - pos;
		struct vv_audit_entry e;
		char *store = NULL;
		char *raw = strndup(line, ll);
		struct vv_audit_rec rec = { .op = "preauth", .detail = raw, .unauth = true,
					    .result = VV_EIO };

		pos += ll + (nl ? 1 : 0);
		if (!raw) {
			r = VV_ENOMEM;
			goto out;
		}
		/* The file is unauthenticated: keep the raw line as detail, and lift
		 * the fields that parse so `audit show --uid` finds the attempt. */
		if (ll && audit_parse_entry(line, ll, &e, &store) == 0) {
			rec.op = e.op ? e.op : "preauth";
			rec.path = e.path;
			rec.uid = e.uid >= 0 ? (uint32_t)e.uid : 0;
			rec.gid = e.gid >= 0 ? (uint32_t)e.gid : 0;
			rec.pid = e.pid >= 0 ? (uint32_t)e.pid : 0;
			rec.comm = e.comm;
			rec.user = e.user;
			rec.client = e.client;
			rec.mode = e.mode;
			rec.result = code_of(e.result);
		}
		r = ll ? vv_audit_log(a, &rec) : 0;
		audit_free_store(store);
		free(raw);
		if (r < 0)
			goto out;
		count += ll ? 1 : 0;
	}
	if ((r = vv_audit_flush(a)) < 0)
		goto out;
	if ((r = vv_os_unlink(path)) < 0) {
		r = vv_err_from_errno(-r);
		goto out;
	}
	r = count;
out:
	free(data);
	return r;
}
