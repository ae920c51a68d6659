// Feature specs and the fitted feature pipeline: how a model turns a raw record
// into the fixed-length numeric vector its learned function reads.
//
// A pipeline is fitted once on the training rows (means, scales, vocabularies)
// and then never changes; it is stored inside the model artifact so that what
// was evaluated is byte for byte what is served. After fit() or load, every
// const member (transform, names, serialize) may be called from many threads at
// once: nothing is mutated or cached. Fitting is single-threaded.
//
// Transforms and their output columns (one name per column):
//   numeric    standardised (x - mean) / std; a missing value becomes the mean
//              (0 after scaling) and sets the 0/1 column missing-<field>.
//              Names: numeric-<field>, missing-<field>.
//   log        log1p(max(0, x)), then standardised; missing becomes the mean.
//              Name: log-<field>.
//   binarize   1 if x > params.threshold else 0 (missing: 0). binarized-<field>.
//   bucketize  one-hot over params.edges: (-inf,e0), [e0,e1), ..., [en,inf);
//              missing: all zeros. bucketized-<field>=[10,20).
//   category   one-hot over the params.top_n most frequent values seen at fit
//              (ties broken by value), then "other" (unseen values) and, when
//              params.missing_slot, "missing" (else missing counts as other).
//              Strings, booleans ("true"/"false") and numbers ("14") are
//              category values. category-<field>=<value>, category-<field>=other.
//   text       lowercase tokens split on ASCII non-alphanumerics (bytes >= 0x80
//              stay inside tokens so UTF-8 words survive), counted into
//              params.buckets buckets by fnv1a64(token) % buckets.
//              text-<field>#<bucket>.
//   boolean    true/false (or the numbers 0/1) as 1/0; missing becomes the share
//              of true in training. boolean-<field>.
//   interval   {lower, upper} as its standardised midpoint and, when
//              params.width, its standardised width; a plain number is a
//              zero-width interval; missing becomes the mean.
//              interval-<field>-mid, interval-<field>-width.
// Numeric transforms (numeric, log, binarize, bucketize) also accept an
// interval value and read its midpoint. A value of the wrong kind (a string
// for numeric) counts as missing; fit() fails only if a field that is present
// never has a usable kind. NaN and infinities count as missing.
#pragma once

#include <cstddef>
#include <iosfwd>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "ml/value.h"
#include "store/status.h"

namespace kennel::ml {

enum class transform_kind { numeric, log, binarize, bucketize, category, text, boolean, interval };

const char* transform_kind_name(transform_kind kind);
result<transform_kind> parse_transform_kind(std::string_view name);

// How the transforms read a raw value (nullopt: missing or of no usable
// kind). A number reads an interval's midpoint; a category reads strings,
// booleans ("true", "false") and finite numbers (shortest form, "14");
// a boolean reads true/false and the numbers 0/1.
std::optional<double> as_number(const raw_value& v);
std::optional<std::string> as_category(const raw_value& v);
std::optional<bool> as_boolean(const raw_value& v);

// One struct for every transform's parameters; each transform reads only its
// own fields and ignores the rest.
struct transform_params {
    double threshold = 0;       // binarize
    std::vector<double> edges;  // bucketize: finite, strictly increasing, non-empty
    std::size_t top_n = 50;     // category: vocabulary size
    bool missing_slot = true;   // category: missing gets its own column (else "other")
    std::size_t buckets = 64;   // text: hash buckets
    bool width = false;         // interval: also emit the width column
};

struct feature_spec {
    std::string field;
    transform_kind transform = transform_kind::numeric;
    transform_params params;
};

// Checks specs without data: names, parameter ranges, duplicates. The status
// field names the offending spec ("features[2].params.edges").
status validate_specs(const std::vector<feature_spec>& specs);
// Every problem of the specs, each naming its field (empty: valid).
std::vector<status> spec_problems(const std::vector<feature_spec>& specs);

class feature_pipeline {
  public:
    feature_pipeline() = default;

    // Learns means, scales and vocabularies from rows, then drops every output
    // column that is constant (including always missing) in those rows; each
    // drop adds a warning naming the column or feature and why. Fails with
    // invalid_argument for bad specs or a field that never has a usable type,
    // and with failed_precondition for no rows or when no column is left.
    static result<feature_pipeline> fit(const std::vector<feature_spec>& specs,
                                        const std::vector<raw_record>& rows,
                                        std::vector<std::string>* warnings = nullptr);

    // Always names().size() values. Missing or wrong-typed fields are imputed
    // as described above; unknown fields in the record are ignored.
    std::vector<double> transform(const raw_record& record) const;
    std::vector<std::vector<double>> transform_all(const std::vector<raw_record>& rows) const;

    const std::vector<std::string>& names() const { return names_; }
    std::size_t size() const { return names_.size(); }
    const std::vector<feature_spec>& specs() const { return specs_; }
    // The specs with at least one kept column: what a prediction reads (a
    // feature whose columns were all dropped reads nothing of its field).
    std::vector<feature_spec> used_specs() const;
    // The field each output column reads, in column order (one per name):
    // every transform reads one field, so a record's columns for a field
    // depend on that field's value alone.
    std::vector<std::string> column_fields() const;
    // The fields of the category features a prediction reads whose value in
    // `record` training never saw: scored as `other` (or as missing, when
    // training dropped `other`), so an answer can say so. In spec order;
    // empty for most records, and cheap (no allocation then).
    std::vector<std::string> unseen_categories(const raw_record& record) const;

    // A self-describing binary form (tag + format version + state) written
    // with dlib::serialize; loading it back gives identical transforms.
    void serialize(std::ostream& out) const;
    static result<feature_pipeline> deserialize(std::istream& in);
    std::string to_bytes() const;
    static result<feature_pipeline> from_bytes(std::string_view bytes);

    // What fit() learned for one spec; public so the .cpp's helpers can use it,
    // but callers should treat it as opaque.
    // features_[i] belongs to specs_[i].
    struct fitted_feature {
        double mean = 0, scale = 1;                             // numeric, log, interval midpoint
        double width_mean = 0, width_scale = 1;                 // interval width
        double fill = 0;                                        // boolean: share of true
        std::vector<std::string> vocabulary;                    // category, most frequent first
        std::map<std::string, std::size_t, std::less<>> index;  // vocabulary -> slot
    };

  private:
    std::vector<feature_spec> specs_;
    std::vector<fitted_feature> features_;
    std::vector<std::size_t> kept_;  // indices into the full (undropped) output
    std::vector<std::string> names_;
};

}  // namespace kennel::ml
