"""CLV baseline: the BG/NBD and Gamma-Gamma fits of the Python package lifetimes.

usage: python clv_lifetimes.py                  the CDNOW sample summary shipped with lifetimes
       python clv_lifetimes.py --summary FILE   a CSV with columns frequency,recency,T[,monetary_value]
       python clv_lifetimes.py --replicate K    the summary repeated K times (size scaling)
       python clv_lifetimes.py --models bgnbd,mbgnbd,pareto_nbd
                                                which purchase models to fit (default bgnbd)

Prints one JSON line: tool, customers, bgnbd {r, alpha, a, b, log_likelihood, seconds}; when asked,
mbgnbd {r, alpha, a, b, seconds} and pareto_nbd {r, alpha, s, beta, seconds} (one fit each:
Pareto/NBD is slow); and, when the summary has monetary values, gamma_gamma {p, q, v, seconds},
fitted on repeat customers with a positive monetary value. BG/NBD and Gamma-Gamma seconds are the
median of 3 fits.
"""
import argparse
import json
import statistics
import time
import warnings

import numpy as np
import pandas as pd
from scipy.special import gammaln

warnings.filterwarnings("ignore")
from lifetimes import BetaGeoFitter, GammaGammaFitter, ModifiedBetaGeoFitter, ParetoNBDFitter  # noqa: E402
from lifetimes.datasets import load_cdnow_summary_data_with_monetary_value  # noqa: E402

FITS = 3
ONE_FIT_MODELS = (("mbgnbd", ModifiedBetaGeoFitter), ("pareto_nbd", ParetoNBDFitter))


def bgnbd_log_likelihood(params, summary):
    """Total BG/NBD log-likelihood in the data's own time unit (lifetimes rescales time internally,
    so its own figure is not comparable with another tool's)."""
    x = summary["frequency"].values
    t_x = summary["recency"].values
    big_t = summary["T"].values
    r, alpha, a, b = params["r"], params["alpha"], params["a"], params["b"]
    head = (gammaln(r + x) - gammaln(r) + r * np.log(alpha)
            + gammaln(a + b) + gammaln(b + x) - gammaln(b) - gammaln(a + b + x))
    alive = -(r + x) * np.log(alpha + big_t)
    dropped = np.where(
        x > 0,
        np.log(a) - np.log(np.maximum(b + x - 1, 1e-300)) - (r + x) * np.log(alpha + t_x),
        -np.inf,
    )
    return float((head + np.logaddexp(alive, dropped)).sum())


def median_of_fits(fit):
    """Runs fit() FITS times; returns the last model and the median seconds."""
    seconds = []
    for _ in range(FITS):
        t = time.perf_counter()
        model = fit()
        seconds.append(time.perf_counter() - t)
    return model, round(statistics.median(seconds), 4)


def rounded(params):
    return {name: round(float(value), 6) for name, value in params.items()}


def main():
    ap = argparse.ArgumentParser(description="lifetimes BG/NBD and Gamma-Gamma baseline")
    ap.add_argument("--summary", metavar="FILE")
    ap.add_argument("--replicate", type=int, default=1)
    ap.add_argument("--models", default="bgnbd")
    args = ap.parse_args()

    summary = pd.read_csv(args.summary) if args.summary else load_cdnow_summary_data_with_monetary_value()
    summary = pd.concat([summary] * args.replicate, ignore_index=True)
    freq, rec, big_t = summary["frequency"], summary["recency"], summary["T"]

    bgnbd, bgnbd_s = median_of_fits(lambda: BetaGeoFitter().fit(freq, rec, big_t))
    out = {
        "tool": "lifetimes",
        "customers": len(summary),
        "bgnbd": {**rounded(bgnbd.params_),
                  "log_likelihood": round(bgnbd_log_likelihood(bgnbd.params_, summary), 4),
                  "seconds": bgnbd_s},
    }
    wanted = args.models.split(",")
    for name, fitter in ONE_FIT_MODELS:
        if name in wanted:
            t = time.perf_counter()
            model = fitter().fit(freq, rec, big_t)
            seconds = time.perf_counter() - t
            out[name] = {**rounded(model.params_), "seconds": round(seconds, 4)}
    if "monetary_value" in summary:
        repeat = summary[(summary["frequency"] > 0) & (summary["monetary_value"] > 0)]
        gg, gg_s = median_of_fits(
            lambda: GammaGammaFitter().fit(repeat["frequency"], repeat["monetary_value"]))
        out["gamma_gamma"] = {**rounded(gg.params_), "seconds": gg_s}
    print(json.dumps(out))


if __name__ == "__main__":
    main()
