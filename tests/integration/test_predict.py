"""Integration tests for predicting: single and batch answers, feature
validation, answers computed by the stored version, the fallback chain
(never trained, disabled, throwing, sleeping and corrupt versions), people
disabling, enabling and rolling back versions, promotion under load, admission
control and the access rules of the prediction routes; and `kennel predict`,
which scores a file offline with the same code.

The real binary on a free loopback port with a temporary database, over real
HTTP (see kennel_harness.py). Every wait is bounded. Each test uses its own
streams and models, so tests on a shared server do not see each other.

The helpers at the top are shared with test_experiments.py and
test_supervisor.py (imported by name; no test classes are imported).
"""

import datetime
import json
import math
import os
import random
import re
import struct
import threading
import time
import unittest

import kennel_harness
from kennel_harness import (Client, KennelTestCase, Response, fact, fnv1a64, in_holdout,
                            run_cli, run_cli_with_file_limit, run_in_threads, uid, wait_until)

JOB_TIMEOUT_S = 60
FINISHED = ("succeeded", "failed", "timed_out", "cancelled", "interrupted")
# Feature and label facts lie in the past, so an outcome fact sent now is
# always later than the training labels.
BASE = datetime.datetime(2024, 3, 1, 8, 0, 0, tzinfo=datetime.timezone.utc)
COLOR_EFFECT = {"red": 1.0, "green": 0.0, "blue": -1.0}
WORDS = ("good", "dog", "walk", "park", "ball", "nap", "treat", "bath")


# ----------------------------------------------------------------- helpers

def at(seconds):
    t = BASE + datetime.timedelta(seconds=seconds)
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def regression_truth(x1, x2, color):
    return 3 * x1 - 2 * x2 + COLOR_EFFECT[color] + 5


