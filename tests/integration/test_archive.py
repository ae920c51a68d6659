"""Integration tests for archiving a model: out of service (its predictions
404 naming the archive), out of the lists, no training or serving change
accepted, its queued jobs cancelled, its running one stopped and its
experiment ended; its history kept, and a restore serving it again as it
was, across restarts. A model an app asked lately is archived only with
"force".

The real binary on a free loopback port with a temporary database, over real
HTTP (see kennel_harness.py). Every wait is bounded.
"""

import time
import unittest

from kennel_harness import KennelTestCase, run_cli, uid
from test_experiments import three_versions
from test_predict import (FINISHED, SharedServerCase, definition, load_data, predict, put_model,
                          set_live, train, wait_until)

ROW = {"x1": 1.0, "x2": 2.0, "color": "red", "caption": "a dog"}


def archive(c, name, reason="no longer used", **extra):
    return c.post_json("/v1/models/%s/archive" % name, dict({"reason": reason}, **extra))


def restore(c, name, reason="needed again"):
    return c.post_json("/v1/models/%s/restore" % name, {"reason": reason})


def names(c, query=""):
    r = c.get("/v1/models" + query)
    if r.status != 200:
        raise AssertionError(repr(r))
    return {m["name"]: m for m in r.json()["models"]}


def served(c):
    return {m["model"] for m in c.get("/v1/serving").json()["models"]}


