#!/bin/bash
# t1034-readdir-cache-attack: the listing the kernel keeps for a directory
# (FOPEN_CACHE_DIR, shared by every caller: docs/design.md "Directory
# listings") gives no unprivileged user a name the daemon would not:
#  1. a directory root listed (kept), then chmod 0700: nobody's and
#     u1000's opendir refused (EACCES, audited), also by reopening an
#     O_PATH handle through /proc/self/fd; getdents on O_PATH is EBADF;
#     mode 3 (O_ACCMODE) is EISDIR; u1000's own directory, listed, then
#     chmod 000 by u1000: its next listing refused;
#  2. a name renamed away into a directory u1000 may not list is gone from
#     u1000's next listing of the first (and from nobody's), and absent
#     from anything u1000 can list;
#  3. a directory others may read but not search: names from the kept
#     listing, but u1000's stat of each still asks the daemon (EACCES);
#  4. .trash/files: the views of u1000 and u1001 stay their own after
#     each listed it twice, in turn (root sees both).
. "$(dirname "$0")/test-lib.sh"
vv_need_fuse

S=$T/store
M=$T/mnt
vv_init "$S" >/dev/null 2>&1
LOG=$(vv_audit_log "$S")
vv_mount "$S" "$M"
chmod 755 "$M"

C=$M/c
mkdir -m 755 "$C" "$C/pub" "$C/priv"
for i in $(seq 1 40); do echo "$i" > "$C/pub/f$i"; echo "$i" > "$C/priv/p$i"; done
echo secret > "$C/pub/secret-plan"
chmod 644 "$C/pub/"* "$C/priv/"*