def synthetic(n=200, seed=1):
    """[(entity, features, y, b)]: two numbers, a colour and a caption; y a
    number (3 x1 - 2 x2 + colour + 5 + noise), b a boolean (x1 + x2/2 + noise > 0)."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        x1, x2 = round(rng.gauss(0, 1), 4), round(rng.gauss(0, 1), 4)
        color = ("red", "green", "blue")[i % 3]
        caption = " ".join(rng.choice(WORDS) for _ in range(3))
        y = round(regression_truth(x1, x2, color) + 0.2 * rng.gauss(0, 1), 4)
        b = (x1 + 0.5 * x2 + 0.3 * rng.gauss(0, 1)) > 0
        rows.append(("e%04d" % i, {"x1": x1, "x2": x2, "color": color, "caption": caption}, y, b))
    return rows


def post_facts(test, c, facts):
    """Stores facts (batches of 2,000); asserts none was rejected; returns the ids."""
    ids = []
    for i in range(0, len(facts), 2000):
        r = c.post_json("/v1/facts", facts[i:i + 2000])
        test.assertEqual(r.status, 200, r)
        body = r.json()
        test.assertEqual(body["rejected"], 0, r)
        ids += [it["id"] for it in body["items"]]
    return ids


def load_data(test, c, n=200, seed=1):
    """Fresh feature and label streams holding synthetic(n, seed): a feature
    fact per entity and, an hour later, its labels y and b.
    Returns (features stream, label stream, rows)."""
    feats, labels = uid("feat"), uid("lab")
    rows = synthetic(n, seed)
    facts = []
    for i, (entity, data, y, b) in enumerate(rows):
        facts.append(fact(feats, entity, data, time_=at(i)))
        facts.append(fact(labels, entity, {"y": y, "b": b}, time_=at(3600 + i)))
    post_facts(test, c, facts)
    return feats, labels, rows


def definition(feats, labels, task="regression", algorithm="linear", **extra):
    """A definition over load_data's streams. Promotion is manual (tests move
    `live` themselves), supervision off unless a test sets it, and the
    serving deadline 2 s unless a test sets it (the machine running the tests
    may be busy; the deadline tests set their own)."""
    serving = dict({"deadline_ms": 2000}, **extra.pop("serving", {}))
    d = {"task": task, "features_from": feats,
         "label": {"stream": labels, "field": "y" if task == "regression" else "b"},
         "features": [{"field": "x1"}, {"field": "x2"},
                      {"field": "color", "transform": "category"},
                      {"field": "caption", "transform": "text", "buckets": 16}],
         "algorithm": algorithm, "promotion": {"mode": "manual"},
         "supervision": {"enabled": False}, "serving": serving}
    d.update(extra)
    return d


def put_model(test, c, name, d):
    r = c.request("PUT", "/v1/models/" + name, json_body=d)
    test.assertIn(r.status, (200, 201), r)
    return r.json()


def train(test, c, name):
    """Queues a training job, waits for it (bounded), returns the new version."""
    r = c.post("/v1/models/%s/train" % name)
    test.assertEqual(r.status, 202, r)
    job_id = r.json()["job"]
    deadline = time.monotonic() + JOB_TIMEOUT_S
    while True:
        r = c.get("/v1/jobs/%d" % job_id)
        test.assertEqual(r.status, 200, r)
        job = r.json()
        if job["state"] in FINISHED:
            break
        if time.monotonic() > deadline:
            raise AssertionError("job %d still %s after %ss" % (job_id, job["state"], JOB_TIMEOUT_S))
        time.sleep(0.05)
    test.assertEqual(job["state"], "succeeded", json.dumps(job)[:3000])
    test.assertIsInstance(job["version"], int, job)
    wait_served(test, c, name, job["version"])
    return job["version"]


def wait_served(test, c, name, version):
    """Waits until serving has reloaded the model after a job stored
    `version`: the job's commit comes first, the reload just after it, so a
    prediction sent the moment the job reads succeeded may see the model as
    it was (not trained, or live still on the version before)."""
    published = "live" in get_version(test, c, name, version).get("aliases", [])
    deadline = time.monotonic() + JOB_TIMEOUT_S
    while True:
        r = c.get("/v1/serving")
        test.assertEqual(r.status, 200, r)
        m = next((m for m in r.json()["models"] if m["model"] == name), None)
        if m and m["problem"] != "not_trained" and (not published or m["live_alias"] == version):
            return
        if time.monotonic() > deadline:
            raise AssertionError("serving did not reload %s after v%d: %s" % (name, version, m))
        time.sleep(0.02)


def set_live(test, c, name, version, reason="test moves live"):
    r = c.request("PUT", "/v1/models/%s/aliases/live" % name,
                  json_body={"version": version, "reason": reason})
    test.assertEqual(r.status, 200, r)
    return r.json()


def get_version(test, c, name, n):
    r = c.get("/v1/models/%s/versions/%d" % (name, n))
    test.assertEqual(r.status, 200, r)
    return r.json()


def deployments_of(test, c, name):
    r = c.get("/v1/models/%s/deployments" % name)
    test.assertEqual(r.status, 200, r)
    return r.json()["deployments"]


def events_of(test, c, name):
    r = c.get("/v1/models/%s/events" % name)
    test.assertEqual(r.status, 200, r)
    return r.json()["events"]


def predict(test, c, name, body, status=200):
    r = c.post_json("/v1/models/%s/predict" % name, body)
    test.assertEqual(r.status, status, r)
    return r.json()


def features_hash(features):
    """Kennel's features_hash: FNV-1a 64 over the members in sorted key order,
    each as key, NUL, then the value: "n" and the double's 8 bytes (least
    significant first), "s" the UTF-8 text and NUL, "t"/"f", "z" for null, or
    an object's compact sorted JSON."""
    data = b""
    for key in sorted(features):
        v = features[key]
        data += key.encode() + b"\0"
        if isinstance(v, bool):
            data += b"t" if v else b"f"
        elif isinstance(v, (int, float)):
            data += b"n" + struct.pack("<d", float(v))
        elif isinstance(v, str):
            data += b"s" + v.encode() + b"\0"
        elif v is None:
            data += b"z"
        else:
            data += json.dumps(v, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    return "%016x" % fnv1a64(data)


def regression_metrics(truth, predicted):
    n = len(truth)
    mean = sum(truth) / n
    sse = sum((t - p) ** 2 for t, p in zip(truth, predicted))
    sae = sum(abs(t - p) for t, p in zip(truth, predicted))
    sst = sum((t - mean) ** 2 for t in truth)
    return {"rmse": math.sqrt(sse / n), "mae": sae / n, "r2": 1 - sse / sst}


class SharedServerCase(kennel_harness.SharedServerCase):
    """The shared server, with helpers for trained models of the predict
    suite."""

    tmp_prefix = "kennel-predict-"

    def model(self, task="regression", n=200, seed=1, **extra):
        """A fresh model over fresh streams: (name, feats, labels, rows, definition)."""
        feats, labels, rows = load_data(self, self.c, n, seed)
        name = uid("m")
        d = definition(feats, labels, task, **extra)
        put_model(self, self.c, name, d)
        return name, feats, labels, rows, d

    def trained(self, task="regression", **extra):
        """A model with version 1 trained and live."""
        name, feats, labels, rows, d = self.model(task, **extra)
        v = train(self, self.c, name)
        self.assertEqual(v, 1)
        set_live(self, self.c, name, 1, "first version")
        return name, feats, labels, rows, d

    def assertModelAnswer(self, p, name, version, arm="live"):
        """A model's own answer (no fallback)."""
        self.assertEqual(p["model"], name, p)
        self.assertEqual(p["version"], version, p)
        self.assertEqual(p["arm"], arm, p)
        self.assertIs(p["fallback"], False, p)
        self.assertIsNone(p["fallback_reason"], p)
        self.assertNotIn("answered_by", p)
        self.assertRegex(p["prediction_id"], r"^[0-9a-f]{32}$")
        # The id starts with the time in microseconds (so the log appends).
        micros = int(p["prediction_id"][:14], 16)
        self.assertLess(abs(micros / 1e6 - time.time()), 600, p)
        self.assertIsInstance(p["latency_ms"], float, p)
        self.assertGreater(p["latency_ms"], 0, p)

    def assertFallback(self, p, reason, answered_by, version):
        self.assertIs(p["fallback"], True, p)
        self.assertIsInstance(p["fallback_reason"], str, p)
        self.assertTrue(p["fallback_reason"].startswith(reason), p)
        self.assertEqual(p["answered_by"], answered_by, p)
        self.assertEqual(p["version"], version, p)
        self.assertRegex(p["prediction_id"], r"^[0-9a-f]{32}$")


FEATURES = {"x1": 1.0, "x2": -0.5, "color": "red", "caption": "good dog park"}


# ----------------------------------------------------------------- answers

class PredictTest(SharedServerCase):

    def test_regression_single_and_batch(self):
        name, _, _, rows, _ = self.trained()
        p = predict(self, self.c, name, {"entity": "p1", "features": FEATURES})
        self.assertModelAnswer(p, name, 1)
        self.assertNotIn("probabilities", p)
        self.assertNotIn("decision", p)
        self.assertNotIn("ignored_fields", p)
        self.assertNotIn("imputed_fields", p)
        # The linear model learned y = 3 x1 - 2 x2 + colour + 5 (noise 0.2).
        self.assertAlmostEqual(p["prediction"], regression_truth(1.0, -0.5, "red"), delta=0.5)

        # A batch answers per instance, in order, each with its own id.
        insts = [{"entity": "p%d" % i, "features": {"x1": i / 2, "x2": 0.0, "color": "green",
                                                      "caption": "nap"}} for i in range(5)]
        insts.append({"features": FEATURES})  # no entity
        r = self.c.post_json("/v1/models/%s/predict" % name, {"instances": insts})
        self.assertEqual(r.status, 200, r)
        preds = r.json()["predictions"]
        self.assertEqual(len(preds), 6, r)
        for i, q in enumerate(preds[:5]):
            self.assertModelAnswer(q, name, 1)
            self.assertAlmostEqual(q["prediction"], regression_truth(i / 2, 0.0, "green"),
                                   delta=0.5)
        self.assertModelAnswer(preds[5], name, 1)
        self.assertEqual(preds[5]["prediction"], p["prediction"])
        ids = [q["prediction_id"] for q in preds] + [p["prediction_id"]]
        self.assertEqual(len(set(ids)), 7, ids)
        # A batch's instances share one deadline and one latency.
        self.assertEqual(len({q["latency_ms"] for q in preds}), 1, preds)

    def test_editing_the_definition_does_not_change_a_trained_version(self):
        """A trained version is served by its own stored pipeline and task:
        an edited definition (a field dropped, a transform changed, another
        task) changes nothing until a new version is trained from it."""
        name, _, _, _, d = self.trained()
        before = predict(self, self.c, name, {"entity": "d1", "features": FEATURES})
        self.assertModelAnswer(before, name, 1)
        edits = [
            dict(d, features=[{"field": "color", "transform": "category"}]),
            dict(d, features=[{"field": "x1", "transform": "category"}, {"field": "x2"},
                              {"field": "color", "transform": "category"}]),
            dict(d, task="binary", label=dict(d["label"], field="b")),
        ]
        for i, edited in enumerate(edits):
            with self.subTest(edit=i):
                put_model(self, self.c, name, edited)
                p = predict(self, self.c, name, {"entity": "d1", "features": FEATURES})
                self.assertModelAnswer(p, name, 1)
                self.assertEqual(p["prediction"], before["prediction"], p)
                self.assertNotIn("probabilities", p)
                self.assertNotIn("ignored_fields", p)
                self.assertNotIn("imputed_fields", p)
        # A new version trained from the last edit serves by it: binary.
        self.assertEqual(train(self, self.c, name), 2)
        set_live(self, self.c, name, 2, "binary now")
        p = predict(self, self.c, name, {"entity": "d1", "features": FEATURES})
        self.assertModelAnswer(p, name, 2)
        self.assertIn(p["prediction"], ("true", "false"), p)
        self.assertIn("probabilities", p)

    def test_a_batch_answers_as_single_requests_do(self):
        """A forest's batch answers are exactly those of single requests, both
        while the version is unmeasured (the pool runs it) and once it is
        measured fast (the request thread runs it)."""
        for task in ("regression", "binary"):
            with self.subTest(task=task):
                name, _, _, _, _ = self.trained(task, algorithm="forest")
                rows = [f for _, f, _, _ in synthetic(24, seed=7)]
                rows[3] = {"x1": 0.5}  # missing fields imputed alike
                batch = {"instances": [{"entity": "q%d" % i, "features": f}
                                       for i, f in enumerate(rows)]}
                cold = predict(self, self.c, name, batch)["predictions"]  # unmeasured: the pool
                singles = [predict(self, self.c, name, {"features": f}) for f in rows]
                for _ in range(20):  # measured fast from here on: the request thread
                    predict(self, self.c, name, {"features": FEATURES})
                warm = predict(self, self.c, name, batch)["predictions"]
                for got in (cold, warm):
                    self.assertEqual(len(got), len(rows))
                    for g, one in zip(got, singles):
                        self.assertModelAnswer(g, name, 1)
                        self.assertEqual((g["prediction"], g.get("probabilities"), g.get("decision"),
                                          g.get("imputed_fields")),
                                         (one["prediction"], one.get("probabilities"),
                                          one.get("decision"), one.get("imputed_fields")), (g, one))

    def test_binary_probabilities_and_decision(self):
        name, _, _, _, _ = self.trained("binary")
        v = get_version(self, self.c, name, 1)
        classes = v["features"]["classes"]
        self.assertEqual(classes, ["false", "true"], v["features"])
        threshold = v["metrics"]["best_threshold"]
        seen = set()
        for x1 in (-2.0, -0.3, 0.0, 0.2, 0.4, 2.0):
            p = predict(self, self.c, name, {"entity": "b1", "features": {
                "x1": x1, "x2": 0.0, "color": "blue", "caption": "walk"}})
            self.assertModelAnswer(p, name, 1)
            probs = p["probabilities"]
            self.assertEqual(set(probs), {"false", "true"}, p)
            self.assertAlmostEqual(probs["false"] + probs["true"], 1.0, places=9)
            for q in probs.values():
                self.assertTrue(0 <= q <= 1, p)
            # The prediction is the likelier class; the decision applies the
            # F1-best threshold found on the holdout to the positive class.
            self.assertEqual(p["prediction"], max(probs, key=probs.get), p)
            self.assertIs(p["decision"], probs["true"] >= threshold, (p, threshold))
            seen.add(p["decision"])
        self.assertEqual(seen, {True, False})  # x1 from -2 to 2 crosses the boundary
        # Strong signals are classified as learned.
        lo = predict(self, self.c, name, {"features": {"x1": -3.0, "x2": -1.0}})
        hi = predict(self, self.c, name, {"features": {"x1": 3.0, "x2": 1.0}})
        self.assertEqual((lo["prediction"], lo["decision"]), ("false", False), lo)
        self.assertEqual((hi["prediction"], hi["decision"]), ("true", True), hi)
        # The baseline's answer decides too, at its version's threshold.
        r = self.c.post_json("/v1/models/%s/versions/1/disable" % name, {"reason": "baseline"})
        self.assertEqual(r.status, 200, r)
        base = predict(self, self.c, name, {"features": {"x1": 3.0, "x2": 1.0}})
        self.assertEqual(base.get("answered_by"), "baseline", base)
        self.assertIs(base["decision"], base["probabilities"]["true"] >= threshold,
                      (base, threshold))

    def test_ignored_and_imputed_fields(self):
        name, _, _, _, _ = self.trained()
        p = predict(self, self.c, name, {"entity": "i1", "features": {
            "x1": 0.5, "colour": "red", "mood": {"deep": [1, 2]}, "likes": 7}})
        self.assertModelAnswer(p, name, 1)
        self.assertEqual(sorted(p["ignored_fields"]), ["colour", "likes", "mood"], p)
        self.assertEqual(sorted(p["imputed_fields"]), ["caption", "color", "x2"], p)
        # An explicit null is accepted and imputed like an absent field (the
        # listing of nulls is in test_null_fields_are_listed_as_imputed).
        q = predict(self, self.c, name, {"features": {"x1": 0.5, "x2": None, "color": None,
                                                      "caption": None}})
        self.assertModelAnswer(q, name, 1)
        self.assertNotIn("ignored_fields", q)
        self.assertEqual(q["prediction"], p["prediction"])
        # An empty feature object is all imputed.
        e = predict(self, self.c, name, {"features": {}})
        self.assertEqual(sorted(e["imputed_fields"]), ["caption", "color", "x1", "x2"], e)
        self.assertIsInstance(e["prediction"], float, e)
        self.assertNotIn("unseen_categories", e)
        # A category value training never saw scores as other, and says so
        # (it was as silent as a known one).
        u = predict(self, self.c, name, {"features": dict(FEATURES, color="mauve")})
        self.assertModelAnswer(u, name, 1)
        self.assertEqual(u["unseen_categories"], ["color"], u)
        self.assertNotIn("unseen_categories", predict(self, self.c, name, {"features": FEATURES}))

    def test_a_feature_training_dropped_is_read_by_no_version(self):
        # "ghost" is only in an entity with no label: training dropped it as
        # always missing. It was still listed as imputed, and a string for
        # it was a 400.
        feats, labels, _ = load_data(self, self.c, 120, seed=5)
        post_facts(self, self.c, [fact(feats, "unlabelled", {"x1": 0.0, "ghost": 1.0},
                                       time_=at(0))])
        d = definition(feats, labels)
        d["features"].append({"field": "ghost"})
        name = uid("ghost")
        put_model(self, self.c, name, d)
        self.assertEqual(train(self, self.c, name), 1)
        set_live(self, self.c, name, 1)
        p = predict(self, self.c, name, {"features": FEATURES})
        self.assertModelAnswer(p, name, 1)
        self.assertNotIn("imputed_fields", p)
        q = predict(self, self.c, name, {"features": dict(FEATURES, ghost="a string")})
        self.assertModelAnswer(q, name, 1)
        self.assertEqual(q["ignored_fields"], ["ghost"], q)
        self.assertEqual(q["prediction"], p["prediction"])

    def test_null_fields_are_listed_as_imputed(self):
        name, _, _, _, _ = self.trained()
        q = predict(self, self.c, name, {"features": {"x1": 0.5, "x2": None, "color": None,
                                                      "caption": None}})
        self.assertModelAnswer(q, name, 1)
        self.assertEqual(sorted(q.get("imputed_fields", [])), ["caption", "color", "x2"], q)

    def test_invalid_requests(self):
        name, _, _, _, _ = self.trained()
        path = "/v1/models/%s/predict" % name
        json_ct = {"Content-Type": "application/json"}
        logged_before = self.c.get("/v1/models/%s/predictions?limit=500" % name).json()

        def bad(body, field, item=None, status=400, code="invalid_argument", raw=False):
            r = (self.c.post(path, body=body, headers=json_ct) if raw
                 else self.c.post_json(path, body))
            err = self.assertErrorShape(r, status, code=code, field=field)
            self.assertEqual(err.get("item"), item, r)
            return err

        bad({"entity": "x", "features": {"x1": "twelve"}}, "features.x1")
        bad({"features": {"x2": [1, 2]}}, "features.x2")
        bad({"features": {"x1": True}}, "features.x1")
        bad({"features": {"caption": {"text": "dog"}}}, "features.caption")
        bad({"features": {"caption": 3}}, "features.caption")
        bad({"features": {"color": {"name": "red"}}}, "features.color")
        bad({"features": {"x1": {"lower": 3, "upper": 1}}}, "features.x1")
        bad({"entity": 12, "features": {}}, "entity")
        bad({"entity": "x"}, "features")
        bad({"features": [1, 2]}, "features")
        bad({"features": {}, "extra": 1}, "extra")
        bad({"features": {}, "deadline_ms": -5}, "deadline_ms")
        bad({"features": {}, "deadline_ms": "soon"}, "deadline_ms")
        # Batches name the instance and the field.
        ok = {"features": {"x1": 1.0}}
        bad({"instances": [ok, ok, {"features": {"x1": "one"}}]}, "instances[2].features.x1", item=2)
        bad({"instances": [ok, {"features": {"caption": ["a"]}}]}, "instances[1].features.caption",
            item=1)
        bad({"instances": [ok, "nope"]}, "instances[1]", item=1)
        bad({"instances": []}, "instances")
        bad({"instances": {"a": ok}}, "instances")
        bad({"instances": [ok] * 1001}, "instances", status=413, code="too_large")
        # The two forms mixed say so (it was "entity: unknown field").
        err = bad({"entity": "x", "features": {"x1": 1.0}, "instances": [ok]}, "instances")
        self.assertIn('either one instance {"entity", "features"} or {"instances": [...]}, '
                      'not both', err["message"])
        bad({"instances": [ok], "features": {"x1": 1.0}}, "instances")
        # A number's uncertainty follows a fact's rules (bounds that were
        # not numbers beside a numeric value were a 500).
        bad({"features": {"x1": {"lower": "a", "upper": 1, "value": 3}}}, "features.x1.lower")
        bad({"instances": [ok, {"features": {"x1": {"lower": 0, "upper": None, "value": 3}}}]},
            "instances[1].features.x1.upper", item=1)
        bad({"features": {"x1": {"value": 3, "confidence": 5}}}, "features.x1.confidence")
        # An entity with a NUL is refused, as a fact's: no outcome could carry it.
        bad({"entity": "a\u0000b", "features": {}}, "entity")
        # A key given twice is refused, not read as its last value.
        bad('{"features": {"x1": 1, "x1": 5}}', "features.x1", raw=True)
        bad('{"instances": [{"features": {}}, {"features": {"x1": 1, "x1": 1}}]}',
            "instances[1].features.x1", item=1, raw=True)
        # NaN, Infinity and 1e999 are refused with a 400 (the field-naming
        # part is in test_non_finite_numbers_name_the_field).
        for text in ('{"features": {"x1": NaN}}', '{"features": {"x1": Infinity}}',
                     '{"features": {"x1": -Infinity}}', '{"features": {"x1": 1e999}}',
                     '{"instances": [{"features": {}}, {"features": {"x2": -1e999}}]}'):
            r = self.c.post(path, body=text, headers=json_ct)
            self.assertErrorShape(r, 400, code="invalid_argument")
        # Malformed JSON and bodies that are not an object.
        for text, says in (('{"features": {"x1": 1', "malformed JSON"),
                           ("", "the request body is empty"),
                           ("[]", "must be a JSON object"), ('"x"', "must be a JSON object"),
                           ("{'features': {}}", "malformed JSON")):
            r = self.c.post(path, body=text, headers=json_ct)
            self.assertErrorShape(r, 400, code="invalid_argument", message=says)
        # Wrong content type.
        r = self.c.post(path, body=json.dumps({"features": {}}),
                        headers={"Content-Type": "text/plain"})
        self.assertErrorShape(r, 415, field="Content-Type")
        r = self.c.post(path, body="x1=1", headers={"Content-Type": "application/x-www-form-urlencoded"})
        self.assertErrorShape(r, 415)
        # Unknown model.
        r = self.c.post_json("/v1/models/%s/predict" % uid("nosuch"), {"features": {}})
        self.assertErrorShape(r, 404, code="not_found")
        # Nothing of the above was logged as a prediction or broke the model:
        # once a good answer is in the log, the log holds it and no more.
        p = predict(self, self.c, name, {"features": FEATURES})
        self.assertModelAnswer(p, name, 1)

        def logged():
            r = self.c.get("/v1/models/%s/predictions?limit=500" % name).json()
            ids = [e["id"] for e in r["predictions"]]
            return ids if p["prediction_id"] in ids else None
        ids = wait_until(logged, 10, "the good prediction in the log")
        self.assertEqual(sorted(ids), sorted([e["id"] for e in logged_before["predictions"]]
                                             + [p["prediction_id"]]))

    def test_non_finite_numbers_name_the_field(self):
        # The issue: "a wrong type, NaN or Infinity is a 4xx naming the field".
        # 1e999 is valid JSON (RFC 8259 grammar) whose value overflows a double.
        name, _, _, _, _ = self.trained()
        path = "/v1/models/%s/predict" % name
        json_ct = {"Content-Type": "application/json"}
        for text, field, item in (
                ('{"features": {"x1": 1e999}}', "features.x1", None),
                ('{"instances": [{"features": {}}, {"features": {"x2": -1e999}}]}',
                 "instances[1].features.x2", 1),
                ('{"features": {"x1": NaN}}', "features.x1", None),
                ('{"features": {"x1": Infinity}}', "features.x1", None),
                # A key that looks like an index is a field, not an instance
                # (these were a 500 "stoull" and a bogus "item": 7).
                ('{"[]": NaN}', "[]", None),
                ('{"instances[]": 1e999}', "instances[]", None),
                ('{"[7]": NaN}', "[7]", None)):
            r = self.c.post(path, body=text, headers=json_ct)
            err = self.assertErrorShape(r, 400, code="invalid_argument", message="malformed JSON")
            self.assertEqual(err.get("field"), field, (text, r))
            self.assertEqual(err.get("item"), item, (text, r))

    def test_answers_come_from_the_stored_version(self):
        name, feats, labels, rows, d = self.trained()
        v1 = get_version(self, self.c, name, 1)

        # Same features, same number, every time (and single == batch).
        a = predict(self, self.c, name, {"entity": "s1", "features": FEATURES})
        b = predict(self, self.c, name, {"entity": "s2", "features": FEATURES})
        c = predict(self, self.c, name, {"instances": [{"features": FEATURES}] * 3})
        self.assertEqual(a["prediction"], b["prediction"])
        self.assertEqual([q["prediction"] for q in c["predictions"]], [a["prediction"]] * 3)

        # What was evaluated is what is served: the served answers on the
        # holdout rows (the documented split rule) reproduce the version's
        # holdout metrics.
        holdout = [r for r in rows if in_holdout(r[0], 0.2)]
        self.assertEqual(len(holdout), v1["metrics"]["rows"], v1["metrics"])
        served = predict(self, self.c, name, {"instances": [
            {"entity": r[0], "features": r[1]} for r in holdout], "deadline_ms": 10000})
        values = [q["prediction"] for q in served["predictions"]]
        self.assertTrue(all(q["version"] == 1 and not q["fallback"] for q in served["predictions"]))
        got = regression_metrics([r[2] for r in holdout], values)
        for k in ("rmse", "mae", "r2"):
            self.assertAlmostEqual(got[k], v1["metrics"][k], places=9, msg=k)

        # Training again with another algorithm makes version 2, which serves
        # nothing until live moves to it.
        put_model(self, self.c, name, dict(d, algorithm="forest"))
        self.assertEqual(train(self, self.c, name), 2)
        self.assertEqual(get_version(self, self.c, name, 2)["algorithm"], "forest")
        p = predict(self, self.c, name, {"features": FEATURES})
        self.assertModelAnswer(p, name, 1)
        self.assertEqual(p["prediction"], a["prediction"])

        set_live(self, self.c, name, 2, "try the forest")
        p2 = predict(self, self.c, name, {"features": FEATURES})
        self.assertModelAnswer(p2, name, 2)
        self.assertNotEqual(p2["prediction"], a["prediction"])
        self.assertAlmostEqual(p2["prediction"], regression_truth(1.0, -0.5, "red"), delta=2.5)
        self.assertEqual(predict(self, self.c, name, {"features": FEATURES})["prediction"],
                         p2["prediction"])
        v2 = get_version(self, self.c, name, 2)
        served = predict(self, self.c, name, {"instances": [
            {"features": r[1]} for r in holdout], "deadline_ms": 10000})
        got = regression_metrics([r[2] for r in holdout],
                                 [q["prediction"] for q in served["predictions"]])
        self.assertAlmostEqual(got["rmse"], v2["metrics"]["rmse"], places=9)

        # And back: exactly version 1's number again.
        set_live(self, self.c, name, 1, "back to linear")
        p1 = predict(self, self.c, name, {"features": FEATURES})
        self.assertModelAnswer(p1, name, 1)
        self.assertEqual(p1["prediction"], a["prediction"])

    def test_a_label_prior_near_the_largest_double_is_its_mean(self):
        # Labels near the largest double summed past it: the "prior"
        # answered a null prediction claimed by "label_prior" (aef936f), then
        # none at all though the mean was finite (7db9b5e).
        name, feats, labels, rows, d = self.model()
        for values, mean in (([1e308] * 3, 1e308), ([1.5e308, 1.5e308, -1.5e308], 5e307),
                             ([{"lower": 1.7e308, "upper": 1.7976931348623157e308}], 1.7488465674311578e308)):
            with self.subTest(values=values):
                huge = uid("lab")
                post_facts(self, self.c, [fact(huge, uid("e"), {"y": v}) for v in values])
                put_model(self, self.c, name, dict(d, label={"stream": huge, "field": "y"}))
                p = predict(self, self.c, name, {"features": FEATURES})
                self.assertFallback(p, "not_trained", "label_prior", None)
                self.assertAlmostEqual(p["prediction"] / mean, 1.0, places=12)

    def test_never_trained_answers_from_the_prior_or_the_constant(self):
        name, feats, labels, rows, d = self.model()
        p = predict(self, self.c, name, {"entity": "n1", "features": FEATURES})
        self.assertFallback(p, "not_trained", "label_prior", None)
        self.assertEqual(p["arm"], "live")
        # The prior of a regression label is its mean over the label stream.
        mean = sum(r[2] for r in rows) / len(rows)
        self.assertAlmostEqual(p["prediction"], mean, places=6)
        # Batches too, each instance flagged.
        r = predict(self, self.c, name, {"instances": [{"features": {}}, {"features": FEATURES}]})
        for q in r["predictions"]:
            self.assertFallback(q, "not_trained", "label_prior", None)
            self.assertAlmostEqual(q["prediction"], mean, places=6)
        # The prior is kept per label stream until the stream has a new
        # fact: another model on it answers the same; after a new label, a
        # refresh (the definition edited) gives the new mean.
        twin = uid("mt")
        put_model(self, self.c, twin, d)
        self.assertAlmostEqual(predict(self, self.c, twin, {"features": FEATURES})["prediction"],
                               mean, places=6)
        post_facts(self, self.c, [fact(labels, uid("late"), {"y": 1000.0})])
        put_model(self, self.c, name, dict(d, serving={"deadline_ms": 2500}))
        new_mean = (sum(r[2] for r in rows) + 1000.0) / (len(rows) + 1)
        self.assertAlmostEqual(predict(self, self.c, name, {"features": FEATURES})["prediction"],
                               new_mean, places=6)

        # Binary: the class shares.
        feats2, labels2, rows2 = load_data(self, self.c, 150, seed=7)
        bname = uid("mb")
        put_model(self, self.c, bname, definition(feats2, labels2, "binary"))
        p = predict(self, self.c, bname, {"features": FEATURES})
        self.assertFallback(p, "not_trained", "label_prior", None)
        share = sum(1 for r in rows2 if r[3]) / len(rows2)
        self.assertAlmostEqual(p["probabilities"]["true"], share, places=9)
        self.assertAlmostEqual(p["probabilities"]["false"], 1 - share, places=9)
        self.assertEqual(p["prediction"], "true" if share > 0.5 else "false")
        # Every binary answer with probabilities has its decision (the prior's
        # at 0.5: no holdout found a threshold).
        self.assertEqual(p["decision"], share >= 0.5, p)
        # The log reads its classes back by name, though no version answered.
        entity = uid("prior-log")
        logged_id = predict(self, self.c, bname, {"entity": entity, "features": FEATURES})[
            "prediction_id"]
        entry = wait_until(lambda: (self.c.get("/v1/models/%s/predictions?id=%s" % (
            bname, logged_id)).json()["predictions"] or [None])[0], 30, "the prior's log entry")
        self.assertEqual(entry["probabilities"], {"true": share, "false": 1 - share}, entry)
        # Its outcome is scored in live metrics' fallback group (it was in
        # neither count): the entry names its classes.
        post_facts(self, self.c, [fact(labels2, entity, {"b": True})])
        r = self.c.get("/v1/models/%s/live-metrics" % bname)
        self.assertEqual(r.status, 200, r)
        g, = [g for g in r.json()["groups"] if g["arm"] == "fallback"]
        self.assertEqual((g["version"], g["outcomes"], g["unscored_outcomes"]), (None, 1, 0), g)
        # The positive class names the prior's classes too: a twin model on
        # the same labels had whichever prior was counted first.
        twin_b = uid("mb")
        put_model(self, self.c, twin_b, dict(definition(feats2, labels2, "binary"),
                                             label={"stream": labels2, "field": "b",
                                                    "positive": "false"}))
        q = predict(self, self.c, twin_b, {"features": FEATURES})
        self.assertFallback(q, "not_trained", "label_prior", None)
        self.assertEqual(q["decision"], 1 - share >= 0.5, q)
        # A positive class booleans cannot give is refused; beside one class
        # (the other may be rare), the prior answers that one, with a
        # decision of whether it is the positive class.
        maybe_name = uid("mb")
        maybe = dict(definition(feats2, labels2, "binary"),
                     label={"stream": labels2, "field": "b", "positive": "maybe"})
        r = self.c.request("PUT", "/v1/models/" + maybe_name, json_body=maybe)
        self.assertEqual((r.status, r.json()["error"]["field"]), (400, "label.positive"), r)
        one_class = uid("lab")
        post_facts(self, self.c, [fact(one_class, uid("e"), {"b": True}) for _ in range(3)])
        r = self.c.request("PUT", "/v1/models/" + maybe_name,
                           json_body=dict(maybe, label=dict(maybe["label"], stream=one_class)))
        self.assertEqual((r.status, r.json()["error"]["field"]), (400, "label.positive"), r)
        put_model(self, self.c, maybe_name,
                  dict(maybe, label={"stream": one_class, "field": "b", "positive": "false"}))
        q = predict(self, self.c, maybe_name, {"features": FEATURES})
        self.assertFallback(q, "not_trained", "label_prior", None)
        self.assertEqual((q["prediction"], q["probabilities"], q["decision"]),
                         ("true", {"true": 1.0}, False), q)
        true_name = uid("mb")
        put_model(self, self.c, true_name,
                  dict(maybe, label={"stream": one_class, "field": "b"}))
        self.assertEqual(predict(self, self.c, true_name, {"features": FEATURES})["decision"],
                         True)
        # (Labels training would refuse, a third class, give no prior:
        # test_the_prior_counts_standing_labels_named_as_training_names_them.)
        # New labels count at once in the next prior, without a definition
        # change (the supervisor looks every 10 s).
        post_facts(self, self.c, [fact(labels2, uid("more"), {"b": True}) for _ in range(150)])
        # (and the outcome above: one more true)
        share = (sum(1 for r in rows2 if r[3]) + 151) / (len(rows2) + 151)
        wait_until(lambda: abs(predict(self, self.c, bname, {"features": FEATURES})[
            "probabilities"]["true"] - share) < 1e-9, 30, "the prior counted again")

        # A constant in the definition beats the prior.
        cname = uid("mc")
        put_model(self, self.c, cname, dict(d, serving={"fallback": 42, "deadline_ms": 2000}))
        p = predict(self, self.c, cname, {"entity": "n2", "features": FEATURES})
        self.assertFallback(p, "not_trained", "constant", None)
        self.assertEqual(p["prediction"], 42)

        # Once trained and live, the model answers itself.
        self.assertEqual(train(self, self.c, cname), 1)
        p = predict(self, self.c, cname, {"features": FEATURES})
        self.assertFallback(p, "no_live_version", "constant", None)  # trained, not yet live
        set_live(self, self.c, cname, 1)
        self.assertModelAnswer(predict(self, self.c, cname, {"features": FEATURES}), cname, 1)

    def test_the_prior_counts_standing_labels_named_as_training_names_them(self):
        def prior_of(labels, task, field):
            name = uid("pr")
            # Features from the label stream itself: each fact also holds "x".
            put_model(self, self.c, name, dict(definition(labels, labels, task),
                                               label={"stream": labels, "field": field},
                                               features=[{"field": "x"}]))
            return predict(self, self.c, name, {"features": FEATURES})

        # A corrected label is replaced by its correction: the mean is of
        # 10, 20 and 30, not of the 1000 sent first and corrected to 30.
        labels = uid("lab")
        ids = post_facts(self, self.c, [fact(labels, "a", {"x": 1, "y": 10}), fact(labels, "b", {"x": 1, "y": 20}),
                                        fact(labels, "c", {"x": 1, "y": 1000})])
        post_facts(self, self.c, [fact(labels, "c", {"x": 1, "y": 30}, corrects=ids[2])])
        p = prior_of(labels, "regression", "y")
        self.assertFallback(p, "not_trained", "label_prior", None)
        self.assertAlmostEqual(p["prediction"], 20.0, places=9)
        # A "correction" from another stream is refused (the prior once
        # dropped "a"'s 10 for one: a mean of 25), and the prior is as it was.
        r = self.c.post_json("/v1/facts", fact(uid("other"), "z", {"y": 0}, corrects=ids[0]))
        self.assertErrorShape(r, 400, code="invalid_argument", field="corrects",
                              message="in stream \"%s\"" % labels)
        self.assertAlmostEqual(prior_of(labels, "regression", "y")["prediction"], 20.0, places=9)

        # Classes: corrections count once; numbers named as training names
        # them ("1", not "1.0"), in training's order.
        labels = uid("lab")
        ids = post_facts(self, self.c, [fact(labels, "a", {"x": 1, "k": 1}), fact(labels, "b", {"x": 1, "k": 1.0}),
                                        fact(labels, "c", {"x": 1, "k": 0}), fact(labels, "d", {"x": 1, "k": 1})])
        post_facts(self, self.c, [fact(labels, "d", {"x": 1, "k": 0}, corrects=ids[3])])
        p = prior_of(labels, "binary", "k")
        self.assertFallback(p, "not_trained", "label_prior", None)
        self.assertEqual(p["probabilities"], {"0": 0.5, "1": 0.5}, p)
        # An even split answers the positive class, as its decision says.
        self.assertEqual((p["prediction"], p["decision"]), ("1", True), p)

        # Labels training would refuse give no prior (three classes for a
        # binary model were three "binary" shares): nothing answers. A
        # binary definition over them is refused; sent after it, the
        # prior goes.
        labels = uid("lab")
        post_facts(self, self.c, [fact(labels, e, {"x": 1, "k": v}) for e, v in
                                  (("a", "x"), ("b", "y"), ("d", "y"))])
        binary = uid("pr")
        put_model(self, self.c, binary, dict(definition(labels, labels, "binary"),
                                             label={"stream": labels, "field": "k"},
                                             features=[{"field": "x"}]))
        self.assertFallback(predict(self, self.c, binary, {"features": FEATURES}),
                            "not_trained", "label_prior", None)
        post_facts(self, self.c, [fact(labels, "c", {"x": 1, "k": "z"}),
                                  fact(labels, "e", {"x": 1, "k": "z"})])
        wait_until(lambda: predict(self, self.c, binary, {"features": FEATURES})[
            "answered_by"] == "none", 30, "the prior gone with a third class")
        r = self.c.request("PUT", "/v1/models/" + uid("pr"), json_body=dict(
            definition(labels, labels, "binary"), label={"stream": labels, "field": "k"},
            features=[{"field": "x"}]))
        self.assertEqual((r.status, r.json()["error"]["field"]), (400, "label.field"), r)
        self.assertIn("hold 3 classes", r.json()["error"]["message"], r)
        p = prior_of(labels, "multiclass", "k")
        self.assertFallback(p, "not_trained", "label_prior", None)
        self.assertEqual(p["prediction"], "y", p)
        self.assertEqual(p["probabilities"], {"x": 0.2, "y": 0.4, "z": 0.4}, p)

        # A label no class can be (a binary model's 2, a multiclass model's
        # 2.5), or of another kind than most (a 1 among true and false), is
        # left out of the prior: one stray fact took it from every answer.
        labels = uid("lab")
        post_facts(self, self.c, [fact(labels, e, {"x": 1, "k": v}) for e, v in
                                  (("a", 1), ("b", 1), ("c", 0), ("d", 1))])
        binary = uid("pr")
        put_model(self, self.c, binary, dict(definition(labels, labels, "binary"),
                                             label={"stream": labels, "field": "k"},
                                             features=[{"field": "x"}]))
        post_facts(self, self.c, [fact(labels, "e", {"x": 1, "k": 2}),
                                  fact(labels, "f", {"x": 1, "k": "maybe"})])
        p = predict(self, self.c, binary, {"features": FEATURES})
        self.assertFallback(p, "not_trained", "label_prior", None)
        self.assertEqual(p["probabilities"], {"0": 0.25, "1": 0.75}, p)
        p = prior_of(labels, "multiclass", "k")  # 0, 1 and 2 (integers), not "maybe"
        self.assertEqual(p["probabilities"], {"0": 0.2, "1": 0.6, "2": 0.2}, p)
        labels = uid("lab")
        post_facts(self, self.c, [fact(labels, "a", {"x": 1, "k": 2.5}), fact(labels, "b", {"x": 1, "k": 1})])
        p = prior_of(labels, "multiclass", "k")
        self.assertFallback(p, "not_trained", "label_prior", None)
        self.assertEqual(p["probabilities"], {"1": 1.0}, p)
        labels = uid("lab")
        post_facts(self, self.c, [fact(labels, e, {"x": 1, "k": v}) for e, v in
                                  (("a", True), ("b", False), ("c", True), ("d", 1))])
        p = prior_of(labels, "binary", "k")
        self.assertFallback(p, "not_trained", "label_prior", None)
        self.assertEqual(p["probabilities"], {"false": 1 / 3, "true": 2 / 3}, p)

        # A label sent with its confidence, {"value", "confidence"}, counts
        # as its value, as training reads it (the prior skipped it), and an
        # interval as its midpoint; a {"value"} that is not a number does not.
        labels = uid("lab")
        post_facts(self, self.c, [fact(labels, "a", {"x": 1, "y": {"value": 1, "confidence": 0.9}}),
                                  fact(labels, "b", {"x": 1, "y": {"value": 0, "confidence": 0.6}}),
                                  fact(labels, "c", {"x": 1, "y": {"value": 1, "confidence": 0.7}}),
                                  fact(labels, "d", {"x": 1, "y": {"lower": 2, "upper": 4}}),
                                  fact(labels, "e", {"x": 1, "y": {"value": "1"}})])
        self.assertAlmostEqual(prior_of(labels, "regression", "y")["prediction"], 5 / 4, places=9)
        labels = uid("lab")
        post_facts(self, self.c, [fact(labels, e, {"x": 1, "y": {"value": v, "confidence": 0.8}})
                                  for e, v in (("a", 1), ("b", 0), ("c", 1), ("d", 1))] +
                   [fact(labels, "e", {"x": 1, "y": {"value": "0"}})])
        p = prior_of(labels, "binary", "y")
        self.assertFallback(p, "not_trained", "label_prior", None)
        self.assertEqual(p["probabilities"], {"0": 0.25, "1": 0.75}, p)
        labels = uid("lab")
        post_facts(self, self.c, [fact(labels, "a", {"x": 1, "k": "1"}), fact(labels, "b", {"x": 1, "k": 1})])
        self.assertFallback(prior_of(labels, "multiclass", "k"), "not_trained", "none", None)
        # One class only: training would refuse to train on it, but the prior
        # describes the labels, and every one of them is "z".
        labels = uid("lab")
        post_facts(self, self.c, [fact(labels, e, {"x": 1, "k": "z"}) for e in "ab"])
        p = prior_of(labels, "multiclass", "k")
        self.assertFallback(p, "not_trained", "label_prior", None)
        self.assertEqual((p["prediction"], p["probabilities"]), ("z", {"z": 1.0}), p)
        # More classes than max_classes (50): training refuses them, no prior.
        labels = uid("lab")
        post_facts(self, self.c, [fact(labels, "e%d" % i, {"x": 1, "k": "c%d" % i})
                                  for i in range(51)])
        self.assertFallback(prior_of(labels, "multiclass", "k"), "not_trained", "none", None)

    # ------------------------------------------- people disabling versions

    def test_disable_enable_and_rollback(self):
        name, feats, labels, rows, d = self.trained()
        v1_value = predict(self, self.c, name, {"features": FEATURES})["prediction"]
        put_model(self, self.c, name, dict(d, params={"lambda": 30.0}))
        self.assertEqual(train(self, self.c, name), 2)
        set_live(self, self.c, name, 2, "stronger ridge")
        p = predict(self, self.c, name, {"features": FEATURES})
        self.assertModelAnswer(p, name, 2)
        v2_value = p["prediction"]
        self.assertNotEqual(v1_value, v2_value)

        base = "/v1/models/%s/versions/2" % name
        # Every action needs a reason.
        for body in ({}, {"reason": ""}, {"reason": 5}):
            r = self.c.post_json(base + "/disable", body)
            self.assertErrorShape(r, 400, field="reason")
        r = self.c.post(base + "/disable")
        self.assertErrorShape(r, 400, field="reason")
        r = self.c.post_json("/v1/models/%s/versions/9/disable" % name, {"reason": "x"})
        self.assertErrorShape(r, 404, field="version")
        r = self.c.post_json("/v1/models/%s/versions/2/disable" % uid("nosuch"), {"reason": "x"})
        self.assertErrorShape(r, 404)
        # Nothing changed: still version 2.
        self.assertModelAnswer(predict(self, self.c, name, {"features": FEATURES}), name, 2)

        # Disabling takes effect on the very next prediction: version 1
        # (earlier live) answers, flagged.
        r = self.c.post_json(base + "/disable", {"reason": "complaints from the app"})
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json()["enabled"], False, r)
        # The version that answers live traffic now (it said none).
        self.assertEqual(r.json()["serving_version"], 1, r)
        self.assertEqual(r.json()["actor"], "admin", r)
        p = predict(self, self.c, name, {"entity": "d1", "features": FEATURES})
        self.assertFallback(p, "version_disabled", "previous_version", 1)
        self.assertEqual(p["prediction"], v1_value)
        r = self.c.get("/v1/serving")
        self.assertEqual(r.status, 200, r)
        mine = [m for m in r.json()["models"] if m["model"] == name][0]
        self.assertEqual((mine["live_alias"], mine["serving_version"], mine["problem"],
                          mine["disabled"]), (2, 1, "version_disabled", [2]), mine)
        self.assertIn('kennel_model_serving_version{model="%s"} 1\n' % name,
                      self.c.get("/metrics").text)

        # Enabling restores it at once.
        r = self.c.post_json(base + "/enable", {"reason": "fixed upstream"})
        self.assertEqual(r.status, 200, r)
        self.assertEqual((r.json()["enabled"], r.json()["serving_version"]), (True, 2), r)
        p = predict(self, self.c, name, {"features": FEATURES})
        self.assertModelAnswer(p, name, 2)
        self.assertEqual(p["prediction"], v2_value)

        events = events_of(self, self.c, name)
        self.assertEqual([(e["version"], e["event"], e["actor"], e["reason"]) for e in events[:2]],
                         [(2, "enabled", "admin", "fixed upstream"),
                          (2, "disabled", "admin", "complaints from the app")], events)

        # Rollback moves live to the previous live version, recorded.
        for body in ({}, {"reason": ""}):
            r = self.c.post_json("/v1/models/%s/rollback" % name, body)
            self.assertErrorShape(r, 400, field="reason")
        r = self.c.post_json("/v1/models/%s/rollback" % name, {"reason": "v2 looks worse"})
        self.assertEqual(r.status, 200, r)
        self.assertEqual((r.json()["from"], r.json()["to"], r.json()["actor"]), (2, 1, "admin"), r)
        p = predict(self, self.c, name, {"features": FEATURES})
        self.assertModelAnswer(p, name, 1)
        self.assertEqual(p["prediction"], v1_value)
        dep = deployments_of(self, self.c, name)[0]
        self.assertEqual((dep["alias"], dep["version"], dep["previous_version"], dep["actor"]),
                         ("live", 1, 2, "admin"), dep)
        self.assertIn("v2 looks worse", dep["reason"], dep)
        # The aliases say so too.
        r = self.c.get("/v1/models/%s/aliases" % name)
        self.assertEqual({a["alias"]: a["version"] for a in r.json()["aliases"]}.get("live"), 1, r)

        # Disabling the only usable version leaves the baseline to answer.
        r = self.c.post_json("/v1/models/%s/versions/2/disable" % name, {"reason": "retire"})
        self.assertEqual(r.status, 200, r)
        r = self.c.post_json("/v1/models/%s/versions/1/disable" % name, {"reason": "all off"})
        self.assertEqual(r.status, 200, r)
        p = predict(self, self.c, name, {"features": FEATURES})
        self.assertFallback(p, "version_disabled", "baseline", None)
        self.assertAlmostEqual(p["prediction"],
                               get_version(self, self.c, name, 1)["baseline"]["value"], places=9)
        # Rolling back with no enabled earlier version is a conflict, not a change.
        r = self.c.post_json("/v1/models/%s/rollback" % name, {"reason": "anything?"})
        self.assertErrorShape(r, 409)

    def test_rollback_walks_back_the_path_live_came_by(self):
        # A second rollback once undid the first (2 -> 1, then 1 -> 2: the
        # version just rolled back from was live again). Rollbacks now step
        # back along the moves that brought live where it is.
        name, _, _, _, _ = self.trained()
        self.assertEqual(train(self, self.c, name), 2)
        self.assertEqual(train(self, self.c, name), 3)
        set_live(self, self.c, name, 2)
        set_live(self, self.c, name, 3)
        path = "/v1/models/%s/rollback" % name

        def rollback():
            # The model says where a rollback would go (the admin page's
            # button reads it), before it goes there.
            said = self.c.get("/v1/models/%s" % name).json()["rollback"]
            r = self.c.post_json(path, {"reason": "step back"})
            self.assertEqual(said["to"], r.json().get("to"), (said, r))
            self.assertIs(said["passed_over_task"], False)
            return r.status, (r.json().get("from"), r.json().get("to"))

        self.assertEqual(rollback(), (200, (3, 2)))
        self.assertEqual(rollback(), (200, (2, 1)))
        status, _ = rollback()
        self.assertEqual(status, 409)
        self.assertModelAnswer(predict(self, self.c, name, {"features": FEATURES}), name, 1)
        # The versions rolled back from are not the fallback chain's either:
        # with version 1 disabled the baseline answers, not version 2 or 3.
        r = self.c.post_json("/v1/models/%s/versions/1/disable" % name, {"reason": "t"})
        self.assertEqual(r.status, 200, r)
        self.assertFallback(predict(self, self.c, name, {"features": FEATURES}),
                            "version_disabled", "baseline", None)
        r = self.c.post_json("/v1/models/%s/versions/1/enable" % name, {"reason": "t"})
        self.assertEqual(r.status, 200, r)
        # Moving live by hand to an older version is a step back too; a new
        # one steps forward from there.
        set_live(self, self.c, name, 3)
        set_live(self, self.c, name, 2)
        set_live(self, self.c, name, 1)
        self.assertEqual(rollback()[0], 409)
        set_live(self, self.c, name, 3)
        self.assertEqual(rollback(), (200, (3, 1)))
        # A move to where live already is changes and records nothing.
        before = deployments_of(self, self.c, name)
        self.assertIs(set_live(self, self.c, name, 1)["changed"], False)
        self.assertEqual(deployments_of(self, self.c, name), before)
        self.assertIs(set_live(self, self.c, name, 2)["changed"], True)

    def test_removing_live_takes_its_version_down(self):
        # The version taken down kept answering, as the first of the chain.
        name, _, _, _, _ = self.trained()
        self.assertEqual(train(self, self.c, name), 2)
        self.assertEqual(train(self, self.c, name), 3)
        set_live(self, self.c, name, 2)
        set_live(self, self.c, name, 3)
        r = self.c.request("DELETE", "/v1/models/%s/aliases/live" % name,
                           json_body={"reason": "take v3 down"})
        self.assertEqual(r.status, 200, r)
        self.assertFallback(predict(self, self.c, name, {"features": FEATURES}),
                            "no_live_version", "previous_version", 2)
        m = next(m for m in self.c.get("/v1/serving").json()["models"] if m["model"] == name)
        self.assertEqual([(v["version"], v["role"]) for v in m["versions"]],
                         [(2, "previous"), (1, "previous")], m)
        # Live back on it puts it back on the path.
        set_live(self, self.c, name, 3)
        self.assertModelAnswer(predict(self, self.c, name, {"features": FEATURES}), name, 3)
        r = self.c.post_json("/v1/models/%s/rollback" % name, {"reason": "back"})
        self.assertEqual((r.status, r.json().get("to")), (200, 2), r)

    def test_a_disabled_version_is_not_promoted_to_live(self):
        name, _, _, _, _ = self.trained()
        self.assertEqual(train(self, self.c, name), 2)
        r = self.c.post_json("/v1/models/%s/versions/2/disable" % name, {"reason": "suspect"})
        self.assertEqual(r.status, 200, r)
        # Live on it would only ever fall back: a conflict, nothing moved.
        before = deployments_of(self, self.c, name)
        r = self.c.request("PUT", "/v1/models/%s/aliases/live" % name,
                           json_body={"version": 2, "reason": "promote a disabled one"})
        err = self.assertErrorShape(r, 409, code="conflict", field="version", message="disabled")
        self.assertIn("version 2", err["message"], err)
        self.assertEqual(deployments_of(self, self.c, name), before)
        self.assertModelAnswer(predict(self, self.c, name, {"features": FEATURES}), name, 1)
        # Another alias may point at it: only live (and experiment arms) serve.
        r = self.c.request("PUT", "/v1/models/%s/aliases/review" % name,
                           json_body={"version": 2, "reason": "look at it later"})
        self.assertEqual(r.status, 200, r)
        # Enabled again, it may go live.
        r = self.c.post_json("/v1/models/%s/versions/2/enable" % name, {"reason": "cleared"})
        self.assertEqual(r.status, 200, r)
        set_live(self, self.c, name, 2)
        self.assertModelAnswer(predict(self, self.c, name, {"features": FEATURES}), name, 2)

    def test_enabling_or_disabling_twice_records_one_event(self):
        name, _, _, _, _ = self.trained()
        base = "/v1/models/%s/versions/1/" % name

        def act(action, enabled, changed):
            before = len(events_of(self, self.c, name))
            r = self.c.post_json(base + action, {"reason": "%s, changed %s" % (action, changed)})
            self.assertEqual(r.status, 200, r)
            self.assertEqual(len(events_of(self, self.c, name)), before + changed, (action, r))
            self.assertEqual((r.json()["enabled"], r.json().get("changed")), (enabled, changed), r)

        # A version without events is enabled: enabling it records nothing.
        act("enable", True, False)
        act("disable", False, True)
        act("disable", False, False)
        act("enable", True, True)
        act("enable", True, False)
        self.assertEqual([(e["event"], e["reason"]) for e in events_of(self, self.c, name)],
                         [("enabled", "enable, changed True"),
                          ("disabled", "disable, changed True")])

    def test_promotion_under_load_loses_nothing(self):
        name, feats, labels, rows, d = self.trained()
        v1_value = predict(self, self.c, name, {"features": FEATURES})["prediction"]
        put_model(self, self.c, name, dict(d, algorithm="forest"))
        self.assertEqual(train(self, self.c, name), 2)
        set_live(self, self.c, name, 2)
        v2_value = predict(self, self.c, name, {"features": FEATURES})["prediction"]
        set_live(self, self.c, name, 1)
        self.assertNotEqual(v1_value, v2_value)
        expected = {1: v1_value, 2: v2_value}

        stop = threading.Event()
        results = []  # (status, version, fallback, prediction, reason, answered_by, latency_ms)
        errors = []
        lock = threading.Lock()

        def worker(k):
            cl = Client(self.server.port)
            mine = []
            try:
                i = 0
                while not stop.is_set():
                    i += 1
                    r = cl.post_json("/v1/models/%s/predict" % name,
                                     {"entity": "w%d-%d" % (k, i), "features": FEATURES})
                    if r.status != 200:
                        mine.append((r.status, None, None, r.text[:200]))
                        continue
                    b = r.json()
                    mine.append((200, b["version"], b["fallback"], b["prediction"],
                                 b.get("fallback_reason"), b.get("answered_by"), b["latency_ms"]))
            except Exception as e:  # noqa: BLE001 - any client error fails the test below
                errors.append(repr(e))
            finally:
                cl.close()
                with lock:
                    results.extend(mine)

        threads = [threading.Thread(target=worker, args=(k,)) for k in range(4)]
        for t in threads:
            t.start()
        try:
            t0 = time.monotonic()
            moves = 0
            # ~5 s and at least 8 moves (bounded: 30 s on a very busy machine).
            while (time.monotonic() < t0 + 5 or moves < 8) and time.monotonic() < t0 + 30:
                time.sleep(0.3)
                if moves % 4 == 3:
                    r = self.c.post_json("/v1/models/%s/rollback" % name, {"reason": "under load"})
                else:
                    r = self.c.request("PUT", "/v1/models/%s/aliases/live" % name, json_body={
                        "version": 2 if moves % 2 == 0 else 1, "reason": "flip %d" % moves})
                self.assertEqual(r.status, 200, r)
                moves += 1
        finally:
            stop.set()
            for t in threads:
                t.join(30)
        self.assertFalse(any(t.is_alive() for t in threads))
        self.assertEqual(errors, [])
        self.assertGreaterEqual(moves, 8)
        self.assertGreater(len(results), 100, "too few predictions under load")
        self.assertEqual([r for r in results if r[0] != 200], [], "non-200 answers")
        # No answer fell back because of the moves. (A genuine 2 s deadline
        # miss on an overloaded test machine is the only fallback tolerated:
        # how many there are depends on the machine, so it is not counted.)
        fallbacks = [r for r in results if r[2] is not False]
        self.assertEqual([r for r in fallbacks if r[4] != "deadline_exceeded" or r[6] < 2000], [],
                         "fallback answers during promotion")
        answered = [r for r in results if r[2] is False]
        self.assertEqual({r[1] for r in answered}, {1, 2})
        # Every answer is exactly its version's number: no mixed state.
        wrong = [r for r in answered if r[3] != expected[r[1]]]
        self.assertEqual(wrong, [])
        lives = [x for x in deployments_of(self, self.c, name) if x["alias"] == "live"]
        self.assertGreaterEqual(len(lives), moves + 3)

    # ---------------------------------------------------------------- access

    def test_metrics_for_prometheus_match_the_serving_counters(self):
        name, _, _, _, _ = self.trained()
        for i in range(3):
            predict(self, self.c, name, {"entity": "mx%d" % i, "features": FEATURES})
        predict(self, self.c, name, {"instances": [{"features": FEATURES}] * 4})
        r = self.c.get("/metrics")
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.header("Content-Type"), "text/plain; version=0.0.4; charset=utf-8")
        # The text format, line by line: HELP and TYPE before a family's samples.
        label = r'[a-z_]+="(?:[^"\\\\]|\\\\.)*"'
        sample_re = re.compile(r'^(?P<name>[a-z_]+)(?P<labels>\{%s(,%s)*\})? (?P<value>-?[0-9.e+-]+|NaN)$'
                               % (label, label))
        types, samples = {}, {}
        for line in r.text.splitlines():
            if line.startswith("# HELP "):
                continue
            if line.startswith("# TYPE "):
                _, _, family, kind = line.split(" ")
                self.assertIn(kind, ("counter", "gauge", "histogram"), line)
                types[family] = kind
                continue
            m = sample_re.match(line)
            self.assertIsNotNone(m, "not a sample line: %r" % line)
            family = m.group("name")
            if family not in types:  # a histogram's series
                family = re.sub(r"_(bucket|sum|count)$", "", family)
                self.assertEqual(types.get(family), "histogram", line)
            self.assertIn(family, types, "a sample before its TYPE: %r" % line)
            samples[m.group("name") + (m.group("labels") or "")] = float(m.group("value"))
        for family, kind in types.items():
            self.assertEqual(kind == "counter", family.endswith("_total"), family)
        # Every family is in docs/operations.md's list, for the people who
        # alert on them.
        with open(os.path.join(os.path.dirname(__file__), "..", "..", "docs",
                               "operations.md")) as f:
            documented = f.read()
        undocumented = [family for family in types if family not in documented]
        self.assertEqual(undocumented, [], "families missing from docs/operations.md")
        key = '{model="%s",version="1",role="live"}' % name
        self.assertEqual(samples["kennel_version_requests_total" + key], 7, samples)
        self.assertEqual(samples["kennel_version_fallbacks_total" + key], 0)
        self.assertEqual(samples['kennel_model_serving_version{model="%s"}' % name], 1)
        serving = self.c.get("/v1/serving").json()
        self.assertGreaterEqual(samples["kennel_predictions_total"], 7)
        self.assertEqual(samples["kennel_predict_pool_refused_total"], serving["predict_pool"]["refused"])
        self.assertGreater(samples['kennel_facts_total{outcome="stored"}'], 0)
        # Requests by route and code; each histogram's buckets rise to its count.
        route = '{method="POST",route="/v1/models/{name}/predict"'
        self.assertGreaterEqual(samples['kennel_http_requests_total' + route + ',code="200"}'], 4)
        histograms = 0
        for key, count in samples.items():
            family = key.split("{")[0][:-len("_count")]
            if not key.split("{")[0].endswith("_count") or types.get(family) != "histogram":
                continue
            histograms += 1
            labels = key[key.index("{"):-1]
            buckets = [v for k, v in samples.items() if k.startswith(family + "_bucket" + labels + ",")]
            self.assertEqual(len(buckets), 16, key)
            self.assertEqual(buckets, sorted(buckets), key)
            self.assertEqual(samples[family + "_bucket" + labels + ',le="+Inf"}'], count)
        self.assertGreater(histograms, 1)
        self.assertGreaterEqual(samples["kennel_http_request_duration_seconds_count" + route + "}"],
                                4)
        # Per model: each request once, a batch too; kept across a refresh
        # of the model's serving (a disable and an enable).
        per_model = 'kennel_prediction_duration_seconds_count{model="%s"}' % name
        self.assertEqual(samples[per_model], 4)
        # A model never asked has no histogram yet (it has its serving version).
        idle, _, _, _, _ = self.trained()
        text = self.c.get("/metrics").text
        self.assertIn('kennel_model_serving_version{model="%s"} 1' % idle, text)
        self.assertNotIn('kennel_prediction_duration_seconds_count{model="%s"}' % idle, text)
        # /v1/serving for one model: that one alone, with the same counters.
        everyone = {m["model"]: m for m in self.c.get("/v1/serving").json()["models"]}
        self.assertGreater(len(everyone), 1)
        one = self.c.get("/v1/serving?model=" + name).json()
        self.assertEqual([m["model"] for m in one["models"]], [name])
        self.assertEqual(one["models"][0]["versions"][0]["requests"],
                         everyone[name]["versions"][0]["requests"])
        self.assertIn("predict_pool", one)
        self.assertEqual(self.c.get("/v1/serving?model=nosuch").json()["models"], [])
        self.assertEqual(self.c.get("/v1/serving?modle=" + name).status, 400)
        for action in ("disable", "enable"):
            r = self.c.post_json("/v1/models/%s/versions/1/%s" % (name, action), {"reason": "test"})
            self.assertEqual(r.status, 200, r)
        predict(self, self.c, name, {"entity": "mx-after", "features": FEATURES})
        self.assertIn(per_model + " 5\n", self.c.get("/metrics").text)
        # Which build runs, and the process metrics of every client library.
        version = kennel_harness.run_cli(["version"]).stdout.split()
        build = [k for k in samples if k.startswith("kennel_build_info{")]
        self.assertEqual(build, ['kennel_build_info{version="%s",commit="%s"}'
                                 % (version[1], version[3].rstrip(","))], samples)
        self.assertEqual(samples[build[0]], 1)
        for name in ("process_start_time_seconds", "process_cpu_seconds_total",
                     "process_resident_memory_bytes", "process_open_fds"):
            self.assertGreater(samples[name], 0, name)
        self.assertAlmostEqual(samples["process_start_time_seconds"] + samples["kennel_uptime_seconds"],
                               time.time(), delta=60)
        # The outcomes partition the jobs the worker ran (the overview counts
        # them too; read on both sides of a scrape, in case a job ends between).
        self.assertGreater(samples['kennel_training_jobs_total{outcome="succeeded"}'], 0)
        for _ in range(5):
            before = self.c.get("/v1/overview").json()["components"]["trainer"]["jobs_run"]
            text = self.c.get("/metrics").text
            after = self.c.get("/v1/overview").json()["components"]["trainer"]["jobs_run"]
            if before == after:
                break
        ended = sum(float(re.search(r'^kennel_training_jobs_total\{outcome="%s"\} (\S+)$' % o,
                                    text, re.M).group(1))
                    for o in ("succeeded", "failed", "cancelled", "interrupted"))
        self.assertEqual(ended, after)
        self.assertGreater(samples['kennel_prediction_latency_recent_seconds{quantile="0.99"}'], 0)
        # A model without a usable version says why.
        untrained, _, _, _, _ = self.model()
        r = self.c.get("/metrics")
        self.assertIn('kennel_model_problem{model="%s",problem="not_trained"} 1' % untrained, r.text)
        self.assertIn('kennel_model_serving_version{model="%s"} 0' % untrained, r.text)
        # Credentials as for every endpoint: any key may read.
        anon = Client(self.server.port, auth=None)
        self.addCleanup(anon.close)
        self.assertErrorShape(anon.get("/metrics"), 401, code="unauthenticated")

    def test_prediction_routes_need_the_right_scope(self):
        name, _, _, _, _ = self.trained()
        keys = {}
        for scope in ("ingest", "predict"):
            r = self.c.post_json("/v1/keys", {"name": uid(scope), "scopes": [scope]})
            self.assertEqual(r.status, 201, r)
            keys[scope] = r.json()["key"]
        path = "/v1/models/%s/predict" % name
        body = {"entity": "a1", "features": FEATURES}

        def as_key(scope):
            return Client(self.server.port, auth="Bearer " + keys[scope])

        ingest, pred, anon = as_key("ingest"), as_key("predict"), Client(self.server.port, auth=None)
        for cl in (ingest, pred, anon):
            self.addCleanup(cl.close)
        r = ingest.post_json(path, body)
        err = self.assertErrorShape(r, 403, code="forbidden")
        self.assertIn("predict", err["message"])
        r = anon.post_json(path, body)
        self.assertErrorShape(r, 401, code="unauthenticated")
        wrong = Client(self.server.port, auth="Bearer knl_not-a-key")
        self.addCleanup(wrong.close)
        self.assertErrorShape(wrong.post_json(path, body), 401)
        r = pred.post_json(path, body)
        self.assertEqual(r.status, 200, r)
        self.assertModelAnswer(r.json(), name, 1)
        # A predict key may read serving state but not change it.
        self.assertEqual(pred.get("/v1/models/%s/live-metrics" % name).status, 200)
        self.assertEqual(pred.get("/v1/serving").status, 200)
        for method, p, b in (
                ("POST", "/v1/models/%s/versions/1/disable" % name, {"reason": "x"}),
                ("POST", "/v1/models/%s/versions/1/enable" % name, {"reason": "x"}),
                ("POST", "/v1/models/%s/rollback" % name, {"reason": "x"}),
                ("POST", "/v1/models/%s/experiments" % name,
                 {"reason": "x", "arms": [{"version": 1, "weight": 1}]}),
                ("PUT", "/v1/models/%s/aliases/live" % name, {"version": 1, "reason": "x"})):
            r = pred.request(method, p, json_body=b)
            self.assertErrorShape(r, 403, code="forbidden")
            r = anon.request(method, p, json_body=b)
            self.assertErrorShape(r, 401)
        # None of that changed anything.
        self.assertEqual(events_of(self, self.c, name), [])
        self.assertModelAnswer(pred.post_json(path, body).json(), name, 1)


