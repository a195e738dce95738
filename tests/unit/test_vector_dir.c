/*
 * test_vector_dir.c - the directory offload (vector_dir.c,
 * VV_IOC_KNN_DIR): a deferred open whose small segments a daemon scans by
 * name gives exactly what the plain open gives (hits: distance, segment,
 * row, id), with ties across names and across requests broken by
 * (segment, row).  The daemon is a fake behind the test seam
 * (vv_coll_dir_test_ioctl): honest, absent (ENOTTY: every name read by the
 * tool), partial (names it is still decrypting or may not read: those read
 * by the tool), and hostile, one way per run (a reply that fails any one
 * check of vv_knn_dir_reply_bad is thrown away: nothing of it counts, its
 * names are read by the tool).  Also: a batch too large for a request
 * sends none; a second search opens the served segments; bad segments
 * among the deferred ones fail the search (or are skipped) in the open's
 * own words.
 */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "seg_files.h"
#include "tap.h"
#include "buf.h"
#include "vector_int.h"

#define D 8
#define NSEG 300
#define MAXROWS (NSEG * 13)
#define NQ 2
#define NQBIG 40                 /* 40 x 26 candidates: over one request's payload */
#define K 10

static char tmpdir[] = "/tmp/vv_test_vdir.XXXXXX";
static char baddir[] = "/tmp/vv_test_vdirb.XXXXXX";
static float rows[MAXROWS][D];
static size_t nrows;
static float q[NQBIG][D];

/* rows r0 .. r0+n (of d values) as npy or fvecs, written to dir/name */
static void write_seg(const char *dir, const char *name, size_t r0, size_t n, bool fvecs, int d)
{
	static uint8_t buf[64 * 1024];
	size_t len;

	if (fvecs) {
		for (size_t i = 0; i < n; i++) {
			vv_put_le32(buf + i * (4 + (size_t)d * 4), (uint32_t)d);
			memcpy(buf + i * (4 + (size_t)d * 4) + 4, rows[r0 + i], (size_t)d * 4);
		}
		len = n * (4 + (size_t)d * 4);
	} else {
		char dict[128];
		snprintf(dict, sizeof(dict), "{'descr': '<f4', 'fortran_order': False, 'shape': (%zu, %d), }",
			 n, d);
		len = segf_npy_head(buf, dict);
		for (size_t i = 0; i < n; i++)
			memcpy(buf + len + i * (size_t)d * 4, rows[r0 + i], (size_t)d * 4);
		len += n * (size_t)d * 4;
	}
	segf_write(dir, name, buf, len);
}

static void build(void)
{
	unsigned seed = 11;
	char name[64];
	size_t n[NSEG];

	segf_fill(&rows[0][0], (size_t)MAXROWS * D, &seed);
	segf_fill(&q[0][0], (size_t)NQBIG * D, &seed);
	for (size_t s = 0; s < NSEG; s++)
		nrows += n[s] = s == 0 ? 5 : (s * 7 + 2) % 13;
	/* exact copies of row 3 all over: ties by (segment, row), across the
	 * names of one request and across requests */
	for (size_t r = 3; r < nrows; r += 97)
		memcpy(rows[r], rows[3], sizeof(rows[3]));
	memcpy(q[0], rows[3], sizeof(q[0]));
	for (size_t s = 0, r0 = 0; s < NSEG; r0 += n[s], s++) {
		bool fv = s % 5 == 1 && n[s] > 0;   /* formats mixed: requests split */
		snprintf(name, sizeof(name), "s%04zu.%s", s, fv ? "fvecs" : "npy");
		write_seg(tmpdir, name, r0, n[s], fv, D);
	}
}

/* ---- the fake daemon ------------------------------------------------------- */

enum mode { HONEST, NOTTY, PARTIAL, HOSTILE };
static enum mode mode;
static int hostile;              /* which lie, HOSTILE */
static atomic_int nreq;

struct fc {
	double d;
	uint32_t name;
	uint64_t row;
};

static int fc_cmp(const void *a, const void *b)
{
	const struct fc *x = a, *y = b;

	if (x->d != y->d)
		return x->d < y->d ? -1 : 1;
	if (x->name != y->name)
		return x->name < y->name ? -1 : 1;
	return x->row < y->row ? -1 : x->row > y->row;
}

