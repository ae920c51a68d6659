#include "ml/predict_slots.h"

#include <algorithm>

namespace kennel::ml {

predict_slots::predict_slots(std::size_t slots) : slots_(slots == 0 ? 1 : slots), free_(slots_) {}

bool predict_slots::acquire_until(std::chrono::steady_clock::time_point until) {
    // One per thread: a thread waits for one slot at a time.
    thread_local waiter me;
    std::unique_lock lock(mu_);
    // First come, first served: no taking a slot past those already waiting.
    if (free_ > 0 && waiting_.empty()) {
        --free_;
        return true;
    }
    waited_.fetch_add(1, std::memory_order_relaxed);
    me.granted = false;
    waiting_.push_back(&me);
    if (me.cv.wait_until(lock, until, [&] { return me.granted; })) return true;
    // Not granted, so still queued (a release grants and dequeues under the
    // same lock): leave the queue; no slot was taken.
    waiting_.erase(std::find(waiting_.begin(), waiting_.end(), &me));
    gave_up_.fetch_add(1, std::memory_order_relaxed);
    return false;
}

void predict_slots::release() {
    std::lock_guard lock(mu_);
    if (waiting_.empty()) {
        ++free_;
        return;
    }
    // The slot passes straight to the oldest waiter.
    waiter* next = waiting_.front();
    waiting_.pop_front();
    next->granted = true;
    // Notified under the lock: once unlocked, the waiter may return and wait
    // again on the same condition variable.
    next->cv.notify_one();
}

}  // namespace kennel::ml
