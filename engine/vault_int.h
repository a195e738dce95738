/*
 * vault_int.h - internals shared by vault*.c: the open vault, its node
 * cache, file and directory handles.
 *
 * struct vv_vault is one part per concern (nodes, keys, cm, aud, tick,
 * seal), each documented where it is declared below.
 *
 * Locking: v->mu guards the metadata connection (meta.c is not
 * thread-safe), the node table, collection keys, the commit state and
 * every node's attributes and ACL cache; the sealer (v->seal.mu), the
 * audit checkpoint (v->aud.ckpt_mu) and the offload cache have their own
 * leaf locks.
 * n->rw guards a node's data (extent map, write buffer, inline bytes).
 * Order: n->rw before v->mu; never wait for n->rw while holding v->mu.
 * Nodes are kept alive by n->pins (lookup references count as nlookup,
 * open handles as nopen, transient users as pins); a node with no
 * references and nothing dirty is dropped from the table, and one with
 * nlink 0 is deleted then.
 */
#ifndef VV_VAULT_INT_H
#define VV_VAULT_INT_H

#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "content_int.h"
#include "meta_int.h"
#include "vecvault/audit.h"
#include "vecvault/store.h"
#include "vecvault/vault.h"
#include "vecvault/vector.h"

#define VV_INLINE_MAX 65536         /* files up to this size live in meta.db */
#define VV_MAX_FILE_SIZE (1ULL << 62)
#define VV_FLUSH_BLOCKS VV_CHUNK_MAX_BLOCKS   /* dirty blocks that trigger a flush */
#define VV_MAX_LINKS 65000
#define VV_RESERVE_MAX (4u << 20)     /* released so deletes can commit on a full disk */
#define VV_RESERVE_MIN (256u << 10)

struct dblock {                      /* one dirty (buffered) block */
	uint64_t fblock;
	uint32_t len;                    /* valid bytes */
	uint8_t *buf;                    /* VV_BLOCK_SIZE */
};

struct node {
	struct node *hnext;
	struct node *lru_prev, *lru_next; /* in the idle list (vault_nodes.idle_head) */
	size_t lru_bytes;                /* what it counted in idle_bytes when it went idle */
	bool idle;                       /* no reference: kept only as a cache */
	uint64_t ino;
	struct vv_inode_row a;           /* attributes (under v->mu) */
	uint64_t nlookup;                /* kernel references */
	uint32_t nopen;                  /* open handles (under v->mu; changed with
	                                    __atomic ops: vv_vault_release reads
	                                    it under n->rw alone) */
	uint32_t pins;                   /* transient users */
	int8_t xattrs;                   /* stored xattrs: 0 unknown, 1 some, -1 none */
	bool acl_loaded;
	uint8_t *acl;                    /* access ACL blob or NULL (under v->mu) */
	size_t acl_len;
	bool chain_ok;                   /* dirs: every user may search the ancestry */
	uint64_t chain_gen;              /* v->perm_gen when chain_ok was computed */
	uint8_t *gate;                   /* dirs: the trash's gate for items removed from */
	size_t gate_len;                 /* it (vault_trash.c gate_make), valid while */
	uint64_t gate_gen;               /* gate_gen == v->perm_gen */
	uint64_t lparent;                /* the entry the kernel last looked it up by */
	char *lname;
	uint32_t lpid;                   /* the thread that looked it up so (0: other) */

	pthread_rwlock_t rw;             /* data */
	/* data_loaded and is_inline change under n->rw, through node_set_data
	 * (atomic stores): vault_node_attr reads them under v->mu alone */
	bool data_loaded;                /* ext/inl loaded from meta */
	bool is_inline;                  /* bytes in inl, no extents */
	bool row_inl;                    /* meta.db's row still holds inline bytes: they
	                                    are block 0 until block 0 has an extent */
	uint8_t *inl;                    /* inline bytes (inlcap allocated, zero past size) */
	size_t inlcap;
	struct vv_extent *ext;           /* sorted by fblock */
	size_t next, extcap;
	struct dblock *dirty;            /* sorted by fblock */
	size_t ndirty, dirtycap;
	struct dblock *sealing;          /* handed to the sealer, not yet extents
	                                    (insertion order: the last match is newest) */
	size_t nsealing, sealcap;
	uint32_t jobs;                   /* sealer jobs in flight (under v->seal.mu) */
	int seal_err;                    /* a failed seal, reported once by the next write,
	                                    flush or fsync of a handle (never by a background
	                                    flush: vault_flush_all) */
	bool data_dirty;                 /* size/inline/dirty blocks not yet in meta */
	uint64_t data_gen;               /* new (vault_gen_next) on every data change */
	uint64_t open_gen;               /* data_gen at the last open */
	bool revoked;                    /* purged while open: no more reads (atomic; vault_node_revoke) */
	/* The open push (vv_vault_open_push), under v->mu: */
	bool pushed;                     /* the kernel may hold pages of it (read, pushed or
	                                    opened for writing since the node was made or
	                                    went idle; atomic) */
	bool pushing;                    /* a push is being sent: other opens wait (push_cv) */
	uint32_t nwrite;                 /* handles open for writing */
	uint64_t wopens;                 /* opens for writing ever */
};

