"""knn_dir_files.py DIR [--secret] - t4008's collection for the directory
request tests (t4008, t4011): 40 fvecs of dim 8 with 1..20 rows of small
integers (float32 distances are exact, so the float32 choice and the
double order agree), rows copied within and across files for ties; one
npy among them (other.npy, asked as fvecs); with --secret also sec.fvecs,
one zero row (the caller makes it 0600)."""
import sys

import numpy as np

C = sys.argv[1]
rng = np.random.default_rng(4008)
dup = rng.integers(-3, 4, (4, 8)).astype('<f4')
for i in range(40):
    n = int(rng.integers(1, 21))
    a = rng.integers(-3, 4, (n, 8)).astype('<f4')
    if i % 3 == 0: a[rng.integers(0, n)] = dup[i % 4]
    if n > 2 and i % 5 == 0: a[-1] = a[0]
    with open("%s/s%03d.fvecs" % (C, i), "wb") as f:
        for r in a: np.int32(8).tofile(f); r.tofile(f)
np.save(C + "/other.npy", rng.standard_normal((10, 8)).astype('<f4'))
if sys.argv[2:3] == ["--secret"]:
    with open(C + "/sec.fvecs", "wb") as f:
        np.int32(8).tofile(f); np.zeros(8, '<f4').tofile(f)
