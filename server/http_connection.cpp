#include "server/http_connection.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <charconv>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <optional>
#include <string_view>
#include <utility>

#include "server/errors.h"
#include "store/log.h"

namespace kennel {

namespace {

// Also the most a request may have, head and body, to be read ahead whole.
constexpr std::size_t read_buffer_bytes = 64 * 1024;
constexpr std::size_t write_gather_bytes = 64 * 1024;
// How often an idle connection looks whether the server is stopping.
constexpr std::chrono::milliseconds stop_check_interval{100};
// How long a stopping server waits for the first request of a connection it
// accepted just before the stop (a client of a fresh connection sends at
// once; one dropped unanswered could not know whether to send it again).
constexpr std::chrono::milliseconds stop_grace{500};
// A body has the read timeout from the end of its head, and this much more
// for each byte that arrives: a body slower than 1 kB/s on average is cut
// off. With only a timeout per read, a client sending a byte every few
// seconds held its thread for as long as its Content-Length allowed.
constexpr std::chrono::microseconds time_per_body_byte{1000};
// How long a request that is not whole waits on its thread for more bytes
// before it is parked. A request is usually sent with one write and arrives
// in one segment, or in several back to back: 64 KiB take about 5 ms at
// 100 Mbit/s. Longer, and a client that trickles costs a thread that long.
constexpr std::chrono::milliseconds read_ahead_patience{5};
// The parked requests' bytes, all together, are held to this; past it a
// partial request waits on its thread (as without a parker) rather than
// let clients fill the memory with 64 KiB each.
constexpr std::size_t max_carried_bytes = 64u << 20;

void address_of(const sockaddr_storage& addr, std::string& ip, int& port) {
    char buf[INET6_ADDRSTRLEN] = {};
    if (addr.ss_family == AF_INET) {
        const auto* a = reinterpret_cast<const sockaddr_in*>(&addr);
        inet_ntop(AF_INET, &a->sin_addr, buf, sizeof buf);
        port = ntohs(a->sin_port);
    } else if (addr.ss_family == AF_INET6) {
        const auto* a = reinterpret_cast<const sockaddr_in6*>(&addr);
        inet_ntop(AF_INET6, &a->sin6_addr, buf, sizeof buf);
        port = ntohs(a->sin6_port);
    }
    ip = buf;
}

// Sends what the socket takes now; returns how many bytes that was. `failed`
// is set when the connection is gone (anything but a full send buffer).
std::size_t send_without_blocking(int sock, std::string_view bytes, bool& failed) {
    std::size_t sent = 0;
    while (sent < bytes.size()) {
        ssize_t n =
            ::send(sock, bytes.data() + sent, bytes.size() - sent, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n > 0) {
            sent += static_cast<std::size_t>(n);
        } else if (n < 0 && errno == EINTR) {
            continue;
        } else {
            failed = !(n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK));
            break;
        }
    }
    return sent;
}

// Where a request's head ends in `bytes` (just past its blank line), or 0
// when it has not all arrived. Searching starts at `from`. httplib reads the
// request line, then header lines to the first that is just "\r\n".
std::size_t head_end(std::string_view bytes, std::size_t from) {
    const std::size_t at = bytes.find("\n\r\n", from);
    return at == std::string_view::npos ? 0 : at + 3;
}

// httplib answers a request line it cannot parse (400) without reading on
// for the headers: one that has come and does not end as HTTP/1.x's must do
// is handed to it as it is.
bool request_line_refused(std::string_view bytes) {
    const std::size_t eol = bytes.find('\n');
    if (eol == std::string_view::npos) return false;
    const std::string_view line = bytes.substr(0, eol + 1);
    return !line.ends_with(" HTTP/1.1\r\n") && !line.ends_with(" HTTP/1.0\r\n");
}

// What is wrong with a header line (CR LF included) that httplib would skip
// without a word (empty when nothing is): one that does not end in CR LF, a
// line folded onto the one before, a CR or NUL inside it, no colon, an empty
// name, whitespace before the colon, a name that is not a token. A proxy in
// front may read such a line as a header ("Content-Length : 5") where httplib
// saw none, and the two would then disagree on where the request ends; RFC
// 9112 (5.1, 5.2) says 400.
std::string malformed_field_line(std::string_view line) {
    // The line as sent, its first 40 bytes, '?' for any but printable ASCII
    // (the answer must be valid UTF-8).
    const auto quoted = [&] {
        std::string_view text = line.substr(0, line.size() - line.ends_with('\r'));
        std::string out = "header line \"";
        for (unsigned char c : text.substr(0, 40)) out += c >= 0x20 && c < 0x7f ? char(c) : '?';
        return out + (text.size() > 40 ? "...\"" : "\"");
    };
    if (line.empty() || line.back() != '\r') return quoted() + " does not end with CR LF";
    if (line.front() == ' ' || line.front() == '\t')
        return quoted() + " is folded onto the line before (begins with whitespace)";
    // A CR alone splits the line for some readers (RFC 9112, 2.2); a NUL is
    // never part of a field (RFC 9110, 5.5).
    const std::string_view text = line.substr(0, line.size() - 1);
    if (text.find('\r') != std::string_view::npos) return quoted() + " has a CR inside it";
    if (text.find('\0') != std::string_view::npos) return quoted() + " has a NUL byte";
    const std::size_t colon = line.find(':');
    if (colon == std::string_view::npos) return quoted() + " has no colon";
    if (colon == 0) return quoted() + " has no name before its colon";
    const char before = line[colon - 1];
    if (before == ' ' || before == '\t') return quoted() + " has whitespace before its colon";
    // A name is a token (RFC 9110, 5.1 and 5.6.2).
    const bool token = std::all_of(line.begin(), line.begin() + colon,
                                   [](unsigned char c) { return token_char(c); });
    if (!token) return quoted() + " has a name with a character a header name cannot have";
    return {};
}

// A header name against a lowercase one, in any case.
bool same_name(std::string_view name, std::string_view lower) {
    return name.size() == lower.size() &&
           std::equal(name.begin(), name.end(), lower.begin(), [](char x, char y) {
               return (x >= 'A' && x <= 'Z' ? static_cast<char>(x - 'A' + 'a') : x) == y;
           });
}

// An If-Match or If-None-Match line with no value (`If-Match: $ETAG` with the
// variable unset): httplib drops a header without a value, so the write went
// ahead with no condition at all. A well-formed line (CR LF included).
std::string empty_condition_line(std::string_view line) {
    const std::size_t colon = line.find(':');
    const std::string_view name = line.substr(0, colon);
    if (!same_name(name, "if-match") && !same_name(name, "if-none-match")) return {};
    std::string_view value = line.substr(colon + 1, line.size() - colon - 2);
    while (!value.empty() && (value.front() == ' ' || value.front() == '\t'))
        value.remove_prefix(1);
    while (!value.empty() && (value.back() == ' ' || value.back() == '\t')) value.remove_suffix(1);
    if (!value.empty()) return {};
    return "header line \"" + std::string(name) +
           ":\" has no value: it takes \"*\" or quoted entity tags, as ETag headers send them";
}

// What becomes of the request whose head is `head`, read in one walk of
// its lines. `malformed`: a header line httplib would skip (see
// malformed_field_line), refused with the body unread. `ahead`: the body's
// Content-Length, to be read ahead, when httplib would read that many and it
// is at most `limit`. `streams`: httplib will read it on the request's thread
// as it arrives (too long to read ahead, or sent after "100 Continue") and it
// is at most `max_body` (a longer one is refused unread). Otherwise none of
// them: httplib refuses or answers the rest as before. Nothing more is parsed
// than finding the length; anything else odd is left for httplib to answer.
struct body_plan {
    std::size_t ahead = 0;
    bool streams = false;
    // httplib URL-decodes header values: "Content-Length: %31%30%30" was a
    // length to it and none here, so the body was read on a worker outside
    // the places for such (140 clients sending only heads held every worker).
    bool encoded_length = false;
    // Over --max-body: refused here, so that a client that asked with
    // "Expect: 100-continue" is not told to send it first (httplib says
    // "100 Continue" before any handler runs).
    std::optional<std::uint64_t> too_long;
    std::string malformed;
    std::string malformed_field;  // the header a malformed line is, when it names one
};

body_plan plan_body(std::string_view head, std::size_t limit, std::size_t max_body) {
    if (request_line_refused(head)) return {};  // httplib answers it, head and all
    std::size_t pos = head.find('\n') + 1;
    if (pos > http_max_line_bytes) return {};  // 414
    // Set by a line that settles what becomes of the body (httplib reads one
    // only for these methods: detail::expect_content); the lines after it
    // are still checked.
    std::optional<body_plan> settled;
    const std::string_view method = head.substr(0, head.find(' '));
    if (method != "POST" && method != "PUT" && method != "PATCH" && method != "DELETE" &&
        method != "PRI")
        settled = body_plan{};
    // Served, but httplib reads no body for them: one sent was read as the
    // next request, whose bytes the sender chose (on a proxy's shared
    // connection, a DELETE run with the next client's credentials). RFC
    // 9110 (9.3.1) allows refusing it and closing the connection.
    const bool bodiless = method == "GET" || method == "HEAD" || method == "OPTIONS";
    const auto has_body = [&](std::string_view header) {
        body_plan refused;
        refused.malformed = std::string(method) + " request has a body (" + std::string(header) +
                            "); Kennel reads one only with POST, PUT, PATCH or DELETE";
        refused.malformed_field = same_name(header.substr(0, header.find(':')), "content-length")
                                      ? "Content-Length"
                                      : "Transfer-Encoding";
        return refused;
    };
    std::optional<std::uint64_t> length;
    bool expect = false;
    while (pos + 2 < head.size()) {  // the head ends with a blank line
        const std::size_t eol = head.find('\n', pos);
        std::string_view line = head.substr(pos, eol - pos);
        pos = eol + 1;
        if (std::string why = malformed_field_line(line); !why.empty()) {
            body_plan refused;
            refused.malformed = std::move(why);
            return refused;
        }
        if (std::string why = empty_condition_line(line); !why.empty()) {
            body_plan refused;
            refused.malformed = std::move(why);
            refused.malformed_field = same_name(line.substr(0, line.find(':')), "if-match")
                                          ? "If-Match"
                                          : "If-None-Match";
            return refused;
        }
        if (bodiless && same_name(line.substr(0, line.find(':')), "transfer-encoding"))
            return has_body(line.substr(0, std::min<std::size_t>(line.size() - 1, 60)));
        if (bodiless && same_name(line.substr(0, line.find(':')), "content-length")) {
            const std::string_view value = line.substr(line.find(':') + 1);
            if (value.find_first_not_of(" \t\r0") != std::string_view::npos)
                return has_body(line.substr(0, std::min<std::size_t>(line.size() - 1, 60)));
        }
        if (settled) continue;
        // httplib refuses a long line.
        if (line.size() > http_max_line_bytes) {
            settled = body_plan{};
            continue;
        }
        line.remove_suffix(1);
        const std::size_t colon = line.find(':');
        const std::string_view name = line.substr(0, colon);
        // The client waits for "100 Continue" before it sends the body; a
        // chunked body is refused unread (http_server.cpp).
        if (same_name(name, "transfer-encoding")) {
            settled = body_plan{};
            continue;
        }
        if (same_name(name, "expect")) {
            expect = true;
            continue;
        }
        if (!same_name(name, "content-length")) continue;
        std::string_view value = line.substr(colon + 1);
        while (!value.empty() && (value.front() == ' ' || value.front() == '\t'))
            value.remove_prefix(1);
        while (!value.empty() && (value.back() == ' ' || value.back() == '\t'))
            value.remove_suffix(1);
        if (value.empty()) {
            // httplib dropped it and read no body: what was sent as one was
            // read as the next request (RFC 9112, 6.3: a 400 and a close).
            body_plan refused;
            refused.malformed = "header line \"Content-Length:\" has no value";
            refused.malformed_field = "Content-Length";
            return refused;
        }
        std::uint64_t n = 0;
        const auto [end, ec] = std::from_chars(value.data(), value.data() + value.size(), n);
        if (value.find('%') != std::string_view::npos) {
            settled = body_plan{0, false, true, std::nullopt, {}, {}};
        } else if (length || ec != std::errc() || end != value.data() + value.size()) {
            // A second one, or not a number: refused with the body unread
            // (http_server.cpp).
            settled = body_plan{};
        } else {
            length = n;
        }
    }
    if (settled) return *settled;
    if (length && *length > max_body) return {0, false, false, length, {}, {}};
    if (!length || *length == 0) return {};
    if (!expect && *length <= limit)
        return {static_cast<std::size_t>(*length), false, false, std::nullopt, {}, {}};
    return {0, true, false, std::nullopt, {}, {}};
}

}  // namespace

