"""RFM baseline with pandas: read an orders CSV (customer_id,date,amount) and aggregate per customer.

usage: python rfm_pandas.py FILE
           measure on an existing orders CSV
       python rfm_pandas.py --generate FILE [--rows N] [--customers C]
           first write the seeded benchmark CSV to FILE (default 10,000,000 rows and
           1,000,000 customers), then measure on it

The generated file depends only on N, C and the numpy/pandas versions in requirements.txt: the same
arguments write the same bytes, so every tool in a benchmark reads exactly the same data.

Prints one JSON line: tool, rows, customers, read_s, groupby_s, total_s (each the median of 3 runs)
and revenue (the sum of all amounts, to check that every tool read the same orders).
"""
import argparse
import json
import statistics
import time

import numpy as np
import pandas as pd

SEED = 7
FIRST_DAY = np.datetime64("2023-01-01")
DAYS = 730
RUNS = 3


def generate(path, rows, customers):
    """Orders of customers drawn uniformly from 1..customers, on days drawn uniformly from two years
    starting at FIRST_DAY, with log-normal amounts (median about 33) rounded to cents."""
    rng = np.random.default_rng(SEED)
    # The draws are made in this order: ids, days, amounts. Another order writes another file.
    customer_id = rng.integers(1, customers + 1, rows, dtype=np.int64)
    day = rng.integers(0, DAYS, rows)
    amount = np.round(rng.lognormal(3.5, 0.9, rows), 2)
    orders = pd.DataFrame({
        "customer_id": customer_id,
        "date": FIRST_DAY + day.astype("timedelta64[D]"),
        "amount": amount,
    })
    orders.to_csv(path, index=False, date_format="%Y-%m-%d")


def rfm(path):
    """One timed run: parse the file, then last and first order date, order count and revenue per
    customer. Returns (orders, per-customer frame, read seconds, group-by seconds)."""
    t0 = time.perf_counter()
    orders = pd.read_csv(path, parse_dates=["date"])
    t1 = time.perf_counter()
    per_customer = orders.groupby("customer_id").agg(
        last=("date", "max"),
        first=("date", "min"),
        orders=("date", "count"),
        revenue=("amount", "sum"),
    )
    t2 = time.perf_counter()
    return orders, per_customer, t1 - t0, t2 - t1


def main():
    ap = argparse.ArgumentParser(description="pandas read_csv + groupby RFM baseline")
    ap.add_argument("file")
    ap.add_argument("--generate", action="store_true", help="write the seeded CSV to FILE first")
    ap.add_argument("--rows", type=int, default=10_000_000)
    ap.add_argument("--customers", type=int, default=1_000_000)
    args = ap.parse_args()

    if args.generate:
        generate(args.file, args.rows, args.customers)

    reads, groupbys = [], []
    for _ in range(RUNS):
        orders, per_customer, read_s, groupby_s = rfm(args.file)
        reads.append(read_s)
        groupbys.append(groupby_s)
    totals = [r + g for r, g in zip(reads, groupbys)]
    print(json.dumps({
        "tool": "pandas",
        "rows": len(orders),
        "customers": len(per_customer),
        "read_s": round(statistics.median(reads), 3),
        "groupby_s": round(statistics.median(groupbys), 3),
        "total_s": round(statistics.median(totals), 3),
        "revenue": round(float(per_customer["revenue"].sum()), 2),
    }))


if __name__ == "__main__":
    main()
