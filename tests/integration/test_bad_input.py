"""Bad input to the routes the fact-log scenarios (test_serve) do not cover:
sign-in and keys, model definitions, training and jobs, versions, aliases,
rollback and experiments, reading with a bad parameter, bodies over
--max-body, sign-out without a session, and a training job with too few
labelled rows.

Each bad request must get a 4xx JSON error naming the problem (its code, the
field where the server names one, a fragment of its message); the matching
list or state read back afterwards must be unchanged (nothing half-written),
and the server must go on serving.

The real binary on a free loopback port with a temporary database, over real
HTTP (see kennel_harness.py). Every wait is bounded. Each test uses its own
streams and models, except the trained model `fixture()` builds once per
class, which only ever receives requests that must change nothing.
"""

import json
import time
import unittest

import kennel_harness
from kennel_harness import Client, fact, uid
from test_learning import (aliases_of, at, definition, deployments_of, log_text, put_model,
                           synthetic, train_and_wait)

JSON = {"Content-Type": "application/json"}
TEXT = {"Content-Type": "text/plain"}
LOG_WAIT_S = 20   # the prediction log is written a few milliseconds at a time
SMALL_BODY = 4096  # --max-body of BodyLimitTest's server


def post_in_batches(test, c, facts, batch=2000):
    """Stores facts `batch` at a time (the small-body server needs small
    batches); asserts none was rejected."""
    for i in range(0, len(facts), batch):
        r = c.post_json("/v1/facts", facts[i:i + batch])
        test.assertEqual(r.status, 200, r)
        test.assertEqual(r.json()["rejected"], 0, r)


def row_facts(feats, labels, rows):
    """A feature fact per row and, an hour later, its label y (None: no label)."""
    out = []
    for i, (entity, data, y) in enumerate(rows):
        out.append(fact(feats, entity, data, time_=at(0, i)))
        if y is not None:
            out.append(fact(labels, entity, {"y": y}, time_=at(1, i)))
    return out


class BadInputCase(kennel_harness.SharedServerCase):
    """The shared server, with a model trained once per class and the
    checks every test of this file makes."""

    tmp_prefix = "kennel-bad-"
    fact_batch = 2000
    _fixture = None

    def fixture(self):
        """A regression model with versions 1 and 2 (manual promotion), live
        moved to 1 then 2, no experiments, no events. Built on first use and
        shared by the class: every request the tests send it is one that must
        change nothing. Returns {"name", "feats", "labels", "job"}."""
        cls = type(self)
        if cls._fixture is None:
            feats, labels = uid("feat"), uid("lab")
            post_in_batches(self, self.c, row_facts(feats, labels, synthetic("regression", 60)),
                            self.fact_batch)
            name = uid("fixture")
            put_model(self, self.c, name, definition("regression", feats, labels,
                                                     promotion={"mode": "manual"}))
            jobs = []
            for version in (1, 2):
                j = train_and_wait(self, self.c, name)
                self.assertEqual((j["state"], j["version"]), ("succeeded", version), log_text(j))
                jobs.append(j["id"])
                r = self.c.request("PUT", "/v1/models/%s/aliases/live" % name,
                                   json_body={"version": version, "reason": "fixture"})
                self.assertEqual(r.status, 200, r)
            cls._fixture = {"name": name, "feats": feats, "labels": labels, "job": jobs[-1]}
        return cls._fixture

    def new_model(self):
        """A model defined on fresh streams and never trained: (name, feats, labels)."""
        feats, labels = uid("feat"), uid("lab")
        post_in_batches(self, self.c, row_facts(feats, labels, synthetic("regression", 5)),
                        self.fact_batch)
        name = uid("m")
        put_model(self, self.c, name, definition("regression", feats, labels))
        return name, feats, labels

    def state(self, path, key):
        """GET path (200) and its `key` member: the list a test compares
        before and after its bad requests."""
        r = self.c.get(path)
        self.assertEqual(r.status, 200, (path, r))
        return r.json()[key]

    def send(self, method, path, body=None, headers=None):
        """A raw request: `body` as given (str) or serialised (anything else
        but None), with application/json unless `headers` say otherwise."""
        hdrs = dict(JSON)
        hdrs.update(headers or {})
        if body is not None and not isinstance(body, (str, bytes)):
            body = json.dumps(body)
        return self.c.request(method, path, body=body, headers=hdrs)

    def check_cases(self, cases):
        """cases: (label, method, path, body, headers, status, code, field,
        message). Each answered with that error; field None means the answer
        has no field."""
        for label, method, path, body, headers, status, code, field, message in cases:
            with self.subTest(label):
                r = self.send(method, path, body, headers)
                err = self.assertErrorShape(r, status, code=code, field=field, message=message)
                if field is None:
                    self.assertNotIn("field", err, r)
                self.assertNotIn("item", err, r)

    def assertStillServes(self):
        """A health check, an authenticated read and a real write answer."""
        self.assertEqual(self.c.get("/healthz").status, 200)
        self.assertEqual(self.c.get("/v1/models").status, 200)
        r = self.c.post_json("/v1/facts", fact(uid("alive"), "e", {"x": 1}))
        self.assertEqual(r.status, 201, r)

    def assertDefinitionError(self, r, field=None, message=None):
        """A refused definition: the error shape plus the definition's
        "details" (one entry per problem; test_learning checks them in depth)."""
        self.assertEqual(r.status, 400, r)
        err = r.json()["error"]
        self.assertEqual(err["code"], "invalid_argument", r)
        self.assertIsInstance(err.get("details"), list, r)
        self.assertLessEqual(set(err), {"code", "message", "field", "details"}, r)
        if field is None:
            self.assertNotIn("field", err, r)
        else:
            self.assertEqual(err.get("field"), field, r)
            self.assertEqual([d["field"] for d in err["details"]], [field], r)
        if message is not None:
            self.assertIn(message, err["message"], r)
        return err


