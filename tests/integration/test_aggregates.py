"""Integration tests for aggregate features: a feature computed from the
entity's history in a stream (count, sum, mean, min, max, latest) over a
window before a moment. Training takes the moment of each example's feature
fact; serving the moment of the request, or of the stored fact with
"stored_features".

What is checked from outside: a model whose label is a function of its
aggregates answers each entity with its label when served from its stored
fact (training and serving computed the same values, and a fact after the
moment, or outside the window, counted in neither); the answer names the
values and the moment, which equal values computed here by hand; the
prediction equals the one for the same values sent; a sent value wins and is
not computed; a correction stands in the place of the fact it corrects;
without an entity the aggregates are imputed; explanations name them; the
version records how it computes them; `kennel predict` computes them alike;
and bad definitions are 400s naming the field.

The real binary on a free loopback port with a temporary database, over real
HTTP (see kennel_harness.py). Every wait is bounded.
"""

import datetime
import json
import random
import re
import unittest

from kennel_harness import fact, run_cli, uid
from test_predict import (SharedServerCase, post_facts, predict, put_model, set_live, train,
                          wait_until)

DAY = 86400


def iso(t):
    return t.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse(s):
    return datetime.datetime.strptime(s.replace("Z", "+0000"), "%Y-%m-%dT%H:%M:%S.%f%z") \
        if "." in s else datetime.datetime.strptime(s.replace("Z", "+0000"), "%Y-%m-%dT%H:%M:%S%z")


def aggregate(op, facts, moment, window_s, of="amount"):
    """The aggregate as documented: facts in [moment - window, moment)."""
    start = moment - datetime.timedelta(seconds=window_s) if window_s else None
    inside = sorted((t, v) for t, v in facts if t < moment and (start is None or t >= start))
    values = [v[of] for _, v in inside if of in v]
    if op == "count":
        return len(inside)
    if op == "sum":
        return sum(values)
    if not values:
        return None
    return {"mean": sum(values) / len(values), "min": min(values), "max": max(values),
            "latest": values[-1]}[op]


SPECS = [
    ("orders_7d", {"op": "count", "window_seconds": 7 * DAY}),
    ("spend_30d", {"op": "sum", "of": "amount", "window_seconds": 30 * DAY}),
    ("biggest_30d", {"op": "max", "of": "amount", "window_seconds": 30 * DAY}),
    ("last_amount", {"op": "latest", "of": "amount"}),
]


class AggregateData:
    """Users, their orders and a label that is a function of the orders'
    aggregates at each user's feature fact; a model over them, v1 live."""

    def setUp(self):
        super().setUp()
        self.users, self.orders, self.labels = uid("users"), uid("orders"), uid("churn")
        rng = random.Random(7)
        now = datetime.datetime.now(datetime.timezone.utc)
        self.rows = []   # (entity, features fact time, x1, label)
        self.history = {}  # entity -> [(time, data)]
        facts = []
        for i in range(160):
            entity = "u%03d" % i
            # The feature fact, then orders before it (some outside the
            # windows) and after it (which neither side may count).
            t = now - datetime.timedelta(days=40, minutes=i)
            x1 = round(rng.gauss(0, 1), 3)
            orders = []
            for _ in range(rng.randint(0, 8)):
                when = t - datetime.timedelta(seconds=rng.uniform(60, 45 * DAY))
                orders.append((when, {"amount": round(rng.uniform(1, 100), 2)}))
            for _ in range(rng.randint(0, 3)):
                when = t + datetime.timedelta(seconds=rng.uniform(1, 3000))
                orders.append((when, {"amount": 1000.0}))
            self.history[entity] = orders
            count = aggregate("count", orders, t, 7 * DAY)
            spend = aggregate("sum", orders, t, 30 * DAY)
            y = round(3 * count + 0.05 * spend + x1, 6)
            self.rows.append((entity, t, x1, y))
            facts.append(fact(self.users, entity, {"x1": x1}, time_=iso(t)))
            facts += [fact(self.orders, entity, data, time_=iso(when)) for when, data in orders]
            facts.append(fact(self.labels, entity, {"y": y},
                              time_=iso(t + datetime.timedelta(hours=2))))
        post_facts(self, self.c, facts)
        self.name = uid("agg")
        features = [{"field": "x1"}]
        for field, spec in SPECS:
            features.append({"field": field, "aggregate": dict(spec, stream=self.orders)})
        self.definition = {
            "task": "regression", "features_from": self.users,
            "label": {"stream": self.labels, "field": "y"}, "features": features,
            "algorithm": "linear", "params": {"lambda": 1e-6}, "promotion": {"mode": "manual"},
            "supervision": {"enabled": False}, "serving": {"deadline_ms": 2000}}
        put_model(self, self.c, self.name, self.definition)
        self.assertEqual(train(self, self.c, self.name), 1)
        set_live(self, self.c, self.name, 1)

    def expected(self, entity, moment):
        return {field: aggregate(spec["op"], self.history[entity], moment,
                                 spec.get("window_seconds"))
                for field, spec in SPECS}

    def train_one_day_version(self, **extra):
        """Version 2: orders_7d counted over one day (a worse model)."""
        d = json.loads(json.dumps(self.definition))
        d["features"][1]["aggregate"]["window_seconds"] = DAY
        d.update(extra)
        put_model(self, self.c, self.name, d)
        self.assertEqual(train(self, self.c, self.name), 2)


