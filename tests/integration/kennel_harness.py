"""Test harness for Kennel's integration tests: the real binary, real HTTP.

Starts `$KENNEL_BIN serve --port 0 --db <tmp>/kennel.db ...`, learns the port
from the line "kennel: listening on 127.0.0.1:<port>" on stdout, waits
(bounded) for /readyz, and always stops the process by its PID (SIGTERM, then
SIGKILL after a bound) through unittest's cleanups, even when a test fails.

Standard library only; run with /usr/bin/python3 -m unittest.
"""

import http.client
import json
import math
import os
import re
import resource
import signal
import sqlite3
import subprocess
import tempfile
import threading
import time
import unittest
import uuid

KENNEL_BIN = os.environ.get("KENNEL_BIN", "")
HOST = "127.0.0.1"
LISTEN_RE = re.compile(r"^kennel: listening on 127\.0\.0\.1:(\d+)\s*$")

START_TIMEOUT_S = 20    # from exec to /readyz 200
STOP_TIMEOUT_S = 15     # SIGTERM to exit, before SIGKILL
HTTP_TIMEOUT_S = 30     # one request


# Every server a test starts gets this admin password (KENNEL_ADMIN_PASSWORD),
# and Client sends it as Basic auth unless told otherwise.
ADMIN_PASSWORD = "kennel-test-password"
ADMIN_AUTH = "Basic " + __import__("base64").b64encode(
    ("admin:" + ADMIN_PASSWORD).encode()).decode()


