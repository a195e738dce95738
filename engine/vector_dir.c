/*
 * vector_dir.c - the directory offload (knn_ioctl.h, "the directory
 * request"): the small segments a deferred open left unopened on a local
 * vecvault mount are named to the daemon, up to VV_KNN_DIR_MAX_NAMES per
 * ioctl on the collection's directory, and it answers each request with
 * the merged best candidates of the files it scanned, with exact
 * distances.  The tool never opens those files: on a mount each open and
 * release is a round trip (docs/design.md, "Query scan").
 *
 * Every reply is checked before anything of it counts (dir_reply_bad): a
 * request that fails, or whose reply fails a check, leaves all its names to
 * the tool, which opens and scans them as it always did; so does each name
 * the daemon did not serve (stat.err != 0).  Errors and their words are
 * then the tool's own.
 */
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "grow.h"
#include "vecvault/knn_ioctl.h"
#include "vecvault/log.h"
#include "vector_int.h"

/* Requests in flight at once: the daemon's scan pool has one thread (two
 * from 4 CPUs) and a uid may have 4 requests queued or running (fills
 * included; more are EBUSY), so 2 keep the pool busy and leave the rest
 * of the uid's slots to its fills and other queries. */
#define DIR_INFLIGHT 2u
#define DIR_MIN_NAMES 16u        /* fewer names per request: not worth splitting */

/* ---- the test seam -------------------------------------------------------- */

static int (*test_ioctl)(int fd, struct vv_knn_dir_ioc *io, void *ctx);
static void *test_ctx;

void vv_coll_dir_test_ioctl(int (*fn)(int fd, struct vv_knn_dir_ioc *io, void *ctx), void *ctx)
{
	test_ioctl = fn;
	test_ctx = ctx;
}

bool vv_coll_dir_test_hooked(void)
{
	return test_ioctl != NULL;
}

static int dir_ioctl(int fd, struct vv_knn_dir_ioc *io)
{
	if (test_ioctl)
		return test_ioctl(fd, io, test_ctx);
	return ioctl(fd, VV_IOC_KNN_DIR, io);
}

/* ---- the reply's check ------------------------------------------------------ */

struct nr {
	uint32_t name;
	uint64_t row;
};

static int nr_cmp(const void *a, const void *b)
{
	const struct nr *x = a, *y = b;

	if (x->name != y->name)
		return x->name < y->name ? -1 : 1;
	return x->row < y->row ? -1 : x->row > y->row;
}

/* vector_int.h */
const char *vv_knn_dir_reply_bad(const struct vv_knn_dir_hdr *sent, const struct vv_knn_dir_ioc *io,
				 void *scratch)
{
	const struct vv_knn_dir_hdr *h = &io->h;
	struct vv_knn_dir_stat st;
	struct vv_knn_dir_cand x, prev = { 0 };
	struct nr *seen = scratch;
	uint64_t sum = 0, per_row = (uint64_t)sent->nq * (sent->dim + VV_KNN_ROW_COST);
	uint32_t served = 0;
	size_t coff = (size_t)sent->nnames * sizeof(st);

	if (h->magic != VV_KNN_DIR_MAGIC_REPLY || h->version != VV_KNN_DIR_VERSION ||
	    h->metric != sent->metric || h->dim != sent->dim || h->dtype != sent->dtype ||
	    h->format != sent->format || h->nq != sent->nq || h->kk != sent->kk ||
	    h->nnames != sent->nnames || h->names_len != sent->names_len || h->flags != 0)
		return "a reply header that does not match the request";
	if (coff + (size_t)sent->nq * sent->kk * sizeof(x) > VV_KNN_DIR_PAYLOAD)
		return "a reply larger than the payload";   /* the request never was */
	for (uint32_t i = 0; i < sent->nnames; i++) {
		memcpy(&st, io->u + (size_t)i * sizeof(st), sizeof(st));
		if (st.pad != 0)
			return "a name's status with its padding set";
		if (st.err == 0) {
			served++;
			/* rows plausible: within the request's work budget */
			if (st.rows > VV_KNN_WORK_MAX / per_row - sum)
				return "more rows than the request's work budget allows";
			sum += st.rows;
		} else if (st.err > 0 || st.err < -4095 || st.rows != 0) {
			return "a name's status that is no error code";
		}
	}
	if (served != h->served || sum != h->rows)
		return "totals that do not add up over the names";
	for (uint32_t q = 0; q < sent->nq; q++) {
		size_t n = 0;
		bool tail = false;       /* only unused slots from here on */
		for (uint32_t i = 0; i < sent->kk; i++) {
			memcpy(&x, io->u + coff + ((size_t)q * sent->kk + i) * sizeof(x), sizeof(x));
			if (x.pad != 0)
				return "a candidate with its padding set";
			if (x.name == VV_KNN_DIR_NO_NAME) {
				if (x.row != VV_KNN_NO_ROW)
					return "an unused slot with a row";
				tail = true;
				continue;
			}
			if (tail)
				return "a candidate after an unused slot";
			if (x.name >= sent->nnames)
				return "a candidate of a name not in the request";
			memcpy(&st, io->u + (size_t)x.name * sizeof(st), sizeof(st));
			if (st.err != 0)
				return "a candidate of a name not scanned";
			if (x.row >= st.rows)
				return "a row past its file's end";
			if (!isfinite(x.d))
				return "a distance that is not a finite number";
			if ((sent->metric == VV_METRIC_L2 && x.d < 0) ||
			    (sent->metric == VV_METRIC_COSINE && (x.d < -1e-6 || x.d > 2 + 1e-6)))
				return "a distance out of the metric's range";
			if (n && vv_knn_dir_cand_cmp(&prev, &x) >= 0)
				return "candidates not sorted by (distance, name, row)";
			prev = x;
			seen[n++] = (struct nr){ x.name, x.row };
		}
		if (n > 1) {
			qsort(seen, n, sizeof(*seen), nr_cmp);
			for (size_t i = 1; i < n; i++)
				if (!nr_cmp(&seen[i - 1], &seen[i]))
					return "a row named twice";
		}
	}
	return NULL;
}

