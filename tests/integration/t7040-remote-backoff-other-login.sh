#!/bin/bash
# t7040-remote-backoff-other-login: the per-address backoff of failed
# logins (docs/remote.md "The order of checks", 4) is not cleared by a
# success of another login.  A peer that holds one valid login (its own
# API key) guesses another user's password from the same address and logs
# in with its key between guesses: each success used to reset the
# address's count, so every guess waited only the first delay (250 ms)
# instead of 250, 500, 1000, 2000, 4000 ms, and "1000 guesses take over an
# hour" did not hold for anyone with a key.  The delays checked are lower
# bounds the server sleeps, never upper bounds.  A user who mistyped
# their own password still logs in, and every failure is audited with the
# user tried.
. "$(dirname "$0")/test-lib.sh"
. "$(dirname "$0")/remote-lib.sh"
vv_need_fuse
vv_need_loopback_alias

vv_listen_mount
printf 'the password of bob, long enough\n' > "$T/pw"
chmod 600 "$T/pw"
"$VV_BIN" user add mallory --uid 1000 --no-password "$M" >/dev/null
"$VV_BIN" user add bob --uid 1001 --password-file "$T/pw" "$M" >/dev/null
TOKEN=$("$VV_BIN" key create mallory "$M" 2>/dev/null)

# 5 wrong passwords of bob from 127.0.0.7, each followed by a login with
# mallory's own key, each attempt taking the address's next turn: the
# last key login waits until 11.5 s at least (0 + 250 + 250 + 500 + 500 +
# 1000 + 1000 + 2000 + 2000 + 4000 ms); with the reset every guess waited
# at most 250 ms, about 1.3 s in all.
check "guesses between successes of another login are still delayed" rpy "
t0 = time.monotonic()
for i in range(5):
    c = R.Client('127.0.0.1', $P, bind='127.0.0.7', timeout=60)
    try:
        c.auth_password('bob', 'guess number %d' % i)
        sys.exit('a wrong password was accepted')
    except R.Error:
        pass
    c.close()
    c = R.Client('127.0.0.1', $P, bind='127.0.0.7', timeout=60)
    c.auth_key('$TOKEN')
    c.call('getattr', 1)
    c.close()
took = time.monotonic() - t0
print('5 guesses with key logins between took %.2f s' % took)
assert took >= 6, took"
# audit_count N FILTER...: N matching records (polled: flushed each second)
audit_count() {
	local n=$1 i
	shift
	for i in $(seq 1 100); do
		[ "$(vv_audit_q "$AUD" count "$@")" = "$n" ] && return 0
		sleep 0.1
	done
	echo "# $(vv_audit_q "$AUD" count "$@") records, not $n: $*"
	return 1
}
check "the 5 guesses are audited as unauth of bob from 127.0.0.7" \
	audit_count 5 op=unauth user=bob 'client~^127\.0\.0\.7:'

# A user who mistyped their own password logs in (a success of the login
# that failed resets the address), and so does another user there after.
check "a mistyped password, then the right one" rpy "
c = R.Client('127.0.0.1', $P, bind='127.0.0.8', timeout=60)
try:
    c.auth_password('bob', 'not quite it')
    sys.exit('a wrong password was accepted')
except R.Error:
    pass
c.close()
c = R.Client('127.0.0.1', $P, bind='127.0.0.8', timeout=60)
assert c.auth_password('bob', 'the password of bob, long enough') == [1001, 'bob']
c.close()
c = R.Client('127.0.0.1', $P, bind='127.0.0.8', timeout=60)
c.auth_key('$TOKEN')
c.call('getattr', 1)"

test_done
