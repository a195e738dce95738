#!/bin/bash
# t5010-grant-roles: grants on a real mount with real local users and groups.
# alice (role analysts, readonly on /products) lists, reads and queries it,
# cannot write, rename, delete or setfacl there, and is refused (EACCES,
# audited) on /finance; gpasswd -d / usermod -aG take effect for her next
# process; bob (readwrite) adds and deletes segments; carol (admin on
# /products) grants and revokes there but not on /finance, chmods and sets
# ACLs on files she does not own there, and cannot touch roles; files made
# after a grant inherit it; cp -a and rsync -aA keep the entries; grants
# lists them (text and JSON); an fd opened before a revoke keeps reading
# (POSIX), new opens are refused; grant then revoke leaves getfacl -R as it
# was; uid 65534 and u1000 cannot grant or revoke.
. "$(dirname "$0")/test-lib.sh"
vv_need_fuse
vv_need_numpy

S=$T/store
M=$T/mnt
P=vv5010                         # prefix of every user and group made here
GA=${P}an GW=${P}rw GD=${P}ad    # groups: analysts, writers, admins
UA=${P}al UB=${P}bo UC=${P}ca    # users: alice, bob, carol
vv_role_member "$UA" "$GA"
vv_role_member "$UB" "$GW"
vv_role_member "$UC" "$GD"
# as USER CMD...: run as USER with the groups NSS gives her now.
as() { local u=$1; shift; setpriv --reuid="$u" --regid=nogroup --init-groups -- "$@"; }
# pyop USER OP ARGS...: OK or the errno name (test-lib's VV_PYOP).
pyop() { local u=$1; shift; as "$u" "$PY" -c "$VV_PYOP" "$@" 2>&1 || true; }
# facls DIR: getfacl of every node below DIR, in name order.
facls() { (cd "$1" && find . | LC_ALL=C sort | while read -r f; do getfacl -np "$f"; done); }
is() { local name=$1 exp=$2 got=$3; if [ "$got" = "$exp" ]; then test_ok "$name"; else
	echo "# expected $exp, got $got"; test_fail "$name"; fi; }

vv_init "$S" >/dev/null
LOG=$(vv_audit_log "$S")
check "mount" vv_mount "$S" "$M"
"$VV_BIN" collection create "$M/products" --dim 8 --metric l2 >/dev/null
mkdir -m 0750 "$M/finance"
chmod 0750 "$M/products"
"$PY" - "$M/products" "$T/q.npy" <<'PY'
import numpy as np, sys
rng = np.random.default_rng(5010)
np.save(sys.argv[1] + "/a.npy", rng.standard_normal((100, 8)).astype('<f4'))
np.save(sys.argv[2], rng.standard_normal((2, 8)).astype('<f4'))
PY
mkdir -m 0750 "$M/products/sub"
echo secret > "$M/finance/ledger"; chmod 0640 "$M/finance/ledger"
echo hello > "$M/products/sub/notes"; chmod 0640 "$M/products/sub/notes"
chmod 0640 "$M/products/a.npy"
chmod 0644 "$T/q.npy"
for r in $GA $GW $GD; do "$VV_BIN" role create "$r" "$M" >/dev/null; done
before=$(cd "$M" && getfacl -Rn products finance 2>/dev/null)

# Before any grant alice sees nothing.
is "alice: no access before a grant" EACCES "$(pyop $UA listdir "$M/products")"

# ---- refusals of the verbs themselves ------------------------------------------
rc=0; err=$(as_nobody "$VV_BIN" grant $GA readonly "$M/products" 2>&1) || rc=$?
is "nobody: grant refused, exit 1" 1 "$rc"
check "nobody: the message says why" grep -q "no admin role" <<<"$err"
rc=0; as_u1000 "$VV_BIN" revoke $GA "$M/products" 2>/dev/null || rc=$?
is "u1000: revoke refused, exit 1" 1 "$rc"
check "the refusal is audited with the peer's uid" \
	vv_audit_has "$LOG" op=admin uid=65534 result=EACCES "detail~^grant"