def kennel_env(extra=None):
    """The environment for a Kennel process: ours minus any KENNEL_* setting
    (so a developer's shell cannot change a test), plus the test admin
    password, plus `extra`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("KENNEL_")}
    env["KENNEL_ADMIN_PASSWORD"] = ADMIN_PASSWORD
    env.update(extra or {})
    return env


def require_binary(test):
    if not KENNEL_BIN or not os.access(KENNEL_BIN, os.X_OK):
        raise unittest.SkipTest("KENNEL_BIN is not set to the kennel binary")


def run_cli(args, env=None, timeout=60, input=None, cwd=None):
    """Runs `kennel ARGS...` to completion (bounded) and returns the
    CompletedProcess with text stdout/stderr."""
    return subprocess.run([KENNEL_BIN] + [str(a) for a in args], env=kennel_env(env),
                          input=input, capture_output=True, text=True, timeout=timeout,
                          cwd=cwd)


def run_cli_with_file_limit(args, limit_bytes, input=None, timeout=60):
    """run_cli with the files it writes limited to `limit_bytes` (RLIMIT_FSIZE):
    a write past it fails with EFBIG, as on a full disk. SIGXFSZ keeps its
    default (to kill): Kennel itself ignores it, and these tests show it."""
    def limit():
        signal.signal(signal.SIGXFSZ, signal.SIG_DFL)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit_bytes, limit_bytes))
    return subprocess.run([KENNEL_BIN] + [str(a) for a in args], env=kennel_env(None),
                          input=input, capture_output=True, text=True, timeout=timeout,
                          preexec_fn=limit)


def run_serve_expecting_exit(args, env=None, bound=10, cwd=None, **popen_kw):
    """Runs `kennel serve ARGS`, which should exit by itself (e.g. on a
    database it refuses). Returns (exit code, stdout, stderr); the exit code is
    None when it had not exited after `bound` seconds and was SIGKILLed by PID.
    popen_kw go to subprocess.Popen (e.g. user= to run it as another user)."""
    p = subprocess.Popen([KENNEL_BIN, "serve"] + [str(a) for a in args], env=kennel_env(env),
                         stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True, cwd=cwd, **popen_kw)
    try:
        out, err = p.communicate(timeout=bound)
        return p.returncode, out, err
    except subprocess.TimeoutExpired:
        os.kill(p.pid, signal.SIGKILL)
        out, err = p.communicate(timeout=STOP_TIMEOUT_S)
        return None, out, err


class Response:
    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers  # lowercased names
        self.body = body        # bytes

    @property
    def text(self):
        return self.body.decode("utf-8", "replace")

    def json(self):
        return json.loads(self.body)

    def header(self, name):
        return self.headers.get(name.lower())

    def __repr__(self):
        return "<Response %d %s>" % (self.status, self.text[:500])


class Client:
    """A small keep-alive JSON client. One per thread (http.client is not
    thread-safe)."""

    def __init__(self, port, timeout=HTTP_TIMEOUT_S, auth=ADMIN_AUTH):
        self.port = port
        self.timeout = timeout
        self.auth = auth  # an Authorization header value, or None to send none
        self.conn = None

    def close(self):
        if self.conn is not None:
            self.conn.close()
            self.conn = None

    def request(self, method, path, body=None, headers=None, json_body=None, retry=True):
        hdrs = dict(headers or {})
        if self.auth and not any(k.lower() == "authorization" for k in hdrs):
            hdrs["Authorization"] = self.auth
        if json_body is not None:
            body = json.dumps(json_body)
            hdrs.setdefault("Content-Type", "application/json")
        if isinstance(body, str):
            body = body.encode("utf-8")
        if self.conn is None:
            self.conn = http.client.HTTPConnection(HOST, self.port, timeout=self.timeout)
        try:
            self.conn.request(method, path, body=body, headers=hdrs)
            r = self.conn.getresponse()
            data = r.read()
        except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError,
                http.client.CannotSendRequest, http.client.BadStatusLine):
            # The server closed an idle keep-alive connection: reconnect once.
            # (Safe for POST /v1/facts too: idempotency keys make a resend a
            # duplicate, never a second fact.)
            self.close()
            if not retry:
                raise
            return self.request(method, path, body, hdrs, None, retry=False)
        if r.getheader("Connection", "").lower() == "close":
            self.close()
        return Response(r.status, {k.lower(): v for k, v in r.getheaders()}, data)

    def get(self, path, **kw):
        return self.request("GET", path, **kw)

    def post(self, path, body=None, **kw):
        return self.request("POST", path, body=body, **kw)

    def post_json(self, path, obj, **kw):
        return self.request("POST", path, json_body=obj, **kw)

    def post_ndjson(self, path, lines, **kw):
        """POSTs NDJSON: each of `lines` is a dict (serialised) or a raw str."""
        body = "".join((x if isinstance(x, str) else json.dumps(x)) + "\n" for x in lines)
        return self.request("POST", path, body=body,
                            headers={"Content-Type": "application/x-ndjson"}, **kw)


class KennelProcess:
    """One `kennel serve` process. Use KennelTestCase.start_server() so it is
    always stopped."""

    def __init__(self, db, args=(), env=None, port=0, log_dir=None, cwd=None, binary=None):
        self.binary = binary  # None: KENNEL_BIN
        self.db = db
        self.args = [str(a) for a in args]
        self.env = env
        self.requested_port = port
        self.cwd = cwd
        self.port = None
        self.proc = None
        self.exit_code = None
        self.stdout_lines = []
        self._listening = threading.Event()
        self._clients = []
        self._reader = None
        self.log_path = os.path.join(log_dir or os.path.dirname(db),
                                     "kennel.%d.stderr.log" % id(self))
        self._log = None

    # ---- lifecycle

    def start(self, wait_ready=True, timeout=START_TIMEOUT_S):
        cmd = [self.binary or KENNEL_BIN, "serve"]
        if self.requested_port is not None:  # None: let env/config/default decide
            cmd += ["--port", str(self.requested_port)]
        if self.db is not None:
            cmd += ["--db", self.db]
        cmd += self.args
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=self._log,
                                     stdin=subprocess.DEVNULL, env=kennel_env(self.env),
                                     cwd=self.cwd)
        self._reader = threading.Thread(target=self._read_stdout, daemon=True)
        self._reader.start()
        deadline = time.monotonic() + timeout
        while not self._listening.wait(0.05):
            if self.proc.poll() is not None:
                self._reader.join(2)
                raise AssertionError("kennel exited with %s before listening:\n%s"
                                     % (self.proc.returncode, self.stderr()))
            if time.monotonic() > deadline:
                raise AssertionError("kennel did not print its port within %ss:\n%s"
                                     % (timeout, self.stderr()))
        if wait_ready:
            self.wait_ready(deadline - time.monotonic())
        return self

    def _read_stdout(self):
        for raw in self.proc.stdout:
            line = raw.decode("utf-8", "replace").rstrip("\n")
            self.stdout_lines.append(line)
            m = LISTEN_RE.match(line)
            if m and self.port is None:
                self.port = int(m.group(1))
                self._listening.set()

    def wait_ready(self, timeout=START_TIMEOUT_S):
        deadline = time.monotonic() + max(timeout, 0.1)
        last = None
        c = Client(self.port, timeout=5)
        try:
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    raise AssertionError("kennel exited with %s while starting:\n%s"
                                         % (self.proc.returncode, self.stderr()))
                try:
                    r = c.get("/readyz")
                    last = r
                    if r.status == 200:
                        return
                except OSError as e:
                    last = e
                    c.close()
                time.sleep(0.05)
        finally:
            c.close()
        raise AssertionError("kennel not ready within the bound (last answer %r):\n%s"
                             % (last, self.stderr()))

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def signal(self, sig):
        if self.running():
            os.kill(self.proc.pid, sig)

    def kill(self):
        """SIGKILL by PID, and reap."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
        self.exit_code = self.proc.wait(STOP_TIMEOUT_S)
        self._finish()
        return self.exit_code

    def stop(self, timeout=STOP_TIMEOUT_S):
        """SIGTERM by PID; SIGKILL if it has not exited within `timeout`.
        Returns the exit code (negative: killed by that signal)."""
        if self.proc is None:
            return None
        self.close_clients()
        if self.proc.poll() is None:
            try:
                os.kill(self.proc.pid, signal.SIGTERM)
                self.exit_code = self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.exit_code = self.proc.wait(STOP_TIMEOUT_S)
        else:
            self.exit_code = self.proc.returncode
        self._finish()
        return self.exit_code

    def wait_exit(self, timeout):
        """Waits for the process to exit on its own; returns the exit code."""
        self.exit_code = self.proc.wait(timeout)
        self._finish()
        return self.exit_code

    def _finish(self):
        if self._reader is not None:
            self._reader.join(5)
        if self.proc.stdout:
            self.proc.stdout.close()
        if self._log is not None:
            self._log.close()
            self._log = None

    # ---- inspection

    def stderr(self):
        try:
            if self._log is not None:
                self._log.flush()
            with open(self.log_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def client(self, timeout=HTTP_TIMEOUT_S):
        """A keep-alive client; stop() closes it first, since an idle
        keep-alive connection holds a server worker (and so delays a graceful
        shutdown) until --keepalive-timeout."""
        c = Client(self.port, timeout=timeout)
        self._clients.append(c)
        return c

    def close_clients(self):
        for c in self._clients:
            c.close()


class KennelTestCase(unittest.TestCase):
    """Base class: a temporary directory per test and servers that are always
    stopped (registered with addCleanup before anything can fail)."""

    def setUp(self):
        require_binary(self)
        tmp = tempfile.TemporaryDirectory(prefix="kennel-it-")
        self.addCleanup(tmp.cleanup)
        self.tmp = tmp.name

    def path(self, name):
        return os.path.join(self.tmp, name)

    def start_server(self, args=(), env=None, port=0, db="kennel.db", wait_ready=True):
        """Starts `kennel serve --port PORT --db DB ARGS` in self.tmp (a port
        or db of None is left out of the command line)."""
        server = KennelProcess(self.path(db) if db else None, args=args, env=env, port=port,
                               log_dir=self.tmp, cwd=self.tmp)
        self.addCleanup(server.stop)
        server.start(wait_ready=wait_ready)
        return server

    def client(self, server):
        c = server.client()
        self.addCleanup(c.close)
        return c

    def serve(self, db, args=()):
        """Starts `kennel serve` on the database at path db (which may outlive
        one server: restart tests start several on it); returns (server, client)."""
        server = KennelProcess(db, args=args)
        self.addCleanup(server.stop)
        server.start()
        return server, self.client(server)

    # ---- assertions shared by the suites

    def assertErrorShape(self, response, status, code=None, field=None, message=None):
        """The one error shape: {"error":{"code","message","field"?,"item"?}}."""
        err = self.assertErrorObject(response, status)
        if code is not None:
            self.assertEqual(err["code"], code, response)
        if field is not None:
            self.assertEqual(err.get("field"), field, response)
        if message is not None:
            self.assertIn(message, err["message"], response)
        return err

    def assertErrorObject(self, response, status):
        self.assertEqual(response.status, status, response)
        self.assertTrue((response.header("Content-Type") or "").startswith("application/json"),
                        response.headers)
        # Errors repeat what was sent: never to be sniffed as a page.
        self.assertEqual(response.header("X-Content-Type-Options"), "nosniff", response.headers)
        body = response.json()
        self.assertIsInstance(body, dict, response)
        self.assertIn("error", body, response)
        err = body["error"]
        self.assertIsInstance(err, dict, response)
        self.assertIsInstance(err.get("code"), str, response)
        self.assertIsInstance(err.get("message"), str, response)
        self.assertTrue(err["message"], response)
        self.assertLessEqual(set(err), {"code", "message", "field", "item"}, response)
        return err

    def assertItemError(self, item, index, field=None, message=None, line=None):
        """One rejected item of a batch answer: {"index","status":"rejected",
        "error":{"code","message","field"?,"item","line"?}}."""
        self.assertEqual(item.get("status"), "rejected", item)
        self.assertEqual(item.get("index"), index, item)
        err = item.get("error")
        self.assertIsInstance(err, dict, item)
        self.assertEqual(err.get("code"), "invalid_argument", item)
        self.assertIsInstance(err.get("message"), str, item)
        self.assertEqual(err.get("item"), index, item)
        self.assertLessEqual(set(err), {"code", "message", "field", "item", "line"}, item)
        if field is not None:
            self.assertEqual(err.get("field"), field, item)
        if message is not None:
            self.assertIn(message, err["message"], item)
        if line is not None:
            self.assertEqual(err.get("line"), line, item)
        return err


class SharedServerCase(KennelTestCase):
    """One server (and database) for the whole class, which is faster; each
    test uses its own streams and models so tests do not see each other's
    data. Subclasses may set server_args and tmp_prefix."""

    server_args = ()
    tmp_prefix = "kennel-it-"

    @classmethod
    def setUpClass(cls):
        require_binary(cls)
        tmp = tempfile.TemporaryDirectory(prefix=cls.tmp_prefix)
        cls.addClassCleanup(tmp.cleanup)
        cls.server = KennelProcess(os.path.join(tmp.name, "kennel.db"), args=cls.server_args)
        cls.addClassCleanup(cls.server.stop)
        cls.server.start()

    def setUp(self):
        super().setUp()
        self.assertTrue(self.server.running(), "the shared server died:\n" + self.server.stderr())
        self.c = self.client(self.server)


def wait_until(predicate, timeout, what, interval=0.1):
    """Polls predicate() until it returns something truthy (bounded)."""
    deadline = time.monotonic() + timeout
    while True:
        v = predicate()
        if v:
            return v
        if time.monotonic() > deadline:
            raise AssertionError("not within %ss: %s" % (timeout, what))
        time.sleep(interval)


def run_in_threads(target, n, timeout=60):
    """Runs target(i) for i in range(n), each on a thread of its own; waits
    up to `timeout` s for each. Returns the threads still alive (none, if
    all ended)."""
    threads = [threading.Thread(target=target, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout)
    return [t for t in threads if t.is_alive()]


def open_db(path):
    """A read-only sqlite3 connection (for checking a database after exit)."""
    return sqlite3.connect("file:%s?mode=ro" % path, uri=True, timeout=10)


def stream_counts(client):
    """{stream: count} from GET /v1/streams."""
    r = client.get("/v1/streams")
    if r.status != 200:
        raise AssertionError("GET /v1/streams: %r" % r)
    return {s["stream"]: s["count"] for s in r.json()["streams"]}


def fact(stream, entity, data, time_=None, key=None, corrects=None):
    f = {"stream": stream, "entity": entity, "data": data}
    if time_ is not None:
        f["time"] = time_
    if key is not None:
        f["idempotency_key"] = key
    if corrects is not None:
        f["corrects"] = corrects
    return f


# ---- Kennel's documented hashes, computed independently of Kennel

MASK64 = (1 << 64) - 1


def uid(prefix):
    """A name no other test uses: prefix-<10 hex digits>."""
    return "%s-%s" % (prefix, uuid.uuid4().hex[:10])


def fnv1a64(data):
    """FNV-1a 64 of bytes (text is taken as UTF-8)."""
    h = 14695981039346656037
    for b in (data if isinstance(data, bytes) else data.encode("utf-8")):
        h ^= b
        h = (h * 1099511628211) & MASK64
    return h


def fmix64(k):
    """MurmurHash3's 64-bit finaliser."""
    k ^= k >> 33
    k = (k * 0xff51afd7ed558ccd) & MASK64
    k ^= k >> 33
    k = (k * 0xc4ceb9fe1a85ec53) & MASK64
    k ^= k >> 33
    return k


def in_holdout(entity, share):
    """The documented holdout rule: fmix64(fnv1a64(entity)) / 2^64 < share."""
    return fmix64(fnv1a64(entity)) < math.ceil(math.ldexp(share, 64))
