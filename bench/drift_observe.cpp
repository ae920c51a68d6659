// What counting a request's values for drift costs (ml/drift.h), beside the
// work every prediction already does with the same record: the feature
// pipeline's transform. Run by bench/drift.
//
// Records like bench/predict's: ten numbers on different scales and a
// category. The profile comes from 10,000 training rows; the timed records
// are 64 others, cycled (a served record was just parsed: it is in cache).
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "ml/drift.h"
#include "ml/features.h"

using namespace kennel::ml;
using steady = std::chrono::steady_clock;

namespace {

std::vector<raw_record> make_rows(std::size_t n, std::uint64_t seed) {
    std::mt19937_64 rng(seed);
    std::normal_distribution<double> g(0, 1);
    const char* cats[] = {"a", "b", "c", "d", "e", "f"};
    std::vector<raw_record> rows;
    for (std::size_t r = 0; r < n; ++r) {
        raw_record rec;
        for (int i = 0; i < 10; ++i) {
            rec.emplace("x" + std::to_string(i), g(rng) * (1 + 100 * (i % 3)) + 10 * i);
        }
        rec.emplace("cat", std::string(cats[rng() % 6]));
        rows.push_back(std::move(rec));
    }
    return rows;
}

// Nanoseconds per call of f(record) on each of `threads` threads at once
// (wall time per thread), best of five rounds.
template <class F>
double ns_per_call(std::size_t threads, std::size_t calls, const std::vector<raw_record>& rows,
                   F f) {
    double best = 1e300;
    for (int round = 0; round < 5; ++round) {
        std::atomic<bool> go{false};
        std::vector<std::thread> pool;
        for (std::size_t t = 0; t < threads; ++t) {
            pool.emplace_back([&, t] {
                while (!go.load()) std::this_thread::yield();
                for (std::size_t i = 0; i < calls; ++i) f(rows[(i + t * 7) % rows.size()]);
            });
        }
        const auto t0 = steady::now();
        go = true;
        for (auto& th : pool) th.join();
        const double ns = std::chrono::duration<double, std::nano>(steady::now() - t0).count();
        best = std::min(best, ns / static_cast<double>(calls));
    }
    return best;
}

}  // namespace

int main(int argc, char** argv) {
    const std::size_t calls = argc > 1 ? std::strtoul(argv[1], nullptr, 10) : 1'000'000;
    std::vector<feature_spec> specs;
    for (int i = 0; i < 10; ++i) specs.push_back({"x" + std::to_string(i), transform_kind::numeric, {}});
    specs.push_back({"cat", transform_kind::category, {}});
    const auto training = make_rows(10'000, 1);
    auto pipeline = feature_pipeline::fit(specs, training);
    if (!pipeline) {
        std::fprintf(stderr, "bench/drift: %s\n", pipeline.error().message().c_str());
        return 1;
    }
    const drift_monitor monitor(profile_rows(specs, training));
    const auto served = make_rows(64, 2);

    std::atomic<double> sink{0};
    auto transform = [&](const raw_record& r) {
        sink.store(pipeline->transform(r)[0], std::memory_order_relaxed);
    };
    auto observe = [&](const raw_record& r) { monitor.observe(r); };

    std::printf("%-44s %12s %12s %8s\n", "per record, 11 fields", "1 thread", "2 threads", "ratio");
    double base[2], cost[2];
    for (std::size_t t = 1; t <= 2; ++t) {
        base[t - 1] = ns_per_call(t, calls, served, transform);
        cost[t - 1] = ns_per_call(t, calls, served, observe);
    }
    std::printf("%-44s %9.1f ns %9.1f ns %8s\n", "baseline: feature pipeline transform", base[0],
                base[1], "1.00");
    std::printf("%-44s %9.1f ns %9.1f ns %8.2f\n", "drift_monitor::observe", cost[0], cost[1],
                cost[0] / base[0]);
    const auto counted = monitor.counts().observed;
    std::printf("records counted: %llu (expected %llu)\n", static_cast<unsigned long long>(counted),
                static_cast<unsigned long long>(calls * 3 * 5));
    return counted == calls * 3 * 5 ? 0 : 1;
}
