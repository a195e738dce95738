#!/bin/bash
# t5022-users-mistakes: every mistake in a user or key request gets a
# clear error naming what is wrong (exit 1 from the daemon, exit 2 for a
# malformed command line) and changes nothing: duplicate and bad names,
# uid 0 and non-numbers, unknown roles, short passwords, bad CIDRs (host
# bits, junk, host names), bad durations, bad labels, unknown users and
# key ids, bad uid ranges, options that belong to another subcommand.
. "$(dirname "$0")/test-lib.sh"
vv_need_fuse

S=$T/store
M=$T/mnt
G=vvt5022$$
vv_group "$G"
printf 'a long enough password\n' > "$T/pw"
printf 'short\n' > "$T/short"
: > "$T/empty"
chmod 600 "$T/pw" "$T/short" "$T/empty"

vv_init "$S" >/dev/null
check "mount" vv_mount "$S" "$M"
"$VV_BIN" role create "$G" "$M" >/dev/null
check "alice" "$VV_BIN" user add alice --uid 5000 --role "$G" --password-file "$T/pw" "$M" >/dev/null
"$VV_BIN" key create alice --name first "$M" >/dev/null 2>&1

state() { "$VV_BIN" user list --json "$M"; "$VV_BIN" key list --json "$M"; "$VV_BIN" user uids "$M"; }
before=$(state)

# refused STATUS PATTERN ARGS...: the CLI exits STATUS, its stderr matches
# PATTERN, stdout is empty, and the users and keys are as they were.
refused() {
	local want=$1 pat=$2 rc=0 out
	shift 2
	out=$("$VV_BIN" "$@" 2>"$T/err") || rc=$?
	check "$*: exit $want" test "$rc" = "$want"
	check "$*: says '$pat'" grep -q -- "$pat" "$T/err" || sed 's/^/#   /' "$T/err"
	check "$*: nothing on stdout" test -z "$out"
	check "$*: nothing changed" test "$(state)" = "$before"
}

refused 1 "a vault user named 'alice' exists already" user add alice --password-file "$T/pw" "$M"
refused 1 "a user name is 1-32 characters" user add Alice --password-file "$T/pw" "$M"
refused 1 "a user name is 1-32 characters" user add "a b" --no-password "$M"
refused 1 "a user name is 1-32 characters" user add abcdefghijklmnopqrstuvwxyz0123456 --no-password "$M"
refused 1 "a user name is 1-32 characters" user add ../x --no-password "$M"
refused 1 "never acts as root" user add bob --uid 0 --no-password "$M"
refused 1 "is not a number" user add bob --uid 12ab --no-password "$M"
refused 1 "is not a number" user add bob --uid 4294967295 --no-password "$M"
refused 1 "no role named 'no-such-role$$'" user add bob --role "$G" --role "no-such-role$$" --no-password "$M"
refused 1 "password is too short" user add bob --password-file "$T/short" "$M"
refused 1 "empty" user add bob --password-file "$T/empty" "$M"
refused 1 "cannot open passphrase file" user add bob --password-file "$T/missing" "$M"
refused 1 "no vault user named 'zed'" user show zed "$M"
refused 1 "no vault user named 'zed'" user delete zed "$M"
refused 1 "no vault user named 'zed'" user passwd zed --password-file "$T/pw" "$M"
refused 1 "password is too short" user passwd alice --password-file "$T/short" "$M"
refused 1 "holds role '$G' already" user role alice --add "$G" "$M"
refused 1 "does not hold role 'nogroup'" user role alice --remove nogroup "$M"
refused 1 "no role named 'nope$$'" user role alice --remove "$G" --add "nope$$" "$M"
refused 1 "a uid range is FIRST-LAST" user uids 10-20 "$M"
refused 1 "a uid range is FIRST-LAST" user uids 3000-2000 "$M"

refused 1 "'10.0.0.1/8' is not an IPv4 or IPv6 network" key create alice --allow 10.0.0.1/8 "$M"
refused 1 "'example.com' is not an IPv4 or IPv6 network" key create alice --allow example.com "$M"
refused 1 "'fe80::/129' is not an IPv4 or IPv6 network" key create alice --allow 10.0.0.0/8 --allow fe80::/129 "$M"
refused 1 "'1.2.3.4/' is not an IPv4 or IPv6 network" key create alice --allow 1.2.3.4/ "$M"
refused 1 "expiry '90' is not a duration like 90d" key create alice --expires 90 "$M"
refused 1 "expiry '1y' is not a duration" key create alice --expires 1y "$M"
refused 1 "expiry '0d' is not a duration" key create alice --expires 0d "$M"
refused 1 "expiry '99999d' is not a duration" key create alice --expires 99999d "$M"
refused 1 "expiry '-1d' is not a duration" key create alice --expires -1d "$M"
refused 1 "a key label is 1-128 printable characters" key create alice --name "$(printf 'a\tb')" "$M"
refused 1 "a key label is 1-128 printable characters" key create alice --name "$(printf '%0200d' 0)" "$M"
refused 1 "no vault user named 'zed'" key create zed "$M"
refused 1 "no vault user named 'zed'" key list zed "$M"
refused 1 "no API key with id 0123456789abcdef" key revoke 0123456789abcdef "$M"
refused 1 "a key id is the 16 hex digits" key revoke nothex "$M"

refused 2 "unknown subcommand 'frob'" user frob "$M"
refused 2 "unknown subcommand 'frob'" key frob "$M"
refused 2 "add needs a user NAME" user add
refused 2 "create needs a USER" key create
refused 2 "belong to user add" user passwd alice --uid 7 "$M"
refused 2 "belong to key create" key list --expires 1d "$M"
refused 2 "exclude each other" user add bob --no-password --password-file "$T/pw" "$M"
refused 2 "needs --add R or --remove R" user role alice "$M"

test_done
