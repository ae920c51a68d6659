"""Integration tests for predicting from stored features: an instance with
"stored_features": true is scored with the entity's newest fact (as of now,
corrections applied) in the model's features_from stream, the fields sent
taking the place of stored ones; the answer names the fact and the fields
taken from it.

What is checked from outside: the answer equals the one for the same
features sent; a newer fact is used and a fact dated in the future is not; a
correction stands in the place of the fact it corrects; sent fields win; a
stored value of a wrong type is imputed, not a 400; a stored field no version
reads is not reported as ignored; an entity without facts is answered from
imputed values and says so; when the model reads features from its label's
stream, only a fact holding a feature counts; the log's features hash is
that of the features scored; bad requests are 400s naming the field; `kennel
predict` reads them the same way.

The real binary on a free loopback port with a temporary database, over real
HTTP (see kennel_harness.py). Every wait is bounded.
"""

import datetime
import json
import unittest

from kennel_harness import KennelTestCase, fact, run_cli, uid
from test_predict import (SharedServerCase, at, definition, features_hash, load_data, post_facts,
                          predict, put_model, set_live, train, wait_until)


def iso(t):
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def now_plus(**delta):
    return iso(datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(**delta))


class StoredFeaturesTest(SharedServerCase):

    def setUp(self):
        super().setUp()
        self.feats, self.labels, self.rows = load_data(self, self.c, 120)
        self.name = uid("stored")
        put_model(self, self.c, self.name, definition(self.feats, self.labels))
        self.assertEqual(train(self, self.c, self.name), 1)
        set_live(self, self.c, self.name, 1)

    def fact_id(self, entity):
        r = self.c.get("/v1/streams/%s/facts?entity=%s&order=desc&limit=1" % (self.feats, entity))
        self.assertEqual(r.status, 200, r)
        return r.json()["facts"][0]["id"]

    def test_an_entity_is_scored_from_its_newest_fact(self):
        entity, features, _, _ = self.rows[5]
        sent = predict(self, self.c, self.name, {"features": features})
        p = predict(self, self.c, self.name, {"entity": entity, "stored_features": True})
        self.assertEqual(p["prediction"], sent["prediction"], p)
        self.assertIs(p["fallback"], False, p)
        self.assertNotIn("imputed_fields", p)
        self.assertNotIn("ignored_fields", p)
        self.assertEqual(p["stored_features"], {
            "stream": self.feats, "fact": self.fact_id(entity), "time": at(5),
            "fields": ["caption", "color", "x1", "x2"]}, p)
        # Without "stored_features" nothing is read: a 400 for no features.
        r = self.c.post_json("/v1/models/%s/predict" % self.name, {"entity": entity})
        self.assertErrorShape(r, 400, field="features", message="missing")
        # The log's features hash is the scored features', as if sent.

        def logged():
            r = self.c.get("/v1/models/%s/predictions?id=%s" % (self.name, p["prediction_id"]))
            return r.status == 200 and r.json()["predictions"]
        entry = wait_until(logged, 10, "the prediction in the log")[0]
        self.assertEqual(entry["features_hash"], features_hash(features), entry)
        # Explained as the same features sent are.
        e = predict(self, self.c, self.name, {"entity": entity, "stored_features": True,
                                              "explain": True})["explanation"]
        f = predict(self, self.c, self.name, {"features": features, "explain": True})["explanation"]
        self.assertEqual(e["contributions"], f["contributions"])

    def test_sent_fields_take_the_place_of_stored_ones(self):
        entity, features, _, _ = self.rows[7]
        p = predict(self, self.c, self.name, {"entity": entity, "stored_features": True,
                                              "features": {"x1": 2.5, "x2": None}})
        # x1 sent; x2 sent null: the stored value fills it.
        want = predict(self, self.c, self.name, {"features": dict(features, x1=2.5)})
        self.assertEqual(p["prediction"], want["prediction"], p)
        self.assertEqual(p["stored_features"]["fields"], ["caption", "color", "x2"], p)
        # A batch mixes both kinds, each instance its own.
        r = predict(self, self.c, self.name, {"instances": [
            {"entity": self.rows[1][0], "stored_features": True},
            {"entity": self.rows[2][0], "features": self.rows[2][1]},
            {"entity": "no-such-entity", "stored_features": True}]})
        a, b, c = r["predictions"]
        self.assertEqual(a["prediction"], predict(self, self.c, self.name,
                                                  {"features": self.rows[1][1]})["prediction"])
        self.assertNotIn("stored_features", b)
        # An entity without facts: every field imputed, and said.
        self.assertEqual(c["stored_features"], {"stream": self.feats, "fact": None, "time": None,
                                                "fields": []}, c)
        self.assertEqual(sorted(c["imputed_fields"]), ["caption", "color", "x1", "x2"], c)
        self.assertIs(c["fallback"], False, c)

    def test_the_newest_fact_as_of_now_and_corrections(self):
        entity, features, _, _ = self.rows[9]
        newer = dict(features, x1=features["x1"] + 1.0)
        later = dict(features, x1=features["x1"] - 3.0)
        newer_time = now_plus(hours=-1)
        ids = post_facts(self, self.c, [fact(self.feats, entity, newer, time_=newer_time),
                                        fact(self.feats, entity, later, time_=now_plus(days=1))])
        p = predict(self, self.c, self.name, {"entity": entity, "stored_features": True})
        # The newer fact, not the one dated tomorrow.
        self.assertEqual(p["stored_features"]["fact"], ids[0], p)
        self.assertEqual(p["prediction"], predict(self, self.c, self.name,
                                                  {"features": newer})["prediction"])
        # A correction of it stands in its place, at its time.
        fixed = dict(newer, color="blue")
        [cid] = post_facts(self, self.c, [fact(self.feats, entity, fixed, corrects=ids[0])])
        p = predict(self, self.c, self.name, {"entity": entity, "stored_features": True})
        self.assertEqual(p["stored_features"]["fact"], cid, p)
        self.assertEqual(p["stored_features"]["time"], newer_time, p)
        self.assertEqual(p["prediction"], predict(self, self.c, self.name,
                                                  {"features": fixed})["prediction"])

    def test_stored_values_a_version_cannot_read_are_imputed_not_refused(self):
        entity = uid("odd")
        post_facts(self, self.c, [fact(self.feats, entity, {
            "x1": "not a number", "x2": 0.5, "color": "red", "caption": "dog",
            "unread": 7}, time_=now_plus(minutes=-5))])
        p = predict(self, self.c, self.name, {"entity": entity, "stored_features": True})
        self.assertEqual(p["stored_features"]["fields"], ["caption", "color", "x2"], p)
        self.assertEqual(p["imputed_fields"], ["x1"], p)
        self.assertNotIn("ignored_fields", p)
        self.assertEqual(p["prediction"], predict(self, self.c, self.name, {"features": {
            "x2": 0.5, "color": "red", "caption": "dog"}})["prediction"])

    def test_an_arm_and_the_fallback_chain_get_the_stored_fields_they_read(self):
        # Version 2 (live) reads x1 and color; version 1, before it on the
        # path live came by, also x2 and caption: the fact gives all four.
        d = definition(self.feats, self.labels)
        d["features"] = [{"field": "x1"}, {"field": "color", "transform": "category"}]
        put_model(self, self.c, self.name, d)
        self.assertEqual(train(self, self.c, self.name), 2)
        set_live(self, self.c, self.name, 2)
        entity, features, _, _ = self.rows[11]
        p = predict(self, self.c, self.name, {"entity": entity, "stored_features": True})
        self.assertEqual(p["version"], 2, p)
        self.assertEqual(p["stored_features"]["fields"], ["caption", "color", "x1", "x2"], p)
        sent = predict(self, self.c, self.name, {"entity": entity, "features": features})
        self.assertEqual(p["prediction"], sent["prediction"], p)
        # An experiment's one arm, version 1, reads all four from the fact.
        r = self.c.post_json("/v1/models/%s/experiments" % self.name, {
            "reason": "the old version", "arms": [{"name": "old", "version": 1, "weight": 1}]})
        self.assertEqual(r.status, 201, r)
        p = predict(self, self.c, self.name, {"entity": entity, "stored_features": True})
        sent = predict(self, self.c, self.name, {"entity": entity, "features": features})
        self.assertEqual((p["arm"], p["version"], p["fallback"]), ("old", 1, False), p)
        self.assertEqual(p["prediction"], sent["prediction"], p)
        self.assertNotIn("imputed_fields", p)
        self.assertEqual(p["stored_features"]["fields"], ["caption", "color", "x1", "x2"], p)

    def test_bad_requests_name_the_field(self):
        path = "/v1/models/%s/predict" % self.name
        r = self.c.post_json(path, {"stored_features": True})
        self.assertErrorShape(r, 400, field="entity", message="reads the entity's newest fact")
        for bad in ("yes", 1, None):
            r = self.c.post_json(path, {"entity": "e0001", "stored_features": bad})
            self.assertErrorShape(r, 400, field="stored_features", message="must be true or false")
        r = self.c.post_json(path, {"instances": [{"entity": "e0001", "stored_features": True},
                                                  {"stored_features": True, "features": {}}]})
        self.assertErrorShape(r, 400, field="instances[1].entity")
        # A sent field of a wrong type is still the request's error.
        r = self.c.post_json(path, {"entity": "e0001", "stored_features": True,
                                    "features": {"x1": "long"}})
        self.assertErrorShape(r, 400, field="features.x1")
        # false: nothing is read.
        r = self.c.post_json(path, {"entity": "e0001", "stored_features": False})
        self.assertErrorShape(r, 400, field="features", message="missing")


