// The writer: the one thread and the one connection that write to SQLite.
//
// Requests hand it work through a bounded queue and wait (with a bound) for
// the result; the writer takes everything queued, runs it in one transaction
// and commits once (group commit), so many concurrent requests share one
// durable fsync. A result is delivered only after COMMIT returned: an
// acknowledged write is on disk (with synchronous=FULL).
//
// Threads: submit() may be called from any thread. When the queue holds
// `max_pending` units of work, submit() fails at once with `unavailable`
// rather than growing without bound. stop() drains what was accepted.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <future>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "store/completion.h"
#include "store/db.h"
#include "store/facts.h"
#include "store/status.h"

namespace kennel {

struct writer_options {
    std::string db_path;
    open_options db;
    std::size_t max_pending = 20000;  // queued facts + tasks before 503
    std::size_t max_group = 5000;     // most units in one transaction
    // WAL frames (pages) after which a checkpoint runs, on its own thread.
    int checkpoint_frames = 1000;
    // A failed commit is logged (with SQLite's message), at most once per
    // this interval; the next line counts the failures since the last one.
    std::chrono::milliseconds commit_failure_log_every{5000};
};

struct writer_stats {
    std::uint64_t commits = 0;
    std::uint64_t facts_stored = 0;
    std::uint64_t facts_duplicate = 0;
    std::uint64_t facts_rejected = 0;
    std::uint64_t tasks = 0;
    std::uint64_t refused_full = 0;  // submissions turned away with 503
    std::uint64_t failed_commits = 0;
    std::size_t pending = 0;
    std::int64_t last_commit_micros = 0;  // when the last commit finished
    std::uint64_t checkpoints = 0;        // run by the checkpoint thread
};

// A write that is not a fact (models, jobs, versions...). It runs inside the
// group's transaction under its own savepoint: a failing task is rolled back
// alone. It must not keep references to the connection.
using write_task = std::function<status(connection&)>;

// Whether a task's commit must reach the disk before it counts as done.
// `relaxed` is for records that may lose their last moments in a power cut
// (the prediction log, which also drops entries when its queue is full): a
// group of only relaxed tasks commits with synchronous=NORMAL, i.e. without
// an fsync; the next durable commit's fsync covers it. Facts are always
// durable.
enum class durability { durable, relaxed };

class fact_writer {
    struct item;

public:
    // A submitted fact write: wait for its commit, then take the results.
    class ticket {
    public:
        // True once the group holding it committed (or failed); false when
        // `timeout` passed first (the write may still commit later).
        bool wait_for(std::chrono::milliseconds timeout);
        // The per-fact results; only after wait_for returned true, once.
        std::vector<write_result> take();

    private:
        friend class fact_writer;
        explicit ticket(std::shared_ptr<item> it) : item_(std::move(it)) {}
        std::shared_ptr<item> item_;
    };

    explicit fact_writer(writer_options options);
    ~fact_writer();
    fact_writer(const fact_writer&) = delete;
    fact_writer& operator=(const fact_writer&) = delete;

    // Opens the connection on the writer thread; returns its error, if any.
    status start();
    // Stops taking work, commits everything already queued, checkpoints the
    // WAL and closes the connection. Failed commits not reported yet are
    // reported then.
    void stop();
    // After stop(): whether the last commits failed (what they held is not
    // stored), so the caller does not say it stopped cleanly.
    bool stopped_failing() const { return failing_; }
    // What is wrong with the database file, when it is no longer the file
    // opened at start at its path (deleted with its folder, moved, replaced);
    // empty while all is well (one stat(), from any thread after start()).
    // The writer looks before each group and after its commit, and refuses
    // the group's writes while the file is not there: each would be
    // acknowledged into a file no one can open again, lost at the stop. (A
    // copy written over the same file keeps its identity: not seen.)
    std::string database_file_problem() const;

    // A full queue refuses at once, or, with `room_by`, when there is still
    // no room then (for the later parts of one request, whose first parts
    // are already queued). Refused, `facts` is left as it was.
    result<ticket> submit_facts(
        std::vector<fact_input>&& facts,
        std::optional<std::chrono::steady_clock::time_point> room_by = std::nullopt);
    // The same, with no one waiting: `done` gets the results on the writer
    // thread once the group committed (or failed). It must be quick (the
    // next group waits for it) and must not throw. The HTTP edge uses it to
    // answer a request without keeping the request's thread awake.
    using facts_callback = std::function<void(std::vector<write_result>&&)>;
    status submit_facts(std::vector<fact_input> facts, facts_callback done);
    // `units`: how much of the queue bound the task takes (a batch of log
    // rows counts each row, so it cannot hide thousands behind one slot).
    result<std::future<status>> submit(write_task task, std::size_t units = 1,
                                       durability d = durability::durable);

