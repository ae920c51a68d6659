#include "server/app.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "server/demo.h"
#include "server/http_server.h"
#include "server/routes.h"
#include "store/log.h"
#include "store/migrations.h"

namespace kennel {

result<std::unique_ptr<db_lock>> db_lock::acquire(const std::string& db_path) {
    std::string path = db_path + ".lock";
    int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) {
        return status(error_kind::internal, "cannot open " + path + ": " + std::strerror(errno));
    }
    if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
        char buf[32] = {};
        ssize_t n = ::pread(fd, buf, sizeof buf - 1, 0);
        ::close(fd);
        std::string holder = n > 0 ? std::string(buf, static_cast<std::size_t>(n)) : "unknown";
        while (!holder.empty() && (holder.back() == '\n' || holder.back() == ' ')) holder.pop_back();
        return status(error_kind::conflict, "database " + db_path +
                                                " is in use by another Kennel process (pid " +
                                                holder + ")");
    }
    std::string pid = std::to_string(::getpid()) + "\n";
    if (::ftruncate(fd, 0) == 0) {
        [[maybe_unused]] ssize_t w = ::pwrite(fd, pid.data(), pid.size(), 0);
    }
    return std::unique_ptr<db_lock>(new db_lock(fd));
}

db_lock::~db_lock() {
    ::flock(fd_, LOCK_UN);
    ::close(fd_);
}

app::app(serve_options options) : options_(std::move(options)) {}

app::~app() {
    if (http_) http_->stop();
    if (writer_) writer_->stop();
}

bool app::ready() const { return http_ && http_->ready(); }

status app::start_store() {
    open_options db;
    db.sync = options_.sync;
    try {
        connection conn(options_.db, db);
        if (status s = migrate(conn); !s) return s;
    } catch (const db_error& e) {
        return status(error_kind::internal, e.what());
    }
    writer_options w;
    w.db_path = options_.db;
    w.db = db;
    w.max_pending = options_.writer_queue;
    writer_ = std::make_unique<fact_writer>(w);
    if (status s = writer_->start(); !s) return s;
    readers_ = std::make_unique<reader_pool>(options_.db);
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
    pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);
    signal(SIGPIPE, SIG_IGN);

    auto lock = db_lock::acquire(options_.db);
    if (!lock) {
        log_error("serve", lock.error().message());
        return 1;
    }
    lock_ = std::move(*lock);

    http_options h;
    h.host = options_.host;
    h.port = options_.port;
    h.threads = options_.http_threads;
    h.keepalive_timeout_s = options_.keepalive_timeout_s;
    h.max_body_bytes = options_.max_body_bytes;
    http_ = std::make_unique<http_server>(h, make_routes(*this));
    auto port = http_->bind();
    if (!port) {
        log_error("serve", port.error().message());
        return 1;
    }
    http_->start();
    log_info("serve", "listening on http://" + options_.host + ":" + std::to_string(*port) +
                          " (database " + options_.db + ")");
    // Tests read this line to find a port chosen with --port 0.
    std::printf("kennel: listening on %s:%d\n", options_.host.c_str(), *port);
    std::fflush(stdout);

    if (status s = start_store(); !s) {
        log_error("serve", s.message());
        http_->stop();
        return 1;
    }
    if (options_.demo) {
        auto facts = make_demo_facts({});
        std::size_t stored = 0;
        for (std::size_t i = 0; i < facts.size(); i += 1000) {
            std::vector<fact_input> chunk(facts.begin() + static_cast<std::ptrdiff_t>(i),
                                          facts.begin() + static_cast<std::ptrdiff_t>(
                                                              std::min(facts.size(), i + 1000)));
            auto r = writer_->write_facts(std::move(chunk), std::chrono::seconds(60));
            if (!r) {
                log_error("demo", r.error().message());
                break;
            }
            for (const auto& x : *r) stored += x.outcome == write_outcome::stored;
        }
        log_info("demo", "loaded " + std::to_string(facts.size()) + " demo facts (" +
                             std::to_string(stored) + " new) on streams posts and likes");
    }
    http_->set_ready(true);
    log_info("serve", "ready");

    int sig = 0;
    sigwait(&stop_signals, &sig);
    log_info("serve", std::string("received ") + (sig == SIGINT ? "SIGINT" : "SIGTERM") +
                          ": stopping");
    http_->set_ready(false);
    http_->stop();
    writer_->stop();
    log_info("serve", "stopped cleanly");
    return 0;
}

}  // namespace kennel
