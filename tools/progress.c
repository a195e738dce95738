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

void tool_progress_cb(void *ctx, uint64_t done, uint64_t total)
{
	tool_progress_update(ctx, done, total);
}
