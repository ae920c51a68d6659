// A pool of read-only connections for request threads. WAL lets readers run
// beside the writer; each connection is used by one thread at a time, leased
// with acquire() and returned when the lease goes out of scope.
//
// Threads: acquire() may be called from any thread. Connections are opened
// on demand and kept (at most `max_idle` idle ones).
#pragma once

#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "store/db.h"

namespace kennel {

class reader_pool {
public:
    class lease {
    public:
        lease(reader_pool& pool, std::unique_ptr<connection> conn)
            : pool_(&pool), conn_(std::move(conn)) {}
        ~lease() {
            if (conn_) pool_->release(std::move(conn_));
        }
        lease(lease&&) = default;
        lease(const lease&) = delete;
        lease& operator=(const lease&) = delete;
        lease& operator=(lease&&) = delete;
        connection& operator*() { return *conn_; }
        connection* operator->() { return conn_.get(); }

    private:
        reader_pool* pool_;
        std::unique_ptr<connection> conn_;
    };

    explicit reader_pool(std::string db_path, std::size_t max_idle = 16)
        : path_(std::move(db_path)), max_idle_(max_idle) {}

    // Throws db_error if a new connection cannot be opened.
    lease acquire();

private:
    void release(std::unique_ptr<connection> conn);

    std::string path_;
    std::size_t max_idle_;
    std::mutex mu_;
    std::vector<std::unique_ptr<connection>> idle_;
};

}  // namespace kennel
