"""Integration tests for decision rules: a binary model's operating point
(the threshold of its answers' "decision") chosen on the holdout by the rule
its definition declares, recorded in the version, served, judged by the gate
and measured live on joined outcomes.

The real binary on a free loopback port with a temporary database, over real
HTTP (see kennel_harness.py). Every wait is bounded. Each test uses its own
streams and models.
"""

import json
import math
import random
import sqlite3
import unittest

from kennel_harness import fact, in_holdout, uid
from test_learning import (SharedServerCase, assert_definition_errors, at, definition,
                           get_version, joined_group, log_text, post_facts, put_model,
                           train_and_wait, wait_until)
from test_predict import wait_served


def noisy_rows(n, seed, prefix):
    """[(entity, features, label)]: a boolean learnable from x1 and x2, with
    label noise, so that precision and recall trade off along the threshold."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        x1, x2 = rng.gauss(0, 1), rng.gauss(0, 1)
        y = (x1 + 0.5 * x2 + rng.gauss(0, 0.9)) > 0.4
        rows.append(("%s%04d" % (prefix, i), {"x1": round(x1, 4), "x2": round(x2, 4)}, y))
    return rows


FEATURES = [{"field": "x1"}, {"field": "x2"}]


def counts_at(threshold, scored):
    """(tp, fp, fn, tn) of rows [(score, positive)] answered positive at
    score >= threshold."""
    tp = sum(1 for s, y in scored if s >= threshold and y)
    fp = sum(1 for s, y in scored if s >= threshold and not y)
    fn = sum(1 for s, y in scored if s < threshold and y)
    return tp, fp, fn, len(scored) - tp - fp - fn


class DecisionTest(SharedServerCase):

    def model(self, rows, decision=None, share=0.3, **extra):
        """Streams of the rows and a binary linear model on them; returns its name."""
        feats, labels = uid("feat"), uid("lab")
        facts = []
        for i, (entity, data, y) in enumerate(rows):
            facts.append(fact(feats, entity, data, time_=at(0, i)))
            facts.append(fact(labels, entity, {"y": y}, time_=at(1, i)))
        post_facts(self, self.c, facts)
        d = definition("binary", feats, labels, features=FEATURES, holdout=share, **extra)
        if decision is not None:
            d["decision"] = decision
        name = uid("dec")
        put_model(self, self.c, name, d, expect=(201,))
        return name

    def holdout_scores(self, name, version, rows, share):
        """[(served probability of true, label, served decision)] for the
        holdout rows, by the documented hash rule, asked of the live version."""
        held = [(e, x, y) for e, x, y in rows if in_holdout(e, share)]
        self.assertGreater(len(held), 40)
        # A deadline no busy machine misses: these answers must be the model's
        # (a fresh version's first batch runs on the pool, and under a load of
        # parallel tests it once missed the model's 50 ms).
        r = self.c.post_json("/v1/models/%s/predict" % name, {
            "instances": [{"entity": e, "features": x} for e, x, _ in held],
            "deadline_ms": 10000})
        self.assertEqual(r.status, 200, r)
        out = []
        for (e, x, y), p in zip(held, r.json()["predictions"]):
            self.assertEqual(p["version"], version, p)
            self.assertFalse(p["fallback"], p)
            out.append((p["probabilities"]["true"], y, p["decision"]))
        return out

    def test_min_precision_picks_the_most_recall_at_the_precision_and_serves_it(self):
        rows = noisy_rows(500, 11, "mp")
        name = self.model(rows, {"rule": "min_precision", "target": 0.8})
        job = train_and_wait(self, self.c, name)
        self.assertEqual(job["state"], "succeeded", log_text(job))
        v = get_version(self, self.c, name, 1)
        dec = v["metrics"]["decision"]
        self.assertEqual((dec["rule"], dec["target"], dec["met"], dec["unmet"]),
                         ("min_precision", 0.8, True, None), dec)
        self.assertTrue(v["gate"]["passed"], v["gate"])
        wait_served(self, self.c, name, 1)
        scored = self.holdout_scores(name, 1, rows, 0.3)
        # What serving decides is the threshold the version records.
        for s, _, served in scored:
            self.assertIs(served, s >= dec["threshold"], (s, dec["threshold"]))
        # The recorded counts are those of the served probabilities.
        tp, fp, fn, tn = counts_at(dec["threshold"], [(s, y) for s, y, _ in scored])
        self.assertEqual((dec["rows"], dec["positives"], dec["true_positives"],
                          dec["false_positives"], dec["answered_positive"]),
                         (len(scored), tp + fn, tp, fp, tp + fp), dec)
        self.assertAlmostEqual(dec["precision"], tp / (tp + fp), places=12)
        self.assertAlmostEqual(dec["recall"], tp / (tp + fn), places=12)
        self.assertAlmostEqual(dec["false_positive_rate"], fp / (fp + tn), places=12)
        self.assertGreaterEqual(dec["precision"], 0.8)
        lo, hi = dec["precision_interval"]
        self.assertLess(lo, dec["precision"])
        self.assertGreater(hi, dec["precision"])
        # No other threshold reaches the precision with more recall.
        for t in sorted({s for s, _, _ in scored}):
            a, b, _, _ = counts_at(t, [(s, y) for s, y, _ in scored])
            if a + b and a / (a + b) >= 0.8:
                self.assertLessEqual(a, tp, (t, a, b))
        # Its numbers are metrics too, beside the usual ones (at 0.5).
        self.assertEqual(v["metrics"]["decision_precision"], dec["precision"])
        self.assertEqual(v["metrics"]["decision_recall"], dec["recall"])
        self.assertIn("decision rule min_precision 0.8: threshold", log_text(job))
        # The F1-best threshold stays a metric of its own, not what serves.
        self.assertNotEqual(v["metrics"]["best_threshold"], dec["threshold"])

    def test_the_default_rule_is_the_f1_best_threshold(self):
        rows = noisy_rows(300, 12, "f1")
        name = self.model(rows)
        r = self.c.get("/v1/models/" + name)
        self.assertNotIn("decision", r.json()["definition"], r)  # read back as written
        job = train_and_wait(self, self.c, name)
        self.assertEqual(job["state"], "succeeded", log_text(job))
        v = get_version(self, self.c, name, 1)
        dec = v["metrics"]["decision"]
        self.assertEqual((dec["rule"], dec["met"]), ("f1", True), dec)
        self.assertEqual(dec["threshold"], v["metrics"]["best_threshold"])
        self.assertAlmostEqual(dec["f1"], v["metrics"]["best_threshold_f1"], places=12)

    def test_min_recall_and_max_false_positive_rate_and_min_cost(self):
        rows = noisy_rows(500, 13, "mr")
        for decision, check in (
                ({"rule": "min_recall", "target": 0.9},
                 lambda d, scored: self.assertGreaterEqual(d["recall"], 0.9)),
                ({"rule": "max_false_positive_rate", "target": 0.05},
                 lambda d, scored: self.assertLessEqual(d["false_positive_rate"], 0.05)),
                ({"rule": "min_cost", "false_positive_cost": 1, "false_negative_cost": 5},
                 None),
                ({"rule": "fixed", "threshold": 0.7},
                 lambda d, scored: self.assertEqual(d["threshold"], 0.7))):
            with self.subTest(rule=decision["rule"]):
                name = self.model(rows, decision)
                job = train_and_wait(self, self.c, name)
                self.assertEqual(job["state"], "succeeded", log_text(job))
                dec = get_version(self, self.c, name, 1)["metrics"]["decision"]
                self.assertTrue(dec["met"], dec)
                for k, want in decision.items():
                    self.assertEqual(dec[k], want, dec)
                wait_served(self, self.c, name, 1)
                scored = [(s, y) for s, y, _ in self.holdout_scores(name, 1, rows, 0.3)]
                tp, fp, fn, _ = counts_at(dec["threshold"], scored)
                self.assertEqual((dec["true_positives"], dec["false_positives"]), (tp, fp), dec)
                if check:
                    check(dec, scored)
                if decision["rule"] == "min_recall":
                    # The fewest rows answered positive that keep the recall.
                    for t in {s for s, _ in scored if s > dec["threshold"]}:
                        a, _, b, _ = counts_at(t, scored)
                        self.assertLess(a / (a + b), 0.9, t)
                if decision["rule"] == "min_cost":
                    self.assertEqual(dec["cost"], fp * 1 + fn * 5, dec)
                    for t in {s for s, _ in scored}:
                        _, b, c, _ = counts_at(t, scored)
                        self.assertGreaterEqual(b + 5 * c, dec["cost"], t)

    def test_a_target_the_holdout_cannot_resolve_is_warned_of(self):
        # A false positive rate of 0.0004 on about a hundred negatives: one
        # false positive is 0.01. Met (no row answered positive at worst),
        # but the holdout cannot tell the target from 0.
        rows = noisy_rows(300, 23, "rs")
        name = self.model(rows, {"rule": "max_false_positive_rate", "target": 0.0004})
        job = train_and_wait(self, self.c, name)
        self.assertEqual(job["state"], "succeeded", log_text(job))
        dec = get_version(self, self.c, name, 1)["metrics"]["decision"]
        self.assertEqual(dec["false_positives"], 0, dec)
        self.assertEqual(dec["false_positive_rate_interval"][0], 0.0, dec)
        negatives = dec["rows"] - dec["positives"]
        self.assertIn("decision rule max_false_positive_rate 0.0004: threshold", log_text(job))
        self.assertIn("warn: the holdout cannot resolve the rule's target: one row moves the "
                      "decision's false positive rate by %.6g over its %d negative rows, more "
                      "than the target's margin of 0.0004" % (1 / negatives, negatives),
                      log_text(job))
        # A promotion bound on a rate the holdout counts a handful of rows for.
        name = self.model(rows, {"rule": "fixed", "threshold": 0.9999},
                          promotion={"thresholds": {"decision_precision": 0.95}})
        job = train_and_wait(self, self.c, name)
        dec = get_version(self, self.c, name, 1)["metrics"]["decision"]
        self.assertLess(dec["answered_positive"], 10, dec)
        self.assertIn("warn: promotion.thresholds.decision_precision (0.95) is judged on %d "
                      "holdout row" % dec["answered_positive"], log_text(job))
        gate = get_version(self, self.c, name, 1)["gate"]
        self.assertEqual(len(gate["cautions"]), 1, gate)
        self.assertTrue(gate["cautions"][0].startswith(
            "the holdout cannot tell whether decision_precision >= 0.95 holds (%d holdout row"
            % dec["answered_positive"]), gate)
        if gate["passed"]:
            self.assertIn("; caution: the holdout cannot tell whether", gate["summary"])

    def test_a_rule_the_holdout_cannot_meet_rejects_the_version_saying_why(self):
        # The row that scores highest (the largest x1) is a negative, so no
        # threshold reaches precision 1.
        rng = random.Random(14)
        rows = []
        for i in range(300):
            x1 = rng.uniform(-3, 3)
            rows.append(("un%04d" % i, {"x1": round(x1, 4), "x2": 0.0}, x1 > 0))
        top = next(e for e in ("un-top%d" % k for k in range(100)) if in_holdout(e, 0.3))
        rows.append((top, {"x1": 9.0, "x2": 0.0}, False))
        name = self.model(rows, {"rule": "min_precision", "target": 1.0})
        job = train_and_wait(self, self.c, name)
        self.assertEqual(job["state"], "succeeded", log_text(job))
        v = get_version(self, self.c, name, 1)
        dec = v["metrics"]["decision"]
        self.assertFalse(dec["met"], dec)
        self.assertIn("no threshold reaches precision 1 (the highest is 0.9", dec["unmet"])
        self.assertFalse(v["gate"]["passed"], v["gate"])
        self.assertIn("the decision rule min_precision 1 is not met on the holdout: no threshold "
                      "reaches precision 1", v["gate"]["summary"])
        self.assertEqual(v["status"], "rejected", v)
        self.assertNotIn("live", v.get("aliases", []), v)
        # The closest it comes is what it would serve, if a person promoted it.
        self.assertLess(dec["precision"], 1.0)
        self.assertGreater(dec["precision"], 0.9)

    def test_bounds_on_the_decisions_metrics_gate_and_are_checked(self):
        rows = noisy_rows(400, 15, "bd")
        # A recall no threshold choosing precision 0.95 keeps: rejected by it.
        name = self.model(rows, {"rule": "min_precision", "target": 0.95},
                          promotion={"thresholds": {"decision_recall": 0.9}})
        job = train_and_wait(self, self.c, name)
        self.assertEqual(job["state"], "succeeded", log_text(job))
        v = get_version(self, self.c, name, 1)
        self.assertFalse(v["gate"]["passed"], v["gate"])
        self.assertIn("decision_recall %s is below the minimum 0.9"
                      % ("%.6g" % v["metrics"]["decision_recall"]), v["gate"]["summary"])
        # A multiclass model has no operating point, so no such metric.
        r = self.c.request("PUT", "/v1/models/" + uid("dec"), json_body=definition(
            "multiclass", "s", "s", promotion={"thresholds": {"decision_precision": 0.9}},
            supervision={"live_thresholds": {"decision_recall": 0.5}}))
        assert_definition_errors(self, r, ["features_from",
                                           "promotion.thresholds.decision_precision",
                                           "supervision.live_thresholds.decision_recall"])

    def test_a_rule_written_wrong_is_a_400_naming_it(self):
        feats, labels = uid("feat"), uid("lab")
        post_facts(self, self.c, [fact(feats, "a", {"x1": 1, "x2": 2}, time_=at(0)),
                                  fact(labels, "a", {"y": True}, time_=at(1)),
                                  fact(labels, "b", {"y": False}, time_=at(1))])
        cases = (
            ({"rule": "best"}, ["decision.rule"], "unknown rule \"best\""),
            ("min_precision", ["decision"], "must be an object"),
            ({"target": 0.9}, ["decision.rule"], "missing"),
            ({"rule": "min_precision"}, ["decision.target"], "needs a target in (0, 1]"),
            ({"rule": "min_precision", "target": 0}, ["decision.target"], "0 is met by any"),
            ({"rule": "min_recall", "target": 1.5}, ["decision.target"], "between 0 and 1"),
            ({"rule": "max_false_positive_rate", "target": 1}, ["decision.target"],
             "1 allows every false positive"),
            ({"rule": "min_recall", "target": "high"}, ["decision.target"], "must be a number"),
            ({"rule": "fixed"}, ["decision.threshold"], "a fixed rule needs a threshold"),
            ({"rule": "fixed", "threshold": 0.5, "target": 0.9}, ["decision.target"], None),
            ({"rule": "min_cost", "false_positive_cost": 1}, ["decision.false_negative_cost"],
             "missing"),
            ({"rule": "min_cost", "false_positive_cost": 0, "false_negative_cost": 0},
             ["decision"], "every threshold costs nothing"),
            ({"rule": "min_cost", "false_positive_cost": -1, "false_negative_cost": 2},
             ["decision.false_positive_cost"], "between 0 and"),
            # A null is no value: read as 0 it stored a definition the same
            # request refuses when sent back, and broke the model.
            ({"rule": "min_recall", "target": None}, ["decision.target"], "missing"),
            ({"rule": "fixed", "threshold": None}, ["decision.threshold"], "missing"),
            ({"rule": "min_cost", "false_positive_cost": None, "false_negative_cost": 1},
             ["decision.false_positive_cost"], "missing"),
            ({"rule": "fixed", "threshold": 0}, ["decision.threshold"], "at 0 every answer is yes"),
        )
        for decision, fields, words in cases:
            with self.subTest(decision=decision):
                d = definition("binary", feats, labels, features=FEATURES, decision=decision)
                r = self.c.request("PUT", "/v1/models/" + uid("dec"), json_body=d)
                msgs = assert_definition_errors(self, r, fields)
                if words:
                    self.assertIn(words, msgs[fields[0]])
        # Bounds a rate can never meet, or always does.
        d = definition("binary", feats, labels, features=FEATURES,
                       promotion={"thresholds": {"decision_precision": 1.5, "roc_auc": 0.7}},
                       supervision={"live_thresholds": {"accuracy": -0.1}})
        msgs = assert_definition_errors(self, self.c.request(
            "PUT", "/v1/models/" + uid("dec"), json_body=d),
            ["promotion.thresholds.decision_precision", "supervision.live_thresholds.accuracy"])
        self.assertIn("must be between 0 and 1: decision_precision cannot leave [0, 1]",
                      msgs["promotion.thresholds.decision_precision"])
        # A rule of another task.
        d = definition("regression", feats, feats, features=[{"field": "x1"}], field="x2",
                       decision={"rule": "f1"})
        msgs = assert_definition_errors(self, self.c.request("PUT", "/v1/models/" + uid("dec"),
                                                             json_body=d), ["decision"])
        self.assertIn("binary models only: a regression model answers its value", msgs["decision"])
        # Read back as written; a new rule is a new revision.
        name = uid("dec")
        d = definition("binary", feats, labels, features=FEATURES,
                       decision={"rule": "min_cost", "false_positive_cost": 1,
                                 "false_negative_cost": 20})
        put_model(self, self.c, name, d, expect=(201,))
        got = self.c.get("/v1/models/" + name).json()
        self.assertEqual(got["definition"]["decision"], d["decision"], got)
        put_model(self, self.c, name, d, expect=(200,))
        self.assertEqual(self.c.get("/v1/models/" + name).json()["revision"], 1)
        d["decision"] = {"rule": "min_recall", "target": 0.99}
        put_model(self, self.c, name, d, expect=(200,))
        got = self.c.get("/v1/models/" + name).json()
        self.assertEqual((got["revision"], got["definition"]["decision"]), (2, d["decision"]), got)

    def test_live_metrics_measure_the_decisions_as_served(self):
        rows = noisy_rows(400, 16, "lv")
        name = self.model(rows, {"rule": "min_recall", "target": 0.9},
                          supervision={"live_thresholds": {"decision_precision": 0.1}})
        job = train_and_wait(self, self.c, name)
        self.assertEqual(job["state"], "succeeded", log_text(job))
        wait_served(self, self.c, name, 1)
        threshold = get_version(self, self.c, name, 1)["metrics"]["decision"]["threshold"]
        labels = self.c.get("/v1/models/" + name).json()["definition"]["label"]["stream"]
        fresh = noisy_rows(200, 17, "lv-new")
        r = self.c.post_json("/v1/models/%s/predict" % name, {
            "instances": [{"entity": e, "features": x} for e, x, _ in fresh]})
        self.assertEqual(r.status, 200, r)
        answers = r.json()["predictions"]
        tp = fp = fn = tn = 0
        outcomes = []
        for (e, _, y), p in zip(fresh, answers):
            self.assertIs(p["decision"], p["probabilities"]["true"] >= threshold, p)
            tp += p["decision"] and y
            fp += p["decision"] and not y
            fn += (not p["decision"]) and y
            tn += (not p["decision"]) and not y
            outcomes.append(fact(labels, e, {"y": y, "prediction_id": p["prediction_id"]},
                                 time_="2026-12-01T00:00:00Z"))
        post_facts(self, self.c, outcomes)

        g = joined_group(self, self.c, name, len(fresh))
        m = g["metrics"]
        self.assertAlmostEqual(m["decision_precision"], tp / (tp + fp), places=12)
        self.assertAlmostEqual(m["decision_recall"], tp / (tp + fn), places=12)
        self.assertAlmostEqual(m["decision_false_positive_rate"], fp / (fp + tn), places=12)
        # The usual precision is at 0.5, as on the holdout: not the same.
        self.assertTrue(math.isfinite(m["precision"]))

    def test_a_fallback_decides_at_its_versions_threshold_and_is_measured_as_served(self):
        rows = noisy_rows(300, 18, "fb")
        name = self.model(rows, {"rule": "min_recall", "target": 0.95})
        job = train_and_wait(self, self.c, name)
        self.assertEqual(job["state"], "succeeded", log_text(job))
        wait_served(self, self.c, name, 1)
        v = get_version(self, self.c, name, 1)
        threshold = v["metrics"]["decision"]["threshold"]
        self.assertNotEqual(threshold, v["metrics"]["best_threshold"])
        # Taken out of service, the version's baseline answers, deciding at
        # the version's threshold, not 0.5 (its prior of true is between).
        r = self.c.post_json("/v1/models/%s/versions/1/disable" % name, {"reason": "test"})
        self.assertEqual(r.status, 200, r)
        fresh = noisy_rows(40, 19, "fb-new")
        labels = self.c.get("/v1/models/" + name).json()["definition"]["label"]["stream"]
        answers = []
        for e, x, _ in fresh:
            p = self.c.post_json("/v1/models/%s/predict" % name,
                                 {"entity": e, "features": x}).json()
            self.assertEqual((p["fallback"], p.get("answered_by")), (True, "baseline"), p)
            answers.append(p)
        prior = answers[0]["probabilities"]["true"]
        self.assertTrue(threshold <= prior < 0.5, (threshold, prior))
        self.assertEqual({p["decision"] for p in answers}, {True})
        # The log keeps the decision as served, and live metrics measure it.
        post_facts(self, self.c, [fact(labels, e, {"y": y, "prediction_id": p["prediction_id"]},
                                       time_="2026-12-01T00:00:00Z")
                                  for (e, _, y), p in zip(fresh, answers)])
        logged = self.c.get("/v1/models/%s/predictions?entity=%s" % (name, fresh[0][0])).json()
        self.assertIs(logged["predictions"][0]["decision"], True, logged)

        g = joined_group(self, self.c, name, len(fresh), arm="fallback")
        positives = sum(1 for _, _, y in fresh if y)
        self.assertAlmostEqual(g["metrics"]["decision_precision"], positives / len(fresh), places=12)
        self.assertEqual(g["metrics"]["decision_recall"], 1.0)
        self.assertEqual(g["metrics"]["decision_false_positive_rate"], 1.0)

    def test_a_new_rule_on_the_same_facts_goes_live_by_matching_live(self):
        rows = noisy_rows(400, 20, "rc")
        name = self.model(rows)
        job = train_and_wait(self, self.c, name)
        self.assertEqual(job["state"], "succeeded", log_text(job))
        d = self.c.get("/v1/models/" + name).json()["definition"]
        d["decision"] = {"rule": "min_precision", "target": 0.9}
        put_model(self, self.c, name, d, expect=(200,))
        job = train_and_wait(self, self.c, name)
        self.assertEqual(job["state"], "succeeded", log_text(job))
        v1, v2 = get_version(self, self.c, name, 1), get_version(self, self.c, name, 2)
        self.assertEqual(v2["gate"]["live"], v2["gate"]["candidate"])  # the same model, ranked alike
        self.assertTrue(v2["gate"]["passed"], v2["gate"])
        self.assertEqual(v2["gate"]["decision_rule_change"],
                         "live decides by f1, this version by min_precision 0.9")
        self.assertTrue(v2["gate"]["summary"].endswith(
            "; live decides by f1, this version by min_precision 0.9 (a new rule: matching "
            "live suffices)"), v2["gate"])
        self.assertIn("live", v2["aliases"], v2)
        wait_served(self, self.c, name, 2)
        t1 = v1["metrics"]["decision"]["threshold"]
        t2 = v2["metrics"]["decision"]["threshold"]
        self.assertLess(t1, t2)
        for s_, _, served in self.holdout_scores(name, 2, rows, 0.3):
            self.assertIs(served, s_ >= t2)
        # Trained again by the same rule, a tie with live is no reason to move.
        job = train_and_wait(self, self.c, name)
        v3 = get_version(self, self.c, name, 3)
        self.assertFalse(v3["gate"]["passed"], v3["gate"])
        self.assertIsNone(v3["gate"]["decision_rule_change"])
        # A person rolls back to v1 (the old rule): a choice the next job's
        # tie does not undo, though v1 decides by another rule.
        r = self.c.post_json("/v1/models/%s/rollback" % name, {"reason": "reviewers flooded"})
        self.assertEqual(r.status, 200, r)
        self.assertEqual((r.json()["from"], r.json()["to"]), (2, 1), r)
        job = train_and_wait(self, self.c, name)
        v4 = get_version(self, self.c, name, 4)
        self.assertFalse(v4["gate"]["passed"], v4["gate"])
        self.assertIsNone(v4["gate"]["decision_rule_change"])
        self.assertIn("live version 1 decides by f1, but was put live after the rule became "
                      "min_precision 0.9: the candidate must beat it, not match it", log_text(job))
        self.assertNotIn("live", v4.get("aliases", []), v4)

    def test_an_old_entry_counts_by_its_versions_threshold_and_a_fallbacks_not_at_all(self):
        # Entries an earlier Kennel logged have no decision: a version's is
        # its threshold's; a fallback's decided by a threshold the entry does
        # not say, so it is left out of the decision's counts.
        rows = noisy_rows(200, 22, "old")
        name = self.model(rows, {"rule": "min_recall", "target": 0.95})
        job = train_and_wait(self, self.c, name)
        self.assertEqual(job["state"], "succeeded", log_text(job))
        threshold = get_version(self, self.c, name, 1)["metrics"]["decision"]["threshold"]
        labels = self.c.get("/v1/models/" + name).json()["definition"]["label"]["stream"]
        p_yes = min(1.0, threshold + 0.01)
        entries = []
        outcomes = []
        for i in range(6):
            pid = "%032x" % (0xabc000 + i)
            fallback = i >= 3
            entity = "old-%d" % i
            entries.append([pid, None if fallback else 1, "fallback" if fallback else "live", 0,
                            entity, 1764547200000000 + i, 1, "true",
                            {"false": 1 - p_yes, "true": p_yes} if fallback else [1 - p_yes, p_yes],
                            1 if fallback else 0, "model_error: x -> baseline" if fallback else "",
                            10, "00000000000000%02x" % i])
            outcomes.append(fact(labels, entity, {"y": i % 2 == 0, "prediction_id": pid},
                                 time_="2026-12-02T00:00:00Z"))
        with sqlite3.connect(self.server.db, timeout=10) as db:
            db.execute("INSERT INTO prediction_segments (model, first_time, last_time, size, entries)"
                       " VALUES (?, ?, ?, ?, ?)", (name, 1764547200000000, 1764547200000005, 6,
                                                   json.dumps(entries)))
        post_facts(self, self.c, outcomes)
        r = self.c.get("/v1/models/%s/live-metrics?since=2025-12-01T00:00:00Z" % name).json()
        groups = {g["arm"]: g for g in r["groups"]}
        live, fb = groups["live"], groups["fallback"]
        self.assertEqual((live["outcomes"], fb["outcomes"]), (3, 3), r)
        # v1's three said yes at its threshold: two of them were (0 and 2).
        self.assertAlmostEqual(live["metrics"]["decision_precision"], 2 / 3, places=12)
        self.assertEqual(live["metrics"]["decision_recall"], 1.0)
        for k in ("decision_precision", "decision_recall", "decision_false_positive_rate"):
            self.assertIsNone(fb["metrics"][k], fb)
        self.assertIsNotNone(fb["metrics"]["accuracy"], fb)
        logged = self.c.get("/v1/models/%s/predictions?entity=old-0" % name).json()["predictions"]
        self.assertNotIn("decision", logged[0])


class EntityWeightTest(SharedServerCase):

    def test_an_entity_asked_many_times_counts_once_in_a_live_rate(self):
        # Ten entities answered yes wrongly, and one asked thirty times
        # answered yes rightly: by answers the precision is 30/40; each
        # entity counted once, as on the holdout, 1/11. A twelfth, negative,
        # asked ten times and answered yes once, adds a tenth of a false
        # positive (its answers count as its share): 1/11.1.
        rows = noisy_rows(200, 24, "ew")
        feats, labels = uid("feat"), uid("lab")
        facts = []
        for i, (e, x, y) in enumerate(rows):
            facts += [fact(feats, e, x, time_=at(0, i)), fact(labels, e, {"y": y}, time_=at(1, i))]
        post_facts(self, self.c, facts)
        name = uid("dew")
        put_model(self, self.c, name, definition("binary", feats, labels, features=FEATURES,
                                                 decision={"rule": "fixed", "threshold": 0.5}),
                  expect=(201,))
        job = train_and_wait(self, self.c, name)
        self.assertEqual(job["state"], "succeeded", log_text(job))
        wait_served(self, self.c, name, 1)
        asked = ([("ew-wrong-%d" % i, False, 3.0) for i in range(10)]
                 + [("ew-heavy", True, 3.0)] * 30
                 + [("ew-mixed", False, 3.0)] + [("ew-mixed", False, -3.0)] * 9)
        outcomes = {}
        for entity, truth, x1 in asked:
            p = self.c.post_json("/v1/models/%s/predict" % name, {
                "entity": entity, "features": {"x1": x1, "x2": 1.0}}).json()
            self.assertIs(p["decision"], x1 > 0, p)
            outcomes[entity] = truth
        # Outcomes by entity, after the answers (the newest at or after each).
        post_facts(self, self.c, [fact(labels, e, {"y": t}) for e, t in outcomes.items()])

        g = joined_group(self, self.c, name, 50)
        self.assertAlmostEqual(g["metrics"]["decision_precision"], 1 / 11.1, places=12)
        # Recall and the false positive rate from the same weights: the one
        # positive entity caught; all of the ten wrong ones' answers and a
        # tenth of the mixed one's said yes, of eleven negative entities.
        self.assertEqual(g["metrics"]["decision_recall"], 1.0, g)
        self.assertAlmostEqual(g["metrics"]["decision_false_positive_rate"], 10.1 / 11, places=12)
        self.assertEqual((g["decision"]["answered_positive"],
                          g["decision"]["entities"]["answered_positive"]), (41, 12), g)
        # The usual precision counts answers: the most probable class, 30 of 41.
        self.assertAlmostEqual(g["metrics"]["precision"], 30 / 41, places=12)


class DecisionSupervisionTest(SharedServerCase):

    def test_the_supervisor_judges_served_decisions_not_an_undefined_rate(self):
        rows = noisy_rows(300, 21, "sv")
        policy = {"live_thresholds": {"decision_precision": 0.6}, "min_outcomes": 10,
                  "live_window_seconds": 600, "outcome_delay_seconds": 0}
        names = {}
        # "never": no answer says yes, so its precision is undefined;
        # "wrong": every yes is wrong.
        # "one": a single yes, wrong: a precision of one row is not judged;
        # "same": one entity asked twelve times, twelve wrong yeses: one
        # entity's outcome, not twelve pieces of evidence.
        jobs = {}
        for kind, decision in (("never", {"rule": "fixed", "threshold": 1}),
                               ("wrong", {"rule": "min_recall", "target": 1.0}),
                               ("one", {"rule": "fixed", "threshold": 0.5}),
                               ("same", {"rule": "min_recall", "target": 1.0})):
            feats, labels = uid("feat"), uid("lab")
            facts = []
            for i, (e, x, y) in enumerate(rows):
                facts += [fact(feats, e, x, time_=at(0, i)), fact(labels, e, {"y": y}, time_=at(1, i))]
            post_facts(self, self.c, facts)
            name = uid("dsv")
            put_model(self, self.c, name, definition("binary", feats, labels, features=FEATURES,
                                                     decision=decision, supervision=policy),
                      expect=(201,))
            job = train_and_wait(self, self.c, name)
            self.assertEqual(job["state"], "succeeded", log_text(job))
            jobs[kind] = job
            wait_served(self, self.c, name, 1)
            outcomes = []
            for i in range(12):
                yes = kind in ("wrong", "same") or (kind == "one" and i == 0)
                x1 = 2.0 if kind != "one" or yes else -3.0
                entity = "same-q" if kind == "same" else "%s-q%d" % (kind, i)
                p = self.c.post_json("/v1/models/%s/predict" % name, {
                    "entity": entity, "features": {"x1": x1, "x2": 1.0}}).json()
                self.assertEqual(p["decision"], yes, p)
                outcomes.append(fact(labels, entity,
                                     {"y": kind == "never", "prediction_id": p["prediction_id"]}))
            post_facts(self, self.c, outcomes)
            names[kind] = name

        def disabled(name):
            r = self.c.get("/v1/models/%s/events" % name)
            return [e for e in r.json()["events"] if e["event"] == "disabled"]
        events = wait_until(lambda: disabled(names["wrong"]), 40, "the wrong decisions judged")
        # A live check (every 10 s) after every outcome was stored.
        from test_supervisor import supervisor_looks
        supervisor_looks(self, self.c, 11)
        self.assertEqual(events[0]["actor"], "supervisor", events)
        self.assertRegex(events[0]["reason"],
                         r"^live decision_precision 0 below 0\.6 over 12 positive answers \(from 12 "
                         r"entities; 95% interval \[0, 0\.24\d*\]\) of 12 outcomes of predictions "
                         r"made 0-600 s ago$")
        # A recall of 1 asked for: met on the holdout, never shown to hold.
        self.assertIn("warn: the rule's target is at the end of the decision's recall "
                      "(min_recall 1): met on the holdout's", log_text(jobs["wrong"]))
        # The one that never said yes: its precision is undefined (null),
        # not 0, and it stays in service.
        r = self.c.get("/v1/models/%s/live-metrics" % names["never"]).json()
        g = [g for g in r["groups"] if g["version"] == 1][0]
        self.assertEqual(g["outcomes"], 12, g)
        self.assertIsNone(g["metrics"]["decision_precision"], g)
        self.assertEqual(g["metrics"]["decision_recall"], 0.0, g)
        self.assertEqual(disabled(names["never"]), [])
        # The one wrong yes: precision 0 on one row, below min_outcomes (10)
        # of the rows it counts, so not judged; the counts say so.
        r = self.c.get("/v1/models/%s/live-metrics" % names["one"]).json()
        g = [g for g in r["groups"] if g["version"] == 1][0]
        self.assertEqual(g["metrics"]["decision_precision"], 0.0, g)
        self.assertEqual((g["decision"]["rows"], g["decision"]["answered_positive"],
                          g["decision"]["negatives"]), (12, 1, 12), g)
        self.assertEqual(g["decision"]["precision_interval"][0], 0.0, g)
        self.assertEqual(disabled(names["one"]), [])
        r = self.c.get("/v1/models/%s/live-metrics" % names["same"]).json()
        g = [g for g in r["groups"] if g["version"] == 1][0]
        self.assertEqual((g["outcomes"], g["metrics"]["decision_precision"]), (12, 0.0), g)
        self.assertEqual((g["decision"]["answered_positive"],
                          g["decision"]["entities"]["answered_positive"]), (12, 1), g)
        # Its interval counts the one entity, not the twelve answers.
        self.assertEqual(g["decision"]["precision_interval"][0], 0.0, g)
        self.assertGreater(g["decision"]["precision_interval"][1], 0.7, g)
        self.assertEqual(disabled(names["same"]), [])


if __name__ == "__main__":
    unittest.main()
