"""Integration tests for loading data and configuring `kennel serve`: the
demo data set, option precedence (flag > environment > INI file > default)
and the --sync option; and facts whose commit fails."""

import json
import os
import re
import resource
import socket
import sqlite3
import unittest

from kennel_harness import KennelTestCase, fact, open_db, run_cli, stream_counts, wait_until


def free_port():
    """A port that was free a moment ago (bind to 0, read it, close)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class DemoTest(KennelTestCase):

    def test_demo_loads_posts_and_likes_once(self):
        server = self.start_server(args=("--demo",))
        c = self.client(server)
        streams = {s["stream"]: s for s in c.get("/v1/streams").json()["streams"]}
        self.assertEqual(streams["posts"]["count"], 2000)
        self.assertEqual(streams["likes"]["count"], 2000)
        self.assertEqual(set(streams), {"posts", "likes"})
        # Likes come after their posts (the label is later than the features).
        self.assertGreater(streams["likes"]["first_event_time"], streams["posts"]["first_event_time"])
        first_posts = c.get("/v1/streams/posts/facts?limit=5").json()["facts"]
        self.assertEqual(len(first_posts), 5)
        for p in first_posts:
            self.assertTrue({"length", "hashtags", "breed", "hour"} <= set(p["data"]), p)
        likes = c.get("/v1/streams/likes/total?field=likes").json()
        self.assertEqual(likes["facts"], 2000)
        self.assertEqual(likes["counted"], 2000)
        self.assertGreater(likes["intervals"], 0)  # some likes are uncertainty intervals
        self.assertLess(likes["lower"], likes["upper"])
        max_id = max(s["max_fact_id"] for s in streams.values())
        c.close()
        self.assertEqual(server.stop(), 0, server.stderr())

        # Loading again adds nothing: same facts, same keys, stored once.
        again = self.start_server(args=("--demo",))
        c2 = self.client(again)
        streams2 = {s["stream"]: s for s in c2.get("/v1/streams").json()["streams"]}
        self.assertEqual(streams2["posts"]["count"], 2000)
        self.assertEqual(streams2["likes"]["count"], 2000)
        self.assertEqual(max(s["max_fact_id"] for s in streams2.values()), max_id)
        self.assertEqual(c2.get("/v1/streams/posts/facts?limit=5").json()["facts"], first_posts)
        self.assertIn("0 new", again.stderr())
        c2.close()
        self.assertEqual(again.stop(), 0)
        db = open_db(again.db)
        self.addCleanup(db.close)
        self.assertEqual(db.execute("SELECT count(*) FROM facts").fetchone()[0], 4000)

    def test_demo_leaves_a_database_of_its_own_and_a_persons_definition_alone(self):
        # A --demo left in a production configuration wrote 4,000 made-up
        # facts into a database of real ones (never to be deleted), and
        # replaced a model "likes" a person had defined, logging "already
        # defined".
        server = self.start_server()
        c = self.client(server)
        self.assertEqual(c.post_json("/v1/facts", fact("orders", "o1", {"x": 1})).status, 201)
        c.close()
        self.assertEqual(server.stop(), 0)
        again = self.start_server(args=("--demo",))
        c = self.client(again)
        self.assertEqual({s["stream"] for s in c.get("/v1/streams").json()["streams"]},
                         {"orders"})
        self.assertEqual(c.get("/v1/models/likes").status, 404)
        self.assertIn('--demo: not loaded: the database holds facts of its own (stream "orders")',
                      again.stderr())
        c.close()
        self.assertEqual(again.stop(), 0)

        os.mkdir(self.path("own"))
        demo = self.start_server(args=("--demo",), db=os.path.join("own", "kennel.db"))
        c = self.client(demo)
        mine = dict(c.get("/v1/models/likes").json()["definition"], algorithm="linear")
        r = c.request("PUT", "/v1/models/likes", json_body=mine)
        self.assertEqual(r.status, 200, r)
        revision = c.get("/v1/models/likes").json()["revision"]
        c.close()
        self.assertEqual(demo.stop(), 0)
        demo = self.start_server(args=("--demo",), db=os.path.join("own", "kennel.db"))
        c = self.client(demo)
        now = c.get("/v1/models/likes").json()
        self.assertEqual((now["revision"], now["definition"]["algorithm"]), (revision, "linear"))
        self.assertIn('model "likes" left as admin defined it', demo.stderr())

    def test_demo_is_the_same_data_on_every_machine(self):
        # Two fresh databases get byte-identical facts (ids, keys, data, times).
        exports = []
        for name in ("one", "two"):
            os.mkdir(self.path(name))
            server = self.start_server(args=("--demo",), db=os.path.join(name, "kennel.db"))
            self.assertEqual(server.stop(), 0)
            r = run_cli(["export", "--db", server.db, "--stream", "posts"], timeout=60)
            self.assertEqual(r.returncode, 0, r.stderr)
            exports.append([l for l in r.stdout.splitlines()])
        self.assertEqual(len(exports[0]), 2000)

        def strip_ingest(line):
            import json
            j = json.loads(line)
            j.pop("ingest_time")
            return j

        self.assertEqual([strip_ingest(l) for l in exports[0]],
                         [strip_ingest(l) for l in exports[1]])


class ConfigPrecedenceTest(KennelTestCase):
    """flag > environment (KENNEL_*) > INI file (--config) > default."""

    def write_config(self, text):
        path = self.path("kennel.ini")
        with open(path, "w") as f:
            f.write(text)
        return path

    def queue_limit(self, server):
        c = self.client(server)
        return c.get("/v1/status").json()["writer"]["queue_limit"]

    def test_writer_queue_default_file_env_flag(self):
        cfg = self.write_config("# Kennel settings\nwriter-queue = 111\n")
        cases = [
            ("default", (), {}, 20000),
            ("file", ("--config", cfg), {}, 111),
            ("env beats file", ("--config", cfg), {"KENNEL_WRITER_QUEUE": "222"}, 222),
            ("flag beats env and file", ("--config", cfg, "--writer-queue", "333"),
             {"KENNEL_WRITER_QUEUE": "222"}, 333),
            ("config file named by the environment", (), {"KENNEL_CONFIG": cfg}, 111),
        ]
        for name, args, env, expected in cases:
            with self.subTest(name):
                server = self.start_server(args=args, env=env, db=name.replace(" ", "_") + ".db")
                self.assertEqual(self.queue_limit(server), expected)
                self.assertEqual(server.stop(), 0)

    def test_max_batch_file_env_flag(self):
        cfg = self.write_config("max-batch = 3\n")

        def post(server, n):
            c = self.client(server)
            items = [fact("mb", "e%d" % i, {"i": i}) for i in range(n)]
            return c.post_json("/v1/facts", items).status

        server = self.start_server(args=("--config", cfg), db="a.db")
        self.assertEqual(post(server, 3), 200)
        self.assertEqual(post(server, 4), 413)
        server.stop()
        server = self.start_server(args=("--config", cfg), env={"KENNEL_MAX_BATCH": "5"},
                                   db="b.db")
        self.assertEqual(post(server, 5), 200)
        self.assertEqual(post(server, 6), 413)
        server.stop()
        server = self.start_server(args=("--config", cfg, "--max-batch", "2"),
                                   env={"KENNEL_MAX_BATCH": "5"}, db="c.db")
        self.assertEqual(post(server, 2), 200)
        self.assertEqual(post(server, 3), 413)
        server.stop()

    def test_port_from_file_env_and_flag(self):
        p_file, p_env = free_port(), free_port()
        while p_env == p_file:
            p_env = free_port()
        cfg = self.write_config("port = %d\nhost = 127.0.0.1\n" % p_file)

        server = self.start_server(args=("--config", cfg), port=None, db="f.db")
        self.assertEqual(server.port, p_file)
        server.stop()

        server = self.start_server(args=("--config", cfg), env={"KENNEL_PORT": str(p_env)},
                                   port=None, db="e.db")
        self.assertEqual(server.port, p_env)
        server.stop()

        # --port 0 on the command line beats both: some other free port.
        server = self.start_server(args=("--config", cfg), env={"KENNEL_PORT": str(p_env)},
                                   port=0, db="g.db")
        self.assertNotIn(server.port, (p_file, p_env))
        server.stop()

    def test_db_from_env_and_file(self):
        cfg = self.write_config("db = %s\n" % self.path("from_file.db"))
        server = self.start_server(args=("--config", cfg), db=None)
        self.assertEqual(server.stop(), 0)
        self.assertTrue(os.path.exists(self.path("from_file.db")))
        server = self.start_server(args=("--config", cfg), db=None,
                                   env={"KENNEL_DB": self.path("from_env.db")})
        self.assertEqual(server.stop(), 0)
        self.assertTrue(os.path.exists(self.path("from_env.db")))
        # Neither: the default ./kennel.db in the working directory.
        server = self.start_server(db=None)
        self.assertEqual(server.stop(), 0)
        self.assertTrue(os.path.exists(self.path("kennel.db")))

    def test_unknown_variables_and_entries_for_other_commands_are_ignored(self):
        # KENNEL_BIN (set by ctest) is not an option; an INI entry for
        # another command's option (import's batch) is allowed in a shared file.
        cfg = self.write_config("writer-queue = 77\nbatch = 10\nstream = posts\n")
        server = self.start_server(args=("--config", cfg),
                                   env={"KENNEL_BIN": "/nowhere", "KENNEL_NOT_AN_OPTION": "1"})
        self.assertEqual(self.queue_limit(server), 77)

    def test_one_file_with_every_commands_settings_serves_every_command(self):
        # The README: one --config file may hold the options of every
        # command. serve's access-log and writer-cache-mb (which
        # docs/operations.md has an operator set) were unknown to the other
        # commands, so a nightly `kennel backup --config` exited 2.
        listing = run_cli(["--help"]).stdout
        commands = re.findall(r"^  ([a-z]+) {2,}", listing, re.M)
        self.assertIn("backup", commands, listing)
        commands = [c for c in commands if c != "version"]
        settable = set()
        for command in commands:
            names = set(re.findall(r"--([a-z][a-z-]+)", run_cli([command, "--help"]).stdout))
            self.assertIn("db", names, command)
            for name in sorted(names - {"config", "help"}):
                cfg = self.write_config("%s = 1\n" % name)
                r = run_cli([command, "--config", cfg, "--help"])
                if "is taken from the command line only" in r.stderr:
                    continue  # an action, file or name: never from a file
                self.assertEqual(r.returncode, 0, (command, name, r.stderr))
                settable.add(name)
        self.assertTrue({"access-log", "writer-cache-mb", "batch", "port"} <= settable, settable)
        cfg = self.write_config("".join("%s = 1\n" % n for n in sorted(settable)))
        for command in commands:
            with self.subTest(command=command):
                r = run_cli([command, "--config", cfg, "--help"])
                self.assertEqual(r.returncode, 0, r.stderr)
                self.assertNotIn("unknown option", r.stderr)
        # A file naming another file is refused, not silently left unread.
        nested = self.write_config("config = %s\n" % self.path("other.ini"))
        r = run_cli(["backup", "--config", nested, "--help"])
        self.assertEqual(r.returncode, 2, r.stderr)
        self.assertIn("kennel.ini:1: a config file cannot name another", r.stderr)

    def test_bad_configuration_exits_2_with_a_message(self):
        cases = [
            ("missing config file", ["--config", self.path("nope.ini")], {}, "nope.ini"),
            ("port out of range", ["--port", "70000"], {}, "port"),
            ("port not a number", ["--port", "eighty"], {}, "port"),
            ("port from env not a number", [], {"KENNEL_PORT": "eighty"}, "port"),
            ("unknown flag", ["--no-such-flag"], {}, "no-such-flag"),
            ("writer queue 0", ["--writer-queue", "0"], {}, "writer-queue"),
            # Every page would have been a 404.
            ("web dir without pages", ["--web-dir", self.path("no-such-dir")], {},
             "--web-dir %s holds no index.html" % self.path("no-such-dir")),
        ]
        for name, args, env, needle in cases:
            with self.subTest(name):
                r = run_cli(["serve", "--db", self.path("bad.db")] + args, env=env, timeout=20)
                self.assertEqual(r.returncode, 2, (r.stdout, r.stderr))
                self.assertIn(needle, r.stderr)
                self.assertNotIn("listening", r.stdout)
        self.assertFalse(os.path.exists(self.path("bad.db")))


class SyncOptionTest(KennelTestCase):

    def test_sync_normal_and_off_are_accepted(self):
        for mode in ("normal", "off", "full"):
            with self.subTest(mode):
                server = self.start_server(args=("--sync", mode), db=mode + ".db")
                # The first log line says what runs, on what, and how durably.
                first = [l for l in server.stderr().splitlines() if "info serve: kennel " in l][0]
                self.assertRegex(first, r"kennel \d+\.\d+\.\d+ \(commit [0-9a-f]+")
                self.assertIn("database %s, --sync %s" % (server.db, mode), first)
                c = self.client(server)
                r = c.post_json("/v1/facts", fact("s", "e", {"mode": mode}))
                self.assertEqual(r.status, 201, r)
                c.close()
                self.assertEqual(server.stop(), 0, server.stderr())
                db = open_db(server.db)
                self.assertEqual(db.execute("SELECT count(*) FROM facts").fetchone()[0], 1)
                db.close()

    def test_sync_bogus_is_rejected_with_exit_2(self):
        for args, env in ((["--sync", "bogus"], {}), ([], {"KENNEL_SYNC": "bogus"})):
            with self.subTest(args=args, env=env):
                r = run_cli(["serve", "--port", "0", "--db", self.path("s.db")] + args, env=env,
                            timeout=20)
                self.assertEqual(r.returncode, 2, (r.stdout, r.stderr))
                self.assertIn("--sync must be full, normal or off", r.stderr)
                self.assertIn("bogus", r.stderr)
        cfg = self.path("sync.ini")
        with open(cfg, "w") as f:
            f.write("sync = sometimes\n")
        r = run_cli(["serve", "--port", "0", "--db", self.path("s.db"), "--config", cfg],
                    timeout=20)
        self.assertEqual(r.returncode, 2, r.stderr)
        self.assertIn("sometimes", r.stderr)
        self.assertFalse(os.path.exists(self.path("s.db")))


class FailedCommitTest(KennelTestCase):
    """Facts whose transaction cannot commit (here another process holds the
    database's write lock past the busy timeout; a full disk takes the same
    path) are answered 503 with Retry-After, not 400: the facts are fine and
    a retry stores them."""

    def test_facts_that_cannot_commit_get_503_and_a_retry_stores_them(self):
        # Each write the writer tries while the lock is held fails after the
        # busy timeout (5 s); a background write queued just ahead of a
        # fact's makes the fact wait two of them, past the default 10 s
        # --write-timeout-ms (CI once answered "not committed within 10000
        # ms"). This test is about the failed commit, so the wait is longer.
        server = self.start_server(args=("--write-timeout-ms", "30000"))
        c = self.client(server)
        one = fact("commit", "e1", {"n": 1}, "2026-01-01T00:00:00Z")
        batch = [fact("commit", "e%d" % i, {"n": i}, "2026-01-01T00:00:00Z")
                 for i in range(2, 40)]
        holder = sqlite3.connect(self.path("kennel.db"), isolation_level=None, timeout=10)
        try:
            holder.execute("BEGIN IMMEDIATE")
            for body in (one, batch):
                r = c.post_json("/v1/facts", body)
                self.assertErrorShape(r, 503, code="unavailable")
                self.assertIn("commit failed", r.json()["error"]["message"], r)
                self.assertIsNotNone(r.header("Retry-After"), r.headers)
        finally:
            holder.rollback()
            holder.close()
        # Nothing was stored, and the same bodies now are.
        r = c.post_json("/v1/facts", one)
        self.assertEqual((r.status, r.json()["status"]), (201, "stored"), r)
        # Where it is read back (RFC 9110: a 201 says where the new thing is).
        self.assertEqual(r.header("Location"), "/v1/facts/%d" % r.json()["id"], r)
        self.assertEqual(c.get(r.header("Location")).json()["id"], r.json()["id"])
        again = c.post_json("/v1/facts", one)
        self.assertEqual((again.status, again.header("Location")), (200, None), again)
        r = c.post_json("/v1/facts", batch)
        self.assertEqual(r.status, 200, r)
        self.assertEqual((r.json()["stored"], r.json()["duplicates"]), (len(batch), 0), r)

    def test_an_ndjson_body_committed_in_part_names_the_lines_to_send_again(self):
        # Each slice of 128 lines is its own transaction. With the server's
        # files limited in size (RLIMIT_FSIZE, set on the running process: a
        # write past it fails as on a full disk), the first slices commit
        # and later ones cannot. The answer said "nothing in this write was
        # stored" and to resend the whole body: facts without a time are new
        # facts each time, so the resend stored the first slices twice.
        server = self.start_server(args=("--write-timeout-ms", "30000"))
        c = self.client(server)
        s = "partial"
        lines = [json.dumps({"stream": s, "entity": "e%d" % i, "data": {"pad": "x" * 400}})
                 for i in range(1, 8001)]
        files = [self.path(n) for n in ("kennel.db", "kennel.db-wal")]
        now = max(os.path.getsize(f) for f in files if os.path.exists(f))
        limit = now + 600 * 1024
        resource.prlimit(server.proc.pid, resource.RLIMIT_FSIZE, (limit, resource.RLIM_INFINITY))
        try:
            r = c.post("/v1/facts", "\n".join(lines).encode(),
                       headers={"Content-Type": "application/x-ndjson"})
        finally:
            resource.prlimit(server.proc.pid, resource.RLIMIT_FSIZE,
                             (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
        self.assertErrorShape(r, 503, code="unavailable")
        message = r.json()["error"]["message"]
        m = re.search(r"the facts of lines ([0-9, -]+) are stored; those of lines ([0-9, -]+?)"
                      r"(?: and ([0-9]+) to the end)? are not: send those lines again", message)
        self.assertIsNotNone(m, message)

        def numbers(ranges):
            out = []
            for part in ranges.split(", ") if ranges else []:
                a, _, b = part.partition("-")
                out += range(int(a), int(b or a) + 1)
            return out
        stored = numbers(m.group(1))
        missing = numbers(m.group(2)) + (list(range(int(m.group(3)), len(lines) + 1))
                                         if m.group(3) else [])
        self.assertEqual(sorted(stored + missing), list(range(1, len(lines) + 1)), message)
        self.assertTrue(stored and missing, message)
        self.assertEqual(stream_counts(c).get(s, 0), len(stored), message)
        # The lines named, sent again, store the rest: every fact once.
        again = c.post("/v1/facts", "\n".join(lines[i - 1] for i in missing).encode(),
                       headers={"Content-Type": "application/x-ndjson"})
        self.assertEqual((again.status, again.json()["stored"]), (200, len(missing)), again)
        db = sqlite3.connect("file:%s?mode=ro" % self.path("kennel.db"), uri=True)
        try:
            self.assertEqual(db.execute("SELECT count(*), count(DISTINCT entity) FROM facts"
                                        " WHERE stream = ?", (s,)).fetchone(),
                             (len(lines), len(lines)))
        finally:
            db.close()

    def test_an_ndjson_body_the_queue_cannot_take_names_what_may_commit_and_what_to_resend(self):
        # The writer cannot commit (another process holds the write lock), so
        # the first slice waits and the second finds the queue full: the
        # answer said "the facts before line 129 may be stored: retry the
        # whole body (the idempotency keys make it safe)", and facts
        # without a time were stored twice by that retry.
        server = self.start_server(args=("--writer-queue", "200", "--write-timeout-ms", "1500"))
        c = self.client(server)
        s = "queued"
        lines = [json.dumps({"stream": s, "entity": "e%d" % i, "data": {"i": i}})
                 for i in range(1, 401)]
        holder = sqlite3.connect(self.path("kennel.db"), isolation_level=None, timeout=10)
        try:
            holder.execute("BEGIN IMMEDIATE")
            r = c.post("/v1/facts", "\n".join(lines).encode(),
                       headers={"Content-Type": "application/x-ndjson"})
        finally:
            holder.rollback()
            holder.close()
        self.assertErrorShape(r, 503, code="unavailable")
        message = r.json()["error"]["message"]
        self.assertIn("write queue is full", message)
        self.assertIn("those of lines 129 to the end are not: send those lines again", message)
        self.assertIn("those of lines 1-128 were not committed in time and may still be", message)
        # The first slice commits once the lock is gone; the lines named,
        # sent again, store the rest: every fact once.
        wait_until(lambda: stream_counts(c).get(s, 0) == 128, 20, "the first slice committed")
        again = c.post("/v1/facts", "\n".join(lines[128:]).encode(),
                       headers={"Content-Type": "application/x-ndjson"})
        self.assertEqual((again.status, again.json()["stored"]), (200, 272), again)
        self.assertEqual(stream_counts(c)[s], 400)


if __name__ == "__main__":
    unittest.main()
