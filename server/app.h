// The running server: owns the writer, the reader pool and the HTTP server,
// and runs the start-up and shut-down sequence.
//
// Start-up binds the port first (so /healthz answers at once), then takes the
// database lock, migrates, starts the writer and marks the server ready;
// until then other routes answer 503. Shut-down (SIGINT/SIGTERM) stops
// accepting, lets in-flight requests finish, drains the writer, checkpoints.
//
// Threads: handlers call the accessors from many threads; everything they
// return is thread-safe (see each class).
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>

#include "server/answer_cache.h"
#include "server/app_metrics.h"
#include "server/config.h"
#include "store/reader_pool.h"
#include "store/writer.h"

namespace kennel {

class access_log;
class http_server;
class http_stats;
class authenticator;
namespace ml {
class training_worker;
class serving_registry;
class predict_pool;
class predict_slots;
class prediction_log;
class supervisor;
struct supervisor_state;
}

class app {
public:
    explicit app(serve_options options);
    ~app();

    // Runs until SIGINT or SIGTERM; returns the process exit code.
    int run();

    const serve_options& options() const { return options_; }
    fact_writer& writer() { return *writer_; }
    reader_pool& readers() { return *readers_; }
    ml::training_worker& trainer() { return *trainer_; }
    authenticator& auth() { return *auth_; }
    app_metrics& metrics() { return metrics_; }
    // Live-metrics answers shared by pollers (GET …/live-metrics?max_age=).
    answer_cache& live_metrics_cache() { return live_metrics_cache_; }
    ml::serving_registry& serving() { return *serving_; }
    ml::predict_pool& predict_pool() { return *predict_pool_; }
    ml::predict_slots& predict_slots() { return *predict_slots_; }
    // Explanations at once (each is thousands of predictions):
    // --explain-concurrency; a request past them is a 503.
    ml::predict_slots& explain_slots() { return *explain_slots_; }
    ml::prediction_log& prediction_log() { return *prediction_log_; }
    // Rebuilds a model's serving snapshot after its aliases, versions or
    // definition changed (loads and warms first, then swaps).
    void refresh_model(const std::string& model);
    ml::supervisor_state supervisor_state() const;
    std::size_t parked_connections() const;
    std::size_t parked_partial_requests() const;
    std::uint64_t park_refused_full() const;
    std::uint64_t streaming_refused() const;
    // Requests answered, by route and code; valid once run() has started.
    const http_stats& request_stats() const;
    // The access log, or null without --access-log.
    const access_log* request_log() const { return access_log_.get(); }
    std::chrono::milliseconds write_timeout() const {
        return std::chrono::milliseconds(options_.write_timeout_ms);
    }
    std::int64_t started_at() const { return started_at_; }
    bool ready() const;
    // True once a stop signal came (readiness then reads "stopping").
    bool stopping() const { return stopping_.load(); }

private:
    status start_store();
    status start_trainer();
    void load_demo();
    // Writes the API keys' last uses seen since the last call (at a
    // relaxed durability: a power cut loses a minute of them at most).
    // `wait`: until they are committed (at a stop).
    void write_key_uses(bool wait);

    serve_options options_;
    std::unique_ptr<db_lock> lock_;
    std::unique_ptr<fact_writer> writer_;
    std::unique_ptr<reader_pool> readers_;
    std::unique_ptr<ml::training_worker> trainer_;
    std::unique_ptr<ml::serving_registry> serving_;
    std::unique_ptr<ml::predict_pool> predict_pool_;
    std::unique_ptr<ml::predict_slots> predict_slots_;
    std::unique_ptr<ml::predict_slots> explain_slots_;
    std::unique_ptr<ml::prediction_log> prediction_log_;
    std::unique_ptr<ml::supervisor> supervisor_;
    std::unique_ptr<authenticator> auth_;
    app_metrics metrics_;
    answer_cache live_metrics_cache_{64};
    // The supervisor thread's: facts and predictions counted at its last
    // tick, ticks since they last changed, and whether memory was handed
    // back since (see the supervisor's tick in app.cpp).
    std::uint64_t activity_seen_ = 0;
    int quiet_ticks_ = 0;
    bool trimmed_since_activity_ = true;
    int ticks_since_key_uses_ = 0;
    std::unique_ptr<access_log> access_log_;  // before http_: outlives it
    std::unique_ptr<http_server> http_;
    std::int64_t started_at_ = 0;
    std::atomic<bool> stopping_{false};
};

}  // namespace kennel
