"""Integration tests for the canary promotion policy: a version that passes
its gate becomes the candidate and an experiment ("control" on live's
version, "canary" on the new one) takes a share of the traffic; once each
side's outcomes come from the policy's number of entities the supervisor
publishes it, unless it is worse than live by more than max_loss. A person's
move of live, change of the arms, disable or end takes the decision out of
the policy's hands; a canary undecided at its deadline is not published.

The real binary on a free loopback port with a temporary database, over real
HTTP (see kennel_harness.py). Every wait is bounded. Each test uses its own
streams and models.
"""

import datetime
import sqlite3
import time
import unittest

from kennel_harness import fact, fmix64, fnv1a64, uid
from test_calibration import skewed_rows
from test_learning import (SharedServerCase, assert_definition_errors, definition, get_version,
                           load_rows, log_text, post_facts, put_model, train_and_wait, wait_until)
from test_predict import set_live, wait_served
from test_supervisor import supervisor_looks

X1 = [{"field": "x1"}]
BOTH = [{"field": "x1"}, {"field": "x2"}]
# Judged at 40 entities a side: a test's traffic of 300 entities gives the
# canary (30%) about 90. Entities are named alike in every test (the
# streams are each test's own), so the holdout split, and whether version 2
# beats version 1, is the same on every run.
CANARY = {"mode": "canary", "canary": {"share": 0.3, "entities": 40}}


def canary_arm_of(entity, experiment, share):
    """The documented split of a canary: the top 53 bits of
    fmix64(fnv1a64("experiment-arm:canary-<experiment id>:" + entity)) as a
    fraction of 1; control's slice first."""
    u = (fmix64(fnv1a64("experiment-arm:canary-%d:%s" % (experiment, entity))) >> 11) / float(1 << 53)
    return "control" if u < 1 - share else "canary"