/* ---- the requests ------------------------------------------------------------ */

/* Deferred names order[i0 .. i1) (indices from pend0, increasing), all of
 * one format: one request. */
struct chunk {
	size_t i0, i1;
	enum vv_seg_format format;
	uint32_t names_len;
};

struct job {
	const struct vv_collection *c;
	const float *queries;
	size_t nq, d, p0;
	enum vv_metric m;
	uint32_t kk;
	const struct chunk *ch;
	size_t nch;
	const uint32_t *order;
	atomic_size_t next;
	atomic_bool stop;        /* ENOTTY: the daemon has no directory offload */
	uint8_t *served;         /* per deferred name */
	uint64_t *rows;
	uint8_t *ok;             /* per chunk: answered and sane */
	struct vv_dcand *cand;   /* chunk ch, query q: cand[(ch * nq + q) * kk ..] */
	uint32_t *ncand;         /* ... ncand[ch * nq + q] of them */
	atomic_uint filling;
	atomic_bool nomem;
};

/* One request for chunk ch (io and scratch the thread's). */
static void run_chunk(struct job *j, size_t ch, struct vv_knn_dir_ioc *io, void *scratch)
{
	const struct chunk *k = &j->ch[ch];
	const struct vv_collection *c = j->c;
	struct vv_knn_dir_hdr sent;
	struct vv_knn_dir_stat st;
	struct vv_knn_dir_cand x;
	size_t qb = j->nq * j->d * sizeof(float), off = qb, coff;
	const char *bad;

	memset(io, 0, sizeof(*io));
	io->h = (struct vv_knn_dir_hdr){ .magic = VV_KNN_DIR_MAGIC, .version = VV_KNN_DIR_VERSION,
					 .metric = (uint32_t)j->m, .dim = (uint32_t)j->d,
					 .dtype = (uint32_t)c->schema.dtype, .format = (uint32_t)k->format,
					 .nq = (uint32_t)j->nq, .kk = j->kk,
					 .nnames = (uint32_t)(k->i1 - k->i0), .names_len = k->names_len };
	memcpy(io->u, j->queries, qb);
	for (size_t i = k->i0; i < k->i1; i++) {
		const char *name = c->segs[j->p0 + j->order[i]].name;
		size_t len = strlen(name) + 1;
		memcpy(io->u + off, name, len);
		off += len;
	}
	sent = io->h;
	if (dir_ioctl(c->io->dirfd, io) < 0) {
		if (errno == ENOTTY)
			atomic_store(&j->stop, true);
		vv_log(VV_LOG_DEBUG, "knn: %s: no directory offload for %zu files: %s", c->dir,
		       k->i1 - k->i0, strerror(errno));
		return;
	}
	if ((bad = vv_knn_dir_reply_bad(&sent, io, scratch))) {
		vv_log(VV_LOG_WARN, "knn: %s: the daemon's directory reply has %s; scanning its %zu "
		       "files here instead", c->dir, bad, k->i1 - k->i0);
		return;
	}
	for (size_t i = k->i0; i < k->i1; i++) {
		memcpy(&st, io->u + (i - k->i0) * sizeof(st), sizeof(st));
		if (st.err == 0) {
			j->served[j->order[i]] = 1;
			j->rows[j->order[i]] = st.rows;
		} else if (st.err == -EAGAIN) {
			atomic_fetch_add(&j->filling, 1);
		}
	}
	coff = (size_t)sent.nnames * sizeof(st);
	for (size_t q = 0; q < j->nq; q++) {
		struct vv_dcand *o = j->cand + (ch * j->nq + q) * j->kk;
		uint32_t n = 0;
		for (; n < j->kk; n++) {
			memcpy(&x, io->u + coff + (q * j->kk + n) * sizeof(x), sizeof(x));
			if (x.name == VV_KNN_DIR_NO_NAME)
				break;
			o[n] = (struct vv_dcand){ x.d, (uint32_t)(j->p0 + j->order[k->i0 + x.name]),
						  x.row };
		}
		j->ncand[ch * j->nq + q] = n;
	}
	j->ok[ch] = 1;
}

