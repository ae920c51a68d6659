#include "ml/prediction_log.h"

#include <algorithm>

#include "store/log.h"

namespace kennel::ml {

namespace {

// The log's inserts run on the writer thread, a flush's rows at a time. On
// a busy machine a large burst delays requests: bench/predict at 8
// connections on 2 cores measured p99 3.0-3.4 ms with 20-100 ms flushes,
// 0.7-1.0 ms with 2-5 ms flushes, every prediction logged in both. (Rejected:
// yielding the CPU every few rows cut p99 to 0.9-1.1 ms only by making the
// writer fall behind, so that half the entries were dropped; a separate
// connection on a thread at nice 10-19 did not change p99.)
constexpr auto flush_interval = std::chrono::milliseconds(5);

}  // namespace

prediction_log::prediction_log(fact_writer& writer, std::size_t max_queued)
    : writer_(writer), max_queued_(max_queued) {
    thread_ = std::thread([this] {
        name_this_thread("kennel-predlog");
        loop();
    });
}

prediction_log::~prediction_log() {
    stop();
}

void prediction_log::append(prediction_row row) {
    {
        std::lock_guard lock(mu_);
        if (stopping_ || queue_.size() >= max_queued_) {
            ++dropped_;
            return;
        }
        queue_.push_back(std::move(row));
    }
    // No notify: the flusher wakes on its own timer; a request pays for a
    // push_back under a lock and nothing more.
}

void prediction_log::append(std::vector<prediction_row>&& rows) {
    std::lock_guard lock(mu_);
    std::size_t room = stopping_ || queue_.size() >= max_queued_ ? 0 : max_queued_ - queue_.size();
    std::size_t taken = std::min(room, rows.size());
    for (std::size_t i = 0; i < taken; ++i) queue_.push_back(std::move(rows[i]));
    dropped_ += rows.size() - taken;
}

void prediction_log::count_dropped(std::size_t n) {
    std::lock_guard lock(mu_);
    dropped_ += n;
}

void prediction_log::stop() {
    {
        std::lock_guard lock(mu_);
        if (stopping_ && !thread_.joinable()) return;
        stopping_ = true;
    }
    cv_.notify_all();
    if (thread_.joinable()) thread_.join();
}

prediction_log_stats prediction_log::stats() const {
    std::lock_guard lock(mu_);
    return {logged_, dropped_, queue_.size()};
}

void prediction_log::loop() {
    std::size_t last_size = 0;
    for (;;) {
        // The next queue is allocated here, not by a request holding the lock.
        std::vector<prediction_row> batch, next;
        next.reserve(std::min(max_queued_, last_size + last_size / 2 + 16));
        bool last = false;
        {
            std::unique_lock lock(mu_);
            cv_.wait_for(lock, flush_interval, [this] { return stopping_; });
            batch.swap(queue_);
            queue_.swap(next);
            last = stopping_;
        }
        last_size = batch.size();
        if (!batch.empty()) {
            std::size_t n = batch.size();
            auto shared = std::make_shared<std::vector<prediction_row>>(std::move(batch));
            auto fut = writer_.submit(
                [shared](connection& c) {
                    insert_predictions(c, *shared);
                    return status::ok();
                },
                n, durability::relaxed);
            std::lock_guard lock(mu_);
            if (fut) {
                logged_ += n;
            } else {
                dropped_ += n;  // the writer is full or stopping
            }
        }
        if (last) return;
    }
}

}  // namespace kennel::ml
