#include "server/http_server.h"
#include "store/log.h"

#include <arpa/inet.h>
#include <httplib.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <charconv>
#include <cstring>
#include <set>
#include <string_view>

#include "server/access_log.h"
#include "server/errors.h"
#include "server/http_connection.h"
#include "server/http_stats.h"

namespace kennel {

namespace {

// An IPv4 or IPv6 address as 16 bytes (IPv4 as ::ffff:a.b.c.d), so that the
// two spellings of one address compare equal; nullopt for anything else.
std::optional<std::array<unsigned char, 16>> ip_bytes(std::string_view text) {
    std::array<unsigned char, 16> out{};
    if (text.size() > 2 && text.front() == '[' && text.back() == ']')
        text = text.substr(1, text.size() - 2);  // [::1], as in RFC 7239
    const std::string s(text);
    in_addr v4{};
    if (::inet_pton(AF_INET, s.c_str(), &v4) == 1) {
        out[10] = out[11] = 0xff;
        std::memcpy(out.data() + 12, &v4, 4);
        return out;
    }
    if (::inet_pton(AF_INET6, s.c_str(), out.data()) == 1) return out;
    return std::nullopt;
}

std::string_view trimmed(std::string_view v) {
    while (!v.empty() && (v.front() == ' ' || v.front() == '\t')) v.remove_prefix(1);
    while (!v.empty() && (v.back() == ' ' || v.back() == '\t')) v.remove_suffix(1);
    return v;
}

}  // namespace

namespace {

bool is_trusted_bytes(const std::array<unsigned char, 16>& a,
                      const std::vector<std::string>& trusted) {
    for (const std::string& t : trusted) {
        if (ip_bytes(t) == a) return true;
    }
    return false;
}

}  // namespace

bool is_trusted_address(const std::string& address, const std::vector<std::string>& trusted) {
    const auto bytes = ip_bytes(address);
    return bytes && is_trusted_bytes(*bytes, trusted);
}

std::string client_address(const std::string& peer, std::string_view forwarded_for,
                           const std::vector<std::string>& trusted) {
    auto is_trusted = [&trusted](const std::array<unsigned char, 16>& a) {
        return is_trusted_bytes(a, trusted);
    };
    auto hop = ip_bytes(peer);
    if (!hop || !is_trusted(*hop)) return peer;
    std::string from = peer;
    // Right to left: each trusted hop vouches for the entry it appended.
    while (!forwarded_for.empty()) {
        const std::size_t comma = forwarded_for.rfind(',');
        const std::string_view entry = trimmed(
            comma == std::string_view::npos ? forwarded_for : forwarded_for.substr(comma + 1));
        forwarded_for =
            comma == std::string_view::npos ? std::string_view{} : forwarded_for.substr(0, comma);
        hop = ip_bytes(entry);
        if (!hop) return from;
        from = std::string(entry);
        if (!is_trusted(*hop)) return from;
    }
    return from;
}

std::optional<std::string> http_request::query_value(const std::string& name) const {
    auto it = query.find(name);
    if (it == query.end()) return std::nullopt;
    return it->second;
}

std::string_view http_request::header(std::string_view lower_name) const {
    // From the back: a repeated header's last value wins, as it always did.
    for (auto it = headers.rbegin(); it != headers.rend(); ++it) {
        if (it->first == lower_name) return it->second;
    }
    return {};
}

std::string origin_path(const std::string& path) {
    // RFC 9112, 3.2.2: a server must take the absolute form, which a client
    // sends to a proxy ("GET http://host/healthz"); Kennel serves one host.
    for (std::string_view scheme : {"http://", "https://"}) {
        if (path.size() < scheme.size() ||
            !std::equal(scheme.begin(), scheme.end(), path.begin(), [](char a, char b) {
                return a == std::tolower(static_cast<unsigned char>(b));
            }))
            continue;
        const std::size_t slash = path.find('/', scheme.size());
        return slash == std::string::npos ? "/" : path.substr(slash);
    }
    return path;
}

std::vector<std::string> split_path(const std::string& path) {
    std::vector<std::string> out;
    out.reserve(8);  // Kennel's routes have at most 6 segments: one allocation
    std::size_t i = 0;
    while (i < path.size()) {
        while (i < path.size() && path[i] == '/') ++i;
        std::size_t j = path.find('/', i);
        if (j == std::string::npos) j = path.size();
        if (j > i) out.push_back(path.substr(i, j - i));
        i = j;
    }
    return out;
}

namespace {

bool match_segments(const std::vector<std::string>& ps, const std::vector<std::string>& xs,
                    std::map<std::string, std::string>& params) {
    if (ps.size() != xs.size()) return false;
    auto is_param = [](const std::string& p) {
        return p.size() > 2 && p.front() == '{' && p.back() == '}';
    };
    // Literal segments first: most routes fail there, before any allocation.
    for (std::size_t i = 0; i < ps.size(); ++i) {
        if (!is_param(ps[i]) && ps[i] != xs[i]) return false;
    }
    params.clear();
    for (std::size_t i = 0; i < ps.size(); ++i) {
        if (is_param(ps[i])) params[ps[i].substr(1, ps[i].size() - 2)] = xs[i];
    }
    return true;
}

}  // namespace

bool match_route(const std::string& pattern, const std::string& path,
                 std::map<std::string, std::string>& params) {
    return match_segments(split_path(pattern), split_path(path), params);
}

namespace {

// A request's start, for its duration and the access log's time.
struct exchange_start {
    std::chrono::steady_clock::time_point began;
    std::chrono::system_clock::time_point received;
};

// What the access log needs of a request whose answer comes later, when
// httplib's Request is gone.
struct exchange_copy {
    std::string method, target, user_agent, remote, actor;
    access_entry who() const {
        return {.remote = remote,
                .actor = actor,
                .method = method,
                .target = target,
                .user_agent = user_agent};
    }
};

}  // namespace

struct http_server::impl {
    http_options options;
    std::vector<route> routes;
    std::vector<std::vector<std::string>> patterns;  // routes' patterns, split once
    http_engine server;  // httplib's parser under Kennel's connection loop
    int bound_port = 0;
    std::unique_ptr<http_stats> stats;
    access_log* access = nullptr;

