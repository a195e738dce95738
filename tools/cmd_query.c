/*
 * cmd_query.c - `vecvault query`: exact k-NN over a collection directory.
 *
 *   vecvault query DIR (-q QUERIES | --vector "x,y,...") [-k 10]
 *                  [--metric l2|ip|cosine] [--threads N]
 *                  [--format text|json|npy|ivecs] [-o OUT] [--skip-bad]
 *
 * DIR is a collection on a vecvault mount or any directory of segments.  The
 * tool reads segments like any other reader, so the mount's permissions and
 * audit apply.  Output formats are described in docs/query.md.
 */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "cmd.h"
#include "env.h"
#include "progress.h"
#include "vecvault/error.h"
#include "vecvault/vector.h"

static const char usage[] =
	"usage: vecvault query DIR (-q QUERIES.{fvecs,npy} | --vector \"x,y,...\") [-k 10]\n"
	"                      [--metric l2|ip|cosine] [--threads N]\n"
	"                      [--format text|json|npy|ivecs] [-o OUT] [--skip-bad] [--stats]\n"
	"                      [--no-offload]\n";

enum fmt { F_TEXT, F_JSON, F_NPY, F_IVECS };

static int parse_vector(const char *s, float **out, uint32_t *dim)
{
	size_t cap = 16, n = 0;
	float *v = malloc(cap * sizeof(float));
	const char *p = s;
	int r = 0;

	if (!v)
		return VV_ENOMEM;
	for (;;) {
		char *end;
		double x;
		while (*p == ' ' || *p == '\t')
			p++;
		errno = 0;
		x = strtod(p, &end);
		if (end == p || errno == ERANGE || !isfinite(x)) {
			r = VV_EINVAL;
			goto out;
		}
		if (n == cap) {
			float *nv = realloc(v, (cap *= 2) * sizeof(float));
			if (!nv) {
				r = VV_ENOMEM;
				goto out;
			}
			v = nv;
		}
		v[n++] = (float)x;
		p = end;
		while (*p == ' ' || *p == '\t')
			p++;
		if (*p == 0)
			break;
		if (*p != ',') {
			r = VV_EINVAL;
			goto out;
		}
		p++;
	}
	if (n > VV_VEC_MAX_DIM)
		r = VV_EINVAL;
out:
	if (r < 0) {
		free(v);
		v = NULL;
	}
	*out = v;
	*dim = (uint32_t)n;
	return r;
}

static void json_str(FILE *f, const char *s)
{
	fputc('"', f);
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		if (c == '"' || c == '\\')
			fprintf(f, "\\%c", c);
		else if (c < 0x20)
			fprintf(f, "\\u%04x", c);
		else
			fputc(c, f);
	}
	fputc('"', f);
}

static int write_npy_ids(FILE *f, const struct vv_hit *h, size_t nq, uint32_t k)
{
	char hdr[128];
	int n = snprintf(hdr, sizeof(hdr), "{'descr': '<i8', 'fortran_order': False, 'shape': (%zu, %u), }",
			 nq, k);
	size_t total = 10 + (size_t)n + 1, pad = (64 - total % 64) % 64;
	uint8_t pre[10] = { 0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0, 0, 0 };

	pre[8] = (uint8_t)((n + 1 + pad) & 0xff);
	pre[9] = (uint8_t)((n + 1 + pad) >> 8);
	fwrite(pre, 1, 10, f);
	fwrite(hdr, 1, (size_t)n, f);
	for (size_t i = 0; i < pad; i++)
		fputc(' ', f);
	fputc('\n', f);
	for (size_t i = 0; i < nq * k; i++) {
		uint64_t v = (uint64_t)h[i].id;
		uint8_t b[8];
		for (int t = 0; t < 8; t++)
			b[t] = (uint8_t)(v >> (8 * t));
		fwrite(b, 1, 8, f);
	}
	return ferror(f) ? VV_EIO : 0;
}