/* Scan name (relative to dirfd) for h's queries qs as a daemon would:
 * every row's exact distance appended to c (*nc); the file's rows, or a
 * negative errno. */
static int64_t scan_name(int dirfd, const char *name, uint32_t idx, const struct vv_knn_dir_hdr *h,
			 const float *qs, size_t qi, struct fc *c, size_t *nc)
{
	static _Thread_local uint8_t buf[64 * 1024];
	struct vv_segment_info si;
	const char *why;
	float tmp[D];
	ssize_t len;
	int fd = openat(dirfd, name, O_RDONLY);

	if (fd < 0)
		return -errno;
	len = read(fd, buf, sizeof(buf));
	close(fd);
	if (len < 0)
		return -EIO;
	if (vv_segment_probe(vv_segment_format_from_name(name), buf,
			     (size_t)len < VV_VEC_PROBE_LEN ? (size_t)len : VV_VEC_PROBE_LEN,
			     (uint64_t)len, &si, &why) < 0 ||
	    si.dim != h->dim || si.dtype != h->dtype || si.format != h->format)
		return -EINVAL;
	for (uint64_t r = 0; r < si.count; r++)
		c[(*nc)++] = (struct fc){ vv_row_dist(h->metric, si.dtype, buf + si.data_off + r * si.stride,
						      qs + qi * h->dim, h->dim, tmp), idx, r };
	return (int64_t)si.count;
}

static void put_stat(struct vv_knn_dir_ioc *io, uint32_t i, int32_t err, uint64_t rows_)
{
	struct vv_knn_dir_stat st = { .err = err, .rows = rows_ };
	memcpy(io->u + (size_t)i * sizeof(st), &st, sizeof(st));
}

static struct vv_knn_dir_cand *cand_at(struct vv_knn_dir_ioc *io, uint32_t q_, uint32_t i)
{
	return (struct vv_knn_dir_cand *)(io->u + (size_t)io->h.nnames * sizeof(struct vv_knn_dir_stat) +
					  ((size_t)q_ * io->h.kk + i) * sizeof(struct vv_knn_dir_cand));
}

/* The lie `hostile` told in reply io (query 0's candidates; one served
 * name at least). */