buffered_socket_stream::buffered_socket_stream(int sock, std::chrono::milliseconds read_timeout,
                                               std::chrono::milliseconds write_timeout,
                                               std::size_t max_body, partial_request carried)
    : sock_(sock),
      read_timeout_(read_timeout),
      write_timeout_(write_timeout),
      max_body_(max_body),
      in_(new char[read_buffer_bytes]) {
    if (carried.due != std::chrono::steady_clock::time_point{}) {
        std::memcpy(in_.get(), carried.bytes.data(), carried.bytes.size());
        in_len_ = carried.bytes.size();
        ahead_begun_ = true;
        ahead_began_ = carried.began;
        ahead_due_ = carried.due;
        ahead_head_ = carried.head;
        ahead_need_ = carried.need;
        ahead_seen_ = carried.bytes.size();
    }
    // Asked once per connection; httplib asks on every request.
    sockaddr_storage addr{};
    socklen_t len = sizeof addr;
    if (getpeername(sock_, reinterpret_cast<sockaddr*>(&addr), &len) == 0) {
        address_of(addr, remote_ip_, remote_port_);
    }
    len = sizeof addr;
    if (getsockname(sock_, reinterpret_cast<sockaddr*>(&addr), &len) == 0) {
        address_of(addr, local_ip_, local_port_);
    }
}

