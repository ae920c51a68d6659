// A small bounded thread pool for predictions. Request threads hand work to
// it and wait only until their deadline; a prediction that overruns keeps a
// pool thread busy but never the request. When `max_queued` tasks are
// waiting, submit() refuses at once (the caller answers 503): admission
// control instead of a growing queue.
//
// Threads: submit() and queued() from any thread.
#pragma once

#include <condition_variable>
#include <cstddef>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace kennel::ml {

class predict_pool {
public:
    predict_pool(std::size_t threads, std::size_t max_queued);
    ~predict_pool();
    predict_pool(const predict_pool&) = delete;
    predict_pool& operator=(const predict_pool&) = delete;

    bool submit(std::function<void()> task);
    std::size_t queued() const;
    std::size_t threads() const { return workers_.size(); }
    std::uint64_t refused() const;

private:
    void run();

    mutable std::mutex mu_;
    std::condition_variable cv_;
    std::deque<std::function<void()>> tasks_;
    std::vector<std::thread> workers_;
    std::size_t max_queued_;
    std::uint64_t refused_ = 0;
    bool stopping_ = false;
};

}  // namespace kennel::ml
