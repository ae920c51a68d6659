// The JSON edge for model definitions: parse and validate a definition (every
// problem reported by field), and write it back in canonical form (defaults
// filled in, keys sorted) so that equal definitions are equal strings and a
// change makes a new revision. Thread-safe.
#pragma once

#include <string>
#include <vector>

#include "ml/definition.h"
#include "store/status.h"

namespace kennel {

class connection;

struct field_error {
    std::string field;
    std::string message;
};

struct parsed_definition {
    ml::model_definition definition;
    std::vector<field_error> errors;
    // The text was a JSON object: its errors are about its fields, and the
    // checks beyond syntax can run on what was read.
    bool object = false;
};

parsed_definition parse_definition(const std::string& json_text);
std::string canonical_definition_json(const ml::model_definition& d);
// A decision rule as the definition writes it: {"rule": "min_precision", "target": 0.9}.
std::string decision_policy_json(const ml::decision_policy& p);
// The sections of a definition no version depends on: how it is served and
// watched, and when it is retrained. A change of these alone neither holds
// back a job's version nor ends a canary.
inline constexpr const char* operational_sections[] = {"serving", "supervision", "retrain"};
// Whether two stored definitions train and gate a version alike: equal but
// for their operational_sections (false when either is not a JSON object).
bool trains_alike(const std::string& before, const std::string& after);

// Training parameters as the definition writes them (a job's record too).
std::string train_params_json(const ml::train_params& p);

// Rules for a definition about to be stored, beyond its syntax (appended to
// errors). Apart from parse_definition, which also reads stored definitions:
// one stored before a rule existed must still be served and trained.
void check_new_definition(const ml::model_definition& d, std::vector<field_error>& errors);

// Checks the definition against the facts it names: the streams exist, the
// label and feature fields occur, the label's type suits the task. Appends
// to errors.
void check_definition_against_data(connection& reader, const ml::model_definition& d,
                                   std::vector<field_error>& errors);

// A status carrying the first error, for the one error shape; the full list
// is rendered by field_errors_json.
std::string field_errors_json(const std::vector<field_error>& errors);

}  // namespace kennel
