"""Item-to-item co-purchase recommendations with pandas, as an analyst would write them: the
baseline of `retain recommend` (scripts/bench-recommend.sh runs both on the same file).

Reads an order-lines CSV (customer_id, order_id, order_date, sku, quantity, amount), keeps the
distinct (customer, product) purchases (negative quantity = return, excluded as a purchase but
never recommended), counts co-purchases with a self-merge on the customer, scores pairs by shrunk
cosine c / (sqrt(n_i n_j) + 10), keeps 50 neighbours per product, then scores customers in
chunks (sum of neighbour similarities, bought/returned products removed, top 10; a customer with
fewer picks is filled from the most popular products). Prints one JSON line of timings and the
peak memory (ru_maxrss).

Usage: python recommend_pandas.py LINES.csv [--chunk 50000]
"""

import json
import resource
import sys
import time

import numpy as np
import pandas as pd

SHRINK = 10.0
NEIGHBOURS = 50
TOP = 10


def main() -> None:
    path = sys.argv[1]
    chunk = int(sys.argv[sys.argv.index("--chunk") + 1]) if "--chunk" in sys.argv else 50_000
    t0 = time.perf_counter()
    lines = pd.read_csv(path, usecols=["customer_id", "sku", "quantity"],
                        dtype={"customer_id": "category", "sku": "category", "quantity": "int32"})
    lines["c"] = lines["customer_id"].cat.codes.astype("int32")
    lines["p"] = lines["sku"].cat.codes.astype("int32")
    seen = lines[["c", "p"]].drop_duplicates()
    bought = lines.loc[lines["quantity"] > 0, ["c", "p"]].drop_duplicates()
    t_read = time.perf_counter() - t0

    t1 = time.perf_counter()
    buyers = bought.groupby("p").size()
    pairs = bought.merge(bought, on="c", suffixes=("_i", "_j"))
    pairs = pairs[pairs["p_i"] != pairs["p_j"]]
    co = pairs.groupby(["p_i", "p_j"]).size().rename("n").reset_index()
    del pairs
    ni = buyers.reindex(co["p_i"]).to_numpy(dtype=np.float64)
    nj = buyers.reindex(co["p_j"]).to_numpy(dtype=np.float64)
    co["sim"] = co["n"] / (np.sqrt(ni * nj) + SHRINK)
    co = co.sort_values(["p_i", "sim"], ascending=[True, False])
    nb = co.groupby("p_i", sort=False).head(NEIGHBOURS)[["p_i", "p_j", "sim"]]
    del co
    t_build = time.perf_counter() - t1

    t2 = time.perf_counter()
    popular = buyers.sort_values(ascending=False).index.to_numpy()[: TOP * 5]
    customers = bought["c"].unique()
    picks = 0
    for start in range(0, len(customers), chunk):
        part = customers[start:start + chunk]
        hist = bought[bought["c"].isin(part)]
        scored = hist.merge(nb, left_on="p", right_on="p_i")
        scored = scored.groupby(["c", "p_j"], sort=False)["sim"].sum().reset_index()
        excl = seen[seen["c"].isin(part)].rename(columns={"p": "p_j"})
        scored = scored.merge(excl, on=["c", "p_j"], how="left", indicator=True)
        scored = scored[scored["_merge"] == "left_only"]
        scored = scored.sort_values(["c", "sim"], ascending=[True, False])
        top = scored.groupby("c", sort=False).head(TOP)
        counts = top.groupby("c").size().reindex(part, fill_value=0)
        # Popularity fill for customers with fewer than TOP picks.
        picks += int(top.shape[0]) + int((TOP - counts.clip(upper=TOP)).sum().clip(min=0))
    t_top = time.perf_counter() - t2
    print(json.dumps({
        "lines": int(lines.shape[0]),
        "customers": int(len(customers)),
        "products": int(buyers.shape[0]),
        "read_s": round(t_read, 2),
        "build_s": round(t_build, 2),
        "top10_all_s": round(t_top, 2),
        "picks": picks,
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
        "pandas": pd.__version__,
    }))


if __name__ == "__main__":
    main()
