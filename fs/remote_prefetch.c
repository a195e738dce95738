/*
 * remote_prefetch.c - the vv:// client's listing prefetch (remote_int.h).
 */
#include <string.h>
#include <sys/stat.h>

#include "remote_int.h"
#include "vecvault/error.h"
#include "vecvault/log.h"

/*
 * Listing prefetch (docs/remote.md "Caching on the client").  A walk
 * (ls -lR, find, du, rsync) opens a directory, lists it, then opens each
 * subdirectory in turn: two round trips per directory, one after the
 * other, since the kernel asks from the walker's one thread.  When the
 * kernel opens a directory that its parent's listing showed just before,
 * the client opens and lists the parent's other subdirectories ahead,
 * PF_THREADS at a time; a listing so prefetched, once used, has its own
 * subdirectories prefetched (the walk goes on).  A prefetched listing is
 * the server's answer, for this session's vault user, at the moment the
 * prefetch asked: it is used once, by the next opendir of that
 * directory, within PF_NS and the attribute bound (--attr-timeout, 0 = no
 * prefetch), and not after a change went through this client (rfs.mut).
 * Only directories the server called cacheable (every directory above
 * searchable by all) that others may read and search are prefetched.  A
 * prefetch not used in time is closed on the server and its references
 * given back.
 */

/* May the directory of attributes a be prefetched? */
bool fs_remote_pf_dir(const struct vv_attr *a)
{
	return a->ino && S_ISDIR(a->mode) && a->cacheable && (a->mode & 05) == 05;
}

/* Give back what a listing reply k holds on the server: the reference
 * taken on each entry with attributes. */
void fs_remote_pf_drop_refs(struct rfs *f, struct call *k)
{
	struct vv_dirent e;
	struct vv_attr a;
	char nb[VV_NAME_MAX + 1];
	size_t off = 0;

	if (!k)
		return;
	if (k->epoch == vv_net_client_epoch(f->c))
		while (vv_rw_dirent_next(k->rep.blob, k->rep.bloblen, &off, true, &e, nb, &a) == 0)
			if (strcmp(nb, ".") && strcmp(nb, "..") && a.ino)
				fs_remote_forget_later(f, a.ino, 1, k->epoch);
	call_free(k);
}

/* Close an unused prefetch: its handle and its references. */
void fs_remote_pf_discard(struct rfs *f, struct rhandle *h, struct call *k)
{
	struct vv_rw_msg rq = { .h.op = VV_RW_RELEASEDIR };

	fs_remote_pf_drop_refs(f, k);
	if (h && h->epoch == vv_net_client_epoch(f->c)) {
		rq.u[0] = h->srv;
		rq.nu = 1;
		(void)vv_net_client_post(f->c, h->epoch, &rq, FQ_WINDOW);
	}
	free(h);
}

/* Is pfs[i] (done) still good to use? (pmu held) */
static bool pf_fresh(struct rfs *f, const struct pf *p, int64_t now)
{
	int64_t bound = (int64_t)(f->ttl * 1e9);

	if (bound > PF_NS)
		bound = PF_NS;
	return now - p->born < bound && p->mut == atomic_load(&f->mut) &&
	       p->epoch == vv_net_client_epoch(f->c);
}

/* Take pfs[i] out of the table (pmu held): its handle and reply to *h, *k. */
static void pf_remove(struct rfs *f, size_t i, struct rhandle **h, struct call **k)
{
	*h = f->pfs[i].h;
	*k = f->pfs[i].k;
	f->pfs[i] = f->pfs[--f->npf];
}

/* Drop prefetches no longer good (pmu held; it is let go around the
 * server calls). */
static void pf_sweep(struct rfs *f)
{
	int64_t now = mono_ns();

	for (size_t i = 0; i < f->npf;) {
		struct rhandle *h;
		struct call *k;
		if (f->pfs[i].state != PF_DONE || pf_fresh(f, &f->pfs[i], now)) {
			i++;
			continue;
		}
		pf_remove(f, i, &h, &k);
		pthread_mutex_unlock(&f->pmu);
		fs_remote_pf_discard(f, h, k);
		pthread_mutex_lock(&f->pmu);
		i = 0;
	}
}

