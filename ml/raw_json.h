// Converts a fact's stored JSON data (or a request's features) into the raw
// values the feature pipeline reads: numbers, booleans, strings, intervals
// ({"lower","upper"}; {"value", "confidence"} counts as its value). Other
// values (arrays, nested objects, null) become missing. Thread-safe.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "ml/value.h"
#include "store/status.h"

namespace kennel::ml {

// A fact's data as a record, every field read as training reads it.
// `unreadable`, if given, gets the fields whose value is not null yet reads as
// missing (an array, an object that is neither an interval nor a value with
// its confidence), each with what it is, as unreadable_field_reason says.
result<raw_record> raw_record_from_json(
    const std::string& json_object_text,
    std::vector<std::pair<std::string, std::string>>* unreadable = nullptr);
// Why a field present (not null) in the JSON text still reads as missing, as
// "an array" or "an object without \"lower\" and \"upper\" or \"value\"";
// empty when it does not.
std::string unreadable_field_reason(const std::string& text, const std::string& field);

raw_value raw_field_from_json(const std::string& json_object_text, const std::string& field);
// One JSON value's text (a number, an interval, ...) read as a field is.
raw_value raw_value_from_json(const std::string& json_value_text);
// The field's digits when it is an integer a double cannot hold exactly
// (beyond 2^53, where neighbours round together); empty otherwise.
std::string inexact_integer_field(const std::string& json_object_text, const std::string& field);

}  // namespace kennel::ml
