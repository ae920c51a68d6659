#include "ml/training_worker.h"

#include <fcntl.h>
#include <malloc.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "ml/canary.h"
#include "ml/decision.h"
#include "ml/definition_json.h"
#include "store/facts.h"
#include "store/log.h"
#include "store/sha256.h"

namespace kennel::ml {
namespace {

using json = nlohmann::json;
using steady = std::chrono::steady_clock;

std::string read_file(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    std::ostringstream s;
    s << in.rdbuf();
    return s.str();
}

// Resident memory of a process in MB, from /proc (0 when unknown).
std::int64_t rss_mb(pid_t pid) {
    std::ifstream statm("/proc/" + std::to_string(pid) + "/statm");
    std::int64_t size = 0, resident = 0;
    if (!(statm >> size >> resident)) return 0;
    return resident * ::sysconf(_SC_PAGESIZE) / (1024 * 1024);
}

// The kernel's count of processes its out-of-memory killer has killed, the
// whole machine's, cgroup limits included (0 when unknown).
std::uint64_t oom_kills() {
    std::ifstream vmstat("/proc/vmstat");
    std::string name;
    std::uint64_t value = 0;
    while (vmstat >> name >> value) {
        if (name == "oom_kill") return value;
    }
    return 0;
}

std::string describe_signal(int sig) {
    const char* name = ::strsignal(sig);
    return "signal " + std::to_string(sig) + (name ? std::string(" (") + name + ")" : "");
}

}  // namespace

training_worker::training_worker(worker_options options, fact_writer& writer, reader_pool& readers)
    : options_(std::move(options)), writer_(writer), readers_(readers) {
    state_.state = "stopped";
}

training_worker::~training_worker() { stop(); }

status training_worker::start() {
    // Result folders left by a server that was killed mid-job.
    // (The error_code forms: a TMPDIR that is not a directory fails each
    // job with that reason, not the server's start.)
    std::error_code ec;
    const auto tmp = std::filesystem::temp_directory_path(ec);
    for (const auto& entry : std::filesystem::directory_iterator(tmp, ec)) {
        std::string name = entry.path().filename().string();
        if (name.rfind("kennel-job-", 0) != 0) continue;
        pid_t owner = static_cast<pid_t>(std::atol(name.c_str() + 11));
        if (owner > 0 && ::kill(owner, 0) != 0 && errno == ESRCH) std::filesystem::remove_all(entry.path(), ec);
    }
    std::vector<requeued_job> requeued;
    status s = writer_.run(
        [&requeued](connection& c) {
            requeued = recover_interrupted_jobs(c);
            return status::ok();
        },
        std::chrono::seconds(30));
    if (!s) return s;
    for (const requeued_job& j : requeued) {
        if (j.queued == 0) {
            log_error("trainer", "job " + std::to_string(j.interrupted) + " of model \"" + j.model +
                                     "\" was interrupted by a restart for the second time in a "
                                     "row: failed, not queued again (it may be what stops "
                                     "Kennel; see its log)");
            continue;
        }
        log_warn("trainer", "job " + std::to_string(j.interrupted) + " of model \"" + j.model +
                                "\" was interrupted by a restart; queued again as job " +
                                std::to_string(j.queued));
    }
    // A lowered --keep-versions applies at once, not at each model's next job.
    std::vector<std::string> models;
    {
        auto conn = readers_.acquire();
        for (const model_row& m : list_models(*conn, model_filter::all)) models.push_back(m.name);
    }
    for (const std::string& m : models) remove_old_artifacts_of(m);
    {
        std::lock_guard lock(mu_);
        stopping_ = false;
        background_ = true;
        killing_for_stop_ = false;
        state_.state = "idle";
    }
    thread_ = std::thread([this] {
        name_this_thread("kennel-trainer");
        loop();
    });
    scheduler_ = std::thread([this] {
        name_this_thread("kennel-sched");
        schedule_loop();
    });
    return status::ok();
}

void training_worker::stop() {
    {
        std::lock_guard lock(mu_);
        stopping_ = true;
    }
    cv_.notify_all();
    // Set before the pid is read: a job about to fork (its pid not yet
    // published) is killed by its own watch loop, which sees this, instead
    // of running to its deadline while the stop waits for it.
    killing_for_stop_ = true;
    if (int pid = running_pid_.load(); pid > 0) ::kill(pid, SIGKILL);
    if (scheduler_.joinable()) scheduler_.join();
    if (thread_.joinable()) thread_.join();
    std::lock_guard lock(mu_);
    state_.state = "stopped";
}

void training_worker::mark_idle(const std::string& error) {
    std::lock_guard lock(mu_);
    state_.state = "idle";
    state_.job.reset();
    state_.last_activity = now_micros();
    if (!error.empty()) state_.last_error = error;
}

void training_worker::wake() {
    {
        std::lock_guard lock(mu_);
        woken_ = true;
    }
    cv_.notify_all();
}

void training_worker::cancel(std::int64_t job) {
    {
        // Under the lock, so a wait on cv_ for it cannot miss it. A cancel
        // still pending for the running job stays: a queued job's cancel
        // (its state in the database is all it needs) took its place, and
        // the killed job ended "failed" (archiving a model with a running
        // and a queued job did that).
        std::lock_guard lock(mu_);
        const std::int64_t pending = cancel_job_.load();
        if (pending == 0 || pending != running_job_.load()) cancel_job_ = job;
    }
    cv_.notify_all();
    if (running_job_.load() == job) {
        if (int pid = running_pid_.load(); pid > 0) ::kill(pid, SIGKILL);
    }
}

worker_state training_worker::state() const {
    std::lock_guard lock(mu_);
    return state_;
}

void training_worker::schedule_loop() {
    // A thread of its own, so that a fit (up to its deadline, 600 s by
    // default) does not hold other models' triggers back or slide their
    // every_seconds schedules, and a slow pass over many models does not
    // hold up the watch of a running fit.
    for (;;) {
        try {
            if (check_triggers()) wake();
        } catch (const std::exception& e) {
            // A bad trigger check must not stop the scheduler; it retries next poll.
            log_error("scheduler", e.what());
        }
        std::unique_lock lock(mu_);
        ++state_.trigger_checks;
        if (cv_.wait_for(lock, options_.poll, [this] { return stopping_; })) return;
    }
}

void training_worker::loop() {
    for (;;) {
        {
            std::unique_lock lock(mu_);
            if (stopping_) break;
        }
        std::optional<job_row> job;
        try {
            auto conn = readers_.acquire();
            job = next_queued_job(*conn);
        } catch (const db_error& e) {
            log_error("trainer", e.what());
        }
        if (job) {
            job_state end = run_job(*job);
            std::unique_lock lock(mu_);
            if (end == job_state::queued) {
                // Not started (the writer failing, or a cancel in between):
                // not again at once, or a full disk would spin this thread.
                cv_.wait_for(lock, options_.poll, [this] { return stopping_; });
                continue;
            }
            ++state_.jobs_run;
            if (end != job_state::succeeded) ++state_.jobs_failed;
            if (end == job_state::cancelled) ++state_.jobs_cancelled;
            if (end == job_state::interrupted) ++state_.jobs_interrupted;
            continue;
        }
        std::unique_lock lock(mu_);
        cv_.wait_for(lock, options_.poll, [this] { return stopping_ || woken_; });
        woken_ = false;
    }
}

micros automatic_job_wait(micros gap, int failed_in_a_row) {
    constexpr micros hour = 3600000000LL;
    micros wait = gap;
    for (int i = 1; i < failed_in_a_row && wait < hour; ++i) wait *= 2;
    return std::max(gap, std::min(wait, hour));
}

std::int64_t training_worker::count_new_labels(connection& c, const std::string& model,
                                               const label_spec& label, std::int64_t after,
                                               micros ingested_after) {
    auto newest = max_fact_id(c);
    if (!newest) return 0;
    // Counted once, then only the facts stored since the last look: the
    // scheduler looks every second, and a model's labels since its last
    // version can be many.
    label_count& lc = label_counts_[model];
    if (lc.stream != label.stream || lc.field != label.field || lc.after != after ||
        lc.ingested_after != ingested_after || *newest < lc.scanned_to) {
        lc = {label.stream,
              label.field,
              after,
              ingested_after,
              *newest,
              count_labels_after(c, label.stream, label.field, after, ingested_after, *newest)};
    } else if (*newest > lc.scanned_to) {
        lc.count += count_labels_after(c, label.stream, label.field, lc.scanned_to, ingested_after,
                                       *newest);
        lc.scanned_to = *newest;
    }
    return lc.count;
}

bool training_worker::check_triggers() {
    bool queued = false;
    std::vector<model_row> models;
    {
        auto conn = readers_.acquire();
        models = list_models(*conn);
    }
    micros now = now_micros();
    for (const model_row& m : models) {
        {
            // A pass over many models takes a while; a stop does not wait for it.
            std::lock_guard lock(mu_);
            if (stopping_) return queued;
        }
        parsed_definition p = parse_definition(m.definition);
        if (!p.errors.empty()) continue;
        const retrain_policy& r = p.definition.retrain;
        if (!r.every_new_labels && !r.every_seconds) continue;
        std::string trigger;
        {
            auto conn = readers_.acquire();
            if (has_active_job(*conn, m.name)) continue;
            // A canary being judged waits for its outcomes (themselves label
            // facts, which would trigger a retrain whose version is only held
            // back while the canary runs); the trigger fires after its end.
            if (auto e = active_experiment(*conn, m.name); e && undecided_canary(e->canary))
                continue;
            const job_recency recent = last_job_recency(*conn, m.name);
            const std::optional<micros>& last = recent.created_at;
            // A wall clock stepped back puts the last job in the future: its
            // gaps count as passed (they held retraining back for as long as
            // the step). The next job is stamped by the clock as it is now.
            const bool clock_back =
                (last && now < *last) || (recent.last_activity && now < *recent.last_activity);
            // Back off between automatic jobs so a model whose runs keep
            // failing does not retrain in a loop: the gap from the last job's
            // end too (one that failed after the gap was followed at once),
            // doubled for each failure in a row, up to an hour.
            const micros gap =
                std::chrono::duration_cast<std::chrono::microseconds>(options_.min_trigger_gap)
                    .count();
            const micros wait = automatic_job_wait(gap, recent.failed_in_a_row);
            if (!clock_back && ((last && now - *last < gap) ||
                                (recent.last_activity && now - *recent.last_activity < wait))) {
                continue;
            }
            if (r.every_new_labels) {
                // Only labels stored since the last job was queued: one whose
                // data cannot train (a single class, say) failed, kept no
                // snapshot, and was queued again every min_trigger_gap
                // without a new label. By fact id; by ingest time for a job
                // from before Kennel kept the id.
                std::int64_t after = last_snapshot_fact_id(*conn, m.name);
                micros ingested_after = 0;
                if (const auto& seen = recent.facts_seen) {
                    after = std::max(after, *seen);
                } else {
                    ingested_after = last.value_or(0);
                }
                if (count_new_labels(*conn, m.name, p.definition.label, after, ingested_after) >=
                    *r.every_new_labels) {
                    trigger = "new_labels";
                }
            }
            if (trigger.empty() && r.every_seconds &&
                (!last || clock_back || now - *last >= *r.every_seconds * 1000000)) {
                trigger = "interval";
            }
        }
        if (trigger.empty()) continue;
        std::int64_t id = 0;
        status s = writer_.run(
            [&](connection& c) {
                // Looked at again in the write: a job queued through the API
                // since the read above makes this one a second.
                if (has_active_job(c, m.name)) return status::ok();
                // Archived since the read: its triggers stopped with it.
                if (!refuse_if_archived(c, m.name, "train it")) return status::ok();
                id = insert_job(c, m.name, trigger, "scheduler");
                append_job_log(c, id, "info", "queued by the " + trigger + " trigger");
                return status::ok();
            },
            std::chrono::seconds(10));
        if (s && id > 0) {
            log_info("scheduler", "queued job " + std::to_string(id) + " for " + m.name + " (" + trigger + ")");
            queued = true;
            std::lock_guard lock(mu_);
            ++state_.triggers_fired;
        }
    }
    return queued;
}

namespace {

// A running job's end and its log line, in the caller's transaction.
void end_running_job(connection& c, std::int64_t id, job_state to, const std::string& error) {
    // transition_job writes the message: what the job came to, not its last
    // step ("reading facts up to id 4620" stayed on a failed job).
    transition_job(c, id, job_state::running, to, error);
    append_job_log(c, id, to == job_state::succeeded ? "info" : "error",
                   std::string(job_state_name(to)) + (error.empty() ? "" : ": " + error));
}

}  // namespace

job_state training_worker::run_job(const job_row& job, const job_observer& observer) {
    const std::int64_t id = job.id;
    auto note = [&](const std::string& level, const std::string& message) {
        if (observer.log) observer.log(level, message);
        // Fire and forget: a full writer queue drops a log line, never blocks training.
        (void)writer_.submit([id, level, message](connection& c) {
            append_job_log(c, id, level, message);
            return status::ok();
        });
    };
    auto finish = [&](job_state to, const std::string& error) {
        // Until its end is recorded the job reads as running and holds back
        // its model's triggers, so a record that fails (another program
        // holding the database's lock, a full disk) is tried again until it
        // is stored or the worker stops (for `kennel train`, which has no
        // stop, until it is cancelled); the next start's recovery takes a
        // job left so.
        for (auto pause = std::chrono::seconds(1);;
             pause = std::min(2 * pause, std::chrono::seconds(30))) {
            status s = writer_.run(
                [&](connection& c) {
                    end_running_job(c, id, to, error);
                    return status::ok();
                },
                std::chrono::seconds(60));
            if (s) break;
            log_error("trainer", "cannot record the end of job " + std::to_string(id) + " (" +
                                     job_state_name(to) + "): " + s.message() +
                                     "; trying again in " + std::to_string(pause.count()) + " s");
            std::unique_lock lock(mu_);
            const auto given_up = [&] { return stopping_ || (!background_ && cancel_job_ == id); };
            if (cv_.wait_for(lock, pause, given_up)) break;
        }
        log_line(to == job_state::succeeded ? log_level::info : log_level::warn, "trainer",
                 "job " + std::to_string(id) + " (" + job.model + ") " + job_state_name(to) +
                     (error.empty() ? "" : ": " + error));
        mark_idle(error);
        return to;
    };

    // Reset before the job can be seen running, so a cancel that arrives
    // right after the transition is not lost.
    cancel_job_ = 0;
    bool started = false;
    status s = writer_.run(
        [&](connection& c) {
            started = transition_job(c, id, job_state::queued, job_state::running);
            if (started) append_job_log(c, id, "info", "started");
            return status::ok();
        },
        std::chrono::seconds(30));
    if (!s || !started) return job.state;  // cancelled meanwhile, or the writer is stopping

    parsed_definition def;
    {
        auto conn = readers_.acquire();
        auto rev = get_revision(*conn, job.model, job.revision);
        if (rev) def = parse_definition(rev->definition);
        if (!rev || !def.errors.empty()) {
            return finish(job_state::failed, "the job's definition revision cannot be read");
        }
    }
    {
        std::lock_guard lock(mu_);
        state_.state = "running";
        state_.job = id;
        state_.last_activity = now_micros();
    }
    running_job_ = id;

    // A new directory of its own (0700, made atomically, never one that was
    // there): a predictable name, removed and made again, could be swapped
    // for another user's directory or a symlink in between on a shared /tmp,
    // and the fit's artifact read back from there.
    std::error_code ec;
    const std::filesystem::path tmp = std::filesystem::temp_directory_path(ec);
    if (ec) {
        running_job_ = 0;
        return finish(job_state::failed,
                      "no temporary directory for the job's work: " + ec.message() +
                          " (set TMPDIR to a writable directory)");
    }
    std::string made =
        (tmp / ("kennel-job-" + std::to_string(::getpid()) + "-" + std::to_string(id) + "-XXXXXX"))
            .string();
    if (::mkdtemp(made.data()) == nullptr) {
        const int err = errno;
        running_job_ = 0;
        return finish(job_state::failed, "cannot create a work directory in " + tmp.string() +
                                             ": " + std::strerror(err));
    }
    const std::filesystem::path dir = made;
    struct dir_cleanup {
        std::filesystem::path p;
        ~dir_cleanup() {
            std::error_code e;
            std::filesystem::remove_all(p, e);
        }
    } cleanup{dir};

    int pipe_fds[2];
    if (::pipe2(pipe_fds, O_CLOEXEC) != 0) {
        running_job_ = 0;
        return finish(job_state::failed, std::string("cannot create a pipe: ") + std::strerror(errno));
    }
    const std::int64_t memory_mb = def.definition.training_memory_mb;
    std::vector<std::string> args = {options_.exe_path, "train-job", "--db", options_.db_path,
                                     "--job", std::to_string(id), "--out", dir.string()};
    if (options_.test_faults) args.push_back("--test-faults");
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);