struct vv_file {
	struct node *n;
	int flags;
	uint64_t rbytes, wbytes, rcount, wcount;
	uint64_t ra_next, ra_end;        /* read-ahead: where the last read ended, how far is queued */
	int err;                         /* sticky write-back error for flush/fsync */
	struct vv_ctx who;               /* the opener, for the summary at release */
	char comm[32];
	char client[64];
	char user[64];                   /* the vault user/key of a remote opener */
	char *path;                      /* the path it was opened by, for audit records */
	struct vv_file *prev, *next;     /* v->files, under v->mu */
	char *virt;                      /* n == NULL: a virtual file's bytes (.trashinfo) */
	size_t virt_len;
};

/* What a handle was opened for.  open(2) mode 3 (O_ACCMODE) is neither: the
 * kernel allows it for ioctl-only use, after checking read and write
 * permission, and it carries no read or write right of its own.  An exec
 * open (VV_OPEN_EXEC) is the kernel reading a binary for execve, which
 * needs only execute permission: it is no right to read for anyone else. */
static inline bool file_may_read(const struct vv_file *f)
{
	int acc = f->flags & O_ACCMODE;

	return acc == O_RDONLY || acc == O_RDWR;
}

/* A handle opened with these flags may change the file's data (a write,
 * or O_TRUNC at open).  node_opened counts it on n under v->mu at every
 * open and create of a file handle; vv_vault_release undoes it. */
static inline bool open_may_change(int flags)
{
	return (flags & O_ACCMODE) != O_RDONLY || (flags & O_TRUNC);
}

/* Set a node's data_loaded or is_inline (struct node: read outside
 * n->rw by vault_node_attr). */
static inline void node_set_data(bool *field, bool val)
{
	__atomic_store_n(field, val, __ATOMIC_RELAXED);
}

static inline void node_opened(struct node *n, int flags)
{
	__atomic_fetch_add(&n->nopen, 1, __ATOMIC_RELAXED);
	if (open_may_change(flags)) {
		n->nwrite++;                 /* vv_vault_open_push: no push meanwhile */
		n->wopens++;
		/* a cached write leaves pages of its own in the kernel */
		__atomic_store_n(&n->pushed, true, __ATOMIC_RELAXED);
	}
}

static inline bool file_may_write(const struct vv_file *f)
{
	int acc = f->flags & O_ACCMODE;

	return acc == O_WRONLY || acc == O_RDWR;
}

/* May the holder of f read through it on their own (ioctl offload)? */
static inline bool file_user_readable(const struct vv_file *f)
{
	return file_may_read(f) && !(f->flags & VV_OPEN_EXEC);
}

struct vv_dir {
	struct node *n;                  /* NULL for a virtual directory */
	const struct vv_ctx *c;
	uint64_t virt;                   /* the virtual directory's inode (.trash) */
	struct vv_ident id;              /* its opener, whose view it lists (groups owned) */
	bool cache;                      /* the kernel may keep its listing (opendir) */
};

/* Blocks of one node to seal into one chunk, off the request path. */
struct seal_job {
	struct seal_job *next;
	uint64_t seq;                    /* queue order: extents are repointed in it */
	struct node *n;                  /* pinned until the job is done */
	struct dblock *b;                /* nb blocks; buffers owned by the job */
	size_t nb;
};

struct pending_unlink {
	uint8_t id[VV_CHUNK_ID_BYTES];
};

struct collkey {
	uint32_t id;
	uint8_t *key;                    /* secure memory */
};

/*
 * Node events, so that the node table and the data path never call up into
 * the layers that keep state per node (the data layer's extents, the
 * offload cache; later the trash and snapshots): those register a listener
 * at open, and the lower layer announces.  Listeners run in registration
 * order, must not block, and must not take v->mu.
 */
struct vault_listener {
	/* n's bytes changed (write, truncate).  Under n->rw (write). */
	void (*data_changed)(struct vv_vault *v, struct node *n);
	/* n is deleted for good (no links, no users): release what is kept
	 * for it.  Under v->mu, inside the open transaction; an error stops
	 * the deletion (the inode row stays for fsck).  May be NULL. */
	int (*deleted)(struct vv_vault *v, struct node *n);
	/* n was purged while open (trash purge): its handles may read no more
	 * (n->revoked is set; reads and scans fail EIO), so what is kept of
	 * its bytes goes now, not at the last close.  Under v->mu.  May be NULL. */
	void (*revoked)(struct vv_vault *v, struct node *n);
	/* Every inode number in [lo, hi) is gone for good (a deleted
	 * snapshot's virtual numbers), whether or not a node exists for it:
	 * drop what is kept for them.  Under v->mu.  May be NULL. */
	void (*gone)(struct vv_vault *v, uint64_t lo, uint64_t hi);
};
#define VAULT_MAX_LISTENERS 4

/* The audit log and the checkpoints its writer hands back (vault_audit.c). */
struct vault_audit_state {
	struct vv_audit *log;            /* NULL: not audited */
	bool lookups;                    /* successful lookups are recorded too */
	bool required;                   /* refuse requests while the log cannot be written */
	pthread_mutex_t ckpt_mu;         /* the writer's latest checkpoint, to seal */
	bool ckpt_have;
	uint64_t ckpt_seq;
	uint8_t ckpt_mac[VV_AUDIT_MAC_BYTES];
};

