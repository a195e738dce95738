# auditq.py LOG CMD [FILTER...]: query an audit log (JSON lines).
# CMD is count, seqs or a field name to print; FILTER is key=value (exact;
# null/true/false spelled so), key!=value, key~regex or key>=N.  A torn
# last line (the writer is mid-record) is ignored.
import json, re, sys
log, cmd, flt = sys.argv[1], sys.argv[2], sys.argv[3:]
def s(v):
    return "null" if v is None else ("true" if v is True else "false" if v is False else str(v))
def ok(r):
    for f in flt:
        k, op, v = re.match(r"^(\w+)(>=|!=|=|~)(.*)$", f, re.S).groups()
        x = r.get(k)
        if op == "=" and s(x) != v: return False
        if op == "!=" and s(x) == v: return False
        if op == "~" and not re.search(v, s(x)): return False
        if op == ">=" and not (isinstance(x, int) and x >= int(v)): return False
    return True
recs = []
try:
    with open(log, "rb") as fh:
        for line in fh:
            if line.endswith(b"\n"):
                recs.append(json.loads(line))
except FileNotFoundError:
    pass
m = [r for r in recs if ok(r)]
if cmd == "count": print(len(m))
elif cmd == "seqs": print(" ".join(str(r["seq"]) for r in m))
else:
    for r in m: print(s(r.get(cmd)))
