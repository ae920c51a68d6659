"""Integration tests for the supervisor: a live version that throws is taken
out of service by itself (disabled, live moved back, both recorded with the
reason and shown in /v1/serving), and a person can put it back through the
API. Feature drift: what a version is asked about, against its training
rows, through GET /v1/models/{name}/drift and /metrics; drift past the bound
is reported by the supervisor and, with retrain.on_drift, queues a job.

The real binary with --test-faults on a free loopback port, over real HTTP
(see kennel_harness.py). Every wait is bounded.
"""

import re
import time
import unittest

from kennel_harness import Client, KennelTestCase, fact, run_in_threads
from test_learning import assert_definition_errors
from test_predict import (FEATURES, JOB_TIMEOUT_S, definition, deployments_of, events_of,
                          get_version, load_data, post_facts, predict, put_model, set_live,
                          synthetic, train, uid, wait_until)

SUPERVISION = {"max_error_rate": 0.2, "min_requests": 10, "window_seconds": 30}
ACT_WITHIN_S = 10


def supervisor_looks(test, c, times):
    """Waits until the supervisor has looked `times` more times (once a
    second; its live-metric check every 10 s, so 11 looks hold one)."""
    def ticks():
        return c.get("/v1/serving").json()["supervisor"]["ticks"]
    start = ticks()
    wait_until(lambda: ticks() >= start + times, 30 + 2 * times,
               "%d more looks by the supervisor" % times)


