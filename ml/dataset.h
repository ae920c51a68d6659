// Label encoding and the deterministic holdout split: how raw labels become
// the numbers a trainer reads, and which entities are kept out of training.
//
// Pure functions over values: safe to call from any thread.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "ml/value.h"
#include "store/status.h"

namespace kennel::ml {

struct encoded_labels {
    // Regression: the target. Classification: the class index (0, 1, ...) as a
    // double, indexing classes.
    std::vector<double> y;
    // Classification: class names in index order; empty for regression.
    std::vector<std::string> classes;
};

// Encodes one label per row; the caller has already dropped unlabelled rows,
// so a missing label in the list is an error naming its row.
//   binary:     booleans (classes "false","true"), the numbers 0/1 (classes
//               "0","1") or exactly two strings (sorted, so "no","yes"). The
//               positive class is always index 1: true, 1 or the later string.
//   multiclass: strings (sorted) or integers (sorted numerically, named "3").
//   regression: finite numbers; an interval counts as its midpoint.
// Errors are failed_precondition with field "label": no labelled rows, one
// class only, a wrong or mixed label type (naming the type found), more classes
// than allowed (binary: 2, multiclass: max_classes).
// Names row i in an error ("entity p7, label fact 123"); "row i" without.
// `one_class_ok`: a single class is no error (the label prior, which only
// describes the labels, names classes as training would).
using row_namer = std::function<std::string(std::size_t)>;
// `positive` (binary): the class to put second, the one whose probability
// and metrics are reported; a class the labels lack is an error.
// Whether a number can name a class: a whole number a double holds exactly
// (|x| <= 2^53), written in full as training names it.
bool class_number(double x);

result<encoded_labels> encode_labels(task_kind task, const std::vector<raw_value>& labels,
                                     std::size_t max_classes = 50, const row_namer& name_row = {},
                                     bool one_class_ok = false,
                                     const std::optional<std::string>& positive = std::nullopt);

// Class names for a message: "\"a\", \"b\"", at most eight, each cut at 64
// bytes, then how many more. Labels are whatever the app sent: a list of all
// of them made a job's error of megabytes.
std::string quoted_classes(const std::vector<std::string>& classes);

// SQL expressions reading a class label as training reads one
// (ml/raw_json.cpp): the JSON type and the value of the field at `path` (a
// JSON path, or the parameter holding one) in the JSON text `data`, with a
// {"value": <number>, …} object's value in its place (another object's type
// is NULL).
std::string label_type_sql(std::string_view data, std::string_view path);
std::string label_value_sql(std::string_view data, std::string_view path);

// The entity's position in [0,1): fmix64(fnv1a64(entity)) / 2^64, rounded down
// to a double (for display; holdout_of compares the exact integer). fmix64
// (see ml/hash.h) evens out FNV-1a's poorly mixed high bits.
double unit_hash(std::string_view entity);

// True when the entity belongs to the holdout (evaluation) side: the same
// entity is always on the same side for the same share, whatever else is in
// the data set. share is clamped to [0,1].
bool holdout_of(std::string_view entity, double share);

// The rule holdout_of applies, to store with a model version, e.g.
// "fmix64(fnv1a64(entity)) / 2^64 < 0.2".
std::string holdout_rule(double share);

// How a definition chooses its holdout: by a hash of the entity (every
// entity on one side, whatever its time), or by time (the newest labels,
// so that the holdout asks how the model does on data newer than any it
// learned from: trends and drift show, where a random split hides them).
enum class split_by { entity, time };

// The holdout by time: the earliest label time on the holdout side, chosen
// so that the rows at or after it come closest to the newest `share` of
// `times` (rounded, at least one). Rows at one time are on one side, so the
// cut is one of two: one leaving min_train rows to train on and min_test
// to hold out wins over one that does not; else the closer; of two as
// close, the larger holdout, unless it would leave no row to train on.
// None for no times; times all equal: that time.
std::optional<std::int64_t> holdout_from_time(std::vector<std::int64_t> times, double share,
                                              std::size_t min_train = 0, std::size_t min_test = 0);

// The rule a time split applied, to store with a model version, e.g.
// "label time >= 2026-11-20T10:00:00Z (share 0.2 asked: 60 of 300 labelled
// rows)": `held` of `rows` at or after the cut.
std::string holdout_time_rule(std::int64_t from, double share, std::size_t held, std::size_t rows);

}  // namespace kennel::ml
