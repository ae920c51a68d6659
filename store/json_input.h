// Reading JSON that comes from outside: request bodies, import lines, model
// definitions. One parse for all of them, so that every edge refuses the
// same things the same way. Pure functions: thread-safe.
#pragma once

#include <cstddef>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "store/status.h"

namespace kennel {

// The text as JSON. Unlike nlohmann::json::parse, an object that names a key
// twice is refused: nlohmann keeps the last, so {"label":1,"label":0} would
// be stored, trained on or scored as whichever came second, without a word.
// A 400 (invalid_argument) either way:
//   - malformed JSON: "malformed JSON: <nlohmann's message>", the field
//     named when the problem is a value JSON cannot hold (1e999, NaN);
//   - a repeated key: "the key \"x\" appears twice in one object", the
//     field naming it ("features.x", "instances[2].features.x").
result<nlohmann::json> parse_json_input(std::string_view text);

// Where a JSON text stops parsing, as a field path ("features.x1",
// "instances[1].features.x2", "[3].data.likes"); empty when it parses or the
// problem is before any field. Used to name the field of a value such as
// 1e999 (valid JSON grammar that overflows a double) or NaN, or of a key
// given twice.
std::string json_error_path(std::string_view text);

// Where an object's "instances" array stops parsing: the index of the
// element, or none when the error is elsewhere. Read from the parse itself,
// not the path, which a key such as "[7]" or "instances[]" can imitate.
std::optional<std::size_t> json_error_instance(std::string_view text);

// Whether the bytes are UTF-8 (what JSON text holds).
bool is_utf8(std::string_view s);
// The code point that starts at s[i], and i moved past it; none for bytes
// that are not UTF-8 (a stray continuation, a truncated or overlong form, a
// surrogate, past U+10FFFF).
std::optional<char32_t> next_code_point(std::string_view s, std::size_t& i);
// A character that turns the direction of the text after it (U+202E:
// "\u202egpj.exe" reads as "exe.jpg").
bool turns_direction(char32_t ch);

// What makes a name or a reason a person gave unusable as shown text: not
// UTF-8, a control character (a line break forges log lines; kept where
// line_breaks allows "\n" and "\t"), a character that turns the text's
// direction ("\u202egpj.exe" reads as "exe.jpg"), or nothing but blanks and
// invisible characters (NUL is a control; U+00A0, U+200B are blanks).
// Also counts the characters.
enum class text_issue { none, not_utf8, control, direction, blank };
struct text_check {
    text_issue issue = text_issue::none;
    std::size_t chars = 0;
    // The first or the last character is a blank or an invisible one: a
    // name that reads the same as one without it.
    bool blank_at_edge = false;
};
text_check check_text(std::string_view s, bool line_breaks);

// "a,b,,c" -> {"a", "b", "", "c"}: each field between commas, empty ones
// kept, as views into `s` (a list of states refuses an empty one).
std::vector<std::string_view> comma_fields(std::string_view s);
// The fields that are not empty, as strings (scopes, model and stream names).
std::vector<std::string> comma_names(std::string_view s);

}  // namespace kennel
