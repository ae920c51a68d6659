"""Integration tests for containment of training runs: a training run that
throws, crashes, runs past its deadline or exceeds its memory limit fails its
own job with a reason, and nothing else — the server keeps serving and the
worker takes the next job. Jobs left running by a crash of the server are
marked interrupted at the next start and queued again.

Faults are switched on by a definition's "test_fault" and honoured only when
the server runs with --test-faults. The real binary, real HTTP, every wait
bounded, every process stopped by its PID.
"""

import glob
import os
import re
import shutil
import signal
import sqlite3
import tempfile
import time
import unittest

import kennel_harness
from kennel_harness import KennelProcess, KennelTestCase
from test_learning import (SharedServerCase, aliases_of, definition, get_job, load_rows,
                           log_text, put_model, queue_training, synthetic, train_and_wait, uid,
                           wait_job, wait_until)


def training_pid(test, c, job_id):
    """The PID of the job's training process, from its log, or None."""
    for x in get_job(test, c, job_id)["log"]:
        m = re.match(r"training process (\d+) started", x["message"])
        if m:
            return int(m.group(1))
    return None


def is_training_process(pid, job_id):
    """True while `pid` is alive and is the `kennel train-job` of this job
    (so a recycled PID is never mistaken for it)."""
    try:
        with open("/proc/%d/cmdline" % pid, "rb") as f:
            args = f.read().split(b"\0")
        with open("/proc/%d/stat" % pid, "rb") as f:
            state = f.read().rsplit(b")", 1)[1].split()[0]
    except OSError:
        return False
    return (state != b"Z" and b"train-job" in args and b"--job" in args
            and args[args.index(b"--job") + 1] == str(job_id).encode())


def kill_training_process(pid, job_id):
    """Cleanup for a training process that outlived its server: by PID, and
    only if it is still that job's process."""
    if is_training_process(pid, job_id):
        os.kill(pid, signal.SIGKILL)


