// A raw loopback TCP client for tests that need to see the bytes and
// segments on the wire, which an HTTP client library hides.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

namespace kennel::testing {

class tcp_probe {
public:
    explicit tcp_probe(int port);  // connects to 127.0.0.1:port; throws on failure
    ~tcp_probe();
    tcp_probe(const tcp_probe&) = delete;
    tcp_probe& operator=(const tcp_probe&) = delete;

    void send_all(const std::string& bytes);
    // Reads until `marker` has arrived and returns the bytes up to and
    // including it (the rest is kept for the next read); throws when the
    // peer closes or `timeout` passes first.
    std::string read_until(const std::string& marker, std::chrono::milliseconds timeout);
    // Reads one HTTP response (headers and Content-Length body) or fails.
    std::string read_response(std::chrono::milliseconds timeout);
    // Reads until the peer closes and returns everything that came (after
    // what earlier reads left); throws when `timeout` passes first.
    std::string read_to_close(std::chrono::milliseconds timeout);
    // True when the peer closed the connection within `timeout`.
    bool closed_within(std::chrono::milliseconds timeout);
    // Segments carrying data that this socket received (Linux tcp_info).
    std::uint32_t data_segments_in() const;

private:
    int fd_ = -1;
    std::string pending_;
};

}  // namespace kennel::testing