static int write_ivecs(FILE *f, const struct vv_collection *c, const struct vv_hit *h, size_t nq,
		       uint32_t k)
{
	/* refuse before writing anything: a half-written file is worse */
	for (size_t i = 0; i < nq * k; i++)
		if (h[i].seg != UINT32_MAX && (h[i].id < INT32_MIN || h[i].id > INT32_MAX)) {
			die_msg("query", "id %lld (%s row %llu) does not fit in ivecs' int32; use --format npy",
				(long long)h[i].id, vv_collection_seg(c, h[i].seg)->name,
				(unsigned long long)h[i].row);
			return VV_ERANGE;
		}
	for (size_t q = 0; q < nq; q++) {
		uint8_t b[4];
		uint32_t kk = k;
		for (int t = 0; t < 4; t++)
			b[t] = (uint8_t)(kk >> (8 * t));
		fwrite(b, 1, 4, f);
		for (uint32_t i = 0; i < k; i++) {
			uint32_t v = (uint32_t)(int32_t)h[q * k + i].id;
			for (int t = 0; t < 4; t++)
				b[t] = (uint8_t)(v >> (8 * t));
			fwrite(b, 1, 4, f);
		}
	}
	return ferror(f) ? VV_EIO : 0;
}

static void write_text(FILE *f, const struct vv_collection *c, enum vv_metric m,
		       const struct vv_hit *h, size_t nq, uint32_t k, bool json)
{
	if (json)
		fprintf(f, "{\"metric\": \"%s\", \"k\": %u, \"results\": [", vv_metric_name(m), k);
	for (size_t q = 0; q < nq; q++) {
		if (json)
			fprintf(f, "%s\n [", q ? "," : "");
		for (uint32_t i = 0; i < k; i++) {
			const struct vv_hit *x = &h[q * k + i];
			const struct vv_collection_seg *s;
			if (x->seg == UINT32_MAX)
				break;
			s = vv_collection_seg(c, x->seg);
			if (json) {
				fprintf(f, "%s{\"id\": %lld, \"score\": %.9g, \"segment\": ", i ? ", " : "",
					(long long)x->id, vv_knn_score(m, x->dist));
				json_str(f, s->name);
				fprintf(f, ", \"row\": %llu}", (unsigned long long)x->row);
			} else {
				fprintf(f, "%zu\t%u\t%lld\t%.9g\t%s\t%llu\n", q, i + 1, (long long)x->id,
					vv_knn_score(m, x->dist), s->name, (unsigned long long)x->row);
			}
		}
		if (json)
			fputc(']', f);
	}
	if (json)
		fputs("\n]}\n", f);
}

/* The search keeps one descriptor per small segment (pread scans, no
 * mapping: docs/query.md); a collection of thousands of them needs more
 * than the usual soft limit of 1024.  Nothing here uses select(2), so the
 * soft limit may rise to the hard one. */
static void raise_nofile(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		(void)setrlimit(RLIMIT_NOFILE, &rl);
	}
}

