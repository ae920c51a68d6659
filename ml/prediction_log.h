// The prediction log: every answer is recorded off the request path. A
// request only appends to a bounded in-memory queue; a background thread
// hands batches to the writer. When the queue is full, entries are dropped
// and counted; the request is never slowed.
//
// Threads: append() and stats() from any thread.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
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
};

class prediction_log {
public:
    prediction_log(fact_writer& writer, std::size_t max_queued);
    ~prediction_log();
    prediction_log(const prediction_log&) = delete;
    prediction_log& operator=(const prediction_log&) = delete;

    void append(prediction_row row);
    // A request's rows under one lock; those that do not fit are dropped.
    void append(std::vector<prediction_row>&& rows);
    // Entries that were never produced (shadow work skipped under load).
    void count_dropped(std::size_t n);
    void stop();  // flushes what is queued
    prediction_log_stats stats() const;

private:
    void loop();

    fact_writer& writer_;
    std::size_t max_queued_;
    mutable std::mutex mu_;
    std::condition_variable cv_;
    std::vector<prediction_row> queue_;
    bool stopping_ = false;
    std::uint64_t logged_ = 0;
    std::uint64_t dropped_ = 0;
    std::thread thread_;
};

}  // namespace kennel::ml
