/*
 * knn_ioctl.h - the query offload: `vecvault query` asks the daemon to scan
 * a segment it has open on the mount, and gets back the best candidates.
 *
 * Why: FUSE on current kernels keeps its page cache in 4 KiB pages, so a
 * fresh process that reads or maps a warm 512 MB segment pays ~130k page
 * copies or faults, about twice the scan itself; ext4 maps large folios.
 * The daemon instead keeps decrypted segments in long-lived memory (huge
 * pages where the kernel allows) and scans them there (docs/query.md).
 *
 * Access: the request is an ioctl on a file descriptor the caller opened
 * through the mount for reading, so the kernel and the daemon have already
 * checked access and the open is in the audit log; the daemon refuses a
 * handle opened write-only, records a "scan" audit record and counts the
 * segment's bytes in the handle's read total.
 *
 * The ioctl is "restricted" (its size is in the command number), so the
 * kernel copies exactly VV_KNN_IOC_BYTES in and out.  Input: the header,
 * then nq * dim floats.  Output: the header (status fields filled), then
 * nq * kk candidates, query-major, best first by (distance, row); unused
 * slots (the segment has fewer usable rows) come last, with row =
 * VV_KNN_NO_ROW.  Distances are in the engine's "smaller is better" form
 * (vector.h).  Two reply layouts:
 *  - version 1 (struct vv_knn_ioc_cand): the scan's float32 distances; the
 *    caller re-ranks the candidates in double from its own copy of the rows.
 *  - version 2, when the request set VV_KNN_F_EXACT (struct
 *    vv_knn_ioc_xcand): the same candidates (the kk best by float32
 *    distance), each with its exact double-precision distance computed by
 *    the daemon with the caller's re-ranking function (vv_row_dist in
 *    vector_scan.c), sorted by (distance, row): the caller merges them
 *    without reading a byte of the segment.  A daemon that predates the
 *    flag ignores it (version 1 daemons never read flags) and answers
 *    version 1, so old and new callers and daemons work in any pairing.
 *
 * Errors: EAGAIN while the daemon is still decrypting the segment (the
 * first request starts that in the background), ENOTTY when the offload is
 * off, EFBIG when the segment exceeds the caller's share of the daemon's
 * offload cache, EBUSY when that share is full of segments in use or the
 * caller's uid has too many requests queued, E2BIG for a request over the
 * payload or over the per-request work budget (rows x queries x (dim +
 * 32) <= 2^31), EINTR when the caller was interrupted while its request
 * waited, ECANCELED at unmount, EINVAL for a request it cannot take (also
 * a NaN or infinite query value, and a file that is no segment of the
 * format named: audited with the parser's reason, never as ECORRUPT, which
 * means tampering), EBADF for a handle its holder did not open for reading
 * (write-only, open mode 3, exec).  On any error the caller scans the
 * segment itself (docs/query.md "Limits").
 */
#ifndef VECVAULT_KNN_IOCTL_H
#define VECVAULT_KNN_IOCTL_H

#include <stdint.h>
#include <sys/ioctl.h>

#define VV_KNN_MAGIC 0x4e4e4b56u          /* "VKNN": a request */
#define VV_KNN_MAGIC_REPLY 0x524e4b56u    /* "VKNR": the daemon answered */
#define VV_KNN_VERSION 1u                 /* requests (and version 1 replies) */
#define VV_KNN_VERSION_EXACT 2u           /* replies to a VV_KNN_F_EXACT request */
#define VV_KNN_F_EXACT 1u                 /* flags: answer with exact distances */
#define VV_KNN_IOC_BYTES 16320u           /* < 16 KiB: fits _IOC_SIZE */
#define VV_KNN_NO_ROW UINT64_MAX

struct vv_knn_ioc_hdr {
	uint32_t magic;          /* in: VV_KNN_MAGIC; out: VV_KNN_MAGIC_REPLY */
	uint32_t version;        /* in: VV_KNN_VERSION */
	uint32_t metric;         /* in: enum vv_metric, not NONE */
	uint32_t dim;            /* in: must equal the segment's */
	uint32_t nq;             /* in: queries that follow */
	uint32_t kk;             /* in: candidates wanted per query */
	uint32_t threads;        /* in: 0 = the daemon's choice */
	uint32_t format;         /* in: enum vv_seg_format, as the caller parsed it */
	uint64_t rows;           /* out: rows scanned */
	uint32_t flags;          /* in: VV_KNN_F_*, other bits 0; out: as served */
	uint32_t pad;            /* 0 */
};