static void lie(struct vv_knn_dir_ioc *io)
{
	struct vv_knn_dir_cand *c0 = cand_at(io, 0, 0), *c1 = cand_at(io, 0, 1),
			       *cl = cand_at(io, 0, io->h.kk - 1);
	struct vv_knn_dir_stat st;

	memcpy(&st, io->u + (size_t)c0->name * sizeof(st), sizeof(st));
	switch (hostile) {
	case 0: io->h.magic = VV_KNN_DIR_MAGIC; break;
	case 1: io->h.nq++; break;
	case 2: io->h.flags = 1; break;
	case 3: put_stat(io, c0->name, 0, st.rows); io->u[(size_t)c0->name * sizeof(st) + 4] = 1; break;
	case 4: case 19: { /* a served name without candidates gets a status that
			      is no errno (5, -5000), totals kept consistent */
		uint32_t nm = UINT32_MAX;
		struct vv_knn_dir_stat s2;
		for (uint32_t i = 0; i < io->h.nnames && nm == UINT32_MAX; i++) {
			bool used = false;
			memcpy(&s2, io->u + (size_t)i * sizeof(s2), sizeof(s2));
			for (uint32_t qq = 0; qq < io->h.nq && !used; qq++)
				for (uint32_t k = 0; k < io->h.kk && !used; k++)
					used = cand_at(io, qq, k)->name == i;
			if (!used && s2.err == 0)
				nm = i;
		}
		if (nm == UINT32_MAX) {
			io->h.served++;      /* every name has candidates: another lie */
			break;
		}
		memcpy(&s2, io->u + (size_t)nm * sizeof(s2), sizeof(s2));
		put_stat(io, nm, hostile == 4 ? 5 : -5000, 0);
		io->h.served--;
		io->h.rows -= s2.rows;
		break; }
	case 5: /* rows past any work budget, totals kept consistent */
		put_stat(io, c0->name, 0, st.rows + (1ull << 40));
		io->h.rows += 1ull << 40;
		break;
	case 6: io->h.served++; break;
	case 7: io->h.rows++; break;
	case 8: c0->name = 0x40000000; break;   /* far past the stats: never read */
	case 9: /* c0's name said not scanned, totals kept consistent */
		put_stat(io, c0->name, -EAGAIN, 0);
		io->h.served--;
		io->h.rows -= st.rows;
		break;
	case 10: c0->row = st.rows; break;
	case 11: { /* +inf as the last used slot: sorted, >= 0 */
		uint32_t n = 0;
		while (n < io->h.kk && cand_at(io, 0, n)->name != VV_KNN_DIR_NO_NAME)
			n++;
		cand_at(io, 0, n - 1)->d = INFINITY;
		break; }
	case 12: c0->d = -1; break;
	case 13: { struct vv_knn_dir_cand t = *c0; *c0 = *c1; *c1 = t; c0->d += 1; break; }
	case 14: { /* c0's row again as the last used slot, still sorted */
		uint32_t n = 0;
		while (n < io->h.kk && cand_at(io, 0, n)->name != VV_KNN_DIR_NO_NAME)
			n++;
		if (n < 2) {
			c0->name = io->h.nnames;     /* nothing to repeat: another lie */
			break;
		}
		struct vv_knn_dir_cand *cn = cand_at(io, 0, n - 1);
		cn->d = cand_at(io, 0, n - 2)->d + 1;
		cn->name = c0->name;
		cn->row = c0->row;
		break; }
	case 15: { struct vv_knn_dir_cand t = *c0;
		*c0 = (struct vv_knn_dir_cand){ 0, VV_KNN_DIR_NO_NAME, 0, VV_KNN_NO_ROW };
		*c1 = t;
		break; }
	case 16: cl->name = VV_KNN_DIR_NO_NAME; cl->row = 1; break;
	case 17: c0->pad = 1; break;
	case 18: io->h.version = 2; break;
	}
}
#define NLIES 20

static int fake_ioctl(int fd, struct vv_knn_dir_ioc *io, void *ctx)
{
	struct vv_knn_dir_hdr h = io->h;
	size_t qb = (size_t)h.nq * h.dim * sizeof(float), off = qb, nc;
	const char *names[VV_KNN_DIR_MAX_NAMES];
	float *qs = malloc(qb);
	struct fc *c = malloc((size_t)VV_KNN_DIR_MAX_NAMES * 13 * sizeof(*c));
	int64_t got[VV_KNN_DIR_MAX_NAMES];

	(void)ctx;
	atomic_fetch_add(&nreq, 1);
	if (mode == NOTTY || !qs || !c || h.magic != VV_KNN_DIR_MAGIC || h.nnames > VV_KNN_DIR_MAX_NAMES ||
	    qb + h.names_len > VV_KNN_DIR_PAYLOAD ||
	    (size_t)h.nnames * 16 + (size_t)h.nq * h.kk * 24 > VV_KNN_DIR_PAYLOAD) {
		free(qs);
		free(c);
		errno = mode == NOTTY ? ENOTTY : EINVAL;
		return -1;
	}
	memcpy(qs, io->u, qb);
	for (uint32_t i = 0; i < h.nnames; i++) {
		names[i] = (const char *)io->u + off;
		off += strlen(names[i]) + 1;
	}
	/* the names stay in io until the reply is built: copy them out */
	char (*nm)[256] = malloc((size_t)h.nnames * 256);
	for (uint32_t i = 0; i < h.nnames; i++)
		snprintf(nm[i], 256, "%s", names[i]);
	memset(io->u, 0, sizeof(io->u));
	io->h.magic = VV_KNN_DIR_MAGIC_REPLY;
	for (uint32_t qi = 0; qi < h.nq; qi++) {
		nc = 0;
		for (uint32_t i = 0; i < h.nnames; i++) {
			unsigned sidx = (unsigned)atoi(nm[i] + 1);
			if (mode == PARTIAL && sidx % 3 == 0)
				got[i] = -EAGAIN;
			else if (mode == PARTIAL && sidx % 7 == 0)
				got[i] = -EACCES;
			else
				got[i] = scan_name(fd, nm[i], i, &h, qs, qi, c, &nc);
		}
		qsort(c, nc, sizeof(*c), fc_cmp);
		for (uint32_t k = 0; k < h.kk; k++)
			*cand_at(io, qi, k) = k < nc ? (struct vv_knn_dir_cand){ c[k].d, c[k].name, 0, c[k].row }
						     : (struct vv_knn_dir_cand){ 0, VV_KNN_DIR_NO_NAME, 0,
										 VV_KNN_NO_ROW };
	}
	for (uint32_t i = 0; i < h.nnames; i++) {
		put_stat(io, i, got[i] < 0 ? (int32_t)got[i] : 0, got[i] < 0 ? 0 : (uint64_t)got[i]);
		if (got[i] >= 0) {
			io->h.served++;
			io->h.rows += (uint64_t)got[i];
		}
	}
	if (mode == HOSTILE && io->h.served)
		lie(io);
	free(nm);
	free(qs);
	free(c);
	return 0;
}

