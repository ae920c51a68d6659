#!/usr/bin/python3
"""scikit-learn side of bench/calibrate (run with /usr/bin/python3).

  calibrate_sklearn.py compare DATA_DIR ROWS KENNEL_JSON

KENNEL_JSON holds the list of Kennel versions bench/calibrate trained
({"case", "algorithm", "calibration", "params", "snapshot", ...}). For each
algorithm among them (forest, linear) this fits, on the same split
(Kennel's hash rule, reproduced in bench/sklearn_bench.py and checked
against the version's row counts) and with the same features and
parameters as bench/train's scikit-learn side (sklearn_bench.make_pipeline;
forests with Dlib's leaf rule), the model uncalibrated and wrapped in
CalibratedClassifierCV(method="sigmoid" | "isotonic", cv=3, ensemble=False),
and prints one JSON line per (algorithm, calibration) with the fit time and
the holdout's brier_score_loss, log_loss, roc_auc and calibration_error.

calibration_error is Kennel's (README, "Calibration"): ten bins of equal
width of the probability, rows put in them as calibration_curve does
(numpy.searchsorted over the inner edges), the mean over bins of
|mean probability - share positive| weighted by the bin's rows.

A forest's metrics move with its seed, so each forest is fitted with
BENCH_SKLEARN_SEEDS random_state values (default 5, as bench/train's; the
same seeds for every calibration, fitted interleaved) and the means are reported, with the
single seeds' values. A linear fit takes milliseconds, so its time is the
median of BENCH_LINEAR_REPEATS fits (default 5; the model is the same each
time).
"""
import json
import os
import statistics
import sys
import time

sys.dont_write_bytecode = True  # no __pycache__ beside the scripts
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import numpy as np  # noqa: E402
from sklearn.calibration import CalibratedClassifierCV, calibration_curve  # noqa: E402
from sklearn.metrics import brier_score_loss, log_loss, roc_auc_score  # noqa: E402

import sklearn_bench as sb  # noqa: E402

METHODS = ("none", "sigmoid", "isotonic")
BINS = 10


def calibration_error(y, p):
    """Kennel's calibration_error: rows binned as calibration_curve bins them."""
    y = np.asarray(y, dtype=float)
    p = np.asarray(p, dtype=float)
    edges = np.linspace(0.0, 1.0, BINS + 1)
    ids = np.searchsorted(edges[1:-1], p)
    rows = np.bincount(ids, minlength=BINS)
    sums = np.bincount(ids, weights=p, minlength=BINS)
    positives = np.bincount(ids, weights=y, minlength=BINS)
    used = rows > 0
    # rows * |sums/rows - positives/rows| = |sums - positives|
    ece = float(np.abs(sums[used] - positives[used]).sum() / rows[used].sum())
    # The same bins as calibration_curve's (it drops empty ones).
    prob_true, prob_pred = calibration_curve(y, p, n_bins=BINS, strategy="uniform")
    check = float((rows[used] * np.abs(prob_pred - prob_true)).sum() / rows[used].sum())
    assert abs(check - ece) < 1e-12, (check, ece)
    return ece


def holdout_metrics(y, p):
    return {"brier": float(brier_score_loss(y, p)),
            "log_loss": float(log_loss(y, p, labels=[0, 1])),
            "roc_auc": float(roc_auc_score(y, p)),
            "calibration_error": calibration_error(y, p)}


def model_of(algorithm, params, method, seed):
    pipe = sb.make_pipeline("binary", algorithm, params, "dlib")
    if algorithm == "forest":
        pipe.set_params(model__random_state=seed)
    if method == "none":
        return pipe
    # scikit-learn 1.2 names the wrapped model "estimator" (base_estimator before).
    return CalibratedClassifierCV(estimator=pipe, method=method, cv=3, ensemble=False)


def mean_of(dicts):
    return {k: float(np.mean([d[k] for d in dicts])) for k in dicts[0]}


