/*
 * audit.h - the tamper-evident audit log.
 *
 * One JSON object per line, outside STORE, mode 0600.  Each record carries a
 * sequence number and a chain MAC: keyed BLAKE2b-256 (audit subkey of the
 * master key) over the previous record's MAC and this record's own bytes.
 * Checkpoints (seq, MAC) are handed to the host (sealed into meta.db) and
 * written, MAC'd, to a sidecar file LOG.checkpoint, so a truncated tail is
 * found too.  See docs/audit.md for the format and what each part protects.
 *
 * Threads: vv_audit_log() may be called from any number of threads; it takes
 * a mutex, formats and MACs the record (order of sequence numbers = order of
 * the chain) and appends it to an in-memory queue.  It never touches the
 * disk.  A writer thread writes the queue at least every flush_ms, fsyncs,
 * and then reports the checkpoint.
 */
#ifndef VECVAULT_AUDIT_H
#define VECVAULT_AUDIT_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define VV_AUDIT_KEY_BYTES 32
#define VV_AUDIT_MAC_BYTES 32
/* The key: vv_store_subkey(store, VV_AUDIT_SUBKEY_ID, VV_SUBKEY_AUDIT, key).
 * The daemon and `vecvault audit verify` must agree on it. */
#define VV_AUDIT_SUBKEY_ID 1

struct vv_audit;

/* One event.  Every pointer may be NULL (printed as JSON null; client NULL
 * means "local").  Strings are arbitrary bytes: they are escaped, see
 * docs/audit.md.  The caller keeps ownership; the record is copied. */
struct vv_audit_rec {
	const char *op;          /* "open", "create", "unlink", "mount", "denied" ... */
	const char *path;        /* canonical path inside the vault */
	uint64_t ino;
	uint32_t uid, gid, pid;
	const char *comm;        /* process name */
	const char *user;        /* vault user or API key id */
	const char *client;      /* "local" or "address:port" */
	int result;              /* 0 -> "ok", else VV_E* code -> its errno name */
	const char *mode;        /* open mode: "r", "w", "rw", "x" ... */
	uint64_t rbytes, wbytes; /* bytes served by the daemon (summed at release) */
	uint64_t rcount, wcount; /* number of read/write requests */
	const char *detail;      /* free text */
	bool unauth;             /* imported from the pre-authentication file */
};

/* Called by the writer thread after records up to seq are written and
 * fsync'd: the host seals (seq, mac) into its encrypted metadata.  Must not
 * call back into this vv_audit. */
typedef void (*vv_audit_checkpoint_fn)(void *ctx, uint64_t seq,
				       const uint8_t mac[VV_AUDIT_MAC_BYTES]);

struct vv_audit_opts {
	const char *path;            /* the log file ("DIR/audit.log"); dirs created 0700 */
	const uint8_t *key;          /* VV_AUDIT_KEY_BYTES, copied into secure memory */
	bool required;               /* vv_audit_log returns VV_EAUDIT while the log can't be written */
	uint64_t rotate_bytes;       /* rotate when the file would exceed this; 0 = never */
	int flush_ms;                /* writer period; <= 0 means 1000 */
	size_t queue_max;            /* bytes queued before records are dropped (and the
				      * drop recorded); 0 means 64 MiB */
	vv_audit_checkpoint_fn checkpoint;
	void *ctx;
	uint64_t sealed_seq;         /* last checkpoint sealed in meta.db (0 = none) */
	const uint8_t *sealed_mac;   /* its MAC (NULL when sealed_seq is 0) */
};

/* Open (create) the log, continue the chain from its last complete record
 * (a torn last line is cut off and the cut recorded; a log behind the newer
 * of the sealed and sidecar checkpoints is continued from that checkpoint
 * and the gap recorded), and start the writer thread.  *out is owned by the
 * caller: release with vv_audit_close().  VV_EBUSY if another process has
 * the log open. */
int vv_audit_open(const struct vv_audit_opts *o, struct vv_audit **out)
	__attribute__((warn_unused_result));

/* Append one record (time and sequence filled in).  Never blocks on disk.
 * Returns 0, VV_EINVAL, or VV_EAUDIT in required mode while the log cannot
 * be written (the record is still queued unless the queue is full). */
int vv_audit_log(struct vv_audit *a, const struct vv_audit_rec *r);

/* Fill r (zeroing it first) as a record of this process itself (mount,
 * close, admin actions, failed unlocks): its uid, gid and pid, comm
 * "vecvault", client "local", path "/". */
void vv_audit_rec_self(struct vv_audit_rec *r, const char *op, int result, const char *detail);