static void *dir_work(void *arg)
{
	struct job *j = arg;
	struct vv_knn_dir_ioc *io = malloc(sizeof(*io));
	void *scratch = malloc((size_t)j->kk * sizeof(struct nr));
	size_t ch;

	if (!io || !scratch)
		atomic_store(&j->nomem, true);
	else
		while (!atomic_load(&j->stop) && (ch = atomic_fetch_add(&j->next, 1)) < j->nch)
			run_chunk(j, ch, io, scratch);
	free(io);
	free(scratch);
	return NULL;
}

/* Cut deferred names 0 .. n into requests: order gets them by format,
 * in name order within each (a request's names stay in segment order, so
 * its ties by name index are ties by segment); each request at most
 * `target` names of one format, as many as the payload holds with the
 * queries (in) and the candidates (out).  0 or VV_ENOMEM. */
static int plan_chunks(const struct vv_collection *c, size_t p0, size_t n, size_t qbytes,
		       size_t cbytes, size_t target, uint32_t *order, struct chunk **out,
		       size_t *nch)
{
	size_t cap = 0, no = 0;
	struct chunk *v = NULL;

	*nch = 0;
	for (int f = VV_SEG_FVECS; f <= VV_SEG_NPY; f++)
		for (size_t i = 0; i < n; i++)
			if ((int)vv_segment_format_from_name(c->segs[p0 + i].name) == f)
				order[no++] = (uint32_t)i;
	for (size_t i = 0; i < no;) {
		struct chunk k = { .i0 = i, .i1 = i,
				   .format = vv_segment_format_from_name(c->segs[p0 + order[i]].name) };
		size_t in = qbytes;
		while (k.i1 < no && k.i1 - k.i0 < target) {
			const char *name = c->segs[p0 + order[k.i1]].name;
			size_t len = strlen(name) + 1;
			if (vv_segment_format_from_name(name) != k.format || len - 1 > VV_KNN_DIR_NAME_MAX ||
			    in + len > VV_KNN_DIR_PAYLOAD ||
			    (k.i1 - k.i0 + 1) * sizeof(struct vv_knn_dir_stat) + cbytes > VV_KNN_DIR_PAYLOAD)
				break;
			in += len;
			k.i1++;
		}
		if (k.i1 == k.i0) {
			i++;             /* a name no request can carry: the tool's */
			continue;
		}
		k.names_len = (uint32_t)(in - qbytes);
		if (VV_GROW(v, *nch, cap) < 0) {
			free(v);
			*nch = 0;
			return VV_ENOMEM;
		}
		v[(*nch)++] = k;
		i = k.i1;
	}
	*out = v;
	return 0;
}

/* Is fd a directory opened for reading (the request's handle)? */
static bool dir_handle_ok(int fd)
{
	struct stat st;
	int fl = fcntl(fd, F_GETFL);

	return fd >= 0 && fl >= 0 && (fl & O_ACCMODE) == O_RDONLY && fstat(fd, &st) == 0 &&
	       S_ISDIR(st.st_mode);
}

