"""Integration tests for the command line: help, version, migrate, import,
export and backup, run as real processes on temporary files."""

import base64
import csv
import io
import json
import os
import pty
import re
import select
import signal
import sqlite3
import stat
import subprocess
import threading
import time
import unittest

from kennel_harness import (KENNEL_BIN, Client, KennelTestCase, fact, kennel_env, open_db,
                            run_cli, run_cli_with_file_limit, run_serve_expecting_exit)

COMMANDS = ["serve", "migrate", "import", "export", "backup", "train", "predict", "admin", "version"]


def run_on_terminal(args, all_streams=False, reply=None, bound=60):
    """Runs `kennel ARGS` with stderr on a pseudo-terminal (and stdin and
    stdout too with all_streams), writing reply[1] once reply[0] has shown.
    Returns (exit code, the bytes shown on the terminal); bounded."""
    master, slave = pty.openpty()
    try:
        streams = (dict(stdin=slave, stdout=slave) if all_streams
                   else dict(stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL))
        p = subprocess.Popen([KENNEL_BIN] + args, stderr=slave, env=kennel_env(), **streams)
        os.close(slave)
        slave = None
        seen = b""
        deadline = time.monotonic() + bound
        while time.monotonic() < deadline:
            if reply and reply[0] in seen:
                os.write(master, reply[1])
                reply = None
            ready, _, _ = select.select([master], [], [], 0.1)
            if ready:
                try:
                    chunk = os.read(master, 65536)
                except OSError:  # EIO: the child closed the terminal
                    break
                if not chunk:
                    break
                seen += chunk
            elif p.poll() is not None:
                break
        return p.wait(30), seen
    finally:
        os.close(master)
        if slave is not None:
            os.close(slave)

def catches(pid, sig):
    """Whether process pid has a handler for sig (Linux: /proc's SigCgt)."""
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("SigCgt:"):
                    return (int(line.split()[1], 16) >> (int(sig) - 1)) & 1 == 1
    except OSError:
        pass
    return False


class HelpAndVersionTest(KennelTestCase):

    def test_top_level_help_lists_every_command(self):
        for flag in ("--help", "-h", "help"):
            with self.subTest(flag):
                r = run_cli([flag])
                self.assertEqual(r.returncode, 0, r.stderr)
                self.assertIn("usage: kennel <command>", r.stdout)
                for cmd in COMMANDS:
                    self.assertRegex(r.stdout, r"(?m)^\s+%s\s+\S" % cmd)
                self.assertIn("KENNEL_", r.stdout)  # the environment is documented

    def test_no_command_prints_usage_and_exits_2(self):
        r = run_cli([])
        self.assertEqual(r.returncode, 2)
        self.assertIn("usage: kennel <command>", r.stdout + r.stderr)

    def test_unknown_command_exits_2_naming_it(self):
        r = run_cli(["frobnicate"])
        self.assertEqual(r.returncode, 2)
        self.assertIn('unknown command "frobnicate"', r.stderr)

    def test_every_command_has_help(self):
        for cmd in COMMANDS:
            with self.subTest(cmd):
                r = run_cli([cmd, "--help"], cwd=self.tmp)
                self.assertEqual(r.returncode, 0, r.stderr)
                self.assertIn("usage: kennel %s" % cmd, r.stdout)
                if cmd != "version":
                    self.assertIn("--db", r.stdout)
                    self.assertIn("--config", r.stdout)
        # --help does nothing else: no database was created.
        self.assertEqual([f for f in os.listdir(self.tmp) if f.startswith("kennel.db")], [])

    def test_serve_help_documents_its_options(self):
        r = run_cli(["serve", "--help"])
        self.assertEqual(r.returncode, 0)
        for opt in ("--host", "--port", "--db", "--sync", "--max-body", "--max-batch",
                    "--writer-queue", "--demo", "--config", "--prediction-log-days"):
            self.assertIn(opt, r.stdout)
        self.assertIn("127.0.0.1", r.stdout)   # default host
        self.assertIn("8080", r.stdout)        # default port
        self.assertIn("kennel.db", r.stdout)   # default db
        # Each number's range is in the help, as the check enforces it
        # (the help wraps its lines: compare with single spaces).
        text = " ".join(r.stdout.split())
        for option, rng in (("port", "0 (any free port) to 65535"), ("http-threads", "1 to 1024"),
                            ("max-body", "1 to 1073741824"), ("predict-threads", "0 (two per core, at least 4) to 256"),
                            ("prediction-log-days", "0 (keep all) to 36500")):
            with self.subTest(option):
                after = text[text.index("--" + option):]
                self.assertIn(rng, after[:after.index(" --", 3)])

    def test_serve_refuses_a_prediction_log_retention_out_of_range(self):
        for bad in ("-1", "nan", "40000"):
            with self.subTest(bad):
                code, out, err = run_serve_expecting_exit(
                    ["--port", "0", "--db", os.path.join(self.tmp, "k.db"), "--prediction-log-days", bad],
                    bound=5)
                self.assertEqual(code, 2, err)
                self.assertIn("--prediction-log-days must be between 0 (keep all) and 36500, not "
                              + bad, err)

    def test_serve_refuses_a_negative_predict_concurrency(self):
        code, out, err = run_serve_expecting_exit(
            ["--port", "0", "--db", os.path.join(self.tmp, "k.db"), "--predict-concurrency", "-1"],
            bound=5)
        self.assertEqual(code, 2, err)
        self.assertIn("--predict-concurrency must be between 0 (four per core, at least 8) and 4096", err)

    # Values that would leave a useless server (every connection closed
    # unanswered, every write timed out), wrap a negative size into a huge
    # one, or abort after "listening" while starting 100,000 threads.
    def test_serve_refuses_numbers_out_of_range_naming_the_option_and_its_range(self):
        cases = [
            ("keepalive-timeout", "0", "between 1 and 3600"),
            ("keepalive-timeout", "-5", "between 1 and 3600"),
            ("write-timeout-ms", "0", "between 1 and 3600000"),
            ("write-timeout-ms", "-1", "between 1 and 3600000"),
            ("writer-queue", "-1", "between 1 and 10000000"),
            ("max-body", "-1", "between 1 and 1073741824"),
            ("max-body", "0", "between 1 and 1073741824"),
            ("max-batch", "-1", "between 1 and 1000000"),
            ("predict-queue", "-1", "between 1 and 1000000"),
            ("live-check-seconds", "0", "between 1 and 3600"),
            ("retrain-gap-seconds", "0", "between 1 and 86400"),
            ("retrain-gap-seconds", "86401", "between 1 and 86400"),
            ("prediction-log-queue", "-1", "between 1 and 10000000"),
            ("predict-threads", "100000", "between 0 (two per core, at least 4) and 256"),
            ("predict-threads", "-1", "between 0 (two per core, at least 4) and 256"),
            ("http-threads", "100000", "between 1 and 1024"),
            ("http-threads", "0", "between 1 and 1024"),
            ("writer-cache-mb", "0", "between 1 and 65536"),
        ]
        db = self.path("k.db")
        for option, value, needle in cases:
            with self.subTest(option=option, value=value):
                code, out, err = run_serve_expecting_exit(
                    ["--port", "0", "--db", db, "--" + option, value], bound=10)
                self.assertEqual(code, 2, err)
                self.assertIn("--%s must be %s, not %s" % (option, needle, value), err)
                self.assertNotIn("listening", out)
        code, out, err = run_serve_expecting_exit(["--port", "70000", "--db", db], bound=10)
        self.assertEqual(code, 2, err)
        self.assertIn("--port must be between 0 (any free port) and 65535, not 70000", err)
        # The same checks hold for the environment.
        code, out, err = run_serve_expecting_exit(["--port", "0", "--db", db], bound=10,
                                                  env={"KENNEL_WRITER_QUEUE": "-1"})
        self.assertEqual(code, 2, err)
        self.assertIn("--writer-queue must be between 1 and 10000000", err)
        # An empty host listened on [::1] alone.
        code, out, err = run_serve_expecting_exit(["--port", "0", "--db", db], bound=10,
                                                  env={"KENNEL_HOST": ""})
        self.assertEqual(code, 2, err)
        self.assertIn("--host must name an address", err)
        self.assertFalse(os.path.exists(db))

    def test_a_config_file_with_a_typo_a_section_or_a_stray_line_is_refused_by_line(self):
        db = self.path("k.db")
        cases = [
            ("typo", "# settings\nport = 0\nwriter-queu = 5\n", ":3: unknown option \"writer-queu\""),
            ("section", "[serve]\nwriter-queue = 5\n", ":1: sections are not supported ([serve])"),
            ("no value", "writer-queue = 5\nverbose\n", ":2: expected option = value"),
            # Taken as written, "k.db" with its quotes named a new, empty database.
            ("quoted", "db = \"k.db\"\n", ":1: write the value of db without quotes"),
            # What a run acts on comes from its command line only.
            ("an action", "action = revoke-key\nid = 1\n",
             ":1: --action is taken from the command line only"),
        ]
        for name, text, needle in cases:
            with self.subTest(name):
                cfg = self.path(name + ".ini")
                with open(cfg, "w") as f:
                    f.write(text)
                code, out, err = run_serve_expecting_exit(
                    ["--port", "0", "--db", db, "--config", cfg], bound=10)
                self.assertEqual(code, 2, err)
                self.assertIn(cfg + needle, err)
                r = run_cli(["migrate", "--db", db, "--config", cfg])
                self.assertEqual(r.returncode, 2, r.stderr)
                self.assertIn(cfg + needle, r.stderr)
        self.assertFalse(os.path.exists(db))
        # Options of other commands, comments and blank lines are fine.
        cfg = self.path("shared.ini")
        with open(cfg, "w") as f:
            f.write("# shared\n\nbatch = 10\nstream = posts  # import's\nwriter-queue=7\n")
        r = run_cli(["migrate", "--db", db, "--config", cfg])
        self.assertEqual(r.returncode, 0, r.stderr)

    def test_what_a_run_acts_on_is_not_taken_from_the_environment(self):
        # KENNEL_OUT once sent an export to a file instead of stdout, and
        # KENNEL_ACTION/KENNEL_ID revoked a key with a bare `kennel admin`.
        db = self.path("acts.db")
        self.assertEqual(run_cli(["migrate", "--db", db]).returncode, 0)
        r = run_cli(["admin", "create-key", "--name", "k", "--scopes", "ingest", "--db", db])
        self.assertEqual(r.returncode, 0, r.stderr)
        out = self.path("envout.ndjson")
        r = run_cli(["export", "--db", db], env={"KENNEL_OUT": out})
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("ignoring KENNEL_OUT: --out is taken from the command line only", r.stderr)
        self.assertFalse(os.path.exists(out))
        r = run_cli(["admin", "--db", db], env={"KENNEL_ACTION": "revoke-key", "KENNEL_ID": "1"})
        self.assertNotEqual(r.returncode, 0, r.stdout)
        self.assertIn("ignoring KENNEL_ACTION", r.stderr)
        r = run_cli(["admin", "list-keys", "--db", db])
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertNotIn("revoked", r.stdout.lower())
        # KENNEL_CREATE created the user it named.
        r = run_cli(["admin", "set-password", "--user", "bob", "--password", "longenough1",
                     "--db", db], env={"KENNEL_CREATE": "1"})
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertIn("ignoring KENNEL_CREATE: --create is taken from the command line only",
                      r.stderr)
        self.assertIn("no user named bob", r.stderr)
        with open_db(db) as c:
            self.assertEqual([x[0] for x in c.execute("SELECT name FROM users WHERE name = 'bob'")],
                             [])

    def test_a_bad_value_in_an_environment_variable_names_the_variable(self):
        # It named the option ("port") alone, which no one had typed.
        r = run_cli(["serve", "--db", self.path("k.db")], env={"KENNEL_PORT": "abc"}, timeout=30)
        self.assertEqual(r.returncode, 2, r.stderr)
        self.assertIn("environment variable KENNEL_PORT: the argument ('abc') for option 'port' "
                      "is invalid", r.stderr)

    def test_a_misspelt_environment_variable_is_named_in_a_warning(self):
        r = run_cli(["migrate", "--db", self.path("k.db")],
                    env={"KENNEL_WRITER_QUEU": "5", "KENNEL_BATCH": "3"})
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("warning: ignoring KENNEL_WRITER_QUEU", r.stderr)
        self.assertNotIn("KENNEL_BATCH", r.stderr)  # an option of kennel import
        self.assertNotIn("KENNEL_ADMIN_PASSWORD", r.stderr)

    def test_predict_help_gives_the_exit_status_of_an_all_rejected_file(self):
        # Every line rejected exits 3, as README says; 1 is for nothing to score with.
        r = run_cli(["predict", "--help"])
        self.assertEqual(r.returncode, 0, r.stderr)
        text = " ".join(r.stdout.split())
        self.assertNotIn("1: nothing scored", text)
        self.assertIn("3: some lines rejected (even every one)", text)
        self.assertIn("1: nothing could be scored (no such model or version", text)

    def test_version_prints_version_and_commit(self):
        for args in (["version"], ["--version"]):
            with self.subTest(args):
                r = run_cli(args)
                self.assertEqual(r.returncode, 0, r.stderr)
                m = re.match(r"^kennel (\d+\.\d+\.\d+) \(commit ([0-9a-f]{7,40}|unknown)\b",
                             r.stdout)
                self.assertIsNotNone(m, r.stdout)
                # The commit is taken at build time: it is the sources' HEAD,
                # not the commit the build directory was configured at.
                head = subprocess.run(["git", "-C", os.path.dirname(os.path.abspath(__file__)),
                                       "rev-parse", "--short=12", "HEAD"],
                                      capture_output=True, text=True)
                if head.returncode == 0:
                    self.assertEqual(m.group(2), head.stdout.strip(), r.stdout)
                self.assertIn("SQLite 3.", r.stdout)
                self.assertRegex(r.stdout, r"schema \d+")


