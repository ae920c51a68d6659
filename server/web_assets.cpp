// The admin page's files: compiled in by scripts/embed.cmake, or read from
// --web-dir while developing. Answers with ETag and 304 Not Modified so a
// browser revalidates cheaply and never runs stale code.
#include <algorithm>
#include <cctype>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "server/app.h"
#include "server/errors.h"
#include "server/handlers.h"
#include "store/embedded.h"
#include "store/sha256.h"

namespace kennel {
namespace {

const char* content_type_for(const std::string& name) {
    auto ends = [&name](const char* ext) {
        std::string e(ext);
        return name.size() >= e.size() && name.compare(name.size() - e.size(), e.size(), e) == 0;
    };
    if (ends(".html")) return "text/html; charset=utf-8";
    if (ends(".js") || ends(".mjs")) return "text/javascript; charset=utf-8";
    if (ends(".css")) return "text/css; charset=utf-8";
    if (ends(".svg")) return "image/svg+xml";
    if (ends(".png")) return "image/png";
    if (ends(".ico")) return "image/x-icon";
    if (ends(".json")) return "application/json";
    return "application/octet-stream";
}

// If-None-Match by weak comparison (RFC 9110, 13.1.2): "*", or a list of
// tags, each maybe W/, one of which is `tag` (quoted). An exact match alone
// missed W/"x" and lists.
bool none_match_holds(std::string_view header, std::string_view tag) {
    while (!header.empty()) {
        const std::size_t comma = header.find(',');
        std::string_view one = header.substr(0, comma);
        while (!one.empty() && (one.front() == ' ' || one.front() == '\t')) one.remove_prefix(1);
        while (!one.empty() && (one.back() == ' ' || one.back() == '\t')) one.remove_suffix(1);
        if (one.starts_with("W/")) one.remove_prefix(2);
        if (one == "*" || one == tag) return true;
        header = comma == std::string_view::npos ? std::string_view() : header.substr(comma + 1);
    }
    return false;
}

http_response asset(app& a, const http_request& req, const std::string& name) {
    // A file name of letters, digits, '-', '_' and '.', not beginning with
    // a dot: no way out of web/, no hidden file of --web-dir, and no NUL,
    // which ended the name where the file was opened ("app.css%00.png"
    // served app.css as an image).
    const bool safe = !name.empty() && name.front() != '.' &&
                      std::all_of(name.begin(), name.end(), [](unsigned char c) {
                          return std::isalnum(c) || c == '-' || c == '_' || c == '.';
                      });
    if (!safe) return error_response(status(error_kind::not_found, "no such file", "path"));
    std::string body, etag, type;
    if (!a.options().web_dir.empty()) {
        const std::filesystem::path file = std::filesystem::path(a.options().web_dir) / name;
        std::error_code ec;
        std::ifstream in;
        if (std::filesystem::is_regular_file(file, ec)) in.open(file, std::ios::binary);
        if (!in.is_open() || !in)
            return error_response(
                status(error_kind::not_found, "no file " + name + " in --web-dir", "path"));
        std::ostringstream s;
        s << in.rdbuf();
        body = s.str();
        etag = "\"" + sha256_hex(body).substr(0, 16) + "\"";
        type = content_type_for(name);
    } else {
        const embedded_file* found = nullptr;
        for (const embedded_file& f : embedded_web()) {
            if (std::string(f.path) == "web/" + name) found = &f;
        }
        if (!found) return error_response(status(error_kind::not_found, "no file " + name, "path"));
        body = std::string(found->text());
        etag = found->etag;
        type = found->content_type;
    }
    http_response r;
    // Weak: the gzipped and the plain answer share it (a strong tag names
    // one representation's bytes, RFC 9110, 8.8.3).
    r.headers.emplace_back("ETag", "W/" + etag);
    // Sent with the 304 too, which a cache treats as the 200 it stands for.
    r.headers.emplace_back("Vary", "Accept-Encoding");
    // Revalidate every time (cheap with the ETag): a new binary never serves old code.
    r.headers.emplace_back("Cache-Control", "no-cache");
    if (name == "index.html") {
        // The page loads nothing from elsewhere, and cannot be framed.
        r.headers.emplace_back("Content-Security-Policy",
                               "default-src 'self'; img-src 'self' data:; style-src 'self'; "
                               "script-src 'self'; frame-ancestors 'none'; base-uri 'none'; "
                               "form-action 'self'");
    }
    if (none_match_holds(req.header("if-none-match"), etag)) {
        r.status = 304;
        r.content_type = type;
        return r;
    }
    r.content_type = type;
    r.body = std::move(body);
    return r;
}

}  // namespace

http_response get_web_index(app& a, const http_request& req) { return asset(a, req, "index.html"); }
http_response get_web_asset(app& a, const http_request& req) { return asset(a, req, req.param("file")); }

}  // namespace kennel