    // From when its first byte came (`began`; by default the connection
    // loop's mark for the request being processed on this thread).
    exchange_start begin_exchange(
        std::chrono::steady_clock::time_point began = request_began_here()) const {
        using namespace std::chrono;
        exchange_start s;
        const auto now = steady_clock::now();
        s.began = began == steady_clock::time_point{} ? now : began;
        if (access)
            s.received =
                time_point_cast<system_clock::duration>(system_clock::now() - (now - s.began));
        return s;
    }

    // Counts an answer, and writes it to the access log: `e` names the
    // request (method, target, user agent, remote, actor); the rest is
    // filled in here.
    void end_exchange(const exchange_start& s, std::size_t route, int status, std::size_t bytes,
                      access_entry e = {}) const {
        const double seconds =
            std::chrono::duration<double>(std::chrono::steady_clock::now() - s.began).count();
        stats->record(route, status, seconds);
        if (!access) return;
        e.received = s.received;
        if (route < routes.size()) e.route = routes[route].pattern;
        e.status = status;
        e.bytes = bytes;
        e.seconds = seconds;
        access->add(e);
    }

    // The client a request came from (past trusted proxies).
    std::string client_of(const httplib::Request& req) const {
        if (options.trusted_proxies.empty()) return req.remote_addr;
        std::string forwarded;
        for (auto [it, end] = req.headers.equal_range("X-Forwarded-For"); it != end; ++it) {
            if (!forwarded.empty()) forwarded += ',';
            forwarded += it->second;
        }
        return client_address(req.remote_addr, forwarded, options.trusted_proxies);
    }

    // An answer written into `res` for a request no route took.
    void end_unrouted(const exchange_start& s, const httplib::Request& req,
                      const httplib::Response& res) const {
        // httplib sets the address only once it has parsed the request line.
        const std::string remote = !access                   ? std::string()
                                   : req.remote_addr.empty() ? request_peer_here()
                                                             : client_of(req);
        const std::string user_agent = req.get_header_value("User-Agent");
        end_exchange(s, stats->unmatched(), res.status, sent_bytes(req.method, res.body.size()),
                     {.remote = remote,
                      .method = req.method,
                      .target = req.target,
                      .user_agent = user_agent});
    }