class FaultTest(SharedServerCase):
    server_args = ("--test-faults",)

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        c = cls.server.client()
        try:
            cls.feat, cls.lab = uid("feat"), uid("lab")
            load_rows(unittest.TestCase(), c, cls.feat, cls.lab, synthetic("regression", 80, seed=7))
        finally:
            c.close()

    def run_fault(self, fault, **extra):
        """Trains a model with the fault; returns its finished job after
        checking that the server still serves and the next job succeeds."""
        name = uid("fault-" + fault)
        put_model(self, self.c, name, definition("regression", self.feat, self.lab,
                                                 test_fault=fault, **extra), expect=(201,))
        job_id = queue_training(self, self.c, name)
        pid = wait_until(lambda: training_pid(self, self.c, job_id), 20,
                         "the training process of job %d started" % job_id)
        self.addCleanup(kill_training_process, pid, job_id)
        j = wait_job(self, self.c, job_id, timeout=60)
        self.assertIsNone(j["version"], j)
        self.assertIsNotNone(j["finished_at"], j)
        self.assertEqual(self.c.get("/v1/models/%s/versions" % name).json()["versions"], [])
        self.assertFalse(is_training_process(pid, job_id), "training process %d still runs" % pid)

        # Contained: the server answers and the worker takes the next job.
        self.assertTrue(self.server.running(), self.server.stderr())
        self.assertEqual(self.c.get("/healthz").status, 200)
        self.assertEqual(self.c.get("/readyz").status, 200)
        other = uid("after-" + fault)
        put_model(self, self.c, other, definition("regression", self.feat, self.lab))
        nxt = train_and_wait(self, self.c, other)
        self.assertEqual(nxt["state"], "succeeded", log_text(nxt))
        self.assertEqual(aliases_of(self, self.c, other), {"live": nxt["version"]})
        return j

    def start_sleeping_fit(self, prefix, deadline_seconds):
        """Queues a job whose fit sleeps once its training set is read;
        returns its id when it has read it."""
        name = uid(prefix)
        put_model(self, self.c, name,
                  definition("regression", self.feat, self.lab, test_fault="sleep_after_read",
                             training={"deadline_seconds": deadline_seconds}), expect=(201,))
        job_id = queue_training(self, self.c, name)
        pid = wait_until(lambda: training_pid(self, self.c, job_id), 20,
                         "the training process of job %d started" % job_id)
        self.addCleanup(kill_training_process, pid, job_id)
        wait_until(lambda: "training set:" in log_text(get_job(self, self.c, job_id)), 20,
                   "job %d read its training set" % job_id)
        return job_id

    def test_a_throwing_trainer_fails_its_job(self):
        j = self.run_fault("throw")
        self.assertEqual(j["state"], "failed", j)
        self.assertIn("threw", j["error"], j)
        self.assertIn("failed: " + j["error"], log_text(j))

    def test_a_crashing_trainer_fails_its_job(self):
        j = self.run_fault("crash")
        self.assertEqual(j["state"], "failed", j)
        self.assertIn("crashed", j["error"], j)
        self.assertIn("signal %d" % signal.SIGSEGV, j["error"], j)

    def test_a_fit_killed_from_outside_fails_its_job_saying_so(self):
        job_id = self.start_sleeping_fit("killed", 120)
        pid = training_pid(self, self.c, job_id)
        os.kill(pid, signal.SIGKILL)
        j = wait_job(self, self.c, job_id, timeout=30)
        self.assertEqual(j["state"], "failed", j)
        self.assertIn("the training process was killed (signal %d" % signal.SIGKILL, j["error"])
        self.assertIn("not by Kennel", j["error"])
        self.assertTrue(self.server.running(), self.server.stderr())

    def test_a_trainer_past_its_deadline_times_out(self):
        started = time.monotonic()
        j = self.run_fault("sleep", training={"deadline_seconds": 2})
        self.assertEqual(j["state"], "timed_out", j)
        self.assertIn("deadline of 2 s", j["error"], j)
        self.assertLess(time.monotonic() - started, 30)

    def test_the_training_process_runs_below_serving(self):
        # While the fit sleeps, look at its scheduling: SCHED_IDLE (5) and
        # nice 10, so it only gets CPU time serving does not want; and at
        # what it holds open.
        name = uid("priority")
        put_model(self, self.c, name, definition("regression", self.feat, self.lab, test_fault="sleep",
                                                 training={"deadline_seconds": 600}), expect=(201,))
        job_id = queue_training(self, self.c, name)
        pid = wait_until(lambda: training_pid(self, self.c, job_id), 20,
                         "the training process of job %d started" % job_id)
        self.addCleanup(kill_training_process, pid, job_id)
        # The child sets its priority before exec: once it runs train-job, it is set.
        wait_until(lambda: is_training_process(pid, job_id), 20, "process %d runs train-job" % pid)
        with open("/proc/%d/stat" % pid, "rb") as f:
            fields = f.read().rsplit(b")", 1)[1].split()
        nice, policy = int(fields[19 - 3]), int(fields[41 - 3])
        self.assertEqual(policy, 5, "scheduling policy of the training process")
        self.assertEqual(nice, 10)
        # None of the server's sockets goes with it (this test's connection
        # and the listening socket were open when it started): a connection
        # the server closes must look closed to its client while a fit runs.
        sockets = []
        for fd in os.listdir("/proc/%d/fd" % pid):
            try:
                target = os.readlink("/proc/%d/fd/%s" % (pid, fd))
            except OSError:
                continue  # closed meanwhile
            if target.startswith("socket:"):
                sockets.append((fd, target))
        self.assertEqual(sockets, [], "sockets open in the training process")
        # The fit sleeps past any wait: it ends when cancelled, not by a
        # deadline that could reap it while /proc is read above.
        self.assertEqual(self.c.post("/v1/jobs/%d/cancel" % job_id).status, 202)
        j = wait_job(self, self.c, job_id, timeout=60)
        self.assertEqual(j["state"], "cancelled", j)

    def test_a_running_fit_does_not_hold_the_database(self):
        # Once its data is read, the fit must not keep a read transaction: a
        # reader held for the whole fit stops the WAL from being
        # checkpointed, so it grows without bound while the fit runs.
        job_id = self.start_sleeping_fit("reader", deadline_seconds=600)
        # Writes after the fit's snapshot...
        load_rows(self, self.c, uid("after"), uid("after_lab"), synthetic("regression", 20, seed=3))
        # ...can all be checkpointed into the database file while it runs
        # (retried: a request's own short read may hold a frame a moment).
        def checkpointed():
            db = sqlite3.connect(self.server.db, timeout=5)
            try:
                busy, log, done = db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
            finally:
                db.close()
            return busy == 0 and log > 0 and done == log
        wait_until(checkpointed, 10, "every WAL frame checkpointed while the fit runs")
        self.assertEqual(get_job(self, self.c, job_id)["state"], "running")
        self.assertEqual(self.c.post("/v1/jobs/%d/cancel" % job_id).status, 202)
        j = wait_job(self, self.c, job_id, timeout=30)
        self.assertEqual(j["state"], "cancelled", j)

    def test_triggers_are_looked_at_while_a_job_runs(self):
        # The worker looked at retrain triggers only between jobs: while one
        # fit ran (up to its deadline, 600 s by default), no other model's
        # trigger queued a job.
        running = self.start_sleeping_fit("busy", deadline_seconds=600)
        name = uid("triggered")
        put_model(self, self.c, name, definition("regression", self.feat, self.lab,
                                                 retrain={"every_new_labels": 10}),
                  expect=(201,))

        def queued():
            jobs = self.c.get("/v1/models/%s/jobs" % name).json()["jobs"]
            return jobs[0] if jobs else None
        job = wait_until(queued, 30, "a job queued by the trigger while another job runs")
        self.assertEqual((job["trigger"], job["state"]), ("new_labels", "queued"), job)
        self.assertEqual(get_job(self, self.c, running)["state"], "running")
        # No more jobs from it for the other tests on this server. The new
        # revision takes the queued job over: it trained the replaced one.
        r = put_model(self, self.c, name, definition("regression", self.feat, self.lab))
        carried = r.json()["queued_job"]
        self.assertIsNotNone(carried, r)
        self.assertNotEqual(carried, job["id"])
        old = get_job(self, self.c, job["id"])
        why = "superseded by job %d, which trains revision 2" % carried
        # The message says what it came to, as a cancelled job's does (it was "").
        self.assertEqual((old["state"], old["error"], old["message"]),
                         ("cancelled", why, "cancelled: " + why), old)
        again = get_job(self, self.c, carried)
        self.assertEqual((again["state"], again["trigger"], again["revision"]),
                         ("queued", "new_labels", 2), again)
        for j in (carried, running):
            self.assertEqual(self.c.post("/v1/jobs/%d/cancel" % j).status, 202)
        again = get_job(self, self.c, carried)
        self.assertEqual((again["state"], again["message"]),
                         ("cancelled", "cancelled: cancelled before it started"), again)
        ended = wait_job(self, self.c, running, timeout=30)
        self.assertEqual((ended["state"], ended["message"]),
                         ("cancelled", "cancelled: cancelled on request"), ended)

    def test_a_jobs_end_that_cannot_be_recorded_is_recorded_once_it_can(self):
        # Another program holds the database's write lock past the busy
        # timeout when the job ends: its end could not be stored. It used to
        # stay "running" for good, holding back the model's triggers; now it
        # is tried again and recorded once the lock is gone.
        # The deadline counts from the training process's start, which runs
        # at SCHED_IDLE: on a machine busy with other tests, its start and
        # read can take seconds, and the lock must be held before it ends.
        job_id = self.start_sleeping_fit("locked-end", deadline_seconds=10)
        outside = sqlite3.connect(self.server.db, isolation_level=None, timeout=10)
        self.addCleanup(outside.close)
        outside.execute("BEGIN IMMEDIATE")
        try:
            wait_until(lambda: "cannot record the end of job %d (timed_out)" % job_id
                       in self.server.stderr(), 60, "a failed record of job %d's end" % job_id)
            self.assertEqual(get_job(self, self.c, job_id)["state"], "running")
        finally:
            outside.execute("ROLLBACK")
        j = wait_job(self, self.c, job_id, timeout=60)
        self.assertEqual(j["state"], "timed_out", j)
        self.assertIn("deadline of 10 s", j["error"], j)
        # Where it was: its last progress (the fit sleeps once its facts are read).
        self.assertRegex(j["error"], r"and was stopped, at: reading facts up to id \d+$")
        self.assertIsNotNone(j["finished_at"], j)
        self.assertIn("trying again in 1 s", self.server.stderr())
        wait_until(lambda: self.c.get("/v1/overview").json()["components"]["trainer"]["job"] is None,
                   10, "the trainer idle after job %d" % job_id)

    def test_a_trainer_over_its_memory_limit_fails_its_job(self):
        j = self.run_fault("oom", training={"memory_mb": 256})
        self.assertEqual(j["state"], "failed", j)
        self.assertIn("memory", j["error"], j)
        self.assertIn("256", j["error"] + log_text(j), j)
        if j["error"].startswith("out of memory"):  # the fit's own allocation failed
            self.assertIn("memory limit of 256 MB (training.memory_mb)", j["error"], j)

    def test_an_allocation_failing_in_a_calibration_fold_names_the_memory_limit(self):
        # A trainer's own bad_alloc was wrapped as "forest training failed:
        # std::bad_alloc", which said nothing of training.memory_mb (a fit
        # near its limit passed, and its calibration folds went over).
        feat, lab = uid("feat"), uid("lab")
        load_rows(self, self.c, feat, lab, synthetic("binary", 80, seed=9))
        name = uid("fault-cal")
        put_model(self, self.c, name, definition("binary", feat, lab, algorithm="forest",
                                                 calibration="sigmoid",
                                                 test_fault="oom_in_calibration",
                                                 training={"memory_mb": 700}), expect=(201,))
        j = wait_job(self, self.c, queue_training(self, self.c, name), timeout=60)
        self.assertEqual(j["state"], "failed", j)
        self.assertTrue(j["error"].startswith(
            "out of memory: the training run exceeded its memory limit of 700 MB "
            "(training.memory_mb)"), j)
        self.assertIn("; at: calibration fold 1 of 3", j["error"], j)
        self.assertEqual(self.c.get("/v1/models/%s/versions" % name).json()["versions"], [])


