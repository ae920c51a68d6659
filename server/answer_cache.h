// Answers that are costly to compute and read by pollers (live metrics: up
// to 50,000 logged predictions joined to their outcomes, about 0.3 s on a
// busy model, which every open admin page asked for every 2 s). A caller
// that accepts an answer up to `max_age` old shares one computed within it,
// and a caller arriving while the same key is being computed waits for that
// computation instead of starting another. A caller accepting no age
// (max_age 0) always gets a fresh answer, which then serves the others.
//
// Threads: get() from any thread; `compute` runs without the lock held.
#pragma once

#include <condition_variable>
#include <cstddef>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>

#include "store/time_util.h"

namespace kennel {

struct cached_answer {
    int status = 200;
    std::string body;
    micros computed_at = 0;  // when the computation began
};

class answer_cache {
public:
    // capacity: the number of keys kept; the least recently computed goes.
    explicit answer_cache(std::size_t capacity, std::function<micros()> clock = now_micros);

    // Only an answer with status 200 is kept for others; an error is the
    // caller's alone.
    cached_answer get(const std::string& key, micros max_age,
                      const std::function<cached_answer()>& compute);

    std::size_t size() const;

private:
    struct entry {
        std::shared_ptr<const cached_answer> answer;  // null until the first is computed
        int computing = 0;                            // computations of this key under way
    };
    void evict_locked();

    std::size_t capacity_;
    std::function<micros()> clock_;
    mutable std::mutex mutex_;
    std::condition_variable computed_;
    std::map<std::string, entry> entries_;
};

}  // namespace kennel