bool buffered_socket_stream::wait(short events, std::chrono::milliseconds timeout) const {
    pollfd p{sock_, events, 0};
    for (;;) {
        int n = ::poll(&p, 1, static_cast<int>(timeout.count()));
        if (n < 0 && errno == EINTR) continue;
        return n > 0;
    }
}

bool buffered_socket_stream::is_readable() const {
    return in_pos_ < in_len_ || wait_to_read();
}

bool buffered_socket_stream::is_writable() const {
    return wait(POLLOUT, write_timeout_);
}

void buffered_socket_stream::begin_request() {
    in_headers_ = true;
    last_bytes_ = 0;
    // Read ahead (and perhaps parked), the head's time ran from its first
    // byte. (A body httplib reads itself is timed from the blank line.)
    const auto now = std::chrono::steady_clock::now();
    headers_due_ = ahead_begun_ && ahead_head_ == 0 ? ahead_due_ : now + read_timeout_;
    request_began_ = ahead_begun_ ? ahead_began_ : now;
    ahead_begun_ = false;  // the next request starts over
}

bool buffered_socket_stream::request_buffered(std::chrono::steady_clock::time_point now) {
    const std::string_view have(in_.get() + in_pos_, in_len_ - in_pos_);
    if (!ahead_begun_) {
        ahead_begun_ = true;
        ahead_began_ = now;
        ahead_due_ = now + read_timeout_;
        ahead_head_ = ahead_need_ = ahead_seen_ = 0;
        ahead_streams_ = false;
        ahead_refused_ = 0;
    }
    if (ahead_head_ == 0) {
        // Search on from what was searched ("\n\r\n" may straddle it).
        const std::size_t end = head_end(have, ahead_seen_ < 2 ? 0 : ahead_seen_ - 2);
        if (end == 0) {
            ahead_seen_ = have.size();
            // No blank line in a full buffer: refused here (httplib limits
            // each header line, not their number: a 30 MB head of 1 KB lines
            // was read whole, and eight of them left 600 MB resident).
            if (have.size() == read_buffer_bytes && !request_line_refused(have)) {
                ahead_refused_ = 431;
                return true;
            }
            return request_line_refused(have);
        }
        ahead_head_ = ahead_seen_ = end;
        // A refused head's body (which may yet come) is not waited for: a
        // request parked for it came back with the head's verdict lost.
        body_plan plan = plan_body(have.substr(0, end), read_buffer_bytes - end, max_body_);
        const std::size_t body = plan.ahead;
        ahead_need_ = end + body;
        ahead_streams_ = plan.streams;
        ahead_refused_why_ = std::move(plan.malformed);
        ahead_refused_field_ = std::move(plan.malformed_field);
        if (plan.encoded_length || !ahead_refused_why_.empty()) ahead_refused_ = 400;
        if (plan.too_long) {
            ahead_refused_ = 413;
            ahead_refused_length_ = *plan.too_long;
        }
        if (body > 0) ahead_due_ = now + read_timeout_;  // the body's time runs from here
    }
    if (ahead_need_ > ahead_seen_ && have.size() > ahead_seen_) {
        const std::size_t counted = std::min(have.size(), ahead_need_);
        ahead_due_ += static_cast<std::int64_t>(counted - ahead_seen_) * time_per_body_byte;
        ahead_seen_ = counted;
    }
    return have.size() >= ahead_need_;
}

buffered_socket_stream::ahead_result buffered_socket_stream::read_request(
    std::chrono::milliseconds patience) {
    using clock = std::chrono::steady_clock;
    auto now = clock::now();
    if (request_buffered(now)) return ahead_result::whole;  // e.g. pipelined
    const auto until = now + patience;
    if (in_pos_ > 0) {
        // Room for the rest: the request goes to the buffer's front.
        std::memmove(in_.get(), in_.get() + in_pos_, in_len_ - in_pos_);
        in_len_ -= in_pos_;
        in_pos_ = 0;
    }
    for (;;) {
        // Try first, as read() does. Not whole, the request has room left.
        const ssize_t n =
            ::recv(sock_, in_.get() + in_len_, read_buffer_bytes - in_len_, MSG_DONTWAIT);
        if (n > 0) {
            in_len_ += static_cast<std::size_t>(n);
            if (request_buffered(now)) return ahead_result::whole;
            continue;
        }
        if (n == 0) {
            peer_closed_ = true;
            return ahead_result::ended;
        }
        if (errno == EINTR) continue;
        if (errno != EAGAIN && errno != EWOULDBLOCK) return ahead_result::ended;
        now = clock::now();
        const auto left = std::chrono::ceil<std::chrono::milliseconds>(until - now);
        if (left.count() <= 0 || !wait(POLLIN, left)) return ahead_result::partial;
        now = clock::now();
    }
}