struct vv_knn_ioc_cand {
	float d;
	uint32_t pad;
	uint64_t row;
};

/* A version 2 reply's candidate: the exact distance (finite; l2 >= 0,
 * cosine within [0, 2]). */
struct vv_knn_ioc_xcand {
	double d;
	uint64_t row;
};

_Static_assert(sizeof(struct vv_knn_ioc_xcand) == sizeof(struct vv_knn_ioc_cand),
	       "both reply layouts carry as many candidates");

#define VV_KNN_PAYLOAD (VV_KNN_IOC_BYTES - sizeof(struct vv_knn_ioc_hdr))
#define VV_KNN_MAX_FLOATS (VV_KNN_PAYLOAD / sizeof(float))
#define VV_KNN_MAX_CANDS (VV_KNN_PAYLOAD / sizeof(struct vv_knn_ioc_cand))

struct vv_knn_ioc {
	struct vv_knn_ioc_hdr h;
	union {
		float q[VV_KNN_MAX_FLOATS];
		struct vv_knn_ioc_cand c[VV_KNN_MAX_CANDS];
		struct vv_knn_ioc_xcand x[VV_KNN_MAX_CANDS];
	} u;
};

_Static_assert(sizeof(struct vv_knn_ioc) == VV_KNN_IOC_BYTES, "knn ioctl size");

/* Work budget of one request: rows x nq x (dim + VV_KNN_ROW_COST) at most
 * VV_KNN_WORK_MAX (~0.5 s of one core); the row cost is the heap, threshold
 * and loop beyond the dim's multiply-adds (measured ~6 ns). */
#define VV_KNN_WORK_MAX (1ull << 31)
#define VV_KNN_ROW_COST 32u

/* The daemon's check of a request (engine/knn_ioc.c), before anything is
 * read or decrypted; pure, so tools and fuzzers can run it.
 * vv_knn_request_check: 0 iff magic and version match, flags hold only
 *   VV_KNN_F_EXACT and pad is 0, metric and format
 *   are known (not NONE), 1 <= dim, 1 <= nq, 1 <= kk <= VV_VEC_MAX_K + 1024
 *   (VV_EINVAL otherwise), nq * dim <= VV_KNN_MAX_FLOATS and nq * kk <=
 *   VV_KNN_MAX_CANDS (VV_E2BIG), and the nq * dim query floats are all
 *   finite (VV_EINVAL).  Reads only io's VV_KNN_IOC_BYTES.
 * vv_knn_work_check: VV_E2BIG if scanning rows rows for h is over the work
 *   budget above, else 0 (h already passed vv_knn_request_check). */
int vv_knn_request_check(const struct vv_knn_ioc *io) __attribute__((warn_unused_result));
int vv_knn_work_check(const struct vv_knn_ioc_hdr *h, uint64_t rows)
	__attribute__((warn_unused_result));

#define VV_IOC_KNN _IOWR('v', 0x4b, struct vv_knn_ioc)

