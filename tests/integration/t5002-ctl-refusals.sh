#!/bin/bash
# t5002-ctl-refusals: every verb the daemon knows (vault.verbs) that is not
# open to anyone is refused to uid 65534, u1000 and u1001 through the
# control socket: exit 1, a message that says who may do it, an audit
# record with the peer's uid and EACCES; a "collection" verb with a path
# is refused too (no admin role).  Nothing the peer puts in the request
# (uid=0 arguments, a forged "client") changes who it is.
. "$(dirname "$0")/test-lib.sh"
vv_need_fuse

S=$T/store
M=$T/mnt
vv_init "$S" >/dev/null
LOG=$(vv_audit_log "$S")
check "mount" vv_mount "$S" "$M"
mkdir "$M/products"

verbs=$("$VV_BIN" admin "$M" vault.verbs)
check "vault.verbs lists the core verbs" grep -q "^vault.ping anyone$" <<<"$verbs"
out=$(as_nobody "$VV_BIN" admin "$M" vault.verbs)
check "nobody may list them too" test "$out" = "$verbs"

n=0
while read -r verb scope; do
	[ "$scope" = anyone ] && continue
	n=$((n + 1))
	for who in nobody u1000 u1001; do
		rc=0; err=$("as_$who" "$VV_BIN" admin "$M" "$verb" name=x uid=0 2>&1) || rc=$?
		check "$who: $verb refused, exit 1" test "$rc" = 1
		check "$who: $verb: the message says who may" \
			grep -q "^vecvault: $verb: only root or the vault's owner may do this" <<<"$err"
	done
	if [ "$scope" = collection ]; then
		rc=0; err=$(as_nobody "$VV_BIN" admin "$M" "$verb" path=/products 2>&1) || rc=$?
		check "nobody: $verb path=/products refused, exit 1" test "$rc" = 1
		check "nobody: $verb path=/products: no admin role" \
			grep -q "you hold no admin role on this collection" <<<"$err"
	fi
	check "nobody: $verb audited as a refusal of uid 65534" \
		vv_audit_has "$LOG" op=admin uid=65534 result=EACCES "detail~^$verb"
done <<<"$verbs"
echo "# $n verbs not open to anyone"

# The peer is who the kernel says, whatever the request carries.
out=$(as_nobody "$VV_BIN" admin "$M" vault.ping uid=0 client=root --json)
check "arguments do not change the peer" grep -q '"uid":65534,"owner":false' <<<"$out"
check "the audit record names the kernel's uid" \
	vv_audit_has "$LOG" op=admin uid=65534 client=local "detail~^vault.ping"

test_done
