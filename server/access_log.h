// The access log (serve --access-log FILE): one JSON line per answered
// request, written off the request path. A request formats its line and
// appends it to a queue bounded in bytes; a background thread writes the
// queue out about ten times a second. When the queue is full, lines are
// dropped and counted: a slow disk never slows a request. reopen() (SIGHUP)
// opens the path anew, for logrotate.
//
// Threads: add(), reopen() and stats() from any thread.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>

#include "store/status.h"

namespace kennel {

// One answered request.
struct access_entry {
    std::chrono::system_clock::time_point received{};
    std::string_view remote{};  // the client, past trusted proxies
    std::string_view actor{};   // "admin", "key:NAME"; empty when none signed in
    std::string_view method{};
    std::string_view target{};  // path and query, as sent
    std::string_view route{};   // the route's pattern; empty when none matched
    std::string_view user_agent{};
    int status = 0;
    std::size_t bytes = 0;  // the answer's body, before any gzip
    double seconds = 0;     // from the request's headers read to its answer made
};

struct access_log_stats {
    std::uint64_t written = 0;  // lines written
    std::uint64_t dropped = 0;  // lines dropped: the queue was full, or a write failed
    std::size_t queued_bytes = 0;
};

class access_log {
public:
    // The queue's bound: about 40,000 lines of a typical request.
    static constexpr std::size_t default_max_queued_bytes = 8 << 20;

    // Opens `path` to append ("-": standard output) and starts the writer.
    // A FIFO must have a reader already; writes to it never block for long.
    static result<std::unique_ptr<access_log>> open(
        const std::string& path, std::size_t max_queued_bytes = default_max_queued_bytes);
    ~access_log();  // writes out what is queued
    access_log(const access_log&) = delete;
    access_log& operator=(const access_log&) = delete;

    void add(const access_entry& e);
    // The writer closes the file and opens the path again before its next
    // write (the old file may have been renamed); it logs the outcome, and
    // keeps the old file if the path cannot be opened.
    void reopen();
    access_log_stats stats() const;
    const std::string& path() const { return path_; }

    // The line written for `e`, with its newline.
    static std::string format(const access_entry& e);

private:
    access_log(std::string path, int fd, std::size_t max_queued_bytes);
    void loop();
    // Writes the queued lines; counts them written or dropped.
    void write_batch(std::string& batch);
    // Writes as much of `text` as it can; returns how much (errno says why
    // when not all). A pipe whose reader is not keeping up is waited for up
    // to a second, or until the log closes.
    std::size_t write_some(std::string_view text);

    const std::string path_;
    int fd_;
    const std::size_t max_queued_bytes_;
    mutable std::mutex mu_;
    std::condition_variable wake_;
    std::string queue_;  // whole lines
    // Set under mu_ (so the writer's wait cannot miss it); read without it
    // by write_some, which gives up waiting for a pipe once it is set.
    std::atomic<bool> stopping_{false};
    bool reopen_ = false;
    std::atomic<std::uint64_t> written_{0};
    std::atomic<std::uint64_t> dropped_{0};
    bool failing_ = false;  // the last write failed (logged once)
    // A failed write left a line cut short: the next write ends it first, so
    // that the lines after it stay whole.
    bool mid_line_ = false;
    std::thread thread_;
};

}  // namespace kennel