/* vector_int.h */
bool vv_coll_dir_batch_fits(const struct vv_collection *c, size_t nq, uint32_t kk)
{
	size_t d = c->schema.dim;

	return d && nq <= UINT32_MAX / d && nq * d * sizeof(float) + 2 <= VV_KNN_DIR_PAYLOAD &&
	       nq * kk * sizeof(struct vv_knn_dir_cand) + sizeof(struct vv_knn_dir_stat) <=
		       VV_KNN_DIR_PAYLOAD;
}

/* vector_int.h */
int vv_coll_dir_offload(const struct vv_collection *c, const float *queries, size_t nq,
			enum vv_metric m, uint32_t kk, const struct vv_search_opts *o, uint8_t *served,
			uint64_t *rows, struct vv_offload *out)
{
	size_t p0 = c->pend0, n = c->nsegs - p0, d = c->schema.dim, target, nt, qbytes, cbytes;
	struct chunk *ch = NULL;
	uint32_t *order = NULL;
	struct job j;
	pthread_t th[DIR_INFLIGHT];
	size_t started = 1;
	int r = 0;

	memset(out, 0, sizeof(*out));
	memset(&j, 0, sizeof(j));
	qbytes = nq * d * sizeof(float);
	cbytes = nq * kk * sizeof(struct vv_knn_dir_cand);
	/* the whole batch in every request, or nothing offloaded */
	if (!n || o->no_offload || c->schema.dtype == VV_DT_ANY || !vv_coll_dir_batch_fits(c, nq, kk) ||
	    !dir_handle_ok(c->io->dirfd))
		return 0;
	/* enough requests to keep DIR_INFLIGHT of them busy */
	target = (n + DIR_INFLIGHT - 1) / DIR_INFLIGHT;
	target = target < DIR_MIN_NAMES ? DIR_MIN_NAMES : target > VV_KNN_DIR_MAX_NAMES
							      ? VV_KNN_DIR_MAX_NAMES : target;
	if (!(order = malloc(n * sizeof(*order)))) {
		r = VV_ENOMEM;
		goto out;
	}
	if ((r = plan_chunks(c, p0, n, qbytes, cbytes, target, order, &ch, &j.nch)) < 0 || !j.nch)
		goto out;
	j.order = order;
	j.c = c;
	j.queries = queries;
	j.nq = nq;
	j.d = d;
	j.p0 = p0;
	j.m = m;
	j.kk = kk;
	j.ch = ch;
	j.served = served;
	j.rows = rows;
	if (!(j.ok = calloc(j.nch, 1)) || !(j.ncand = calloc(j.nch * nq, sizeof(*j.ncand))) ||
	    !(j.cand = malloc(j.nch * nq * kk * sizeof(*j.cand)))) {
		r = VV_ENOMEM;
		goto out;
	}
	nt = j.nch < DIR_INFLIGHT ? j.nch : DIR_INFLIGHT;
	for (; started < nt; started++)
		if (pthread_create(&th[started], NULL, dir_work, &j) != 0)
			break;
	dir_work(&j);
	for (size_t t = 1; t < started; t++)
		pthread_join(th[t], NULL);
	if (atomic_load(&j.nomem)) {
		r = VV_ENOMEM;
		goto out;
	}
	/* the answered requests' candidates, query by query */
	out->ocap = j.nch * kk;
	if (!(out->oc = malloc(nq * out->ocap * sizeof(*out->oc))) ||
	    !(out->on = calloc(nq, sizeof(*out->on)))) {
		r = VV_ENOMEM;
		goto out;
	}
	for (size_t k = 0; k < j.nch; k++) {
		if (!j.ok[k])
			continue;
		for (size_t q = 0; q < nq; q++) {
			uint32_t nc = j.ncand[k * nq + q];
			memcpy(out->oc + q * out->ocap + out->on[q], j.cand + (k * nq + q) * kk,
			       nc * sizeof(*out->oc));
			out->on[q] += nc;
		}
		if (o->stats) {
			o->stats->dir_requests++;
			o->stats->offload_requests++;
		}
	}
	if (o->stats) {
		o->stats->dir_filling += atomic_load(&j.filling);
		for (size_t i = 0; i < n; i++)
			if (served[i]) {
				/* scanned by the daemon: in the offload's totals too */
				o->stats->dir_segs++;
				o->stats->dir_rows += rows[i];
				o->stats->segs_offloaded++;
				o->stats->rows_offloaded += rows[i];
			}
	}
out:
	if (r < 0) {
		vv_offload_release(out);
		memset(served, 0, n);
	}
	free(ch);
	free(order);
	free(j.ok);
	free(j.ncand);
	free(j.cand);
	return r;
}
