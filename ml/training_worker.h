// The training worker: a scheduler thread that queues jobs from the models'
// retrain triggers, and a trainer thread that runs queued jobs one at a time, each in a
// child process (`kennel train-job`), so that a training run that throws,
// crashes, runs past its deadline or exceeds its memory limit fails its own
// job and nothing else. The child runs at lower CPU priority than serving,
// under an address-space limit; the worker kills it at its deadline or on
// cancel. Results are stored through the writer: the version row, the job's
// final state and, when the gate passes, the alias move, in one transaction.
//
// Threads: start/stop/cancel/wake/state may be called from any thread. The
// trainer thread (or run_job's caller) is the only one that spawns or reaps
// children; the scheduler thread alone reads the triggers.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <unordered_map>

#include "ml/definition.h"
#include "store/reader_pool.h"
#include "store/registry.h"
#include "store/writer.h"

namespace kennel::ml {

struct worker_options {
    std::string db_path;
    std::string exe_path;      // argv[0] of `train-job` (it execs /proc/self/exe)
    bool test_faults = false;  // passed to the child: enables definition.test_fault
    int nice = 10;             // the child's CPU priority offset
    std::chrono::milliseconds poll{1000};        // how often triggers are checked
    std::chrono::seconds min_trigger_gap{30};    // between automatic jobs of one model
    // Retention: artifacts of older versions are removed beyond this many
    // (see remove_old_artifacts), at start and after each stored version;
    // 0 keeps every artifact.
    int keep_versions = 0;
    // Called after a version was stored (and maybe published).
    std::function<void(const std::string& model)> on_model_changed;
};

struct worker_state {
    std::string state;  // idle, running, stopped
    std::optional<std::int64_t> job;
    // jobs_failed: every end but success; of those, jobs_cancelled by a
    // person and jobs_interrupted by a stop (requeued).
    std::uint64_t jobs_run = 0, jobs_failed = 0, triggers_fired = 0;
    std::uint64_t jobs_cancelled = 0, jobs_interrupted = 0;
    std::uint64_t trigger_checks = 0;  // looks at the retrain triggers
    std::int64_t last_activity = 0;  // micros
    std::string last_error;
};

// What run_job reports while it runs (for the CLI's progress bar).
struct job_observer {
    std::function<void(double fraction, const std::string& message)> progress;
    std::function<void(const std::string& level, const std::string& message)> log;
};

// How long after a model's last job ended the scheduler waits to queue
// another: `gap`, doubled for each failure in a row after the first, up to
// an hour (never below gap).
micros automatic_job_wait(micros gap, int failed_in_a_row);

class training_worker {
public:
    training_worker(worker_options options, fact_writer& writer, reader_pool& readers);
    ~training_worker();
    training_worker(const training_worker&) = delete;
    training_worker& operator=(const training_worker&) = delete;

    // Recovers jobs a crash left running (interrupted, queued again), then
    // starts the thread.
    status start();
    // Kills a running child, marks its job interrupted and queued again, joins.
    void stop();
    // A job was queued: look now rather than at the next poll.
    void wake();
    // Kills the child if `job` is the one running. The caller has already
    // set the job's cancel flag in the database. For `kennel train`, it also
    // ends the retries of a job's end that cannot be recorded.
    void cancel(std::int64_t job);
    worker_state state() const;

    // Runs one queued job to completion on the calling thread (the CLI's
    // `kennel train`, and the worker thread itself). Returns its final state.
    job_state run_job(const job_row& job, const job_observer& observer = {});

private:
    void loop();           // the trainer thread: runs queued jobs one at a time
    void schedule_loop();  // the scheduler thread: check_triggers every poll
    // Queues a job for each model whose retrain trigger is due; true if any.
    bool check_triggers();
    // Labels of `label` with ids after `after` (and stored after
    // ingested_after), kept per model and counted on from the last look.
    std::int64_t count_new_labels(connection& c, const std::string& model, const label_spec& label,
                                  std::int64_t after, micros ingested_after);
    void mark_idle(const std::string& error);
    // Retention for one model (options_.keep_versions); logs what went.
    void remove_old_artifacts_of(const std::string& model);

    worker_options options_;
    fact_writer& writer_;
    reader_pool& readers_;
    std::thread thread_;     // runs jobs
    std::thread scheduler_;  // queues them from triggers
    mutable std::mutex mu_;
    std::condition_variable cv_;
    bool stopping_ = false;
    bool woken_ = false;
    bool background_ = false;  // start() ran: jobs run on thread_, not a caller's
    std::atomic<std::int64_t> running_job_{0};
    std::atomic<int> running_pid_{0};
    std::atomic<std::int64_t> cancel_job_{0};
    std::atomic<bool> killing_for_stop_{false};
    worker_state state_;
    struct label_count {
        std::string stream;
        std::string field;
        std::int64_t after = 0;
        micros ingested_after = 0;
        std::int64_t scanned_to = 0;  // facts up to this id are counted
        std::int64_t count = 0;
    };
    std::unordered_map<std::string, label_count> label_counts_;  // by model; the scheduler's own
};

// The child side: `kennel train-job --db D --job N --out DIR`. Reads the
// job's definition and the training set, trains, writes DIR/result.json and
// DIR/artifact.bin, and reports progress as JSON lines on stdout. Exit 0 on
// success, 3 when training failed with a reason (in result.json).
int run_train_job_child(const std::string& db_path, std::int64_t job_id, const std::string& out_dir,
                        bool test_faults);

}  // namespace kennel::ml