# ------------------------------------------------------- fault injection

class FaultTest(SharedServerCase):
    """Serving faults from the definition's test_fault, honoured because the
    server runs with --test-faults. No request here gets a non-200."""

    server_args = ("--test-faults",)

    def good_then_faulty(self, fault, **extra):
        """Version 1 (good) was live; version 2, trained from a revision with
        `fault`, is live now. Returns (name, version 1's answer to FEATURES)."""
        name, feats, labels, rows, d = self.trained(**extra)
        v1_value = predict(self, self.c, name, {"features": FEATURES})["prediction"]
        put_model(self, self.c, name, dict(d, test_fault=fault))
        self.assertEqual(train(self, self.c, name), 2)
        set_live(self, self.c, name, 2, "the faulty one")
        return name, v1_value

    def test_throwing_version_falls_back_to_the_previous_live_version(self):
        name, v1_value = self.good_then_faulty("serve_throw")
        for i in range(8):
            p = predict(self, self.c, name, {"entity": "t%d" % i, "features": FEATURES})
            self.assertFallback(p, "model_error", "previous_version", 1)
            self.assertEqual(p["arm"], "live")
            self.assertEqual(p["prediction"], v1_value)
        r = predict(self, self.c, name, {"instances": [{"features": FEATURES}] * 4})
        for p in r["predictions"]:
            self.assertFallback(p, "model_error", "previous_version", 1)
            self.assertEqual(p["prediction"], v1_value)
        # The serving status counts the errors against version 2.
        r = self.c.get("/v1/serving")
        mine = [m for m in r.json()["models"] if m["model"] == name][0]
        v2 = [v for v in mine["versions"] if v["version"] == 2 and v["role"] == "live"][0]
        self.assertEqual((v2["requests"], v2["errors"], v2["fallbacks"]), (12, 12, 12), v2)

    def test_the_previous_version_reads_the_fields_live_no_longer_reads(self):
        # Version 2 reads x1 only and throws; version 1 also read x2 and
        # color. Falling back to version 1, they reach it: its answer is its
        # own (it imputed them, and listed x2 as ignored, before). A wrong
        # type in a field only version 1 reads is dropped for it, not
        # refused: live accepts the request.
        name, feats, labels, rows, d = self.trained()
        v1_value = predict(self, self.c, name, {"features": FEATURES})["prediction"]
        put_model(self, self.c, name, dict(d, features=[{"field": "x1"}],
                                           test_fault="serve_throw"))
        self.assertEqual(train(self, self.c, name), 2)
        set_live(self, self.c, name, 2, "x1 only, and it throws")
        p = predict(self, self.c, name, {"entity": "f1", "features": FEATURES})
        self.assertFallback(p, "model_error", "previous_version", 1)
        self.assertEqual(p["prediction"], v1_value, p)
        self.assertNotIn("ignored_fields", p)
        self.assertNotIn("imputed_fields", p)
        r = predict(self, self.c, name, {"instances": [{"features": FEATURES}] * 2})
        for q in r["predictions"]:
            self.assertEqual(q["prediction"], v1_value, q)
        odd = dict(FEATURES, x2="not a number")
        p = predict(self, self.c, name, {"features": odd})
        self.assertFallback(p, "model_error", "previous_version", 1)
        without_x2 = dict(FEATURES)
        del without_x2["x2"]
        self.assertEqual(p["prediction"],
                         predict(self, self.c, name, {"features": without_x2})["prediction"], p)
        self.assertNotEqual(p["prediction"], v1_value, p)
        # Dropped for version 1, which answered: its answer says so.
        self.assertEqual(p.get("ignored_fields"), ["x2"], p)

    def test_a_field_the_answering_version_does_not_read_is_reported_ignored(self):
        # Version 2 (live, healthy) reads x1 only; version 1, behind it in the
        # fallback chain, read x2 and color too. Version 2's answers listed
        # nothing as ignored, though it read neither: an app kept sending
        # fields no longer used, and a wrong type in them went unseen.
        name, feats, labels, rows, d = self.trained()
        put_model(self, self.c, name, dict(d, features=[{"field": "x1"}]))
        self.assertEqual(train(self, self.c, name), 2)
        set_live(self, self.c, name, 2, "x1 only")
        sent = [k for k in sorted(FEATURES) if k != "x1"]
        for body, ignored in (({"features": FEATURES}, sent),
                              ({"features": dict(FEATURES, x2="not a number")}, sent),
                              # null is not sent, as for any field
                              ({"features": dict(FEATURES, x2=None)}, ["caption", "color"])):
            with self.subTest(body=body):
                p = predict(self, self.c, name, body)
                self.assertModelAnswer(p, name, 2)
                self.assertEqual(p.get("ignored_fields"), ignored, p)
                self.assertNotIn("imputed_fields", p)
        # Batches, and fields no version reads, merge in key order.
        r = predict(self, self.c, name, {"instances": [{"features": dict(FEATURES, zz=1, a0=2)}]})
        self.assertEqual(r["predictions"][0]["ignored_fields"], sorted(sent + ["a0", "zz"]), r)
        # Version 2 disabled: version 1 answers, and reads them all.
        r = self.c.post_json("/v1/models/%s/versions/2/disable" % name, {"reason": "test"})
        self.assertEqual(r.status, 200, r)
        p = predict(self, self.c, name, {"features": FEATURES})
        self.assertEqual(p["version"], 1, p)
        self.assertNotIn("ignored_fields", p)

    def test_each_answer_lists_the_fields_of_the_version_that_gave_it(self):
        # Version 1 reads x1, x2, color and caption; version 2 x1 and x2;
        # version 3 x1 only, and throws. The lists followed the fields the
        # request was read for: an experiment arm or a shadow reading color
        # took it off version 2's ignored list, a shadow refused a wrong
        # type in a field only it reads, and a fallback from version 3 to 2
        # described version 3's fields.
        name, feats, labels, rows, d = self.trained()
        put_model(self, self.c, name, dict(d, features=[{"field": "x1"}, {"field": "x2"}]))
        self.assertEqual(train(self, self.c, name), 2)
        set_live(self, self.c, name, 2, "x1 and x2")
        base = "/v1/models/%s/experiments" % name
        r = self.c.post_json(base, {"reason": "shadow", "arms": [
            {"version": 2, "weight": 1}, {"version": 1, "shadow": True}]})
        self.assertEqual(r.status, 201, r)
        eid = r.json()["id"]
        p = predict(self, self.c, name, {"features": FEATURES})
        self.assertEqual((p["version"], p.get("ignored_fields")), (2, ["caption", "color"]), p)
        p = predict(self, self.c, name, {"features": dict(FEATURES, color=[1, 2])})
        self.assertEqual((p["version"], p.get("ignored_fields")), (2, ["caption", "color"]), p)
        r = self.c.post_json("%s/%d/end" % (base, eid), {"reason": "next"})
        self.assertEqual(r.status, 200, r)
        r = self.c.post_json(base, {"reason": "split", "arms": [
            {"version": 1, "weight": 1}, {"version": 2, "weight": 1}]})
        self.assertEqual(r.status, 201, r)
        eid = r.json()["id"]
        seen = {}
        for i in range(60):
            p = predict(self, self.c, name, {"entity": "arm%d" % i, "features": dict(FEATURES, zz=1)})
            seen[p["version"]] = (p.get("ignored_fields"), p.get("imputed_fields"))
            if len(seen) == 2:
                break
        self.assertEqual(seen, {1: (["zz"], None), 2: (["caption", "color", "zz"], None)})
        r = self.c.post_json("%s/%d/end" % (base, eid), {"reason": "done"})
        self.assertEqual(r.status, 200, r)
        put_model(self, self.c, name, dict(d, features=[{"field": "x1"}], test_fault="serve_throw"))
        self.assertEqual(train(self, self.c, name), 3)
        set_live(self, self.c, name, 3, "x1 only, and it throws")
        for body in ({"x1": 0.5}, {"x1": 0.5, "x2": None}):
            p = predict(self, self.c, name, {"features": body})
            self.assertFallback(p, "model_error", "previous_version", 2)
            self.assertEqual((p.get("ignored_fields"), p.get("imputed_fields")), (None, ["x2"]), p)

    def test_the_chain_passes_over_a_version_of_another_task(self):
        # Regression v1 was live; the model became binary and v2 went live.
        # With v2 disabled, v1 answered a number for a model of two classes.
        feats, labels, _ = load_data(self, self.c, 150)
        name = uid("retasked")
        put_model(self, self.c, name, definition(feats, labels))
        self.assertEqual(train(self, self.c, name), 1)
        set_live(self, self.c, name, 1)
        put_model(self, self.c, name, definition(feats, labels, task="binary"))
        self.assertEqual(train(self, self.c, name), 2)
        set_live(self, self.c, name, 2)
        r = self.c.post_json("/v1/models/%s/versions/2/disable" % name, {"reason": "test"})
        self.assertEqual(r.status, 200, r)
        p = predict(self, self.c, name, {"features": FEATURES})
        self.assertFallback(p, "version_disabled", "baseline", None)
        self.assertIn(p["prediction"], ("true", "false"), p)
        self.assertEqual(set(p["probabilities"]), {"true", "false"}, p)
        # Nor does a rollback put it back: the person names it to promote it.
        # The model says so before (the admin page's button was offered and
        # then refused).
        self.assertEqual(self.c.get("/v1/models/%s" % name).json()["rollback"],
                         {"to": None, "passed_over_task": True,
                          "passed_over_removed": False})
        r = self.c.post_json("/v1/models/%s/rollback" % name, {"reason": "test"})
        self.assertErrorShape(r, 409, message="trained for another task")
        r = self.c.get("/v1/models/%s/aliases" % name)
        self.assertEqual({a["alias"]: a["version"] for a in r.json()["aliases"]}.get("live"), 2, r)

    def test_throwing_version_without_a_previous_one_answers_the_baseline(self):
        name, feats, labels, rows, d = self.model(test_fault="serve_throw")
        self.assertEqual(train(self, self.c, name), 1)
        set_live(self, self.c, name, 1)
        baseline = get_version(self, self.c, name, 1)["baseline"]["value"]
        for i in range(3):
            p = predict(self, self.c, name, {"features": FEATURES})
            self.assertFallback(p, "model_error", "baseline", None)
            self.assertAlmostEqual(p["prediction"], baseline, places=9)
        self.assertAlmostEqual(baseline, sum(r[2] for r in rows if not in_holdout(r[0], 0.2))
                               / sum(1 for r in rows if not in_holdout(r[0], 0.2)), places=6)

    def test_sleeping_version_answers_within_the_deadline(self):
        name, feats, labels, rows, d = self.model(test_fault="serve_sleep",
                                                  serving={"deadline_ms": 50})
        self.assertEqual(train(self, self.c, name), 1)
        set_live(self, self.c, name, 1)
        baseline = get_version(self, self.c, name, 1)["baseline"]["value"]
        deadline = 50
        # Every answer is a deadline fallback whose server-side latency is
        # near the deadline (the wait ends 1 ms, or a twentieth, before it,
        # to leave time to answer) and less than the 500 ms the model sleeps
        # plus the deadline: it did not wait for the model. (How close to the
        # deadline it came depends on the machine: not asserted.)
        def timed(body, deadline_ms):
            r = self.c.post_json("/v1/models/%s/predict" % name, body)
            self.assertEqual(r.status, 200, r)
            out = r.json()
            for p in out.get("predictions", [out]):
                self.assertFallback(p, "deadline_exceeded", "baseline", None)
                self.assertAlmostEqual(p["prediction"], baseline, places=9)
                self.assertGreaterEqual(p["latency_ms"], deadline_ms * 0.95 - 0.01, p)
                self.assertLess(p["latency_ms"], deadline_ms + 500, p)
            return out

        for i in range(8):
            timed({"entity": "s%d" % i, "features": FEATURES}, deadline)
        # A per-request deadline overrides the model's.
        timed({"features": FEATURES, "deadline_ms": 20}, 20)
        # A batch shares one deadline.
        out = timed({"instances": [{"features": FEATURES}] * 5}, deadline)
        self.assertEqual(len(out["predictions"]), 5)
        # With a deadline longer than the sleep, the version answers itself
        # (late, but within its deadline).
        p = predict(self, self.c, name, {"features": FEATURES, "deadline_ms": 10000})
        self.assertModelAnswer(p, name, 1)
        self.assertGreaterEqual(p["latency_ms"], 500, p)
        self.assertLess(p["latency_ms"], 10000, p)
        self.assertAlmostEqual(p["prediction"], regression_truth(1.0, -0.5, "red"), delta=0.5)

    def test_corrupt_artifact_is_not_served(self):
        # Alone (published by the auto policy: a person's move of live to a
        # version that cannot load is refused, below): the baseline answers.
        name, feats, labels, rows, d = self.model(test_fault="corrupt_artifact",
                                                  promotion={"mode": "auto"})
        self.assertEqual(train(self, self.c, name), 1)
        wait_until(lambda: self.c.get("/v1/models/%s/aliases/live" % name).status == 200, 20,
                   "version 1 published")
        baseline = get_version(self, self.c, name, 1)["baseline"]["value"]
        p = predict(self, self.c, name, {"entity": "c1", "features": FEATURES})
        self.assertFallback(p, "artifact_load_failed", "baseline", None)
        self.assertAlmostEqual(p["prediction"], baseline, places=9)
        r = self.c.get("/v1/serving")
        mine = [m for m in r.json()["models"] if m["model"] == name][0]
        self.assertEqual((mine["live_alias"], mine["serving_version"], mine["problem"]),
                         (1, None, "artifact_load_failed"), mine)

        # After a good version: a person's move of live to one that cannot
        # load is refused (it was 200 "changed", then every answer a
        # fallback); once the auto policy publishes one, the good one answers.
        name, feats, labels, rows, d = self.model(features=[{"field": "x1"}])
        self.assertEqual(train(self, self.c, name), 1)
        set_live(self, self.c, name, 1)
        v1_value = predict(self, self.c, name, {"features": FEATURES})["prediction"]
        faulty = dict(d, features=definition(feats, labels)["features"],
                      test_fault="corrupt_artifact")
        put_model(self, self.c, name, faulty)
        self.assertEqual(train(self, self.c, name), 2)
        r = self.c.request("PUT", "/v1/models/%s/aliases/live" % name,
                           json_body={"version": 2, "reason": "a person promotes it"})
        self.assertErrorShape(r, 409, code="conflict", field="version")
        self.assertIn("version 2 cannot be served (", r.json()["error"]["message"])
        self.assertIn("live stays where it is", r.json()["error"]["message"])
        p = predict(self, self.c, name, {"entity": "c0", "features": FEATURES})
        self.assertModelAnswer(p, name, 1)
        put_model(self, self.c, name, dict(faulty, promotion={"mode": "auto"}))
        self.assertEqual(train(self, self.c, name), 3)
        wait_until(lambda: self.c.get("/v1/models/%s/aliases/live" % name).json()["version"] == 3,
                   20, "version 3 published")
        for i in range(3):
            p = predict(self, self.c, name, {"entity": "c%d" % i, "features": FEATURES})
            self.assertFallback(p, "artifact_load_failed", "previous_version", 1)
            self.assertEqual(p["prediction"], v1_value)


