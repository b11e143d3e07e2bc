"""Reference values for tests/cdnow.rs and tests/models.rs, computed once with python lifetimes.

Made with lifetimes 0.11.3 (numpy 1.26.4, pandas 2.1.4, scipy 1.13.1) in a throw-away venv:

    python3 -m venv /tmp/lt-venv
    /tmp/lt-venv/bin/pip install lifetimes==0.11.3 'numpy<2' 'pandas<2.2' 'scipy<1.14'
    /tmp/lt-venv/bin/python crates/clv/tests/data/lifetimes_reference.py > \
        crates/clv/tests/data/lifetimes_reference.json

It reads the raw CDNOW purchases (data/cdnow/CDNOW_sample.txt), summarises them as of
1997-09-30 the way a lifetimes user would (`summary_data_from_transaction_data(...,
observation_period_end='1997-09-30', freq='D', freq_multiplier=7)`, i.e. weeks), fits
BetaGeoFitter, ModifiedBetaGeoFitter and ParetoNBDFitter on that summary, and prints the fitted
parameters, per-customer predictions for a few customers and the fit times. The tests read no
Python at run time: the numbers are copied into the Rust tests / read from the JSON.
"""
import json
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
from lifetimes import BetaGeoFitter, ModifiedBetaGeoFitter, ParetoNBDFitter
from lifetimes.utils import summary_data_from_transaction_data

ROOT = Path(__file__).resolve().parents[4]
raw = pd.read_csv(ROOT / "data/cdnow/CDNOW_sample.txt", sep=r"\s+", header=None,
                  names=["master", "id", "date", "cds", "dollars"], dtype={"date": str})
raw["date"] = pd.to_datetime(raw["date"], format="%Y%m%d")
summary = summary_data_from_transaction_data(
    raw, "id", "date", monetary_value_col="dollars", observation_period_end="1997-09-30",
    freq="D", freq_multiplier=7)
f, rec, T = summary["frequency"], summary["recency"], summary["T"]

out = {"customers": int(len(summary))}
out["summary_sample"] = {
    str(i): [float(summary.loc[i, c]) for c in ["frequency", "recency", "T", "monetary_value"]]
    for i in [1, 2, 3, 18, 59, 720, 761, 1245, 2357]
}

IDS = [1, 2, 3, 18, 59, 720, 761, 1245, 2357]
fitters = {
    "bgnbd": (BetaGeoFitter, ["r", "alpha", "a", "b"]),
    "mbgnbd": (ModifiedBetaGeoFitter, ["r", "alpha", "a", "b"]),
    "pareto_nbd": (ParetoNBDFitter, ["r", "alpha", "s", "beta"]),
}
for name, (cls, keys) in fitters.items():
    times = []
    for _ in range(3):
        m = cls()
        t0 = time.perf_counter()
        m.fit(f, rec, T)
        times.append(time.perf_counter() - t0)
    per = {}
    for i in IDS:
        x, tx, tt = f.loc[i], rec.loc[i], T.loc[i]
        per[str(i)] = {
            "p_alive": float(np.asarray(m.conditional_probability_alive(x, tx, tt)).ravel()[0]),
            "e_13w": float(m.conditional_expected_number_of_purchases_up_to_time(90 / 7, x, tx, tt)),
            "e_39w": float(m.conditional_expected_number_of_purchases_up_to_time(39, x, tx, tt)),
        }
    out[name] = {
        "params": {k: float(m.params_[k]) for k in keys},
        "expected_39w_new_customer": float(m.expected_number_of_purchases_up_to_time(39)),
        "holdout_39w_total": float(
            m.conditional_expected_number_of_purchases_up_to_time(39, f, rec, T).sum()),
        "fit_seconds_median": sorted(times)[1],
        "customers": per,
    }
json.dump(out, sys.stdout, indent=1)
print()
