/*
 * progress.c - progress lines for long operations (fsck, passwd, a slow
 * query), for people at a terminal and never for scripts.
 *
 * Rules: only when stderr is a terminal, so a pipe, a file, cron or the
 * journal get no '\r' noise; only once the operation has run for
 * VECVAULT_PROGRESS_DELAY seconds (default 1), so quick runs stay quiet, as
 * git does with GIT_PROGRESS_DELAY (tests set 0 to see the line at once);
 * one line, redrawn in place, cleared before results are printed, so the
 * output reads the same with and without it.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "progress.h"

#define DEFAULT_DELAY 1.0
#define MIN_REDRAW 0.1               /* seconds between redraws */

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

void tool_progress_start(struct tool_progress *p, const char *verb, const char *what)
{
	const char *e = getenv("VECVAULT_PROGRESS_DELAY");
	char *end;

	p->verb = verb;
	p->what = what;
	p->on = isatty(2);
	p->shown = false;
	p->start = now();
	p->last = 0;
	p->pct = -1;
	p->delay = DEFAULT_DELAY;
	if (e && *e) {
		double d = strtod(e, &end);

		if (!*end && d >= 0)
			p->delay = d;
	}
}

void tool_progress_update(struct tool_progress *p, uint64_t done, uint64_t total)
{
	int pct = total ? (int)(done >= total ? 100 : done * 100 / total) : 100;
	double t;

	if (!p->on || pct == p->pct)
		return;
	t = now();
	if (t - p->start < p->delay || (pct < 100 && t - p->last < MIN_REDRAW))
		return;
	p->pct = pct;
	p->last = t;
	p->shown = true;
	fprintf(stderr, "\rvecvault %s: %s: %3d%% (%llu/%llu)\033[K", p->verb, p->what, pct,
		(unsigned long long)done, (unsigned long long)total);
	fflush(stderr);
}

void tool_progress_note(struct tool_progress *p, const char *what)
{
	if (!p->on)
		return;
	p->shown = true;
	/* \033[K: erase what a longer earlier note left on the line. */
	fprintf(stderr, "\rvecvault %s: %s...\033[K", p->verb, what);
	fflush(stderr);
}

void tool_progress_end(struct tool_progress *p)
{
	if (!p->on || !p->shown)
		return;
	fputs("\r\033[K", stderr);
	fflush(stderr);
	p->shown = false;
	p->pct = -1;
}

/* n bytes as "1.2 GB" (powers of 1000, as the rates). */
static void human(uint64_t n, char *out, size_t cap)
{
	static const char *const unit[] = { "B", "kB", "MB", "GB", "TB", "PB", "EB" };
	double d = (double)n;
	int u = 0;

	while (d >= 1000 && u < 6) {
		d /= 1000;
		u++;
	}
	if (u == 0)
		snprintf(out, cap, "%" PRIu64 " B", n);
	else
		snprintf(out, cap, "%.1f %s", d, unit[u]);
}

void tool_progress_xfer(struct tool_progress *p, uint64_t objects_done, uint64_t objects_total,
			uint64_t bytes_done, uint64_t bytes_total)
{
	bool by_bytes = bytes_total > 0;
	uint64_t done = by_bytes ? bytes_done : objects_done, total = by_bytes ? bytes_total : objects_total;
	bool all = done >= total && objects_done >= objects_total;
	char bd[32], bt[32], rate[32], eta[32];
	double t, el, left;
	int pct = total ? (int)(done >= total ? 100 : (double)done * 100 / (double)total) : 100;

	if (!p->on || (all && p->pct == 100))
		return;
	t = now();
	if (t - p->start < p->delay || (!all && t - p->last < MIN_REDRAW))
		return;
	p->pct = all ? 100 : pct;
	p->last = t;
	p->shown = true;
	el = t - p->start;
	human(bytes_done, bd, sizeof(bd));
	human(bytes_total, bt, sizeof(bt));
	human(el > 0 ? (uint64_t)((double)bytes_done / el) : 0, rate, sizeof(rate));
	if (all)
		snprintf(eta, sizeof(eta), "0:00");
	else if (done == 0 || el <= 0)
		snprintf(eta, sizeof(eta), "--:--");
	else {
		/* Time left at the rate so far; clamped so a wild estimate
		 * cannot print garbage. */
		left = el * (double)(total - done) / (double)done;
		if (!(left >= 0) || left > 99 * 3600.0)
			snprintf(eta, sizeof(eta), ">99h");
		else if (left >= 3600)
			snprintf(eta, sizeof(eta), "%d:%02d:%02d", (int)left / 3600, (int)left / 60 % 60,
				 (int)left % 60);
		else
			snprintf(eta, sizeof(eta), "%d:%02d", (int)left / 60, (int)left % 60);
	}
	fprintf(stderr, "\rvecvault %s: %s: %3d%% %s/%s, %" PRIu64 "/%" PRIu64 " objects, %s/s, ETA %s\033[K",
		p->verb, p->what, p->pct, bd, bt, objects_done, objects_total, rate, eta);
	fflush(stderr);
}

void tool_progress_summary(const struct tool_progress *p, const char *what, uint64_t objects,
			   uint64_t bytes)
{
	double s = now() - p->start;

	fprintf(stderr, "vecvault %s: %s: %" PRIu64 " objects, %" PRIu64 " bytes in %.1f s (%.1f MB/s)\n",
		p->verb, what, objects, bytes, s, s > 0 ? (double)bytes / s / 1e6 : 0.0);
}

void tool_progress_cb(void *ctx, uint64_t done, uint64_t total)
{
	tool_progress_update(ctx, done, total);
}
