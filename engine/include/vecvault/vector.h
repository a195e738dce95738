/*
 * vector.h - vector segments, collection schemas and exact k-NN search.
 *
 * Two audiences:
 *  - the FUSE daemon, which computes xattrs for segments and validates the
 *    schema xattrs of a collection.  Those functions (vv_segment_*,
 *    vv_schema_*) do no I/O: the caller hands them bytes it already has.
 *  - the query tool, which opens a collection directory (a mounted one or a
 *    plain one), checks every segment against the schema, and runs exact
 *    k-NN (vv_collection_*, vv_knn_*).  It reads segments like any other
 *    reader (open + mmap, falling back to read), so the mount's access
 *    control and audit apply.
 *
 * Segment formats (byte tables in engine/vector_format.c and docs/query.md):
 *   NAME.fvecs / .bvecs / .ivecs   TEXMEX: per row, int32 dim then the values
 *   NAME.npy                       NumPy 1.0-3.0, 2-D, C order, <f4 <f2 |u1 |i1
 *   BASE.ids.npy                   optional int64 ids for segment BASE.EXT
 */
#ifndef VECVAULT_VECTOR_H
#define VECVAULT_VECTOR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define VV_VEC_MAX_DIM 65536u   /* larger dims are refused as malformed */
#define VV_VEC_PROBE_LEN 4096u  /* bytes of a file's head vv_segment_probe wants */
#define VV_VEC_MAX_K 100000u

enum vv_seg_format { VV_SEG_NONE = 0, VV_SEG_FVECS, VV_SEG_BVECS, VV_SEG_IVECS, VV_SEG_NPY };
enum vv_dtype { VV_DT_ANY = 0, VV_DT_F32, VV_DT_F16, VV_DT_U8, VV_DT_I8, VV_DT_I32, VV_DT_I64 };
enum vv_metric { VV_METRIC_NONE = 0, VV_METRIC_L2, VV_METRIC_IP, VV_METRIC_COSINE };

struct vv_segment_info {
	enum vv_seg_format format;
	enum vv_dtype dtype;
	uint32_t dim;            /* values per row (npy: shape[1]; 1-D npy: 1) */
	uint64_t count;          /* rows */
	uint64_t data_off;       /* byte offset of row 0's first value */
	uint64_t stride;         /* bytes from one row's values to the next */
	bool one_d;              /* npy of shape (N,) (only valid for id sidecars) */
};

/* A collection's schema.  dim 0 / dtype VV_DT_ANY / metric NONE = unset. */
struct vv_schema {
	uint32_t dim;
	enum vv_dtype dtype;
	enum vv_metric metric;
};

/* ---- pure functions (no I/O), for the daemon and the tool --------------- */

/* Is this file name (no directory part) a segment a query reads?  False for
 * rsync temporaries (".NAME.XXXXXX"), hidden files, BASE.ids.npy sidecars,
 * unknown extensions, and names ending in "~". */
bool vv_segment_name_is_segment(const char *name);

/* Is this name an id sidecar (BASE.ids.npy)? */
bool vv_segment_name_is_ids(const char *name);

/* Format implied by a segment's name extension (VV_SEG_NONE if none): the
 * one place where a file name picks a format.  The tool maps its segment
 * and query files through it, the daemon its segments' computed xattrs. */
enum vv_seg_format vv_segment_format_from_name(const char *name);

/* Parse the header of a segment of format f.  head holds the file's first
 * headlen bytes (VV_VEC_PROBE_LEN, or the whole file when it is smaller);
 * file_size is the file's total size.  On success fills *out and returns 0.
 * On failure returns VV_ECORRUPT (malformed, truncated, trailing bytes),
 * VV_ENOTSUP (valid but unsupported: Fortran order, big-endian, other
 * dtypes, 3-D) or VV_EINVAL (f is not a segment format), and sets *why (if
 * why != NULL) to a static message.  For TEXMEX files only the first row's
 * dim word is seen here; the scan checks the others. */
int vv_segment_probe(enum vv_seg_format f, const uint8_t *head, size_t headlen,
		     uint64_t file_size, struct vv_segment_info *out, const char **why);

/* A segment held whole in memory, with its parsed header: what a scan
 * reads (the tool's mapped segments, the daemon's decrypted copies).  The
 * bytes are borrowed. */
struct vv_segment_view {
	const uint8_t *base;     /* the whole file */
	size_t len;
	struct vv_segment_info info;
};

/* Probe base[0 .. len) as a segment of format f (vv_segment_probe, with
 * file_size = len) into *sv.  0, or its errors and *why. */
