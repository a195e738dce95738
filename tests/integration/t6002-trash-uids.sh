#!/bin/bash
# t6002-trash-uids: the trash as other users see it, and attacks on it by
# unprivileged local users (nobody, u1000, u1001): no way to read, find,
# restore or purge another user's trashed secret through .trash by any
# handle or name (O_PATH, mode 3, xattrs, readlink, hard links and renames
# into .trash, guessed names); restore only where the mover could create,
# purge only what the user could have removed; the CLI filters the same.
. "$(dirname "$0")/test-lib.sh"
vv_need_fuse
export -f as_u1000 as_u1001 as_nobody

S=$T/store
M=$T/mnt
vv_init "$S" >/dev/null 2>&1
LOG=$(vv_audit_log "$S")
vv_mount "$S" "$M"

mkdir -m 755 "$M/c"
chown 1000:1000 "$M/c"
mkdir -m 1777 "$M/shared"
as_u1000 sh -c "echo top-secret > '$M/c/secret'; chmod 600 '$M/c/secret'"
as_u1000 sh -c "echo public > '$M/c/public'; chmod 644 '$M/c/public'"
as_u1000 sh -c "mkdir -m 700 '$M/c/priv' && ln -s /etc/hostname '$M/c/priv/link' && echo x > '$M/c/priv/f'"
as_u1000 sh -c "echo mine > '$M/shared/u1000-file'"
as_u1001 sh -c "echo theirs > '$M/shared/u1001-file'"
check "u1000 removes its files" as_u1000 sh -c "rm '$M/c/secret' '$M/c/public' && rm -r '$M/c/priv'"
check "u1001 and u1000 remove in the sticky /shared" bash -c "as_u1000 rm '$M/shared/u1000-file' && as_u1001 rm '$M/shared/u1001-file'"

# visibility
check "u1000 sees all five (the 0644 u1001-file too)" bash -c "test \"\$(as_u1000 ls '$M/.trash/files' | wc -l)\" -eq 5"
check "u1001 sees what it could read: not secret, not priv" bash -c "test \"\$(as_u1001 ls '$M/.trash/files' | sort | tr '\n' ' ')\" = 'public u1000-file u1001-file '"
check "nobody the same" bash -c "test \"\$(as_nobody ls '$M/.trash/files' | sort | tr '\n' ' ')\" = 'public u1000-file u1001-file '"
check "root sees all" bash -c "test \"\$(ls '$M/.trash/files' | wc -l)\" -eq 5"
for who in nobody u1001; do
	want $who ENOENT stat "$M/.trash/files/secret"
	want $who ENOENT read "$M/.trash/files/secret"
	want $who ENOENT getxattr "$M/.trash/files/secret" user.x
	want $who ENOENT stat "$M/.trash/info/secret.trashinfo"
	want $who ENOENT read "$M/.trash/info/secret.trashinfo"
	want $who ENOENT listdir "$M/.trash/files/priv"
	want $who ENOENT readlink "$M/.trash/files/priv/link"
	want $who ENOENT unlink "$M/.trash/files/secret"
	want $who ENOENT rename "$M/.trash/files/secret" "$M/shared/stolen"
	want $who ENOENT link "$M/.trash/files/secret" "$M/shared/stolen"
done
cat > "$T/open.py" <<'PY'
import errno, os, sys
path, how = sys.argv[1], sys.argv[2]
flags = {"path": os.O_PATH, "mode3": 3, "rdonly": os.O_RDONLY}[how]
try:
    fd = os.open(path, flags)
    print("OPENED")
    os.close(fd)
except OSError as e:
    print(errno.errorcode[e.errno])
PY
for how in path mode3 rdonly; do
	check "u1001: open(O_$how) of the trashed secret fails" bash -c "test \"\$(as_u1001 $PY '$T/open.py' '$M/.trash/files/secret' $how)\" = ENOENT"
done
check "the probes are audited as refused lookups" vv_audit_has "$LOG" op=lookup uid=1001 result=ENOENT path=/.trash/files/secret 'detail~hidden'
check "u1000 reads its secret in the trash" bash -c "test \"\$(as_u1000 cat '$M/.trash/files/secret')\" = top-secret"

# the trash is read-only for everyone
want u1001 EROFS write "$M/.trash/files/new"
as_u1001 sh -c "echo bait > '$M/shared/bait'"
want u1001 EROFS link "$M/shared/bait" "$M/.trash/files/bait"
want u1001 EROFS rename "$M/shared/bait" "$M/.trash/files/bait"
want u1001 EROFS rename "$M/shared/bait" "$M/.trash/info/bait"
want u1000 EROFS chmod "$M/.trash/files/secret" 644
want u1000 EROFS write "$M/.trash/files/secret"

# restore and purge: only what one could have removed, only where one may create
want u1001 EACCES rename "$M/.trash/files/public" "$M/c/public"
want u1001 EACCES unlink "$M/.trash/files/public"
want nobody EACCES unlink "$M/.trash/files/public"
want u1001 EPERM unlink "$M/.trash/files/u1000-file"
want u1001 OK rename "$M/.trash/files/u1001-file" "$M/shared/u1001-file"
mkdir -m 755 "$M/c/rootonly"
want u1000 EACCES rename "$M/.trash/files/secret" "$M/c/rootonly/secret"
want u1000 EXDEV rename "$M/.trash/files/secret" "$M/shared/secret"
want u1000 OK rename "$M/.trash/files/secret" "$M/c/secret"
check "the secret is back with its mode" test "$(stat -c %a:%u "$M/c/secret")" = 600:1000

# the CLI, as other users
check "u1001: trash list hides u1000's private items" bash -c "! as_u1001 '$VV_BIN' trash list '$M' | grep -q priv"
check "u1001: trash list shows public" bash -c "as_u1001 '$VV_BIN' trash list '$M' | grep -q /c/public"
expect_fail "u1001: trash restore of /c/priv refused" as_u1001 "$VV_BIN" trash restore "$M" /c/priv
expect_fail "u1001: trash purge of /c/public refused" as_u1001 "$VV_BIN" trash purge "$M" /c/public
check "u1001: trash purge --all purges nothing of u1000's" as_u1001 "$VV_BIN" trash purge "$M" --all
check "so public is still there" test -e "$M/.trash/files/public"
check "u1000: trash restore /c/priv" as_u1000 "$VV_BIN" trash restore "$M" /c/priv
check "the tree is back" test "$(readlink "$M/c/priv/link")" = /etc/hostname
check "u1000: trash purge --all" as_u1000 "$VV_BIN" trash purge "$M" --all
check "root's view is empty" test -z "$(ls "$M/.trash/files")"
test_done
