#!/bin/bash
# t1035-rename-cache: a rename to another directory moves what the kernel
# cached of the entry with it (d_move, d_exchange keep the timeouts), and
# the kernel checks no search permission on a cached path.  Entries below
# a directory every user may search get long timeouts (docs/design.md
# "Node cache and kernel caches"); main dropped them only when the
# *source* of a rename was a directory.  So after root moved a public
# file into a 0700 directory (mv, or RENAME_EXCHANGE with a file there),
# or exchanged a file of the 0700 directory with a public directory,
# nobody and u1000 - who had walked the public side - read the file by its
# new path: nothing asked the daemon but the open of the file itself.
# Cases, each warmed by the attackers first and checked at once (no
# sleep):
#  1. a file of the 0700 directory <-> a public directory: stat, read and
#     listing below it refused to nobody and u1000, root reads, the refused
#     lookups audited under the attackers' uids, no open by nobody, also of
#     a file root creates there afterwards (the daemon's own cached search
#     decision);
#  2. the same with the arguments the other way round (the directory as
#     source, which main handled);
#  3. a parent whose ACL denies u1000 search (setfacl u:1000:---): u1000
#     refused, nobody still reads;
#  4. two directories exchanged across parents, the side that came out
#     public still readable by nobody (nothing over-refused);
#  5. mv of a public file into the 0700 directory, and into the ACL'd one;
#  6. two files exchanged across the parents, named either way round: the
#     one that went in refused, the one that came out read by nobody.
. "$(dirname "$0")/test-lib.sh"
vv_need_fuse

S=$T/store
M=$T/mnt
vv_init "$S" >/dev/null 2>&1
LOG=$(vv_audit_log "$S")
vv_mount "$S" "$M"
has() { vv_audit_has "$LOG" "$@"; }

# xchg A B: renameat2(A, B, RENAME_EXCHANGE) as root.
xchg() {
	"$PY" - "$1" "$2" <<'PY'
import ctypes, os, sys
libc = ctypes.CDLL(None, use_errno=True)
if libc.renameat2(-100, sys.argv[1].encode(), -100, sys.argv[2].encode(), 2):
    e = ctypes.get_errno()
    sys.exit("renameat2 %s %s: %s" % (sys.argv[1], sys.argv[2], os.strerror(e)))
PY
}

# warm DIR WHO...: each walks DIR, stats and reads its file f, so the
# kernel holds the entries with the timeouts a public tree gets.
warm() {
	local d=$1 who
	shift
	for who in "$@"; do
		"as_$who" ls -lR "$d" >/dev/null 2>&1 || true
		"as_$who" cat "$d/f" >/dev/null 2>&1 || true
	done
}

C=$M/c
mkdir -m 755 "$C" "$C/pub"
mkdir -m 700 "$C/priv"

# ---- 1. a file of the 0700 directory exchanged with a public directory -------
mkdir -m 755 "$C/pub/d1"
echo secret1 > "$C/pub/d1/f"
chmod 644 "$C/pub/d1/f"
touch "$C/priv/x1"
warm "$C/pub/d1" nobody u1000
want nobody OK read "$C/pub/d1/f"
check "exchange file <-> directory across parents" xchg "$C/priv/x1" "$C/pub/d1"
check "the directory is now under the 0700 one" test -d "$C/priv/x1" -a -f "$C/pub/d1"
want nobody EACCES read "$C/priv/x1/f"
want nobody EACCES stat "$C/priv/x1/f"
want u1000 EACCES read "$C/priv/x1/f"
want u1000 EACCES listdir "$C/priv/x1"
want root OK read "$C/priv/x1/f"
check "root reads the moved file" test "$(cat "$C/priv/x1/f")" = secret1
check "nobody's refused lookup audited" has op=lookup uid=65534 result=EACCES "path~^/c/priv/x1"
check "u1000's refused lookup audited" has op=lookup uid=1000 result=EACCES "path~^/c/priv/x1"
check "no open of the moved secret by nobody" \
	test "$(vv_audit_q "$LOG" count op=open uid=65534 result=ok "path~^/c/priv")" = 0
