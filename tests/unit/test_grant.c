/*
 * test_grant.c - grants (vault_grant.c, the ACL rewriting in access.c):
 * the blobs and modes a grant writes are byte for byte what
 * `setfacl -R -m g:G:P -d -m g:G:P` writes on ext4 for the same tree;
 * revoke gives back exactly what was there; who may grant, revoke and
 * list; the admin privilege (chmod and ACLs in the collection, nothing
 * outside it, no chown).
 *
 * Needs root (setfacl on ext4 with foreign gids) and a temp dir on a file
 * system with ACLs; skipped otherwise.  Roles use the system groups
 * "daemon" and "bin" (any group that NSS knows would do).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <grp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "admin_int.h"
#include "tap.h"
#include "vault_int.h"
#include "vecvault/error.h"
#include "vecvault/vault.h"

#define PASS "grant unit test"

static char top[256], store[300], state[300], ext[300];
static struct vv_ctx root_c = { .id = { .uid = 0, .gid = 0 }, .umask = 0, .comm = "test" };
static uint32_t g_daemon, g_bin;

/* The tree both sides get: path, mode (0: symlink to "f"). */
static const struct { const char *path; uint32_t mode; } tree[] = {
	{ "c1", S_IFDIR | 0755 },
	{ "c1/f", S_IFREG | 0644 },
	{ "c1/x", S_IFREG | 0755 },
	{ "c1/ox", S_IFREG | 0641 },
	{ "c1/none", S_IFREG | 0000 },
	{ "c1/link", 0 },
	{ "c1/sub", S_IFDIR | 0750 },
	{ "c1/sub/g", S_IFREG | 0600 },
	{ "c1/sub/deep", S_IFDIR | 0700 },
	{ "c1/sub/deep/h", S_IFREG | 0664 },
	{ "c1/acl", S_IFREG | 0640 },
	{ "c1/dd", S_IFDIR | 0775 },
	{ "c1/nm", S_IFDIR | 0770 },
	{ "c2", S_IFDIR | 0700 },
	{ "c2/s", S_IFREG | 0600 },
};
#define NTREE (sizeof(tree) / sizeof(tree[0]))

static int sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int sh(const char *fmt, ...)
{
	char cmd[2048];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	return system(cmd);
}

static uint64_t vino(struct vv_vault *v, const char *rel)
{
	char p[4100];
	uint64_t ino = 0;

	snprintf(p, sizeof(p), "/%.4096s", rel);
	pthread_mutex_lock(&v->mu);
	if (vault_admin_resolve(v, p, &ino) < 0)
		ino = 0;
	pthread_mutex_unlock(&v->mu);
	return ino;
}

static int call(struct vv_vault *v, uint32_t uid, uint32_t ngroups, const uint32_t *groups,
		const char *verb, const struct vv_admin_arg *args, size_t nargs,
		struct vv_admin_reply *rep)
{
	struct vv_admin_req rq = { .peer = { .uid = uid, .gid = uid, .pid = 1, .ngroups = ngroups,
					     .groups = groups },
				   .client = "local", .verb = verb, .nargs = nargs, .args = args };

	return vv_admin_call(v, &rq, rep);
}

/* The racing rename of the swap test: /c1 and /c2 trade places (through
 * /cx), as anyone who may rename in the root could do between the
 * dispatcher's check and the verb (vv_admin_call's admin_between). */
struct swap {
	struct vv_vault *v;
	int done;                        /* swaps made, each of 3 renames ok */
};

static void swap_c1_c2(void *ctx)
{
	struct swap *sw = ctx;

	if (vv_vault_rename(sw->v, &root_c, VV_ROOT_INO, "c1", VV_ROOT_INO, "cx", 0) == 0 &&
	    vv_vault_rename(sw->v, &root_c, VV_ROOT_INO, "c2", VV_ROOT_INO, "c1", 0) == 0 &&
	    vv_vault_rename(sw->v, &root_c, VV_ROOT_INO, "cx", VV_ROOT_INO, "c2", 0) == 0)
		sw->done++;
}