class FaultsNeedTheFlagTest(SharedServerCase):
    """Without --test-faults the definition's test_fault is ignored."""

    def test_faults_are_ignored_without_the_flag(self):
        f, l = uid("feat"), uid("lab")
        load_rows(self, self.c, f, l, synthetic("regression", 60, seed=8))
        for fault in ("crash", "sleep"):
            with self.subTest(fault=fault):
                name = uid("nofault-" + fault)
                # Honoured, "sleep" sleeps an hour: past this deadline, the job
                # would time out. 5 s timed the fit itself out once, under
                # the sanitizers on a loaded machine.
                put_model(self, self.c, name, definition(
                    "regression", f, l, test_fault=fault, training={"deadline_seconds": 30}))
                j = train_and_wait(self, self.c, name, timeout=90)
                self.assertEqual(j["state"], "succeeded", log_text(j))
                self.assertEqual(j["version"], 1, j)

    def test_an_unknown_fault_is_refused(self):
        f, l = uid("feat"), uid("lab")
        load_rows(self, self.c, f, l, synthetic("regression", 20, seed=9))
        r = self.c.request("PUT", "/v1/models/" + uid("badfault"),
                           json_body=definition("regression", f, l, test_fault="explode"))
        self.assertEqual(r.status, 400, r)
        self.assertEqual(r.json()["error"]["field"], "test_fault", r)


