"""One `kennel serve` for a benchmark: on 127.0.0.1 at a free port, with its
own temporary database, signed in as admin by Basic auth. Shared by
bench/stored_features.py and bench/aggregate_cost.py.
"""

import base64
import os
import re
import subprocess
import sys
import tempfile
import time


class KennelServer:
    def __init__(self, binary, name, extra_args=()):
        self.name = name
        self.tmp = tempfile.TemporaryDirectory(prefix="kennel-bench-%s-" % name)
        password = "bench-%s-pw" % name
        env = dict(os.environ, KENNEL_ADMIN_PASSWORD=password)
        self.process = subprocess.Popen(
            [binary, "serve", "--db", os.path.join(self.tmp.name, "k.db"), "--port", "0"] +
            list(extra_args), stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
            env=env)
        self.headers = {"Authorization": "Basic " + base64.b64encode(
            ("admin:" + password).encode()).decode(), "Content-Type": "application/json"}
        self.port = None
        deadline = time.monotonic() + 30
        while self.port is None and time.monotonic() < deadline:
            m = re.search(r"listening on 127\.0\.0\.1:(\d+)", self.process.stdout.readline())
            if m:
                self.port = int(m.group(1))
        if self.port is None:
            self.stop()
            sys.exit("bench/%s: the server did not say its port" % name)

    def stop(self):
        """Stops the server by its PID (terminate, then kill after 10 s)."""
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
