#include "server/app.h"

#include <fcntl.h>
#include <malloc.h>
#include <signal.h>
#include <sys/file.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <thread>

#include "ml/definition_json.h"
#include "ml/predict_pool.h"
#include "ml/predict_slots.h"
#include "ml/prediction_log.h"
#include "ml/serving.h"
#include "ml/supervisor.h"
#include "ml/training_worker.h"
#include "server/access_log.h"
#include "server/auth.h"
#include "server/demo.h"
#include "server/handlers.h"
#include "server/http_server.h"
#include "server/http_stats.h"
#include "server/routes.h"
#include "store/auth_store.h"
#include "store/log.h"
#include "store/migrations.h"

namespace kennel {

app::app(serve_options options) : options_(std::move(options)) {}

app::~app() {
    if (http_) http_->stop();
    if (supervisor_) supervisor_->stop();
    if (trainer_) trainer_->stop();
    predict_pool_.reset();
    if (prediction_log_) prediction_log_->stop();
    if (writer_) writer_->stop();
}

ml::supervisor_state app::supervisor_state() const {
    return supervisor_ ? supervisor_->state() : ml::supervisor_state{"stopped", 0, 0, {}, {}};
}

std::size_t app::parked_connections() const {
    return http_ ? http_->parked_connections() : 0;
}

std::size_t app::parked_partial_requests() const {
    return http_ ? http_->parked_partial_requests() : 0;
}

std::uint64_t app::park_refused_full() const {
    return http_ ? http_->park_refused_full() : 0;
}

std::uint64_t app::streaming_refused() const {
    return http_ ? http_->streaming_refused() : 0;
}

const http_stats& app::request_stats() const {
    return http_->stats();
}

void app::refresh_model(const std::string& model) {
    try {
        auto conn = readers_->acquire();
        if (status s = serving_->refresh(*conn, model); !s) log_warn("serving", s.message());
    } catch (const db_error& e) {
        log_warn("serving", e.what());
    }
}

namespace {

// Refuses a database of another program (or a newer Kennel) by reading
// it only; start_store() checks again as it migrates.
status check_kennel_database(const std::string& path) {
    // Each message names the file, as the connection's own errors do.
    const auto naming = [&path](error_kind kind, const std::string& what) {
        return status(
            kind, what.find(path) == std::string::npos ? "database " + path + ": " + what : what);
    };
    try {
        open_options ro;
        ro.read_only = true;
        connection conn(path, ro);
        auto st = migration_status(conn);
        if (!st) return naming(st.error().kind(), st.error().message());
        return status::ok();
    } catch (const db_error& e) {
        return naming(error_kind::internal, e.what());
    }
}

std::string self_exe() {
    char buf[4096];
    ssize_t n = ::readlink("/proc/self/exe", buf, sizeof buf - 1);
    return n > 0 ? std::string(buf, static_cast<std::size_t>(n)) : std::string("kennel");
}

// The demo model: a post's likes from its features, trained at once and
// retrained every 500 new labels.
const char* demo_model_definition = R"({
  "task": "regression",
  "features_from": "posts",
  "label": {"stream": "likes", "field": "likes"},
  "features": [
    {"field": "length"},
    {"field": "hashtags"},
    {"field": "breed", "transform": "category"},
    {"field": "hour", "transform": "bucketize", "edges": [6, 12, 17, 22]},
    {"field": "caption", "transform": "text", "buckets": 32},
    {"field": "has_photo", "transform": "boolean"}
  ],
  "algorithm": "auto",
  "search": {"budget_seconds": 8},
  "retrain": {"every_new_labels": 500},
  "promotion": {"mode": "auto"}
})";

}  // namespace

status app::start_trainer() {
    ml::worker_options w;
    w.db_path = options_.db;
    w.exe_path = self_exe();
    w.test_faults = options_.test_faults;
    w.keep_versions = options_.keep_versions;
    w.min_trigger_gap = std::chrono::seconds(options_.retrain_gap_seconds);
    w.on_model_changed = [this](const std::string& model) { refresh_model(model); };
    trainer_ = std::make_unique<ml::training_worker>(w, *writer_, *readers_);
    return trainer_->start();
}

void app::write_key_uses(bool wait) {
    auto uses = auth_->take_unwritten_key_uses();
    if (uses.empty()) return;
    auto done = writer_->submit(
        [uses](connection& c) {
            record_key_uses(c, uses);
            return status::ok();
        },
        1, durability::relaxed);
    if (!done) {
        // A full writer queue: the next minute (or the stop) tries again.
        auth_->unwrite_key_uses(uses);
        return;
    }
    if (wait && done->wait_for(std::chrono::seconds(10)) == std::future_status::ready) {
        if (status s = done->get(); !s)
            log_warn("auth", "API keys' last uses not stored: " + s.message());
    }
}

