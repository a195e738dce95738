#!/bin/bash
# t7030-rclient-attr-cache: what the vv:// client's attribute and entry
# cache (--attr-timeout, docs/remote.md "Caching on the client") may and
# may not do.  A permission change on the server shows in stat on the
# client within the bound; before that, cached entries and attributes
# never let the client read, list, write or read xattrs of anything the
# server now refuses: a file chmod'ed 600, a file under a directory
# chmod'ed 700 (its entry still cached: the server checks the search
# permission of every directory above, vv_vault_reach), two levels up, a
# directory whose ACL now denies the user.  A file opened before the change
# stays readable through its handle (as locally).  The xattr probes of
# ls -l are answered by the client only for nodes without xattrs: an ACL
# set on the server is seen by getfacl within the bound.  The search check
# does not stand in the way of snapshots and the trash (their parents are
# virtual).  Bad --attr-timeout values are refused.
. "$(dirname "$0")/test-lib.sh"
. "$(dirname "$0")/remote-lib.sh"
vv_need_fuse

TTL=8
vv_listen_mount
mkdir -p "$M/c/d" "$M/c/a/b" "$M/c/acl"
for f in d/f d/g a/b/f acl/f top s; do echo "data $f" > "$M/c/$f"; done
chmod 755 "$M/c" "$M/c/d" "$M/c/a" "$M/c/a/b" "$M/c/acl"
chmod 644 "$M/c/d/f" "$M/c/d/g" "$M/c/a/b/f" "$M/c/acl/f" "$M/c/top" "$M/c/s"
"$VV_BIN" user add carol --uid 3200 --no-password "$M" >/dev/null
vv_key_file carol "$T/key"

check "--attr-timeout refused" refused 'bad --attr-timeout' "vv://127.0.0.1:$P/c" "$R" --key-file "$T/key" --pin "$FP" --attr-timeout -1
check "--attr-timeout refused" refused 'bad --attr-timeout' "vv://127.0.0.1:$P/c" "$R" --key-file "$T/key" --pin "$FP" --attr-timeout 3601
check "--attr-timeout refused" refused 'bad --attr-timeout' "vv://127.0.0.1:$P/c" "$R" --key-file "$T/key" --pin "$FP" --attr-timeout 2x
check "mounted with --attr-timeout $TTL" vv_rmount "vv://127.0.0.1:$P/c" "$R" --key-file "$T/key" \
	--pin "$FP" --attr-timeout "$TTL"

# Everything readable, entries and attributes now cached on the client.
check "read d/f" grep -q "data d/f" "$R/d/f"
check "read a/b/f" grep -q "data a/b/f" "$R/a/b/f"
check "read acl/f" grep -q "data acl/f" "$R/acl/f"
ls -lR "$R" >/dev/null
check "getfacl: no ACL on acl yet" sh -c "! getfacl -c '$R/acl' 2>/dev/null | grep -q '^user:3200'"
exec 7< "$R/d/g"                  # opened before the change

# stat: the old mode at most TTL seconds, then the new one.
stat "$R/s" >/dev/null
T0=$(date +%s.%N)
chmod 600 "$M/c/s"
seen=
for i in $(seq 1 $((TTL * 20 + 40))); do
	m=$(stat -c %a "$R/s" 2>/dev/null)
	[ "$m" = 600 ] && { seen=$(echo "$(date +%s.%N) - $T0" | bc); break; }
	sleep 0.05
done
check "chmod on the server shows in stat within the bound (${seen:-never} s, bound $TTL s + 1)" \
	sh -c "[ -n '$seen' ] && [ \$(echo '$seen <= $TTL + 1' | bc) = 1 ]"

# Entries and attributes cached afresh (for TTL seconds, longer than the
# checks below take), then the permissions change on the server.
ls -lR "$R" >/dev/null
cat "$R/d/f" "$R/a/b/f" "$R/acl/f" "$R/top" >/dev/null
T1=$(date +%s.%N)
chmod 600 "$M/c/top"
chmod 700 "$M/c/d" "$M/c/a"
setfacl -m u:3200:--- "$M/c/acl" "$M/c/acl/f"

# At once, whatever the client's kernel still caches: the server refuses.
want root EACCES read "$R/top"
want root EACCES read "$R/d/f"
want root EACCES read "$R/a/b/f"
want root EACCES read "$R/acl/f"
want root EACCES listdir "$R/d"
want root EACCES listdir "$R/a/b"
want root EACCES write "$R/d/f" x
want root EACCES getxattr "$R/d/f" user.x
want root EACCES create "$R/a/b/new"
check "the refusals are audited (a directory above may not be searched)" \
	vv_audit_has "$AUD" result=EACCES "detail~may not be searched"
check "a file opened before the change still reads through its handle" \
	sh -c "head -c 100 <&7 | grep -q 'data d/g'"
exec 7<&-

# Past the bound, stat and getfacl show the server's state.
left=$(echo "$T1 + $TTL + 0.5 - $(date +%s.%N)" | bc)
[ "$(echo "$left > 0" | bc)" = 1 ] && sleep "$left"
check "the ACL set on the server shows in getfacl within the bound" \
	sh -c "getfacl -c '$R/acl' 2>/dev/null | grep -q '^user:3200:---'"
check "stat of d/f after the bound: refused" sh -c "! stat '$R/d/f' 2>/dev/null"

# Undo: readable again (a new walk).
chmod 755 "$M/c/d" "$M/c/a"
chmod 644 "$M/c/top"
check "readable again after chmod back" grep -q "data d/f" "$R/d/f"
check "and a/b/f" grep -q "data a/b/f" "$R/a/b/f"

# Snapshots and the trash through a mount of the whole vault (carol owns
# her files; root's vault is searchable by all).
mkdir "$M/own"
chown 3200 "$M/own"
echo "snap data" > "$M/own/s.txt"
chown 3200 "$M/own/s.txt"
check "snapshot taken" "$VV_BIN" snapshot create "$M" s1
rm "$M/own/s.txt"
R2=$T/r2
check "the whole vault mounted" vv_rmount "vv://127.0.0.1:$P" "$R2" --key-file "$T/key" --pin "$FP"
check "a snapshot's file reads through vv://" grep -q "snap data" "$R2/.snapshots/s1/own/s.txt"
check "the trash lists the removed file" sh -c "ls '$R2/.trash/files' | grep -q s.txt"
check "and it reads" grep -q "snap data" "$R2/.trash/files/s.txt"
test_done
