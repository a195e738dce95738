#!/bin/bash
# t7034-rclient-listing-prefetch: the vv:// client prefetches the listings
# of a walk's next directories (docs/remote.md "Caching on the client").
# A walk lists the same as the server's own mount (a directory longer than
# one READDIRPLUS reply included), and the prefetch was used.  A prefetched
# listing never outlives what it may: after a change through this client
# (a file created) the next listing shows it at once; after a change on the
# server (a file created, a file and a directory deleted, a chmod 700 that
# revokes) the listing shows it once the prefetch bound (1 s) has passed,
# and a file under the revoked directory is refused at once (the server
# checks every open).  A directory not searchable by all, or one others may
# not read, is never prefetched: a change on the server below it shows at
# once.  The prefetch's opendir is audited under the session's vault user.
. "$(dirname "$0")/test-lib.sh"
. "$(dirname "$0")/remote-lib.sh"
vv_need_fuse

vv_listen_mount
mkdir -p "$M/c"
chmod 755 "$M/c"
for d in a b c d e; do
	for s in x y; do
		mkdir -p "$M/c/w/$d/$s"
		for i in 1 2 3; do echo "data $d/$s/$i" > "$M/c/w/$d/$s/f$i"; done
	done
done
echo top > "$M/c/w/d/top"
mkdir "$M/c/w/big"
for i in $(seq 1 300); do : > "$M/c/w/big/a-rather-long-file-name-to-fill-replies-$i"; done
mkdir -p "$M/c/w/big/sub/deeper"
echo deep > "$M/c/w/big/sub/deeper/f"
mkdir -p "$M/c/p/a" "$M/c/p/b" "$M/c/w/q/a" "$M/c/w/q/b" "$M/c/w/n"
chmod 700 "$M/c/p"              # not searchable by all: nothing below is cached
chmod 751 "$M/c/w/q"            # others may not read: not prefetched
"$VV_BIN" user add carol --uid 3200 --no-password "$M" >/dev/null
vv_key_file carol "$T/key"
chown -R 3200 "$M/c/p" "$M/c/w/q" "$M/c/w/b"
check "mounted" vv_rmount "vv://127.0.0.1:$P/c" "$R" --key-file "$T/key" --pin "$FP"

# A walk lists what the server's own mount lists.
walk() { (cd "$1" && find . -printf '%p %y %s %m %U %n\n' | LC_ALL=C sort); }
walk "$M/c/w" > "$T/local.txt"
walk "$R/w" > "$T/remote.txt"
check "find over vv:// lists what the server's mount lists" cmp "$T/local.txt" "$T/remote.txt"
check "ls -lR lists the same" sh -c "[ \"\$(cd '$M/c/w' && ls -lR --time-style=+%s . | md5sum)\" = \"\$(cd '$R/w' && ls -lR --time-style=+%s . | md5sum)\" ]"
check "the directory of 300 entries lists whole" sh -c "[ \$(ls '$R/w/big' | wc -l) = 301 ]"
check "a file two prefetches down reads" grep -q deep "$R/w/big/sub/deeper/f"

# A descent prefetches the siblings: wait for them (the bound is 1 s).
descend() { ls "$R/w" >/dev/null; ls "$R/w/a" >/dev/null; sleep 0.3; }

# A change through this client: seen at once.
descend
check "a file created through the client" touch "$R/w/b/mine"
check "is listed at once (the prefetch before it is dropped)" sh -c "ls '$R/w/b' | grep -qx mine"

# Changes on the server: seen once the bound has passed.
descend
echo new > "$M/c/w/c/srvnew"
rm "$M/c/w/d/top"
rm -r "$M/c/w/e/y"
sleep 1.2
check "a file created on the server is listed" sh -c "ls '$R/w/c' | grep -qx srvnew"
check "a file deleted on the server is not" sh -c "! ls '$R/w/d' | grep -qx top"
check "a directory deleted on the server is not" sh -c "! ls '$R/w/e' | grep -qx y"

# A chmod that revokes: files below are refused at once, the listing
# after the bound.
descend
chmod 700 "$M/c/w/d"
want root EACCES read "$R/w/d/x/f1"
sleep 1.2
want root EACCES listdir "$R/w/d"
check "the refusals are audited" vv_audit_has "$AUD" op=opendir result=EACCES
chmod 755 "$M/c/w/d"
check "listed again after chmod back" sh -c "ls '$R/w/d' | grep -qx x"

# Never prefetched: below a directory not searchable by all, and a
# directory others may not read; a server change there shows at once.
ls "$R/p" >/dev/null; ls "$R/p/a" >/dev/null; sleep 0.3
touch "$M/c/p/b/srvnew"
check "under a private directory: a server change is listed at once" sh -c "ls '$R/p/b' | grep -qx srvnew"
ls "$R/w" >/dev/null; ls "$R/w/n" >/dev/null; sleep 0.3
touch "$M/c/w/q/srvnew"
check "a directory others may not read: a server change is listed at once" sh -c "ls '$R/w/q' | grep -qx srvnew"

check "the prefetch's opendir is audited as the vault user" vv_audit_has "$AUD" op=opendir result=ok "client~^127" uid=3200
check "unmounted" fusermount3 -u "$R"
for i in $(seq 1 50); do grep -q 'listings prefetched' "$T/client.log" && break; sleep 0.1; done
check "prefetched listings were used" sh -c "grep -q 'listings prefetched: [1-9][0-9]*, used: [1-9]' '$T/client.log'"
test_done
