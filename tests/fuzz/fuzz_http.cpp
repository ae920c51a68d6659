// The connection loop (server/http_connection.cpp) under httplib's parser,
// through a real server on a loopback port: each input is sent as the bytes
// of one connection, which the client then half-closes. Properties: the
// server answers only with HTTP/1.1 responses, closes the connection once
// the client has stopped sending (within its read timeout, with room for a
// loaded machine), and keeps serving a well-formed request afterwards.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "server/errors.h"
#include "server/http_server.h"
#include "server/json_body.h"
#include "tests/fuzz/fuzz_common.h"

using namespace kennel;

namespace {

std::unique_ptr<http_server> start_server(int& port) {
    http_options options;
    options.port = 0;
    options.threads = 8;
    options.read_timeout_s = 1;
    options.keepalive_timeout_s = 1;
    options.max_body_bytes = 64 * 1024;
    std::vector<route> routes = {
        {"GET",
         "/items/{id}",
         [](const http_request& r) {
             return json_response("{\"id\":\"" + std::to_string(r.param("id").size()) + "\"}");
         },
         true,
         access::admin,
         {"q"}},
        {"POST", "/items",
         [](const http_request& r) {
             return json_response("{\"bytes\":" + std::to_string(r.body.size()) + "}", 201);
         },
         true},
        {"POST", "/objects",
         [](const http_request& r) {
             auto body = json_object_body(r, false);
             if (!body) return error_response(body.error());
             return json_response(body->dump(), 201);
         },
         true},
        {"GET", "/later",
         [](const http_request&) {
             auto d = std::make_shared<deferred_response>(
                 std::chrono::steady_clock::now() + std::chrono::seconds(1),
                 [] { return error_response(status(error_kind::unavailable, "late")); });
             d->complete(json_response("{\"later\":true}", 202));
             http_response r;
             r.deferred = d;
             return r;
         },
         true},
    };
    auto server = std::make_unique<http_server>(options, std::move(routes));
    auto bound = server->bind();
    if (!bound) fuzz::fail("the fuzz server could not bind");
    port = *bound;
    server->set_ready(true);
    server->start();
    return server;
}

// Sends `bytes` on a new connection, half-closes it, and returns what came
// back until the server closed; fails the run if it had not closed by then.
std::string exchange(int port, const std::string& bytes, std::chrono::seconds limit) {
    const int sock = ::socket(AF_INET, SOCK_STREAM, 0);
    if (sock < 0) fuzz::fail("socket() failed");
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<std::uint16_t>(port));
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::connect(sock, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0)
        fuzz::fail("connect() failed: the server stopped accepting");
    const auto due = std::chrono::steady_clock::now() + limit;
    std::string got;
    std::size_t sent = 0;
    bool closed = false;
    char buf[16384];
    if (bytes.empty()) ::shutdown(sock, SHUT_WR);
    while (!closed) {
        const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
            due - std::chrono::steady_clock::now());
        if (left.count() <= 0) {
            ::close(sock);
            fuzz::fail("the server kept a half-closed connection open past the limit");
        }
        pollfd p{sock, static_cast<short>(POLLIN | (sent < bytes.size() ? POLLOUT : 0)), 0};
        if (::poll(&p, 1, static_cast<int>(left.count())) <= 0) continue;
        if (p.revents & POLLOUT) {
            const ssize_t n =
                ::send(sock, bytes.data() + sent, bytes.size() - sent, MSG_NOSIGNAL | MSG_DONTWAIT);
            if (n > 0) sent += static_cast<std::size_t>(n);
            if (n < 0) sent = bytes.size();  // the server closed first: stop sending
            if (sent == bytes.size()) ::shutdown(sock, SHUT_WR);
        }
        if (p.revents & (POLLIN | POLLHUP | POLLERR)) {
            const ssize_t n = ::recv(sock, buf, sizeof buf, MSG_DONTWAIT);
            if (n > 0) got.append(buf, static_cast<std::size_t>(n));
            if (n == 0 || (n < 0 && errno != EAGAIN)) closed = true;
        }
    }
    ::close(sock);
    return got;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    static int port = 0;
    static std::unique_ptr<http_server> server = start_server(port);
    static std::uint64_t runs = 0;
    const std::string got = exchange(port, std::string(reinterpret_cast<const char*>(data), size),
                                     std::chrono::seconds(15));
    fuzz::require(got.empty() || got.rfind("HTTP/1.1 ", 0) == 0,
                  "the server wrote something other than an HTTP/1.1 response");
    if (++runs % 64 == 0) {
        const std::string ok =
            exchange(port, "GET /items/1 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
                     std::chrono::seconds(15));
        fuzz::require(ok.rfind("HTTP/1.1 200 ", 0) == 0, "the server stopped answering");
    }
    return 0;
}
