#!/bin/bash
# t7038-readdir-cache-remote: a vv:// client changes a directory whose
# listing the server's own mount keeps (FOPEN_CACHE_DIR, docs/design.md
# "Directory listings"): the local listing follows at once (no sleep)
# after each remote create, unlink, rename within and across directories,
# mkdir and rmdir, with the names never looked up on the local mount (so
# only the invalidation of the directory's inode can drop the listing:
# the server sends it before it replies).
. "$(dirname "$0")/test-lib.sh"
. "$(dirname "$0")/remote-lib.sh"
vv_need_fuse

vv_listen_mount
vv_alice_coll
L=$M/coll
mkdir "$L/d" "$L/e"
for i in $(seq 1 200); do echo "$i" > "$L/d/f$i"; done
chown -R 1000:1000 "$L/d" "$L/e"
check "mounted" vv_rmount "vv://127.0.0.1:$P/coll" "$R" --key-file "$T/key" --pin "$FP"

# warm DIR...: list each twice on the local mount (kept by its kernel).
warm() { local d; for d in "$@"; do ls -a "$d" >/dev/null; ls -la "$d" >/dev/null; done; }
listed() { ls -a "$1" | grep -qxF "$2"; }
unlisted() { ls -a "$1" >/dev/null && ! ls -a "$1" | grep -qxF "$2"; }

warm "$L/d" "$L/e"
check "remote create" touch "$R/d/new"
check "create: listed locally at once" listed "$L/d" new
warm "$L/d"
check "remote unlink" rm "$R/d/f1"
check "unlink: gone locally at once" unlisted "$L/d" f1
warm "$L/d"
check "remote rename within d" mv "$R/d/f2" "$R/d/g2"
check "rename: new name listed locally" listed "$L/d" g2
check "rename: old name gone locally" unlisted "$L/d" f2
warm "$L/d" "$L/e"
check "remote rename d -> e" mv "$R/d/f3" "$R/e/f3"
check "rename out: gone from d locally" unlisted "$L/d" f3
check "rename in: listed in e locally" listed "$L/e" f3
warm "$L/d"
check "remote mkdir" mkdir "$R/d/sub"
check "mkdir: listed locally" listed "$L/d" sub
warm "$L/d"
check "remote rmdir" rmdir "$R/d/sub"
check "rmdir: gone locally" unlisted "$L/d" sub
warm "$L/d"
check "remote rename onto an existing name" mv -f "$R/d/f4" "$R/d/f5"
check "replaced: f4 gone locally" unlisted "$L/d" f4
check "replaced: f5 still listed" listed "$L/d" f5
check "the local listing is the remote one" \
	sh -c "[ \"\$(ls '$L/d')\" = \"\$(ls '$R/d')\" ] && [ \"\$(ls '$L/e')\" = \"\$(ls '$R/e')\" ]"
test_done