void app::load_demo() {
    // Demo data goes only into a database of its own: facts are never
    // deleted, so a --demo left in a production configuration mixed 4,000
    // made-up posts into real streams for good.
    std::string other_stream;
    try {
        auto conn = readers_->acquire();
        statement st(*conn,
                     "SELECT stream FROM facts WHERE stream NOT IN ('posts', 'likes') LIMIT 1");
        if (st.step()) other_stream = st.column_text(0);
    } catch (const db_error& e) {
        log_error("demo", e.what());
        return;
    }
    if (!other_stream.empty()) {
        log_warn("demo", "--demo: not loaded: the database holds facts of its own (stream \"" +
                             other_stream +
                             "\"), and demo facts could never be taken out of it again");
        return;
    }
    auto facts = make_demo_facts({});
    std::size_t stored = 0;
    for (std::size_t i = 0; i < facts.size(); i += 1000) {
        std::vector<fact_input> chunk(
            facts.begin() + static_cast<std::ptrdiff_t>(i),
            facts.begin() + static_cast<std::ptrdiff_t>(std::min(facts.size(), i + 1000)));
        auto r = writer_->write_facts(std::move(chunk), std::chrono::seconds(60));
        if (!r) {
            log_error("demo", r.error().message());
            return;
        }
        for (const auto& x : *r) stored += x.outcome == write_outcome::stored;
    }
    log_info("demo", "loaded " + std::to_string(facts.size()) + " demo facts (" +
                         std::to_string(stored) + " new) on streams posts and likes");
    parsed_definition p = parse_definition(demo_model_definition);
    if (!p.errors.empty()) {
        log_error("demo", "demo model: " + p.errors[0].field + ": " + p.errors[0].message);
        return;
    }
    std::string canonical = canonical_definition_json(p.definition);
    bool queued = false;
    std::string changed_by;  // who defined "likes" since the demo did
    status s = writer_->run(
        [&](connection& c) {
            // A definition a person gave is theirs: the demo's replaced it
            // (and the log said "already defined").
            if (const auto m = get_model(c, "likes")) {
                const auto rev = get_revision(c, "likes", m->current_revision);
                if (rev && rev->author != "demo") {
                    changed_by = rev->author;
                    return status::ok();
                }
            }
            put_model_result r = put_model(c, "likes", canonical, "demo");
            // Train once when the model is new; the trigger takes over after.
            if (r.created_model) {
                std::int64_t id = insert_job(c, "likes", "demo", "demo");
                append_job_log(c, id, "info", "queued by kennel serve --demo");
                queued = true;
            }
            return status::ok();
        },
        std::chrono::seconds(30));
    if (!s) {
        log_error("demo", s.message());
        return;
    }
    if (!changed_by.empty()) {
        log_info("demo", "model \"likes\" left as " + changed_by + " defined it");
        return;
    }
    log_info("demo", queued ? "defined model \"likes\" and queued its first training job"
                            : "model \"likes\" already defined");
}

bool app::ready() const { return http_ && http_->ready(); }

status app::start_store() {
    open_options db;
    db.sync = options_.sync;
    try {
        open_options first = db;
        first.wal = false;  // migrate() sets it once the file is known to be Kennel's
        connection conn(options_.db, first);
        // Started "ready", a server on a file it cannot write would answer
        // every write 503. (db_lock already refuses a file this process
        // cannot open for writing; this is SQLite's own verdict.)
        if (conn.read_only()) {
            return status(
                error_kind::failed_precondition,
                "database " + options_.db + " is read-only; Kennel must be able to write it");
        }
        if (status s = migrate(conn); !s) return s;
    } catch (const db_error& e) {
        return status(error_kind::internal, e.what());
    }
    writer_options w;
    w.db_path = options_.db;
    w.db = db;
    w.db.cache_kib = options_.writer_cache_mb * 1024;
    w.max_pending = options_.writer_queue;
    writer_ = std::make_unique<fact_writer>(w);
    if (status s = writer_->start(); !s) return s;
    readers_ = std::make_unique<reader_pool>(options_.db);
    ml::serving_options so;
    so.test_faults = options_.test_faults;
    serving_ = std::make_unique<ml::serving_registry>(so);
    int threads = options_.predict_threads;
    if (threads <= 0) threads = std::max(4, 2 * static_cast<int>(std::thread::hardware_concurrency()));
    predict_pool_ = std::make_unique<ml::predict_pool>(static_cast<std::size_t>(threads), options_.predict_queue);
    int slots = options_.predict_concurrency;
    if (slots <= 0) slots = std::max(8, 4 * static_cast<int>(std::thread::hardware_concurrency()));
    predict_slots_ = std::make_unique<ml::predict_slots>(static_cast<std::size_t>(slots));
    int explaining = options_.explain_concurrency;
    if (explaining <= 0)
        explaining = std::max(1, static_cast<int>(std::thread::hardware_concurrency()) / 2);
    explain_slots_ = std::make_unique<ml::predict_slots>(static_cast<std::size_t>(explaining));
    prediction_log_ = std::make_unique<ml::prediction_log>(
        *writer_, options_.prediction_log_queue,
        std::chrono::microseconds(static_cast<std::int64_t>(options_.prediction_log_days * 86400e6)));
    return status::ok();
}

