"""Integration tests for the supervisor: a live version that throws is taken
out of service by itself (disabled, live moved back, both recorded with the
reason and shown in /v1/serving), and a person can put it back through the
API.

The real binary with --test-faults on a free loopback port, over real HTTP
(see kennel_harness.py). Every wait is bounded.
"""

import time
import unittest

from kennel_harness import KennelTestCase
from test_predict import (FEATURES, definition, deployments_of, events_of, load_data, predict,
                          put_model, set_live, train, uid, wait_until)

SUPERVISION = {"max_error_rate": 0.2, "min_requests": 10, "window_seconds": 30}
ACT_WITHIN_S = 10


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

        event = wait_until(lambda: self.disabled_event(name), ACT_WITHIN_S,
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

    def test_healthy_version_is_left_alone(self):
        feats, labels, _ = load_data(self, self.c, 150, seed=3)
        name = uid("calm")
        put_model(self, self.c, name, definition(feats, labels, supervision=SUPERVISION))
        self.assertEqual(train(self, self.c, name), 1)
        set_live(self, self.c, name, 1)
        t_end = time.monotonic() + 2.5
        n = 0
        while time.monotonic() < t_end:
            p = predict(self, self.c, name, {"features": FEATURES})
            self.assertEqual((p["version"], p["fallback"]), (1, False), p)
            n += 1
            time.sleep(0.02)
        self.assertGreaterEqual(n, 10)  # min_requests
        body, mine = self.serving_of(name)
        self.assertGreaterEqual(body["supervisor"]["ticks"], 2, body["supervisor"])
        self.assertEqual([a for a in body["supervisor"]["actions"] if a["model"] == name], [])
        self.assertEqual(events_of(self, self.c, name), [])
        self.assertEqual(mine["serving_version"], 1, mine)

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
        wait_until(lambda: self.disabled_event(name), ACT_WITHIN_S,
                   "the supervisor's disabled event after 20 failed requests")


if __name__ == "__main__":
    unittest.main()