    // Submits and waits up to `timeout`; a timeout is `unavailable` (the work
    // may still commit later; idempotency keys make a retry safe).
    result<std::vector<write_result>> write_facts(std::vector<fact_input> facts,
                                                  std::chrono::milliseconds timeout);
    // What a caller that gave up waiting for facts after `timeout` answers.
    static status not_committed(std::chrono::milliseconds timeout);
    // Runs a task and waits for its commit. Unlike write_facts it never
    // returns while the task may still run, so the task may refer to the
    // caller's locals: past `timeout`, a task not yet started is withdrawn
    // (`unavailable`, nothing written) and one already running is waited for.
    status run(write_task task, std::chrono::milliseconds timeout);

    // Facts refused before they reached the writer (malformed, invalid, or
    // for a stream the caller's key may not send to): counted with its own
    // rejections, so facts_rejected is every fact refused.
    void count_rejected(std::uint64_t n);
    writer_stats stats() const;
    bool running() const { return running_.load(); }

    // Tests only: the writer thread sleeps this long before each group, so a
    // test can fill the queue deterministically.
    void set_test_delay(std::chrono::milliseconds d) { test_delay_ms_ = d.count(); }
    // Tests only: runs on the checkpoint thread before each checkpoint.
    void set_test_checkpoint_hook(std::function<void()> hook);

private:
    // Shared by the writer and, for facts, the waiting request (which may
    // give up at its timeout while the writer still fills in the results).
    struct item {
        std::vector<fact_input> facts;
        std::vector<write_result> results;  // written before `facts_done` is set
        completion facts_done;
        facts_callback facts_then;  // instead of facts_done, when set
        write_task task;
        std::size_t task_units = 1;
        durability task_durability = durability::durable;
        // Set by whichever comes first: the writer starting the task, or
        // run() withdrawing it after its timeout.
        std::atomic<bool> task_claimed{false};
        std::promise<status> task_done;
        std::size_t units() const {
            return task ? task_units : std::max<std::size_t>(1, facts.size());
        }
    };

    void loop();
    void commit_group(std::vector<std::shared_ptr<item>>& group);
    void write_group(const std::vector<std::shared_ptr<item>>& group, bool relaxed,
                     std::vector<std::vector<write_result>>& fact_results,
                     std::vector<status>& task_results, writer_stats& delta);
    // Checkpoints run on their own thread and connection, so that the
    // checkpoint's fsync of the database file (measured here: up to half a
    // second on a busy disk) never holds up a commit.
    void checkpoint_loop();
    void stop_checkpoints();
    status enqueue(std::shared_ptr<item> it,
                   std::optional<std::chrono::steady_clock::time_point> room_by = std::nullopt);
    static std::shared_ptr<item> task_item(write_task task, std::size_t units, durability d);

    // Switches the connection's synchronous setting between groups (only
    // when the configured setting is FULL).
    void set_relaxed_sync(bool relaxed);
    // Logs a failed commit, rate-limited (writer thread only).
    void note_commit_failure(const char* what);
    void note_commit_success();
    // The writer thread's check behind database_file_problem(), before a
    // group and after its commit (`committed`): ok, or the status every
    // write of the group gets.
    status check_database_file(bool committed);

    writer_options options_;
    bool relaxed_sync_ = false;
    // The writer thread's alone: failed commits not yet in the log, when
    // the last such line was written, whether a failure came since the last
    // "succeed again" line, and whether that line may follow at once (once
    // per failure line: commits that fail and succeed in turn would
    // otherwise log a line each).
    std::uint64_t unlogged_failures_ = 0;
    std::optional<std::chrono::steady_clock::time_point> failure_logged_at_;
    bool failing_ = false;
    bool recovery_due_ = false;
    // The database file's identity, set before start() returns (none: not
    // a regular file, not checked), and its absolute path, so that a working
    // directory renamed with it does not hide a move; the writer thread's:
    // whether the file was missing when it last looked.
    std::optional<std::pair<std::uint64_t, std::uint64_t>> file_id_;  // st_dev, st_ino
    std::optional<std::pair<std::uint64_t, std::uint64_t>> wal_id_;   // its -wal's
    std::string file_path_;
    bool file_lost_ = false;
    std::unique_ptr<connection> conn_;
    std::unique_ptr<fact_inserter> inserter_;
    std::thread thread_;
    mutable std::mutex mu_;
    std::condition_variable cv_;
    std::condition_variable room_cv_;  // pending units fell (see submit_facts)
    int room_waiters_ = 0;
    std::deque<std::shared_ptr<item>> queue_;
    std::size_t pending_units_ = 0;
    bool stopping_ = false;
    std::atomic<bool> running_{false};
    std::atomic<std::int64_t> test_delay_ms_{0};
    writer_stats stats_;

    std::thread checkpointer_;
    std::mutex checkpoint_mu_;
    std::condition_variable checkpoint_cv_;
    bool checkpoint_wanted_ = false;
    bool checkpoint_stopping_ = false;
    std::function<void()> checkpoint_hook_;
};

}  // namespace kennel
