#include "server/json_body.h"

#include <algorithm>
#include <cctype>
#include <charconv>

#include "store/sha256.h"
#include "store/time_util.h"

namespace kennel {

using json = nlohmann::json;

std::string dump_json(const json& j) {
    return j.dump(-1, ' ', false, json::error_handler_t::replace);
}

std::string media_type(const http_request& req) {
    std::string_view v = req.header("content-type");
    v = v.substr(0, v.find(';'));
    while (!v.empty() && v.back() == ' ') v.remove_suffix(1);
    std::string ct(v);
    for (char& c : ct) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return ct;
}

status check_json_media_type(const http_request& req) {
    // The common answer without building a string (a per-request allocation).
    if (req.header("content-type") == "application/json") return status::ok();
    std::string mt = media_type(req);
    if (!mt.empty() && mt != "application/json") {
        return status(error_kind::unsupported_media,
                      "content type \"" + mt + "\" is not accepted; send application/json",
                      "Content-Type");
    }
    return status::ok();
}

result<json> json_object_body(const http_request& req, bool allow_empty) {
    if (status s = check_json_media_type(req); !s) return s;
    if (req.body.empty() && allow_empty) return json::object();
    return json_object_of(req.body);
}

status empty_body(const std::string& what) {
    return invalid("", "the request body is empty; send " + what + " with a Content-Length");
}

result<json> json_object_of(const std::string& text) {
    if (text.empty()) return empty_body("a JSON object");
    auto j = parse_json_input(text);
    if (j && !j->is_object()) return invalid("", "the body must be a JSON object");
    return j;
}

bool is_blank(std::string_view s) {
    return s.find_first_not_of(" \t\r\n") == std::string_view::npos;
}

// Bytes of UTF-8: a few sentences in any script.
constexpr std::size_t max_reason_bytes = 2000;

status check_reason(const json& body, const std::string& when_blank) {
    auto r = body.find("reason");
    if (r != body.end() && !r->is_null() && !r->is_string()) {
        return invalid("reason", std::string("must be a string, not ") + r->type_name());
    }
    const text_check text = r != body.end() && r->is_string()
                                ? check_text(r->get_ref<const std::string&>(), true)
                                : text_check{text_issue::blank, 0};
    // "\u0000", "\u00a0" or "\u200b" alone once passed as a reason.
    if (text.issue == text_issue::blank) return invalid("reason", when_blank);
    // A reason is repeated wherever its action is shown: a 1 MB one made
    // every 404 of an archived model 1 MB, and every list that names it.
    if (const auto& s = r->get_ref<const std::string&>(); s.size() > max_reason_bytes) {
        return invalid("reason", "at most " + std::to_string(max_reason_bytes) +
                                     " bytes (this one has " + std::to_string(s.size()) +
                                     "): say why in a sentence or two");
    }
    if (text.issue != text_issue::none) {
        return invalid("reason",
                       "a reason is shown and logged as text: no control characters but line "
                       "breaks and tabs, and none that turn the text's direction");
    }
    return status::ok();
}

result<std::string> optional_reason(const json& body) {
    auto r = body.find("reason");
    if (r == body.end() || r->is_null()) return std::string();
    if (status s = check_reason(body, ""); !s) {
        if (s.message().empty()) return std::string();  // blank: none given
        return s;
    }
    return r->get<std::string>();
}

result<json> reasoned_body(const http_request& req,
                           std::initializer_list<std::string_view> others) {
    auto j = json_object_body(req, true);
    if (!j) return j;
    if (status s = check_reason(*j, "say why: every action is recorded with its reason"); !s)
        return s;
    std::vector<std::string_view> known{"reason"};
    known.insert(known.end(), others.begin(), others.end());
    if (status s = only_known_fields(*j, "", known); !s) return s;
    return j;
}

result<std::string> optional_string(const json& obj, const std::string& key, std::string fallback,
                                    const std::string& path) {
    auto it = obj.find(key);
    if (it == obj.end() || it->is_null()) return fallback;
    if (!it->is_string()) return invalid(path, "must be a string");
    return it->get<std::string>();
}

result<bool> optional_bool(const json& obj, const std::string& key, bool fallback,
                           const std::string& path) {
    auto it = obj.find(key);
    if (it == obj.end() || it->is_null()) return fallback;
    if (!it->is_boolean()) return invalid(path, "must be true or false");
    return it->get<bool>();
}

status only_known_fields(const json& obj, const std::string& path,
                         std::span<const std::string_view> known) {
    for (const auto& [k, v] : obj.items()) {
        (void)v;
        if (std::find(known.begin(), known.end(), k) != known.end()) continue;
        std::string list;
        for (std::string_view n : known) list += (list.empty() ? "" : ", ") + std::string(n);
        return invalid(path.empty() ? k : path + "." + k, "unknown field; known: " + list);
    }
    return status::ok();
}

result<page> query_page(const http_request& req, int default_limit, int max_limit) {
    int limit = default_limit;
    std::optional<std::int64_t> before;
    if (auto v = req.query_value("limit")) {
        auto n = parse_int("limit", *v, 1, max_limit);
        if (!n) return n.error();
        limit = static_cast<int>(*n);
    }
    if (auto v = req.query_value("before")) {
        auto n = parse_id("before", *v);
        if (!n) return n.error();
        before = *n;
    }
    return page(limit + 1, before);
}

std::string cursor_tag(std::initializer_list<std::string_view> list) {
    std::string joined;
    for (std::string_view part : list) {
        joined += part;
        joined += '\0';
    }
    return sha256_hex(joined).substr(0, 8);
}

result<std::string> cursor_position(std::string_view cursor, std::string_view tag) {
    const std::size_t mark = cursor.rfind('~');
    if (mark == std::string_view::npos) {
        return invalid("cursor",
                       "malformed cursor: send a page's next_cursor as it came (one "
                       "from before cursors named their list is not taken: list "
                       "again without a cursor)");
    }
    if (cursor.substr(mark + 1) != tag) {
        return invalid("cursor",
                       "this cursor continues another list (another stream or model, entity or "
                       "order): send it with the query of the page that gave it");
    }
    return std::string(cursor.substr(0, mark));
}

result<std::int64_t> parse_int(const std::string& field, const std::string& text, std::int64_t min,
                               std::int64_t max) {
    std::int64_t v = 0;
    auto [p, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
    if (ec == std::errc::result_out_of_range && p == text.data() + text.size()) {
        return invalid(field,
                       "must be between " + std::to_string(min) + " and " + std::to_string(max));
    }
    if (ec != std::errc() || p != text.data() + text.size()) {
        return invalid(field, "\"" + text + "\" is not an integer");
    }
    if (v < min || v > max) {
        return invalid(field,
                       "must be between " + std::to_string(min) + " and " + std::to_string(max));
    }
    return v;
}

bool valid_name(const std::string& s, std::size_t max_size) {
    if (s.empty() || s.size() > max_size) return false;
    // Clients and browsers collapse "." and ".." in a URL's path: such a
    // model or stream could never be reached by name.
    if (s == "." || s == "..") return false;
    for (unsigned char c : s) {
        if (!(std::isalnum(c) || c == '_' || c == '-' || c == '.')) return false;
    }
    return true;
}

result<std::optional<std::int64_t>> query_time(const http_request& req, const std::string& name) {
    auto v = req.query_value(name);
    if (!v) return std::optional<std::int64_t>{};
    auto t = parse_rfc3339(*v);
    // "HH:MM" after a space that ends the time of day: a "+" decoded as one.
    // Not the space that may stand between date and time (at 10; the time
    // of day ends at 19 at the earliest).
    if (const std::size_t sp = v->rfind(' ');
        !t && sp != std::string::npos && sp >= 19 && sp + 6 == v->size()) {
        std::string plus = *v;
        plus[sp] = '+';
        t = parse_rfc3339(plus);
    }
    if (!t)
        return invalid(
            name,
            "cannot parse \"" + *v +
                "\" as an RFC 3339 time in years 0000-9999 (UTC) such as 2026-11-20T10:00:00Z");
    return std::optional<std::int64_t>{*t};
}

}  // namespace kennel