int vv_segment_view_init(struct vv_segment_view *sv, const uint8_t *base, size_t len,
			 enum vv_seg_format f, const char **why);

/* Same, for an id sidecar: an npy of int64 ('<i8'), shape (N,) or (N, 1). */
int vv_segment_probe_ids(const uint8_t *head, size_t headlen, uint64_t file_size,
			 struct vv_segment_info *out, const char **why);

/* Does segment info match schema s (unset fields match anything)?  0, or
 * VV_ESCHEMA with *why a static message ("dimension differs from ..."). */
int vv_schema_match(const struct vv_schema *s, const struct vv_segment_info *si,
		    const char **why);

/* Validate the value of a schema xattr (name "user.vecvault.dim",
 * "user.vecvault.metric" or "user.vecvault.dtype"; value not NUL-terminated,
 * len bytes; one trailing NUL or newline is tolerated) and write its
 * canonical form, NUL-terminated, into canon (canonlen bytes; 16 is enough).
 * Returns 0, VV_EINVAL (bad value), VV_ENODATA (not a schema xattr name) or
 * VV_ERANGE (canon too small). */
int vv_schema_check_xattr(const char *name, const char *value, size_t len,
			  char *canon, size_t canonlen);

/* Apply a validated schema xattr to *s (same arguments as above). */
int vv_schema_set_xattr(struct vv_schema *s, const char *name, const char *value, size_t len);

/* Computed, read-only xattrs of a segment: user.vecvault.{format,dtype,dim,
 * count}.  vv_segment_xattr writes the value of one (NUL-terminated, len
 * returned, like getxattr) into buf; VV_ENODATA if name is not one of them,
 * VV_ERANGE if bufsize is too small.  vv_segment_xattr_names lists them
 * (NULL-terminated static array). */
int vv_segment_xattr(const struct vv_segment_info *si, const char *name, char *buf, size_t bufsize);
const char *const *vv_segment_xattr_names(void);

/* Names for enums ("fvecs", "f32", "l2"; "?" if unknown) and parsers
 * (return VV_EINVAL on unknown names). */
const char *vv_seg_format_name(enum vv_seg_format f);
const char *vv_dtype_name(enum vv_dtype t);
const char *vv_metric_name(enum vv_metric m);
int vv_dtype_parse(const char *s, enum vv_dtype *out);
int vv_metric_parse(const char *s, enum vv_metric *out);
size_t vv_dtype_size(enum vv_dtype t);

/* IEEE half -> float (exact). */
float vv_f16_to_f32(uint16_t h);

/* ---- collections and search (does I/O: open, mmap, read) ----------------- */

struct vv_collection;

/* One segment of an open collection, as the tool reports it. */
struct vv_collection_seg {
	const char *name;        /* file name inside the collection */
	struct vv_segment_info info;
	bool has_ids;
	uint64_t file_size;
	uint64_t first_row;      /* global row number of row 0 (segments in name order) */
};

/* Open directory dir as a collection: read the schema xattrs (missing = unset;
 * a filesystem without user xattrs = unset), list segment names in byte
 * order, open and probe each, infer unset dim/dtype from the first good
 * segment, check all against the schema.  override (may be NULL) replaces
 * the xattr schema field by field where set.
 * A bad segment (unreadable, malformed, schema mismatch) fails the open
 * unless skip_bad; err (errlen bytes) then reads "FILE: problem".  With
 * skip_bad the segment is left out and vv_collection_skipped() lists it.
 * Returns 0 and *out (caller frees with vv_collection_free), or VV_E*. */
int vv_collection_open(const char *dir, const struct vv_schema *override, bool skip_bad,
		       struct vv_collection **out, char *err, size_t errlen);
/* As vv_collection_open, for one search: on a plain directory of small
 * segments (no id sidecars) only the segments up to the first good one are
 * opened now (it fixes the schema's unset dim and dtype); the others are
 * opened by the first vv_collection_search, each read whole once by a scan
 * thread and scanned there (docs/query.md).  That search checks them in
 * name order exactly as the open would have, with the same errors (and
 * vv_collection_check_failed() true then); until it returns,
 * vv_collection_nsegs counts them as kept and vv_collection_seg knows only
 * their names.  Other collections open as with vv_collection_open. */
int vv_collection_open_deferred(const char *dir, const struct vv_schema *override, bool skip_bad,
				struct vv_collection **out, char *err, size_t errlen);
/* Did the last vv_collection_search fail checking a segment the deferred
 * open left to it (an error vv_collection_open would have returned)? */
