"""k-means baseline: scikit-learn's KMeans on a seeded N x 3 standardised RFM-like matrix.

usage: python kmeans_sklearn.py [--n N] [--k K] [--write FILE]
  --n N         customers (rows), default 1,000,000
  --k K         clusters, default 8
  --write FILE  also write the matrix as raw little-endian f64, row by row (N*3 values), so that
                retain's benchmark (crates/clustering/examples/kmeans_raw.rs) clusters exactly the
                same data

The matrix: recency ~ 1 + exponential (mean 90 days), frequency ~ 1 + Poisson(gamma-distributed
rate), monetary ~ frequency x log-normal spend; each column log1p-transformed and standardised.
One k-means++ initialisation, scikit-learn's default tolerance, fixed seeds.

Prints one JSON line: tool, n, k, seconds (median of 3 fits), n_iter and inertia (the sum of
squared distances to the nearest centre) of the last fit.
"""
import argparse
import json
import statistics
import time

import numpy as np
from sklearn.cluster import KMeans

SEED = 42
FITS = 3


def rfm_matrix(n):
    rng = np.random.default_rng(SEED)
    # The draws are made in this order; another order gives another matrix.
    recency = rng.exponential(90.0, n) + 1.0
    rate = rng.gamma(shape=0.8, scale=3.0, size=n)
    frequency = 1 + rng.poisson(rate)
    monetary = frequency * rng.lognormal(mean=3.5, sigma=0.9, size=n)
    x = np.log1p(np.column_stack([recency, frequency, monetary]))
    return np.ascontiguousarray((x - x.mean(0)) / x.std(0))


def main():
    ap = argparse.ArgumentParser(description="scikit-learn KMeans baseline")
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--k", type=int, default=8)
    ap.add_argument("--write", metavar="FILE")
    args = ap.parse_args()

    x = rfm_matrix(args.n)
    if args.write:
        x.astype("<f8").tofile(args.write)

    seconds = []
    for _ in range(FITS):
        model = KMeans(n_clusters=args.k, n_init=1, init="k-means++", random_state=0)
        t = time.perf_counter()
        model.fit(x)
        seconds.append(time.perf_counter() - t)
    print(json.dumps({
        "tool": "scikit-learn",
        "n": args.n,
        "k": args.k,
        "seconds": round(statistics.median(seconds), 4),
        "n_iter": int(model.n_iter_),
        "inertia": float(model.inertia_),
    }))


if __name__ == "__main__":
    main()