/* Bounds on idle nodes (docs/design.md "Node cache and kernel caches"):
 * the count keeps a listing or query of millions of names from holding
 * millions of nodes; the bytes keep the extent maps of big files from
 * growing past it.  A query over 10,000 segments fits. */
#define VAULT_IDLE_NODES 32768
#define VAULT_IDLE_BYTES ((size_t)32 << 20)

/* The node table (vault_node.c), under v->mu. */
struct vault_nodes {
	struct node **htab;
	size_t hsize, n;
	uint64_t perm_gen;               /* bumps when a directory's permissions change */
	/* Idle nodes: no pin, lookup, open or dirty data, links left; kept
	 * for the next request, least recently used first out
	 * (VAULT_IDLE_NODES, VAULT_IDLE_BYTES). */
	struct node *idle_head, *idle_tail;  /* head: least recently used */
	size_t nidle, idle_bytes;
	size_t idle_max, idle_max_bytes;     /* the bounds (tests lower them) */
};

/* Collection keys (vault_keys.c), under v->mu. */
struct vault_keys {
	uint8_t *wrap;                   /* secure: wraps collection keys */
	struct collkey *colls;
	size_t n;
	/* Shredding on disk (vault_keys_settle): a key row was deleted in the
	 * open transaction (dropping), and the commit that holds such a
	 * deletion (shred_seq, a cm.written number; 0: none pending), whose
	 * wrapped key may still sit in older WAL frames until the settle. */
	bool dropping;
	uint64_t shred_seq;
	uint64_t shreds;                 /* settles done (tests) */
	bool shred_failing;              /* logged once */
};

/* Commits, released chunks, the full-disk reserve (vault_commit.c), under v->mu. */
struct vault_commits {
	struct pending_unlink *unl;      /* chunks whose last reference was dropped */
	size_t nunl, unlcap;
	size_t unl_safe;                 /* entries [0, unl_safe) may be unlinked */
	bool anchor_lags;                /* the rollback anchor lags the last commit */
	int fatal;                       /* sticky error: metadata can no longer be committed */
	bool low_space;                  /* free space below the reserve: refuse growth */
	uint32_t reserve;                /* reserve size: 1/32 of the file system, clamped */
	int64_t space_checked;           /* when low_space was last computed (ns) */
	int64_t tight_checked;           /* vault_space_tight: when it last found room to */
	uint64_t tight_free;             /* spare, and how much (free bytes then) */
	/* group commit (vault_commit.c): commits are numbered as their WAL
	 * frames are written; durable is the last one whose WAL sync returned */
	uint64_t written, durable;
	size_t unl_written;              /* nunl when commit `written` was made */
	bool syncing;                    /* a WAL sync runs outside mu */
	bool chunk_syncing;              /* a chunk sync runs outside mu */
	pthread_cond_t synced;           /* with mu: a WAL or chunk sync ended */
};

/* The checkpointer thread (vault_commit.c): copies the WAL into meta.db
 * through its own connection, outside v->mu; fields under v->mu. */
struct vault_ckpt {
	pthread_t thread;
	bool run;                        /* the thread exists and goes on */
	bool kick;                       /* a pass is wanted */
	bool busy;                       /* a pass runs (outside mu) */
	bool ready;                      /* the last pass copied every frame
	                                    committed before it: ckpt_settle */
	uint32_t caught;                 /* ... the WAL's frames then */
	uint32_t frames;                 /* WAL frames that start a pass */
	uint32_t last;                   /* the WAL's frames at the last kick */
	uint64_t seen;                   /* cm.written at the last ckpt_kick */
	pthread_cond_t cv;               /* with v->mu: kick, or stop */
	uint64_t passes, finishes;       /* for tests and the log */
	uint64_t finishes_locked;        /* finishes that copied frames under mu */
	void (*test_hook)(void *);       /* tests: called in each pass, before
	                                    SQLite's checkpoint (meta's ckpt lock
	                                    held, not v->mu) */
	void *test_ctx;
};

/* The ticker thread that batches commits (vault.c). */
struct vault_ticker {
	pthread_t thread;
	bool run;
	pthread_cond_t cv;               /* with v->mu */
};

/* The sealers: encrypt and write full write buffers while the request
 * threads take the next data (vault_data.c); its own lock.  Several
 * threads seal jobs at once; each job's extents are repointed in queue
 * order (seq == applied), so a file's newer data always lands last. */
#define VAULT_SEALERS_MAX 4
struct vault_sealer {
	pthread_t thread[VAULT_SEALERS_MAX];
	unsigned nthread;
	bool run;
	pthread_mutex_t mu;
	pthread_cond_t cv;               /* work queued / stop */
	pthread_cond_t done;             /* a job finished */
	pthread_cond_t turn;             /* applied advanced */
	struct seal_job *head, *tail;
	size_t len;
	uint64_t seq;                    /* the next job's seq */
	uint64_t applied;                /* jobs (by seq) whose extents are repointed */
	unsigned busy;                   /* jobs taken by a sealer, not yet done */
	uint8_t **pool;                  /* free VV_BLOCK_SIZE buffers */
	size_t npool;
};

