#!/bin/bash
# t1035-rename-exchange-cache: renameat2(RENAME_EXCHANGE) of a file with a
# directory in another parent moves the directory too, and what the kernel
# and the daemon cached below it must follow.  Entries below a directory
# every user may search get long timeouts (docs/design.md "Node cache and
# kernel caches"); main dropped them only when the *source* of a rename
# was a directory, so after root exchanged a file of a 0700 directory with
# a public directory that nobody and u1000 had walked, they read a 0644
# file under the 0700 one through their cached entries (nothing asked the
# daemon but the open of the file itself).  Cases, each warmed by the
# attackers first and checked at once (no sleep):
#  1. file in the 0700 directory <-> public directory (the hole): stat,
#     read and listing refused to nobody and u1000, root reads, the refused
#     lookup audited under the attacker's uid;
#  2. the same with the arguments the other way round (the directory as
#     source, which main handled);
#  3. a parent whose ACL denies u1000 search (setfacl u:1000:---): u1000
#     refused, nobody still reads;
#  4. two directories exchanged across parents, and the public side
#     afterwards still readable by nobody (nothing over-refused).
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

test_done
