/*
 * vault_trash_int.h - what the recycle bin's files share; nothing outside
 * vault_trash*.c includes it.  (What the rest of the vault calls is in
 * vault_int.h, "The recycle bin".)
 *
 *   vault_trash.c        removal into the trash, rm -rf's grouping,
 *                        settling, purge, restore, retention, the gate
 *   vault_trash_view.c   .trash as the mount shows it; rm and mv there
 *   vault_trash_verbs.c  trash.list, trash.restore, trash.purge
 *
 * The rules (who may see, purge or restore an item) and the two changes
 * (purge, restore) are stated once, in vault_trash.c; the view and the
 * verbs find the item, call these, and audit.  Everything here runs under
 * v->mu; rows are the caller's, nodes pinned by the caller.
 */
#ifndef VV_VAULT_TRASH_INT_H
#define VV_VAULT_TRASH_INT_H

#include <stdbool.h>
#include <stdint.h>

#include "vault_int.h"

/* Could id have read the item of row (node n) when it was removed: search
 * on every directory of its gate, read on n?  Root sees all. */
bool vault_trash_visible(struct vv_vault *v, const struct vv_ident *id,
			 const struct vv_trash_row *row, struct node *n);
/* Could id have removed it (the rules of rm, as things were then)?  The
 * remover could; so can root.  0, VV_EACCES or VV_EPERM. */
int vault_trash_may_remove(struct vv_vault *v, const struct vv_ident *id,
			   const struct vv_trash_row *row, struct node *n);
/* Purge the item of row for good (checks done): its row, its tree, and
 * the collection's key with a collection's last inode.  The caller audits
 * (vault_trash_audit_item, op "purge"). */
int vault_trash_purge_item(struct vv_vault *v, const struct vv_trash_row *row);
/* The audit record of op ("purge") on the item of row: detail is its
 * original path, then why if not NULL (c NULL: the daemon's own sweep). */
void vault_trash_audit_item(struct vv_vault *v, const struct vv_ctx *c, const char *op,
			    const struct vv_trash_row *row, int r, const char *why);
/* Move the item of row (node n; the checks on the item done) to
 * newparent/newname with the whole of its tree: checks c's right to
 * create there, the collection (VV_EXDEV) and the name (never over an
 * existing one: VV_EEXIST).  The caller audits ("restore"). */
int vault_trash_restore_to(struct vv_vault *v, const struct vv_ctx *c, const struct vv_trash_row *row,
			   struct node *n, uint64_t newparent, const char *newname);

#endif