class MigrateTest(KennelTestCase):

    def test_migrate_then_status_lists_0001_applied(self):
        db = self.path("m.db")
        r = run_cli(["migrate", "--db", db])
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertRegex(r.stdout, r"schema version \d+")
        self.assertRegex(r.stderr, r"created the schema \(version \d+\) in ")
        r = run_cli(["migrate", "--status", "--db", db])
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertRegex(r.stdout, r"(?m)^0001\s+0001_facts\s+applied \d{4}-\d\d-\d\dT")
        self.assertNotIn("pending\n", r.stdout.split("\n")[0])
        self.assertRegex(r.stdout, r"(?m)^\d+ applied, 0 pending$")
        with open_db(db) as c:
            self.assertEqual(c.execute("PRAGMA application_id").fetchone()[0], 0x4B4E4E4C)
            names = {n for (n,) in c.execute("SELECT name FROM schema_migrations")}
            self.assertIn("0001_facts", names)
        # Again: nothing to do, same answer, and nothing said about it.
        r2 = run_cli(["migrate", "--db", db])
        self.assertEqual(r2.returncode, 0, r2.stderr)
        self.assertNotIn("schema", r2.stderr)

    def test_status_does_not_change_an_unmigrated_database(self):
        db = self.path("empty.db")
        sqlite3.connect(db).close()  # an empty SQLite file
        r = run_cli(["migrate", "--status", "--db", db])
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertRegex(r.stdout, r"(?m)^0001\s+0001_facts\s+pending$")
        self.assertRegex(r.stdout, r"(?m)^0 applied, \d+ pending$")
        with open_db(db) as c:
            self.assertEqual(c.execute("SELECT count(*) FROM sqlite_schema").fetchone()[0], 0)

    def test_a_database_from_a_newer_kennel_is_refused(self):
        db = self.path("new.db")
        self.assertEqual(run_cli(["migrate", "--db", db]).returncode, 0)
        with sqlite3.connect(db) as c:
            c.execute("PRAGMA user_version = 9999")
        for args in (["migrate", "--db", db], ["migrate", "--status", "--db", db]):
            with self.subTest(args):
                r = run_cli(args)
                self.assertEqual(r.returncode, 1, r.stderr)
                self.assertIn("newer Kennel", r.stderr)
        # serve refuses it too, without touching it (whether it then exits
        # promptly is checked by test_serve_exits_1_when_it_refuses_the_database).
        code, out, err = run_serve_expecting_exit(["--port", "0", "--db", db], bound=5)
        self.assertNotEqual(code, 0, err)
        self.assertIn("newer Kennel", err)
        with open_db(db) as c:
            self.assertEqual(c.execute("PRAGMA user_version").fetchone()[0], 9999)

    def test_a_foreign_sqlite_file_is_refused(self):
        db = self.path("foreign.db")
        with sqlite3.connect(db) as c:
            c.execute("CREATE TABLE invoices (id INTEGER PRIMARY KEY, total REAL)")
        r = run_cli(["migrate", "--db", db])
        self.assertEqual(r.returncode, 1)
        self.assertIn("not a Kennel database", r.stderr)
        code, out, err = run_serve_expecting_exit(["--port", "0", "--db", db], bound=5)
        self.assertNotEqual(code, 0, err)
        self.assertIn("not a Kennel database", err)
        with open_db(db) as c:
            tables = {n for (n,) in c.execute("SELECT name FROM sqlite_schema WHERE type='table'")}
            self.assertEqual(tables, {"invoices"})

    # A refused database ends `serve` at once, though the HTTP server had
    # already started (its stop() must not race the listen loop's start).
    def test_serve_exits_1_when_it_refuses_the_database(self):
        db = self.path("foreign.db")
        with sqlite3.connect(db) as c:
            c.execute("CREATE TABLE invoices (id INTEGER PRIMARY KEY, total REAL)")
        for attempt in range(5):
            code, out, err = run_serve_expecting_exit(["--port", "0", "--db", db], bound=5)
            self.assertEqual(code, 1, "attempt %d: kennel serve did not exit within 5 s "
                                      "after refusing the database:\n%s" % (attempt, err))


class DatabaseLockTest(KennelTestCase):

    def lock_files(self):
        return sorted(f for f in os.listdir(self.tmp) if f.endswith(".lock"))

    def test_a_second_server_is_refused_through_a_symlink_and_the_lock_goes_with_the_server(self):
        server = self.start_server(db="k.db")
        self.assertEqual(self.lock_files(), ["k.db.lock"])
        os.symlink(server.db, self.path("link.db"))
        os.mkdir(self.path("sub"))
        for other in (self.path("link.db"), os.path.join(self.tmp, "sub", "..", "k.db")):
            with self.subTest(other):
                code, out, err = run_serve_expecting_exit(["--port", "0", "--db", other], bound=10)
                self.assertEqual(code, 1, err)
                self.assertIn("in use by another Kennel process (pid %d)" % server.proc.pid, err)
                r = run_cli(["migrate", "--db", other])
                self.assertEqual(r.returncode, 1, r.stderr)
                self.assertIn("in use", r.stderr)
        self.assertEqual(self.lock_files(), ["k.db.lock"])
        self.assertEqual(server.stop(), 0)
        self.assertEqual(self.lock_files(), [])

    def test_commands_beside_a_server_do_not_migrate_its_database(self):
        # An older Kennel's server on its file: `kennel admin list-keys`
        # migrated the file under it (which then refused to start on it
        # again), and `kennel predict` failed on a missing column.
        server = self.start_server(db="old.db")
        rw = sqlite3.connect(server.db, timeout=10)
        try:
            with rw:  # the file as the Kennel before the newest migration left it
                newest = rw.execute("PRAGMA user_version").fetchone()[0]
                rw.execute("DELETE FROM schema_migrations WHERE number = ?", (newest,))
                rw.execute("PRAGMA user_version = %d" % (newest - 1))
        finally:
            rw.close()
        r = run_cli(["admin", "revoke-key", "--id", "1", "--db", server.db])
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        self.assertIn("needs 1 schema migration(s) first", r.stderr)
        self.assertIn("in use by another Kennel process (pid %d)" % server.proc.pid, r.stderr)
        r = run_cli(["predict", "any", "--db", server.db], input="")
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        self.assertIn("is from an older Kennel (1 schema migration(s) pending): run kennel "
                      "migrate", r.stderr)
        with open_db(server.db) as c:
            self.assertEqual(c.execute("PRAGMA user_version").fetchone()[0], newest - 1)
        self.assertEqual(server.stop(), 0)
        # list-keys only reads, so it never migrates, even with the database
        # to itself: a look at the keys before the upgrade's backup migrated
        # the file for good, and the older binary refused it.
        r = run_cli(["admin", "list-keys", "--db", server.db])
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        self.assertIn("is from an older Kennel (1 schema migration(s) pending): back it up", r.stderr)
        with open_db(server.db) as c:
            self.assertEqual(c.execute("PRAGMA user_version").fetchone()[0], newest - 1)
        # An empty file is no older Kennel's (list-keys said it was).
        open(self.path("nothing.db"), "w").close()
        r = run_cli(["admin", "list-keys", "--db", self.path("nothing.db")])
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        self.assertIn("has no Kennel schema (an empty database)", r.stderr)
        self.assertEqual(os.path.getsize(self.path("nothing.db")), 0)
        # An empty file is no older Kennel's.
        empty = self.path("empty.db")
        open(empty, "w").close()
        r = run_cli(["predict", "any", "--db", empty], input="")
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        self.assertIn("has no Kennel schema (an empty database)", r.stderr)

    def test_no_lock_file_is_left_by_a_refused_file_or_a_failed_start(self):
        text = self.path("passwd")
        with open(text, "w") as f:
            f.write("root:x:0:0:root:/root:/bin/bash\n")
        for args in (["migrate", "--db", text], ["train", "m", "--db", text],
                     ["import", self.path("none.ndjson"), "--db", text]):
            with self.subTest(args):
                r = run_cli(args)
                self.assertEqual(r.returncode, 1, r.stderr)
        self.assertIn("is not an SQLite database", run_cli(["migrate", "--db", text]).stderr)
        code, out, err = run_serve_expecting_exit(["--port", "0", "--db", text], bound=10)
        self.assertEqual(code, 1, err)
        self.assertIn("is not an SQLite database", err)
        # An SQLite file that is not Kennel's: refused after the lock was taken.
        foreign = self.path("foreign.db")
        with sqlite3.connect(foreign) as c:
            c.execute("CREATE TABLE invoices (id INTEGER PRIMARY KEY)")
        code, out, err = run_serve_expecting_exit(["--port", "0", "--db", foreign], bound=10)
        self.assertEqual(code, 1, err)
        self.assertEqual(run_cli(["migrate", "--db", foreign]).returncode, 1)
        # A new database in a missing directory.
        r = run_cli(["migrate", "--db", self.path("nowhere/k.db")])
        self.assertEqual(r.returncode, 1, r.stderr)
        # Commands that succeed leave none either.
        self.assertEqual(run_cli(["migrate", "--db", self.path("ok.db")]).returncode, 0)
        self.assertEqual(self.lock_files(), [])
        with open(text) as f:
            self.assertEqual(f.read(), "root:x:0:0:root:/root:/bin/bash\n")