class CanaryCase(SharedServerCase):
    """Streams, models and waits shared by the tests below. The supervisor
    looks at canaries every second here, not every 10."""

    server_args = ("--live-check-seconds", "1", "--retrain-gap-seconds", "3")

    def streams(self, rows):
        feats, labels = uid("feat"), uid("lab")
        load_rows(self, self.c, feats, labels, rows)
        return feats, labels

    def put(self, name, feats, labels, features, promotion=CANARY, expect=(200, 201), **extra):
        d = definition("binary", feats, labels, features=features, holdout=0.3,
                       promotion=promotion, **extra)
        put_model(self, self.c, name, d, expect=expect)

    def trained(self, name, version):
        job = train_and_wait(self, self.c, name)
        self.assertEqual(job["state"], "succeeded", log_text(job))
        self.assertEqual(job["version"], version, job)
        wait_served(self, self.c, name, version)
        return job

    def experiment(self, name):
        r = self.c.get("/v1/models/%s/experiments" % name)
        self.assertEqual(r.status, 200, r)
        es = r.json()["experiments"]
        return es[0] if es else None

    def live(self, name):
        r = self.c.get("/v1/models/%s/aliases" % name)
        self.assertEqual(r.status, 200, r)
        return {a["alias"]: a["version"] for a in r.json()["aliases"]}.get("live")

    def canary_running(self, name, features_first=X1, features_next=BOTH, rows=None,
                       promotion=CANARY, next_extra=None, **extra):
        """Version 1 (x1 only) went live at once (no live version to judge a
        canary against); version 2 (x1 and x2, better on the holdout; its
        definition also takes `next_extra`) passed its gate and is in a
        canary. Returns (labels, experiment)."""
        rows = rows or skewed_rows(500, 1, "r1-")
        feats, labels = self.streams(rows)
        self.put(name, feats, labels, features_first, promotion, **extra)
        job = self.trained(name, 1)
        self.assertIn("no live version to judge a canary against", log_text(job))
        self.assertEqual(self.live(name), 1)
        self.assertIsNone(self.experiment(name))
        self.put(name, feats, labels, features_next, promotion, **dict(extra, **(next_extra or {})))
        job = self.trained(name, 2)
        e = self.experiment(name)
        self.assertIsNotNone(e, log_text(job))
        self.assertIn("canary experiment %d gives it 30%% of the requests with an entity beside "
                      "live version 1 and judges it on outcomes from %d entities a side"
                      % (e["id"], promotion["canary"]["entities"]), log_text(job))
        self.assertTrue(e["active"], e)
        self.assertEqual(e["started_by"], "policy:canary", e)
        self.assertEqual([(a["name"], a["version"]) for a in e["arms"]],
                         [("control", 1), ("canary", 2)], e)
        self.assertAlmostEqual(e["arms"][1]["weight"], 0.3, places=12)
        c = e["canary"]
        self.assertEqual((c["version"], c["against"], c["job"], c["entities"], c["outcome"]),
                         (2, 1, job["id"], promotion["canary"]["entities"], None), c)
        self.assertEqual(self.live(name), 1)
        v2 = get_version(self, self.c, name, 2)
        self.assertIn("candidate", v2.get("aliases", []), v2)
        return labels, e

    def traffic(self, name, labels, n, seed, truth=lambda y: y, experiment=None):
        """n fresh entities asked once each, their outcomes sent (by
        prediction id; `truth` maps the drawn label). Returns the answers by
        arm (checked against the documented split of a canary of 30%, when
        `experiment` names it)."""
        fresh = skewed_rows(n, seed, "t%d-" % seed)
        # A deadline no busy machine misses: these answers must be the model's
        # (a fresh version's first batch runs on the pool, and under a load of
        # parallel tests it once missed the model's 50 ms).
        r = self.c.post_json("/v1/models/%s/predict" % name, {
            "instances": [{"entity": e, "features": x} for e, x, _ in fresh],
            "deadline_ms": 10000})
        self.assertEqual(r.status, 200, r)
        answers = r.json()["predictions"]
        post_facts(self, self.c, [
            fact(labels, e, {"y": truth(y), "prediction_id": p["prediction_id"]},
                 time_="2026-12-01T00:00:00Z") for p, (e, _, y) in zip(answers, fresh)])
        arms = {}
        for p, (e, _, _) in zip(answers, fresh):
            self.assertFalse(p["fallback"], p)
            arms.setdefault(p["arm"], []).append(p["version"])
            if experiment is not None:
                self.assertEqual(p["arm"], canary_arm_of(e, experiment, 0.3), (e, p))
        return arms

    def ended(self, name, timeout=40):
        def done():
            e = self.experiment(name)
            return e if e and not e["active"] else None
        try:
            return wait_until(done, timeout, "the canary's end")
        except AssertionError:
            print(self.server.stderr()[-4000:])
            raise

    def canary_actions(self, name):
        r = self.c.get("/v1/serving")
        self.assertEqual(r.status, 200, r)
        return [a for a in r.json()["supervisor"]["actions"]
                if a["kind"] == "canary" and a["model"] == name]


