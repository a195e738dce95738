#!/bin/bash
# grant-bench.sh - what grants cost.  On one vecvault mount:
#  1. `vecvault grant R readonly` over a tree of GRANT_FILES files versus
#     `setfacl -R -m g:R:rX -d -m g:R:rX` on the same tree through the
#     mount (each run undone by `vecvault revoke` before the next); the
#     ratio setfacl/grant (goal >= 5).
#  2. `ls -lR` of a smaller tree (GRANT_LS_FILES) and `vecvault query` over
#     a collection of segments, as a member of a readonly role versus as the
#     owner of the trees (warm, interleaved, GRANT_READ_REPS), with 1, 10
#     and 100 roles granted on both (the member's role first, so every
#     check meets all the others too); the ratio member/owner (goal within
#     5%, not growing with the roles).
# Prints medians over GRANT_REPS and the ratios.  Not part of ctest; run by
# hand as root (it makes users vvbown, vvbmem and groups vvbr1..vvbr100,
# removed at exit).  See tests/bench/README.md.
#
#   env: VV_BIN       vecvault binary (default: build/vecvault, then PATH)
#        GRANT_FILES  files in the tree (default 100000, in dirs of 1000)
#        GRANT_REPS   repetitions of grant and setfacl (default 3)
#        GRANT_LS_FILES  files of the ls -lR tree (default 5000)
#        GRANT_READ_REPS repetitions of the reading lines (default 7)
#        BENCH_DIR    scratch directory (default /var/tmp/vv-grant-bench.PID)
#   --quick  GRANT_FILES=10000 unless set
set -eu

for a in "$@"; do
	case $a in
	--quick) : "${GRANT_FILES:=10000}" ;;
	-h | --help) sed -n '2,26p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
	*) echo "grant-bench: unknown option $a" >&2; exit 2 ;;
	esac
done
GRANT_FILES=${GRANT_FILES:-100000}
GRANT_REPS=${GRANT_REPS:-3}
GRANT_LS_FILES=${GRANT_LS_FILES:-5000}
GRANT_READ_REPS=${GRANT_READ_REPS:-7}
HERE=$(cd "$(dirname "$0")" && pwd)
BENCH_NAME=grant-bench
FS_STRICT=1
. "$HERE/fs-lib.sh"
bench_need_root "it makes users and groups, and FUSE mounts"
command -v setfacl >/dev/null || die "needs setfacl (Debian: acl)"

B=${BENCH_DIR:-/var/tmp/vv-grant-bench.$$}
mkdir -p "$B"
B=$(cd "$B" && pwd)
RES=$B/results.tsv                   # line roles rep us
: > "$RES"
NROLES=100

