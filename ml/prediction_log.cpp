#include "ml/prediction_log.h"

#include <algorithm>
#include <future>
#include <optional>

#include "store/log.h"
#include "store/time_util.h"

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

prediction_log::prediction_log(fact_writer& writer, std::size_t max_queued,
                               std::chrono::microseconds retention)
    : writer_(writer), max_queued_(max_queued), retention_(retention) {
    thread_ = std::thread([this] {
        name_this_thread("kennel-predlog");
        loop();
    });
}

prediction_log::~prediction_log() {
    stop();
}

void prediction_log::append(prediction_row row) {
    append_rows(&row, 1);
}

void prediction_log::append(std::vector<prediction_row>&& rows) {
    append_rows(rows.data(), rows.size());
}

void prediction_log::append_rows(prediction_row* rows, std::size_t n) {
    // Claim room first: the bound holds across shards without a shared lock.
    const std::size_t before = queued_.fetch_add(n);
    const std::size_t taken = before >= max_queued_ ? 0 : std::min(n, max_queued_ - before);
    if (taken < n) {
        queued_.fetch_sub(n - taken);
        dropped_.fetch_add(n - taken, std::memory_order_relaxed);
    }
    if (!taken) return;
    static std::atomic<std::size_t> next_shard{0};
    thread_local const std::size_t mine =
        next_shard.fetch_add(1, std::memory_order_relaxed) % shard_count;
    std::vector<prediction_segment> encoded;
    add_prediction_entries(encoded, rows, taken);  // outside the lock
    shard& s = shards_[mine];
    std::lock_guard lock(s.mu);
    if (stopping_) {
        // The last flush may have taken this shard already: count, never lose silently.
        queued_.fetch_sub(taken);
        dropped_.fetch_add(taken, std::memory_order_relaxed);
        return;
    }
    for (auto& seg : encoded) merge_prediction_entries(s.open, std::move(seg));
    // No notify: the flusher wakes on its own timer; a request pays for a
    // copy of its entries under its shard's lock and nothing more.
}

void prediction_log::count_dropped(std::size_t n) {
    dropped_.fetch_add(n, std::memory_order_relaxed);
}

void prediction_log::stop() {
    {
        std::lock_guard lock(stop_mu_);
        if (stopping_ && !thread_.joinable()) return;
        stopping_ = true;
    }
    stop_cv_.notify_all();
    if (thread_.joinable()) thread_.join();
}

prediction_log_stats prediction_log::stats() const {
    // Queued counts the flush with the writer too: its rows were in no
    // count until their commit ended.
    return {logged_.load(std::memory_order_relaxed), dropped_.load(std::memory_order_relaxed),
            queued_.load() + writing_.load(), expired_->load(std::memory_order_relaxed)};
}

void prediction_log::expire() {
    const micros before = now_micros() - retention_.count();
    // Relaxed: losing the deletion in a power cut only means doing it again.
    auto fut = writer_.submit(
        [expired = expired_, before](connection& c) {
            const auto gone = expire_prediction_segments(c, before);
            if (gone.entries == 0) return status::ok();
            // Counted (kennel_prediction_log_expired_entries_total); said in
            // the log the first time only, since it recurs each minute.
            const auto total = static_cast<std::uint64_t>(gone.entries);
            if (expired->fetch_add(total, std::memory_order_relaxed) == 0) {
                log_info("prediction-log",
                         "removed " + std::to_string(gone.entries) +
                             " logged predictions older than " + format_rfc3339(before) +
                             " (--prediction-log-days); later removals are counted in "
                             "kennel_prediction_log_expired_entries_total, not logged");
            }
            return status::ok();
        },
        1, durability::relaxed);
    (void)fut;  // a full writer: the next minute tries again
}

void prediction_log::loop() {
    auto next_expiry = std::chrono::steady_clock::now();
    // At most one flush is with the writer at a time. While it is, new
    // entries wait in the buffers (bounded by max_queued_) and go in the next,
    // larger flush. Before, a writer short of CPU (64 busy request threads
    // on 2 cores) let one flush every 5 ms pile up in its queue until the
    // queue was full, and whole flushes were dropped.
    std::optional<std::future<status>> in_flight;
    std::size_t in_flight_rows = 0;
    auto last_failure_logged = std::chrono::steady_clock::time_point{};
    // Rows count as logged once their commit succeeded: a failed commit (a
    // full disk, a broken database) dropped them while they were counted.
    const auto settle = [&](status s) {
        (s ? logged_ : dropped_).fetch_add(in_flight_rows, std::memory_order_relaxed);
        writing_.store(0);
        if (s) return;
        const auto now = std::chrono::steady_clock::now();
        if (now - last_failure_logged >= std::chrono::minutes(1)) {  // not every 5 ms
            last_failure_logged = now;
            log_warn("prediction-log", std::to_string(in_flight_rows) +
                                           " entries dropped, their write failed: " + s.message());
        }
    };
    for (;;) {
        if (retention_.count() > 0 && expiry_started_ &&
            std::chrono::steady_clock::now() >= next_expiry) {
            expire();
            next_expiry = std::chrono::steady_clock::now() + std::chrono::minutes(1);
        }
        bool last = false;
        {
            std::unique_lock lock(stop_mu_);
            stop_cv_.wait_for(lock, flush_interval, [this] { return stopping_.load(); });
            last = stopping_;
        }
        if (in_flight) {
            if (last) {
                // The writer drains what it accepted; bounded all the same,
                // so that stopping never hangs on it (rows still unanswered
                // then are counted as neither).
                if (in_flight->wait_for(std::chrono::seconds(30)) == std::future_status::ready)
                    settle(in_flight->get());
            } else if (in_flight->wait_for(std::chrono::seconds(0)) != std::future_status::ready) {
                continue;
            } else {
                settle(in_flight->get());
            }
            in_flight.reset();
        }
        std::vector<prediction_segment> batch;
        for (shard& s : shards_) {
            std::vector<prediction_segment> taken;
            {
                std::lock_guard lock(s.mu);
                taken.swap(s.open);
            }
            for (auto& seg : taken) merge_prediction_entries(batch, std::move(seg));
        }
        std::size_t n = 0;
        for (const auto& seg : batch) n += static_cast<std::size_t>(seg.size);
        if (n) {
            queued_.fetch_sub(n);
            close_prediction_segments(batch);
            auto segments = std::make_shared<std::vector<prediction_segment>>(std::move(batch));
            auto fut = writer_.submit(
                [segments](connection& c) {
                    insert_prediction_segments(c, *segments);
                    return status::ok();
                },
                n, durability::relaxed);
            if (fut) {
                in_flight = std::move(*fut);
                in_flight_rows = n;
                writing_.store(n);
            } else {
                dropped_.fetch_add(n, std::memory_order_relaxed);  // the writer is full or stopping
            }
        }
        if (last) {
            if (in_flight &&
                in_flight->wait_for(std::chrono::seconds(30)) == std::future_status::ready)
                settle(in_flight->get());
            return;
        }
    }
}

}  // namespace kennel::ml
