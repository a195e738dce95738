#!/bin/bash
# remote-bench.sh - the same workload, in one run over loopback, on the
# local vecvault mount, a vv:// mount of it, and sshfs (Debian sshfs +
# openssh-server on 127.0.0.1; skipped with a note when missing).  Prints
# medians of REPS runs and ratios to the local mount and to sshfs.  Runs
# as root (cold lines drop the page cache).  Asserts nothing.
#
#   sudo VV_BIN=build/vecvault tests/bench/remote-bench.sh
#   SIZE_MIB=1024 FILES=4000 ROWS=1000000 REPS=3 (defaults)
#   LINES="ls rsync" runs only those lines (of: write cold warm tar ls
#   rsync knn; ls and rsync extract the tree untimed when tar is left out)
#
# Lines: seq write + fsync (dd bs=1M conv=fsync), seq read cold (drop
# caches), warm re-read, tar -x of FILES small files, ls -lR cold, rsync -a
# with nothing to send, one k-NN query (k 10) over ROWS x 128 float32 (on
# sshfs: the tool reads the file and scans locally; on vv://: the server
# scans).  The CPU seconds of the vv:// client daemon per GiB moved (its
# share: TLS and forwarding) are printed after the table, and those of the
# server daemon per GiB for the local and the vv:// write + cold read (the
# difference is its share of TLS and the protocol).
set -u
VV_SRC=$(cd "$(dirname "$0")/../.." && pwd)
VV_BIN=${VV_BIN:-$VV_SRC/build/vecvault}
SIZE_MIB=${SIZE_MIB:-1024}
FILES=${FILES:-4000}
ROWS=${ROWS:-1000000}
REPS=${REPS:-3}
LINES=${LINES:-write cold warm tar ls rsync knn}
line() { case " $LINES " in *" $1 "*) return 0;; esac; return 1; }
PY=/usr/bin/python3
W=$(mktemp -d /var/tmp/vv-rbench.XXXXXX)
export VECVAULT_STATE_DIR=$W/state VECVAULT_AUDIT_DIR=$W/audit VECVAULT_TEST_KDF=1
export XDG_RUNTIME_DIR=$W/run
mkdir -p -m 700 "$W/state" "$W/audit" "$W/run"
M=$W/local R=$W/vv S=$W/sshfs
SSHD_PID=
cleanup() {
	for m in "$R" "$S" "$M"; do fusermount3 -u "$m" 2>/dev/null || fusermount3 -uz "$m" 2>/dev/null; done
	[ -n "$SSHD_PID" ] && kill "$SSHD_PID" 2>/dev/null
	sleep 1
	# The daemons write their anchors as they exit, after the unmount.
	local p i
	for p in ${CPID:-} ${SPID:-}; do
		for i in $(seq 1 100); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
	done
	# ... and remove their pid file after that: the server's is the sure sign
	for i in $(seq 1 100); do [ -e "$W/spid" ] || break; sleep 0.1; done
	rm -rf --one-file-system "$W"
}
trap cleanup EXIT
now() { date +%s.%N; }
drop() { sync; echo 3 > /proc/sys/vm/drop_caches; }

printf 'bench pass\n' > "$W/pass"; chmod 600 "$W/pass"
"$VV_BIN" init "$W/store" --passfile "$W/pass" --kdf test >/dev/null
"$VV_BIN" tls selfsigned --out "$W/tls" --name 127.0.0.1 > "$W/fp"
FP=$(sed -n 's/^sha256://p' "$W/fp")
mkdir -p "$M" "$R" "$S"
"$VV_BIN" mount "$W/store" "$M" --passfile "$W/pass" --no-audit --log "$W/daemon.log" --pid-file "$W/spid" \
	--listen 127.0.0.1:0 --tls-cert "$W/tls/cert.pem" --tls-key "$W/tls/key.pem" || exit 1
for i in $(seq 1 100); do
	P=$(sed -n 's/.*remote: listening on 127.0.0.1:0 (port \([0-9]*\)).*/\1/p' "$W/daemon.log" | tail -1)
	[ -n "$P" ] && break; sleep 0.1
done
mkdir "$M/coll"
chown 1000:1000 "$M/coll"
"$VV_BIN" user add bench --uid 1000 --no-password "$M" >/dev/null
"$VV_BIN" key create bench "$M" > "$W/key" 2>/dev/null; chmod 600 "$W/key"
"$VV_BIN" mount "vv://127.0.0.1:$P/coll" "$R" --key-file "$W/key" --pin "$FP" \
	--log "$W/client.log" || exit 1