int app::run() {
    started_at_ = now_micros();
    // Signals go to a sigwait() below, not to arbitrary threads; set the
    // mask before any thread starts so all of them inherit it.
    sigset_t stop_signals;
    sigemptyset(&stop_signals);
    sigaddset(&stop_signals, SIGINT);
    sigaddset(&stop_signals, SIGTERM);
    sigaddset(&stop_signals, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);
    signal(SIGPIPE, SIG_IGN);

    auto lock = db_lock::acquire(options_.db);
    if (!lock) {
        log_error("serve", lock.error().message());
        return 1;
    }
    lock_ = std::move(*lock);
    // Before the port is bound, so nothing says "listening" for a file
    // Kennel will not open.
    if (status s = check_kennel_database(options_.db); !s) {
        log_error("serve", s.message());
        return 1;
    }

    http_options h;
    h.host = options_.host;
    h.port = options_.port;
    h.threads = options_.http_threads;
    h.keepalive_timeout_s = options_.keepalive_timeout_s;
    h.max_body_bytes = options_.max_body_bytes;
    h.trusted_proxies = options_.trusted_proxies;
    http_ = std::make_unique<http_server>(h, make_routes(*this));
    if (!options_.access_log.empty()) {
        // Its lines were appended to the database file itself.
        if (const std::string file = database_file_named(options_.access_log, options_.db);
            !file.empty()) {
            log_error("serve", "--access-log " + options_.access_log + " is the database file " +
                                   file + "; name another file");
            return 1;
        }
        auto opened = access_log::open(options_.access_log);
        if (!opened) {
            log_error("serve", opened.error().message());
            return 1;
        }
        access_log_ = std::move(*opened);
        http_->set_access_log(access_log_.get());
    }
    // Until the store is open every route but health answers 503, so the
    // authenticator (which reads users and keys) is only consulted after.
    http_->set_authenticator([this](http_request& req, access needs) -> std::optional<http_response> {
        return auth_->check(req, needs);
    });
    auto port = http_->bind();
    if (!port) {
        log_error("serve", port.error().message());
        return 1;
    }
    http_->start();
    // An IPv6 address is bracketed in a URL ("http://::1:8080" is not one).
    const std::string address =
        (options_.host.find(':') != std::string::npos ? "[" + options_.host + "]" : options_.host) +
        ":" + std::to_string(*port);
    log_info("serve", "listening on http://" + address + " (database " + options_.db + ")");
    // Tests read this line to find a port chosen with --port 0. With the
    // access log on standard output, it goes to stderr: the output is then
    // JSON lines only.
    FILE* notice = options_.access_log == "-" ? stderr : stdout;
    std::fprintf(notice, "kennel: listening on %s\n", address.c_str());
    std::fflush(notice);

    if (status s = start_store(); !s) {
        log_error("serve", s.message());
        http_->stop();
        return 1;
    }
    // Password checks, and requests waiting for one, may each hold at most a
    // quarter of the HTTP threads.
    password_check_limits checks;
    const std::size_t quarter = static_cast<std::size_t>(std::max(2, options_.http_threads / 4));
    checks.at_once = std::clamp<std::size_t>(2 * std::thread::hardware_concurrency(), 2, quarter);
    checks.waiting = quarter;
    auth_ = std::make_unique<authenticator>(*readers_, std::chrono::milliseconds(300),
                                            authenticator::clock_fn{}, checks);
    const char* env_password = std::getenv("KENNEL_ADMIN_PASSWORD");
    bool seeds_admin = false;  // the variable makes the first user
    if (env_password && *env_password) {
        // It only seeds a new database: a changed value is not a new password.
        auto conn = readers_->acquire();
        seeds_admin = count_users(*conn) == 0;
        if (!seeds_admin)
            log_warn("serve",
                     "KENNEL_ADMIN_PASSWORD is ignored: this database has users already (change a "
                     "password with kennel admin set-password)");
    }
    {
        // A database written before names were checked may hold two active
        // keys of one name, which "key:NAME" in the history cannot tell
        // apart. Revoking keys is the operator's call, not the server's.
        auto conn = readers_->acquire();
        for (const auto& [name, ids] : shared_active_key_names(*conn)) {
            std::string list;
            for (std::int64_t id : ids) list += (list.empty() ? "" : ", ") + std::to_string(id);
            log_warn("serve", "active API keys " + list + " share the name \"" + name +
                                  "\", so the history cannot tell which acted: revoke all but "
                                  "one (kennel admin revoke-key)");
        }
    }
    auto admin = ensure_admin(*writer_, *readers_, env_password ? env_password : "");
    if (!admin) {
        log_error("serve", "cannot create the admin user: " + admin.error().message());
        return 1;
    }
    if (*admin) {
        // Shown once: only a salted hash is stored.
        std::fprintf(stderr,
                     "\nkennel: created the admin user \"admin\" with password  %s\n"
                     "        (shown once; change it with: kennel admin set-password)\n\n",
                     (*admin)->c_str());
    } else if (seeds_admin) {
        log_info("serve",
                 "created the admin user \"admin\" with the password in "
                 "KENNEL_ADMIN_PASSWORD");
    }
    if (options_.demo) load_demo();
    {
        auto conn = readers_->acquire();
        // A model that cannot be read serves nothing: an error, and
        // kennel_model_problem says so (refresh_failed).
        if (status s = serving_->refresh_all(*conn); !s) log_error("serving", s.message());
    }
    if (status s = start_trainer(); !s) {
        log_error("serve", "cannot start the training worker: " + s.message());
        http_->stop();
        writer_->stop();
        return 1;
    }
    supervisor_ = std::make_unique<ml::supervisor>(
        *writer_, *readers_, *serving_, [this](const std::string& m) { refresh_model(m); },
        std::chrono::milliseconds(1000),
        // Rates are sampled every second, whether or not anyone is looking.
        [this] {
            const std::uint64_t facts = writer_->stats().facts_stored;
            const std::uint64_t activity = facts + metrics_.sample(facts).predictions_total;
            // Memory a burst freed (a batch of facts parsed, many requests)
            // stays in glibc's arenas between blocks still in use, where no
            // threshold gives it back: after 60 s of 11 MB NDJSON batches an
            // idle server held 179 MB, 97 MB after malloc_trim. Handed back
            // once 5 s pass with no fact or prediction, never under load
            // (malloc_trim takes each arena's lock in turn).
            if (activity != activity_seen_) {
                activity_seen_ = activity;
                quiet_ticks_ = 0;
                trimmed_since_activity_ = false;
            } else if (!trimmed_since_activity_ && ++quiet_ticks_ >= 5) {
                ::malloc_trim(0);
                trimmed_since_activity_ = true;
            }
            if (++ticks_since_key_uses_ >= 60) {
                ticks_since_key_uses_ = 0;
                write_key_uses(false);
            }
        });
    supervisor_->on_job_queued([this] { trainer_->wake(); });
    supervisor_->on_experiment_results(experiment_results);
    supervisor_->live_check_interval(std::chrono::seconds(options_.live_check_seconds));
    supervisor_->start();
    http_->set_ready(true);
    prediction_log_->start_expiry();
    log_info("serve", "ready");

    int sig = 0;
    // SIGHUP killed the server on the spot (no log line, the lock file left
    // behind): logrotate's postrotate and a closed ssh session send it.
    // Kennel logs to stderr and reads its configuration once, so the access
    // log is all there is to reopen.
    while (sigwait(&stop_signals, &sig) == 0 && sig == SIGHUP) {
        if (access_log_) {
            log_info("serve", "received SIGHUP: reopening the access log " + access_log_->path() +
                                  " (SIGTERM or SIGINT stops Kennel)");
            access_log_->reopen();
        } else {
            log_info("serve", "received SIGHUP: ignored (SIGTERM or SIGINT stops Kennel)");
        }
    }
    log_info("serve", std::string("received ") + (sig == SIGINT ? "SIGINT" : "SIGTERM") +
                          ": stopping");
    stopping_ = true;
    http_->begin_stop();
    // No new work once stopping: the scheduler and the supervisor stop
    // before the HTTP server waits for the requests in flight (they queued
    // and trained new jobs while a slow request held the stop).
    supervisor_->stop();
    trainer_->stop();
    http_->stop();
    write_key_uses(true);
    predict_pool_.reset();
    prediction_log_->stop();
    writer_->stop();
    if (writer_->stopped_failing()) {
        log_warn("serve",
                 "stopped; the last commits failed (see above), so what they held is "
                 "not stored");
        // Not 0: a supervisor (systemd's Restart=on-failure, a script) must
        // be able to tell a stop that lost writes from a clean one.
        return 1;
    }
    log_info("serve", "stopped cleanly");
    return 0;
}

}  // namespace kennel
