// `kennel predict`: scoring a file of instances with a stored model version,
// offline, through the same request reader, feature pipeline and model code
// as POST /v1/models/{name}/predict. It reads the database only, so it runs
// beside a server. It is not serving: no deadline, no fallback, no
// experiment arms, and nothing goes into the prediction log.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

namespace kennel {

struct offline_predict_options {
    std::string db;
    std::string model;
    std::optional<std::int64_t> version;  // empty: the version `live` names
    std::string input;                    // NDJSON of predict bodies; empty or "-": stdin
    std::string out;                      // NDJSON answers; empty or "-": stdout
};

// Exit status: 0 every line scored, 3 some lines rejected (each answered
// with its error), 1 nothing could be scored (no such model or version,
// unreadable input or database).
int run_offline_predict(const offline_predict_options& options);

}  // namespace kennel