    const pid_t parent = ::getpid();
    const std::uint64_t oom_kills_before = oom_kills();
    rlimit files{};
    const int max_fd = ::getrlimit(RLIMIT_NOFILE, &files) == 0 && files.rlim_cur != RLIM_INFINITY
                           ? static_cast<int>(std::min<rlim_t>(files.rlim_cur, 1 << 20))
                           : 65536;
    pid_t pid = ::fork();
    if (pid == 0) {
        // Child: only async-signal-safe calls until exec.
        ::dup2(pipe_fds[1], STDOUT_FILENO);
        // Nothing else of the server's goes with the fit: httplib opens its
        // sockets without close-on-exec, and the fit held the listening
        // socket and open connections for its whole run.
        if (::close_range(3, ~0U, 0) != 0) {
            for (int fd = 3; fd < max_fd; ++fd) ::close(fd);
        }
        // Die with the server: an orphaned fit would run on unwatched, past
        // its deadline and memory limit.
        ::prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (::getppid() != parent) ::_exit(125);
        // The kernel's out-of-memory killer takes the fit first, never the
        // server beside it: unadjusted, it took the server once the server
        // held more memory than the fit (a probe at 128 MB), and then the
        // fit too (PR_SET_PDEATHSIG above). Raising it needs no privilege.
        if (const int adj = ::open("/proc/self/oom_score_adj", O_WRONLY | O_CLOEXEC); adj >= 0) {
            [[maybe_unused]] const ssize_t w = ::write(adj, "1000", 4);
            ::close(adj);
        }
        ::setpriority(PRIO_PROCESS, 0, options_.nice);
        // SCHED_IDLE: the fit gets a CPU only when serving does not want it
        // (measured with two busy loops beside bench/predict's load: 49k
        // predictions/s under SCHED_IDLE, 37-47k under nice 10 alone).
        // Allowed without privileges; if refused, nice still applies.
        struct sched_param idle_param {};
        ::sched_setscheduler(0, SCHED_IDLE, &idle_param);
#if !defined(__SANITIZE_ADDRESS__) && !defined(__SANITIZE_THREAD__)
        // AddressSanitizer and ThreadSanitizer reserve terabytes of address
        // space (a ThreadSanitizer child died at start under the limit), so
        // the limit is enforced by the RSS watch below in sanitizer builds.
        struct rlimit lim;
        lim.rlim_cur = lim.rlim_max = static_cast<rlim_t>(memory_mb) * 1024 * 1024;
        ::setrlimit(RLIMIT_AS, &lim);
#endif
        // The server alone ends a fit (SIGKILL, with its reason). systemd,
        // `timeout` and `kill -- -PGID` send SIGTERM to every process of
        // the service: the fit died of it first and its job was failed as
        // "crashed" instead of being interrupted and queued again. Ignored
        // dispositions survive exec.
        struct sigaction ignore {};
        ignore.sa_handler = SIG_IGN;
        for (int stop_signal : {SIGTERM, SIGINT, SIGHUP})
            ::sigaction(stop_signal, &ignore, nullptr);
        sigset_t none;
        sigemptyset(&none);
        ::sigprocmask(SIG_SETMASK, &none, nullptr);
        // The server's own binary, whatever its path now names: the child's
        // /proc/self/exe is the image the server runs. A path read at start
        // fails once an upgrade moves the binary away, or runs the new
        // binary beside an old server. argv[0] keeps the name for ps.
        ::execv("/proc/self/exe", argv.data());
        ::_exit(127);
    }
    ::close(pipe_fds[1]);
    if (pid < 0) {
        ::close(pipe_fds[0]);
        running_job_ = 0;
        return finish(job_state::failed, std::string("cannot start the training process: ") + std::strerror(errno));
    }
    running_pid_ = static_cast<int>(pid);
    note("info", "training process " + std::to_string(pid) + " started (nice " +
                     std::to_string(options_.nice) + ", memory limit " + std::to_string(memory_mb) + " MB)");

