#include "server/fact_json.h"

#include "server/json_body.h"
#include "store/json_input.h"

#include <cctype>
#include <cmath>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string_view>

namespace kennel {

using json = nlohmann::json;

namespace {

constexpr std::size_t max_stream_len = 128;
constexpr std::size_t max_key_len = 256;
constexpr int max_depth = 16;

const char* type_name(const json& j) {
    switch (j.type()) {
        case json::value_t::null:
            return "null";
        case json::value_t::object:
            return "object";
        case json::value_t::array:
            return "array";
        case json::value_t::string:
            return "string";
        case json::value_t::boolean:
            return "boolean";
        case json::value_t::number_integer:
        case json::value_t::number_unsigned:
        case json::value_t::number_float:
            return "number";
        default:
            return "value";
    }
}

}  // namespace

std::string stream_name_problem(const std::string& stream) {
    if (valid_name(stream, max_stream_len)) return {};
    return "must be 1-128 characters of letters, digits, '_', '-' or '.', not \".\" or \"..\"";
}

std::string entity_problem(std::string_view entity) {
    if (entity.empty() || entity.size() > max_entity_bytes)
        return "must be 1-" + std::to_string(max_entity_bytes) + " bytes of UTF-8";
    if (entity.find('\0') != std::string_view::npos)
        return "must not contain a NUL character (\\u0000)";
    return {};
}

std::string query_entity_problem(std::string_view entity) {
    if (std::string problem = entity_problem(entity); !problem.empty()) return problem;
    // %FF named no entity a fact can have, and was answered an empty page.
    if (!is_utf8(entity))
        return "must be 1-" + std::to_string(max_entity_bytes) + " bytes of UTF-8";
    return {};
}

status check_uncertainty(const json& v, const std::string& path) {
    if (!v.is_object()) return status::ok();
    bool has_lower = v.contains("lower"), has_upper = v.contains("upper");
    if (has_lower || has_upper) {
        // An uncertainty interval: both bounds, numbers, lower <= upper.
        if (!has_lower || !has_upper) {
            return invalid(path, std::string("an interval needs both \"lower\" and \"upper\"; \"") +
                                     (has_lower ? "upper" : "lower") + "\" is missing");
        }
        const json& lo = v["lower"];
        const json& hi = v["upper"];
        if (!lo.is_number())
            return invalid(path + ".lower", std::string("must be a number, not ") + type_name(lo));
        if (!hi.is_number())
            return invalid(path + ".upper", std::string("must be a number, not ") + type_name(hi));
        // nlohmann's order: exact between two integers (as stored), past
        // 2^53 too, where doubles made 2^53 + 1 > 2^53 equal; by double otherwise.
        if (hi < lo) {
            return invalid(path,
                           "lower (" + lo.dump() + ") is greater than upper (" + hi.dump() + ")");
        }
    }
    if (v.contains("confidence")) {
        const json& c = v["confidence"];
        if (!c.is_number())
            return invalid(path + ".confidence",
                           std::string("must be a number, not ") + type_name(c));
        double cv = c.get<double>();
        if (cv < 0 || cv > 1) return invalid(path + ".confidence", "must be between 0 and 1");
        if (!has_lower && !v.contains("value")) {
            return invalid(path, "a confidence needs a \"value\" or \"lower\"/\"upper\" beside it");
        }
        if (v.contains("value") && !v["value"].is_number()) {
            return invalid(path + ".value",
                           std::string("must be a number, not ") + type_name(v["value"]));
        }
    }
    return status::ok();
}

namespace {

// Checks numbers are finite everywhere and that uncertainty objects are
// well-formed. `path` names the field for the error message: one buffer,
// grown and cut back as the walk goes down and up (a string per member made
// one or two allocations per field of every fact).
status check_value(const json& v, std::string& path, int depth) {
    if (depth > max_depth) return invalid(path, "nested deeper than " + std::to_string(max_depth));
    if (v.is_number_float() && !std::isfinite(v.get<double>())) {
        return invalid(path, "number is not finite (NaN and Infinity are not allowed)");
    }
    if (!v.is_array() && !v.is_object()) return status::ok();
    const std::size_t here = path.size();
    if (v.is_array()) {
        for (std::size_t i = 0; i < v.size(); ++i) {
            path.append("[").append(std::to_string(i)).append("]");
            if (status s = check_value(v[i], path, depth + 1); !s) return s;
            path.resize(here);
        }
        return status::ok();
    }
    for (const auto& [k, item] : v.items()) {
        path.append(".").append(k);
        if (status s = check_value(item, path, depth + 1); !s) return s;
        path.resize(here);
    }
    return check_uncertainty(v, path);
}

parsed_item parse_fact_object(const json& j, micros now) {
    parsed_item item;
    if (!j.is_object()) {
        item.error = invalid("", std::string("a fact must be a JSON object, not ") + type_name(j));
        return item;
    }
    static const char* known[] = {"stream", "entity",          "time",
                                  "data",   "idempotency_key", "corrects"};
    for (const auto& [k, v] : j.items()) {
        (void)v;
        bool ok = false;
        for (const char* name : known) ok = ok || k == name;
        if (!ok) {
            item.error = invalid(k,
                                 "unknown field; a fact has stream, entity, time, data, "
                                 "idempotency_key and corrects");
            return item;
        }
    }
    fact_input& f = item.fact;
    auto stream = j.find("stream");
    if (stream == j.end()) {
        item.error = invalid("stream", "missing");
        return item;
    }
    if (!stream->is_string()) {
        item.error = invalid("stream", std::string("must be a string, not ") + type_name(*stream));
        return item;
    }
    f.stream = stream->get<std::string>();
    if (auto problem = stream_name_problem(f.stream); !problem.empty()) {
        item.error = invalid("stream", problem);
        return item;
    }
    auto entity = j.find("entity");
    if (entity == j.end()) {
        item.error = invalid("entity", "missing");
        return item;
    }
    if (!entity->is_string()) {
        item.error = invalid("entity", std::string("must be a string, not ") + type_name(*entity));
        return item;
    }
    f.entity = entity->get<std::string>();
    if (std::string problem = entity_problem(f.entity); !problem.empty()) {
        item.error = invalid("entity", std::move(problem));
        return item;
    }
    f.event_time = now;
    f.time_given = false;
    if (auto t = j.find("time"); t != j.end() && !t->is_null()) {
        f.time_given = true;
        if (!t->is_string()) {
            item.error =
                invalid("time", std::string("must be an RFC 3339 string, not ") + type_name(*t));
            return item;
        }
        auto parsed = parse_rfc3339(t->get<std::string>());
        if (!parsed) {
            item.error = invalid(
                "time",
                "cannot parse \"" + t->get<std::string>() +
                    "\" as an RFC 3339 time in years 0000-9999 (UTC) such as 2026-11-20T10:00:00Z");
            return item;
        }
        f.event_time = *parsed;
    }
    auto data = j.find("data");
    if (data == j.end()) {
        item.error = invalid("data", "missing");
        return item;
    }
    if (!data->is_object()) {
        item.error = invalid("data", std::string("must be a JSON object, not ") + type_name(*data));
        return item;
    }
    std::string path;  // check_value's, its capacity kept from field to field
    for (const auto& [k, v] : data->items()) {
        if (k.empty()) {
            item.error = invalid("data", "field names must not be empty");
            return item;
        }
        // Stored, it could never be read: features, labels and totals refuse
        // such a name.
        if (std::string why = unreadable_field_name(k); !why.empty()) {
            item.error = invalid("data", why + " (the name " + json(k).dump() + ")");
            return item;
        }
        path.assign("data.").append(k);
        if (status s = check_value(v, path, 1); !s) {
            item.error = s;
            return item;
        }
    }
    // nlohmann's object keeps keys sorted, so this dump is canonical.
    f.data_json = data->dump(-1, ' ', false, json::error_handler_t::strict);
    if (auto c = j.find("corrects"); c != j.end() && !c->is_null()) {
        if (!c->is_number_integer() || c->get<std::int64_t>() <= 0) {
            item.error =
                invalid("corrects", "must be the positive integer id of the fact it corrects");
            return item;
        }
        f.corrects = c->get<std::int64_t>();
    }
    if (auto k = j.find("idempotency_key"); k != j.end() && !k->is_null()) {
        if (!k->is_string() || k->get<std::string>().empty() ||
            k->get<std::string>().size() > max_key_len) {
            item.error = invalid("idempotency_key", "must be a string of 1-256 bytes of UTF-8");
            return item;
        }
        f.idempotency_key = k->get<std::string>();
    } else {
        set_derived_key(f);
    }
    return item;
}

parsed_item parse_one_text(std::string_view text, micros now) {
    auto j = parse_json_input(text);
    if (!j) {
        parsed_item item;
        item.error = j.error();
        return item;
    }
    return parse_fact_object(*j, now);
}

}  // namespace

parsed_item parse_fact_text(const std::string& json_text, micros now) {
    return parse_one_text(json_text, now);
}

std::string_view ndjson_reader::line_at(std::size_t& pos) const {
    std::size_t end = body_.find('\n', pos);
    if (end == std::string::npos) end = body_.size();
    std::string_view line = std::string_view(body_).substr(pos, end - pos);
    pos = end + 1;
    return line;
}

std::size_t ndjson_reader::count() const {
    std::size_t n = 0;
    for (std::size_t pos = 0; pos <= body_.size();) n += !is_blank(line_at(pos));
    return n;
}

status ndjson_reader::check(const fact_limits& limits) const {
    std::size_t n = count();
    if (n > limits.max_items) {
        return status(error_kind::too_large, "more than " + std::to_string(limits.max_items) +
                                                 " facts in one request (--max-batch)");
    }
    if (n == 0) return invalid("", "the NDJSON body has no facts");
    return status::ok();
}

bool ndjson_reader::read(std::size_t n, std::vector<parsed_item>& out) {
    for (std::size_t taken = 0; taken < n && pos_ <= body_.size();) {
        std::string_view line = line_at(pos_);
        ++line_no_;
        if (is_blank(line)) continue;
        if (line.back() == '\r') line.remove_suffix(1);
        parsed_item item = parse_one_text(line, now_);
        item.index = items_++;
        item.line = line_no_;
        out.push_back(std::move(item));
        ++taken;
    }
    return pos_ <= body_.size();
}

result<parsed_body> parse_fact_body(const std::string& body, body_format format,
                                    const fact_limits& limits, micros now) {
    parsed_body out;
    if (format == body_format::ndjson) {
        ndjson_reader reader(body, now);
        if (status s = reader.check(limits); !s) return s;
        reader.read(SIZE_MAX, out.items);
        return out;
    }
    auto parsed = parse_json_input(body);
    if (!parsed) return parsed.error();
    const json& j = *parsed;
    if (j.is_object()) {
        out.single = true;
        out.items.push_back(parse_fact_object(j, now));
        return out;
    }
    if (!j.is_array()) {
        return invalid("",
                       std::string("the body must be a fact object or an array of facts, not ") +
                           type_name(j));
    }
    if (j.empty()) return invalid("", "the array has no facts");
    if (j.size() > limits.max_items) {
        return status(error_kind::too_large, "more than " + std::to_string(limits.max_items) +
                                                 " facts in one request (--max-batch)");
    }
    for (std::size_t i = 0; i < j.size(); ++i) {
        parsed_item item = parse_fact_object(j[i], now);
        item.index = i;
        out.items.push_back(std::move(item));
    }
    return out;
}

std::string fact_to_json(const fact& f) {
    json j = {{"id", f.id},
              {"stream", f.stream},
              {"entity", f.entity},
              {"time", format_rfc3339(f.event_time)},
              {"ingest_time", format_rfc3339(f.ingest_time)},
              {"idempotency_key", f.idempotency_key},
              {"data", json::parse(f.data_json)}};
    if (f.corrects) j["corrects"] = *f.corrects;
    return j.dump(-1, ' ', false, json::error_handler_t::replace);
}

std::string facts_to_ndjson_line(const fact& f) {
    return fact_to_json(f) + "\n";
}

}  // namespace kennel