class SameStreamTest(SharedServerCase):
    """A model whose features and label share a stream: only a fact holding
    one of its features counts, as in training (an outcome fact carrying only
    the label is not the entity's features)."""

    def test_a_label_only_fact_is_not_the_features(self):
        stream = uid("both")
        facts = []
        for i in range(60):
            facts.append(fact(stream, "s%02d" % i, {"x": float(i), "y": 2.0 * i + 1},
                              time_=at(i)))
        post_facts(self, self.c, facts)
        name = uid("same")
        d = definition(stream, stream)
        d["features"] = [{"field": "x"}]
        put_model(self, self.c, name, d)
        self.assertEqual(train(self, self.c, name), 1)
        set_live(self, self.c, name, 1)
        [fid] = post_facts(self, self.c, [fact(stream, "s07", {"x": 30.0},
                                               time_=now_plus(hours=-2))])
        post_facts(self, self.c, [fact(stream, "s07", {"y": 500.0}, time_=now_plus(hours=-1))])
        p = predict(self, self.c, name, {"entity": "s07", "stored_features": True})
        self.assertEqual(p["stored_features"]["fact"], fid, p)
        self.assertEqual(p["prediction"], predict(self, self.c, name,
                                                  {"features": {"x": 30.0}})["prediction"])

    def test_a_fact_holding_only_a_field_training_dropped_is_still_the_features(self):
        # "k" is declared but constant in training, so the version reads
        # nothing of it; a fact holding only k is still the entity's newest
        # features fact, as training would join it (every field imputed).
        stream = uid("drop")
        post_facts(self, self.c, [fact(stream, "d%02d" % i, {"x": float(i), "k": 7,
                                                              "y": 2.0 * i + 1}, time_=at(i))
                                  for i in range(60)])
        name = uid("dropped")
        d = definition(stream, stream)
        d["features"] = [{"field": "x"}, {"field": "k"}]
        put_model(self, self.c, name, d)
        self.assertEqual(train(self, self.c, name), 1)
        set_live(self, self.c, name, 1)
        [fid] = post_facts(self, self.c, [fact(stream, "d05", {"k": 7},
                                               time_=now_plus(hours=-1))])
        p = predict(self, self.c, name, {"entity": "d05", "stored_features": True})
        self.assertEqual(p["stored_features"]["fact"], fid, p)
        self.assertEqual(p["stored_features"]["fields"], [], p)
        self.assertEqual(p["imputed_fields"], ["x"], p)


class OfflineStoredFeaturesTest(KennelTestCase):

    def test_kennel_predict_reads_stored_features_as_the_api_does(self):
        server = self.start_server()
        c = self.client(server)
        feats, labels, rows = load_data(self, c, 100)
        name = uid("offstored")
        put_model(self, c, name, definition(feats, labels))
        self.assertEqual(train(self, c, name), 1)
        set_live(self, c, name, 1)
        body = {"instances": [{"entity": rows[i][0], "stored_features": True}
                              for i in range(3)] + [{"entity": "none", "stored_features": True}]}
        p = run_cli(["predict", name, "--db", self.path("kennel.db")],
                    input=json.dumps(body) + "\n", timeout=60)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        offline = [json.loads(line) for line in p.stdout.splitlines()]
        served = predict(self, c, name, body)["predictions"]
        self.assertEqual(len(offline), 4)
        for a, b in zip(offline, served):
            self.assertEqual(a["prediction"], b["prediction"])
            self.assertEqual(a["stored_features"], b["stored_features"])


if __name__ == "__main__":
    unittest.main()