/* Build the tree in both places. */
static void build(struct vv_vault *v)
{
	for (size_t i = 0; i < NTREE; i++) {
		char p[512], parent[512], *slash;
		struct vv_attr a;
		uint64_t pino;
		int r;

		snprintf(p, sizeof(p), "%s/%s", ext, tree[i].path);
		snprintf(parent, sizeof(parent), "%s", tree[i].path);
		slash = strrchr(parent, '/');
		if (slash)
			*slash = '\0';
		pino = slash ? vino(v, parent) : VV_ROOT_INO;
		if (tree[i].mode == 0) {
			r = symlink("f", p);
			r |= vv_vault_symlink(v, &root_c, pino, slash + 1, "f", &a);
		} else if (S_ISDIR(tree[i].mode)) {
			r = mkdir(p, tree[i].mode & 07777) | chmod(p, tree[i].mode & 07777);
			r |= vv_vault_mkdir(v, &root_c, pino, slash ? slash + 1 : tree[i].path,
					    tree[i].mode & 07777, &a);
		} else {
			struct vv_file *fh = NULL;
			FILE *f = fopen(p, "w");
			r = f ? fclose(f) | chmod(p, tree[i].mode & 07777) : -1;
			r |= vv_vault_create(v, &root_c, pino, slash + 1, tree[i].mode, O_WRONLY, &a, &fh);
			if (fh)
				vv_vault_release(v, fh);
		}
		if (r != 0)
			printf("# could not make %s\n", tree[i].path);
	}
}

/* Copy one ACL xattr from the ext4 tree into the vault (root sets it). */
static void copy_acl(struct vv_vault *v, const char *rel, const char *name)
{
	char p[512];
	uint8_t buf[1024];
	ssize_t n;

	snprintf(p, sizeof(p), "%s/%s", ext, rel);
	n = lgetxattr(p, name, buf, sizeof(buf));
	is_int(n > 0 ? vv_vault_setxattr(v, &root_c, vino(v, rel), name, buf, (size_t)n, 0) : -1,
	       0, "copy a prepared ACL into the vault");
}

/* Does every node of the vault carry the ext4 tree's mode and ACL bytes? */
static int compare(struct vv_vault *v, const char *what)
{
	int bad = 0;

	for (size_t i = 0; i < NTREE; i++) {
		static const char *const names[] = { "system.posix_acl_access",
						     "system.posix_acl_default" };
		char p[512];
		struct stat st;
		struct vv_attr a;
		uint64_t ino = vino(v, tree[i].path);

		snprintf(p, sizeof(p), "%s/%s", ext, tree[i].path);
		if (lstat(p, &st) < 0 || !ino || vv_vault_getattr(v, &root_c, ino, &a) < 0) {
			bad++;
			continue;
		}
		if (st.st_mode != a.mode) {
			printf("# %s: %s: mode %o on ext4, %o in the vault\n", what, tree[i].path,
				 st.st_mode, a.mode);
			bad++;
		}
		if (S_ISLNK(st.st_mode))
			continue;
		for (int k = 0; k < 2; k++) {
			uint8_t eb[1024], vb[1024];
			ssize_t en = lgetxattr(p, names[k], eb, sizeof(eb));
			ssize_t vn = vv_vault_getxattr(v, &root_c, ino, names[k], vb, sizeof(vb));

			if (en < 0)
				en = errno == ENODATA ? VV_ENODATA : -1000;
			if (en != vn || (en > 0 && memcmp(eb, vb, (size_t)en) != 0)) {
				printf("# %s: %s: %s differs (ext4 %zd bytes, vault %zd)\n", what,
					 tree[i].path, names[k], en, vn);
				bad++;
			}
		}
	}
	return bad;
}

static void test_pure(void)
{
	uint8_t *base = NULL, *out = NULL, *back = NULL;
	size_t bl = 0, ol = 0, kl = 0;
	uint32_t perms = 0;
	bool minimal = true;

	is_int(vv_acl_minimal(NULL, 0, 0754, &base, &bl), 0, "minimal ACL from a mode");
	is_int((int)bl, 4 + 3 * 8, "three entries");
	is_int(vv_acl_set_group(base, bl, 42, 6, &out, &ol, &perms, &minimal), 0, "add group:42:rw-");
	ok(!minimal, "with a named entry it is not minimal");
	is_int((int)perms, 0774, "mask = union of group class (r-x | rw-)");
	is_int(vv_acl_group_perm(out, ol, 42), 6, "the entry reads back");
	is_int(vv_acl_group_perm(out, ol, 43), VV_ENODATA, "other gids: none");
	is_int(vv_acl_set_group(out, ol, 42, -1, &back, &kl, &perms, &minimal), 0, "remove it");
	ok(minimal, "back to base entries only");
	is_int((int)perms, 0754, "and to the mode's bits");
	ok(kl == bl && memcmp(back, base, bl) == 0, "byte for byte the minimal ACL");
	free(back);
	is_int(vv_acl_set_group(out, ol, 42, 8, &back, &kl, &perms, &minimal), VV_EINVAL,
	       "perm out of range: EINVAL");
	is_int(vv_acl_set_group(out, ol, 0xFFFFFFFFu, 4, &back, &kl, &perms, &minimal), VV_EINVAL,
	       "undefined gid: EINVAL");
	is_int(vv_acl_set_group((const uint8_t *)"\2\0\0\0", 4, 42, 4, &back, &kl, &perms, &minimal),
	       VV_EINVAL, "an empty ACL blob: EINVAL");
	free(base);
	free(out);
}

