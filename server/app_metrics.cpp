#include "server/app_metrics.h"

#include <algorithm>
#include <vector>

namespace kennel {

void app_metrics::record_prediction(double latency_ms, bool fallback) {
    std::uint64_t n = predictions_.fetch_add(1, std::memory_order_relaxed);
    latencies_[n % ring_size].store(static_cast<float>(latency_ms), std::memory_order_relaxed);
    fallbacks_[n % ring_size].store(fallback, std::memory_order_relaxed);
}

rate_snapshot app_metrics::sample(std::uint64_t facts_total) {
    using namespace std::chrono;
    rate_snapshot out;
    const auto now = steady_clock::now();
    const std::uint64_t predictions = predictions_.load(std::memory_order_relaxed);
    out.predictions_total = predictions;
    {
        std::lock_guard lock(mu_);
        points_.push_back({now, facts_total, predictions});
        while (points_.size() > 1 && now - points_.front().at > seconds(30)) points_.pop_front();
        // The rate over the last ~10 s: against the oldest point no older
        // than that (and at least 1 s ago, so two close calls do not divide by ~0).
        const point* base = nullptr;
        for (const point& p : points_) {
            auto age = now - p.at;
            if (age <= seconds(10) && age >= seconds(1)) {
                base = &p;
                break;
            }
        }
        if (base) {
            double secs = duration<double>(now - base->at).count();
            // A caller that read its total before another's sample and was
            // then held up can come in with an older total: no wrap-around.
            out.facts_per_second = facts_total >= base->facts
                                       ? static_cast<double>(facts_total - base->facts) / secs
                                       : 0.0;
            out.predictions_per_second =
                predictions >= base->predictions
                    ? static_cast<double>(predictions - base->predictions) / secs
                    : 0.0;
        }
    }
    std::size_t count = static_cast<std::size_t>(std::min<std::uint64_t>(predictions, ring_size));
    if (count > 0) {
        std::vector<float> lat(count);
        std::size_t fb = 0;
        for (std::size_t i = 0; i < count; ++i) {
            lat[i] = latencies_[i].load(std::memory_order_relaxed);
            fb += fallbacks_[i].load(std::memory_order_relaxed);
        }
        auto pct = [&lat](double q) {
            std::size_t k = static_cast<std::size_t>(q * static_cast<double>(lat.size() - 1));
            std::nth_element(lat.begin(), lat.begin() + static_cast<std::ptrdiff_t>(k), lat.end());
            return static_cast<double>(lat[k]);
        };
        out.p50_ms = pct(0.50);
        out.p99_ms = pct(0.99);
        out.fallback_share = static_cast<double>(fb) / static_cast<double>(count);
    }
    return out;
}

}  // namespace kennel
