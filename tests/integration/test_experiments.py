"""Integration tests for experiments, the prediction log and outcomes:
traffic split by a stable hash of the entity (checked against the documented
rule, computed here independently), shadow arms scored and logged but never
returned, experiments started, changed and ended by API; outcomes arriving as
label facts joined to predictions by prediction id or entity, with live
metrics per version and arm; the `predictions` table itself, and the log
read back through GET /v1/models/{name}/predictions.

The real binary on a free loopback port with a temporary database, over real
HTTP (see kennel_harness.py). Every wait is bounded.
"""

import datetime
import hashlib
import re
import time
import unittest

from kennel_harness import KennelTestCase, fact, fmix64, fnv1a64, open_db, uid
from test_predict import (FEATURES, SharedServerCase, definition, features_hash, load_data,
                          post_facts, predict, put_model, regression_metrics, regression_truth,
                          set_live, train, wait_until)

LOG_WAIT_S = 10


def arm_fraction(entity):
    """The documented arm rule: the top 53 bits of
    fmix64(fnv1a64("experiment-arm:" + entity)) as a fraction of 1, walked
    over the non-shadow arms' cumulative (normalised) weights."""
    return (fmix64(fnv1a64("experiment-arm:" + entity)) >> 11) / float(1 << 53)


def expected_arm(entity, arms):
    u = arm_fraction(entity)
    acc = 0.0
    last = None
    for name, weight in arms:
        acc += weight
        last = name
        if u < acc:
            return name
    return last


def three_versions(test, c, n=200, seed=11):
    """A model with versions 1 (linear), 2 (forest) and 3 (ridge, lambda 30);
    live is version 1. Returns (name, feats, labels, rows)."""
    feats, labels, rows = load_data(test, c, n, seed)
    name = uid("exp")
    d = definition(feats, labels, serving={"deadline_ms": 5000})
    put_model(test, c, name, d)
    test.assertEqual(train(test, c, name), 1)
    put_model(test, c, name, dict(d, algorithm="forest"))
    test.assertEqual(train(test, c, name), 2)
    put_model(test, c, name, dict(d, params={"lambda": 30.0}))
    test.assertEqual(train(test, c, name), 3)
    set_live(test, c, name, 1)
    return name, feats, labels, rows


def two_tasks(test, c, first, second, seed, live=True):
    """A model whose definition changed task: version 1 trained for `first`,
    version 2 for `second`; live is version 1 (with `live`, else no version
    is). Returns (name, feats, labels)."""
    feats, labels, _ = load_data(test, c, 150, seed=seed)
    name = uid("tasks")
    put_model(test, c, name, definition(feats, labels, task=first))
    test.assertEqual(train(test, c, name), 1)
    put_model(test, c, name, definition(feats, labels, task=second))
    test.assertEqual(train(test, c, name), 2)
    if live:
        set_live(test, c, name, 1)
    return name, feats, labels


def entity_features(i):
    """Distinct, deterministic features for entity number i."""
    return {"x1": round(((i * 37) % 101) / 25.0 - 2, 2), "x2": round(((i * 53) % 89) / 22.0 - 2, 2),
            "color": ("red", "green", "blue")[i % 3]}