int main(void)
{
	struct vv_vault_opts o = { .flags = VV_VAULT_ALLOW_TEST_KDF | VV_VAULT_NO_AUDIT,
				   .state_dir = state };
	const char *tmp = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
	struct vv_admin_reply rep;
	struct vv_vault *v = NULL;
	struct group *gr;
	uint32_t adm_groups[1], none[1] = { 4242 };
	char probe[400];

	if (geteuid() != 0)
		tap_skip_all("needs root (setfacl with foreign gids on ext4)");
	if (!(gr = getgrnam("daemon")))
		tap_skip_all("no group 'daemon'");
	g_daemon = gr->gr_gid;
	if (!(gr = getgrnam("bin")))
		tap_skip_all("no group 'bin'");
	g_bin = gr->gr_gid;
	adm_groups[0] = g_daemon;
	snprintf(top, sizeof(top), "%s/vv-grant-XXXXXX", tmp);
	if (!mkdtemp(top))
		tap_skip_all("cannot make a temp dir");
	snprintf(store, sizeof(store), "%s/store", top);
	snprintf(state, sizeof(state), "%s/state", top);
	snprintf(ext, sizeof(ext), "%s/ext", top);
	snprintf(probe, sizeof(probe), "%s/probe", top);
	if (mkdir(ext, 0755) < 0 || mkdir(probe, 0755) < 0 ||
	    sh("setfacl -m g:%u:r '%s' 2>/dev/null", g_daemon, probe) != 0) {
		sh("rm -rf '%s'", top);
		tap_skip_all("no setfacl, or no ACLs on the temp dir's file system");
	}

	test_pure();

	is_int(vv_vault_create_store(store, PASS, strlen(PASS), VV_KDF_PROFILE_TEST,
				     VV_VAULT_ALLOW_TEST_KDF, 1000, 1000, state), 0, "create a store owned by 1000");
	is_int(vv_vault_open(store, PASS, strlen(PASS), &o, &v), 0, "open it");
	build(v);

	/* Prepared ACLs: a named user entry, a default ACL, a narrowed mask. */
	is_int(sh("cd '%s' && setfacl -m u:1234:rw c1/acl && setfacl -d -m u:1234:rx c1/dd && "
		  "setfacl -m u:1234:rwx c1/nm && chmod g-w c1/nm", ext), 0, "prepare ACLs on ext4");
	copy_acl(v, "c1/acl", "system.posix_acl_access");
	copy_acl(v, "c1/dd", "system.posix_acl_default");
	copy_acl(v, "c1/nm", "system.posix_acl_access");
	{
		struct vv_setattr sa = { .valid = VV_SET_MODE, .mode = 0750 };
		struct vv_attr a;
		is_int(vv_vault_setattr(v, &root_c, vino(v, "c1/nm"), &sa, &a), 0, "chmod g-w c1/nm");
	}
	is_int(compare(v, "before"), 0, "the trees start equal");

	vv_admin_reply_init(&rep);
	is_int(call(v, 1000, 0, NULL, "role.create", (struct vv_admin_arg[]){ { "name", "daemon" } },
		    1, &rep), 0, "role daemon");
	is_int(call(v, 1000, 0, NULL, "role.create", (struct vv_admin_arg[]){ { "name", "bin" } },
		    1, &rep), 0, "role bin");

	/* grant daemon readonly /c1 == setfacl -R -m g:daemon:rX -d -m g:daemon:rX c1 */
	is_int(call(v, 1000, 0, NULL, "grant", (struct vv_admin_arg[]){
		    { "role", "daemon" }, { "perms", "readonly" }, { "path", "/c1" } }, 3, &rep), 0,
	       "owner grants daemon readonly on /c1");
	ok(rep.body && strstr(rep.body, "granted daemon"), "the reply says what was done");
	is_int(sh("setfacl -R -m g:%u:rX -d -m g:%u:rX '%s/c1'", g_daemon, g_daemon, ext), 0,
	       "setfacl the same on ext4");
	is_int(compare(v, "readonly"), 0, "grant readonly writes what setfacl writes");

	/* A second role on a subtree, explicit letters. */
	is_int(call(v, 1000, 0, NULL, "grant", (struct vv_admin_arg[]){
		    { "role", "bin" }, { "perms", "rwx" }, { "path", "/c1/sub" } }, 3, &rep), 0,
	       "grant bin rwx on /c1/sub");
	is_int(sh("setfacl -R -m g:%u:rwx -d -m g:%u:rwx '%s/c1/sub'", g_bin, g_bin, ext), 0, "setfacl");
	is_int(compare(v, "rwx"), 0, "a second role on a subtree: same as setfacl");

	/* Re-granting changes the entry in place. */
	is_int(call(v, 1000, 0, NULL, "grant", (struct vv_admin_arg[]){
		    { "role", "daemon" }, { "perms", "readwrite" }, { "path", "/c1" } }, 3, &rep), 0,
	       "grant daemon readwrite on /c1 (was readonly)");
	is_int(sh("setfacl -R -m g:%u:rwX -d -m g:%u:rwX '%s/c1'", g_daemon, g_daemon, ext), 0, "setfacl");
	is_int(compare(v, "readwrite"), 0, "re-grant: same as setfacl");

	/* Files created after a grant inherit it (default ACL). */
	{
		struct vv_ctx u = { .id = { .uid = 0, .gid = 0 }, .umask = 022 };
		struct vv_file *fh = NULL;
		struct vv_attr a;
		uint8_t b[256];
		is_int(vv_vault_create(v, &u, vino(v, "c1/sub"), "new", S_IFREG | 0644, O_WRONLY, &a, &fh),
		       0, "create a file after the grant");
		vv_vault_release(v, fh);
		ssize_t n = vv_vault_getxattr(v, &root_c, a.ino, "system.posix_acl_access", b, sizeof(b));
		ok(n > 0 && vv_acl_group_perm(b, (size_t)n, g_daemon) == 7 &&
		   vv_acl_group_perm(b, (size_t)n, g_bin) == 7, "it inherits both roles' entries");
		is_int(vv_vault_unlink(v, &u, vino(v, "c1/sub"), "new"), 0, "remove it again");
	}

	/* Revoke both: back to exactly the start. */
	is_int(call(v, 1000, 0, NULL, "revoke", (struct vv_admin_arg[]){
		    { "role", "daemon" }, { "path", "/c1" } }, 2, &rep), 0, "revoke daemon on /c1");
	is_int(call(v, 1000, 0, NULL, "revoke", (struct vv_admin_arg[]){
		    { "role", "bin" }, { "path", "/c1" } }, 2, &rep), 0, "revoke bin on /c1");
	sh("rm -rf '%s/c1' '%s/c2'", ext, ext);
	{
		/* The original tree, rebuilt on ext4 alone (setfacl -x would keep
		 * masks: revoke goes further, on purpose). */
		for (size_t i = 0; i < NTREE; i++) {
			char p[512];
			snprintf(p, sizeof(p), "%s/%s", ext, tree[i].path);
			if (tree[i].mode == 0)
				(void)!symlink("f", p);
			else if (S_ISDIR(tree[i].mode))
				(void)!(mkdir(p, 0700) | chmod(p, tree[i].mode & 07777));
			else {
				FILE *f = fopen(p, "w");
				if (f)
					fclose(f);
				(void)!chmod(p, tree[i].mode & 07777);
			}
		}
		/* Except one thing, documented: a mask narrowed by chmod (c1/nm)
		 * was recomputed by the grant, as setfacl -m does, and stays
		 * the union of the group class after the revoke. */
		sh("cd '%s' && setfacl -m u:1234:rw c1/acl && setfacl -d -m u:1234:rx c1/dd && "
		   "setfacl -m u:1234:rwx c1/nm", ext);
	}
	is_int(compare(v, "revoked"), 0, "grant then revoke restores every mode and ACL exactly");

	/* Refusals, each with a message naming what is wrong. */
	is_int(call(v, 65534, 0, NULL, "grant", (struct vv_admin_arg[]){
		    { "role", "daemon" }, { "perms", "readonly" }, { "path", "/c1" } }, 3, &rep),
	       VV_EACCES, "nobody may not grant");
	is_int(call(v, 65534, 0, NULL, "revoke", (struct vv_admin_arg[]){
		    { "role", "daemon" }, { "path", "/c1" } }, 2, &rep), VV_EACCES, "nor revoke");
	is_int(call(v, 1000, 0, NULL, "grant", (struct vv_admin_arg[]){
		    { "role", "daemon" }, { "perms", "readonly" }, { "path", "/" } }, 3, &rep),
	       VV_EINVAL, "a grant on the root is refused");
	ok(strstr(rep.msg, "root") != NULL, "saying so");
	is_int(call(v, 1000, 0, NULL, "grant", (struct vv_admin_arg[]){
		    { "role", "daemon" }, { "perms", "readonly" }, { "path", "/c1/link" } }, 3, &rep),
	       VV_EINVAL, "a grant on a symlink is refused");
	is_int(call(v, 1000, 0, NULL, "grant", (struct vv_admin_arg[]){
		    { "role", "nosuchrole" }, { "perms", "readonly" }, { "path", "/c1" } }, 3, &rep),
	       VV_ENOENT, "an unknown role");
	ok(strstr(rep.msg, "nosuchrole") != NULL, "named in the message");
	is_int(call(v, 1000, 0, NULL, "grant", (struct vv_admin_arg[]){
		    { "role", "daemon" }, { "perms", "rwq" }, { "path", "/c1" } }, 3, &rep),
	       VV_EINVAL, "bad permission letters");
	is_int(call(v, 1000, 0, NULL, "grant", (struct vv_admin_arg[]){
		    { "role", "daemon" }, { "perms", "admin" }, { "path", "/c1/sub" } }, 3, &rep),
	       VV_EINVAL, "admin on a subdirectory is refused (it is a collection's)");
	is_int(call(v, 1000, 0, NULL, "grant", (struct vv_admin_arg[]){
		    { "role", "daemon" }, { "perms", "readonly" }, { "path", "/c1/nope" } }, 3, &rep),
	       VV_ENOENT, "a missing path");
	is_int(call(v, 1000, 0, NULL, "grant", (struct vv_admin_arg[]){
		    { "role", "daemon" }, { "perms", "readonly" }, { "path", "/c1" },
		    { "path", "/c1/nope" } }, 4, &rep), VV_ENOENT, "one bad path of two");
	ok(vv_vault_getxattr(v, &root_c, vino(v, "c1"), "system.posix_acl_access", NULL, 0) ==
	   VV_ENODATA, "and nothing was changed on the good one");

	/* A node that cannot be rewritten (a damaged stored ACL) stops the
	 * grant, which names it and changes nothing anywhere. */
	{
		static const uint8_t bad[] = { 2, 0, 0, 0, 0x77, 0, 7, 0, 1, 0, 0, 0 };
		uint64_t gi = vino(v, "c1/sub/g");
		struct node *n;
		pthread_mutex_lock(&v->mu);
		is_int(vault_txn(v) | vv_meta_xattr_set(v->meta, gi, "system.posix_acl_access", bad,
							 sizeof(bad)), 0, "damage c1/sub/g's stored ACL");
		if ((n = vault_node_find(v, gi)))
			n->acl_loaded = false;
		pthread_mutex_unlock(&v->mu);
		is_int(call(v, 1000, 0, NULL, "grant", (struct vv_admin_arg[]){
			    { "role", "daemon" }, { "perms", "readonly" }, { "path", "/c1" } }, 3, &rep),
		       VV_EINVAL, "a grant over it fails");
		ok(strstr(rep.msg, "/c1/sub/g") && strstr(rep.msg, "nothing was changed"),
		   "naming the node, and saying nothing changed");
		ok(vv_vault_getxattr(v, &root_c, vino(v, "c1"), "system.posix_acl_access", NULL, 0) ==
		   VV_ENODATA && vv_vault_getxattr(v, &root_c, vino(v, "c1/f"),
						   "system.posix_acl_access", NULL, 0) == VV_ENODATA,
		   "and nodes before it in the walk are untouched");
		pthread_mutex_lock(&v->mu);
		is_int(vault_txn(v) | vv_meta_xattr_del(v->meta, gi, "system.posix_acl_access"), 0,
		       "repair it");
		if ((n = vault_node_find(v, gi)))
			n->acl_loaded = false;
		pthread_mutex_unlock(&v->mu);
		is_int(compare(v, "after a failed grant"), 0, "the trees are still equal");
	}

	/* The admin privilege: uid 1001 in group daemon. */
	is_int(call(v, 1000, 0, NULL, "grant", (struct vv_admin_arg[]){
		    { "role", "daemon" }, { "perms", "admin" }, { "path", "/c1" } }, 3, &rep), 0,
	       "grant daemon admin on /c1");
	is_int(call(v, 1001, 1, adm_groups, "grant", (struct vv_admin_arg[]){
		    { "role", "bin" }, { "perms", "readonly" }, { "path", "/c1/sub" } }, 3, &rep), 0,
	       "a member of an admin role grants inside her collection");
	is_int(call(v, 1001, 1, adm_groups, "revoke", (struct vv_admin_arg[]){
		    { "role", "bin" }, { "path", "/c1/sub" } }, 2, &rep), 0, "and revokes");
	is_int(call(v, 1001, 1, adm_groups, "grant", (struct vv_admin_arg[]){
		    { "role", "bin" }, { "perms", "readonly" }, { "path", "/c2" } }, 3, &rep),
	       VV_EACCES, "but not on another collection");
	{
		/* Authorized on /c1, then /c1 is renamed away and /c2 put in its
		 * place before the verb runs: the change must not reach c2. */
		struct swap sw = { .v = v };
		char before[4096] = "", after[4096] = "", out[160];
		uint64_t c1 = vino(v, "c1"), c2 = vino(v, "c2");
		const char *verbs[] = { "grant", "revoke" };

		is_int(call(v, 1000, 0, NULL, "grants", (struct vv_admin_arg[]){ { "path", "/c2" } }, 1,
			    &rep), 0, "grants /c2 before");
		snprintf(before, sizeof(before), "%s", rep.body ? rep.body : "");
		for (size_t k = 0; k < 2; k++) {
			v->admin_between = swap_c1_c2;
			v->admin_between_ctx = &sw;
			snprintf(out, sizeof(out), "%s on /c1 by its admin, /c2 renamed onto /c1 "
				 "after the check: EACCES", verbs[k]);
			is_int(call(v, 1001, 1, adm_groups, verbs[k], (struct vv_admin_arg[]){
				    { "role", "daemon" }, { "path", "/c1" }, { "perms", "rwX" } }, 3, &rep),
			       VV_EACCES, out);
			v->admin_between = NULL;
			ok(strstr(rep.msg, "/c1: you hold no admin role") != NULL, "the scope's words");
			is_int(sw.done, 1, "the hook swapped them");
			ok(vino(v, "c1") == c2 && vino(v, "c2") == c1, "c2 is at /c1 now");
			is_int(call(v, 1000, 0, NULL, "grants", (struct vv_admin_arg[]){ { "path", "/c1" } },
				    1, &rep), 0, "grants on it");
			snprintf(after, sizeof(after), "%s", rep.body ? rep.body : "");
			is_str(after, before, "c2's grants did not change");
			swap_c1_c2(&sw);
			ok(sw.done == 2 && vino(v, "c1") == c1, "swapped back");
			sw.done = 0;
		}
		v->admin_between = swap_c1_c2;
		v->admin_between_ctx = &sw;
		is_int(call(v, 1000, 0, NULL, "grant", (struct vv_admin_arg[]){ { "role", "bin" },
			    { "perms", "readonly" }, { "path", "/c1" } }, 3, &rep), 0,
		       "the owner's grant on /c1 after the same swap goes to what /c1 names then");
		v->admin_between = NULL;
		swap_c1_c2(&sw);
		is_int(call(v, 1000, 0, NULL, "revoke", (struct vv_admin_arg[]){ { "role", "bin" },
			    { "path", "/c2" } }, 2, &rep), 0, "revoked there");
		is_int(call(v, 1000, 0, NULL, "grants", (struct vv_admin_arg[]){ { "path", "/c2" } }, 1,
			    &rep), 0, "grants /c2");
		is_str(rep.body ? rep.body : "", before, "as before");
	}
	is_int(call(v, 1001, 1, adm_groups, "role.create", (struct vv_admin_arg[]){
		    { "name", "users" } }, 1, &rep), VV_EACCES, "nor vault-wide verbs");
	is_int(call(v, 1001, 1, adm_groups, "grant", (struct vv_admin_arg[]){
		    { "role", "bin" }, { "perms", "readonly" }, { "path", "/c1/nope" } }, 3, &rep),
	       VV_ENOENT, "an admin is told a path is missing in her collection");
	is_int(call(v, 1001, 1, adm_groups, "grant", (struct vv_admin_arg[]){
		    { "role", "bin" }, { "perms", "readonly" }, { "path", "/c2/nope" } }, 3, &rep),
	       VV_EACCES, "elsewhere missing and present paths look the same (EACCES)");
	is_int(call(v, 65534, 0, NULL, "revoke", (struct vv_admin_arg[]){
		    { "role", "bin" }, { "path", "/nosuchcoll/x" } }, 2, &rep),
	       VV_EACCES, "nobody learns nothing from a missing collection either");
	is_int(call(v, 1001, 1, none, "grant", (struct vv_admin_arg[]){
		    { "role", "bin" }, { "perms", "readonly" }, { "path", "/c1" } }, 3, &rep),
	       VV_EACCES, "a non-member may not grant");
	{
		struct vv_ctx carol = { .id = { .uid = 1001, .gid = 1001, .ngroups = 1,
						.groups = adm_groups }, .umask = 022 };
		struct vv_ctx other = { .id = { .uid = 1002, .gid = 1002, .ngroups = 1, .groups = none },
					.umask = 022 };
		struct vv_setattr sa = { .valid = VV_SET_MODE, .mode = 0600 };
		struct vv_setattr ch = { .valid = VV_SET_UID, .uid = 1001 };
		struct vv_attr a;
		uint8_t *blob = NULL;
		size_t bl = 0;

		is_int(vv_vault_setattr(v, &carol, vino(v, "c1/f"), &sa, &a), 0,
		       "admin chmods a file she does not own in her collection");
		is_int((int)(a.mode & 07777), 0600, "the mode changed");
		is_int(vv_vault_setattr(v, &other, vino(v, "c1/f"), &sa, &a), VV_EPERM,
		       "a non-member may not");
		is_int(vv_vault_setattr(v, &carol, vino(v, "c2/s"), &sa, &a), VV_EPERM,
		       "nor may she outside her collection");
		is_int(vv_vault_setattr(v, &carol, vino(v, "c1/f"), &ch, &a), VV_EPERM,
		       "chown stays root's");
		sa.mode = 04755;
		is_int(vv_vault_setattr(v, &carol, vino(v, "c1/x"), &sa, &a), 0, "admin chmod 4755");
		is_int((int)(a.mode & 07777), 0755, "but she cannot add a setuid bit to root's file");
		sa.mode = 0600;
		is_int(vv_acl_from_text("u::rw-,g::r--,g:4242:r--,m::r--,o::---", &blob, &bl), 0, "an ACL");
		is_int(vv_vault_setxattr(v, &carol, vino(v, "c1/f"), "system.posix_acl_access", blob, bl, 0),
		       0, "admin sets an ACL on a file she does not own");
		is_int(vv_vault_setxattr(v, &other, vino(v, "c1/f"), "system.posix_acl_access", blob, bl, 0),
		       VV_EPERM, "a non-member may not");
		is_int(vv_vault_setxattr(v, &carol, vino(v, "c2/s"), "system.posix_acl_access", blob, bl, 0),
		       VV_EPERM, "nor may she outside her collection");
		is_int(vv_vault_removexattr(v, &carol, vino(v, "c1/f"), "system.posix_acl_access"), 0,
		       "admin removes it");
		free(blob);

		/* grants: anyone, filtered by the access check. */
		is_int(call(v, 1001, 1, adm_groups, "grants", (struct vv_admin_arg[]){
			    { "path", "/c1" } }, 1, &rep), 0, "grants /c1");
		ok(rep.body && strstr(rep.body, "daemon") && strstr(rep.body, "yes"),
		   "lists daemon with admin");
		is_int(call(v, 1001, 1, adm_groups, "grants", (struct vv_admin_arg[]){
			    { "path", "/c1" }, { "json", "1" } }, 2, &rep), 0, "grants --json");
		ok(rep.body && strstr(rep.body, "\"role\":\"daemon\"") &&
		   strstr(rep.body, "\"admin\":true"), "json names the role and admin");
		is_int(call(v, 65534, 0, NULL, "grants", (struct vv_admin_arg[]){
			    { "path", "/c2/s" } }, 1, &rep), VV_EACCES,
		       "grants below a directory nobody may search: EACCES");

		/* Revoke drops the privilege with the entries. */
		is_int(call(v, 1000, 0, NULL, "revoke", (struct vv_admin_arg[]){
			    { "role", "daemon" }, { "path", "/c1" } }, 2, &rep), 0, "revoke daemon on /c1");
		sa.mode = 0644;
		is_int(vv_vault_setattr(v, &carol, vino(v, "c1/f"), &sa, &a), VV_EPERM,
		       "after revoke she may no longer chmod");
		is_int(call(v, 1001, 1, adm_groups, "grant", (struct vv_admin_arg[]){
			    { "role", "bin" }, { "perms", "readonly" }, { "path", "/c1" } }, 3, &rep),
		       VV_EACCES, "nor grant");
	}

	/* The privilege needs the entry: admin then setfacl -x by the owner. */
	is_int(call(v, 1000, 0, NULL, "grant", (struct vv_admin_arg[]){
		    { "role", "daemon" }, { "perms", "admin" }, { "path", "/c1" } }, 3, &rep), 0,
	       "grant admin again");
	{
		uint8_t *blob = NULL;
		size_t bl = 0;
		struct vv_ctx owner = { .id = { .uid = 0 } };
		is_int(vv_acl_from_text("u::rwx,g::r-x,o::r-x", &blob, &bl), 0, "a minimal ACL");
		is_int(vv_vault_setxattr(v, &owner, vino(v, "c1"), "system.posix_acl_access", blob, bl, 0),
		       0, "the owner replaces the collection's ACL (no daemon entry)");
		free(blob);
	}
	is_int(call(v, 1001, 1, adm_groups, "grant", (struct vv_admin_arg[]){
		    { "role", "bin" }, { "perms", "readonly" }, { "path", "/c1" } }, 3, &rep),
	       VV_EACCES, "then the role administers nothing");

	vv_admin_reply_release(&rep);
	is_int(vv_vault_close(v), 0, "close");
	is_int(vv_vault_open(store, PASS, strlen(PASS), &o, &v), 0, "reopen");
	vv_admin_reply_init(&rep);
	is_int(call(v, 1000, 0, NULL, "grants", (struct vv_admin_arg[]){ { "path", "/c1" } }, 1, &rep),
	       0, "grants after reopen");
	ok(rep.body && strstr(rep.body, "daemon"), "the default ACL's daemon entry is still there");

	/* role.delete refuses while granted; --revoke-all revokes everywhere first. */
	is_int(call(v, 1000, 0, NULL, "grant", (struct vv_admin_arg[]){
		    { "role", "bin" }, { "perms", "rX" }, { "path", "/c1/sub" }, { "path", "/c2" } }, 4,
		    &rep), 0, "grant bin on /c1/sub and /c2");
	is_int(call(v, 1000, 0, NULL, "role.delete", (struct vv_admin_arg[]){ { "name", "bin" } }, 1,
		    &rep), VV_EBUSY, "role.delete while granted: EBUSY");
	ok(strstr(rep.msg, "--revoke-all") != NULL, "the message offers --revoke-all");
	is_int(call(v, 1000, 0, NULL, "role.delete", (struct vv_admin_arg[]){ { "name", "bin" },
		    { "revoke_all", "1" } }, 2, &rep), 0, "role.delete --revoke-all");
	ok(rep.body && strstr(rep.body, "deleted"), "says it deleted the role");
	is_int(call(v, 1000, 0, NULL, "grants", (struct vv_admin_arg[]){ { "path", "/c2" } }, 1, &rep),
	       0, "grants on /c2");
	ok(rep.body && !strstr(rep.body, "bin"), "bin is granted nowhere any more");
	is_int(call(v, 1000, 0, NULL, "role.list", NULL, 0, &rep), 0, "role.list");
	ok(rep.body && !strstr(rep.body, "bin "), "and is no longer a role");
	vv_admin_reply_release(&rep);
	is_int(vv_vault_close(v), 0, "close");
	sh("rm -rf '%s'", top);
	return tap_done();
}