    const auto deadline_at = steady::now() + std::chrono::milliseconds(static_cast<std::int64_t>(
                                              def.definition.training_deadline_seconds * 1000));
    enum class kill_reason { none, deadline, cancel, memory, stop } killed = kill_reason::none;
    std::int64_t peak_rss = 0;
    std::string buffer;
    std::string last_error;  // the process's last error line, for a failure with no result
    // The last progress message: where a run stopped for its deadline or
    // memory was (a calibration fold, say, after a fit that fitted).
    std::string last_step;
    auto last_progress_write = steady::now() - std::chrono::seconds(1);
    bool eof = false;
    while (!eof) {
        pollfd pfd{pipe_fds[0], POLLIN, 0};
        int pr = ::poll(&pfd, 1, 100);
        if (pr > 0) {
            char chunk[4096];
            ssize_t n = ::read(pipe_fds[0], chunk, sizeof chunk);
            if (n <= 0) {
                eof = true;
            } else {
                buffer.append(chunk, static_cast<std::size_t>(n));
                std::size_t nl;
                while ((nl = buffer.find('\n')) != std::string::npos) {
                    std::string line = buffer.substr(0, nl);
                    buffer.erase(0, nl + 1);
                    json msg = json::parse(line, nullptr, false);
                    if (msg.is_discarded() || !msg.is_object()) continue;
                    if (msg.contains("progress")) {
                        double f = msg.value("progress", 0.0);
                        std::string m = msg.value("message", "");
                        last_step = m;
                        if (observer.progress) observer.progress(f, m);
                        if (steady::now() - last_progress_write > std::chrono::milliseconds(300)) {
                            last_progress_write = steady::now();
                            (void)writer_.submit([id, f, m](connection& c) {
                                set_job_progress(c, id, f, m);
                                return status::ok();
                            });
                        }
                    } else if (msg.contains("log")) {
                        note(msg.value("log", "info"), msg.value("message", ""));
                        if (msg.value("log", "") == "error") last_error = msg.value("message", "");
                    }
                }
            }
        }
        if (killed == kill_reason::none) {
            std::int64_t rss = rss_mb(pid);
            peak_rss = std::max(peak_rss, rss);
            if (killing_for_stop_) {
                killed = kill_reason::stop;
            } else if (cancel_job_.load() == id) {
                killed = kill_reason::cancel;
            } else if (steady::now() > deadline_at) {
                killed = kill_reason::deadline;
            } else if (rss > memory_mb) {
                killed = kill_reason::memory;
            }
            if (killed != kill_reason::none) ::kill(pid, SIGKILL);
        }
    }
    ::close(pipe_fds[0]);
    int wstatus = 0;
    while (::waitpid(pid, &wstatus, 0) < 0 && errno == EINTR) {
    }
    running_pid_ = 0;
    running_job_ = 0;
    if (cancel_job_.load() == id && killed == kill_reason::none) killed = kill_reason::cancel;
    if (options_.test_faults && def.definition.test_fault == "hold_after_fit" &&
        killed == kill_reason::none) {
        // Tests: a cancel between the fit's end and storing its version.
        note("info", "test fault: holding the result until a cancel is recorded");
        for (int i = 0; i < 600; ++i) {
            auto conn = readers_.acquire();
            auto now = get_job(*conn, id);
            if (!now || now->cancel_requested) break;
            std::this_thread::sleep_for(std::chrono::milliseconds(50));
        }
    }