std::chrono::steady_clock::time_point buffered_socket_stream::ahead_began() const {
    return ahead_begun_ ? ahead_began_ : std::chrono::steady_clock::now();
}

partial_request buffered_socket_stream::partial() const {
    partial_request p;
    p.bytes.assign(in_.get() + in_pos_, in_.get() + in_len_);
    p.began = ahead_began_;
    p.due = ahead_due_;
    p.head = ahead_head_;
    p.need = ahead_need_;
    return p;
}

void buffered_socket_stream::note_read(const char* p, std::size_t n) {
    // httplib reads a request's head a byte at a time, then its body.
    std::size_t i = 0;
    for (; i < n && in_headers_; ++i) {
        last_bytes_ = (last_bytes_ << 8) | static_cast<unsigned char>(p[i]);
        if ((last_bytes_ & 0xffffffffu) == 0x0d0a0d0au) {  // "\r\n\r\n"
            in_headers_ = false;
            body_due_ = std::chrono::steady_clock::now() + read_timeout_;
        }
    }
    body_due_ += static_cast<std::int64_t>(n - i) * time_per_body_byte;
}

bool buffered_socket_stream::wait_to_read() const {
    // The whole head must arrive within the read timeout, and the body at a
    // least rate, not just each byte within the read timeout: a client
    // sending a header line or a byte every few seconds would otherwise hold
    // its thread for as long as it likes (slowloris).
    const auto now = std::chrono::steady_clock::now();
    const auto until = std::min(now + read_timeout_, in_headers_ ? headers_due_ : body_due_);
    // In slices, so that a stopping server is noticed while a body trickles.
    constexpr std::chrono::milliseconds slice{200};
    for (;;) {
        if (listener_ && listener_->load() == INVALID_SOCKET) {
            stopped_reading_ = true;
            return false;
        }
        const auto left =
            std::chrono::ceil<std::chrono::milliseconds>(until - std::chrono::steady_clock::now());
        if (left.count() <= 0) return false;
        if (wait(POLLIN, std::min(left, slice))) return true;
    }
}

ssize_t buffered_socket_stream::read(char* ptr, size_t size) {
    if (in_pos_ < in_len_) {
        std::size_t n = std::min(size, in_len_ - in_pos_);
        std::memcpy(ptr, in_.get() + in_pos_, n);
        in_pos_ += n;
        note_read(ptr, n);
        return static_cast<ssize_t>(n);
    }
    if (peer_closed_) return 0;  // seen reading ahead: no need to ask again
    // What is written answers what was read: a client waiting for
    // "100 Continue" must see it before we wait for its body.
    if (!out_.empty() && !flush()) return -1;
    const bool direct = size >= read_buffer_bytes;  // large bodies skip the copy
    char* into = direct ? ptr : in_.get();
    const std::size_t room = direct ? size : read_buffer_bytes;
    ssize_t n;
    for (;;) {
        // Try first: the bytes have usually arrived, and a poll() would be a
        // second system call for nothing.
        n = ::recv(sock_, into, room, MSG_DONTWAIT);
        if (n >= 0) break;
        if (errno == EINTR) continue;
        if (errno != EAGAIN && errno != EWOULDBLOCK) break;
        if (!wait_to_read()) break;
    }
    if (n <= 0) return n;
    if (direct) {
        note_read(ptr, static_cast<std::size_t>(n));
        return n;
    }
    in_len_ = static_cast<std::size_t>(n);
    in_pos_ = std::min(size, in_len_);
    std::memcpy(ptr, in_.get(), in_pos_);
    note_read(ptr, in_pos_);
    return static_cast<ssize_t>(in_pos_);
}

ssize_t buffered_socket_stream::write(const char* ptr, size_t size) {
    out_.append(ptr, size);
    if (out_.size() >= write_gather_bytes && !flush()) return -1;
    return static_cast<ssize_t>(size);
}

bool buffered_socket_stream::flush() {
    std::size_t sent = 0;
    bool failed = false;
    while (!failed) {
        sent += send_without_blocking(sock_, std::string_view(out_).substr(sent), failed);
        if (sent == out_.size() || !wait(POLLOUT, write_timeout_)) break;
    }
    const bool ok = !failed && sent == out_.size();
    out_.clear();
    return ok;
}

buffered_socket_stream::wait_result buffered_socket_stream::wait_for_request(
    std::chrono::milliseconds timeout, const std::atomic<int>& listener,
    std::shared_ptr<deferred_response>& owed, bool first) {
    using clock = std::chrono::steady_clock;
    if (in_pos_ < in_len_) return wait_result::request;  // pipelined: the next request is here
    const auto start = clock::now();
    const auto deadline = start + timeout;
    for (;;) {
        auto now = clock::now();
        auto until = deadline;
        if (listener.load() == -1) {
            if (!first || now - start >= stop_grace) {
                pollfd p{sock_, POLLIN, 0};
                return ::poll(&p, 1, 0) > 0 ? wait_result::request : wait_result::gone;
            }
            // The whole grace on this thread: the parker is stopping too.
            until = std::max(deadline, start + stop_grace);
        }
        if (owed && owed->due(now)) {
            std::string rest = owed->settle();
            const bool closed = owed->closed();  // it said "Connection: close"
            owed.reset();
            if ((!rest.empty() && !(write(rest.data(), rest.size()) >= 0 && flush())) || closed)
                return wait_result::gone;
        }
        auto left = std::chrono::duration_cast<std::chrono::milliseconds>(until - now);
        if (left.count() <= 0) return wait_result::timed_out;
        auto slice = std::min(left, stop_check_interval);
        if (owed) {
            // Wake for the owed answer's deadline too (rounded up: a 0 ms
            // poll would spin until it passes).
            auto to_due = std::chrono::ceil<std::chrono::milliseconds>(owed->deadline() - now);
            slice = std::max(std::chrono::milliseconds(1), std::min(slice, to_due));
        }
        pollfd p{sock_, POLLIN, 0};
        int n = ::poll(&p, 1, static_cast<int>(slice.count()));
        if (n < 0 && errno != EINTR) return wait_result::gone;
        // A request, or the close that process_request will read.
        if (n > 0) return wait_result::request;
    }
}

