// Kennel's connection loop under cpp-httplib's request parser.
//
// Debian's cpp-httplib 0.11 serves each keep-alive connection with a loop
// that polls the idle socket every 10 ms (plus a 1 ms sleep), asks the
// kernel for the peer's address on every request, polls before every read,
// and sends a response's headers and body in two send() calls: two TCP
// segments per answer once TCP_NODELAY is on. kennel::http_engine keeps
// httplib's parsing, routing and response writing and replaces only what
// happens on the socket: one poll() per idle wait, reads that try the
// socket before polling, addresses looked up once per connection, the
// response gathered in a buffer and sent with one send(), and a request
// parsed only once it has arrived whole, connections waiting for bytes
// being parked off the worker threads (connection_parker).
//
// Only server/http_server.cpp includes this (it includes httplib.h).
#pragma once

#include <httplib.h>

#include "server/http_server.h"

#include <sys/types.h>

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <string_view>
#include <thread>
#include <unordered_map>
#include <vector>

namespace kennel {

// httplib's limits on the request line and on a header line
// (CPPHTTPLIB_REQUEST_URI_MAX_LENGTH, CPPHTTPLIB_HEADER_MAX_LENGTH, compiled
// into Debian's library).
inline constexpr std::size_t http_max_line_bytes = 8192;

// A character of a token (RFC 9110, 5.6.2): of a method, or a header's name.
inline bool token_char(unsigned char c) {
    const unsigned char lower = c | 0x20;
    return (c >= '0' && c <= '9') || (lower >= 'a' && lower <= 'z') ||
           std::string_view("!#$%&'*+-.^_`|~").find(static_cast<char>(c)) != std::string_view::npos;
}

// A request not all arrived yet, kept by a parked connection: its bytes so
// far and how far they have been looked at (buffered_socket_stream's read
// ahead).
struct partial_request {
    std::vector<char> bytes;
    std::chrono::steady_clock::time_point began{};  // its first byte was seen
    std::chrono::steady_clock::time_point due{};  // the rest must have come by then
    std::size_t head = 0;  // the head's length once its blank line is in `bytes`, else 0
    std::size_t need = 0;  // with `head`: the head and the body to wait for
};

// A keep-alive connection's socket as an httplib::Stream. Writes are
// gathered and sent by flush() (or when 64 KiB are pending, or before a
// read, so "100 Continue" is not held back); reads go through a buffer.
class buffered_socket_stream final : public httplib::Stream {
public:
    // `max_body`: a longer Content-Length is refused unread, so the body is
    // not waited for. `carried`: what a parked connection had of a request.
    buffered_socket_stream(int sock, std::chrono::milliseconds read_timeout,
                           std::chrono::milliseconds write_timeout, std::size_t max_body,
                           partial_request carried = {});

    bool is_readable() const override;
    bool is_writable() const override;
    ssize_t read(char* ptr, size_t size) override;
    ssize_t write(const char* ptr, size_t size) override;
    void get_remote_ip_and_port(std::string& ip, int& port) const override;
    void get_local_ip_and_port(std::string& ip, int& port) const override;
    int socket() const override { return sock_; }