class SupervisorTest(KennelTestCase):

    def setUp(self):
        super().setUp()
        self.server = self.start_server(["--test-faults"])
        self.c = self.client(self.server)

    def throwing_live_version(self, make_live=True):
        """Version 1 (good) was live; version 2 throws and (unless make_live
        is false) is live now. Returns (name, version 1's answer to FEATURES)."""
        feats, labels, _ = load_data(self, self.c, 150)
        name = uid("sup")
        d = definition(feats, labels, supervision=SUPERVISION)
        put_model(self, self.c, name, d)
        self.assertEqual(train(self, self.c, name), 1)
        set_live(self, self.c, name, 1, "first version")
        v1_value = predict(self, self.c, name, {"features": FEATURES})["prediction"]
        put_model(self, self.c, name, dict(d, test_fault="serve_throw"))
        self.assertEqual(train(self, self.c, name), 2)
        if make_live:
            set_live(self, self.c, name, 2, "the new one")
        return name, v1_value

    def serving_of(self, name):
        r = self.c.get("/v1/serving")
        self.assertEqual(r.status, 200, r)
        body = r.json()
        return body, [m for m in body["models"] if m["model"] == name][0]

    def disabled_event(self, name):
        for e in events_of(self, self.c, name):
            if e["event"] == "disabled" and e["version"] == 2:
                return e
        return None

    def wait_disabled(self, name, within, what):
        """Waits for the supervisor's taking version 2 out, to its end: it
        commits the event (and any move of live), then reloads serving, then
        lists the action, so the event alone may come before the rest."""
        def done():
            event = self.disabled_event(name)
            if not event:
                return None
            acts = [a for a in self.serving_of(name)[0]["supervisor"]["actions"]
                    if a["model"] == name and a["version"] == 2 and a["kind"] == "disable"]
            return event if acts else None
        return wait_until(done, within, what)

    def test_supervisor_disables_a_throwing_version_and_a_person_enables_it(self):
        name, v1_value = self.throwing_live_version()
        body, mine = self.serving_of(name)
        self.assertEqual(body["supervisor"]["state"], "watching", body["supervisor"])
        self.assertEqual(mine["serving_version"], 2, mine)

        # ~20 predictions over two seconds (the supervisor looks once a second).
        # Every one is answered (by version 1, flagged).
        for i in range(20):
            p = predict(self, self.c, name, {"entity": "s%d" % i, "features": FEATURES})
            if p["version"] == 1 and p["fallback"] is False:
                break  # already taken out of service
            self.assertEqual(p["fallback"], True, p)
            self.assertTrue(p["fallback_reason"].startswith("model_error"), p)
            self.assertEqual((p["answered_by"], p["version"], p["prediction"]),
                             ("previous_version", 1, v1_value), p)
            time.sleep(0.1)

        event = self.wait_disabled(name, ACT_WITHIN_S,
                           "the supervisor's disabled event")
        self.assertEqual(event["actor"], "supervisor", event)
        self.assertIn("error rate", event["reason"], event)
        # e.g. "error rate 100% over 20% in the last 14 requests" (every request threw).
        self.assertRegex(event["reason"], r"^error rate \d+(\.\d+)?% over 20% in the last \d+ requests$")
        rate = float(event["reason"].split()[2].rstrip("%"))
        self.assertGreaterEqual(rate, 90, event)

        # Live moved back to version 1 by the supervisor, with the reason.
        dep = deployments_of(self, self.c, name)[0]
        self.assertEqual((dep["alias"], dep["version"], dep["previous_version"], dep["actor"]),
                         ("live", 1, 2, "supervisor"), dep)
        self.assertIn("error rate", dep["reason"], dep)
        r = self.c.get("/v1/models/%s/aliases" % name)
        self.assertEqual({a["alias"]: a["version"] for a in r.json()["aliases"]}["live"], 1, r)

        # /v1/serving lists the action.
        body, mine = self.serving_of(name)
        actions = [a for a in body["supervisor"]["actions"] if a["model"] == name]
        self.assertEqual(len(actions), 1, body["supervisor"])
        self.assertEqual(actions[0]["version"], 2, actions)
        self.assertIn("error rate", actions[0]["reason"], actions)
        self.assertIn("live moved back to version 1", actions[0]["outcome"], actions)
        self.assertEqual(actions[0]["kind"], "disable", actions)
        metrics = self.c.get("/metrics").text
        self.assertIn('kennel_supervisor_actions_total{kind="disable"} 1\n', metrics)
        self.assertEqual((mine["live_alias"], mine["serving_version"], mine["disabled"]),
                         (1, 1, [2]), mine)

        # Predictions come from the old version, no longer a fallback.
        for i in range(5):
            p = predict(self, self.c, name, {"entity": "after%d" % i, "features": FEATURES})
            self.assertEqual((p["version"], p["fallback"], p["prediction"]), (1, False, v1_value), p)

        # A person re-enables version 2 through the API: recorded under their name.
        r = self.c.post_json("/v1/models/%s/versions/2/enable" % name,
                             {"reason": "fixed the feature feed"})
        self.assertEqual(r.status, 200, r)
        latest = events_of(self, self.c, name)[0]
        self.assertEqual((latest["version"], latest["event"], latest["actor"], latest["reason"]),
                         (2, "enabled", "admin", "fixed the feature feed"), latest)
        body, mine = self.serving_of(name)
        self.assertEqual(mine["disabled"], [], mine)
        # Enabled is not live: version 1 keeps serving until a person moves live.
        p = predict(self, self.c, name, {"features": FEATURES})
        self.assertEqual((p["version"], p["fallback"]), (1, False), p)

        # After a restart /v1/serving still lists what the supervisor did
        # (it was held in memory only), though it did nothing since.
        self.server.stop()
        self.server = self.start_server(["--test-faults"])
        self.c = self.client(self.server)
        body, _ = self.serving_of(name)
        kept = [a for a in body["supervisor"]["actions"] if a["model"] == name]
        self.assertEqual([{k: a[k] for k in ("kind", "version", "reason", "outcome", "time")}
                          for a in kept],
                         [{k: a[k] for k in ("kind", "version", "reason", "outcome", "time")}
                          for a in actions], body["supervisor"])
        # The counter is of actions since the start, as /metrics says.
        self.assertIn('kennel_supervisor_actions_total{kind="disable"} 0\n',
                      self.c.get("/metrics").text)

    def test_the_supervisor_never_moves_live_to_a_version_of_another_task(self):
        # Version 1 regression, version 2 binary (the definition changed)
        # and throwing. Taking 2 out, the supervisor moved live to 1, which
        # answered numbers, unflagged, for a model of two classes.
        feats, labels, _ = load_data(self, self.c, 150)
        name = uid("suptask")
        put_model(self, self.c, name, definition(feats, labels, supervision=SUPERVISION))
        self.assertEqual(train(self, self.c, name), 1)
        set_live(self, self.c, name, 1, "regression")
        put_model(self, self.c, name, definition(feats, labels, task="binary", supervision=SUPERVISION,
                                                 test_fault="serve_throw"))
        self.assertEqual(train(self, self.c, name), 2)
        set_live(self, self.c, name, 2, "binary now")
        for i in range(20):
            if self.disabled_event(name):
                break
            p = predict(self, self.c, name, {"entity": "k%d" % i, "features": FEATURES})
            self.assertEqual((p["fallback"], p["answered_by"]), (True, "baseline"), p)
            self.assertIn(p["prediction"], ("true", "false"), p)
            time.sleep(0.1)
        event = self.wait_disabled(name, ACT_WITHIN_S,
                           "the supervisor's disabled event")
        self.assertEqual(event["actor"], "supervisor", event)
        body, mine = self.serving_of(name)
        actions = [a for a in body["supervisor"]["actions"] if a["model"] == name]
        self.assertIn("no earlier usable version of its task", actions[0]["outcome"], actions)
        self.assertEqual(mine["live_alias"], 2, mine)
        self.assertEqual(deployments_of(self, self.c, name)[0]["actor"], "admin")
        p = predict(self, self.c, name, {"entity": "after", "features": FEATURES})
        self.assertEqual((p["fallback"], p["fallback_reason"], p["answered_by"]),
                         (True, "version_disabled", "baseline"), p)
        self.assertIn(p["prediction"], ("true", "false"), p)

    def test_a_throwing_shadow_arm_is_taken_out_of_service(self):
        # A shadow's requests and errors were never counted, so the supervisor
        # could not see one that threw on every request.
        name, v1_value = self.throwing_live_version(make_live=False)
        r = self.c.post_json("/v1/models/%s/experiments" % name, {
            "reason": "try version 2 quietly",
            "arms": [{"name": "main", "version": 1, "weight": 1},
                     {"name": "quiet", "version": 2, "shadow": True}]})
        self.assertEqual(r.status, 201, r)
        for i in range(20):
            p = predict(self, self.c, name, {"entity": "s%d" % i, "features": FEATURES})
            # The shadow never shows in an answer.
            self.assertEqual((p["version"], p["arm"], p["fallback"], p["prediction"]),
                             (1, "main", False, v1_value), p)
            time.sleep(0.1)
        event = self.wait_disabled(name, ACT_WITHIN_S,
                           "the supervisor's disabled event for the shadow")
        self.assertEqual(event["actor"], "supervisor", event)
        self.assertRegex(event["reason"], r"^error rate \d+(\.\d+)?% over 20% in the last \d+ requests$")
        body, mine = self.serving_of(name)
        self.assertEqual(mine["disabled"], [2], mine)
        # Live was never version 2: it stays where it was.
        self.assertEqual(deployments_of(self, self.c, name)[0]["version"], 1)
        p = predict(self, self.c, name, {"entity": "after", "features": FEATURES})
        self.assertEqual((p["version"], p["fallback"]), (1, False), p)

    def steady_traffic_to_a_live_model(self, prefix, seed, features, check, deadline_ms=None):
        """Version 1 of a fresh model, live, asked for 2.5 s (past two
        supervisor looks and min_requests); `check` sees each answer.
        Returns the model's name."""
        feats, labels, _ = load_data(self, self.c, 150, seed=seed)
        name = uid(prefix)
        put_model(self, self.c, name, definition(feats, labels, supervision=SUPERVISION))
        self.assertEqual(train(self, self.c, name), 1)
        set_live(self, self.c, name, 1)
        t_end = time.monotonic() + 2.5
        n = 0
        while time.monotonic() < t_end:
            body = {"entity": "s%d" % n, "features": features}
            if deadline_ms is not None:
                body["deadline_ms"] = deadline_ms
            check(predict(self, self.c, name, body))
            n += 1
            time.sleep(0.02)
        self.assertGreaterEqual(n, 10)  # min_requests
        return name

    def assertLeftAlone(self, name):
        """The supervisor looked and did nothing: version 1 serves."""
        body, mine = self.serving_of(name)
        self.assertGreaterEqual(body["supervisor"]["ticks"], 2, body["supervisor"])
        self.assertEqual([a for a in body["supervisor"]["actions"] if a["model"] == name], [])
        self.assertEqual(events_of(self, self.c, name), [])
        self.assertEqual(mine["serving_version"], 1, mine)
        return mine

    def two_good_versions(self, prefix, supervision):
        """A fresh model under `supervision` with versions 1 (live) and 2,
        both trained on the same data. Returns (name, definition, label stream)."""
        feats, labels, _ = load_data(self, self.c, 150)
        name = uid(prefix)
        d = definition(feats, labels, supervision=supervision)
        put_model(self, self.c, name, d)
        self.assertEqual(train(self, self.c, name), 1)
        set_live(self, self.c, name, 1, "first version")
        self.assertEqual(train(self, self.c, name), 2)
        return name, d, labels

    def test_a_live_metric_past_its_bound_takes_the_version_out_once_outcomes_are_due(self):
        # Outcomes that arrive after their predictions: the live check judges
        # the predictions made between outcome_delay_seconds + window and
        # outcome_delay_seconds ago. It judged only the last window_seconds
        # (60 s), so outcomes later than that never counted.
        policy = {"live_thresholds": {"rmse": 5.0}, "min_outcomes": 10,
                  "live_window_seconds": 600, "outcome_delay_seconds": 3600}
        name, d, labels = self.two_good_versions("livesup", policy)
        set_live(self, self.c, name, 2, "the new one")
        preds = [predict(self, self.c, name, {"entity": "out%d" % i, "features": FEATURES})
                 for i in range(12)]
        self.assertEqual({(p["version"], p["fallback"]) for p in preds}, {(2, False)}, preds)
        # Outcomes 100 away from every answer: rmse 100, far past the bound.
        post_facts(self, self.c, [fact(labels, "out%d" % i,
                                       {"y": p_["prediction"] + 100,
                                        "prediction_id": p_["prediction_id"]})
                                  for i, p_ in enumerate(preds)])

        def live_group():
            r = self.c.get("/v1/models/%s/live-metrics" % name)
            self.assertEqual(r.status, 200, r)
            groups = [g for g in r.json()["groups"] if g["version"] == 2 and not g["shadow"]]
            return groups[0] if groups and groups[0]["outcomes"] == 12 else None
        group = wait_until(live_group, 10, "12 joined outcomes in the live metrics")
        self.assertAlmostEqual(group["metrics"]["rmse"], 100.0, places=6)

        # The predictions are seconds old, not an hour: not yet judged. The
        # live check runs every 10 s.
        supervisor_looks(self, self.c, 11)
        self.assertEqual(events_of(self, self.c, name), [])
        self.assertEqual(self.serving_of(name)[1]["serving_version"], 2)

        # Outcomes due at once: the next live check takes version 2 out.
        put_model(self, self.c, name, dict(d, supervision=dict(policy, outcome_delay_seconds=0)))
        event = self.wait_disabled(name, 25, "the live-metric disable")
        self.assertEqual(event["actor"], "supervisor", event)
        self.assertRegex(event["reason"], r"^live rmse 100(\.\d+)? above 5 over 12 outcomes "
                                          r"\(of 12 entities\) of predictions made 0-600 s ago$")
        dep = deployments_of(self, self.c, name)[0]
        self.assertEqual((dep["alias"], dep["version"], dep["actor"]), ("live", 1, "supervisor"), dep)
        p = predict(self, self.c, name, {"entity": "after", "features": FEATURES})
        self.assertEqual((p["version"], p["fallback"]), (1, False), p)

        # A person puts version 2 back. It is judged on what it answers
        # from then on: the outcomes it was taken out for took it out again
        # at every live check, for the whole window.
        r = self.c.post_json("/v1/models/%s/versions/2/enable" % name, {"reason": "feed fixed"})
        self.assertEqual(r.status, 200, r)
        set_live(self, self.c, name, 2, "back after the fix")
        # One entity asked about 12 times, and one label of it far off: 12
        # outcomes of one entity, one piece of evidence, not min_outcomes
        # (they took live out of service).
        solo = [predict(self, self.c, name, {"entity": "solo", "features": FEATURES})
                for _ in range(12)]
        post_facts(self, self.c, [fact(labels, "solo", {"y": solo[0]["prediction"] + 100})])

        def solo_group():
            r = self.c.get("/v1/models/%s/live-metrics" % name)
            groups = [g for g in r.json()["groups"] if g["version"] == 2 and not g["shadow"]
                      and g["outcomes"] >= 12 + 12 and g["outcome_entities"] == 12 + 1]
            return groups[0] if groups else None
        wait_until(solo_group, 10, "the solo outcomes joined")
        supervisor_looks(self, self.c, 11)  # one live check at least
        self.assertEqual([e["event"] for e in events_of(self, self.c, name)
                          if e["version"] == 2], ["enabled", "disabled"])
        self.assertEqual(self.serving_of(name)[1]["serving_version"], 2)

        # Bad windows are refused, naming the field.
        for bad in ({"live_window_seconds": 0}, {"live_window_seconds": "long"},
                    {"outcome_delay_seconds": -1}, {"outcome_delay_seconds": 31 * 86400}):
            r = self.c.request("PUT", "/v1/models/" + name,
                               json_body=dict(d, supervision=dict(policy, **bad)))
            self.assertEqual(r.status, 400, r)
            self.assertEqual(r.json()["error"]["field"], "supervision." + list(bad)[0], r)
        got = self.c.get("/v1/models/" + name).json()
        self.assertEqual(got["definition"]["supervision"]["outcome_delay_seconds"], 0, got)

    def test_an_experiment_arm_past_a_live_bound_is_taken_out_and_live_answers_its_share(self):
        # The live check judged the live version only; an arm (or a shadow)
        # serving a share of the traffic was never judged on its outcomes.
        name, _, labels = self.two_good_versions(
            "armsup", {"live_thresholds": {"rmse": 5.0}, "min_outcomes": 10})
        r = self.c.post_json("/v1/models/%s/experiments" % name, {
            "reason": "try 2", "arms": [{"name": "a", "version": 1, "weight": 1},
                                        {"name": "b", "version": 2, "weight": 1}]})
        self.assertEqual(r.status, 201, r)
        insts = [{"entity": "arm%d" % i, "features": FEATURES} for i in range(60)]
        preds = predict(self, self.c, name, {"instances": insts})["predictions"]
        by_arm = {}
        for inst, p_ in zip(insts, preds):
            by_arm.setdefault(p_["arm"], []).append((inst, p_))
        self.assertGreaterEqual(len(by_arm.get("b", [])), 10, by_arm.keys())
        self.assertGreaterEqual(len(by_arm.get("a", [])), 10, by_arm.keys())
        # Arm a's outcomes are its answers; arm b's are 100 away.
        post_facts(self, self.c, [
            fact(labels, inst["entity"], {"y": p_["prediction"] + (100 if arm == "b" else 0),
                                          "prediction_id": p_["prediction_id"]})
            for arm, pairs in by_arm.items() for inst, p_ in pairs])
        event = self.wait_disabled(name, 25, "the arm's live-metric disable")
        self.assertEqual(event["actor"], "supervisor", event)
        self.assertRegex(event["reason"], r"^live rmse 100(\.\d+)? above 5 over (\d+) outcomes "
                                          r"\(of \2 entities\) of predictions made 0-600 s ago "
                                          r"\(arm b\)$")
        # Version 1 (arm a, and live) is left alone; arm b's entities are now
        # answered by live, flagged.
        self.assertEqual([e["version"] for e in events_of(self, self.c, name)], [2])
        inst, _ = by_arm["b"][0]
        p = predict(self, self.c, name, inst)
        self.assertEqual((p["arm"], p["version"], p["fallback"]), ("b", 1, True), p)

    def test_healthy_version_is_left_alone(self):
        def check(p):
            self.assertEqual((p["version"], p["fallback"]), (1, False), p)
        self.assertLeftAlone(self.steady_traffic_to_a_live_model("calm", 3, FEATURES, check))

    def test_inputs_the_model_overflows_on_are_not_held_against_it(self):
        # Finite but absurd inputs (1e308 where training saw N(0, 1)) make a
        # linear model's answer infinite. That is the request's doing: each
        # answer is a flagged fallback naming the input, and the version
        # keeps serving (a client once got the only live version disabled).
        def check(p):
            self.assertTrue(p["fallback"], p)
            self.assertTrue(p["fallback_reason"].startswith("input_out_of_range: "), p)
            self.assertIn("numeric-x", p["fallback_reason"], p)
            self.assertEqual(p["answered_by"], "baseline", p)
        absurd = dict(FEATURES, x1=1e308, x2=-1e308)
        name = self.steady_traffic_to_a_live_model("ovf", 5, absurd, check)
        good = predict(self, self.c, name, {"features": FEATURES})
        self.assertEqual((good["version"], good["fallback"]), (1, False), good)
        mine = self.assertLeftAlone(name)
        v1 = [v for v in mine["versions"] if v["version"] == 1][0]
        self.assertEqual((v1["errors"], v1["fallbacks"]), (0, 0), v1)

    def test_deadlines_a_client_cuts_short_are_not_held_against_the_version(self):
        # deadline_ms 0.001 is missed by every request: each answer is a
        # flagged fallback, but the client chose it. A predict key once got
        # a healthy live version disabled this way (deadline misses 100%).
        def check(p):
            self.assertEqual((p["fallback"], p["fallback_reason"]),
                             (True, "deadline_exceeded"), p)
        name = self.steady_traffic_to_a_live_model("cut", 7, FEATURES, check,
                                                   deadline_ms=0.001)
        mine = self.assertLeftAlone(name)
        v1 = [v for v in mine["versions"] if v["version"] == 1][0]
        self.assertGreaterEqual(v1["requests"], 10, v1)
        self.assertEqual((v1["deadline_misses"], v1["fallbacks"]), (0, 0), v1)
        good = predict(self, self.c, name, {"features": FEATURES})
        self.assertEqual((good["version"], good["fallback"]), (1, False), good)

    def test_a_body_slow_to_read_is_not_held_against_the_version(self):
        # A batch with thousands of fields the model never saw takes longer
        # to read than the model's 1 ms deadline: every instance misses it
        # before the model is asked. A predict key once got live disabled
        # this way ("deadline misses 100%"); the miss is the request's.
        feats, labels, rows = load_data(self, self.c, 150, seed=11)
        name = uid("slowbody")
        put_model(self, self.c, name, definition(feats, labels, supervision=SUPERVISION,
                                                 serving={"deadline_ms": 1}))
        self.assertEqual(train(self, self.c, name), 1)
        set_live(self, self.c, name, 1)
        junk = {"unknown_%d" % i: i for i in range(100)}
        # The training rows' features (a drift report would be an action).
        body = {"instances": [{"entity": "e%d" % i,
                               "features": dict(rows[i % len(rows)][1], **junk)}
                              for i in range(1000)]}
        t_end = time.monotonic() + 2.5
        sent = 0
        while time.monotonic() < t_end or sent < 3:
            answers = predict(self, self.c, name, body)["predictions"]
            self.assertEqual({(p["fallback"], p["fallback_reason"]) for p in answers},
                             {(True, "deadline_exceeded")})
            sent += 1
        mine = self.assertLeftAlone(name)
        v1 = [v for v in mine["versions"] if v["version"] == 1][0]
        self.assertGreaterEqual(v1["requests"], 10, v1)
        self.assertEqual((v1["deadline_misses"], v1["fallbacks"]), (0, 0), v1)
        good = predict(self, self.c, name, {"features": FEATURES, "deadline_ms": 2000})
        self.assertEqual((good["version"], good["fallback"]), (1, False), good)

    def test_a_version_too_slow_for_its_load_is_taken_out_for_deadline_misses(self):
        # One prediction thread and a live version that sleeps 500 ms per
        # answer, asked by four clients at once: most requests wait in the
        # pool's queue behind it until their deadline passes. Those misses
        # are the slow version's doing (it keeps the queue from draining);
        # when only the misses of work already started were counted, such a
        # version under load was never taken out of service.
        server = self.start_server(["--test-faults", "--predict-threads", "1"], db="slow.db")
        c = self.client(server)
        feats, labels, _ = load_data(self, c, 150, seed=5)
        name = uid("slowlive")
        d = definition(feats, labels, supervision=SUPERVISION, serving={"deadline_ms": 50})
        put_model(self, c, name, d)
        self.assertEqual(train(self, c, name), 1)
        set_live(self, c, name, 1, "first version")
        put_model(self, c, name, dict(d, test_fault="serve_sleep"))
        self.assertEqual(train(self, c, name), 2)
        set_live(self, c, name, 2, "the slow one")

        stop_at = time.monotonic() + 3 * ACT_WITHIN_S
        answers, errors = [], []

        def disabled():
            for e in events_of(self, c, name):
                if e["event"] == "disabled" and e["version"] == 2:
                    return e
            return None

        def ask(i):
            cl = Client(server.port)
            try:
                n = 0
                while time.monotonic() < stop_at:
                    r = cl.post_json("/v1/models/%s/predict" % name,
                                     {"entity": "w%d-%d" % (i, n), "features": FEATURES})
                    answers.append((r.status, r.json()))
                    if r.status == 200 and r.json()["version"] == 1 and not r.json()["fallback"]:
                        return  # taken out of service: version 1 answers
                    n += 1
            except Exception as e:  # noqa: BLE001 -- reported below, not lost with the thread
                errors.append(e)
            finally:
                cl.close()

        self.assertEqual(run_in_threads(ask, 4, timeout=4 * ACT_WITHIN_S), [])
        self.assertEqual(errors, [])
        # Every request was answered, in time, by a flagged fallback or (at
        # the end) by version 1.
        self.assertGreaterEqual(len(answers), 10, answers[:5])
        for status, p in answers:
            self.assertEqual(status, 200, p)
            if p["fallback"]:
                self.assertEqual(p["fallback_reason"], "deadline_exceeded", p)
            else:
                self.assertEqual(p["version"], 1, p)
        event = wait_until(disabled, ACT_WITHIN_S, "the supervisor's disabled event")
        self.assertEqual(event["actor"], "supervisor", event)
        self.assertRegex(event["reason"],
                         r"^deadline misses \d+(\.\d+)?% over 20% in the last \d+ requests$")
        dep = deployments_of(self, c, name)[0]
        self.assertEqual((dep["alias"], dep["version"], dep["previous_version"], dep["actor"]),
                         ("live", 1, 2, "supervisor"), dep)

    def predict_load(self, seconds, clients, model_of, pause, recorded=lambda i: True):
        """`clients` threads, client i asking model_of(i) for `seconds`; a
        recorded client pauses `pause` s after each answer. Returns the
        recorded answers as (status, body); a client's error fails the test."""
        stop_at = time.monotonic() + seconds
        answers, errors = [], []

        def ask(i):
            cl = Client(self.server.port)
            try:
                n = 0
                while time.monotonic() < stop_at:
                    r = cl.post_json("/v1/models/%s/predict" % model_of(i),
                                     {"entity": "w%d-%d" % (i, n), "features": FEATURES})
                    if recorded(i):
                        answers.append((r.status, r.json()))
                        time.sleep(pause)
                    n += 1
            except Exception as e:  # noqa: BLE001 -- reported below, not lost with the thread
                errors.append(e)
            finally:
                cl.close()

        self.assertEqual(run_in_threads(ask, clients, timeout=30), [])
        self.assertEqual(errors, [])
        self.assertGreaterEqual(len(answers), 10, answers[:5])
        return answers

    def test_another_models_hung_version_does_not_take_a_healthy_one_down(self):
        # The prediction pool is shared. A hung version of one model held
        # every pool thread, a healthy model's requests missed their deadline
        # in the queue behind it, and those misses were held against the
        # healthy version: the supervisor disabled it. Now no model holds
        # more than all threads but one, and only waits behind a model's own
        # work count against it.
        feats, labels, _ = load_data(self, self.c, 150, seed=8)
        d = definition(feats, labels, supervision=SUPERVISION, serving={"deadline_ms": 50})
        hung, healthy = uid("hung"), uid("healthy")
        put_model(self, self.c, hung, dict(d, test_fault="serve_sleep"))
        self.assertEqual(train(self, self.c, hung), 1)
        set_live(self, self.c, hung, 1, "the hung one")
        put_model(self, self.c, healthy, d)
        self.assertEqual(train(self, self.c, healthy), 1)
        set_live(self, self.c, healthy, 1, "the healthy one")
        # One client for the healthy model, four for the hung one (the pool
        # has four threads).
        answers = self.predict_load(3, 5, lambda i: healthy if i == 0 else hung, 0.02,
                                    recorded=lambda i: i == 0)
        for status, p in answers:
            self.assertEqual(status, 200, p)
        # The hung version is taken out of service; the healthy one is not.
        wait_until(lambda: any(e["event"] == "disabled" for e in events_of(self, self.c, hung)),
                   ACT_WITHIN_S, "the hung version disabled")
        supervisor_looks(self, self.c, 2)
        self.assertEqual(events_of(self, self.c, healthy), [])
        p = predict(self, self.c, healthy, {"entity": "after", "features": FEATURES})
        self.assertEqual((p["version"], p["fallback"]), (1, False), p)

    def test_a_hung_shadow_does_not_take_the_live_version_down(self):
        # Shadow tasks ran under the model's own bulkhead: a shadow sleeping
        # 500 ms held three of the four pool threads, live's requests waited
        # behind it, and those waits were held against live, which the
        # supervisor disabled (268 of 271 answers were fallbacks).
        feats, labels, _ = load_data(self, self.c, 150, seed=8)
        d = definition(feats, labels, supervision=SUPERVISION, serving={"deadline_ms": 50})
        name = uid("shadowed")
        put_model(self, self.c, name, d)
        self.assertEqual(train(self, self.c, name), 1)
        set_live(self, self.c, name, 1, "first version")
        put_model(self, self.c, name, dict(d, test_fault="serve_sleep"))
        self.assertEqual(train(self, self.c, name), 2)
        put_model(self, self.c, name, d)
        self.assertEqual(train(self, self.c, name), 3)
        set_live(self, self.c, name, 3, "the healthy one")
        r = self.c.post_json("/v1/models/%s/experiments" % name,
                             {"arms": [{"version": 3, "weight": 1}, {"version": 2, "shadow": True}],
                              "reason": "shadow the slow one"})
        self.assertEqual(r.status, 201, r)
        answers = self.predict_load(3, 4, lambda i: name, 0.01)
        self.assertTrue(all(status == 200 for status, _ in answers), answers[:5])
        supervisor_looks(self, self.c, 2)
        self.assertEqual([e for e in events_of(self, self.c, name) if e["version"] == 3], [])
        p = predict(self, self.c, name, {"entity": "after", "features": FEATURES})
        self.assertEqual((p["version"], p["fallback"]), (3, False), p)

    def test_errors_before_the_first_look_count(self):
        # 20 failing predictions right after a supervisor tick, then no more
        # traffic: the version failed 20 of 20 requests (its counters say so),
        # yet the supervisor's first sample of it is taken after the burst and
        # every later delta is zero, so it is never taken out of service.
        name, v1_value = self.throwing_live_version(make_live=False)
        # Right after a tick (ticks are a second apart), version 2 goes live
        # and takes its 20 requests within a few tens of milliseconds.
        ticks = self.serving_of(name)[0]["supervisor"]["ticks"]
        wait_until(lambda: self.serving_of(name)[0]["supervisor"]["ticks"] > ticks, 5,
                   "a supervisor tick", interval=0.01)
        set_live(self, self.c, name, 2, "the new one")
        # One batch of 20 instances: 20 requests (and 20 errors) in the
        # version's counters, all within a few milliseconds.
        r = predict(self, self.c, name, {"instances": [
            {"entity": "b%d" % i, "features": FEATURES} for i in range(20)]})
        for p in r["predictions"]:
            self.assertTrue(p["fallback_reason"].startswith("model_error"), p)
        body, mine = self.serving_of(name)
        v2 = [v for v in mine["versions"] if v["version"] == 2][0]
        self.assertEqual((v2["requests"], v2["errors"]), (20, 20), v2)
        self.wait_disabled(name, ACT_WITHIN_S,
                   "the supervisor's disabled event after 20 failed requests")