/* Write everything queued so far and fsync; 0 or the write error. */
int vv_audit_flush(struct vv_audit *a);

/* Flush, stop the writer, free.  Returns the final status.  NULL ok. */
int vv_audit_close(struct vv_audit *a);

/* 0 while the log is being written fine, else the (sticky until the next
 * successful write) VV_E* error of the writer. */
int vv_audit_status(struct vv_audit *a);

struct vv_audit_stats {
	uint64_t last_seq;       /* last sequence number handed out */
	uint64_t written_seq;    /* last sequence number written and synced */
	uint64_t dropped;        /* records dropped (queue full) not yet reported */
	uint64_t dropped_total;
	size_t queued_bytes;
	int status;
};
void vv_audit_get_stats(struct vv_audit *a, struct vv_audit_stats *st);

/* Default log path for a store: AUDIT_DIR/STORE-ID/audit.log.  audit_dir
 * (borrowed) is the host's choice; the engine reads no environment (the
 * CLI's, in tools/env.c: $VECVAULT_AUDIT_DIR, else /var/log/vecvault for
 * root, else $XDG_STATE_HOME/vecvault or ~/.local/state/vecvault).
 * VV_ENAMETOOLONG; VV_EINVAL for a bad store id or a NULL/empty audit_dir. */
int vv_audit_default_path(const char *audit_dir, const char *store_id, char *out, size_t outlen);

/* Before unlock (no key yet): append r, unauthenticated, to LOG.preauth.
 * Used for failed passphrase attempts. */
int vv_audit_preauth_append(const char *log_path, const struct vv_audit_rec *r);

/* After unlock: append each LOG.preauth line as an "unauth" record
 * (op "preauth", the original line in "detail"), flush, remove the file.
 * Returns the number imported or a VV_E* code. */
int vv_audit_import_preauth(struct vv_audit *a);

/* --- verification ------------------------------------------------------ */

struct vv_audit_verify_result {
	bool ok;                 /* whole chain verified, checkpoint reached, no torn line */
	bool torn;               /* last line incomplete (crash while writing) */
	uint64_t records;        /* records verified before the first problem */
	uint64_t last_seq;       /* last verified sequence number */
	uint64_t first_bad_seq;  /* sequence number of the first bad or missing record */
	uint64_t first_bad_line; /* 1-based line in file */
	char file[PATH_MAX];     /* file holding it ("" if none) */
	const char *why;         /* "edited", "missing record", "reordered", "truncated",
				  * "torn last line", "checkpoint mismatch",
				  * "bad checkpoint file", or NULL when ok */
	uint64_t ck_seq;         /* checkpoint used */
	const char *ck_source;   /* "sealed", "sidecar" or "none" */
};

/* Walk LOG.N .. LOG.1, LOG in order and check the whole chain against key,
 * then that it reaches the newer of (ck_seq, ck_mac) and the sidecar
 * checkpoint.  Returns 0 when the walk ran (look at res->ok), or a VV_E*
 * code when it could not (VV_ENOENT: no log). */
int vv_audit_verify(const char *log_path, const uint8_t key[VV_AUDIT_KEY_BYTES],
		    uint64_t ck_seq, const uint8_t *ck_mac,
		    struct vv_audit_verify_result *res);

/* --- reading (no key needed) -------------------------------------------- */

/* One decoded record.  Strings are NUL-terminated, unescaped (\u00XX for
 * XX >= 0x80 restored to the raw byte); NULL when null or absent.  Owned by
 * the iterator, valid until the next vv_audit_iter_next(). */
struct vv_audit_entry {
	uint64_t seq;
	const char *time;
	const char *op, *path, *comm, *user, *client, *result, *mode, *detail;
	uint64_t ino, rbytes, wbytes, rcount, wcount;
	int64_t uid, gid, pid;   /* -1 when absent */
	bool unauth;
	const char *line;        /* the raw line, without newline */
	const char *file;
	uint64_t lineno;
};

struct vv_audit_iter;
/* Iterate every record of the log and its rotated files, oldest first.
 * *out owned by the caller (vv_audit_iter_free). */
int vv_audit_iter_open(const char *log_path, struct vv_audit_iter **out);
/* 1 and *e filled, 0 at the end, VV_ECORRUPT for a line that is not one of
 * our JSON objects (e->line/file/lineno still set; iteration may continue). */
int vv_audit_iter_next(struct vv_audit_iter *it, struct vv_audit_entry *e);
void vv_audit_iter_free(struct vv_audit_iter *it);

#endif
