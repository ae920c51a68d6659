#include "store/writer.h"

#include <sys/stat.h>

#include <cerrno>
#include <cstring>
#include <filesystem>

#include "store/log.h"

#include "store/time_util.h"

namespace kennel {

fact_writer::fact_writer(writer_options options) : options_(std::move(options)) {}

fact_writer::~fact_writer() {
    stop();
}

status fact_writer::start() {
    std::promise<status> opened;
    auto opened_future = opened.get_future();
    thread_ = std::thread([this, &opened] {
        name_this_thread("kennel-writer");
        try {
            open_options db = options_.db;
            if (db.cache_kib == 0) db.cache_kib = 64 * 1024;
            conn_ = std::make_unique<connection>(options_.db_path, db);
            conn_->watch_wal();
            inserter_ = std::make_unique<fact_inserter>(*conn_);
            struct stat st {};
            std::error_code ec;
            file_path_ = std::filesystem::absolute(options_.db_path, ec).string();
            if (!ec && ::stat(file_path_.c_str(), &st) == 0 && S_ISREG(st.st_mode))
                file_id_.emplace(st.st_dev, st.st_ino);
            // SQLite keeps its WAL open from the first connection on.
            if (file_id_ && ::stat((file_path_ + "-wal").c_str(), &st) == 0 && S_ISREG(st.st_mode))
                wal_id_.emplace(st.st_dev, st.st_ino);
        } catch (const db_error& e) {
            inserter_.reset();
            conn_.reset();
            opened.set_value(status(error_kind::internal, e.what()));
            return;
        }
        running_ = true;
        checkpointer_ = std::thread([this] {
            name_this_thread("kennel-ckpt");
            checkpoint_loop();
        });
        opened.set_value(status::ok());
        loop();
    });
    status s = opened_future.get();
    if (!s) {
        thread_.join();
    }
    return s;
}

void fact_writer::stop() {
    {
        std::lock_guard lock(mu_);
        stopping_ = true;
    }
    cv_.notify_all();
    room_cv_.notify_all();
    if (!thread_.joinable()) return;
    thread_.join();
    // The writer thread is gone: its counters are this thread's now. Within
    // the interval of the last report, the failures since were only counted.
    if (unlogged_failures_ > 0) {
        log_warn("writer", std::to_string(unlogged_failures_) +
                               (unlogged_failures_ == 1 ? " commit" : " commits") +
                               " failed since the last report, up to the stop; nothing of "
                               "those writes was stored");
        unlogged_failures_ = 0;
    }
}

status fact_writer::enqueue(std::shared_ptr<item> it,
                            std::optional<std::chrono::steady_clock::time_point> room_by) {
    std::size_t units = it->units();
    {
        std::unique_lock lock(mu_);
        auto has_room = [&] {
            return stopping_ || !running_ || pending_units_ == 0 ||
                   pending_units_ + units <= options_.max_pending;
        };
        if (!has_room() && room_by) {
            ++room_waiters_;
            room_cv_.wait_until(lock, *room_by, has_room);
            --room_waiters_;
        }
        if (stopping_ || !running_) {
            return status(error_kind::unavailable, "the writer is shutting down");
        }
        if (!has_room()) {
            ++stats_.refused_full;
            return status(error_kind::unavailable, "write queue is full (" +
                                                       std::to_string(pending_units_) +
                                                       " pending); retry shortly");
        }
        pending_units_ += units;
        queue_.push_back(std::move(it));
    }
    cv_.notify_one();
    return status::ok();
}

result<fact_writer::ticket> fact_writer::submit_facts(
    std::vector<fact_input>&& facts, std::optional<std::chrono::steady_clock::time_point> room_by) {
    auto it = std::make_shared<item>();
    it->facts = std::move(facts);
    ticket t(it);
    if (status s = enqueue(it, room_by); !s) {
        facts = std::move(it->facts);
        return s;
    }
    return t;
}

status fact_writer::submit_facts(std::vector<fact_input> facts, facts_callback done) {
    auto it = std::make_shared<item>();
    it->facts = std::move(facts);
    it->facts_then = std::move(done);
    return enqueue(std::move(it));
}

bool fact_writer::ticket::wait_for(std::chrono::milliseconds timeout) {
    return item_->facts_done.wait_for(timeout);
}

std::vector<write_result> fact_writer::ticket::take() {
    return std::move(item_->results);
}

std::shared_ptr<fact_writer::item> fact_writer::task_item(write_task task, std::size_t units,
                                                          durability d) {
    auto it = std::make_shared<item>();
    it->task = std::move(task);
    it->task_units = std::max<std::size_t>(1, units);
    it->task_durability = d;
    return it;
}

result<std::future<status>> fact_writer::submit(write_task task, std::size_t units, durability d) {
    auto it = task_item(std::move(task), units, d);
    auto fut = it->task_done.get_future();
    if (status s = enqueue(std::move(it)); !s) return s;
    return fut;
}

result<std::vector<write_result>> fact_writer::write_facts(std::vector<fact_input> facts,
                                                           std::chrono::milliseconds timeout) {
    auto t = submit_facts(std::move(facts));
    if (!t) return t.error();
    if (!t->wait_for(timeout)) {
        return not_committed(timeout);
    }
    return t->take();
}

status fact_writer::not_committed(std::chrono::milliseconds timeout) {
    return status(error_kind::unavailable,
                  "the write was not committed within " + std::to_string(timeout.count()) +
                      " ms; it may still commit: a retry is safe for facts with a time or an"
                      " idempotency_key (one with neither is stamped anew and would be stored"
                      " twice)");
}

status fact_writer::run(write_task task, std::chrono::milliseconds timeout) {
    auto it = task_item(std::move(task), 1, durability::durable);
    auto fut = it->task_done.get_future();
    if (status s = enqueue(it); !s) return s;
    if (fut.wait_for(timeout) == std::future_status::ready) return fut.get();
    if (!it->task_claimed.exchange(true)) {
        return status(error_kind::unavailable, "the write did not start within " +
                                                   std::to_string(timeout.count()) +
                                                   " ms and was withdrawn; nothing was written");
    }
    return fut.get();  // running: one transaction, and it may use our caller's locals
}

void fact_writer::count_rejected(std::uint64_t n) {
    if (n == 0) return;
    std::lock_guard lock(mu_);
    stats_.facts_rejected += n;
}

writer_stats fact_writer::stats() const {
    std::lock_guard lock(mu_);
    writer_stats s = stats_;
    s.pending = pending_units_;
    return s;
}

void fact_writer::loop() {
    for (;;) {
        std::vector<std::shared_ptr<item>> group;
        {
            std::unique_lock lock(mu_);
            cv_.wait(lock, [this] { return stopping_ || !queue_.empty(); });
            if (queue_.empty() && stopping_) break;
        }
        if (auto d = test_delay_ms_.load(); d > 0) {
            std::this_thread::sleep_for(std::chrono::milliseconds(d));
        }
        {
            // Everything queued so far joins this group, up to max_group units.
            std::lock_guard lock(mu_);
            std::size_t units = 0;
            while (!queue_.empty() && (group.empty() || units < options_.max_group)) {
                units += queue_.front()->units();
                group.push_back(std::move(queue_.front()));
                queue_.pop_front();
            }
        }
        commit_group(group);
    }
    // Drained: fold the WAL back into the main file so a copy of kennel.db
    // alone is complete.
    stop_checkpoints();
    try {
        conn_->exec("PRAGMA wal_checkpoint(TRUNCATE)");
    } catch (const db_error&) {
        // A reader still holds the WAL; the next open recovers it.
    }
    inserter_.reset();
    conn_.reset();
    running_ = false;
}

void fact_writer::set_test_checkpoint_hook(std::function<void()> hook) {
    std::lock_guard lock(checkpoint_mu_);
    checkpoint_hook_ = std::move(hook);
}

void fact_writer::checkpoint_loop() {
    std::unique_ptr<connection> conn;
    for (;;) {
        std::function<void()> hook;
        {
            std::unique_lock lock(checkpoint_mu_);
            checkpoint_cv_.wait(lock,
                                [this] { return checkpoint_stopping_ || checkpoint_wanted_; });
            if (checkpoint_stopping_) return;
            checkpoint_wanted_ = false;
            hook = checkpoint_hook_;
        }
        if (hook) hook();
        try {
            if (!conn) conn = std::make_unique<connection>(options_.db_path, options_.db);
            // PASSIVE: copies what no reader still needs and never waits
            // for the writer or readers; the writer restarts the WAL from its
            // beginning once everything was copied.
            conn->exec("PRAGMA wal_checkpoint(PASSIVE)");
            std::lock_guard lock(mu_);
            ++stats_.checkpoints;
        } catch (const db_error& e) {
            log_error("writer",
                      std::string("checkpoint failed (the next one retries): ") + e.what());
            conn.reset();
        }
    }
}

void fact_writer::stop_checkpoints() {
    {
        std::lock_guard lock(checkpoint_mu_);
        checkpoint_stopping_ = true;
    }
    checkpoint_cv_.notify_all();
    if (checkpointer_.joinable()) checkpointer_.join();
}

void fact_writer::set_relaxed_sync(bool relaxed) {
    if (options_.db.sync != sync_mode::full || relaxed == relaxed_sync_) return;
    conn_->exec(relaxed ? "PRAGMA synchronous = NORMAL" : "PRAGMA synchronous = FULL");
    relaxed_sync_ = relaxed;
}

void fact_writer::note_commit_failure(const char* what) {
    // A full disk or a database locked by another program fails every
    // write; the 503s alone leave an operator nothing to read. One line per
    // interval: such a failure repeats with every commit.
    ++unlogged_failures_;
    failing_ = true;
    const auto now = std::chrono::steady_clock::now();
    if (failure_logged_at_ && now - *failure_logged_at_ < options_.commit_failure_log_every) return;
    log_warn("writer", std::string("commit failed (") + std::to_string(unlogged_failures_) +
                           (unlogged_failures_ == 1 ? " failure" : " failures") +
                           (failure_logged_at_ ? " since the last report" : "") +
                           "; nothing of those writes was stored): " + what);
    unlogged_failures_ = 0;
    failure_logged_at_ = now;
    recovery_due_ = true;
}

void fact_writer::note_commit_success() {
    // Said once the failures end, with those not yet reported: they were
    // only ever counted in the next report, which never came. Held to the
    // failure lines' interval unless a failure line came since the last.
    if (!failing_) return;
    if (!recovery_due_ && failure_logged_at_ &&
        std::chrono::steady_clock::now() - *failure_logged_at_ < options_.commit_failure_log_every)
        return;
    log_info("writer",
             "commits succeed again" +
                 (unlogged_failures_ == 0
                      ? std::string()
                      : " (after " + std::to_string(unlogged_failures_) +
                            (unlogged_failures_ == 1 ? " more failure" : " more failures") +
                            " since the last report)"));
    unlogged_failures_ = 0;
    failing_ = false;
    recovery_due_ = false;
}

std::string fact_writer::database_file_problem() const {
    if (!file_id_) return {};
    struct stat st {};
    if (::stat(file_path_.c_str(), &st) != 0) {
        return "the database file " + file_path_ + " is gone (" + std::strerror(errno) +
               ") since Kennel opened it";
    }
    if (std::pair<std::uint64_t, std::uint64_t>(st.st_dev, st.st_ino) != *file_id_) {
        return "the database file " + file_path_ +
               " is another file than the one Kennel opened (moved or replaced)";
    }
    // Deleted under a running server, the WAL took commits into a file no
    // path names: a crash would lose every one since its last checkpoint.
    // (A clean stop still copies them into the database file.)
    if (wal_id_) {
        const std::string wal = file_path_ + "-wal";
        const bool gone = ::stat(wal.c_str(), &st) != 0;
        if (gone || std::pair<std::uint64_t, std::uint64_t>(st.st_dev, st.st_ino) != *wal_id_) {
            return "the database's WAL file " + wal +
                   (gone ? " is gone" : " is another file than the one SQLite opened") +
                   " (the commits since its last checkpoint are only in the file SQLite still "
                   "holds: stop Kennel cleanly, with SIGTERM, to copy them into the database, "
                   "and start it again)";
        }
    }
    return {};
}

status fact_writer::check_database_file(bool committed) {
    const std::string problem = database_file_problem();
    if (problem.empty() && file_lost_)
        log_info("writer", "the database file is back at " + file_path_ + "; writes resume");
    if (!problem.empty() && !file_lost_) {
        log_error("writer", problem +
                                ": writes are refused, as they would be lost when Kennel stops; "
                                "put the file back, or restart Kennel (which opens what is at "
                                "the path)");
    }
    file_lost_ = !problem.empty();
    if (problem.empty()) return status::ok();
    return status(error_kind::unavailable,
                  problem + (committed ? "; this write went into the file that is gone, so it "
                                         "is not stored: retry it once the file is back"
                                       : "; nothing was written (it would be lost when Kennel "
                                         "stops)"));
}

// One group in one transaction, committed; throws db_error when the
// transaction fails (a task's own constraint or busy error fails the task
// alone, under its savepoint).
void fact_writer::write_group(const std::vector<std::shared_ptr<item>>& group, bool relaxed,
                              std::vector<std::vector<write_result>>& fact_results,
                              std::vector<status>& task_results, writer_stats& delta) {
    set_relaxed_sync(relaxed);
    transaction tx(*conn_);
    micros ingest = now_micros();
    for (std::size_t i = 0; i < group.size(); ++i) {
        item& it = *group[i];
        if (it.task) {
            if (it.task_claimed.exchange(true)) {
                task_results[i] = status(error_kind::unavailable, "withdrawn by its caller");
                continue;
            }
            savepoint sp(*conn_, "task");
            try {
                task_results[i] = it.task(*conn_);
            } catch (const db_error& e) {
                if (!e.is_constraint() && !e.is_busy()) throw;
                task_results[i] = status(error_kind::conflict, e.what());
            } catch (const std::exception& e) {
                task_results[i] = status(error_kind::internal, e.what());
            }
            if (task_results[i]) sp.release();
            ++delta.tasks;
            continue;
        }
        auto& out = fact_results[i];
        out.reserve(it.facts.size());
        for (const fact_input& f : it.facts) {
            out.push_back(inserter_->insert(f, ingest));
            switch (out.back().outcome) {
                case write_outcome::stored:
                    ++delta.facts_stored;
                    break;
                case write_outcome::duplicate:
                    ++delta.facts_duplicate;
                    break;
                case write_outcome::rejected:
                    ++delta.facts_rejected;
                    break;
            }
        }
    }
    tx.commit();
    if (conn_->wal_frames() >= options_.checkpoint_frames) {
        {
            std::lock_guard lock(checkpoint_mu_);
            checkpoint_wanted_ = true;
        }
        checkpoint_cv_.notify_one();
    }
}

void fact_writer::commit_group(std::vector<std::shared_ptr<item>>& group) {
    std::vector<std::vector<write_result>> fact_results(group.size());
    std::vector<status> task_results(group.size());
    std::size_t units = 0;
    for (const auto& it : group) units += it->units();
    writer_stats delta;
    bool relaxed = true;
    for (const auto& it : group)
        relaxed = relaxed && it->task && it->task_durability == durability::relaxed;
    std::string why;  // a failed commit's own reason, for the log
    status failure = check_database_file(false);
    if (failure.is_ok()) {
        try {
            write_group(group, relaxed, fact_results, task_results, delta);
            // Looked at again after the commit, which the file may have left
            // its path during: only a commit into the file at the path is
            // acknowledged (a retry is a duplicate if the file comes back).
            failure = check_database_file(true);
        } catch (const db_error& e) {
            why = e.what();
            failure = status(error_kind::unavailable,
                             "commit failed, nothing in this write was stored: " + why);
        }
    }
    if (failure.is_ok()) {
        note_commit_success();
    } else {
        note_commit_failure(why.empty() ? failure.message().c_str() : why.c_str());
    }
    {
        std::lock_guard lock(mu_);
        pending_units_ -= units;
        if (room_waiters_ > 0) room_cv_.notify_all();
        if (failure.is_ok()) {
            ++stats_.commits;
            stats_.facts_stored += delta.facts_stored;
            stats_.facts_duplicate += delta.facts_duplicate;
            stats_.facts_rejected += delta.facts_rejected;
            stats_.tasks += delta.tasks;
            stats_.last_commit_micros = now_micros();
        } else {
            ++stats_.failed_commits;
        }
    }
    // Only now, after COMMIT returned, does anyone hear back.
    for (std::size_t i = 0; i < group.size(); ++i) {
        item& it = *group[i];
        if (it.task) {
            it.task_done.set_value(failure.is_ok() ? task_results[i] : failure);
        } else {
            if (failure.is_ok()) {
                it.results = std::move(fact_results[i]);
            } else {
                it.results.assign(it.facts.size(), write_result{});
                for (auto& r : it.results) {
                    r.error = failure.message();
                    r.commit_failed = true;
                }
            }
            if (it.facts_then) {
                try {
                    it.facts_then(std::move(it.results));
                } catch (const std::exception& e) {
                    log_error("writer", std::string("a commit callback threw: ") + e.what());
                }
                it.facts_then = nullptr;  // it may hold what refers back to the item
            } else {
                it.facts_done.set();
            }
        }
    }
}

}  // namespace kennel