DRIFT_SUPERVISION = {"max_feature_drift": 0.25, "min_drift_samples": 150,
                     "drift_window_seconds": 3600}


class DriftTest(KennelTestCase):

    def setUp(self):
        super().setUp()
        self.server = self.start_server()
        self.c = self.client(self.server)

    def drift_of(self, name):
        r = self.c.get("/v1/models/%s/drift" % name)
        self.assertEqual(r.status, 200, r)
        return r.json()

    def live_drift(self, name):
        versions = [v for v in self.drift_of(name)["versions"] if v["role"] == "live"]
        self.assertEqual(len(versions), 1, versions)
        return versions[0]

    def send(self, name, rows, tag):
        for start in range(0, len(rows), 50):
            batch = [{"entity": "%s%d" % (tag, start + i), "features": f}
                     for i, f in enumerate(rows[start:start + 50])]
            r = predict(self, self.c, name, {"instances": batch})
            for p in r["predictions"]:
                self.assertEqual(p["fallback"], False, p)

    def drift_actions(self, name):
        r = self.c.get("/v1/serving")
        self.assertEqual(r.status, 200, r)
        return [a for a in r.json()["supervisor"]["actions"]
                if a["model"] == name and a["kind"] == "drift"]

    def fields(self, report):
        return {f["field"]: f for f in report["fields"]}

    def test_drift_is_measured_reported_and_retrains(self):
        feats, labels, _ = load_data(self, self.c, 300, seed=5)
        name = uid("drift")
        put_model(self, self.c, name, definition(feats, labels, supervision=DRIFT_SUPERVISION,
                                                 retrain={"on_drift": True}))
        self.assertEqual(train(self, self.c, name), 1)
        set_live(self, self.c, name, 1)
        train_rows = get_version(self, self.c, name, 1)["snapshot"]["train_rows"]

        # The profile: every field but the text caption; nothing counted yet.
        d = self.drift_of(name)
        self.assertEqual(d["policy"], {"max_feature_drift": 0.25, "drift_window_seconds": 3600,
                                       "min_drift_samples": 150, "retrain_on_drift": True}, d)
        live = self.live_drift(name)
        self.assertEqual((live["version"], live["problem"]), (1, None), live)
        self.assertEqual(live["profile"], {"training_rows": train_rows,
                                           "fields": ["color", "x1", "x2"]}, live)
        since = live["since_loaded"]
        self.assertEqual((since["requests"], since["enough_requests"], since["drifted"],
                          since["worst_field"]), (0, False, False, None), since)
        # The model's answers on the holdout, in ten bins, are the reference for its outputs.
        self.assertEqual((since["prediction"]["field"], since["prediction"]["answers"],
                          len(since["prediction"]["bins"])), ("prediction", 0, 11), since)
        for f in since["fields"]:
            self.assertAlmostEqual(sum(b["expected"] for b in f["bins"]), 1.0, places=9)
            self.assertEqual(f["bins"][-1]["bin"], "missing", f)
        x1_bins = self.fields(since)["x1"]["bins"]
        self.assertEqual(len(x1_bins), 11, x1_bins)  # ten deciles and missing
        # The supervisor opens the window at its next look (once a second).
        wait_until(lambda: self.live_drift(name)["window"] is not None, 5, "a drift window")

        # 200 requests like the training rows (another draw): no drift.
        self.send(name, [f for _, f, _, _ in synthetic(200, seed=11)], "calm")
        live = self.live_drift(name)
        for report in (live["since_loaded"], live["window"]):
            self.assertEqual((report["requests"], report["enough_requests"], report["drifted"]),
                             (200, True, False), report)
            self.assertLess(report["worst_psi"], 0.25, report)
            for f in report["fields"] + [report["prediction"]]:
                self.assertAlmostEqual(sum(b["observed"] for b in f["bins"]), 1.0, places=9)
            self.assertEqual((report["prediction"]["answers"], report["prediction"]["drifted"]),
                             (200, False), report["prediction"])
            self.assertLess(report["prediction"]["psi"], 0.25, report["prediction"])
        supervisor_looks(self, self.c, 2)  # looks at 200 calm requests
        self.assertEqual(self.drift_actions(name), [])

        # 300 more where x1 moved up by 3 standard deviations: x1 drifted, and
        # nothing else did.
        shifted = [dict(f, x1=f["x1"] + 3) for _, f, _, _ in synthetic(300, seed=12)]
        self.send(name, shifted, "moved")
        window = self.live_drift(name)["window"]
        self.assertEqual((window["requests"], window["drifted"], window["worst_field"]),
                         (500, True, "x1"), window)
        by_field = self.fields(window)
        self.assertGreater(by_field["x1"]["psi"], 0.25, by_field["x1"])
        self.assertLess(by_field["x2"]["psi"], 0.25, by_field["x2"])
        self.assertLess(by_field["color"]["psi"], 0.25, by_field["color"])
        # /v1/serving has the same verdict in brief.
        served = [m for m in self.c.get("/v1/serving").json()["models"] if m["model"] == name][0]
        brief = [v for v in served["versions"] if v["role"] == "live"][0]["drift"]
        self.assertEqual((brief["requests"], brief["drifted"], brief["worst_field"]),
                         (500, True, "x1"), brief)
        self.assertAlmostEqual(brief["worst_psi"], window["worst_psi"], places=9)
        self.assertAlmostEqual(brief["prediction_psi"], window["prediction"]["psi"], places=9)
        top = by_field["x1"]["bins"][-2]  # the last decile: x1 above most of training
        self.assertTrue(top["bin"].endswith("inf)"), top)
        self.assertGreater(top["observed"], 0.5, top)
        self.assertAlmostEqual(top["expected"], 0.1, delta=0.02)
        # y rises with x1 (3 x1 + ...): the answers moved as well.
        self.assertEqual((window["prediction"]["answers"], window["prediction"]["drifted"]),
                         (500, True), window["prediction"])
        self.assertGreater(window["prediction"]["psi"], 0.25, window["prediction"])

        # The supervisor reports it once, and queues a retraining job.
        action = wait_until(lambda: self.drift_actions(name), 10, "the supervisor's drift report")[0]
        self.assertEqual(action["version"], 1, action)
        # Whichever moved more is named: the field, or the answers it drives.
        self.assertRegex(action["reason"],
                         r'^(feature drift: "x1" has|prediction drift: the answers have) a stability '
                         r'index of [0-9.]+ \(bound 0.25\) over the last \d+ (requests|answers)$')
        m = re.search(r"retraining queued as job (\d+)$", action["outcome"])
        self.assertIsNotNone(m, action)
        job_id = int(m.group(1))
        job = self.c.get("/v1/jobs/%d" % job_id).json()
        self.assertEqual((job["model"], job["trigger"], job["requested_by"]),
                         (name, "drift", "supervisor"), job)
        self.assertIn("queued by the supervisor: feature drift", job["log"][0]["message"], job)
        job = wait_until(lambda: (lambda j: j if j["state"] in ("succeeded", "failed") else None)(
            self.c.get("/v1/jobs/%d" % job_id).json()), JOB_TIMEOUT_S, "the drift job's end")
        self.assertEqual((job["state"], job["version"]), ("succeeded", 2), job)

        # /metrics has the same indexes.
        r = self.c.get("/metrics")
        self.assertEqual(r.status, 200, r)
        line = re.search(r'^kennel_feature_drift_psi\{model="%s",version="1",role="live",'
                         r'field="x1"\} (\S+)$' % name, r.text, re.M)
        self.assertIsNotNone(line, r.text[:3000])
        self.assertGreater(float(line.group(1)), 0.25)
        line = re.search(r'^kennel_prediction_drift_psi\{model="%s",version="1",role="live"\} (\S+)$'
                         % name, r.text, re.M)
        self.assertIsNotNone(line, r.text[:3000])
        self.assertGreater(float(line.group(1)), 0.25)
        # Beside them, how many requests and answers they cover.
        for family in ("kennel_drift_window_requests", "kennel_drift_window_answers"):
            line = re.search(r'^%s\{model="%s",version="1",role="live"\} (\d+)$'
                             % (family, name), r.text, re.M)
            self.assertIsNotNone(line, family)
            self.assertGreater(int(line.group(1)), 0, family)
        # One drift report (this server's only one), and no version taken out of service.
        self.assertIn('kennel_supervisor_actions_total{kind="drift"} 1\n', r.text)
        self.assertIn('kennel_supervisor_actions_total{kind="disable"} 0\n', r.text)

        # More drifted requests within the window: reported once a window, not again.
        self.send(name, shifted[:100], "again")
        supervisor_looks(self, self.c, 2)
        self.assertEqual(len(self.drift_actions(name)), 1)

        # Version 2 learned from the same facts, so the moved inputs drift from
        # its profile too. It is reported, but no job is queued: one drift job
        # a window per model, or each new version would retrain at once.
        set_live(self, self.c, name, 2)
        wait_until(lambda: self.live_drift(name)["version"] == 2 and
                   self.live_drift(name)["window"] is not None, 10, "version 2's drift window")
        self.send(name, shifted, "v2")
        second = wait_until(lambda: [a for a in self.drift_actions(name) if a["version"] == 2], 10,
                            "the drift report of version 2")[0]
        self.assertRegex(second["outcome"], r"not retraining: the last drift job was queued "
                                            r"\d+ s ago, within the drift window$", second)
        jobs = self.c.get("/v1/models/%s/jobs" % name).json()["jobs"]
        self.assertEqual(sorted(j["trigger"] for j in jobs), ["drift", "manual"], jobs)

    def test_drift_without_retraining_and_bad_policies(self):
        feats, labels, _ = load_data(self, self.c, 200, seed=6)
        name = uid("drift")
        put_model(self, self.c, name, definition(
            feats, labels, supervision=dict(DRIFT_SUPERVISION, min_drift_samples=100)))
        self.assertEqual(train(self, self.c, name), 1)
        set_live(self, self.c, name, 1)
        wait_until(lambda: self.live_drift(name)["window"] is not None, 5, "a drift window")
        # A colour training never saw, and no x2 at all.
        rows = [{"x1": f["x1"], "color": "purple", "caption": f["caption"]}
                for _, f, _, _ in synthetic(120, seed=13)]
        self.send(name, rows, "odd")
        window = self.live_drift(name)["window"]
        by_field = self.fields(window)
        other = [b for b in by_field["color"]["bins"] if b["bin"] == "other"][0]
        self.assertEqual((other["kind"], other["expected"], other["observed"]),
                         ("other", 0, 1.0), other)
        self.assertEqual({b["kind"] for b in by_field["color"]["bins"][:-2]}, {"value"})
        missing = by_field["x2"]["bins"][-1]
        self.assertEqual((missing["kind"], missing["expected"], missing["observed"]),
                         ("missing", 0, 1.0), missing)
        self.assertEqual({b["kind"] for b in by_field["x2"]["bins"][:-1]}, {"range"})
        self.assertLess(by_field["x1"]["psi"], 0.25, by_field["x1"])
        action = wait_until(lambda: self.drift_actions(name), 10, "the supervisor's drift report")[0]
        self.assertEqual(action["outcome"], "reported; retrain.on_drift is off", action)
        jobs = [j for j in self.c.get("/v1/models/%s/jobs" % name).json()["jobs"]]
        self.assertEqual([j["trigger"] for j in jobs], ["manual"], jobs)
        # Serving goes on from the same version: drift alone takes nothing out of service.
        self.assertEqual(events_of(self, self.c, name), [])

        # A restart within the drift window keeps the report, and the same
        # drift is not reported again until the window has passed (it was,
        # at once: the window's clock was kept in memory only).
        self.server.stop()
        self.server = self.start_server()
        self.c = self.client(self.server)
        self.assertEqual(self.drift_actions(name), [action])
        wait_until(lambda: self.live_drift(name)["window"] is not None, 5, "a drift window")
        self.send(name, rows, "again")
        self.assertTrue(self.live_drift(name)["window"]["drifted"])
        supervisor_looks(self, self.c, 3)
        self.assertEqual(self.drift_actions(name), [action])

        # Unknown models and bad policies are refused, naming the field; a
        # model never trained has nothing served, so no version to report.
        r = self.c.get("/v1/models/nosuchmodel/drift")
        self.assertErrorShape(r, 404, "not_found", "name")
        untrained = uid("untrained")
        put_model(self, self.c, untrained, definition(feats, labels))
        wait_until(lambda: self.c.get("/v1/models/%s/drift" % untrained).status == 200, 5,
                   "the untrained model in serving")
        self.assertEqual(self.drift_of(untrained)["versions"], [])
        base = definition(feats, labels)
        for bad, field in (({"supervision": {"max_feature_drift": -1}}, "supervision.max_feature_drift"),
                           ({"supervision": {"max_feature_drift": "high"}}, "supervision.max_feature_drift"),
                           ({"supervision": {"min_drift_samples": 0}}, "supervision.min_drift_samples"),
                           ({"supervision": {"drift_window_seconds": 1}}, "supervision.drift_window_seconds"),
                           ({"retrain": {"on_drift": "yes"}}, "retrain.on_drift")):
            model = uid("bad")
            r = self.c.request("PUT", "/v1/models/" + model, json_body=dict(base, **bad))
            assert_definition_errors(self, r, [field])
            self.assertEqual(self.c.get("/v1/models/" + model).status, 404)


if __name__ == "__main__":
    unittest.main()