    // Sends everything written so far; false when the peer is gone or the
    // write timed out.
    bool flush();
    enum class wait_result { request, timed_out, gone };
    // Waits up to `timeout` for the next request's first byte (`request`:
    // it, or the peer's close, is there to read), in slices so a stopping
    // server (its listener closed: `listener` is -1) is noticed: then a
    // request already sent is still `request` (it is answered), and an idle
    // connection is `gone` (as for an error), except that a connection's
    // first request (`first`) may take up to stop_grace to arrive: it was
    // accepted, so its client is sending it.
    // An earlier answer may still be owed (`owed`, see deferred_response):
    // when it needs the connection (its deadline passed, or its sender could
    // not send it all), it is settled here and `owed` is reset.
    wait_result wait_for_request(std::chrono::milliseconds timeout,
                                 const std::atomic<int>& listener,
                                 std::shared_ptr<deferred_response>& owed, bool first = false);
    // Drops what was written since the last flush (httplib's placeholder for
    // an answer that is deferred).
    void discard_output() { out_.clear(); }
    enum class ahead_result { whole, partial, ended };
    // Reads the next request (its first byte, or the peer's close, is there)
    // into the buffer until it is whole (`whole`: also a head too large for
    // the buffer, which httplib answers), waiting up to `patience` for more
    // bytes; `partial` when they did not come, `ended` when the peer closed
    // or failed (httplib reads that and gives up, as before).
    // Its head must be whole within the read timeout of its first byte, and
    // its body (read ahead when it fits) must keep coming at a least rate
    // (http_connection.cpp): request_due() says by when.
    ahead_result read_request(std::chrono::milliseconds patience);
    std::chrono::steady_clock::time_point request_due() const { return ahead_due_; }
    // The request read ahead (its head is whole) has a body httplib will
    // read on this thread as it arrives: too long to read ahead, or sent
    // after "100 Continue".
    bool body_streams() const { return ahead_head_ != 0 && ahead_streams_; }
    // The request read ahead is answered here, unread: 431 for a head that
    // does not fit the buffer, 400 for a malformed header line (see
    // refused_line()) or a percent-encoded Content-Length, 413 for a
    // Content-Length over --max-body (0: none of them).
    int head_refused() const { return ahead_refused_; }
    // What is wrong with the header line a 400 refuses (empty: none is).
    const std::string& refused_line() const { return ahead_refused_why_; }
    // The header that line is, when the refusal names one (else empty).
    const std::string& refused_field() const { return ahead_refused_field_; }
    std::uint64_t refused_length() const { return ahead_refused_length_; }
    std::size_t max_body() const { return max_body_; }
    // A copy of what has arrived of the next request, for the parker.
    partial_request partial() const;
    // httplib is to parse the next request now; the head must be complete by
    // its due time (from its first byte), the body must keep coming.
    void begin_request();
    // When the request httplib parses now began: its first byte was seen
    // (read ahead), or httplib began to read it.
    std::chrono::steady_clock::time_point request_began() const { return request_began_; }
    // When the request read ahead began (nothing read ahead: now).
    std::chrono::steady_clock::time_point ahead_began() const;
    const std::string& peer() const { return remote_ip_; }
    // Reads give up once `listener` is closed (the server is stopping), and
    // stopped_reading() says so: the rest of a slow upload is not waited for.
    void give_up_reading_when_closed(const std::atomic<int>& listener) { listener_ = &listener; }
    bool stopped_reading() const { return stopped_reading_; }

private:
    bool wait(short events, std::chrono::milliseconds timeout) const;
    // Waits for more bytes: the read timeout, cut short by the head's or the
    // body's due time.
    bool wait_to_read() const;
    // Follows the bytes handed out: the head until its blank line, then the
    // body, whose due time each byte moves on.
    void note_read(const char* p, std::size_t n);
    // Whether the next request is whole in the buffer, as read_request means.
    bool request_buffered(std::chrono::steady_clock::time_point now);

