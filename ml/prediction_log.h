// The prediction log: every answer is recorded off the request path. A
// request encodes its entries and appends them to a bounded in-memory queue;
// a background thread hands them to the writer as segments. When the queue
// is full, entries are dropped and counted; the request is never slowed.
//
// Threads: append() and stats() from any thread.
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "store/registry.h"
#include "store/writer.h"

namespace kennel::ml {

struct prediction_log_stats {
    std::uint64_t logged = 0;
    std::uint64_t dropped = 0;
    std::size_t queued = 0;
    std::uint64_t expired = 0;  // deleted by retention since start
};

class prediction_log {
public:
    // Segments older than `retention` are deleted about once a minute
    // (zero: kept forever), from start_expiry() on.
    prediction_log(fact_writer& writer, std::size_t max_queued,
                   std::chrono::microseconds retention = std::chrono::microseconds(0));
    ~prediction_log();
    prediction_log(const prediction_log&) = delete;
    prediction_log& operator=(const prediction_log&) = delete;

    void append(prediction_row row);
    // A request's rows at once; those that do not fit are dropped.
    void append(std::vector<prediction_row>&& rows);
    // Entries that were never produced (shadow work skipped under load).
    void count_dropped(std::size_t n);
    void stop();  // flushes what is queued
    // Begins the deletions: called once the server is ready, so that they
    // never take the writer's queue from the writes of start-up.
    void start_expiry() { expiry_started_ = true; }
    prediction_log_stats stats() const;

private:
    void append_rows(prediction_row* rows, std::size_t n);
    void loop();

    // Requests append to one of several queues, chosen per thread, so that
    // the threads answering predictions do not queue on one lock (with one
    // queue, 8 connections on 2 cores slept on its lock a few thousand
    // times a second).
    static constexpr std::size_t shard_count = 8;
    // Entries are encoded by the requests' threads, not the flusher's: on a
    // saturated machine one flusher among many request threads got too
    // little CPU to encode them all (bench/predict, batches at 64
    // connections, dropped most entries).
    struct alignas(64) shard {
        std::mutex mu;
        std::vector<prediction_segment> open;  // one per model, arrays not yet closed
    };

    void expire();

    fact_writer& writer_;
    std::size_t max_queued_;
    std::chrono::microseconds retention_;
    std::atomic<bool> expiry_started_{false};
    std::array<shard, shard_count> shards_;
    std::atomic<std::size_t> queued_{0};  // rows in every shard, bounded by max_queued_
    std::atomic<std::size_t> writing_{0};  // rows of the flush with the writer
    std::atomic<std::uint64_t> logged_{0};
    std::atomic<std::uint64_t> dropped_{0};
    // Shared with the deletions queued on the writer, which may run after
    // this log is gone.
    std::shared_ptr<std::atomic<std::uint64_t>> expired_ =
        std::make_shared<std::atomic<std::uint64_t>>(0);
    std::atomic<bool> stopping_{false};
    std::mutex stop_mu_;  // the flusher sleeps on it between flushes
    std::condition_variable stop_cv_;
    std::thread thread_;
};

}  // namespace kennel::ml