/* The recycle bin (vault_trash.c), under v->mu. */
struct vault_trash {
	int64_t keep_ns;                 /* retention; 0: removals are final */
	bool ready;                      /* meta.db has the trash table */
	int64_t opened;                  /* times of the virtual directories */
	int64_t swept;                   /* the last retention sweep */
	struct trash_recent *recent[64]; /* the last removals per directory, for its
	                                    rmdir's grouping (vault_trash.c adopt) */
	size_t nrecent;                  /* records held, all directories */
	int64_t trimmed;                 /* when recent was last trimmed */
};

/* Scheduled snapshots and their retention (vault_snap.c): set at open from
 * vv_vault_opts; next is touched by the ticker thread only. */
struct vault_snap_sched {
	uint32_t every;                  /* seconds between snapshots; 0 = off */
	uint32_t keep_hourly, keep_daily, keep_weekly, keep_monthly;
	int64_t next;                    /* when the next one is due (ns) */
};

/* Scheduled backups (vault_backup.c): set at open from vv_vault_opts.
 * The ticker marks a run due (next, due under v->mu); the backup thread
 * runs it unlocked, so a long export never holds up commits.  stop is
 * read by the copy loop between objects (atomic). */
struct vault_backup_sched {
	uint32_t every;                  /* seconds between backups; 0 = off */
	uint32_t keep_hourly, keep_daily, keep_weekly, keep_monthly;
	char *dest;                      /* owned */
	char *pass;                      /* secure memory, owned */
	size_t passlen;
	int64_t next;                    /* when the next one is due (ns) */
	bool due, running, stop;
	pthread_cond_t cv;               /* with v->mu */
	pthread_t thread;
};

/* An open vault: the store and its modules, then one part per concern. */
struct vv_vault {
	struct vv_store *store;
	/* the last data_gen handed out: a node gets a fresh one when loaded
	 * and at every data change, so a generation names one version of one
	 * node's data for the vault's life (random high half: across opens
	 * too); remote clients keep their page cache while it is unchanged */
	uint64_t gen_seq;
	struct vv_meta *meta;
	struct vv_content *content;
	unsigned flags;
	const char *purpose;             /* "mount", "fsck" ... for the audit log */
	char *state_dir;                 /* vv_vault_opts copies (the anchors' home) */
	char *audit_dir;
	vv_progress_fn progress;         /* from vv_vault_opts; NULL = none */
	void *progress_ctx;

	pthread_mutex_t mu;              /* meta, nodes, keys, commits (see the top) */
	uint32_t root_coll;
	struct vault_nodes nodes;
	struct vault_keys keys;
	struct vault_commits cm;
	struct vault_audit_state aud;
	struct vault_ticker tick;
	struct vault_ckpt ckpt;
	struct vault_sealer seal;
	struct vault_trash trash;
	struct vault_snap_sched snaps;
	struct vault_backup_sched bk;

	vv_inval_fn inval;               /* kernel-cache invalidation (fs/) */
	void *inval_ctx;
	vv_inval_wait_fn inval_wait;     /* the queue drained (fs/), same ctx */
	void (*admin_between)(void *);   /* tests: called by vv_admin_call between
	                                    the scope's check and the verb, without
	                                    mu (a racing request's moment) */
	void *admin_between_ctx;
	struct knn_cache *knn;           /* decrypted segments for the query offload, or NULL */
	struct vault_listener listeners[VAULT_MAX_LISTENERS];   /* node events (vault_node.c) */
	size_t nlisteners;
	struct vv_file *files;           /* open handles, under mu (vault_data.c) */
	pthread_cond_t push_cv;          /* with mu: an open push ended (vv_vault_open_push) */
	char instance[33];               /* random per open, hex: tells two copies
	                                    of one store apart (vv_vault_instance) */
	struct vv_allow *allow;          /* remote listener's whitelist, or NULL; under mu (vault_remote.c) */
	struct {                         /* the CIDRs of the active API keys, for the
	                                    listener's vv_vault_keys_admit (vault_user.c) */
		pthread_mutex_t mu;      /* the fields below but gen; taken before mu */
		atomic_uint gen;         /* bumped at each change of api_keys (under mu) */
		unsigned seen;           /* the gen the table was read at ... */
		bool have;               /* ... if it was */
		bool over;               /* more CIDRs than it holds: meta.db is asked */
		int64_t retry_ms;        /* a failed read is tried again from then */
		struct vault_admit_cidr *c;
		size_t n;
	} admit;
};

/* collection keys (vault_keys.c) */
int vault_key(struct vv_vault *v, uint32_t coll, const uint8_t **key);  /* under mu */
int vault_coll_new(struct vv_vault *v, uint32_t *id);                    /* under mu */
int vault_coll_key_new(struct vv_meta *m, const uint8_t *wrapkey, uint32_t *id);
int vault_coll_key_put(struct vv_meta *m, const uint8_t *wrapkey, const uint8_t *k, uint32_t *id);

/* A new vault (vault.c), made by `vecvault init` and by a backup restore:
 * vault_new_begin creates the store in dir and an empty meta.db with an
 * open transaction, and hands out the collection wrapping key; the caller
 * fills meta.db; vault_new_end(nv, r, state_dir) makes the first commit and
 * the vault's own rollback anchor when r is 0, and closes and frees
 * everything either way.  Returns r, or the first commit's error.  made:
 * the store directory was created (kept on failure, for the caller to
 * remove). */