class AdmissionTest(KennelTestCase):
    """--predict-threads 1 --predict-queue 1 and a model that sleeps 500 ms
    per prediction: a burst of requests is refused with 503, not queued."""

    def test_full_prediction_queue_answers_503(self):
        server = self.start_server(["--test-faults", "--predict-threads", "1",
                                    "--predict-queue", "1"])
        c = self.client(server)
        feats, labels, rows = load_data(self, c, 120)
        name = uid("slow")
        put_model(self, c, name, definition(feats, labels, test_fault="serve_sleep",
                                            serving={"deadline_ms": 2000}))
        self.assertEqual(train(self, c, name), 1)
        set_live(self, c, name, 1)

        n = 16
        barrier = threading.Barrier(n)
        answers = [None] * n

        def fire(i):
            cl = Client(server.port)
            try:
                barrier.wait(10)
                t0 = time.monotonic()
                r = cl.post_json("/v1/models/%s/predict" % name,
                                 {"entity": "q%d" % i, "features": FEATURES})
                answers[i] = (r, time.monotonic() - t0)
            except Exception as e:  # noqa: BLE001
                answers[i] = (e, None)
            finally:
                cl.close()

        self.assertEqual(run_in_threads(fire, n, timeout=30), [])
        for a in answers:
            self.assertIsInstance(a[0], Response, a)
        refused = [r for r, _ in answers if r.status == 503]
        served = [r for r, _ in answers if r.status == 200]
        self.assertEqual(len(refused) + len(served), n, answers)
        self.assertGreaterEqual(len(refused), 1, answers)
        self.assertGreaterEqual(len(served), 1, answers)
        for r in refused:
            self.assertErrorShape(r, 503, code="unavailable")
            self.assertIsNotNone(r.header("Retry-After"), r.headers)
            self.assertGreater(int(r.header("Retry-After")), 0)
        for r in served:
            p = r.json()
            self.assertEqual(p["version"], 1, p)
        r = c.get("/v1/serving")
        pool = r.json()["predict_pool"]
        self.assertEqual((pool["threads"], pool["limit"]), (1, 1), pool)
        self.assertGreaterEqual(pool["refused"], len(refused), pool)

        # The server still answers afterwards (bounded wait for the pool to drain).
        def answered():
            r = c.post_json("/v1/models/%s/predict" % name, {"features": FEATURES})
            return r if r.status == 200 else None
        p = wait_until(answered, 10, "a prediction after the burst", interval=0.2).json()
        self.assertEqual(p["model"], name, p)
        self.assertEqual(c.get("/healthz").status, 200)