class AggregateTest(AggregateData, SharedServerCase):

    tmp_prefix = "kennel-aggregates-"

    def test_training_and_serving_compute_the_same_values(self):
        v = self.c.get("/v1/models/%s/versions/1" % self.name).json()
        self.assertGreater(v["metrics"]["r2"], 0.999, v["metrics"])
        self.assertEqual(v["features"]["aggregates"],
                         [dict(spec, field=f, stream=self.orders) for f, spec in SPECS])
        worst = 0
        for entity, t, x1, y in self.rows[:40]:
            p = predict(self, self.c, self.name, {"entity": entity, "stored_features": True})
            self.assertIs(p["fallback"], False, p)
            # As of the stored fact: the values training computed for it.
            self.assertEqual(parse(p["aggregates"]["as_of"]), t)
            want = self.expected(entity, t)
            got = p["aggregates"]["values"]
            self.assertEqual(sorted(got), sorted(want), p)
            for field in want:
                if want[field] is None:
                    self.assertIsNone(got[field], (entity, field, p))
                else:
                    self.assertAlmostEqual(got[field], want[field], places=6, msg=(entity, field))
            worst = max(worst, abs(p["prediction"] - y))
            # The same values sent give the same answer.
            sent = {"x1": x1}
            sent.update({k: val for k, val in want.items() if val is not None})
            q = predict(self, self.c, self.name, {"features": sent})
            self.assertAlmostEqual(q["prediction"], p["prediction"], places=6)
        # The label is a function of the aggregates at the fact's moment: a
        # value training computed otherwise (orders after the moment, or
        # outside the window) would miss it here.
        self.assertLess(worst, 0.05)

    def test_as_of_now_a_sent_value_wins_and_corrections_stand(self):
        entity = self.rows[3][0]
        before = datetime.datetime.now(datetime.timezone.utc)
        p = predict(self, self.c, self.name, {"entity": entity, "features": {"x1": 0.5}})
        as_of = parse(p["aggregates"]["as_of"])
        self.assertGreaterEqual(as_of + datetime.timedelta(seconds=1), before)
        # Every order is more than 7 days old now: counted by no window but
        # "latest", which has none.
        self.assertEqual(p["aggregates"]["values"], self.expected(entity, as_of), p)
        # New orders: one now, one corrected, one dated tomorrow.
        now = datetime.datetime.now(datetime.timezone.utc)
        ids = post_facts(self, self.c, [
            fact(self.orders, entity, {"amount": 10.0}, time_=iso(now - datetime.timedelta(hours=1))),
            fact(self.orders, entity, {"amount": 20.0}, time_=iso(now - datetime.timedelta(days=2))),
            fact(self.orders, entity, {"amount": 500.0}, time_=iso(now + datetime.timedelta(days=1)))])
        post_facts(self, self.c, [fact(self.orders, entity, {"amount": 25.0}, corrects=ids[1])])
        p = predict(self, self.c, self.name, {"entity": entity, "features": {"x1": 0.5}})
        self.assertEqual(p["aggregates"]["values"], {
            "orders_7d": 2, "spend_30d": 35.0, "biggest_30d": 25.0, "last_amount": 10.0}, p)
        want = predict(self, self.c, self.name, {"features": {
            "x1": 0.5, "orders_7d": 2, "spend_30d": 35.0, "biggest_30d": 25.0,
            "last_amount": 10.0}})
        self.assertAlmostEqual(p["prediction"], want["prediction"], places=6)
        # A value sent is the app's: not computed, not listed.
        p = predict(self, self.c, self.name, {"entity": entity,
                                              "features": {"x1": 0.5, "orders_7d": 9}})
        self.assertNotIn("orders_7d", p["aggregates"]["values"], p)
        want = predict(self, self.c, self.name, {"features": {
            "x1": 0.5, "orders_7d": 9, "spend_30d": 35.0, "biggest_30d": 25.0,
            "last_amount": 10.0}})
        self.assertAlmostEqual(p["prediction"], want["prediction"], places=6)
        # A value of the wrong type sent for one: refused, naming it.
        r = self.c.post_json("/v1/models/%s/predict" % self.name,
                             {"entity": entity, "features": {"x1": 0.5, "orders_7d": "many"}})
        self.assertErrorShape(r, 400, field="features.orders_7d")
        # An entity with no orders: counts and sums are 0, the rest imputed.
        p = predict(self, self.c, self.name, {"entity": "nobody", "features": {"x1": 0.5}})
        self.assertEqual(p["aggregates"]["values"], {
            "orders_7d": 0, "spend_30d": 0, "biggest_30d": None, "last_amount": None}, p)
        self.assertEqual(sorted(p["imputed_fields"]), ["biggest_30d", "last_amount"], p)

    def test_without_an_entity_they_are_imputed_and_explanations_name_them(self):
        p = predict(self, self.c, self.name, {"features": {"x1": 0.5}})
        self.assertNotIn("aggregates", p)
        self.assertEqual(sorted(p["imputed_fields"]),
                         ["biggest_30d", "last_amount", "orders_7d", "spend_30d"], p)
        entity = self.rows[0][0]
        e = predict(self, self.c, self.name, {"entity": entity, "stored_features": True,
                                              "explain": True})
        names = {c["field"]: c for c in e["explanation"]["contributions"]}
        self.assertEqual(sorted(names), ["biggest_30d", "last_amount", "orders_7d", "spend_30d",
                                         "x1"], e)
        self.assertEqual(names["orders_7d"]["value"], e["aggregates"]["values"]["orders_7d"])
        # A batch computes each instance's own.
        r = predict(self, self.c, self.name, {"instances": [
            {"entity": self.rows[1][0], "stored_features": True},
            {"entity": self.rows[2][0], "stored_features": True}]})
        for row, answer in zip(self.rows[1:3], r["predictions"]):
            self.assertAlmostEqual(answer["aggregates"]["values"]["spend_30d"],
                                   self.expected(row[0], row[1])["spend_30d"], places=6)

    def test_a_stored_fact_holding_an_aggregates_name_does_not_set_it(self):
        entity = self.rows[6][0]
        when = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(minutes=1)
        [fid] = post_facts(self, self.c, [fact(self.users, entity, {"x1": 0.25, "orders_7d": 99},
                                                time_=iso(when))])
        p = predict(self, self.c, self.name, {"entity": entity, "stored_features": True})
        self.assertEqual(p["stored_features"]["fact"], fid, p)
        self.assertEqual(p["stored_features"]["fields"], ["x1"], p)
        self.assertEqual(p["aggregates"]["values"], self.expected(entity, when), p)
        self.assertEqual(p["aggregates"]["values"]["orders_7d"], 0, p)

    def test_each_version_gets_the_values_it_was_trained_with(self):
        self.train_one_day_version()
        v2 = self.c.get("/v1/models/%s/versions/2" % self.name).json()
        # The gate scored live (v1) on its own seven-day counts: exact.
        self.assertLess(v2["gate"]["live"], 0.05, v2["gate"])
        self.assertGreater(v2["gate"]["candidate"], 0.5, v2["gate"])
        self.assertFalse(v2["gate"]["passed"], v2["gate"])
        r = self.c.post_json("/v1/models/%s/experiments" % self.name, {
            "arms": [{"version": 1, "weight": 0.5}, {"version": 2, "weight": 0.5}],
            "reason": "windows side by side"})
        self.assertEqual(r.status, 201, r)
        seen = set()
        for entity, t, x1, y in self.rows[:40]:
            p = predict(self, self.c, self.name, {"entity": entity, "stored_features": True})
            window = 7 * DAY if p["version"] == 1 else DAY
            seen.add(p["version"])
            want = aggregate("count", self.history[entity], t, window)
            self.assertEqual(p["aggregates"]["values"]["orders_7d"], want, (entity, p))
            # The version's own value sent gives the same answer.
            q = predict(self, self.c, self.name, {"entity": entity, "stored_features": True,
                                                  "features": {"orders_7d": want}})
            self.assertEqual(q["version"], p["version"])
            self.assertAlmostEqual(q["prediction"], p["prediction"], places=6, msg=(p, q))
            if p["version"] == 1:
                self.assertAlmostEqual(p["prediction"], y, delta=0.05)
        self.assertEqual(seen, {1, 2})

    def test_a_shadow_reads_its_own_values_after_the_answer(self):
        self.train_one_day_version()
        r = self.c.post_json("/v1/models/%s/experiments" % self.name, {
            "arms": [{"version": 1, "weight": 1}, {"version": 2, "shadow": True}],
            "reason": "a one-day window in the shadow"})
        self.assertEqual(r.status, 201, r)
        bodies = [{"entity": row[0], "stored_features": True} for row in self.rows[:20]]
        answers = [predict(self, self.c, self.name, b) for b in bodies]
        for a in answers:
            self.assertEqual(a["version"], 1, a)
        # Version 2 offline, on its own values: what its shadow entries hold.
        r = run_cli(["predict", self.name, "--db", self.server.db, "--model-version", "2"],
                    input="".join(json.dumps(b) + "\n" for b in bodies))
        self.assertEqual(r.returncode, 0, r.stderr)
        offline = [json.loads(line) for line in r.stdout.splitlines()]
        for row, line in zip(self.rows, offline):
            self.assertEqual(line["aggregates"]["values"]["orders_7d"],
                             aggregate("count", self.history[row[0]], row[1], DAY), line)

        def shadows():
            got = []
            for a in answers:
                r = self.c.get("/v1/models/%s/predictions?id=%s-shadow-v2" % (self.name,
                                                                       a["prediction_id"]))
                self.assertEqual(r.status, 200, r)
                got += r.json()["predictions"]
            return got if len(got) == len(answers) else None
        logged = wait_until(shadows, 20, "the shadow entries")
        different = 0
        for entry, line, a in zip(logged, offline, answers):
            self.assertEqual((entry["version"], entry["shadow"], entry["fallback"]),
                             (2, True, False), entry)
            self.assertAlmostEqual(entry["prediction"], line["prediction"], places=6)
            different += abs(entry["prediction"] - a["prediction"]) > 1e-6
        self.assertGreater(different, 0)

    def test_an_arms_own_aggregate_is_read_only_for_its_entities(self):
        # v2 adds a count of all orders; live (v1) does not compute it.
        d = json.loads(json.dumps(self.definition))
        d["features"].append({"field": "orders_ever",
                              "aggregate": {"stream": self.orders, "op": "count"}})
        put_model(self, self.c, self.name, d)
        self.assertEqual(train(self, self.c, self.name), 2)
        r = self.c.post_json("/v1/models/%s/experiments" % self.name, {
            "arms": [{"version": 1, "weight": 0.5}, {"version": 2, "weight": 0.5}],
            "reason": "a count of every order"})
        self.assertEqual(r.status, 201, r)
        routed = {1: 0, 2: 0}
        for entity, t, x1, y in self.rows[:30]:
            p = predict(self, self.c, self.name, {"entity": entity, "stored_features": True})
            routed[p["version"]] += 1
            values = p["aggregates"]["values"]
            if p["version"] == 1:
                self.assertNotIn("orders_ever", values, p)
                self.assertNotIn("orders_ever", p.get("imputed_fields", []), p)
                self.assertNotIn("orders_ever", p.get("ignored_fields", []), p)
            else:
                self.assertEqual(values["orders_ever"],
                                 aggregate("count", self.history[entity], t, None), p)
        self.assertTrue(routed[1] and routed[2], routed)

    def test_a_live_version_without_aggregates_reads_no_history(self):
        # v2 drops the aggregates: v1, down the chain, computes them, but
        # they are not read with each request for it.
        d = json.loads(json.dumps(self.definition))
        d["features"] = [{"field": "x1"}]
        put_model(self, self.c, self.name, d)
        self.assertEqual(train(self, self.c, self.name), 2)
        set_live(self, self.c, self.name, 2)
        entity = self.rows[0][0]
        p = predict(self, self.c, self.name, {"entity": entity, "features": {"x1": 1},
                                              "deadline_ms": 0.5})
        self.assertEqual((p["version"], p["fallback"]), (2, False), p)
        self.assertNotIn("aggregates", p)
        self.assertNotIn("ignored_fields", p)
        self.assertNotIn("imputed_fields", p)

    def test_a_batch_of_histories_stops_at_the_deadline(self):
        # Many medium histories: each read is short, all together are not.
        now = datetime.datetime.now(datetime.timezone.utc)
        entities = [uid("medium") for _ in range(40)]
        post_facts(self, self.c, [
            fact(self.orders, e, {"amount": 1.0}, time_=iso(now - datetime.timedelta(seconds=5 + k)))
            for e in entities for k in range(250)])
        r = predict(self, self.c, self.name, {
            "instances": [{"entity": e, "features": {"x1": 0}} for e in entities],
            "deadline_ms": 0.5})
        answers = r["predictions"]
        self.assertTrue(all(a["fallback"] for a in answers), answers[:2])
        self.assertFalse(answers[-1]["aggregates"]["complete"], answers[-1])
        self.assertTrue(answers[-1]["fallback_reason"].startswith(
            "deadline_exceeded: the entity's history"), answers[-1])

    def test_a_history_too_long_for_the_deadline_answers_from_the_fallback(self):
        busy = uid("busy")
        now = datetime.datetime.now(datetime.timezone.utc)
        post_facts(self, self.c, [fact(self.orders, busy, {"amount": 1.0},
                                       time_=iso(now - datetime.timedelta(seconds=10 + i)))
                                  for i in range(20000)])
        # With room: every fact read.
        p = predict(self, self.c, self.name, {"entity": busy, "features": {"x1": 0},
                                              "deadline_ms": 60000})
        self.assertIs(p["fallback"], False, p)
        self.assertEqual(p["aggregates"]["complete"], True, p)
        self.assertEqual(p["aggregates"]["values"]["orders_7d"], 20000, p)
        # Without: the read stops, and the answer is the fallback's, said why.
        misses = self.deadline_misses()
        observed = self.drift_requests()
        p = predict(self, self.c, self.name, {"entity": busy, "features": {"x1": 0},
                                              "deadline_ms": 0.5})
        self.assertIs(p["fallback"], True, p)
        self.assertEqual(p["answered_by"], "baseline", p)
        self.assertTrue(p["fallback_reason"].startswith(
            "deadline_exceeded: the entity's history"), p)
        self.assertEqual(p["aggregates"]["complete"], False, p)
        # Not the version's doing: no deadline miss or fallback held against
        # it, and its drift did not count the values not read as missing.
        self.assertEqual(self.deadline_misses(), misses)
        self.assertEqual(self.drift_requests(), observed)
        # Counted for operators, with the time the reads took (the shared
        # server's other tests add to them: at least these two).
        text = self.c.get("/metrics").text

        def metric(pattern):
            return float(re.search(pattern, text, re.M).group(1))
        self.assertGreaterEqual(
            metric(r'^kennel_aggregate_reads_total\{outcome="complete"\} (\S+)$'), 1)
        self.assertGreaterEqual(metric(r'^kennel_aggregate_reads_total\{outcome="cut"\} (\S+)$'), 1)
        self.assertGreater(metric(r"^kennel_aggregate_read_seconds_total (\S+)$"), 0)

    def drift_requests(self):
        r = self.c.get("/v1/models/%s/drift" % self.name)
        self.assertEqual(r.status, 200, r)
        [live] = [v for v in r.json()["versions"] if v["role"] == "live"]
        return live["since_loaded"]["requests"]

    def deadline_misses(self):
        r = self.c.get("/v1/serving?model=" + self.name)
        self.assertEqual(r.status, 200, r)
        [m] = r.json()["models"]
        [live] = [v for v in m["versions"] if v["role"] == "live"]
        return live["deadline_misses"], live["fallbacks"]

    def test_large_values_and_a_null_field(self):
        entity = uid("huge")
        now = datetime.datetime.now(datetime.timezone.utc)
        post_facts(self, self.c, [
            fact(self.orders, entity, {"amount": a}, time_=iso(now - datetime.timedelta(hours=h)))
            for h, a in ((3, 1.7e308), (2, 1.7e308), (1, -1.7e308))])
        p = predict(self, self.c, self.name, {"entity": entity, "features": {"x1": 0}})
        self.assertEqual(p["aggregates"]["values"]["spend_30d"], 1.7e308, p)
        self.assertEqual(p["aggregates"]["values"]["biggest_30d"], 1.7e308, p)
        d = json.loads(json.dumps(self.definition))
        d["features"][2]["aggregate"]["of"] = None
        r = self.c.request("PUT", "/v1/models/" + uid("bad"), json_body=d)
        self.assertEqual(r.status, 400, r)
        self.assertEqual(r.json()["error"]["field"], "features[2].aggregate.of", r.json())

    def test_kennel_predict_computes_them_alike(self):
        entity = self.rows[4][0]
        body = {"entity": entity, "stored_features": True}
        served = predict(self, self.c, self.name, body)
        r = run_cli(["predict", self.name, "--db", self.server.db], input=json.dumps(body) + "\n")
        self.assertEqual(r.returncode, 0, r.stderr)
        line = json.loads(r.stdout.splitlines()[0])
        self.assertEqual(line["aggregates"], served["aggregates"])
        self.assertAlmostEqual(line["prediction"], served["prediction"], places=9)

    def test_bad_definitions_name_the_field(self):
        def refused(change, field, words):
            d = json.loads(json.dumps(self.definition))
            change(d)
            r = self.c.request("PUT", "/v1/models/" + uid("bad"), json_body=d)
            self.assertEqual(r.status, 400, r)
            fields = [x.get("field") for x in r.json()["error"].get("details", [])]
            self.assertIn(field, fields, r.json())
            self.assertIn(words, r.body.decode(), r.json())
            # The one problem, not also "no fact holds the field" for an
            # aggregate refused as written.
            self.assertEqual(len(fields), 1, r.json())

        def agg(i, **kv):
            def change(d):
                d["features"][i]["aggregate"].update(kv)
                for k, v in list(d["features"][i]["aggregate"].items()):
                    if v is None:
                        del d["features"][i]["aggregate"][k]
            return change
        refused(agg(1, op="median"), "features[1].aggregate.op", "count, sum, mean")
        refused(agg(2, of=None), "features[2].aggregate.of", "missing")
        refused(agg(1, window_seconds=0), "features[1].aggregate.window_seconds", "between")
        refused(agg(1, window_seconds=-5), "features[1].aggregate.window_seconds", "between")
        refused(agg(1, window_seconds="7d"), "features[1].aggregate.window_seconds", "number")
        refused(agg(1, window_seconds=1e12), "features[1].aggregate.window_seconds", "between")
        refused(agg(1, stream=None), "features[1].aggregate.stream", "missing")
        refused(agg(1, stream="no-such-stream"), "features[1].aggregate.stream", "no facts")
        refused(agg(2, of="nope"), "features[2].aggregate.of", "has a field")
        refused(agg(1, by="user"), "features[1].aggregate.by", "unknown field")

        def as_category(d):
            d["features"][1]["transform"] = "category"
        refused(as_category, "features[1].aggregate", "transform must be numeric")

        def not_object(d):
            d["features"][1]["aggregate"] = "count"
        refused(not_object, "features[1].aggregate", "must be an object")

        def named_as_a_fact_field(d):
            d["features"][1]["field"] = "x1"
            d["features"][0] = {"field": "x1", "transform": "log"}
        refused(named_as_a_fact_field, "features[1].aggregate", "share its aggregate")

        def held_by_facts(d):
            d["features"] = [{"field": "x1", "aggregate": {"stream": self.orders, "op": "count"}}]
        refused(held_by_facts, "features[0].field", "name the aggregate otherwise")

        # A string field cannot be summed.
        post_facts(self, self.c, [fact(self.orders, "u000", {"note": "late"})])

        def strings(d):
            d["features"][2]["aggregate"]["of"] = "note"
        refused(strings, "features[2].aggregate.of", "aggregate reads numbers")
        # Nothing was stored for any of them.
        r = self.c.get("/v1/models")
        self.assertFalse([m for m in r.json()["models"] if m["name"].startswith("bad-")])


