# remote-lib.sh - helpers of the t70xx remote tests, sourced after
# test-lib.sh: a TLS pair, a listening mount, and the Python protocol
# client (vvremote.py) run with the test's own code.

RPY="$VV_SRC/tests/integration/vvremote.py"
export PYTHONPATH="$VV_SRC/tests/integration${PYTHONPATH:+:$PYTHONPATH}"
# The control socket lives under $XDG_RUNTIME_DIR for the CLI and the daemon.
export XDG_RUNTIME_DIR="$T/run"
mkdir -p -m 700 "$XDG_RUNTIME_DIR"
# Where a remote test's vault lives unless it says otherwise: the store S,
# its mount M (the server), a vv:// client's mount point R, and LOG, the
# daemon log vv_mount writes (vv_port reads the listening port from it).
S=$T/store
M=$T/mnt
R=$T/r
LOG=$T/daemon.log

# vv_need_loopback_alias: 127.0.0.2 and 127.0.0.3 must be usable sources
# (Linux routes all of 127.0.0.0/8 to lo).
vv_need_loopback_alias() {
	"$PY" -c "import socket; s=socket.socket(); s.bind(('127.0.0.3',0))" 2>/dev/null && return 0
	echo "1..0 # SKIP cannot bind 127.0.0.3"
	vv_done=1
	exit 77
}

# vv_tls DIR: a self-signed pair for 127.0.0.1; prints the fingerprint.
vv_tls() {
	"$VV_BIN" tls selfsigned --out "$1" --name 127.0.0.1 | sed -n 's/^sha256://p'
}

# vv_port LOG ADDR: the port the daemon logged for --listen ADDR:0.
vv_port() {
	local i p
	for i in $(seq 1 100); do
		p=$(grep -F "remote: listening on $2 " "$1" 2>/dev/null | tail -n 1 |
		    sed -n 's/.*(port \([0-9]*\)).*/\1/p')
		[ -n "$p" ] && { echo "$p"; return 0; }
		sleep 0.1
	done
	return 1
}

# rpy CODE: run Python with vvremote imported as R (stdout/stderr kept).
rpy() {
	"$PY" -c "import sys, os, time; import vvremote as R
$1"
}

# vv_allow_stat MNT FIELD: one counter of the listener.
vv_allow_stat() {
	"$VV_BIN" allow list "$1" | awk -v f="$2" '$1 == "#" && $2 == f { print $3 }'
}