class PredictSlotsTest(KennelTestCase):
    """--predict-concurrency 1: concurrent requests take turns computing,
    and every one is still answered by the model, in time."""

    def test_requests_wait_for_the_one_slot_and_are_all_answered(self):
        server = self.start_server(["--predict-concurrency", "1"])
        c = self.client(server)
        feats, labels, rows = load_data(self, c, 120)
        name = uid("slots")
        put_model(self, c, name, definition(feats, labels))
        self.assertEqual(train(self, c, name), 1)
        set_live(self, c, name, 1)
        # Large batches keep the slot busy long enough for others to queue.
        body = {"instances": [{"entity": "s%d" % i, "features": FEATURES} for i in range(1000)]}

        n, rounds = 6, 4
        barrier = threading.Barrier(n)
        answers = []
        lock = threading.Lock()

        def fire():
            cl = Client(server.port)
            try:
                barrier.wait(10)
                for _ in range(rounds):
                    r = cl.post_json("/v1/models/%s/predict" % name, body)
                    with lock:
                        answers.append(r)
            finally:
                cl.close()

        threads = [threading.Thread(target=fire) for _ in range(n)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        self.assertFalse(any(t.is_alive() for t in threads))
        self.assertEqual(len(answers), n * rounds)
        for r in answers:
            self.assertEqual(r.status, 200, r)
            preds = r.json()["predictions"]
            self.assertEqual(len(preds), 1000)
            self.assertFalse(any(p["fallback"] for p in preds), preds[0])
        slots = c.get("/v1/serving").json()["predict_slots"]
        self.assertEqual(slots["slots"], 1, slots)
        self.assertGreaterEqual(slots["waited"], 1, slots)
        self.assertEqual(slots["gave_up"], 0, slots)


class OfflinePredictCliTest(KennelTestCase):
    """`kennel predict` scores NDJSON lines with a stored version, beside a
    running server, and answers exactly what the API answers."""

    def setUp(self):
        super().setUp()
        self.server = self.start_server()
        self.c = self.client(self.server)
        self.db = self.path("kennel.db")
        feats, labels, _ = load_data(self, self.c, 150)
        self.server_streams = (feats, labels)
        self.name = uid("offline")
        put_model(self, self.c, self.name, definition(feats, labels, task="binary"))
        self.assertEqual(train(self, self.c, self.name), 1)
        set_live(self, self.c, self.name, 1)
        put_model(self, self.c, self.name, definition(feats, labels, task="binary", algorithm="forest"))
        self.assertEqual(train(self, self.c, self.name), 2)  # not live
        self.untrained = uid("untrained")
        put_model(self, self.c, self.untrained, definition(feats, labels))

    def cli(self, *args, input=None):
        return run_cli(["predict"] + list(args) + ["--db", self.db], input=input, timeout=60)

    def answers(self, stdout):
        return [json.loads(line) for line in stdout.splitlines()]

    def api(self, body):
        r = self.c.post_json("/v1/models/%s/predict" % self.name, body)
        self.assertEqual(r.status, 200, r)
        j = r.json()
        return j["predictions"] if "predictions" in j else [j]

    def assertSameAnswer(self, offline, served, version):
        self.assertFalse(served["fallback"], served)
        self.assertEqual(served["version"], version, served)
        self.assertEqual(offline["version"], version, offline)
        self.assertEqual(offline["model"], self.name)
        for key in ("prediction", "probabilities", "decision"):
            self.assertEqual(offline[key], served[key], (key, offline, served))
        for key in ("ignored_fields", "imputed_fields", "unseen_categories"):
            self.assertEqual(offline.get(key), served.get(key), (key, offline, served))

    def test_scores_lines_like_the_api_and_reports_bad_lines(self):
        single = {"entity": "o1", "features": dict(FEATURES, extra=1, color="mauve")}
        batch = {"instances": [{"entity": "o2", "features": FEATURES},
                               {"entity": "o3", "features": {"x1": -2.0, "x2": 1.5}},
                               {"features": {"x1": 0.25, "color": "blue"}}]}
        lines = [json.dumps(single), "", json.dumps(batch),
                 json.dumps({"entity": "o4", "features": {"x1": "abc"}}),
                 "not json",
                 json.dumps({"instances": [{"features": FEATURES}, {"features": {"x2": [1]}}]})]
        path = self.path("in.ndjson")
        with open(path, "w") as f:
            f.write("\n".join(lines) + "\n")

        p = self.cli(self.name, path)  # the server is running and keeps the database
        self.assertEqual(p.returncode, 3, p.stdout + p.stderr)
        got = self.answers(p.stdout)
        self.assertEqual([(a["line"], a.get("instance")) for a in got],
                         [(1, None), (3, 0), (3, 1), (3, 2), (4, None), (5, None), (6, None)], got)
        self.assertIn("4 predictions by %s version 1; 3 line(s) rejected" % self.name, p.stderr)

        # Answers: what the live version answers over HTTP, field for field.
        self.assertSameAnswer(got[0], self.api(single)[0], 1)
        self.assertEqual(got[0]["ignored_fields"], ["extra"])
        self.assertEqual(got[0]["unseen_categories"], ["color"])
        self.assertEqual(got[0]["entity"], "o1")
        for offline, served in zip(got[1:4], self.api(batch)):
            self.assertSameAnswer(offline, served, 1)
        self.assertIsNone(got[3]["entity"])
        self.assertIn("caption", got[3]["imputed_fields"])
        self.assertEqual(set(got[1]["probabilities"]), {"true", "false"}, got[1])
        self.assertIsInstance(got[1]["decision"], bool)

        # Rejected lines: the API's error, with the line (and the instance).
        self.assertEqual(got[4]["error"]["field"], "features.x1", got[4])
        self.assertEqual(got[4]["error"]["code"], "invalid_argument")
        self.assertIn("malformed JSON", got[5]["error"]["message"])
        self.assertEqual(got[6]["error"]["field"], "instances[1].features.x2", got[6])
        self.assertEqual(got[6]["error"]["item"], 1, got[6])
        self.assertNotIn("prediction", got[6])  # a bad line scores nothing of itself

    def test_inputs_the_model_overflows_on_are_the_lines_fault(self):
        # They were reported as an internal error, "the model failed on".
        feats, labels = self.server_streams
        reg = uid("offline_reg")
        put_model(self, self.c, reg, definition(feats, labels))
        self.assertEqual(train(self, self.c, reg), 1)
        set_live(self, self.c, reg, 1)
        absurd = {"entity": "big", "features": dict(FEATURES, x1=1e308, x2=-1e308)}
        lines = [json.dumps(absurd), json.dumps({"entity": "ok", "features": FEATURES})]
        p = self.cli(reg, input="\n".join(lines) + "\n")
        self.assertEqual(p.returncode, 3, p.stdout + p.stderr)
        got = self.answers(p.stdout)
        self.assertEqual(got[0]["error"]["code"], "invalid_argument", got[0])
        self.assertTrue(got[0]["error"]["message"].startswith("input_out_of_range: "), got[0])
        self.assertIn("numeric-x", got[0]["error"]["message"], got[0])
        self.assertIn("prediction", got[1])
        self.assertIn("1 line(s) rejected (0 instance(s) the model failed on, 1 with inputs "
                      "out of the model's range)", p.stderr)
        # The API answers the same input from the constant steps, with the same reason.
        r = self.c.post_json("/v1/models/%s/predict" % reg, absurd)
        self.assertEqual(r.status, 200, r)
        self.assertTrue(r.json()["fallback"], r.json())
        self.assertEqual(r.json()["fallback_reason"], got[0]["error"]["message"])

    def test_answers_that_cannot_be_written_stop_the_run_and_say_why(self):
        # It went on scoring the whole input, said only "writing the answers
        # failed", and left the truncated file.
        body = json.dumps({"instances": [{"entity": "w%d" % i, "features": FEATURES}
                                         for i in range(50)]}) + "\n"
        out = self.path("scores.ndjson")
        p = run_cli_with_file_limit(["predict", self.name, "--out", out, "--db", self.db], 4096,
                                    input=body * 40)
        self.assertEqual(p.returncode, 1, p.stderr)
        self.assertRegex(p.stderr, r"kennel predict: writing %s failed at line \d+ of the input: "
                         r"File too large; the incomplete file was removed" % re.escape(out))
        self.assertNotIn("predictions by", p.stderr)
        self.assertEqual([n for n in os.listdir(os.path.dirname(out))
                          if n.startswith("scores.ndjson")], [])

    def test_a_named_version_stdin_and_an_output_file(self):
        body = {"instances": [{"entity": "v%d" % i, "features": dict(FEATURES, x1=i / 4)}
                              for i in range(8)]}
        out = self.path("out.ndjson")
        p = self.cli(self.name, "--model-version", "2", "--out", out, input=json.dumps(body) + "\n")
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        self.assertEqual(p.stdout, "")
        with open(out) as f:
            got = self.answers(f.read())
        self.assertEqual(len(got), 8)
        # Empty input (or only blank lines): nothing to score is not a failure.
        p = self.cli(self.name, input="\n  \n")
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        self.assertEqual(p.stdout, "")
        self.assertIn("0 predictions by %s version 1" % self.name, p.stderr)
        # Version 2 is not live; served once live, it answers the same.
        set_live(self, self.c, self.name, 2)
        for offline, served in zip(got, self.api(body)):
            self.assertSameAnswer(offline, served, 2)

    def test_explanations_offline_are_the_apis(self):
        # A line with "explain": true is explained as the API explains it
        # (the same seed: the same shares); a line without is not.
        body = {"instances": [{"entity": "x%d" % i, "features": dict(FEATURES, x1=i / 3)}
                              for i in range(3)], "explain": True}
        single = {"features": FEATURES}
        p = self.cli(self.name, input=json.dumps(body) + "\n" + json.dumps(single) + "\n")
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        got = self.answers(p.stdout)
        self.assertEqual(len(got), 4)
        self.assertNotIn("explanation", got[3])
        for offline, served in zip(got, self.api(body)):
            a, b = offline["explanation"], served["explanation"]
            self.assertIs(a["available"], True, a)
            self.assertEqual(a["output"], "probability", a)
            for k in ("class", "method", "base_value", "value", "contributions", "samples",
                      "background_rows", "evaluations", "version"):
                self.assertEqual(a[k], b[k], k)
        # More than 100 instances with "explain": that line is refused alone.
        many = {"instances": [{"features": FEATURES}] * 101, "explain": True}
        p = self.cli(self.name, input=json.dumps(many) + "\n" + json.dumps(single) + "\n")
        self.assertEqual(p.returncode, 3, p.stdout + p.stderr)
        lines = self.answers(p.stdout)
        self.assertEqual(lines[0]["error"]["field"], "instances", lines[0])
        self.assertIn("at most 100 instances", lines[0]["error"]["message"])
        self.assertEqual(lines[1]["line"], 2, lines[1])

    def test_a_named_version_reads_the_fields_it_was_trained_on(self):
        # Live version 3 reads only x1 and color; version 1 also reads x2
        # and caption, and scored offline is given them, as when it served.
        feats, labels = self.server_streams
        put_model(self, self.c, self.name, definition(feats, labels, task="binary", features=[
            {"field": "x1"}, {"field": "color", "transform": "category"}]))
        self.assertEqual(train(self, self.c, self.name), 3)
        set_live(self, self.c, self.name, 3)
        body = {"instances": [{"entity": "n%d" % i, "features": dict(FEATURES, x2=i - 3.5)}
                              for i in range(8)]}
        p = self.cli(self.name, "--model-version", "1", input=json.dumps(body) + "\n")
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        got = self.answers(p.stdout)
        self.assertEqual(len(got), 8)
        for a in got:
            self.assertNotIn("x2", a.get("ignored_fields", []), a)
            self.assertNotIn("x2", a.get("imputed_fields", []), a)
        set_live(self, self.c, self.name, 1)
        for offline, served in zip(got, self.api(body)):
            self.assertSameAnswer(offline, served, 1)

    def test_refusals_name_the_problem_and_score_nothing(self):
        line = json.dumps({"features": FEATURES}) + "\n"
        cases = [
            ((self.name, "--model-version", "9"), 1, "version 9 is missing"),
            (("no-such-model",), 1, 'no model named "no-such-model"'),
            ((self.untrained,), 1, "not_trained"),
            ((self.name, self.path("absent.ndjson")), 1, "cannot read"),
            ((self.name, "--model-version", "0"), 2, "--model-version"),
            ((), 2, "name the model"),
        ]
        for args, code, message in cases:
            with self.subTest(args=args):
                p = self.cli(*args, input=line)
                self.assertEqual(p.returncode, code, p.stdout + p.stderr)
                self.assertIn(message, p.stderr)
                self.assertEqual(p.stdout, "")
        p = run_cli(["predict", self.name, "--db", self.path("absent.db")], input=line)
        self.assertEqual(p.returncode, 1, p.stderr)
        self.assertIn("cannot open", p.stderr)
        self.assertFalse(os.path.exists(self.path("absent.db")))


class RetentionTest(KennelTestCase):
    """--prediction-log-days: the log thread deletes older segments (once the server is ready,
    then once a minute); what is newer stays."""

    def logged(self, name):
        db = kennel_harness.open_db(self.path("kennel.db"))
        try:
            return db.execute("SELECT count(*) FROM predictions WHERE model = ?", (name,)).fetchone()[0]
        finally:
            db.close()

    def test_old_predictions_are_deleted_and_new_ones_kept(self):
        server = self.start_server()
        c = self.client(server)
        feats, labels, rows = load_data(self, c, 60)
        name = uid("kept")
        put_model(self, c, name, definition(feats, labels))
        for _ in range(3):  # never trained: answered from the prior, and logged
            predict(self, c, name, {"features": FEATURES})
        wait_until(lambda: self.logged(name) == 3, 10, "three logged predictions")
        server.stop()
        time.sleep(1.0)

        # 0.00001 days is 0.864 s: everything logged before the restart is older.
        server = self.start_server(["--prediction-log-days", "0.00001"])
        c = self.client(server)
        wait_until(lambda: self.logged(name) == 0, 10, "the old predictions deleted")
        # Counted and said, not silent (the log says it the first time only).
        wait_until(lambda: c.get("/v1/serving").json()["prediction_log"]["expired"] == 3, 10,
                   "the deletions counted")
        self.assertIn("kennel_prediction_log_expired_entries_total 3\n", c.get("/metrics").text)
        wait_until(lambda: "removed 3 logged predictions older than" in server.stderr(), 10,
                   "the deletions logged")
        predict(self, c, name, {"features": FEATURES})
        wait_until(lambda: self.logged(name) == 1, 10, "the new prediction logged")
        time.sleep(0.5)
        self.assertEqual(self.logged(name), 1)  # and kept (the next pass is a minute away)


if __name__ == "__main__":
    unittest.main()