class ForeignDatabaseTest(KennelTestCase):

    def test_a_foreign_database_is_refused_unchanged(self):
        foreign = self.path("other.db")
        c = sqlite3.connect(foreign)
        c.execute("CREATE TABLE t (x)")
        c.commit()
        c.close()
        code, out, err = run_serve_expecting_exit(["--port", "0", "--db", foreign], bound=10)
        self.assertEqual(code, 1, err)
        self.assertIn("not a Kennel database", err)
        self.assertNotIn("listening", out)
        facts = self.path("facts.ndjson")
        with open(facts, "w") as f:
            f.write(json.dumps(fact("s", "e", {"x": 1})) + "\n")
        for args in (["migrate"], ["import", facts], ["train", "m"], ["admin", "list-keys"]):
            with self.subTest(args):
                r = run_cli(args + ["--db", foreign])
                self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
                self.assertIn("not a Kennel database", r.stderr)
        c = sqlite3.connect(foreign)
        try:
            self.assertEqual(c.execute("PRAGMA journal_mode").fetchone()[0], "delete")
            self.assertEqual(c.execute("SELECT name FROM sqlite_schema").fetchall(), [("t",)])
        finally:
            c.close()


class AdminTest(KennelTestCase):

    def test_admin_commands_refuse_a_database_that_does_not_exist(self):
        for args in (["list-keys"], ["set-password", "--password", "long-enough-pw"],
                     ["create-key", "--name", "app", "--scopes", "ingest"],
                     ["revoke-key", "--id", "1"]):
            with self.subTest(args):
                db = self.path("typo.db")
                r = run_cli(["admin"] + args + ["--db", db])
                self.assertEqual(r.returncode, 1, r.stderr)
                self.assertIn("no such database " + db, r.stderr)
                self.assertEqual(os.listdir(self.tmp), [])
        # An existing one works.
        db = self.path("k.db")
        self.assertEqual(run_cli(["migrate", "--db", db]).returncode, 0)
        r = run_cli(["admin", "set-password", "--password", "long-enough-pw", "--db", db])
        self.assertEqual(r.returncode, 0, r.stderr)
        # It works, and says who else can read a password on a command line.
        self.assertIn("warning: a password given with --password can be read by other users",
                      r.stderr)
        r = run_cli(["admin", "set-password", "--db", db], input="another-long-pw\n")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertNotIn("warning", r.stderr)
        r = run_cli(["admin", "list-keys", "--db", db])
        self.assertEqual(r.returncode, 0, r.stderr)

    def test_set_password_refuses_an_unknown_user_unless_told_to_create_it(self):
        db = self.path("k.db")
        self.assertEqual(run_cli(["migrate", "--db", db]).returncode, 0)
        r = run_cli(["admin", "set-password", "--user", "nosuch", "--password", "longenough",
                     "--db", db])
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        self.assertIn("no user named nosuch", r.stderr)
        with open_db(db) as c:
            self.assertEqual(c.execute("SELECT count(*) FROM users").fetchone()[0], 0)
        r = run_cli(["admin", "set-password", "--user", "nosuch", "--password", "longenough",
                     "--create", "--db", db])
        self.assertEqual(r.returncode, 0, r.stderr)
        with open_db(db) as c:
            self.assertEqual([x[0] for x in c.execute("SELECT name FROM users")], ["nosuch"])

    def test_a_short_admin_password_from_the_environment_is_refused(self):
        code, out, err = run_serve_expecting_exit(
            ["--port", "0", "--db", self.path("k.db")],
            env={"KENNEL_ADMIN_PASSWORD": "short"}, bound=10)
        self.assertEqual(code, 1, err)
        self.assertIn("KENNEL_ADMIN_PASSWORD has 5 characters; a password needs at least 8", err)

    def test_set_password_on_a_terminal_asks_and_does_not_echo(self):
        # It echoed the password and asked nothing.
        db = self.path("ttypw.db")
        self.assertEqual(run_cli(["migrate", "--db", db]).returncode, 0)
        code, seen = run_on_terminal(["admin", "set-password", "--db", db], all_streams=True,
                                     reply=(b"new password for admin: ", b"SECRETpassword1\n"))
        typed = b"new password for admin: " in seen
        self.assertTrue(typed, seen)
        self.assertEqual(code, 0, seen)
        self.assertIn(b"password set for admin", seen)
        self.assertNotIn(b"SECRETpassword1", seen)

    def test_a_signal_during_the_password_prompt_gives_the_terminal_its_echo_back(self):
        # Ctrl-C at the prompt ended the process with echo still off, so the
        # shell afterwards showed nothing that was typed.
        import termios
        db = self.path("ttysig.db")
        self.assertEqual(run_cli(["migrate", "--db", db]).returncode, 0)
        master, slave = pty.openpty()
        self.addCleanup(os.close, master)
        self.addCleanup(os.close, slave)
        self.assertTrue(termios.tcgetattr(slave)[3] & termios.ECHO)
        p = subprocess.Popen([KENNEL_BIN, "admin", "set-password", "--db", db],
                             stdin=slave, stdout=slave, stderr=slave, env=kennel_env())
        self.addCleanup(lambda: p.poll() is None and (p.kill(), p.wait(10)))
        seen = b""
        deadline = time.monotonic() + 30
        while b"new password for admin: " not in seen and time.monotonic() < deadline:
            if select.select([master], [], [], 0.1)[0]:
                seen += os.read(master, 65536)
        self.assertIn(b"new password for admin: ", seen)
        # The prompt is shown once echo is off (or about to be); wait until it is.
        wait_deadline = time.monotonic() + 10
        while termios.tcgetattr(slave)[3] & termios.ECHO and time.monotonic() < wait_deadline:
            time.sleep(0.01)
        self.assertFalse(termios.tcgetattr(slave)[3] & termios.ECHO, "echo off while asking")
        p.send_signal(signal.SIGINT)
        self.assertEqual(p.wait(30), -signal.SIGINT)
        self.assertTrue(termios.tcgetattr(slave)[3] & termios.ECHO, "echo is back")

    def test_set_password_drops_a_crlf_lines_cr_and_refuses_unusable_names(self):
        db = self.path("crlf.db")
        self.assertEqual(run_cli(["migrate", "--db", db]).returncode, 0)
        r = run_cli(["admin", "set-password", "--db", db], input="crlf-password1\r\n")
        self.assertEqual(r.returncode, 0, r.stderr)
        server = self.start_server(db="crlf.db")
        c = Client(server.port, auth="Basic " + base64.b64encode(b"admin:crlf-password1").decode())
        self.addCleanup(c.close)
        self.assertEqual(c.get("/v1/streams").status, 200)
        server.stop()
        # Basic auth splits at the first ':'; '' was a raw CHECK failure.
        for user in ("a:b", "", "new\nline"):
            r = run_cli(["admin", "set-password", "--user", user, "--password", "longenough",
                         "--create", "--db", db])
            self.assertEqual(r.returncode, 2, r.stderr)
            self.assertIn("a user name is 1-64 bytes", r.stderr)

    def test_an_admin_password_from_the_environment_seeds_only_a_new_database(self):
        # A changed value on a later start was silently ignored: the old
        # password still worked and the new one got 401.
        db = "seed.db"
        server = self.start_server(db=db, env={"KENNEL_ADMIN_PASSWORD": "first-password"})
        self.assertNotIn("KENNEL_ADMIN_PASSWORD is ignored", server.stderr())
        # Said once, when the variable made the user (nothing said so).
        created = 'created the admin user "admin" with the password in KENNEL_ADMIN_PASSWORD'
        self.assertIn(created, server.stderr())
        server.stop()
        server = self.start_server(db=db, env={"KENNEL_ADMIN_PASSWORD": "second-password"})
        self.assertIn("KENNEL_ADMIN_PASSWORD is ignored: this database has users already",
                      server.stderr())
        self.assertNotIn(created, server.stderr())
        first = Client(server.port, auth="Basic " + base64.b64encode(b"admin:first-password").decode())
        self.addCleanup(first.close)
        self.assertEqual(first.get("/v1/streams").status, 200)

    def test_active_keys_sharing_a_name_are_named_at_start(self):
        # Possible only in a database written before names were checked:
        # made here by hand, with a newline in the name that the log escapes.
        db = "dup.db"
        server = self.start_server(db=db)
        server.stop()
        conn = sqlite3.connect(server.db)
        try:
            with conn:
                for h in ("h1", "h2", "h3"):
                    conn.execute("INSERT INTO api_keys (name, prefix, key_hash, scopes, created_at,"
                                 " created_by) VALUES ('ops\nx', 'knl_000000', ?, 'read', 1,"
                                 " 'admin')", (h,))
                conn.execute("UPDATE api_keys SET revoked_at = 2, revoked_by = 'admin'"
                             " WHERE key_hash = 'h3'")
        finally:
            conn.close()
        server = self.start_server(db=db)
        lines = [l for l in server.stderr().splitlines() if "share the name" in l]
        self.assertEqual(len(lines), 1, server.stderr())
        self.assertRegex(lines[0], r'warn serve: active API keys \d+, \d+ share the name '
                                   r'"ops\\nx", so the history cannot tell which acted')
        self.assertEqual(self.client(server).get("/readyz").status, 200)

    def test_admin_without_an_action_says_so_and_exits_2(self):
        r = run_cli(["admin", "--db", self.path("k.db")])
        self.assertEqual(r.returncode, 2, r.stderr)
        self.assertIn("kennel admin: say which action: set-password, create-key, list-keys or "
                      "revoke-key", r.stderr)
        self.assertEqual(os.listdir(self.tmp), [])

    def test_a_mistyped_action_or_a_missing_key_id_touches_nothing(self):
        # An unknown action migrated the database for good before it was
        # refused; revoke-key without --id said "no active API key with id 0".
        db = self.path("k.db")
        self.assertEqual(run_cli(["migrate", "--db", db]).returncode, 0)
        with open(db, "rb") as f:
            before = f.read()
        r = run_cli(["admin", "frobnicate", "--db", db])
        self.assertEqual(r.returncode, 2, r.stderr)
        self.assertIn('unknown action "frobnicate"', r.stderr)
        r = run_cli(["admin", "revoke-key", "--db", db])
        self.assertEqual(r.returncode, 2, r.stderr)
        self.assertIn("say which key: revoke-key --id N", r.stderr)
        with open(db, "rb") as f:
            self.assertEqual(f.read(), before)


