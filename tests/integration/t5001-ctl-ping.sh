#!/bin/bash
# t5001-ctl-ping: the control socket of a mounted vault: it exists while
# mounted (mode 0666, in /run/vecvault as root), answers vault.ping from
# root and from uid 65534 (each request audited with the peer's uid),
# finds the daemon from the mount point, a path inside it or --store, and
# is gone after unmount; then the CLI says clearly that nothing serves the
# vault (exit 2).
. "$(dirname "$0")/test-lib.sh"
vv_need_fuse

S=$T/store
M=$T/mnt
vv_init "$S" >/dev/null
ID=$(vv_store_id "$S")
SOCK=$(vv_ctl_socket "$S")
LOG=$(vv_audit_log "$S")

check "mount" vv_mount "$S" "$M"
check "the socket exists" test -S "$SOCK"
check "the socket is 0666 (authorization is per request)" \
	test "$(stat -c %a "$SOCK")" = 666
check "/run/vecvault is root's, 0755" test "$(stat -c '%U %a' /run/vecvault)" = "root 755"
check "the root names the vault (user.vecvault.vault)" \
	test "$("$PY" -c 'import os,sys; print(os.getxattr(sys.argv[1], "user.vecvault.vault").decode())' "$M")" = "$ID"
check "nobody can read it too" \
	test "$(as_nobody "$PY" -c 'import os,sys; print(os.getxattr(sys.argv[1], "user.vecvault.vault").decode())' "$M")" = "$ID"
check "it is not listed (rsync -X would copy it)" \
	sh -c "! '$PY' -c 'import os,sys; print(os.listxattr(sys.argv[1]))' '$M' | grep -q vecvault.vault"
want root EPERM setxattr "$M" user.vecvault.vault 00000000000000000000000000000000

out=$("$VV_BIN" admin "$M" vault.ping)
check "ping as root names the vault" grep -q "^vault $ID" <<<"$out"
check "ping as root: owner" grep -q "(owner)" <<<"$out"
out=$(as_nobody "$VV_BIN" admin "$M" vault.ping --json)
check "ping as nobody through the socket" grep -q "\"uid\":65534,\"owner\":false" <<<"$out"
check "nobody: no supplementary groups" grep -q '"gid":65534,"groups":\[\]' <<<"$out"
out=$(as_u1001 "$VV_BIN" admin "$M" vault.ping --json)
check "u1001's supplementary group reaches the daemon (SO_PEERGROUPS)" \
	grep -q '"uid":1001,"owner":false,"gid":1001,"groups":\[2000\]' <<<"$out"
out=$(setpriv --reuid=1000 --regid=1000 --groups=2000,2001,2002 -- "$VV_BIN" admin "$M" vault.ping)
check "several groups, text form" grep -q "^groups 2000 2001 2002$" <<<"$out"
mkdir "$M/products" && echo x > "$M/products/a"
check "found from a path inside the mount" "$VV_BIN" admin "$M/products/a" vault.ping
check "found from --store" "$VV_BIN" admin --store "$S" vault.ping
check "ping as root audited with uid 0" vv_audit_has "$LOG" op=admin uid=0 'detail~^vault.ping'
check "ping as nobody audited with uid 65534" vv_audit_has "$LOG" op=admin uid=65534 'detail~^vault.ping'

rc=0; err=$("$VV_BIN" admin "$M" no.such.verb 2>&1) || rc=$?
check "unknown verb: exit 1" test "$rc" = 1
check "unknown verb: named" grep -q "unknown request 'no.such.verb'" <<<"$err"
rc=0; err=$("$VV_BIN" admin "$M" $'x\e[31my' 2>&1) || rc=$?
check "control bytes in a message are shown escaped" grep -qF "unknown request 'x\x1b[31my'" <<<"$err"

check "unmount" vv_umount "$M"
check "the socket is gone after unmount" test ! -e "$SOCK"
rc=0; err=$("$VV_BIN" admin "$M" vault.ping 2>&1) || rc=$?
check "unmounted: exit 2" test "$rc" = 2
check "unmounted: says it is not mounted" grep -q "is the vault mounted" <<<"$err"
rc=0; err=$("$VV_BIN" admin --store "$S" vault.ping 2>&1) || rc=$?
check "unmounted, --store: exit 2" test "$rc" = 2
check "unmounted, --store: no daemon serves it" grep -q "no daemon serves the vault in" <<<"$err"

test_done
