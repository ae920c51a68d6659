"""Integration tests for learning: model definitions and their revisions,
point-in-time training sets, the deterministic holdout split, training on the
background worker for every task and algorithm, the publish gate, aliases and
their deployment history, degenerate data, the retrain scheduler, cancelling
jobs, `kennel serve --demo` and `kennel train`.

The real binary on a free loopback port with a temporary database, over real
HTTP (see kennel_harness.py). Every wait is bounded. Each test uses its own
streams and models, so tests on the shared server do not see each other.
"""

import datetime
import json
import os
import random
import re
import sqlite3
import time
import unittest

import kennel_harness
from kennel_harness import (Client, KennelTestCase, fact, in_holdout, open_db, run_cli, uid,
                            wait_until)
from test_predict import set_live, wait_served

FINISHED = ("succeeded", "failed", "timed_out", "cancelled", "interrupted")
JOB_TIMEOUT_S = 90
BASE = datetime.datetime(2026, 11, 20, 10, 0, 0, tzinfo=datetime.timezone.utc)
SHA256_RE = re.compile(r"^[0-9a-f]{64}$")
# The harness authenticates as the admin user (HTTP Basic); writes record it.
ACTOR = "admin"

BINARY_METRICS = {"accuracy", "precision", "recall", "f1", "roc_auc", "pr_auc", "log_loss",
                  "confusion", "best_threshold"}
MULTICLASS_METRICS = {"accuracy", "precision", "recall", "f1", "log_loss", "confusion"}
REGRESSION_METRICS = {"rmse", "mae", "r2"}


# ----------------------------------------------------------------- helpers

def at(hours=0.0, seconds=0):
    """RFC 3339 time `hours` and `seconds` after 2026-11-20T10:00:00Z."""
    t = BASE + datetime.timedelta(hours=hours, seconds=seconds)
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


COLORS = ("red", "green", "blue")