def start_fault_job(test, c, f, l, fault, training):
    """Defines a regression model with the test fault and queues its
    training; returns (model, job id, training process PID) once it runs."""
    name = uid(fault)
    put_model(test, c, name, definition("regression", f, l, test_fault=fault, training=training))
    job_id = queue_training(test, c, name)
    pid = wait_until(lambda: training_pid(test, c, job_id), 20,
                     "the training process of job %d started" % job_id)
    test.addCleanup(kill_training_process, pid, job_id)
    return name, job_id, pid


class InterruptedJobTest(KennelTestCase):
    """A server that dies (or stops) while a job runs: at the next start the
    job is interrupted and a new job, requeued_from the old one, runs it."""

    def start_sleeping_job(self, db):
        server, c = self.serve(db, ("--test-faults",))
        f, l = uid("feat"), uid("lab")
        load_rows(self, c, f, l, synthetic("regression", 60, seed=10))
        name, job_id, pid = start_fault_job(self, c, f, l, "sleep", {"deadline_seconds": 600})
        # The job names its PID as soon as the server has forked: until the
        # child's exec, /proc shows the server's command line, and a test
        # that looked then saw no training process where one was about to run.
        wait_until(lambda: is_training_process(pid, job_id), 20,
                   "the training process of job %d ran `kennel train-job`" % job_id)
        # A killed server leaves its job's work directory behind (reported);
        # remove exactly that one ("kennel-job-PID-JOB-" and a random suffix).
        prefix = os.path.join(tempfile.gettempdir(), "kennel-job-%d-%d-" % (server.proc.pid, job_id))
        self.addCleanup(lambda: [shutil.rmtree(w, True) for w in glob.glob(prefix + "*")])
        self.assertEqual(get_job(self, c, job_id)["state"], "running")
        return server, c, name, job_id, pid

    def check_requeued(self, db, name, old, reason):
        # Restarted without --test-faults: the requeued job trains normally.
        server, c = self.serve(db)
        j = get_job(self, c, old)
        self.assertEqual(j["state"], "interrupted", j)
        self.assertIn(reason, j["error"], j)
        self.assertIsNotNone(j["finished_at"], j)
        jobs = c.get("/v1/models/%s/jobs" % name).json()["jobs"]
        again = [x for x in jobs if x["requeued_from"] == old]
        self.assertEqual(len(again), 1, jobs)
        self.assertEqual(len(jobs), 2, jobs)
        new = again[0]
        self.assertGreater(new["id"], old)
        self.assertEqual((new["trigger"], new["requested_by"]), ("requeued", "kennel"), new)
        done = wait_job(self, c, new["id"], timeout=60)
        self.assertEqual(done["state"], "succeeded", log_text(done))
        self.assertEqual(aliases_of(self, c, name), {"live": done["version"]})
        if "interrupted by a restart" in log_text(j):
            # The server's log names both jobs and the model (it named the new job alone).
            self.assertIn('job %d of model "%s" was interrupted by a restart; queued again as '
                          'job %d' % (old, name, new["id"]), server.stderr())
        return j

    def test_a_job_running_when_the_server_is_killed_is_requeued(self):
        db = os.path.join(self.tmp, "killed.db")
        server, c, name, old, pid = self.start_sleeping_job(db)
        c.close()
        server.kill()  # SIGKILL by PID: no chance to clean up
        # The orphaned training process is checked by the next test; do not
        # let it hold the database here.
        kill_training_process(pid, old)
        j = self.check_requeued(db, name, old, "stopped while this job was running")
        self.assertIn("interrupted by a restart; queued again", log_text(j))

    def test_a_job_running_at_a_clean_stop_is_requeued(self):
        db = os.path.join(self.tmp, "stopped.db")
        server, c, name, old, pid = self.start_sleeping_job(db)
        c.close()
        self.assertEqual(server.stop(), 0, server.stderr())
        self.assertFalse(is_training_process(pid, old), "training process %d survived" % pid)
        j = self.check_requeued(db, name, old, "stopped during training")
        self.assertIn("interrupted by shutdown; queued again", log_text(j))

    def test_a_job_cancelled_just_before_a_stop_or_a_crash_stays_cancelled(self):
        # The cancel was answered 202, then the server stopped (or died)
        # before the job ended: the job was queued again at the next start,
        # trained, and went live.
        for how in ("stop", "kill"):
            with self.subTest(how):
                db = os.path.join(self.tmp, "cancel-%s.db" % how)
                server, c, name, old, pid = self.start_sleeping_job(db)
                self.assertEqual(c.post("/v1/jobs/%d/cancel" % old).status, 202)
                c.close()
                if how == "stop":
                    self.assertEqual(server.stop(), 0, server.stderr())
                else:
                    server.kill()  # SIGKILL by PID
                    kill_training_process(pid, old)
                server, c = self.serve(db)
                j = get_job(self, c, old)
                self.assertEqual(j["state"], "cancelled", j)
                jobs = c.get("/v1/models/%s/jobs" % name).json()["jobs"]
                self.assertEqual([x["id"] for x in jobs], [old], jobs)
                self.assertEqual(c.get("/v1/models/%s/versions" % name).json()["versions"], [])
                self.assertEqual(server.stop(), 0, server.stderr())

    def test_a_stop_signalled_to_every_process_still_requeues_the_job(self):
        # systemd, `timeout` and `kill -- -PGID` signal the fit too. It died
        # of the SIGTERM first and its job was failed as "crashed"; now the
        # fit ignores stop signals and the server's stop interrupts it.
        db = os.path.join(self.tmp, "group.db")
        server, c, name, old, pid = self.start_sleeping_job(db)
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            os.kill(pid, sig)
        time.sleep(0.5)
        self.assertTrue(is_training_process(pid, old), "the fit died of a stop signal")
        self.assertEqual(get_job(self, c, old)["state"], "running")
        c.close()
        self.assertEqual(server.stop(), 0, server.stderr())
        self.assertFalse(is_training_process(pid, old), "training process %d survived" % pid)
        j = self.check_requeued(db, name, old, "stopped during training")
        self.assertIn("interrupted by shutdown; queued again", log_text(j))

    def test_an_interrupted_job_joins_a_queued_twin_instead_of_training_twice(self):
        db = os.path.join(self.tmp, "twin.db")
        server, c, name, old, pid = self.start_sleeping_job(db)
        twin = queue_training(self, c, name)  # queued behind the running job
        self.assertNotEqual(twin, old)
        c.close()
        server.kill()
        kill_training_process(pid, old)
        server, c = self.serve(db)
        self.assertEqual(get_job(self, c, old)["state"], "interrupted")
        jobs = c.get("/v1/models/%s/jobs" % name).json()["jobs"]
        self.assertEqual(sorted(x["id"] for x in jobs), sorted([old, twin]), jobs)
        done = wait_job(self, c, twin, timeout=60)
        self.assertEqual(done["state"], "succeeded", log_text(done))
        self.assertIn("also stands for interrupted job %d" % old, log_text(done))
        self.assertEqual(len(c.get("/v1/models/%s/versions" % name).json()["versions"]), 1)

    def crash_during(self, db, job_of):
        """Starts a server with --test-faults on db, waits for the fit of the
        job job_of(client) names (a sleeping one), SIGKILLs the server; then
        starts one without faults. Returns (job id, server, client)."""
        server, c = self.serve(db, ("--test-faults",))
        job_id = job_of(c)
        pid = wait_until(lambda: training_pid(self, c, job_id), 20,
                         "the training process of job %d started" % job_id)
        self.addCleanup(kill_training_process, pid, job_id)
        c.close()
        server.kill()
        kill_training_process(pid, job_id)
        return (job_id,) + self.serve(db)

    def test_a_job_interrupted_by_two_crashes_in_a_row_is_failed_not_queued_again(self):
        # A fit that brings the server down (the out-of-memory killer taking
        # the server) was queued again at every start: a crash loop under
        # systemd's Restart=, a new job each lap.
        db = os.path.join(self.tmp, "loop.db")
        server, c, name, first, pid = self.start_sleeping_job(db)
        c.close()
        server.kill()
        kill_training_process(pid, first)
        # The requeued job sleeps too, and the server dies again.
        second, server, c = self.crash_during(db, lambda c: [
            x for x in c.get("/v1/models/%s/jobs" % name).json()["jobs"]
            if x["requeued_from"] == first][0]["id"])
        j = get_job(self, c, second)
        self.assertEqual(j["state"], "failed", j)
        self.assertIn("as it did while job %d" % first, j["error"])
        self.assertIn("not queued again", j["error"])
        self.assertIn("not queued again", log_text(j))
        jobs = c.get("/v1/models/%s/jobs" % name).json()["jobs"]
        self.assertEqual(sorted((x["id"], x["state"]) for x in jobs),
                         [(first, "interrupted"), (second, "failed")], jobs)
        self.assertIn('job %d of model "%s" was interrupted by a restart for the second time in '
                      'a row' % (second, name), server.stderr())
        # The server serves, and a person may train the model again.
        self.assertEqual(c.get("/readyz").status, 200)
        done = train_and_wait(self, c, name)
        self.assertEqual(done["state"], "succeeded", log_text(done))
        self.assertIsNone(done["requeued_from"], done)

    def test_a_queued_job_standing_for_a_crashed_one_is_failed_after_a_second_crash(self):
        # Merged into a job already queued, the interrupted job was named only
        # in that job's log: a second crash requeued it again, and a job
        # queued before each crash kept the loop going.
        db = os.path.join(self.tmp, "twin-loop.db")
        server, c, name, first, pid = self.start_sleeping_job(db)
        twin = queue_training(self, c, name)
        c.close()
        server.kill()
        kill_training_process(pid, first)

        def stands_for_first(c):
            j = get_job(self, c, twin)
            self.assertEqual(j["requeued_from"], first, j)  # it stands for the crashed job
            return twin
        _, server, c = self.crash_during(db, stands_for_first)
        j = get_job(self, c, twin)
        self.assertEqual(j["state"], "failed", j)
        self.assertIn("as it did while job %d" % first, j["error"])
        self.assertEqual(len(c.get("/v1/models/%s/jobs" % name).json()["jobs"]), 2)

    def test_the_training_process_does_not_outlive_a_killed_server(self):
        db = os.path.join(self.tmp, "orphan.db")
        server, c, name, old, pid = self.start_sleeping_job(db)
        c.close()
        server.kill()
        # Nobody enforces the orphan's deadline or memory limit any more: it
        # should die with its server (e.g. PR_SET_PDEATHSIG in the child).
        deadline = time.monotonic() + 5
        while is_training_process(pid, old) and time.monotonic() < deadline:
            time.sleep(0.1)
        self.assertFalse(is_training_process(pid, old),
                         "training process %d of job %d still runs after its server was killed"
                         % (pid, old))


