"""Render baseline: jinja2 renders newsletter.html.j2 (autoescape on) for N seeded recipients.

usage: python render_jinja2.py [--n N] [--write-contexts FILE]
  --n N                   recipients, default 100,000
  --write-contexts FILE   write the N contexts as one JSON array, so that retain's benchmark
                          (crates/mailer/examples/render_bench.rs) renders the same data with its
                          tera translation of the template (crates/mailer/benches/data/newsletter.html)

Every recipient gets a name (some needing HTML escaping), a segment that picks the template's
branch, RFM figures, an offer code, an unsubscribe token and 5 products from a 500-item catalogue.

Prints one JSON line: tool, n, seconds (median of 3 passes over all recipients), renders_per_s
and mean_bytes (mean size of a rendered page in UTF-8).
"""
import argparse
import json
import random
import statistics
import time
from pathlib import Path

import jinja2

SEED = 0
PASSES = 3
TEMPLATE = "newsletter.html.j2"
SEGMENTS = ["champion", "loyal", "at_risk", "new"]
NAMES = ["alice", "bob", "carol", "dave", "eve", "frank", "o'brien", "zoë", "<script>x</script>", "anne-marie"]
COMMON = {
    "subject": "Your weekly picks",
    "company": "Example Shop Ltd",
    "issue_date": "2026-11-22",
    "currency": "EUR",
    "discount_pct": 15,
    "campaign": "wk47",
    "shop_url": "https://shop.example.com",
    "unsubscribe_base": "https://shop.example.com/u",
    "company_address": "1 Example Street, 10115 Berlin, Germany",
}


def contexts(n):
    """The catalogue, then one context per recipient, all drawn from one seeded generator. The
    draws are made in the order written here; another order gives other contexts."""
    rnd = random.Random(SEED)
    catalog = []
    for i in range(500):
        price = round(rnd.uniform(3, 200), 2)
        old_price = round(rnd.uniform(5, 250), 2) if i % 3 == 0 else None
        catalog.append({
            "name": f"Product {i} & Co. <Deluxe> edition number {i} with a long name",
            "price": price,
            "old_price": old_price,
            "url": f"https://shop.example.com/p/{i}",
            "image": f"https://cdn.example.com/img/{i}.jpg",
        })
    out = []
    for i in range(n):
        customer = {
            "id": i,
            "first_name": rnd.choice(NAMES),
            "email": f"user{i}@example.com",
            "segment": rnd.choice(SEGMENTS),
            "frequency": rnd.randint(1, 40),
            "monetary": rnd.uniform(5, 5000),
            "recency_days": rnd.randint(1, 400),
            "clv": rnd.uniform(0, 3000),
            "code": f"back{i:06d}",
            "token": f"{rnd.getrandbits(64):016x}",
        }
        out.append(dict(COMMON, customer=customer, products=rnd.sample(catalog, 5)))
    return out


def main():
    ap = argparse.ArgumentParser(description="jinja2 newsletter render baseline")
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--write-contexts", metavar="FILE")
    args = ap.parse_args()

    env = jinja2.Environment(loader=jinja2.FileSystemLoader(Path(__file__).resolve().parent),
                             autoescape=True)
    template = env.get_template(TEMPLATE)
    recipients = contexts(args.n)
    if args.write_contexts:
        with open(args.write_contexts, "w") as f:
            json.dump(recipients, f)

    seconds = []
    for _ in range(PASSES):
        t = time.perf_counter()
        total_bytes = 0
        for context in recipients:
            total_bytes += len(template.render(context).encode())
        seconds.append(time.perf_counter() - t)
    median = statistics.median(seconds)
    print(json.dumps({
        "tool": "jinja2",
        "n": args.n,
        "seconds": round(median, 3),
        "renders_per_s": round(args.n / median),
        "mean_bytes": round(total_bytes / args.n),
    }))


if __name__ == "__main__":
    main()