def synthetic(task, n=300, seed=1):
    """[(entity, feature data, label)] with a learnable signal: two numbers
    and a colour. binary: a boolean; multiclass: "a"/"b"/"c"; regression: a
    number."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        x1, x2, noise = rng.gauss(0, 1), rng.gauss(0, 1), rng.gauss(0, 1)
        color = COLORS[i % 3]
        if task == "binary":
            y = (x1 + 0.5 * x2 + 0.3 * noise) > 0
        elif task == "multiclass":
            y = "a" if x1 + 0.2 * noise > 0.5 else ("b" if x2 > 0 else "c")
        else:
            y = round(3 * x1 - 2 * x2 + {"red": 1, "green": 0, "blue": -1}[color] + 5
                      + 0.3 * noise, 4)
        rows.append(("e%04d" % i, {"x1": round(x1, 4), "x2": round(x2, 4), "color": color}, y))
    return rows


def post_facts(test, c, facts):
    """Stores facts (batches of 2,000); asserts none was rejected. Returns the ids."""
    ids = []
    for i in range(0, len(facts), 2000):
        r = c.post_json("/v1/facts", facts[i:i + 2000])
        test.assertEqual(r.status, 200, r)
        body = r.json()
        test.assertEqual(body["rejected"], 0, r)
        ids += [it["id"] for it in body["items"]]
    return ids


def load_rows(test, c, feat_stream, label_stream, rows, field="y", feature_hours=0.0,
              label_hours=1.0):
    """Each row as a feature fact at BASE+feature_hours (+i s) and, unless its
    label is None, a label fact at BASE+label_hours (+i s). Returns the ids."""
    facts = []
    for i, (entity, data, y) in enumerate(rows):
        facts.append(fact(feat_stream, entity, data, time_=at(feature_hours, i)))
        if y is not None:
            facts.append(fact(label_stream, entity, {field: y}, time_=at(label_hours, i)))
    return post_facts(test, c, facts)


def definition(task, feats, labels, algorithm="linear", features=None, field="y", **extra):
    d = {"task": task, "features_from": feats, "label": {"stream": labels, "field": field},
         "features": features if features is not None else [
             {"field": "x1"}, {"field": "x2"}, {"field": "color", "transform": "category"}],
         "algorithm": algorithm}
    d.update(extra)
    return d


def put_model(test, c, name, d, expect=(200, 201)):
    r = c.request("PUT", "/v1/models/" + name, json_body=d)
    test.assertIn(r.status, expect, r)
    return r


def queue_training(test, c, name):
    r = c.post("/v1/models/%s/train" % name)
    test.assertEqual(r.status, 202, r)
    body = r.json()
    test.assertEqual(body["model"], name, r)
    test.assertEqual(body["state"], "queued", r)
    test.assertEqual(body["url"], "/v1/jobs/%d" % body["job"], r)
    return body["job"]


def get_job(test, c, job_id):
    r = c.get("/v1/jobs/%d" % job_id)
    test.assertEqual(r.status, 200, r)
    return r.json()


def wait_job(test, c, job_id, timeout=JOB_TIMEOUT_S, states=None):
    """Polls the job until it finishes (bounded); returns it with its log.
    `states` (a list) collects the distinct states seen, in order."""
    deadline = time.monotonic() + timeout
    while True:
        j = get_job(test, c, job_id)
        if states is not None and (not states or states[-1] != j["state"]):
            states.append(j["state"])
        if j["state"] in FINISHED:
            return j
        if time.monotonic() > deadline:
            raise AssertionError("job %d still %s after %ss: %s"
                                 % (job_id, j["state"], timeout, json.dumps(j)[:2000]))
        time.sleep(0.05)


def joined_group(test, c, name, outcomes, version=1, arm=None, timeout=30):
    """The model's live-metrics group of `version` (or of `arm`), once
    `outcomes` outcomes are joined to it (bounded)."""
    def group():
        r = c.get("/v1/models/%s/live-metrics" % name)
        test.assertEqual(r.status, 200, r)
        gs = [g for g in r.json()["groups"]
              if (g["arm"] == arm if arm is not None else g["version"] == version)]
        return gs[0] if gs and gs[0]["outcomes"] == outcomes else None
    return wait_until(group, timeout, "%d outcomes joined" % outcomes)


def log_text(job):
    return "\n".join("%s: %s" % (l["level"], l["message"]) for l in job["log"])


def get_version(test, c, name, n):
    r = c.get("/v1/models/%s/versions/%d" % (name, n))
    test.assertEqual(r.status, 200, r)
    return r.json()


def aliases_of(test, c, name):
    r = c.get("/v1/models/%s/aliases" % name)
    test.assertEqual(r.status, 200, r)
    return {a["alias"]: a["version"] for a in r.json()["aliases"]}


def deployments_of(test, c, name):
    r = c.get("/v1/models/%s/deployments" % name)
    test.assertEqual(r.status, 200, r)
    return r.json()["deployments"]


def train_and_wait(test, c, name, timeout=JOB_TIMEOUT_S):
    return wait_job(test, c, queue_training(test, c, name), timeout)


def assert_definition_errors(test, r, fields, status=400):
    """One 400 answer listing every problem by field in error.details."""
    test.assertEqual(r.status, status, r)
    err = r.json()["error"]
    test.assertEqual(err["code"], "invalid_argument", r)
    details = err.get("details")
    test.assertIsInstance(details, list, r)
    got = [d["field"] for d in details]
    test.assertEqual(sorted(got), sorted(fields), r)
    for d in details:
        test.assertIsInstance(d["message"], str, r)
        test.assertTrue(d["message"], r)
    test.assertEqual(err["field"], details[0]["field"], r)
    if len(fields) > 1:
        test.assertIn("%d problems" % len(fields), err["message"], r)
    return {d["field"]: d["message"] for d in details}


class SharedServerCase(kennel_harness.SharedServerCase):
    """The shared server, with helpers for streams and models of the
    learning suite."""

    tmp_prefix = "kennel-learn-"

    def streams(self, rows, task="regression", **kw):
        """Loads rows into two fresh streams; returns (features, labels, ids)."""
        f, l = uid("feat"), uid("lab")
        ids = load_rows(self, self.c, f, l, rows, **kw)
        return f, l, ids


# ------------------------------------------------------- model definitions

class DefinitionTest(SharedServerCase):

    def test_put_creates_then_revises_only_on_change(self):
        f, l, _ = self.streams(synthetic("regression", 40))
        name = uid("defs")
        d = definition("regression", f, l)
        r = put_model(self, self.c, name, d)
        self.assertEqual(r.status, 201, r)
        body = r.json()
        self.assertEqual((body["model"], body["revision"], body["created"], body["new_revision"]),
                         (name, 1, True, True), r)
        self.assertEqual(r.header("Location"), "/v1/models/" + name, r)
        canonical = body["definition"]
        # Defaults are filled in.
        self.assertEqual(canonical["holdout"], 0.2)
        self.assertEqual(canonical["algorithm"], "linear")
        self.assertEqual(canonical["features"][0]["transform"], "numeric")
        self.assertEqual(canonical["features"][2]["transform"], "category")
        self.assertEqual(canonical["promotion"]["mode"], "auto")
        self.assertEqual(canonical["retrain"], "manual")

        # The same definition again: no new revision.
        r = put_model(self, self.c, name, d)
        self.assertEqual(r.status, 200, r)
        self.assertEqual((r.json()["revision"], r.json()["created"], r.json()["new_revision"]),
                         (1, False, False), r)
        # The same meaning in another key order with defaults spelt out: still the same.
        same = dict(reversed(list(d.items())))
        same["holdout"] = 0.2
        same["features"] = [{"transform": "numeric", "field": "x1"}, {"field": "x2"},
                            {"field": "color", "transform": "category", "top_n": 50}]
        r = put_model(self, self.c, name, same)
        self.assertEqual((r.status, r.json()["revision"], r.json()["new_revision"]),
                         (200, 1, False), r)

        # A change makes revision 2.
        changed = dict(d, holdout=0.3)
        r = put_model(self, self.c, name, changed)
        self.assertEqual(r.status, 200, r)
        self.assertEqual((r.json()["revision"], r.json()["created"], r.json()["new_revision"]),
                         (2, False, True), r)

        r = self.c.get("/v1/models")
        self.assertEqual(r.status, 200, r)
        listed = {m["name"]: m for m in r.json()["models"]}
        self.assertIn(name, listed)
        m = listed[name]
        self.assertEqual((m["task"], m["revision"], m["aliases"], m["versions"], m["last_job"]),
                         ("regression", 2, {}, 0, None), m)

        r = self.c.get("/v1/models/" + name)
        self.assertEqual(r.status, 200, r)
        m = r.json()
        self.assertEqual(m["name"], name)
        self.assertEqual(m["revision"], 2)
        self.assertEqual(m["definition"]["holdout"], 0.3)
        self.assertEqual(m["definition"]["features_from"], f)
        self.assertEqual(m["definition"]["label"], {"stream": l, "field": "y"})
        self.assertEqual((m["aliases"], m["versions"], m["recent_jobs"]), ({}, 0, []))

        r = self.c.get("/v1/models/%s/revisions" % name)
        self.assertEqual(r.status, 200, r)
        revs = r.json()["revisions"]
        self.assertEqual([x["revision"] for x in revs], [1, 2], r)
        self.assertEqual([x["definition"]["holdout"] for x in revs], [0.2, 0.3], r)
        self.assertEqual(revs[0]["definition"], canonical)
        self.assertTrue(all(x["author"] == ACTOR for x in revs), r)

        # A job trains the current revision.
        job = train_and_wait(self, self.c, name)
        self.assertEqual(job["state"], "succeeded", job)
        self.assertEqual(job["revision"], 2, job)
        self.assertEqual(get_version(self, self.c, name, 1)["revision"], 2)

    def test_unknown_model_and_bad_name(self):
        name = uid("nosuch")
        for path in ("/v1/models/" + name, "/v1/models/%s/revisions" % name,
                     "/v1/models/%s/versions" % name, "/v1/models/%s/jobs" % name,
                     "/v1/models/%s/deployments" % name):
            r = self.c.get(path)
            self.assertEqual(r.status, 404, (path, r))
            self.assertEqual(r.json()["error"]["code"], "not_found", r)
        r = self.c.post("/v1/models/%s/train" % name)
        self.assertEqual(r.status, 404, r)
        r = self.c.get("/v1/models/%s/versions/1" % name)
        self.assertEqual(r.status, 404, r)
        r = self.c.request("PUT", "/v1/models/bad*name", json_body={"task": "binary"})
        self.assertEqual(r.status, 400, r)
        self.assertEqual(r.json()["error"]["field"], "name", r)
        r = self.c.get("/v1/jobs/99999999")
        self.assertEqual(r.status, 404, r)
        self.assertEqual(r.json()["error"]["code"], "not_found", r)
        r = self.c.get("/v1/jobs/abc")
        self.assertEqual(r.status, 400, r)
        self.assertEqual(r.json()["error"]["field"], "id", r)

    def test_validation_reports_every_problem_by_field(self):
        f, l, _ = self.streams(synthetic("regression", 20))
        # A text field in the label stream, for the regression-label check.
        post_facts(self, self.c, [fact(l, "e0000", {"kind": "tall"}, time_=at(2))])
        name = uid("invalid")

        # Everything wrong at once that can be seen without data.
        r = self.c.request("PUT", "/v1/models/" + name, json_body={
            "task": "banana", "features_from": f, "label": {"stream": l, "field": "y"},
            "features": [{"field": "x1", "transform": "sqrt"},
                         {"field": "x2", "transform": "bucketize"}],
            "colour": "red",
            "promotion": {"thresholds": {"bogus_metric": 0.5}}})
        msgs = assert_definition_errors(self, r, [
            "task", "features[0].transform", "features[1].edges", "colour",
            "promotion.thresholds.bogus_metric"])
        self.assertIn("banana", msgs["task"])
        self.assertIn("sqrt", msgs["features[0].transform"])
        self.assertIn("edges", msgs["features[1].edges"])
        self.assertIn("unknown field", msgs["colour"])
        self.assertIn("unknown metric", msgs["promotion.thresholds.bogus_metric"])

        # Several problems in the features' parameters: each at its own field.
        r = self.c.request("PUT", "/v1/models/" + name, json_body={
            "task": "regression", "features_from": f, "label": {"stream": l, "field": "y"},
            "features": [{"field": "x1", "transform": "bucketize", "edges": [3, 1]},
                         {"field": "x2"}, {"field": "x2"}]})
        msgs = assert_definition_errors(self, r, ["features[0].edges", "features[2]"])
        self.assertIn("strictly increasing", msgs["features[0].edges"])
        self.assertIn("duplicate", msgs["features[2]"])

        # A real metric of another task is unknown for this one.
        r = self.c.request("PUT", "/v1/models/" + name, json_body=definition(
            "binary", f, l, promotion={"thresholds": {"rmse": 1.0, "roc_auc": 0.7}}))
        # (l's labels are regression's: refused for a binary model too.)
        msgs = assert_definition_errors(self, r, ["label.field", "promotion.thresholds.rmse"])
        self.assertIn("binary", msgs["promotion.thresholds.rmse"])

        # Streams with no facts: both named.
        r = self.c.request("PUT", "/v1/models/" + name, json_body=definition(
            "regression", uid("nofeat"), uid("nolab")))
        msgs = assert_definition_errors(self, r, ["features_from", "label.stream"])
        self.assertIn("no facts", msgs["features_from"])
        self.assertIn("no facts", msgs["label.stream"])

        # Fields no fact has: the label's and a feature's (label on the feature stream).
        r = self.c.request("PUT", "/v1/models/" + name, json_body={
            "task": "regression", "features_from": f, "label": {"field": "nosuch"},
            "features": [{"field": "x1"}, {"field": "nope"}]})
        msgs = assert_definition_errors(self, r, ["label.field", "features[1].field"])
        self.assertIn("nosuch", msgs["label.field"])
        self.assertIn("nope", msgs["features[1].field"])

        # Keys SQLite's JSON paths cannot name as stored (escaped in the
        # JSON): refused by name. "a\\b" was accepted and trained on nothing.
        r = self.c.request("PUT", "/v1/models/" + name, json_body={
            "task": "regression", "features_from": f, "label": {"stream": l, "field": "y\\z"},
            "features": [{"field": "x1"}, {"field": "a\tb"}]})
        msgs = assert_definition_errors(self, r, ["label.field", "features[1].field"])
        self.assertIn("backslash", msgs["label.field"])
        self.assertIn("control character", msgs["features[1].field"])

        # A text label for a regression.
        r = self.c.request("PUT", "/v1/models/" + name,
                           json_body=definition("regression", f, l, field="kind"))
        msgs = assert_definition_errors(self, r, ["label.field"])
        self.assertIn("must be a number", msgs["label.field"])

        # True/false labels for a multiclass model: accepted, it could never
        # train, and its label prior (the last fallback) was gone too.
        b = uid("boollab")
        post_facts(self, self.c, [fact(b, "e0000", {"ok": True}, time_=at(3)),
                                  fact(b, "e0001", {"ok": False}, time_=at(3))])
        r = self.c.request("PUT", "/v1/models/" + name,
                           json_body=definition("multiclass", f, b, field="ok"))
        msgs = assert_definition_errors(self, r, ["label.field"])
        self.assertIn("holds true/false values; a multiclass label must be a string or an integer",
                      msgs["label.field"])

        # Labels a binary model could never train on: numbers other than 0
        # and 1 (regression's y was accepted, and only its job failed), and
        # more than two strings. Two strings, and 0/1 as reals, are binary.
        r = self.c.request("PUT", "/v1/models/" + name, json_body=definition("binary", f, l))
        msgs = assert_definition_errors(self, r, ["label.field"])
        self.assertRegex(msgs["label.field"],
                         r"hold the number -?[0-9.e+-]+; a binary label's numbers are 0 or 1")
        s3 = uid("threelab")
        post_facts(self, self.c, [fact(s3, "e0000", {"k": "a", "z": 1.0}, time_=at(3)),
                                  fact(s3, "e0001", {"k": "b", "z": 0.0}, time_=at(3)),
                                  fact(s3, "e0002", {"k": "c", "z": 1}, time_=at(3))])
        r = self.c.request("PUT", "/v1/models/" + name,
                           json_body=definition("binary", f, s3, field="k"))
        msgs = assert_definition_errors(self, r, ["label.field"])
        self.assertIn('hold 3 classes ("a", "b", "c"); a binary label has two',
                      msgs["label.field"])
        ok = uid("binok")
        r = self.c.request("PUT", "/v1/models/" + ok,
                           json_body=definition("binary", f, s3, field="z"))
        self.assertEqual(r.status, 201, r)

        # The label field as a feature of its own stream: the model would
        # read its answer (it scored a perfect holdout and went live).
        post_facts(self, self.c, [fact(l, "e0000", {"y": 1.0, "x1": 0.5}, time_=at(3))])
        r = self.c.request("PUT", "/v1/models/" + name, json_body={
            "task": "regression", "features_from": l, "label": {"stream": l, "field": "y"},
            "features": [{"field": "x1"}, {"field": "y"}]})
        msgs = assert_definition_errors(self, r, ["features[1].field"])
        self.assertIn("label field", msgs["features[1].field"])

        # A parameter of another transform, and a gamma past the trainers' bound.
        r = self.c.request("PUT", "/v1/models/" + name, json_body=definition(
            "regression", f, l, params={"gamma": 1e7},
            features=[{"field": "x1", "edges": [0, 1]}]))
        msgs = assert_definition_errors(self, r, ["features[0].edges", "params.gamma"])
        self.assertIn("bucketize", msgs["features[0].edges"])

        # Edges beyond 10,000: each is a column every prediction writes.
        r = self.c.request("PUT", "/v1/models/" + name, json_body=definition(
            "regression", f, l,
            features=[{"field": "x1", "transform": "bucketize", "edges": list(range(10001))}]))
        msgs = assert_definition_errors(self, r, ["features[0].edges"])
        self.assertIn("at most 10000 edges (10001 given)", msgs["features[0].edges"])

        # Malformed JSON.
        r = self.c.request("PUT", "/v1/models/" + name, body='{"task": "binary",',
                           headers={"Content-Type": "application/json"})
        self.assertEqual(r.status, 400, r)
        err = r.json()["error"]
        self.assertEqual(err["code"], "invalid_argument", r)
        self.assertIn("malformed JSON", err["message"], r)
        self.assertEqual(len(err["details"]), 1, r)

        # Not JSON at all.
        r = self.c.request("PUT", "/v1/models/" + name, body=json.dumps(definition(
            "regression", f, l)), headers={"Content-Type": "text/plain"})
        self.assertEqual(r.status, 415, r)
        self.assertEqual(r.json()["error"]["code"], "unsupported_media_type", r)
        self.assertEqual(r.json()["error"]["field"], "Content-Type", r)

        # Nothing was written by any of them.
        self.assertEqual(self.c.get("/v1/models/" + name).status, 404)
        # And a valid definition on the same data is accepted.
        put_model(self, self.c, name, definition("regression", f, l), expect=(201,))

    def test_syntax_and_data_problems_are_reported_together(self):
        f, l, _ = self.streams(synthetic("regression", 20))
        name = uid("invalid2")
        # An unknown transform on one feature, and a field no fact has on another
        # and on the label: three problems, all in one answer.
        r = self.c.request("PUT", "/v1/models/" + name, json_body=definition(
            "regression", f, l, field="nosuch",
            features=[{"field": "x1", "transform": "sqrt"}, {"field": "nope"}]))
        assert_definition_errors(self, r, ["features[0].transform", "features[1].field",
                                           "label.field"])


# ------------------------------------------------------------ training sets

class TrainingSetTest(SharedServerCase):

    def test_point_in_time_a_late_fact_never_leaks(self):
        """Each entity has a feature fact before its label; half of them also
        have a LATE feature fact (after the label) with the unique colour
        FUTURE and an absurd x, stored first so it has the lower id. A model
        whose labels come before the late facts must not see FUTURE; a control
        model whose labels come after them must (so the test can fail)."""
        feats, early_labels, late_labels = uid("pit-f"), uid("pit-l"), uid("pit-l2")
        rng = random.Random(5)
        late, facts = [], []
        rows = []
        for i in range(80):
            e = "p%03d" % i
            x = round(rng.uniform(0, 10), 3)
            color = ("red", "blue")[i % 2]
            y = round(2 * x + (3 if color == "red" else 0) + rng.gauss(0, 0.2), 3)
            rows.append((i, e, x, color, y))
            if i % 2 == 0:
                late.append(fact(feats, e, {"x": 1e6, "color": "FUTURE"}, time_=at(2, i)))
        late_ids = post_facts(self, self.c, late)  # stored first: lower ids
        for i, e, x, color, y in rows:
            facts.append(fact(feats, e, {"x": x, "color": color}, time_=at(0, i)))
            facts.append(fact(early_labels, e, {"y": y}, time_=at(1, i)))
            facts.append(fact(late_labels, e, {"y": y}, time_=at(3, i)))
        ids = post_facts(self, self.c, facts)
        self.assertLess(max(late_ids), min(ids))

        features = [{"field": "x"}, {"field": "color", "transform": "category"}]
        early, control = uid("pit"), uid("pit-control")
        put_model(self, self.c, early, definition("regression", feats, early_labels,
                                                  features=features))
        put_model(self, self.c, control, definition("regression", feats, late_labels,
                                                    features=features))
        job = train_and_wait(self, self.c, early)
        self.assertEqual(job["state"], "succeeded", job)
        v = get_version(self, self.c, early, job["version"])
        names = v["features"]["names"]
        self.assertNotIn("category-color=FUTURE", names, v["features"])
        self.assertIn("category-color=red", names, v["features"])
        self.assertIn("category-color=blue", names, v["features"])
        snap = v["snapshot"]
        # The late facts were inside the snapshot, and still not used.
        self.assertGreaterEqual(snap["max_fact_id"], max(ids), snap)
        self.assertEqual(snap["train_rows"] + snap["test_rows"], 80, snap)
        self.assertEqual(snap["labelled_entities"], 80, snap)
        self.assertEqual(snap["without_features"], 0, snap)
        # x = 1e6 for half of the rows would wreck the fit; the clean rows fit well.
        self.assertGreater(v["metrics"]["r2"], 0.95, v["metrics"])

        job = train_and_wait(self, self.c, control)
        self.assertEqual(job["state"], "succeeded", job)
        v = get_version(self, self.c, control, job["version"])
        self.assertIn("category-color=FUTURE", v["features"]["names"], v["features"])

    def test_labels_without_earlier_features_are_skipped_and_counted(self):
        rows = synthetic("regression", 60, seed=3)
        f, l, _ = self.streams(rows)
        # Ten more labelled entities whose only feature fact comes after the label.
        extra = []
        for i in range(10):
            extra.append(fact(f, "late%02d" % i, {"x1": 0.5, "x2": 0.5, "color": "red"},
                              time_=at(5, i)))
            extra.append(fact(l, "late%02d" % i, {"y": 99.0}, time_=at(1, i)))
        post_facts(self, self.c, extra)
        name = uid("skip")
        put_model(self, self.c, name, definition("regression", f, l))
        job = train_and_wait(self, self.c, name)
        self.assertEqual(job["state"], "succeeded", job)
        snap = get_version(self, self.c, name, job["version"])["snapshot"]
        self.assertEqual(snap["labelled_entities"], 70, snap)
        self.assertEqual(snap["without_features"], 10, snap)
        self.assertEqual(snap["train_rows"] + snap["test_rows"], 60, snap)
        self.assertIn("10 labelled entities have no feature fact", log_text(job))

    def test_holdout_split_is_deterministic_and_stored(self):
        rows = synthetic("regression", 200, seed=11)
        f, l, _ = self.streams(rows)
        name = uid("split")
        put_model(self, self.c, name, definition("regression", f, l, holdout=0.3,
                                                 promotion={"mode": "manual"}))
        expected_test = sum(1 for e, _, _ in rows if in_holdout(e, 0.3))
        self.assertTrue(30 < expected_test < 90, expected_test)
        snaps = []
        for _ in range(2):
            job = train_and_wait(self, self.c, name)
            self.assertEqual(job["state"], "succeeded", job)
            snaps.append(get_version(self, self.c, name, job["version"])["snapshot"])
        a, b = snaps
        self.assertEqual(a["split_rule"], "fmix64(fnv1a64(entity)) / 2^64 < 0.3", a)
        for key in ("train_rows", "test_rows", "split_rule", "max_fact_id"):
            self.assertEqual(a[key], b[key], (key, a, b))
        self.assertEqual(a["test_rows"], expected_test, a)
        self.assertEqual(a["train_rows"], 200 - expected_test, a)
        self.assertGreater(a["probe_rows_verified"], 0, a)


class TimeHoldoutTest(SharedServerCase):
    """"holdout": {"share", "by": "time"}: the newest labels are the holdout."""

    def test_the_newest_labels_are_the_holdout_and_live_is_compared_after_its_cut(self):
        rows = synthetic("regression", 250, seed=21)
        f, l = uid("feat"), uid("lab")
        # Labels a second apart from 11:00:00: the newest 40 of 200 from 11:02:40.
        load_rows(self, self.c, f, l, rows[:200])
        name = uid("by-time")
        d = definition("regression", f, l, algorithm="auto", search={"budget_seconds": 3},
                       holdout={"share": 0.2, "by": "time"})
        put_model(self, self.c, name, d, expect=(201,))
        self.assertEqual(self.c.get("/v1/models/" + name).json()["definition"]["holdout"],
                         {"share": 0.2, "by": "time"})
        j = train_and_wait(self, self.c, name)
        self.assertEqual((j["state"], j["version"]), ("succeeded", 1), j)
        snap = get_version(self, self.c, name, 1)["snapshot"]
        self.assertEqual(snap["split_rule"],
                         "label time >= 2026-11-20T11:02:40Z (share 0.2 asked: 40 of 200 labelled rows)", snap)
        self.assertEqual(snap["holdout_from"], "2026-11-20T11:02:40Z", snap)
        self.assertEqual((snap["train_rows"], snap["test_rows"]), (160, 40), snap)
        self.assertIn("3-fold cross-validation forward in time (each fold trained on the rows "
                      "before it) on 160 rows", log_text(j))
        # Trained again on the same facts: the same holdout, v1's own, all compared.
        j = train_and_wait(self, self.c, name)
        self.assertEqual(j["state"], "succeeded", j)
        gate = get_version(self, self.c, name, j["version"])["gate"]
        self.assertEqual(gate["live_version"], 1, gate)
        self.assertIsNotNone(gate["live_metrics"], gate)
        self.assertNotIn("live_rows", gate)
        self.assertIsNone(gate["live_not_compared"], gate)
        # The search stops at its time budget, so under load it may pick
        # another model that beats version 1 and goes live (a CI run beside
        # other work did): what follows is about version 1's holdout.
        set_live(self, self.c, name, 1, "compare with version 1")

        # 50 newer labels, and a holdout of 0.4: the newest 100 of 250, of
        # which the 10 labelled from 11:02:30 to 11:02:39 were live's to train on.
        load_rows(self, self.c, f, l, rows[200:], feature_hours=1.5, label_hours=2.0)
        put_model(self, self.c, name, dict(d, algorithm="linear",
                                           holdout={"share": 0.4, "by": "time"}))
        j = train_and_wait(self, self.c, name)
        self.assertEqual(j["state"], "succeeded", j)
        v2 = get_version(self, self.c, name, j["version"])
        self.assertEqual(v2["snapshot"]["holdout_from"], "2026-11-20T11:02:30Z", v2["snapshot"])
        self.assertEqual(v2["snapshot"]["test_rows"], 100, v2["snapshot"])
        gate = v2["gate"]
        self.assertEqual(gate["live_version"], 1, gate)
        self.assertEqual(gate["live_rows"], 90, gate)
        self.assertIn("live version 1 trained on 10 of 100 holdout rows (its holdout began at "
                      "label time 2026-11-20T11:02:40Z); compared with it on the others only",
                      log_text(j))

        # An entity split's snapshot says it has no cut.
        put_model(self, self.c, name, dict(d, algorithm="linear", holdout=0.2))
        j = train_and_wait(self, self.c, name)
        self.assertEqual(j["state"], "succeeded", j)
        snap = get_version(self, self.c, name, j["version"])["snapshot"]
        self.assertIsNone(snap["holdout_from"], snap)
        self.assertEqual(snap["split_rule"], "fmix64(fnv1a64(entity)) / 2^64 < 0.2", snap)

    def test_entities_live_learned_from_stay_out_of_its_comparison_though_labelled_again(self):
        rows = synthetic("regression", 100, seed=24)
        f, l, _ = self.streams(rows)  # labels at 11:00:00 + i s
        name = uid("by-time-relabel")
        d = definition("regression", f, l, holdout={"share": 0.2, "by": "time"})
        put_model(self, self.c, name, d, expect=(201,))
        j = train_and_wait(self, self.c, name)
        self.assertEqual((j["state"], j["version"]), ("succeeded", 1), j)
        self.assertEqual(aliases_of(self, self.c, name), {"live": 1})
        # The first 30 entities, all on v1's training side, labelled again
        # (the same values, later): the newest 20 rows are 20 of them.
        post_facts(self, self.c, [fact(l, e, {"y": y}, time_=at(3, i))
                                  for i, (e, _, y) in enumerate(rows[:30])])
        j = train_and_wait(self, self.c, name)
        self.assertEqual((j["state"], j["version"]), ("succeeded", 2), j)
        gate = get_version(self, self.c, name, 2)["gate"]
        self.assertEqual(gate["live_version"], 1, gate)
        self.assertIsNone(gate["live_metrics"], gate)
        self.assertEqual(gate["live_not_compared"],
                         "every holdout row is on its own training side (its holdout began at "
                         "label time 2026-11-20T11:01:20Z)", gate)
        # The gate cannot say it beats live: a person decides.
        self.assertTrue(gate["passed"], gate)
        self.assertEqual(aliases_of(self, self.c, name), {"live": 1, "candidate": 2})
        self.assertIn("live v1 could not be compared with it: every holdout row is on its own "
                      "training side (its holdout began at label time 2026-11-20T11:01:20Z): not "
                      "published; promote it by hand", log_text(j))
        # With 0.4, the newest 40: the 30 relabelled and 10 live never saw.
        put_model(self, self.c, name, dict(d, holdout={"share": 0.4, "by": "time"}))
        j = train_and_wait(self, self.c, name)
        self.assertEqual(j["state"], "succeeded", j)
        gate = get_version(self, self.c, name, j["version"])["gate"]
        self.assertEqual(gate["live_rows"], 10, gate)
        self.assertIsNone(gate["live_not_compared"], gate)
        self.assertIn("live version 1 trained on 30 of 40 holdout rows", log_text(j))

    def test_a_live_version_disabled_before_the_job_holds_the_candidate_back(self):
        # The gate compares with live, not with the version the fallback
        # chain answers with in its place: a version seven times worse than
        # that one was published over a disabled live.
        rows = synthetic("regression", 130, seed=25)
        f, l, _ = self.streams(rows[:100])
        name = uid("by-time-disabled")
        weak = definition("regression", f, l, features=[{"field": "x2"}],
                          holdout={"share": 0.2, "by": "time"})
        put_model(self, self.c, name, weak, expect=(201,))
        self.assertEqual(train_and_wait(self, self.c, name)["version"], 1)
        post_facts(self, self.c, [fact(l, e, {"y": y}, time_=at(3, i))
                                  for i, (e, _, y) in enumerate(rows[:30])])
        r = self.c.post_json("/v1/models/%s/versions/1/disable" % name, {"reason": "test"})
        self.assertEqual(r.status, 200, r)
        j = train_and_wait(self, self.c, name)
        self.assertEqual((j["state"], j["version"]), ("succeeded", 2), j)
        gate = get_version(self, self.c, name, 2)["gate"]
        self.assertIsNotNone(gate["live_not_compared"], gate)
        self.assertTrue(gate["live_disabled_at_start"], gate)
        self.assertIn("; live v1 not compared: every holdout row is on its own training side",
                      gate["summary"])
        self.assertIn("live v1 was out of service when this job began (the gate compared with "
                      "it, not with the version answering in its place): not published; promote "
                      "it by hand", log_text(j))
        self.assertEqual(aliases_of(self, self.c, name), {"live": 1, "candidate": 2})
        # Compared this time (30 entities new since v1, the newest labels),
        # and better: still a person's choice while live is out of service.
        load_rows(self, self.c, f, l, rows[100:], feature_hours=3.5, label_hours=4.0)
        put_model(self, self.c, name, dict(weak, features=[{"field": "x1"}, {"field": "x2"}]))
        j = train_and_wait(self, self.c, name)
        self.assertEqual((j["state"], j["version"]), ("succeeded", 3), j)
        gate = get_version(self, self.c, name, 3)["gate"]
        self.assertIsNotNone(gate["live_metrics"], gate)
        self.assertIsNone(gate["live_not_compared"], gate)
        self.assertTrue(gate["passed"], gate)
        self.assertIn("live v1 was out of service when this job began", log_text(j))
        self.assertEqual(aliases_of(self, self.c, name), {"live": 1, "candidate": 3})

    def test_a_class_live_never_trained_on_is_left_out_and_said(self):
        # Live answers a class it never saw 0, which log loss clips to 1e-15:
        # a few such rows outweighed every other row.
        rows = synthetic("multiclass", 180, seed=26)
        f, l, _ = self.streams(rows[:150])
        name = uid("by-time-new-class")
        d = definition("multiclass", f, l, holdout={"share": 0.2, "by": "time"})
        put_model(self, self.c, name, d, expect=(201,))
        self.assertEqual(train_and_wait(self, self.c, name)["version"], 1)
        # 30 newer entities, every third of a new class.
        newer = [(e, data, "d" if i % 3 == 0 else y) for i, (e, data, y) in enumerate(rows[150:])]
        load_rows(self, self.c, f, l, newer, feature_hours=2.5, label_hours=3.0)
        j = train_and_wait(self, self.c, name)
        self.assertEqual(j["state"], "succeeded", log_text(j))
        gate = get_version(self, self.c, name, j["version"])["gate"]
        self.assertEqual(gate["live_unknown_classes"], ["d"], gate)
        self.assertEqual(gate["live_rows"], 26, gate)
        self.assertIn('; live v1 never trained on "d" (10 of 36 holdout rows, left out of the '
                      'comparison)', gate["summary"])
        self.assertIn('10 of 36 holdout rows are of a class live version 1 never trained on '
                      '("d"): it cannot answer them; compared with it on the others only',
                      log_text(j))
        self.assertFalse(gate["fails_only_against_live"], gate)  # it never learned "d"

        # 30 more, every third "d" again: a candidate on x2 alone learns "d"
        # from the older ones, loses to live on the rest, and is said to be
        # one a person may want.
        more = [(e, data, "d" if i % 3 == 0 else y)
                for i, (e, data, y) in enumerate(synthetic("multiclass", 240, seed=26)[180:])]
        load_rows(self, self.c, f, l, more, feature_hours=3.5, label_hours=4.0)
        put_model(self, self.c, name, dict(d, features=[{"field": "x2"}]))
        j = train_and_wait(self, self.c, name)
        self.assertEqual(j["state"], "succeeded", log_text(j))
        v = get_version(self, self.c, name, j["version"])
        self.assertEqual(v["status"], "rejected", v["gate"])
        self.assertTrue(v["gate"]["fails_only_against_live"], v["gate"])
        self.assertTrue(v["gate"]["summary"].endswith(
            '; the candidate learned "d": a person may promote it if it should answer it'),
            v["gate"]["summary"])

    def test_a_holdout_written_wrong_is_a_400_naming_it(self):
        f, l, _ = self.streams(synthetic("regression", 20, seed=23))
        d = definition("regression", f, l)
        cases = [({"share": 0.2, "by": "label"}, ["holdout.by"]),
                 ({"share": 1.5, "by": "time"}, ["holdout.share"]),
                 ({"by": "time", "column": "t"}, ["holdout.column"]),
                 ("time", ["holdout"]),
                 ([0.2], ["holdout"])]
        for holdout, fields in cases:
            with self.subTest(holdout=holdout):
                r = self.c.request("PUT", "/v1/models/" + uid("bad-holdout"),
                                   json_body=dict(d, holdout=holdout))
                msgs = assert_definition_errors(self, r, fields)
                if fields == ["holdout.by"]:
                    self.assertEqual(msgs["holdout.by"], 'must be "entity" or "time"')

    def test_labels_all_at_one_time_cannot_be_split_by_time(self):
        rows = synthetic("regression", 60, seed=22)
        f, l = uid("feat"), uid("lab")
        facts = []
        for e, data, y in rows:
            facts.append(fact(f, e, data, time_=at(0)))
            facts.append(fact(l, e, {"y": y}, time_=at(1)))  # a bulk import, stamped alike
        post_facts(self, self.c, facts)
        name = uid("by-time-flat")
        put_model(self, self.c, name, definition("regression", f, l,
                                                 holdout={"by": "time"}), expect=(201,))
        j = train_and_wait(self, self.c, name)
        self.assertEqual(j["state"], "failed", j)
        self.assertEqual(j["error"],
                         "too few labelled rows: 0 train and 60 holdout; need at least 10 and 3 "
                         "(holdout by time: every label is at 2026-11-20T11:00:00Z, so none is "
                         "older to train on)", j)
        self.assertEqual(self.c.get("/healthz").status, 200)


# --------------------------------------------------------- training runs

class TrainingTest(SharedServerCase):

    def test_job_lists_page_and_filter_by_state(self):
        # They were the newest 100 whatever was asked: older jobs were out of
        # reach, and 100 queued ones hid the running one.
        f, l, _ = self.streams(synthetic("regression", 60, seed=63))
        name = uid("jobs")
        put_model(self, self.c, name, definition("regression", f, l))
        ids = [train_and_wait(self, self.c, name)["id"] for _ in range(3)]
        path = "/v1/models/%s/jobs" % name

        def page(query):
            r = self.c.get(path + query)
            self.assertEqual(r.status, 200, r)
            return [j["id"] for j in r.json()["jobs"]], r.json()["next_before"]

        self.assertEqual(page(""), (ids[::-1], None))
        # A model's list names it, as its other lists do; /v1/jobs is everyone's.
        self.assertEqual(self.c.get(path).json()["model"], name)
        self.assertNotIn("model", self.c.get("/v1/jobs?limit=1").json())
        self.assertEqual(page("?limit=2"), (ids[:0:-1], ids[1]))
        self.assertEqual(page("?limit=2&before=%d" % ids[1]), ([ids[0]], None))
        self.assertEqual(page("?state=failed,cancelled"), ([], None))
        # A full last page says there is no more.
        self.assertEqual(page("?state=running,succeeded&limit=3"), (ids[::-1], None))
        r = self.c.get("/v1/jobs?state=succeeded&limit=1000")
        self.assertTrue(set(ids) <= {j["id"] for j in r.json()["jobs"]}, r)
        for query, field in (("?limit=0", "limit"), ("?limit=1001", "limit"), ("?before=0", "before"),
                             ("?state=done", "state"), ("?state=queued,", "state")):
            with self.subTest(query=query):
                self.assertErrorShape(self.c.get(path + query), 400, field=field)
                self.assertErrorShape(self.c.get("/v1/jobs" + query), 400, field=field)

    def check_metrics(self, task, v):
        m, b = v["metrics"], v["baseline_metrics"]
        want = {"binary": BINARY_METRICS, "multiclass": MULTICLASS_METRICS,
                "regression": REGRESSION_METRICS}[task]
        self.assertLessEqual(want, set(m), m)
        self.assertLessEqual(want, set(b), b)
        test_rows = v["snapshot"]["test_rows"]
        if task == "regression":
            self.assertGreater(m["r2"], 0.8, m)
            self.assertLess(m["rmse"], b["rmse"], (m, b))
            self.assertLessEqual(m["mae"], m["rmse"] + 1e-9, m)
            self.assertLess(abs(b["r2"]), 0.2, b)
            return
        k = 2 if task == "binary" else 3
        self.assertEqual(len(m["confusion"]), k, m)
        self.assertTrue(all(len(row) == k for row in m["confusion"]), m)
        self.assertEqual(sum(map(sum, m["confusion"])), test_rows, m)
        correct = sum(m["confusion"][i][i] for i in range(k))
        self.assertAlmostEqual(m["accuracy"], correct / test_rows, places=9)
        self.assertLess(m["log_loss"], b["log_loss"], (m, b))
        if task == "binary":
            self.assertGreater(m["accuracy"], 0.8, m)
            self.assertGreater(m["roc_auc"], 0.85, m)
            self.assertAlmostEqual(b["roc_auc"], 0.5, places=6)
            self.assertTrue(0 <= m["best_threshold"] <= 1, m)
            for key in ("precision", "recall", "f1", "pr_auc"):
                self.assertTrue(0 < m[key] <= 1, (key, m))
        else:
            self.assertGreater(m["accuracy"], 0.7, m)

    def check_importance(self, task, v):
        """Permutation importance on the holdout: y follows x1 most, then x2;
        the colour matters least (regression) or not at all."""
        imp = v["features"]["importance"]
        metric = {"binary": "roc_auc", "multiclass": "log_loss", "regression": "rmse"}[task]
        self.assertEqual((imp["method"], imp["metric"], imp["rows"], imp["complete"]),
                         ("permutation", metric, v["snapshot"]["test_rows"], True), imp)
        self.assertAlmostEqual(imp["evaluated"], v["metrics"][metric], places=9)
        fields = imp["fields"]
        self.assertEqual(sorted(f["field"] for f in fields), ["color", "x1", "x2"], imp)
        drops = [f["drop"] for f in fields]
        self.assertEqual(drops, sorted(drops, reverse=True), imp)  # largest first
        higher = metric == "roc_auc"
        for f in fields:
            # The drop is the metric's change, worse counted positive.
            want = imp["evaluated"] - f["shuffled"] if higher else f["shuffled"] - imp["evaluated"]
            self.assertAlmostEqual(f["drop"], want, places=9)
        by = {f["field"]: f["drop"] for f in fields}
        self.assertGreater(min(by["x1"], by["x2"]), by["color"], imp)
        if task != "multiclass":
            self.assertEqual(fields[0]["field"], "x1", imp)
        self.assertGreater(by["x1"], 0, imp)

    def test_every_task_with_every_algorithm(self):
        jobs = {}
        data = {}
        for task in ("binary", "multiclass", "regression"):
            rows = synthetic(task, 300, seed=21)
            f, l, ids = self.streams(rows)
            data[task] = (rows, max(ids))
            for algo in ("linear", "forest", "kernel"):
                name = uid("%s-%s" % (task, algo))
                put_model(self, self.c, name, definition(task, f, l, algorithm=algo),
                          expect=(201,))
                jobs[(task, algo)] = (name, queue_training(self, self.c, name))

        # Watch all of them, collecting the states each one passes through.
        seen = {key: [] for key in jobs}
        done = {}
        deadline = time.monotonic() + 240
        while len(done) < len(jobs):
            self.assertLess(time.monotonic(), deadline, (seen, done.keys()))
            for key, (name, job_id) in jobs.items():
                if key in done:
                    continue
                j = get_job(self, self.c, job_id)
                if not seen[key] or seen[key][-1] != j["state"]:
                    seen[key].append(j["state"])
                if j["state"] in FINISHED:
                    done[key] = j
            time.sleep(0.03)

        saw_running = False
        for (task, algo), j in done.items():
            name, job_id = jobs[(task, algo)]
            with self.subTest(task=task, algorithm=algo):
                self.assertEqual(j["state"], "succeeded", log_text(j) + "\n" + str(j.get("error")))
                states = seen[(task, algo)]
                self.assertEqual(states[-1], "succeeded", states)
                order = ["queued", "running", "succeeded"]
                self.assertEqual(states, [s for s in order if s in states], states)
                saw_running = saw_running or "running" in states
                self.assertEqual((j["trigger"], j["requested_by"], j["model"]),
                                 ("manual", ACTOR, name), j)
                self.assertEqual(j["progress"], 1, j)
                self.assertIsNone(j["error"], j)
                self.assertTrue(j["created_at"] <= j["started_at"] <= j["finished_at"], j)
                messages = [x["message"] for x in j["log"]]
                self.assertIn("started", messages, messages)
                self.assertTrue(any(m.startswith("stored version 1") for m in messages), messages)
                # The job's message is what it came to, not its last step.
                self.assertEqual(j["message"], [m for m in messages
                                                 if m.startswith("stored version 1")][0], j)
                self.assertEqual(j["version"], 1, j)

                v = get_version(self, self.c, name, 1)
                self.assertEqual((v["model"], v["version"], v["revision"], v["job"]),
                                 (name, 1, 1, job_id), v)
                self.assertEqual(v["algorithm"], algo, v)
                self.assertEqual(v["params"]["requested"], algo, v["params"])
                self.assertRegex(v["artifact"]["sha256"], SHA256_RE)
                self.assertGreater(v["artifact"]["bytes"], 100, v["artifact"])
                rows, max_id = data[task]
                snap = v["snapshot"]
                self.assertGreaterEqual(snap["max_fact_id"], max_id, snap)
                expected_test = sum(1 for e, _, _ in rows if in_holdout(e, 0.2))
                self.assertEqual((snap["train_rows"], snap["test_rows"]),
                                 (300 - expected_test, expected_test), snap)
                self.assertEqual(snap["split_rule"], "fmix64(fnv1a64(entity)) / 2^64 < 0.2")
                t = v["timings"]
                for key in ("read_seconds", "fit_seconds", "evaluate_seconds", "total_seconds"):
                    self.assertGreaterEqual(t[key], 0, t)
                self.assertGreater(t["total_seconds"], 0, t)
                self.check_metrics(task, v)
                gate = v["gate"]
                self.assertTrue(gate["passed"], gate)
                self.assertEqual(gate["metric"], {"binary": "roc_auc", "multiclass": "log_loss",
                                                  "regression": "rmse"}[task], gate)
                self.assertEqual(v["status"], "candidate", v)
                self.assertEqual(v["aliases"], ["live"], v)
                if task != "regression":
                    self.assertEqual(v["features"]["classes"],
                                     ["false", "true"] if task == "binary" else ["a", "b", "c"])
                self.assertIn("category-color=red", v["features"]["names"])
                self.check_importance(task, v)

                # The drift profile: in the version, not in the list.
                self.assertEqual([f["field"] for f in v["features"]["profile"]["fields"]],
                                 ["color", "x1", "x2"], v["features"]["profile"])

                r = self.c.get("/v1/models/%s/versions" % name)
                self.assertEqual(r.status, 200, r)
                listed = r.json()["versions"]
                self.assertEqual([x["version"] for x in listed], [1], r)
                self.assertEqual(listed[0]["artifact"]["sha256"], v["artifact"]["sha256"])
                self.assertNotIn("profile", listed[0]["features"], listed[0]["features"])
                self.assertEqual(listed[0]["features"]["importance"], v["features"]["importance"])
                r = self.c.get("/v1/models/%s/jobs" % name)
                self.assertEqual([x["id"] for x in r.json()["jobs"]], [job_id], r)
        self.assertTrue(saw_running, seen)


# ------------------------------------------------------- gate and aliases

class GateTest(SharedServerCase):

    def test_auto_policy_publishes_then_rejects_an_equal_candidate(self):
        f, l, _ = self.streams(synthetic("regression", 150, seed=8))
        name = uid("gate-auto")
        put_model(self, self.c, name, definition("regression", f, l))
        j1 = train_and_wait(self, self.c, name)
        self.assertEqual((j1["state"], j1["version"]), ("succeeded", 1), j1)
        v1 = get_version(self, self.c, name, 1)
        self.assertEqual((v1["status"], v1["aliases"]), ("candidate", ["live"]), v1)
        self.assertTrue(v1["gate"]["passed"], v1["gate"])
        self.assertIsNone(v1["gate"]["live_version"], v1["gate"])
        self.assertEqual(aliases_of(self, self.c, name), {"live": 1})
        deps = deployments_of(self, self.c, name)
        self.assertEqual(len(deps), 1, deps)
        self.assertEqual((deps[0]["alias"], deps[0]["version"], deps[0]["previous_version"],
                          deps[0]["actor"]), ("live", 1, None, "policy:auto"), deps)
        self.assertIn("job %d" % j1["id"], deps[0]["reason"], deps)
        self.assertIn("alias live moved to it", log_text(j1))
        self.assertTrue(j1["message"].startswith(
            "stored version 1 (candidate), alias live moved to it (serving loads it next)"), j1)
        # The server's log says when live traffic moved: after the load.
        wait_until(lambda: "%s: version 1 answers live traffic (before: no version); loaded in"
                   % name in self.server.stderr(), 30, "the serving line in the server's log")

        # Same data, same algorithm: an equal candidate does not beat live.
        j2 = train_and_wait(self, self.c, name)
        self.assertEqual((j2["state"], j2["version"]), ("succeeded", 2), j2)
        v2 = get_version(self, self.c, name, 2)
        self.assertEqual(v2["status"], "rejected", v2)
        self.assertEqual(v2["aliases"], [], v2)
        gate = v2["gate"]
        self.assertFalse(gate["passed"], gate)
        self.assertEqual(gate["live_version"], 1, gate)
        self.assertEqual(gate["live"], gate["candidate"], gate)
        self.assertTrue(any("does not beat the live version on rmse" in x
                            for x in gate["reasons"]), gate)
        self.assertEqual(v2["metrics"], v1["metrics"])
        self.assertIn("stored version 2 (rejected)", log_text(j2))
        self.assertEqual(aliases_of(self, self.c, name), {"live": 1})
        self.assertEqual(len(deployments_of(self, self.c, name)), 1)
        m = self.c.get("/v1/models/" + name).json()
        self.assertEqual((m["aliases"], m["versions"]), ({"live": 1}, 2), m)

    def gaussian_rows(self, n, seed, label):
        """n entities with x1, x2, x3 ~ N(0, 1) and y = label(x1, x2, x3, noise)."""
        rnd = random.Random(seed)
        rows = []
        for i in range(n):
            x = [round(rnd.gauss(0, 1), 4) for _ in range(3)]
            rows.append(("g%04d" % i, {"x1": x[0], "x2": x[1], "x3": x[2]},
                         round(label(*x, rnd.gauss(0, 1)), 4)))
        return rows

    def test_live_is_scored_with_the_fields_it_reads_not_the_new_definitions(self):
        # Live reads x1 (most of the signal); the new definition drops it.
        # Live was scored on holdout rows stripped to the new definition's
        # fields, so x1 read as missing, live looked far worse than it is,
        # and the worse candidate was published.
        f, l, _ = self.streams(self.gaussian_rows(300, 6, lambda a, b, c, e: 10 * a + 3 * b + 3 * c + e))
        name = uid("gate-fields")
        d = definition("regression", f, l, features=[{"field": "x1"}, {"field": "x2"}])
        put_model(self, self.c, name, d)
        self.assertEqual(train_and_wait(self, self.c, name)["version"], 1)
        v1 = get_version(self, self.c, name, 1)
        self.assertEqual(aliases_of(self, self.c, name), {"live": 1})
        put_model(self, self.c, name, dict(d, features=[{"field": "x2"}, {"field": "x3"}]))
        j = train_and_wait(self, self.c, name)
        self.assertEqual((j["state"], j["version"]), ("succeeded", 2), j)
        v2 = get_version(self, self.c, name, 2)
        gate = v2["gate"]
        self.assertEqual(gate["live_version"], 1, gate)
        self.assertFalse(gate["passed"], gate)
        self.assertEqual(v2["status"], "rejected", v2)
        # Live scored on the same holdout rows as the candidate, with x1.
        self.assertLess(gate["live"], 0.5 * gate["candidate"], gate)
        # (The same 20% holdout as version 1's own: the same score.)
        self.assertAlmostEqual(gate["live"], v1["metrics"]["rmse"], places=6)
        self.assertEqual(aliases_of(self, self.c, name), {"live": 1})

    def test_a_larger_holdout_compares_with_live_only_on_rows_it_did_not_train_on(self):
        # A forest that fits its training rows closely: scored on them, live
        # looked far better than on unseen rows.
        f, l, _ = self.streams(self.gaussian_rows(300, 10, lambda a, b, c, e: 3 * a * b + 2 * e))
        name = uid("gate-split")
        d = definition("regression", f, l, algorithm="forest",
                       features=[{"field": "x1"}, {"field": "x2"}],
                       params={"min_samples_per_leaf": 1})
        put_model(self, self.c, name, d)
        self.assertEqual(train_and_wait(self, self.c, name)["version"], 1)
        put_model(self, self.c, name, dict(d, holdout=0.6))
        j = train_and_wait(self, self.c, name)
        self.assertEqual((j["state"], j["version"]), ("succeeded", 2), j)
        gate = get_version(self, self.c, name, 2)["gate"]
        self.assertEqual(gate["live_version"], 1, gate)
        # Only the rows in live's own 20% holdout are compared.
        holdout = [e for e, _, _ in self.gaussian_rows(300, 10, lambda *a: 0)
                   if in_holdout(e, 0.2)]
        self.assertEqual(gate["live_rows"], len(holdout), gate)
        self.assertRegex(log_text(j), r"live version 1 trained on \d+ of \d+ holdout rows "
                                      r"\(its holdout share was 0\.2\)")

    def test_live_whose_classes_share_none_with_the_labels_now_is_not_compared(self):
        # Labels re-sent as 1/0 where live learned true/false: mapped by name,
        # live scored as chance and the gate judged the candidate against that.
        rows = synthetic("binary", 150, seed=12)
        f, l, _ = self.streams(rows)
        name = uid("gate-classes")
        put_model(self, self.c, name, definition("binary", f, l))
        self.assertEqual(train_and_wait(self, self.c, name)["version"], 1)
        post_facts(self, self.c, [fact(l, e, {"y": 1 if y else 0}, time_=at(2, i))
                                  for i, (e, _, y) in enumerate(rows)])
        j = train_and_wait(self, self.c, name)
        self.assertEqual((j["state"], j["version"]), ("succeeded", 2), j)
        gate = get_version(self, self.c, name, 2)["gate"]
        self.assertIsNone(gate["live_version"], gate)
        self.assertIsNone(gate["live"], gate)
        self.assertIn('could not score live version 1: its classes ("false", "true") share none '
                      'with the labels now ("0", "1")', log_text(j))

    def test_the_positive_class_of_a_binary_model_is_the_one_named(self):
        # With "fraud" and "ok", "ok" (the later in byte order) was the
        # positive class: its precision, recall and F1 threshold were
        # reported, and "decision" said whether a row was ok.
        rows = [(e, data, "fraud" if y else "ok") for e, data, y in synthetic("binary", 150, seed=64)]
        f, l, _ = self.streams(rows)
        name = uid("positive")
        d = definition("binary", f, l)
        d["label"]["positive"] = "fraud"
        r = put_model(self, self.c, name, d)
        self.assertEqual(r.json()["definition"]["label"]["positive"], "fraud", r)
        j = train_and_wait(self, self.c, name)
        self.assertEqual(j["state"], "succeeded", log_text(j))
        threshold = get_version(self, self.c, name, 1)["metrics"]["best_threshold"]
        # Serving reloads the model just after the job commits: a request
        # sent at once was answered from the label's prior.
        wait_served(self, self.c, name, 1)
        instances = [{"entity": e, "features": data} for e, data, _ in rows[:40]]
        r = self.c.post_json("/v1/models/%s/predict" % name, {"instances": instances})
        self.assertEqual(r.status, 200, r)
        answers = r.json()["predictions"]
        self.assertTrue(any(p["decision"] for p in answers), answers[:3])
        for p in answers:
            self.assertEqual(p["decision"], p["probabilities"]["fraud"] >= threshold, p)
        # Only a binary task has one; one the labels lack fails the job.
        bad = definition("regression", f, l)
        bad["label"]["positive"] = "fraud"
        r = self.c.request("PUT", "/v1/models/" + uid("positive"), json_body=bad)
        self.assertEqual((r.status, r.json()["error"]["field"]), (400, "label.positive"), r)
        # A class the labels lack is refused when the definition is saved
        # (it failed every job), and the definition stays as it was.
        d["label"]["positive"] = "spam"
        r = self.c.request("PUT", "/v1/models/" + name, json_body=d)
        self.assertEqual((r.status, r.json()["error"]["field"]), (400, "label.positive"), r)
        self.assertIn('the positive class "spam" is not among the labels of the newest 5,000 facts '
                      'of stream "%s" ("fraud", "ok")' % l, r.json()["error"]["message"])
        r = self.c.get("/v1/models/" + name)
        self.assertEqual(r.json()["definition"]["label"]["positive"], "fraud", r)

    def test_the_positive_class_is_checked_as_training_names_the_labels(self):
        f, _, _ = self.streams(synthetic("binary", 20, seed=65))

        def put(labels, positive):
            d = definition("binary", f, labels)
            d["label"]["positive"] = positive
            return self.c.request("PUT", "/v1/models/" + uid("pos"), json_body=d)

        def refused(r, words):
            self.assertEqual((r.status, r.json()["error"]["field"]), (400, "label.positive"), r)
            self.assertIn(words, r.json()["error"]["message"])

        # A name booleans or 0/1 cannot give, whatever the count of classes;
        # {"value": …} is its value, as training reads it.
        booleans, numbers, valued = uid("lab"), uid("lab"), uid("lab")
        post_facts(self, self.c, [fact(booleans, uid("e"), {"y": True})] +
                   [fact(numbers, uid("e"), {"y": 1})] +
                   [fact(valued, uid("e"), {"y": {"value": v, "confidence": 0.9}}) for v in (0, 1)])
        refused(put(booleans, "1"), 'they are true or false, the classes "true" and "false"')
        refused(put(numbers, "true"), 'the classes "0" and "1"')
        refused(put(valued, "true"), 'the classes "0" and "1"')
        self.assertEqual(put(booleans, "false").status, 201)
        self.assertEqual(put(valued, "1").status, 201)
        # Classes a correction replaced are not counted, however many: the
        # facts that stand say "fraud" and "ok".
        corrected = uid("lab")
        ids = post_facts(self, self.c, [fact(corrected, uid("e"), {"y": "fraud"}, time_=at(0, i))
                                        for i in range(3)] +
                         [fact(corrected, uid("e"), {"y": "okk%d" % i}, time_=at(1, i))
                          for i in range(70)])
        post_facts(self, self.c, [fact(corrected, uid("e"), {"y": "ok"}, time_=at(1, i),
                                       corrects=ids[3 + i]) for i in range(70)])
        self.assertEqual(put(corrected, "fraud").status, 201)
        refused(put(corrected, "okk1"), '("fraud", "ok")')

    def test_manual_policy_leaves_a_candidate(self):
        f, l, _ = self.streams(synthetic("binary", 150, seed=9))
        name = uid("gate-manual")
        put_model(self, self.c, name, definition("binary", f, l, promotion={"mode": "manual"}))
        j = train_and_wait(self, self.c, name)
        self.assertEqual(j["state"], "succeeded", j)
        v = get_version(self, self.c, name, 1)
        self.assertTrue(v["gate"]["passed"], v["gate"])
        self.assertEqual(v["gate"]["policy"], "manual")
        self.assertEqual((v["status"], v["aliases"]), ("candidate", ["candidate"]), v)
        self.assertEqual(aliases_of(self, self.c, name), {"candidate": 1})
        deps = deployments_of(self, self.c, name)
        self.assertEqual([(d["alias"], d["version"], d["actor"]) for d in deps],
                         [("candidate", 1, "policy:manual")], deps)

    def test_unmet_threshold_rejects_naming_the_metric(self):
        f, l, _ = self.streams(synthetic("regression", 150, seed=10))
        name = uid("gate-r2")
        put_model(self, self.c, name, definition(
            "regression", f, l, promotion={"thresholds": {"r2": 0.999999}}))
        j = train_and_wait(self, self.c, name)
        self.assertEqual(j["state"], "succeeded", j)
        v = get_version(self, self.c, name, 1)
        self.assertEqual(v["status"], "rejected", v)
        self.assertFalse(v["gate"]["passed"], v["gate"])
        self.assertEqual(v["gate"]["thresholds"], {"r2": 0.999999}, v["gate"])
        reasons = v["gate"]["reasons"]
        self.assertEqual(len(reasons), 1, reasons)  # it beat the baseline
        self.assertIn("r2", reasons[0])
        self.assertIn("below the minimum 0.999999", reasons[0])
        self.assertIn("r2", v["gate"]["summary"])
        self.assertEqual(aliases_of(self, self.c, name), {})
        self.assertEqual(deployments_of(self, self.c, name), [])

    def test_aliases_move_with_a_reason_and_every_move_is_recorded(self):
        f, l, _ = self.streams(synthetic("regression", 100, seed=12))
        name = uid("alias")
        put_model(self, self.c, name, definition("regression", f, l))
        for n in (1, 2):
            j = train_and_wait(self, self.c, name)
            self.assertEqual((j["state"], j["version"]), ("succeeded", n), j)
        self.assertEqual(aliases_of(self, self.c, name), {"live": 1})
        path = "/v1/models/%s/aliases/" % name

        r = self.c.request("PUT", path + "live", json_body={"version": 2, "reason": "try v2"})
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json(), {"model": name, "alias": "live", "version": 2, "changed": True,
                                    "actor": ACTOR, "reason": "try v2"})
        self.assertEqual(aliases_of(self, self.c, name), {"live": 2})
        self.assertEqual(get_version(self, self.c, name, 2)["aliases"], ["live"])
        self.assertEqual(get_version(self, self.c, name, 1)["aliases"], [])

        # Refusals change nothing.
        for body, status, field in (({"version": 1}, 400, "reason"),
                                    ({"version": 1, "reason": ""}, 400, "reason"),
                                    ({"reason": "no version"}, 400, "version"),
                                    ({"version": 99, "reason": "no such version"}, 404, "version")):
            r = self.c.request("PUT", path + "live", json_body=body)
            self.assertErrorShape(r, status, code="not_found" if status == 404 else
                                  "invalid_argument", field=field)
        r = self.c.request("PUT", path + "live", body="version=1",
                           headers={"Content-Type": "text/plain"})
        self.assertErrorShape(r, 415, field="Content-Type")
        # Removing an alias: a reason of the wrong type was a 500.
        for reason in (5, [], None):
            r = self.c.request("DELETE", path + "live", json_body={"reason": reason})
            self.assertErrorShape(r, 400, field="reason")
        # So was a key's name of the wrong type.
        r = self.c.post_json("/v1/keys", {"name": 5, "scopes": ["ingest"]})
        self.assertErrorShape(r, 400, field="name")
        r = self.c.request("PUT", "/v1/models/%s/aliases/live" % uid("nosuch"),
                           json_body={"version": 1, "reason": "x"})
        self.assertEqual(r.status, 404, r)
        # Moving an alias needs credentials.
        anonymous = Client(self.server.port, auth=None)
        self.addCleanup(anonymous.close)
        r = anonymous.request("PUT", path + "live", json_body={"version": 1, "reason": "x"})
        self.assertEqual(r.status, 401, r)
        self.assertEqual(aliases_of(self, self.c, name), {"live": 2})

        # Roll back with an API key: the history names the key.
        key_name = uid("deployer")
        r = self.c.post_json("/v1/keys", {"name": key_name, "scopes": ["admin"]})
        self.assertEqual(r.status, 201, r)
        deployer = Client(self.server.port, auth="Bearer " + r.json()["key"])
        self.addCleanup(deployer.close)
        r = deployer.request("PUT", path + "live", json_body={"version": 1, "reason": "roll back"})
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json()["actor"], "key:" + key_name, r)
        r = self.c.request("PUT", path + "staging", json_body={"version": 2, "reason": "stage"})
        self.assertEqual(r.status, 200, r)
        r = self.c.request("DELETE", path + "staging", json_body={})
        self.assertEqual(r.status, 400, r)
        self.assertEqual(r.json()["error"]["field"], "reason", r)
        r = self.c.request("DELETE", path + "staging", json_body={"reason": "done staging"})
        self.assertEqual(r.status, 200, r)
        self.assertIsNone(r.json()["version"], r)
        r = self.c.request("DELETE", path + "nosuch", json_body={"reason": "x"})
        self.assertEqual(r.status, 404, r)
        self.assertEqual(aliases_of(self, self.c, name), {"live": 1})

        deps = deployments_of(self, self.c, name)
        got = [(d["alias"], d["version"], d["previous_version"], d["actor"], d["reason"])
               for d in deps]
        self.assertEqual(got[:4], [
            ("staging", None, 2, ACTOR, "done staging"),
            ("staging", 2, None, ACTOR, "stage"),
            ("live", 1, 2, "key:" + key_name, "roll back"),
            ("live", 2, 1, ACTOR, "try v2"),
        ], got)
        self.assertEqual(len(got), 5, got)
        self.assertEqual(got[4][:4], ("live", 1, None, "policy:auto"), got)
        ids = [d["id"] for d in deps]
        self.assertEqual(ids, sorted(ids, reverse=True))
        times = [d["time"] for d in deps]
        self.assertEqual(times, sorted(times, reverse=True))


# ------------------------------------------------------------ degenerate data

class DegenerateDataTest(SharedServerCase):

    def failed_job(self, d, rows=None, label_hours=1.0, feature_hours=0.0, extra_facts=(),
                   defined_before=None):
        """defined_before: a label the streams hold when the model is
        defined, the rows coming after (labels a PUT refuses, sent later)."""
        f, l = d["features_from"], d["label"]["stream"]
        name = uid("degenerate")
        if defined_before is not None:
            load_rows(self, self.c, f, l, [("seed", {"x1": 0.0, "x2": 0.0, "color": "red"}, defined_before)],
                      field=d["label"]["field"])
            put_model(self, self.c, name, d, expect=(201,))
        if rows is not None:
            load_rows(self, self.c, f, l, rows, field=d["label"]["field"],
                      feature_hours=feature_hours, label_hours=label_hours)
        if extra_facts:
            post_facts(self, self.c, list(extra_facts))
        if defined_before is None:
            put_model(self, self.c, name, d, expect=(201,))
        j = train_and_wait(self, self.c, name)
        self.assertEqual(j["state"], "failed", j)
        self.assertIsInstance(j["error"], str, j)
        self.assertIsNone(j["version"], j)
        self.assertEqual(self.c.get("/v1/models/%s/versions" % name).json()["versions"], [])
        self.assertIn("error: failed: " + j["error"], log_text(j))
        # The message is what the job came to, not its last step.
        self.assertEqual(j["message"], "failed: " + j["error"], j)
        self.assertEqual(self.c.get("/healthz").status, 200)
        return j

    def test_no_labelled_rows_with_features(self):
        rows = synthetic("regression", 40, seed=30)
        f, l = uid("feat"), uid("lab")
        # Every feature fact comes after its entity's label.
        j = self.failed_job(definition("regression", f, l), rows, feature_hours=5)
        self.assertIn("no labelled rows with features", j["error"])
        self.assertIn("40 labelled entities", j["error"])

    def test_one_class_only(self):
        rows = [(e, data, True) for e, data, _ in synthetic("binary", 60, seed=31)]
        j = self.failed_job(definition("binary", uid("feat"), uid("lab")), rows)
        self.assertIn("one class", j["error"])
        self.assertIn("true", j["error"])

    def test_constant_feature_is_dropped_with_a_warning(self):
        rows = [(e, dict(data, k=5), y) for e, data, y in synthetic("regression", 80, seed=32)]
        f, l, _ = self.streams(rows)
        name = uid("constant")
        put_model(self, self.c, name, definition("regression", f, l, features=[
            {"field": "x1"}, {"field": "x2"}, {"field": "k"}]))
        j = train_and_wait(self, self.c, name)
        self.assertEqual(j["state"], "succeeded", log_text(j))
        warnings = [x["message"] for x in j["log"] if x["level"] == "warn"]
        self.assertTrue(any("numeric-k" in w and "constant" in w for w in warnings), warnings)
        v = get_version(self, self.c, name, j["version"])
        self.assertNotIn("numeric-k", v["features"]["names"])
        self.assertIn("numeric-x1", v["features"]["names"])
        self.assertTrue(any("numeric-k" in w for w in v["features"]["warnings"]), v["features"])

    def test_nothing_left_after_dropping_constant_and_missing_features(self):
        rows = [(e, {"k": 5}, y) for e, _, y in synthetic("regression", 60, seed=33)]
        f, l = uid("feat"), uid("lab")
        # "z" exists in the stream, but only in facts after every label.
        late = [fact(f, "e%04d" % i, {"z": i}, time_=at(9, i)) for i in range(5)]
        j = self.failed_job(definition("regression", f, l, features=[
            {"field": "k"}, {"field": "z"}]), rows, extra_facts=late)
        self.assertIn("no usable feature columns", j["error"])
        warnings = [x["message"] for x in j["log"] if x["level"] == "warn"]
        self.assertTrue(any("'z'" in w and "always missing" in w for w in warnings), warnings)
        self.assertTrue(any("numeric-k" in w and "constant" in w for w in warnings), warnings)

    def test_numeric_labels_for_a_binary_model(self):
        rows = [(e, data, int(abs(y) * 7) % 40) for e, data, y in
                synthetic("regression", 60, seed=34)]
        # Refused at PUT when the labels are there (400, test_validation_...);
        # sent after it, the job fails saying why.
        j = self.failed_job(definition("binary", uid("feat"), uid("lab")), rows,
                            defined_before=1)
        self.assertIn("number", j["error"])
        self.assertIn("0 or 1", j["error"])

    def test_a_string_among_numeric_labels_names_its_fact(self):
        # One stray label fact stops every training of the model: the error
        # names the entity and the fact to correct, not a row number.
        rows = synthetic("regression", 60, seed=37)
        rows[17] = (rows[17][0], rows[17][1], "many")
        j = self.failed_job(definition("regression", uid("feat"), uid("lab")), rows)
        self.assertIn("regression labels must be numbers or intervals; found string", j["error"])
        self.assertRegex(j["error"], r'at entity "%s" \(label fact \d+\)' % rows[17][0])

    def test_a_label_of_a_type_kennel_cannot_read_names_its_type_and_fact(self):
        # It was reported as a missing label.
        rows = synthetic("regression", 60, seed=38)
        rows[5] = (rows[5][0], rows[5][1], [1, 2])
        j = self.failed_job(definition("regression", uid("feat"), uid("lab")), rows)
        self.assertRegex(j["error"], r'the label "y" of entity "%s" \(label fact \d+\) is an array'
                         % rows[5][0])
        self.assertNotIn("missing", j["error"])

    def test_a_regression_label_near_the_largest_double_names_its_fact(self):
        # Its square overflows. One such label among 60 trained a version
        # (on aef936f); three among 400 failed the job as "the fitted model
        # cannot answer holdout row 0 (entity …)", naming an entity with an
        # ordinary label.
        rows = synthetic("regression", 60, seed=44)
        rows[40] = (rows[40][0], rows[40][1], 1e308)
        j = self.failed_job(definition("regression", uid("feat"), uid("lab")), rows)
        self.assertRegex(j["error"], r'the label "y" of entity "%s" \(label fact \d+\) reaches 1e\+308'
                         % rows[40][0])

    def test_a_renamed_label_field_is_said_in_the_log(self):
        # The app renamed the label field: training went on with the labels
        # from before, and its log said nothing.
        rows = synthetic("regression", 60, seed=45)
        f, l, _ = self.streams(rows)
        post_facts(self, self.c, [fact(l, "renamed%d" % i, {"y_after": i}) for i in range(30)])
        name = uid("renamed")
        put_model(self, self.c, name, definition("regression", f, l))
        j = train_and_wait(self, self.c, name)
        self.assertEqual(j["state"], "succeeded", log_text(j))
        self.assertRegex(log_text(j), r'label stream "%s": its 30 newest facts \(from fact \d+\) have no "y"' % l)

    def test_an_interval_label_as_wide_as_the_doubles_trains(self):
        # {-1e308, 1e308}: its midpoint overflowed to infinity, and the job
        # failed with "label 1 is not finite", naming no fact.
        rows = synthetic("regression", 60, seed=39)
        rows[3] = (rows[3][0], rows[3][1], {"lower": -1e308, "upper": 1e308})
        f, l, _ = self.streams(rows)
        name = uid("wide")
        put_model(self, self.c, name, definition("regression", f, l))
        j = train_and_wait(self, self.c, name)
        self.assertEqual(j["state"], "succeeded", log_text(j))

    def test_a_holdout_row_the_model_overflows_on_is_left_out_not_fatal(self):
        # One valid fact with x1 = 1e308 on the holdout side failed every job
        # of the model ("the fitted model cannot answer holdout row 0").
        rows = synthetic("regression", 80, seed=43)
        held = [i for i, (e, _, _) in enumerate(rows) if in_holdout(e, 0.2)]
        self.assertGreaterEqual(len(held), 5)
        i = held[0]
        rows[i] = (rows[i][0], dict(rows[i][1], x1=1e308), rows[i][2])
        f, l, _ = self.streams(rows)
        name = uid("overflow")
        put_model(self, self.c, name, definition("regression", f, l))
        j = train_and_wait(self, self.c, name)
        self.assertEqual(j["state"], "succeeded", log_text(j))
        self.assertIn('1 of %d holdout rows have inputs far outside the training data that the '
                      'model cannot answer (first: entity "%s"); evaluated on the other %d'
                      % (len(held), rows[i][0], len(held) - 1), log_text(j))
        v = get_version(self, self.c, name, j["version"])
        self.assertEqual(v["metrics"]["rows"], len(held) - 1, v["metrics"])

    def test_training_values_at_both_ends_of_the_double_range_are_scaled_not_fatal(self):
        # x1 = 1.7e308 beside -1.7e308: x - mean overflowed while scaling,
        # and the job failed as "row 1 is not finite", naming nothing.
        rows = [("e%d" % k, {"x1": 1.7e308 * (1 if k % 2 else -1)}, float(k)) for k in range(50)]
        f, l, _ = self.streams(rows)
        name = uid("ends")
        put_model(self, self.c, name, definition("regression", f, l, features=[{"field": "x1"}]))
        j = train_and_wait(self, self.c, name)
        self.assertEqual(j["state"], "succeeded", log_text(j))
        self.assertIn("stored version 1", log_text(j))

    def test_three_strings_for_a_binary_model(self):
        rows = [(e, data, ("x", "y", "z")[i % 3]) for i, (e, data, _) in
                enumerate(synthetic("binary", 60, seed=35))]
        j = self.failed_job(definition("binary", uid("feat"), uid("lab")), rows,
                            defined_before="x")
        self.assertIn("at most 2 classes, found 3", j["error"])

    def test_more_classes_than_allowed(self):
        rows = [(e, data, "c%d" % (i % 5)) for i, (e, data, _) in
                enumerate(synthetic("multiclass", 100, seed=36))]
        j = self.failed_job(definition("multiclass", uid("feat"), uid("lab"), max_classes=3),
                            rows)
        self.assertIn("at most 3 classes, found 5", j["error"])


# ------------------------------------------------------------- scheduler

class SchedulerTest(SharedServerCase):
    # Automatic jobs of a model 3 s apart at least, not 30: the tests wait
    # out the gap.
    server_args = ("--retrain-gap-seconds", "3")

    def scheduler_looks(self, times=2):
        """Waits until the scheduler has looked at the triggers `times` more
        times (it looks every second, on a thread of its own)."""
        def checks():
            return self.c.get("/v1/overview").json()["components"]["scheduler"]["checks"]
        start = checks()
        wait_until(lambda: checks() >= start + times, 60,
                   "%d more looks by the scheduler" % times)

    def test_retrains_by_itself_after_n_new_labels(self):
        rows = synthetic("regression", 60, seed=40)
        f, l = uid("feat"), uid("lab")
        first = [(e, d, y if i < 10 else None) for i, (e, d, y) in enumerate(rows)]
        load_rows(self, self.c, f, l, first)
        name = uid("sched")
        put_model(self, self.c, name, definition("regression", f, l,
                                                 retrain={"every_new_labels": 40}))
        # 10 labels < 40: nothing is queued.
        self.scheduler_looks()
        jobs = self.c.get("/v1/models/%s/jobs" % name).json()["jobs"]
        self.assertEqual(jobs, [])
        # 30 more: 40 labels, so a job is queued by the trigger.
        post_facts(self, self.c, [fact(l, e, {"y": y}, time_=at(1, i))
                                  for i, (e, _, y) in enumerate(rows) if 10 <= i < 40])

        def scheduled():
            js = self.c.get("/v1/models/%s/jobs" % name).json()["jobs"]
            return js[0] if js else None
        job = wait_until(scheduled, 30, "a job queued by the new_labels trigger")
        self.assertEqual((job["trigger"], job["requested_by"]), ("new_labels", "scheduler"), job)
        j = wait_job(self, self.c, job["id"])
        self.assertEqual(j["state"], "succeeded", log_text(j))
        self.assertIn("queued by the new_labels trigger", log_text(j))
        v = get_version(self, self.c, name, j["version"])
        self.assertEqual(v["snapshot"]["train_rows"] + v["snapshot"]["test_rows"], 40)
        self.assertEqual(aliases_of(self, self.c, name), {"live": j["version"]})
        # No new labels since: no second job.
        self.scheduler_looks()
        self.assertEqual(len(self.c.get("/v1/models/%s/jobs" % name).json()["jobs"]), 1)


    def test_a_failed_triggered_job_waits_for_new_labels(self):
        """A job that fails keeps no snapshot; its labels used to count again,
        and the same failing job was queued every 30 s (the scheduler's gap
        between automatic jobs, 3 s here) without a new label."""
        rows = [(e, d, True) for e, d, _ in synthetic("binary", 20, seed=41)]
        f, l, _ = self.streams(rows)
        name = uid("onecls")
        put_model(self, self.c, name, definition("binary", f, l,
                                                 retrain={"every_new_labels": 10}))

        def jobs():
            return self.c.get("/v1/models/%s/jobs" % name).json()["jobs"]
        job = wait_until(jobs, 30, "a job queued by the new_labels trigger")[0]
        j = wait_job(self, self.c, job["id"])
        self.assertEqual(j["state"], "failed", log_text(j))
        self.assertIn("one class", j["error"], j)
        # Past the gap, with no new label: still that one job.
        time.sleep(5)
        self.scheduler_looks()
        self.assertEqual([x["id"] for x in jobs()], [job["id"]])
        # Ten new labels (both classes now): the trigger fires again.
        post_facts(self, self.c, [fact(l, e, {"y": i % 2 == 0}, time_=at(2, i))
                                  for i, (e, _, _) in enumerate(rows[:10])])
        wait_until(lambda: len(jobs()) == 2, 30, "a second job after ten new labels")

    def test_a_wall_clock_stepped_back_does_not_stop_retraining(self):
        """Both triggers compared the wall clock with the newest job's time:
        with the clock an hour behind that job (a clock stepped back), no
        interval job ran and no new label counted for that hour."""
        rows = synthetic("regression", 40, seed=42)
        f, l, _ = self.streams(rows)
        by_time, by_labels = uid("clockint"), uid("clocklab")
        put_model(self, self.c, by_time, definition("regression", f, l,
                                                    retrain={"every_seconds": 10}))
        put_model(self, self.c, by_labels, definition("regression", f, l,
                                                      retrain={"every_new_labels": 10}))

        def jobs(name):
            return self.c.get("/v1/models/%s/jobs" % name).json()["jobs"]
        for name in (by_time, by_labels):
            job = wait_until(lambda: jobs(name), 30, "the first job of " + name)[0]
            self.assertEqual(wait_job(self, self.c, job["id"])["state"], "succeeded")
        # Each model's newest job now reads as queued an hour from now, as a
        # clock stepped back an hour after it sees it.
        db = sqlite3.connect(self.server.db, timeout=10)
        try:
            with db:
                for name in (by_time, by_labels):
                    db.execute(
                        "INSERT INTO jobs (model, revision, state, trigger, requested_by,"
                        " created_at, finished_at, error, facts_seen)"
                        " SELECT name, current_revision, 'failed', 'manual', 'test', ?1, ?1,"
                        " 'stands for a job queued before the clock went back',"
                        " (SELECT max(id) FROM facts) FROM models WHERE name = ?2",
                        (int((time.time() + 3600) * 1e6), name))
        finally:
            db.close()
        fake = {name: jobs(name)[0]["id"] for name in (by_time, by_labels)}
        # The interval fires without waiting out the hour...
        wait_until(lambda: jobs(by_time)[0]["id"] > fake[by_time], 30,
                   "an interval job after the clock went back")
        self.assertEqual(jobs(by_time)[0]["trigger"], "interval")
        # ...and ten labels stored since that job count.
        post_facts(self, self.c, [fact(l, e, {"y": y}, time_=at(3, i))
                                  for i, (e, _, y) in enumerate(rows[:10])])
        wait_until(lambda: jobs(by_labels)[0]["id"] > fake[by_labels], 30,
                   "a new_labels job after the clock went back")
        self.assertEqual(jobs(by_labels)[0]["trigger"], "new_labels")


# -------------------------------------------------------------- cancel

class CancelTest(SharedServerCase):
    server_args = ("--test-faults",)

    def live_version_1(self, prefix, seed):
        """A fresh model on x1 alone, trained once: version 1 is live.
        Returns (name, feature stream, label stream)."""
        f, l, _ = self.streams(synthetic("regression", 80, seed=seed))
        name = uid(prefix)
        put_model(self, self.c, name, definition("regression", f, l, features=[{"field": "x1"}]))
        j = wait_job(self, self.c, queue_training(self, self.c, name))
        self.assertEqual(j["state"], "succeeded", log_text(j))
        self.assertEqual(aliases_of(self, self.c, name), {"live": 1})
        return name, f, l

    def job_held_by(self, name, d, says):
        """Queues a job for definition `d` (with a test fault) and waits until
        its log says `says`; returns the job's id."""
        put_model(self, self.c, name, d)
        job = queue_training(self, self.c, name)
        wait_until(lambda: says in log_text(get_job(self, self.c, job)), 30,
                   "job %d: %s" % (job, says))
        return job

    def test_auto_policy_does_not_publish_over_a_live_moved_during_training(self):
        name, f, l = self.live_version_1("moved", 52)
        # The next revision (every feature: better) reads where live points,
        # then (a test fault) waits until a person moves it: here, takes it
        # down.
        job = self.job_held_by(name, definition("regression", f, l, test_fault="wait_for_live_move"),
                               "waiting for live to move")
        r = self.c.request("DELETE", "/v1/models/%s/aliases/live" % name,
                           json_body={"reason": "a person takes live down"})
        self.assertEqual((r.status, r.json()["changed"]), (200, True), r)
        # Sent again (its answer lost): done already, nothing recorded. (The
        # job, let go, may move the candidate alias meanwhile: live's moves
        # are counted.)
        def live_moves():
            deps = self.c.get("/v1/models/%s/deployments" % name).json()["deployments"]
            return [d["id"] for d in deps if d["alias"] == "live"]
        moves = live_moves()
        again = self.c.request("DELETE", "/v1/models/%s/aliases/live" % name,
                               json_body={"reason": "a person takes live down"})
        self.assertEqual((again.status, again.json()["changed"]), (200, False), again)
        self.assertEqual(live_moves(), moves)
        # An alias never set is still no alias.
        self.assertEqual(self.c.request("DELETE", "/v1/models/%s/aliases/never" % name,
                                        json_body={"reason": "x"}).status, 404)
        j = wait_job(self, self.c, job)
        self.assertEqual(j["state"], "succeeded", log_text(j))
        # It passed the gate against version 1, but live is the person's:
        # the new version waits as the candidate.
        self.assertIn("live moved while this job ran (v1 -> none): not published", log_text(j))
        v = get_version(self, self.c, name, 2)
        self.assertEqual(v["status"], "candidate", v)
        self.assertEqual(v["gate"]["live_alias_at_start"], 1, v["gate"])
        self.assertEqual(aliases_of(self, self.c, name), {"candidate": 2})

    def test_auto_policy_does_not_publish_after_a_person_took_live_down(self):
        # Its alias removed before the job: the next scheduled retrain put a
        # version live, judged against the baseline alone.
        name, f, l = self.live_version_1("taken-down", 56)
        r = self.c.request("DELETE", "/v1/models/%s/aliases/live" % name,
                           json_body={"reason": "a person takes the model down"})
        self.assertEqual(r.status, 200, r)
        put_model(self, self.c, name, definition("regression", f, l))
        j = train_and_wait(self, self.c, name)
        self.assertEqual((j["state"], j["version"]), ("succeeded", 2), log_text(j))
        self.assertTrue(get_version(self, self.c, name, 2)["gate"]["passed"])
        self.assertIn("stored version 2 (candidate), alias candidate: live was taken down (its "
                      "alias removed) before this job began: not published; promote it by hand",
                      log_text(j))
        self.assertEqual(aliases_of(self, self.c, name), {"candidate": 2})

    def test_auto_policy_does_not_publish_while_an_experiment_runs(self):
        # Its arms answer every request with an entity: the version put live
        # answered almost none.
        name, f, l = self.live_version_1("in-experiment", 57)
        full = definition("regression", f, l)
        put_model(self, self.c, name, dict(full, promotion={"mode": "manual"}))
        self.assertEqual(train_and_wait(self, self.c, name)["version"], 2)
        r = self.c.post_json("/v1/models/%s/experiments" % name, {"reason": "try v2", "arms": [
            {"name": "one", "version": 1, "weight": 1}, {"name": "two", "version": 2, "weight": 1}]})
        self.assertEqual(r.status, 201, r)
        experiment = r.json()["id"]
        put_model(self, self.c, name, full)
        j = train_and_wait(self, self.c, name)
        self.assertEqual((j["state"], j["version"]), ("succeeded", 3), log_text(j))
        self.assertTrue(get_version(self, self.c, name, 3)["gate"]["passed"])
        self.assertIn("alias candidate: experiment %d is running (its arms answer requests with "
                      "an entity): not published; promote it by hand" % experiment, log_text(j))
        self.assertEqual(aliases_of(self, self.c, name), {"live": 1, "candidate": 3})
        # The version says why too, and so does the deployment record.
        gate = get_version(self, self.c, name, 3)["gate"]
        held = ("experiment %d is running (its arms answer requests with an entity): not "
                "published; promote it by hand" % experiment)
        self.assertEqual(gate["held_back"], held, gate)
        self.assertTrue(gate["summary"].endswith("; " + held), gate)
        self.assertIsNone(get_version(self, self.c, name, 2)["gate"]["held_back"])
        last = deployments_of(self, self.c, name)[0]
        self.assertEqual((last["alias"], last["version"]), ("candidate", 3), last)
        self.assertTrue(last["reason"].endswith(
            "; experiment %d is running (its arms answer requests with an entity): not "
            "published; promote it by hand" % experiment), last)

    def test_auto_policy_does_not_publish_over_a_live_version_disabled_during_training(self):
        # A person's disable moves no alias: the finished version went live
        # over the version they had just taken out of service.
        name, f, l = self.live_version_1("downed", 54)
        job = self.job_held_by(name, definition("regression", f, l, test_fault="wait_for_live_move"),
                               "waiting for live to move")
        r = self.c.post_json("/v1/models/%s/versions/1/disable" % name,
                             {"reason": "a person takes version 1 out of service"})
        self.assertEqual(r.status, 200, r)
        j = wait_job(self, self.c, job)
        self.assertEqual(j["state"], "succeeded", log_text(j))
        self.assertIn("live v1 was disabled while this job ran: not published", log_text(j))
        self.assertEqual(get_version(self, self.c, name, 2)["status"], "candidate")
        self.assertEqual(aliases_of(self, self.c, name), {"live": 1, "candidate": 2})

        # Back in service, the next version goes live over version 1 and the
        # waiting candidate is superseded: promoting "candidate" would have
        # moved live back to version 2.
        r = self.c.post_json("/v1/models/%s/versions/1/enable" % name, {"reason": "back"})
        self.assertEqual(r.status, 200, r)
        put_model(self, self.c, name, definition("regression", f, l))
        j = train_and_wait(self, self.c, name)
        self.assertEqual(j["state"], "succeeded", log_text(j))
        self.assertEqual(aliases_of(self, self.c, name), {"live": 3})
        last = deployments_of(self, self.c, name)[0]
        self.assertEqual((last["alias"], last["version"], last["previous_version"], last["actor"],
                          last["reason"]),
                         ("candidate", None, 2, "policy:auto", "superseded: version 3 is now live"),
                         last)

    def test_auto_policy_does_not_publish_over_live_moved_away_and_back_during_training(self):
        # Only where live stood was compared: a person who took live down
        # and put it back (or disabled and enabled it) was published over.
        for how in ("move", "disable"):
            name, f, l = self.live_version_1("aba-" + how, 55)
            job = self.job_held_by(
                name, definition("regression", f, l, test_fault="wait_for_live_move_and_back"),
                "waiting for live to move")
            if how == "move":
                away = self.c.request("DELETE", "/v1/models/%s/aliases/live" % name,
                                      json_body={"reason": "a person takes live down"})
                back = self.c.request("PUT", "/v1/models/%s/aliases/live" % name,
                                      json_body={"version": 1, "reason": "and puts it back"})
                says = "live was moved while this job ran and is back on v1: not published"
            else:
                away = self.c.post_json("/v1/models/%s/versions/1/disable" % name,
                                        {"reason": "a person takes version 1 out of service"})
                back = self.c.post_json("/v1/models/%s/versions/1/enable" % name,
                                        {"reason": "and back"})
                says = ("live v1 was disabled and enabled again while this job ran: "
                        "not published")
            self.assertEqual((away.status, back.status), (200, 200), (away, back))
            j = wait_job(self, self.c, job)
            self.assertEqual(j["state"], "succeeded", log_text(j))
            self.assertIn("waiting for live to move back", log_text(j))
            self.assertIn(says, log_text(j))
            self.assertEqual(get_version(self, self.c, name, 2)["status"], "candidate")
            self.assertEqual(aliases_of(self, self.c, name), {"live": 1, "candidate": 2}, how)

    def test_auto_policy_does_not_publish_a_version_of_a_definition_replaced_during_training(self):
        # A new revision (here: another feature set) came while the job ran;
        # the finished version went live all the same, trained for a
        # definition the model no longer has.
        name, f, l = self.live_version_1("revised", 53)
        job = self.job_held_by(name, definition("regression", f, l,
                                                test_fault="wait_for_new_revision"),
                               "waiting for a new revision")
        put_model(self, self.c, name, definition("regression", f, l,
                                                 features=[{"field": "x1"}, {"field": "x2"}]))
        j = wait_job(self, self.c, job)
        self.assertEqual(j["state"], "succeeded", log_text(j))
        self.assertIn("the definition changed while this job ran (revision 2 -> 3): not "
                      "published; promote it by hand", log_text(j))
        self.assertEqual(get_version(self, self.c, name, 2)["status"], "candidate")
        self.assertEqual(aliases_of(self, self.c, name), {"live": 1, "candidate": 2})

    def test_auto_policy_publishes_when_only_serving_supervision_or_retrain_changed(self):
        # A deadline tuned while a retrain ran held the retrain's version
        # back ("the definition changed"), though nothing it was trained or
        # gated by had changed.
        name, f, l = self.live_version_1("tuned", 56)
        d = definition("regression", f, l, test_fault="wait_for_new_revision")
        job = self.job_held_by(name, d, "waiting for a new revision")
        put_model(self, self.c, name, dict(d, serving={"deadline_ms": 80},
                                           supervision={"max_error_rate": 0.2},
                                           retrain={"every_new_labels": 500}))
        j = wait_job(self, self.c, job)
        self.assertEqual(j["state"], "succeeded", log_text(j))
        self.assertNotIn("not published", log_text(j))
        self.assertIn("stored version 2 (candidate), alias live moved to it", log_text(j))
        self.assertEqual(aliases_of(self, self.c, name), {"live": 2})

    def test_a_cancel_after_the_fit_ended_stores_nothing(self):
        # The cancel was accepted (200) but came after the fit's process had
        # exited: the version was stored and the job ended "succeeded".
        f, l, _ = self.streams(synthetic("regression", 60, seed=54))
        name = uid("latecancel")
        job = self.job_held_by(name, definition("regression", f, l, test_fault="hold_after_fit"),
                               "holding the result")
        r = self.c.post("/v1/jobs/%d/cancel" % job)
        self.assertEqual((r.status, r.json()["cancel_requested"]), (202, True), r)
        self.assertEqual(r.header("Location"), "/v1/jobs/%d" % job, r)
        j = wait_job(self, self.c, job)
        self.assertEqual((j["state"], j["version"]), ("cancelled", None), log_text(j))
        self.assertEqual(self.c.get("/v1/models/%s/versions" % name).json()["versions"], [])
        self.assertEqual(aliases_of(self, self.c, name), {})

    def test_cancel_a_queued_and_a_running_job(self):
        f, l, _ = self.streams(synthetic("regression", 60, seed=50))
        sleepy, normal = uid("sleepy"), uid("normal")
        put_model(self, self.c, sleepy, definition(
            "regression", f, l, test_fault="sleep", training={"deadline_seconds": 120}))
        put_model(self, self.c, normal, definition("regression", f, l))

        running = queue_training(self, self.c, sleepy)

        def child_pid():
            for x in get_job(self, self.c, running)["log"]:
                m = re.match(r"training process (\d+) started", x["message"])
                if m:
                    return int(m.group(1))
            return None
        pid = wait_until(child_pid, 20, "the training process of job %d started" % running)
        self.assertEqual(get_job(self, self.c, running)["state"], "running")

        # The worker is busy: this one waits in the queue; cancel it there.
        queued = queue_training(self, self.c, normal)
        self.assertEqual(get_job(self, self.c, queued)["state"], "queued")
        # A second request for the same model joins the queued job.
        r = self.c.post("/v1/models/%s/train" % normal)
        self.assertEqual(r.status, 202, r)
        self.assertEqual((r.json()["job"], r.json()["already_queued"]), (queued, True), r)
        self.assertEqual(r.header("Location"), "/v1/jobs/%d" % queued)  # where it is followed
        # A change of definition carries it over: that job would train the
        # old revision (it did, and the request for the new one joined it).
        revision = get_job(self, self.c, queued)["revision"]
        r = put_model(self, self.c, normal, definition(
            "regression", f, l, features=[{"field": "x1"}, {"field": "x2"}]))
        self.assertEqual(r.json()["revision"], revision + 1, r)
        newer = r.json()["queued_job"]
        self.assertIsNotNone(newer, r)
        self.assertEqual(get_job(self, self.c, newer)["revision"], revision + 1)
        self.assertEqual(get_job(self, self.c, newer)["trigger"], "manual")
        # A request now joins the carried job.
        r = self.c.post("/v1/models/%s/train" % normal)
        self.assertEqual(r.status, 202, r)
        self.assertEqual((r.json()["job"], r.json()["already_queued"]), (newer, True), r)
        # ... and the job still queued for the old revision is superseded:
        # it would train, and might publish, the replaced definition.
        j = get_job(self, self.c, queued)
        self.assertEqual(j["state"], "cancelled", j)
        self.assertEqual(j["error"], "superseded by job %d, which trains revision %d" % (newer, revision + 1), j)
        self.assertIn("superseded by job %d" % newer, log_text(j))
        self.assertIsNone(j["started_at"], j)
        r = self.c.post("/v1/jobs/%d/cancel" % newer)
        self.assertEqual(r.status, 202, r)
        self.assertEqual(r.json()["state"], "cancelled", r)
        j = get_job(self, self.c, newer)
        self.assertEqual(j["state"], "cancelled", j)
        self.assertIn("before it started", j["error"], j)
        self.assertIsNone(j["started_at"], j)
        # A cancel sent again (its answer lost) finds it done: 200, not a 409.
        again = self.c.post("/v1/jobs/%d/cancel" % newer)
        self.assertEqual((again.status, again.json()["state"]), (200, "cancelled"), again)
        self.assertEqual(get_job(self, self.c, newer)["log"], j["log"])

        def job_outcomes():
            text = self.c.get("/metrics").text
            return {o: float(n) for o, n in re.findall(
                r'^kennel_training_jobs_total\{outcome="(\w+)"\} (\S+)$', text, re.M)}
        outcomes = job_outcomes()

        # Cancel the running one: its process is killed, its job cancelled.
        started = time.monotonic()
        r = self.c.post("/v1/jobs/%d/cancel" % running)
        self.assertEqual(r.status, 202, r)
        # Sent again at once (its answer lost): under way (202) or done
        # (200), and recorded once.
        again = self.c.post_json("/v1/jobs/%d/cancel" % running, {"reason": "again"})
        self.assertIn(again.status, (200, 202), again)
        j = wait_job(self, self.c, running, timeout=15)
        self.assertEqual(log_text(j).count("cancel requested by"), 1, log_text(j))
        self.assertLess(time.monotonic() - started, 10)
        self.assertEqual(j["state"], "cancelled", j)
        self.assertTrue(j["cancel_requested"], j)
        self.assertEqual(j["error"], "cancelled on request", j)
        self.assertIsNotNone(j["finished_at"], j)
        self.assertIsNone(j["version"], j)
        with self.assertRaises(ProcessLookupError):
            os.kill(pid, 0)  # the training process is gone (and reaped)
        # Counted as cancelled, not as a failure worth an alert.
        wait_until(lambda: job_outcomes()["cancelled"] == outcomes["cancelled"] + 1, 10,
                   "the cancel counted in /metrics")
        self.assertEqual(job_outcomes()["failed"], outcomes["failed"])

        # A cancelled job's cancel, sent again, is done already (200); a job
        # that finished otherwise cannot be cancelled (below); unknown ones
        # do not exist.
        r = self.c.post("/v1/jobs/%d/cancel" % running)
        self.assertEqual((r.status, r.json()["state"]), (200, "cancelled"), r)
        r = self.c.post("/v1/jobs/99999999/cancel")
        self.assertEqual(r.status, 404, r)
        r = self.c.post_json("/v1/jobs/%d/cancel" % running, {"reason": 5})
        self.assertErrorShape(r, 400, field="reason")

        # The server keeps serving and the worker takes the next job.
        self.assertEqual(self.c.get("/healthz").status, 200)
        j = train_and_wait(self, self.c, normal)
        self.assertEqual(j["state"], "succeeded", log_text(j))
        self.assertEqual(aliases_of(self, self.c, normal), {"live": j["version"]})
        r = self.c.post("/v1/jobs/%d/cancel" % j["id"])
        self.assertErrorShape(r, 409, code="conflict", field="id",
                              message="has already finished (succeeded)")


