#include "server/answer_cache.h"

#include <limits>
#include <utility>

namespace kennel {

answer_cache::answer_cache(std::size_t capacity, std::function<micros()> clock)
    : capacity_(capacity), clock_(std::move(clock)) {}

std::size_t answer_cache::size() const {
    std::lock_guard lock(mutex_);
    return entries_.size();
}

cached_answer answer_cache::get(const std::string& key, micros max_age,
                                const std::function<cached_answer()>& compute) {
    std::unique_lock lock(mutex_);
    while (max_age > 0) {
        auto it = entries_.find(key);
        if (it == entries_.end()) break;
        const entry& e = it->second;
        if (e.answer && clock_() - e.answer->computed_at <= max_age) return *e.answer;
        if (e.computing == 0) break;
        // One is under way: its answer will be fresh enough.
        computed_.wait(lock);
    }
    ++entries_[key].computing;
    const micros started = clock_();
    lock.unlock();

    // The count goes back down however compute ends, or waiters would wait
    // for nothing.
    struct done_guard {
        answer_cache& cache;
        const std::string& key;
        ~done_guard() {
            std::lock_guard relock(cache.mutex_);
            auto it = cache.entries_.find(key);
            if (it != cache.entries_.end()) {
                --it->second.computing;
                if (!it->second.answer && it->second.computing == 0) cache.entries_.erase(it);
            }
            cache.evict_locked();
            cache.computed_.notify_all();
        }
    };
    cached_answer fresh;
    {
        done_guard guard{*this, key};
        fresh = compute();
        fresh.computed_at = started;
        if (fresh.status == 200) {
            std::lock_guard relock(mutex_);
            entry& e = entries_[key];
            // Two fresh computations may end out of order: keep the later one.
            if (!e.answer || e.answer->computed_at <= started)
                e.answer = std::make_shared<const cached_answer>(fresh);
        }
    }
    return fresh;
}

void answer_cache::evict_locked() {
    while (entries_.size() > capacity_) {
        auto oldest = entries_.end();
        micros oldest_at = std::numeric_limits<micros>::max();
        for (auto it = entries_.begin(); it != entries_.end(); ++it) {
            if (it->second.computing > 0 || !it->second.answer) continue;
            if (it->second.answer->computed_at < oldest_at) {
                oldest_at = it->second.answer->computed_at;
                oldest = it;
            }
        }
        if (oldest == entries_.end()) return;  // every entry is being computed
        entries_.erase(oldest);
    }
}

}  // namespace kennel
