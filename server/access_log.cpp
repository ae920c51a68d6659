#include "server/access_log.h"

#include <fcntl.h>
#include <poll.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstring>

#include "store/json_writer.h"
#include "store/log.h"
#include "store/time_util.h"

namespace kennel {
namespace {

int open_for_append(const std::string& path) {
    // Non-blocking, so that a FIFO without a reader fails here (ENXIO)
    // instead of blocking the start or a reopen, and a reader that stops
    // reading cannot hold the writer (and so the stop) for ever. Standard
    // output is opened anew where it can be (a pipe, a file), so the flag
    // does not reach the process's own stdout; a socket (journald's) is
    // duplicated as it is.
    constexpr int flags = O_WRONLY | O_APPEND | O_CLOEXEC | O_NONBLOCK;
    if (path == "-") {
        const int fd = ::open("/proc/self/fd/1", flags);
        return fd >= 0 ? fd : ::fcntl(STDOUT_FILENO, F_DUPFD_CLOEXEC, 3);
    }
    // Created with the process's umask (Kennel adds 007: the log names
    // clients and users, so no one else may read it).
    return ::open(path.c_str(), flags | O_CREAT, 0666);
}

std::string open_error(const std::string& path, int err) {
    return err == ENXIO ? "no process has the FIFO " + path + " open for reading"
                        : std::string(std::strerror(err));
}

}  // namespace

result<std::unique_ptr<access_log>> access_log::open(const std::string& path,
                                                     std::size_t max_queued_bytes) {
    if (path.empty()) return status(error_kind::invalid_argument, "the access log needs a path");
    const int fd = open_for_append(path);
    if (fd < 0)
        return status(error_kind::internal,
                      "cannot open the access log " + path + ": " + open_error(path, errno));
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

std::size_t access_log::write_some(std::string_view text) {
    std::size_t done = 0;
    int waited_ms = 0;
    while (done < text.size()) {
        const ssize_t n = ::write(fd_, text.data() + done, text.size() - done);
        if (n > 0) {
            done += static_cast<std::size_t>(n);
            continue;
        }
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && errno == EAGAIN && waited_ms < 1000 && !stopping_) {
            pollfd p{fd_, POLLOUT, 0};
            ::poll(&p, 1, 100);
            waited_ms += 100;
            continue;
        }
        if (n == 0) errno = EIO;
        break;
    }
    return done;
}

void access_log::write_batch(std::string& batch) {
    const auto count_lines = [](std::string_view text) {
        return static_cast<std::size_t>(std::count(text.begin(), text.end(), '\n'));
    };
    const std::size_t lines = count_lines(batch);
    const std::size_t ending = mid_line_ ? 1 : 0;
    if (mid_line_) batch.insert(batch.begin(), '\n');
    const std::size_t n = write_some(batch);
    const int err = errno;
    const std::string_view sent = std::string_view(batch).substr(0, n);
    const std::size_t whole = n > ending ? count_lines(sent.substr(ending)) : 0;
    if (n >= ending) mid_line_ = n > ending && sent.back() != '\n';
    written_.fetch_add(whole, std::memory_order_relaxed);
    if (n == batch.size()) {
        if (failing_) log_info("access-log", "writing to " + path_ + " again");
        failing_ = false;
        return;
    }
    // A line cut short counts as dropped: the next write ends it with a
    // newline, and a reader skips it as the one line that does not parse.
    dropped_.fetch_add(lines - whole, std::memory_order_relaxed);
    if (!failing_)
        log_error("access-log", "cannot write to " + path_ + ": " +
                                    (err == EAGAIN ? std::string("its reader is not keeping up")
                                                   : std::string(std::strerror(err))) +
                                    "; lines are dropped (and counted) until it works again");
    failing_ = true;
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
            write_batch(batch);
            batch.clear();
        }
        if (reopen) {
            // What was queued before the signal went to the old file, above.
            const int fd = open_for_append(path_);
            if (fd < 0) {
                const int err = errno;
                log_error("access-log", "cannot reopen " + path_ + ": " + open_error(path_, err) +
                                            "; still writing to the file opened before");
            } else {
                ::close(fd_);
                fd_ = fd;
                mid_line_ = false;  // a new file starts on a line of its own
                log_info("access-log", "reopened " + path_);
            }
        }
        if (stop) return;
    }
}

}  // namespace kennel