    // A HEAD's answer carries no body.
    static std::size_t sent_bytes(std::string_view method, std::size_t body) {
        return method == "HEAD" ? 0 : body;
    }
};

namespace {

// httplib's default sets SO_REUSEPORT, which lets a second process bind the
// same port and steal connections. Kennel wants that bind to fail.
void kennel_socket_options(int sock) {
    int yes = 1;
    setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof yes);
}

// `value` is `token` in any case, with spaces or tabs around it.
bool same_token(std::string_view value, std::string_view token) {
    while (!value.empty() && (value.front() == ' ' || value.front() == '\t'))
        value.remove_prefix(1);
    while (!value.empty() && (value.back() == ' ' || value.back() == '\t')) value.remove_suffix(1);
    if (value.size() != token.size()) return false;
    for (std::size_t i = 0; i < value.size(); ++i) {
        if (std::tolower(static_cast<unsigned char>(value[i])) != token[i]) return false;
    }
    return true;
}

// Moves the body: a predict answer is written once, not copied again here.
void write_response(http_response&& ours, httplib::Response& res) {
    res.status = ours.status;
    for (const auto& [k, v] : ours.headers) res.set_header(k, v);
    res.body = std::move(ours.body);
    res.set_header("Content-Type", ours.content_type);
    // As render_response: no answer is ever sniffed as something else.
    res.set_header("X-Content-Type-Options", "nosniff");
}

// A Content-Type of multipart/* (any case, any parameters).
bool is_multipart(std::string_view content_type) {
    constexpr std::string_view prefix = "multipart/";
    if (content_type.size() < prefix.size()) return false;
    for (std::size_t k = 0; k < prefix.size(); ++k) {
        if (std::tolower(static_cast<unsigned char>(content_type[k])) != prefix[k]) return false;
    }
    return true;
}

// httplib answers 400 for a request line whose method it does not know
// ("FOO"; it has read the method and the version) and for a method it
// parses and routes nowhere (TRACE, CONNECT). A method Kennel does not
// serve is a 501 (RFC 9110, 15.6.2).
bool unserved_method(const httplib::Request& req) {
    const std::string& m = req.method;
    if (m.empty() || (req.version != "HTTP/1.1" && req.version != "HTTP/1.0")) return false;
    if (m == "GET" || m == "HEAD" || m == "POST" || m == "PUT" || m == "PATCH" || m == "DELETE" ||
        m == "OPTIONS")
        return false;
    // A token (RFC 9110, 5.6.2).
    return std::all_of(m.begin(), m.end(), [](unsigned char c) { return token_char(c); });
}

// httplib compresses an answer whenever the request accepts it, and with
// Brotli at its highest quality when "br" is listed, as every browser lists
// it: a 3.9 MB list of versions took 3.2 s of CPU instead of 0.15 s, and a
// 200-byte prediction cost most of the rate (gzip a quarter). Kennel lets it
// gzip answers of 16 KiB or more and nothing else, by rewriting the
// request's Accept-Encoding once the answer is known (httplib reads it only
// when it writes the answer).
constexpr std::size_t min_gzip_bytes = 16 * 1024;

// Accept-Encoding lists gzip (or *) without q=0 (RFC 9110, 12.5.3).
bool accepts_gzip(std::string_view accept) {
    std::optional<bool> gzip, any;
    while (!accept.empty()) {
        const std::size_t comma = accept.find(',');
        std::string_view item = accept.substr(0, comma);
        accept = comma == std::string_view::npos ? std::string_view{} : accept.substr(comma + 1);
        const std::size_t semi = item.find(';');
        const std::string_view coding = trimmed(item.substr(0, semi));
        bool allowed = true;
        if (semi != std::string_view::npos) {
            std::string_view params = item.substr(semi + 1);
            while (!params.empty()) {
                const std::size_t next = params.find(';');
                const std::string_view param = trimmed(params.substr(0, next));
                params =
                    next == std::string_view::npos ? std::string_view{} : params.substr(next + 1);
                if (param.size() >= 2 && (param[0] == 'q' || param[0] == 'Q') && param[1] == '=') {
                    const std::string_view q = param.substr(2);
                    // q=0, 0., 0.0, 0.00, 0.000: refused.
                    allowed = !(q.find_first_not_of("0.") == std::string_view::npos && !q.empty() &&
                                q[0] == '0');
                }
            }
        }
        if (same_token(coding, "gzip") || same_token(coding, "x-gzip")) {
            gzip = allowed;
        } else if (coding == "*") {
            any = allowed;
        }
    }
    return gzip ? *gzip : any.value_or(false);
}

void choose_encoding(const httplib::Request& req, httplib::Response& res) {
    // httplib's request loop owns the Request; it is handed out as const.
    auto& headers = const_cast<httplib::Request&>(req).headers;
    const bool big = res.body.size() >= min_gzip_bytes;
    const bool gzip = big && accepts_gzip(req.get_header_value("Accept-Encoding"));
    headers.erase("Accept-Encoding");
    if (gzip) headers.emplace("Accept-Encoding", "gzip");
    // Caches keep a copy per Accept-Encoding of an answer that may be gzipped.
    if (big && !res.has_header("Vary")) res.set_header("Vary", "Accept-Encoding");
}

// "close" among the Connection header's options, in any case and in a list
// ("keep-alive, close"): httplib heeds only the exact "close", and kept such
// connections open (RFC 9110, 7.6.1; RFC 9112, 9.6).
bool asks_to_close(const httplib::Request& req) {
    for (auto [it, end] = req.headers.equal_range("Connection"); it != end; ++it) {
        for (std::string_view listed = it->second; !listed.empty();) {
            const std::size_t comma = listed.find(',');
            if (same_token(listed.substr(0, comma), "close")) return true;
            listed =
                comma == std::string_view::npos ? std::string_view() : listed.substr(comma + 1);
        }
    }
    return false;
}

// An answer after which the connection is closed (close_after_answer): the
// request's bytes were not all read, so what follows on the connection is
// not known to start a request.
void write_closing_response(http_response&& ours, const httplib::Request& req,
                            httplib::Response& res) {
    // httplib says so itself when the request asked for it.
    if (req.get_header_value("Connection") != "close")
        ours.headers.emplace_back("Connection", "close");
    write_response(std::move(ours), res);
    res.set_header("Date", http_date_now());
    choose_encoding(req, res);
    close_after_answer();
}

// "a=1&b=x%20y+z" into its names and values, %XX and "+" decoded as in a
// form (httplib's own decoding, which also read them from a form body).
std::string decode_query_part(std::string_view text) {
    std::string out;
    out.reserve(text.size());
    const auto hex = [](char c) -> int {
        if (c >= '0' && c <= '9') return c - '0';
        if (c >= 'a' && c <= 'f') return c - 'a' + 10;
        if (c >= 'A' && c <= 'F') return c - 'A' + 10;
        return -1;
    };
    for (std::size_t i = 0; i < text.size(); ++i) {
        if (text[i] == '+') {
            out += ' ';
        } else if (text[i] == '%' && i + 2 < text.size() && hex(text[i + 1]) >= 0 &&
                   hex(text[i + 2]) >= 0) {
            out += static_cast<char>(hex(text[i + 1]) * 16 + hex(text[i + 2]));
            i += 2;
        } else {
            out += text[i];  // a "%" not followed by two hex digits stays as it is
        }
    }
    return out;
}

std::multimap<std::string, std::string> parse_query_string(std::string_view text) {
    std::multimap<std::string, std::string> out;
    std::set<std::string_view> seen;
    while (!text.empty()) {
        const auto amp = text.find('&');
        const std::string_view pair = text.substr(0, amp);
        text = amp == std::string_view::npos ? std::string_view{} : text.substr(amp + 1);
        const auto eq = pair.find('=');
        if (eq == 0 || pair.empty()) continue;  // no name
        // The same pair twice means one thing, as httplib read it.
        if (!seen.insert(pair).second) continue;
        out.emplace(
            decode_query_part(pair.substr(0, eq)),
            eq == std::string_view::npos ? std::string() : decode_query_part(pair.substr(eq + 1)));
    }
    return out;
}

// A 400 for the first query parameter the route does not read, naming the
// ones it does.
std::optional<http_response> unknown_query_parameter(const route& r, const http_request& req) {
    if (r.query.size() == 1 && r.query[0] == "*") return std::nullopt;
    for (const auto& [name, value] : req.query) {
        if (std::find(r.query.begin(), r.query.end(), name) != r.query.end()) continue;
        std::string takes;
        for (const auto& q : r.query) takes += (takes.empty() ? "" : ", ") + q;
        return error_response(
            invalid(name, "unknown query parameter \"" + name + "\": " + r.method + " " +
                              r.pattern + (takes.empty() ? " takes none" : " takes " + takes)));
    }
    return std::nullopt;
}

// A 400 for an If-Match or If-None-Match sent to a write that reads none:
// the write went ahead unconditionally, and the client believed it was
// guarded. On a GET, If-None-Match is a browser's cache check, not an error.
std::optional<http_response> unread_condition(const route& r, const http_request& req) {
    if (r.conditional || r.method == "GET") return std::nullopt;
    for (const auto& [name, value] : req.headers) {
        (void)value;
        const char* shown = name == "if-match"        ? "If-Match"
                            : name == "if-none-match" ? "If-None-Match"
                                                      : nullptr;
        if (!shown) continue;
        return error_response(invalid(
            shown,
            r.method + " " + r.pattern + " takes no " + shown +
                " condition, so it would not be checked; the conditional writes are PUT of a "
                "model, PUT and DELETE of an alias, a rollback, and PUT or end of an "
                "experiment"));
    }
    return std::nullopt;
}

}  // namespace

