// The supervisor: watches each serving version's error rate, deadline misses,
// fallback share and (when the policy sets bounds) its live metrics, and takes
// a version out of service when it crosses its model's supervision policy:
// the version is disabled, the live alias moves back to the previous usable
// live version if there is one (otherwise traffic goes down the fallback
// chain), both recorded with the reason, and serving is refreshed at once.
// It also keeps each serving version's feature drift window (ml/drift.h)
// and reports a version whose inputs drifted past the policy's bound, once a
// window, queuing a retraining job when the model's retrain policy says so.
//
// Threads: one background thread; start/stop/actions from any thread.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "ml/canary.h"
#include "ml/serving.h"
#include "store/reader_pool.h"
#include "store/registry.h"
#include "store/writer.h"

namespace kennel::ml {

struct supervisor_action {
    std::int64_t time = 0;  // micros
    // "disable": taken out of service; "drift": inputs drifted, reported
    // (and a retraining job queued when the model asks for one); "canary":
    // a canary decided or ended (ml/canary.h), or taken on under a new
    // revision of its definition, the version its canary's.
    std::string kind = "disable";
    std::string model;
    std::int64_t version = 0;
    std::string reason;
    std::string outcome;  // "disabled; live moved to 3", ...
};

inline constexpr std::size_t max_actions_shown = 100;

struct supervisor_state {
    std::string state;  // watching, stopped
    std::int64_t last_tick = 0;
    std::uint64_t ticks = 0;
    // Newest last, at most max_actions_shown, those before a restart too
    // (kept in table supervisor_actions).
    std::vector<supervisor_action> actions;
    // Every action since start, by kind ("disable", "drift"): unlike the list, never trimmed.
    std::map<std::string, std::uint64_t> actions_total;
};

class supervisor {
public:
    supervisor(fact_writer& writer, reader_pool& readers, serving_registry& serving,
               std::function<void(const std::string&)> refresh,
               std::chrono::milliseconds interval = std::chrono::milliseconds(1000),
               std::function<void()> on_tick = {});
    ~supervisor();
    supervisor(const supervisor&) = delete;
    supervisor& operator=(const supervisor&) = delete;

    void start();
    void stop();
    supervisor_state state() const;

    // One pass over every serving version (the thread calls it; tests may too).
    void tick();

    // Called after the supervisor queued a training job (to wake the
    // trainer). Set before start().
    void on_job_queued(std::function<void()> f) { job_queued_ = std::move(f); }
    // What an experiment's arms showed over its time (JSON), kept with its
    // end; null when it cannot be computed. Set before start().
    using results_function = std::function<std::optional<std::string>(
        connection&, const std::string& model, const experiment_row&)>;
    void on_experiment_results(results_function f) { results_ = std::move(f); }
    // How often live metrics are judged (their bounds, and canaries): a
    // join over up to 10,000 predictions a model. Set before start().
    void live_check_interval(std::chrono::seconds s) { live_interval_ = s; }

private:
    struct sample {
        std::chrono::steady_clock::time_point at;
        std::uint64_t requests, errors, misses, fallbacks;
    };
    bool read_kept_actions_ = false;  // start() and stop() come from one thread
    void act(const model_serving& m, std::int64_t version, const std::string& reason);
    // One look at the model's undecided canary, if it has one: ends it and
    // moves live when it is decided, or when live or its version moved.
    void watch_canary(const model_serving& m);
    // Takes e's canary on as `after`, under a new revision it goes on
    // under (a look judges it from the next on).
    void take_on(const model_serving& m, const experiment_row& e, const canary_state& after,
                 micros now);
    void check_drift(const model_serving& m, const loaded_version& v,
                     std::chrono::steady_clock::time_point now);
    // Shows an action, and keeps it in the database unless `kept` (written
    // with its effects already).
    void record(supervisor_action a, bool kept = false);

    fact_writer& writer_;
    reader_pool& readers_;
    serving_registry& serving_;
    std::function<void(const std::string&)> refresh_;
    std::function<void()> on_tick_;  // other once-a-second work (the overview's rate samples)
    std::function<void()> job_queued_;
    results_function results_;
    std::chrono::milliseconds interval_;
    std::map<std::pair<std::string, std::int64_t>, std::deque<sample>> history_;
    std::set<std::pair<std::string, std::int64_t>> seen_;
    // When each version's drift was last reported: at most once a window.
    std::map<std::pair<std::string, std::int64_t>, std::chrono::steady_clock::time_point>
        drift_reported_;
    std::chrono::steady_clock::time_point last_live_check_{};
    std::chrono::seconds live_interval_{10};
    std::thread thread_;
    mutable std::mutex mu_;
    std::condition_variable cv_;
    bool stopping_ = false;
    supervisor_state state_;
};

}  // namespace kennel::ml