# ----------------------------------------------------------- sign-in, keys

class AuthInputTest(BadInputCase):

    def setUp(self):
        super().setUp()
        self.anon = Client(self.server.port, auth=None)
        self.addCleanup(self.anon.close)

    def test_sign_in_with_an_empty_body_or_a_json_array(self):
        # An empty body is read as {} (as the other optional bodies are):
        # the first thing missing is named.
        r = self.anon.post("/v1/auth/login", body=b"", headers=JSON)
        self.assertErrorShape(r, 400, code="invalid_argument", field="username", message="missing")
        self.assertIsNone(r.header("Set-Cookie"), r.headers)
        r = self.anon.post("/v1/auth/login", body="[]", headers=JSON)
        err = self.assertErrorShape(r, 400, code="invalid_argument", message="JSON object")
        self.assertNotIn("field", err)
        self.assertIsNone(r.header("Set-Cookie"), r.headers)
        r = self.anon.post("/v1/auth/login", body='[{"username":"admin"}]', headers=JSON)
        self.assertErrorShape(r, 400, code="invalid_argument", message="JSON object")
        # No session came of them, none was counted against the password,
        # and a real sign-in still works.
        self.assertErrorShape(self.anon.get("/v1/auth/session"), 401, code="unauthenticated")
        r = self.anon.post_json("/v1/auth/login", {"username": "admin",
                                                   "password": kennel_harness.ADMIN_PASSWORD})
        self.assertEqual(r.status, 200, r)
        self.assertIn("kennel_session=", r.header("Set-Cookie") or "")
        self.assertStillServes()

    def test_bad_key_bodies_are_refused_and_nothing_is_created(self):
        before = self.state("/v1/keys", "keys")
        self.check_cases([
            ("malformed JSON", "POST", "/v1/keys", "{", None, 400, "invalid_argument", None,
             "malformed JSON"),
            ("text/plain", "POST", "/v1/keys", json.dumps({"name": "k", "scopes": ["ingest"]}),
             TEXT, 415, "unsupported_media_type", "Content-Type", "text/plain"),
            # An empty body is read as {}: the scopes it lacks are named.
            ("empty body", "POST", "/v1/keys", b"", None, 400, "invalid_argument", "scopes",
             "an array of read, ingest, predict, admin"),
            ("missing name", "POST", "/v1/keys", {"scopes": ["ingest"]}, None, 400,
             "invalid_argument", "name", None),
            ("missing scopes", "POST", "/v1/keys", {"name": "k"}, None, 400, "invalid_argument",
             "scopes", "an array of read, ingest, predict, admin"),
            ("a scope that is a number", "POST", "/v1/keys", {"name": "k", "scopes": [5]}, None,
             400, "invalid_argument", "scopes", "must hold strings"),
        ])
        self.assertEqual(self.state("/v1/keys", "keys"), before)
        self.assertStillServes()

    def test_key_ids_zero_and_negative_are_400_naming_the_id(self):
        r = self.c.post_json("/v1/keys", {"name": uid("k"), "scopes": ["ingest"]})
        self.assertEqual(r.status, 201, r)
        before = self.state("/v1/keys", "keys")
        self.check_cases([
            ("id 0", "DELETE", "/v1/keys/0", None, None, 400, "invalid_argument", "id",
             "must be between 1 and"),
            ("id -1", "DELETE", "/v1/keys/-1", None, None, 400, "invalid_argument", "id",
             "must be between 1 and"),
        ])
        after = self.state("/v1/keys", "keys")
        self.assertEqual(after, before)
        self.assertTrue(all(k["revoked_at"] is None for k in after), after)
        self.assertStillServes()

    def test_sign_out_without_a_session_is_200_and_clears_the_cookie(self):
        # Signing out is idempotent: with no cookie, or one naming no
        # session, the answer is the same as for a real one.
        r = self.anon.post_json("/v1/auth/login", {"username": "admin",
                                                   "password": kennel_harness.ADMIN_PASSWORD})
        self.assertEqual(r.status, 200, r)
        real = r.header("Set-Cookie").split(";")[0]
        for label, headers in (("no cookie", {}),
                               ("a bogus cookie", {"Cookie": "kennel_session=bogus"}),
                               ("an empty cookie", {"Cookie": "kennel_session="}),
                               ("another cookie", {"Cookie": "other=1"})):
            with self.subTest(label):
                r = self.anon.post("/v1/auth/logout", headers=headers)
                self.assertEqual(r.status, 200, r)
                self.assertEqual(r.json(), {"signed_out": True}, r)
                cookie = r.header("Set-Cookie") or ""
                self.assertTrue(cookie.startswith("kennel_session=;"), cookie)
                self.assertIn("Max-Age=0", cookie)
                self.assertIn("HttpOnly", cookie)
                # The real session was not ended by it.
                r = self.anon.get("/v1/auth/session", headers={"Cookie": real})
                self.assertEqual(r.status, 200, r)
                self.assertEqual(r.json()["user"], "admin", r)
        self.assertStillServes()