    int sock_;
    std::chrono::milliseconds read_timeout_;
    std::chrono::milliseconds write_timeout_;
    std::size_t max_body_;
    std::unique_ptr<char[]> in_;  // read buffer, allocated once per connection
    std::size_t in_pos_ = 0;
    std::size_t in_len_ = 0;
    bool peer_closed_ = false;  // reading ahead met the peer's close
    // The next request as read ahead (from in_pos_), like partial_request.
    bool ahead_begun_ = false;
    std::chrono::steady_clock::time_point ahead_began_{};
    std::chrono::steady_clock::time_point request_began_{};
    std::chrono::steady_clock::time_point ahead_due_{};
    std::size_t ahead_head_ = 0;
    std::size_t ahead_need_ = 0;
    bool ahead_streams_ = false;  // see body_streams()
    int ahead_refused_ = 0;       // see head_refused()
    std::uint64_t ahead_refused_length_ = 0;  // the Content-Length a 413 refuses
    std::string ahead_refused_why_;           // the header line a 400 refuses
    std::string ahead_refused_field_;         // see refused_field()
    // Looked at: searched for the blank line, or counted into the body's due.
    std::size_t ahead_seen_ = 0;
    std::string out_;
    bool in_headers_ = false;
    std::uint32_t last_bytes_ = 0;  // the last four bytes of the head read so far
    std::chrono::steady_clock::time_point headers_due_{};
    std::chrono::steady_clock::time_point body_due_{};
    std::string remote_ip_, local_ip_;
    int remote_port_ = 0, local_port_ = 0;
    const std::atomic<int>* listener_ = nullptr;
    mutable bool stopped_reading_ = false;
};

// Connections waiting for bytes, parked off the worker threads. A connection
// whose next request has not begun `park_after` after its last answer is
// handed here, and so is one whose request has begun but is not whole (with
// the bytes it has so far): one thread waits on all of them (epoll) and puts
// each back on the pool when bytes arrive, or closes it at its deadline (the
// keep-alive deadline, or the request's due time). A worker is then held
// while a connection has a request to process, not while it idles or a
// client trickles, so many more clients than workers can keep connections
// open, and slow ones (slowloris) do not starve the rest.
class connection_parker {
public:
    using resume_fn =
        std::function<void(int sock, std::size_t requests_left, partial_request carried)>;
    static constexpr std::chrono::milliseconds park_after{100};

    connection_parker() = default;
    connection_parker(const connection_parker&) = delete;
    connection_parker& operator=(const connection_parker&) = delete;
    ~connection_parker() { stop(); }

    // Starts the waiting thread; a connection with a request is resumed by
    // `resume` on one of `pool`'s threads.
    void start(httplib::TaskQueue* pool, resume_fn resume);
    // Takes the socket, and what it has of a request, until `deadline`;
    // false when stopped, not started or full (the caller still owns the
    // socket and the bytes).
    bool park(int sock, std::size_t requests_left, std::chrono::steady_clock::time_point deadline,
              partial_request carried = {});
    // Closes every parked socket and joins the thread; park() refuses after.
    void stop();
    std::size_t parked() const;
    // Of those, the ones holding part of a request (the rest are idle).
    std::size_t parked_partial() const;
    // Connections refused since start because the parker was full.
    std::uint64_t refused_full() const { return refused_full_.load(std::memory_order_relaxed); }
    // Called by stop() for each parked connection it tells "stopping" (503),
    // with what it had of its request. Set before start().
    void on_stopping_answer(std::function<void(int sock, const partial_request&)> fn) {
        stopping_answer_ = std::move(fn);
    }
    // Started and not stopped: a connection may be offered.
    bool running() const;

private:
    void run();

    using time_point = std::chrono::steady_clock::time_point;
    struct entry {
        std::size_t requests_left;
        time_point deadline;
        partial_request carried;
    };
    // Forgets a parked socket (under mu_); its entry is returned.
    entry unpark(std::unordered_map<int, entry>::iterator it);

