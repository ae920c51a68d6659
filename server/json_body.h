// Small helpers every handler shares at the JSON edge: reading a JSON object
// body (with the content-type check), ids from paths, names, and writing
// JSON without ever throwing on bad UTF-8. Pure functions: thread-safe.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <nlohmann/json.hpp>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "server/http_server.h"
#include "store/json_input.h"
#include "store/registry.h"
#include "store/status.h"

namespace kennel {

// Serialises for a response; invalid UTF-8 is replaced, never thrown.
std::string dump_json(const nlohmann::json& j);

// The media type without parameters, lowercased ("application/json").
std::string media_type(const http_request& req);

// 415 unless the content type is JSON (none is taken as JSON).
status check_json_media_type(const http_request& req);

// 400: the request's body is empty where `what` was to be sent. A request
// without a Content-Length has no body (RFC 9112, 6.3), e.g. curl -X POST
// without -d.
status empty_body(const std::string& what);

// A JSON text that must be an object: 400 for malformed JSON (naming the
// field of a value JSON cannot hold), another value or an empty text.
result<nlohmann::json> json_object_of(const std::string& text);

// The body as a JSON object. 415 for another content type (none is taken as
// JSON), 400 for malformed JSON or a non-object. An empty body is {} when
// allow_empty.
result<nlohmann::json> json_object_body(const http_request& req, bool allow_empty);

// As json_object_body, and the object must carry a "reason" that is not
// blank (every action on versions, aliases and experiments is recorded with
// why) and no member but "reason" and `others`.
result<nlohmann::json> reasoned_body(const http_request& req,
                                     std::initializer_list<std::string_view> others = {});

// Only JSON whitespace (space, tab, CR, LF), or empty: a reason that says
// nothing, an NDJSON line that holds no fact.
bool is_blank(std::string_view s);

// body["reason"] is text a person wrote: present, a string, not blank
// (`when_blank` says so), without control (but line breaks) or
// text-direction characters.
status check_reason(const nlohmann::json& body, const std::string& when_blank);
// An optional body["reason"] (train, cancel): "" when absent, null or
// blank; else as check_reason.
result<std::string> optional_reason(const nlohmann::json& body);

// An optional member of an object: `fallback` when absent or null, else it
// must be of the type asked (a 400 naming `path` otherwise, not the 500 that
// nlohmann's value() would throw into).
result<std::string> optional_string(const nlohmann::json& obj, const std::string& key,
                                    std::string fallback, const std::string& path);
result<bool> optional_bool(const nlohmann::json& obj, const std::string& key, bool fallback,
                           const std::string& path);

// invalid_argument naming the first member of `obj` not in `known`
// ("arms[1].shadw"): a misspelt field must not silently become a default.
status only_known_fields(const nlohmann::json& obj, const std::string& path,
                         std::span<const std::string_view> known);
inline status only_known_fields(const nlohmann::json& obj, const std::string& path,
                                std::initializer_list<std::string_view> known) {
    return only_known_fields(obj, path,
                             std::span<const std::string_view>(known.begin(), known.size()));
}

// An integer in [min, max] from a path segment or query value.
result<std::int64_t> parse_int(const std::string& field, const std::string& text, std::int64_t min,
                               std::int64_t max);
inline result<std::int64_t> parse_id(const std::string& field, const std::string& text) {
    return parse_int(field, text, 1, INT64_MAX);
}

// A paged list's ?limit= (1 to max_limit; default_limit when absent) and
// ?before= (an id or number: the page goes on below it). The page asks the
// store for one row more (limit + 1), so that next_before can tell a full
// last page from one with more after it.
result<page> query_page(const http_request& req, int default_limit, int max_limit);

// A cursor (a list's next_cursor) is "<position>~<tag>": the tag names the
// list that gave it (cursor_tag of what the list is: its stream or model,
// its entity, its order), so a cursor sent to another list is a 400 naming
// `cursor`, not a silently wrong page. cursor_position returns the position
// part of a cursor whose tag is `tag`.
std::string cursor_tag(std::initializer_list<std::string_view> list);
result<std::string> cursor_position(std::string_view cursor, std::string_view tag);

// Drops the extra row a query_page read may hold, and returns the `before`
// of the next page: the key of the oldest row kept, or null on the last
// page. `rows` is newest first, or oldest first when !newest_first.
template <class Row, class Key>
nlohmann::json next_before(std::vector<Row>& rows, const page& asked, bool newest_first, Key key) {
    const auto limit = static_cast<std::size_t>(asked.limit - 1);
    if (rows.size() <= limit) return nullptr;
    if (newest_first) {
        rows.resize(limit);
    } else {
        rows.erase(rows.begin(), rows.begin() + static_cast<std::ptrdiff_t>(rows.size() - limit));
    }
    if (rows.empty()) return nullptr;
    return key(newest_first ? rows.back() : rows.front());
}

// Model and alias names (and, up to 128, stream names): 1-64 letters,
// digits, '_', '-' or '.', but not "." or "..".
bool valid_name(const std::string& s, std::size_t max_size = 64);

// Who is asking, for the records (set by authentication).
// A time in the query string (none when absent). A "+" offset sent
// unescaped arrives as a space (form encoding): "...T10:00:00 01:00" is
// read as "+01:00".
result<std::optional<std::int64_t>> query_time(const http_request& req, const std::string& name);

inline std::string actor_of(const http_request& req) {
    return req.actor.empty() ? "api" : req.actor;
}

}  // namespace kennel
