// The model the prediction body readers are tested against, shared by the
// unit test (test_predict_body.cpp) and the fuzz target
// (tests/fuzz/fuzz_predict_body.cpp): one field of each transform, and one
// field read by two specs.
#pragma once

#include "ml/serving.h"

namespace kennel::testing {

inline ml::model_serving predict_body_model() {
    ml::model_serving m;
    m.name = "m";
    m.definition.task = ml::task_kind::binary;
    auto add = [&](std::string field, ml::transform_kind kind) {
        m.definition.features.push_back({std::move(field), kind, {}});
    };
    add("x", ml::transform_kind::numeric);
    add("x", ml::transform_kind::bucketize);  // one field, two specs
    add("y", ml::transform_kind::log);
    add("cat", ml::transform_kind::category);
    add("words", ml::transform_kind::text);
    add("flag", ml::transform_kind::boolean);
    add("span", ml::transform_kind::interval);
    m.fields = ml::index_fields(m.definition.features);
    return m;
}

}  // namespace kennel::testing
