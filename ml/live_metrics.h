// Live metrics: predictions joined to the outcomes that arrived later as
// ordinary facts in the model's label stream — by the outcome's
// "prediction_id" field, else by entity (the newest outcome at or after the
// prediction). The same metrics as the holdout, per version and arm,
// including shadow arms. Reader connection; one thread at a time.
#pragma once

#include <cstdint>
#include <limits>
#include <optional>
#include <string>
#include <vector>

#include "ml/definition.h"
#include "ml/metrics.h"
#include "store/db.h"
#include "store/status.h"
#include "store/time_util.h"

namespace kennel::ml {

struct live_group {
    std::optional<std::int64_t> version;
    std::string arm;
    bool shadow = false;
    std::int64_t predictions = 0;
    std::int64_t outcomes = 0;  // predictions with a joined outcome, scored
    // Joined outcomes the answering version cannot score: a class it does
    // not know (a 1 where it learned true), or a value of another type.
    // Counted, since a metric over fewer outcomes than were sent needs a why.
    std::int64_t unscored_outcomes = 0;
    std::int64_t fallbacks = 0;
    double mean_latency_ms = 0;
    std::optional<metric_listing> metrics;  // when there are outcomes to score
};

// Over the newest `max_predictions` predictions made from `since` to `until`.
result<std::vector<live_group>> compute_live_metrics(
    connection& c, const std::string& model, const model_definition& d, micros since,
    std::int64_t max_predictions = 50000, micros until = std::numeric_limits<micros>::max());

}  // namespace kennel::ml
