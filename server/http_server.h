// Kennel's HTTP edge: our own request/response types and route table over
// cpp-httplib, which only http_server.cpp includes.
//
// Threads: handlers run on the server's worker pool, many at once; they must
// be thread-safe. Routes are fixed before start() and read-only afterwards.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "store/completion.h"
#include "store/status.h"

namespace kennel {

struct http_request {
    std::string method;
    std::string path;
    std::map<std::string, std::string> path_params;  // from {name} segments
    std::multimap<std::string, std::string> query;
    // Names lowercased, in arrival order; a flat list because a request has
    // a handful and handlers look up one or two.
    std::vector<std::pair<std::string, std::string>> headers;
    std::string body;
    std::string remote_addr;
    std::string actor;  // who is asking, set by authentication ("admin", "key:ci-bot")
    // Set by authentication for an API key limited to some streams: the
    // streams its facts may go to (empty: any).
    std::vector<std::string> key_streams;

    std::optional<std::string> query_value(const std::string& name) const;
    // The last value of a header, or empty; a view into this request.
    std::string_view header(std::string_view lower_name) const;
    const std::string& param(const std::string& name) const { return path_params.at(name); }
};

class access_log;
class deferred_response;
class http_stats;

struct http_response {
    int status = 200;
    std::string content_type = "application/json";
    std::string body;
    std::vector<std::pair<std::string, std::string>> headers;
    // Set by a handler whose answer another thread will finish (see
    // deferred_response); the other fields are then unused.
    std::shared_ptr<deferred_response> deferred;
};

// An answer that another thread finishes. A handler that has handed its work
// to another thread (the fact writer) returns a response whose `deferred` is
// set; the request's thread then goes back to waiting for the connection's
// next request instead of sleeping until the work is done, and the thread
// that finishes the work calls complete(), which sends the answer on the
// connection at once. This saves each such request one sleep and one
// wake-up of its thread (the largest cost left per fact at 64 connections).
// If complete() has not been called by the deadline, the connection's
// thread sends the answer `on_timeout` makes instead (made only then) and a
// later complete() is dropped.
//
// Threads: complete() once, from any thread; the rest is called by the
// connection's own thread (server/http_connection.cpp).
class deferred_response {
public:
    deferred_response(std::chrono::steady_clock::time_point deadline,
                      std::function<http_response()> on_timeout);

    void complete(http_response answer);

    // --- for the connection loop ---
    // Hands over the socket; `keep_alive` is the value of the Keep-Alive
    // header. Returns the bytes to send now if the answer is already here
    // (the connection's thread sends them), else nullopt: complete() will.
    // Once `closing` is set (a stop began), the answer says
    // "Connection: close" instead, and closed() is true after settle().
    std::optional<std::string> attach(int sock, std::string keep_alive,
                                      const std::atomic<bool>* closing = nullptr);
    bool closed() const;
    // The same without a socket, for a connection that closes after this
    // answer: waits for the answer (or the deadline) and returns its bytes.
    std::string wait_and_render(bool close);
    // Whether the connection must act before the answer is settled: the
    // deadline passed, or complete() could not send everything at once.
    bool due(std::chrono::steady_clock::time_point now) const;
    std::chrono::steady_clock::time_point deadline() const { return deadline_; }
    // Waits until complete() has sent the answer or the deadline passed;
    // returns what the connection's thread still has to send (nothing, the
    // rest of the answer, or the timeout answer). The socket is ours again after.
    std::string settle();
    // Called with the answer once it is rendered (the handler's, or the
    // timeout's), on the thread that renders it; set before the connection
    // attaches. For the request counts and the access log.
    void on_rendered(std::function<void(const http_response&)> fn) { rendered_ = std::move(fn); }

private:
    enum class phase { open, attached, sending, settled };
    std::string render(const http_response& r, bool close);

