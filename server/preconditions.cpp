#include "server/preconditions.h"

#include "server/http_server.h"

namespace kennel {
namespace {

bool is_space(char c) {
    return c == ' ' || c == '\t';
}

// An entity tag's characters (RFC 9110 etagc): visible ASCII but the quote,
// and bytes above 0x7f.
bool is_etagc(unsigned char c) {
    return c == 0x21 || (c >= 0x23 && c != 0x7f);
}

// Adds one header line's list to `out`; false if it is not a list of tags.
bool parse_line(std::string_view v, preconditions::tag_list& out) {
    std::size_t i = 0;
    auto skip_space = [&] {
        while (i < v.size() && is_space(v[i])) ++i;
    };
    skip_space();
    std::size_t end = v.size();
    while (end > i && is_space(v[end - 1])) --end;
    if (v.substr(i, end - i) == "*") {
        out.any = true;
        return true;
    }
    bool any_tag = false;
    while (i < end) {
        if (v[i] == ',') {  // empty list elements are allowed
            ++i;
            skip_space();
            continue;
        }
        bool weak = false;
        if (v.substr(i, 2) == "W/") {
            weak = true;
            i += 2;
        }
        if (i >= end || v[i] != '"') return false;
        const std::size_t start = ++i;
        while (i < end && is_etagc(static_cast<unsigned char>(v[i]))) ++i;
        if (i >= end || v[i] != '"') return false;
        out.tags.emplace_back(v.substr(start, i - start));
        out.weak.push_back(weak);
        any_tag = true;
        ++i;
        skip_space();
        if (i < end && v[i] != ',') return false;
    }
    return any_tag;
}

std::string quoted_list(const preconditions::tag_list& l) {
    std::string out;
    for (std::size_t i = 0; i < l.tags.size(); ++i) {
        if (i) out += ", ";
        if (l.weak[i]) out += "W/";
        out += quoted_etag(l.tags[i]);
    }
    return out;
}

}  // namespace

result<preconditions> read_preconditions(const http_request& req) {
    preconditions p;
    for (const auto& [name, value] : req.headers) {
        preconditions::tag_list* l = name == "if-match"        ? &p.if_match
                                     : name == "if-none-match" ? &p.if_none_match
                                                               : nullptr;
        if (!l) continue;
        const char* shown = l == &p.if_match ? "If-Match" : "If-None-Match";
        l->present = true;
        if (!parse_line(value, *l) || (l->any && !l->tags.empty())) {
            return status(error_kind::invalid_argument,
                          std::string(shown) +
                              " takes \"*\" or a list of quoted entity tags, such as \"r3\" as "
                              "sent in the resource's ETag header",
                          shown);
        }
    }
    return p;
}

status check_preconditions(const preconditions& p, const std::optional<std::string>& current,
                           std::string_view what) {
    const std::string subject(what);
    if (p.if_match.present) {
        bool holds = current.has_value() && p.if_match.any;
        // Strong comparison: a weak tag never matches.
        for (std::size_t i = 0; current && !holds && i < p.if_match.tags.size(); ++i) {
            holds = !p.if_match.weak[i] && p.if_match.tags[i] == *current;
        }
        if (!holds) {
            if (!current) {
                return status(error_kind::stale, subject + " does not exist (If-Match)",
                              "If-Match");
            }
            return status(error_kind::stale,
                          subject + " is now " + quoted_etag(*current) + ", not " +
                              (p.if_match.any ? std::string("*") : quoted_list(p.if_match)) +
                              " (If-Match): it changed since it was read",
                          "If-Match");
        }
    }
    if (p.if_none_match.present && current) {
        bool matched = p.if_none_match.any;
        // Weak comparison: W/"r3" names "r3" too.
        for (std::size_t i = 0; !matched && i < p.if_none_match.tags.size(); ++i) {
            matched = p.if_none_match.tags[i] == *current;
        }
        if (matched) {
            return status(error_kind::stale,
                          subject + (p.if_none_match.any ? " exists already, as " : " is still ") +
                              quoted_etag(*current) + " (If-None-Match)",
                          "If-None-Match");
        }
    }
    return status::ok();
}

status check_alias_preconditions(const preconditions& p, std::optional<std::int64_t> version,
                                 const std::string& model, const std::string& alias,
                                 std::optional<std::string>& etag_now) {
    if (p.empty()) return status::ok();
    if (version) etag_now = alias_etag(*version);
    return check_preconditions(p, etag_now, "alias " + alias + " of model " + model);
}

std::string quoted_etag(std::string_view opaque) {
    std::string out;
    out.reserve(opaque.size() + 2);
    out += '"';
    out += opaque;
    out += '"';
    return out;
}

void set_etag(http_response& r, std::string_view opaque) {
    r.headers.emplace_back("ETag", quoted_etag(opaque));
}

http_response with_etag(http_response r, const std::optional<std::string>& opaque) {
    if (opaque) set_etag(r, *opaque);
    return r;
}

std::string revision_etag(std::int64_t revision) {
    return "r" + std::to_string(revision);
}
std::string alias_etag(std::int64_t version) {
    return "v" + std::to_string(version);
}
std::string experiment_etag(std::int64_t changes) {
    return "e" + std::to_string(changes);
}

}  // namespace kennel