/* ---- the directory request: many small segments in one round trip ------
 *
 * Why: on a mount each segment the tool opens costs an OPEN and a RELEASE
 * round trip (24 us of tool CPU and 16 us of daemon CPU per file on this
 * machine), so 10,000 segments of 100 rows cost far more than their bytes.
 * VV_IOC_KNN_DIR is an ioctl on a directory the caller opened through the
 * mount (O_RDONLY | O_DIRECTORY); it names up to VV_KNN_DIR_MAX_NAMES of
 * the directory's files, and the daemon scans each one it may serve and
 * answers one merged list of candidates.
 *
 * Access: each name is checked as the caller's own lookup and read-only
 * open of it would be, at the time of the request (search right on the
 * directory, read right on the file, revocation, the trash and snapshot
 * rules), whoever opened the directory handle; each name served or denied
 * gets one audit record ("scan", with the file's path).  A name is never
 * resolved past the directory: '/', "." and "..", empty names, symlinks
 * and anything but a regular file are refused per name.  Nothing is
 * decrypted for a name before its check passed.
 *
 * Input (VV_KNN_IOC_BYTES, restricted ioctl as VV_IOC_KNN): the header,
 * then nq * dim floats, then names_len bytes holding exactly nnames names,
 * each NUL-terminated, in the caller's segment order (the order by which
 * ties are broken).  Output: the header (status fields filled), then
 * nnames struct vv_knn_dir_stat (one per name, in request order), then
 * nq * kk struct vv_knn_dir_cand, query-major: per query the kk best
 * rows of all names served taken together, chosen as the tool's own scan
 * of those files as one collection would choose them (the kk best by
 * float32 distance, ties by name index and row), each with its exact
 * double distance, sorted by (exact distance, name index, row); unused
 * slots last with name = VV_KNN_DIR_NO_NAME and row = VV_KNN_NO_ROW.
 * Merging the reply with other candidates gives what scanning every file
 * locally gives: the same margin that makes any group's float32 choice
 * hold its exact best k makes the union of the groups' choices hold the
 * exact best k of all.
 *
 * A name whose stat.err is not 0 was not scanned: the caller scans that
 * file itself (opening it as usual, so its own errors are reported as
 * today).  Per-name errors (negative errno values): -EAGAIN while the daemon is
 * still decrypting it, -EACCES/-EPERM denied, -ENOENT no such name,
 * -EINVAL not a regular file or not a segment of the request's format,
 * dim and dtype, -E2BIG over the request's remaining work budget, -EFBIG /
 * -EBUSY over the caller's share of the cache.  The whole request fails
 * (ioctl returns -1) for a header that does not pass
 * vv_knn_dir_request_check (EINVAL / E2BIG), a handle that is no
 * directory (ENOTTY), ENOTTY when the offload is off, EBUSY when the
 * caller's uid has too many requests queued, EINTR / ECANCELED as
 * VV_IOC_KNN.  The work budget (VV_KNN_WORK_MAX) bounds the whole
 * request: sum over names served of rows x nq x (dim + VV_KNN_ROW_COST). */

#define VV_KNN_DIR_MAGIC 0x444e4b56u       /* "VKND": a directory request */
#define VV_KNN_DIR_MAGIC_REPLY 0x524b4456u /* "VDKR": the daemon answered */
#define VV_KNN_DIR_VERSION 1u
#define VV_KNN_DIR_MAX_NAMES 256u
#define VV_KNN_DIR_NAME_MAX 255u           /* bytes of one name, without its NUL */
#define VV_KNN_DIR_NO_NAME UINT32_MAX

struct vv_knn_dir_hdr {
	uint32_t magic;          /* in: VV_KNN_DIR_MAGIC; out: VV_KNN_DIR_MAGIC_REPLY */
	uint32_t version;        /* in and out: VV_KNN_DIR_VERSION */
	uint32_t metric;         /* in: enum vv_metric, not NONE */
	uint32_t dim;            /* in: every served file's dimension */
	uint32_t dtype;          /* in: enum vv_dtype, not ANY: every served file's */
	uint32_t format;         /* in: enum vv_seg_format of every name */
	uint32_t nq;             /* in: queries that follow */
	uint32_t kk;             /* in: candidates wanted per query */
	uint32_t nnames;         /* in: 1 .. VV_KNN_DIR_MAX_NAMES */
	uint32_t names_len;      /* in: bytes of names after the queries */
	uint32_t flags;          /* in: 0 (no flag defined yet); out: 0 */
	uint32_t served;         /* out: names scanned (stat.err == 0) */
	uint64_t rows;           /* out: rows scanned over all names served */
};

struct vv_knn_dir_stat {
	int32_t err;             /* 0: scanned; else -errno: the caller scans it */
	uint32_t pad;            /* 0 */
	uint64_t rows;           /* the file's rows when scanned, else 0 */
};

struct vv_knn_dir_cand {
	double d;                /* exact distance (finite; l2 >= 0, cosine in [0, 2]) */
	uint32_t name;           /* index of the name in the request */
	uint32_t pad;            /* 0 */
	uint64_t row;
};

#define VV_KNN_DIR_PAYLOAD (VV_KNN_IOC_BYTES - sizeof(struct vv_knn_dir_hdr))

struct vv_knn_dir_ioc {
	struct vv_knn_dir_hdr h;
	uint8_t u[VV_KNN_DIR_PAYLOAD]; /* in: floats, then names; out: stats, then candidates */
};

