"""Credentials against the real binary: bad sign-in bodies, wrong passwords
slowed and locked out, CSRF on the session cookie, API key scopes and
revocation, bad key requests. Every route but /healthz and /readyz needs
credentials."""

import base64
import http.client
import json
import threading
import os
import time
import unittest
import urllib.request

from kennel_harness import (ADMIN_PASSWORD, HOST, Client, KennelTestCase, run_cli, run_in_threads,
                            run_serve_expecting_exit)

JSON = {"Content-Type": "application/json"}


def basic(user, password):
    return "Basic " + base64.b64encode(("%s:%s" % (user, password)).encode()).decode()


class AuthTest(KennelTestCase):

    def setUp(self):
        super().setUp()
        self.server = self.start_server()
        self.admin = self.client(self.server)
        self.anon = Client(self.server.port, auth=None)
        self.addCleanup(self.anon.close)

    def test_health_is_open_and_data_is_not(self):
        self.assertEqual(self.anon.get("/healthz").status, 200)
        self.assertEqual(self.anon.get("/readyz").status, 200)
        r = self.anon.get("/v1/streams")
        self.assertErrorShape(r, 401, code="unauthenticated")
        self.assertEqual(r.header("WWW-Authenticate"),
                         'Bearer realm="kennel", Basic realm="kennel"', r)
        # The admin page's own requests are offered Bearer alone: a browser
        # would prompt for Basic over the page's sign-in.
        for page in ({"Sec-Fetch-Mode": "cors"}, {"X-Kennel-Page": "1"}):
            r = self.anon.get("/v1/streams", headers=page)
            self.assertEqual(r.header("WWW-Authenticate"), 'Bearer realm="kennel"', r)

    def test_clients_that_wait_for_a_basic_challenge_sign_in(self):
        # urllib's handler (as wget and curl --anyauth) sends the password
        # only when the 401 offers Basic; it failed on Bearer alone.
        url = "http://127.0.0.1:%d/v1/streams" % self.server.port
        passwords = urllib.request.HTTPPasswordMgrWithDefaultRealm()
        passwords.add_password(None, url, "admin", ADMIN_PASSWORD)
        opener = urllib.request.build_opener(urllib.request.HTTPBasicAuthHandler(passwords))
        with opener.open(url, timeout=10) as answer:
            self.assertEqual(answer.status, 200)
            self.assertIn("streams", json.loads(answer.read()))
        # More than one space after the scheme (RFC 9110, 11.4).
        token = base64.b64encode(("admin:" + ADMIN_PASSWORD).encode()).decode()
        for header in ("Basic  " + token, "basic   " + token):
            r = self.anon.get("/v1/streams", headers={"Authorization": header})
            self.assertEqual(r.status, 200, r)

    def test_malformed_sign_in_bodies_are_400_naming_the_field(self):
        self.assertErrorShape(self.anon.post("/v1/auth/login", body="{", headers=JSON), 400,
                              code="invalid_argument", message="malformed JSON")
        self.assertErrorShape(self.anon.post_json("/v1/auth/login", {"password": "x"}), 400,
                              field="username")
        self.assertErrorShape(self.anon.post_json("/v1/auth/login", {"username": "admin"}), 400,
                              field="password")
        # A value of the wrong type is named as such, not called missing.
        for body, field in (({"username": "admin", "password": 5}, "password"),
                            ({"username": "admin", "password": ["x"]}, "password"),
                            ({"username": 5, "password": "x"}, "username")):
            self.assertErrorShape(self.anon.post_json("/v1/auth/login", body), 400, field=field,
                                  message="must be a string")
        self.assertErrorShape(self.anon.post_json("/v1/auth/login", {"username": "admin",
                                                                     "password": None}),
                              400, field="password", message="missing")
        self.assertErrorShape(self.anon.post("/v1/auth/login", body="username=admin",
                                             headers={"Content-Type": "text/plain"}), 415)
        self.assertErrorShape(self.anon.post_json("/v1/auth/login", {"username": "admin",
                                                                     "password": "x",
                                                                     "remember": True}),
                              400, field="remember", message="unknown field")

    def test_wrong_passwords_lock_the_user_out_with_429(self):
        statuses = [self.anon.post_json("/v1/auth/login",
                                        {"username": "admin", "password": "wrong"}).status
                    for _ in range(6)]
        self.assertEqual(statuses[:5], [401] * 5)
        self.assertEqual(statuses[5], 429)
        r = self.anon.post_json("/v1/auth/login", {"username": "admin", "password": ADMIN_PASSWORD})
        err = self.assertErrorShape(r, 429, code="rate_limited")
        self.assertIn(r.header("Retry-After"), ("29", "30"), r)
        # Retry-After is the wait left, as the message says (it was always 30;
        # test_authenticator follows the doubling with a clock of its own).
        time.sleep(1.2)
        r = self.anon.post_json("/v1/auth/login", {"username": "admin", "password": ADMIN_PASSWORD})
        err = self.assertErrorShape(r, 429, code="rate_limited")
        self.assertIn(r.header("Retry-After"), ("27", "28", "29"), r)
        self.assertIn("try again in %s s" % r.header("Retry-After"), err["message"], r)

    def basic(self, user, password):
        c = Client(self.server.port, auth=basic(user, password))
        self.addCleanup(c.close)
        return c.get("/v1/streams").status

    # A success clears the address's count of failures as well as the
    # user's: otherwise, after one lockout, one typo locks the address again.
    def test_a_successful_sign_in_clears_the_address_count_too(self):
        for sign_in in ("basic", "session"):
            with self.subTest(sign_in):
                def attempt(user, password):
                    if sign_in == "basic":
                        return self.basic(user, password)
                    return self.anon.post_json("/v1/auth/login",
                                               {"username": user, "password": password}).status
                self.assertEqual([attempt("admin", "typo") for _ in range(4)], [401] * 4)
                self.assertEqual(attempt("admin", ADMIN_PASSWORD), 200)
                # One typo under another name: the fifth from this address in
                # all, the first since a success.
                self.assertEqual(attempt("nobody-" + sign_in, "typo"), 401)
                self.assertEqual(attempt("admin", ADMIN_PASSWORD), 200)
                self.assertEqual(self.basic("admin", ADMIN_PASSWORD), 200)
        with open(self.server.log_path) as f:
            log = f.read()
        self.assertIn('failed sign-in (Basic auth) for "admin" from 127.0.0.1', log)
        self.assertIn('failed sign-in (session) for "nobody-session" from 127.0.0.1', log)
        self.assertNotIn("typo", log)  # never the password
        self.assertNotIn("locked out", log)

    def test_a_lockout_is_logged_once_per_counter_with_its_length(self):
        statuses = [self.basic("mallory\nforged line", "guess%d" % i) for i in range(6)]
        self.assertEqual(statuses, [401] * 5 + [429])
        with open(self.server.log_path) as f:
            log = f.read()
        self.assertIn('sign-in locked out for user mallory\\nforged line for 30 s after 5 failed',
                      log)
        self.assertIn("sign-in locked out for addr 127.0.0.1 for 30 s after 5 failed", log)
        self.assertNotIn("guess", log)
        self.assertNotIn("\nforged line", log)

    def test_behind_a_trusted_proxy_lockouts_and_logs_use_the_forwarded_address(self):
        # Behind a reverse proxy every request comes from the proxy's address:
        # five guesses from anywhere locked everyone out. With --trusted-proxy
        # the proxy's X-Forwarded-For names the client; from any other peer
        # the header is the client's own word and is ignored.
        def sign_in(server, user, password, forwarded_for):
            c = Client(server.port, auth=None)
            self.addCleanup(c.close)
            return c.post_json("/v1/auth/login", {"username": user, "password": password},
                               headers={"X-Forwarded-For": forwarded_for}).status

        for trusted in ("127.0.0.1", "10.9.9.9"):
            with self.subTest(trusted_proxy=trusted):
                server = self.start_server(args=("--trusted-proxy", "192.0.2.1, " + trusted),
                                           db="proxy-%s.db" % trusted)
                guesses = [sign_in(server, "mallory", "guess", "1.1.1.1, 203.0.113.9")
                           for _ in range(6)]
                self.assertEqual(guesses, [401] * 5 + [429])
                admin = sign_in(server, "admin", ADMIN_PASSWORD, "198.51.100.7")
                log = server.stderr()
                if trusted == "127.0.0.1":
                    self.assertEqual(admin, 200)
                    self.assertIn('failed sign-in (session) for "mallory" from 203.0.113.9', log)
                    self.assertIn("locked out for addr 203.0.113.9", log)
                else:
                    self.assertEqual(admin, 429)  # the one address everyone shares
                    self.assertIn("locked out for addr 127.0.0.1", log)
                    self.assertNotIn("203.0.113.9", log)
        for bad in ("localhost", "127.0.0.1,,::1", "10.0.0.0/8"):
            with self.subTest(bad=bad):
                code, out, err = run_serve_expecting_exit(
                    ["--port", "0", "--db", self.path("bad.db"), "--trusted-proxy", bad], bound=10)
                self.assertEqual(code, 2, err)
                self.assertIn("--trusted-proxy takes IP addresses separated by commas", err)

    def test_only_a_few_password_checks_hold_http_threads_the_rest_are_503(self):
        # Each check of a password (PBKDF2, then a wrong one's 300 ms delay)
        # holds an HTTP thread: a burst of wrong passwords held as many
        # threads as it had requests. A few more wait up to 2 s for a place.
        # Each request comes from its own loopback address and names its own
        # user, so no lockout steps in.
        server = self.start_server(args=["--http-threads", "16"], db="burst.db")
        admin = self.client(server)
        key = admin.post_json("/v1/keys", {"name": "k", "scopes": ["ingest"]}).json()["key"]
        limits = admin.get("/v1/status").json()["auth"]
        places, waiting = limits["password_checks_max"], limits["password_checks_max_waiting"]
        # A quarter of the 16 threads each (the places: twice the cores, at most that).
        self.assertEqual((places, waiting), (min(max(2 * (os.cpu_count() or 1), 2), 4), 4))
        # A script's first burst with the right password: the places check
        # it, the waiters find it verified. Every one is let in.
        n = places + waiting
        barrier = threading.Barrier(n)
        answers = [None] * n

        def at_once(i, user, password):
            conn = http.client.HTTPConnection(HOST, server.port, timeout=30,
                                              source_address=("127.0.0.%d" % (10 + i), 0))
            try:
                barrier.wait(timeout=30)
                conn.request("GET", "/v1/streams", headers={"Authorization": basic(user, password)})
                r = conn.getresponse()
                answers[i] = (r.status, r.getheader("Retry-After"), json.loads(r.read()))
            finally:
                conn.close()

        self.assertEqual(run_in_threads(lambda i: at_once(i, "admin", ADMIN_PASSWORD), n), [])
        self.assertEqual([a[0] for a in answers], [200] * n, answers)

        # Wrong passwords: the places, the waiters, and as many again as
        # there are places.
        n = 2 * places + waiting
        barrier = threading.Barrier(n)
        answers = [None] * n
        self.assertEqual(run_in_threads(lambda i: at_once(i, "guess-%d" % i, "wrong"), n), [])
        self.assertNotIn(None, answers)
        busy = [a for a in answers if a[0] == 503]
        self.assertEqual(sorted({a[0] for a in answers}), [401, 503], answers)
        self.assertGreaterEqual(len(answers) - len(busy), places + waiting, answers)
        for status, retry_after, body in busy:
            self.assertEqual(retry_after, "1")
            self.assertEqual(body["error"]["code"], "unavailable")
            self.assertIn("too many sign-ins are being checked at once", body["error"]["message"])
        status = admin.get("/v1/status").json()["auth"]
        self.assertEqual(status["password_checks_refused"], len(busy), status)
        self.assertEqual(status["password_checks_running"], 0, status)
        self.assertRegex(admin.get("/metrics").text,
                         r"\nkennel_auth_password_checks_refused_total %d\n" % len(busy))
        # A refusal is not a failure: none of those users is locked out, and
        # an API key never needed a place.
        c = Client(server.port, auth="Bearer " + key)
        self.addCleanup(c.close)
        self.assertEqual(c.get("/v1/streams").status, 200)
        self.assertEqual(self.basic_on(server, "admin", ADMIN_PASSWORD), 200)

    def basic_on(self, server, user, password):
        c = Client(server.port, auth=basic(user, password))
        self.addCleanup(c.close)
        return c.get("/v1/streams").status

    def test_session_cookie_needs_the_csrf_token_to_change_anything(self):
        r = self.anon.post_json("/v1/auth/login", {"username": "admin", "password": ADMIN_PASSWORD})
        self.assertEqual(r.status, 200, r)
        cookie_header = r.header("Set-Cookie")
        self.assertIn("HttpOnly", cookie_header)
        self.assertIn("SameSite=Strict", cookie_header)
        self.assertNotIn("Secure", cookie_header)  # plain HTTP: the browser would drop it
        cookie = cookie_header.split(";")[0]
        csrf = r.json()["csrf_token"]
        self.assertEqual(self.anon.get("/v1/streams", headers={"Cookie": cookie}).status, 200)
        body = {"name": "k", "scopes": ["ingest"]}
        no_token = self.anon.post_json("/v1/keys", body, headers={"Cookie": cookie})
        self.assertErrorShape(no_token, 403, code="forbidden", field="X-CSRF-Token")
        wrong = self.anon.post_json("/v1/keys", body, headers={"Cookie": cookie, "X-CSRF-Token": "x"})
        self.assertErrorShape(wrong, 403, code="forbidden", field="X-CSRF-Token")
        ok = self.anon.post_json("/v1/keys", body, headers={"Cookie": cookie, "X-CSRF-Token": csrf})
        self.assertEqual(ok.status, 201, ok)
        self.anon.post("/v1/auth/logout", headers={"Cookie": cookie, "X-CSRF-Token": csrf})
        self.assertErrorShape(self.anon.get("/v1/streams", headers={"Cookie": cookie}), 401)

    def test_session_cookie_is_secure_when_a_trusted_proxy_says_https(self):
        # Kennel speaks plain HTTP; behind a TLS proxy the cookie must never
        # go back over plain HTTP, where anyone on the path could read it.
        # Only a --trusted-proxy says so: from any other peer the headers are
        # the client's own word.
        creds = {"username": "admin", "password": ADMIN_PASSWORD}
        cases = [({"X-Forwarded-Proto": "https"}, True),
                 ({"X-Forwarded-Proto": "HTTPS"}, True),
                 ({"X-Forwarded-Proto": "https, http"}, True),  # the first is the client's
                 ({"X-Forwarded-Proto": "http, https"}, False),
                 ({"X-Forwarded-Proto": "http"}, False),
                 ({"Forwarded": "for=192.0.2.1;proto=https;host=k.example"}, True),
                 ({"Forwarded": "for=192.0.2.1;proto=http, for=10.0.0.1;proto=https"}, False),
                 ({"Forwarded": "for=192.0.2.1;proto=httpsx"}, False)]
        proxied = self.start_server(args=("--trusted-proxy", "127.0.0.1"), db="proxied.db")
        for server, trusted in ((proxied, True), (self.server, False)):
            anon = Client(server.port, auth=None)
            self.addCleanup(anon.close)
            for headers, secure in cases:
                with self.subTest(headers=headers, trusted=trusted):
                    r = anon.post_json("/v1/auth/login", creds, headers=headers)
                    self.assertEqual(r.status, 200, r)
                    cookie_header = r.header("Set-Cookie")
                    self.assertEqual("; Secure" in cookie_header, secure and trusted,
                                     cookie_header)
                    self.assertIn("HttpOnly", cookie_header)
                    cookie = cookie_header.split(";")[0]
                    out = anon.post("/v1/auth/logout",
                                    headers=dict(headers, Cookie=cookie,
                                                 **{"X-CSRF-Token": r.json()["csrf_token"]}))
                    self.assertEqual(out.status, 200, out)
                    self.assertEqual("; Secure" in out.header("Set-Cookie"), secure and trusted,
                                     out.header("Set-Cookie"))

    def test_sign_in_and_out_from_another_origin_are_refused(self):
        # Neither needs a session, so no CSRF token guards them, and
        # SameSite does not tell ports apart: a page on another port of this
        # host signed the admin out with a form, and into another user's
        # session with a fetch. Browsers say where a request came from.
        creds = {"username": "admin", "password": ADMIN_PASSWORD}
        here = "http://127.0.0.1:%d" % self.server.port
        for headers in ({"Origin": "http://127.0.0.1:1"}, {"Origin": "null"},
                        {"Sec-Fetch-Site": "same-site"}, {"Sec-Fetch-Site": "cross-site"}):
            with self.subTest(headers=headers):
                r = self.anon.post_json("/v1/auth/login", creds, headers=headers)
                self.assertErrorShape(r, 403, code="forbidden", message="from another origin")
                self.assertIsNone(r.header("Set-Cookie"), r.headers)
        # Behind a reverse proxy the Host may be the upstream's: the
        # browser's Sec-Fetch-Site still says same-origin, or a trusted
        # proxy's X-Forwarded-Host names the origin (anyone else's is not
        # believed: it would let any Origin through).
        r = self.anon.post_json("/v1/auth/login", creds, headers={
            "Origin": "https://kennel.example.com", "Sec-Fetch-Site": "same-origin"})
        self.assertEqual(r.status, 200, r)
        forwarded = {"Origin": "https://kennel.example.com",
                     "X-Forwarded-Host": "kennel.example.com"}
        r = self.anon.post_json("/v1/auth/login", creds, headers=forwarded)
        self.assertErrorShape(r, 403, code="forbidden", message="from another origin")
        proxied = self.start_server(args=("--trusted-proxy", "127.0.0.1"), db="proxied.db")
        anon = Client(proxied.port, auth=None)
        self.addCleanup(anon.close)
        self.assertEqual(anon.post_json("/v1/auth/login", creds, headers=forwarded).status, 200)
        r = self.anon.post_json("/v1/auth/login", creds,
                                headers={"Origin": here, "Sec-Fetch-Site": "same-origin"})
        self.assertEqual(r.status, 200, r)
        cookie = r.header("Set-Cookie").split(";")[0]
        out = self.anon.post("/v1/auth/logout", headers={"Cookie": cookie, "Origin": "http://127.0.0.1:1"})
        self.assertErrorShape(out, 403, code="forbidden", message="a sign-out from another origin")
        self.assertEqual(self.anon.get("/v1/streams", headers={"Cookie": cookie}).status, 200)
        # A script (no Origin) and this server's own page sign out.
        out = self.anon.post("/v1/auth/logout", headers={"Cookie": cookie, "Origin": here})
        self.assertEqual(out.status, 200, out)
        self.assertErrorShape(self.anon.get("/v1/streams", headers={"Cookie": cookie}), 401)
        self.assertEqual(self.anon.post_json("/v1/auth/login", creds).status, 200)

    def test_a_new_password_shuts_out_the_old_one_and_its_sessions_at_once(self):
        # `kennel admin set-password` beside the running server: the old
        # password, remembered for 5 minutes to spare PBKDF2, kept working
        # that long, and a session signed in with it for its 12 hours.
        old = Client(self.server.port, auth=basic("admin", ADMIN_PASSWORD))
        self.addCleanup(old.close)
        self.assertEqual(old.get("/v1/streams").status, 200)
        r = self.anon.post_json("/v1/auth/login", {"username": "admin", "password": ADMIN_PASSWORD})
        self.assertEqual(r.status, 200, r)
        cookie = r.header("Set-Cookie").split(";")[0]
        self.assertEqual(self.anon.get("/v1/streams", headers={"Cookie": cookie}).status, 200)
        r = run_cli(["admin", "set-password", "--password", "a-new-password", "--db",
                     self.server.db])
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertErrorShape(old.get("/v1/streams"), 401)
        self.assertErrorShape(self.anon.get("/v1/streams", headers={"Cookie": cookie}), 401)
        new = Client(self.server.port, auth=basic("admin", "a-new-password"))
        self.addCleanup(new.close)
        self.assertEqual(new.get("/v1/streams").status, 200)

    def test_bad_key_requests_are_400(self):
        self.assertErrorShape(self.admin.post_json("/v1/keys", {"name": "x", "scopes": ["root"]}), 400,
                              field="scopes")
        self.assertErrorShape(self.admin.post_json("/v1/keys", {"name": "x", "scopes": []}), 400,
                              field="scopes")
        self.assertErrorShape(self.admin.post_json("/v1/keys", {"name": "", "scopes": ["ingest"]}), 400,
                              field="name")
        self.assertErrorShape(self.admin.post_json("/v1/keys", {"name": "x", "scopes": "ingest"}), 400,
                              field="scopes")
        # A field the server does not know is refused: "expires" was once
        # ignored, and the key never expired.
        self.assertErrorShape(self.admin.post_json("/v1/keys", {"name": "x", "scopes": ["ingest"],
                                                                "expires": "tomorrow"}),
                              400, field="expires", message="unknown field")
        # Nor one that reads as blank or as other text: invisible and
        # non-breaking spaces, a direction override ("exe.jpg" on screen),
        # a line separator.
        for name in ("a\nforged line", "nul\u0000", "   ", "x" * 65, "\u00e9" * 65,
                     "\u200b", "\u00a0\u00a0", " \u3000\ufeff", "\u202egpj.exe", "a\u2028b",
                     "\u2066x", "c1\u0085"):
            self.assertErrorShape(self.admin.post_json("/v1/keys", {"name": name,
                                                                    "scopes": ["ingest"]}),
                                  400, field="name")
        self.assertErrorShape(self.admin.request("DELETE", "/v1/keys/999"), 404)
        self.assertErrorShape(self.admin.request("DELETE", "/v1/keys/abc"), 400, field="id")
        self.assertEqual(self.admin.get("/v1/keys").json()["keys"], [])

    def test_key_names_count_characters_and_scopes_are_kept_once(self):
        # 64 two-byte characters are 128 bytes: once refused as "over 64
        # characters".
        r = self.admin.post_json("/v1/keys", {"name": "\u00e9" * 64,
                                              "scopes": ["ingest", "predict", "ingest"]})
        self.assertEqual(r.status, 201, r)
        self.assertEqual((r.json()["name"], r.json()["scopes"]), ("\u00e9" * 64, ["ingest", "predict"]))
        # Neither the new key nor the list is kept by a cache.
        self.assertEqual(r.header("Cache-Control"), "no-store")
        self.assertEqual(self.admin.get("/v1/keys").header("Cache-Control"), "no-store")
        listed = self.admin.get("/v1/keys").json()["keys"]
        self.assertEqual([k["scopes"] for k in listed], [["ingest", "predict"]])
        # Inner blanks, other scripts and joined emoji are names like any.
        for name in ("\u6771\u4eac ingest\u00a0key", "\U0001F469\u200d\U0001F4BB ops"):
            r2 = self.admin.post_json("/v1/keys", {"name": name, "scopes": ["ingest"]})
            self.assertEqual((r2.status, r2.json().get("name")), (201, name), r2)

    def test_an_active_keys_name_is_not_given_twice(self):
        # Deployments, events and jobs name the key that acted "key:ops":
        # two active keys named ops could not be told apart there.
        r = self.admin.post_json("/v1/keys", {"name": "ops", "scopes": ["admin"]})
        self.assertEqual(r.status, 201, r)
        first = r.json()["id"]
        err = self.assertErrorShape(self.admin.post_json("/v1/keys", {"name": "ops",
                                                                      "scopes": ["admin"]}),
                                    409, code="conflict", field="name", message='"ops"')
        self.assertIn("key %d" % first, err["message"])
        # kennel admin beside the server keeps to the same rule.
        out = run_cli(["admin", "create-key", "--db", self.server.db, "--name", "ops",
                       "--scopes", "read"])
        self.assertEqual(out.returncode, 1, out.stderr)
        self.assertIn('an active key is already named "ops" (key %d)' % first, out.stderr)
        self.assertEqual([k["name"] for k in self.admin.get("/v1/keys").json()["keys"]], ["ops"])
        # A revoked key acts no more: its name is free again.
        self.assertEqual(self.admin.request("DELETE", "/v1/keys/%d" % first).status, 200)
        r = self.admin.post_json("/v1/keys", {"name": "ops", "scopes": ["admin"]})
        self.assertEqual(r.status, 201, r)
        out = run_cli(["admin", "create-key", "--db", self.server.db, "--name", "ops",
                       "--scopes", "read"])
        self.assertEqual(out.returncode, 1, out.stderr)
        self.assertIn("(key %d)" % r.json()["id"], out.stderr)

    def test_key_scopes_and_revocation(self):
        r = self.admin.post_json("/v1/keys", {"name": "app", "scopes": ["ingest"]})
        self.assertEqual(r.status, 201, r)
        key, kid = r.json()["key"], r.json()["id"]
        listed = self.admin.get("/v1/keys").json()["keys"]
        self.assertNotIn("key", listed[0])  # shown once, never listed
        app = Client(self.server.port, auth="Bearer " + key)
        self.addCleanup(app.close)
        fact = {"stream": "s", "entity": "e", "time": "2026-11-20T10:00:00Z", "data": {"x": 1}}
        self.assertEqual(app.post_json("/v1/facts", fact).status, 201)
        # The scheme is case-insensitive (RFC 9110): "bearer" was once a 401.
        for scheme in ("bearer ", "BEARER "):
            r = self.anon.post_json("/v1/facts", dict(fact, entity=scheme.strip()),
                                    headers={"Authorization": scheme + key})
            self.assertEqual(r.status, 201, r)
        self.assertErrorShape(app.request("PUT", "/v1/models/m", json_body={}), 403, code="forbidden")
        r = self.admin.request("DELETE", "/v1/keys/%d" % kid)
        self.assertEqual((r.status, r.json()["changed"]), (200, True), r)
        self.assertErrorShape(app.post_json("/v1/facts", fact), 401, code="unauthenticated")
        # Sent again (its answer lost): revoked already, by the first.
        r = self.admin.request("DELETE", "/v1/keys/%d" % kid)
        self.assertEqual((r.status, r.json()["changed"]), (200, False), r)
        out = run_cli(["admin", "revoke-key", "--db", self.server.db, "--id", str(kid)])
        self.assertEqual((out.returncode, out.stdout.strip()),
                         (0, "key was already revoked: %d" % kid), out.stderr)
        bogus = Client(self.server.port, auth="Bearer knl_nothing")
        self.addCleanup(bogus.close)
        self.assertErrorShape(bogus.get("/v1/streams"), 401)
        basic_wrong = Client(self.server.port, auth="Basic bm9wZTpub3Bl")  # nope:nope
        self.addCleanup(basic_wrong.close)
        self.assertErrorShape(basic_wrong.get("/v1/streams"), 401)

    def test_a_key_with_an_expiry_stops_working_then(self):
        expiry = int(time.time()) + 3
        soon = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(expiry))
        r = self.admin.post_json("/v1/keys", {"name": "contractor", "scopes": ["ingest"],
                                              "expires_at": soon})
        self.assertEqual(r.status, 201, r)
        made = r.json()
        self.assertEqual((made["expires_at"], made["state"], made["last_used_at"]),
                         (soon, "active", None))
        self.assertEqual(r.header("Location"), "/v1/keys/%d" % made["id"], r)
        one = self.admin.get(r.header("Location"))
        self.assertEqual((one.status, one.header("Cache-Control")), (200, "no-store"), one)
        self.assertNotIn("key", one.json())  # shown once, at its creation
        self.assertEqual((one.json()["name"], one.json()["expires_at"]), ("contractor", soon))
        self.assertErrorShape(self.admin.get("/v1/keys/999999"), 404, field="id")
        self.assertErrorShape(self.admin.get("/v1/keys/abc"), 400, field="id")
        app = Client(self.server.port, auth="Bearer " + made["key"])
        self.addCleanup(app.close)
        fact = {"stream": "s", "entity": "e", "time": "2026-11-20T10:00:00Z", "data": {"x": 1}}
        self.assertEqual(app.post_json("/v1/facts", fact).status, 201)
        # The list shows its use at once (it is written to the database once a minute).
        listed = self.admin.get("/v1/keys").json()["keys"]
        self.assertIsNotNone(listed[0]["last_used_at"], listed)
        time.sleep(max(0.0, expiry + 0.2 - time.time()))
        r = app.post_json("/v1/facts", dict(fact, entity="late"))
        self.assertErrorShape(r, 401, code="unauthenticated",
                              message='API key "contractor" expired at ' + soon)
        listed = self.admin.get("/v1/keys").json()
        self.assertEqual([(k["name"], k["state"]) for k in listed["keys"]],
                         [("contractor", "expired")])
        self.assertEqual(self.admin.get("/v1/keys?state=active").json()["keys"], [])
        # Its name is free again, and a revocation still records who ended it.
        again = self.admin.post_json("/v1/keys", {"name": "contractor", "scopes": ["ingest"]})
        self.assertEqual(again.status, 201, again)
        self.assertIsNone(again.json()["expires_at"])
        self.assertEqual(self.admin.request("DELETE", "/v1/keys/%d" % made["id"]).status, 200)
        states = {k["id"]: k["state"] for k in self.admin.get("/v1/keys").json()["keys"]}
        self.assertEqual(states, {made["id"]: "revoked", again.json()["id"]: "active"})

    def test_bad_key_expiries_and_list_queries_are_400(self):
        before = self.admin.get("/v1/keys").json()
        past = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 60))
        for expires, message in ((past, "not later than now"),
                                 ("tomorrow", "RFC 3339"),
                                 ("2027-02-30T00:00:00Z", "RFC 3339"),
                                 (1893456000, "RFC 3339"),
                                 (True, "RFC 3339"),
                                 ({"days": 30}, "RFC 3339")):
            r = self.admin.post_json("/v1/keys", {"name": "x", "scopes": ["read"],
                                                  "expires_at": expires})
            self.assertErrorShape(r, 400, field="expires_at", message=message)
        # null is "never", as when it is left out.
        r = self.admin.post_json("/v1/keys", {"name": "forever", "scopes": ["read"],
                                              "expires_at": None})
        self.assertEqual(r.status, 201, r)
        self.assertIsNone(r.json()["expires_at"])
        # The command line names its option.
        cli = ["admin", "create-key", "--db", self.server.db, "--name", "cli-late", "--scopes",
               "read", "--expires-at"]
        out = run_cli(cli + [past])
        self.assertEqual(out.returncode, 2, out.stdout)
        self.assertIn("kennel admin: --expires-at: the key would expire at", out.stderr)
        out = run_cli(cli + ["tomorrow"])
        self.assertEqual(out.returncode, 2, out.stdout)
        self.assertIn('--expires-at "tomorrow" is not an RFC 3339 time', out.stderr)
        after = self.admin.get("/v1/keys").json()
        self.assertEqual(after["count"], before["count"] + 1)  # nothing half-made
        out = run_cli(cli + ["2099-01-01T00:00:00+02:00"])
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertIn("it expires at 2098-12-31T22:00:00Z", out.stdout)
        for query, field in (("state=gone", "state"), ("state=active,", "state"),
                             ("state=ACTIVE", "state"), ("limit=0", "limit"),
                             ("limit=1001", "limit"), ("before=x", "before"),
                             ("cursor=5", "cursor")):
            self.assertErrorShape(self.admin.get("/v1/keys?" + query), 400, field=field)

    def test_the_key_list_pages_newest_first_with_a_count(self):
        ids = []
        for i in range(5):
            r = self.admin.post_json("/v1/keys", {"name": "k%d" % i, "scopes": ["read"]})
            self.assertEqual(r.status, 201, r)
            ids.append(r.json()["id"])
        self.assertEqual(self.admin.request("DELETE", "/v1/keys/%d" % ids[1]).status, 200)
        first = self.admin.get("/v1/keys?limit=2").json()
        self.assertEqual([k["id"] for k in first["keys"]], [ids[4], ids[3]])
        self.assertEqual((first["count"], first["next_before"]), (5, ids[3]))
        second = self.admin.get("/v1/keys?limit=2&before=%d" % ids[3]).json()
        self.assertEqual([k["id"] for k in second["keys"]], [ids[2], ids[1]])
        last = self.admin.get("/v1/keys?limit=2&before=%d" % ids[1]).json()
        self.assertEqual(([k["id"] for k in last["keys"]], last["next_before"]), ([ids[0]], None))
        active = self.admin.get("/v1/keys?state=active").json()
        self.assertEqual(([k["id"] for k in active["keys"]], active["count"]),
                         ([ids[4], ids[3], ids[2], ids[0]], 4))
        gone = self.admin.get("/v1/keys?state=expired,revoked").json()
        self.assertEqual(([k["id"] for k in gone["keys"]], gone["count"]), ([ids[1]], 1))

    def test_a_keys_last_use_outlives_a_restart(self):
        r = self.admin.post_json("/v1/keys", {"name": "app", "scopes": ["read"]})
        self.assertEqual(r.status, 201, r)
        kid = r.json()["id"]
        self.assertIsNone(r.json()["last_used_at"])
        app = Client(self.server.port, auth="Bearer " + r.json()["key"])
        self.assertEqual(app.get("/v1/streams").status, 200)
        app.close()
        used = {k["id"]: k["last_used_at"] for k in self.admin.get("/v1/keys").json()["keys"]}
        self.assertIsNotNone(used[kid])
        self.assertEqual(self.admin.get("/v1/keys/%d" % kid).json()["last_used_at"], used[kid])
        self.admin.close()
        self.server.stop()  # written at the stop, not only once a minute
        server = self.start_server()
        admin = self.client(server)
        again = {k["id"]: k["last_used_at"] for k in admin.get("/v1/keys").json()["keys"]}
        self.assertEqual(again[kid], used[kid])
        out = run_cli(["admin", "list-keys", "--db", server.db, "--state", "active"])
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertIn("last used " + used[kid], out.stdout)
        out = run_cli(["admin", "list-keys", "--db", server.db, "--state", "gone"])
        self.assertEqual(out.returncode, 2, out.stdout)
        self.assertIn('unknown key state "gone"', out.stderr)

    def test_a_key_limited_to_some_models_and_streams(self):
        r = self.admin.post_json("/v1/keys", {"name": "feed-app", "scopes": ["predict", "ingest"],
                                              "models": ["likes", "likes"],
                                              "streams": ["posts"]})
        self.assertEqual(r.status, 201, r)
        self.assertEqual((r.json()["models"], r.json()["streams"]), (["likes"], ["posts"]), r)
        app = Client(self.server.port, auth="Bearer " + r.json()["key"])
        self.addCleanup(app.close)
        # Its model passes (unknown here: 404 after the key is let through);
        # another is refused before anything is read.
        self.assertErrorShape(app.post_json("/v1/models/likes/predict", {"features": {}}), 404,
                              field="name")
        self.assertErrorShape(app.post_json("/v1/models/churn/predict", {"features": {}}), 403,
                              code="forbidden", field="name",
                              message='may predict with model "likes" only, not "churn"')
        fact = {"entity": "e", "time": "2026-11-20T10:00:00Z", "data": {"x": 1}}
        self.assertEqual(app.post_json("/v1/facts", dict(fact, stream="posts")).status, 201)
        self.assertErrorShape(app.post_json("/v1/facts", dict(fact, stream="likes")), 403,
                              code="forbidden", field="stream",
                              message='API key "feed-app" may send facts to stream "posts" only, '
                                      'not "likes"')
        # A batch: each item on its own, as for any rejected item.
        batch = app.post_json("/v1/facts", [dict(fact, stream="posts", entity="b1"),
                                            dict(fact, stream="likes", entity="b2")])
        self.assertEqual(batch.status, 200, batch)
        items = batch.json()["items"]
        self.assertEqual([i["status"] for i in items], ["stored", "rejected"], batch)
        self.assertEqual(items[1]["error"]["code"], "forbidden", batch)
        self.assertErrorShape(app.post_json("/v1/facts", [dict(fact, stream="likes")]), 403,
                              code="forbidden")
        lines = "\n".join(json.dumps(dict(fact, stream=st, entity="n" + st))
                          for st in ("posts", "likes")) + "\n"
        nd = app.post("/v1/facts", body=lines, headers={"Content-Type": "application/x-ndjson"})
        self.assertEqual((nd.status, nd.json()["stored"], nd.json()["rejected"]), (200, 1, 1), nd)
        likes = self.admin.get("/v1/streams/likes/facts").json()["facts"]
        self.assertEqual(likes, [])  # nothing of it was stored
        # Reads are not limited.
        self.assertEqual(app.get("/v1/streams/likes/facts").status, 200)
        listed = {k["name"]: k for k in self.admin.get("/v1/keys").json()["keys"]}
        self.assertEqual((listed["feed-app"]["models"], listed["feed-app"]["streams"]),
                         (["likes"], ["posts"]))
        out = run_cli(["admin", "create-key", "--db", self.server.db, "--name", "cli-feed",
                       "--scopes", "ingest", "--streams", "posts,likes"])
        self.assertEqual(out.returncode, 0, out.stderr)
        out = run_cli(["admin", "list-keys", "--db", self.server.db])
        self.assertIn("only streams posts,likes", out.stdout)
        self.assertIn("only models likes; only streams posts", out.stdout)

    def test_bad_key_limits_are_400_naming_them(self):
        before = self.admin.get("/v1/keys").json()["count"]
        for body, field, message in (
                ({"scopes": ["admin"], "models": ["m"]}, "models", "an admin key does everything"),
                ({"scopes": ["ingest"], "models": ["m"]}, "models", "predict scope"),
                ({"scopes": ["predict"], "streams": ["s"]}, "streams", "ingest scope"),
                ({"scopes": ["predict"], "models": []}, "models", "a list of model names"),
                ({"scopes": ["predict"], "models": "m"}, "models", "a list of model names"),
                ({"scopes": ["predict"], "models": [5]}, "models", "a list of model names"),
                ({"scopes": ["predict"], "models": ["a b"]}, "models", "is no model name"),
                ({"scopes": ["ingest"], "streams": ["s" * 129]}, "streams", "is no stream name"),
                ({"scopes": ["bogus"], "models": ["m"]}, "scopes", 'unknown scope "bogus"')):
            with self.subTest(body=body):
                r = self.admin.post_json("/v1/keys", dict(body, name="limited"))
                self.assertErrorShape(r, 400, field=field, message=message)
        self.assertEqual(self.admin.get("/v1/keys").json()["count"], before)
        out = run_cli(["admin", "create-key", "--db", self.server.db, "--name", "x",
                       "--scopes", "admin", "--models", "m"])
        self.assertEqual(out.returncode, 2, out.stdout)
        self.assertIn("kennel admin: --models: an admin key does everything", out.stderr)
        # Given with no name in it (an unset variable): not a key without the limit.
        for value in (",", "", ",,"):
            out = run_cli(["admin", "create-key", "--db", self.server.db, "--name", "y",
                           "--scopes", "predict", "--models", value])
            self.assertEqual(out.returncode, 2, (value, out.stdout))
            self.assertIn("--models names no model", out.stderr)
        self.assertEqual(self.admin.get("/v1/keys").json()["count"], before)

    def test_a_read_key_reads_and_changes_nothing(self):
        # For monitoring (/metrics) and dashboards: no scope that writes.
        r = self.admin.post_json("/v1/keys", {"name": "prometheus", "scopes": ["read"]})
        self.assertEqual(r.status, 201, r)
        self.assertEqual(r.json()["scopes"], ["read"])
        reader = Client(self.server.port, auth="Bearer " + r.json()["key"])
        self.addCleanup(reader.close)
        for path in ("/v1/streams", "/metrics", "/v1/overview", "/v1/models", "/v1/serving"):
            self.assertEqual(reader.get(path).status, 200, path)
        self.assertErrorShape(reader.get("/v1/keys"), 403, code="forbidden")
        self.assertErrorShape(reader.get("/v1/keys/%d" % r.json()["id"]), 403, code="forbidden")
        fact = {"stream": "s", "entity": "e", "time": "2026-11-20T10:00:00Z", "data": {"x": 1}}
        self.assertErrorShape(reader.post_json("/v1/facts", fact), 403, code="forbidden")
        self.assertErrorShape(reader.post_json("/v1/models/m/predict", {"features": {}}), 403,
                              code="forbidden")
        self.assertErrorShape(reader.request("PUT", "/v1/models/m", json_body={}), 403,
                              code="forbidden")
        self.assertErrorShape(reader.post_json("/v1/keys", {"name": "x", "scopes": ["admin"]}),
                              403, code="forbidden")
        self.assertNotIn("s", [x["stream"] for x in self.admin.get("/v1/streams").json()["streams"]])
        # The CLI takes it too.
        out = run_cli(["admin", "create-key", "--db", self.server.db, "--name", "dash",
                       "--scopes", "read"])
        self.assertEqual(out.returncode, 0, out.stderr)


if __name__ == "__main__":
    unittest.main()