class ExperimentTest(SharedServerCase):

    def live_metrics(self, name):
        r = self.c.get("/v1/models/%s/live-metrics" % name)
        self.assertEqual(r.status, 200, r)
        return r.json()["groups"]

    def test_split_shadow_change_and_end(self):
        name, _, _, _ = three_versions(self, self.c)
        base = "/v1/models/%s/experiments" % name

        # Validation before anything starts.
        for body, field in (({"arms": [{"version": 1, "weight": 1}]}, "reason"),
                            ({"reason": "x"}, "arms"),
                            ({"reason": "x", "arms": []}, "arms"),
                            ({"reason": "x", "arms": [{"version": 1, "weight": -1}]}, "arms[0].weight"),
                            ({"reason": "x", "arms": [{"version": 1, "shadow": True}]}, "arms"),
                            ({"reason": "x", "arms": [{"weight": 1}]}, "arms[0].version"),
                            ({"reason": "x", "arms": [{"name": "a", "version": 1, "weight": 1},
                                                      {"name": "a", "version": 2, "weight": 1}]},
                             "arms[1].name"),
                            # Wrong types were 500s; an overflowing sum stored an
                            # experiment no request was routed by.
                            ({"reason": "x", "arms": [{"version": 1, "weight": 1},
                                                      {"version": 2, "shadow": "yes"}]},
                             "arms[1].shadow"),
                            ({"reason": "x", "arms": [{"version": 1, "weight": 1, "name": 5}]},
                             "arms[0].name"),
                            ({"reason": "x", "arms": [{"version": 1, "weight": 1e308},
                                                      {"version": 2, "weight": 1e308}]},
                             "arms"),
                            # A shadow's weight was silently ignored.
                            ({"reason": "x", "arms": [{"version": 1, "weight": 1},
                                                      {"version": 2, "shadow": True,
                                                       "weight": 0.5}]},
                             "arms[1].weight"),
                            # A misspelt field made a live arm of a shadow.
                            ({"reason": "x", "arms": [{"version": 1, "weight": 1},
                                                      {"version": 2, "weight": 1, "shadw": True}]},
                             "arms[1].shadw"),
                            ({"reason": "x", "arms": [{"version": 1, "weight": 1}], "note": "y"},
                             "note"),
                            # Arm names are named like models and aliases; "live"
                            # and "fallback" are the log's arms outside experiments.
                            ({"reason": "x", "arms": [{"version": 1, "weight": 1, "name": ""}]},
                             "arms[0].name"),
                            ({"reason": "x", "arms": [{"version": 1, "weight": 1, "name": "a\nb"}]},
                             "arms[0].name"),
                            ({"reason": "x", "arms": [{"version": 1, "weight": 1, "name": "a b"}]},
                             "arms[0].name"),
                            ({"reason": "x", "arms": [{"version": 1, "weight": 1, "name": "a" * 65}]},
                             "arms[0].name"),
                            ({"reason": "x", "arms": [{"version": 1, "weight": 1},
                                                      {"version": 2, "weight": 1, "name": "live"}]},
                             "arms[1].name"),
                            ({"reason": "x", "arms": [{"version": 1, "weight": 1},
                                                      {"version": 2, "shadow": True,
                                                       "name": "fallback"}]},
                             "arms[1].name")):
            r = self.c.post_json(base, body)
            self.assertErrorShape(r, 400, field=field)
        # Two arms on one version with no names: the repeated name is the
        # default from the version, which the client never sent ("arm names
        # must be unique" was all it said).
        for arms in ([{"version": 2, "weight": 1}, {"version": 2, "weight": 1}],
                     [{"version": 2, "shadow": True}, {"version": 1, "weight": 1},
                      {"version": 2, "shadow": True, "name": None}],
                     [{"name": "v2", "version": 1, "weight": 1}, {"version": 2, "weight": 1}]):
            r = self.c.post_json(base, {"reason": "x", "arms": arms})
            err = self.assertErrorShape(r, 400, field="arms[%d].name" % (len(arms) - 1),
                                        message="has no name, and its default name")
            self.assertIn("name the arms, or pick different versions", err["message"])
        r = self.c.post_json(base, {"reason": "x", "arms": [
            {"version": 2, "weight": 1}, {"name": "v2", "version": 1, "weight": 1}]})
        self.assertErrorShape(r, 400, field="arms[1].name", message="arm names must be unique")
        r = self.c.post_json(base, {"reason": "x", "arms": [{"version": 9, "weight": 1}]})
        self.assertErrorShape(r, 404, field="arms[0].version")
        # An arm on a disabled version would only answer with fallbacks:
        # refused, as moving live to it is.
        vpath = "/v1/models/%s/versions/2" % name
        self.assertEqual(self.c.post_json(vpath + "/disable", {"reason": "t"}).status, 200)
        r = self.c.post_json(base, {"reason": "x", "arms": [{"version": 1, "weight": 1},
                                                            {"version": 2, "shadow": True}]})
        self.assertErrorShape(r, 409, field="arms[1].version", message="is disabled")
        self.assertEqual(self.c.post_json(vpath + "/enable", {"reason": "t"}).status, 200)

        arms = [{"name": "a", "version": 1, "weight": 0.7},
                {"name": "b", "version": 2, "weight": 0.3},
                {"name": "shadow", "version": 3, "shadow": True}]
        r = self.c.post_json(base, {"reason": "linear vs forest", "arms": arms})
        self.assertEqual(r.status, 201, r)
        exp = r.json()
        exp_id = exp["id"]
        # Location names the experiment, which reads back as created.
        self.assertEqual(r.header("Location"), "%s/%d" % (base, exp_id))
        self.assertEqual(self.c.get(r.header("Location")).json(), exp)
        self.assertEqual((exp["model"], exp["active"], exp["started_by"], exp["reason"],
                          exp["ended_at"]), (name, True, "admin", "linear vs forest", None), exp)
        self.assertEqual([(a["name"], a["version"], a["shadow"]) for a in exp["arms"]],
                         [("a", 1, False), ("b", 2, False), ("shadow", 3, True)], exp)

        # A second experiment while one runs: 409, nothing changes.
        r = self.c.post_json(base, {"reason": "another", "arms": [{"version": 3, "weight": 1}]})
        self.assertErrorShape(r, 409, code="conflict")
        # A change is read as strictly as a start, and refused whole.
        r = self.c.request("PUT", "%s/%d" % (base, exp_id), json_body={
            "reason": "typo", "arms": [{"version": 1, "weight": 1},
                                       {"version": 3, "weight": 1, "shadwo": True}]})
        self.assertErrorShape(r, 400, field="arms[1].shadwo")
        r = self.c.request("PUT", "%s/%d" % (base, exp_id), json_body={
            "reason": "reserved", "arms": [{"version": 1, "weight": 1, "name": "live"}]})
        self.assertErrorShape(r, 400, field="arms[0].name")
        r = self.c.get(base)
        self.assertEqual(r.json()["experiments"][0]["arms"], exp["arms"], r)

        # 10,000 distinct entities in batches of 1,000.
        split = [("a", 0.7), ("b", 0.3)]
        counts = {"a": 0, "b": 0}
        seen = {}
        answers = {}
        for batch in range(10):
            insts = [{"entity": "u%05d" % (batch * 1000 + i),
                      "features": entity_features(batch * 1000 + i)} for i in range(1000)]
            r = self.c.post_json("/v1/models/%s/predict" % name, {"instances": insts})
            self.assertEqual(r.status, 200, r)
            preds = r.json()["predictions"]
            self.assertEqual(len(preds), 1000)
            for inst, p in zip(insts, preds):
                self.assertIn(p["arm"], ("a", "b"), p)  # never the shadow
                self.assertEqual(p["experiment"], exp_id, p)
                self.assertIs(p["fallback"], False, p)
                self.assertEqual(p["version"], {"a": 1, "b": 2}[p["arm"]], p)
                # The arm is the documented hash rule's, computed here.
                self.assertEqual(p["arm"], expected_arm(inst["entity"], split), inst["entity"])
                counts[p["arm"]] += 1
                seen[inst["entity"]] = p["arm"]
                answers[p["prediction_id"]] = (inst, p)
        self.assertEqual(sum(counts.values()), 10000)
        self.assertLess(abs(counts["a"] / 10000 - 0.7), 0.02, counts)
        self.assertLess(abs(counts["b"] / 10000 - 0.3), 0.02, counts)

        # The same entity always lands in the same arm, whatever its features,
        # single or batched.
        sample = sorted(seen)[::50]
        r = predict(self, self.c, name, {"instances": [
            {"entity": e, "features": FEATURES} for e in sample]})
        self.assertEqual([p["arm"] for p in r["predictions"]], [seen[e] for e in sample])
        for e in sample[:20]:
            p = predict(self, self.c, name, {"entity": e, "features": {"x1": 0.0}})
            self.assertEqual(p["arm"], seen[e], e)
        # Without an entity there is nothing to split on: live answers (and
        # the shadow still scores it).
        p = predict(self, self.c, name, {"features": FEATURES})
        self.assertEqual((p["arm"], p["version"], p["fallback"]), ("live", 1, False), p)
        total = 10000 + len(sample) + 20 + 1

        # The shadow arm's predictions reach the log, flagged shadow.
        def shadow_logged():
            groups = self.live_metrics(name)
            sh = [g for g in groups if g["shadow"]]
            return groups if sh and sh[0]["predictions"] >= total else None
        groups = wait_until(shadow_logged, LOG_WAIT_S, "10,000 shadow predictions in the log",
                            interval=0.5)
        by = {(g["arm"], g["shadow"]): g for g in groups}
        sh = by[("shadow", True)]
        self.assertEqual((sh["version"], sh["fallbacks"]), (3, 0), sh)
        self.assertEqual(sh["predictions"], total, sh)
        self.assertEqual(by[("live", False)]["predictions"], 1, by)
        self.assertEqual(by[("a", False)]["version"], 1)
        self.assertEqual(by[("b", False)]["version"], 2)
        self.assertEqual(by[("a", False)]["predictions"] + by[("b", False)]["predictions"],
                         total - 1)
        self.assertEqual(by[("a", False)]["predictions"],
                         counts["a"] + sum(1 for e in sample if seen[e] == "a")
                         + sum(1 for e in sample[:20] if seen[e] == "a"))

        # Change the weights: 50/50 now, for new entities and old ones alike.
        r = self.c.request("PUT", "%s/%d" % (base, exp_id), json_body={
            "reason": "even split", "arms": [{"name": "a", "version": 1, "weight": 1},
                                             {"name": "b", "version": 2, "weight": 1},
                                             {"name": "shadow", "version": 3, "shadow": True}]})
        self.assertEqual(r.status, 200, r)
        self.assertEqual([a["weight"] for a in r.json()["arms"]], [0.5, 0.5, 0.0], r)
        r = self.c.request("PUT", "%s/%d" % (base, exp_id), json_body={"arms": arms})
        self.assertErrorShape(r, 400, field="reason")
        r = self.c.request("PUT", "%s/999" % base, json_body={"reason": "x", "arms": arms})
        self.assertErrorShape(r, 404)
        even = [("a", 0.5), ("b", 0.5)]
        insts = [{"entity": "w%04d" % i, "features": entity_features(i)} for i in range(1000)]
        preds = predict(self, self.c, name, {"instances": insts})["predictions"]
        got = [p["arm"] for p in preds]
        self.assertEqual(got, [expected_arm(i["entity"], even) for i in insts])
        self.assertLess(abs(got.count("a") / 1000 - 0.5), 0.05)

        # End it: recorded; traffic goes back to live.
        r = self.c.post_json("%s/%d/end" % (base, exp_id), {})
        self.assertErrorShape(r, 400, field="reason")
        r = self.c.post_json("%s/%d/end" % (base, exp_id), {"reason": "forest loses"})
        self.assertEqual((r.status, r.json()["changed"]), (200, True), r)
        r = self.c.get(base)
        self.assertEqual(r.status, 200, r)
        listed = [e for e in r.json()["experiments"] if e["id"] == exp_id]
        self.assertEqual(len(listed), 1, r)
        e = listed[0]
        self.assertEqual((e["active"], e["ended_by"], e["end_reason"]),
                         (False, "admin", "forest loses"), e)
        self.assertRegex(e["ended_at"], r"^\d{4}-\d\d-\d\dT")
        self.assertGreaterEqual(e["ended_at"], e["started_at"])
        self.assertEqual([a["weight"] for a in e["arms"]], [0.5, 0.5, 0.0], e)
        # Its history: each step with who, why and the arms after it (a
        # change was stored and shown nowhere). The refused changes left none.
        self.assertEqual([(h["event"], h["actor"], h["reason"]) for h in e["history"]],
                         [("started", "admin", e["reason"]), ("changed", "admin", "even split"),
                          ("ended", "admin", "forest loses")], e)
        self.assertEqual([a["weight"] for a in e["history"][0]["arms"]], [0.7, 0.3, 0.0], e)
        self.assertEqual([a["weight"] for a in e["history"][1]["arms"]], [0.5, 0.5, 0.0], e)
        self.assertEqual([h["time"] for h in e["history"]], sorted(h["time"] for h in e["history"]))
        preds = predict(self, self.c, name, {"instances": insts[:50]})["predictions"]
        for p in preds:
            self.assertEqual((p["arm"], p["version"], p["fallback"]), ("live", 1, False), p)
            self.assertNotIn("experiment", p)
        # Ending it again (an end sent again after its answer was lost)
        # changes nothing and records nothing, as for an alias removed
        # already; changing it is a conflict (it has ended); a new one may
        # start now.
        r = self.c.post_json("%s/%d/end" % (base, exp_id), {"reason": "again"})
        self.assertEqual((r.status, r.json()["changed"]), (200, False), r)
        self.assertEqual((r.json()["end_reason"], len(r.json()["history"])), ("forest loses", 3), r)
        r = self.c.request("PUT", "%s/%d" % (base, exp_id), json_body={"reason": "x", "arms": arms})
        self.assertErrorShape(r, 409, field="id")
        r = self.c.post_json(base, {"reason": "round two",
                                    "arms": [{"version": 3, "weight": 1}]})
        self.assertEqual(r.status, 201, r)
        p = predict(self, self.c, name, {"entity": "z", "features": FEATURES})
        self.assertEqual((p["arm"], p["version"], p["experiment"]), ("v3", 3, r.json()["id"]), p)

        # The prediction log in the database: arms, versions and shadow rows.
        db = open_db(self.server.db)
        self.addCleanup(db.close)
        some = list(answers.items())[:200]
        rows = {}

        def logged():
            q = db.execute("SELECT id, version, arm, shadow, fallback, entity FROM predictions"
                           " WHERE model = ? AND (id IN (%s) OR id IN (%s))" % (
                               ",".join("?" * len(some)), ",".join("?" * len(some))),
                           [name] + [k for k, _ in some] + [k + "-shadow" for k, _ in some])
            rows.clear()
            rows.update({r[0]: r for r in q})
            return len(rows) == 2 * len(some)
        wait_until(logged, LOG_WAIT_S, "predictions in the predictions table", interval=0.2)
        for pid, (inst, p) in some:
            self.assertEqual(rows[pid][1:], (p["version"], p["arm"], 0, 0, inst["entity"]))
            self.assertEqual(rows[pid + "-shadow"][1:], (3, "shadow", 1, 0, inst["entity"]))

    def test_a_models_histories_are_paged_and_an_experiment_is_read_by_id(self):
        # They were cut at 100 or 500 with no way to older entries, or
        # (versions, revisions) sent whole however long they grew.
        name, _, _, _ = three_versions(self, self.c)
        base = "/v1/models/%s" % name
        for v in (2, 3, 1, 3):
            set_live(self, self.c, name, v)
        for action in ("disable", "enable", "disable", "enable"):
            r = self.c.post_json("%s/versions/2/%s" % (base, action), {"reason": "paging"})
            self.assertEqual(r.status, 200, r)
        started = []
        for _ in range(3):
            r = self.c.post_json(base + "/experiments",
                                 {"reason": "paging", "arms": [{"version": 1, "weight": 1},
                                                               {"version": 3, "weight": 1}]})
            self.assertEqual(r.status, 201, r)
            started.append(r.json()["id"])
            self.assertEqual(self.c.post_json("%s/experiments/%d/end" % (base, started[-1]),
                                              {"reason": "paging"}).status, 200)

        def walk(path, key, ident, limit):
            """Every page of `path` by `limit`; returns the rows in page order."""
            rows, before, pages = [], None, 0
            while True:
                q = "%s?limit=%d" % (path, limit) + ("&before=%d" % before if before else "")
                r = self.c.get(q)
                self.assertEqual(r.status, 200, r)
                page = r.json()[key]
                self.assertLessEqual(len(page), limit)
                rows.append([ident(x) for x in page])
                before = r.json()["next_before"]
                pages += 1
                if before is None:
                    return rows
                self.assertLess(pages, 50)

        # Newest first, page after page.
        for path, key, default in (("/deployments", "deployments", 500), ("/events", "events", 500),
                                   ("/experiments", "experiments", 100)):
            with self.subTest(path=path):
                whole = self.c.get(base + path).json()
                self.assertIsNone(whole["next_before"])
                ids = [x["id"] for x in whole[key]]
                self.assertEqual(ids, sorted(ids, reverse=True))
                self.assertGreaterEqual(len(ids), 3)
                pages = walk(base + path, key, lambda x: x["id"], 2)
                self.assertEqual([i for p in pages for i in p], ids)
                self.assertEqual([len(p) for p in pages[:-1]], [2] * (len(pages) - 1))
        # Versions and revisions: the newest page first, each page oldest first.
        whole = self.c.get(base + "/versions").json()
        self.assertEqual([v["version"] for v in whole["versions"]], [1, 2, 3])
        self.assertEqual((whole["count"], whole["next_before"]), (3, None))
        self.assertEqual(walk(base + "/versions", "versions", lambda v: v["version"], 2),
                         [[2, 3], [1]])
        first = self.c.get(base + "/versions?limit=2").json()
        self.assertEqual((first["count"], first["next_before"]), (3, 2))
        # The list counts each version's columns; one version read alone names
        # them (a text feature's names made a version's entry a megabyte).
        for listed in whole["versions"]:
            one = self.c.get("%s/versions/%d" % (base, listed["version"])).json()
            self.assertNotIn("names", listed["features"])
            self.assertNotIn("profile", listed["features"])
            self.assertEqual(listed["features"]["columns"], len(one["features"]["names"]))
            self.assertEqual(listed["features"]["importance"], one["features"]["importance"])
        self.assertEqual(walk(base + "/revisions", "revisions", lambda r: r["revision"], 2),
                         [[2, 3], [1]])
        first = self.c.get(base + "/revisions?limit=2").json()
        self.assertEqual((first["count"], first["next_before"]), (3, 2))
        # One experiment by its id; not another model's, nor an unknown one.
        one = self.c.get("%s/experiments/%d" % (base, started[0]))
        self.assertEqual(one.status, 200, one)
        listed = [e for e in self.c.get(base + "/experiments").json()["experiments"]
                  if e["id"] == started[0]]
        self.assertEqual(one.json(), listed[0])
        other, _, _, _ = three_versions(self, self.c, n=60, seed=5)
        self.assertErrorShape(self.c.get("/v1/models/%s/experiments/%d" % (other, started[0])),
                              404, field="id")
        self.assertErrorShape(self.c.get("%s/experiments/999999" % base), 404, field="id")
        self.assertErrorShape(self.c.get("%s/experiments/x" % base), 400, field="id")
        # Bad paging is a 400 naming the parameter.
        for path in ("/versions", "/revisions", "/deployments", "/events", "/experiments"):
            for query, field in (("limit=0", "limit"), ("limit=1001", "limit"),
                                 ("limit=x", "limit"), ("before=0", "before"),
                                 ("before=-3", "before"), ("before=1e3", "before")):
                with self.subTest(path=path, query=query):
                    self.assertErrorShape(self.c.get("%s%s?%s" % (base, path, query)), 400,
                                          field=field)

    def test_a_disabled_arm_is_answered_by_live(self):
        # An arm whose version is disabled (by a person or the supervisor)
        # falls back to the live version, not to the constant: live is the
        # next step of the chain for an experiment's traffic.
        name, _, _, _ = three_versions(self, self.c, seed=13)
        base = "/v1/models/%s/experiments" % name
        r = self.c.post_json(base, {"reason": "two arms", "arms": [
            {"name": "a", "version": 1, "weight": 0.5}, {"name": "b", "version": 2, "weight": 0.5}]})
        self.assertEqual(r.status, 201, r)
        entities = ["d%03d" % i for i in range(60)]
        split = [("a", 0.5), ("b", 0.5)]
        on_b = [e for e in entities if expected_arm(e, split) == "b"]
        self.assertGreater(len(on_b), 5)
        live = {e: predict(self, self.c, name, {"features": entity_features(i)})["prediction"]
                for i, e in enumerate(entities)}
        # Live's version is arm a too: listed and counted once (its counters
        # were summed twice over the model), with both roles.
        m = next(m for m in self.c.get("/v1/serving").json()["models"] if m["model"] == name)
        self.assertEqual([(v["version"], v["role"], v["roles"]) for v in m["versions"]],
                         [(1, "live", ["live", "arm:a"]), (2, "arm:b", ["arm:b"])], m)
        metrics = self.c.get("/metrics").text
        self.assertEqual(len(re.findall(r'^kennel_version_requests_total\{model="%s",version="1",'
                                        % name, metrics, re.M)), 1, metrics)
        r = self.c.post_json("/v1/models/%s/versions/2/disable" % name, {"reason": "broken"})
        self.assertEqual(r.status, 200, r)
        preds = predict(self, self.c, name, {"instances": [
            {"entity": e, "features": entity_features(i)} for i, e in enumerate(entities)]})
        for e, p in zip(entities, preds["predictions"]):
            if e in on_b:
                self.assertEqual((p["arm"], p["version"], p["fallback"], p["fallback_reason"],
                                  p["answered_by"]),
                                 ("b", 1, True, "version_disabled", "live_version"), p)
            else:
                self.assertEqual((p["arm"], p["version"], p["fallback"]), ("a", 1, False), p)
            self.assertEqual(p["prediction"], live[e], p)

        # Its weights can still change with the disabled arm kept (it had to
        # be enabled again first); a disabled version cannot join.
        exp = self.c.get(base + "?limit=1").json()["experiments"][0]
        r = self.c.request("PUT", "%s/%d" % (base, exp["id"]), json_body={
            "reason": "less to b", "arms": [{"name": "a", "version": 1, "weight": 0.9},
                                            {"name": "b", "version": 2, "weight": 0.1}]})
        self.assertEqual((r.status, r.json()["changed"]), (200, True), r)
        self.assertEqual(self.c.post_json("/v1/models/%s/versions/3/disable" % name,
                                          {"reason": "broken too"}).status, 200)
        r = self.c.request("PUT", "%s/%d" % (base, exp["id"]), json_body={
            "reason": "add c", "arms": [{"name": "a", "version": 1, "weight": 0.9},
                                        {"name": "b", "version": 2, "weight": 0.1},
                                        {"name": "c", "version": 3, "shadow": True}]})
        self.assertErrorShape(r, 409, field="arms[2].version", message="is disabled")

    def test_arms_read_back_and_sent_again_change_nothing(self):
        # A shadow arm reads back with "weight": 0, which a PUT refused; and
        # arms as they are recorded a change and moved the ETag, so a PUT
        # sent again after its answer was lost failed its If-Match.
        name, _, _, _ = three_versions(self, self.c, seed=14)
        base = "/v1/models/%s/experiments" % name
        r = self.c.post_json(base, {"reason": "start", "arms": [
            {"version": 2, "weight": 1}, {"version": 1, "shadow": True}]})
        self.assertEqual(r.status, 201, r)
        url = r.header("Location")
        got = self.c.get(url)
        etag, arms = got.header("ETag"), got.json()["arms"]
        self.assertEqual([a.get("weight") for a in arms if a["shadow"]], [0.0], arms)
        r = self.c.request("PUT", url, json_body={"reason": "again", "arms": arms},
                           headers={"If-Match": etag})
        self.assertEqual((r.status, r.json()["changed"]), (200, False), r)
        self.assertEqual(self.c.get(url).header("ETag"), etag)
        self.assertEqual([h["event"] for h in self.c.get(url).json()["history"]], ["started"])
        # Sent again once more, with the same If-Match: still as it was.
        r = self.c.request("PUT", url, json_body={"reason": "again", "arms": arms},
                           headers={"If-Match": etag})
        self.assertEqual((r.status, r.json()["changed"]), (200, False), r)
        # A real change is one.
        arms[0]["weight"], arms[1] = 0.5, {"version": 3, "weight": 0.5}
        r = self.c.request("PUT", url, json_body={"reason": "split", "arms": arms},
                           headers={"If-Match": etag})
        self.assertEqual((r.status, r.json()["changed"]), (200, True), r)
        self.assertNotEqual(self.c.get(url).header("ETag"), etag)

    def test_an_arm_left_of_another_task_by_a_live_move_is_answered_by_live(self):
        # Arms are checked against live's task when the experiment starts;
        # live then moved to a version of the definition's new task, and
        # the arm still answered a number where live answers a class.
        name, _, _ = two_tasks(self, self.c, "regression", "binary", seed=17)
        r = self.c.post_json("/v1/models/%s/experiments" % name, {
            "reason": "one arm", "arms": [{"name": "r", "version": 1, "weight": 1}]})
        self.assertEqual(r.status, 201, r)
        set_live(self, self.c, name, 2)
        p = predict(self, self.c, name, {"entity": "e1", "features": FEATURES})
        self.assertEqual((p["arm"], p["version"], p["fallback"], p["fallback_reason"],
                          p["answered_by"]),
                         ("r", 2, True, "version_of_another_task", "live_version"), p)
        self.assertIsInstance(p["prediction"], str, p)
        self.assertEqual(set(p["probabilities"]), {"true", "false"}, p)

    def test_with_no_live_version_arms_keep_to_the_definitions_task(self):
        # With no live version the first arm's task was the rule, a shadow's
        # too: a regression arm was accepted for a binary model, whose
        # constant steps answer classes.
        name, _, _ = two_tasks(self, self.c, "regression", "binary", seed=18, live=False)
        base = "/v1/models/%s/experiments" % name
        for arms in ([{"version": 1, "weight": 1}],
                     [{"version": 1, "shadow": True}, {"version": 2, "weight": 1}]):
            r = self.c.post_json(base, {"reason": "mixed", "arms": arms})
            self.assertErrorShape(r, 409, field="arms[0].version")
            self.assertIn("trained for regression, but the definition's task is binary",
                          r.json()["error"]["message"])
        r = self.c.post_json(base, {"reason": "binary", "arms": [{"version": 2, "weight": 1}]})
        self.assertEqual(r.status, 201, r)

    def test_shadow_rows_that_answered_nothing_are_not_scored(self):
        # x1 = 1e308: the forest (version 2) answers, the linear shadow
        # (version 1) overflows and logs no value. Its outcomes are not
        # scored against a prediction of 0 (live metrics once said rmse 42
        # for a shadow that never answered).
        name, _, labels, _ = three_versions(self, self.c, seed=14)
        r = self.c.post_json("/v1/models/%s/experiments" % name, {
            "reason": "shadow", "arms": [{"name": "forest", "version": 2, "weight": 1},
                                         {"name": "lin", "version": 1, "shadow": True}]})
        self.assertEqual(r.status, 201, r)
        insts = [{"entity": uid("ovf"), "features": dict(entity_features(i), x1=1e308)}
                 for i in range(10)]
        preds = predict(self, self.c, name, {"instances": insts})["predictions"]
        for p in preds:
            self.assertEqual((p["arm"], p["version"], p["fallback"]), ("forest", 2, False), p)

        def shadow_group():
            groups = {(g["arm"], g["shadow"]): g for g in self.live_metrics(name)}
            g = groups.get(("lin", True))
            return groups if g and g["predictions"] == 10 else None
        wait_until(shadow_group, LOG_WAIT_S, "10 shadow rows logged", interval=0.2)
        truths = [40.0 + k for k in range(10)]
        post_facts(self, self.c, [fact(labels, i["entity"], {"y": t})
                                  for i, t in zip(insts, truths)])
        groups = {(g["arm"], g["shadow"]): g for g in self.live_metrics(name)}
        sh = groups[("lin", True)]
        self.assertEqual((sh["predictions"], sh["fallbacks"], sh["outcomes"]), (10, 10, 0), sh)
        self.assertFalse(sh.get("metrics"), sh)
        live = groups[("forest", False)]
        self.assertEqual((live["predictions"], live["outcomes"]), (10, 10), live)
        want = regression_metrics(truths, [p["prediction"] for p in preds])
        self.assertAlmostEqual(live["metrics"]["rmse"], want["rmse"], places=6)

    def test_arms_and_shadows_compared_with_intervals(self):
        # Version 3 (ridge, lambda 30) shrinks a linear truth the plain
        # linear version 1 (live) fits: over 120 entities per arm, each asked
        # twice (one outcome per entity), the comparison says it is worse. A
        # shadow of version 1 is compared with the "lin" arm's answers to the
        # same requests: the same answers, a difference of exactly 0 (against
        # every answer served, the ridge arm's worse ones made it "better").
        name, _, labels, _ = three_versions(self, self.c, seed=16)
        base = "/v1/models/%s/experiments" % name
        r = self.c.post_json(base, {"reason": "ridge against live", "arms": [
            {"name": "lin", "version": 1, "weight": 1}, {"name": "ridge", "version": 3, "weight": 1},
            {"name": "echo", "version": 1, "shadow": True}]})
        self.assertEqual(r.status, 201, r)
        first = r.json()

        def ask(prefix, n, times=2):
            insts = [{"entity": "%s-%d" % (prefix, i), "features": entity_features(i)}
                     for i in range(n)]
            preds = predict(self, self.c, name, {"instances": insts * times})["predictions"]
            return insts, preds

        def outcomes_for(insts, shift=0.0):
            facts, truth = [], {}
            for i, inst in enumerate(insts):
                f = inst["features"]
                y = round(regression_truth(f["x1"], f["x2"], f["color"]) + shift +
                          (0.3 if i % 2 else -0.3), 4)
                truth[inst["entity"]] = y
                facts.append(fact(labels, inst["entity"], {"y": y}))
            return facts, truth

        def report(since=None, max_age=None):
            query = "&".join(q for q in ("since=" + since if since else "",
                                         "max_age=%d" % max_age if max_age else "") if q)
            r = self.c.get("/v1/models/%s/live-metrics%s" % (name, "?" + query if query else ""))
            self.assertEqual(r.status, 200, r)
            return r.json()

        def by_arm(body):
            return {c["arm"]: c for c in body["comparisons"]}

        prefix = uid("cmp")
        insts, preds = ask(prefix, 240)
        wait_until(lambda: sum(g["predictions"] for g in report()["groups"]) == 960, LOG_WAIT_S,
                   "480 answers and 480 shadow entries logged", interval=0.2)
        # No outcome yet: nothing to compare.
        body = report()
        self.assertEqual(body["uncertainty"], {"confidence": 0.95, "resamples": 400,
                                               "min_entities": 30, "resampled": "entities"})
        self.assertEqual((body["reference"], body["max_predictions"], body["truncated"]),
                         ({"arm": "lin", "version": 1}, 50000, False), body)
        cmp = by_arm(body)["ridge"]
        self.assertEqual((cmp["version"], cmp["against"], cmp["paired"], cmp["metric"],
                          cmp["higher_is_better"], cmp["outcomes"], cmp["entities"],
                          cmp["verdict"], cmp["lower"], cmp["upper"]),
                         (3, {"arm": "lin", "version": 1}, False, "rmse", False, 0, 0,
                          "too_few_entities", None, None), cmp)
        self.assertEqual([g["primary"] for g in body["groups"]], [None] * 3, body)

        facts, truth = outcomes_for(insts)
        post_facts(self, self.c, facts)
        body = report()
        groups = {g["arm"]: g for g in body["groups"]}
        per_arm, lin_ids = {}, set()
        for inst, p in zip(insts + insts, preds):
            t, q = per_arm.setdefault(p["arm"], ([], []))
            t.append(truth[inst["entity"]])
            q.append(p["prediction"])
            if p["arm"] == "lin":
                lin_ids.add(inst["entity"])
        for arm in ("lin", "ridge"):
            g = groups[arm]
            want = regression_metrics(*per_arm[arm])["rmse"]
            self.assertEqual(g["outcomes"], len(per_arm[arm][0]), g)
            self.assertEqual(g["primary"]["entities"], len(per_arm[arm][0]) // 2, g)
            self.assertEqual(g["primary"]["metric"], "rmse", g)
            self.assertAlmostEqual(g["primary"]["value"], want, places=9)
            self.assertAlmostEqual(g["metrics"]["rmse"], want, places=9)
            self.assertLess(g["primary"]["lower"], want, g)
            self.assertGreater(g["primary"]["upper"], want, g)
        cmp = by_arm(body)["ridge"]
        diff = groups["ridge"]["primary"]["value"] - groups["lin"]["primary"]["value"]
        self.assertAlmostEqual(cmp["difference"], diff, places=9)
        self.assertEqual((cmp["outcomes"], cmp["against_outcomes"], cmp["entities"],
                          cmp["against_entities"]),
                         (groups["ridge"]["outcomes"], groups["lin"]["outcomes"],
                          groups["ridge"]["primary"]["entities"],
                          groups["lin"]["primary"]["entities"]), cmp)
        self.assertGreater(diff, 0, body)
        self.assertLess(cmp["lower"], diff, cmp)
        self.assertGreater(cmp["upper"], diff, cmp)
        # Above 0 all along: ridge's error is larger, and lower is better.
        self.assertGreater(cmp["lower"], 0, cmp)
        self.assertEqual(cmp["verdict"], "worse", cmp)
        echo = by_arm(body)["echo"]
        self.assertEqual((echo["shadow"], echo["against"], echo["paired"], echo["outcomes"],
                          echo["entities"], echo["difference"], echo["lower"], echo["upper"],
                          echo["verdict"]),
                         (True, {"arm": "lin", "version": 1}, True, groups["lin"]["outcomes"],
                          len(lin_ids), 0, 0, 0, "inconclusive"), echo)
        # The same rows, the same interval: pollers see one answer.
        again = report()
        self.assertEqual(again["comparisons"], body["comparisons"])
        self.assertEqual([g["primary"] for g in again["groups"]],
                         [g["primary"] for g in body["groups"]])

        # Live moves to the candidate before the experiment ends (the usual
        # order). Over the experiment's time the reference stays the version
        # live was when it began; without a start, it is live's version now,
        # and an answer cached for the old one is not reused.
        since_start = report(first["started_at"])
        cached = report(max_age=600)
        set_live(self, self.c, name, 3)
        self.assertEqual(report(first["started_at"], max_age=600)["comparisons"],
                         since_start["comparisons"])
        now = report(max_age=600)
        self.assertNotEqual(now["computed_at"], cached["computed_at"])
        self.assertEqual(now["reference"], {"arm": "ridge", "version": 3}, now)
        self.assertEqual(by_arm(now)["lin"]["verdict"], "better", now)

        # Its end keeps what its arms showed: their traffic is not kept apart
        # afterwards. The same rows as the live metrics over its time.
        r = self.c.post_json(base + "/%d/end" % first["id"], {"reason": "seen"})
        self.assertEqual(r.status, 200, r)
        kept = r.json()["results"]
        self.assertEqual(kept["since"], first["started_at"])
        self.assertGreaterEqual(kept["computed_at"], since_start["computed_at"])
        for k in ("groups", "reference", "comparisons", "uncertainty", "truncated"):
            self.assertEqual(kept[k], since_start[k], k)
        self.assertEqual(by_arm(kept)["ridge"]["verdict"], "worse", kept)
        r = self.c.get(base + "/%d" % first["id"])
        self.assertEqual((r.status, r.json()["results"]), (200, kept), r)
        # Sent again, the end changes nothing it kept.
        r = self.c.post_json(base + "/%d/end" % first["id"], {"reason": "seen again"})
        self.assertIn(r.status, (200, 409), r)
        self.assertEqual(self.c.get(base + "/%d" % first["id"]).json()["results"], kept)
        set_live(self, self.c, name, 1)

        # Outcomes of 10 entities asked 5 times each: 50 outcomes, but 10
        # entities, too few for an interval or a verdict.
        r = self.c.post_json(base, {"reason": "few", "arms": [
            {"name": "lin", "version": 1, "weight": 1},
            {"name": "echo", "version": 1, "shadow": True}]})
        self.assertEqual(r.status, 201, r)
        started = r.json()["started_at"]
        insts, preds = ask(uid("few"), 10, times=5)
        wait_until(lambda: sum(g["predictions"] for g in report(started)["groups"]) == 100,
                   LOG_WAIT_S, "50 answers and 50 shadow entries logged", interval=0.2)
        post_facts(self, self.c, outcomes_for(insts, shift=1.0)[0])
        body = report(started)
        lin = {g["arm"]: g for g in body["groups"]}["lin"]
        self.assertEqual((lin["outcomes"], lin["primary"]["entities"], lin["primary"]["lower"],
                          lin["primary"]["upper"]), (50, 10, None, None), lin)
        (cmp,) = body["comparisons"]
        self.assertEqual((cmp["arm"], cmp["outcomes"], cmp["entities"], cmp["verdict"],
                          cmp["lower"]), ("echo", 50, 10, "too_few_entities", None), cmp)

        # An experiment its model's archiving ends keeps no results (the
        # archive ends it in its own transaction, with no join).
        second = self.c.get(base).json()["experiments"][0]
        self.assertEqual((second["active"], second["results"]), (True, None), second)
        r = self.c.post_json("/v1/models/%s/archive" % name, {"reason": "done", "force": True})
        self.assertEqual(r.status, 200, r)
        r = self.c.get(base + "/%d" % second["id"])
        self.assertEqual((r.status, r.json()["active"], r.json()["results"]), (200, False, None), r)

    def test_comparisons_without_entities_and_without_live_at_the_start(self):
        name, _, labels, _ = three_versions(self, self.c, seed=18)
        base = "/v1/models/%s/experiments" % name

        def live_metrics(since):
            r = self.c.get("/v1/models/%s/live-metrics?since=%s" % (name, since))
            self.assertEqual(r.status, 200, r)
            return r.json()

        def outcomes(preds, shift):
            post_facts(self, self.c, [fact(labels, uid("o"), {"y": 5.0 + shift * (k % 7),
                                                              "prediction_id": p["prediction_id"]})
                                      for k, p in enumerate(preds)])

        # Requests without an entity are answered by the live arm, and a
        # shadow of live's version is resampled with the answer it
        # shadowed (one request, one cluster): exactly 0, paired. Each row
        # its own cluster gave it an interval of about +-0.1.
        r = self.c.post_json(base, {"reason": "no entities", "arms": [
            {"name": "lin", "version": 1, "weight": 1},
            {"name": "echo", "version": 1, "shadow": True}]})
        self.assertEqual(r.status, 201, r)
        first = r.json()
        preds = predict(self, self.c, name, {"instances": [
            {"features": entity_features(i)} for i in range(60)]})["predictions"]
        self.assertEqual({p["arm"] for p in preds}, {"live"})
        wait_until(lambda: sum(g["predictions"] for g in live_metrics(first["started_at"])["groups"])
                   == 120, LOG_WAIT_S, "60 answers and 60 shadow entries logged", interval=0.2)
        outcomes(preds, 0.5)
        body = live_metrics(first["started_at"])
        self.assertEqual(body["reference"], {"arm": "live", "version": 1}, body)
        (cmp,) = body["comparisons"]
        self.assertEqual((cmp["arm"], cmp["paired"], cmp["outcomes"], cmp["entities"],
                          cmp["difference"], cmp["lower"], cmp["upper"], cmp["verdict"]),
                         ("echo", True, 60, 60, 0, 0, 0, "inconclusive"), cmp)
        r = self.c.post_json(base + "/%d/end" % first["id"], {"reason": "seen"})
        self.assertEqual(r.status, 200, r)

        # Live removed before an experiment starts, set to the control during
        # it, then to the candidate before its end: the reference is the
        # first version live was set to, so the end keeps the candidate's
        # comparison with the control.
        r = self.c.request("DELETE", "/v1/models/%s/aliases/live" % name,
                           json_body={"reason": "no live"})
        self.assertEqual(r.status, 200, r)
        r = self.c.post_json(base, {"reason": "late live", "arms": [
            {"name": "ctl", "version": 1, "weight": 1}, {"name": "cand", "version": 3, "weight": 1}]})
        self.assertEqual(r.status, 201, r)
        second = r.json()
        self.assertEqual(live_metrics(second["started_at"])["reference"], None)
        set_live(self, self.c, name, 1)
        preds = predict(self, self.c, name, {"instances": [
            {"entity": uid("late"), "features": entity_features(i)} for i in range(80)]})["predictions"]
        self.assertEqual({p["arm"] for p in preds}, {"ctl", "cand"})
        wait_until(lambda: sum(g["predictions"] for g in live_metrics(second["started_at"])["groups"])
                   == 80, LOG_WAIT_S, "80 answers logged", interval=0.2)
        outcomes(preds, 1.0)
        before = live_metrics(second["started_at"])
        self.assertEqual(before["reference"], {"arm": "ctl", "version": 1}, before)
        set_live(self, self.c, name, 3)
        r = self.c.post_json(base + "/%d/end" % second["id"], {"reason": "promoted"})
        self.assertEqual(r.status, 200, r)
        kept = r.json()["results"]
        self.assertEqual(kept["reference"], {"arm": "ctl", "version": 1}, kept)
        self.assertEqual(kept["comparisons"], before["comparisons"])
        self.assertEqual([c["arm"] for c in kept["comparisons"]], ["cand"], kept)

        # Two arms of one version (an A/A test of the split): the second
        # listed is compared with the first, whichever has more outcomes (a
        # reference chosen by outcome counts could change between polls).
        r = self.c.post_json(base, {"reason": "a/a", "arms": [
            {"name": "a", "version": 3, "weight": 1}, {"name": "b", "version": 3, "weight": 1}]})
        self.assertEqual(r.status, 201, r)
        third = r.json()
        preds = predict(self, self.c, name, {"instances": [
            {"entity": uid("aa"), "features": entity_features(i)} for i in range(80)]})["predictions"]
        wait_until(lambda: sum(g["predictions"] for g in live_metrics(third["started_at"])["groups"])
                   == 80, LOG_WAIT_S, "80 answers logged", interval=0.2)
        outcomes(preds, 1.0)
        body = live_metrics(third["started_at"])
        (cmp,) = body["comparisons"]
        arms = {g["arm"]: g["outcomes"] for g in body["groups"]}
        self.assertEqual((cmp["version"], cmp["against"]["version"], cmp["paired"]), (3, 3, False))
        self.assertEqual((cmp["arm"], cmp["against"]["arm"], body["reference"]),
                         ("b", "a", {"arm": "a", "version": 3}), body)
        self.assertEqual((cmp["outcomes"], cmp["against_outcomes"]), (arms["b"], arms["a"]), arms)
        self.assertEqual(cmp["outcomes"] + cmp["against_outcomes"], 80, arms)
        # Listed the other way round, the other is the reference.
        r = self.c.request("PUT", base + "/%d" % third["id"], json_body={
            "reason": "swap", "arms": [{"name": "b", "version": 3, "weight": 1},
                                       {"name": "a", "version": 3, "weight": 1}]})
        self.assertEqual(r.status, 200, r)
        body = live_metrics(third["started_at"])
        self.assertEqual(([c["arm"] for c in body["comparisons"]], body["reference"]),
                         (["a"], {"arm": "b", "version": 3}), body)
        # An end whose condition fails keeps nothing and ends nothing.
        r = self.c.request("POST", base + "/%d/end" % third["id"], json_body={"reason": "stale"},
                           headers={"If-Match": '"e1"'})
        self.assertEqual(r.status, 412, r)
        r = self.c.get(base + "/%d" % third["id"])
        self.assertEqual((r.json()["active"], r.json()["results"]), (True, None), r)
        r = self.c.post_json(base + "/%d/end" % third["id"], {"reason": "seen"})
        self.assertEqual(r.status, 200, r)
        # Asked since its start once it ended, the comparisons its end kept
        # (its arms' order, not the arm with the most outcomes, is the
        # reference's rule).
        kept = r.json()["results"]
        again = live_metrics(third["started_at"])
        self.assertEqual((again["reference"], [c["arm"] for c in again["comparisons"]]),
                         (kept["reference"], [c["arm"] for c in kept["comparisons"]]), again)
        self.assertEqual(kept["reference"], {"arm": "b", "version": 3}, kept)

        # An arm taken out of service, listed first: live's version answers
        # its requests (fallbacks, grouped under the arm with live's
        # version). The reference stays the arm live's version answers as
        # itself: one such fallback made the first listed group the
        # reference, with no outcome, and every comparison "too few".
        r = self.c.post_json(base, {"reason": "out", "arms": [
            {"name": "gone", "version": 1, "weight": 1}, {"name": "kept", "version": 3, "weight": 1}]})
        self.assertEqual(r.status, 201, r)
        fourth = r.json()
        preds = predict(self, self.c, name, {"instances": [
            {"entity": uid("out"), "features": entity_features(i)} for i in range(80)]})["predictions"]
        wait_until(lambda: sum(g["predictions"] for g in live_metrics(fourth["started_at"])["groups"])
                   == 80, LOG_WAIT_S, "80 answers logged", interval=0.2)
        outcomes(preds, 1.0)
        self.assertEqual(live_metrics(fourth["started_at"])["reference"],
                         {"arm": "kept", "version": 3})
        r = self.c.post_json("/v1/models/%s/versions/1/disable" % name, {"reason": "out"})
        self.assertEqual(r.status, 200, r)
        more = predict(self, self.c, name, {"instances": [
            {"entity": uid("after"), "features": entity_features(i)} for i in range(20)]})
        gone = [p for p in more["predictions"] if p["arm"] == "gone"]
        self.assertTrue(gone and all(p["fallback"] and p["version"] == 3 for p in gone), more)
        wait_until(lambda: sum(g["predictions"] for g in live_metrics(fourth["started_at"])["groups"])
                   == 100, LOG_WAIT_S, "100 answers logged", interval=0.2)
        body = live_metrics(fourth["started_at"])
        self.assertEqual(body["reference"], {"arm": "kept", "version": 3}, body)
        self.assertIn(("gone", 3), [(g["arm"], g["version"]) for g in body["groups"]], body)
        # Live's fallback answers for the arm are not an arm to compare.
        self.assertEqual([c["arm"] for c in body["comparisons"]], ["gone"], body)
        self.assertEqual(body["comparisons"][0]["version"], 1, body)
        r = self.c.post_json(base + "/%d/end" % fourth["id"], {"reason": "seen"})
        self.assertEqual(r.status, 200, r)
        r = self.c.post_json("/v1/models/%s/versions/1/enable" % name, {"reason": "back"})
        self.assertEqual(r.status, 200, r)

        # No arm of live's version, one taken out of service: live answers
        # its requests, and those fallbacks are no reference (there is none).
        r = self.c.post_json(base, {"reason": "none of live", "arms": [
            {"name": "p", "version": 1, "weight": 1}, {"name": "q", "version": 2, "weight": 1}]})
        self.assertEqual(r.status, 201, r)
        fifth = r.json()
        r = self.c.post_json("/v1/models/%s/versions/2/disable" % name, {"reason": "out"})
        self.assertEqual(r.status, 200, r)
        preds = predict(self, self.c, name, {"instances": [
            {"entity": uid("none"), "features": entity_features(i)} for i in range(60)]})["predictions"]
        self.assertIn((3, True), {(p["version"], p["fallback"]) for p in preds}, preds)
        wait_until(lambda: sum(g["predictions"] for g in live_metrics(fifth["started_at"])["groups"])
                   == 60, LOG_WAIT_S, "60 answers logged", interval=0.2)
        outcomes(preds, 1.0)
        body = live_metrics(fifth["started_at"])
        self.assertIsNone(body["reference"], body)
        self.assertEqual(body["comparisons"], [], body)

    def test_arms_of_other_classes_are_not_compared(self):
        # Version 1 learned b (false/true); version 2, after the label moved
        # to c, learned "no"/"yes". A binary arm of v2 is of live's task, but
        # its ROC-AUC is about another label: not_comparable, as a shadow.
        feats, labels, rows = load_data(self, self.c, 150, seed=17)
        post_facts(self, self.c, [fact(labels, e, {"c": "yes" if b else "no"})
                                  for e, _, _, b in rows])
        name = uid("classes")
        d = definition(feats, labels, task="binary")
        put_model(self, self.c, name, d)
        self.assertEqual(train(self, self.c, name), 1)
        put_model(self, self.c, name, dict(d, label={"stream": labels, "field": "c",
                                                     "positive": "yes"}))
        self.assertEqual(train(self, self.c, name), 2)
        set_live(self, self.c, name, 1)
        r = self.c.post_json("/v1/models/%s/experiments" % name, {"reason": "classes", "arms": [
            {"name": "old", "version": 1, "weight": 1}, {"name": "new", "version": 2, "weight": 1},
            {"name": "shade", "version": 2, "shadow": True}]})
        self.assertEqual(r.status, 201, r)
        started = r.json()["started_at"]
        insts = [{"entity": uid("k"), "features": entity_features(i)} for i in range(40)]
        predict(self, self.c, name, {"instances": insts})
        path = "/v1/models/%s/live-metrics?since=%s" % (name, started)
        wait_until(lambda: sum(g["predictions"] for g in self.c.get(path).json()["groups"]) == 80,
                   LOG_WAIT_S, "40 answers and 40 shadow entries logged", interval=0.2)
        body = self.c.get(path).json()
        self.assertEqual(body["reference"], {"arm": "old", "version": 1}, body)
        verdicts = {(c["arm"], c["paired"]): (c["verdict"], c["difference"], c["lower"])
                    for c in body["comparisons"]}
        self.assertEqual(verdicts, {("new", False): ("not_comparable", None, None),
                                    ("shade", True): ("not_comparable", None, None)}, body)

    def test_outcomes_join_to_predictions(self):
        name, feats, labels, _ = three_versions(self, self.c, seed=12)
        r = self.c.post_json("/v1/models/%s/experiments" % name, {
            "reason": "compare", "arms": [{"name": "lin", "version": 1, "weight": 1},
                                          {"name": "ridge", "version": 3, "weight": 1}]})
        self.assertEqual(r.status, 201, r)
        # Fresh entities the label stream has never seen.
        insts = [{"entity": uid("o"), "features": entity_features(i)} for i in range(80)]
        preds = predict(self, self.c, name, {"instances": insts})["predictions"]
        self.assertEqual({p["arm"] for p in preds}, {"lin", "ridge"})
        # A prediction never resolved stays without an outcome.
        unresolved = predict(self, self.c, name, {"entity": uid("o"), "features": FEATURES})

        # Outcomes: half carry the prediction id (under an unrelated entity,
        # so only the id can join them), half only the entity.
        outcome_facts = []
        expected = {}  # arm -> ([truth], [predicted])
        for i, (inst, p) in enumerate(zip(insts, preds)):
            f = inst["features"]
            truth = round(regression_truth(f["x1"], f["x2"], f["color"]) + (0.5 if i % 4 else -0.5), 4)
            if i % 2 == 0:
                outcome_facts.append(fact(labels, uid("elsewhere"),
                                          {"y": truth, "prediction_id": p["prediction_id"]}))
            else:
                outcome_facts.append(fact(labels, inst["entity"], {"y": truth}))
            t, q = expected.setdefault(p["arm"], ([], []))
            t.append(truth)
            q.append(p["prediction"])
        # Wait for the predictions to be logged before their outcomes arrive.
        db = open_db(self.server.db)
        self.addCleanup(db.close)
        ids = [p["prediction_id"] for p in preds] + [unresolved["prediction_id"]]
        wait_until(lambda: db.execute(
            "SELECT count(*) FROM predictions WHERE id IN (%s)" % ",".join("?" * len(ids)),
            ids).fetchone()[0] == len(ids), LOG_WAIT_S, "predictions logged", interval=0.1)
        post_facts(self, self.c, outcome_facts)

        r = self.c.get("/v1/models/%s/live-metrics" % name)
        self.assertEqual(r.status, 200, r)
        groups = {g["arm"]: g for g in r.json()["groups"]}
        self.assertEqual(set(groups), {"lin", "ridge"}, groups)
        for arm, version in (("lin", 1), ("ridge", 3)):
            g = groups[arm]
            truth, predicted = expected[arm]
            n_pred = len(truth) + (1 if unresolved["arm"] == arm else 0)
            self.assertEqual((g["version"], g["shadow"], g["predictions"], g["outcomes"],
                              g["fallbacks"]), (version, False, n_pred, len(truth), 0), g)
            want = regression_metrics(truth, predicted)
            for k in ("rmse", "mae", "r2"):
                self.assertAlmostEqual(g["metrics"][k], want[k], places=6, msg=(arm, k, g))
            self.assertEqual(g["metrics"]["rows"], len(truth), g)
            self.assertGreater(g["mean_latency_ms"], 0, g)
        # Different versions, different errors.
        self.assertNotEqual(groups["lin"]["metrics"]["rmse"], groups["ridge"]["metrics"]["rmse"])

        # A label dated in the future has not happened: no outcome, and it
        # does not hide the entity's real one (it was the newest, and joined
        # every prediction of the entity until 2030).
        before = {x["arm"]: (x["outcomes"], x["metrics"]["rmse"]) for x in self.live_metrics(name)}
        post_facts(self, self.c, [fact(labels, insts[1]["entity"], {"y": 9999.0},
                                       time_="2030-01-01T00:00:00Z")])
        after = {x["arm"]: (x["outcomes"], x["metrics"]["rmse"]) for x in self.live_metrics(name)}
        self.assertEqual(after, before)

        # A later outcome for the same prediction id replaces the earlier one.
        first = preds[0]
        t, q = expected[first["arm"]]
        idx = [p["prediction_id"] for p in preds if p["arm"] == first["arm"]].index(
            first["prediction_id"])
        t[idx] = 100.0
        late_id, = post_facts(self, self.c, [fact(labels, uid("late"), {
            "y": 100.0, "prediction_id": first["prediction_id"]})])
        g = {x["arm"]: x for x in self.live_metrics(name)}[first["arm"]]
        self.assertEqual(g["outcomes"], len(t), g)
        self.assertAlmostEqual(g["metrics"]["rmse"], regression_metrics(t, q)["rmse"], places=6)

        # A correction takes its place, as in training, though it does not
        # repeat the prediction id (the join kept 100, corrected away).
        fix_id, = post_facts(self, self.c, [fact(labels, uid("fix"), {"y": 7.0},
                                                 corrects=late_id)])
        t[idx] = 7.0
        g = {x["arm"]: x for x in self.live_metrics(name)}[first["arm"]]
        self.assertEqual(g["outcomes"], len(t), g)
        self.assertAlmostEqual(g["metrics"]["rmse"], regression_metrics(t, q)["rmse"], places=6)
        r = self.c.get("/v1/models/%s/predictions?id=%s" % (name, first["prediction_id"]))
        self.assertEqual(r.status, 200, r)
        entry = r.json()["predictions"][0]
        self.assertEqual((entry["outcome"]["fact"], entry["outcome"]["value"]), (fix_id, 7.0), entry)

        # ?since= limits the predictions considered.
        r = self.c.get("/v1/models/%s/live-metrics?since=2999-01-01T00:00:00Z" % name)
        self.assertEqual((r.status, r.json()["groups"]), (200, []), r)
        r = self.c.get("/v1/models/%s/live-metrics?since=yesterday" % name)
        self.assertErrorShape(r, 400, field="since")
        r = self.c.get("/v1/models/%s/live-metrics" % uid("nosuch"))
        self.assertErrorShape(r, 404)

        # ?max_age=S shares an answer computed up to S seconds ago (pollers);
        # without it the answer is computed afresh, and then serves the others.
        path = "/v1/models/%s/live-metrics" % name
        shared = self.c.get(path + "?max_age=600")
        self.assertEqual(shared.status, 200, shared)
        post_facts(self, self.c, [fact(labels, uid("fix"), {"y": 9.0}, corrects=fix_id)])
        t[idx] = 9.0
        again = self.c.get(path + "?max_age=600")
        self.assertEqual(again.body, shared.body)
        fresh = self.c.get(path)
        self.assertEqual(fresh.status, 200, fresh)
        g = {x["arm"]: x for x in fresh.json()["groups"]}[first["arm"]]
        self.assertAlmostEqual(g["metrics"]["rmse"], regression_metrics(t, q)["rmse"], places=6)
        self.assertGreater(fresh.json()["computed_at"], shared.json()["computed_at"])
        self.assertEqual(self.c.get(path + "?max_age=600").body, fresh.body)
        for bad in ("-1", "3601", "soon", "1.5", ""):
            r = self.c.get(path + "?max_age=" + bad)
            self.assertErrorShape(r, 400, field="max_age")

    def test_prediction_log_read_back_with_outcomes(self):
        name, feats, labels, _ = three_versions(self, self.c, seed=14)
        r = self.c.post_json("/v1/models/%s/experiments" % name, {
            "reason": "shadow ridge", "arms": [{"name": "main", "version": 1, "weight": 1},
                                               {"name": "shadow", "version": 3, "shadow": True}]})
        self.assertEqual(r.status, 201, r)
        entities = [uid("h") for _ in range(7)]
        answers = [predict(self, self.c, name, {"entity": e, "features": entity_features(i)})
                   for i, e in enumerate(entities)]
        answers += predict(self, self.c, name, {"instances": [
            {"entity": entities[0], "features": FEATURES}, {"features": {"x1": 0.5}}]})["predictions"]
        n = len(answers)  # each also has a shadow entry: 2n in the log

        def page(query):
            r = self.c.get("/v1/models/%s/predictions%s" % (name, query))
            self.assertEqual(r.status, 200, r)
            return r.json()
        wait_until(lambda: len(page("?limit=500")["predictions"]) == 2 * n, LOG_WAIT_S,
                   "the predictions and their shadow entries logged", interval=0.1)

        # Every entry, newest first, in pages of 3 linked by cursors.
        seen, cursor, pages = [], None, 0
        while True:
            p = page("?limit=3" + ("&cursor=" + cursor if cursor else ""))
            self.assertLessEqual(len(p["predictions"]), 3)
            seen += p["predictions"]
            pages += 1
            cursor = p["next_cursor"]
            if cursor is None:
                break
            self.assertLess(pages, 20, "the cursors never end")
        self.assertEqual(len(seen), 2 * n)
        self.assertEqual(len({e["id"] for e in seen}), 2 * n, "an entry came twice")
        order = [(datetime.datetime.fromisoformat(e["time"].replace("Z", "+00:00")), e["id"])
                 for e in seen]
        self.assertEqual(order, sorted(order, reverse=True))

        by_id = {e["id"]: e for e in seen}
        for a in answers:
            live, shadow = by_id[a["prediction_id"]], by_id[a["prediction_id"] + "-shadow"]
            # The arm the answer named ("live" for the instance without an entity).
            self.assertEqual((live["version"], live["arm"], live["shadow"], live["fallback"]),
                             (1, a["arm"], False, False), live)
            self.assertEqual(live["prediction"], a["prediction"], live)
            self.assertEqual((shadow["version"], shadow["arm"], shadow["shadow"]), (3, "shadow", True))
            self.assertNotEqual(shadow["prediction"], a["prediction"], shadow)
            self.assertIsNone(live["outcome"], live)

        # Outcomes: one naming a prediction (under another entity), one by entity.
        named, by_entity = answers[1], answers[2]
        post_facts(self, self.c, [
            fact(labels, uid("elsewhere"), {"y": 1.25, "prediction_id": named["prediction_id"]}),
            fact(labels, entities[2], {"y": 2.5})])
        p = page("?id=" + named["prediction_id"])
        self.assertEqual(sorted(e["id"] for e in p["predictions"]),
                         [named["prediction_id"], named["prediction_id"] + "-shadow"], p)
        # The id copied in upper case is the same id.
        self.assertEqual(page("?id=" + named["prediction_id"].upper()), p)
        for e in p["predictions"]:  # the shadow entry is joined to its answer's outcome
            self.assertEqual((e["outcome"]["value"], e["outcome"]["joined_by"]),
                             (1.25, "prediction_id"), e)
        self.assertIsNone(p["next_cursor"])
        # A shadow entry's id, as the log lists it, answers that entry alone
        # (it was a 400); its hex part may be in upper case too.
        shadow_id = named["prediction_id"] + "-shadow"
        p_shadow = page("?id=" + shadow_id)
        self.assertEqual([e["id"] for e in p_shadow["predictions"]], [shadow_id], p_shadow)
        self.assertEqual(p_shadow["predictions"][0], by_id[shadow_id] | {
            "outcome": p_shadow["predictions"][0]["outcome"]})
        self.assertEqual(page("?id=" + named["prediction_id"].upper() + "-shadow"), p_shadow)
        # Another arm's name, or one in another case, is another entry: none.
        for other in ("-main", "-Shadow", "-shadow2"):
            self.assertEqual(page("?id=" + named["prediction_id"] + other)["predictions"], [])
        p = page("?entity=" + entities[2])
        self.assertEqual({e["id"] for e in p["predictions"]},
                         {by_entity["prediction_id"], by_entity["prediction_id"] + "-shadow"}, p)
        for e in p["predictions"]:
            self.assertEqual((e["outcome"]["value"], e["outcome"]["joined_by"]), (2.5, "entity"), e)
        # entities[0] has two predictions: the single one and the batch's first.
        p = page("?entity=%s&limit=2" % entities[0])
        self.assertEqual(len(p["predictions"]), 2)
        self.assertEqual({e["entity"] for e in p["predictions"]}, {entities[0]})
        self.assertIsNotNone(p["next_cursor"])
        rest = page("?entity=%s&limit=2&cursor=%s" % (entities[0], p["next_cursor"]))
        self.assertEqual(len(rest["predictions"]), 2)
        self.assertIsNone(rest["next_cursor"])
        self.assertEqual(page("?id=%014x%s" % (int(time.time() * 1e6) - 10**9, "0" * 18))["predictions"], [])

        # Bad queries name the parameter; an unknown model is 404. A cursor's
        # tag names its list: this model's, every entity, no id.
        tag = "~" + hashlib.sha256(("predictions\0%s\0\0\0" % name).encode()).hexdigest()[:8]
        for query, field in (("?limit=0", "limit"), ("?limit=501", "limit"), ("?limit=x", "limit"),
                             ("?id=xyz", "id"), ("?id=" + "G" * 32, "id"),
                             # Only "<32 hex>-<arm name>" beside a plain id.
                             ("?id=%s-" % ("a" * 32), "id"), ("?id=%sx" % ("a" * 32), "id"),
                             ("?id=%s-a%%2Fb" % ("a" * 32), "id"),
                             ("?id=%s-%s" % ("a" * 32, "x" * 65), "id"),
                             ("?id=%s-shadow" % ("a" * 31), "id"),
                             # An entity no prediction can have.
                             ("?entity=", "entity"), ("?entity=" + "e" * 257, "entity"),
                             ("?cursor=abc", "cursor"), ("?cursor=12x.ab" + tag, "cursor"),
                             # Times past int64 were read as 0: an empty last page.
                             ("?limit=1&cursor=99999999999999999999.x" + tag, "cursor"),
                             ("?cursor=-99999999999999999999.x" + tag, "cursor"),
                             ("?cursor=.x" + tag, "cursor"),
                             # An id that is none read as an empty last page.
                             ("?cursor=1.zzzz" + tag, "cursor"), ("?cursor=-1.-1" + tag, "cursor"),
                             ("?cursor=1.%s%s" % ("A" * 32, tag), "cursor"),
                             ("?cursor=1.%sx%s" % ("a" * 32, tag), "cursor"),
                             # Untagged (from before cursors named their list).
                             ("?cursor=1.", "cursor"),
                             # Another list's: another entity's, or every entity's.
                             ("?entity=%s&cursor=%s" % (entities[1], p["next_cursor"]), "cursor"),
                             ("?cursor=%s" % p["next_cursor"], "cursor")):
            with self.subTest(query=query):
                self.assertErrorShape(self.c.get("/v1/models/%s/predictions%s" % (name, query)), 400,
                                      field=field)
        self.assertErrorShape(self.c.get("/v1/models/%s/predictions" % uid("nosuch")), 404)

    def test_prediction_log_read_back_names_the_classes(self):
        feats, labels, _ = load_data(self, self.c, 150, seed=15)
        name = uid("logcls")
        put_model(self, self.c, name, definition(feats, labels, task="binary"))
        self.assertEqual(train(self, self.c, name), 1)
        set_live(self, self.c, name, 1)
        a = predict(self, self.c, name, {"entity": "c1", "features": FEATURES})

        def logged():
            r = self.c.get("/v1/models/%s/predictions?id=%s" % (name, a["prediction_id"]))
            return r.status == 200 and r.json()["predictions"]
        entry = wait_until(logged, LOG_WAIT_S, "the prediction logged", interval=0.1)[0]
        self.assertEqual(entry["prediction"], a["prediction"], entry)
        self.assertEqual(entry["probabilities"], a["probabilities"], entry)
        self.assertEqual(set(entry["probabilities"]), {"true", "false"}, entry)

        # Outcomes the version cannot score (1 where it learned true, a
        # string) are counted apart, not dropped without a word.
        entities = ["u%d" % i for i in range(6)]
        for e in entities:
            predict(self, self.c, name, {"entity": e, "features": FEATURES})
        wait_until(lambda: sum(g["predictions"] for g in self.live_metrics(name)) >= 7,
                   LOG_WAIT_S, "the predictions logged", interval=0.1)
        post_facts(self, self.c, [fact(labels, e, {"b": v}) for e, v in
                                  zip(entities, (True, False, 1, 0, "yes", True))])
        g, = [g for g in self.live_metrics(name) if g["version"] == 1]
        self.assertEqual((g["outcomes"], g["unscored_outcomes"]), (3, 3), g)
        self.assertEqual(g["metrics"]["rows"], 3, g)


    def test_each_answer_reads_by_the_task_of_the_version_that_gave_it(self):
        # Version 1 binary, version 2 regression (the definition's task
        # changed): in the log, in live metrics and down the fallback chain,
        # an answer reads as its own version's, not as the live version's.
        name, feats, labels = two_tasks(self, self.c, "binary", "regression", seed=16)

        def check(p):
            if p["version"] == 1:
                self.assertIsInstance(p["prediction"], str, p)
                self.assertEqual(set(p["probabilities"]), {"true", "false"}, p)
                self.assertIn("decision", p)
            else:
                self.assertEqual(p["version"], 2, p)
                self.assertIsInstance(p["prediction"], float, p)
                self.assertNotIn("probabilities", p)

        # No experiment mixes them: an arm of another task than live's would
        # answer a number where live answers a class (and a class once the
        # arm fell back to live).
        r = self.c.post_json("/v1/models/%s/experiments" % name, {
            "reason": "binary against regression", "arms": [{"name": "b", "version": 1, "weight": 1},
                                                            {"name": "r", "version": 2, "weight": 1}]})
        self.assertErrorShape(r, 409, field="arms[1].version")
        self.assertIn("trained for regression, but the live version answers binary",
                      r.json()["error"]["message"])
        r = self.c.post_json("/v1/models/%s/experiments" % name, {
            "reason": "a regression shadow", "arms": [{"version": 1, "weight": 1},
                                                     {"version": 2, "shadow": True}]})
        self.assertErrorShape(r, 409, field="arms[1].version")
        # Live on each in turn: the log holds answers of both tasks.
        insts = [{"entity": "t%d" % i, "features": entity_features(i)} for i in range(60)]
        preds = predict(self, self.c, name, {"instances": insts[:30]})["predictions"]
        set_live(self, self.c, name, 2)
        preds += predict(self, self.c, name, {"instances": insts[30:]})["predictions"]
        self.assertEqual({p["version"] for p in preds}, {1, 2})
        for p in preds:
            check(p)
        # The log reads each back as given, though the definition is now
        # regression.
        for p in (next(p for p in preds if p["version"] == 2), next(p for p in preds if p["version"] == 1)):
            def logged():
                r = self.c.get("/v1/models/%s/predictions?id=%s" % (name, p["prediction_id"]))
                return r.status == 200 and r.json()["predictions"]
            entry = wait_until(logged, LOG_WAIT_S, "the prediction logged", interval=0.1)[0]
            self.assertEqual(entry["prediction"], p["prediction"], entry)
            self.assertEqual(entry.get("probabilities"), p.get("probabilities"), entry)

        # Outcomes carry both labels; each arm is scored by its own version's
        # task and label field: rmse on y for 2, classification on b for 1.
        db = open_db(self.server.db)
        self.addCleanup(db.close)
        ids = [p["prediction_id"] for p in preds]
        wait_until(lambda: db.execute(
            "SELECT count(*) FROM predictions WHERE id IN (%s)" % ",".join("?" * len(ids)),
            ids).fetchone()[0] == len(ids), LOG_WAIT_S, "predictions logged", interval=0.1)
        truth, predicted, outcomes = [], [], []
        for i, p in enumerate(preds):
            y, b = round(0.3 * i - 4, 3), i % 3 != 0
            outcomes.append(fact(labels, uid("out"), {"y": y, "b": b, "prediction_id": p["prediction_id"]}))
            if p["version"] == 2:
                truth.append(y)
                predicted.append(p["prediction"])
        post_facts(self, self.c, outcomes)
        groups = {g["version"]: g for g in self.live_metrics(name)}
        self.assertEqual(groups[2]["outcomes"], len(truth), groups)
        self.assertAlmostEqual(groups[2]["metrics"]["rmse"], regression_metrics(truth, predicted)["rmse"],
                               places=6, msg=groups)
        self.assertEqual(groups[1]["outcomes"], len(preds) - len(truth), groups)
        self.assertIn("accuracy", groups[1]["metrics"], groups)
        self.assertNotIn("rmse", groups[1]["metrics"], groups)

        # Live 2 (regression) disabled: the previous live version, 1, is
        # binary, no stand-in for it (a class would answer where the app
        # reads a number): the baseline answers, as a regression.
        r = self.c.post_json("/v1/models/%s/versions/2/disable" % name, {"reason": "test"})
        self.assertEqual(r.status, 200, r)
        p = predict(self, self.c, name, {"entity": "t1", "features": FEATURES})
        self.assertTrue(p["fallback"], p)
        self.assertEqual(p["answered_by"], "baseline", p)
        self.assertIsInstance(p["prediction"], float, p)
        self.assertNotIn("probabilities", p)

    def test_prediction_log_rows(self):
        feats, labels, rows = load_data(self, self.c, 150, seed=13)
        name = uid("log")
        put_model(self, self.c, name, definition(feats, labels))
        # Never trained: a logged fallback without a version.
        fb = predict(self, self.c, name, {"entity": "n1", "features": {"x1": 0.25}})
        self.assertTrue(fb["fallback"], fb)
        self.assertEqual(train(self, self.c, name), 1)
        set_live(self, self.c, name, 1)
        sent = [
            ("k1", {"x1": 0.25, "x2": -1.5, "color": "red"}),
            ("k2", {"x1": 0.25, "x2": -1.5, "color": "red"}),    # same features as k1
            ("k3", {"color": "blue", "x1": 2, "caption": "good dog"}),
            ("k4", {"x1": 1.5, "unknown": "ignored too"}),
        ]
        answers = [predict(self, self.c, name, {"entity": e, "features": f}) for e, f in sent]
        batch = predict(self, self.c, name, {"instances": [
            {"entity": "k5", "features": {"x2": 0.5}}, {"features": {"x1": -1}}]})["predictions"]

        db = open_db(self.server.db)
        self.addCleanup(db.close)
        ids = [fb["prediction_id"]] + [a["prediction_id"] for a in answers] + \
              [p["prediction_id"] for p in batch]
        got = {}

        def logged():
            q = db.execute("SELECT id, model, version, arm, shadow, entity, value, fallback, reason,"
                           " latency_us, features_hash, time FROM predictions WHERE id IN (%s)"
                           % ",".join("?" * len(ids)), ids)
            got.clear()
            got.update({r[0]: r for r in q})
            return len(got) == len(ids)
        wait_until(logged, LOG_WAIT_S, "the predictions in the predictions table", interval=0.1)

        row = got[fb["prediction_id"]]
        self.assertEqual(row[1:6], (name, None, "fallback", 0, "n1"), row)
        self.assertAlmostEqual(row[6], fb["prediction"], places=9)
        self.assertEqual((row[7], row[8]), (1, "not_trained -> label_prior"), row)
        self.assertEqual(row[10], features_hash({"x1": 0.25}), row)

        for (entity, features), a in zip(sent, answers):
            row = got[a["prediction_id"]]
            self.assertEqual(row[1:6], (name, 1, "live", 0, entity), row)
            self.assertEqual(row[6], a["prediction"], row)
            self.assertEqual(row[7], 0, row)
            self.assertIn(row[8], (None, ""), row)
            self.assertGreater(row[9], 0, row)
            self.assertLessEqual(abs(row[9] - a["latency_ms"] * 1000), 1, (row, a))
            # The hash of the features as sent (ignored ones included).
            self.assertEqual(row[10], features_hash(features), row)
        self.assertEqual(got[answers[0]["prediction_id"]][10], got[answers[1]["prediction_id"]][10])
        self.assertNotEqual(got[answers[0]["prediction_id"]][10],
                            got[answers[2]["prediction_id"]][10])
        row = got[batch[0]["prediction_id"]]
        self.assertEqual((row[2], row[3], row[5], row[10]), (1, "live", "k5", features_hash({"x2": 0.5})))
        self.assertIsNone(got[batch[1]["prediction_id"]][5], got[batch[1]["prediction_id"]])
        # Times are in order of the requests (microseconds since the epoch, now).
        times = [got[i][11] for i in ids]
        self.assertEqual(times[:5], sorted(times[:5]))
        self.assertLess(abs(times[-1] / 1e6 - time.time()), 60)

        # /v1/serving counts what was logged and dropped (a flush counts as
        # logged once the flusher has seen its commit succeed).
        log = wait_until(lambda: (lambda j: j if j["logged"] >= len(ids) else None)(
            self.c.get("/v1/serving").json()["prediction_log"]), 10, "the log's count")
        self.assertEqual(log["dropped"], 0, log)


class LoadedVersionsTest(KennelTestCase):
    """A server of its own: versions that stop being served (an experiment
    ended, a version disabled) are unloaded, so months of retraining do not
    keep every version ever served in memory."""

    def loaded(self, c):
        r = c.get("/v1/overview")
        self.assertEqual(r.status, 200, r)
        return r.json()["components"]["serving"]["loaded_versions"]

    def test_versions_no_longer_served_are_unloaded(self):
        server = self.start_server()
        c = self.client(server)
        name, _, _, _ = three_versions(self, c)
        self.assertEqual(self.loaded(c), 1)  # live: 1

        base = "/v1/models/%s/experiments" % name
        r = c.post_json(base, {"reason": "compare", "arms": [
            {"name": "a", "version": 1, "weight": 0.5}, {"name": "b", "version": 2, "weight": 0.5},
            {"name": "s", "version": 3, "shadow": True}]})
        self.assertEqual(r.status, 201, r)
        self.assertEqual(self.loaded(c), 3)
        r = c.post_json("%s/%d/end" % (base, r.json()["id"]), {"reason": "done"})
        self.assertEqual(r.status, 200, r)
        self.assertEqual(self.loaded(c), 1)

        set_live(self, c, name, 2)
        self.assertEqual(self.loaded(c), 2)  # live 2, previous 1
        r = c.post_json("/v1/models/%s/versions/1/disable" % name, {"reason": "retired"})
        self.assertEqual(r.status, 200, r)
        self.assertEqual(self.loaded(c), 1)

        # An unloaded version comes back when it is served again.
        r = c.post_json("/v1/models/%s/versions/1/enable" % name, {"reason": "back"})
        self.assertEqual(r.status, 200, r)
        set_live(self, c, name, 3)
        p = predict(self, c, name, {"entity": "e1", "features": FEATURES})
        self.assertEqual((p["version"], p["fallback"]), (3, False), p)
        set_live(self, c, name, 1)
        p = predict(self, c, name, {"entity": "e1", "features": FEATURES})
        self.assertEqual((p["version"], p["fallback"]), (1, False), p)
        # Moving live back to 1 stepped back past 3 and 2: neither is in the
        # fallback chain any more, so only 1 stays loaded.
        self.assertEqual(self.loaded(c), 1)
        set_live(self, c, name, 3)
        self.assertEqual(self.loaded(c), 2)  # live 3, previous 1


if __name__ == "__main__":
    unittest.main()