_Static_assert(sizeof(struct vv_knn_dir_ioc) == VV_KNN_IOC_BYTES, "knn dir ioctl size");
_Static_assert(sizeof(struct vv_knn_dir_hdr) % 8 == 0, "candidates stay 8-byte aligned");

/* The daemon's check of a directory request, before any name is looked up:
 * 0 iff magic and version match, flags are 0, metric, format and dtype are
 * known (not NONE / ANY), 1 <= dim, 1 <= nq, 1 <= kk <= VV_VEC_MAX_K +
 * 1024, 1 <= nnames <= VV_KNN_DIR_MAX_NAMES (VV_EINVAL otherwise); the
 * input nq * dim * 4 + names_len and the output nnames * 16 + nq * kk * 24
 * fit VV_KNN_DIR_PAYLOAD (VV_E2BIG); the query floats are finite and the
 * names area holds exactly nnames NUL-terminated names of 1 ..
 * VV_KNN_DIR_NAME_MAX bytes with no '/', none "." or ".." (VV_EINVAL).
 * Pure; reads only io's VV_KNN_IOC_BYTES. */
int vv_knn_dir_request_check(const struct vv_knn_dir_ioc *io) __attribute__((warn_unused_result));

#define VV_IOC_KNN_DIR _IOWR('v', 0x4c, struct vv_knn_dir_ioc)

/* ---- the bulk read: many small files' bytes in one round trip ----------
 *
 * Why: when the tool scans segments itself (no offload, or a batch of
 * queries too big for it) each file it opens on a mount costs an OPEN and
 * a RELEASE round trip, ~30 us of wall and ~50 us of CPU here, where the
 * bytes of a 51 KB segment cost ~5.  VV_IOC_BULK_READ is an ioctl on a
 * directory the caller opened through the mount (O_RDONLY | O_DIRECTORY)
 * naming up to VV_BULK_MAX_NAMES of its files; the daemon writes each file
 * it may serve, whole, into a buffer of the caller's: a memfd the caller
 * created (memfd_create with MFD_ALLOW_SEALING, sealed with F_SEAL_SHRINK,
 * no write seal, open for reading and writing) and names by its
 * descriptor number and identity.  The daemon takes that descriptor from
 * the calling thread's process (pidfd_getfd: the caller is blocked in this
 * ioctl meanwhile), maps it and keeps the mapping for the caller's next
 * requests (a copy at memcpy speed; the seal means the file can never end
 * under the mapping), never write(2)s into it (whose inode lock the
 * caller could hold); the caller can make the daemon neither fault nor
 * take a signal that outlives the request (fs/bulk_map.c).  The mapping
 * is dropped once the thread that sent the request has ended, after 2 s
 * unused, or at unmount; while it exists the caller cannot add
 * F_SEAL_WRITE (EBUSY).
 *
 * Access: each name is checked as the caller's own lookup and read-only
 * open of it would be at the time of the request (the directory request's
 * checks, vault_knn_dir.c: search right on the directory, read right on the
 * file, revocation, the trash and snapshot rules; regular files only, a
 * symlink never followed), whoever opened the directory handle.  Each name
 * served gets the audit records its open and release would get ("open",
 * then "close" with the bytes read), each name refused its "open" record
 * with the error.  The bytes go only into a memory object the calling
 * process holds open for writing at the time of the request: a descriptor
 * that is no such memfd (another file, a tmpfs file, one sealed against
 * writes or not against shrinking, not open for reading and writing, not
 * the identity named, with a hole in its slots: the caller
 * populates them, so the daemon's writes allocate nothing) fails the
 * request before any name is looked at.  Nothing stays pinned or decrypted for the caller after the
 * reply: a later request is checked again, name by name.
 *
 * Input (VV_KNN_IOC_BYTES, restricted ioctl as VV_IOC_KNN): the header,
 * then names_len bytes holding exactly nnames names, each NUL-terminated,
 * as the directory request's.  Name i goes to the memfd at off + i * slot.
 * Output: the header (served and bytes filled), then nnames struct
 * vv_bulk_stat in request order: err 0 and the file's size (at most slot:
 * its bytes are in the slot), or -errno and nothing written there.
 * Per-name errors: -EACCES/-EPERM denied, -ENOENT no such name (or removed
 * meanwhile), -EINVAL not a regular file, -EFBIG larger than the slot,
 * -EAGAIN/-EBUSY the daemon could not make a copy now (its cache share):
 * the caller opens that file itself, as before, and reports its errors.
 * The whole request fails for a header that does not pass
 * vv_bulk_request_check (EINVAL, E2BIG), a buffer that is not as above
 * (EBADF, EINVAL), a slot range past the memfd's size (ENOSPC), a handle
 * that is no directory (ENOTTY), a daemon that cannot take descriptors
 * from the caller (EPERM: not root) or has the bulk read off (ENOTTY), and
 * EBUSY when the caller's uid has as many offload requests in flight as
 * it may (VV_IOC_KNN's slots) or as many buffers mapped (16).  A hole
 * punched in the slots while the request runs is never filled by the
 * daemon: the request fails (EINVAL) and the hole stays.  A copy that
 * faults on a memory error (EIO) ends the request there: names not yet
 * copied answer that error. */