CPID=$(ps -eo pid,args | awk -v u="vv://127.0.0.1:$P/coll" '$0 ~ "vecvault mount " u " " { print $1 }')
SPID=$(ps -eo pid,args | awk -v s="$W/store" '$0 ~ "vecvault mount " s " " { print $1 }' | head -1)

TARGETS="local:$M/coll vv:$R"
if command -v sshfs >/dev/null && [ -x /usr/sbin/sshd ]; then
	SP=$("$PY" -c "import socket; s=socket.socket(); s.bind(('127.0.0.1',0)); print(s.getsockname()[1])")
	mkdir -p "$W/ssh" && ssh-keygen -q -t ed25519 -N '' -f "$W/ssh/id" &&
	ssh-keygen -q -t ed25519 -N '' -f "$W/ssh/host" &&
	cat > "$W/ssh/sshd_config" <<EOF
Port $SP
ListenAddress 127.0.0.1
HostKey $W/ssh/host
AuthorizedKeysFile $W/ssh/id.pub
PermitRootLogin prohibit-password
PidFile $W/ssh/pid
StrictModes no
Subsystem sftp internal-sftp
EOF
	mkdir -p /run/sshd   # its privilege separation directory
	/usr/sbin/sshd -f "$W/ssh/sshd_config" -D & SSHD_PID=$!
	sleep 1
	if sshfs -o IdentityFile="$W/ssh/id",StrictHostKeyChecking=no,UserKnownHostsFile=/dev/null,port=$SP \
		"root@127.0.0.1:$M/coll" "$S" 2>/dev/null; then
		TARGETS="$TARGETS sshfs:$S"
	else
		echo "# sshfs: could not mount over 127.0.0.1:$SP; skipped"
	fi
else
	echo "# sshfs or openssh-server not installed: the sshfs column is skipped"
	echo "#   (apt-get install sshfs openssh-server)"
fi

if line write || line cold || line warm; then
	head -c $((SIZE_MIB << 20)) /dev/urandom > /dev/shm/vv-rbench.big