class ArchiveTest(SharedServerCase):

    def assertArchivedConflict(self, r, what):
        self.assertErrorShape(r, 409, "conflict", "name")
        msg = r.json()["error"]["message"]
        self.assertIn("is archived", msg, r)
        self.assertIn("retired in a test", msg, r)
        self.assertIn(what, msg, r)

    def wait_logged(self, name):
        """Until the prediction log holds one of the model's predictions."""
        wait_until(lambda: self.c.get("/v1/models/%s/predictions" % name).json()["predictions"],
                   30, "a logged prediction of " + name)

    def test_archive_and_restore(self):
        name, _, _, _, d = self.trained()
        before = predict(self, self.c, name, {"entity": "e1", "features": ROW})
        self.assertEqual(before["version"], 1)
        self.wait_logged(name)

        # An alias set and removed before the archive (its removal, sent
        # again later, is refused by the archive like any alias change).
        for method, body in (("PUT", {"version": 1, "reason": "x"}), ("DELETE", {"reason": "x"})):
            r = self.c.request(method, "/v1/models/%s/aliases/staging" % name, json_body=body)
            self.assertEqual(r.status, 200, r)

        # Asked lately: refused without force, naming it; nothing changes.
        r = archive(self.c, name, "retired in a test")
        self.assertErrorShape(r, 409, "conflict", "force")
        self.assertIn("within the last 10 minutes", r.json()["error"]["message"])
        self.assertIn(name, names(self.c))
        predict(self, self.c, name, {"features": ROW})

        r = archive(self.c, name, "retired in a test", force=True)
        self.assertEqual(r.status, 200, r)
        out = r.json()
        self.assertEqual((out["archived"], out["changed"], out["reason"]), (True, True, "retired in a test"))
        self.assertEqual(out["cancelled_jobs"], [])
        self.assertIsNone(out["ended_experiment"])

        # Its predictions are a 404 that names the archive and the way back.
        r = self.c.post_json("/v1/models/%s/predict" % name, {"features": ROW})
        self.assertErrorShape(r, 404, "not_found", "name")
        msg = r.json()["error"]["message"]
        self.assertIn("is archived", msg)
        self.assertIn("retired in a test", msg)
        self.assertIn("/v1/models/%s/restore" % name, msg)
        self.assertNotIn(name, served(self.c))
        # Its history stays readable; its drift says nothing is watched.
        r = self.c.get("/v1/models/%s/drift" % name)
        self.assertEqual(r.status, 200, r)
        self.assertEqual((r.json()["versions"], r.json()["archived"]["reason"]),
                         ([], "retired in a test"), r)
        self.assertEqual(self.c.get("/v1/models/%s/versions" % name).json()["count"], 1)
        self.assertTrue(self.c.get("/v1/models/%s/predictions" % name).json()["predictions"])

        # Out of the list; listed with ?archived=true and =all; readable by name.
        self.assertNotIn(name, names(self.c))
        listed = names(self.c, "?archived=true")
        self.assertIn(name, listed)
        self.assertEqual(listed[name]["archived"]["reason"], "retired in a test")
        self.assertEqual(listed[name]["archived"]["by"], "admin")
        self.assertEqual(listed[name]["aliases"]["live"], 1)
        self.assertTrue(all(m["archived"] for m in listed.values()))
        other = self.model()[0]
        self.assertEqual(set(names(self.c, "?archived=all")),
                         set(names(self.c)) | set(names(self.c, "?archived=true")))
        self.assertIn(other, names(self.c, "?archived=all"))
        self.assertIsNone(names(self.c)[other]["archived"])
        m = self.c.get("/v1/models/" + name).json()
        self.assertEqual(m["archived"]["reason"], "retired in a test")
        self.assertEqual([e["event"] for e in m["archive_history"]], ["archived"])

        # No change to what it is or serves is taken, and none is half-made.
        self.assertArchivedConflict(
            self.c.request("PUT", "/v1/models/" + name, json_body=dict(d, holdout=0.3)),
            "change its definition")
        self.assertArchivedConflict(self.c.post("/v1/models/%s/train" % name), "train it")
        self.assertArchivedConflict(
            self.c.request("PUT", "/v1/models/%s/aliases/live" % name,
                           json_body={"version": 1, "reason": "x"}), "move its aliases")
        self.assertArchivedConflict(
            self.c.request("DELETE", "/v1/models/%s/aliases/live" % name,
                           json_body={"reason": "x"}), "remove an alias")
        self.assertArchivedConflict(
            self.c.request("DELETE", "/v1/models/%s/aliases/staging" % name,
                           json_body={"reason": "x"}), "remove an alias")
        self.assertArchivedConflict(
            self.c.post_json("/v1/models/%s/experiments" % name,
                             {"arms": [{"version": 1, "weight": 1}], "reason": "x"}),
            "start an experiment")
        # Nor a disable (a restore would not serve what it served) or a
        # rollback, and the model offers none.
        self.assertArchivedConflict(
            self.c.post_json("/v1/models/%s/versions/1/disable" % name, {"reason": "x"}),
            "disable a version")
        self.assertArchivedConflict(
            self.c.post_json("/v1/models/%s/rollback" % name, {"reason": "x"}), "roll it back")
        self.assertIsNone(self.c.get("/v1/models/" + name).json()["rollback"]["to"])
        m = self.c.get("/v1/models/" + name).json()
        self.assertEqual((m["revision"], m["aliases"]["live"]), (1, 1))
        self.assertEqual(self.c.get("/v1/models/%s/jobs" % name).json()["jobs"][0]["state"],
                         "succeeded")

        # Archiving again changes nothing and records nothing.
        r = archive(self.c, name, "again")
        self.assertEqual((r.status, r.json()["changed"]), (200, False), r)

        # Restored: served as it was, by the same version.
        r = restore(self.c, name)
        self.assertEqual(r.status, 200, r)
        self.assertEqual((r.json()["changed"], r.json()["serving_version"]), (True, 1), r)
        after = predict(self, self.c, name, {"entity": "e1", "features": ROW})
        self.assertEqual((after["version"], after["prediction"]), (1, before["prediction"]))
        self.assertIn(name, names(self.c))
        self.assertNotIn(name, names(self.c, "?archived=true"))
        r = restore(self.c, name)
        self.assertEqual((r.status, r.json()["changed"]), (200, False), r)
        m = self.c.get("/v1/models/" + name).json()
        self.assertIsNone(m["archived"])
        self.assertEqual([(e["event"], e["reason"]) for e in m["archive_history"]],
                         [("archived", "retired in a test"), ("restored", "needed again")])
        self.assertEqual(m["archive_events"], 2)
        # And it takes changes again.
        self.assertEqual(self.c.request("PUT", "/v1/models/" + name,
                                        json_body=dict(d, holdout=0.3)).status, 200)

    def test_archiving_ends_its_experiment(self):
        name, _, _, _ = three_versions(self, self.c)
        r = self.c.post_json("/v1/models/%s/experiments" % name,
                             {"arms": [{"version": 1, "weight": 0.5}, {"version": 2, "weight": 0.5}],
                              "reason": "split"})
        self.assertEqual(r.status, 201, r)
        ex = r.json()["id"]
        r = archive(self.c, name, "retired in a test", force=True)
        self.assertEqual(r.json()["ended_experiment"], ex, r)
        e = self.c.get("/v1/models/%s/experiments/%d" % (name, ex)).json()
        self.assertFalse(e["active"])
        self.assertEqual(e["end_reason"], "model archived: retired in a test")
        self.assertEqual(e["history"][-1]["event"], "ended")
        # Restored, it serves live without the split.
        self.assertEqual(restore(self.c, name).status, 200)
        p = predict(self, self.c, name, {"entity": "e7", "features": ROW})
        self.assertEqual((p["version"], p["arm"]), (1, "live"))

    def test_bad_requests(self):
        name, _, _, _, _ = self.model()
        self.assertErrorShape(self.c.post_json("/v1/models/%s/archive" % name, {}),
                              400, "invalid_argument", "reason")
        self.assertErrorShape(archive(self.c, name, "   "), 400, "invalid_argument", "reason")
        self.assertErrorShape(archive(self.c, name, force="yes"), 400, "invalid_argument", "force")
        self.assertErrorShape(archive(self.c, name, forse=True), 400, "invalid_argument", "forse")
        self.assertErrorShape(self.c.post("/v1/models/%s/archive" % name, body=b"{",
                                          headers={"Content-Type": "application/json"}), 400)
        self.assertErrorShape(archive(self.c, uid("nosuch")), 404, "not_found", "name")
        self.assertErrorShape(restore(self.c, uid("nosuch")), 404, "not_found", "name")
        self.assertErrorShape(self.c.post_json("/v1/models/%s/restore" % name, {}),
                              400, "invalid_argument", "reason")
        self.assertErrorShape(self.c.get("/v1/models?archived=yes"), 400, "invalid_argument",
                              "archived")
        # None of it archived anything.
        self.assertIsNone(self.c.get("/v1/models/" + name).json()["archived"])
        self.assertEqual(self.c.get("/v1/models/" + name).json()["archive_history"], [])
        # A key without the admin scope may not archive.
        r = self.c.post_json("/v1/keys", {"name": uid("k"), "scopes": ["predict"]})
        self.assertEqual(r.status, 201, r)
        key = r.json()["key"]
        r = self.c.request("POST", "/v1/models/%s/archive" % name, json_body={"reason": "x"},
                           headers={"Authorization": "Bearer " + key})
        self.assertErrorShape(r, 403)