/* Ask for ino's listing ahead (pmu held). */
static void pf_want(struct rfs *f, uint64_t ino)
{
	for (size_t i = 0; i < f->npf; i++)
		if (f->pfs[i].ino == ino)
			return;
	if (f->npf == PF_MAX || f->pstop)
		return;
	f->pfs[f->npf++] = (struct pf){ .ino = ino, .state = PF_QUEUED };
	pthread_cond_signal(&f->pcond);
}

static void *pf_worker(void *arg)
{
	struct rfs *f = arg;

	pthread_mutex_lock(&f->pmu);
	while (!f->pstop) {
		struct pf *p = NULL;
		struct call *o = NULL, *k = NULL;
		struct rhandle *h = NULL;
		uint64_t ino;
		int r;

		for (size_t i = 0; i < f->npf && !p; i++)
			if (f->pfs[i].state == PF_QUEUED)
				p = &f->pfs[i];
		if (!p) {
			pthread_cond_wait(&f->pcond, &f->pmu);
			continue;
		}
		p->state = PF_RUNNING;
		atomic_fetch_add(&f->pf_asked, 1);
		p->mut = atomic_load(&f->mut);
		p->born = mono_ns();
		ino = p->ino;
		pthread_mutex_unlock(&f->pmu);

		r = VV_ENOMEM;
		if ((o = call_new(VV_RW_OPENDIR))) {
			U(o, ino);
			if ((r = fs_remote_run(f, o)) == 0 && o->rep.nu != 1)
				r = VV_EIO;
		}
		if (r == 0 && !(h = rh_new(o->rep.u[0], ino, 0, o->epoch, true))) {
			struct vv_rw_msg rq = { .h.op = VV_RW_RELEASEDIR, .u = { o->rep.u[0] }, .nu = 1 };
			(void)vv_net_client_post(f->c, o->epoch, &rq, FQ_WINDOW);
			r = VV_ENOMEM;
		}
		if (r == 0) {
			bool got = false;
			r = VV_ENOMEM;
			if ((k = call_new(VV_RW_READDIR))) {
				U(k, (uintptr_t)h);
				U(k, 0);
				U(k, 1);
				U(k, atomic_load(&f->rd_size));
				got = (r = fs_remote_run(f, k)) == 0;
				/* a bad end flag: readdir_common says why when it
				 * meets one of its own */
				if (r == 0 && (k->rep.nu != 1 || k->rep.u[0] > 1))
					r = VV_EIO;
				if (r == 0 && k->epoch != h->epoch)
					r = VV_ESTALE;
			}
			if (r < 0) {
				if (!got) {
					call_free(k);
					k = NULL;
				}
				fs_remote_pf_discard(f, h, k);
				h = NULL;
				k = NULL;
			}
		}
		call_free(o);

		pthread_mutex_lock(&f->pmu);
		for (size_t i = 0; i < f->npf; i++)
			if (f->pfs[i].ino == ino && f->pfs[i].state == PF_RUNNING) {
				if (r < 0 || f->pstop) {
					struct rhandle *hh;
					struct call *kk;
					pf_remove(f, i, &hh, &kk);
				} else {
					f->pfs[i].state = PF_DONE;
					f->pfs[i].h = h;
					f->pfs[i].k = k;
					f->pfs[i].epoch = h->epoch;
					h = NULL;
					k = NULL;
				}
				break;
			}
		pthread_cond_broadcast(&f->pcond);
		if (h || k) {
			pthread_mutex_unlock(&f->pmu);
			fs_remote_pf_discard(f, h, k);
			pthread_mutex_lock(&f->pmu);
		}
	}
	pthread_mutex_unlock(&f->pmu);
	return NULL;
}

/* The prefetched open directory ino, with its first listing in h->pre,
 * or NULL: open it the usual way. */
struct rhandle *fs_remote_pf_take(struct rfs *f, uint64_t ino)
{
	struct rhandle *h = NULL;
	struct call *k = NULL;