fi
"$PY" - "$W" "$FILES" <<'PY'
import os, random, sys, tarfile, io
w, n = sys.argv[1], int(sys.argv[2])
random.seed(7)
with tarfile.open(w + "/tree.tar", "w") as t:
    for i in range(n):
        sz = random.choice([512, 2048, 4096, 8192, 32768])
        data = os.urandom(sz)
        ti = tarfile.TarInfo("t/d%02d/e%02d/f%05d" % (i % 30, (i // 30) % 10, i)); ti.size = sz
        t.addfile(ti, io.BytesIO(data))
PY
if line knn; then "$PY" -c "
import numpy as np
rng = np.random.default_rng(1)
np.save('$W/seg.npy', rng.standard_normal(($ROWS, 128)).astype('<f4'))
np.save('$W/q.npy', rng.standard_normal((1, 128)).astype('<f4'))" 2>/dev/null || echo "# no numpy: no query line"
fi

cpu() { awk '{ print $14 + $15 }' "/proc/${1:-$CPID}/stat" 2>/dev/null || echo 0; }
TCK=$(getconf CLK_TCK)
declare -A RES
CPU_BYTES=0; CPU_TICKS=0; LS_CPU=()
declare -A SRV_TICKS=() SRV_BYTES=()
for rep in $(seq 1 "$REPS"); do
	for t in $TARGETS; do
		n=${t%%:*}; d=${t#*:}/$n          # each target in a tree it made itself
		rm -rf "$d" 2>/dev/null; mkdir -p "$d"
		if line write || line cold || line warm; then
			drop
			c0=$(cpu); s0=$(cpu "$SPID")
			a=$(now); dd if=/dev/shm/vv-rbench.big of="$d/big" bs=1M conv=fsync status=none; b=$(now)
			RES[$n.write.$rep]=$(echo "$SIZE_MIB / ($b - $a)" | bc -l)
			drop
			a=$(now); dd if="$d/big" of=/dev/null bs=1M status=none; b=$(now)
			RES[$n.cold.$rep]=$(echo "$SIZE_MIB / ($b - $a)" | bc -l)
			[ "$n" = vv ] && { CPU_TICKS=$((CPU_TICKS + $(cpu) - c0)); CPU_BYTES=$((CPU_BYTES + 2 * SIZE_MIB)); }
			SRV_TICKS[$n]=$(( ${SRV_TICKS[$n]:-0} + $(cpu "$SPID") - s0 ))
			SRV_BYTES[$n]=$(( ${SRV_BYTES[$n]:-0} + 2 * SIZE_MIB ))
			a=$(now); dd if="$d/big" of=/dev/null bs=1M status=none; b=$(now)
			RES[$n.warm.$rep]=$(echo "$SIZE_MIB / ($b - $a)" | bc -l)
		fi
		if line tar || line ls || line rsync; then
			a=$(now); tar --no-same-owner -xf "$W/tree.tar" -C "$d"; b=$(now)
			line tar && RES[$n.tar.$rep]=$(echo "$b - $a" | bc -l)
		fi
		if line ls; then
			drop
			c0=$(cpu); s0=$(cpu "$SPID")
			a=$(now); ls -lR "$d/t" > /dev/null; b=$(now)
			RES[$n.ls.$rep]=$(echo "$b - $a" | bc -l)
			[ "$n" = vv ] && LS_CPU+=("$(( $(cpu) - c0 + $(cpu "$SPID") - s0 ))")
		fi
		if line rsync; then
			rsync -a "$d/t/" "$W/rs-$n/" 2>/dev/null
			a=$(now); rsync -a "$W/rs-$n/" "$d/t/"; b=$(now)
			RES[$n.rsync.$rep]=$(echo "$b - $a" | bc -l)
		fi
		if line knn && [ -s "$W/seg.npy" ]; then
			"$VV_BIN" collection create "$d/vec" --dim 128 --metric l2 >/dev/null 2>&1 || mkdir -p "$d/vec"
			cp "$W/seg.npy" "$d/vec/"
			# Warm the daemon's plaintext cache: the first queries of a
			# big segment fall back to reading it while the daemon is
			# still decrypting it (--stats says so); wait until one is
			# scanned there (at most 20 tries; sshfs has no daemon).
			for i in $(seq 1 20); do
				"$VV_BIN" query "$d/vec" -q "$W/q.npy" -k 10 --stats 2>&1 >/dev/null |
					grep -q ' 0 still being decrypted' && break
				[ "$n" = sshfs ] && break
				sleep 0.5
			done
			drop
			a=$(now); "$VV_BIN" query "$d/vec" -q "$W/q.npy" -k 10 --metric l2 >/dev/null 2>&1; b=$(now)
			RES[$n.knn.$rep]=$(echo "$b - $a" | bc -l)
		fi
	done
done
med() { printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
printf '%-22s %-6s' line unit; for t in $TARGETS; do printf ' %12s' "${t%%:*}"; done
printf ' %12s %12s\n' vv/local vv/sshfs
for l in write:MB/s cold:MB/s warm:MB/s tar:s ls:s rsync:s knn:s; do
	k=${l%%:*}; u=${l#*:}
	line "$k" && [ -n "${RES[local.$k.1]:-}" ] || continue
	printf '%-22s %-6s' "$k" "$u"
	declare -A MED=()
	for t in $TARGETS; do
		n=${t%%:*}; vals=()
		for rep in $(seq 1 "$REPS"); do vals+=("${RES[$n.$k.$rep]}"); done
		MED[$n]=$(med "${vals[@]}"); printf ' %12.3f' "${MED[$n]}"
	done
	# ratios as "times faster" of vv: throughput vv/x, durations x/vv
	if [ "$u" = MB/s ]; then r1=$(echo "${MED[vv]} / ${MED[local]}" | bc -l)
		r2=${MED[sshfs]:+$(echo "${MED[vv]} / ${MED[sshfs]}" | bc -l)}
	else r1=$(echo "${MED[local]} / ${MED[vv]}" | bc -l)
		r2=${MED[sshfs]:+$(echo "${MED[sshfs]} / ${MED[vv]}" | bc -l)}
	fi
	printf ' %12.3f %12s\n' "$r1" "${r2:+$(printf '%.3f' "$r2")}"
done
echo "# ratios: how many times faster vv:// is (>1 = faster), medians of $REPS"
[ ${#LS_CPU[@]} -gt 0 ] &&
	echo "# vv:// client + server daemon CPU during ls -lR: $(echo "$(med "${LS_CPU[@]}") / $TCK" | bc -l | cut -c1-6) s (median)"
[ "$CPU_BYTES" -gt 0 ] || exit 0
echo "# vv:// client daemon CPU (TLS + forwarding): $(echo "$CPU_TICKS / $TCK / ($CPU_BYTES / 1024)" | bc -l | cut -c1-6) s per GiB written or read"
for n in local vv; do
	echo "# server daemon CPU during the $n write + cold read: $(echo "${SRV_TICKS[$n]:-0} / $TCK / (${SRV_BYTES[$n]:-1} / 1024)" | bc -l | cut -c1-6) s per GiB"
done
rm -f /dev/shm/vv-rbench.big
