#include "server/http_stats.h"

#include <algorithm>

namespace kennel {

http_stats::http_stats(std::vector<route_label> routes)
    : labels_(std::move(routes)), counters_(std::make_unique<counters[]>(labels_.size() + 1)) {
    labels_.push_back({"(any)", "(unmatched)"});
}

std::size_t http_stats::slot_of(int status) {
    const auto* it = std::lower_bound(known_codes.begin(), known_codes.end(), status);
    if (it != known_codes.end() && *it == status)
        return static_cast<std::size_t>(it - known_codes.begin());
    return known_codes.size();
}

std::string http_stats::code_name(std::size_t slot) {
    return slot < known_codes.size() ? std::to_string(known_codes[slot]) : "other";
}

void http_stats::record(std::size_t route, int status, double seconds) {
    counters& c = counters_[std::min(route, unmatched())];
    c.codes[slot_of(status)].fetch_add(1, std::memory_order_relaxed);
    c.latency.record(seconds);
}

std::vector<http_stats::route_snapshot> http_stats::snapshot() const {
    std::vector<route_snapshot> out;
    for (std::size_t r = 0; r < labels_.size(); ++r) {
        const counters& c = counters_[r];
        route_snapshot s{labels_[r], {}, c.latency.read()};
        if (s.latency.count() == 0) continue;
        for (std::size_t k = 0; k < code_slots; ++k) {
            if (std::uint64_t n = c.codes[k].load(std::memory_order_relaxed))
                s.codes.push_back({code_name(k), n});
        }
        out.push_back(std::move(s));
    }
    return out;
}

}  // namespace kennel
