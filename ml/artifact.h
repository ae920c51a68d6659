// The model artifact: one versioned byte blob holding everything needed to
// serve a model version — the fitted feature pipeline, the label classes, the
// algorithm and its params and the fitted Dlib function — so that what was
// evaluated is byte for byte what is served.
//
// Layout: "KENNEL-MODEL" (12 bytes), format version (uint32 little-endian),
// payload length (uint64 LE), payload (dlib::serialize: task, pipeline,
// classes, algorithm tag, params, function), FNV-1a 64 of the payload (uint64
// LE) so that a damaged blob is refused instead of loading a different model.
// The registry's SHA-256 is computed by the caller over the whole blob.
//
// Threads: serialize_artifact and load_artifact are pure functions. A loaded
// model_artifact is immutable in use: share it as shared_ptr<const
// model_artifact> and call predict_raw from many threads at once.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "ml/features.h"
#include "ml/trainers.h"
#include "ml/value.h"
#include "store/status.h"

namespace kennel::ml {

inline constexpr std::string_view artifact_type_tag = "KENNEL-MODEL";
// Bump when the payload layout changes; older binaries refuse newer blobs.
inline constexpr std::uint32_t artifact_format_version = 1;

struct model_artifact {
    task_kind task = task_kind::regression;
    feature_pipeline pipeline;
    std::vector<std::string> classes;  // class index -> name; empty for regression
    algorithm algo = algorithm::baseline;
    train_params params;
    function_ptr function;  // never null in a loaded artifact
};

// The blob described above. Returns an empty string (which load_artifact
// refuses) if the artifact has no function.
std::string serialize_artifact(const model_artifact& artifact);

// Checks tag, format version, length and checksum, then reads and
// cross-checks the parts (algorithm tag, task, feature and class counts).
// invalid_argument (field "artifact") for a blob that is not a Kennel model or
// is damaged; failed_precondition for a newer format than this binary reads.
// With load_use::predict the artifact can predict but not be serialized
// again, and holds less memory (ml/trainers.h).
result<model_artifact> load_artifact(std::string_view bytes, load_use use = load_use::any);

struct model_prediction {
    double value = 0;                   // regression value or class index
    std::string label;                  // class name; empty for regression
    std::vector<double> probabilities;  // per class; empty for regression
};

// Transformed inputs beyond this many training units (standard deviations
// for numbers) are blamed when a prediction is not finite.
constexpr double max_input_scale = 1e6;

// Whether the function's answer is unusable (NaN or infinite anywhere).
bool not_finite(const prediction& p);
// The first transformed input beyond max_input_scale: what an answer that is
// not finite is blamed on (none: the version is at fault). Serving and the
// holdout evaluation share this rule.
std::optional<std::size_t> out_of_range_input(const std::vector<double>& x);

// Runs the pipeline on the record, then the function. A prediction that is
// not finite is invalid_argument when an input is beyond max_input_scale (the
// request's fault), else internal (the version's).
result<model_prediction> predict_raw(const model_artifact& artifact, const raw_record& record);

}  // namespace kennel::ml