/* ---- runs -------------------------------------------------------------------- */

struct outcome {
	int r;
	bool check;
	char err[512];
	size_t nsegs, nskipped;
	char skipped[512];
	uint64_t rows;
	struct vv_search_stats st;
	struct vv_hit h[NQBIG * K];
	struct vv_hit h2[NQBIG * K];
};

/* Open dir (deferred through the fake when hooked) and search nq queries;
 * with twice, search again. */
static void run(const char *dir, bool hooked, bool skip_bad, size_t nq, bool twice, struct outcome *o)
{
	struct vv_collection *c = NULL;
	struct vv_search_opts so = { .k = K, .metric = VV_METRIC_L2, .threads = 2, .stats = &o->st };

	memset(o, 0, sizeof(*o));
	vv_coll_dir_test_ioctl(hooked ? fake_ioctl : NULL, NULL);
	o->r = (hooked ? vv_collection_open_deferred : vv_collection_open)(dir, NULL, skip_bad, &c, o->err,
									   sizeof(o->err));
	if (o->r == 0) {
		o->r = vv_collection_search(c, &q[0][0], nq, &so, o->h, o->err, sizeof(o->err));
		o->check = vv_collection_check_failed(c);
		if (o->r == 0 && twice) {
			struct vv_search_opts s2 = so;
			s2.stats = NULL;
			o->r = vv_collection_search(c, &q[0][0], nq, &s2, o->h2, o->err, sizeof(o->err));
		}
		o->nsegs = vv_collection_nsegs(c);
		for (size_t i = 0; i < o->nsegs; i++)
			o->rows += vv_collection_seg(c, i)->info.count;
		o->nskipped = vv_collection_nskipped(c);
		for (size_t i = 0; i < o->nskipped; i++) {
			size_t l = strlen(o->skipped);
			snprintf(o->skipped + l, sizeof(o->skipped) - l, "%s;", vv_collection_skipped(c, i));
		}
	}
	vv_collection_free(c);
	vv_coll_dir_test_ioctl(NULL, NULL);
}

static bool same_hits(const struct vv_hit *a, const struct vv_hit *b, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (memcmp(&a[i].dist, &b[i].dist, sizeof(double)) || a[i].seg != b[i].seg ||
		    a[i].row != b[i].row || a[i].id != b[i].id) {
			char m[200];
			snprintf(m, sizeof(m), "hit %zu: %.17g seg %u row %llu id %lld vs %.17g seg %u row "
				 "%llu id %lld", i, a[i].dist, a[i].seg, (unsigned long long)a[i].row,
				 (long long)a[i].id, b[i].dist, b[i].seg, (unsigned long long)b[i].row,
				 (long long)b[i].id);
			tap_diag(m);
			return false;
		}
	return true;
}

/* The float64 brute force agrees with the reference's first query: the
 * ties (exact copies of row 3) come first, in row order. */
static bool ties_in_row_order(const struct vv_hit *h)
{
	size_t want = 0;

	for (size_t i = 0; i < K; i++) {
		size_t r = 3 + 97 * i;
		if (r >= nrows)
			break;
		if (h[i].dist != 0 || h[i].id != (int64_t)r)
			return false;
		want++;
	}
	return want >= 2;
}

