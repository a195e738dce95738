/*
 * version.h - the format and protocol versions this build reads and writes,
 * in one place, so `vecvault --version` can tell an admin whether a store,
 * an audit log or a running daemon is one this binary understands.
 *
 * Each is the version number written into (or checked on) that format; a
 * reader refuses any other (VV_EFORMAT), never guesses.  The byte tables are
 * in docs/format.md and at the top of the source file named below.  Bump a
 * number only with a change to its format, and keep a golden store
 * (tests/data/) of the old one.
 */
#ifndef VECVAULT_VERSION_H
#define VECVAULT_VERSION_H

#define VV_FORMAT_CONF 1    /* STORE/vecvault.conf first line "vecvault-conf 1",
                               key slots (engine/store.c) */
#define VV_FORMAT_META 1    /* meta.db schema, kv row 'format' (engine/meta.c) */
#define VV_FORMAT_CHUNK 1   /* chunk objects, byte 0 (engine/content.c) */
#define VV_FORMAT_AUDIT 1   /* audit log lines and their MAC chain
                               (engine/audit.c, docs/audit.md); not written
                               in the records: the first format is 1 */
/* The query offload ioctl has its own: VV_KNN_VERSION in knn_ioctl.h. */

#endif