# names WHO DIR: the sorted listing of DIR as WHO (or the errno name).
names() { "as_$1" "$PY" -c '
import errno, os, sys
try: print("\n".join(sorted(os.listdir(sys.argv[1]))))
except OSError as e: print(errno.errorcode[e.errno])' "$2"; }
# has WHO DIR NAME / lacks WHO DIR NAME: WHO's listing of DIR (un)names NAME.
has() { names "$1" "$2" | grep -qx "$3"; }
lacks() { local l; l=$(names "$1" "$2") && [ "$l" != EACCES ] && ! grep -qx "$3" <<< "$l"; }
# count WHO DIR N: WHO's listing of DIR has N names.
count() { [ "$(names "$1" "$2" | grep -c .)" -eq "$3" ]; }

# ---- 1. chmod 0700 after root's listing ---------------------------------------------
ls -la "$C/priv" >/dev/null; ls -la "$C/priv" >/dev/null
check "nobody listed priv while it was 0755" count nobody "$C/priv" 40
chmod 700 "$C/priv"
ls -la "$C/priv" >/dev/null
check "after chmod 0700: nobody's listing refused" test "$(names nobody "$C/priv")" = EACCES
check "after chmod 0700: u1000's listing refused" test "$(names u1000 "$C/priv")" = EACCES
check "nobody's opendir refusal audited" \
	vv_audit_has "$LOG" op=opendir uid=65534 path=/c/priv result=EACCES
check "u1000's opendir refusal audited" \
	vv_audit_has "$LOG" op=opendir uid=1000 path=/c/priv result=EACCES
handles() { as_nobody "$PY" -c '
import errno, os, sys
d = sys.argv[1]
def e(f):
    try: f(); return "OK"
    except OSError as x: return errno.errorcode[x.errno]
fd = os.open(d, os.O_PATH)
print("getdents-opath", e(lambda: os.listdir(fd)))
print("reopen", e(lambda: os.close(os.open("/proc/self/fd/%d" % fd, os.O_RDONLY | os.O_DIRECTORY))))
print("mode3", e(lambda: os.close(os.open(d, 3))))
print("scandir", e(lambda: list(os.scandir(d))))' "$1"; }
handles "$C/priv" > "$T/h"
sed 's/^/# /' "$T/h"
check "nobody: getdents on an O_PATH handle is EBADF" grep -qx "getdents-opath EBADF" "$T/h"
check "nobody: reopening the O_PATH handle is refused" grep -qx "reopen EACCES" "$T/h"
check "nobody: mode 3 on the directory is EISDIR" grep -qx "mode3 EISDIR" "$T/h"
check "nobody: scandir refused" grep -qx "scandir EACCES" "$T/h"
chmod 755 "$C/priv"
check "chmod 0755 again: nobody lists it" count nobody "$C/priv" 40
mkdir -m 755 "$C/own"
touch "$C/own/a" "$C/own/b"
chown -R 1000:1000 "$C/own"
check "u1000 lists its own directory" count u1000 "$C/own" 2
names u1000 "$C/own" >/dev/null
as_u1000 chmod 000 "$C/own"
check "after its own chmod 000: u1000's listing refused" test "$(names u1000 "$C/own")" = EACCES
check "root still lists it" test "$(ls "$C/own" | wc -l)" -eq 2

# ---- 2. a name renamed away ---------------------------------------------------------------
chmod 700 "$C/priv"
names u1000 "$C/pub" > "$T/before"
names nobody "$C/pub" >/dev/null
check "u1000 lists secret-plan in pub" grep -qx secret-plan "$T/before"
mv "$C/pub/secret-plan" "$C/priv/secret-plan"
check "renamed away: gone from u1000's next listing" lacks u1000 "$C/pub" secret-plan
check "renamed away: not in u1000's listing of c" lacks u1000 "$C" secret-plan
check "renamed away: gone from nobody's next listing" lacks nobody "$C/pub" secret-plan
check "the rest of pub still listed" count u1000 "$C/pub" 40
check "root lists it in priv" sh -c "ls '$C/priv' | grep -qx secret-plan"
check "u1000 still cannot list priv" test "$(names u1000 "$C/priv")" = EACCES
want u1000 EACCES stat "$C/priv/secret-plan"

# ---- 3. readable, not searchable ----------------------------------------------------------
mkdir -m 755 "$C/ro"
for i in $(seq 1 20); do echo "$i" > "$C/ro/r$i"; done
chmod 744 "$C/ro"
ls -la "$C/ro" >/dev/null; ls -la "$C/ro" >/dev/null
check "u1000 lists ro's names" count u1000 "$C/ro" 20
want u1000 EACCES stat "$C/ro/r1"
want u1000 EACCES read "$C/ro/r2"
check "u1000's stat refused by the daemon (audited)" \
	vv_audit_has "$LOG" uid=1000 path~/c/ro/r1 result=EACCES

# ---- 4. two users' trash views -------------------------------------------------------------
mkdir -m 755 "$C/u0" "$C/u1"
chown 1000:1000 "$C/u0"
chown 1001:1001 "$C/u1"
chmod 700 "$C/u0" "$C/u1"
as_u1000 sh -c "echo a > '$C/u0/mine-1000' && rm '$C/u0/mine-1000'"
as_u1001 sh -c "echo b > '$C/u1/mine-1001' && rm '$C/u1/mine-1001'"
for r in 1 2; do
	names u1000 "$M/.trash/files" > "$T/t0.$r"
	names u1001 "$M/.trash/files" > "$T/t1.$r"
	names u1000 "$M/.trash/info" >> "$T/t0.$r"
	names u1001 "$M/.trash/info" >> "$T/t1.$r"
done
check "u1000's trash view: its own item only, twice" \
	sh -c "cat '$T/t0.1' '$T/t0.2' | grep -q mine-1000 && ! cat '$T/t0.1' '$T/t0.2' | grep -q mine-1001"
check "u1001's trash view: its own item only, twice" \
	sh -c "cat '$T/t1.1' '$T/t1.2' | grep -q mine-1001 && ! cat '$T/t1.1' '$T/t1.2' | grep -q mine-1000"
check "root sees both" sh -c "ls '$M/.trash/files' | grep -q mine-1000 && ls '$M/.trash/files' | grep -q mine-1001"
check "after root's listing u1000 still has its own" has u1000 "$M/.trash/files" mine-1000
check "after root's listing u1000 still lacks u1001's" lacks u1000 "$M/.trash/files" mine-1001
check "after root's listing u1001 still lacks u1000's" lacks u1001 "$M/.trash/files" mine-1000
test_done
