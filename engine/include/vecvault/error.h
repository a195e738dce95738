/*
 * error.h - the one error table of libvecvault.
 *
 * Every engine function returns 0 (or a count) on success and a negative
 * VV_E* code on failure.  The codes are the engine's own; fs/ maps them to
 * errno exactly once (vv_errno()), tools print vv_strerror().
 */
#ifndef VECVAULT_ERROR_H
#define VECVAULT_ERROR_H

enum {
	VV_OK = 0,
	VV_EPERM = -1,          /* operation not permitted (owner/root only) */
	VV_ENOENT = -2,         /* no such file, directory or key */
	VV_EIO = -3,            /* I/O error, or stored bytes failed authentication */
	VV_ENOMEM = -4,
	VV_EACCES = -5,         /* permission denied by mode bits or ACL */
	VV_EEXIST = -6,
	VV_EXDEV = -7,          /* across collections (each has its own key) */
	VV_ENOTDIR = -8,
	VV_EISDIR = -9,
	VV_EINVAL = -10,
	VV_ENOSPC = -11,
	VV_ENAMETOOLONG = -12,
	VV_ENOTEMPTY = -13,
	VV_ELOOP = -14,
	VV_ENODATA = -15,       /* no such extended attribute */
	VV_ERANGE = -16,        /* caller's buffer too small */
	VV_ENOTSUP = -17,
	VV_EFBIG = -18,
	VV_EMLINK = -19,
	VV_EBUSY = -20,         /* in use: store locked by another daemon, busy mountpoint */
	VV_EBADF = -21,
	VV_EROFS = -22,         /* read-only (snapshots, read-only mount) */
	VV_ETXTBSY = -23,
	VV_E2BIG = -24,         /* xattr value or list too large */
	VV_ENXIO = -25,         /* lseek SEEK_DATA/SEEK_HOLE past the end */
	VV_ENOTTY = -26,        /* ioctl not offered (query offload off) */
	VV_EAGAIN = -27,        /* not ready yet: try again later */
	VV_EBADPASS = -30,      /* wrong passphrase or key file */
	VV_ECORRUPT = -31,      /* stored data failed authentication or is malformed */
	VV_EFORMAT = -32,       /* not a vecvault store, or unsupported format version */
	VV_EROLLBACK = -33,     /* metadata older than the anchored commit counter */
	VV_ECRYPTO = -34,       /* crypto library failure (not an integrity failure) */
	VV_ENOTINIT = -35,      /* store directory exists but holds no vault */
	VV_EDOWNGRADE = -36,    /* conf parameters weaker than allowed */
	VV_EAUDIT = -37,        /* audit log could not be written (--audit-required) */
	VV_ESCHEMA = -38,       /* vector segment does not match collection schema */
	VV_ESYS = -39,          /* other system error; see errno logged alongside */
	VV_ECANCELED = -40,
	VV_ENOMETA = -42,       /* meta.db missing or empty in an initialised store */
	VV_EUNSAFE = -43,       /* a file outside STORE is a link, not ours, or open to others */
	VV_ENOTCONN = -44,      /* the remote server is gone or stopped answering (vv://) */
	VV_ESTALE = -45,        /* a remote inode is no longer what it was (vv:// reconnect) */
	VV_EMIN = -46
};

/* Human-readable text for a VV_E* code (never NULL; static storage). */
const char *vv_strerror(int code);

/* Short symbolic name ("EACCES", "ECORRUPT", ...) for logs and audit. */
const char *vv_errname(int code);

/* Map a positive errno value to a VV_E* code. */
int vv_err_from_errno(int e);

/* Map a VV_E* code to a positive errno value (for fs/ replies). */
int vv_errno(int code);

#endif
