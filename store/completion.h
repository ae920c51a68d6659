// A one-shot signal: one thread waits (with a bound) until another sets it.
//
// The writer completes dozens of waiting requests per commit. std::promise
// would allocate a shared state per request, run call_once on set, and make
// a futex system call on every set; this is one futex word that is woken
// only when its waiter is actually asleep. Linux only (futex).
//
// Threads: one waiter and one setter; set() at most once.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>

namespace kennel {

class completion {
public:
    // Publishes everything written before it to the waiter.
    void set();
    // True once set() has happened (then everything written before it is
    // visible); false if `timeout` passed first.
    bool wait_for(std::chrono::milliseconds timeout);
    bool is_set() const { return state_.load(std::memory_order_acquire) == done; }

private:
    static constexpr std::uint32_t pending = 0;
    static constexpr std::uint32_t sleeping = 1;  // pending, and the waiter is (about to be) asleep
    static constexpr std::uint32_t done = 2;
    std::atomic<std::uint32_t> state_{pending};
};

}  // namespace kennel
