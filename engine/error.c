/*
 * error.c - the table behind vv_strerror(), vv_errname() and the errno maps.
 */
#include <errno.h>
#include <stddef.h>

#include "vecvault/error.h"

struct errent {
	int code;
	int err;          /* errno it maps to for FUSE replies */
	const char *name;
	const char *text;
};

static const struct errent table[] = {
	{ VV_OK, 0, "OK", "success" },
	{ VV_EPERM, EPERM, "EPERM", "operation not permitted" },
	{ VV_ENOENT, ENOENT, "ENOENT", "no such file or directory" },
	{ VV_EIO, EIO, "EIO", "input/output error" },
	{ VV_ENOMEM, ENOMEM, "ENOMEM", "out of memory" },
	{ VV_EACCES, EACCES, "EACCES", "permission denied" },
	{ VV_EEXIST, EEXIST, "EEXIST", "file exists" },
	{ VV_EXDEV, EXDEV, "EXDEV", "cross-collection link or rename (each collection has its own key)" },
	{ VV_ENOTDIR, ENOTDIR, "ENOTDIR", "not a directory" },
	{ VV_EISDIR, EISDIR, "EISDIR", "is a directory" },
	{ VV_EINVAL, EINVAL, "EINVAL", "invalid argument" },
	{ VV_ENOSPC, ENOSPC, "ENOSPC", "no space left on device" },
	{ VV_ENAMETOOLONG, ENAMETOOLONG, "ENAMETOOLONG", "file name too long" },
	{ VV_ENOTEMPTY, ENOTEMPTY, "ENOTEMPTY", "directory not empty" },
	{ VV_ELOOP, ELOOP, "ELOOP", "too many levels of symbolic links" },
	{ VV_ENODATA, ENODATA, "ENODATA", "no such attribute" },
	{ VV_ERANGE, ERANGE, "ERANGE", "result too large for buffer" },
	{ VV_ENOTSUP, EOPNOTSUPP, "ENOTSUP", "operation not supported" },
	{ VV_EFBIG, EFBIG, "EFBIG", "file too large" },
	{ VV_EMLINK, EMLINK, "EMLINK", "too many links" },
	{ VV_EBUSY, EBUSY, "EBUSY", "resource busy (store locked by another process, or mountpoint in use)" },
	{ VV_EBADF, EBADF, "EBADF", "bad file handle" },
	{ VV_EROFS, EROFS, "EROFS", "read-only file system" },
	{ VV_ETXTBSY, ETXTBSY, "ETXTBSY", "text file busy" },
	{ VV_E2BIG, E2BIG, "E2BIG", "argument list too long" },
	{ VV_ENXIO, ENXIO, "ENXIO", "no such device or address" },
	{ VV_ENOTTY, ENOTTY, "ENOTTY", "inappropriate ioctl for device" },
	{ VV_EAGAIN, EAGAIN, "EAGAIN", "not ready yet, try again" },
	{ VV_EBADPASS, EACCES, "EBADPASS", "wrong passphrase or key file" },
	{ VV_ECORRUPT, EIO, "ECORRUPT", "stored data failed authentication or is malformed" },
	{ VV_EFORMAT, EINVAL, "EFORMAT", "not a vecvault store, or unsupported format version" },
	{ VV_EROLLBACK, EIO, "EROLLBACK", "metadata is older than the last commit this machine saw (rollback?)" },
	{ VV_ECRYPTO, EIO, "ECRYPTO", "cryptographic library failure" },
	{ VV_ENOTINIT, ENOENT, "ENOTINIT", "no vault in this directory (run vecvault init)" },
	{ VV_EDOWNGRADE, EINVAL, "EDOWNGRADE", "configuration parameters below the allowed minimum (downgrade?)" },
	{ VV_EAUDIT, EIO, "EAUDIT", "audit log cannot be written" },
	{ VV_ESCHEMA, EINVAL, "ESCHEMA", "vector segment does not match the collection schema" },
	{ VV_ESYS, EIO, "ESYS", "system error" },
	{ VV_ECANCELED, ECANCELED, "ECANCELED", "operation canceled" },
	{ VV_ENOMETA, EIO, "ENOMETA", "meta.db is missing or empty: the vault's metadata is gone (restore it from a backup)" },
	{ VV_EUNSAFE, EPERM, "EUNSAFE", "unsafe file outside the store refused (a link, someone "
	  "else's, or open to others)" },
	{ VV_ENOTCONN, ENOTCONN, "ENOTCONN", "the remote vault server is gone or stopped answering" },
	{ VV_ESTALE, ESTALE, "ESTALE", "the remote file was removed or replaced while the connection was down" },
};

static const struct errent *find(int code)
{
	for (size_t i = 0; i < sizeof(table) / sizeof(table[0]); i++)
		if (table[i].code == code)
			return &table[i];
	return NULL;
}

const char *vv_strerror(int code)
{
	const struct errent *e = find(code);
	return e ? e->text : "unknown error";
}

const char *vv_errname(int code)
{
	const struct errent *e = find(code);
	return e ? e->name : "EUNKNOWN";
}

int vv_errno(int code)
{
	const struct errent *e = find(code);
	return e ? e->err : EIO;
}

int vv_err_from_errno(int err)
{
	if (err == 0)
		return VV_OK;
	if (err == EOPNOTSUPP)
		return VV_ENOTSUP;
	if (err == EDQUOT)
		return VV_ENOSPC;
	if (err == EWOULDBLOCK)
		return VV_EBUSY;
	for (size_t i = 1; i < sizeof(table) / sizeof(table[0]); i++)
		if (table[i].err == err && table[i].code > VV_EBADPASS)
			return table[i].code;
	return VV_ESYS;
}
