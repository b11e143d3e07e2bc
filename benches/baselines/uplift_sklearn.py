"""T-learner baseline for `scripts/bench-uplift.sh`: what an analyst would write with
scikit-learn (causalml's BaseTClassifier does the same): one HistGradientBoostingClassifier on
the mailed members, one on the holdout, uplift = difference of their probabilities. Same trees
as retain's learner (60 iterations, depth 3, learning rate 0.1, 32 bins, 40 rows per leaf, L2 1).

Reads the CSV `uplift_timing` writes (split, campaign, treated, converted, revenue, features…),
fits on the `train` rows (median of 3 fits), evaluates the Qini coefficient with retain's
definition on the `test` rows, prints one JSON line.

usage: uplift_sklearn.py DATA.csv
"""
import json
import sys
import time

import numpy as np
import pandas as pd
from sklearn.ensemble import HistGradientBoostingClassifier


def model():
    return HistGradientBoostingClassifier(
        max_iter=60, max_depth=3, learning_rate=0.1, max_bins=31,
        min_samples_leaf=40, l2_regularization=1.0, early_stopping=False, random_state=1,
    )


def qini(treated, y, score):
    """Area between the Qini curve (share, Q(k)/N_t) and the random line; ties are one step."""
    order = np.argsort(-score, kind="stable")
    t, y, s = treated[order], y[order], score[order]
    n, nt_all = len(y), t.sum()
    avg = y[t == 1].mean() - y[t == 0].mean()
    nt, nc = np.cumsum(t), np.cumsum(1 - t)
    yt, yc = np.cumsum(y * t), np.cumsum(y * (1 - t))
    last = np.r_[s[1:] != s[:-1], True]  # end of each tie group
    nt, nc, yt, yc = nt[last], nc[last], yt[last], yc[last]
    q = np.where(nc > 0, yt - yc * nt / np.maximum(nc, 1), yt)
    share = np.r_[0.0, np.flatnonzero(last) + 1.0] / n
    gain = np.r_[0.0, q / nt_all]
    d = gain - share * avg
    return float(np.sum(np.diff(share) * (d[1:] + d[:-1]) / 2))


def main():
    df = pd.read_csv(sys.argv[1])
    features = [c for c in df.columns if c not in ("split", "campaign", "treated", "converted", "revenue")]
    train, test = df[df.split == "train"], df[df.split == "test"]
    times = []
    for _ in range(3):
        start = time.perf_counter()
        m1 = model().fit(train.loc[train.treated == 1, features], train.loc[train.treated == 1, "converted"])
        m0 = model().fit(train.loc[train.treated == 0, features], train.loc[train.treated == 0, "converted"])
        times.append(time.perf_counter() - start)
    x = test[features]
    start = time.perf_counter()
    score = m1.predict_proba(x)[:, 1] - m0.predict_proba(x)[:, 1]
    c = qini(test.treated.to_numpy(), test.converted.to_numpy().astype(float), score)
    eval_s = time.perf_counter() - start
    times.sort()
    print(json.dumps({
        "tool": "scikit-learn-t", "train": len(train), "test": len(test),
        "fit_s": round(times[1], 3), "evaluate_s": round(eval_s, 3), "qini": round(c, 5),
    }))


if __name__ == "__main__":
    main()
