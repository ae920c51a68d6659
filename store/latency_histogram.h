// A histogram of durations as Prometheus reads one: counts per bucket (each
// bucket: at most its bound) and their sum. Relaxed atomics: record() is a
// few increments from any thread, without a lock; read() from any thread
// (counts read while others record may be a few apart).
#pragma once

#include <algorithm>
#include <array>
#include <atomic>
#include <cmath>
#include <cstddef>
#include <cstdint>

namespace kennel {

class latency_histogram {
public:
    // Upper bounds of the buckets, in seconds; +Inf is implied after them.
    static constexpr std::array<double, 15> bounds = {
        0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10};
    static constexpr std::size_t buckets = bounds.size() + 1;

    struct counts {
        std::array<std::uint64_t, buckets> cumulative{};  // the last (+Inf) is the count
        double seconds_sum = 0;
        std::uint64_t count() const { return cumulative.back(); }
    };

    void record(double seconds) {
        const auto* bound = std::lower_bound(bounds.begin(), bounds.end(), seconds);
        buckets_[static_cast<std::size_t>(bound - bounds.begin())].fetch_add(
            1, std::memory_order_relaxed);
        // A clock that stepped back must not subtract from a counter.
        const double ns = std::isfinite(seconds) && seconds > 0 ? seconds * 1e9 : 0.0;
        nanoseconds_.fetch_add(static_cast<std::uint64_t>(ns), std::memory_order_relaxed);
    }

    counts read() const {
        counts c;
        std::uint64_t running = 0;
        for (std::size_t b = 0; b < buckets; ++b) {
            running += buckets_[b].load(std::memory_order_relaxed);
            c.cumulative[b] = running;
        }
        c.seconds_sum = static_cast<double>(nanoseconds_.load(std::memory_order_relaxed)) / 1e9;
        return c;
    }

private:
    std::array<std::atomic<std::uint64_t>, buckets> buckets_{};
    std::atomic<std::uint64_t> nanoseconds_{0};
};

}  // namespace kennel