# ------------------------------------------------------ definitions, jobs

class ModelInputTest(BadInputCase):

    def assertNoModel(self, name):
        self.assertErrorShape(self.c.get("/v1/models/" + name), 404, code="not_found",
                              field="name")
        self.assertNotIn(name, [m["name"] for m in self.state("/v1/models", "models")])

    def test_bad_definition_bodies_create_no_model(self):
        _, feats, labels = self.new_model()
        name = uid("bad-def")
        path = "/v1/models/" + name
        good = definition("regression", feats, labels)
        r = self.send("PUT", path, b"")
        err = self.assertErrorShape(r, 400, code="invalid_argument", message="body is empty")
        self.assertNotIn("field", err)
        self.assertNoModel(name)
        # Not an object: a problem of the whole body, which names no field
        # (its details said "field": ""), as POST /v1/keys answers it.
        for text in ("[]", "[1, 2]", '"x"', "5"):
            r = self.send("PUT", path, text)
            err = self.assertDefinitionError(r, message="must be a JSON object")
            self.assertEqual(err["details"], [{"message": err["message"]}], r)
            self.assertNoModel(name)
        err = self.assertErrorShape(self.send("POST", "/v1/keys", "[1, 2]"), 400,
                                    message="must be a JSON object")
        self.assertNotIn("field", err)
        # The overflowing number is named in the message and its place in
        # the field, as POST /v1/facts does (it named no field).
        text = json.dumps(dict(good, algorithm="kernel", params={"c": 1}))
        text = text.replace('"c": 1', '"c": 1e999')
        self.assertIn("1e999", text)
        r = self.send("PUT", path, text)
        self.assertEqual(r.status, 400, r)
        err = r.json()["error"]
        self.assertEqual(err["code"], "invalid_argument", r)
        self.assertEqual(err.get("field"), "params.c", r)
        # The one problem: a text that did not parse is not checked further.
        self.assertEqual([d["field"] for d in err["details"]], ["params.c"], r)
        self.assertIn("malformed JSON", err["message"], r)
        self.assertIn("1e999", err["message"], r)
        self.assertLessEqual(set(err), {"code", "message", "field", "details"}, r)
        self.assertNoModel(name)
        # A key given twice is named; nlohmann's parse kept the last one.
        text = json.dumps(good).replace('"task": ', '"task": "regression", "task": ', 1)
        self.assertDefinitionError(self.send("PUT", path, text), field="task",
                                   message='the key "task" appears twice')
        self.assertNoModel(name)
        no_task = {k: v for k, v in good.items() if k != "task"}
        self.assertDefinitionError(self.send("PUT", path, no_task), field="task",
                                   message="task: missing")
        self.assertNoModel(name)
        no_source = {k: v for k, v in good.items() if k != "features_from"}
        self.assertDefinitionError(self.send("PUT", path, no_source), field="features_from",
                                   message="features_from: missing")
        self.assertNoModel(name)
        # The good definition is taken: the refusals were about the body.
        self.assertEqual(put_model(self, self.c, name, good).status, 201)
        self.assertStillServes()

    def test_bad_train_requests_queue_no_job(self):
        name, _, _ = self.new_model()
        path = "/v1/models/%s/train" % name
        self.check_cases([
            ("malformed JSON", "POST", path, "{", None, 400, "invalid_argument", None,
             "malformed JSON"),
            ("text/plain", "POST", path, json.dumps({"reason": "x"}), TEXT, 415,
             "unsupported_media_type", "Content-Type", "text/plain"),
        ])
        self.assertEqual(self.state("/v1/models/%s/jobs" % name, "jobs"), [])
        self.assertNotIn(name, [j["model"] for j in self.state("/v1/jobs", "jobs")])
        self.assertStillServes()

    def test_bad_cancel_requests_leave_the_job_as_it_was(self):
        fx = self.fixture()
        job = fx["job"]
        before = self.c.get("/v1/jobs/%d" % job).json()
        self.check_cases([
            ("id abc", "POST", "/v1/jobs/abc/cancel", {"reason": "x"}, None, 400,
             "invalid_argument", "id", "not an integer"),
            ("an unknown field", "POST", "/v1/jobs/%d/cancel" % job, {"x": 1}, None, 400,
             "invalid_argument", "x", "unknown field"),
        ])
        after = self.c.get("/v1/jobs/%d" % job).json()
        self.assertEqual(after, before)
        self.assertEqual((after["state"], after["cancel_requested"]), ("succeeded", False), after)
        self.assertStillServes()

    def test_a_version_that_is_not_a_number_is_400(self):
        fx = self.fixture()
        self.check_cases([
            ("version abc", "GET", "/v1/models/%s/versions/abc" % fx["name"], None, None, 400,
             "invalid_argument", "version", "not an integer"),
            ("version 0", "GET", "/v1/models/%s/versions/0" % fx["name"], None, None, 400,
             "invalid_argument", "version", "between 1 and"),
        ])
        self.assertStillServes()

    def test_json_nested_past_64_levels_is_400_on_every_body(self):
        # Parsed whole first, a 16 MB body of "[[[[…" took 600 MB of memory
        # before the 400 (a fact's data is refused past 16 levels anyway).
        fx = self.fixture()
        deep = "[" * 100 + "]" * 100
        where = "[0]" * 63
        s = uid("deep")
        self.check_cases([
            ("fact", "POST", "/v1/facts",
             '{"stream":"%s","entity":"e","time":"2026-01-01T00:00:00Z","data":{"x":%s}}' % (s, deep),
             None, 400, "invalid_argument", "data.x" + where[:-3], "nested deeper than 64 levels"),
            ("predict", "POST", "/v1/models/%s/predict" % fx["name"],
             '{"entity":"e","features":{"x1":%s}}' % deep, None, 400, "invalid_argument",
             "features.x1" + where[:-3], "nested deeper than 64 levels"),
        ])
        name = uid("deep")
        self.assertDefinitionError(self.send("PUT", "/v1/models/" + name, '{"task":%s}' % deep),
                                   "task" + where, "nested deeper than 64 levels")
        self.assertEqual(self.c.get("/v1/models/" + name).status, 404)
        self.assertNotIn(s, [st["stream"] for st in self.state("/v1/streams", "streams")])
        self.assertStillServes()

    def test_a_nul_byte_in_a_body_is_400_and_what_precedes_it_is_not_taken(self):
        # nlohmann reads a NUL byte as the end of the text: before, each body
        # below was taken as its JSON up to the NUL (the fact stored, the
        # model defined, the prediction answered).
        fx = self.fixture()
        s = uid("nul")
        good_fact = '{"stream":"%s","entity":"e","time":"2026-01-01T00:00:00Z","data":{"x":1}}' % s
        at = len(good_fact)
        self.check_cases([
            ("fact", "POST", "/v1/facts", good_fact + "\0{junk", None, 400, "invalid_argument",
             None, "a NUL byte at byte %d" % at),
            ("fact in a batch", "POST", "/v1/facts", "[" + good_fact + "]\0", None, 400,
             "invalid_argument", None, "a NUL byte at byte %d" % (at + 2)),
            ("predict", "POST", "/v1/models/%s/predict" % fx["name"],
             '{"entity":"e","features":{"x1":1}}\0', None, 400, "invalid_argument", None,
             "a NUL byte at byte 34"),
        ])
        name = uid("nul")
        self.assertDefinitionError(
            self.send("PUT", "/v1/models/" + name, json.dumps(definition(
                "regression", fx["feats"], fx["labels"])) + "\0"), None, "a NUL byte at byte")
        self.assertEqual(self.c.get("/v1/models/" + name).status, 404)
        self.assertNotIn(s, [st["stream"] for st in self.state("/v1/streams", "streams")])
        self.assertStillServes()

    def test_reads_of_an_unknown_model_are_404_naming_it(self):
        name = uid("nosuch")
        for what in ("aliases", "events", "experiments"):
            with self.subTest(what):
                r = self.c.get("/v1/models/%s/%s" % (name, what))
                self.assertErrorShape(r, 404, code="not_found", field="name", message=name)
        self.assertStillServes()

    def test_a_name_no_model_can_have_is_400_on_every_model_route(self):
        # A read said "no model named", as if such a model might be defined;
        # PUT said the rule. Every model route says the rule now.
        for bad in ("bad%20name", "x" * 65, "%2E%2E", "%C3%A9t%C3%A9"):
            for method, path, body in (("GET", "", None), ("GET", "/versions", None),
                                       ("GET", "/drift", None), ("GET", "/live-metrics", None),
                                       ("POST", "/predict", {"features": {}}),
                                       ("POST", "/train", {}),
                                       ("PUT", "", {"task": "regression"})):
                with self.subTest(name=bad, path=path):
                    r = self.c.request(method, "/v1/models/" + bad + path, json_body=body)
                    self.assertErrorShape(r, 400, code="invalid_argument", field="name",
                                          message="a model name is 1-64 letters")
        for query in ("model=", "model=bad%20name"):
            self.assertErrorShape(self.c.get("/v1/serving?" + query), 400, field="model",
                                  message="a model name is 1-64 letters")
        self.assertStillServes()

    def test_an_unknown_fact_order_is_400(self):
        s = uid("s")
        post_in_batches(self, self.c, [fact(s, "e", {"x": 1}, time_=at(0))])
        self.check_cases([
            ("order=up", "GET", "/v1/streams/%s/facts?order=up" % s, None, None, 400,
             "invalid_argument", "order", "asc or desc"),
        ])
        self.assertEqual(len(self.state("/v1/streams/%s/facts?order=desc" % s, "facts")), 1)
        self.assertStillServes()

    def test_too_few_labelled_rows_fail_the_job_and_leave_live_alone(self):
        fx = self.fixture()
        # A model of its own, live on version 1, then redefined on a label
        # stream holding two labelled entities.
        name = uid("few")
        put_model(self, self.c, name, definition("regression", fx["feats"], fx["labels"]))
        j = train_and_wait(self, self.c, name)
        self.assertEqual((j["state"], j["version"]), ("succeeded", 1), log_text(j))
        self.assertEqual(aliases_of(self, self.c, name), {"live": 1})
        few = uid("lab")
        post_in_batches(self, self.c, [fact(few, "e%04d" % i, {"y": 1.5 * i}, time_=at(2, i))
                                       for i in range(2)])
        put_model(self, self.c, name, definition("regression", fx["feats"], few))
        moves = deployments_of(self, self.c, name)
        j = train_and_wait(self, self.c, name)
        self.assertEqual(j["state"], "failed", log_text(j))
        self.assertTrue(j["error"].startswith("too few labelled rows"), j["error"])
        self.assertIn("need at least", j["error"])
        self.assertIsNone(j["version"], j)
        self.assertEqual([v["version"] for v in self.state("/v1/models/%s/versions" % name,
                                                           "versions")], [1])
        self.assertEqual(aliases_of(self, self.c, name), {"live": 1})
        self.assertEqual(deployments_of(self, self.c, name), moves)
        self.assertStillServes()


