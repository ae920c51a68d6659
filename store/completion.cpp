#include "store/completion.h"

#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <climits>
#include <ctime>

namespace kennel {

static_assert(sizeof(std::atomic<std::uint32_t>) == sizeof(std::uint32_t),
              "a futex word must be a plain 32-bit integer");

namespace {

std::uint32_t* word(std::atomic<std::uint32_t>& a) { return reinterpret_cast<std::uint32_t*>(&a); }

}  // namespace

void completion::set() {
    if (state_.exchange(done, std::memory_order_acq_rel) == sleeping) {
        syscall(SYS_futex, word(state_), FUTEX_WAKE_PRIVATE, INT_MAX, nullptr, nullptr, 0);
    }
}

bool completion::wait_for(std::chrono::milliseconds timeout) {
    using clock = std::chrono::steady_clock;
    const auto deadline = clock::now() + timeout;
    std::uint32_t s = state_.load(std::memory_order_acquire);
    while (s != done) {
        // Announce the sleep first, so set() knows to wake us.
        if (s == pending &&
            !state_.compare_exchange_weak(s, sleeping, std::memory_order_acquire)) {
            continue;  // s now holds what changed it
        }
        auto left = std::chrono::duration_cast<std::chrono::nanoseconds>(deadline - clock::now());
        if (left.count() <= 0) return is_set();
        timespec ts{static_cast<std::time_t>(left.count() / 1000000000),
                    static_cast<long>(left.count() % 1000000000)};
        // Returns at once if the word is no longer "sleeping" (set already).
        syscall(SYS_futex, word(state_), FUTEX_WAIT_PRIVATE, sleeping, &ts, nullptr, 0);
        s = state_.load(std::memory_order_acquire);
    }
    return true;
}

}  // namespace kennel