	if (!f->pf_on)
		return NULL;
	pthread_mutex_lock(&f->pmu);
	for (;;) {
		size_t i;
		for (i = 0; i < f->npf && f->pfs[i].ino != ino; i++)
			;
		if (i == f->npf)
			break;
		if (f->pfs[i].state == PF_RUNNING) {
			/* asked already: its answer is nearer than a new one */
			pthread_cond_wait(&f->pcond, &f->pmu);
			continue;
		}
		if (f->pfs[i].state == PF_QUEUED) {
			f->pfs[i] = f->pfs[--f->npf];
			break;
		}
		if (pf_fresh(f, &f->pfs[i], mono_ns())) {
			pf_remove(f, i, &h, &k);
			h->pre = k;
			h->walk = true;
			atomic_fetch_add(&f->pf_used, 1);
			k = NULL;
		} else {
			struct rhandle *oh;
			pf_remove(f, i, &oh, &k);
			pthread_mutex_unlock(&f->pmu);
			fs_remote_pf_discard(f, oh, k);
			return NULL;
		}
		break;
	}
	pthread_mutex_unlock(&f->pmu);
	return h;
}

/* The kernel opens directory ino: when its parent's listing, served just
 * before, showed it, a walk descends: prefetch its siblings. */
void fs_remote_pf_descend(struct rfs *f, uint64_t ino)
{
	uint64_t parent;
	int64_t now = mono_ns();

	if (!f->pf_on)
		return;
	parent = fs_remote_irec_parent(f, ino);
	if (!parent)
		return;
	pthread_mutex_lock(&f->pmu);
	pf_sweep(f);
	for (size_t i = 0; i < LST_MAX; i++) {
		struct lst *l = &f->lsts[i];
		size_t at;
		if (l->ino != parent || l->walked || now - l->at > PF_NS)
			continue;
		for (at = 0; at < l->n && l->sub[at] != ino; at++)
			;
		if (at == l->n)
			continue;
		l->walked = true;
		/* in the walker's order: those after ino first */
		for (size_t j = 1; j < l->n; j++)
			pf_want(f, l->sub[(at + j) % l->n]);
		break;
	}
	pthread_mutex_unlock(&f->pmu);
}

/* A listing of dir was served: remember its prefetchable subdirectories
 * (sub[0..n), taken), and in a walk prefetch them now. */
void fs_remote_pf_listed(struct rfs *f, uint64_t dir, uint64_t *sub, size_t n, bool walk)
{
	struct lst *l;

	if (!f->pf_on || !n) {
		free(sub);
		return;
	}
	pthread_mutex_lock(&f->pmu);
	pf_sweep(f);
	if (walk) {
		for (size_t j = 0; j < n; j++)
			pf_want(f, sub[j]);
	}
	l = &f->lsts[f->lst_next++ % LST_MAX];
	free(l->sub);
	*l = (struct lst){ .ino = dir, .at = mono_ns(), .walked = walk, .n = n, .sub = sub };
	pthread_mutex_unlock(&f->pmu);
}

void fs_remote_pf_start(struct rfs *f)
{
	while (f->npthr < PF_THREADS &&
	       pthread_create(&f->pthr[f->npthr], NULL, pf_worker, f) == 0)
		f->npthr++;
}

void fs_remote_pf_stop(struct rfs *f)
{
	pthread_mutex_lock(&f->pmu);
	f->pstop = true;
	pthread_cond_broadcast(&f->pcond);
	pthread_mutex_unlock(&f->pmu);
	for (unsigned i = 0; i < f->npthr; i++)
		pthread_join(f->pthr[i], NULL);
	if (atomic_load(&f->pf_asked))
		vv_log(VV_LOG_INFO, "remote: listings prefetched: %llu, used: %llu",
		       (unsigned long long)atomic_load(&f->pf_asked),
		       (unsigned long long)atomic_load(&f->pf_used));
	/* the connection and its session end next: nothing to give back */
	for (size_t i = 0; i < f->npf; i++) {
		call_free(f->pfs[i].k);
		free(f->pfs[i].h);
	}
	f->npf = 0;
	for (size_t i = 0; i < LST_MAX; i++)
		free(f->lsts[i].sub);
}