class ArchiveJobsTest(SharedServerCase):
    """Jobs of an archived model: a queued one is cancelled, a running one
    stopped (a definition's test_fault "sleep" holds it running)."""

    server_args = ("--test-faults",)

    def job(self, job_id):
        return self.c.get("/v1/jobs/%d" % job_id).json()

    def test_queued_and_running_jobs_are_cancelled(self):
        feats, labels, _ = load_data(self, self.c, 80, seed=5)
        sleeper, waiting = uid("sleeper"), uid("waiting")
        put_model(self, self.c, sleeper, definition(feats, labels, test_fault="sleep"))
        put_model(self, self.c, waiting, definition(feats, labels))
        running = self.c.post("/v1/models/%s/train" % sleeper).json()["job"]
        wait_until(lambda: self.job(running)["state"] == "running", 30, "the sleeping job to run")
        queued = self.c.post("/v1/models/%s/train" % waiting).json()["job"]
        self.assertEqual(self.job(queued)["state"], "queued")

        r = archive(self.c, waiting)
        self.assertEqual(r.json()["cancelled_jobs"], [queued], r)
        self.assertEqual(self.job(queued)["state"], "cancelled")
        self.assertIn("model archived by admin: no longer used",
                      [line["message"] for line in self.job(queued)["log"]])

        # One more queued behind the running one, on the same model: both
        # end cancelled (the queued one's cancel took the running one's
        # place, which then ended "failed").
        behind = self.c.post("/v1/models/%s/train" % sleeper).json()["job"]
        self.assertNotEqual(behind, running)
        r = archive(self.c, sleeper)
        self.assertEqual(r.json()["cancelled_jobs"], [running, behind], r)
        wait_until(lambda: self.job(running)["state"] not in ("queued", "running"), 30,
                   "the running job to stop")
        self.assertEqual(self.job(running)["state"], "cancelled", self.job(running))
        self.assertEqual(self.job(behind)["state"], "cancelled")
        self.assertIsNone(self.job(running)["version"])


