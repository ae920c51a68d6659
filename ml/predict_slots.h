// At most N requests compute predictions at once; the others sleep in a
// first-come-first-served queue until a slot frees.
//
// Why: predictions run on the request threads, and with 64 connections on a
// 2-core machine 64 threads were runnable at once. The scheduler shares the
// CPU by thread, so the prediction log's writer, one thread among them, got
// a sixtieth of it and dropped up to half the log (bench/predict, batches at
// 64 connections). With a few slots per core the writer keeps its share, and
// a waiting request costs nothing but its place in the queue.
//
// Threads: acquire() and release() from any thread; each is a short critical
// section under one mutex. (A lock-free count was tried: a waiter giving up
// while a release was on its way to it left the slot counted twice, so the
// cap crept above N.)
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <mutex>

namespace kennel::ml {

class predict_slots {
public:
    explicit predict_slots(std::size_t slots);
    predict_slots(const predict_slots&) = delete;
    predict_slots& operator=(const predict_slots&) = delete;

    // Waits for a slot until `until`; false (and no slot) if none came.
    bool acquire_until(std::chrono::steady_clock::time_point until);
    void release();

    std::size_t slots() const { return slots_; }
    // Requests that had to wait for a slot, since start.
    std::uint64_t waited() const { return waited_.load(std::memory_order_relaxed); }
    // Requests that gave up waiting and went on without a slot.
    std::uint64_t gave_up() const { return gave_up_.load(std::memory_order_relaxed); }

    // Holds a slot for its scope (or until release()), if one came in time.
    class held {
    public:
        held(predict_slots& s, std::chrono::steady_clock::time_point until)
            : s_(s.acquire_until(until) ? &s : nullptr) {}
        ~held() { release(); }
        held(const held&) = delete;
        held& operator=(const held&) = delete;
        void release() {
            if (s_) s_->release();
            s_ = nullptr;
        }
        bool holds() const { return s_ != nullptr; }

    private:
        predict_slots* s_;
    };

private:
    const std::size_t slots_;
    std::atomic<std::uint64_t> waited_{0};
    std::atomic<std::uint64_t> gave_up_{0};
    struct waiter {
        std::condition_variable cv;
        bool granted = false;  // under mu_
    };
    std::mutex mu_;
    std::size_t free_;             // under mu_
    std::deque<waiter*> waiting_;  // under mu_, oldest first
};

}  // namespace kennel::ml