rc=0; err=$("$VV_BIN" grant $GA readonly "$M" 2>&1) || rc=$?
is "grant on the vault root refused" 1 "$rc"
check "naming the root" grep -q "root" <<<"$err"
rc=0; err=$("$VV_BIN" grant nosuch readonly "$M/products" 2>&1) || rc=$?
check "an unknown role: named in the message" grep -q "'nosuch' is not a role" <<<"$err"
rc=0; err=$("$VV_BIN" grant $GA rwz "$M/products" 2>&1) || rc=$?
check "bad letters: named in the message" grep -q "'rwz' is not" <<<"$err"
is "getfacl unchanged by refused requests" "$before" "$(cd "$M" && getfacl -Rn products finance 2>/dev/null)"

# ---- alice: readonly ----------------------------------------------------------
check "grant analysts readonly /products" "$VV_BIN" grant $GA readonly "$M/products"
check "getfacl shows the entry at once" sh -c "getfacl -p '$M/products' | grep -qx 'group:$GA:r-x'"
check "and the default entry" sh -c "getfacl -p '$M/products' | grep -qx 'default:group:$GA:r-x'"
check "ls -l shows the + at once" sh -c "ls -ld '$M/products/a.npy' | grep -q '^-rw-r-----+'"
is "alice: ls /products" OK "$(pyop $UA listdir "$M/products")"
is "alice: cat a file below" OK "$(pyop $UA read "$M/products/sub/notes")"
check "alice: vecvault query" as $UA "$VV_BIN" query "$M/products" -q "$T/q.npy" -k 3
is "alice: no write" EACCES "$(pyop $UA write "$M/products/sub/notes" x)"
is "alice: no create" EACCES "$(pyop $UA create "$M/products/new")"
is "alice: no rename" EACCES "$(pyop $UA rename "$M/products/sub/notes" "$M/products/sub/n2")"
is "alice: no delete" EACCES "$(pyop $UA unlink "$M/products/a.npy")"
is "alice: no chmod" EPERM "$(pyop $UA chmod "$M/products/a.npy" 0666)"
rc=0; as $UA setfacl -m "u:$UA:rw" "$M/products/a.npy" 2>/dev/null || rc=$?
check "alice: no setfacl" test "$rc" -ne 0
is "alice: /finance refused" EACCES "$(pyop $UA listdir "$M/finance")"
check "the refusal is audited" vv_audit_has "$LOG" uid="$(id -u $UA)" result=EACCES "path~^/finance"
rc=0; as $UA "$VV_BIN" grant $GA readwrite "$M/products" 2>/dev/null || rc=$?
is "alice: cannot grant herself more" 1 "$rc"

# Membership is the OS's, per process.
gpasswd -d $UA $GA >/dev/null
is "gpasswd -d: her next process is refused" EACCES "$(pyop $UA listdir "$M/products")"
usermod -aG $GA $UA
is "usermod -aG: her next process may again" OK "$(pyop $UA listdir "$M/products")"

# ---- bob: readwrite -----------------------------------------------------------
check "grant writers readwrite /products" "$VV_BIN" grant $GW readwrite "$M/products"
check "bob adds a segment" as $UB cp "$M/products/a.npy" "$M/products/b.npy"
check "bob's segment inherits the analysts' entry" \
	sh -c "getfacl -p '$M/products/b.npy' | grep -q '^group:$GA:r-x'"
is "alice reads bob's segment" OK "$(pyop $UA read "$M/products/b.npy")"
check "bob deletes it" as $UB rm "$M/products/b.npy"
is "bob: /finance refused" EACCES "$(pyop $UB listdir "$M/finance")"

