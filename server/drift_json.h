// Drift reports as JSON, shared by GET /v1/models/{name}/drift and the brief
// per version in GET /v1/serving (server/drift_handler.cpp).
#pragma once

#include <nlohmann/json.hpp>

#include "ml/drift.h"
#include "ml/serving.h"

namespace kennel {

// requests, enough_requests, drifted, worst_field and worst_psi of a report,
// judged by the model's supervision policy.
nlohmann::json drift_brief(const ml::drift_report& r, const ml::supervision_policy& p);

// A serving version's brief over its model's drift window, with the answers'
// index; null without a profile or before the supervisor's first look.
nlohmann::json drift_window_brief(const ml::model_serving& m, const ml::loaded_version& v);

}  // namespace kennel
