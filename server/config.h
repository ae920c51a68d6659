// Settings for `kennel serve`, filled by the CLI from flags, KENNEL_*
// environment variables and the --config INI file (in that precedence).
// A plain value: copy it freely.
#pragma once

#include <cstddef>
#include <string>
#include <vector>

#include "store/db.h"

namespace kennel {

struct serve_options {
    std::string host = "127.0.0.1";
    int port = 8080;
    std::string db = "kennel.db";
    bool demo = false;
    sync_mode sync = sync_mode::full;
    std::size_t max_body_bytes = 16 * 1024 * 1024;
    std::size_t max_batch = 10000;
    std::size_t writer_queue = 20000;
    // The writer's page cache: index pages the duplicate checks of new facts
    // read stay in it. Resident memory grows to about this as facts come.
    int writer_cache_mb = 64;
    int write_timeout_ms = 10000;
    int http_threads = 128;
    int keepalive_timeout_s = 5;
    std::string web_dir;
    std::string access_log;  // empty: none; "-": standard output
    // Addresses of reverse proxies in front of Kennel: a request from one is
    // taken to come from the client its X-Forwarded-For names.
    std::vector<std::string> trusted_proxies;
    int predict_threads = 0;            // 0: 2 per core, at least 4
    std::size_t predict_queue = 1024;   // prediction tasks waiting before 503
    int live_check_seconds = 10;        // the supervisor's looks at live metrics and canaries
    int retrain_gap_seconds = 30;       // least time between automatic jobs of one model
    int predict_concurrency = 0;        // requests computing at once; 0: 4 per core, at least 8
    int explain_concurrency = 0;  // explaining requests at once; 0: half the cores, at least 1
    std::size_t prediction_log_queue = 100000;
    double prediction_log_days = 30;  // older log segments are deleted; 0 keeps all
    int keep_versions = 20;    // artifacts kept per model (remove_old_artifacts); 0 keeps all
    bool test_faults = false;  // enables fault-injection hooks; tests only
};

}  // namespace kennel
