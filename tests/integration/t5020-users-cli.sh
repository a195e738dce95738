#!/bin/bash
# t5020-users-cli: `vecvault user ...` and `vecvault key ...` as root on a
# real mount, through the control socket: add (uid given or allocated,
# roles, password from a file), list/show (text and JSON), passwd, role,
# delete (revoking the user's keys); key create prints the token and
# nothing else on stdout, key list never shows a secret, key revoke takes
# the id or the whole token.  Then: the token's secret and the passwords
# appear in no CLI output, no file under STORE, not the audit log and not
# the daemon's log.  A vault that is not mounted is said to be so (exit 2).
. "$(dirname "$0")/test-lib.sh"
vv_need_fuse

S=$T/store
M=$T/mnt
G=vvt5020a$$
G2=vvt5020b$$
OUT=$T/cli-output          # everything the CLI printed, for the leak check
PW1='t5020 first password, quite long'
PW2='t5020 second password, longer still'
vv_group "$G"
vv_group "$G2"
printf '%s\n' "$PW1" > "$T/pw1"
printf '%s\n' "$PW2" > "$T/pw2"
chmod 600 "$T/pw1" "$T/pw2"

# vv CMD...: run the CLI, keep its stdout and stderr in $OUT too.
vv() {
	local rc=0
	"$VV_BIN" "$@" > "$T/o" 2> "$T/e" || rc=$?
	cat "$T/o" "$T/e" >> "$OUT"
	return $rc
}
# vvk CMD...: the same for key create, whose stdout is the token (shown
# once, on purpose): only its stderr joins $OUT.
vvk() {
	local rc=0
	"$VV_BIN" "$@" > "$T/o" 2> "$T/e" || rc=$?
	cat "$T/e" >> "$OUT"
	return $rc
}

vv_init "$S" >/dev/null
LOG=$(vv_audit_log "$S")
check "user --help" sh -c "'$VV_BIN' user --help | grep -q 'vecvault user add NAME'"
check "key --help" sh -c "'$VV_BIN' key --help | grep -q 'vecvault key create USER'"
rc=0; vv user list "$M" || rc=$?
check "not mounted: exit 2" test "$rc" = 2
check "not mounted: says so" grep -q "is the vault mounted" "$T/e"

check "mount" vv_mount "$S" "$M"
check "register role $G" vv role create "$G" "$M"
check "register role $G2" vv role create "$G2" "$M"

check "user add alice --uid 5000 --role $G --password-file" \
	vv user add alice --uid 5000 --role "$G" --password-file "$T/pw1" "$M"
check "says the uid" grep -q "user alice added (uid 5000)" "$T/o"
check "user add svc (no password, uid allocated, two roles)" \
	vv user add svc --no-password --role "$G" --role "$G2" --store "$S"
check "the first uid of the default range" grep -q "uid 2100000000" "$T/o"
rc=0; vv user add carol "$M" < /dev/null || rc=$?
check "no password file and no terminal: exit 1" test "$rc" = 1
check "no terminal: the message says what to use" grep -q "use --password-file" "$T/e"

check "user list" vv user list "$M"
check "list: alice, uid, role" grep -Eq "^alice +5000 +yes +0 .* $G$" "$T/o"
check "list: svc, both roles" grep -Eq "^svc +2100000000 +no .*$G,$G2|^svc +2100000000 +no .*$G2,$G" "$T/o"
check "user list --json" vv user list --json "$M"
check "json: alice" grep -q "{\"name\":\"alice\",\"uid\":5000,\"password\":true,\"roles\":\[\"$G\"\]" "$T/o"
check "json parses" "$PY" -c "import json,sys; d=json.load(open('$T/o')); assert len(d)==2" 
check "user show alice" vv user show alice "$M"
check "show: password set" grep -q "^password  set" "$T/o"

# Keys.
check "key create alice --name --expires --allow" \
	vvk key create alice --name "gpu box" --expires 90d --allow 127.0.0.2 --allow 10.0.0.0/8 "$M"
TOKEN=$(cat "$T/o")
check "stdout is exactly one token line" \
	sh -c "test \$(wc -l < '$T/o') = 1 && grep -Eq '^vvk_[0-9a-f]{16}_[A-Za-z0-9_-]{43}$' '$T/o'"
check "stderr says it is shown once" grep -q "shown once" "$T/e"
SECRET=${TOKEN:21}
KID=${TOKEN:4:16}
check "key create svc --json" vvk key create svc --json "$M"
TOKEN2=$("$PY" -c "import json; print(json.load(open('$T/o'))['token'])")
SECRET2=${TOKEN2:21}
check "key list" vv key list "$M"
check "list: alice's key, active, networks, label" \
	grep -Eq "^$KID +alice +active .* 127\.0\.0\.2/32,10\.0\.0\.0/8 +gpu box$" "$T/o"
check "key list alice --json" vv key list alice --json "$M"
check "json: one key" "$PY" -c "import json; d=json.load(open('$T/o')); assert len(d)==1 and d[0]['id']=='$KID' and d[0]['expires']"

# Passwords and roles.
check "user passwd alice --password-file" vv user passwd alice --password-file "$T/pw2" "$M"
check "user role alice --add $G2 --remove $G" vv user role alice --add "$G2" --remove "$G" "$M"
check "now holds $G2 only" grep -q "user alice roles: $G2$" "$T/o"
check "user uids" vv user uids "$M"
check "uids: the default range" grep -q "2100000000-2100999999" "$T/o"

# Revoke by the whole token (the CLI sends only the id) and by id.
check "key revoke TOKEN" vv key revoke "$TOKEN" "$M"
check "key list: revoked" sh -c "'$VV_BIN' key list alice '$M' | grep -Eq '^$KID +alice +revoked '"
check "user delete svc" vv user delete svc "$M"
check "says one key revoked" grep -q "1 API key(s) revoked" "$T/o"
check "svc's key is revoked" sh -c "'$VV_BIN' key list '$M' | grep -Eq '^${TOKEN2:4:16} +svc +revoked '"
check "svc is gone" sh -c "! '$VV_BIN' user list '$M' | grep -q '^svc '"
check "audited: user.add alice" vv_audit_has "$LOG" op=admin uid=0 result=ok "detail=user.add alice"
check "audited: key.revoke by id" vv_audit_has "$LOG" op=admin result=ok "detail=key.revoke $KID"

# No secret and no password anywhere: CLI output, STORE, audit log, daemon log.
fusermount3 -u "$M"
vv_wait_daemon "$T/.pids/$(echo "$M" | tr / _)" || true
for needle in "$SECRET" "$SECRET2" "$PW1" "$PW2"; do
	check "not in the CLI's output: ${needle:0:6}..." sh -c '! grep -qF -- "$0" "$1"' "$needle" "$OUT"
	check "not in any file under STORE: ${needle:0:6}..." sh -c '! grep -rqaF -- "$0" "$1"' "$needle" "$S"
	check "not in the audit log: ${needle:0:6}..." sh -c '! grep -qaF -- "$0" "$1"' "$needle" "$LOG"
	check "not in the daemon log: ${needle:0:6}..." sh -c '! grep -qaF -- "$0" "$1"' "$needle" "$T/daemon.log"
done
check "no user name in STORE either (meta.db is encrypted)" sh -c "! grep -rqa alice '$S'"

test_done
