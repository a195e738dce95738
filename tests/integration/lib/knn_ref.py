"""knn_ref.py - does a `vecvault query` text output equal a float64 numpy
brute force?  For the query tests (t4002, t4007, t4009, t7031).

  knn_ref.py [--strict] X.npy IDS.npy|- Q.npy OUT METRIC K

X: the collection's rows in float64 (segments in name order), IDS: each
row's id ('-': the row numbers), Q: the queries, OUT: the query's text
output (query, rank, id, score, ...).  Scores must agree within 1e-5
relative and each hit must be among the K best; an id may differ only at
a distance tie, unless --strict: then the ids are exactly the K best in
(distance, row) order.  Exit 0 if so; otherwise one '#' line per problem
and exit 1."""
import sys
import numpy as np

args = sys.argv[1:]
strict = args[:1] == ["--strict"]
if strict:
    args = args[1:]
xf, idf, qf, out, m, k = args[:6]
k = int(k)
X, Q = np.load(xf), np.load(qf).astype(np.float64)
ids = np.arange(len(X)) if idf == "-" else np.load(idf)
if m == "l2": D = ((Q[:, None, :] - X[None]) ** 2).sum(2); key = D
elif m == "ip": D = Q @ X.T; key = -D
else:
    D = 1 - (Q @ X.T) / np.linalg.norm(Q, axis=1)[:, None] / np.linalg.norm(X, axis=1)[None]; key = D
got = {}
for line in open(out):
    qi, rank, i, s = line.rstrip("\n").split("\t")[:4]
    got.setdefault(int(qi), []).append((int(i), float(s)))
TOL, bad = 1e-5, 0
pos = {int(v): j for j, v in enumerate(ids)}
for qi in range(len(Q)):
    order = np.lexsort((np.arange(len(X)), key[qi]))
    kth = key[qi][order[k - 1]]
    g = got.get(qi, [])
    if len(g) != k:
        bad += 1; print("# q%d: %d results" % (qi, len(g))); continue
    for r, (i, s) in enumerate(g):
        j = pos.get(i)
        if j is None:
            bad += 1; print("# q%d: unknown id %d" % (qi, i)); continue
        if abs(D[qi][j] - s) > TOL * (1 + abs(s)) or key[qi][j] > kth + TOL * (1 + abs(kth)):
            bad += 1; print("# q%d rank %d id %d score %r ref %r kth %r" % (qi, r, i, s, D[qi][j], kth))
        tie = abs(key[qi][order[r]] - key[qi][j]) <= TOL * (1 + abs(key[qi][j]))
        if i != ids[order[r]] and (strict or not tie):
            bad += 1; print("# q%d rank %d id %d want %d" % (qi, r, i, ids[order[r]]))
sys.exit(1 if bad else 0)
