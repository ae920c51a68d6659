#include "ml/predict_slots.h"

#include <algorithm>

namespace kennel::ml {

predict_slots::predict_slots(std::size_t slots)
    : slots_(slots == 0 ? 1 : slots), free_(static_cast<std::int64_t>(slots_)) {}

bool predict_slots::acquire_until(std::chrono::steady_clock::time_point until) {
    if (free_.fetch_sub(1, std::memory_order_acquire) > 0) return true;
    waited_.fetch_add(1, std::memory_order_relaxed);
    // One per thread: a thread waits for one slot at a time.
    thread_local waiter me;
    std::unique_lock lock(mu_);
    // A release may have run between the count and this lock.
    if (handed_over_ > 0) {
        --handed_over_;
        return true;
    }
    me.granted = false;
    waiting_.push_back(&me);
    if (me.cv.wait_until(lock, until, [&] { return me.granted; })) return true;
    // Still queued, so no release chose this thread: stop counting it as
    // waiting. (While a thread is queued, releases hand their slots to the
    // queue, never to handed_over_.)
    waiting_.erase(std::find(waiting_.begin(), waiting_.end(), &me));
    free_.fetch_add(1, std::memory_order_relaxed);
    gave_up_.fetch_add(1, std::memory_order_relaxed);
    return false;
}

void predict_slots::release() {
    if (free_.fetch_add(1, std::memory_order_release) >= 0) return;
    // Someone counted itself as waiting: hand the slot to the oldest waiter,
    // or, if it has not joined the queue yet, leave the slot for it.
    waiter* next = nullptr;
    {
        std::lock_guard lock(mu_);
        if (waiting_.empty()) {
            ++handed_over_;
            return;
        }
        next = waiting_.front();
        waiting_.pop_front();
        next->granted = true;
        // Notified under the lock: once unlocked, the waiter may return and
        // wait again on the same condition variable.
        next->cv.notify_one();
    }
}

}  // namespace kennel::ml