# a file root creates below the moved directory afterwards: no cached way in
echo secret1b > "$C/priv/x1/g"
chmod 644 "$C/priv/x1/g"
stat "$C/priv/x1/g" >/dev/null
want nobody EACCES read "$C/priv/x1/g"

# ---- 2. the same exchange named the other way (the directory as source) ------
mkdir -m 755 "$C/pub/d2"
echo secret2 > "$C/pub/d2/f"
chmod 644 "$C/pub/d2/f"
touch "$C/priv/x2"
warm "$C/pub/d2" nobody u1000
check "exchange directory <-> file across parents" xchg "$C/pub/d2" "$C/priv/x2"
want nobody EACCES read "$C/priv/x2/f"
want u1000 EACCES stat "$C/priv/x2/f"

# ---- 3. into a directory whose ACL denies u1000 --------------------------------
mkdir -m 755 "$C/acl" "$C/pub/d3"
setfacl -m u:1000:--- "$C/acl"
echo secret3 > "$C/pub/d3/f"
chmod 644 "$C/pub/d3/f"
touch "$C/acl/x3"
warm "$C/pub/d3" nobody u1000
check "exchange into the ACL'd directory" xchg "$C/acl/x3" "$C/pub/d3"
want u1000 EACCES read "$C/acl/x3/f"
want nobody OK read "$C/acl/x3/f"

# ---- 4. two directories across parents; the public side stays public ---------
mkdir -m 755 "$C/pub/d4"
mkdir -m 755 "$C/priv/e4"
echo secret4 > "$C/pub/d4/f"
echo public4 > "$C/priv/e4/f"
chmod 644 "$C/pub/d4/f" "$C/priv/e4/f"
warm "$C/pub/d4" nobody
check "exchange two directories across parents" xchg "$C/pub/d4" "$C/priv/e4"
want nobody EACCES read "$C/priv/e4/f"
want nobody OK read "$C/pub/d4/f"
check "nobody reads what came out" test "$(as_nobody cat "$C/pub/d4/f")" = public4

# ---- 5. mv of a public file into the 0700 and the ACL'd directory ------------
echo secret5 > "$C/pub/f5"
echo secret5a > "$C/pub/f5a"
chmod 644 "$C/pub/f5" "$C/pub/f5a"
for who in nobody u1000; do
	"as_$who" cat "$C/pub/f5" "$C/pub/f5a" >/dev/null
done
check "mv of a file into the 0700 directory" mv "$C/pub/f5" "$C/priv/f5"
check "mv of a file into the ACL'd directory" mv "$C/pub/f5a" "$C/acl/f5a"
want nobody EACCES read "$C/priv/f5"
want u1000 EACCES stat "$C/priv/f5"
want u1000 EACCES read "$C/acl/f5a"
want nobody OK read "$C/acl/f5a"
want root OK read "$C/priv/f5"

# ---- 6. two files exchanged across the parents ---------------------------------
echo secret6 > "$C/pub/f6"
echo public6 > "$C/priv/g6"
chmod 644 "$C/pub/f6" "$C/priv/g6"
as_nobody cat "$C/pub/f6" >/dev/null
check "exchange two files across parents" xchg "$C/pub/f6" "$C/priv/g6"
want nobody EACCES read "$C/priv/g6"
check "nobody reads the file that came out" test "$(as_nobody cat "$C/pub/f6")" = public6
# and named the other way round (the restricted one as source)
echo secret6b > "$C/pub/f6b"
echo public6b > "$C/priv/g6b"
chmod 644 "$C/pub/f6b" "$C/priv/g6b"
as_nobody cat "$C/pub/f6b" >/dev/null
check "exchange two files across parents, restricted first" xchg "$C/priv/g6b" "$C/pub/f6b"
want nobody EACCES read "$C/priv/g6b"
check "nobody reads the file that came out" test "$(as_nobody cat "$C/pub/f6b")" = public6b

test_done