int main(void)
{
	static struct outcome ref, refbig, o;
	char name[300];

	if (!mkdtemp(tmpdir) || !mkdtemp(baddir))
		return 1;
	build();

	run(tmpdir, false, false, NQ, false, &ref);
	ok(ref.r == 0 && ref.nsegs == NSEG && ref.rows == nrows, "plain open: all segments");
	ok(ties_in_row_order(ref.h), "plain open: exact ties across segments in row order");

	mode = HONEST;
	atomic_store(&nreq, 0);
	run(tmpdir, true, false, NQ, true, &o);
	ok(o.r == 0 && o.nsegs == NSEG && o.rows == nrows, "daemon serves: the same segments and rows");
	ok(same_hits(o.h, ref.h, NQ * K), "daemon serves: hits identical to the plain open's");
	ok(o.st.dir_segs == NSEG - 1 && o.st.dir_rows == nrows - 5,
	       "daemon serves: every deferred segment served by name (stats)");
	ok(o.st.dir_requests == (unsigned)atomic_load(&nreq) && o.st.dir_requests >= 3,
	       "daemon serves: requests split by format and size, each answered");
	ok(o.st.rows_read_back == 0 || o.st.rows_read_back <= 2 * (NQ * (K + 16)),
	       "daemon serves: only the first segment's candidates read back");
	ok(o.st.segs_offloaded == NSEG - 1, "daemon serves: counted in the offload's totals");
	ok(same_hits(o.h2, ref.h, NQ * K), "a second search (the served segments opened): identical");

	mode = NOTTY;
	atomic_store(&nreq, 0);
	run(tmpdir, true, false, NQ, false, &o);
	ok(o.r == 0 && same_hits(o.h, ref.h, NQ * K), "no directory request (ENOTTY): identical");
	ok(o.st.dir_segs == 0 && o.st.dir_requests == 0, "ENOTTY: nothing served");
	ok(atomic_load(&nreq) <= 2, "ENOTTY: no more requests once refused (at most one per thread)");

	mode = PARTIAL;
	run(tmpdir, true, false, NQ, false, &o);
	{
		unsigned want = 0, fill = 0;
		for (unsigned s = 1; s < NSEG; s++) {
			fill += s % 3 == 0;
			want += s % 3 && s % 7;
		}
		ok(o.r == 0 && same_hits(o.h, ref.h, NQ * K), "partial (EAGAIN, EACCES): identical");
		ok(o.st.dir_segs == want && o.st.dir_filling == fill,
		       "partial: the names served and those still filling counted");
	}

	mode = HONEST;
	for (hostile = 0; hostile < NLIES; hostile++) {
		char m[120];
		mode = HOSTILE;
		run(tmpdir, true, false, NQ, false, &o);
		snprintf(m, sizeof(m), "hostile reply %d: identical results", hostile);
		ok(o.r == 0 && same_hits(o.h, ref.h, NQ * K), m);
		snprintf(m, sizeof(m), "hostile reply %d: thrown away (nothing served)", hostile);
		ok(o.st.dir_segs == 0 && o.st.dir_requests == 0, m);
	}
	mode = HONEST;

	/* a batch whose candidates exceed one request: no request at all */
	run(tmpdir, false, false, NQBIG, false, &refbig);
	atomic_store(&nreq, 0);
	run(tmpdir, true, false, NQBIG, false, &o);
	ok(o.r == 0 && same_hits(o.h, refbig.h, NQBIG * K), "40 queries: identical");
	ok(atomic_load(&nreq) == 0 && o.st.dir_segs == 0, "40 queries: too large, no request sent");
	/* one query: fits */
	run(tmpdir, false, false, 1, false, &refbig);
	run(tmpdir, true, false, 1, false, &o);
	ok(o.r == 0 && same_hits(o.h, refbig.h, K) && o.st.dir_segs == NSEG - 1,
	       "1 query: served, identical");

	/* the reply check, directly: an honest reply passes */
	{
		static struct vv_knn_dir_ioc io;
		struct vv_knn_dir_hdr sent;
		static uint8_t scratch[64 * 16];
		int dfd = open(tmpdir, O_RDONLY | O_DIRECTORY);
		size_t off;
		memset(&io, 0, sizeof(io));
		io.h = (struct vv_knn_dir_hdr){ .magic = VV_KNN_DIR_MAGIC, .version = VV_KNN_DIR_VERSION,
						.metric = VV_METRIC_L2, .dim = D, .dtype = VV_DT_F32,
						.format = VV_SEG_NPY, .nq = 1, .kk = 26, .nnames = 3 };
		memcpy(io.u, q[0], D * sizeof(float));
		off = D * sizeof(float);
		for (int i = 0; i < 3; i++) {
			int n = snprintf((char *)io.u + off, 32, "s%04d.npy", 2 + i * 5);
			off += (size_t)n + 1;
		}
		io.h.names_len = (uint32_t)(off - D * sizeof(float));
		sent = io.h;
		mode = HONEST;
		ok(fake_ioctl(dfd, &io, NULL) == 0 && io.h.served == 3, "fake daemon answers 3 names");
		ok(vv_knn_dir_reply_bad(&sent, &io, scratch) == NULL, "an honest reply passes the check");
		close(dfd);
	}

	/* bad segments among the deferred ones: the open's errors */
	for (int s = 0; s < 40; s++) {
		snprintf(name, sizeof(name), "s%04d.npy", s);
		write_seg(baddir, name, (size_t)s * 4, 4, false, D);
	}
	segf_write(baddir, "s0020x.npy", "not a segment at all, longer than its head....", 47);
	write_seg(baddir, "s0030x.npy", 0, 4, false, D - 1);
	{
		static struct outcome r1, r2;
		run(baddir, false, false, NQ, false, &r1);
		run(baddir, true, false, NQ, false, &r2);
		ok(r1.r < 0 && r2.r == r1.r && r2.check && !strcmp(r1.err, r2.err),
		       "a bad segment among the served: the same error, word for word");
		if (strcmp(r1.err, r2.err)) {
			tap_diag(r1.err);
			tap_diag(r2.err);
		}
		run(baddir, false, true, NQ, false, &r1);
		run(baddir, true, true, NQ, false, &r2);
		ok(r1.r == 0 && r2.r == 0 && r1.nskipped == 2 && !strcmp(r1.skipped, r2.skipped),
		       "--skip-bad: the same two left out, the same words");
		ok(same_hits(r1.h, r2.h, NQ * K) && r2.st.dir_segs == 40 - 1,
		       "--skip-bad: identical hits, the good ones served");
		/* a segment swapped between the request and a second search */
		mode = HONEST;
		vv_coll_dir_test_ioctl(fake_ioctl, NULL);
		{
			struct vv_collection *c = NULL;
			struct vv_search_opts so = { .k = K, .metric = VV_METRIC_L2, .threads = 2 };
			char err[512] = "";
			int r = vv_collection_open_deferred(baddir, NULL, true, &c, err, sizeof(err));
			if (r == 0)
				r = vv_collection_search(c, &q[0][0], NQ, &so, r2.h, err, sizeof(err));
			write_seg(baddir, "s0025.npy", 0, 7, false, D);
			if (r == 0)
				r = vv_collection_search(c, &q[0][0], NQ, &so, r2.h, err, sizeof(err));
			ok(r == VV_EIO && strstr(err, "s0025.npy") && strstr(err, VV_SEG_CHANGED),
			       "a served segment with other rows at the next search: refused naming it");
			tap_diag(err);
			vv_collection_free(c);
		}
		vv_coll_dir_test_ioctl(NULL, NULL);
	}

	/* remaining plan slots: per-format request boundaries don't reorder */
	for (int i = 0; i < 16; i++) {
		mode = i % 2 ? PARTIAL : HONEST;
		run(tmpdir, true, false, NQ, false, &o);
		ok(o.r == 0 && same_hits(o.h, ref.h, NQ * K), "repeat: identical");
	}

	snprintf(name, sizeof(name), "rm -rf %s %s", tmpdir, baddir);
	if (system(name) != 0)
		tap_diag("could not remove the test directories");
	return tap_done();
}