void buffered_socket_stream::get_remote_ip_and_port(std::string& ip, int& port) const {
    ip = remote_ip_;
    port = remote_port_;
}

void buffered_socket_stream::get_local_ip_and_port(std::string& ip, int& port) const {
    ip = local_ip_;
    port = local_port_;
}

void raise_listen_backlog(int port) {
    for (int fd = 3; fd < 1024; ++fd) {
        int listening = 0;
        socklen_t len = sizeof listening;
        if (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &len) != 0 || !listening)
            continue;
        sockaddr_storage addr{};
        socklen_t alen = sizeof addr;
        if (getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &alen) != 0) continue;
        int p = addr.ss_family == AF_INET ? ntohs(reinterpret_cast<sockaddr_in*>(&addr)->sin_port)
                : addr.ss_family == AF_INET6
                    ? ntohs(reinterpret_cast<sockaddr_in6*>(&addr)->sin6_port)
                    : -1;
        if (p == port) ::listen(fd, 1024);
    }
}

// --- deferred answers ----------------------------------------------------------

namespace {

thread_local std::shared_ptr<deferred_response> deferred_here;
// The stream whose request httplib is processing on this thread.
thread_local const buffered_socket_stream* stream_here = nullptr;
thread_local bool close_here = false;  // close_after_answer()

const char* reason_phrase(int status) {
    switch (status) {
        case 200:
            return "OK";
        case 201:
            return "Created";
        case 202:
            return "Accepted";
        case 204:
            return "No Content";
        case 400:
            return "Bad Request";
        case 401:
            return "Unauthorized";
        case 403:
            return "Forbidden";
        case 404:
            return "Not Found";
        case 405:
            return "Method Not Allowed";
        case 409:
            return "Conflict";
        case 411:
            return "Length Required";
        case 413:
            return "Payload Too Large";
        case 415:
            return "Unsupported Media Type";
        case 422:
            return "Unprocessable Entity";
        case 429:
            return "Too Many Requests";
        case 431:
            return "Request Header Fields Too Large";
        case 500:
            return "Internal Server Error";
        case 503:
            return "Service Unavailable";
        default:
            return status < 400 ? "OK" : "Error";
    }
}

}  // namespace

std::chrono::steady_clock::time_point request_began_here() {
    return stream_here ? stream_here->request_began() : std::chrono::steady_clock::time_point{};
}

const std::string& request_peer_here() {
    static const std::string none;
    return stream_here ? stream_here->peer() : none;
}

bool request_reading_stopped_here() {
    return stream_here && stream_here->stopped_reading();
}

void defer_answer(std::shared_ptr<deferred_response> d) {
    deferred_here = std::move(d);
}

void close_after_answer() {
    close_here = true;
}

deferred_response::deferred_response(std::chrono::steady_clock::time_point deadline,
                                     std::function<http_response()> on_timeout)
    : deadline_(deadline), on_timeout_(std::move(on_timeout)) {}

std::string deferred_response::render(const http_response& r, bool close) {
    if (rendered_) rendered_(r);
    close = close || (closing_ && closing_->load());
    closed_ = close;
    return render_response(r, close, keep_alive_);
}

bool deferred_response::closed() const {
    std::lock_guard lock(mu_);
    return closed_;
}

status body_too_large(std::uint64_t limit, std::uint64_t length) {
    return status(error_kind::too_large,
                  (length ? "request body of " + std::to_string(length) + " bytes"
                          : std::string("request body")) +
                      " is larger than the limit of " + std::to_string(limit) +
                      " bytes (--max-body)");
}

http_response stopping_answer() {
    return error_response(
        status(error_kind::unavailable, "Kennel is stopping; send the request again shortly"));
}