class CanaryTest(CanaryCase):

    def test_a_version_not_worse_on_live_traffic_goes_live_after_its_canary(self):
        name = uid("can")
        labels, e = self.canary_running(name)
        arms = self.traffic(name, labels, 300, 2, experiment=e["id"])
        # The split: each arm answers with its version.
        self.assertEqual(set(arms), {"control", "canary"}, arms)
        self.assertEqual(set(arms["control"]), {1})
        self.assertEqual(set(arms["canary"]), {2})
        self.assertGreater(len(arms["canary"]), 40)
        e = self.ended(name)
        c = e["canary"]
        self.assertEqual(c["outcome"], "promoted", e)
        self.assertEqual(e["ended_by"], "policy:canary", e)
        self.assertRegex(e["end_reason"],
                         r"^canary of version 2 \(experiment %d\): roc_auc [+-][0-9.e-]+ against "
                         r"live's \(95%% interval \[[0-9.e-]+, [0-9.e-]+\]\) over outcomes from "
                         r"[0-9]+ and [0-9]+ entities \(canary, control\): not shown worse than live "
                         r"by more than 0$" % e["id"])
        # The evidence is kept with the end, as a person's end keeps it.
        cmp = [x for x in e["results"]["comparisons"] if x["arm"] == "canary"]
        self.assertEqual(len(cmp), 1, e["results"])
        self.assertGreaterEqual(cmp[0]["entities"], 40)
        self.assertGreaterEqual(cmp[0]["against_entities"], 40)
        self.assertEqual(self.live(name), 2)
        wait_served(self, self.c, name, 2)
        r = self.c.get("/v1/models/%s/deployments" % name)
        self.assertEqual(r.status, 200, r)
        moves = [d for d in r.json()["deployments"] if d["alias"] == "live"]
        self.assertEqual((moves[0]["version"], moves[0]["previous_version"], moves[0]["actor"]),
                         (2, 1, "policy:canary"), moves[0])
        actions = self.canary_actions(name)
        self.assertEqual(len(actions), 1, actions)
        self.assertEqual(actions[0]["version"], 2)
        self.assertEqual(actions[0]["outcome"], "canary ended; live moved to version 2")
        r = self.c.get("/metrics")
        self.assertEqual(r.status, 200, r)
        self.assertRegex(r.text, r'\nkennel_supervisor_actions_total\{kind="canary"\} [1-9]')
        # Predictions outside an experiment now come from version 2.
        r = self.c.post_json("/v1/models/%s/predict" % name,
                             {"entity": "after", "features": {"x1": 1, "x2": 0}})
        self.assertEqual((r.json()["version"], r.json()["arm"]), (2, "live"), r.json())

    def test_a_canary_is_judged_on_predictions_old_enough_for_their_outcomes(self):
        # Outcomes said to come 8 s after the prediction: the canary reads
        # no prediction younger than that, so its decision comes 8 s or
        # more after the traffic, not at the next look (a second later).
        name = uid("can")
        labels, e = self.canary_running(name, supervision={"outcome_delay_seconds": 8})
        # (Timed here, not from the log: it is written behind the answers.)
        asked = time.time()
        self.traffic(name, labels, 300, 10)
        e = self.ended(name, timeout=60)
        self.assertEqual(e["canary"]["outcome"], "promoted", e)

        def seconds(t):
            return datetime.datetime.fromisoformat(t.replace("Z", "+00:00")).timestamp()
        self.assertGreaterEqual(seconds(e["ended_at"]) - asked, 8, (asked, e))

    def test_a_version_worse_on_live_traffic_is_not_published(self):
        # Labels sent again, all flipped: version 2 learns the opposite and
        # beats version 1 on the flipped holdout; live traffic's outcomes
        # follow the true relation.
        name = uid("can")
        rows = skewed_rows(500, 3, "r3-")
        feats, labels = self.streams(rows)
        self.put(name, feats, labels, BOTH)
        self.trained(name, 1)
        post_facts(self, self.c, [fact(labels, e, {"y": not y}, time_="2026-11-28T00:00:00Z")
                                  for e, _, y in rows])
        job = self.trained(name, 2)
        v2 = get_version(self, self.c, name, 2)
        self.assertTrue(v2["gate"]["passed"], v2["gate"])
        e = self.experiment(name)
        self.assertIsNotNone(e, log_text(job))
        self.assertEqual(e["canary"]["version"], 2, e)
        self.traffic(name, labels, 300, 4)
        e = self.ended(name)
        self.assertEqual(e["canary"]["outcome"], "failed", e)
        self.assertRegex(e["end_reason"],
                         r"roc_auc -[0-9.e-]+ against live's .*: worse than live by more than 0$")
        self.assertEqual(self.live(name), 1)
        self.assertIn("candidate", get_version(self, self.c, name, 2).get("aliases", []))
        actions = self.canary_actions(name)
        self.assertEqual(actions[-1]["outcome"], "canary ended; live stays on live version 1")

    def test_a_persons_change_of_the_arms_hands_the_canary_over(self):
        name = uid("can")
        labels, e = self.canary_running(name)
        r = self.c.request("PUT", "/v1/models/%s/experiments/%d" % (name, e["id"]), json_body={
            "arms": [{"name": "control", "version": 1, "weight": 0.5},
                     {"name": "canary", "version": 2, "weight": 0.5}],
            "reason": "more traffic, I will decide"})
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json()["canary"]["outcome"], "handed_over", r.json())
        self.traffic(name, labels, 300, 5)
        supervisor_looks(self, self.c, 3)
        e = self.experiment(name)
        self.assertTrue(e["active"], e)
        self.assertEqual(self.live(name), 1)
        self.assertEqual(self.canary_actions(name), [])
        r = self.c.post_json("/v1/models/%s/experiments/%d/end" % (name, e["id"]),
                             {"reason": "done"})
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json()["canary"]["outcome"], "handed_over", r.json())

    def test_a_persons_end_or_move_of_live_or_disable_ends_the_canary_unpublished(self):
        # Ended by a person: "ended", nothing published.
        name = uid("can")
        labels, e = self.canary_running(name)
        r = self.c.post_json("/v1/models/%s/experiments/%d/end" % (name, e["id"]),
                             {"reason": "not today"})
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json()["canary"]["outcome"], "ended", r.json())
        self.assertEqual(self.live(name), 1)
        # Each act below on a canary of its own; the supervisor's next look
        # ends them all.
        moved, back, flicker, redefined, off = (uid("can") for _ in range(5))
        for model in (moved, back, flicker, redefined, off):
            self.canary_running(model)
        # Live moved by a person while the canary runs.
        set_live(self, self.c, moved, 2, "I trust it")
        # Moved away and back before the supervisor looked: still the
        # person's call, not the policy's.
        set_live(self, self.c, back, 2, "try it")
        set_live(self, self.c, back, 1, "no, back")
        # The canary's version disabled and enabled again at once.
        for action in ("disable", "enable"):
            r = self.c.post_json("/v1/models/%s/versions/2/%s" % (flicker, action),
                                 {"reason": "a look"})
            self.assertEqual(r.status, 200, r)
        # The definition changed (here, to the manual policy).
        d = self.c.get("/v1/models/%s" % redefined).json()["definition"]
        d["promotion"] = {"mode": "manual"}
        put_model(self, self.c, redefined, d, expect=(200,))
        # The canary's version disabled.
        r = self.c.post_json("/v1/models/%s/versions/2/disable" % off, {"reason": "looks off"})
        self.assertEqual(r.status, 200, r)

        e = self.ended(moved)
        self.assertEqual(e["canary"]["outcome"], "live_moved", e)
        self.assertIn("live was moved by admin while the canary ran (version 1 -> version 2)",
                      e["end_reason"])
        self.assertEqual(self.live(moved), 2)
        self.assertEqual([a["outcome"] for a in self.canary_actions(moved)],
                         ["canary ended; version 2 was published by hand"])
        e = self.ended(back)
        self.assertEqual(e["canary"]["outcome"], "live_moved", e)
        # A look between the two moves (the supervisor looks every second;
        # two requests on a loaded machine can straddle one) sees live on 2.
        moved_back = [d for d in self.c.get("/v1/models/%s/deployments" % back)
                      .json()["deployments"] if d["version"] == 1 and d["reason"] == "no, back"]
        self.assertEqual(len(moved_back), 1, moved_back)
        looked_after = (datetime.datetime.fromisoformat(e["ended_at"].replace("Z", "+00:00")) >=
                        datetime.datetime.fromisoformat(moved_back[0]["time"].replace("Z", "+00:00")))
        self.assertIn("live was moved by admin while the canary ran (version 1 -> version 2)" +
                      ("; it is on version 1 now" if looked_after else ""), e["end_reason"])
        self.assertEqual(self.live(back), 1)
        e = self.ended(flicker)
        self.assertEqual(e["canary"]["outcome"], "taken_out", e)
        self.assertIn("version 2 was disabled by admin: a look", e["end_reason"])
        e = self.ended(redefined)
        self.assertEqual(e["canary"]["outcome"], "definition_changed", e)
        self.assertIn("the definition changed while the canary ran (revision 2 -> 3)",
                      e["end_reason"])
        self.assertEqual(self.live(redefined), 1)
        e = self.ended(off)
        self.assertEqual(e["canary"]["outcome"], "taken_out", e)
        self.assertIn("version 2 was disabled by admin: looks off", e["end_reason"])
        self.assertEqual(self.live(off), 1)
        self.assertEqual([a["outcome"] for a in self.canary_actions(off)],
                         ["canary ended; live stays on live version 1"])

    def test_a_revision_changing_only_its_bounds_or_serving_takes_the_canary_on(self):
        name = uid("can")
        labels, e = self.canary_running(name)
        started = datetime.datetime.fromisoformat(e["started_at"].replace("Z", "+00:00"))
        # A person asks for more entities and an hour, and a longer deadline.
        d = self.c.get("/v1/models/%s" % name).json()["definition"]
        d["promotion"]["canary"].update({"entities": 80, "max_seconds": 3600})
        d["serving"] = dict(d.get("serving", {}), deadline_ms=3000)
        r = put_model(self, self.c, name, d, expect=(200,))
        self.assertEqual(r.json()["revision"], 3, r.json())

        def taken_on():
            x = self.experiment(name)
            return x if x["canary"]["revision"] == 3 else None
        e = wait_until(taken_on, 20, "the canary taken on under revision 3")
        self.assertTrue(e["active"], e)
        c = e["canary"]
        self.assertEqual((c["entities"], c["max_seconds"], c["share"], c["outcome"]),
                         (80, 3600, 0.3, None), c)
        deadline = datetime.datetime.fromisoformat(c["deadline"].replace("Z", "+00:00"))
        self.assertAlmostEqual((deadline - started).total_seconds(), 3600, delta=5)
        self.assertEqual([h["event"] for h in e["history"]], ["started", "changed"], e)
        self.assertEqual(e["history"][1]["actor"], "policy:canary")
        self.assertIn("goes on under revision 3 of the definition", e["history"][1]["reason"])
        self.assertEqual([a["outcome"] for a in self.canary_actions(name)],
                         ["canary judged on 80 entities a side, max_loss 0, deadline %s"
                          % c["deadline"]])
        # About 51 of 170 entities to the canary: enough for 40, not for 80.
        self.traffic(name, labels, 170, 11, experiment=e["id"])
        supervisor_looks(self, self.c, 3)
        self.assertTrue(self.experiment(name)["active"])
        self.traffic(name, labels, 300, 12, experiment=e["id"])
        e = self.ended(name)
        self.assertEqual(e["canary"]["outcome"], "promoted", e)
        self.assertEqual(self.live(name), 2)
        # A revision that changes what made the version ends the next one.
        other = uid("can")
        self.canary_running(other)
        d = self.c.get("/v1/models/%s" % other).json()["definition"]
        d["promotion"]["canary"]["share"] = 0.2
        put_model(self, self.c, other, d, expect=(200,))
        e = self.ended(other)
        self.assertEqual(e["canary"]["outcome"], "definition_changed", e)
        self.assertIn("the definition changed while the canary ran (revision 2 -> 3)",
                      e["end_reason"])

    def test_a_canary_kept_before_canaries_named_their_revision_is_taken_on_too(self):
        # Its JSON has no "revision": it is judged under its version's, and a
        # bounds-only revision takes it on as any other (the replacement once
        # compared the stored text with a rewrite of it, which differed).
        name = uid("can")
        _, e = self.canary_running(name)
        db = sqlite3.connect(self.server.db, timeout=10)
        try:
            with db:
                n = db.execute("UPDATE experiments SET canary = json_remove(canary, '$.revision')"
                               " WHERE id = ?", (e["id"],)).rowcount
            self.assertEqual(n, 1)
            self.assertNotIn('"revision"', db.execute(
                "SELECT canary FROM experiments WHERE id = ?", (e["id"],)).fetchone()[0])
        finally:
            db.close()
        self.assertEqual(self.experiment(name)["canary"]["revision"], 2)
        d = self.c.get("/v1/models/%s" % name).json()["definition"]
        d["promotion"]["canary"]["max_seconds"] = 3600
        self.assertEqual(put_model(self, self.c, name, d, expect=(200,)).json()["revision"], 3)

        def taken_on():
            x = self.experiment(name)
            return x if x["canary"]["revision"] == 3 else None
        e = wait_until(taken_on, 20, "the old canary taken on under revision 3")
        self.assertTrue(e["active"], e)
        self.assertEqual((e["canary"]["max_seconds"], e["canary"]["outcome"]), (3600, None), e)
        self.assertEqual([h["event"] for h in e["history"]], ["started", "changed"], e)

    def test_retraining_waits_while_a_canary_is_judged(self):
        # Judged on 1,000 entities a side: undecided throughout.
        name = uid("can")
        promotion = {"mode": "canary", "canary": {"share": 0.3, "entities": 1000}}
        labels, e = self.canary_running(name, promotion=promotion,
                                        retrain={"every_new_labels": 50})
        # A job asked for runs, and its version is held back as the candidate.
        job = self.trained(name, 3)
        self.assertIn("the canary of version 2 (experiment %d) is being judged: not published; "
                      "promote it by hand" % e["id"], log_text(job))
        self.assertIn("candidate", get_version(self, self.c, name, 3).get("aliases", []))
        self.assertEqual(self.experiment(name)["canary"]["outcome"], None)
        # 100 outcomes are 100 new labels, past the trigger: it waits for
        # the canary (the scheduler looks every second; jobs of a model are
        # 3 s apart at least here, --retrain-gap-seconds).
        self.traffic(name, labels, 100, 9)
        time.sleep(5)

        def jobs():
            r = self.c.get("/v1/models/%s/jobs" % name)
            self.assertEqual(r.status, 200, r)
            return r.json()["jobs"]
        self.assertEqual(len(jobs()), 3, jobs())
        # Once it ends, the trigger fires.
        r = self.c.post_json("/v1/models/%s/experiments/%d/end" % (name, e["id"]),
                             {"reason": "enough"})
        self.assertEqual(r.status, 200, r)
        queued = wait_until(lambda: [j for j in jobs() if j["trigger"] == "new_labels"], 20,
                            "the retrain trigger after the canary")
        self.assertEqual(len(queued), 1, queued)

    def test_drift_found_while_a_canary_is_judged_is_reported_without_retraining(self):
        name = uid("can")
        promotion = {"mode": "canary", "canary": {"share": 0.3, "entities": 1000}}
        labels, e = self.canary_running(name, promotion=promotion, retrain={"on_drift": True})
        # Live's inputs moved far past training's (requests without an
        # entity are live's: the control's version).
        for start in range(0, 300, 100):
            r = self.c.post_json("/v1/models/%s/predict" % name, {"instances": [
                {"features": {"x1": 3.0 + i / 100.0, "x2": 0.1}} for i in range(100)]})
            self.assertEqual(r.status, 200, r)

        def drift():
            r = self.c.get("/v1/serving")
            return [a for a in r.json()["supervisor"]["actions"]
                    if a["kind"] == "drift" and a["model"] == name]
        action = wait_until(drift, 30, "the drift report")[0]
        self.assertIn("; not retraining while canary experiment %d is judged" % e["id"],
                      action["outcome"])
        r = self.c.get("/v1/models/%s/jobs" % name)
        self.assertEqual(len(r.json()["jobs"]), 2, r.json())

    def test_a_canary_undecided_at_its_deadline_is_not_published(self):
        name = uid("can")
        promotion = {"mode": "canary", "canary": {"share": 0.3, "entities": 40,
                                                  "max_seconds": 10}}
        rows = skewed_rows(500, 1, "r1-")
        feats, labels = self.streams(rows)
        self.put(name, feats, labels, X1, promotion)
        self.trained(name, 1)
        self.put(name, feats, labels, BOTH, promotion)
        self.trained(name, 2)
        e = self.experiment(name)
        self.assertEqual(e["canary"]["max_seconds"], 10, e)
        # Too few entities to judge on.
        self.traffic(name, labels, 30, 7)
        e = self.ended(name, timeout=45)
        self.assertEqual(e["canary"]["outcome"], "expired", e)
        self.assertRegex(e["end_reason"], r"undecided after 10 s: (outcomes from [0-9]+ and "
                         r"[0-9]+ entities of the 40 a side|no outcome of the canary)")
        self.assertEqual(self.live(name), 1)

    def test_a_version_of_another_task_than_live_goes_live_without_a_canary(self):
        # Labels 0/1: binary first, then the definition turns to regression.
        rows = [(e, x, 1 if y else 0) for e, x, y in skewed_rows(300, 1, "r1-")]
        feats, labels = self.streams(rows)
        name = uid("can")
        self.put(name, feats, labels, BOTH)
        self.trained(name, 1)
        d = self.c.get("/v1/models/%s" % name).json()["definition"]
        d["task"] = "regression"
        put_model(self, self.c, name, d, expect=(200,))
        job = self.trained(name, 2)
        self.assertIn("(live version 1 could not be scored (the job's log says why): no canary "
                      "can judge against it)", log_text(job))
        self.assertIsNone(self.experiment(name))
        self.assertEqual(self.live(name), 2)

    def test_the_canary_policy_is_checked_when_saved(self):
        feats, labels = self.streams(skewed_rows(40, 8, "r8-"))
        name = uid("can")

        def refused(promotion, fields):
            d = definition("binary", feats, labels, features=BOTH, promotion=promotion)
            r = self.c.request("PUT", "/v1/models/%s" % name, json_body=d)
            assert_definition_errors(self, r, fields)
            return r.json()

        refused({"mode": "canary", "canary": {"share": 0}}, ["promotion.canary.share"])
        refused({"mode": "canary", "canary": {"share": 0.9}}, ["promotion.canary.share"])
        refused({"mode": "canary", "canary": {"share": "a tenth"}}, ["promotion.canary.share"])
        refused({"mode": "canary", "canary": {"entities": 10}}, ["promotion.canary.entities"])
        refused({"mode": "canary", "canary": {"entities": 40.5}}, ["promotion.canary.entities"])
        refused({"mode": "canary", "canary": {"max_loss": -0.1}}, ["promotion.canary.max_loss"])
        refused({"mode": "canary", "canary": {"max_seconds": 5}}, ["promotion.canary.max_seconds"])
        refused({"mode": "canary", "canary": {"shares": 0.1}}, ["promotion.canary.shares"])
        refused({"mode": "canary", "canary": [0.1]}, ["promotion.canary"])
        refused({"mode": "auto", "canary": {"share": 0.1}}, ["promotion.canary"])
        body = refused({"mode": "canary-ish"}, ["promotion.mode"])
        self.assertIn("auto, manual or canary", str(body))
        # Saved, it reads back whole, the defaults filled in.
        d = definition("binary", feats, labels, features=BOTH, promotion={"mode": "canary"})
        put_model(self, self.c, name, d, expect=(201,))
        r = self.c.get("/v1/models/%s" % name)
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json()["definition"]["promotion"]["canary"],
                         {"share": 0.1, "entities": 200, "max_loss": 0, "max_seconds": 604800})