    const std::string stopped_at = last_step.empty() ? "" : ", at: " + last_step;
    switch (killed) {
        case kill_reason::stop: {
            // Shutting down: the job goes back to the queue for the next
            // start, unless a cancel was accepted (it was requeued, trained
            // and published after its cancel was answered 202).
            bool cancelled = false;
            writer_.run(
                [&](connection& c) {
                    if (auto now = get_job(c, id); now && now->cancel_requested) {
                        cancelled = true;
                        end_running_job(c, id, job_state::cancelled, "cancelled on request");
                        return status::ok();
                    }
                    transition_job(c, id, job_state::running, job_state::interrupted,
                                   std::string("Kennel was stopped during training"));
                    std::int64_t again = insert_job(c, job.model, "requeued", "kennel", id);
                    append_job_log(c, id, "warn", "interrupted by shutdown; queued again as job " + std::to_string(again));
                    return status::ok();
                },
                std::chrono::seconds(30));
            std::lock_guard lock(mu_);
            state_.state = "stopped";
            state_.job.reset();
            return cancelled ? job_state::cancelled : job_state::interrupted;
        }
        case kill_reason::cancel: return finish(job_state::cancelled, "cancelled on request");
        case kill_reason::deadline:
            return finish(job_state::timed_out, "ran past its deadline of " +
                                                    std::to_string(static_cast<std::int64_t>(
                                                        def.definition.training_deadline_seconds)) +
                                                    " s and was stopped" + stopped_at);
        case kill_reason::memory:
            return finish(job_state::failed, "exceeded its memory limit of " +
                                                 std::to_string(memory_mb) + " MB (resident " +
                                                 std::to_string(peak_rss) + " MB) and was stopped" +
                                                 stopped_at);
        case kill_reason::none: break;
    }
    if (WIFSIGNALED(wstatus) && WTERMSIG(wstatus) == SIGKILL) {
        // Not Kennel's kill (those have their reasons above): the kernel's
        // out-of-memory killer, when it killed something while the job ran.
        const bool oom = oom_kills() > oom_kills_before;
        return finish(job_state::failed,
                      oom ? "the kernel's out-of-memory killer stopped the training process "
                            "(resident " +
                                std::to_string(peak_rss) +
                                " MB when last seen): the machine, or the service's memory "
                                "limit, ran out of memory; set training.memory_mb below the "
                                "memory free for training, so that Kennel stops a fit that "
                                "needs more and says so"
                          : "the training process was killed (" + describe_signal(SIGKILL) +
                                "), not by Kennel (resident " + std::to_string(peak_rss) +
                                " MB when last seen)");
    }
    if (WIFSIGNALED(wstatus)) {
        return finish(job_state::failed, "the training process crashed: " + describe_signal(WTERMSIG(wstatus)));
    }
    int code = WIFEXITED(wstatus) ? WEXITSTATUS(wstatus) : -1;
    json result = json::parse(read_file((dir / "result.json").string()), nullptr, false);
    if (code != 0 || result.is_discarded() || !result.value("ok", false)) {
        std::string why;
        if (!result.is_discarded() && result.contains("error")) {
            why = result["error"].value("message", "training failed");
        } else if (code == 127) {
            why = "the training process could not start";
        } else {
            why = "the training process exited with code " + std::to_string(code) +
                  " and no result" +
                  (last_error.empty() ? "" : " (its last error: " + last_error + ")");
        }
        return finish(job_state::failed, why);
    }