const std::string& http_date_now() {
    thread_local std::time_t made_at = -1;
    thread_local std::string text;
    const std::time_t now = std::time(nullptr);
    if (now != made_at) {
        // Spelt out: strftime's names follow the locale.
        static constexpr const char* days[] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
        static constexpr const char* months[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                                 "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
        std::tm t{};
        gmtime_r(&now, &t);
        char buf[40];
        std::snprintf(buf, sizeof buf, "%s, %02d %s %04d %02d:%02d:%02d GMT", days[t.tm_wday],
                      t.tm_mday, months[t.tm_mon], t.tm_year + 1900, t.tm_hour, t.tm_min, t.tm_sec);
        text = buf;
        made_at = now;
    }
    return text;
}

// The status line and headers httplib writes for a response (a handler's
// own headers come last here, where httplib sorts them in).
std::string render_response(const http_response& r, bool close, const std::string& keep_alive) {
    std::string out;
    out.reserve(160 + r.body.size());
    out += "HTTP/1.1 ";
    out += std::to_string(r.status);
    out += ' ';
    out += reason_phrase(r.status);
    out += "\r\n";
    if (close) out += "Connection: close\r\n";
    out += "Date: ";
    out += http_date_now();
    out += "\r\nContent-Length: ";
    out += std::to_string(r.body.size());
    out += "\r\nContent-Type: ";
    out += r.content_type;
    // Every answer: JSON repeats what was sent (a path, a field, a fact's
    // data), and a browser must read it as what it is, never sniff a page.
    out += "\r\nX-Content-Type-Options: nosniff\r\n";
    if (!close) {
        out += "Keep-Alive: ";
        out += keep_alive;
        out += "\r\n";
    }
    for (const auto& [k, v] : r.headers) {
        out += k;
        out += ": ";
        out += v;
        out += "\r\n";
    }
    out += "\r\n";
    out += r.body;
    return out;
}

void deferred_response::complete(http_response answer) {
    std::unique_lock lock(mu_);
    if (phase_ == phase::settled || phase_ == phase::sending || answer_)
        return;  // once; late ones dropped
    if (phase_ == phase::open) {
        answer_ = std::move(answer);
        lock.unlock();
        sent_.set();
        return;
    }
    phase_ = phase::sending;
    const int sock = sock_;
    lock.unlock();
    // What does not fit now (the peer is not reading) the connection's
    // thread sends; after a failure nothing is left to send.
    std::string bytes = render(answer, false);
    bool failed = false;
    std::size_t sent = send_without_blocking(sock, bytes, failed);
    lock.lock();
    if (!failed) unsent_ = bytes.substr(sent);
    phase_ = phase::settled;
    lock.unlock();
    sent_.set();
}

std::optional<std::string> deferred_response::attach(int sock, std::string keep_alive,
                                                     const std::atomic<bool>* closing) {
    std::lock_guard lock(mu_);
    keep_alive_ = std::move(keep_alive);
    closing_ = closing;
    if (answer_) {
        phase_ = phase::settled;
        return render(*answer_, false);
    }
    sock_ = sock;
    phase_ = phase::attached;
    return std::nullopt;
}

std::string deferred_response::wait_and_render(bool close) {
    auto left =
        std::chrono::ceil<std::chrono::milliseconds>(deadline_ - std::chrono::steady_clock::now());
    sent_.wait_for(std::max(left, std::chrono::milliseconds(0)));
    std::lock_guard lock(mu_);
    phase_ = phase::settled;
    return render(answer_ ? *answer_ : on_timeout_(), close);
}

// Due at its deadline, or once complete() has sent what it could (the rest,
// if any, is the connection's to write). It waited for the deadline when all
// was sent, so the connection could not be parked until then.
bool deferred_response::due(std::chrono::steady_clock::time_point now) const {
    return now >= deadline_ || sent_.is_set();
}

std::string deferred_response::settle() {
    auto left =
        std::chrono::ceil<std::chrono::milliseconds>(deadline_ - std::chrono::steady_clock::now());
    if (!sent_.wait_for(std::max(left, std::chrono::milliseconds(0)))) {
        std::unique_lock lock(mu_);
        if (phase_ == phase::attached) {
            phase_ = phase::settled;  // a later complete() is dropped
            return render(on_timeout_(), false);
        }
        // complete() is sending right now, without blocking: wait for it.
        lock.unlock();
        while (!sent_.wait_for(std::chrono::milliseconds(1000))) {
        }
    }
    std::lock_guard lock(mu_);
    return std::move(unsent_);
}

void connection_parker::start(httplib::TaskQueue* pool, resume_fn resume) {
    std::lock_guard lock(mu_);
    if (running_) return;
    epoll_ = ::epoll_create1(EPOLL_CLOEXEC);
    wake_ = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (epoll_ < 0 || wake_ < 0) {
        // Without it connections keep their threads while idle, as before.
        log_warn("http", std::string("cannot park idle connections: ") + std::strerror(errno));
        if (epoll_ >= 0) ::close(epoll_);
        if (wake_ >= 0) ::close(wake_);
        epoll_ = wake_ = -1;
        return;
    }
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.fd = wake_;
    ::epoll_ctl(epoll_, EPOLL_CTL_ADD, wake_, &ev);
    // Idle connections may not take every descriptor: the database, new
    // connections and the model store need some too.
    rlimit files{};
    capacity_ = ::getrlimit(RLIMIT_NOFILE, &files) == 0 && files.rlim_cur != RLIM_INFINITY
                    ? std::max<std::size_t>(16, files.rlim_cur / 2)
                    : 65536;
    pool_ = pool;
    resume_ = std::move(resume);
    running_ = true;
    thread_ = std::thread([this] {
        name_this_thread("kennel-park");
        run();
    });
}

bool connection_parker::park(int sock, std::size_t requests_left,
                             std::chrono::steady_clock::time_point deadline,
                             partial_request carried) {
    std::lock_guard lock(mu_);
    if (!running_) return false;
    if (parked_.size() >= capacity_ || carried_bytes_ + carried.bytes.size() > max_carried_bytes) {
        refused_full_.fetch_add(1, std::memory_order_relaxed);
        return false;
    }
    epoll_event ev{};
    // One-shot: a connection is resumed once, then belongs to a worker.
    ev.events = EPOLLIN | EPOLLRDHUP | EPOLLONESHOT;
    ev.data.fd = sock;
    if (::epoll_ctl(epoll_, EPOLL_CTL_ADD, sock, &ev) != 0) return false;
    carried_bytes_ += carried.bytes.size();
    if (!carried.bytes.empty()) ++partial_;
    parked_[sock] = {requests_left, deadline, std::move(carried)};
    deadlines_.emplace(deadline, sock);
    if (deadline < wakes_at_) {
        // Sooner than the waiting thread looks next (a request's due time):
        // it looks again now.
        wakes_at_ = deadline;
        std::uint64_t one = 1;
        [[maybe_unused]] ssize_t w = ::write(wake_, &one, sizeof one);
    }
    return true;
}

connection_parker::entry connection_parker::unpark(std::unordered_map<int, entry>::iterator it) {
    entry e = std::move(it->second);
    ::epoll_ctl(epoll_, EPOLL_CTL_DEL, it->first, nullptr);
    deadlines_.erase({e.deadline, it->first});
    carried_bytes_ -= e.carried.bytes.size();
    if (!e.carried.bytes.empty()) --partial_;
    parked_.erase(it);
    return e;
}

bool connection_parker::running() const {
    return running_.load(std::memory_order_relaxed);
}

std::size_t connection_parker::parked() const {
    std::lock_guard lock(mu_);
    return parked_.size();
}

std::size_t connection_parker::parked_partial() const {
    std::lock_guard lock(mu_);
    return partial_;
}

void connection_parker::run() {
    using clock = std::chrono::steady_clock;
    std::array<epoll_event, 64> events;
    for (;;) {
        int timeout_ms = 1000;
        {
            // Until the first deadline (at most a second: a wait is cheap).
            std::lock_guard lock(mu_);
            const auto now = clock::now();
            if (!deadlines_.empty()) {
                const auto to_first =
                    std::chrono::ceil<std::chrono::milliseconds>(deadlines_.begin()->first - now);
                timeout_ms = static_cast<int>(std::clamp<std::int64_t>(to_first.count(), 0, 1000));
            }
            wakes_at_ = now + std::chrono::milliseconds(timeout_ms);
        }
        const int n =
            ::epoll_wait(epoll_, events.data(), static_cast<int>(events.size()), timeout_ms);
        std::vector<int> expired;
        {
            std::lock_guard lock(mu_);
            if (!running_) break;
            for (int i = 0; i < n; ++i) {
                const int sock = events[static_cast<std::size_t>(i)].data.fd;
                if (sock == wake_) {
                    std::uint64_t count;
                    [[maybe_unused]] ssize_t r = ::read(wake_, &count, sizeof count);
                    continue;
                }
                auto it = parked_.find(sock);
                if (it == parked_.end()) continue;
                entry e = unpark(it);
                // Under the lock: stop() cannot run between the check above
                // and this, so nothing is queued on a pool being shut down.
                pool_->enqueue(
                    [this, sock, left = e.requests_left, carried = std::move(e.carried)]() mutable {
                        resume_(sock, left, std::move(carried));
                    });
            }
            const auto now = clock::now();
            while (!deadlines_.empty() && deadlines_.begin()->first <= now) {
                const int sock = deadlines_.begin()->second;
                unpark(parked_.find(sock));
                expired.push_back(sock);
            }
        }
        for (int sock : expired) {
            ::shutdown(sock, SHUT_RDWR);
            ::close(sock);
        }
    }
}

void connection_parker::stop() {
    {
        std::lock_guard lock(mu_);
        if (!running_) return;
        running_ = false;
        std::uint64_t one = 1;
        [[maybe_unused]] ssize_t w = ::write(wake_, &one, sizeof one);
    }
    thread_.join();
    std::lock_guard lock(mu_);
    // One holding part of a request, or whose next request is arriving, is
    // told why before it is closed (best effort: never blocking the stop);
    // an idle one is closed as any idle keep-alive connection may be.
    const std::string stopping = render_response(stopping_answer(), true, "");
    for (const auto& [sock, e] : parked_) {
        pollfd p{sock, POLLIN, 0};
        if (!e.carried.bytes.empty() || ::poll(&p, 1, 0) > 0) {
            (void)::send(sock, stopping.data(), stopping.size(), MSG_DONTWAIT | MSG_NOSIGNAL);
            if (stopping_answer_) stopping_answer_(sock, e.carried);
        }
        ::shutdown(sock, SHUT_RDWR);
        ::close(sock);
    }
    parked_.clear();
    deadlines_.clear();
    carried_bytes_ = 0;
    partial_ = 0;
    ::close(epoll_);
    ::close(wake_);
    epoll_ = wake_ = -1;
}

namespace {

// httplib's pool, which stops the parker before its workers: afterwards no
// parked connection is put back on it, and a worker's park() refuses.
class parking_pool final : public httplib::ThreadPool {
public:
    parking_pool(std::size_t threads, connection_parker& parker)
        : httplib::ThreadPool(threads), parker_(parker) {}
    void enqueue(std::function<void()> fn) override {
        waiting_.fetch_add(1, std::memory_order_relaxed);
        httplib::ThreadPool::enqueue([this, fn = std::move(fn)] {
            waiting_.fetch_sub(1, std::memory_order_relaxed);
            fn();
        });
    }
    void shutdown() override {
        parker_.stop();
        httplib::ThreadPool::shutdown();
    }
    // Connections (new, or parked ones with bytes) waiting for a worker.
    const std::atomic<std::size_t>& waiting() const { return waiting_; }

private:
    connection_parker& parker_;
    std::atomic<std::size_t> waiting_{0};
};

}  // namespace

httplib::TaskQueue* http_engine::make_task_queue(std::size_t threads) {
    streaming_limit_ = std::max<std::size_t>(1, threads / 4);
    auto* pool = new parking_pool(threads, parker_);
    waiting_ = &pool->waiting();
    parker_.on_stopping_answer([this](int sock, const partial_request& carried) {
        if (!loop_answer_) return;
        sockaddr_storage addr{};
        socklen_t len = sizeof addr;
        std::string peer;
        int peer_port = 0;
        if (getpeername(sock, reinterpret_cast<sockaddr*>(&addr), &len) == 0)
            address_of(addr, peer, peer_port);
        const bool begun = carried.began != std::chrono::steady_clock::time_point{};
        loop_answer_(stopping_answer(), peer,
                     begun ? carried.began : std::chrono::steady_clock::now());
    });
    parker_.start(pool, [this](int sock, std::size_t left, partial_request carried) {
        serve(sock, left, std::move(carried));
    });
    return pool;
}

bool http_engine::process_and_close_socket(int sock) {
    // One segment per answer: nothing is gained by waiting for more.
    int yes = 1;
    setsockopt(sock, IPPROTO_TCP, TCP_NODELAY, &yes, sizeof yes);
    serve(sock, keep_alive_max_count_);
    return true;  // httplib ignores it
}

void http_engine::serve(int sock, std::size_t requests_left, partial_request carried) {
    using std::chrono::milliseconds;
    using std::chrono::seconds;
    // Resumed with part of a request: it has had its wait on a thread.
    bool patient = carried.due == std::chrono::steady_clock::time_point{};
    buffered_socket_stream strm(
        sock,
        std::chrono::duration_cast<milliseconds>(seconds(read_timeout_sec_)) +
            std::chrono::duration_cast<milliseconds>(std::chrono::microseconds(read_timeout_usec_)),
        std::chrono::duration_cast<milliseconds>(seconds(write_timeout_sec_)) +
            std::chrono::duration_cast<milliseconds>(
                std::chrono::microseconds(write_timeout_usec_)),
        payload_max_length_, std::move(carried));
    const milliseconds idle =
        std::chrono::duration_cast<milliseconds>(seconds(keep_alive_timeout_sec_));
    const std::string keep_alive = "timeout=" + std::to_string(keep_alive_timeout_sec_) +
                                   ", max=" + std::to_string(keep_alive_max_count_);
    // An answer another thread is sending (deferred_response); it is settled
    // before the next request is read and before the socket is closed.
    std::shared_ptr<deferred_response> owed;
    // False when the connection is to close: a write failed, or the answer
    // said "Connection: close" (a stop began before it was rendered).
    auto settle_owed = [&] {
        if (!owed) return true;
        std::string rest = owed->settle();
        const bool closed = owed->closed();
        owed.reset();
        return (rest.empty() || (strm.write(rest.data(), rest.size()) >= 0 && strm.flush())) &&
               !closed;
    };
    // Stopping, the rest of an upload is not waited for: a slow one (the
    // body's due time allows hours for 16 MiB) held the shut-down for its
    // whole length, only to be answered 503 then.
    strm.give_up_reading_when_closed(svr_sock_);
    // An answer that leaves a request's body unread, then the close.
    auto answer_and_close = [&](const http_response& r, milliseconds drain) {
        if (loop_answer_) loop_answer_(r, strm.peer(), strm.ahead_began());
        const std::string text = render_response(r, true, keep_alive);
        strm.write(text.data(), text.size());
        if (!strm.flush()) return;
        // Closed with the upload's bytes unread, the socket would reset and
        // the client could lose the answer: read and drop what still comes
        // for a moment first.
        ::shutdown(sock, SHUT_WR);
        const auto until = std::chrono::steady_clock::now() + drain;
        char sink[4096];
        for (;;) {
            const auto left =
                std::chrono::ceil<milliseconds>(until - std::chrono::steady_clock::now());
            pollfd p{sock, POLLIN, 0};
            if (left.count() <= 0 || ::poll(&p, 1, static_cast<int>(left.count())) <= 0) break;
            if (::recv(sock, sink, sizeof sink, 0) <= 0) break;
        }
    };
    auto answer_stopping = [&] { answer_and_close(stopping_answer(), milliseconds(500)); };
    using wait_result = buffered_socket_stream::wait_result;
    for (std::size_t left = requests_left; left > 0; --left) {
        // A connection that owes no answer waits briefly on its thread (the
        // next request of a busy client comes within microseconds), then
        // is parked for the rest of its keep-alive time. (Without a parker,
        // epoll being unavailable, it waits here as httplib's loop would.)
        // An answer still owed (a deferred one the writer sends) is waited
        // for in the same steps first: once it is out, the connection is
        // parked like any other (it held its thread for the whole keep-alive
        // time after a POST of a few facts).
        // While other connections wait for a worker, one that has been
        // answered gives its worker up unless its next request is already
        // here: held for its next request within 100 ms, 200 busy clients
        // kept 128 workers and the rest (a /healthz too) waited 6 s.
        const bool may_park = idle > connection_parker::park_after && parker_.running();
        const bool yield = may_park && !owed && left != requests_left && waiting_ &&
                           waiting_->load(std::memory_order_relaxed) > 0;
        const auto idle_until = std::chrono::steady_clock::now() + idle;
        wait_result w = strm.wait_for_request(yield      ? milliseconds(0)
                                              : may_park ? connection_parker::park_after
                                                         : idle,
                                              svr_sock_, owed, left == requests_left);
        while (w == wait_result::timed_out && may_park && owed &&
               std::chrono::steady_clock::now() + connection_parker::park_after < idle_until) {
            w = strm.wait_for_request(connection_parker::park_after, svr_sock_, owed);
        }
        if (w == wait_result::timed_out && may_park && !owed &&
            parker_.park(sock, left, idle_until)) {
            return;  // the parker owns the socket now
        }
        if (!settle_owed() || w != wait_result::request) break;
        // httplib parses a request when it is all here, so a thread is held
        // while there is work, not while a client sends slowly. What is not
        // whole after a short wait is parked with its bytes until the rest
        // comes or its due time; resumed, it is parked again at once if still
        // not whole. (Without a parker, or with it full, httplib reads on
        // this thread, within the same due times.)
        const bool stopping = svr_sock_ == INVALID_SOCKET;
        if (parker_.running() || stopping) {
            using ahead = buffered_socket_stream::ahead_result;
            const ahead a = strm.read_request(patient ? read_ahead_patience : milliseconds(0));
            patient = true;
            if (a == ahead::partial && parker_.park(sock, left, strm.request_due(), strm.partial()))
                return;  // the parker owns the socket and the bytes now
            if (a == ahead::partial && stopping) {
                answer_stopping();
                break;
            }
        }
        if (const int refused = strm.head_refused()) {
            status why =
                refused == 431   ? status(error_kind::too_large,
                                          "the request head is larger than " +
                                              std::to_string(read_buffer_bytes / 1024) + " KiB")
                : refused == 413 ? body_too_large(strm.max_body(), strm.refused_length())
                : !strm.refused_line().empty()
                    ? status(error_kind::invalid_argument,
                             "malformed HTTP request: the " + strm.refused_line(),
                             strm.refused_field())
                    : invalid("Content-Length", "Content-Length must be a plain number of bytes");
            http_response r = error_response(why);
            r.status = refused;
            answer_and_close(r, milliseconds(100));
            break;
        }
        // A body that arrives on this thread takes one of the places for
        // such; with none free, the request is refused before its body.
        struct streaming_place {
            std::atomic<std::size_t>* taken = nullptr;
            void release() {
                if (taken) taken->fetch_sub(1);
                taken = nullptr;
            }
            ~streaming_place() { release(); }
        } place;
        if (strm.body_streams()) {
            if (streaming_.fetch_add(1) >= streaming_limit_) {
                streaming_.fetch_sub(1);
                streaming_refused_.fetch_add(1, std::memory_order_relaxed);
                answer_and_close(
                    error_response(status(error_kind::unavailable,
                                          "too many request bodies are arriving at once (" +
                                              std::to_string(streaming_limit_) +
                                              ", a quarter of --http-threads, for bodies over " +
                                              std::to_string(read_buffer_bytes / 1024) +
                                              " KiB); send it again shortly")),
                    // Short: the drain holds this thread, and a
                    // wave of refusals held more than the pool.
                    milliseconds(100));
                break;
            }
            place.taken = &streaming_;
        }
        strm.begin_request();
        bool closed = false;
        stream_here = &strm;
        bool ok = process_request(strm, left == 1, closed, nullptr);
        stream_here = nullptr;
        place.release();  // the body has been read: before the answer goes out
        if (strm.stopped_reading()) {
            strm.discard_output();  // httplib's answer to a read that failed
            answer_stopping();
            break;
        }
        if (std::exchange(close_here, false)) closed = true;
        if (std::shared_ptr<deferred_response> d = std::move(deferred_here)) {
            deferred_here.reset();
            strm.discard_output();  // httplib's placeholder
            std::string now;
            if (!ok || closed || closing()) {
                now = d->wait_and_render(true);
                closed = true;
            } else if (auto ready = d->attach(sock, keep_alive, &closing_)) {
                now = std::move(*ready);
                closed = d->closed();
            } else {
                owed = std::move(d);
            }
            if (!now.empty()) strm.write(now.data(), now.size());
        }
        if (!strm.flush()) ok = false;
        if (!ok || closed) break;
    }
    settle_owed();
    ::shutdown(sock, SHUT_RDWR);
    ::close(sock);
}

}  // namespace kennel
