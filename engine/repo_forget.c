/*
 * repo_forget.c - `vecvault backup forget [--prune]`: drop the backups a
 * retention policy does not keep, then the objects nothing names
 * (vecvault/backup.h, vv_repo_forget).  The decision is the snapshot
 * schedule's (vv_snap_retain): one rule for both.
 *
 * Order makes it crash-safe: the forgotten manifests are unlinked and
 * their directory synced before any object goes; an object is deleted
 * only when no manifest left names it.  The writer lock keeps a create
 * from adding a manifest that names an object being pruned.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "repo_int.h"
#include "grow.h"
#include "snap_int.h"
#include "vecvault/error.h"
#include "vecvault/log.h"

static int cmp_name(const void *a, const void *b)
{
	return memcmp(a, b, VV_REPO_NAME_BYTES);
}

static bool forgotten_id(const char *name, const struct vv_backup_info *gone, size_t ngone)
{
	for (size_t i = 0; i < ngone; i++)
		if (strcmp(gone[i].id, name) == 0)
			return true;
	return false;
}

/* Names (sorted) of every object the remaining manifests hold (those
 * not in gone: a dry run counts as if they were deleted). */
static int referenced(struct vv_repo *r, const struct vv_backup_info *gone, size_t ngone,
		      uint8_t (**out)[VV_REPO_NAME_BYTES], size_t *nout)
{
	uint8_t (*all)[VV_REPO_NAME_BYTES] = NULL;
	struct vv_manifest m;
	char **names = NULL;
	size_t n = 0, k = 0, cap = 0;
	int e;

	if ((e = vv_repo_manifest_names(r, &names, &n)) < 0)
		return e;
	for (size_t i = 0; i < n; i++) {
		if (forgotten_id(names[i], gone, ngone))
			continue;
		if ((e = vv_repo_manifest_load(r, names[i], &m)) < 0) {
			vv_log(VV_LOG_ERR, "backup: manifest %s does not read (%s): prune refused, "
			       "nothing deleted", names[i], vv_strerror(e));
			e = VV_ECORRUPT;
			goto out;
		}
		/* Chunks and metadata packs alike. */
		for (size_t j = 0; j < m.nobjs + m.npacks; j++) {
			if (VV_GROW(all, k, cap) < 0) {
				vv_manifest_free(&m);
				e = VV_ENOMEM;
				goto out;
			}
			memcpy(all[k++], j < m.nobjs ? m.objs[j].name : m.packs[j - m.nobjs].name,
			       VV_REPO_NAME_BYTES);
		}
		vv_manifest_free(&m);
	}
	if (k)
		qsort(all, k, sizeof(*all), cmp_name);
	*out = all;
	*nout = k;
	all = NULL;
	e = 0;
out:
	free(all);
	vv_repo_names_free(names, n);
	return e;
}

static int prune(struct vv_repo *r, const struct vv_backup_info *gone, size_t ngone, bool dry_run,
		 uint64_t *count, uint64_t *bytes)
{
	uint8_t (*keep)[VV_REPO_NAME_BYTES] = NULL, nm[VV_REPO_NAME_BYTES];
	int objfd = vv_repo_objfd(r), fd, e;
	struct dirent *de, *fe;
	size_t nkeep = 0;
	struct stat st;
	DIR *d, *sd;

	if ((e = referenced(r, gone, ngone, &keep, &nkeep)) < 0)
		return e;
	if ((fd = dup(objfd)) < 0 || !(d = fdopendir(fd))) {
		if (fd >= 0)
			close(fd);
		free(keep);
		return vv_err_from_errno(errno);
	}
	rewinddir(d);
	while ((de = readdir(d)) && e == 0) {
		if (strlen(de->d_name) != 2 || de->d_name[0] == '.')
			continue;
		if ((fd = openat(objfd, de->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)) < 0)
			continue;   /* not a directory of ours: never walked into */
		if (!(sd = fdopendir(fd))) {
			close(fd);
			continue;
		}
		while ((fe = readdir(sd))) {
			bool tmp = strncmp(fe->d_name, ".tmp-", 5) == 0;
			if (!tmp && (strlen(fe->d_name) != 64 ||
				     vv_hex_decode(nm, VV_REPO_NAME_BYTES, fe->d_name, 64) < 0))
				continue;
			if (!tmp && nkeep && bsearch(nm, keep, nkeep, sizeof(*keep), cmp_name))
				continue;
			if (fstatat(dirfd(sd), fe->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISREG(st.st_mode))
				*bytes += (uint64_t)st.st_size;
			(*count)++;
			if (!dry_run && unlinkat(dirfd(sd), fe->d_name, 0) < 0) {
				e = vv_err_from_errno(errno);
				break;
			}
		}
		if (!dry_run && e == 0 && fsync(dirfd(sd)) < 0)
			e = vv_err_from_errno(errno);
		closedir(sd);
	}
	closedir(d);
	free(keep);
	return e;
}

int vv_repo_forget(struct vv_repo *r, const struct vv_backup_keep *k, bool do_prune, bool dry_run,
		   int (*cb)(void *ctx, const struct vv_backup_info *b, bool kept), void *ctx,
		   uint64_t *forgotten, uint64_t *pruned, uint64_t *pruned_bytes)
{
	struct vv_snap_keep sk = { .hourly = k->hourly, .daily = k->daily, .weekly = k->weekly,
				   .monthly = k->monthly };
	struct vv_backup_info *infos = NULL;
	struct vv_manifest m;
	int64_t *times = NULL;
	bool *keep = NULL;
	char **names = NULL;
	size_t n = 0, ok = 0;
	int e;

	*forgotten = *pruned = *pruned_bytes = 0;
	if ((e = vv_repo_manifest_names(r, &names, &n)) < 0)
		return e;
	if (n && (!(infos = calloc(n, sizeof(*infos))) || !(times = calloc(n, sizeof(*times))) ||
		  !(keep = calloc(n, sizeof(*keep))))) {
		e = VV_ENOMEM;
		goto out;
	}
	/* A manifest that does not read is never forgotten here (verify
	 * reports it); the policy sees the others. */
	for (size_t i = 0; i < n; i++) {
		if (vv_repo_manifest_load(r, names[i], &m) < 0)
			continue;
		infos[ok] = m.info;
		times[ok++] = m.info.created;
		vv_manifest_free(&m);
	}
	vv_snap_retain(times, ok, &sk, keep);
	for (size_t i = 0; i < ok; i++)
		if (cb && (e = cb(ctx, &infos[i], keep[i])) != 0)
			goto out;
	for (size_t i = 0; i < ok; i++) {
		if (keep[i])
			continue;
		infos[(*forgotten)++] = infos[i];   /* infos[0..forgotten): the gone ones */
		if (dry_run)
			continue;
		if (unlinkat(vv_repo_manfd(r), infos[i].id, 0) < 0) {
			e = vv_err_from_errno(errno);
			goto out;
		}
	}
	if (!dry_run && *forgotten && fsync(vv_repo_manfd(r)) < 0) {
		e = vv_err_from_errno(errno);
		goto out;
	}
	e = do_prune ? prune(r, infos, (size_t)*forgotten, dry_run, pruned, pruned_bytes) : 0;
out:
	free(infos);
	free(times);
	free(keep);
	vv_repo_names_free(names, n);
	return e;
}