def memory_cgroup(test, limit_bytes):
    """A memory cgroup (v1 or v2) limited to limit_bytes; returns the path
    of its cgroup.procs, or skips the test when one cannot be made (not
    root, no memory controller). Removed at cleanup (empty by then)."""
    if os.geteuid() != 0:
        test.skipTest("needs root to make a memory cgroup")
    name = "kennel-test-%d-%d" % (os.getpid(), int(time.monotonic() * 1000))
    for base, limit_file in (("/sys/fs/cgroup/memory", "memory.limit_in_bytes"),
                             ("/sys/fs/cgroup", "memory.max")):
        if not os.path.exists(os.path.join(base, limit_file if base.endswith("memory")
                                           else "cgroup.subtree_control")):
            continue
        if not base.endswith("memory"):
            with open(os.path.join(base, "cgroup.subtree_control")) as f:
                if "memory" not in f.read().split():
                    continue
        path = os.path.join(base, name)
        try:
            os.mkdir(path)
        except OSError:
            continue
        test.addCleanup(lambda p=path: os.path.isdir(p) and os.rmdir(p))
        with open(os.path.join(path, limit_file), "w") as f:
            f.write(str(limit_bytes))
        return os.path.join(path, "cgroup.procs")
    test.skipTest("no memory cgroup can be made here")


