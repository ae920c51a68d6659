// Counts of the requests Kennel answered, per route and status code, and
// how long they took, for /metrics (kennel_http_requests_total and
// kennel_http_request_duration_seconds). Routes are fixed when the server is
// made, so every counter is an atomic in a fixed array: recording is a few
// relaxed increments, no lock and no allocation on the request path.
//
// Threads: record() from any thread; snapshot() from any thread (counts
// read while others record may each be a few requests apart).
#pragma once

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "store/latency_histogram.h"

namespace kennel {

class http_stats {
public:
    // The status codes Kennel's answers can have; any other is counted as
    // "other" (none is known to reach it).
    static constexpr std::array<int, 29> known_codes = {
        200, 201, 202, 204, 206, 301, 302, 304, 400, 401, 403, 404, 405, 406, 408,
        409, 411, 412, 413, 414, 415, 416, 422, 429, 431, 500, 501, 503, 504};

    // One entry per route (its method and pattern); a request no route
    // matched is recorded as route unmatched().
    struct route_label {
        std::string method, pattern;
    };
    explicit http_stats(std::vector<route_label> routes);

    std::size_t unmatched() const { return labels_.size() - 1; }
    void record(std::size_t route, int status, double seconds);

    struct code_count {
        std::string code;  // "200", or "other"
        std::uint64_t count;
    };
    struct route_snapshot {
        route_label label;
        std::vector<code_count> codes;  // only codes seen, ascending
        latency_histogram::counts latency;
    };
    // Routes that answered at least one request, in route order, the
    // unmatched last.
    std::vector<route_snapshot> snapshot() const;

private:
    static constexpr std::size_t code_slots = known_codes.size() + 1;  // + other
    struct counters {
        std::array<std::atomic<std::uint64_t>, code_slots> codes{};
        latency_histogram latency;
    };
    static std::size_t slot_of(int status);
    static std::string code_name(std::size_t slot);

    std::vector<route_label> labels_;
    std::unique_ptr<counters[]> counters_;
};

}  // namespace kennel