    std::string artifact = read_file((dir / "artifact.bin").string());
    std::string sha = sha256_hex(artifact);
    if (sha != result.value("sha256", "")) {
        return finish(job_state::failed, "the artifact's checksum does not match what training reported");
    }
    version_row v;
    v.model = job.model;
    v.revision = job.revision;
    v.job = id;
    v.algorithm = result.value("algorithm", "");
    v.params = result["params"].dump();
    v.artifact = std::move(artifact);
    v.artifact_sha256 = sha;
    v.snapshot = result["snapshot"].dump();
    v.metrics = result["metrics"].dump();
    v.baseline_metrics = result["baseline_metrics"].dump();
    v.gate = result["gate"].dump();
    v.features = result["features"].dump();
    v.timings = result["timings"].dump();
    v.baseline = result.contains("baseline") ? result["baseline"].dump() : "null";
    bool passed = result["gate"].value("passed", false);
    v.status = passed ? "candidate" : "rejected";
    const promotion_mode mode = def.definition.promotion.mode;
    // The canary policy publishes as auto does, through a canary when
    // there is a live version to judge it against.
    const bool automatic = mode != promotion_mode::manual;
    std::string gate_summary = result["gate"].value("summary", "");
    // Where live pointed when the job started (null: nowhere).
    const json& at_start = result["gate"].contains("live_alias_at_start")
                               ? result["gate"]["live_alias_at_start"]
                               : json(nullptr);
    const bool live_disabled_at_start = result["gate"].value("live_disabled_at_start", false);
    // Live applied but was not measured: "better than live" is unknown.
    const json not_compared = result["gate"].value("live_not_compared", json(nullptr));
    const live_marks marks_at_start{result["gate"].value("live_move_at_start", std::int64_t{0}),
                                    result["gate"].value("live_event_at_start", std::int64_t{0})};
    std::int64_t number = 0;
    std::optional<std::int64_t> canary_experiment;
    bool cancelled_late = false;
    s = writer_.run(
        [&](connection& c) {
            canary_experiment.reset();  // set below, should this run again
            // A cancel that came after the fit ended (both go through the
            // writer, so one of the two sees the other): it was answered as
            // accepted, so the job ends cancelled and stores nothing.
            if (auto now = get_job(c, id); now && now->cancel_requested) {
                cancelled_late = true;
                end_running_job(c, id, job_state::cancelled, "cancelled on request");
                return status::ok();
            }
            bool published = false;
            std::string held_back;
            if (passed) {
                // Auto policy publishes, unless a person moved live while the
                // job ran (a rollback, say): the gate judged against what
                // live was, and publishing would undo their choice. Manual
                // policy, or that, leaves a candidate for a person.
                const std::optional<std::int64_t> live_now = alias_version(c, job.model, "live");
                const json now = live_now ? json(*live_now) : json(nullptr);
                // Nor when the definition changed meanwhile (other features,
                // a manual policy now): what it was trained for is not what
                // the model is any more. A change of how it is served,
                // watched or retrained alone is none (a deadline tuned while
                // a retrain ran threw the retrain away).
                const auto model_now = get_model(c, job.model);
                const std::int64_t revision_now = model_now ? model_now->current_revision : 0;
                bool redefined = false;
                if (revision_now != job.revision) {
                    const auto then = get_revision(c, job.model, job.revision);
                    redefined = !then || !model_now ||
                                !trains_alike(then->definition, model_now->definition);
                }
                // Nor when a person took live's version out of service
                // meanwhile (a disable moves no alias).
                const bool taken_down = live_now && !live_disabled_at_start &&
                                        disabled_versions(c, job.model).count(*live_now) > 0;
                // Nor when a person moved live away and back, or disabled and
                // enabled it again: where it stands now is still their choice
                // (it was published over, since only the end state was compared).
                const live_marks marks_now = live_marks_of(c, job.model, live_now);
                const bool touched = marks_now != marks_at_start;
                // Nor when live applied but was not measured; nor when live
                // was out of service when the job began: a person or the
                // supervisor took it out, and the gate compared with it, not
                // with the version answering in its place.
                const bool unmeasured = not_compared.is_string();
                // Nor when a person had taken live down (removed its alias):
                // live moved before, and points nowhere now.
                const bool removed_before = at_start.is_null() && marks_at_start.move != 0;
                // Nor while an experiment runs: its arms take the traffic of
                // every request with an entity, and live would answer few.
                const auto experiment = active_experiment(c, job.model);
                published = automatic && now == at_start && !redefined && !taken_down && !touched &&
                            !live_disabled_at_start && !unmeasured && !removed_before &&
                            !experiment;
                if (automatic && !published) {
                    const auto name = [](const json& j) {
                        return j.is_null() ? std::string("none")
                                           : "v" + std::to_string(j.get<std::int64_t>());
                    };
                    // The first of these that applies says why.
                    if (now != at_start) {
                        held_back = "live moved while this job ran (" + name(at_start) + " -> " +
                                    name(now) + ")";
                    } else if (taken_down) {
                        held_back = "live " + name(now) + " was disabled while this job ran";
                    } else if (marks_now.move != marks_at_start.move) {
                        held_back =
                            "live was moved while this job ran and is back on " + name(now);
                    } else if (touched) {
                        held_back = "live " + name(now) +
                                    " was disabled and enabled again while this job ran";
                    } else if (redefined) {
                        held_back = "the definition changed while this job ran (revision " +
                                    std::to_string(job.revision) + " -> " +
                                    std::to_string(revision_now) + ")";
                    } else if (experiment && undecided_canary(experiment->canary)) {
                        held_back = "the canary of version " +
                                    std::to_string(parse_canary(*experiment->canary)->version) +
                                    " (experiment " + std::to_string(experiment->id) +
                                    ") is being judged";
                    } else if (experiment) {
                        held_back = "experiment " + std::to_string(experiment->id) +
                                    " is running (its arms answer requests with an entity)";
                    } else if (removed_before) {
                        held_back =
                            "live was taken down (its alias removed) before this job "
                            "began";
                    } else if (live_disabled_at_start) {
                        held_back = "live " + name(at_start) +
                                    " was out of service when this job began (the gate compared "
                                    "with it, not with the version answering in its place)";
                    } else {
                        held_back = "live " + name(at_start) + " could not be compared with it: " +
                                    not_compared.get<std::string>();
                    }
                    held_back += ": not published; promote it by hand";
                }
            }
            // The version says why it was not put live, beside the gate's
            // verdict (rebuilt from the result: this may run again).
            json gate = result["gate"];
            gate["held_back"] = held_back.empty() ? json(nullptr) : json(held_back);
            if (!held_back.empty()) gate["summary"] = gate_summary + "; " + held_back;
            v.gate = gate.dump();
            number = insert_version(c, v);
            set_job_version(c, id, number);
            // A canary: the version becomes the candidate, and an
            // experiment beside live judges it (ml/canary.h).
            const std::optional<std::int64_t> live_now = alias_version(c, job.model, "live");
            // Only against a live version the gate scored: one of another
            // task, or that could not load, would give a canary no control
            // to be compared with (it goes live as with auto, and says so).
            const bool live_scored = result["gate"].contains("live_metrics") &&
                                     result["gate"]["live_metrics"].is_object();
            const bool canary =
                published && mode == promotion_mode::canary && live_now && live_scored;
            const std::string no_canary =
                !live_now ? "no live version to judge a canary against"
                          : "live version " + std::to_string(*live_now) +
                                " could not be scored (the job's log says why): no canary can "
                                "judge against it";
            const std::string actor = "policy:" + std::string(promotion_mode_name(mode));
            if (passed) {
                std::string alias = published && !canary ? "live" : "candidate";
                // The record says why a version that passed was not put live.
                status m =
                    move_alias(c, job.model, alias, number, actor,
                               "job " + std::to_string(id) + " " + gate_summary +
                                   (held_back.empty() ? "" : "; " + held_back) +
                                   (canary ? "; a canary judges it on live traffic"
                                    : published && mode == promotion_mode::canary ? "; " + no_canary
                                                                                  : ""));
                if (!m) return m;
            }
            if (canary) {
                canary_state cs;
                cs.version = number;
                cs.against = *live_now;
                cs.job = id;
                cs.revision = job.revision;
                cs.policy = def.definition.promotion.canary;
                cs.deadline = now_micros() + cs.policy.max_seconds * 1000000;
                const live_marks marks = live_marks_of(c, job.model, live_now);
                cs.live_move_mark = marks.move;
                cs.live_event_mark = marks.event;
                auto begun = start_experiment(
                    c, job.model, canary_arms(cs), actor,
                    "canary of version " + std::to_string(number) + " against live version " +
                        std::to_string(*live_now) + " (job " + std::to_string(id) + ")",
                    canary_json(cs));
                if (!begun) return begun.error();
                canary_experiment = *begun;
            }
            std::string outcome =
                "stored version " + std::to_string(number) + " (" + v.status + ")" +
                (passed ? (published && !canary ? ", alias live moved to it (serving loads it next)"
                                                : ", alias candidate")
                        : ": " + gate_summary) +
                (held_back.empty() ? "" : ": " + held_back);
            if (canary_experiment) {
                const canary_policy& cp = def.definition.promotion.canary;
                outcome += "; canary experiment " + std::to_string(*canary_experiment) +
                           " gives it " + short_number(cp.share * 100) +
                           "% of the requests with an entity beside live version " +
                           std::to_string(*live_now) + " and judges it on outcomes from " +
                           std::to_string(cp.entities) + " entities a side";
            } else if (passed && published && mode == promotion_mode::canary) {
                outcome += " (" + no_canary + ")";
            }
            append_job_log(c, id, passed && held_back.empty() ? "info" : "warn", outcome);
            // The job's message says what it came to, not its last step
            // ("forest: grown 81 of 100 trees" read as if it stopped there).
            set_job_progress(c, id, 1, outcome);
            transition_job(c, id, job_state::running, job_state::succeeded);
            return status::ok();
        },
        std::chrono::seconds(60));
    // Returned before serving loads the version (it can be 100 MB).
    std::string().swap(v.artifact);
    if (!s) return finish(job_state::failed, "storing the version failed: " + s.message());
    if (cancelled_late) {
        log_warn("trainer", "job " + std::to_string(id) + " (" + job.model +
                                ") cancelled on request after its fit ended; nothing stored");
        mark_idle("cancelled on request");
        return job_state::cancelled;
    }
    log_info("trainer", "job " + std::to_string(id) + " (" + job.model + ") stored version " +
                            std::to_string(number) + ": " + gate_summary);
    if (options_.on_model_changed) options_.on_model_changed(job.model);
    remove_old_artifacts_of(job.model);
    // Storing a version (and removing an old one's bytes) passes the
    // artifact through buffers of its size; glibc kept their pages.
    ::malloc_trim(0);
    mark_idle("");
    return job_state::succeeded;
}

void training_worker::remove_old_artifacts_of(const std::string& model) {
    if (options_.keep_versions <= 0) return;
    removed_artifacts_row removed;
    status s = writer_.run(
        [&](connection& c) {
            removed = remove_old_artifacts(c, model, options_.keep_versions);
            return status::ok();
        },
        std::chrono::seconds(60));
    if (!s) {
        // Disk is only reclaimed later; the version stored stays.
        log_warn("trainer", "removing old artifacts of " + model + " failed: " + s.message());
        return;
    }
    if (removed.versions.empty()) return;
    std::string list;
    for (auto v : removed.versions) list += (list.empty() ? "" : ", ") + std::to_string(v);
    log_info("trainer", "retention (--keep-versions " + std::to_string(options_.keep_versions) +
                            ") removed the artifacts of " + model + " versions " + list + " (" +
                            std::to_string(removed.bytes) + " bytes)");
    // Serving may hold one of them as an earlier live version.
    if (options_.on_model_changed) options_.on_model_changed(model);
}

}  // namespace kennel::ml