struct vault_new {
	struct vv_store *store;
	struct vv_meta *meta;
	uint8_t *wrapkey;                /* secure memory */
	bool made;
	/* Set by the caller after begin, or NULL: called by end once the
	 * first commit and anchor are made, with the store still unlocked
	 * (the new vault's first audit record, without another key
	 * derivation). */
	void (*committed)(void *ctx, struct vv_store *s);
	void *committed_ctx;
};
int vault_new_begin(const char *dir, const char *pass, size_t passlen, int kdf_profile,
		    unsigned flags, struct vault_new *nv);
int vault_new_end(struct vault_new *nv, int r, const char *state_dir);
/* Crypto-shredding (vault_keys.c; docs/design.md "Collections and keys"):
 * drop collection id's key, its row in the open transaction and its copies
 * in memory, when nothing but inode except (0: none) needs it any more
 * (vv_meta_coll_needed).  Called wherever a user of a key goes: an inode's
 * row (vault_node_maybe_free), a collection's directory removed for good,
 * a snapshot.  Returns 1 when dropped, 0 when kept (the root collection,
 * a read-only vault, still needed), or an error (kept).  Under mu. */
int vault_coll_release(struct vv_vault *v, uint32_t id, uint64_t except);
/* The same for every collection key (at each writable open: what a crash
 * or an older build left; at a snapshot's deletion).  Under mu. */
int vault_coll_gc(struct vv_vault *v, int *dropped);
/* Shred dropped keys on disk: once the commit that deleted a key row is
 * durable and no transaction is open, copy the WAL into meta.db (where
 * secure_delete zeroed the row) and truncate the WAL to 0 bytes
 * (vv_meta_shred).  Cheap to call: nothing happens unless a drop waits.
 * force: whatever the state (a writable open: a crash may have come
 * between a drop's commit and its settle).  Under mu. */
void vault_keys_settle(struct vv_vault *v, bool force);

/* transactions and commits (vault_commit.c: the durability story) */
int vault_txn(struct vv_vault *v);                                       /* under mu */
int vault_commit(struct vv_vault *v);                                    /* under mu */
int vault_commit_anchor(struct vv_vault *v);   /* also the anchor; under mu */
/* Like vault_commit_anchor (anchor) or vault_commit, but v->mu is released
 * while the WAL is synced, and one sync serves every commit written before
 * it (group commit): for callers that keep no state across the call (the
 * ticker, fsync, sync).  Under mu (released and retaken). */
int vault_commit_group(struct vv_vault *v, bool anchor);
/* The checkpointer thread (read-write vaults): start after open's first
 * commit, stop before meta closes (not under mu).  Without it (its
 * connection could not be opened) commits checkpoint as SQLite does. */
void vault_ckpt_start(struct vv_vault *v, uint32_t frames);
void vault_ckpt_stop(struct vv_vault *v);
/* Wait until no WAL sync runs outside mu (before closing meta).  Under mu. */
void vault_commit_quiesce(struct vv_vault *v);
void vault_unlink_later(struct vv_vault *v, const uint8_t id[VV_CHUNK_ID_BYTES]);  /* under mu */
void vault_unlink_freed(struct vv_vault *v, bool locked);
int64_t vault_now(void);
/* Free bytes on the store's file system for an unprivileged writer
 * (statvfs f_bavail); UINT64_MAX when it cannot be read. */
uint64_t vault_free_bytes(struct vv_vault *v);
/* VV_ENOSPC when the store's disk is too full for operations that grow
 * the vault (creating, writing); deletes stay allowed.  Under mu. */
int vault_space_ok(struct vv_vault *v);
/* Too full to keep what is deleted (the trash then deletes at once): at
 * the reserve, or without room for one more chunk beyond it.  Under mu. */
bool vault_space_tight(struct vv_vault *v);
/* Seal the audit writer's latest checkpoint into the open transaction. */
int vault_seal_checkpoint(struct vv_vault *v);                           /* under mu */

/* audit records (vault_audit.c) */
void vault_audit(struct vv_vault *v, const struct vv_ctx *c, const char *op, uint64_t ino,
		 uint64_t parent, const char *name, int result, const char *detail);
/* Remember who opened fh and by which path, for its records: the entry
 * the opening thread looked up just before, else the canonical path. */
void vault_file_owner(struct vv_vault *v, struct vv_file *fh, const struct vv_ctx *c);
void vault_file_free(struct vv_file *fh);                     /* NULL ok */
/* A refused open: the record carries the mode that was asked for. */
void vault_audit_open_denied(struct vv_vault *v, const struct vv_ctx *c, uint64_t ino,
			     struct node *n, int flags, int result);          /* n NULL ok */
/* VV_EAUDIT when the vault was opened with audit_required and the log
 * cannot be written right now: the request must be refused, not served
 * unlogged.  0 otherwise.  Any lock or none. */
int vault_audit_gate(struct vv_vault *v);
/* The audit writer's checkpoint callback (vv_audit_opts.checkpoint). */
void vault_audit_checkpoint(void *ctx, uint64_t seq, const uint8_t mac[VV_AUDIT_MAC_BYTES]);
/* A failed unlock, to the pre-authentication file (no key yet). */
void vault_audit_failed_unlock(struct vv_store *s, const struct vv_vault_opts *o, int result);
void vault_audit_file(struct vv_vault *v, const struct vv_ctx *c, const char *op,
		      struct vv_file *fh, int result);