# vv_listen_mount [NAME [ADDR [mount options...]]]: the usual remote test
# vault: a TLS pair in $T/tls, a new store $S mounted on $M listening on
# ADDR (default 127.0.0.1:0) with the mount options added (daemon log
# $LOG); sets FP (the certificate's fingerprint, for --pin), AUD (the
# audit log) and P (the port: the one logged for a port 0, else ADDR's).
# One check NAME (default "mount --listen").
vv_listen_mount() {
	local name=${1:-mount --listen} addr=${2:-127.0.0.1:0}
	shift $(($# < 2 ? $# : 2))
	FP=$(vv_tls "$T/tls")
	vv_init "$S" >/dev/null
	AUD=$(vv_audit_log "$S")
	check "$name" vv_mount "$S" "$M" --listen "$addr" \
		--tls-cert "$T/tls/cert.pem" --tls-key "$T/tls/key.pem" "$@"
	case $addr in
	*:0) P=$(vv_port "$LOG" "$addr") ;;
	*) P=${addr##*:} ;;
	esac
}

# vv_free_port: a TCP port of 127.0.0.1 free a moment ago, for a server
# that must come back on the same port (--listen 127.0.0.1:PORT).
vv_free_port() {
	"$PY" -c "import socket; s=socket.socket(); s.bind(('127.0.0.1',0)); print(s.getsockname()[1])"
}

# vv_key_file USER FILE: a new API key of vault user USER of the vault on
# $M, written to FILE (mode 0600) for --key-file.
vv_key_file() {
	"$VV_BIN" key create "$1" "$M" > "$2" 2>/dev/null
	chmod 600 "$2"
}

# vv_alice_coll: the collection most vv:// tests mount: $M/coll owned by
# uid 1000, and its vault user alice (uid 1000) with an API key in $T/key;
# sets KID (the key's id, as audit records name it).
vv_alice_coll() {
	mkdir "$M/coll"
	chown 1000:1000 "$M/coll"
	"$VV_BIN" user add alice --uid 1000 --no-password "$M" >/dev/null
	vv_key_file alice "$T/key"
	KID=$(cut -c5-20 "$T/key")
}

# rkey TOKEN CODE: rpy with c, a Client authenticated with TOKEN, and
# err(op, *args), the request's status (0 when it succeeded).
rkey() {
	rpy "c = R.Client('127.0.0.1', $P)
c.auth_key('$1')
err = c.err
$2"
}

# rwatch NAME CLIENT LOGIN PATH: a protocol session in the background (pid
# in RP): c = CLIENT (a Python expression, e.g. "R.Client('127.0.0.1', $P)"),
# LOGIN (statements on c, e.g. "c.auth_key('TOKEN')"), then it reads PATH
# and creates $T/NAME.ready (waited for here, bounded); once $T/NAME.go
# exists it reads PATH every 0.2 s for up to 30 s and prints to $T/NAME.out
# what the first failure was: EACCES, closed, another status, or served.
# rwatch_end NAME: create NAME.go, wait, and succeed when the session was
# refused (EACCES) or closed (the output is shown otherwise).
rwatch() {
	rpy "c = $2
$3
c.read_file('$4')
open('$T/$1.ready', 'w').close()
while not os.path.exists('$T/$1.go'):
    time.sleep(0.05)
deadline = time.time() + 30
res = 'served'
while time.time() < deadline:
    time.sleep(0.2)
    try:
        c.read_file('$4')
    except R.Error as e:
        res = 'EACCES' if e.status == -5 else str(e.status)
        break
    except (EOFError, ConnectionError, OSError):
        res = 'closed'
        break
print(res)" > "$T/$1.out" 2>&1 &
	RP=$!
	local i
	for i in $(seq 1 200); do [ -e "$T/$1.ready" ] && break; sleep 0.1; done
}
rwatch_end() {
	touch "$T/$1.go"
	wait "$RP" || true
	grep -qx 'EACCES\|closed' "$T/$1.out" || { sed 's/^/# /' "$T/$1.out"; false; }
}

# vv_soon CMD...: until CMD succeeds (polled every 0.1 s, at most 30 s; no
# timing is asserted, the cap only ends a test that would hang).
vv_soon() {
	local i
	for i in $(seq 1 300); do "$@" && return 0; sleep 0.1; done
	return 1
}

# vv_rmount URL MNT [client options]: mount a vv:// URL (the client daemon
# logs to $T/client.log) and record it for cleanup.
vv_rmount() {
	local url=$1 mnt=$2
	shift 2
	mkdir -p "$mnt"
	"$VV_BIN" mount "$url" "$mnt" --log "$T/client.log" "$@" || return $?
	printf '%s\t%s\n' "$mnt" "" >> "$VV_MOUNTS"
}

# A fake server the test wrote as $T/evil.py (argv: MODE CERT KEY PORTFILE
# ARGS...; it writes its port to PORTFILE), mounted at R=$T/r-MODE with
# $T/key and the pin $FP.  vv_evil_init makes its TLS pair in $T/tls (FP)
# and $T/key (a key any fake server accepts), and makes the EXIT trap end
# it too; vv_evil_start MODE TIMEOUT [ARGS...] sets EVIL, P and R;
# vv_evil_stop unmounts and ends it.
# ((exit $rc) as an if condition: errexit must not stop the trap before
# vv_cleanup, which reads the status from $?.)
EVIL=
vv_evil_init() {
	FP=$(vv_tls "$T/tls")
	printf 'vv1.0000000000000000.secret\n' > "$T/key"
	chmod 600 "$T/key"
	trap 'rc=$?; [ -n "$EVIL" ] && { kill "$EVIL" 2>/dev/null || true; }
		if (exit $rc); then vv_cleanup; else vv_cleanup; fi' EXIT
}
# vv_evil_serve MODE [ARGS...]: only start $T/evil.py (as vv_evil_start,
# without the mount); EVIL its pid, P its port.
vv_evil_serve() {
	local mode=$1 i
	shift
	rm -f "$T/port"
	"$PY" "$T/evil.py" "$mode" "$T/tls/cert.pem" "$T/tls/key.pem" "$T/port" "$@" &
	EVIL=$!
	for i in $(seq 1 100); do [ -s "$T/port" ] && break; sleep 0.1; done
	P=$(cat "$T/port")
}
vv_evil_start() {
	local mode=$1 timeout=$2
	shift 2
	vv_evil_serve "$mode" "$@"
	R=$T/r-$mode
	rm -f "$T/client.log"
	check "$mode: mounted (login accepted by the fake server)" vv_rmount "vv://127.0.0.1:$P" "$R" \
		--key-file "$T/key" --pin "$FP" --timeout "$timeout"
}
vv_evil_stop() {
	local i
	# a request the kernel still finishes can hold the mount a moment
	for i in 1 2 3 4 5; do fusermount3 -u "$R" 2>/dev/null && break; sleep 1; done
	grep -q " $R " /proc/mounts && fusermount3 -uz "$R"
	kill "$EVIL"
	wait "$EVIL" 2>/dev/null || true
	EVIL=
}

# vv_evil_alive MODE: after a fake server's bad reply, two checks: the
# client daemon serving vv://127.0.0.1:$P still runs, and it answers the
# next request (a stat of $R/y: an error is an answer, a hang is not).
vv_evil_alive() {
	local cpid got
	cpid=$(ps -eo pid,args | awk -v u="vv://127.0.0.1:$P" '$0 ~ "vecvault mount " u " " { print $1 }')
	check "$1: the client daemon is still running" sh -c "[ -n '$cpid' ] && kill -0 $cpid"
	got=$(timeout 60 "$PY" -c "$VV_PYOP" stat "$R/y" 2>&1)
	check "$1: and answers the next request (got $got)" \
		sh -c "case '$got' in EIO|ENOTCONN|ENOENT) exit 0;; *) exit 1;; esac"
}

# refused PATTERN ARGS...: 'vecvault mount ARGS' (a vv:// mount on $R)
# fails, prints PATTERN (grep -E; output in $T/out) and leaves no mount.
refused() {
	local pat=$1 rc=0
	shift
	mkdir -p "$R"
	"$VV_BIN" mount "$@" > "$T/out" 2>&1 || rc=$?
	if [ "$rc" -eq 0 ]; then
		fusermount3 -u "$R" 2>/dev/null
		echo "# mounted: $*"
		return 1
	fi
	grep -q "$R" /proc/mounts && { echo "# left a mount"; return 1; }
	grep -Eq "$pat" "$T/out" || { echo "# wanted /$pat/, got:"; sed 's/^/#   /' "$T/out"; return 1; }
}