class MistakenArgumentsTest(KennelTestCase):

    def test_importing_a_directory_fails_and_stores_nothing(self):
        db = self.path("k.db")
        self.assertEqual(run_cli(["migrate", "--db", db]).returncode, 0)
        os.mkdir(self.path("dir"))
        r = run_cli(["import", self.path("dir"), "--db", db])
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        self.assertIn("is a directory", r.stderr)

    def test_importing_into_a_file_that_is_no_database_says_only_that(self):
        # The advice for a database another Kennel holds ("stop it, or send
        # the facts to its POST /v1/facts") was added to every refusal.
        notes = self.path("notes.db")
        with open(notes, "w") as f:
            f.write("hello, this is text\n" * 300)
        r = run_cli(["import", "-", "--db", notes], input=json.dumps(fact("s", "e", {"a": 1})) + "\n")
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertIn("is not an SQLite database", r.stderr)
        self.assertNotIn("POST /v1/facts", r.stderr)

    def test_import_says_when_reading_its_input_failed(self):
        # A read error ended the input as its end does: the import exited 0.
        db = self.path("k.db")
        self.assertEqual(run_cli(["migrate", "--db", db]).returncode, 0)
        fd = os.open(self.tmp, os.O_RDONLY)  # read() of a directory fails (EISDIR)
        try:
            r = subprocess.run([KENNEL_BIN, "import", "-", "--db", db, "--stream", "s"],
                               env=kennel_env(), stdin=fd, capture_output=True, text=True,
                               timeout=60)
        finally:
            os.close(fd)
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertIn("kennel import: reading standard input failed before its end", r.stderr)

    def test_import_reads_a_pipe(self):
        # A FIFO (as <(cat f) gives) cannot seek: the size probe for the
        # progress bar left the stream failed, and nothing was read (exit 0).
        db = self.path("k.db")
        self.assertEqual(run_cli(["migrate", "--db", db]).returncode, 0)
        for name, text, extra in (
                ("facts.ndjson", "".join(json.dumps(fact("s", "e%d" % i, {"a": i})) + "\n"
                                         for i in range(3)), []),
                ("facts.csv", "entity,a\nc1,1\nc2,2\nc3,3\n", ["--stream", "c"])):
            with self.subTest(name=name):
                fifo = self.path(name)
                os.mkfifo(fifo)
                writer = threading.Thread(target=lambda: open(fifo, "w").write(text))
                writer.start()
                r = run_cli(["import", fifo, "--db", db] + extra)
                writer.join(10)
                self.assertEqual(r.returncode, 0, r.stderr)
                self.assertIn("3 stored, 0 duplicates, 0 rejected", r.stderr)

    def test_train_names_an_unknown_model(self):
        db = self.path("k.db")
        self.assertEqual(run_cli(["migrate", "--db", db]).returncode, 0)
        r = run_cli(["train", "ghost", "--db", db])
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertIn('kennel train: no model named "ghost"', r.stderr)

    def test_train_on_a_missing_database_creates_nothing(self):
        r = run_cli(["train", "likes", "--db", self.path("nope.db")])
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertIn("no such database " + self.path("nope.db"), r.stderr)
        self.assertEqual(os.listdir(self.tmp), [])


