#!/bin/bash
# trash-callgrind.sh - what the recycle bin costs `rm -rf`, counted in
# instructions: the daemon runs under valgrind's callgrind with counting
# off; it is on only during `rm -rf` of FILES small files in 20
# directories and the `sync -f` after it (so the commits are counted);
# trash on (30 days) and off (--trash-days 0), same binary, same tree.
# Deterministic and independent of the machine's load (wall and CPU
# times on a shared machine are not), unlike trash-bench.sh.  Prints the
# instruction counts, the ratio on/off, and its request and commit sides.
#
#   VV_BIN=/path/to/vecvault tests/bench/trash-callgrind.sh [FILES]   (root; default 2000)
set -eu
BENCH_NAME=trash-callgrind
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/fs-lib.sh"
VV=${VV_BIN:?set VV_BIN to a vecvault binary (a Release build)}
FILES=${1:-2000}
command -v valgrind >/dev/null && command -v callgrind_control >/dev/null ||
	{ echo "trash-callgrind: needs valgrind (Debian package valgrind)" >&2; exit 2; }
W=$(mktemp -d /tmp/vv-trash-cg.XXXXXX)
trap 'mountpoint -q "$W/mnt" && fusermount3 -uz "$W/mnt"; rm -rf "$W"' EXIT
export VECVAULT_TEST_KDF=1 VECVAULT_STATE_DIR=$W/state VECVAULT_AUDIT_DIR=$W/audit
printf 'bench passphrase\n' > "$W/pass"
chmod 600 "$W/pass"
small_tree "$W/src/tree" "$FILES"
one() {        # DAYS: prints "TOTAL REQUEST COMMIT"
	rm -rf "$W/store" "$W/state" "$W/audit" "$W/cg.out"
	"$VV" init "$W/store" --passfile "$W/pass" --kdf test >/dev/null
	mkdir -p "$W/mnt"
	valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file="$W/cg.out" \
		"$VV" mount "$W/store" "$W/mnt" --passfile "$W/pass" --trash-days "$1" -f 2>"$W/vg.log" &
	local vp=$! i
	for i in $(seq 1 600); do mountpoint -q "$W/mnt" && break; sleep 0.2; done
	mountpoint -q "$W/mnt" || { echo "trash-callgrind: the daemon did not mount" >&2; exit 1; }
	cp -a "$W/src/tree" "$W/mnt/tree"
	sync -f "$W/mnt"
	sleep 1
	callgrind_control -i on "$vp" >/dev/null 2>&1
	rm -rf "$W/mnt/tree"
	sync -f "$W/mnt"
	callgrind_control -i off "$vp" >/dev/null 2>&1
	fusermount3 -u "$W/mnt"
	wait "$vp" || true
	callgrind_annotate --inclusive=yes "$W/cg.out" 2>/dev/null | tr -d , | awk '
		/PROGRAM TOTALS/ { t = $1 } / [?]+:remove_op / { r = $1 } / [?]+:vault_commit_group / { c = $1 }
		END { print t + 0, r + 0, c + 0 }'
}
read -r on_t on_r on_c <<<"$(one 30)"
read -r off_t off_r off_c <<<"$(one 0)"
echo "# rm -rf of $FILES files in 20 directories + sync -f, daemon instructions (callgrind)"
echo "# trash on: $on_t (request side $on_r, commits $on_c); off: $off_t ($off_r, $off_c)"
awk -v a="$on_t" -v b="$off_t" -v ra="$on_r" -v rb="$off_r" -v ca="$on_c" -v cb="$off_c" 'BEGIN {
	printf "instructions, trash on / off:         %.3f\n", a / b
	printf "request side (remove_op), on / off:   %.3f\n", ra / rb
	printf "commit side, on / off:                %.3f\n", ca / cb
}'
