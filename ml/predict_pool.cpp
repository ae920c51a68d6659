#include "ml/predict_pool.h"
#include "store/log.h"

namespace kennel::ml {

predict_pool::predict_pool(std::size_t threads, std::size_t max_queued) : max_queued_(max_queued) {
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

bool predict_pool::submit(std::function<void()> task) {
    {
        std::lock_guard lock(mu_);
        if (stopping_ || tasks_.size() >= max_queued_) {
            ++refused_;
            return false;
        }
        tasks_.push_back(std::move(task));
    }
    cv_.notify_one();
    return true;
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
        std::function<void()> task;
        {
            std::unique_lock lock(mu_);
            cv_.wait(lock, [this] { return stopping_ || !tasks_.empty(); });
            if (tasks_.empty()) return;  // stopping and drained
            task = std::move(tasks_.front());
            tasks_.pop_front();
        }
        task();
    }
}

}  // namespace kennel::ml