# --------------------------------------- versions, aliases, rollback

class ServingInputTest(BadInputCase):

    def test_bad_disable_and_enable_requests_record_no_event(self):
        fx = self.fixture()
        events = "/v1/models/%s/events" % fx["name"]
        before = self.state(events, "events")
        aliases = aliases_of(self, self.c, fx["name"])
        cases = []
        for action in ("disable", "enable"):
            base = "/v1/models/%s/versions/%%s/%s" % (fx["name"], action)
            cases += [
                (action + ": malformed JSON", "POST", base % 1, "{", None, 400,
                 "invalid_argument", None, "malformed JSON"),
                (action + ": text/plain", "POST", base % 1, json.dumps({"reason": "x"}), TEXT,
                 415, "unsupported_media_type", "Content-Type", "text/plain"),
                (action + ": version abc", "POST", base % "abc", {"reason": "x"}, None, 400,
                 "invalid_argument", "version", "not an integer"),
                (action + ": version 0", "POST", base % 0, {"reason": "x"}, None, 400,
                 "invalid_argument", "version", "between 1 and"),
            ]
        self.check_cases(cases)
        self.assertEqual(self.state(events, "events"), before)
        self.assertEqual(aliases_of(self, self.c, fx["name"]), aliases)
        self.assertFalse(any(v["disabled"] for v in
                             self.state("/v1/models/%s/versions" % fx["name"], "versions")))
        self.assertStillServes()

    def test_reasons_that_only_look_written_are_refused_everywhere(self):
        # "\u0000", "\u00a0" or "\u200b" alone passed as a reason and was
        # recorded; a right-to-left override made the history read backwards.
        fx = self.fixture()
        name = fx["name"]
        deps, events = deployments_of(self, self.c, name), self.state("/v1/models/%s/events" % name, "events")
        routes = [("PUT", "/v1/models/%s/aliases/live" % name, {"version": 1}),
                  ("DELETE", "/v1/models/%s/aliases/nosuch" % name, {}),
                  ("POST", "/v1/models/%s/versions/1/disable" % name, {}),
                  ("POST", "/v1/models/%s/rollback" % name, {}),
                  ("POST", "/v1/models/%s/archive" % name, {})]
        cases = []
        for method, path, body in routes:
            # Nor one so long it fills every page and answer that shows it.
            for reason, says in (("\u0000", "control characters"), ("\u00a0\u200b", "say why"),
                                 ("ok\u202egpj.exe", "direction"), (7, "must be a string"),
                                 ("\u00e9" * 1001, "at most 2000 bytes (this one has 2002)")):
                cases.append(("%s %s %r" % (method, path, reason), method, path,
                              dict(body, reason=reason), None, 400, "invalid_argument", "reason", says))
        self.check_cases(cases)
        self.assertEqual(deployments_of(self, self.c, name), deps)
        self.assertEqual(self.state("/v1/models/%s/events" % name, "events"), events)
        self.assertIsNone(self.c.get("/v1/models/" + name).json()["archived"])
        # Line breaks and tabs are text, and 2,000 bytes are allowed.
        r = self.c.post_json("/v1/models/%s/versions/1/enable" % name, {"reason": "checked\n\tall of it"})
        self.assertEqual(r.status, 200, r)
        r = self.c.post_json("/v1/models/%s/versions/1/enable" % name, {"reason": "\u00e9" * 1000})
        self.assertEqual(r.status, 200, r)
        self.assertStillServes()

    def test_bad_alias_moves_record_no_deployment(self):
        fx = self.fixture()
        before = deployments_of(self, self.c, fx["name"])
        aliases = aliases_of(self, self.c, fx["name"])
        base = "/v1/models/%s/aliases/" % fx["name"]
        self.check_cases([
            ("malformed JSON", "PUT", base + "live", "{", None, 400, "invalid_argument", None,
             "malformed JSON"),
            ("version as a string", "PUT", base + "live", {"version": "1", "reason": "x"}, None,
             400, "invalid_argument", "version", "positive integer"),
            ("version 1.5", "PUT", base + "live", {"version": 1.5, "reason": "x"}, None, 400,
             "invalid_argument", "version", "positive integer"),
            ("alias 'a b'", "PUT", base + "a%20b", {"version": 1, "reason": "x"}, None, 400,
             "invalid_argument", "alias", "an alias is"),
            ("DELETE: malformed JSON", "DELETE", base + "live", "{", None, 400,
             "invalid_argument", None, "malformed JSON"),
            ("DELETE: alias 'a b'", "DELETE", base + "a%20b", {"reason": "x"}, None, 400,
             "invalid_argument", "alias", "an alias is"),
        ])
        self.assertEqual(deployments_of(self, self.c, fx["name"]), before)
        self.assertEqual(aliases_of(self, self.c, fx["name"]), aliases)
        self.assertStillServes()

    # It answered 404 field "alias" ("model X has no alias live"), where
    # every other route of a model answers 404 field "name".
    def test_removing_an_alias_of_an_unknown_model_is_404_naming_the_model(self):
        name = uid("nosuch")
        r = self.send("DELETE", "/v1/models/%s/aliases/live" % name, {"reason": "x"})
        self.assertErrorShape(r, 404, code="not_found", field="name", message=name)

    def test_bad_rollbacks_move_nothing(self):
        fx = self.fixture()
        before = deployments_of(self, self.c, fx["name"])
        path = "/v1/models/%s/rollback" % fx["name"]
        nosuch = uid("nosuch")
        self.check_cases([
            ("unknown model", "POST", "/v1/models/%s/rollback" % nosuch, {"reason": "x"}, None,
             404, "not_found", "name", nosuch),
            ("malformed JSON", "POST", path, "{", None, 400, "invalid_argument", None,
             "malformed JSON"),
            ("an unknown field", "POST", path, {"reason": "x", "target": 1}, None, 400,
             "invalid_argument", "target", "unknown field"),
            ("a target that is not a version", "POST", path, {"reason": "x", "to": "1"}, None, 400,
             "invalid_argument", "to", "positive integer"),
            ("a target of zero", "POST", path, {"reason": "x", "to": 0}, None, 400,
             "invalid_argument", "to", "positive integer"),
            ("a condition that is not an entity tag", "POST", path, {"reason": "x"},
             {"If-Match": "v2"}, 400, "invalid_argument", "If-Match", "quoted entity tags"),
            ("text/plain", "POST", path, json.dumps({"reason": "x"}), TEXT, 415,
             "unsupported_media_type", "Content-Type", "text/plain"),
        ])
        self.assertEqual(deployments_of(self, self.c, fx["name"]), before)
        self.assertEqual(aliases_of(self, self.c, fx["name"])["live"], 2)
        self.assertErrorShape(self.c.get("/v1/models/" + nosuch), 404, code="not_found")
        self.assertStillServes()