class OutOfMemoryKillerTest(KennelTestCase):
    """The kernel's out-of-memory killer, in a memory cgroup around the
    server: it takes the fit, not the server, and the job says so."""

    def test_the_out_of_memory_killer_takes_the_fit_and_the_job_says_so(self):
        procs = memory_cgroup(self, 400 * 1024 * 1024)
        server, c = self.serve(os.path.join(self.tmp, "oom.db"), ("--test-faults",))
        f, l = uid("feat"), uid("lab")
        load_rows(self, c, f, l, synthetic("regression", 60, seed=12))
        with open(procs, "w") as out:
            out.write(str(server.proc.pid))  # the fit, forked later, is in it too
        self.addCleanup(server.stop)  # before the cgroup is removed (cleanups run last first)
        # A memory limit far above the cgroup's: Kennel's own watch never
        # stops it, the kernel does.
        _, job, pid = start_fault_job(self, c, f, l, "oom", {"memory_mb": 8192})
        try:
            with open("/proc/%d/oom_score_adj" % pid) as adj:
                self.assertEqual(adj.read().strip(), "1000")
        except FileNotFoundError:
            pass  # already killed: the job's error below says by whom
        with open("/proc/%d/oom_score_adj" % server.proc.pid) as adj:
            self.assertNotEqual(adj.read().strip(), "1000")
        j = wait_job(self, c, job, timeout=60)
        self.assertEqual(j["state"], "failed", j)
        self.assertIn("the kernel's out-of-memory killer stopped the training process", j["error"])
        self.assertIn("training.memory_mb", j["error"])
        self.assertTrue(server.running(), server.stderr())
        self.assertEqual(c.get("/readyz").status, 200)


