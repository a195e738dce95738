"""seg_layout.py - collections of small segments cut from one matrix, for
the query tests that compare many-segment layouts (t4009, t4012, t7036).

layout(top, name, X, sizes, ref=None): top/name/t0000.. hold X's rows in
order, sizes[s] rows in segment s; every fourth (s % 4 == 1, when it has
rows) as fvecs, the others as npy (an empty npy for 0 rows); ref: a file
that gets the rows used as float64, the reference the results are
checked against.

odd(top, rng, d): three files mixed into top/odd that are no good
segment of dim d: not a segment at all, another dimension, another dtype
(t0020x, t0030x, t0040x: each sorts beside a good one)."""
import os

import numpy as np


def fvecs(path, rows, d):
    with open(path, "wb") as f:
        for r in rows:
            np.int32(d).tofile(f)
            r.tofile(f)


def layout(top, name, X, sizes, ref=None):
    os.mkdir(top + "/" + name)
    d, r0 = X.shape[1], 0
    for s, k in enumerate(sizes):
        if s % 4 == 1 and k:
            fvecs(top + "/%s/t%04d.fvecs" % (name, s), X[r0:r0 + k], d)
        else:
            np.save(top + "/%s/t%04d.npy" % (name, s), X[r0:r0 + k])
        r0 += k
    if ref:
        np.save(ref, X[:r0].astype(np.float64))


def odd(top, rng, d):
    with open(top + "/odd/t0020x.npy", "wb") as f:
        f.write(b"not a segment, just bytes " * 10)
    np.save(top + "/odd/t0030x.npy", rng.standard_normal((5, d + 1)).astype('<f4'))
    np.save(top + "/odd/t0040x.npy", rng.integers(0, 9, (5, d)).astype('<i4'))