    mutable std::mutex mu_;
    std::unordered_map<int, entry> parked_;
    // Ordered by deadline, so each is closed at its time, not at a sweep.
    std::set<std::pair<time_point, int>> deadlines_;
    time_point wakes_at_{};             // when the waiting thread looks at deadlines next
    std::size_t carried_bytes_ = 0;     // of the parked partial requests
    std::size_t partial_ = 0;           // parked entries carrying bytes
    std::atomic<bool> running_{false};  // set under mu_; read without it by running()
    std::atomic<std::uint64_t> refused_full_{0};
    std::size_t capacity_ = 0;  // half the process's file descriptors
    int epoll_ = -1;
    int wake_ = -1;  // an eventfd that interrupts the wait to stop
    httplib::TaskQueue* pool_ = nullptr;
    resume_fn resume_;
    std::function<void(int sock, const partial_request&)> stopping_answer_;
    std::thread thread_;
};

// httplib::Server with Kennel's connection loop (see the file comment).
// httplib declares the hook private; overriding a private virtual is
// allowed and is how httplib's own SSLServer replaces it.
class http_engine final : public httplib::Server {
public:
    // The worker pool, with idle connections parked off it; httplib owns it
    // and shuts it down when listening ends, which first closes the parked.
    httplib::TaskQueue* make_task_queue(std::size_t threads);
    std::size_t parked_connections() const { return parker_.parked(); }
    std::size_t parked_partial_requests() const { return parker_.parked_partial(); }
    std::uint64_t park_refused_full() const { return parker_.refused_full(); }
    // Requests refused 503 because streaming_limit_ bodies were arriving.
    std::uint64_t streaming_refused() const { return streaming_refused_.load(); }
    // Called with each answer the connection loop gives itself, to a request
    // httplib never parsed (a refused head, too many bodies arriving, a
    // stop), the peer's address and when the request began. Set before
    // listening.
    using loop_answer_fn = std::function<void(const http_response&, const std::string& peer,
                                              std::chrono::steady_clock::time_point began)>;
    void on_loop_answer(loop_answer_fn fn) { loop_answer_ = std::move(fn); }
    // A stop has begun: every answer from now on says "Connection: close"
    // and its connection closes after it (one answered "keep-alive" and then
    // closed lost the request a client sent next on it).
    void begin_closing() { closing_ = true; }
    bool closing() const { return closing_.load(std::memory_order_relaxed); }

private:
    bool process_and_close_socket(int sock) override;
    // The connection loop, from a new connection or a parked one resumed
    // with `requests_left` of its keep-alive allowance and what it had of a
    // request.
    void serve(int sock, std::size_t requests_left, partial_request carried = {});

    connection_parker parker_;
    // Bodies that arrive on a worker thread (body_streams) hold it as long
    // as their sender takes; at most a quarter of the pool does so at once,
    // the rest are 503 with Retry-After, unread. Without a bound, 140 slow
    // uploads (no credentials needed: a body is read before its handler
    // runs) held every thread and stalled every route for 10 s.
    std::size_t streaming_limit_ = 1;
    std::atomic<std::size_t> streaming_{0};
    // The pool's count of connections waiting for a worker (see serve).
    const std::atomic<std::size_t>* waiting_ = nullptr;
    std::atomic<std::uint64_t> streaming_refused_{0};
    std::atomic<bool> closing_{false};
    loop_answer_fn loop_answer_;
};

// Called by the request's handler adapter on the connection's thread: the
// answer to the request being processed is deferred. The connection loop
// takes it once httplib has returned.
void defer_answer(std::shared_ptr<deferred_response> d);

// What the calling thread's connection loop knows of the request httplib is
// processing on it (for its handlers and error handler): when its first
// byte came ({} outside one), its peer's address ("" outside one), and
// whether reading it was given up because the server is stopping (the loop
// then discards httplib's answer and says 503 itself).
std::chrono::steady_clock::time_point request_began_here();
const std::string& request_peer_here();
bool request_reading_stopped_here();

// Called on the connection's thread while a request is processed: the
// connection is closed once its answer is sent. For an answer that leaves
// the request's bytes unread (a line httplib cannot parse, a refused body):
// what follows is not known to start a request.
void close_after_answer();

// 503 for a request cut short because the server is stopping.
http_response stopping_answer();

// Why a body over --max-body (`limit` bytes) is refused: with its declared
// length when there is one (0: sent chunked, its length not known).
status body_too_large(std::uint64_t limit, std::uint64_t length);

// A response as httplib writes it: status line, headers, body. `keep_alive`
// is the Keep-Alive header's value unless `close`.
std::string render_response(const http_response& r, bool close, const std::string& keep_alive);
// The Date header's value for now (RFC 9110, 5.6.7), made once a second per
// thread.
const std::string& http_date_now();

// Debian's cpp-httplib listens with a compiled-in backlog of 5: many clients
// connecting at once overflow it and wait for TCP retransmissions (measured:
// p99 of seconds at 64 connections, stepping 0.4/0.8/1.7/3.3 s). httplib does
// not expose its socket, so this finds the process's listening socket on
// `port` and listens again, which on Linux only raises the backlog (to 1024).
void raise_listen_backlog(int port);

}  // namespace kennel
