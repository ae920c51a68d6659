// Includes <linux/tcp.h> (for tcpi_data_segs_in, which glibc's tcp_info
// lacks), so nothing here may include <netinet/tcp.h> or httplib.h.
#include "tests/unit/tcp_probe.h"

#include <arpa/inet.h>
#include <linux/tcp.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <stdexcept>

namespace kennel::testing {

tcp_probe::tcp_probe(int port) {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    if (fd_ < 0) throw std::runtime_error("socket() failed");
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(static_cast<std::uint16_t>(port));
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::connect(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
        ::close(fd_);
        throw std::runtime_error("connect() failed");
    }
}

tcp_probe::~tcp_probe() {
    if (fd_ >= 0) ::close(fd_);
}

void tcp_probe::send_all(const std::string& bytes) {
    std::size_t sent = 0;
    while (sent < bytes.size()) {
        ssize_t n = ::send(fd_, bytes.data() + sent, bytes.size() - sent, MSG_NOSIGNAL);
        if (n <= 0) throw std::runtime_error("send() failed");
        sent += static_cast<std::size_t>(n);
    }
}

std::string tcp_probe::read_until(const std::string& marker, std::chrono::milliseconds timeout) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    std::string got = std::move(pending_);
    pending_.clear();
    for (;;) {
        if (auto at = got.find(marker); at != std::string::npos) {
            pending_ = got.substr(at + marker.size());
            return got.substr(0, at + marker.size());
        }
        auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
            deadline - std::chrono::steady_clock::now());
        pollfd p{fd_, POLLIN, 0};
        if (left.count() <= 0 || ::poll(&p, 1, static_cast<int>(left.count())) <= 0) {
            throw std::runtime_error("\"" + marker + "\" did not arrive in time; got: " + got);
        }
        char buf[8192];
        ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
        if (n <= 0) throw std::runtime_error("connection closed before \"" + marker + "\"; got: " + got);
        got.append(buf, static_cast<std::size_t>(n));
    }
}

std::string tcp_probe::read_response(std::chrono::milliseconds timeout) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    std::string got = std::move(pending_);
    pending_.clear();
    for (;;) {
        auto end = got.find("\r\n\r\n");
        if (end != std::string::npos) {
            std::size_t length = 0;
            auto cl = got.find("Content-Length: ");
            if (cl != std::string::npos && cl < end) length = std::strtoul(got.c_str() + cl + 16, nullptr, 10);
            if (got.size() >= end + 4 + length) {
                pending_ = got.substr(end + 4 + length);
                return got.substr(0, end + 4 + length);
            }
        }
        auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
            deadline - std::chrono::steady_clock::now());
        pollfd p{fd_, POLLIN, 0};
        if (left.count() <= 0 || ::poll(&p, 1, static_cast<int>(left.count())) <= 0) {
            throw std::runtime_error("no whole response in time; got: " + got);
        }
        char buf[8192];
        ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
        if (n <= 0) throw std::runtime_error("connection closed mid-response; got: " + got);
        got.append(buf, static_cast<std::size_t>(n));
    }
}

std::string tcp_probe::read_to_close(std::chrono::milliseconds timeout) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    std::string got = std::move(pending_);
    pending_.clear();
    for (;;) {
        auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
            deadline - std::chrono::steady_clock::now());
        pollfd p{fd_, POLLIN, 0};
        if (left.count() <= 0 || ::poll(&p, 1, static_cast<int>(left.count())) <= 0) {
            throw std::runtime_error("not closed in time; got: " + got);
        }
        char buf[8192];
        ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
        if (n == 0 || (n < 0 && errno == ECONNRESET)) return got;
        if (n < 0) throw std::runtime_error("recv() failed; got: " + got);
        got.append(buf, static_cast<std::size_t>(n));
    }
}

bool tcp_probe::closed_within(std::chrono::milliseconds timeout) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    for (;;) {
        auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
            deadline - std::chrono::steady_clock::now());
        if (left.count() <= 0) return false;
        pollfd p{fd_, POLLIN, 0};
        if (::poll(&p, 1, static_cast<int>(left.count())) <= 0) return false;
        char buf[512];
        ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
        if (n == 0 || (n < 0 && errno == ECONNRESET)) return true;
        if (n < 0) return false;
    }
}

std::uint32_t tcp_probe::data_segments_in() const {
    tcp_info info{};
    socklen_t len = sizeof info;
    if (::getsockopt(fd_, IPPROTO_TCP, TCP_INFO, &info, &len) != 0) {
        throw std::runtime_error("getsockopt(TCP_INFO) failed");
    }
    return info.tcpi_data_segs_in;
}

}  // namespace kennel::testing