# ---- carol: admin on /products --------------------------------------------------
check "grant admins admin /products" "$VV_BIN" grant $GD admin "$M/products"
out=$("$VV_BIN" grants "$M/products")
check "grants lists analysts" grep -q "^$GA " <<<"$out"
check "grants lists writers" grep -q "^$GW " <<<"$out"
check "grants lists admins, with admin" grep -q "^$GD .* yes\$" <<<"$out"
out=$(as $UA "$VV_BIN" grants "$M/products" --json)
check "grants --json, as a member who may stat it" grep -q "\"role\":\"$GD\",\"gid\":[0-9]*,\"perms\":\"rwx\",\"default\":\"rwx\",\"admin\":true" <<<"$out"
rc=0; as_nobody "$VV_BIN" grants "$M/products/sub" >/dev/null 2>&1 || rc=$?
is "nobody may not list grants below what she cannot stat" 1 "$rc"
check "carol revokes writers on her collection" as $UC "$VV_BIN" revoke $GW "$M/products"
check "and grants them again" as $UC "$VV_BIN" grant $GW readwrite "$M/products/sub"
rc=0; as $UC "$VV_BIN" grant $GW readonly "$M/finance" 2>/dev/null || rc=$?
is "carol: not on another collection" 1 "$rc"
is "carol chmods a file she does not own" OK "$(pyop $UC chmod "$M/products/sub/notes" 0644)"
check "root owns it still" test "$(stat -c %U:%a "$M/products/sub/notes")" = "root:644"
is "carol: no chmod outside her collection" EPERM "$(pyop $UC chmod "$M/finance" 0777)"
rc=0; err=$(as $UC setfacl -m "g:$GW:r" "$M/products/sub/notes" 2>&1) || rc=$?
if [ "$rc" -eq 0 ]; then
	test_ok "carol sets an ACL on a file she does not own"
else
	# The kernel refuses setxattr of an ACL by a non-owner before the
	# daemon is asked (docs/access.md): vecvault grant is her tool.
	check "carol's setfacl: refused by the kernel (EPERM), documented" grep -q "not permitted" <<<"$err"
fi
rc=0; as $UC chown "$UC" "$M/products/sub/notes" 2>/dev/null || rc=$?
check "carol: no chown" test "$rc" -ne 0
rc=0; as $UC "$VV_BIN" role create $GA "$M" 2>/dev/null || rc=$?
is "carol: no role verbs (vault-wide)" 1 "$rc"
rc=0; as $UC "$VV_BIN" role delete $GW "$M" 2>/dev/null || rc=$?
is "carol: no role delete" 1 "$rc"

# ---- copies keep the entries ----------------------------------------------------
mkdir "$T/cp" "$T/rs"
check "cp -a of the tree" cp -a "$M/products" "$T/cp/"
check "rsync -aA of the tree" rsync -aA "$M/products" "$T/rs/"
src=$(facls "$M/products")
is "cp -a keeps every entry" "$src" "$(facls "$T/cp/products")"
is "rsync -aA keeps every entry" "$src" "$(facls "$T/rs/products")"
check "rsync -aA back into the vault" rsync -aA "$T/rs/products/" "$M/copy/"
is "and the copy in the vault carries them" "$src" "$(facls "$M/copy")"
rm -rf "$M/copy"

# ---- an fd opened before a revoke -----------------------------------------------
mkdir -m 0777 "$T/sync"
as $UA "$PY" - "$M/products/sub/notes" "$T/sync" > "$T/fd.out" 2>&1 <<'PY' &
import os, sys, time
f, d = sys.argv[1], sys.argv[2]
fd = os.open(f, os.O_RDONLY)
open(d + "/opened", "w").close()
for _ in range(600):
    if os.path.exists(d + "/revoked"): break
    time.sleep(0.05)
print("read", "OK" if os.pread(fd, 5, 0) == b"hello" else "BAD")
try:
    os.close(os.open(f, os.O_RDONLY)); print("open OK")
except OSError as e:
    print("open", __import__("errno").errorcode[e.errno])
PY
fdpid=$!
for _ in $(seq 1 200); do [ -e "$T/sync/opened" ] && break; sleep 0.05; done
check "revoke analysts while alice holds an fd" "$VV_BIN" revoke $GA "$M/products"
touch "$T/sync/revoked"
wait $fdpid || true
check "the open fd keeps reading (POSIX: rights are checked at open)" grep -qx "read OK" "$T/fd.out"
check "a new open is refused" grep -qx "open EACCES" "$T/fd.out"

# ---- revoke everything: back to what was there -----------------------------------
check "revoke writers" "$VV_BIN" revoke $GW "$M/products"
check "revoke admins" "$VV_BIN" revoke $GD "$M/products"
is "chmod by carol undone by hand" 0 "$(chmod 0640 "$M/products/sub/notes"; echo $?)"
is "grant then revoke: getfacl -R as before" "$before" "$(cd "$M" && getfacl -Rn products finance 2>/dev/null)"
rc=0; as $UC "$VV_BIN" grant $GW readonly "$M/products" 2>/dev/null || rc=$?
is "carol: no longer admin after the revoke" 1 "$rc"

test_done