http_server::http_server(http_options options, std::vector<route> routes)
    : impl_(std::make_unique<impl>()) {
    impl_->options = std::move(options);
    impl_->routes = std::move(routes);
    std::vector<http_stats::route_label> labels;
    for (const route& r : impl_->routes) {
        impl_->patterns.push_back(split_path(r.pattern));
        labels.push_back({r.method, r.pattern});
    }
    impl_->stats = std::make_unique<http_stats>(std::move(labels));
    auto& svr = impl_->server;
    const http_options& o = impl_->options;

    // Measured: without TCP_NODELAY a keep-alive client waits on Nagle's
    // delay (~40 requests/s per connection). A keep-alive connection holds
    // a worker while busy; idle, it is parked off the pool (see
    // connection_parker), so the pool bounds concurrent requests, not clients.
    svr.set_tcp_nodelay(true);
    svr.on_loop_answer([this](const http_response& r, const std::string& peer,
                              std::chrono::steady_clock::time_point began) {
        impl_->end_exchange(impl_->begin_exchange(began), impl_->stats->unmatched(), r.status,
                            r.body.size(), {.remote = peer});
    });
    svr.set_socket_options(kennel_socket_options);
    int threads = std::max(1, o.threads);
    svr.new_task_queue = [this, threads] {
        return impl_->server.make_task_queue(static_cast<std::size_t>(threads));
    };
    svr.set_keep_alive_max_count(o.keepalive_max_requests);
    svr.set_keep_alive_timeout(o.keepalive_timeout_s);
    svr.set_read_timeout(o.read_timeout_s, 0);
    svr.set_payload_max_length(o.max_body_bytes);

    // httplib answers some errors itself (413 for an oversize body, 400 for
    // a request line or header it cannot parse); give them Kennel's error
    // shape. It stops reading where it failed, so what follows is not known
    // to start a request: the connection is closed after the answer, as
    // nginx does (it was read as more requests: "BAD\r\nGET ..." got a 400
    // and a 200).
    svr.set_error_handler([this](const httplib::Request& req, httplib::Response& res) {
        if (!res.body.empty()) return;
        // A read given up for a stop: the connection loop drops this answer
        // and says 503 itself (and counts that one).
        if (request_reading_stopped_here()) return;
        http_response r;
        if (res.status == 413) {
            // The declared length when it is a plain number (0: none known).
            const std::string declared = req.get_header_value("Content-Length");
            std::uint64_t length = 0;
            std::from_chars(declared.data(), declared.data() + declared.size(), length);
            r = error_response(body_too_large(impl_->options.max_body_bytes, length));
        } else if (res.status == 400 && unserved_method(req)) {
            r = error_response(status(error_kind::not_implemented,
                                      "method " + req.method +
                                          " is not implemented; Kennel's routes take GET, HEAD, "
                                          "POST, PUT and DELETE"));
        } else if (res.status == 404) {
            // No route of httplib's matched: ".*" stops at a line break, so a
            // path with an encoded one ("%0a") reaches no handler.
            r = error_response(
                status(error_kind::not_found, "no route for " + req.method + " " + req.path));
        } else if (res.status == 416) {
            // httplib's own check, before any handler (which would ignore it).
            r = error_response(status(error_kind::invalid_argument,
                                      "the Range header \"" + req.get_header_value("Range") +
                                          "\" cannot be parsed; Kennel answers whole, so send "
                                          "none",
                                      "Range"));
            r.status = 416;
        } else if (res.status == 400 && is_multipart(req.get_header_value("Content-Type"))) {
            // httplib parses a multipart body before any route sees it, and
            // one that does not parse ended here as a "malformed request";
            // a well-formed one is refused 415 by its route.
            r = error_response(status(error_kind::unsupported_media,
                                      "a multipart body is not accepted (and this one cannot "
                                      "be read as one); send application/json",
                                      "Content-Type"));
        } else {
            // httplib does not say which line failed, or why; a header line
            // over its limit is the usual cause from a real client.
            r = error_response(
                status(error_kind::invalid_argument,
                       "malformed HTTP request (status " + std::to_string(res.status) +
                           "): a request line or header that cannot be parsed, or a header line "
                           "longer than " +
                           std::to_string(http_max_line_bytes) + " bytes"));
            r.status = res.status;
        }
        write_closing_response(std::move(r), req, res);
        impl_->end_unrouted(impl_->begin_exchange(), req, res);
    });
    svr.set_exception_handler(
        [](const httplib::Request& req, httplib::Response& res, std::exception_ptr ep) {
            std::string what = "unknown exception";
            try {
                std::rethrow_exception(ep);
            } catch (const std::exception& e) {
                what = e.what();
            } catch (...) {
            }
            write_response(error_response(status(error_kind::internal, what)), res);
            choose_encoding(req, res);
        });

    // Answers into `res`, or returns the answer another thread will finish;
    // `matched` is the route taken, if any.
    auto route_request = [this](const httplib::Request& req, httplib::Response& res,
                                http_request& ours,
                                std::size_t& matched) -> std::shared_ptr<deferred_response> {
        ours.method = req.method == "HEAD" ? "GET" : req.method;
        ours.path = origin_path(req.path);
        // From the request target only: httplib also puts the fields of a
        // form-encoded body in `params`, which then read as query parameters.
        const auto question = req.target.find('?');
        if (question != std::string::npos)
            ours.query = parse_query_string(std::string_view(req.target).substr(question + 1));
        const bool via_trusted_proxy =
            !impl_->options.trusted_proxies.empty() &&
            is_trusted_address(req.remote_addr, impl_->options.trusted_proxies);
        ours.headers.reserve(req.headers.size());
        for (const auto& [k, v] : req.headers) {
            // httplib adds the connection's addresses as pseudo-headers;
            // remote_addr carries what Kennel uses of them.
            if (k == "REMOTE_ADDR" || k == "REMOTE_PORT" || k == "LOCAL_ADDR" || k == "LOCAL_PORT")
                continue;
            std::string lk = k;
            // ASCII only, as header names are: std::tolower consults the locale
            // for every character.
            for (char& c : lk) {
                if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
            }
            // What a proxy says of the client's request (its host, its
            // scheme) counts only from a proxy named with --trusted-proxy:
            // from anyone else it is whatever the client chose to send.
            if (!via_trusted_proxy &&
                (lk == "x-forwarded-host" || lk == "x-forwarded-proto" || lk == "forwarded"))
                continue;
            ours.headers.emplace_back(std::move(lk), v);
        }
        // httplib's Request is a non-const local of its request loop, handed
        // to handlers as const, and its body is not read after the handler:
        // take it instead of copying (a batch of facts can be megabytes).
        ours.body = std::move(const_cast<httplib::Request&>(req).body);
        ours.remote_addr = impl_->client_of(req);

        // httplib decodes the path before routing: ".../likes%2Fversions"
        // reached the versions route, where a proxy allowing paths by their
        // raw text saw another one (RFC 3986, 2.2: an encoded "/" is data).
        // No name Kennel gives holds a "/", so no route has one.
        const std::string_view raw_path = std::string_view(req.target).substr(0, question);
        for (std::size_t at = raw_path.find('%'); at != std::string_view::npos;
             at = raw_path.find('%', at + 1)) {
            if (raw_path.substr(at + 1, 2) == "2F" || raw_path.substr(at + 1, 2) == "2f") {
                write_response(error_response(status(
                                   error_kind::not_found,
                                   "no route for " + ours.method + " " + std::string(raw_path) +
                                       ": an encoded slash (%2F) is part of a name, not a "
                                       "path separator, and no name holds one")),
                               res);
                return nullptr;
            }
        }
        bool path_known = false;
        std::string allowed;
        const auto segments = split_path(ours.path);
        for (std::size_t i = 0; i < impl_->routes.size(); ++i) {
            const route& r = impl_->routes[i];
            std::map<std::string, std::string> params;
            if (!match_segments(impl_->patterns[i], segments, params)) continue;
            path_known = true;
            if (r.method != ours.method) {
                // A GET route answers HEAD too (it is served as GET).
                const std::string m = r.method == "GET" ? "GET, HEAD" : r.method;
                if (allowed.find(r.method) == std::string::npos) {
                    allowed += allowed.empty() ? m : ", " + m;
                }
                continue;
            }
            matched = i;
            if (r.needs_ready && !ready_) {
                http_response resp = error_response(
                    status(error_kind::unavailable,
                           "Kennel is not ready (starting up or shutting down); retry shortly"));
                // Said and done: a stopping server closes the connection
                // next, and a client that sent its next request on it got
                // no answer at all (it could not tell whether a POST was
                // stored).
                resp.headers.emplace_back("Connection", "close");
                close_after_answer();
                write_response(std::move(resp), res);
                return nullptr;
            }
            ours.path_params = std::move(params);
            if (auth_ && r.needs != access::open) {
                if (auto refused = auth_(ours, r.needs)) {
                    // Basic is offered too (wget, curl --anyauth and
                    // urllib's handler wait for it), but not to the admin
                    // page's own requests (X-Kennel-Page, or a script's
                    // fetch): a browser would prompt for it over the page's
                    // sign-in.
                    const std::string_view mode = ours.header("sec-fetch-mode");
                    if (refused->status == 401 && (mode.empty() || mode == "navigate") &&
                        ours.header("x-kennel-page").empty()) {
                        for (auto& [name, value] : refused->headers) {
                            if (name == "WWW-Authenticate")
                                value = "Bearer realm=\"kennel\", Basic realm=\"kennel\"";
                        }
                    }
                    write_response(std::move(*refused), res);
                    return nullptr;
                }
            }
            // A parameter given twice has no one meaning (the first was
            // read and the other dropped without a word); no route takes a
            // list that way. The multimap keeps equal names side by side.
            for (auto it = ours.query.begin(); it != ours.query.end(); ++it) {
                if (auto next = std::next(it);
                    next != ours.query.end() && next->first == it->first) {
                    write_response(
                        error_response(invalid(it->first, "the query parameter \"" + it->first +
                                                              "\" is given twice; send it once")),
                        res);
                    return nullptr;
                }
            }
            if (auto unknown = unknown_query_parameter(r, ours)) {
                write_response(std::move(*unknown), res);
                return nullptr;
            }
            if (auto ignored = unread_condition(r, ours)) {
                write_response(std::move(*ignored), res);
                return nullptr;
            }
            http_response answer = r.handler(ours);
            if (answer.deferred) {
                // The connection loop sends it when it is ready; what
                // httplib writes for `res` is dropped.
                return std::move(answer.deferred);
            }
            write_response(std::move(answer), res);
            return nullptr;
        }
        if (path_known) {
            http_response resp = error_response(status(
                error_kind::method_not_allowed, "method " + req.method + " is not allowed on " +
                                                    ours.path + "; allowed: " + allowed));
            resp.headers.emplace_back("Allow", allowed);
            write_response(std::move(resp), res);
            return nullptr;
        }
        write_response(error_response(status(error_kind::not_found,
                                             "no route for " + ours.method + " " + ours.path)),
                       res);
        return nullptr;
    };
    auto dispatch = [this, route_request](const httplib::Request& req, httplib::Response& res) {
        const exchange_start start = impl_->begin_exchange();
        http_request ours;
        std::size_t matched = impl_->stats->unmatched();
        std::shared_ptr<deferred_response> later;
        try {
            later = route_request(req, res, ours, matched);
        } catch (const std::exception& e) {
            // As the exception handler below, but counted with its route.
            write_response(error_response(status(error_kind::internal, e.what())), res);
        }
        // A stop has begun, or the client asked: the connection closes after
        // this answer, which says so (the client's next request would be lost).
        const bool closes = impl_->server.closing() || asks_to_close(req);
        if (closes) close_after_answer();
        if (later) {
            // The request's strings outlive it, for the log (when there is one).
            exchange_copy copy;
            if (impl_->access)
                copy = {req.method, req.target, req.get_header_value("User-Agent"),
                        std::move(ours.remote_addr), std::move(ours.actor)};
            later->on_rendered(
                [this, start, matched, copy = std::move(copy)](const http_response& r) {
                    impl_->end_exchange(start, matched, r.status, r.body.size(), copy.who());
                });
            defer_answer(std::move(later));
            return;
        }
        if (closes && !res.has_header("Connection") &&
            req.get_header_value("Connection") != "close")
            res.set_header("Connection", "close");
        res.set_header("Date", http_date_now());
        choose_encoding(req, res);
        // httplib says "Accept-Ranges: bytes" to a HEAD; Kennel ignores Range.
        if (req.method == "HEAD") res.set_header("Accept-Ranges", "none");
        const std::string user_agent =
            impl_->access ? req.get_header_value("User-Agent") : std::string();
        impl_->end_exchange(start, matched, res.status,
                            impl::sent_bytes(req.method, res.body.size()),
                            {.remote = ours.remote_addr,
                             .actor = ours.actor,
                             .method = req.method,
                             .target = req.target,
                             .user_agent = user_agent});
    };
    // Runs before httplib reads the body. httplib 0.11 enforces the payload
    // limit only on bodies with a Content-Length and would read a chunked body
    // of any size into memory, so such bodies are refused unread; the
    // connection is closed since its unread body cannot be skipped.
    svr.set_pre_routing_handler([this, dispatch](const httplib::Request& req,
                                                 httplib::Response& res) {
        // A request refused here, unread: counted without a route.
        auto refuse = [&](http_response r) {
            write_closing_response(std::move(r), req, res);
            impl_->end_unrouted(impl_->begin_exchange(), req, res);
            return httplib::Server::HandlerResponse::Handled;
        };
        // Answers are whole: httplib cut every answer to a request's Range
        // (still "200 OK"), and built many overlapping ranges in memory: 8 KB
        // of "0-," made a 352 MB answer of app.js, for anyone. A server may
        // ignore Range (RFC 9110, 14.2); one it cannot parse is a 416 before
        // this runs.
        const_cast<httplib::Request&>(req).ranges.clear();
        // httplib inflates a gzip or deflate body with no bound after
        // --max-body was checked against the compressed bytes: 300 KB grew
        // to 300 MB in memory. Bodies are taken as sent, or refused unread.
        if (const std::string ce = req.get_header_value("Content-Encoding");
            !ce.empty() && !same_token(ce, "identity")) {
            http_response r = error_response(status(
                error_kind::unsupported_media,
                "Content-Encoding \"" + ce + "\" is not accepted: send the body uncompressed",
                "Content-Encoding"));
            // The codings a body may have (RFC 9110, 15.5.16).
            r.headers.emplace_back("Accept-Encoding", "identity");
            return refuse(std::move(r));
        }
        std::string te = req.get_header_value("Transfer-Encoding");
        if (te.empty()) {
            const std::string length = req.get_header_value("Content-Length");
            if (length.empty()) {
                // No length and no chunks: an empty body (RFC 9112, 6.3). httplib
                // would read a POST's body until the read timeout (curl -X POST
                // without -d waited 10 s for a 400), so it is answered here.
                if (req.method == "POST" || req.method == "PUT" || req.method == "PATCH") {
                    dispatch(req, res);
                    return httplib::Server::HandlerResponse::Handled;
                }
                return httplib::Server::HandlerResponse::Unhandled;
            }
            if (req.get_header_value_count("Content-Length") > 1) {
                // Where the body ends is not known (RFC 9112, 6.3: a 400): httplib
                // read it by the first, and the rest of what the other framed as a
                // next request. Identical ones are refused too (no client sends them).
                return refuse(error_response(status(error_kind::invalid_argument,
                                                    "Content-Length is sent more than once",
                                                    "Content-Length")));
            }
            std::uint64_t n = 0;
            auto [end, ec] = std::from_chars(length.data(), length.data() + length.size(), n);
            const bool number = ec == std::errc() && end == length.data() + length.size();
            if (!number && ec != std::errc::result_out_of_range) {
                // httplib reads "-5" as 2^64-5 and skipped that many bytes
                // until its read timeout before answering 413.
                http_response r = error_response(
                    status(error_kind::invalid_argument,
                           "Content-Length \"" + length + "\" is not a number of bytes",
                           "Content-Length"));
                return refuse(std::move(r));
            }
            const bool too_long =
                ec == std::errc::result_out_of_range || n > impl_->options.max_body_bytes;
            if (!too_long) return httplib::Server::HandlerResponse::Unhandled;
            // Refused before any of it is read (httplib answered only after its
            // read timeout); the unread body cannot be skipped, so close.
            http_response r = error_response(
                body_too_large(impl_->options.max_body_bytes, ec == std::errc() ? n : 0));
            return refuse(std::move(r));
        }
        http_response r =
            error_response(status(error_kind::length_required,
                                  "bodies must be sent with a Content-Length (at most " +
                                      std::to_string(impl_->options.max_body_bytes) +
                                      " bytes); Transfer-Encoding \"" + te + "\" is not accepted"));
        return refuse(std::move(r));
    });

    svr.Get(".*", dispatch);
    svr.Post(".*", dispatch);
    svr.Put(".*", dispatch);
    svr.Patch(".*", dispatch);
    svr.Delete(".*", dispatch);
    svr.Options(".*", dispatch);
}