class NoTemporaryDirectoryTest(KennelTestCase):
    """A TMPDIR that is not a directory: the server starts (its clean-up of
    old work directories threw), and each job fails naming the reason."""

    def test_a_job_without_a_work_directory_fails_with_the_reason(self):
        not_a_dir = self.path("not-a-dir")
        with open(not_a_dir, "w") as f:
            f.write("x")
        server = self.start_server(env={"TMPDIR": not_a_dir})
        c = self.client(server)
        f, l = uid("feat"), uid("lab")
        load_rows(self, c, f, l, synthetic("regression", 60, seed=60))
        name = uid("notmp")
        put_model(self, c, name, definition("regression", f, l))
        j = wait_job(self, c, queue_training(self, c, name))
        self.assertEqual((j["state"], j["version"]), ("failed", None), log_text(j))
        self.assertIn("no temporary directory for the job's work", j["error"])
        self.assertIn("set TMPDIR to a writable directory", j["error"])
        self.assertEqual(c.get("/v1/models/%s/versions" % name).json()["versions"], [])
        self.assertEqual(c.get("/healthz").status, 200)


class MovedBinaryTest(KennelTestCase):
    """An upgrade moves the running server's binary away and puts another in
    its place: training still runs the server's own binary."""

    def test_training_runs_the_servers_own_binary_after_it_was_moved(self):
        bindir = self.path("bin")
        os.mkdir(bindir)
        exe = os.path.join(bindir, "kennel")
        shutil.copy2(kennel_harness.KENNEL_BIN, exe)
        server = KennelProcess(self.path("moved.db"), binary=exe, log_dir=self.tmp, cwd=self.tmp)
        self.addCleanup(server.stop)
        server.start()
        os.rename(exe, exe + ".old")
        # The "new binary" now at the old path: the old server must not run it.
        marker = self.path("new-binary-ran")
        with open(exe, "w") as f:
            f.write("#!/bin/sh\ntouch '%s'\nexit 1\n" % marker)
        os.chmod(exe, 0o755)
        c = self.client(server)
        f, l = uid("feat"), uid("lab")
        load_rows(self, c, f, l, synthetic("regression", 60, seed=11))
        name = uid("moved")
        put_model(self, c, name, definition("regression", f, l))
        j = train_and_wait(self, c, name)
        self.assertEqual(j["state"], "succeeded", log_text(j))
        self.assertFalse(os.path.exists(marker), "the server ran the binary now at its old path")


if __name__ == "__main__":
    unittest.main()