class TrainInterruptedTest(KennelTestCase):

    def test_a_signal_cancels_the_job_and_stops_its_fit(self):
        # A slow fit (a forest of 3000 trees on the demo's posts), queued by
        # `kennel train`, stopped with SIGTERM once its process runs: the job
        # was left "running", and the next kennel serve trained it again.
        server = self.start_server(["--demo"])
        c = self.client(server)
        likes = c.get("/v1/models/likes").json()
        slow = dict(likes["definition"], algorithm="forest",
                    params={"num_trees": 3000, "min_samples_per_leaf": 1})
        r = c.request("PUT", "/v1/models/slow", json_body=slow)
        self.assertIn(r.status, (200, 201), r)
        server.stop()
        db = server.db
        p = subprocess.Popen([KENNEL_BIN, "train", "slow", "--db", db], env=kennel_env(),
                             stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
        self.addCleanup(lambda: p.poll() is None and (p.kill(), p.wait(10)))
        conn = open_db(db)
        self.addCleanup(conn.close)
        child = None
        deadline = time.monotonic() + 60
        while child is None:
            self.assertLess(time.monotonic(), deadline, "the fit never started")
            self.assertIsNone(p.poll(), "kennel train ended before its fit started")
            rows = conn.execute(
                "SELECT l.message FROM job_log l JOIN jobs j ON j.id = l.job"
                " WHERE j.model = 'slow' AND l.message LIKE 'training process % started%'"
            ).fetchall()
            if rows:
                child = int(rows[0][0].split()[2])
            else:
                time.sleep(0.05)
        p.send_signal(signal.SIGTERM)
        out, err = p.communicate(timeout=30)
        self.assertEqual(p.returncode, 128 + signal.SIGTERM, out + err)
        self.assertIn("cancelled", out, out + err)
        state, error = conn.execute(
            "SELECT state, error FROM jobs WHERE model = 'slow'").fetchone()
        self.assertEqual(state, "cancelled", error)
        log = [m for (m,) in conn.execute(
            "SELECT l.message FROM job_log l JOIN jobs j ON j.id = l.job WHERE j.model = 'slow'")]
        self.assertTrue(any("received SIGTERM" in m for m in log), log)
        self.assertFalse(os.path.exists("/proc/%d" % child), "the fit's process is still there")
        self.assertFalse(os.path.exists(db + ".lock"))


def export_facts(test, db, *extra):
    r = run_cli(["export", "--db", db] + list(extra))
    test.assertEqual(r.returncode, 0, r.stderr)
    return [json.loads(line) for line in r.stdout.splitlines() if line.strip()]


class ImportExportTest(KennelTestCase):

    def write(self, name, text):
        path = self.path(name)
        with open(path, "w", newline="") as f:
            f.write(text)
        return path

    def test_an_interrupted_import_stores_what_it_read_and_says_so(self):
        # It ended at once, saying nothing of what it had stored; and from a
        # FIFO (or <(...)) a stop signal was not seen until the writer closed.
        for sig, source in ((signal.SIGINT, "stdin"), (signal.SIGTERM, "stdin"),
                            (signal.SIGTERM, "fifo"), (signal.SIGHUP, "fifo")):
            with self.subTest(sig=sig.name, source=source):
                db = self.path("interrupted-%s-%s.db" % (sig.name, source))
                fifo = self.path("in-%s.fifo" % sig.name)
                if source == "fifo":
                    os.mkfifo(fifo)
                p = subprocess.Popen([KENNEL_BIN, "import", "--db", db, "--format", "ndjson",
                                      "-" if source == "stdin" else fifo],
                                     stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE, env=kennel_env())
                writer = None
                try:
                    lines = "".join(json.dumps(fact("s", "e%d" % i, {"x": i},
                                                    time_="2026-11-20T10:00:00Z")) + "\n"
                                    for i in range(7))
                    if source == "fifo":
                        # Opened once the import has opened its end (bounded).
                        deadline = time.monotonic() + 30
                        while writer is None:
                            try:
                                writer = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
                            except OSError:
                                if time.monotonic() > deadline or p.poll() is not None:
                                    raise
                                time.sleep(0.01)
                        os.write(writer, lines.encode())
                    else:
                        p.stdin.write(lines.encode())
                        p.stdin.flush()
                    # The input stays open: the import is blocked reading it.
                    deadline = time.monotonic() + 30
                    while not os.path.exists(db) and time.monotonic() < deadline:
                        time.sleep(0.01)
                    # Until it catches the signal (a slow start, under the
                    # sanitizers and other tests, was killed by it instead).
                    while not catches(p.pid, sig) and time.monotonic() < deadline:
                        time.sleep(0.01)
                    time.sleep(0.3)
                    p.send_signal(sig)  # by its PID
                    _, err = p.communicate(timeout=30)
                finally:
                    if p.poll() is None:
                        p.kill()
                        p.communicate(timeout=30)
                    if writer is not None:
                        os.close(writer)  # still open: the import stopped without it
                err = err.decode()
                self.assertEqual(p.returncode, 128 + sig, err)
                self.assertIn("kennel import: 7 stored, 0 duplicates, 0 rejected", err)
                self.assertIn("interrupted by %s after line 7" % sig.name, err)
                conn = sqlite3.connect(db)
                try:
                    self.assertEqual(conn.execute("SELECT count(*) FROM facts").fetchone()[0], 7)
                finally:
                    conn.close()

    def test_ndjson_import_then_export_round_trips(self):
        facts = [fact("posts", "p%d" % i, {"length": 10 * i, "breed": "corgi", "tags": ["a", "b"]},
                      time_="2026-11-20T10:%02d:00Z" % i) for i in range(20)]
        facts.append(fact("likes", "p1", {"likes": {"lower": 27, "upper": 33}},
                          time_="2026-11-21T10:00:00Z", key="likes-p1"))
        facts.append({"entity": "p2", "data": {"likes": 5}, "time": "2026-11-21T11:00:00Z"})
        path = self.write("in.ndjson", "".join(json.dumps(f) + "\n" for f in facts))
        db = self.path("k.db")
        r = run_cli(["import", path, "--db", db, "--stream", "likes"])
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("22 stored, 0 duplicates, 0 rejected", r.stderr)

        out = export_facts(self, db)
        self.assertEqual(len(out), 22)
        self.assertEqual([o["id"] for o in out], sorted(o["id"] for o in out))  # log order
        for sent, got in zip(facts, out):
            self.assertEqual(got["stream"], sent.get("stream", "likes"))  # --stream filled it
            self.assertEqual(got["entity"], sent["entity"])
            self.assertEqual(got["data"], sent["data"])
            self.assertEqual(got["time"], sent["time"])
        self.assertEqual(out[20]["idempotency_key"], "likes-p1")
        # Export of one stream, to a file.
        outfile = self.path("posts.ndjson")
        r = run_cli(["export", "--db", db, "--stream", "posts", "--out", outfile])
        self.assertEqual(r.returncode, 0, r.stderr)
        with open(outfile) as f:
            posts = [json.loads(l) for l in f]
        self.assertEqual(len(posts), 20)
        self.assertTrue(all(p["stream"] == "posts" for p in posts))
        # A stream name no fact can have is refused (it exported 0 facts, exit 0).
        r = run_cli(["export", "--db", db, "--stream", "a/b"])
        self.assertEqual(r.returncode, 2, r.stderr)
        self.assertIn('kennel export: --stream "a/b" must be 1-128 characters', r.stderr)
        self.assertEqual(r.stdout, "")

        # The export imports elsewhere as the same facts (keys preserved)...
        # export lines carry id/ingest_time, which a fact may not have: strip.
        clean = [{k: v for k, v in o.items() if k in ("stream", "entity", "time", "data",
                                                      "idempotency_key", "corrects")}
                 for o in out]
        path2 = self.write("again.ndjson", "".join(json.dumps(c) + "\n" for c in clean))
        db2 = self.path("k2.db")
        r = run_cli(["import", path2, "--db", db2])
        self.assertEqual(r.returncode, 0, r.stderr)
        out2 = export_facts(self, db2)
        strip = lambda o: {k: v for k, v in o.items() if k != "ingest_time"}
        self.assertEqual([strip(o) for o in out2], [strip(o) for o in out])
        # ... and importing into the same database again only finds duplicates.
        r = run_cli(["import", path2, "--db", db])
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("0 stored, 22 duplicates, 0 rejected", r.stderr)
        self.assertEqual(len(export_facts(self, db)), 22)

    def test_an_export_imports_as_is_with_its_keys_and_corrections(self):
        # A log with keys of both kinds and a correction, imported from a file
        # (its first fact gets id 1, the correction names it).
        src = [fact("posts", "p%d" % i, {"length": i, "breed": "pug"},
                    time_="2026-11-20T10:%02d:00Z" % i) for i in range(5)]
        src.append(fact("likes", "p1", {"likes": {"lower": 2, "upper": 4}},
                        time_="2026-11-21T10:00:00Z", key="likes-p1"))
        src.append(fact("posts", "p0", {"length": 99, "breed": "pug"},
                        time_="2026-11-20T10:00:00Z", corrects=1))
        db = self.path("k.db")
        r = run_cli(["import", self.write("src.ndjson", "".join(json.dumps(f) + "\n" for f in src)),
                     "--db", db])
        self.assertEqual(r.returncode, 0, r.stderr)
        exported = self.path("e.ndjson")
        r = run_cli(["export", "--db", db, "--out", exported])
        self.assertEqual(r.returncode, 0, r.stderr)
        with open(exported) as f:
            out = [json.loads(l) for l in f]
        self.assertEqual(out[6]["corrects"], out[0]["id"])

        # Into a fresh database: every line, the same log but for ingest times.
        r = run_cli(["import", exported, "--db", self.path("new.db")])
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("7 stored, 0 duplicates, 0 rejected", r.stderr)
        strip = lambda o: {k: v for k, v in o.items() if k != "ingest_time"}
        self.assertEqual([strip(o) for o in export_facts(self, self.path("new.db"))],
                         [strip(o) for o in out])

        # Into a database that already holds facts: ids move, and the
        # correction follows the fact it corrects to its new id.
        busy = self.path("busy.db")
        r = run_cli(["import", self.write("other.ndjson", json.dumps(fact("s", "x", {"v": 1})) +
                                          "\n" + json.dumps(fact("s", "y", {"v": 2})) + "\n"),
                     "--db", busy])
        self.assertEqual(r.returncode, 0, r.stderr)
        r = run_cli(["import", exported, "--db", busy, "--batch", "3"])
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("7 stored", r.stderr)
        got = export_facts(self, busy)
        self.assertEqual(len(got), 9)
        by_id = {o["id"]: o for o in got}
        correction = got[-1]
        self.assertEqual(correction["data"], {"length": 99, "breed": "pug"})
        self.assertEqual(by_id[correction["corrects"]]["idempotency_key"], out[0]["idempotency_key"])
        self.assertEqual(by_id[correction["corrects"]]["entity"], "p0")

        # Only an id's and ingest time's form is checked.
        bad = dict(out[0], id="one")
        r = run_cli(["import", self.write("bad.ndjson", json.dumps(bad) + "\n"),
                     "--db", self.path("bad.db")])
        self.assertEqual(r.returncode, 3, r.stderr)
        self.assertRegex(r.stderr, r"(?m)^line 1: rejected id: must be a positive integer")

        # The HTTP API keeps refusing both fields.
        server = self.start_server()
        c = self.client(server)
        for extra in ({"id": 7}, {"ingest_time": "2026-11-20T10:00:00Z"}):
            with self.subTest(extra):
                self.assertErrorShape(c.post_json("/v1/facts", dict(fact("s", "e", {"x": 1}), **extra)),
                                      400, field=list(extra)[0], message="unknown field")

    def test_a_reimport_of_facts_without_times_is_said_to_store_them_again(self):
        # Stamped with the time of import, the same line is a new fact each
        # run; the import says so rather than doubling the log without a word.
        db = self.path("k.db")
        untimed = self.write("untimed.csv", "entity,likes\r\np1,3\r\np2,4\r\n")
        for run in (1, 2):
            r = run_cli(["import", untimed, "--db", db, "--stream", "likes"])
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertIn("2 stored, 0 duplicates", r.stderr)
            self.assertIn("2 of the facts stored had no time and no idempotency_key", r.stderr)
            self.assertIn("--time-column", r.stderr)
        self.assertEqual(len(export_facts(self, db, "--stream", "likes")), 4)
        # With times, or keys, a second run stores nothing and says nothing of it.
        lines = [json.dumps(fact("timed", "a", {"x": 1}, time_="2026-11-20T10:00:00Z")),
                 json.dumps({"stream": "keyed", "entity": "b", "data": {"x": 2},
                             "idempotency_key": "b-1"}),
                 json.dumps({"stream": "loose", "entity": "c", "data": {"x": 3}})]
        path = self.write("mixed.ndjson", "\n".join(lines) + "\n")
        r = run_cli(["import", path, "--db", db])
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("3 stored", r.stderr)
        self.assertIn("1 of the facts stored had no time", r.stderr)
        self.assertNotIn("--time-column", r.stderr)  # not a CSV file
        r = run_cli(["import", self.write("again.ndjson", "\n".join(lines[:2]) + "\n"),
                     "--db", db])
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("0 stored, 2 duplicates", r.stderr)
        self.assertNotIn("had no time", r.stderr)

    def test_csv_import_with_columns_and_quoted_fields(self):
        rows = [
            ["post", "when", "caption", "likes", "score", "photo", "note"],
            ["p1", "2026-11-20T10:00:00Z", "good boy, very good", "34", "2.5", "true", ""],
            ["p2", "2026-11-20T11:00:00+01:00", 'she said "walk", then left', "7", "-1", "false",
             "x"],
            ["p3", "2026-11-20", "line one\nline two", "0", "1e3", "true", "a,b,c"],
        ]
        buf = io.StringIO()
        csv.writer(buf, lineterminator="\r\n").writerows(rows)
        text = buf.getvalue()
        self.assertIn('"good boy, very good"', text)
        self.assertIn('""walk""', text)
        path = self.write("posts.csv", text)
        db = self.path("k.db")
        r = run_cli(["import", path, "--db", db, "--stream", "posts", "--entity-column", "post",
                     "--time-column", "when"])
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("3 stored", r.stderr)
        out = export_facts(self, db, "--stream", "posts")
        self.assertEqual(len(out), 3)
        by_entity = {o["entity"]: o for o in out}
        self.assertEqual(by_entity["p1"]["time"], "2026-11-20T10:00:00Z")
        self.assertEqual(by_entity["p1"]["data"],
                         {"caption": "good boy, very good", "likes": 34, "score": 2.5,
                          "photo": True})  # the empty "note" is absent
        self.assertEqual(by_entity["p2"]["time"], "2026-11-20T10:00:00Z")
        self.assertEqual(by_entity["p2"]["data"],
                         {"caption": 'she said "walk", then left', "likes": 7, "score": -1,
                          "photo": False, "note": "x"})
        self.assertEqual(by_entity["p3"]["time"], "2026-11-20T00:00:00Z")
        self.assertEqual(by_entity["p3"]["data"]["caption"], "line one\nline two")
        self.assertEqual(by_entity["p3"]["data"]["note"], "a,b,c")
        self.assertEqual(by_entity["p3"]["data"]["score"], 1000)
        for o in out:
            self.assertNotIn("post", o["data"])  # entity and time columns are not data
            self.assertNotIn("when", o["data"])
        # Importing the same CSV again stores nothing new.
        r = run_cli(["import", path, "--db", db, "--stream", "posts", "--entity-column", "post",
                     "--time-column", "when"])
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("0 stored, 3 duplicates", r.stderr)

    def test_csv_integers_past_int64_are_read_as_numbers_not_clamped(self):
        # strtoll's ERANGE went unchecked: 1e20 was stored as 2^63-1.
        path = self.write("big.csv", "entity,big,small,fits\r\n"
                          "e,99999999999999999999,-99999999999999999999,9223372036854775807\r\n")
        db = self.path("k.db")
        r = run_cli(["import", path, "--db", db, "--stream", "s", "--entity-column", "entity"])
        self.assertEqual(r.returncode, 0, r.stderr)
        data = export_facts(self, db)[0]["data"]
        self.assertEqual((data["big"], data["small"]), (1e20, -1e20), data)
        self.assertEqual(data["fits"], 9223372036854775807, data)

    def test_csv_values_keep_what_they_say(self):
        # A spreadsheet's byte order mark hid the first column's name; a zip
        # code lost its zeros; an unsigned 64-bit integer became a double;
        # 1e999 was stored as null; the last row, without a newline, was
        # reported on the line before it.
        text = ("\ufeffid,zip,card,x\r\n"
                "p1,00501,12345678901234567890,1.5\r\n"
                "p2,02134,7,1e999\r\n"
                "p3,0,-0,2")
        path = self.path("bom.csv")
        with open(path, "w", encoding="utf-8", newline="") as f:
            f.write(text)
        db = self.path("k.db")
        r = run_cli(["import", path, "--db", db, "--stream", "s", "--entity-column", "id"])
        self.assertEqual(r.returncode, 3, r.stderr)
        self.assertIn("2 stored, 0 duplicates, 1 rejected", r.stderr)
        self.assertRegex(r.stderr, r"(?m)^line 3: rejected data\.x: 1e999 is beyond the range")
        got = {o["entity"]: o["data"] for o in export_facts(self, db)}
        self.assertEqual(got, {"p1": {"zip": "00501", "card": 12345678901234567890, "x": 1.5},
                               "p3": {"zip": 0, "card": 0, "x": 2}})
        # Spaces around a cell keep it text on either side (" 5" was 5, "5 " text).
        spaced = self.write("spaced.csv", "id,a,b,c\np1, 5,5 ,5\n")
        r = run_cli(["import", spaced, "--db", db, "--stream", "sp", "--entity-column", "id"])
        self.assertEqual(r.returncode, 0, r.stderr)
        got = [o["data"] for o in export_facts(self, db) if o["stream"] == "sp"]
        self.assertEqual(got, [{"a": " 5", "b": "5 ", "c": 5}])
        bad = self.write("short.csv", "id,a\np1,1\np2,1,2")
        r = run_cli(["import", bad, "--db", db, "--stream", "t", "--entity-column", "id"])
        self.assertEqual(r.returncode, 3, r.stderr)
        self.assertRegex(r.stderr, r"(?m)^line 3: rejected: has 3 columns")

    def test_an_exported_correction_never_lands_on_another_fact(self):
        # Line 2 is refused; line 4 corrects it. Its id 2 was then taken as
        # this database's fact 2 (entity c's): the correction was stored on
        # an unrelated fact. So was one naming a fact the file does not hold.
        lines = [
            {"id": 1, "stream": "s", "entity": "a", "time": "2026-01-01T00:00:00Z",
             "data": {"likes": 1}},
            {"id": 2, "stream": "s", "entity": "b", "time": "2026-01-01T00:00:00Z",
             "data": {"likes": {"lower": 5, "upper": 2}}},
            {"id": 3, "stream": "s", "entity": "c", "time": "2026-01-01T00:00:00Z",
             "data": {"likes": 3}},
            {"id": 4, "stream": "s", "entity": "b", "time": "2026-01-01T00:00:00Z",
             "data": {"likes": 4}, "corrects": 2},
            {"id": 9, "stream": "s", "entity": "d", "time": "2026-01-01T00:00:00Z",
             "data": {"likes": 9}, "corrects": 7},
        ]
        path = self.write("c.ndjson", "".join(json.dumps(l) + "\n" for l in lines))
        db = self.path("k.db")
        r = run_cli(["import", path, "--db", db])
        self.assertEqual(r.returncode, 3, r.stderr)
        self.assertIn("2 stored, 0 duplicates, 3 rejected", r.stderr)
        self.assertRegex(r.stderr, r"(?m)^line 4: rejected corrects: the fact it corrects \(id 2 "
                                   r"in the file\) was not imported")
        self.assertRegex(r.stderr, r"(?m)^line 5: rejected corrects: the fact it corrects \(id 7 "
                                   r"where the file came from\) is not in the file before it")
        got = export_facts(self, db)
        self.assertEqual([(o["entity"], o.get("corrects")) for o in got], [("a", None), ("c", None)])

    def test_an_id_named_twice_in_a_file_is_refused(self):
        # Two exports joined: the second "id 1" (entity b) silently took over
        # the id, and the correction meant for a's fact landed on b's.
        lines = [
            {"id": 1, "stream": "s", "entity": "a", "time": "2026-01-01T00:00:00Z",
             "data": {"likes": 1}},
            {"id": 1, "stream": "s", "entity": "b", "time": "2026-01-01T00:00:00Z",
             "data": {"likes": 2}},
            {"id": 2, "stream": "s", "entity": "a", "time": "2026-01-01T00:00:00Z",
             "data": {"likes": 3}, "corrects": 1},
        ]
        path = self.write("twice.ndjson", "".join(json.dumps(l) + "\n" for l in lines))
        db = self.path("k.db")
        r = run_cli(["import", path, "--db", db])
        self.assertEqual(r.returncode, 3, r.stderr)
        self.assertIn("2 stored, 0 duplicates, 1 rejected", r.stderr)
        self.assertRegex(r.stderr, r"(?m)^line 2: rejected id: id 1 was given by line 1 already")
        got = export_facts(self, db)
        self.assertEqual([(o["entity"], o["data"]["likes"]) for o in got], [("a", 1), ("a", 3)])
        self.assertEqual(got[1]["corrects"], got[0]["id"])

    def test_import_reports_bad_lines_by_number_and_exits_3(self):
        lines = [
            json.dumps(fact("s", "a", {"x": 1})),                # 1 ok
            '{"stream":"s","entity":"b","data":{"x":2}',         # 2 malformed
            "",                                                  # 3 blank
            json.dumps({"stream": "s", "data": {"x": 3}}),       # 4 no entity
            json.dumps(fact("s", "d", {"x": {"lower": 5, "upper": 1}})),  # 5 lower > upper
            json.dumps(fact("s", "e", {"x": 5}, time_="soon")),  # 6 bad time
            json.dumps(fact("s", "f", {"x": 6}, corrects=424242)),  # 7 store refuses
            json.dumps(fact("s", "g", {"x": 7})),                # 8 ok
            '{"stream":"s","entity":"h","data":{"x":1,"x":2}}',  # 9 a key twice
            # 10 a key twice in an export's line (read once more for its id)
            '{"id":5,"stream":"s","entity":"i","data":{"y":1,"y":2}}',
        ]
        path = self.write("bad.ndjson", "\n".join(lines) + "\n")
        db = self.path("k.db")
        r = run_cli(["import", path, "--db", db])
        self.assertEqual(r.returncode, 3, (r.stdout, r.stderr))
        self.assertIn("2 stored, 0 duplicates, 7 rejected", r.stderr)
        self.assertRegex(r.stderr, r"(?m)^line 2: rejected: malformed JSON")
        self.assertRegex(r.stderr, r'(?m)^line 9: rejected data\.x: the key "x" appears twice')
        self.assertRegex(r.stderr, r'(?m)^line 10: rejected data\.y: the key "y" appears twice')
        self.assertRegex(r.stderr, r"(?m)^line 4: rejected entity: missing")
        self.assertRegex(r.stderr, r"(?m)^line 5: rejected data\.x: .*greater than upper")
        self.assertRegex(r.stderr, r"(?m)^line 6: rejected time: ")
        self.assertRegex(r.stderr, r"(?m)^line 7: rejected corrects: ")
        self.assertNotRegex(r.stderr, r"(?m)^line [138]:")
        self.assertEqual(sorted(o["entity"] for o in export_facts(self, db)), ["a", "g"])

    def test_csv_rows_with_the_wrong_number_of_columns_are_rejected_by_line(self):
        text = "entity,likes\r\np1,3\r\np2,4,extra\r\np3\r\n\r\np4,\"5\"\r\n"
        path = self.write("l.csv", text)
        db = self.path("k.db")
        r = run_cli(["import", path, "--db", db, "--stream", "likes"])
        self.assertEqual(r.returncode, 3, r.stderr)
        self.assertRegex(r.stderr, r"(?m)^line 3: rejected: has 3 columns; the header has 2")
        self.assertRegex(r.stderr, r"(?m)^line 4: rejected: has 1 columns")
        self.assertIn("2 stored", r.stderr)
        self.assertEqual({o["entity"]: o["data"] for o in export_facts(self, db)},
                         {"p1": {"likes": 3}, "p4": {"likes": 5}})
        # A quote never closed takes the rest of the file into one cell: said
        # as such, at the line where the record starts ("has 2 columns").
        path = self.write("q.csv", 'entity,likes\np5,6\np6,"7\np7,8\np8,9\n')
        r = run_cli(["import", path, "--db", db, "--stream", "likes"])
        self.assertEqual(r.returncode, 3, r.stderr)
        self.assertRegex(r.stderr, r"(?m)^line 3: rejected: a quoted cell is never closed: every "
                                   r"line from here to the end of the file was read as one record")
        self.assertIn("1 stored", r.stderr)

    # A Latin-1 cell ended the import with an uncaught exception (exit 134,
    # the batch read so far lost); a column named twice kept the last one's
    # value without a word.
    def test_csv_text_not_utf8_is_rejected_by_line_and_a_repeated_column_refused(self):
        path = self.path("latin1.csv")
        with open(path, "wb") as f:
            f.write(b"entity,name,when\r\np1,cafe,x\r\np2,caf\xe9,x\r\np\xe9,a,x\r\n"
                    b"p4,\x01caf\xe9,x\r\np5,ok,x\r\n")
        db = self.path("k.db")
        r = run_cli(["import", path, "--db", db, "--stream", "people"])
        self.assertEqual(r.returncode, 3, r.stderr)
        self.assertRegex(r.stderr, r"(?m)^line 3: rejected data\.name: is not UTF-8 text")
        self.assertRegex(r.stderr, r"(?m)^line 4: rejected entity: is not UTF-8 text")
        self.assertRegex(r.stderr, r"(?m)^line 5: rejected data\.name: is not UTF-8 text")
        self.assertIn("2 stored", r.stderr)
        self.assertEqual({o["entity"]: o["data"]["name"] for o in export_facts(self, db)},
                         {"p1": "cafe", "p5": "ok"})
        for name, header in [("twice", b"entity,a,a\r\np1,1,2\r\n"),
                             ("entity twice", b"entity,a,entity\r\np1,1,p2\r\n"),
                             ("header not UTF-8", b"entity,caf\xe9\r\np1,1\r\n")]:
            with self.subTest(name):
                path = self.path(name + ".csv")
                with open(path, "wb") as f:
                    f.write(header)
                r = run_cli(["import", path, "--db", db, "--stream", "dup"])
                self.assertEqual(r.returncode, 1, r.stderr)
                self.assertRegex(r.stderr, r"twice \(columns \d and 3\)|column 2 is not UTF-8")
        self.assertNotIn("dup", {o["stream"] for o in export_facts(self, db)})

    def test_import_usage_errors(self):
        csv_path = self.write("x.csv", "entity,v\r\ne,1\r\n")
        db = self.path("k.db")
        cases = [
            ("CSV needs --stream", ["import", csv_path, "--db", db], 2, "--stream"),
            ("missing entity column", ["import", csv_path, "--db", db, "--stream", "s",
                                       "--entity-column", "who"], 1, "who"),
            ("missing time column", ["import", csv_path, "--db", db, "--stream", "s",
                                     "--time-column", "when"], 1, "when"),
            ("missing file", ["import", self.path("nope.ndjson"), "--db", db], 1, "nope.ndjson"),
            ("no file named", ["import", "--db", db], 2, "FILE"),
            ("bad format", ["import", csv_path, "--db", db, "--format", "xml"], 2, "--format"),
            # -1 wrapped to 2^64-1: the whole file in one transaction.
            ("batch -1", ["import", csv_path, "--db", db, "--stream", "s", "--batch", "-1"], 2,
             "--batch must be between 1 and 100000"),
            ("batch 0", ["import", csv_path, "--db", db, "--stream", "s", "--batch", "0"], 2,
             "--batch must be between 1 and 100000"),
        ]
        for name, args, code, needle in cases:
            with self.subTest(name):
                r = run_cli(args)
                self.assertEqual(r.returncode, code, r.stderr)
                self.assertIn(needle, r.stderr)
        if os.path.exists(db):
            self.assertEqual(export_facts(self, db), [])

    def test_import_from_stdin(self):
        body = "".join(json.dumps(fact("s", "e%d" % i, {"i": i})) + "\n" for i in range(5))
        db = self.path("k.db")
        r = run_cli(["import", "-", "--db", db], input=body)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("5 stored", r.stderr)

    def test_import_draws_a_progress_bar_with_rate_only_on_a_terminal(self):
        body = "".join(json.dumps(fact("s", "e%d" % i, {"i": i})) + "\n" for i in range(3000))
        path = self.write("in.ndjson", body)
        code, seen = run_on_terminal(["import", path, "--db", self.path("tty.db")])
        text = seen.decode("utf-8", "replace")
        self.assertEqual(code, 0, text)
        self.assertIn("100.0%", text)
        self.assertIn("3000 facts", text)
        self.assertRegex(text, r"\d+ facts/s")
        self.assertIn("\r", text)  # redrawn in place
        # Not a terminal: no bar, just the summary.
        r = run_cli(["import", path, "--db", self.path("pipe.db")])
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertNotIn("facts/s", r.stderr)
        self.assertIn("3000 stored", r.stderr)

    def test_import_refuses_while_a_server_holds_the_database(self):
        server = self.start_server()
        path = self.write("in.ndjson", json.dumps(fact("s", "e", {"x": 1})) + "\n")
        r = run_cli(["import", path, "--db", server.db])
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertIn("in use by another Kennel process", r.stderr)
        self.assertIn(str(server.proc.pid), r.stderr)
        self.assertIn("POST /v1/facts", r.stderr)  # it says what to do instead
        c = self.client(server)
        self.assertEqual(c.get("/v1/streams").json()["streams"], [])
        # migrate, which writes, refuses too.
        r = run_cli(["migrate", "--db", server.db])
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertIn("in use", r.stderr)
        # Once the server is gone the import goes through.
        self.assertEqual(server.stop(), 0)
        r = run_cli(["import", path, "--db", server.db])
        self.assertEqual(r.returncode, 0, r.stderr)

    def test_an_export_that_cannot_be_written_says_why_and_leaves_no_file(self):
        # It printed "N facts" (the rows read) and exited 1 with no reason,
        # leaving a truncated file that passed for an export.
        db = self.path("k.db")
        r = run_cli(["import", "-", "--db", db],
                    input="".join(json.dumps(fact("s", "e%d" % i, {"pad": "p" * 200})) + "\n"
                                  for i in range(500)))
        self.assertEqual(r.returncode, 0, r.stderr)
        out = self.path("out.ndjson")
        # Above the 32 KiB of SQLite's -shm, below the export's 150 KB.
        r = run_cli_with_file_limit(["export", "--db", db, "--out", out], 65536)
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertRegex(r.stderr, r"kennel export: writing %s failed after \d+ facts: File too large;"
                         r" the incomplete file was removed" % re.escape(out))
        self.assertNotIn("500 facts", r.stderr)
        self.assertEqual([n for n in os.listdir(self.tmp) if n.startswith("out.ndjson")], [])
        # Standard output that cannot take it: said the same way.
        with open("/dev/full", "w") as full:  # Linux's always-full device
            p = subprocess.run([KENNEL_BIN, "export", "--db", db], stdout=full,
                               stderr=subprocess.PIPE, text=True, env=kennel_env(), timeout=60)
        self.assertEqual(p.returncode, 1, p.stderr)
        self.assertRegex(p.stderr, r"kennel export: writing standard output failed after \d+ "
                         r"facts: No space left on device\n")
        r = run_cli(["export", "--db", db, "--out", out])
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("500 facts", r.stderr)
        # A symbolic link (/dev/stdout among them) is written through, not
        # replaced by the file.
        link = self.path("link.ndjson")
        os.symlink(out, link)
        r = run_cli(["export", "--db", db, "--out", link])
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertTrue(os.path.islink(link))
        with open(out) as f:
            self.assertEqual(sum(1 for _ in f), 500)

    def test_an_output_that_is_the_database_is_refused_and_the_facts_stay(self):
        # --out naming the database, or its -wal, truncated it under the
        # running server: every fact gone, and the server said nothing.
        server = self.start_server()
        c = self.client(server)
        r = c.post_json("/v1/facts", [fact("s", "e%d" % i, {"i": i}) for i in range(6)])
        self.assertEqual(r.status, 200, r)
        link = self.path("link.db")
        os.link(server.db, link)
        for out in (server.db, server.db + "-wal", server.db + "-shm", server.db + ".lock", link,
                    os.path.join(os.path.dirname(server.db), ".", os.path.basename(server.db))):
            with self.subTest(out=out):
                r = run_cli(["export", "--db", server.db, "--out", out])
                self.assertEqual(r.returncode, 1, r.stderr)
                self.assertIn("is the database", r.stderr)
                self.assertIn("writing it would destroy the facts", r.stderr)
        self.assertEqual(self.client(server).get("/v1/streams/s/facts").json()["facts"][5]["data"],
                         {"i": 5})
        self.assertEqual(server.stop(), 0, server.stderr())
        self.assertEqual(len(export_facts(self, server.db)), 6)
        # A place that cannot be written says why.
        r = run_cli(["export", "--db", server.db, "--out", self.path("no/such/dir/x.ndjson")])
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertIn("No such file or directory", r.stderr)
        r = run_cli(["export", "--db", server.db, "--out", self.tmp])
        self.assertIn("it is a directory", r.stderr)

    def test_import_stops_at_a_commit_that_fails(self):
        # On a full disk every batch was still tried and every line counted
        # as rejected (exit 3, "bad lines").
        db = self.path("k.db")
        self.assertEqual(run_cli(["migrate", "--db", db]).returncode, 0)
        lines = "".join(json.dumps(fact("s", "e%d" % i, {"pad": "p" * 200})) + "\n"
                        for i in range(20000))
        r = run_cli_with_file_limit(["import", "-", "--db", db, "--batch", "500"], 1 << 20,
                                    input=lines)
        self.assertEqual(r.returncode, 1, r.stderr[-2000:])
        self.assertRegex(r.stderr, r"kennel import: commit failed, nothing in this write was "
                                   r"stored: .*\(stopped at line \d+; \d+ facts stored before it\)")
        self.assertNotIn("rejected: commit failed", r.stderr)
        self.assertLess(r.stderr.count("\n"), 20, r.stderr[-2000:])

    def test_export_reads_while_a_server_runs(self):
        server = self.start_server()
        c = self.client(server)
        r = c.post_json("/v1/facts", [fact("s", "e%d" % i, {"i": i}) for i in range(10)])
        self.assertEqual(r.status, 200)
        out = export_facts(self, server.db)
        self.assertEqual(len(out), 10)


class BackupTest(KennelTestCase):

    def server_with_big_facts(self, batches):
        """A server holding `batches` x 100 facts of about 10 KB each."""
        server = self.start_server()
        c = self.client(server)
        pad = "y" * 10000
        for b in range(batches):
            r = c.post_json("/v1/facts", [fact("big", "e%d" % i, {"b": b, "pad": pad})
                                          for i in range(100)])
            self.assertEqual(r.status, 200, r)
        return server

    def backup_under_way(self, server, target):
        """`kennel backup target` started, once its partial copy is on disk
        (or it has ended); the caller ends it."""
        return self.under_way(["backup", target, "--db", server.db], target)

    def interrupt(self, p, sig):
        """Sends sig to p by its PID unless it has ended; returns its stderr."""
        try:
            if p.poll() is None:
                p.send_signal(sig)
            _, err = p.communicate(timeout=30)
        finally:
            if p.poll() is None:
                p.kill()
                p.communicate(timeout=30)
        return err

    def under_way(self, args, target):
        """`kennel ARGS` started, once a file named after target is on disk
        (or it has ended); the caller ends it."""
        p = subprocess.Popen([KENNEL_BIN] + args,
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=kennel_env())
        deadline = time.monotonic() + 30
        while (p.poll() is None and time.monotonic() < deadline and
               not any(n.startswith(os.path.basename(target))
                       for n in os.listdir(os.path.dirname(target)))):
            time.sleep(0.002)
        return p

    def assertWholeCopy(self, path, facts=4000):
        """The backup at path passes SQLite's integrity check and holds every fact."""
        db = sqlite3.connect("file:%s?mode=ro" % path, uri=True)
        try:
            self.assertEqual(db.execute("PRAGMA integrity_check").fetchone()[0], "ok")
            self.assertEqual(db.execute("SELECT count(*) FROM facts").fetchone()[0], facts)
        finally:
            db.close()

    def small_disk(self, name, size_kib):
        """A tmpfs of size_kib at self.path(name), unmounted at the end; the
        test is skipped where one cannot be mounted (not root, a container)."""
        if os.geteuid() != 0:
            self.skipTest("needs root to mount a small tmpfs")
        disk = self.path(name)
        os.mkdir(disk)
        mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=%dk" % size_kib, "tmpfs",
                                  disk], capture_output=True, text=True, timeout=30)
        if mounted.returncode != 0:
            self.skipTest("cannot mount a tmpfs here: " + mounted.stderr.strip())
        self.addCleanup(subprocess.run, ["umount", disk], timeout=30, check=True)
        return disk

    def test_backup_while_serving_has_every_fact_acknowledged_before_it_started(self):
        server = self.start_server()
        acked, lock, stop = {}, threading.Lock(), threading.Event()
        errors = []

        def sender(t):
            c = Client(server.port, timeout=15)
            i = 0
            try:
                while not stop.is_set():
                    batch = [fact("bk", "t%d" % t, {"i": i, "j": j, "pad": "x" * 200},
                                  key="bk-%d-%d-%d" % (t, i, j)) for j in range(25)]
                    i += 1
                    r = c.post_json("/v1/facts", batch)
                    if r.status != 200:
                        errors.append(r)
                        return
                    with lock:
                        for f, it in zip(batch, r.json()["items"]):
                            acked[f["idempotency_key"]] = it["id"]
            finally:
                c.close()

        threads = [threading.Thread(target=sender, args=(t,)) for t in range(3)]
        for th in threads:
            th.start()
        try:
            deadline = time.monotonic() + 15
            while len(acked) < 3000 and time.monotonic() < deadline and not errors:
                time.sleep(0.05)
            with lock:
                before_backup = dict(acked)
            target = self.path("backup.db")
            r = run_cli(["backup", target, "--db", server.db], timeout=120)
            with lock:
                after_backup = len(acked)
        finally:
            stop.set()
            for th in threads:
                th.join(30)
        self.assertEqual(errors, [])
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("integrity ok", r.stderr)
        # The copy is one file: its check left an empty -wal and a -shm.
        self.assertFalse(os.path.exists(target + "-wal"))
        self.assertFalse(os.path.exists(target + "-shm"))
        self.assertGreaterEqual(len(before_backup), 3000)
        self.assertGreater(after_backup, len(before_backup), "writes kept going during backup")
        with open_db(target) as b:
            self.assertEqual(b.execute("PRAGMA integrity_check").fetchone()[0], "ok")
            self.assertEqual(b.execute("PRAGMA application_id").fetchone()[0], 0x4B4E4E4C)
            rows = dict(b.execute("SELECT idempotency_key, id FROM facts WHERE stream = 'bk'"))
            missing = [k for k in before_backup if k not in rows]
            self.assertEqual(missing, [])
            self.assertEqual({k: rows[k] for k in before_backup}, before_backup)
            # The copy is consistent: stream_stats agrees with the facts in it.
            count = b.execute("SELECT fact_count FROM stream_stats WHERE stream='bk'").fetchone()[0]
            self.assertEqual(count, len(rows))
        # The server never stopped serving, and the copy is a usable database.
        c = self.client(server)
        self.assertEqual(c.get("/readyz").status, 200)
        self.assertEqual(server.stop(), 0)
        copy = self.start_server(db="backup.db")
        counts = {s["stream"]: s["count"] for s in self.client(copy).get("/v1/streams").json()["streams"]}
        self.assertEqual(counts["bk"], len(rows))

    # The online backup copies in one step, so a steadily writing client
    # cannot make it restart forever.
    def test_backup_of_a_large_database_finishes_while_a_client_writes(self):
        server = self.server_with_big_facts(100)
        self.assertGreater(os.path.getsize(server.db) +
                           os.path.getsize(server.db + "-wal"), 90e6)
        stop = threading.Event()

        def writer():
            w = Client(server.port, timeout=15)
            i = 0
            try:
                while not stop.is_set():
                    w.post_json("/v1/facts", fact("w", "e", {"i": i}))
                    i += 1
            finally:
                w.close()

        writers = [threading.Thread(target=writer) for _ in range(2)]
        for th in writers:
            th.start()
        try:
            started = time.monotonic()
            try:
                # The bound catches a copy restarted for good by the writes,
                # not a slow one: generous for a machine busy with other tests.
                r = run_cli(["backup", self.path("b.db"), "--db", server.db], timeout=120)
                code = r.returncode
            except subprocess.TimeoutExpired:  # run() has SIGKILLed the child by PID
                code = None
            took = time.monotonic() - started
        finally:
            stop.set()
            for th in writers:
                th.join(30)
        self.assertEqual(code, 0, "backup did not finish within 120 s (%.1f s)" % took)

    def test_a_killed_backup_leaves_no_file_that_looks_like_a_backup(self):
        # The copy takes its name only once whole and checked: a backup
        # killed halfway left a database without tables at the name, and the
        # retry was refused with "exists; choose a new file".
        server = self.server_with_big_facts(40)
        self.assertEqual(server.stop(), 0)
        killed_halfway = 0
        for attempt in range(5):
            target = self.path("halfway-%d.db" % attempt)
            p = self.backup_under_way(server, target)
            try:
                time.sleep(0.005 * attempt)
            finally:
                if p.poll() is None:
                    p.kill()  # by its PID
                p.communicate(timeout=30)
            if p.returncode == -signal.SIGKILL:
                if os.path.exists(target):
                    # Killed after its rename, as it was exiting: the copy
                    # there must then be whole.
                    self.assertWholeCopy(target)
                else:
                    killed_halfway += 1
            else:
                self.assertEqual(p.returncode, 0)
            # Whatever the moment: the retry is taken and gives every fact.
            if os.path.exists(target):
                os.remove(target)
            r = run_cli(["backup", target, "--db", server.db], timeout=120)
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertIn("wrote %s (4000 facts, integrity ok)" % target, r.stderr)
        self.assertGreater(killed_halfway, 0, "no backup was killed before it finished")

    def test_an_interrupted_backup_removes_its_partial_copy(self):
        # Ctrl-C or SIGTERM (a cron job's timeout) left the partial copy, as
        # large as the database, under a name no clean-up matched.
        server = self.server_with_big_facts(40)
        self.assertEqual(server.stop(), 0)
        interrupted = 0
        for attempt, sig in enumerate([signal.SIGTERM, signal.SIGINT] * 3):
            target = self.path("interrupted-%d.db" % attempt)
            p = self.backup_under_way(server, target)
            err = self.interrupt(p, sig)
            left = [n for n in os.listdir(self.tmp) if n.startswith(os.path.basename(target))]
            if p.returncode == 128 + sig:
                interrupted += 1
                self.assertIn(b"interrupted; the partial copy was removed", err)
                self.assertEqual(left, [], "an interrupted backup left files")
            else:
                # It had finished, or was finishing, when the signal came.
                self.assertIn(p.returncode, (0, 128 + sig, -sig), err)
                self.assertLessEqual(set(left), {os.path.basename(target)}, left)
        self.assertGreater(interrupted, 0, "no backup was interrupted before it finished")

    def test_an_interrupted_export_leaves_no_file_that_looks_whole(self):
        # Stopped by a scheduler's SIGTERM or Ctrl-C, it left the file cut
        # short at a whole line under its final name: imported, it restored
        # part of the facts without a word.
        server = self.server_with_big_facts(40)
        self.assertEqual(server.stop(), 0)
        interrupted = 0
        for attempt, sig in enumerate([signal.SIGTERM, signal.SIGINT] * 3):
            target = self.path("export-%d.ndjson" % attempt)
            p = self.under_way(["export", "--db", server.db, "--out", target], target)
            err = self.interrupt(p, sig)
            left = [n for n in os.listdir(self.tmp) if n.startswith(os.path.basename(target))]
            if p.returncode == 128 + sig:
                interrupted += 1
                self.assertIn(b"kennel export: interrupted; the partial output was removed", err)
                self.assertEqual(left, [], "an interrupted export left files")
            else:
                # It had finished when the signal came: whole, under its name.
                self.assertEqual(p.returncode, 0, err)
                self.assertEqual(left, [os.path.basename(target)])
                with open(target) as f:
                    self.assertEqual(sum(1 for _ in f), 4000)
        self.assertGreater(interrupted, 0, "no export was interrupted before it finished")

    def test_a_backup_onto_a_disk_that_fills_is_whole_or_fails_leaving_nothing(self):
        # The copy went through a WAL: its pages reached the file only in the
        # checkpoint at close, whose failure on a full disk went unreported,
        # and the checks read through the WAL. With room for the WAL but not
        # for both, it said "integrity ok", exit 0, of a malformed file.
        server = self.server_with_big_facts(40)
        self.assertEqual(server.stop(), 0)
        size = os.path.getsize(server.db)
        for share, whole in ((1.4, True), (0.5, False)):
            with self.subTest(share=share):
                disk = self.small_disk("disk-%s" % share, int(size * share // 1024))
                target = os.path.join(disk, "copy.db")
                r = run_cli(["backup", target, "--db", server.db], timeout=120)
                if whole:
                    self.assertEqual(r.returncode, 0, r.stderr)
                    self.assertEqual(os.listdir(disk), ["copy.db"])
                    self.assertWholeCopy(target)
                else:
                    self.assertEqual(r.returncode, 1, r.stderr)
                    self.assertIn("database or disk is full", r.stderr)
                    self.assertEqual(os.listdir(disk), [])
        with self.subTest("a file-size limit"):
            # SIGXFSZ killed the backup (exit 153) and left its partial copy.
            folder = self.path("limited")
            os.mkdir(folder)
            r = run_cli_with_file_limit(["backup", os.path.join(folder, "copy.db"),
                                         "--db", server.db], size // 2)
            self.assertEqual(r.returncode, 1, r.stderr)
            self.assertEqual(os.listdir(folder), [])

    def test_a_stop_after_failed_commits_exits_1(self):
        # It exited 0 with a warning, so Restart=on-failure and scripts could
        # not tell a stop that lost writes from a clean one.
        disk = self.small_disk("disk", 8 * 1024)
        server = self.start_server(db=os.path.join(disk, "k.db"))
        c = self.client(server)
        self.assertEqual(c.post_json("/v1/facts", fact("s", "e", {"x": 1})).status, 201)
        # Fill what is left of the disk, then write.
        with open(os.path.join(disk, "filler"), "wb") as f:
            try:
                while True:
                    f.write(b"\0" * (1 << 20))
                    f.flush()
            except OSError:
                pass
        r = c.post_json("/v1/facts", fact("s", "e2", {"x": "y" * 100000}))
        self.assertEqual(r.status, 503, r)
        self.assertEqual(server.stop(), 1, server.stderr())
        self.assertIn("stopped; the last commits failed", server.stderr())
        # With room again, the same database stops cleanly, with the fact
        # acknowledged before the disk filled.
        os.remove(os.path.join(disk, "filler"))
        again = self.start_server(db=os.path.join(disk, "k.db"))
        facts = self.client(again).get("/v1/streams/s/facts").json()["facts"]
        self.assertEqual([f["entity"] for f in facts], ["e"])
        self.assertEqual(again.stop(), 0, again.stderr())
        self.assertIn("stopped cleanly", again.stderr())

    def test_what_kennel_writes_is_not_readable_by_other_users(self):
        # The database (password and key hashes, every fact), backups and
        # exports were created 0644: any local user could read them. The
        # group keeps what the caller's umask gives it.
        old = os.umask(0o022)
        try:
            server = self.start_server()
            c = self.client(server)
            self.assertEqual(c.post_json("/v1/facts", fact("s", "e", {"x": 1})).status, 201)
            modes = {n: stat.S_IMODE(os.stat(self.path(n)).st_mode)
                     for n in ("kennel.db", "kennel.db-wal", "kennel.db-shm")}
            self.assertEqual(server.stop(), 0)
            r = run_cli(["backup", self.path("copy.db"), "--db", server.db])
            self.assertEqual(r.returncode, 0, r.stderr)
            r = run_cli(["export", "--db", server.db, "--out", self.path("facts.ndjson")])
            self.assertEqual(r.returncode, 0, r.stderr)
        finally:
            os.umask(old)
        for n in ("copy.db", "facts.ndjson"):
            modes[n] = stat.S_IMODE(os.stat(self.path(n)).st_mode)
        self.assertEqual(modes, {n: 0o640 for n in modes})

    def test_backup_refuses_to_overwrite_a_file(self):
        db = self.path("k.db")
        self.assertEqual(run_cli(["migrate", "--db", db]).returncode, 0)
        target = self.path("exists.db")
        with open(target, "w") as f:
            f.write("precious")
        r = run_cli(["backup", target, "--db", db])
        self.assertEqual(r.returncode, 1)
        self.assertIn("exists", r.stderr)
        with open(target) as f:
            self.assertEqual(f.read(), "precious")
        r = run_cli(["backup", "--db", db])
        self.assertEqual(r.returncode, 2)
        self.assertIn("FILE", r.stderr)

    def test_a_failed_backup_leaves_no_file_behind(self):
        # It left an empty file, and the retry was refused: "exists".
        notdb = self.path("notes.txt")
        with open(notdb, "w") as f:
            f.write("not a database at all\n" * 100)
        target = self.path("copy.db")
        r = run_cli(["backup", target, "--db", notdb])
        self.assertNotEqual(r.returncode, 0, r.stderr)
        self.assertFalse(os.path.exists(target), os.listdir(self.tmp))
        db = self.path("k.db")
        self.assertEqual(run_cli(["migrate", "--db", db]).returncode, 0)
        r = run_cli(["backup", target, "--db", db])
        self.assertEqual(r.returncode, 0, r.stderr)


if __name__ == "__main__":
    unittest.main()


DOCS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "docs")


class OperationsTest(KennelTestCase):
    """docs/operations.md: its example files and its restore procedure."""

    def test_the_example_config_file_serves_and_the_log_says_where_each_option_came_from(self):
        conf = os.path.join(DOCS, "kennel.conf")
        # --db and --port from the command line beat the file's.
        server = self.start_server(args=("--config", conf), env={"KENNEL_PREDICT_QUEUE": "512"})
        self.assertEqual(self.client(server).get("/readyz").status, 200)
        log = server.stderr()
        line = next((l for l in log.splitlines() if "options set:" in l), "")
        for part in ("--db %s (command line)" % server.db,
                     "--predict-queue 512 (environment)",
                     "--sync full (config file %s)" % conf,
                     "--trusted-proxy 127.0.0.1 (config file %s)" % conf,
                     "--keep-versions 20 (config file %s)" % conf,
                     "--prediction-log-days 30 (config file %s)" % conf):
            self.assertIn(part, line, log)
        self.assertNotIn("/var/lib/kennel", line, "the file's db was overridden")
        # The other commands take the same file.
        r = run_cli(["backup", "--config", conf, "--db", server.db, self.path("copy.db")])
        self.assertEqual(r.returncode, 0, r.stderr)

    def test_the_unit_file_is_valid(self):
        with open(os.path.join(DOCS, "kennel.service")) as f:
            unit = f.read()
        self.assertIn("\nExecStart=/usr/local/bin/kennel serve --config /etc/kennel/kennel.conf\n",
                      unit)
        # Its options exist: the command line it runs is accepted.
        code, out, err = run_serve_expecting_exit(
            ["--config", os.path.join(DOCS, "kennel.conf"), "--db", self.path("x.db"),
             "--port", "0", "--help"], bound=10)
        self.assertEqual(code, 0, err)
        analyze = "/usr/bin/systemd-analyze"
        if not os.path.exists(analyze):
            self.skipTest("systemd-analyze is not installed (Debian package systemd)")
        local = self.path("kennel.service")
        with open(local, "w") as f:
            f.write(unit.replace("/usr/local/bin/kennel", KENNEL_BIN))
        r = subprocess.run([analyze, "verify", local], capture_output=True, text=True,
                           timeout=60)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        # Unknown keys and bad values are only warned about, naming the file.
        self.assertNotIn("kennel.service", r.stdout + r.stderr)

    def test_restoring_a_backup_as_documented_after_a_crash(self):
        server = self.start_server()
        c = self.client(server)
        before = [fact("ops", "e%d" % i, {"i": i}, key="before-%d" % i) for i in range(50)]
        self.assertEqual(c.post_json("/v1/facts", before).status, 200)
        backup = self.path("kennel-backup.db")
        r = run_cli(["backup", "--db", server.db, backup])
        self.assertEqual(r.returncode, 0, r.stderr)
        after = [fact("ops", "e%d" % i, {"i": i}, key="after-%d" % i) for i in range(30)]
        self.assertEqual(c.post_json("/v1/facts", after).status, 200)
        server.kill()  # a crash: the -wal holds the last commits
        self.assertGreater(os.path.getsize(server.db + "-wal"), 0)
        aside = self.path("aside")
        os.mkdir(aside)
        for suffix in ("", "-wal", "-shm"):
            if os.path.exists(server.db + suffix):
                os.rename(server.db + suffix, os.path.join(aside, "kennel.db" + suffix))
        with open(backup, "rb") as src, open(server.db, "wb") as dst:
            dst.write(src.read())
        restored = self.start_server(db=os.path.basename(server.db))
        got = {s["stream"]: s["count"] for s in
               self.client(restored).get("/v1/streams").json()["streams"]}
        self.assertEqual(got.get("ops"), 50)
        self.assertEqual(restored.stop(), 0)
        with open_db(server.db) as db:
            self.assertEqual(db.execute("PRAGMA integrity_check").fetchone()[0], "ok")
            keys = {k for (k,) in db.execute("SELECT idempotency_key FROM facts WHERE stream='ops'")}
        self.assertEqual(keys, {f["idempotency_key"] for f in before})
