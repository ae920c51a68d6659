"""Integration tests for probability calibration: a binary model's
probabilities put through a map (Platt's sigmoid or isotonic) fitted on
out-of-fold scores of its training rows, recorded in the version with the
holdout's reliability before and after, served, and measured live (the Brier
score and calibration error beside the other live metrics).

The real binary on a free loopback port with a temporary database, over real
HTTP (see kennel_harness.py). Every wait is bounded. Each test uses its own
streams and models.
"""

import math
import random
import unittest

from kennel_harness import fact, in_holdout, uid
from test_learning import (SharedServerCase, assert_definition_errors, definition, get_version,
                           joined_group, load_rows, log_text, post_facts, put_model,
                           train_and_wait, wait_until)
from test_predict import events_of, set_live, wait_served
from test_supervisor import supervisor_looks

FEATURES = [{"field": "x1"}, {"field": "x2"}]


def skewed_rows(n, seed, prefix):
    """[(entity, features, label)]: the chance of true is a steep function of
    x1 + x2 (a logistic model's probabilities are too mild for it) with noise."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        x1, x2 = rng.gauss(0, 1), rng.gauss(0, 1)
        z = x1 + 0.5 * x2
        p = 1 / (1 + math.exp(-3 * z)) * 0.8 + 0.1
        rows.append(("%s%05d" % (prefix, i), {"x1": round(x1, 4), "x2": round(x2, 4)},
                     rng.random() < p))
    return rows


def logit(p):
    p = min(max(p, 1e-15), 1 - 1e-15)
    return math.log(p) - math.log1p(-p)


def brier(scored):
    return sum((s - (1.0 if y else 0.0)) ** 2 for s, y in scored) / len(scored)


class CalibrationTest(SharedServerCase):

    def streams(self, rows):
        feats, labels = uid("feat"), uid("lab")
        load_rows(self, self.c, feats, labels, rows)
        return feats, labels

    def model(self, feats, labels, algorithm="linear", calibration=None, **extra):
        d = definition("binary", feats, labels, algorithm=algorithm, features=FEATURES,
                       holdout=0.3, **extra)
        if calibration is not None:
            d["calibration"] = calibration
        name = uid("cal")
        put_model(self, self.c, name, d, expect=(201,))
        return name

    def trained(self, name):
        job = train_and_wait(self, self.c, name)
        self.assertEqual(job["state"], "succeeded", log_text(job))
        wait_served(self, self.c, name, 1)
        return job, get_version(self, self.c, name, 1)

    def served(self, name, rows):
        # A deadline no busy machine misses: these answers must be the model's
        # (a fresh version's first batch runs on the pool, and under a load of
        # parallel tests it once missed the model's 50 ms).
        r = self.c.post_json("/v1/models/%s/predict" % name, {
            "instances": [{"entity": e, "features": x} for e, x, _ in rows],
            "deadline_ms": 10000})
        self.assertEqual(r.status, 200, r)
        out = r.json()["predictions"]
        for p in out:
            self.assertFalse(p["fallback"], p)
        return out

    def test_sigmoid_serves_the_fitted_map_of_the_models_own_probability(self):
        rows = skewed_rows(1200, 1, "sg")
        feats, labels = self.streams(rows)
        plain = self.model(feats, labels)
        calibrated = self.model(feats, labels, calibration="sigmoid")
        self.trained(plain)
        job, v = self.trained(calibrated)
        cal = v["metrics"]["calibration"]
        self.assertEqual(cal["method"], "sigmoid", cal)
        self.assertEqual(cal["fitted_on_rows"], v["snapshot"]["train_rows"], cal)
        self.assertIn("calibration sigmoid fitted on %d out-of-fold training scores"
                      % cal["fitted_on_rows"], log_text(job))
        # The same rows and split train the same linear fit: the calibrated
        # version answers the sigmoid of the plain one's probability.
        probe = rows[:50]
        for p, q in zip(self.served(plain, probe), self.served(calibrated, probe)):
            s = p["probabilities"]["true"]
            want = 1 / (1 + math.exp(cal["a"] * logit(s) + cal["b"]))
            self.assertAlmostEqual(q["probabilities"]["true"], want, places=9)
            self.assertAlmostEqual(q["probabilities"]["true"] + q["probabilities"]["false"], 1,
                                   places=12)
        # The holdout's log loss after calibration is that of the served
        # probabilities.
        held = [r for r in rows if in_holdout(r[0], 0.3)]
        answers = self.served(calibrated, held)
        loss = -sum(math.log(min(max(p["probabilities"]["true"] if y
                                     else p["probabilities"]["false"], 1e-15), 1 - 1e-15))
                    for p, (_, _, y) in zip(answers, held)) / len(held)
        self.assertAlmostEqual(cal["after"]["log_loss"], loss, places=9)
        self.assertAlmostEqual(v["metrics"]["log_loss"], loss, places=9)

    def test_isotonic_metrics_are_those_of_the_probabilities_served(self):
        rows = skewed_rows(1600, 2, "is")
        feats, labels = self.streams(rows)
        name = self.model(feats, labels, algorithm="forest", calibration="isotonic",
                          params={"num_trees": 30})
        job, v = self.trained(name)
        m = v["metrics"]
        cal = m["calibration"]
        self.assertEqual(cal["method"], "isotonic", cal)
        points = cal["points"]
        self.assertGreaterEqual(len(points), 2, cal)
        for (x0, y0), (x1, y1) in zip(points, points[1:]):
            self.assertLess(x0, x1, points)
            self.assertLessEqual(y0, y1, points)
        self.assertNotIn("fewer than 1000", log_text(job))
        # What was evaluated is what is served: the holdout's Brier score
        # from the served probabilities is the version's.
        held = [r for r in rows if in_holdout(r[0], 0.3)]
        self.assertEqual(len(held), v["snapshot"]["test_rows"])
        answers = self.served(name, held)
        scored = [(p["probabilities"]["true"], y) for p, (_, _, y) in zip(answers, held)]
        self.assertAlmostEqual(m["brier"], brier(scored), places=12)
        self.assertAlmostEqual(cal["after"]["brier"], m["brier"], places=12)
        lo, hi = points[0][1], points[-1][1]
        for s, _ in scored:
            self.assertTrue(lo - 1e-12 <= s <= hi + 1e-12, (s, lo, hi))
        # Reliability: ten bins over the served scores, their rows summing
        # to the holdout's, each bin's observed share from its rows.
        bins = m["reliability"]
        self.assertEqual(len(bins), 10)
        self.assertEqual(bins, cal["after"]["reliability"])
        self.assertEqual(sum(b["rows"] for b in bins), len(held))
        for b in bins:
            inside = [y for s, y in scored
                      if (b["lower"] < s or (b["lower"] == 0 and s >= 0)) and s <= b["upper"]]
            self.assertEqual(b["rows"], len(inside), b)
            if inside:
                self.assertAlmostEqual(b["observed"], sum(inside) / len(inside), places=12)
            else:
                self.assertIsNone(b["observed"], b)
        error = sum(b["rows"] * abs(b["mean_score"] - b["observed"]) for b in bins if b["rows"])
        self.assertAlmostEqual(m["calibration_error"], error / len(held), places=12)
        # Lists leave out the map's points and the bins after (equal to
        # metrics.reliability); the version asked for by number has them.
        listed = [x for x in self.c.get("/v1/models/%s/versions" % name).json()["versions"]
                  if x["version"] == 1][0]["metrics"]["calibration"]
        self.assertNotIn("points", listed)
        self.assertNotIn("reliability", listed["after"])
        self.assertEqual(listed["before"], cal["before"])
        self.assertEqual(cal["after"]["reliability"], m["reliability"])
        # The calibration's own time, apart from the fit's.
        self.assertGreater(v["timings"]["calibration_seconds"], 0, v["timings"])
        # Before: the forest's own probabilities, on the same rows.
        self.assertEqual(sum(b["rows"] for b in cal["before"]["reliability"]), len(held))
        self.assertTrue(math.isfinite(cal["before"]["brier"]), cal)

    def test_an_uncalibrated_binary_version_has_reliability_and_no_calibration(self):
        rows = skewed_rows(300, 3, "un")
        feats, labels = self.streams(rows)
        name = self.model(feats, labels, calibration="none")
        got = self.c.get("/v1/models/" + name).json()["definition"]
        self.assertNotIn("calibration", got)
        # A null is no calibration too, and the same definition: no new revision.
        got["calibration"] = None
        put_model(self, self.c, name, got, expect=(200,))
        self.assertEqual(self.c.get("/v1/models/" + name).json()["revision"], 1)
        _, v = self.trained(name)
        self.assertNotIn("calibration", v["metrics"])
        self.assertEqual(len(v["metrics"]["reliability"]), 10)
        self.assertTrue(math.isfinite(v["metrics"]["brier"]))

    def test_calibration_is_stored_in_the_definition_and_a_change_is_a_revision(self):
        rows = skewed_rows(100, 4, "rv")
        feats, labels = self.streams(rows)
        name = self.model(feats, labels, calibration="isotonic")
        got = self.c.get("/v1/models/" + name).json()
        self.assertEqual(got["definition"]["calibration"], "isotonic", got)
        d = got["definition"]
        d["calibration"] = "sigmoid"
        put_model(self, self.c, name, d, expect=(200,))
        got = self.c.get("/v1/models/" + name).json()
        self.assertEqual((got["revision"], got["definition"]["calibration"]), (2, "sigmoid"), got)

    def test_bad_calibrations_are_refused_naming_the_field(self):
        feats, labels = self.streams(skewed_rows(20, 9, "bd"))
        # A multiclass label is a string or an integer (true/false is refused).
        kinds = uid("kind")
        post_facts(self, self.c, [fact(kinds, "bd%04d" % i, {"kind": "abc"[i % 3]})
                                  for i in range(9)])
        cases = [
            (definition("regression", feats, feats, field="x1", features=[{"field": "x2"}]),
             "sigmoid"),
            (definition("multiclass", feats, kinds, field="kind", features=FEATURES), "isotonic"),
            (definition("binary", feats, labels, features=FEATURES), "platt"),
            (definition("binary", feats, labels, features=FEATURES), 1),
            (definition("binary", feats, labels, algorithm="baseline", features=FEATURES),
             "sigmoid"),
        ]
        for d, cal in cases:
            d["calibration"] = cal
            name = uid("bad")
            r = self.c.request("PUT", "/v1/models/" + name, json_body=d)
            assert_definition_errors(self, r, ["calibration"])
            self.assertEqual(self.c.get("/v1/models/" + name).status, 404)

    def test_a_fold_that_cannot_train_fails_the_job_saying_so(self):
        # Three positives, all on the training side: the kernel's own Platt
        # scaling needs three of each class, which a fold's two thirds lack.
        rng = random.Random(5)
        rows, positives = [], 0
        i = 0
        while len(rows) < 80:
            e = "fk%04d" % i
            i += 1
            y = positives < 3 and not in_holdout(e, 0.3)
            positives += y
            rows.append((e, {"x1": rng.gauss(2 if y else 0, 0.3), "x2": rng.gauss(0, 1)}, y))
        feats, labels = self.streams(rows)
        name = self.model(feats, labels, algorithm="kernel", calibration="sigmoid")
        job = train_and_wait(self, self.c, name)
        self.assertEqual(job["state"], "failed", log_text(job))
        self.assertIn("calibration fold 1 of 3 (trained on", job["error"], job)
        self.assertIn("needs at least 3", job["error"], job)
        self.assertEqual(self.c.get("/v1/models/%s/versions" % name).json()["versions"], [])
        # The server still answers, from the prior.
        p = self.served_fallback(name)
        self.assertTrue(p["fallback"], p)

    def served_fallback(self, name):
        r = self.c.post_json("/v1/models/%s/predict" % name,
                             {"entity": "x", "features": {"x1": 0, "x2": 0}})
        self.assertEqual(r.status, 200, r)
        return r.json()

    def test_a_promotion_bound_on_the_brier_score_judges_the_calibrated_probabilities(self):
        rows = skewed_rows(600, 6, "pb")
        feats, labels = self.streams(rows)
        name = self.model(feats, labels, calibration="sigmoid",
                          promotion={"mode": "auto", "thresholds": {"brier": 0.0001}})
        job = train_and_wait(self, self.c, name)
        self.assertEqual(job["state"], "succeeded", log_text(job))
        v = get_version(self, self.c, name, 1)
        self.assertFalse(v["gate"]["passed"], v["gate"])
        self.assertIn("brier", v["gate"]["summary"], v["gate"])
        r = self.c.request("PUT", "/v1/models/" + uid("bad"), json_body=definition(
            "binary", feats, labels, features=FEATURES,
            promotion={"thresholds": {"calibration_error": 1.5}}))
        assert_definition_errors(self, r, ["promotion.thresholds.calibration_error"])

    def test_turning_calibration_on_is_judged_on_the_brier_score_against_live(self):
        # A forest's probabilities are surer than its rate of being right:
        # the same forest, calibrated, ranks about alike and scores better.
        rows = skewed_rows(1500, 10, "on")
        feats, labels = self.streams(rows)
        for method in ("sigmoid", "isotonic"):
            with self.subTest(method=method):
                self.calibration_turned_on(feats, labels, method)

    def recalibrated(self, feats, labels, first, then):
        """A forest trained with calibration `first` (v1, live), then its
        definition changed to `then` and trained again (v2). Its name."""
        name = self.model(feats, labels, algorithm="forest", calibration=first,
                          params={"num_trees": 30})
        self.trained(name)
        d = self.c.get("/v1/models/" + name).json()["definition"]
        d["calibration"] = then
        put_model(self, self.c, name, d, expect=(200,))
        job = train_and_wait(self, self.c, name)
        self.assertEqual(job["state"], "succeeded", log_text(job))
        return name

    def calibration_turned_on(self, feats, labels, method):
        name = self.recalibrated(feats, labels, None, method)
        v1, v2 = get_version(self, self.c, name, 1), get_version(self, self.c, name, 2)
        gate = v2["gate"]
        self.assertLess(v2["metrics"]["brier"], v1["metrics"]["brier"], gate)
        self.assertTrue(gate["passed"], gate)
        self.assertTrue(gate["calibration_change"].startswith(
            "live is not calibrated, this version calibrated by %s (a new calibration: "
            "compared with live on the Brier score, " % method), gate)
        self.assertTrue(gate["summary"].endswith(gate["calibration_change"]), gate)
        self.assertEqual(gate["calibration_compared"],
                         {"metric": "brier", "candidate": v2["metrics"]["brier"],
                          "live": gate["live_metrics"]["brier"]}, gate)
        self.assertIn("live", v2["aliases"], v2)
        wait_served(self, self.c, name, 2)
        # Trained again with the same calibration: judged on roc_auc, as ever.
        job = train_and_wait(self, self.c, name)
        v3 = get_version(self, self.c, name, 3)
        self.assertIsNone(v3["gate"]["calibration_change"], v3["gate"])
        # A person puts the uncalibrated v1 back: a choice the next job does
        # not undo with the same model (isotonic's ties can raise roc_auc:
        # it is judged by its ranking before calibration).
        r = self.c.post_json("/v1/models/%s/rollback" % name, {"reason": "probabilities off",
                                                                "to": 1})
        self.assertEqual(r.status, 200, r)
        job = train_and_wait(self, self.c, name)
        v4 = get_version(self, self.c, name, 4)
        self.assertIn("live version 1 is not calibrated, but was put live after the definition's "
                      "calibration became %s: the candidate is compared with it by its "
                      "roc_auc before calibration" % method, log_text(job))
        self.assertFalse(v4["gate"]["passed"], v4["gate"])
        self.assertIn("live was put back after the calibration changed: compared by roc_auc "
                      "before calibration", v4["gate"]["calibration_change"])
        self.assertNotIn("live", v4.get("aliases", []), v4)

    def test_a_rollback_to_an_isotonic_version_stands_against_the_same_model(self):
        # Isotonic's ties move roc_auc: live's, put back by a person, is
        # judged before calibration as the candidate's is, so the same model
        # ties and the rollback stands, whatever the candidate's calibration.
        rows = skewed_rows(1500, 15, "rb")
        feats, labels = self.streams(rows)
        for method in ("sigmoid", "none"):
            with self.subTest(method=method):
                name = self.recalibrated(feats, labels, "isotonic", method)
                set_live(self, self.c, name, 2, "the new calibration")
                set_live(self, self.c, name, 1, "back to isotonic")
                train_and_wait(self, self.c, name)
                v3 = get_version(self, self.c, name, 3)
                gate = v3["gate"]
                self.assertFalse(gate["passed"], gate)
                self.assertEqual(gate["candidate"] if method == "none" else
                                 v3["metrics"]["calibration"]["before"]["roc_auc"],
                                 gate["live"], gate)
                self.assertIn("live is calibrated by isotonic, this version %s; live was put back "
                              "after the calibration changed: compared by roc_auc before "
                              "calibration" % ("not calibrated" if method == "none"
                                               else "calibrated by sigmoid"),
                              gate["calibration_change"])
                self.assertNotIn("live", v3.get("aliases", []), v3)

    def test_the_supervisor_judges_a_calibration_error_once_chance_cannot_explain_it(self):
        rows = skewed_rows(500, 11, "sv")
        feats, labels = self.streams(rows)
        name = self.model(feats, labels, calibration="sigmoid",
                          supervision={"live_thresholds": {"calibration_error": 0.2},
                                       "min_outcomes": 30})
        self.trained(name)
        rng = random.Random(12)

        def outcomes(fresh, truth):
            answers = self.served(name, fresh)
            post_facts(self, self.c, [
                fact(labels, e, {"y": truth(p["probabilities"]["true"]),
                                 "prediction_id": p["prediction_id"]},
                     time_="2026-12-01T00:00:00Z") for p, (e, _, _) in zip(answers, fresh)])

        # 30 outcomes drawn at the served probabilities: calibrated by
        # construction, yet their binned error is about 0.17 by chance.
        outcomes(skewed_rows(30, 13, "sv-few"), lambda p: rng.random() < p)
        g = joined_group(self, self.c, name, 30)
        self.assertGreater(g["calibration_error_by_chance"], 0.2 / 3, g)
        supervisor_looks(self, self.c, 11)
        self.assertEqual([e for e in events_of(self, self.c, name) if e["event"] == "disabled"], [])
        # 400 more, each the opposite of what the answer leans to: far past
        # the bound, and past what chance explains.
        outcomes(skewed_rows(400, 14, "sv-many"), lambda p: p < 0.5)
        g = joined_group(self, self.c, name, 430)
        self.assertLess(g["calibration_error_by_chance"], 0.2 / 3, g)
        self.assertGreater(g["metrics"]["calibration_error"], 0.2, g)

        def disabled():
            es = [e for e in events_of(self, self.c, name) if e["event"] == "disabled"]
            return es[0] if es else None
        event = wait_until(disabled, 30, "the calibration error's disable")
        self.assertRegex(event["reason"],
                         r"^live calibration_error [0-9.]+ above 0\.2 over 430 outcomes "
                         r"\(of \d+ entities\) \(a "
                         r"calibrated model's would be about 0\.0[0-9]+ by chance\) of predictions")

    def test_live_metrics_measure_calibration_of_the_answers(self):
        rows = skewed_rows(500, 7, "lv")
        feats, labels = self.streams(rows)
        name = self.model(feats, labels, calibration="sigmoid",
                          supervision={"live_thresholds": {"calibration_error": 0.9}})
        self.trained(name)
        fresh = skewed_rows(150, 8, "lv-new")
        answers = self.served(name, fresh)
        scored = [(p["probabilities"]["true"], y) for p, (_, _, y) in zip(answers, fresh)]
        post_facts(self, self.c, [
            fact(labels, e, {"y": y, "prediction_id": p["prediction_id"]},
                 time_="2026-12-01T00:00:00Z") for p, (e, _, y) in zip(answers, fresh)])
        g = joined_group(self, self.c, name, len(fresh))
        self.assertAlmostEqual(g["metrics"]["brier"], brier(scored), places=12)
        self.assertTrue(0 <= g["metrics"]["calibration_error"] <= 1, g)
        # The answers' reliability bins: every outcome in one of ten.
        bins = g["reliability"]
        self.assertEqual(len(bins), 10, g)
        self.assertEqual(sum(b["rows"] for b in bins), len(fresh), g)
        self.assertEqual(sum(b["positives"] for b in bins), sum(y for _, y in scored), g)
        error = sum(b["rows"] * abs(b["mean_score"] - b["observed"]) for b in bins if b["rows"])
        self.assertAlmostEqual(g["metrics"]["calibration_error"], error / len(fresh), places=12)


if __name__ == "__main__":
    unittest.main()