int cmd_query(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "queries", required_argument, NULL, 'q' },
		{ "vector", required_argument, NULL, 'V' },
		{ "k", required_argument, NULL, 'k' },
		{ "metric", required_argument, NULL, 'm' },
		{ "threads", required_argument, NULL, 't' },
		{ "format", required_argument, NULL, 'f' },
		{ "output", required_argument, NULL, 'o' },
		{ "skip-bad", no_argument, NULL, 'S' },
		{ "stats", no_argument, NULL, 'T' },
		{ "no-offload", no_argument, NULL, 'O' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 }
	};
	const char *qfile = NULL, *vec = NULL, *outpath = NULL, *dir;
	struct vv_schema ov = { 0 };
	struct vv_search_opts so = { .k = 10 };
	struct vv_search_stats st;
	struct vv_collection *c = NULL;
	size_t nskip = 0;
	struct vv_hit *hits = NULL;
	struct tool_progress pr;
	enum fmt fmt = F_TEXT;
	bool skip_bad = false, stats = false;
	struct timespec t0, t1;
	float *q = NULL;
	size_t nq = 0;
	uint32_t qdim = 0;
	FILE *out = stdout;
	char err[1024] = "";
	int opt, r, status = 1;

	optind = 0;
	while ((opt = getopt_long(argc, argv, "q:k:o:h", opts, NULL)) != -1) {
		char *end;
		unsigned long v;
		switch (opt) {
		case 'q': qfile = optarg; break;
		case 'V': vec = optarg; break;
		case 'o': outpath = optarg; break;
		case 'S': skip_bad = true; break;
		case 'T': stats = true; break;
		case 'O': so.no_offload = true; break;
		case 'k':
		case 't':
			errno = 0;
			v = strtoul(optarg, &end, 10);
			if (errno || *end || end == optarg || optarg[0] == '-' ||
			    (opt == 'k' && (v < 1 || v > VV_VEC_MAX_K)) || (opt == 't' && v > 1024)) {
				die_msg("query", "bad %s '%s' (%s)", opt == 'k' ? "-k" : "--threads", optarg,
					opt == 'k' ? "1..100000" : "0..1024, 0 = all CPUs");
				status = 2;
				goto out;
			}
			if (opt == 'k')
				so.k = (uint32_t)v;
			else
				so.threads = (unsigned)v;
			break;
		case 'm':
			if (vv_metric_parse(optarg, &ov.metric) < 0) {
				die_msg("query", "unknown metric '%s' (l2, ip or cosine)", optarg);
				status = 2;
				goto out;
			}
			break;
		case 'f':
			if (strcmp(optarg, "text") == 0) fmt = F_TEXT;
			else if (strcmp(optarg, "json") == 0) fmt = F_JSON;
			else if (strcmp(optarg, "npy") == 0) fmt = F_NPY;
			else if (strcmp(optarg, "ivecs") == 0) fmt = F_IVECS;
			else {
				die_msg("query", "unknown format '%s' (text, json, npy or ivecs)", optarg);
				status = 2;
				goto out;
			}
			break;
		case 'h':
			fputs(usage, stdout);
			status = 0;
			goto out;
		default:
			fputs(usage, stderr);
			status = 2;
			goto out;
		}
	}
	if (optind != argc - 1 || (!qfile == !vec)) {
		fputs(usage, stderr);
		status = 2;
		goto out;
	}
	dir = argv[optind];
	if (vec) {
		if (parse_vector(vec, &q, &qdim) < 0) {
			die_msg("query", "--vector: want comma-separated finite numbers, got '%s'", vec);
			status = 2;
			goto out;
		}
		nq = 1;
	} else if ((r = vv_vectors_load(qfile, &q, &nq, &qdim, err, sizeof(err))) < 0) {
		die_msg("query", "queries %s", err);
		goto out;
	} else {
		size_t qr;
		uint32_t qc;
		/* A NaN query matches nothing: say so instead of printing no hits. */
		if (vv_vectors_nonfinite(q, nq, qdim, &qr, &qc)) {
			die_msg("query", "queries %s: query row %zu column %u is %s; queries must be "
				"finite numbers (rows and columns count from 0)", qfile, qr, qc,
				isnan(q[qr * qdim + qc]) ? "NaN" : "infinite");
			goto out;
		}
	}
	raise_nofile();
	/* deferred: small segments are opened by the search itself, each read
	 * whole once (docs/query.md); bad ones are reported as by the open */
	if ((r = vv_collection_open_deferred(dir, &ov, skip_bad, &c, err, sizeof(err))) < 0) {
		die_msg("query", "%s%s", err, skip_bad ? "" : (r == VV_EACCES || r == VV_ENOENT) ? "" :
			" (use --skip-bad to leave such segments out)");
		goto out;
	}
	for (; nskip < vv_collection_nskipped(c); nskip++)
		die_msg("query", "skipping %s/%s", dir, vv_collection_skipped(c, nskip));
	if (vv_collection_schema(c)->dim && qdim != vv_collection_schema(c)->dim) {
		die_msg("query", "queries have dimension %u but collection %s has %u", qdim, dir,
			vv_collection_schema(c)->dim);
		goto out;
	}
	if (!vv_collection_schema(c)->dim) {
		die_msg("query", "%s: no segments (nothing to search)", dir);
		goto out;
	}
	tool_env_search_opts(&so);
	if (!(hits = calloc(nq * so.k + 1, sizeof(*hits)))) {
		die_msg("query", "out of memory for %zu x %u results", nq, so.k);
		goto out;
	}
	/* On a terminal only, and only once the scan has taken a moment: a
	 * big batch, or the first query on a mount, which reads and decrypts
	 * every segment while the daemon fills its cache (docs/query.md). */
	tool_progress_start(&pr, "query", "rows scanned");
	if (pr.on) {
		so.progress = tool_progress_cb;
		so.progress_ctx = &pr;
	}
	if (stats)
		so.stats = &st;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	r = vv_collection_search(c, q, nq, &so, hits, err, sizeof(err));
	clock_gettime(CLOCK_MONOTONIC, &t1);
	tool_progress_end(&pr);
	for (; nskip < vv_collection_nskipped(c); nskip++)
		die_msg("query", "skipping %s/%s", dir, vv_collection_skipped(c, nskip));
	if (stats && r == 0) {
		/* for the benchmark: time of the scan alone, and its byte rate */
		double s = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) * 1e-9;
		uint64_t bytes = 0;
		for (size_t i = 0; i < vv_collection_nsegs(c); i++)
			bytes += vv_collection_seg(c, i)->file_size;
		fprintf(stderr, "vecvault query: stats: kernel %s search %.6f s, %.2f GB/s of segment bytes\n",
			vv_knn_kernel_name(), s, s > 0 ? (double)bytes / s / 1e9 : 0.0);
		fprintf(stderr, "vecvault query: stats: offload: %u of %zu segments scanned by the daemon, "
			"%u still being decrypted there\n", st.segs_offloaded, vv_collection_nsegs(c),
			st.segs_filling);
		fprintf(stderr, "vecvault query: stats: directory offload: %u of %zu segments (%llu rows) "
			"scanned by the daemon unopened in %u directory requests, %u still being "
			"decrypted there\n", st.dir_segs, vv_collection_nsegs(c),
			(unsigned long long)st.dir_rows, st.dir_requests, st.dir_filling);
		fprintf(stderr, "vecvault query: stats: io: %zu of %zu segments opened in io_uring batches\n",
			vv_collection_nbatched(c), vv_collection_nsegs(c));
		fprintf(stderr, "vecvault query: stats: open ahead: %u segments opened while the scan "
			"ran, %u of them scanned as they opened\n", st.ahead_opened, st.ahead_scanned);
		fprintf(stderr, "vecvault query: stats: bulk read: %u segments read in %u requests "
			"to the daemon (no open each)\n", st.bulk_read, st.bulk_requests);
		/* rows read back = segment bytes this process read to re-rank */
		fprintf(stderr, "vecvault query: stats: re-ranking: %llu candidates ranked exactly by the "
			"daemon in %u requests, %llu candidate rows read back here\n",
			(unsigned long long)st.cands_exact, st.offload_requests,
			(unsigned long long)st.rows_read_back);
	}
	if (r < 0 && vv_collection_check_failed(c)) {
		die_msg("query", "%s%s", err, skip_bad ? "" : (r == VV_EACCES || r == VV_ENOENT) ? "" :
			" (use --skip-bad to leave such segments out)");
		goto out;
	}
	if (r < 0) {
		die_msg("query", "%s", err[0] ? err : vv_strerror(r));
		goto out;
	}
	if ((fmt == F_NPY || fmt == F_IVECS) && !outpath && isatty(1)) {
		die_msg("query", "refusing to write binary %s to a terminal; use -o FILE",
			fmt == F_NPY ? "npy" : "ivecs");
		goto out;
	}
	if (outpath && !(out = fopen(outpath, fmt == F_TEXT || fmt == F_JSON ? "w" : "wb"))) {
		die_msg("query", "%s: %s", outpath, strerror(errno));
		out = stdout;
		goto out;
	}
	switch (fmt) {
	case F_TEXT:
	case F_JSON:
		write_text(out, c, so.metric ? so.metric : vv_collection_schema(c)->metric, hits, nq,
			   so.k, fmt == F_JSON);
		r = ferror(out) ? VV_EIO : 0;
		break;
	case F_NPY:
		r = write_npy_ids(out, hits, nq, so.k);
		break;
	case F_IVECS:
		r = write_ivecs(out, c, hits, nq, so.k);
		break;
	}
	if (r == VV_ERANGE && outpath) {
		fclose(out);
		out = stdout;
		unlink(outpath);
		goto out;
	}
	if (fflush(out) != 0 || r < 0) {
		die_msg("query", "writing %s: %s", outpath ? outpath : "stdout",
			r < 0 ? vv_strerror(r) : strerror(errno));
		goto out;
	}
	status = 0;
out:
	if (out != stdout && fclose(out) != 0 && status == 0) {
		die_msg("query", "%s: %s", outpath, strerror(errno));
		status = 1;
	}
	vv_collection_free(c);
	free(hits);
	free(q);
	return status;
}