# ----------------------------------------------------------- experiments

class ExperimentInputTest(BadInputCase):

    def test_bad_experiment_starts_start_nothing(self):
        fx = self.fixture()
        path = "/v1/models/%s/experiments" % fx["name"]
        before = self.state(path, "experiments")
        nosuch = uid("nosuch")
        good = {"arms": [{"version": 1, "weight": 0.5}, {"version": 2, "weight": 0.5}],
                "reason": "x"}
        self.check_cases([
            ("unknown model", "POST", "/v1/models/%s/experiments" % nosuch, good, None, 404,
             "not_found", "name", nosuch),
            ("malformed JSON", "POST", path, "{", None, 400, "invalid_argument", None,
             "malformed JSON"),
            ("text/plain", "POST", path, json.dumps(good), TEXT, 415, "unsupported_media_type",
             "Content-Type", "text/plain"),
            ("an arm's version as a string", "POST", path,
             {"arms": [{"version": "1", "weight": 0.5}, {"version": 2, "weight": 0.5}],
              "reason": "x"}, None, 400, "invalid_argument", "arms[0].version",
             "must be a version number"),
            ("an arm's weight as a string", "POST", path,
             {"arms": [{"version": 1, "weight": 0.5}, {"version": 2, "weight": "0.5"}],
              "reason": "x"}, None, 400, "invalid_argument", "arms[1].weight",
             "must be a positive number"),
            # 1e-320 beside 1e308 normalised to a share of 0: stored, never routed.
            ("an arm's share of traffic that rounds to nothing", "POST", path,
             {"arms": [{"version": 1, "weight": 1e308}, {"version": 2, "weight": 1e-320}],
              "reason": "x"}, None, 400, "invalid_argument", "arms[1].weight",
             "below one in a million"),
        ])
        self.assertEqual(self.state(path, "experiments"), before)
        self.assertEqual(before, [])
        self.assertIsNone(self.serving_experiment(fx["name"]))
        self.assertStillServes()

    def serving_experiment(self, name):
        for m in self.state("/v1/serving", "models"):
            if m["model"] == name:
                return m["experiment"]
        raise AssertionError("%s is not in /v1/serving" % name)

    def test_bad_experiment_changes_and_ends_change_nothing(self):
        fx = self.fixture()
        path = "/v1/models/%s/experiments" % fx["name"]
        before = self.state(path, "experiments")
        good = {"arms": [{"version": 1, "weight": 0.5}, {"version": 2, "weight": 0.5}],
                "reason": "x"}
        self.check_cases([
            ("change: id abc", "PUT", path + "/abc", good, None, 400, "invalid_argument", "id",
             "not an integer"),
            ("change: malformed JSON", "PUT", path + "/999", "{", None, 400, "invalid_argument",
             None, "malformed JSON"),
            ("end: unknown id", "POST", path + "/999/end", {"reason": "x"}, None, 404,
             "not_found", "id", "999"),
            ("end: id abc", "POST", path + "/abc/end", {"reason": "x"}, None, 400,
             "invalid_argument", "id", "not an integer"),
        ])
        self.assertEqual(self.state(path, "experiments"), before)
        self.assertStillServes()


