#!/usr/bin/env bash
# make-golden-trash.sh - build tests/data/golden-trash-v1.tar.gz: a store
# whose trash was made in the older layout (every item and pending part an
# entry under .trash/files, parts marked in trash_kids, indexes
# trash_oparent/trash_deleted/trash_ino), so later builds prove they read
# it read-only as it is and migrate it at the next read-write open, nothing
# lost (tests/integration/t6033-trash-golden.sh).  Holds: two items that
# collided (part-3.npy, part-3.2.npy), a removed tree with ACLs, xattrs and
# a subdirectory, an item of u1000 in a 0700 directory, and a tree whose
# parts a killed daemon left unsettled (pending in trash_kids).
# golden-trash-v1.inodes lists "PATH INODE" of the trees before removal.
# Run once, as root, with a vecvault built from a tree before that change
# (main at 7a8b49e):  tests/data/make-golden-trash.sh /path/to/old/vecvault
# Never regenerate an existing golden store: add a new version beside it.
set -eu
VV=$(readlink -f "$1")
here=$(cd "$(dirname "$0")" && pwd)
out=$here/golden-trash-v1.tar.gz
[ -e "$out" ] && { echo "$out exists; golden stores are never regenerated" >&2; exit 1; }
T=$(mktemp -d)
chmod 755 "$T"
trap 'mountpoint -q "$T/mnt" && fusermount3 -uz "$T/mnt"; rm -rf "$T"' EXIT
export VECVAULT_TEST_KDF=1 VECVAULT_STATE_DIR="$T/state" VECVAULT_AUDIT_DIR="$T/audit"
printf "golden trash passphrase v1\n" > "$T/pass"; chmod 600 "$T/pass"
"$VV" init "$T/golden-trash-v1" --passfile "$T/pass" --kdf test
mkdir "$T/mnt"
"$VV" mount "$T/golden-trash-v1" "$T/mnt" --passfile "$T/pass" --pid-file "$T/pid"
M=$T/mnt
"$VV" collection create "$M/products" --dim 4 --metric l2
chmod 777 "$M/products"
printf 'first part-3\n' > "$M/products/part-3.npy"
rm "$M/products/part-3.npy"
printf 'second part-3\n' > "$M/products/part-3.npy"
rm "$M/products/part-3.npy"
mkdir -p "$M/products/tree/sub"
printf 'a\n' > "$M/products/tree/a.txt"
/usr/bin/python3 -c 'import random,sys; r=random.Random(12); open(sys.argv[1],"wb").write(bytes(r.getrandbits(8) for _ in range(200000)))' "$M/products/tree/sub/big.bin"
setfattr -n user.tag -v golden "$M/products/tree/a.txt"
setfacl -m u:1000:rx "$M/products/tree/sub"
chmod 600 "$M/products/tree/sub/big.bin"
(cd "$M" && find products/tree -printf '%p %i\n' | sort) > "$T/inodes"
rm -rf "$M/products/tree"
setpriv --reuid=1000 --regid=1000 --clear-groups -- sh -c "mkdir -m 700 '$M/products/priv' && echo mine > '$M/products/priv/mine.txt' && rm '$M/products/priv/mine.txt'"
# A tree whose parts stay pending: the daemon is killed before it settles.
mkdir -p "$M/products/crash/d1" "$M/products/crash/d2"
for i in 1 2 3; do echo "c$i" > "$M/products/crash/d1/f$i"; echo "e$i" > "$M/products/crash/d2/g$i"; done
(cd "$M" && find products/crash -printf '%p %i\n' | sort) >> "$T/inodes"
sync -f "$M"
rm -rf "$M/products/crash"
sync -f "$M"
sleep 2
kill -9 "$(cat "$T/pid")"
sleep 1
fusermount3 -uz "$M"
cp "$T/inodes" "$here/golden-trash-v1.inodes"
tar -C "$T" --exclude=golden-trash-v1/reserve -czf "$out" golden-trash-v1
echo "wrote $out"
