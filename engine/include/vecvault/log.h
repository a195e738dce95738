/*
 * log.h - the engine never prints; it logs through a sink the host sets.
 *
 * The default sink discards everything.  The CLI and the daemon install one
 * that writes to stderr or syslog.  Never pass key material to vv_log().
 */
#ifndef VECVAULT_LOG_H
#define VECVAULT_LOG_H

enum vv_log_level { VV_LOG_ERR = 0, VV_LOG_WARN = 1, VV_LOG_INFO = 2, VV_LOG_DEBUG = 3 };

typedef void (*vv_log_fn)(void *ctx, enum vv_log_level lvl, const char *msg);

/* Install a sink (fn may be NULL to discard).  Not thread-safe: call at start. */
void vv_log_set_sink(vv_log_fn fn, void *ctx, enum vv_log_level max);

void vv_log(enum vv_log_level lvl, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

#endif
