#!/bin/bash
# t4013-knn-dir-names: the directory request's names are looked up in one
# ordered pass over the directory's entries (vv_meta_dirent_get_many), a
# few names per hold of the vault lock; the answers must be those of one
# lookup per name: names out of order, repeated, missing, sorting before
# and after every entry, a directory and a symlink among them, on a live
# collection, on its snapshot (the snapshot's tables) and on the root
# (whose hidden .snapshots is no row); each name found audited once per
# mention, missing ones not at all.
. "$(dirname "$0")/test-lib.sh"
vv_need_fuse

S=$T/store
M=$T/mnt
LIB=$VV_SRC/tests/integration/lib
vv_init "$S" >/dev/null
check "mount" vv_mount "$S" "$M"
C=$M/c
mkdir "$C"
# 40 segments of 2 rows of dim 4: f<i> holds (i, 0, 0, 0) and (i + 0.5, 0, 0, 0)
"$PY" - "$C" <<'PY'
import struct, sys
for i in range(40):
    with open(sys.argv[1] + "/f%03d.fvecs" % i, "wb") as f:
        f.write(struct.pack("<i4f", 4, i, 0, 0, 0) + struct.pack("<i4f", 4, i + 0.5, 0, 0, 0))
with open(sys.argv[1] + "/../top.fvecs", "wb") as f:
    f.write(struct.pack("<i4f", 4, 1, 0, 0, 0))
PY
mkdir "$C/d.fvecs"
ln -s f000.fvecs "$C/l.fvecs"
vv_sync "$M"
check "snapshot s1" sh -c "'$VV_BIN' snapshot create '$M' s1 >/dev/null"

# ask DIR NAME...: "err rows" per name, then the candidates as "name row d"
cat > "$T/ask.py" <<'PY'
import os, sys
sys.path.insert(0, sys.argv[1])
import knn_dir as K
fd = os.open(sys.argv[2], os.O_RDONLY | os.O_DIRECTORY)
names = sys.argv[3:]
# small files are decrypted while the request is prepared: no EAGAIN
e, h, st, c = K.knn_dir(fd, [10.2, 0, 0, 0], names, 4, 6)
print(e)
if e == "OK":
    for s in st:
        print(s[0], s[1])
    for d, n, r in c[0]:
        print(n, r, "%.6f" % d)
PY
NAMES="f039.fvecs f000.fvecs nope.fvecs f005.fvecs f005.fvecs d.fvecs l.fvecs a zz.fvecs"
for i in $(seq 10 30); do NAMES="$NAMES $(printf 'f%03d.fvecs' $i)"; done
ALOG=$(vv_audit_log "$S")
vv_sync "$M"
a0=$(( $(vv_audit_q "$ALOG" count) + 1 ))
check "request on the collection" sh -c "'$PY' '$T/ask.py' '$LIB' '$C' $NAMES > '$T/live'"
# expected, by name: present files 0 and 2 rows, missing -2, d.fvecs and l.fvecs -22
"$PY" - "$T/exp" $NAMES <<'PY'
import struct, sys
out = open(sys.argv[1], "w")
q = struct.unpack("<f", struct.pack("<f", 10.2))[0]   # the query as sent, float32
names = sys.argv[2:]
out.write("OK\n")
for n in names:
    if n.startswith("f") and n.endswith(".fvecs"):
        out.write("0 2\n")
    elif n in ("d.fvecs", "l.fvecs"):
        out.write("-22 0\n")
    else:
        out.write("-2 0\n")
# nearest to 10.2: f010 row 0 (0.04), f010 row 1 (0.09), f011 row 0 (0.64) ...
cand = []
for i, n in enumerate(names):
    if n.startswith("f"):
        v = int(n[1:4])
        for r, x in enumerate((v, v + 0.5)):
            cand.append(((x - q) ** 2, i, r))
cand.sort()
for d, i, r in cand[:6]:
    out.write("%d %d %.6f\n" % (i, r, d))
PY
check "... each name answered as its own lookup and open would be" cmp "$T/exp" "$T/live"
check "request on the snapshot of the collection" \
	sh -c "'$PY' '$T/ask.py' '$LIB' '$M/.snapshots/s1/c' $NAMES > '$T/snap'"
check "... the same answers from the snapshot's entries" cmp "$T/exp" "$T/snap"
check "request on the root" \
	sh -c "'$PY' '$T/ask.py' '$LIB' '$M' .snapshots top.fvecs c missing.fvecs > '$T/root'"
check "... .snapshots and c not regular files, top.fvecs served, missing.fvecs missing" \
	test "$(head -5 "$T/root" | tr '\n' ' ')" = "OK -22 0 0 1 -22 0 -2 0 "
# the collection and its snapshot: 24 file mentions each served, d.fvecs and
# l.fvecs refused; nope.fvecs, a, zz.fvecs not recorded; f005 twice
check "audit: f005.fvecs recorded once per mention, live and snapshot" \
	vv_audit_wait_upto "$ALOG" 4 "$a0" 999999999 op=scan 'path~/f005.fvecs$'
check "audit: d.fvecs and l.fvecs refused, recorded" \
	vv_audit_wait_upto "$ALOG" 4 "$a0" 999999999 op=scan result=EINVAL 'path~/c/[dl].fvecs$'
check "audit: names that do not exist are not scan records" \
	test "$(vv_audit_since "$ALOG" "$a0" op=scan 'path~/(nope.fvecs|a|zz.fvecs|missing.fvecs)$')" = 0
check "audit: every file of the collection served, live and snapshot" \
	test "$(vv_audit_since "$ALOG" "$a0" op=scan result=ok 'path~/c/f0[0-9][0-9].fvecs$')" = 50
test_done