# ------------------------------------------------------------ demo and CLI

class DemoAndCliTest(KennelTestCase):

    def test_demo_model_goes_live(self):
        server, c = self.serve(os.path.join(self.tmp, "demo.db"), ("--demo",))

        def live():
            r = c.get("/v1/models/likes")
            return r.status == 200 and r.json()["aliases"].get("live")
        version = wait_until(live, 180, "the demo model \"likes\" has a live version", 0.5)
        m = c.get("/v1/models/likes").json()
        self.assertEqual(m["definition"]["task"], "regression")
        self.assertEqual(m["definition"]["label"], {"stream": "likes", "field": "likes"})
        v = get_version(self, c, "likes", version)
        self.assertEqual(v["status"], "candidate", v)
        self.assertGreater(v["metrics"]["r2"], 0.5, v["metrics"])
        self.assertLess(v["metrics"]["rmse"], v["baseline_metrics"]["rmse"], v)
        self.assertEqual(v["snapshot"]["train_rows"] + v["snapshot"]["test_rows"], 2000)
        deps = deployments_of(self, c, "likes")
        self.assertEqual(deps[-1]["actor"], "policy:auto", deps)

    def test_retention_removes_old_artifacts_and_nothing_serves_from_them(self):
        db = os.path.join(self.tmp, "keep.db")
        server, c = self.serve(db, ("--keep-versions", "1"))
        f, l = uid("feat"), uid("lab")
        load_rows(self, c, f, l, synthetic("regression", 80, seed=61))
        name = uid("keep")
        put_model(self, c, name, definition("regression", f, l), expect=(201,))
        # v1 goes live; v2 and v3, equal to it, are rejected. After v3, v2
        # is neither live, nor on live's path, nor the newest: it goes.
        for _ in range(3):
            self.assertEqual(train_and_wait(self, c, name)["state"], "succeeded")

        def removed_at():
            return {v["version"]: v["artifact"]["removed_at"]
                    for v in c.get("/v1/models/%s/versions" % name).json()["versions"]}
        # Retention runs in its own write once the job has succeeded (a
        # failure of it must not fail the job): a moment after.
        wait_until(lambda: removed_at()[2] is not None, 30, "v2's artifact removed")
        removed = removed_at()
        self.assertIsNone(removed[1], removed)
        self.assertIsNotNone(removed[2], removed)
        self.assertIsNone(removed[3], removed)
        v2 = get_version(self, c, name, 2)
        self.assertGreater(v2["artifact"]["bytes"], 0, v2)  # the row says what it was
        self.assertIn("r2", v2["metrics"])
        # Nothing may name it again: not live, not an arm.
        r = c.request("PUT", "/v1/models/%s/aliases/live" % name, json_body={"version": 2, "reason": "t"})
        self.assertErrorShape(r, 409, field="version", message="artifact was removed by retention")
        r = c.post_json("/v1/models/%s/experiments" % name,
                        {"arms": [{"version": 1, "weight": 1}, {"version": 2, "shadow": True}],
                         "reason": "t"})
        self.assertErrorShape(r, 409, field="arms[1].version", message="removed by retention")
        p = c.post_json("/v1/models/%s/predict" % name, {"entity": "e", "features": {"x1": 1, "x2": 2}})
        self.assertEqual((p.status, p.json()["version"], p.json()["fallback"]), (200, 1, False), p)
        # Live moves to v3 by hand; at the next start, live's path beyond
        # its last step (v1) goes too, and a rollback has nowhere to go.
        r = c.request("PUT", "/v1/models/%s/aliases/live" % name, json_body={"version": 3, "reason": "t"})
        self.assertEqual(r.status, 200, r)
        c.close()
        self.assertEqual(server.stop(), 0, server.stderr())
        server, c = self.serve(db, ("--keep-versions", "1"))
        self.assertIn("removed the artifacts of %s versions 1 (" % name, server.stderr())
        v1 = get_version(self, c, name, 1)
        self.assertIsNotNone(v1["artifact"]["removed_at"], v1)
        r = c.post_json("/v1/models/%s/rollback" % name, {"reason": "t"})
        self.assertErrorShape(r, 409, message="no earlier enabled live version to roll back to")
        # ...and says why: retention, not a lack of earlier versions.
        self.assertIn("retention removed the artifacts of earlier ones", r.json()["error"]["message"])
        self.assertIn("--keep-versions", r.json()["error"]["message"])
        rollback = c.get("/v1/models/" + name).json()["rollback"]
        self.assertEqual(rollback, {"to": None, "passed_over_task": False,
                                    "passed_over_removed": True})
        p = c.post_json("/v1/models/%s/predict" % name, {"entity": "e", "features": {"x1": 1, "x2": 2}})
        self.assertEqual((p.status, p.json()["version"], p.json()["fallback"]), (200, 3, False), p)

    def test_kennel_train_cli_runs_a_job_in_the_foreground(self):
        db = os.path.join(self.tmp, "cli.db")
        server, c = self.serve(db)
        rows = synthetic("binary", 120, seed=60)
        f, l = uid("feat"), uid("lab")
        load_rows(self, c, f, l, rows)
        put_model(self, c, "cli-model", definition("binary", f, l), expect=(201,))
        # While the server holds the database, the CLI refuses and says what to do.
        p = run_cli(["train", "cli-model", "--db", db], timeout=60)
        self.assertEqual(p.returncode, 1, p.stdout + p.stderr)
        self.assertIn("in use", p.stderr)
        self.assertIn("/v1/models/cli-model/train", p.stderr)
        c.close()
        self.assertEqual(server.stop(), 0, server.stderr())

        p = run_cli(["train", "cli-model", "--db", db], timeout=120)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        self.assertRegex(p.stdout, r"job \d+ succeeded: version 1\b")
        # What came of it, as the job's message says.
        self.assertIn("(stored version 1 (candidate), alias live moved to it", p.stdout)

        with open_db(db) as conn:
            rows_ = conn.execute("SELECT version, status FROM model_versions WHERE model = ?",
                                 ("cli-model",)).fetchall()
            self.assertEqual(rows_, [(1, "candidate")])
            self.assertEqual(conn.execute(
                "SELECT version FROM aliases WHERE model = 'cli-model' AND alias = 'live'"
            ).fetchall(), [(1,)])
            self.assertEqual(conn.execute(
                "SELECT state, requested_by FROM jobs WHERE model = 'cli-model'").fetchall(),
                [("succeeded", "cli")])

        # A model that does not exist: a clear refusal, nothing stored.
        p = run_cli(["train", "no-such-model", "--db", db], timeout=60)
        self.assertNotEqual(p.returncode, 0, p.stdout)
        self.assertIn("no-such-model", p.stderr)

        # The server sees what the CLI stored.
        server2, c2 = self.serve(db)
        v = get_version(self, c2, "cli-model", 1)
        self.assertEqual(v["aliases"], ["live"], v)
        self.assertGreater(v["metrics"]["accuracy"], 0.75, v["metrics"])


if __name__ == "__main__":
    unittest.main()
