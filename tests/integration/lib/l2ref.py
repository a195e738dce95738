# l2ref.py X.npy Q.npy OUT: is `vecvault query -k 10` output OUT (text:
# query, rank, id, score) the float64 brute force over the rows of X for
# the queries Q (l2, ties by row)?  Exit 0 if so, else 1 with a line per
# query that differs.
import sys

import numpy as np

X = np.load(sys.argv[1])
Q = np.load(sys.argv[2]).astype(np.float64)
D = ((Q[:, None, :] - X[None]) ** 2).sum(2)
got = {}
for line in open(sys.argv[3]):
    qi, rank, i, s = line.split("\t")[:4]
    got.setdefault(int(qi), []).append((int(i), float(s)))
bad = 0
for qi in range(len(Q)):
    order = np.lexsort((np.arange(len(X)), D[qi]))[:10]
    g = got.get(qi, [])
    if [i for i, _ in g] != list(order) or any(abs(D[qi][i] - s) > 1e-5 * (1 + s) for i, s in g):
        bad += 1; print("# q%d: got %s, want %s" % (qi, g[:3], list(order[:3])))
sys.exit(1 if bad else 0)