http_server::~http_server() {
    stop();
}

void http_server::set_access_log(access_log* log) {
    impl_->access = log;
}

const http_stats& http_server::stats() const {
    return *impl_->stats;
}

result<int> http_server::bind() {
    auto& svr = impl_->server;
    const http_options& o = impl_->options;
    if (o.port == 0) {
        int port = svr.bind_to_any_port(o.host);
        if (port < 0) return status(error_kind::unavailable, "cannot bind " + o.host);
        impl_->bound_port = port;
        raise_listen_backlog(port);
        return port;
    }
    if (!svr.bind_to_port(o.host, o.port)) {
        return status(error_kind::unavailable,
                      "cannot listen on " + o.host + ":" + std::to_string(o.port) +
                          " (is another Kennel or another program using the port?)");
    }
    impl_->bound_port = o.port;
    raise_listen_backlog(o.port);
    return o.port;
}

void http_server::start() {
    thread_ = std::thread([this] {
        name_this_thread("kennel-http");  // httplib's workers inherit the name
        impl_->server.listen_after_bind();
    });
    // httplib's stop() does nothing until the listen loop has started, so a
    // stop() right after start() (a refused database) would hang the join.
    for (int i = 0; i < 5000 && !impl_->server.is_running(); ++i) {
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
}

std::size_t http_server::parked_connections() const {
    return impl_->server.parked_connections();
}

std::size_t http_server::parked_partial_requests() const {
    return impl_->server.parked_partial_requests();
}

std::uint64_t http_server::park_refused_full() const {
    return impl_->server.park_refused_full();
}

std::uint64_t http_server::streaming_refused() const {
    return impl_->server.streaming_refused();
}

void http_server::begin_stop() {
    ready_ = false;
    impl_->server.begin_closing();
}

void http_server::stop() {
    if (thread_.joinable()) {
        impl_->server.stop();
        thread_.join();
    }
}

}  // namespace kennel
