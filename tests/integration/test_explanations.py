"""Integration tests for explanations: POST /v1/models/{name}/predict with
"explain": true gives each answer each field's share of it.

What is checked from outside: the shares add up to the answer minus the
background's mean answer; an additive model's share of a field moves by
exactly what the answer moves when only that field changes, and the other
shares stay; a field the model reads but the request leaves out has a share
too (its imputed value); the same request gets the same explanation; a
constant answer (the baseline, a never-trained model) has none, and says why;
a version stored before versions kept their background rows says so; the
training rows kept hold only the fields read; bad "explain" values and a
batch too large are 4xx errors naming the field.

The real binary on a free loopback port with a temporary database, over real
HTTP (see kennel_harness.py). Every wait is bounded.
"""

import json
import random
import re
import sqlite3
import threading
import time
import unittest

from kennel_harness import Client, KennelTestCase, fact, open_db, uid
from test_predict import (SharedServerCase, at, definition, get_version, post_facts, predict,
                          put_model, set_live, train, wait_until)

FEATURES = {"x1": 1.0, "x2": -0.5, "color": "red", "caption": "good dog park"}
OUT_OF_TIME = ("the request's 2 s for explanations ran out before this answer's was done: ask "
               "for fewer instances at once")


def explain(test, c, name, body, status=200):
    return predict(test, c, name, dict(body, explain=True), status)


def shares(p):
    return {s["field"]: s["contribution"] for s in p["explanation"]["contributions"]}


def wide_data(test, c, n=400, seed=3):
    """Streams with seven fields read (and one that is not): more than the
    exact path's subsets fit, so explanations are sampled. Returns
    (features stream, label stream)."""
    feats, labels = uid("wfeat"), uid("wlab")
    rng = random.Random(seed)
    facts = []
    for i in range(n):
        row = {"n%d" % k: round(rng.gauss(0, 1), 4) for k in range(1, 6)}
        row["color"] = ("red", "green", "blue")[i % 3]
        row["flag"] = i % 4 == 0
        row["note"] = "not read %d" % i
        score = row["n1"] * (1.5 if row["color"] == "red" else 0.5) + row["n2"] - 0.5 * row["flag"]
        y = "yes" if score + 0.3 * rng.gauss(0, 1) > 0 else "no"
        e = "w%04d" % i
        facts.append(fact(feats, e, row, time_=at(i)))
        facts.append(fact(labels, e, {"y": y}, time_=at(3600 + i)))
    post_facts(test, c, facts)
    return feats, labels


def wide_definition(feats, labels, algorithm="forest"):
    d = definition(feats, labels, "binary", algorithm)
    d["label"] = {"stream": labels, "field": "y", "positive": "yes"}
    d["features"] = ([{"field": "n%d" % k} for k in range(1, 6)] +
                     [{"field": "color", "transform": "category"},
                      {"field": "flag", "transform": "boolean"}])
    return d