/* The same with a detail (what was refused and why). */
void vault_audit_file_why(struct vv_vault *v, const struct vv_ctx *c, const char *op,
			  struct vv_file *fh, int result, const char *detail);
/* Records of many names of one directory (the directory request's "scan"
 * records, the bulk read's "open" and "close" of a name it served, as a
 * read-only open and its release would record them; rcount 1 when result
 * is 0 and op is not "open"): the directory's path once, under mu ("" for
 * the root; its buffer VAULT_AUDIT_DIR_MAX bytes), then each name's
 * record, mode "r", under no lock of the vault. */
#define VAULT_AUDIT_DIR_MAX 4096
void vault_audit_dir(struct vv_vault *v, uint64_t parent, char *buf);
void vault_audit_name(struct vv_vault *v, const struct vv_ctx *c, const char *op, uint64_t ino,
		      const char *dir, const char *name, int result, const char *detail,
		      uint64_t rbytes);

/* node table (vault_node.c), all under mu */
int vault_node_get(struct vv_vault *v, uint64_t ino, struct node **out);
/* The node for ino if the table holds it (no pin taken), else NULL. */
struct node *vault_node_find(struct vv_vault *v, uint64_t ino);
int vault_node_get_row(struct vv_vault *v, const struct vv_inode_row *row, struct node **out);
void vault_node_put(struct vv_vault *v, struct node *n);            /* drop a pin */
void vault_node_table_free(struct vv_vault *v);
int vault_node_save(struct vv_vault *v, struct node *n);            /* write attributes */
int vault_node_acl(struct vv_vault *v, struct node *n, const uint8_t **acl, size_t *len);
void vault_node_perm(struct vv_vault *v, struct node *n, struct vv_perm *p);
/* A write, truncate or chown of n by c drops its security.capability,
 * as the kernel does for local files (vault_xattr.c; under mu).  by names
 * the change in the audit record ("a write", "a chown"). */
void vault_xattr_killcap_by(struct vv_vault *v, const struct vv_ctx *c, struct node *n,
			    const char *by);
static inline void vault_xattr_killcap(struct vv_vault *v, const struct vv_ctx *c, struct node *n)
{
	vault_xattr_killcap_by(v, c, n, "a write");
}
void vault_node_xattrs_known(struct node *n, bool any);           /* readdirplus saw (no) xattrs */
void vault_node_attr(struct vv_vault *v, struct node *n, bool cacheable, struct vv_attr *out);
bool vault_node_chain_ok(struct vv_vault *v, struct node *dir);
/*
 * The walk up the tree (docs/design.md "Walks up the tree"): every
 * question about a node's ancestry (may the caller search it, is it in the
 * trash, is a directory live, is one directory above another, may the
 * kernel cache below it) follows the same links with the same ends, so
 * their answers cannot disagree.  It follows primary parents (a.parent):
 * a directory has only that one; a file with several names is walked from
 * each of its directories by whoever needs them (reach_linked).  No depth
 * bound: the tree has no cycle (renames and restores refuse one through
 * this walk), so the walk ends; a cycle in a damaged store is caught
 * (Brent's method, no memory) and ends it as broken.  Usage:
 *
 *	struct vault_up w;
 *	for (struct node *n = vault_up_first(v, &w, from); n; n = vault_up_next(v, &w))
 *		... (break out: vault_up_stop(v, &w));
 *	... w.end
 *
 * Each node is pinned while the loop body has it.  Under mu.
 */
enum vault_up_end {
	VAULT_UP_WALKING,                /* not ended (the body broke out) */
	VAULT_UP_ROOT,                   /* the root was visited, last */
	VAULT_UP_TRASH,                  /* the next link is .trash/files: in the trash */
	VAULT_UP_BROKEN,                 /* parent 0, another virtual inode, a cycle, or
	                                    a row that cannot be read (err) */
};
struct vault_up {
	uint64_t next;                   /* the inode to visit next */
	struct node *n;                  /* the node the body has (pinned) */
	uint64_t mark;                   /* Brent: an inode to meet again in a cycle */
	uint64_t lam, power;
	bool last;                       /* n is the root: the walk ends after it */
	enum vault_up_end end;
	int err;                         /* why VAULT_UP_BROKEN: vault_node_get's error,
	                                    VV_ENOENT (a virtual inode), VV_ELOOP (a
	                                    cycle), 0 (parent 0) */
};
struct node *vault_up_first(struct vv_vault *v, struct vault_up *w, uint64_t from);
struct node *vault_up_next(struct vv_vault *v, struct vault_up *w);
void vault_up_stop(struct vv_vault *v, struct vault_up *w);
/* n lost a reference: keep it idle (links left) or delete it for good. */
void vault_node_maybe_free(struct vv_vault *v, struct node *n);
/* Free every idle node: after a change to rows, xattrs or extents made
 * without going through the nodes, or a collection key dropped.  Under mu. */
void vault_node_idle_drop(struct vv_vault *v);
/* Canonical path of ino into buf, or "<inode N>" and VV_ENOENT (no name
 * to give: a missing row, an idle trashed node) or VV_ENAMETOOLONG (longer
 * than buf, or than 4095 bytes).  Under mu. */
