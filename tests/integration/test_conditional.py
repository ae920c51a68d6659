"""Integration tests for conditional writes (If-Match, If-None-Match): a
definition, an alias, a rollback or an experiment changes only if it is still
in the state the caller read (its ETag), so two people editing at once cannot
overwrite each other unseen and a rollback retried after a lost answer cannot
roll back twice. A condition that does not hold is a 412 naming the header
and the state now, and nothing is written.

The real binary on a free loopback port with a temporary database, over real
HTTP (see kennel_harness.py). Every wait is bounded.
"""

import threading
import unittest

from kennel_harness import Client, uid
from test_experiments import three_versions
from test_predict import SharedServerCase, definition, load_data, put_model


class ConditionalWriteTest(SharedServerCase):

    def assertStale(self, r, field, etag_now):
        """A 412 naming the header that failed, with the state now."""
        self.assertEqual(r.status, 412, r)
        err = r.json()["error"]
        self.assertEqual(err["code"], "stale", r)
        self.assertEqual(err["field"], field, r)
        if etag_now is not None:
            self.assertEqual(r.header("ETag"), etag_now, r)
            self.assertIn(etag_now, err["message"], r)

    def revisions(self, name):
        r = self.c.get("/v1/models/%s/revisions" % name)
        self.assertEqual(r.status, 200, r)
        return r.json()["revisions"]

    def put_def(self, name, d, headers, c=None):
        return (c or self.c).request("PUT", "/v1/models/" + name, json_body=d, headers=headers)

    def live(self, name):
        r = self.c.get("/v1/models/%s/aliases/live" % name)
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.header("ETag"), '"v%d"' % r.json()["version"], r)
        return r.json()["version"]

    def deployments(self, name):
        r = self.c.get("/v1/models/%s/deployments" % name)
        self.assertEqual(r.status, 200, r)
        return r.json()["deployments"]

    def test_two_editors_of_one_definition(self):
        feats, labels, _ = load_data(self, self.c, 60, seed=31)
        name = uid("cond")
        d = definition(feats, labels)
        r = self.put_def(name, d, {})
        self.assertEqual(r.status, 201, r)
        self.assertEqual(r.header("ETag"), '"r1"', r)
        r = self.c.get("/v1/models/" + name)
        self.assertEqual(r.header("ETag"), '"r1"', r)

        # Both read revision 1; the first to save wins, the second is told.
        first, second = dict(d, holdout=0.25), dict(d, holdout=0.3)
        r = self.put_def(name, first, {"If-Match": '"r1"'})
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.header("ETag"), '"r2"', r)
        r = self.put_def(name, second, {"If-Match": '"r1"'})
        self.assertStale(r, "If-Match", '"r2"')
        self.assertIn('"r1"', r.json()["error"]["message"])
        self.assertEqual(len(self.revisions(name)), 2)
        self.assertEqual(self.c.get("/v1/models/" + name).json()["definition"]["holdout"], 0.25)

        # Strong comparison: a weak tag never matches; any tag of a list may.
        self.assertStale(self.put_def(name, second, {"If-Match": 'W/"r2"'}), "If-Match", '"r2"')
        r = self.put_def(name, second, {"If-Match": '"r9", "r2"'})
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.header("ETag"), '"r3"', r)
        # If-Match: * holds for a model that exists; an identical definition
        # makes no revision and keeps the ETag.
        r = self.put_def(name, second, {"If-Match": "*"})
        self.assertEqual(r.status, 200, r)
        self.assertIs(r.json()["new_revision"], False, r)
        self.assertEqual(r.header("ETag"), '"r3"', r)
        # If-None-Match: a tag that matches (weakly) refuses.
        self.assertStale(self.put_def(name, d, {"If-None-Match": 'W/"r3"'}), "If-None-Match", '"r3"')
        self.assertEqual(len(self.revisions(name)), 3)

    def test_create_only_and_a_condition_on_a_model_that_does_not_exist(self):
        feats, labels, _ = load_data(self, self.c, 60, seed=32)
        d = definition(feats, labels)
        name = uid("cond")
        # If-Match on a model that does not exist: 412, and it is not created.
        r = self.put_def(name, d, {"If-Match": '"r1"'})
        self.assertStale(r, "If-Match", None)
        self.assertIsNone(r.header("ETag"), r)
        self.assertIn("does not exist", r.json()["error"]["message"])
        self.assertEqual(self.c.get("/v1/models/" + name).status, 404)
        self.assertStale(self.put_def(name, d, {"If-Match": "*"}), "If-Match", None)
        self.assertEqual(self.c.get("/v1/models/" + name).status, 404)
        # If-None-Match: * creates once; a second create is refused.
        r = self.put_def(name, d, {"If-None-Match": "*"})
        self.assertEqual(r.status, 201, r)
        r = self.put_def(name, dict(d, holdout=0.3), {"If-None-Match": "*"})
        self.assertStale(r, "If-None-Match", '"r1"')
        self.assertIn("exists already", r.json()["error"]["message"])
        self.assertEqual(len(self.revisions(name)), 1)

    def test_malformed_conditions_are_refused_and_write_nothing(self):
        feats, labels, _ = load_data(self, self.c, 60, seed=33)
        d = definition(feats, labels)
        name = uid("cond")
        put_model(self, self.c, name, d)
        changed = dict(d, holdout=0.3)
        for header, value in (("If-Match", "r1"),            # the quotes left out
                              ("If-Match", '"r1'),           # not closed
                              ("If-Match", '*, "r1"'),       # * is alone or not at all
                              ("If-Match", '"r1" "r2"'),     # no comma
                              ("If-None-Match", "r1"),
                              ("If-None-Match", '"a b"')):   # no space in a tag
            with self.subTest(header=header, value=value):
                r = self.put_def(name, changed, {header: value})
                self.assertEqual(r.status, 400, r)
                self.assertEqual(r.json()["error"]["field"], header, r)
                self.assertIn("quoted entity tags", r.json()["error"]["message"])
        self.assertEqual(len(self.revisions(name)), 1)
        # An empty condition (a script's unset $ETAG) was dropped on the way
        # in, and the write went ahead unconditionally.
        for header in ("If-Match", "If-None-Match"):
            with self.subTest(empty=header):
                r = self.put_def(name, changed, {header: ""})
                self.assertEqual(r.status, 400, r)
                self.assertIn("has no value", r.json()["error"]["message"], r)
                self.assertEqual(r.json()["error"]["field"], header, r)
        self.assertEqual(len(self.revisions(name)), 1)
        # Other routes read the same way.
        r = self.c.request("PUT", "/v1/models/%s/aliases/live" % name,
                           json_body={"version": 1, "reason": "x"}, headers={"If-Match": "v1"})
        self.assertEqual(r.status, 400, r)
        self.assertEqual(r.json()["error"]["field"], "If-Match", r)

    def test_a_condition_on_a_write_that_reads_none_is_refused(self):
        # A disable with If-Match went ahead unconditionally: the client
        # believed its condition guarded the write.
        feats, labels, _ = load_data(self, self.c, 60, seed=35)
        name = uid("cond")
        put_model(self, self.c, name, definition(feats, labels))
        fact = {"stream": feats, "entity": "e1", "time": "2026-11-20T10:00:00Z",
                "data": {"x": 1}}
        writes = (("POST", "/v1/models/%s/train" % name, {}),
                  ("POST", "/v1/models/%s/archive" % name, {"reason": "x"}),
                  ("POST", "/v1/models/%s/versions/1/disable" % name, {"reason": "x"}),
                  ("POST", "/v1/facts", fact),
                  ("POST", "/v1/keys", {"name": "cond-key", "scopes": ["read"]}))
        for method, path, body in writes:
            for header, value in (("If-Match", '"r1"'), ("If-None-Match", "*")):
                with self.subTest(path=path, header=header):
                    r = self.c.request(method, path, json_body=body, headers={header: value})
                    self.assertEqual(r.status, 400, r)
                    err = r.json()["error"]
                    self.assertEqual(err["field"], header, r)
                    self.assertIn("takes no %s condition" % header, err["message"], r)
        # Nothing was written: no job, no archive, no fact, no key.
        self.assertEqual(self.c.get("/v1/models/%s/jobs" % name).json()["jobs"], [])
        self.assertIsNone(self.c.get("/v1/models/" + name).json()["archived"])
        facts = self.c.get("/v1/streams/%s/facts?entity=e1" % feats).json()["facts"]
        self.assertNotIn({"x": 1}, [f["data"] for f in facts])
        self.assertNotIn("cond-key", [k["name"] for k in self.c.get("/v1/keys").json()["keys"]])
        # A GET with If-None-Match is a cache's question, answered as before.
        r = self.c.get("/v1/models/" + name, headers={"If-None-Match": '"r1"'})
        self.assertEqual(r.status, 200, r)

    def test_of_many_saves_from_one_revision_exactly_one_lands(self):
        feats, labels, _ = load_data(self, self.c, 60, seed=34)
        d = definition(feats, labels)
        name = uid("cond")
        put_model(self, self.c, name, d)
        results = [None] * 8
        start = threading.Barrier(len(results))

        def save(i):
            c = Client(self.server.port)
            try:
                start.wait(timeout=30)
                results[i] = self.put_def(name, dict(d, holdout=0.2 + 0.01 * (i + 1)),
                                          {"If-Match": '"r1"'}, c).status
            finally:
                c.close()

        threads = [threading.Thread(target=save, args=(i,)) for i in range(len(results))]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=60)
        self.assertEqual(sorted(results), [200] + [412] * (len(results) - 1), results)
        self.assertEqual(len(self.revisions(name)), 2)

    def test_a_rollback_retried_rolls_back_once(self):
        name, _, _, _ = three_versions(self, self.c, n=120, seed=35)
        for v in (2, 3):
            r = self.c.request("PUT", "/v1/models/%s/aliases/live" % name,
                               json_body={"version": v, "reason": "step"},
                               headers={"If-Match": '"v%d"' % (v - 1)})
            self.assertEqual(r.status, 200, r)
            self.assertEqual(r.header("ETag"), '"v%d"' % v, r)
        self.assertEqual(self.live(name), 3)
        self.assertEqual(self.c.get("/v1/models/" + name).json()["rollback"]["to"], 2)

        body = {"reason": "v3 misbehaves", "to": 2}
        r = self.c.post_json("/v1/models/%s/rollback" % name, body, headers={"If-Match": '"v3"'})
        self.assertEqual(r.status, 200, r)
        self.assertEqual((r.json()["from"], r.json()["to"]), (3, 2), r)
        self.assertEqual(r.header("ETag"), '"v2"', r)
        moves = len(self.deployments(name))
        # The same request again (a client that lost the answer): refused.
        r = self.c.post_json("/v1/models/%s/rollback" % name, body, headers={"If-Match": '"v3"'})
        self.assertStale(r, "If-Match", '"v2"')
        self.assertEqual(self.live(name), 2)
        self.assertEqual(len(self.deployments(name)), moves)
        # Live is as read, but the rollback would go elsewhere than the
        # caller was shown: refused, naming "to".
        r = self.c.post_json("/v1/models/%s/rollback" % name, {"reason": "x", "to": 3},
                             headers={"If-Match": '"v2"'})
        self.assertStale(r, "to", None)
        self.assertIn("to v1, not to v3", r.json()["error"]["message"])
        self.assertEqual(self.live(name), 2)
        # Without If-Match too, the 412 says where live is.
        r = self.c.post_json("/v1/models/%s/rollback" % name, {"reason": "x", "to": 3})
        self.assertStale(r, "to", None)
        self.assertEqual(r.header("ETag"), '"v2"', r)
        r = self.c.post_json("/v1/models/%s/rollback" % name, {"reason": "x", "to": "1"})
        self.assertEqual(r.status, 400, r)
        self.assertEqual(r.json()["error"]["field"], "to", r)
        self.assertEqual(len(self.deployments(name)), moves)
        # Without conditions a rollback is as before.
        r = self.c.post_json("/v1/models/%s/rollback" % name, {"reason": "unconditional"})
        self.assertEqual(r.status, 200, r)
        self.assertEqual(self.live(name), 1)

    def test_alias_moves_and_removals_are_conditional(self):
        name, _, _, _ = three_versions(self, self.c, n=120, seed=36)
        path = "/v1/models/%s/aliases/" % name
        r = self.c.request("PUT", path + "live", json_body={"version": 2, "reason": "a"},
                           headers={"If-Match": '"v3"'})
        self.assertStale(r, "If-Match", '"v1"')
        self.assertEqual(self.live(name), 1)
        # Create-only: the first sets it, the second is told it is set.
        r = self.c.request("PUT", path + "canary", json_body={"version": 2, "reason": "a"},
                           headers={"If-None-Match": "*"})
        self.assertEqual(r.status, 200, r)
        r = self.c.request("PUT", path + "canary", json_body={"version": 3, "reason": "b"},
                           headers={"If-None-Match": "*"})
        self.assertStale(r, "If-None-Match", '"v2"')
        r = self.c.get(path + "canary")
        self.assertEqual((r.status, r.json()["version"], r.header("ETag")), (200, 2, '"v2"'), r)
        r = self.c.request("DELETE", path + "canary", json_body={"reason": "c"},
                           headers={"If-Match": '"v3"'})
        self.assertStale(r, "If-Match", '"v2"')
        self.assertEqual(self.c.get(path + "canary").status, 200)
        r = self.c.request("DELETE", path + "canary", json_body={"reason": "c"},
                           headers={"If-Match": '"v2"'})
        self.assertEqual(r.status, 200, r)
        r = self.c.get(path + "canary")
        self.assertEqual(r.status, 404, r)
        self.assertEqual(r.json()["error"]["field"], "alias", r)
        # A condition on an alias that is gone.
        r = self.c.request("PUT", path + "canary", json_body={"version": 3, "reason": "d"},
                           headers={"If-Match": "*"})
        self.assertStale(r, "If-Match", None)
        self.assertEqual(self.c.get(path + "canary").status, 404)

    def test_experiment_changes_are_conditional(self):
        name, _, _, _ = three_versions(self, self.c, n=120, seed=37)
        base = "/v1/models/%s/experiments" % name
        r = self.c.post_json(base, {"reason": "try", "arms": [{"version": 1, "weight": 1},
                                                              {"version": 2, "weight": 1}]})
        self.assertEqual(r.status, 201, r)
        self.assertEqual(r.header("ETag"), '"e1"', r)
        eid = r.json()["id"]
        r = self.c.get("%s/%d" % (base, eid))
        self.assertEqual(r.header("ETag"), '"e1"', r)

        # Two people change the weights from the same reading.
        a = {"reason": "more to 2", "arms": [{"version": 1, "weight": 1}, {"version": 2, "weight": 3}]}
        b = {"reason": "add 3", "arms": [{"version": 1, "weight": 1}, {"version": 3, "weight": 1}]}
        r = self.c.request("PUT", "%s/%d" % (base, eid), json_body=a, headers={"If-Match": '"e1"'})
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.header("ETag"), '"e2"', r)
        r = self.c.request("PUT", "%s/%d" % (base, eid), json_body=b, headers={"If-Match": '"e1"'})
        self.assertStale(r, "If-Match", '"e2"')
        e = self.c.get("%s/%d" % (base, eid)).json()
        self.assertEqual([arm["version"] for arm in e["arms"]], [1, 2], e)
        self.assertEqual(len(e["history"]), 2, e)
        # Ending it from the stale reading is refused too; from the new one it ends.
        r = self.c.post_json("%s/%d/end" % (base, eid), {"reason": "done"}, headers={"If-Match": '"e1"'})
        self.assertStale(r, "If-Match", '"e2"')
        self.assertIs(self.c.get("%s/%d" % (base, eid)).json()["active"], True)
        r = self.c.post_json("%s/%d/end" % (base, eid), {"reason": "done"}, headers={"If-Match": '"e2"'})
        self.assertEqual(r.status, 200, r)
        self.assertIs(r.json()["active"], False, r)
        self.assertEqual(r.header("ETag"), '"e3"', r)


if __name__ == "__main__":
    unittest.main()