class ExplainTest(SharedServerCase):

    def test_an_additive_models_shares_add_up_and_move_with_their_field(self):
        name, _, _, rows, _ = self.trained()
        plain = predict(self, self.c, name, {"entity": "p1", "features": FEATURES})
        self.assertNotIn("explanation", plain)
        p = explain(self, self.c, name, {"entity": "p1", "features": FEATURES})
        # Explaining does not change the answer.
        self.assertEqual(p["prediction"], plain["prediction"], p)
        self.assertIs(p["fallback"], False, p)
        e = p["explanation"]
        self.assertIs(e["available"], True, e)
        self.assertEqual(e["version"], 1, e)
        self.assertEqual(e["output"], "value", e)
        self.assertNotIn("class", e)
        # Four fields: every subset against every one of the 100 rows kept.
        self.assertEqual(e["method"], "exact", e)
        self.assertEqual(e["background_rows"], 100, e)
        self.assertNotIn("complete", e)
        self.assertEqual(e["value"], p["prediction"], e)
        self.assertAlmostEqual(e["base_value"] + sum(shares(p).values()), p["prediction"],
                               places=9)
        self.assertEqual(sorted(shares(p)), ["caption", "color", "x1", "x2"], e)
        for s in e["contributions"]:
            self.assertEqual(s["value"], FEATURES[s["field"]], s)
            self.assertEqual(s["error"], 0, s)
        magnitudes = [abs(s["contribution"]) for s in e["contributions"]]
        self.assertEqual(magnitudes, sorted(magnitudes, reverse=True), e)
        # y = 3 x1 - 2 x2 + colour + 5: x1's share is about 3 (x1 - its mean, near 0).
        self.assertAlmostEqual(shares(p)["x1"], 3.0, delta=0.6)
        self.assertAlmostEqual(shares(p)["x2"], 1.0, delta=0.6)
        # The base is the mean answer over training rows: near the mean label.
        train_mean = sum(r[2] for r in rows) / len(rows)
        self.assertAlmostEqual(e["base_value"], train_mean, delta=1.0)

        # Only x1 changes: its share moves by what the answer moves, the
        # other shares stay (the model is additive in its fields).
        q = explain(self, self.c, name, {"entity": "p1", "features": dict(FEATURES, x1=2.0)})
        self.assertAlmostEqual(shares(q)["x1"] - shares(p)["x1"],
                               q["prediction"] - p["prediction"], places=9)
        for f in ("x2", "color", "caption"):
            self.assertAlmostEqual(shares(q)[f], shares(p)[f], places=9)
        self.assertEqual(q["explanation"]["base_value"], e["base_value"])

        # A field left out is imputed, and its imputed value has a share.
        r = explain(self, self.c, name, {"features": {"x1": 1.0, "color": "red"}})
        self.assertEqual(sorted(r["imputed_fields"]), ["caption", "x2"], r)
        values = {s["field"]: s["value"] for s in r["explanation"]["contributions"]}
        self.assertIsNone(values["x2"], r)
        self.assertAlmostEqual(r["explanation"]["base_value"] + sum(shares(r).values()),
                               r["prediction"], places=9)
        # An additive share of an imputed number: its weight times (mean -
        # the background's mean), the same for every request that leaves it out.
        r2 = explain(self, self.c, name, {"features": {"x1": -1.0, "color": "blue"}})
        self.assertAlmostEqual(shares(r2)["x2"], shares(r)["x2"], places=9)

        # The version keeps its rows, of the fields it reads; GET says how many.
        v = get_version(self, self.c, name, 1)
        self.assertEqual(v["features"]["background_rows"], 100, v["features"].keys())
        self.assertNotIn("background", v["features"])
        listed = self.c.get("/v1/models/%s/versions" % name).json()["versions"][0]
        self.assertNotIn("background", listed["features"])

    def test_a_sampled_classification_explains_its_positive_class(self):
        feats, labels = wide_data(self, self.c)
        name = uid("wide")
        put_model(self, self.c, name, wide_definition(feats, labels))
        self.assertEqual(train(self, self.c, name), 1)
        set_live(self, self.c, name, 1)
        features = {"n1": 1.2, "n2": 0.4, "n3": -0.3, "n4": 0.0, "n5": 2.0, "color": "red",
                    "flag": False, "extra": 5}
        p = explain(self, self.c, name, {"entity": "w1", "features": features})
        self.assertEqual(p["ignored_fields"], ["extra"], p)
        e = p["explanation"]
        self.assertIs(e["available"], True, e)
        self.assertEqual(e["method"], "sampled", e)
        self.assertEqual((e["output"], e["class"]), ("probability", "yes"), e)
        self.assertEqual(e["value"], p["probabilities"]["yes"], e)
        self.assertAlmostEqual(e["base_value"] + sum(shares(p).values()), e["value"], places=9)
        self.assertEqual(sorted(shares(p)), ["color", "flag", "n1", "n2", "n3", "n4", "n5"], e)
        self.assertGreater(e["samples"], 100, e)
        self.assertLessEqual(e["evaluations"], 4097, e)
        self.assertTrue(all(s["error"] >= 0 for s in e["contributions"]), e)
        self.assertTrue(any(s["error"] > 0 for s in e["contributions"]), e)
        # The label depends on n1 (with colour), n2 and flag: they lead.
        self.assertIn(e["contributions"][0]["field"], ("n1", "n2", "color"), e)
        noise = max(abs(shares(p)[f]) for f in ("n3", "n4", "n5"))
        self.assertGreater(abs(shares(p)["n1"]), noise, e)
        # The same request, the same explanation (the sample's seed is the
        # features' hash and the version).
        again = explain(self, self.c, name, {"entity": "w2", "features": features})
        self.assertEqual(again["explanation"]["contributions"], e["contributions"])

        # The rows kept hold only the fields the version reads.
        with open_db(self.server.db) as db:
            kept = json.loads(db.execute(
                "SELECT json_extract(features, '$.background') FROM model_versions"
                " WHERE model = ? AND version = 1", (name,)).fetchone()[0])
        self.assertEqual(len(kept), 100)
        read = {"n1", "n2", "n3", "n4", "n5", "color", "flag"}
        self.assertTrue(all(set(row) <= read for row in kept), kept[:3])
        self.assertTrue(any(row.get("flag") is True for row in kept), kept[:10])

    def test_multiclass_explains_the_class_it_answered(self):
        feats, labels = wide_data(self, self.c, seed=5)
        name = uid("multi")
        d = wide_definition(feats, labels, "linear")
        d["task"] = "multiclass"
        d["label"] = {"stream": labels, "field": "y"}
        put_model(self, self.c, name, d)
        self.assertEqual(train(self, self.c, name), 1)
        set_live(self, self.c, name, 1)
        for n1 in (-2.0, 2.0):
            p = explain(self, self.c, name, {"features": {"n1": n1, "n2": n1, "color": "red"}})
            e = p["explanation"]
            self.assertEqual(e["class"], p["prediction"], p)
            self.assertEqual(e["value"], p["probabilities"][p["prediction"]], p)
            self.assertAlmostEqual(e["base_value"] + sum(shares(p).values()), e["value"],
                                   places=9)

    def test_a_batch_explains_each_answer(self):
        name, _, _, _, _ = self.trained()
        insts = [{"entity": "b%d" % i, "features": dict(FEATURES, x1=i / 2)} for i in range(4)]
        r = self.c.post_json("/v1/models/%s/predict" % name, {"instances": insts,
                                                               "explain": True})
        self.assertEqual(r.status, 200, r)
        for p in r.json()["predictions"]:
            e = p["explanation"]
            self.assertIs(e["available"], True, e)
            self.assertAlmostEqual(e["base_value"] + sum(shares(p).values()), p["prediction"],
                                   places=9)
        r = self.c.post_json("/v1/models/%s/predict" % name, {"instances": insts,
                                                               "explain": False})
        self.assertEqual(r.status, 200, r)
        self.assertTrue(all("explanation" not in p for p in r.json()["predictions"]), r)

    def test_bad_explain_requests_name_the_problem(self):
        name, _, _, _, _ = self.trained()
        path = "/v1/models/%s/predict" % name
        for bad in ("yes", 1, None, {"class": "a"}):
            r = self.c.post_json(path, {"features": FEATURES, "explain": bad})
            self.assertErrorShape(r, 400, field="explain", message="must be true or false")
            r = self.c.post_json(path, {"instances": [{"features": FEATURES}], "explain": bad})
            self.assertErrorShape(r, 400, field="explain", message="must be true or false")
        # Inside an instance of a batch, it is not a field of instances.
        r = self.c.post_json(path, {"instances": [{"features": FEATURES, "explain": True}]})
        self.assertErrorShape(r, 400, field="instances[0].explain", message="unknown field")
        # Explanations cost thousands of predictions each: at most 100 a request.
        many = [{"features": FEATURES}] * 101
        r = self.c.post_json(path, {"instances": many, "explain": True})
        self.assertErrorShape(r, 413, field="instances", message="at most 100 instances")
        r = self.c.post_json(path, {"instances": many})
        self.assertEqual(r.status, 200, r)
        self.assertTrue(self.server.running())

    def test_a_constant_answer_has_no_explanation(self):
        name, _, _, _, _ = self.model(serving={"fallback": 7.5})  # never trained
        p = explain(self, self.c, name, {"features": FEATURES})
        self.assertIs(p["fallback"], True, p)
        self.assertEqual(p["explanation"], {
            "available": False,
            "reason": "answered by the definition's serving.fallback, a constant: it depends on no"
                      " field"}, p)