def compare(data_dir, rows, kennel_json):
    cases = json.load(open(kennel_json))
    ents, x, clicked, _ = sb.load(data_dir, rows)
    snap = cases[0]["snapshot"]
    rule = snap["split_rule"]
    share = float(rule.rsplit("<", 1)[1])
    if rule != sb.split_rule(share):
        for c in cases:
            print(json.dumps({"case": c["case"], "error": f"unexpected split rule {rule!r}"}), flush=True)
        return
    tr, te = sb.split(ents, share)
    x_tr, y_tr, x_te, y_te = x[tr], clicked[tr], x[te], clicked[te]
    train_rows, test_rows = int(tr.sum()), int(te.sum())

    algorithms = []
    for c in cases:
        if c["algorithm"] not in [a for a, _ in algorithms]:
            algorithms.append((c["algorithm"], c["params"]))
    by_case = {(c["algorithm"], c["calibration"]): c for c in cases}

    for algorithm, params in algorithms:
        forest = algorithm == "forest"
        seeds = list(range(max(1, int(os.environ.get("BENCH_SKLEARN_SEEDS") or 5)))) if forest else [0]
        repeats = 1 if forest else max(1, int(os.environ.get("BENCH_LINEAR_REPEATS") or 5))
        runs = {m: [] for m in METHODS}
        # Interleaved: for each seed, every calibration, so a slow minute of
        # a shared machine falls on all of them.
        for seed in seeds:
            for method in METHODS:
                times = []
                for _ in range(repeats):
                    model = model_of(algorithm, params, method, seed)
                    t0 = time.perf_counter()
                    model.fit(x_tr, y_tr)
                    times.append(time.perf_counter() - t0)
                p = model.predict_proba(x_te)[:, 1]
                run = {"seed": seed, "fit_seconds": statistics.median(times),
                       "fit_seconds_each": times, "metrics": holdout_metrics(y_te, p),
                       # rows whose log loss is -log(eps): answered exactly 0 or 1, wrongly
                       "holdout_rows_wrong_at_0_or_1": int(((p == 0) & (y_te == 1)).sum()
                                                           + ((p == 1) & (y_te == 0)).sum())}
                if method != "none":
                    # With ensemble=False the model is fitted on every training
                    # row and the map on out-of-fold scores: "before" is that
                    # model's own probability (Kennel's metrics.calibration.before).
                    inner = model.calibrated_classifiers_[0].estimator
                    run["before"] = holdout_metrics(y_te, inner.predict_proba(x_te)[:, 1])
                    cal = model.calibrated_classifiers_[0].calibrators[0]
                    if method == "sigmoid":
                        run["a"], run["b"] = float(cal.a_), float(cal.b_)
                    else:
                        run["points"] = int(len(cal.X_thresholds_))
                runs[method].append((run, model))
        for method in METHODS:
            rs = [r for r, _ in runs[method]]
            c = by_case.get((algorithm, method))
            out = {"case": c["case"] if c else f"{algorithm}-{method}",
                   "algorithm": algorithm, "calibration": method,
                   "train_rows": train_rows, "test_rows": test_rows,
                   "split_matches": bool(c) and train_rows == c["snapshot"]["train_rows"]
                   and test_rows == c["snapshot"]["test_rows"],
                   "seeds": seeds, "repeats": repeats,
                   "fit_seconds": float(np.mean([r["fit_seconds"] for r in rs])),
                   "metrics": mean_of([r["metrics"] for r in rs]),
                   "holdout_rows_wrong_at_0_or_1": sum(r["holdout_rows_wrong_at_0_or_1"] for r in rs),
                   "runs": rs,
                   "model": repr(runs[method][-1][1])}
            if method != "none":
                out["before"] = mean_of([r["before"] for r in rs])
            print(json.dumps(out), flush=True)


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] == "compare":
        compare(sys.argv[2], int(sys.argv[3]), sys.argv[4])
    else:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
