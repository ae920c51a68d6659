"""The admin page's files: every file in web/ is listed in CMakeLists.txt's
KENNEL_WEB, compiled into the binary and served byte for byte with its content
type, an ETag and 304 on revalidation; unknown files are 404; the page loads
without credentials while the data behind it needs them; the page loads
nothing from elsewhere.

Run: KENNEL_BIN=build/kennel python3 -m unittest -v test_web
"""

import os
import re
import unittest

from kennel_harness import Client, KennelTestCase

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
WEB = os.path.join(ROOT, "web")

CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".ico": "image/x-icon",
    ".json": "application/json",
}


def web_files():
    return sorted(f for f in os.listdir(WEB) if os.path.isfile(os.path.join(WEB, f)))


def cmake_web_list():
    with open(os.path.join(ROOT, "CMakeLists.txt"), encoding="utf-8") as f:
        text = f.read()
    m = re.search(r"set\(KENNEL_WEB\s+(.*?)\)", text, re.S)
    if not m:
        raise AssertionError("no set(KENNEL_WEB ...) in CMakeLists.txt")
    return sorted(x for x in m.group(1).split() if not x.startswith("#"))


def read(name):
    with open(os.path.join(WEB, name), "rb") as f:
        return f.read()


class WebAssetsTest(KennelTestCase):
    def setUp(self):
        super().setUp()
        # No --web-dir: every byte served comes from the binary.
        self.server = self.start_server()
        self.anon = Client(self.server.port, auth=None)
        self.addCleanup(self.anon.close)

    def test_every_file_in_web_is_listed_for_embedding(self):
        self.assertEqual(cmake_web_list(), ["web/" + f for f in web_files()])

    def test_every_file_is_served_from_the_binary_byte_for_byte(self):
        files = web_files()
        self.assertIn("index.html", files)
        for name in files:
            with self.subTest(name=name):
                r = self.anon.get("/assets/" + name)
                self.assertEqual(r.status, 200, r)
                ext = os.path.splitext(name)[1]
                self.assertEqual(r.header("Content-Type"),
                                 CONTENT_TYPES.get(ext, "application/octet-stream"))
                self.assertEqual(r.body, read(name), "%s differs from the file on disk" % name)
                self.assertEqual(r.header("Cache-Control"), "no-cache")
                self.assertEqual(r.header("X-Content-Type-Options"), "nosniff")

    def test_every_answer_says_nosniff(self):
        # Success answers repeat stored data too (a fact's fields, a model's
        # name): a browser must never sniff them as a page.
        c = Client(self.server.port)
        self.addCleanup(c.close)
        r = c.post_json("/v1/facts", {"stream": "sniff", "entity": "<html>", "time": "2026-11-20T10:00:00Z",
                                      "data": {"x": "<script>alert(1)</script>"}})
        self.assertEqual(r.status, 201, r)
        for path in ("/v1/streams", "/v1/streams/sniff/facts", "/v1/facts/%d" % r.json()["id"],
                     "/healthz"):
            with self.subTest(path=path):
                r = c.get(path)
                self.assertEqual(r.status, 200, r)
                self.assertEqual(r.header("X-Content-Type-Options"), "nosniff", r.headers)

    def test_root_is_the_page_with_its_security_policy(self):
        r = self.anon.get("/")
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.header("Content-Type"), "text/html; charset=utf-8")
        self.assertEqual(r.body, read("index.html"))
        csp = r.header("Content-Security-Policy") or ""
        self.assertIn("default-src 'self'", csp)
        self.assertIn("frame-ancestors 'none'", csp)
        # Two that do not fall back to default-src.
        self.assertIn("base-uri 'none'", csp)
        self.assertIn("form-action 'self'", csp)

    # httplib cut every answer to the request's Range and still said 200
    # (a truncated app.js a cache could keep), and built overlapping ranges
    # in memory: 2,650 times "0-" made a 352 MB answer of app.js, for anyone.
    def test_range_is_ignored_and_answers_are_whole(self):
        c = self.client(self.server)
        app_js = read("app.js")
        many = "bytes=" + ",".join(["0-"] * 2650)
        for who, path, rng in [(self.anon, "/assets/app.js", "bytes=0-10"),
                               (self.anon, "/assets/app.js", many),
                               (self.anon, "/healthz", "bytes=0-3"),
                               (c, "/v1/streams", "bytes=5-")]:
            with self.subTest(path=path, range=rng[:20]):
                whole = who.get(path)
                r = who.get(path, headers={"Range": rng})
                self.assertEqual(r.status, 200, r)
                self.assertIsNone(r.header("Content-Range"), r.headers)
                # A HEAD is told so (httplib said "Accept-Ranges: bytes").
                head = who.request("HEAD", path)
                self.assertEqual(head.status, 200, head)
                self.assertEqual(head.header("Accept-Ranges"), "none", head.headers)
                if path == "/assets/app.js":
                    self.assertEqual(r.body, app_js)
                else:
                    self.assertEqual(set(r.json()), set(whole.json()))
        # One that cannot be parsed is refused (httplib checks it before
        # Kennel sees the request), naming the header.
        r = self.anon.get("/assets/app.js", headers={"Range": "bytes=abc"})
        self.assertErrorShape(r, 416, code="invalid_argument")
        self.assertEqual(r.json()["error"]["field"], "Range")
        self.assertEqual(self.anon.get("/healthz").status, 200)

    def test_etag_and_304_when_unchanged(self):
        for path in ["/", "/assets/app.js", "/assets/app.css"]:
            with self.subTest(path=path):
                r = self.anon.get(path)
                etag = r.header("ETag")
                # Weak: the gzipped and the plain answer share it.
                self.assertTrue(etag and etag.startswith('W/"') and etag.endswith('"'), r.headers)
                again = self.anon.get(path, headers={"If-None-Match": etag})
                self.assertEqual(again.status, 304, again)
                self.assertEqual(again.body, b"")
                self.assertEqual(again.header("ETag"), etag)
                self.assertEqual(again.header("Vary"), "Accept-Encoding", again.headers)
                # Weak comparison, lists and "*" (RFC 9110, 13.1.2).
                for condition in (etag[2:], '"0000000000000000", ' + etag, "*"):
                    self.assertEqual(self.anon.get(path, headers={
                        "If-None-Match": condition}).status, 304, condition)
                stale = self.anon.get(path, headers={"If-None-Match": '"0000000000000000"'})
                self.assertEqual(stale.status, 200, stale)
        # Different files, different tags.
        tags = {self.anon.get("/assets/" + n).header("ETag") for n in web_files()}
        self.assertEqual(len(tags), len(web_files()))

    def test_unknown_assets_are_404_in_the_error_shape(self):
        for path in ["/assets/nope.js", "/assets/..%2fCMakeLists.txt", "/assets/.."]:
            with self.subTest(path=path):
                r = self.anon.get(path)
                self.assertErrorShape(r, 404, code="not_found")

    # A NUL ended the name where the file was opened: "app.css%00.png"
    # served app.css as an image, "%00" the directory itself; a hidden file
    # of the directory was served too.
    def test_web_dir_serves_plain_file_names_only(self):
        d = self.path("web")
        os.makedirs(os.path.join(d, "sub"))
        for name, text in [("index.html", "<!doctype html><title>t</title>"),
                           ("app.css", "body {}"), (".secret", "token")]:
            with open(os.path.join(d, name), "w", encoding="utf-8") as f:
                f.write(text)
        server = self.start_server(args=("--web-dir", d), db="web-dir.db")
        anon = Client(server.port, auth=None)
        self.addCleanup(anon.close)
        r = anon.get("/assets/app.css")
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.body, b"body {}")
        for path in ["/assets/app.css%00.png", "/assets/%00", "/assets/.secret", "/assets/sub",
                     "/assets/app.css%0a", "/assets/..%2fweb%2fapp.css"]:
            with self.subTest(path=path):
                self.assertErrorShape(anon.get(path), 404, code="not_found")

    def test_the_page_loads_without_credentials_but_its_data_needs_them(self):
        self.assertEqual(self.anon.get("/").status, 200)
        self.assertEqual(self.anon.get("/assets/app.js").status, 200)
        for path in ["/v1/models", "/v1/streams", "/v1/jobs", "/v1/keys", "/v1/status"]:
            with self.subTest(path=path):
                self.assertErrorShape(self.anon.get(path), 401, code="unauthenticated")
                self.assertEqual(self.client(self.server).get(path).status, 200)
        self.assertErrorShape(self.anon.get("/v1/auth/session"), 401)
        self.assertErrorShape(self.anon.post_json("/v1/models/x/train", {}), 401)

    def test_the_page_loads_nothing_from_elsewhere(self):
        html = read("index.html").decode("utf-8")
        for attr in re.findall(r'\s(?:src|href)="([^"]*)"', html):
            self.assertTrue(attr.startswith("/assets/") or attr.startswith("#"),
                            "index.html refers to %r" % attr)
        self.assertNotIn("<style", html)
        self.assertNotRegex(html, r"\sstyle=")
        self.assertNotRegex(html, r"<script(?![^>]*\ssrc=)[^>]*>")  # no inline script
        self.assertNotRegex(html, r"\son[a-z]+=")  # no inline event handlers
        for name in web_files():
            if name.endswith(".css"):
                css = read(name).decode("utf-8")
                self.assertNotRegex(css, r"@import|url\(\s*['\"]?(https?:)?//", name)
            if name.endswith(".js"):
                js = read(name).decode("utf-8")
                # The only absolute URL is the SVG namespace.
                urls = set(re.findall(r"https?://[^\s'\"`)]+", js))
                self.assertLessEqual(urls, {"http://www.w3.org/2000/svg"}, name)


if __name__ == "__main__":
    unittest.main()