ids_cleanup() {
	userdel vvbown 2>/dev/null || true
	userdel vvbmem 2>/dev/null || true
	for i in $(seq 1 $NROLES); do groupdel "vvbr$i" 2>/dev/null || true; done
}
cleanup() {
	local rc=$?
	set +e
	unmount_all
	ids_cleanup
	[ -z "${BENCH_KEEP:-}" ] && rm -rf "$B"
	exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP

printf 'grant-bench passphrase\n' > "$B/pass"
chmod 600 "$B/pass"
ids_cleanup
for i in $(seq 1 $NROLES); do groupadd "vvbr$i"; done
useradd -M -N -g nogroup -s /usr/sbin/nologin vvbown
useradd -M -N -g nogroup -G vvbr$NROLES -s /usr/sbin/nologin vvbmem
as() { local u=$1; shift; setpriv --reuid="$u" --regid=nogroup --init-groups -- "$@"; }
VVENV="VECVAULT_STATE_DIR=$B/vv-state VECVAULT_AUDIT_DIR=$B/vv-audit"
vv() { env $VVENV "$VV" "$@"; }

# timed LINE ROLES REP CMD...: run CMD (output discarded), record its µs.
timed() {
	local line=$1 roles=$2 rep=$3 t0 t1
	shift 3
	t0=$(now_us)
	"$@" > /dev/null
	t1=$(now_us)
	printf '%s\t%s\t%s\t%d\n' "$line" "$roles" "$rep" $((t1 - t0)) >> "$RES"
}

fs_setup vecvault
fs_mount vecvault
M=$B/vecvault/mnt
note "vecvault: $VV; files: $GRANT_FILES; reps: $GRANT_REPS; scratch: $B"

# The trees: directories of 1000 (c) and 100 (r) empty files; a collection
# of segments (q).
tree() {
	mkdir "$1"
	$PY - "$1" "$2" "$3" <<'EOF'
import os, sys
b, n, per = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
for i in range(n):
    if i % per == 0:
        os.mkdir(f"{b}/d{i // per}")
    os.close(os.open(f"{b}/d{i // per}/f{i}", os.O_CREAT | os.O_WRONLY, 0o640))
EOF
}
tree "$M/c" "$GRANT_FILES" 1000
tree "$M/r" "$GRANT_LS_FILES" 100
vv collection create "$M/q" --dim 64 --metric l2 > /dev/null
$PY - "$M/q" "$B/q.npy" <<'EOF'
import numpy as np, sys
rng = np.random.default_rng(10)
for s in range(8):
    np.save(f"{sys.argv[1]}/s{s}.npy", rng.standard_normal((20000, 64)).astype('<f4'))
np.save(sys.argv[2], rng.standard_normal((100, 64)).astype('<f4'))
EOF
chmod 644 "$B/q.npy"
chown -R vvbown "$M/c" "$M/r" "$M/q"
chmod -R o-rwx,g-w "$M/c" "$M/r" "$M/q"
chmod 755 "$B" "$B/vecvault" "$M"
sync
for i in $(seq 1 $NROLES); do vv role create "vvbr$i" "$M" > /dev/null; done

# ---- 1. grant versus setfacl -R --------------------------------------------------
for rep in $(seq 1 "$GRANT_REPS"); do
	timed "grant readonly" 1 "$rep" vv grant vvbr1 readonly "$M/c"
	vv revoke vvbr1 "$M/c" > /dev/null
	timed "setfacl -R -m -d -m" 1 "$rep" setfacl -R -m g:vvbr1:rX -d -m g:vvbr1:rX "$M/c"
	vv revoke vvbr1 "$M/c" > /dev/null
done

# ---- 2. reading as a member of a readonly role versus as the owner -----------------
granted=0
for roles in 1 10 100; do
	# Roles vvbr100, vvbr99, ...: the member's (vvbr100) is granted first,
	# so with more roles its entry has more entries around it.
	while [ $granted -lt $roles ]; do
		vv grant "vvbr$((NROLES - granted))" readonly "$M/r" "$M/q" > /dev/null
		granted=$((granted + 1))
	done
	as vvbmem ls -lR "$M/r" > /dev/null; as vvbown ls -lR "$M/r" > /dev/null   # warm
	as vvbmem "$VV" query "$M/q" -q "$B/q.npy" -k 10 > /dev/null
	as vvbown "$VV" query "$M/q" -q "$B/q.npy" -k 10 > /dev/null
	for rep in $(seq 1 "$GRANT_READ_REPS"); do
		# Alternate who goes first, so drift does not favour one side.
		if [ $((rep % 2)) = 1 ]; then a=owner b=member; else a=member b=owner; fi
		for who in $a $b; do
			u=vvbown; [ $who = member ] && u=vvbmem
			timed "ls -lR, $who" "$roles" "$rep" as $u ls -lR "$M/r"
			timed "query, $who" "$roles" "$rep" as $u "$VV" query "$M/q" -q "$B/q.npy" -k 10
		done
	done
done

$PY - "$RES" "$GRANT_FILES" "$GRANT_LS_FILES" <<'EOF'
import collections, statistics, sys
t = collections.defaultdict(list)
for line in open(sys.argv[1]):
    name, roles, rep, us = line.rstrip("\n").split("\t")
    t[(name, int(roles))].append(int(us))
med = {k: statistics.median(v) for k, v in t.items()}
n = int(sys.argv[2])
g, s = med[("grant readonly", 1)], med[("setfacl -R -m -d -m", 1)]
print(f"grant readonly over {n} files (+{n // 1000} dirs): {g / 1e6:.2f} s (median)")
print(f"setfacl -R -m g:R:rX -d -m g:R:rX on the mount: {s / 1e6:.2f} s (median)")
print(f"ratio setfacl / grant: {s / g:.1f}x (goal >= 5)")
print()
print(f"ls -lR over {sys.argv[3]} files; query: 8 segments of 20000 x 64 f32, 100 queries, k 10")
print(f"{'roles':>5}  {'line':<8} {'owner s':>9} {'member s':>9} {'member/owner':>13}")
for roles in (1, 10, 100):
    for what in ("ls -lR", "query"):
        o, m = med[(f"{what}, owner", roles)], med[(f"{what}, member", roles)]
        print(f"{roles:>5}  {what:<8} {o / 1e6:>9.3f} {m / 1e6:>9.3f} {m / o:>13.3f}")
print("(goal: member/owner within 1.05, not growing with the roles)")
EOF