bool vv_collection_check_failed(const struct vv_collection *c);
void vv_collection_free(struct vv_collection *c);

/* The effective schema (metric defaults to l2 when unset everywhere). */
const struct vv_schema *vv_collection_schema(const struct vv_collection *c);
size_t vv_collection_nsegs(const struct vv_collection *c);
const struct vv_collection_seg *vv_collection_seg(const struct vv_collection *c, size_t i);
/* Skipped segments ("FILE: problem" strings; borrowed, valid until free). */
size_t vv_collection_nskipped(const struct vv_collection *c);
const char *vv_collection_skipped(const struct vv_collection *c, size_t i);
/* How many segments the open opened in io_uring batches (small segments
 * of a plain directory, where io_uring works), for --stats and tests. */
size_t vv_collection_nbatched(const struct vv_collection *c);

/* A result.  Ordered by (dist, seg, row) with dist "smaller is better":
 * l2 = squared euclidean distance, ip = -dot, cosine = 1 - cos.  The value
 * reported to users (vv_knn_score) is the squared distance for l2, the dot
 * product for ip and the cosine distance for cosine. */
struct vv_hit {
	double dist;
	uint32_t seg;            /* index into the collection; UINT32_MAX = no hit */
	uint64_t row;
	int64_t id;              /* sidecar id, else first_row + row */
};

double vv_knn_score(enum vv_metric m, double dist);

/* Process-wide choices of kernels and segment I/O, for the host to make
 * once (the engine reads no environment; the CLI maps $VV_SIMD, $VV_BLAS
 * $VV_SCAN_IO and $VV_IO_URING onto these in tools/env.c).  A zeroed config is the
 * default: the best kernels this CPU has, BLAS for large batches when
 * built in, and I/O per segment by size and file system. */
enum vv_scan_io {
	VV_SCAN_IO_AUTO = 0,
	VV_SCAN_IO_READ = 1,     /* every segment with pread(2) */
	VV_SCAN_IO_MMAP = 2      /* every segment through its mapping */
};
struct vv_vector_config {
	const char *simd;        /* "scalar", "avx2", "avx512": force that kernel
	                            if the CPU has it; NULL/"" or unknown = best */
	bool no_blas;            /* batches use the SIMD kernel, never BLAS */
	enum vv_scan_io scan_io;
	bool no_uring;           /* open, read and close segments one system
	                            call at a time, never through io_uring */
	bool no_bulk;            /* on a vecvault mount, open every small
	                            segment, never ask for the bulk read
	                            (knn_ioctl.h "the bulk read") */
};
/* Apply c (copied; NULL = defaults).  Call before searches start: a search
 * running meanwhile may use either choice.  The kernel choice also serves
 * the daemon's offload scans (vv_segment_knn). */
void vv_vector_configure(const struct vv_vector_config *c);

struct vv_search_opts {
	uint32_t k;
	enum vv_metric metric;   /* NONE = the collection's */
	unsigned threads;        /* 0 = all online CPUs */
	/* Called now and then from one thread with rows done / total (may be NULL). */
	void (*progress)(void *ctx, uint64_t done, uint64_t total);
	void *progress_ctx;
	bool no_offload;         /* never ask the daemon to scan (knn_ioctl.h) */
	/* Smallest segment worth an offload request (docs/query.md gives the
	 * measured crossover): offload_min_bytes when offload_min_set (0 =
	 * every segment), else 1 MiB. */
	bool offload_min_set;
	uint64_t offload_min_bytes;
	/* Bytes of rows per work unit: 0 = sized from the collection (the
	 * default); tests set it small to cut few rows into many units. */
	uint64_t unit_bytes;
	struct vv_search_stats *stats;   /* filled if not NULL */
};

struct vv_search_stats {
	uint32_t segs_offloaded;  /* segments the vecvault daemon scanned */
	uint32_t segs_filling;    /* segments it was still decrypting (scanned here) */
	uint64_t rows_offloaded;
	uint32_t offload_requests;  /* requests answered (a batch may take several) */
	uint64_t rows_read_back;    /* candidate rows read here to re-rank them */
	uint64_t cands_exact;       /* candidates the daemon ranked exactly */
	/* the directory offload (small segments named to the daemon, never
	 * opened here; docs/query.md): also counted in the totals above */
	uint32_t dir_segs;          /* segments it scanned */
	uint64_t dir_rows;
	uint32_t dir_requests;      /* directory requests answered */
	uint32_t dir_filling;       /* names it was still decrypting (scanned here) */
	/* on a FUSE mount, when the daemon may scan none of the deferred
	 * segments: opened by the search while its scan ran, and of those
	 * scanned as they opened (docs/query.md, "Opened ahead of the scan") */
	uint32_t ahead_opened;
	uint32_t ahead_scanned;
	/* ... and of those read in bulk (docs/query.md, "Small segments in
	 * bulk"): segments the daemon wrote into the tool's buffer, requests */
	uint32_t bulk_read;
	uint32_t bulk_requests;
};

