#!/bin/bash
# t1039-audit-hostile-names: names an unprivileged user chooses reach the
# audit log through the data path, the trash and the control plane (a
# create, the removal into .trash, `vecvault trash restore`, a denied
# open, the backup.restore note's words): a newline, a forged JSON record,
# a terminal escape and invalid UTF-8 in them never make a line of their
# own, never change another record's fields, and the log still verifies.
# Main passes (the writer escapes every string, engine/audit.c); this
# guards it end to end.
. "$(dirname "$0")/test-lib.sh"
vv_need_fuse
export -f as_u1000 as_u1001

S=$T/store
M=$T/mnt
vv_init "$S" >/dev/null 2>&1
LOG=$(vv_audit_log "$S")
vv_mount "$S" "$M"
mkdir -m 755 "$M/c"
chown 1000:1000 "$M/c"
as_u1000 mkdir -m 700 "$M/c/priv"

cat > "$T/hostile.py" <<'PY'
import os, sys
m, what = sys.argv[1], sys.argv[2]
evil = 'x\n{"seq":1,"op":"unlink","uid":0,"result":"ok"}"\x1b[2J\\' + '\udcff'
p = os.path.join(m, 'c', evil)
if what == 'make':
    with open(p, 'w') as f:
        f.write('a')
    os.unlink(p)
elif what == 'probe':
    try:
        open(os.path.join(m, 'c', 'priv', evil))
    except PermissionError:
        print('EACCES')
else:
    sys.stdout.buffer.write(os.fsencode('/c/' + evil))
PY
check "u1000 makes and removes a file with a hostile name" as_u1000 $PY "$T/hostile.py" "$M" make
check "u1000 restores it by the CLI" bash -c "as_u1000 '$VV_BIN' trash restore '$M' \"\$($PY '$T/hostile.py' '$M' path)\" >/dev/null"
check "u1001's probe under /c/priv is refused" test "$(as_u1001 $PY "$T/hostile.py" "$M" probe)" = EACCES
check "a note whose why carries a forged record" as_u1000 "$VV_BIN" admin "$M" backup.restore \
	dest=/d id=ab into=/c phase=failed 'why={"seq":2,"op":"backup","uid":0}'
vv_sync "$M"
check "the restore is recorded" vv_audit_has "$LOG" op=restore uid=1000 result=ok
check "the refused probe is recorded" vv_audit_has "$LOG" uid=1001 result=EACCES 'path~^/c/priv/x' 
cat > "$T/lines.py" <<'PY'
import json, sys
seqs = []
for raw in open(sys.argv[1], 'rb'):
    rec = json.loads(raw)                     # every line is one whole record
    seqs.append(rec['seq'])
    if rec['op'] == 'unlink' and rec['uid'] == 0:
        sys.exit('a forged unlink record: %r' % raw)
    if b'\x1b' in raw or b'\xff' in raw:
        sys.exit('a raw control or invalid byte in: %r' % raw)
assert seqs == list(range(seqs[0], seqs[0] + len(seqs))), 'sequence has gaps or extra lines'
print(len(seqs))
PY
check "every line parses as one record, in sequence, bytes escaped" $PY "$T/lines.py" "$LOG"
check "no record with uid 0 names the hostile file" test "$(vv_audit_q "$LOG" count uid=0 'path~^/c/x')" -eq 0
check "the log verifies" "$VV_BIN" audit verify "$S" --passfile "$PASSFILE"

test_done
