"""RFM baseline with polars, the multi-threaded DataFrame library an analyst reaches for today.

usage: python rfm_polars.py FILE        (an orders CSV, e.g. the one `rfm_pandas.py --generate` writes)

Same work as rfm_pandas.py: parse the file, then last and first order date, order count and revenue
per customer. polars uses all cores (its thread pool; POLARS_MAX_THREADS limits it).

Prints one JSON line: tool, rows, customers, threads, read_s, groupby_s, total_s (each the median of
3 runs) and revenue (the sum of all amounts).
"""
import argparse
import json
import statistics
import time

import polars as pl

RUNS = 3


def rfm(path):
    """One timed run. Returns (orders, per-customer frame, read seconds, group-by seconds)."""
    t0 = time.perf_counter()
    orders = pl.read_csv(path, try_parse_dates=True)
    t1 = time.perf_counter()
    per_customer = orders.group_by("customer_id").agg(
        pl.col("date").max().alias("last"),
        pl.col("date").min().alias("first"),
        pl.len().alias("orders"),
        pl.col("amount").sum().alias("revenue"),
    )
    t2 = time.perf_counter()
    return orders, per_customer, t1 - t0, t2 - t1


def main():
    ap = argparse.ArgumentParser(description="polars read_csv + group_by RFM baseline")
    ap.add_argument("file")
    args = ap.parse_args()

    reads, groupbys = [], []
    for _ in range(RUNS):
        orders, per_customer, read_s, groupby_s = rfm(args.file)
        reads.append(read_s)
        groupbys.append(groupby_s)
    totals = [r + g for r, g in zip(reads, groupbys)]
    print(json.dumps({
        "tool": "polars",
        "rows": orders.height,
        "customers": per_customer.height,
        "threads": pl.thread_pool_size(),
        "read_s": round(statistics.median(reads), 3),
        "groupby_s": round(statistics.median(groupbys), 3),
        "total_s": round(statistics.median(totals), 3),
        "revenue": round(float(per_customer["revenue"].sum()), 2),
    }))


if __name__ == "__main__":
    main()