class ExplainFaultTest(SharedServerCase):
    """A version that throws answers from its baseline, which depends on no
    field: no explanation."""

    server_args = ("--test-faults",)

    def test_the_baseline_answer_has_no_explanation(self):
        name, _, _, _, _ = self.trained(test_fault="serve_throw")
        p = explain(self, self.c, name, {"features": FEATURES})
        self.assertEqual(p["answered_by"], "baseline", p)
        self.assertIs(p["explanation"]["available"], False, p)
        self.assertEqual(p["explanation"]["reason"],
                         "answered by the version's baseline, a constant: it depends on no field")


class ExplainAdmissionTest(KennelTestCase):
    """--explain-concurrency 1: while one request explains, another asking
    for explanations is a 503 with Retry-After, refused before anything is
    predicted or logged; predictions without "explain" go on."""

    def test_explanations_past_the_limit_are_refused_and_predictions_go_on(self):
        server = self.start_server(["--explain-concurrency", "1"])
        c = self.client(server)
        feats, labels = wide_data(self, c)
        name = uid("busy")
        d = wide_definition(feats, labels)
        # 1,000 trees: an explanation of 4,096 predictions takes 50 ms or
        # more, so 100 cannot all fit in the 2 s.
        d["params"] = {"num_trees": 1000}
        put_model(self, c, name, d)
        self.assertEqual(train(self, c, name), 1)
        set_live(self, c, name, 1)
        features = {"n1": 0.5, "n2": -1.0, "n3": 0.2, "color": "blue", "flag": True}
        # 100 instances of 4,096 predictions each: the request's 2 s budget.
        batch = {"instances": [{"entity": "b%d" % i, "features": dict(features, n4=i / 10)}
                               for i in range(100)], "explain": True}
        done = {}

        def explain_batch(_):
            # Until it gets the slot (the single requests below may hold it).
            bc = Client(server.port, timeout=60)
            try:
                for _ in range(500):
                    r = bc.post_json("/v1/models/%s/predict" % name, batch)
                    if r.status != 503:
                        break
                    time.sleep(0.01)
                done["batch"] = r
            finally:
                bc.close()

        t = threading.Thread(target=explain_batch, args=(0,))
        t.start()
        refused, answered, plain = [], [], []
        deadline = time.monotonic() + 30
        while t.is_alive() and time.monotonic() < deadline:
            r = c.post_json("/v1/models/%s/predict" % name,
                            {"entity": uid("x"), "features": features, "explain": True})
            (refused if r.status == 503 else answered).append(r)
            q = c.post_json("/v1/models/%s/predict" % name, {"features": features})
            plain.append(q)
            time.sleep(0.02)
        t.join(60)
        self.assertFalse(t.is_alive())
        self.assertEqual(done["batch"].status, 200, done["batch"])
        # The batch's 2 s run out: the answers after that say why they
        # have none; none is given cut short.
        got = [p["explanation"] for p in done["batch"].json()["predictions"]]
        self.assertIs(got[0]["available"], True, got[0])
        cut = next((i for i, e in enumerate(got) if not e["available"]), len(got))
        self.assertLess(cut, len(got), "100 explanations of 1,000 trees fit in 2 s")
        self.assertTrue(all(e["available"] for e in got[:cut]))
        for e in got[cut:]:
            self.assertEqual(e, {"available": False, "reason": OUT_OF_TIME}, e)
        self.assertGreater(len(refused), 0, "no explanation was refused while the batch ran")
        for r in refused:
            self.assertErrorShape(r, 503, field="explain",
                                  message="1 explanation(s) at a time, all running")
            self.assertEqual(r.header("Retry-After"), "1", r)
        for r in answered:
            self.assertEqual(r.status, 200, r)
        self.assertTrue(all(q.status == 200 and "explanation" not in q.json() for q in plain),
                        [q for q in plain if q.status != 200][:3])
        # A refused request predicted nothing: the log holds the batch's 100,
        # the answered ones and the plain ones.
        want = 100 + len(answered) + len(plain)

        def logged():
            n, cursor = 0, ""
            while True:
                r = c.get("/v1/models/%s/predictions?limit=500%s" % (name, cursor))
                self.assertEqual(r.status, 200, r)
                n += len(r.json()["predictions"])
                if not r.json().get("next_cursor"):
                    return n == want
                cursor = "&cursor=" + r.json()["next_cursor"]
        wait_until(logged, 20, "%d predictions in the log" % want)

        # Counted for operators: each refusal (the batch's own waits for the
        # slot too), each answer explained and the time it took.
        text = c.get("/metrics").text
        refused_total = int(re.search(r"^kennel_explain_refused_total (\d+)$", text, re.M).group(1))
        self.assertGreaterEqual(refused_total, len(refused))
        given = int(re.search(r'^kennel_explanations_total\{outcome="given"\} (\d+)$', text,
                              re.M).group(1))
        unavailable = int(re.search(r'^kennel_explanations_total\{outcome="unavailable"\} (\d+)$',
                                    text, re.M).group(1))
        singles = [r.json()["explanation"]["available"] for r in answered]
        self.assertEqual(given, cut + sum(singles))
        self.assertEqual(unavailable, 100 - cut + len(singles) - sum(singles))
        seconds = float(re.search(r"^kennel_explanation_seconds_total (\S+)$", text, re.M).group(1))
        self.assertGreater(seconds, 0.1)
        serving = c.get("/v1/serving").json()["explanations"]
        self.assertEqual((serving["slots"], serving["given"], serving["unavailable"],
                          serving["refused"]), (1, given, unavailable, refused_total), serving)


