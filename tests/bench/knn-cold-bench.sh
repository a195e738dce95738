#!/bin/bash
# knn-cold-bench.sh - the cold k-NN query of remote-bench.sh alone, old
# and new binaries interleaved in one run: for each binary a store mounted
# locally with --listen and a vv:// mount of it (its own daemons), the same
# ROWS x 128 float32 segment in each, the daemons' offload caches warmed;
# then REPS rounds of: drop caches, `vecvault query -k K` on the local
# mount; drop caches, the same on the vv:// mount; for each binary in turn.
# Prints medians of wall time and of CPU time (the tool's plus every daemon
# of that binary's), and new/old ratios.  Runs as root.  Asserts nothing.
#
#   VV_BIN=NEW VV_OLD=OLD [ROWS=1000000 REPS=7 NQ=1 K=10] tests/bench/knn-cold-bench.sh
set -u
VV_SRC=$(cd "$(dirname "$0")/../.." && pwd)
VV_BIN=${VV_BIN:-$VV_SRC/build/vecvault}
VV_OLD=${VV_OLD:-}
ROWS=${ROWS:-1000000}
REPS=${REPS:-7}
NQ=${NQ:-1}
K=${K:-10}
PY=/usr/bin/python3
W=$(mktemp -d /var/tmp/vv-kbench.XXXXXX)
export VECVAULT_STATE_DIR=$W/state VECVAULT_AUDIT_DIR=$W/audit VECVAULT_TEST_KDF=1
export XDG_RUNTIME_DIR=$W/run
mkdir -p -m 700 "$W/state" "$W/audit" "$W/run"
BINS="new:$VV_BIN"
[ -n "$VV_OLD" ] && BINS="old:$VV_OLD $BINS"
cleanup() {
	for b in $BINS; do n=${b%%:*}
		for m in "$W/$n/vv" "$W/$n/local"; do
			fusermount3 -u "$m" 2>/dev/null || fusermount3 -uz "$m" 2>/dev/null
		done
	done
	sleep 1
	rm -rf --one-file-system "$W"
}
trap cleanup EXIT
drop() { sync; echo 3 > /proc/sys/vm/drop_caches; }
ticks() { local s=0 p; for p in "$@"; do s=$((s + $(awk '{ print $14 + $15 }' /proc/$p/stat 2>/dev/null || echo 0))); done; echo $s; }
TCK=$(getconf CLK_TCK)
printf 'bench pass\n' > "$W/pass"; chmod 600 "$W/pass"
"$PY" -c "
import numpy as np
rng = np.random.default_rng(1)
np.save('$W/seg.npy', rng.standard_normal(($ROWS, 128)).astype('<f4'))
np.save('$W/q.npy', rng.standard_normal(($NQ, 128)).astype('<f4'))"
declare -A PIDS
for b in $BINS; do
	n=${b%%:*} bin=${b#*:} d=$W/${b%%:*}
	mkdir -p "$d/local" "$d/vv"
	"$bin" init "$d/store" --passfile "$W/pass" --kdf test >/dev/null
	"$bin" tls selfsigned --out "$d/tls" --name 127.0.0.1 > "$d/fp"
	"$bin" mount "$d/store" "$d/local" --passfile "$W/pass" --no-audit --log "$d/daemon.log" \
		--listen 127.0.0.1:0 --tls-cert "$d/tls/cert.pem" --tls-key "$d/tls/key.pem" || exit 1
	for i in $(seq 1 100); do
		P=$(sed -n 's/.*remote: listening on 127.0.0.1:0 (port \([0-9]*\)).*/\1/p' "$d/daemon.log" | tail -1)
		[ -n "$P" ] && break; sleep 0.1
	done
	mkdir "$d/local/coll"; chown 1000:1000 "$d/local/coll"
	"$bin" user add bench --uid 1000 --no-password "$d/local" >/dev/null
	"$bin" key create bench "$d/local" > "$d/key" 2>/dev/null; chmod 600 "$d/key"
	"$bin" mount "vv://127.0.0.1:$P/coll" "$d/vv" --key-file "$d/key" \
		--pin "$(sed -n 's/^sha256://p' "$d/fp")" --log "$d/client.log" || exit 1
	"$bin" collection create "$d/local/coll/vec" --dim 128 --metric l2 >/dev/null
	cp "$W/seg.npy" "$d/local/coll/vec/"
	PIDS[$n]=$(ps -eo pid,args | awk -v a="$d/store" -v u="vv://127.0.0.1:$P/coll" \
		'$0 ~ "vecvault mount " a " " || $0 ~ "vecvault mount " u " " { print $1 }' | tr '\n' ' ')
	for t in local vv; do
		for i in $(seq 1 40); do
			"$bin" query "$d/$t/vec" -q "$W/q.npy" -k "$K" --stats 2>&1 >/dev/null |
				grep -q ' 0 still being decrypted' && break
			sleep 0.5
		done
	done
	echo "# $n: $bin; daemons ${PIDS[$n]}; --stats of a cold vv:// query:"
	drop; "$bin" query "$d/vv/vec" -q "$W/q.npy" -k "$K" --stats 2>&1 >/dev/null | sed 's/^/#   /'
done
declare -A WALL CPU
for rep in $(seq 1 "$REPS"); do
	for b in $BINS; do
		n=${b%%:*} bin=${b#*:} d=$W/${b%%:*}
		for t in local vv; do
			drop
			c0=$(ticks ${PIDS[$n]})
			o=$( { /usr/bin/time -f '%e %U %S' "$bin" query "$d/$t/vec" -q "$W/q.npy" -k "$K" >/dev/null; } 2>&1 | tail -1)
			c1=$(ticks ${PIDS[$n]})
			WALL[$n.$t]+="$(echo "$o" | awk '{ print $1 }') "
			CPU[$n.$t]+="$(echo "$o" | awk -v d=$((c1 - c0)) -v h="$TCK" '{ print $2 + $3 + d / h }') "
		done
	done
done
med() { printf '%s\n' $@ | sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
echo "# rows $ROWS, queries $NQ, k $K, $REPS rounds, load $(cut -d' ' -f1-3 /proc/loadavg)"
printf '%-10s %10s %10s %10s %10s\n' line wall_s cpu_s new/old_w new/old_c
for t in local vv; do
	for b in $BINS; do n=${b%%:*}
		w=$(med ${WALL[$n.$t]}); c=$(med ${CPU[$n.$t]})
		r1= r2=
		if [ "$n" = new ] && [ -n "$VV_OLD" ]; then
			r1=$(echo "$w / $(med ${WALL[old.$t]})" | bc -l | cut -c1-5)
			r2=$(echo "$c / $(med ${CPU[old.$t]})" | bc -l | cut -c1-5)
		fi
		printf '%-10s %10s %10s %10s %10s\n' "$n.$t" "$w" "$c" "$r1" "$r2"
	done
done