class CanaryFaultTest(CanaryCase):
    """With test faults switched on: a canary whose version cannot load."""

    server_args = ("--test-faults", "--live-check-seconds", "1", "--retrain-gap-seconds", "3")

    def test_a_canary_whose_version_cannot_load_ends_at_once(self):
        name = uid("can")
        rows = skewed_rows(500, 1, "r1-")
        feats, labels = self.streams(rows)
        self.put(name, feats, labels, X1)
        self.trained(name, 1)
        self.put(name, feats, labels, BOTH, test_fault="corrupt_artifact")
        job = train_and_wait(self, self.c, name)
        self.assertEqual(job["state"], "succeeded", log_text(job))
        e = self.ended(name, timeout=30)
        self.assertEqual(e["canary"]["outcome"], "taken_out", e)
        self.assertIn("version 2 cannot be served (artifact_load_failed)", e["end_reason"])
        self.assertEqual(self.live(name), 1)


    def test_a_canary_whose_answers_are_mostly_fallbacks_fails_without_supervision(self):
        # Supervision off: nothing else would take the canary's version out.
        name = uid("can")
        labels, e = self.canary_running(name, supervision={"enabled": False},
                                        next_extra={"test_fault": "serve_throw"})
        fresh = skewed_rows(200, 12, "t12-")
        r = self.c.post_json("/v1/models/%s/predict" % name, {
            "instances": [{"entity": x, "features": f} for x, f, _ in fresh]})
        self.assertEqual(r.status, 200, r)
        answers = r.json()["predictions"]
        self.assertTrue(any(p["arm"] == "canary" and p["fallback"] for p in answers), answers)
        e = self.ended(name)
        self.assertEqual(e["canary"]["outcome"], "failed", e)
        self.assertRegex(e["end_reason"], r"\): [0-9]+ of the canary arm's [0-9]+ answers were "
                         r"fallbacks \(over its share of 0\.5\): version 2 fails or misses its "
                         r"deadline$")
        self.assertEqual(self.live(name), 1)

if __name__ == "__main__":
    unittest.main()