class OldVersionTest(KennelTestCase):

    def test_a_version_stored_without_background_rows_says_so(self):
        db = self.path("kennel.db")
        server, c = self.serve(db)
        from test_predict import load_data
        feats, labels, _ = load_data(self, c)
        name = uid("old")
        put_model(self, c, name, definition(feats, labels))
        self.assertEqual(train(self, c, name), 1)
        set_live(self, c, name, 1)
        server.stop()
        # As the previous release stored it: no "background" in its features.
        with sqlite3.connect(db) as w:
            w.executescript(
                "DROP TRIGGER model_versions_immutable;"
                "UPDATE model_versions SET features = json_remove(features, '$.background');"
                "CREATE TRIGGER model_versions_immutable BEFORE UPDATE ON model_versions"
                " BEGIN SELECT RAISE(ABORT, 'model versions are immutable'); END;")
        server, c = self.serve(db)
        p = explain(self, c, name, {"features": FEATURES})
        self.assertIs(p["fallback"], False, p)
        self.assertIs(p["explanation"]["available"], False, p)
        self.assertIn("version 1 was trained before versions kept training rows",
                      p["explanation"]["reason"])
        self.assertIn("train the model again", p["explanation"]["reason"])
        self.assertNotIn("background_rows", get_version(self, c, name, 1)["features"])


if __name__ == "__main__":
    unittest.main()
