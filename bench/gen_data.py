#!/usr/bin/python3
"""Deterministic synthetic data for bench/train and bench/predict.

Writes, into OUT_DIR, for each N in --rows (default 10000 and 100000):

  features-N.csv  entity,time,x0..x9,cat          stream "bench_features"
  labels-N.csv    entity,time,clicked,amount     stream "bench_labels"

The N-row files are the first N rows of one data set drawn from
numpy.random.default_rng(SEED), so the 10k set is a prefix of the 100k set.
Label facts are stamped one day after their feature fact, so Kennel's
point-in-time join (the latest feature fact at or before the label) pairs
each label with its own feature row.

  x0..x9   numeric, different scales (standardisation matters), no missing values
  cat      one of five strings a..e with unequal frequencies
  clicked  binary 0/1: Bernoulli(sigmoid(linear part + category effect + an
           interaction x0*x1 + a threshold on x4)), so a forest has something
           a linear model cannot see
  amount   regression: linear part + category effect + 2*sin(x2) + 1.5*x3^2/scale
           + Gaussian noise

A file is not rewritten when it exists and its sidecar .sha256 matches the
generator's fingerprint (seed, row count, this file's text).
"""
import argparse
import hashlib
import os
import sys

import numpy as np

SEED = 20261122
NUMERIC = [f"x{i}" for i in range(10)]
CATS = ["a", "b", "c", "d", "e"]
CAT_P = [0.35, 0.25, 0.2, 0.12, 0.08]
START = np.datetime64("2026-01-01T00:00:00")
N_MAX = 100000  # always drawn in full, so a smaller set is a prefix of it


def fingerprint(n):
    with open(os.path.abspath(__file__), "rb") as f:
        text = f.read()
    return hashlib.sha256(text + f"|{SEED}|{n}".encode()).hexdigest()


def draw(n_max):  # n_max is always N_MAX
    rng = np.random.default_rng(SEED)
    scales = np.array([1, 10, 0.1, 100, 1, 5, 0.5, 1000, 2, 1], dtype=float)
    offsets = np.array([0, 50, -1, 300, 2, 0, 10, -500, 0, 1], dtype=float)
    z = rng.standard_normal((n_max, 10))
    x = z * scales + offsets
    cat_idx = rng.choice(len(CATS), size=n_max, p=CAT_P)
    w = np.array([1.2, -0.8, 0.6, 0.0, 0.9, -0.5, 0.3, 0.0, 0.4, -0.2])
    cat_eff = np.array([0.0, 0.5, -0.7, 1.0, -1.2])[cat_idx]
    lin = z @ w + cat_eff
    logit = lin + 0.8 * z[:, 0] * z[:, 1] + 1.0 * (z[:, 4] > 0.5) - 0.3
    p = 1 / (1 + np.exp(-logit))
    clicked = (rng.random(n_max) < p).astype(int)
    amount = 10 + 3 * lin + 2 * np.sin(2 * z[:, 2]) + 1.5 * z[:, 3] ** 2 + rng.normal(0, 2.0, n_max)
    return x, cat_idx, clicked, amount


def write(out_dir, n, x, cat_idx, clicked, amount):
    feat = os.path.join(out_dir, f"features-{n}.csv")
    lab = os.path.join(out_dir, f"labels-{n}.csv")
    fp = fingerprint(n)
    side = os.path.join(out_dir, f"data-{n}.sha256")
    if os.path.exists(feat) and os.path.exists(lab) and os.path.exists(side):
        if open(side).read().strip() == fp:
            return False
    t = START + np.arange(n).astype("timedelta64[s]")
    day = np.timedelta64(86400, "s")
    with open(feat + ".tmp", "w") as f:
        f.write("entity,time," + ",".join(NUMERIC) + ",cat\n")
        for i in range(n):
            vals = ",".join(repr(round(float(v), 6)) for v in x[i])
            f.write(f"e{i:06d},{t[i]}Z,{vals},{CATS[cat_idx[i]]}\n")
    with open(lab + ".tmp", "w") as f:
        f.write("entity,time,clicked,amount\n")
        for i in range(n):
            f.write(f"e{i:06d},{t[i] + day}Z,{clicked[i]},{round(float(amount[i]), 6)!r}\n")
    os.replace(feat + ".tmp", feat)
    os.replace(lab + ".tmp", lab)
    with open(side, "w") as f:
        f.write(fp + "\n")
    return True


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out_dir")
    ap.add_argument("--rows", default="10000,100000")
    a = ap.parse_args()
    sizes = sorted(int(s) for s in a.rows.split(","))
    os.makedirs(a.out_dir, exist_ok=True)
    if sizes[0] < 100 or sizes[-1] > N_MAX:
        ap.error(f"--rows must be between 100 and {N_MAX}")
    x, cat_idx, clicked, amount = draw(N_MAX)
    for n in sizes:
        wrote = write(a.out_dir, n, x[:n], cat_idx[:n], clicked[:n], amount[:n])
        print(f"gen_data: {'wrote' if wrote else 'kept'} {n} rows in {a.out_dir}", file=sys.stderr)


if __name__ == "__main__":
    main()
