// Live numbers for the overview: predictions and their latencies, and the
// rates of facts and predictions over the last seconds.
//
// Threads: record_prediction() is lock-free and called on every prediction;
// sample() from any thread (it takes a small lock).
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <deque>
#include <mutex>

namespace kennel {

struct rate_snapshot {
    double facts_per_second = 0;
    double predictions_per_second = 0;
    double p50_ms = 0;
    double p99_ms = 0;
    double fallback_share = 0;  // over the recent predictions
    std::uint64_t predictions_total = 0;
};

class app_metrics {
public:
    void record_prediction(double latency_ms, bool fallback);
    // One answer asked to be explained: whether an explanation was given,
    // and the time it took.
    void record_explanation(double seconds, bool given) {
        (given ? explained_ : not_explained_).fetch_add(1, std::memory_order_relaxed);
        explain_us_.fetch_add(static_cast<std::uint64_t>(seconds * 1e6), std::memory_order_relaxed);
    }
    std::uint64_t explained() const { return explained_.load(std::memory_order_relaxed); }
    std::uint64_t not_explained() const { return not_explained_.load(std::memory_order_relaxed); }
    double explanation_seconds() const {
        return static_cast<double>(explain_us_.load(std::memory_order_relaxed)) / 1e6;
    }

    // A request's instances whose aggregate features were computed: read
    // whole, or cut at the deadline; and the time the reads took.
    void record_aggregates(std::uint64_t complete, std::uint64_t cut, double seconds) {
        aggregates_complete_.fetch_add(complete, std::memory_order_relaxed);
        aggregates_cut_.fetch_add(cut, std::memory_order_relaxed);
        aggregate_us_.fetch_add(static_cast<std::uint64_t>(seconds * 1e6),
                                std::memory_order_relaxed);
    }
    std::uint64_t aggregates_complete() const {
        return aggregates_complete_.load(std::memory_order_relaxed);
    }
    std::uint64_t aggregates_cut() const { return aggregates_cut_.load(std::memory_order_relaxed); }
    double aggregate_seconds() const {
        return static_cast<double>(aggregate_us_.load(std::memory_order_relaxed)) / 1e6;
    }

    // facts_total: the writer's count of stored facts, sampled by the caller.
    rate_snapshot sample(std::uint64_t facts_total);

private:
    static constexpr std::size_t ring_size = 4096;  // the last predictions' latencies
    std::array<std::atomic<float>, ring_size> latencies_{};
    std::array<std::atomic<bool>, ring_size> fallbacks_{};
    std::atomic<std::uint64_t> predictions_{0};
    std::atomic<std::uint64_t> explained_{0};
    std::atomic<std::uint64_t> not_explained_{0};
    std::atomic<std::uint64_t> explain_us_{0};
    std::atomic<std::uint64_t> aggregates_complete_{0};
    std::atomic<std::uint64_t> aggregates_cut_{0};
    std::atomic<std::uint64_t> aggregate_us_{0};

    struct point {
        std::chrono::steady_clock::time_point at;
        std::uint64_t facts, predictions;
    };
    std::mutex mu_;
    std::deque<point> points_;
};

}  // namespace kennel
