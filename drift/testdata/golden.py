# Generates golden p-values for the drift package's tests from scipy
# (python3-scipy 1.10): KS two-sample asymptotic p-values (ks_2samp's
# method='asymp', i.e. kstwo.sf(d, round(n*m/(n+m)))) and Fisher's exact
# test (two-sided). Run: python3 drift/testdata/golden.py > drift/testdata/golden.json
import json
import numpy as np
import scipy
from scipy import stats

ks = []
for n1, n2 in [(10000, 1000), (10000, 300), (10000, 20000), (10000, 100000), (5000, 5000), (200000, 1200), (2000, 150), (10000, 150)]:
    en = n1 * n2 / (n1 + n2)
    for z in [0.2, 0.4, 0.6, 0.8, 1.0, 1.1, 1.22, 1.36, 1.5, 1.63, 1.8, 2.0, 2.5, 3.0, 3.5, 4.0]:
        d = z / np.sqrt(en)
        if d >= 1:
            continue
        p = stats.distributions.kstwo.sf(d, np.round(en))
        ks.append({"n": n1, "m": n2, "d": d, "p": float(p)})

fisher = []
for t in [[[0, 10000], [2, 1198]], [[1, 9999], [3, 1197]], [[5, 995], [15, 985]], [[0, 10000], [10, 990]], [[3, 10], [0, 12]], [[20, 9980], [2, 998]], [[1, 9999], [0, 300]]]:
    _, p = stats.fisher_exact(t, alternative="two-sided")
    fisher.append({"table": t, "p": float(p)})

print(json.dumps({"scipy": scipy.__version__, "ks_asymp": ks, "fisher_two_sided": fisher}, indent=1))
