// A small bounded thread pool for predictions. Request threads hand work to
// it and wait only until their deadline; a prediction that overruns keeps a
// pool thread busy but never the request. When `max_queued` tasks are
// waiting, submit() refuses at once (the caller answers 503): admission
// control instead of a growing queue.
//
// Bulkheads: tasks carry a key (the model), and no key runs on more than
// all threads but one while other tasks wait, so one model's hung version
// cannot hold every thread while another model's requests time out in the
// queue behind it (the supervisor then took the healthy one down).
//
// Threads: submit() and queued() from any thread.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <deque>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

namespace kennel::ml {

class predict_pool {
public:
    predict_pool(std::size_t threads, std::size_t max_queued);
    ~predict_pool();
    predict_pool(const predict_pool&) = delete;
    predict_pool& operator=(const predict_pool&) = delete;

    // key "" is no model's: never held back. held_back, if given, is set
    // when the task waits because its own key holds all the threads it may
    // (it must outlive the task's wait: the task's closure may own it).
    // max_running (0: all threads but one) lowers the key's share further.
    bool submit(std::function<void()> task, const std::string& key = {},
                std::atomic<bool>* held_back = nullptr, std::size_t max_running = 0);
    std::size_t per_key() const { return per_key_; }
    std::size_t queued() const;
    std::size_t threads() const { return workers_.size(); }
    std::uint64_t refused() const;

private:
    struct task_item {
        std::function<void()> fn;
        std::string key;
        std::atomic<bool>* held_back = nullptr;
        std::size_t max_running = 0;  // 0: per_key_
    };
    void run();
    // The first waiting task whose key may take another thread (under mu_).
    std::deque<task_item>::iterator next_runnable();

    mutable std::mutex mu_;
    std::condition_variable cv_;
    std::deque<task_item> tasks_;
    std::unordered_map<std::string, std::size_t> running_;  // by key, non-zero only
    std::size_t per_key_;                                   // threads a key may hold at once
    std::vector<std::thread> workers_;
    std::size_t max_queued_;
    std::uint64_t refused_ = 0;
    bool stopping_ = false;
};

}  // namespace kennel::ml