#define VV_BULK_MAGIC 0x4b4c4256u          /* "VBLK": a bulk read */
#define VV_BULK_MAGIC_REPLY 0x524c4256u    /* "VBLR": the daemon answered */
#define VV_BULK_VERSION 1u
#define VV_BULK_MAX_NAMES 256u
#define VV_BULK_SLOT_MIN 4096u
#define VV_BULK_SLOT_MAX (4u << 20)
#define VV_BULK_SPAN_MAX (64u << 20)       /* nnames * slot */

struct vv_bulk_hdr {
	uint32_t magic;          /* in: VV_BULK_MAGIC; out: VV_BULK_MAGIC_REPLY */
	uint32_t version;        /* in and out: VV_BULK_VERSION */
	int32_t memfd;           /* in: the caller's descriptor of its memfd */
	uint32_t flags;          /* in: 0 (no flag defined yet); out: 0 */
	uint64_t mem_dev;        /* in: st_dev of the memfd (fstat) */
	uint64_t mem_ino;        /* in: st_ino of the memfd */
	uint64_t off;            /* in: where slot 0 starts in the memfd */
	uint64_t slot;           /* in: bytes per name, VV_BULK_SLOT_MIN .. VV_BULK_SLOT_MAX */
	uint32_t nnames;         /* in: 1 .. VV_BULK_MAX_NAMES */
	uint32_t names_len;      /* in: bytes of names after the header */
	uint32_t served;         /* out: names written (stat.err == 0) */
	uint32_t pad;            /* 0 */
	uint64_t bytes;          /* out: bytes written over all names */
};

struct vv_bulk_stat {
	int32_t err;             /* 0: in its slot; else -errno: the caller opens it */
	uint32_t pad;            /* 0 */
	uint64_t size;           /* the file's bytes in its slot when err is 0, else 0 */
};

#define VV_BULK_PAYLOAD (VV_KNN_IOC_BYTES - sizeof(struct vv_bulk_hdr))

struct vv_bulk_ioc {
	struct vv_bulk_hdr h;
	uint8_t u[VV_BULK_PAYLOAD]; /* in: names; out: stats */
};

_Static_assert(sizeof(struct vv_bulk_ioc) == VV_KNN_IOC_BYTES, "bulk ioctl size");
_Static_assert(sizeof(struct vv_bulk_hdr) % 8 == 0, "stats stay 8-byte aligned");
_Static_assert(VV_BULK_MAX_NAMES * sizeof(struct vv_bulk_stat) <= VV_BULK_PAYLOAD,
	       "every name's stat fits the reply");

/* The daemon's check of a bulk read, before the memfd or any name is
 * looked at: 0 iff magic and version match, flags and pad are 0, memfd >=
 * 0, 1 <= nnames <= VV_BULK_MAX_NAMES, VV_BULK_SLOT_MIN <= slot <=
 * VV_BULK_SLOT_MAX (VV_EINVAL otherwise), names_len <= VV_BULK_PAYLOAD and
 * nnames * slot <= VV_BULK_SPAN_MAX and off + nnames * slot does not wrap
 * (VV_E2BIG), and the names area holds exactly nnames names as the
 * directory request's (VV_EINVAL).  Pure; reads only io's
 * VV_KNN_IOC_BYTES. */
int vv_bulk_request_check(const struct vv_bulk_ioc *io) __attribute__((warn_unused_result));

#define VV_IOC_BULK_READ _IOWR('v', 0x4d, struct vv_bulk_ioc)

#endif
