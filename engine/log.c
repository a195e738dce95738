/*
 * log.c - message sink for the engine (see vecvault/log.h).
 */
#include <stdarg.h>
#include <stdio.h>

#include "vecvault/log.h"

static vv_log_fn sink;
static void *sink_ctx;
static enum vv_log_level sink_max = VV_LOG_INFO;

void vv_log_set_sink(vv_log_fn fn, void *ctx, enum vv_log_level max)
{
	sink = fn;
	sink_ctx = ctx;
	sink_max = max;
}

void vv_log(enum vv_log_level lvl, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;

	if (!sink || lvl > sink_max)
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	sink(sink_ctx, lvl, msg);
}