class AggregateFaultTest(AggregateData, SharedServerCase):
    """Serving faults (--test-faults) with versions computing otherwise."""

    tmp_prefix = "kennel-aggregates-faults-"
    server_args = ("--test-faults",)

    def test_a_chain_version_computing_otherwise_is_passed_over(self):
        # Live v2 (a one-day window) throws; v1 (seven days) is next in the
        # chain, but its values are not read with the request (only the
        # arms' are): passed over, to the baseline.
        self.train_one_day_version(test_fault="serve_throw")
        set_live(self, self.c, self.name, 2)
        entity, t, x1, y = self.rows[0]
        p = predict(self, self.c, self.name, {"entity": entity, "stored_features": True})
        self.assertIs(p["fallback"], True, p)
        self.assertTrue(p["fallback_reason"].startswith("model_error"), p)
        self.assertEqual(p["answered_by"], "baseline", p)
        self.assertEqual(p["aggregates"]["values"]["orders_7d"],
                         aggregate("count", self.history[entity], t, DAY), p)
        # Without an entity, nothing is computed for anyone: v1 answers.
        p = predict(self, self.c, self.name, {"features": {"x1": x1}})
        self.assertEqual((p["fallback"], p["answered_by"], p["version"]),
                         (True, "previous_version", 1), p)
        # Nor when the app sends the value v1 computes otherwise: it is the
        # app's for every version.
        p = predict(self, self.c, self.name, {"entity": entity, "stored_features": True,
                                              "features": {"orders_7d": 4}})
        self.assertEqual((p["fallback"], p["answered_by"], p["version"]),
                         (True, "previous_version", 1), p)
        self.assertNotIn("orders_7d", p["aggregates"]["values"], p)


if __name__ == "__main__":
    unittest.main()
