// Why a version answered as it did: each field's share of one answer.
//
// The shares are interventional Shapley values over the fields a version
// reads, against a background of its training rows: the answer's distance
// from the background's mean answer, split between the fields so that the
// shares add up to it exactly. For a field, the share is its average effect
// when its value replaces a background row's, over every order in which the
// fields can be replaced. With few fields every subset of fields is
// evaluated (exact); with more, orders are sampled in reversed pairs, and
// each share carries the standard error of its estimate: from the spread
// between the orders of one row when every row has two or more pairs,
// else from the spread between pairs (wider: it also holds the rows' own
// differences).
//
// Fields are replaced in the encoded space: every transform reads one field
// (feature_pipeline::column_fields), so a row with some fields from the
// instance and the rest from a background row encodes to those columns
// taken from each.
//
// Training keeps up to background_max_rows of its rows in the version (its
// features JSON, "background"); versions trained before that have none and
// cannot be explained. An explainer is immutable once built: explain() may
// run on many threads at once.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "ml/artifact.h"
#include "ml/features.h"
#include "ml/value.h"
#include "store/status.h"

namespace kennel::ml {

inline constexpr std::size_t background_max_rows = 100;
// The background's JSON is kept under this many bytes (long text fields):
// rows past it are left out.
inline constexpr std::size_t background_max_bytes = 256 * 1024;

// Up to max_rows of `rows`, evenly spaced, each with only the fields `specs`
// read.
std::vector<raw_record> sample_background(const std::vector<feature_spec>& specs,
                                          const std::vector<raw_record>& rows,
                                          std::size_t max_rows = background_max_rows);
// A JSON array of objects (an interval as {"lower", "upper"}; a missing
// value left out), at most background_max_bytes long.
std::string background_to_json(const std::vector<raw_record>& rows);
// The background in a version's features JSON; nullopt when it has none.
std::optional<std::vector<raw_record>> background_in_features(std::string_view features_json);

struct field_contribution {
    std::string field;
    double contribution = 0;
    double error = 0;  // the estimate's standard error (0 when exact)
};

struct explanation {
    double base_value = 0;  // the mean answer over the background rows used (each as often)
    double value = 0;       // the instance's answer: base_value + the contributions
    bool exact = false;     // every subset of fields evaluated
    std::size_t background_rows = 0;
    std::size_t samples = 0;      // sampled: orders evaluated (reversed pairs)
    std::size_t evaluations = 0;  // predictions made
    // false: the time limit cut it short (fewer rows or pairs than planned);
    // such an explanation still adds up but is neither exact nor as precise
    // as its errors say, so the API does not give it.
    bool complete = true;
    // One per field the version reads, the largest share (by magnitude) first.
    std::vector<field_contribution> contributions;
};

struct explain_options {
    std::size_t max_evaluations = 4096;
    double max_seconds = 1.0;
    std::uint64_t seed = 0;  // the same seed, instance and version: the same explanation
};

class explainer {
public:
    // Encodes and scores the background (at most max_cells encoded values:
    // a wide pipeline keeps fewer rows). invalid_argument when there is no
    // background row.
    static result<std::shared_ptr<const explainer>> build(
        std::shared_ptr<const model_artifact> artifact, const std::vector<raw_record>& background,
        std::size_t max_cells = std::size_t{1} << 21);

    // The encoded instance's explanation. `class_index`: for classification,
    // the class whose probability to explain (beyond the classes: none).
    explanation explain(const raw_record& instance, std::optional<std::size_t> class_index,
                        const explain_options& options) const;

    std::size_t background_rows() const { return background_.size(); }
    const std::vector<std::string>& fields() const { return fields_; }

private:
    explainer() = default;
    double output(const std::vector<double>& x, std::optional<std::size_t> class_index) const;

    std::shared_ptr<const model_artifact> artifact_;
    std::vector<std::string> fields_;                // sorted, each once
    std::vector<std::vector<std::size_t>> columns_;  // per field: its encoded columns
    std::vector<std::vector<double>> background_;    // encoded rows
    std::vector<prediction> background_answers_;     // the function's, per row
};

}  // namespace kennel::ml
