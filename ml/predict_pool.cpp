#include "ml/predict_pool.h"
#include "store/log.h"

namespace kennel::ml {

predict_pool::predict_pool(std::size_t threads, std::size_t max_queued)
    : per_key_(std::max<std::size_t>(1, threads) > 1 ? std::max<std::size_t>(1, threads) - 1 : 1),
      max_queued_(max_queued) {
    for (std::size_t i = 0; i < std::max<std::size_t>(1, threads); ++i) {
        workers_.emplace_back([this] {
            name_this_thread("kennel-predict");
            run();
        });
    }
}

predict_pool::~predict_pool() {
    {
        std::lock_guard lock(mu_);
        stopping_ = true;
    }
    cv_.notify_all();
    for (auto& t : workers_) t.join();
}

bool predict_pool::submit(std::function<void()> task, const std::string& key,
                          std::atomic<bool>* held_back, std::size_t max_running) {
    const std::size_t cap = max_running ? std::min(max_running, per_key_) : per_key_;
    {
        std::lock_guard lock(mu_);
        if (stopping_ || tasks_.size() >= max_queued_) {
            ++refused_;
            return false;
        }
        tasks_.push_back({std::move(task), key, held_back, cap});
        // Busy threads do not look at the queue: say it here too.
        if (auto r = running_.find(key); held_back && r != running_.end() && r->second >= cap)
            held_back->store(true, std::memory_order_relaxed);
    }
    // Every waiting thread looks: the one woken might find nothing it may
    // run while another could take this task.
    cv_.notify_all();
    return true;
}

std::deque<predict_pool::task_item>::iterator predict_pool::next_runnable() {
    for (auto it = tasks_.begin(); it != tasks_.end(); ++it) {
        if (it->key.empty()) return it;
        auto r = running_.find(it->key);
        if (r == running_.end() || r->second < it->max_running) return it;
        if (it->held_back) it->held_back->store(true, std::memory_order_relaxed);
    }
    return tasks_.end();
}

std::size_t predict_pool::queued() const {
    std::lock_guard lock(mu_);
    return tasks_.size();
}

std::uint64_t predict_pool::refused() const {
    std::lock_guard lock(mu_);
    return refused_;
}

void predict_pool::run() {
    for (;;) {
        task_item task;
        {
            std::unique_lock lock(mu_);
            auto it = tasks_.end();
            cv_.wait(lock, [&] {
                it = next_runnable();
                return stopping_ || it != tasks_.end();
            });
            if (tasks_.empty()) return;  // stopping and drained
            if (it == tasks_.end()) it = tasks_.begin();  // stopping: drain all
            task = std::move(*it);
            tasks_.erase(it);
            if (!task.key.empty()) ++running_[task.key];
        }
        task.fn();
        if (!task.key.empty()) {
            {
                std::lock_guard lock(mu_);
                auto r = running_.find(task.key);
                if (--r->second == 0) running_.erase(r);
            }
            // A task of this key held back may run now.
            cv_.notify_all();
        }
    }
}

}  // namespace kennel::ml