int vault_node_path(struct vv_vault *v, uint64_t ino, char *buf, size_t cap);
/* vault_node_path, and *dir: the directory whose entry the path ends with
 * (for a file with several names, the one named, not its primary parent:
 * what a caller shown the path learns the names of).  Under mu. */
int vault_node_path_dir(struct vv_vault *v, uint64_t ino, char *buf, size_t cap, uint64_t *dir);
void vault_node_invalidate_all(struct vv_vault *v);
void vault_node_named(struct node *n, uint64_t parent, const char *name, uint32_t pid);
int vault_node_check(struct vv_vault *v, const struct vv_ctx *c, struct node *n, int mask);
/* May c reach directory dir as a path walk would: search permission on
 * dir and every directory above it, as they are now?  For requests that
 * name a place without a walk through the kernel (the control plane).
 * 0, VV_EACCES, or VV_ENOENT when dir is gone or in the trash.  Under mu. */
int vault_node_reach(struct vv_vault *v, const struct vv_ctx *c, uint64_t dir);
/* The lookup's check of a FIFO or socket (vault_ns.c): read and write
 * permission, or ownership.  Under mu. */
int vault_special_lookup_check(struct vv_vault *v, const struct vv_ctx *c, struct node *n);
/* Node events (struct vault_listener): register at open, before requests. */
void vault_listen(struct vv_vault *v, const struct vault_listener *l);
/* Announce the revoked / gone events (vault_node.c); under v->mu. */
void vault_node_revoke(struct vv_vault *v, struct node *n);
void vault_nodes_gone(struct vv_vault *v, uint64_t lo, uint64_t hi);
void vault_data_changed(struct vv_vault *v, struct node *n);  /* under n->rw (write) */

/* grants (vault_grant.c): does id hold the admin privilege on the
 * collection that holds n (a role it is in was granted admin there, and
 * still has its entry on the collection directory)?  Never for the root
 * and top-level files.  Under mu. */
bool vault_grant_admin(struct vv_vault *v, const struct vv_ident *id, const struct node *n);

/* data (vault_data.c) */
int vault_data_load(struct vv_vault *v, struct node *n);            /* under n->rw (write) */
int vault_data_rdlock(struct vv_vault *v, struct node *n);          /* takes n->rw (read), loaded */
int vault_data_read(struct vv_vault *v, struct node *n, uint8_t *out, uint64_t off, uint64_t end);
                                                              /* under n->rw (read) */
/* The daemon's one parse of a segment's header: n's first bytes (only
 * those are decrypted) probed as format f (vv_segment_probe, its errors and
 * *why).  For the computed xattrs (vault_xattr.c) and the query offload
 * (vault_knn.c).  Under n->rw (read) with the data loaded. */
int vault_data_segment_probe(struct vv_vault *v, struct node *n, enum vv_seg_format f,
		       struct vv_segment_info *si, const char **why);
/* SEEK_DATA / SEEK_HOLE from off (< size) in whole blocks: the next byte
 * of data (VV_ENXIO: none before the end) or of a hole (the size if none);
 * another whence is VV_EINVAL.
 * Under n->rw (read) with the data loaded. */
int vault_data_seek(struct node *n, uint64_t off, int whence, uint64_t *out);
int vault_data_flush(struct vv_vault *v, struct node *n);           /* under n->rw (write), takes mu */
int vault_data_truncate(struct vv_vault *v, struct node *n, uint64_t size);  /* under n->rw (write), takes mu */
int vault_flush_all(struct vv_vault *v);                      /* not under mu */
/* Open handles: tracked from open to release (under mu), so that those the
 * kernel never released (an unmount with files open) are freed at close. */
void vault_data_file_track(struct vv_vault *v, struct vv_file *f);
void vault_data_files_free(struct vv_vault *v);                     /* at close, no requests */
/* The sealer thread, and the data layer's node listener (a deleted node's
 * extents are released). */
int vault_data_sealer_start(struct vv_vault *v, unsigned nthread);     /* 0: by CPUs */
void vault_data_sealer_stop(struct vv_vault *v);                    /* after vault_flush_all */

/* The query offload's cache of decrypted segments (vault_knn.c): it
 * listens for node events (an entry is dropped when its file changes or is
 * deleted); its lock is a leaf. */
int vault_knn_cache_open(struct vv_vault *v, size_t cap);           /* cap 0: offload off */
void vault_knn_cache_close(struct vv_vault *v);
/* Drop ino's entry (its node listener calls this; tests too). */
void vault_knn_cache_drop(struct vv_vault *v, uint64_t ino);
/* What the cache holds, for tests and logs. */
struct knn_stats {
	size_t entries, bytes;           /* listed entries and their mappings */
	size_t locked, lock_cap;         /* bytes under mlock; the budget */
	size_t chains;                   /* hash chains by inode */
	uint64_t drop_probes;            /* entries compared by the last vault_knn_cache_drop */
	size_t queued;                   /* pool jobs waiting */
	unsigned threads, fillers;       /* pool threads; fill jobs queued or running */
	size_t slab_held, slab_live;     /* small entries' arena (knn_slab.h): chunks, slots, */
	size_t slab_outside;             /* and small entries calloc'd */
	size_t held;                     /* references requests hold on listed ready entries */
};
void vault_knn_cache_stats(struct vv_vault *v, struct knn_stats *st);
/* Tests: while held, the pool starts no job (queued ones wait), so a test
 * can queue several and then watch the order they run in. */
