/*
 * tap.h - a tiny TAP test harness (one header, no library).
 *
 *   int main(void) { ok(1 + 1 == 2, "adds"); is_int(f(), 0, "f works"); return tap_done(); }
 *
 * Each check prints "ok N - msg" or "not ok N - msg" with the location;
 * tap_done() prints the plan and returns the exit status for ctest
 * (0 when every check passed).  tap_skip_all() exits 77 (ctest: skipped).
 */
#ifndef VV_TAP_H
#define VV_TAP_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int tap_n, tap_fail;

static inline int tap_check(int cond, const char *file, int line, const char *msg)
{
	tap_n++;
	if (!cond)
		tap_fail++;
	printf("%sok %d - %s\n", cond ? "" : "not ", tap_n, msg);
	if (!cond)
		printf("#   failed at %s:%d\n", file, line);
	fflush(stdout);
	return cond;
}

#define ok(cond, msg) tap_check(!!(cond), __FILE__, __LINE__, (msg))

#define is_int(got, want, msg) do {                                              \
	long long g_ = (long long)(got), w_ = (long long)(want);                 \
	if (!tap_check(g_ == w_, __FILE__, __LINE__, (msg)))                     \
		printf("#   got %lld, want %lld\n", g_, w_);                     \
} while (0)

#define is_str(got, want, msg) do {                                              \
	const char *g_ = (got), *w_ = (want);                                    \
	int c_ = g_ && w_ && strcmp(g_, w_) == 0;                                \
	if (!tap_check(c_, __FILE__, __LINE__, (msg)))                           \
		printf("#   got '%s', want '%s'\n", g_ ? g_ : "(null)", w_ ? w_ : "(null)"); \
} while (0)

static inline void tap_diag(const char *msg) { printf("# %s\n", msg); }

static inline int tap_done(void)
{
	printf("1..%d\n", tap_n);
	if (tap_fail)
		printf("# %d of %d checks failed\n", tap_fail, tap_n);
	return tap_fail ? 1 : 0;
}

/* Built with ThreadSanitizer (-DVV_SANITIZE_THREAD=ON): it runs a thread
 * of its own beside the test's once the test starts one, and its signal
 * wrapper leaves a signal blocked after a handler siglongjmps out, even
 * with SA_NODEFER.  Tests that count threads or fault twice say so. */
#if defined(__SANITIZE_THREAD__)
#define TAP_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define TAP_TSAN 1
#endif
#endif
#ifndef TAP_TSAN
#define TAP_TSAN 0
#endif
/* The threads of an idle test process that has run threads: its own. */
#define TAP_IDLE_THREADS (1 + TAP_TSAN)

static inline void tap_skip_all(const char *why)
{
	printf("1..0 # SKIP %s\n", why);
	exit(77);
}

#endif
