#include "server/access_log.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cmath>
#include <cstring>

#include "store/json_writer.h"
#include "store/log.h"
#include "store/time_util.h"

namespace kennel {
namespace {

int open_for_append(const std::string& path) {
    if (path == "-") return ::dup(STDOUT_FILENO);
    // Created with the process's umask (Kennel adds 007: the log names
    // clients and users, so no one else may read it).
    return ::open(path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0666);
}

}  // namespace

result<std::unique_ptr<access_log>> access_log::open(const std::string& path,
                                                     std::size_t max_queued_bytes) {
    if (path.empty()) return status(error_kind::invalid_argument, "the access log needs a path");
    const int fd = open_for_append(path);
    if (fd < 0)
        return status(error_kind::internal,
                      "cannot open the access log " + path + ": " + std::strerror(errno));
    return std::unique_ptr<access_log>(new access_log(path, fd, max_queued_bytes));
}

access_log::access_log(std::string path, int fd, std::size_t max_queued_bytes)
    : path_(std::move(path)), fd_(fd), max_queued_bytes_(max_queued_bytes) {
    thread_ = std::thread([this] { loop(); });
}

access_log::~access_log() {
    {
        std::lock_guard lock(mu_);
        stopping_ = true;
    }
    wake_.notify_one();
    thread_.join();
    ::close(fd_);
}

std::string access_log::format(const access_entry& e) {
    std::string line;
    line.reserve(256 + e.target.size());
    json_writer w(line);
    const micros at =
        std::chrono::duration_cast<std::chrono::microseconds>(e.received.time_since_epoch())
            .count();
    line += '{';
    w.key("time").string(format_rfc3339(at));
    w.key("remote").string(e.remote);
    w.key("actor");
    e.actor.empty() ? w.null() : w.string(e.actor);
    w.key("method").string(e.method);
    w.key("target").string(e.target);
    w.key("route");
    e.route.empty() ? w.null() : w.string(e.route);
    w.key("status").integer(e.status);
    w.key("bytes").integer(static_cast<std::int64_t>(e.bytes));
    // Microseconds are the clock's grain here; more digits would be noise.
    w.key("duration_ms").number(std::round(e.seconds * 1e6) / 1e3);
    w.key("user_agent");
    e.user_agent.empty() ? w.null() : w.string(e.user_agent);
    line += "}\n";
    return line;
}

void access_log::add(const access_entry& e) {
    const std::string line = format(e);
    bool wake = false;
    {
        std::lock_guard lock(mu_);
        if (queue_.size() + line.size() > max_queued_bytes_) {
            dropped_.fetch_add(1, std::memory_order_relaxed);
            return;
        }
        queue_ += line;
        // Half full: write now rather than at the next tick.
        wake = queue_.size() >= max_queued_bytes_ / 2;
    }
    if (wake) wake_.notify_one();
}

void access_log::reopen() {
    {
        std::lock_guard lock(mu_);
        reopen_ = true;
    }
    wake_.notify_one();
}

access_log_stats access_log::stats() const {
    access_log_stats s;
    s.written = written_.load(std::memory_order_relaxed);
    s.dropped = dropped_.load(std::memory_order_relaxed);
    std::lock_guard lock(mu_);
    s.queued_bytes = queue_.size();
    return s;
}

bool access_log::write_all(std::string_view text) {
    while (!text.empty()) {
        const ssize_t n = ::write(fd_, text.data(), text.size());
        if (n < 0) {
            if (errno == EINTR) continue;
            return false;
        }
        text.remove_prefix(static_cast<std::size_t>(n));
    }
    return true;
}

void access_log::loop() {
    name_this_thread("kennel-access");
    std::string batch;
    for (;;) {
        bool stop = false;
        bool reopen = false;
        {
            std::unique_lock lock(mu_);
            wake_.wait_for(lock, std::chrono::milliseconds(100), [this] {
                return stopping_ || reopen_ || queue_.size() >= max_queued_bytes_ / 2;
            });
            batch.swap(queue_);
            stop = stopping_;
            reopen = reopen_;
            reopen_ = false;
        }
        if (!batch.empty()) {
            std::size_t lines = 0;
            for (char c : batch) lines += c == '\n';
            if (write_all(batch)) {
                written_.fetch_add(lines, std::memory_order_relaxed);
                if (failing_) log_info("access-log", "writing to " + path_ + " again");
                failing_ = false;
            } else {
                const int err = errno;
                // A line written in part counts as dropped too: a reader sees
                // it cut short.
                dropped_.fetch_add(lines, std::memory_order_relaxed);
                if (!failing_)
                    log_error("access-log", "cannot write to " + path_ + ": " + std::strerror(err) +
                                                "; lines are dropped (and counted) until it "
                                                "works again");
                failing_ = true;
            }
            batch.clear();
        }
        if (reopen) {
            // What was queued before the signal went to the old file, above.
            const int fd = open_for_append(path_);
            if (fd < 0) {
                const int err = errno;
                log_error("access-log", "cannot reopen " + path_ + ": " + std::strerror(err) +
                                            "; still writing to the file opened before");
            } else {
                ::close(fd_);
                fd_ = fd;
                log_info("access-log", "reopened " + path_);
            }
        }
        if (stop) return;
    }
}

}  // namespace kennel