void vault_knn_pool_hold(struct vv_vault *v, bool hold);

/* The recycle bin (vault_trash.c): hooks for vault_ns.c, vault_data.c,
 * vault_xattr.c and vault.c, all under v->mu.  Virtual inode numbers for
 * its directories and .trashinfo files: [2^60, 2^60 + 2^32) (the store's
 * counter never gets there; snapshots use 2^61 and up). */
#define VV_TRASH_INO        (1ULL << 60)             /* /.trash */
#define VV_TRASH_FILES_INO  (VV_TRASH_INO + 1)        /* /.trash/files */
#define VV_TRASH_INFO_INO   (VV_TRASH_INO + 2)        /* /.trash/info */
#define VV_TRASH_INFO_FIRST (VV_TRASH_INO + 16)       /* + item id: its .trashinfo */
#define VV_TRASH_INO_END    (VV_TRASH_INO + (1ULL << 32))
static inline bool trash_virt(uint64_t ino)
{
	return ino >= VV_TRASH_INO && ino < VV_TRASH_INO_END;
}
/* ".trash" and ".snapshots" in the root: names no one may create, rename
 * onto or remove. */
bool vault_trash_reserved(uint64_t parent, const char *name);
/* "/.trash", "/.trash/files", "/.trash/info", or NULL (vault_node_path). */
static inline const char *trash_virt_path(uint64_t ino)
{
	return ino == VV_TRASH_INO ? "/.trash" : ino == VV_TRASH_FILES_INO ? "/.trash/files" :
	       ino == VV_TRASH_INFO_INO ? "/.trash/info" : NULL;
}
/* Is n an item of the trash or inside one?  (Read-only there: EROFS.) */
bool vault_trash_in(struct vv_vault *v, struct node *n);
/* Does the trash show id the item top (a node whose parent is
 * .trash/files: where a walk up from inside the trash ends), as a lookup
 * there would: root, or search on its gate and read on it?  A part of a
 * removed tree not yet settled is judged by its own row (the gate of its
 * own removal); a node with no row, by no one but root. */
bool vault_trash_item_visible(struct vv_vault *v, const struct vv_ident *id, struct node *top);
/* Move the parts of d's removed tree (rm -rf) that still sit in
 * .trash/files under d and its directories, as real entries: before
 * anyone reads below a trashed directory (vault_ns.c get_dir), restores
 * or purges it.  A no-op for other directories and read-only opens. */
int vault_trash_settle(struct vv_vault *v, struct node *d);
/* Settle every tree (at open and close). */
void vault_trash_settle_all(struct vv_vault *v);
/* Free what the trash holds in memory (closing). */
void vault_trash_close(struct vv_vault *v);
/* Should removing n (its last name) move it to the trash? */
bool vault_trash_wanted(struct vv_vault *v, struct node *n);
/* Move n, entry name of d, to the trash (checks done); tname: its name
 * in .trash/files (VV_NAME_MAX + 1 bytes). */
int vault_trash_move(struct vv_vault *v, const struct vv_ctx *c, struct node *d, const char *name,
	       struct node *n, int64_t now, char *tname);
/* Requests on the virtual entries (vault_trash_view.c); each audits itself. */
int vault_trash_lookup(struct vv_vault *v, const struct vv_ctx *c, uint64_t parent, const char *name,
		 struct vv_attr *out);
int vault_trash_getattr(struct vv_vault *v, const struct vv_ctx *c, uint64_t ino, struct vv_attr *out);
int vault_trash_open_info(struct vv_vault *v, const struct vv_ctx *c, uint64_t ino, int flags,
		    struct vv_file **fh);
int vault_trash_readdir(struct vv_vault *v, struct vv_dir *dh, uint64_t off, bool plus,
		  vv_fill_fn fill, void *ctx);
int vault_trash_unlink(struct vv_vault *v, const struct vv_ctx *c, uint64_t parent, const char *name,
		 bool dir);
int vault_trash_rename(struct vv_vault *v, const struct vv_ctx *c, uint64_t parent, const char *name,
		 uint64_t newparent, const char *newname, unsigned flags);
/* At open (purges what expired; takes v->mu) and from the ticker. */
int vault_trash_open(struct vv_vault *v, int64_t keep_ns);
void vault_trash_tick(struct vv_vault *v, int64_t now);
/* Scheduled backups (vault_backup.c): start the thread at open (0, or
 * VV_ENOMEM), mark a run due from the ticker (under v->mu), and stop at
 * close: a run in progress ends between two objects, leaving the
 * repository as a kill would (valid, resumable).  stop accepts a vault
 * whose thread never started. */
int vault_backup_sched_start(struct vv_vault *v, const struct vv_vault_opts *o);
void vault_backup_tick(struct vv_vault *v, int64_t now);
void vault_backup_sched_stop(struct vv_vault *v);

/* A fresh data generation (struct vv_vault's gen_seq). */
static inline uint64_t vault_gen_next(struct vv_vault *v)
{
	return __atomic_add_fetch(&v->gen_seq, 1, __ATOMIC_RELAXED);
}

#endif