# ------------------------------------------------------------ --max-body

class BodyLimitTest(BadInputCase):
    server_args = ("--max-body", str(SMALL_BODY))
    tmp_prefix = "kennel-bad-body-"
    fact_batch = 20

    def big(self, obj):
        text = json.dumps(obj)
        self.assertGreater(len(text), SMALL_BODY)
        return text

    def test_a_definition_over_max_body_is_413_and_creates_no_model(self):
        _, feats, labels = self.new_model()
        name = uid("big-def")
        text = self.big(dict(definition("regression", feats, labels),
                             features=[{"field": "x1"}] + [{"field": "f%03d" % i}
                                                           for i in range(300)]))
        r = self.send("PUT", "/v1/models/" + name, text)
        err = self.assertErrorShape(r, 413, code="too_large", message=str(SMALL_BODY))
        self.assertNotIn("field", err)
        self.assertErrorShape(self.c.get("/v1/models/" + name), 404, code="not_found",
                              field="name")
        self.assertStillServes()

    def predictions(self, name):
        return self.state("/v1/models/%s/predictions?limit=500" % name, "predictions")

    def wait_logged(self, name, prediction_id):
        deadline = time.monotonic() + LOG_WAIT_S
        while True:
            got = self.predictions(name)
            if any(p["id"] == prediction_id for p in got):
                return got
            if time.monotonic() > deadline:
                raise AssertionError("prediction %s not in the log after %ss: %s"
                                     % (prediction_id, LOG_WAIT_S, got))
            time.sleep(0.1)

    def predict(self, name, body):
        r = self.send("POST", "/v1/models/%s/predict" % name, body)
        self.assertEqual(r.status, 200, r)
        return r.json()["prediction_id"]

    def test_a_prediction_over_max_body_is_413_and_logs_nothing(self):
        fx = self.fixture()
        name = fx["name"]
        features = {"x1": 0.5, "x2": -0.25, "color": "red"}
        first = self.predict(name, {"entity": "small-1", "features": features})
        self.assertEqual([p["id"] for p in self.wait_logged(name, first)], [first])
        big = {"instances": [{"entity": "big-%d" % i, "features": features} for i in range(80)]}
        r = self.send("POST", "/v1/models/%s/predict" % name, self.big(big))
        err = self.assertErrorShape(r, 413, code="too_large", message=str(SMALL_BODY))
        self.assertNotIn("field", err)
        # A prediction sent after it is logged; the refused batch never is.
        second = self.predict(name, {"entity": "small-2", "features": features})
        logged = self.wait_logged(name, second)
        self.assertEqual([p["id"] for p in logged], [second, first])
        self.assertFalse(any((p["entity"] or "").startswith("big-") for p in logged), logged)
        self.assertStillServes()


if __name__ == "__main__":
    unittest.main()
