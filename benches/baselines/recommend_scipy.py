"""Item-to-item co-purchase recommendations with scipy sparse matrices, as an analyst would write
them: the baseline of `retain recommend` (scripts/bench-recommend.sh runs both on the same file).

Reads an order-lines CSV (customer_id, order_id, order_date, sku, quantity, amount) with pandas,
builds the binary customer x product purchase matrix X (a negative quantity is a return: seen,
never recommended, not a purchase), counts co-purchases C = X^T X (in blocks of products, to keep
memory in check), scores pairs by shrunk cosine C / (sqrt(n_i n_j) + 10) without the diagonal,
keeps 50 neighbours per product (matrix N), then scores customers in chunks: S = X_chunk N, bought
and returned products removed, top 10 per customer; a customer with fewer picks is counted as
filled from the most popular products. The same computation as retain-recommend's model.

Prints one JSON line of wall and CPU times per phase and the peak memory (ru_maxrss).

Usage: python recommend_scipy.py LINES.csv [--chunk 50000] [--block 1000]
"""

import json
import resource
import sys
import time

import numpy as np
import pandas as pd
import scipy
import scipy.sparse as sp

SHRINK = 10.0
NEIGHBOURS = 50
TOP = 10


def top_k_per_row(m: sp.csr_matrix, k: int) -> sp.csr_matrix:
    """The k largest entries of each row of a CSR matrix (ties: lower column first)."""
    m.sort_indices()
    rows = np.repeat(np.arange(m.shape[0], dtype=np.int64), np.diff(m.indptr))
    order = np.lexsort((m.indices, -m.data, rows))
    starts = m.indptr[:-1]
    rank = np.arange(order.size, dtype=np.int64) - np.repeat(starts, np.diff(m.indptr))
    keep = order[rank < k]
    keep.sort()
    return sp.csr_matrix(
        (m.data[keep], (rows[keep], m.indices[keep])), shape=m.shape, dtype=m.dtype
    )


def main() -> None:
    path = sys.argv[1]
    chunk = int(sys.argv[sys.argv.index("--chunk") + 1]) if "--chunk" in sys.argv else 50_000
    block = int(sys.argv[sys.argv.index("--block") + 1]) if "--block" in sys.argv else 1_000
    times = {}

    def phase(name, t, c):
        times[name + "_s"] = round(time.perf_counter() - t, 2)
        times[name + "_cpu_s"] = round(time.process_time() - c, 2)

    t, c = time.perf_counter(), time.process_time()
    lines = pd.read_csv(path, usecols=["customer_id", "sku", "quantity"],
                        dtype={"customer_id": "category", "sku": "category", "quantity": "int32"})
    cust = lines["customer_id"].cat.codes.to_numpy(np.int32)
    prod = lines["sku"].cat.codes.to_numpy(np.int32)
    bought_mask = lines["quantity"].to_numpy() > 0
    n_c, n_p = len(lines["customer_id"].cat.categories), len(lines["sku"].cat.categories)
    n_lines = len(lines)
    del lines
    phase("read", t, c)

    t, c = time.perf_counter(), time.process_time()
    seen = sp.csr_matrix((np.ones(cust.size, np.float32), (cust, prod)), shape=(n_c, n_p))
    seen.data[:] = 1.0
    X = sp.csr_matrix((np.ones(int(bought_mask.sum()), np.float32),
                       (cust[bought_mask], prod[bought_mask])), shape=(n_c, n_p))
    X.data[:] = 1.0
    del cust, prod, bought_mask
    buyers = np.asarray(X.sum(axis=0)).ravel()
    XT = X.T.tocsr()
    neighbours = []
    for start in range(0, n_p, block):
        stop = min(start + block, n_p)
        co = (XT[start:stop] @ X).tocsr()
        co.setdiag(0)
        co.eliminate_zeros()
        r = np.repeat(np.arange(start, stop), np.diff(co.indptr))
        co.data = co.data / (np.sqrt(buyers[r] * buyers[co.indices]) + SHRINK)
        neighbours.append(top_k_per_row(co, NEIGHBOURS))
    N = sp.vstack(neighbours).tocsr().astype(np.float32)
    del neighbours, XT
    phase("build", t, c)

    t, c = time.perf_counter(), time.process_time()
    popular = np.argsort(-buyers, kind="stable")[: TOP * 5]
    customers = np.flatnonzero(np.diff(seen.indptr) > 0)
    picks = 0
    for start in range(0, customers.size, chunk):
        part = customers[start:start + chunk]
        scores = (X[part] @ N).tocsr()
        scores = scores - scores.multiply(seen[part])
        scores.eliminate_zeros()
        top = top_k_per_row(scores, TOP)
        counts = np.diff(top.indptr)
        picks += int(counts.sum()) + int((TOP - np.minimum(counts, TOP)).sum())
    phase("top10_all", t, c)
    print(json.dumps({
        "lines": n_lines,
        "customers": int(customers.size),
        "products": int((buyers > 0).sum()),
        **times,
        "neighbour_pairs": int(N.nnz),
        "picks": picks,
        "popular_head": [int(p) for p in popular[:3]],
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
        "pandas": pd.__version__,
        "scipy": scipy.__version__,
        "numpy": np.__version__,
    }))


if __name__ == "__main__":
    main()
