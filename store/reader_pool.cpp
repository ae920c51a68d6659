#include "store/reader_pool.h"

namespace kennel {

reader_pool::lease reader_pool::acquire() {
    {
        std::lock_guard lock(mu_);
        if (!idle_.empty()) {
            auto conn = std::move(idle_.back());
            idle_.pop_back();
            return lease(*this, std::move(conn));
        }
    }
    open_options opts;
    opts.read_only = true;
    return lease(*this, std::make_unique<connection>(path_, opts));
}

void reader_pool::release(std::unique_ptr<connection> conn) {
    std::lock_guard lock(mu_);
    if (idle_.size() < max_idle_) idle_.push_back(std::move(conn));
}

}  // namespace kennel
