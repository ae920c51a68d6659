#include "ml/raw_json.h"

#include <cmath>
#include <cstdint>
#include <nlohmann/json.hpp>

namespace kennel::ml {
namespace {

using json = nlohmann::json;

raw_value convert(const json& v) {
    if (v.is_boolean()) return v.get<bool>();
    if (v.is_number()) {
        double d = v.get<double>();
        return std::isfinite(d) ? raw_value(d) : raw_value();
    }
    if (v.is_string()) return v.get<std::string>();
    if (v.is_object()) {
        auto lo = v.find("lower"), hi = v.find("upper");
        if (lo != v.end() && hi != v.end() && lo->is_number() && hi->is_number()) {
            return interval{lo->get<double>(), hi->get<double>()};
        }
        auto val = v.find("value");
        if (val != v.end() && val->is_number()) return val->get<double>();
    }
    return {};
}

}  // namespace

// What a value that reads as missing is, when it is not null.
static std::string unreadable_kind(const json& v) {
    if (v.is_null()) return "";
    if (v.is_array()) return "an array";
    if (v.is_object()) return "an object without \"lower\" and \"upper\" or \"value\"";
    return std::string("a ") + v.type_name() + " Kennel cannot read";
}

result<raw_record> raw_record_from_json(
    const std::string& text, std::vector<std::pair<std::string, std::string>>* unreadable) {
    json j;
    try {
        j = json::parse(text);
    } catch (const json::exception& e) {
        return invalid("data", std::string("malformed JSON: ") + e.what());
    }
    if (!j.is_object()) return invalid("data", "must be a JSON object");
    raw_record r;
    for (const auto& [k, v] : j.items()) {
        raw_value value = convert(v);
        if (unreadable && std::holds_alternative<std::monostate>(value) && !v.is_null())
            unreadable->emplace_back(k, unreadable_kind(v));
        r.emplace(k, std::move(value));
    }
    return r;
}

std::string unreadable_field_reason(const std::string& text, const std::string& field) {
    try {
        json j = json::parse(text);
        auto it = j.find(field);
        if (it == j.end() || !std::holds_alternative<std::monostate>(convert(*it))) return "";
        return unreadable_kind(*it);
    } catch (const json::exception&) {
        return "";
    }
}

raw_value raw_value_from_json(const std::string& text) {
    return convert(json::parse(text, nullptr, false));
}

raw_value raw_field_from_json(const std::string& text, const std::string& field) {
    try {
        json j = json::parse(text);
        auto it = j.find(field);
        if (it == j.end()) return {};
        return convert(*it);
    } catch (const json::exception&) {
        return {};
    }
}

std::string inexact_integer_field(const std::string& text, const std::string& field) {
    try {
        json j = json::parse(text);
        auto it = j.find(field);
        if (it == j.end() || !it->is_number_integer()) return {};
        constexpr std::uint64_t exact = std::uint64_t{1} << 53;
        const bool beyond = it->is_number_unsigned()
                                ? it->get<std::uint64_t>() > exact
                                : it->get<std::int64_t>() < -static_cast<std::int64_t>(exact) ||
                                      it->get<std::int64_t>() > static_cast<std::int64_t>(exact);
        return beyond ? it->dump() : std::string();
    } catch (const json::exception&) {
        return {};
    }
}

}  // namespace kennel::ml