/* Exact k-NN of nq queries (row-major float, dim = the schema's) over the
 * collection.  hits must hold nq * k entries; query i's results, best first,
 * are hits[i*k .. i*k+k-1]; missing ones (fewer than k rows) have seg =
 * UINT32_MAX and id -1.  Final distances are recomputed in double precision.
 * A TEXMEX row with a wrong dim word found during the scan fails the search
 * with VV_ECORRUPT and err naming the file and row (even with skip_bad:
 * results were already mixed).  Returns 0 or VV_E*. */
int vv_collection_search(struct vv_collection *c, const float *queries, size_t nq,
			 const struct vv_search_opts *o, struct vv_hit *hits,
			 char *err, size_t errlen);

/* The daemon's side of the query offload (knn_ioctl.h): exact k-NN over one
 * segment held in memory (sv, from vv_segment_view_init), by the same scan
 * as vv_collection_search.  For each of the nq raw queries, the kk best
 * rows by float32 distance, best first by (distance, row), go to
 * out[q*kk ...]; unused slots have row VV_KNN_NO_ROW.  threads 0 = all
 * CPUs.  Returns 0, VV_EINVAL (bad arguments), VV_ECORRUPT (a TEXMEX row
 * whose dim word is wrong) or VV_ENOMEM. */
struct vv_knn_ioc_cand;
int vv_segment_knn(const struct vv_segment_view *sv, enum vv_metric m, const float *queries,
		   size_t nq, uint32_t kk, unsigned threads, struct vv_knn_ioc_cand *out);
/* The same candidates (the kk best by float32 distance), each with its
 * exact double-precision distance, computed from sv's row by the function
 * vv_collection_search re-ranks with (so the caller can merge them without
 * reading the rows, with byte-identical results), sorted by (distance,
 * row); unused slots last, row VV_KNN_NO_ROW and d +inf (knn_ioctl.h,
 * version 2 replies).  Returns as vv_segment_knn. */
struct vv_knn_ioc_xcand;
int vv_segment_knn_exact(const struct vv_segment_view *sv, enum vv_metric m, const float *queries,
			 size_t nq, uint32_t kk, unsigned threads, struct vv_knn_ioc_xcand *out);
/* The directory request's scan (knn_ioctl.h): n segments held in memory
 * (sv[0 .. n), one dim), scanned together in the calling thread, as one
 * collection of n segments would be: for each query the kk best rows of
 * all of them by float32 distance (ties by segment index, row), each with
 * its exact distance as vv_segment_knn_exact computes it, sorted by
 * (distance, segment index, row), to out[q*kk ...] with the segment index
 * as name; unused slots last (name VV_KNN_DIR_NO_NAME, row VV_KNN_NO_ROW,
 * d +inf).  Returns as vv_segment_knn (VV_EINVAL also for n 0 or views of
 * different dims). */
struct vv_knn_dir_cand;
int vv_segments_knn_exact(const struct vv_segment_view *sv, size_t n, enum vv_metric m,
			  const float *queries, size_t nq, uint32_t kk, struct vv_knn_dir_cand *out);

/* Load a query file (.fvecs or .npy of any supported dtype, or .bvecs/.ivecs)
 * into a malloc'd row-major float array (caller frees).  err as above. */
int vv_vectors_load(const char *path, float **out, size_t *n, uint32_t *dim,
		    char *err, size_t errlen);

/* Find the first non-finite value (NaN, +-Inf) in n row-major rows of dim
 * floats: true with *row and *col (from 0) set, false if all are finite.
 * Queries must be finite: every distance to a NaN query is NaN, so it has
 * no neighbours (docs/query.md); the search and the daemon refuse one. */
bool vv_vectors_nonfinite(const float *v, size_t n, uint32_t dim, size_t *row, uint32_t *col);

/* Name of the kernel in use ("avx512", "avx2", "scalar"); struct
 * vv_vector_config.simd forces one (if the CPU has it). */
const char *vv_knn_kernel_name(void);

#endif
