"""Crash test: SIGKILL the server while clients send facts, then check that
every fact it acknowledged is in the database, and that Kennel restarts on
that database and serves it."""

import http.client
import json
import sqlite3
import threading
import time
import unittest

from kennel_harness import Client, KennelTestCase, fact

RUN_SECONDS = 3.0
MIN_ACKS = 300


class CrashTest(KennelTestCase):

    def send_until_killed(self, server):
        """Client threads send facts (one per request, JSON-array batches and
        NDJSON batches) until the server dies under them; returns
        {idempotency_key: id} of everything acknowledged."""
        acked, lock = {}, threading.Lock()
        stop = threading.Event()
        unexpected = []

        def record(facts, items):
            with lock:
                for f, it in zip(facts, items):
                    if it.get("status") in ("stored", "duplicate"):
                        acked[f["idempotency_key"]] = it["id"]

        def sender(t, mode):
            c = Client(server.port, timeout=10)
            n = 0
            try:
                while not stop.is_set():
                    size = 1 if mode == "single" else 1 + n % 7
                    facts = [fact("crash-%s" % mode, "t%d" % t, {"n": n, "j": j, "w": t * 0.5},
                                  key="crash-%d-%d-%d" % (t, n, j)) for j in range(size)]
                    n += 1
                    try:
                        if mode == "single":
                            r = c.post_json("/v1/facts", facts[0], retry=False)
                        elif mode == "array":
                            r = c.post_json("/v1/facts", facts, retry=False)
                        else:
                            r = c.post_ndjson("/v1/facts", facts, retry=False)
                    except (OSError, http.client.HTTPException):
                        return  # the server is gone: nothing after this was acknowledged
                    if r.status == 201 and mode == "single":
                        record(facts, [r.json()])
                    elif r.status == 200 and mode == "single":
                        record(facts, [r.json()])  # a duplicate
                    elif r.status == 200:
                        record(facts, r.json()["items"])
                    elif r.status != 503:
                        unexpected.append(r)
            finally:
                c.close()

        modes = ["single", "single", "single", "array", "ndjson"]
        threads = [threading.Thread(target=sender, args=(t, m)) for t, m in enumerate(modes)]
        for th in threads:
            th.start()
        try:
            started = time.monotonic()
            while time.monotonic() - started < 20:
                with lock:
                    enough = len(acked) >= MIN_ACKS
                if enough and time.monotonic() - started >= RUN_SECONDS:
                    break
                time.sleep(0.02)
            # Mid-stream: every thread is sending right now.
            self.assertTrue(all(th.is_alive() for th in threads), "a sender stopped early")
            server.kill()
        finally:
            stop.set()
            for th in threads:
                th.join(15)
        self.assertEqual(unexpected, [])
        self.assertFalse(any(th.is_alive() for th in threads))
        self.assertLess(server.exit_code, 0, "expected death by SIGKILL")
        with lock:
            return dict(acked)

    def check_database(self, path, acked):
        db = sqlite3.connect(path, timeout=10)  # recovers the WAL, as kennel would
        self.addCleanup(db.close)
        self.assertEqual(db.execute("PRAGMA integrity_check").fetchone()[0], "ok")
        rows = dict(db.execute("SELECT idempotency_key, id FROM facts"))
        missing = [k for k in acked if k not in rows]
        self.assertEqual(missing, [], "%d of %d acknowledged facts are missing"
                         % (len(missing), len(acked)))
        wrong = {k: (v, rows[k]) for k, v in acked.items() if rows[k] != v}
        self.assertEqual(wrong, {}, "acknowledged ids differ from the stored ones")
        # The per-stream stats the trigger keeps agree with the log after the crash.
        stats = dict(db.execute("SELECT stream, fact_count FROM stream_stats"))
        counts = dict(db.execute("SELECT stream, count(*) FROM facts GROUP BY stream"))
        self.assertEqual(stats, counts)
        for (data,) in db.execute("SELECT data FROM facts"):
            self.assertIsInstance(json.loads(data), dict)  # every row whole
        return counts

    def crash_and_recover(self, extra_args):
        server = self.start_server(args=extra_args)
        acked = self.send_until_killed(server)
        self.assertGreaterEqual(len(acked), MIN_ACKS)
        counts = self.check_database(server.db, acked)
        # Commits whose answer never arrived may be there too, but nothing less.
        self.assertGreaterEqual(sum(counts.values()), len(acked))

        # Kennel restarts on the crashed database and serves it.
        again = self.start_server(args=extra_args)
        c = self.client(again)
        served = {s["stream"]: s["count"] for s in c.get("/v1/streams").json()["streams"]}
        self.assertEqual(served, counts)
        # An acknowledged fact resent is a duplicate with its original id.
        key, fid = next(iter(acked.items()))
        got = c.get("/v1/facts/%d" % fid)
        self.assertEqual(got.status, 200, got)
        self.assertEqual(got.json()["idempotency_key"], key)
        resend = {k: got.json()[k] for k in ("stream", "entity", "time", "data",
                                              "idempotency_key")}
        r = c.post_json("/v1/facts", resend)
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json(), {"status": "duplicate", "id": fid})
        # New writes work and get ids after everything already there.
        r = c.post_json("/v1/facts", fact("after", "e", {"ok": True}))
        self.assertEqual(r.status, 201, r)
        self.assertGreater(r.json()["id"], max(acked.values()))
        self.assertEqual(again.stop(), 0, again.stderr())

    def test_sigkill_mid_stream_loses_no_acknowledged_fact(self):
        self.crash_and_recover(())

    def test_sigkill_with_sync_normal_loses_no_acknowledged_fact(self):
        # synchronous=NORMAL may lose commits on power loss, never on a crash
        # of the process: the WAL is in the OS page cache.
        self.crash_and_recover(("--sync", "normal"))


if __name__ == "__main__":
    unittest.main()