class ArchiveUnloggedTest(KennelTestCase):
    """The "force" rule counts answers the prediction log does not hold
    yet (it is written a few ms later) or dropped (its queue was full):
    an archive sent right after an answer went through without "force"."""

    def test_an_answer_not_in_the_log_still_counts(self):
        server, c = self.serve(self.path("kennel.db"), ("--prediction-log-queue", "1"))
        feats, labels, _ = load_data(self, c, 80, seed=13)
        for i in range(3):
            name = uid("unlogged")
            put_model(self, c, name, definition(feats, labels))
            self.assertEqual(train(self, c, name), 1)
            set_live(self, c, name, 1)
            self.assertEqual(c.get("/v1/models/%s/predictions" % name).json()["predictions"], [])
            # A batch beyond the log's queue, then the archive at once.
            r = c.post_json("/v1/models/%s/predict" % name,
                            {"instances": [{"entity": "e%d" % k, "features": ROW}
                                           for k in range(50)]})
            self.assertEqual(r.status, 200, r)
            r = archive(c, name, "retired in a test")
            self.assertErrorShape(r, 409, "conflict", "force")


class ArchiveRestartTest(KennelTestCase):

    def test_archived_across_a_restart_and_its_triggers_stop(self):
        db = self.path("kennel.db")
        server, c = self.serve(db)
        feats, labels, _ = load_data(self, c, 80, seed=9)
        name = uid("timed")
        put_model(self, c, name, definition(feats, labels, retrain={"every_seconds": 10}))

        def jobs():
            return c.get("/v1/models/%s/jobs" % name).json()["jobs"]
        first = wait_until(jobs, 30, "the interval trigger's first job")[0]
        wait_until(lambda: jobs()[0]["state"] in FINISHED, 60, "the first job to end")
        ended = time.monotonic()
        r = archive(c, name, "retired in a test")
        self.assertEqual(r.status, 200, r)
        server.stop()
        # The command line refuses it too, naming the archive.
        r = run_cli(["train", name, "--db", db])
        self.assertNotEqual(r.returncode, 0, r.stdout)
        self.assertIn("is archived", r.stderr)
        r = run_cli(["predict", name, "--db", db], input='{"features": {}}\n')
        self.assertNotEqual(r.returncode, 0, r.stdout)
        self.assertIn("is archived", r.stderr)

        server, c = self.serve(db)
        self.assertEqual(c.get("/v1/models/" + name).json()["archived"]["reason"],
                         "retired in a test")
        r = c.post_json("/v1/models/%s/predict" % name, {"features": ROW})
        self.assertEqual(r.status, 404, r)
        self.assertIn("is archived", r.json()["error"]["message"])
        # Past its interval and the scheduler's gap between automatic jobs
        # (30 s from the last one's end), no job was queued for it.
        count = len(jobs())
        self.assertEqual(jobs()[-1]["id"], first["id"])
        time.sleep(max(0.0, ended + 36 - time.monotonic()))
        self.assertEqual(len(jobs()), count, jobs())
        # Restored, its interval trigger runs again.
        self.assertEqual(restore(c, name).status, 200)
        wait_until(lambda: len(jobs()) > count, 60, "an interval job after the restore")


if __name__ == "__main__":
    unittest.main()