    const std::chrono::steady_clock::time_point deadline_;
    const std::function<http_response()> on_timeout_;
    std::function<void(const http_response&)> rendered_;
    mutable std::mutex mu_;
    phase phase_ = phase::open;
    std::optional<http_response> answer_;  // complete() before attach()
    int sock_ = -1;
    std::string keep_alive_;
    const std::atomic<bool>* closing_ = nullptr;
    bool closed_ = false;  // the answer said "Connection: close"
    std::string unsent_;  // what complete() could not send without blocking
    completion sent_;     // set when complete() is done with the socket
};

using http_handler = std::function<http_response(const http_request&)>;

// What a route needs from the caller's credentials.
enum class access { open, any, ingest, predict, admin };

struct route {
    std::string method;   // "GET", "POST", ...
    std::string pattern;  // "/v1/models/{name}/versions/{n}"
    http_handler handler;
    bool needs_ready = true;  // answered 503 until the server is ready
    access needs = access::admin;
    // The query parameters it reads; any other is a 400 naming it (a
    // misspelt "limt" was dropped without a word). {"*"}: any, for pages,
    // health checks and scrapes that others' tools may decorate.
    std::vector<std::string> query = {};
    // Reads If-Match and If-None-Match (see preconditions.h). On any other
    // write they are a 400: a client sending one believes it is checked.
    bool conditional = false;
};

// Checks a request's credentials for a route; fills request.actor, or
// returns the error response (401/403/429).
using http_authenticator = std::function<std::optional<http_response>(http_request&, access)>;

struct http_options {
    std::string host = "127.0.0.1";
    int port = 8080;
    // Requests served at once, not open connections: an idle keep-alive
    // connection is parked off these threads after 100 ms (connection_parker,
    // http_connection.h).
    int threads = 128;
    int keepalive_timeout_s = 5;
    std::size_t keepalive_max_requests = 1000000;
    std::size_t max_body_bytes = 16 * 1024 * 1024;
    int read_timeout_s = 10;
    // Peers whose X-Forwarded-For is believed (client_address), and whose
    // X-Forwarded-Host, X-Forwarded-Proto and Forwarded reach handlers
    // (from any other peer those are dropped).
    std::vector<std::string> trusted_proxies;
};

// The address a request came from: the peer's, or, when the peer is one of
// `trusted` (a reverse proxy), the nearest address in X-Forwarded-For
// (`forwarded_for`, its values joined by commas) that is not a trusted proxy
// itself. An entry that is not an IP address ends the walk at the hop that
// added it. A client's own X-Forwarded-For is ignored unless a trusted
// proxy handed it on, and then only its entries left of the proxy's.
std::string client_address(const std::string& peer, std::string_view forwarded_for,
                           const std::vector<std::string>& trusted);

// Whether `address` is one of `trusted` (the same address however written).
bool is_trusted_address(const std::string& address, const std::vector<std::string>& trusted);

class http_server {
public:
    http_server(http_options options, std::vector<route> routes);
    ~http_server();
    http_server(const http_server&) = delete;
    http_server& operator=(const http_server&) = delete;

    // Binds the port without SO_REUSEPORT, so a second Kennel on the same
    // port fails here instead of silently sharing it. Returns the bound port
    // (useful with port 0).
    result<int> bind();
    // Serves on a background thread until stop().
    void start();
    // Stops accepting, lets in-flight requests finish, joins.
    void stop();

    void set_ready(bool ready) { ready_ = ready; }
    // A stop begins: not ready, and each answer from now on closes its
    // connection, saying so (before stop(), which waits for those in flight).
    void begin_stop();
    // Set before start(); without one every route is open (unit tests).
    void set_authenticator(http_authenticator auth) { auth_ = std::move(auth); }
    // Set before start(): every answered request is also written there.
    void set_access_log(access_log* log);
    // Requests answered, by route and status code, and their durations.
    const http_stats& stats() const;
    bool ready() const { return ready_; }
    // Idle keep-alive connections waiting off the worker pool.
    std::size_t parked_connections() const;
    // Of those, the ones holding part of a request still arriving.
    std::size_t parked_partial_requests() const;
    // Connections the parker refused since start because it was full (an
    // idle one is then closed; a partial request is read on its thread).
    std::uint64_t park_refused_full() const;
    // Requests refused 503 since start, unread, because a quarter of the
    // threads were already reading bodies as they arrived.
    std::uint64_t streaming_refused() const;

private:
    struct impl;
    std::unique_ptr<impl> impl_;
    std::atomic<bool> ready_{false};
    http_authenticator auth_;
    std::thread thread_;
};

// The path of a request target in origin form: "http://host/a?b" (the
// absolute form) gives "/a"; any other path is returned as it is.
std::string origin_path(const std::string& path);
// Splits "/a/b/c" into its segments; used for matching and tests.
std::vector<std::string> split_path(const std::string& path);
// Matches a path against a "{param}" pattern, filling params on success.
bool match_route(const std::string& pattern, const std::string& path,
                 std::map<std::string, std::string>& params);

}  // namespace kennel
