#include "server/json_body.h"

#include <cctype>
#include <charconv>

namespace kennel {

using json = nlohmann::json;

std::string dump_json(const json& j) { return j.dump(-1, ' ', false, json::error_handler_t::replace); }

std::string media_type(const http_request& req) {
    std::string ct = req.header("content-type");
    ct = ct.substr(0, ct.find(';'));
    while (!ct.empty() && ct.back() == ' ') ct.pop_back();
    for (char& c : ct) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return ct;
}

result<json> json_object_body(const http_request& req, bool allow_empty) {
    std::string mt = media_type(req);
    if (!mt.empty() && mt != "application/json") {
        return status(error_kind::unsupported_media,
                      "content type \"" + mt + "\" is not accepted; send application/json", "Content-Type");
    }
    if (req.body.empty() && allow_empty) return json::object();
    json j;
    try {
        j = json::parse(req.body);
    } catch (const json::exception& e) {
        return invalid("", std::string("malformed JSON: ") + e.what());
    }
    if (!j.is_object()) return invalid("", "the body must be a JSON object");
    return j;
}

result<json> reasoned_body(const http_request& req) {
    auto j = json_object_body(req, true);
    if (!j) return j;
    auto r = j->find("reason");
    if (r == j->end() || !r->is_string() || r->get<std::string>().empty()) {
        return invalid("reason", "say why: every action is recorded with its reason");
    }
    return j;
}

result<std::int64_t> parse_int(const std::string& field, const std::string& text, std::int64_t min,
                               std::int64_t max) {
    std::int64_t v = 0;
    auto [p, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
    if (ec != std::errc() || p != text.data() + text.size()) {
        return invalid(field, "\"" + text + "\" is not an integer");
    }
    if (v < min || v > max) {
        return invalid(field, "must be between " + std::to_string(min) + " and " + std::to_string(max));
    }
    return v;
}

bool valid_name(const std::string& s) {
    if (s.empty() || s.size() > 64) return false;
    for (unsigned char c : s) {
        if (!(std::isalnum(c) || c == '_' || c == '-' || c == '.')) return false;
    }
    return true;
}

}  // namespace kennel
