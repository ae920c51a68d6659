// Sign-in for the admin page, and API keys.
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cctype>
#include <map>

#include "server/app.h"
#include "server/auth.h"
#include "server/errors.h"
#include "server/handlers.h"
#include "server/json_body.h"
#include "store/auth_store.h"

namespace kennel {
namespace {

using json = nlohmann::json;

// The page was reached over HTTPS through a proxy in front of Kennel (which
// speaks plain HTTP): the proxy's X-Forwarded-Proto (its first value, the
// one the client used) or the standard Forwarded header says so.
bool reached_over_https(const http_request& req) {
    auto lower = [](std::string_view v) {
        std::string out(v);
        for (char& ch : out) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
        return out;
    };
    std::string proto = lower(req.header("x-forwarded-proto"));
    proto = proto.substr(0, proto.find(','));
    proto.erase(0, proto.find_first_not_of(" \t"));
    proto.erase(proto.find_last_not_of(" \t") + 1);
    if (proto == "https") return true;
    const std::string forwarded = lower(req.header("forwarded"));
    const std::string first = forwarded.substr(0, forwarded.find(','));
    for (std::size_t at = first.find("proto="); at != std::string::npos;
         at = first.find("proto=", at + 1)) {
        if ((at == 0 || first[at - 1] == ';' || first[at - 1] == ' ') &&
            first.compare(at + 6, 5, "https") == 0 &&
            (at + 11 == first.size() || first[at + 11] == ';' || first[at + 11] == ' ')) {
            return true;
        }
    }
    return false;
}

std::string session_cookie(const std::string& token, bool clear, bool secure) {
    // HttpOnly: page scripts cannot read it; SameSite=Strict: other sites'
    // requests do not carry it; Secure (reached over HTTPS): the browser
    // never sends it over plain HTTP, where anyone on the path could read it.
    return std::string(authenticator::cookie_name) + "=" + (clear ? "" : token) +
           "; Path=/; HttpOnly; SameSite=Strict" + (secure ? "; Secure" : "") +
           (clear ? "; Max-Age=0" : "; Max-Age=43200");
}

// Answers that hold a secret (a key, a session's CSRF token) or the list of
// keys: no cache, the browser's or a proxy's, keeps a copy.
http_response not_to_store(http_response r) {
    r.headers.emplace_back("Cache-Control", "no-store");
    return r;
}

json time_or_null(std::optional<micros> t) {
    return t ? json(format_rfc3339(*t)) : json(nullptr);
}

// `seen`: the keys' last uses as this server saw them (authenticator::
// key_uses), which may be newer than those written (once a minute).
json key_json(const api_key_row& k, micros now, const std::map<std::int64_t, micros>& seen = {}) {
    std::optional<micros> last_used = k.last_used_at;
    if (auto use = seen.find(k.id); use != seen.end() && (!last_used || use->second > *last_used))
        last_used = use->second;
    return {{"id", k.id},
            {"name", k.name},
            {"prefix", k.prefix},
            {"scopes", k.scopes},
            {"state", key_state_name(state_of(k, now))},
            {"created_at", format_rfc3339(k.created_at)},
            {"created_by", k.created_by},
            {"models", k.limits.models.empty() ? json(nullptr) : json(k.limits.models)},
            {"streams", k.limits.streams.empty() ? json(nullptr) : json(k.limits.streams)},
            {"expires_at", time_or_null(k.expires_at)},
            {"last_used_at", time_or_null(last_used)},
            {"revoked_at", time_or_null(k.revoked_at)},
            {"revoked_by", k.revoked_by ? json(*k.revoked_by) : json(nullptr)}};
}

// Sign-in and sign-out need no session, so no CSRF token guards them, and
// SameSite does not tell ports apart: a page on another port of this host
// signed the admin out with a form, or into another user's session with a
// fetch. A browser says whether a request came from this origin
// (Sec-Fetch-Site, which a reverse proxy does not disturb); an older one
// only names the page's origin, compared with the Host (or the proxy's
// X-Forwarded-Host). A script sends neither.
status from_this_origin(const http_request& req, const char* what) {
    const std::string_view site = req.header("sec-fetch-site");
    const std::string_view origin = req.header("origin");
    bool same = false;
    if (!site.empty()) {
        same = site == "same-origin" || site == "none";
    } else if (origin.empty()) {
        same = true;
    } else {
        for (const std::string_view host : {req.header("host"), req.header("x-forwarded-host")}) {
            if (host.empty()) continue;
            same = same || origin == "http://" + std::string(host) ||
                   origin == "https://" + std::string(host);
        }
    }
    if (same) return status::ok();
    return status(error_kind::forbidden,
                  std::string(what) + " from another origin (" +
                      (site.empty() ? "Origin " + std::string(origin)
                                    : "Sec-Fetch-Site: " + std::string(site)) +
                      ") is refused: use this server's own page");
}

}  // namespace

http_response post_auth_login(app& a, const http_request& req) {
    if (status s = from_this_origin(req, "a sign-in"); !s) return error_response(s);
    auto body = json_object_body(req, true);
    if (!body) return error_response(body.error());
    if (status s = only_known_fields(*body, "", {"username", "password"}); !s)
        return error_response(s);
    // Absent (or null) is "missing"; another type is named as such.
    auto user = optional_string(*body, "username", "", "username");
    if (!user) return error_response(user.error());
    if (user->empty()) return error_response(invalid("username", "missing"));
    if (auto p = body->find("password"); p == body->end() || p->is_null()) {
        return error_response(invalid("password", "missing"));
    }
    auto pass = optional_string(*body, "password", "", "password");
    if (!pass) return error_response(pass.error());
    auto s = a.auth().login(*user, *pass, req.remote_addr);
    if (!s) return error_response(s.error());
    http_response r = json_response(dump_json({{"user", s->user}, {"csrf_token", s->csrf}}));
    r.headers.emplace_back("Set-Cookie", session_cookie(s->token, false, reached_over_https(req)));
    return not_to_store(std::move(r));
}

http_response post_auth_logout(app& a, const http_request& req) {
    if (status s = from_this_origin(req, "a sign-out"); !s) return error_response(s);
    a.auth().logout(std::string(req.header("cookie")));
    http_response r = json_response(R"({"signed_out":true})");
    r.headers.emplace_back("Set-Cookie", session_cookie("", true, reached_over_https(req)));
    return r;
}

http_response get_auth_session(app& a, const http_request& req) {
    auto s = a.auth().session_from_cookie(std::string(req.header("cookie")));
    if (!s) return error_response(status(error_kind::unauthenticated, "not signed in"));
    return not_to_store(json_response(dump_json({{"user", s->user}, {"csrf_token", s->csrf}})));
}

http_response get_keys(app& a, const http_request& req) {
    auto asked = query_page(req, 100, 1000);
    if (!asked) return error_response(asked.error());
    std::vector<key_state> states;
    if (auto v = req.query_value("state")) {
        auto parsed = key_states_from(*v);
        if (!parsed) return error_response(parsed.error());
        states = std::move(*parsed);
    }
    const micros now = now_micros();
    key_list listed;
    {
        auto conn = a.readers().acquire();
        listed = list_api_keys(*conn, states, asked->limit, asked->before, now);
    }
    json next = next_before(listed.keys, *asked, true, [](const api_key_row& k) { return k.id; });
    const auto seen = a.auth().key_uses();
    json out = json::array();
    for (const auto& k : listed.keys) out.push_back(key_json(k, now, seen));
    return not_to_store(
        json_response(dump_json({{"keys", out}, {"count", listed.count}, {"next_before", next}})));
}

http_response get_key(app& a, const http_request& req) {
    auto id = parse_id("id", req.param("id"));
    if (!id) return error_response(id.error());
    std::optional<api_key_row> k;
    {
        auto conn = a.readers().acquire();
        k = get_api_key(*conn, *id);
    }
    if (!k) {
        return error_response(
            status(error_kind::not_found, "no API key with id " + std::to_string(*id), "id"));
    }
    return not_to_store(json_response(dump_json(key_json(*k, now_micros(), a.auth().key_uses()))));
}

http_response post_key(app& a, const http_request& req) {
    auto body = json_object_body(req, true);
    if (!body) return error_response(body.error());
    // An unknown member is refused: {"expires": "tomorrow"} must not make a
    // key that never expires look like one that does.
    if (status s =
            only_known_fields(*body, "", {"name", "scopes", "expires_at", "models", "streams"});
        !s)
        return error_response(s);
    key_limits limits;
    for (auto [field, names] :
         {std::pair{"models", &limits.models}, std::pair{"streams", &limits.streams}}) {
        auto it = body->find(field);
        if (it == body->end() || it->is_null()) continue;  // any
        if (!it->is_array() || it->empty() ||
            !std::all_of(it->begin(), it->end(), [](const json& v) { return v.is_string(); })) {
            return error_response(invalid(
                field, std::string("a list of ") + (names == &limits.models ? "model" : "stream") +
                           " names the key is limited to, or null (any)"));
        }
        for (const auto& v : *it) names->push_back(v.get<std::string>());
    }
    std::optional<micros> expires_at;
    if (auto e = body->find("expires_at"); e != body->end() && !e->is_null()) {
        std::optional<micros> t;
        if (e->is_string()) t = parse_rfc3339(e->get<std::string>());
        if (!t) {
            return error_response(
                invalid("expires_at",
                        "must be a time in RFC 3339 form, such as 2027-01-31T00:00:00Z, "
                        "or null (the key never expires)"));
        }
        expires_at = t;
    }
    auto name_field = optional_string(*body, "name", "", "name");
    if (!name_field) return error_response(name_field.error());
    const std::string name = std::move(*name_field);
    std::vector<std::string> scopes;
    auto sc = body->find("scopes");
    if (sc == body->end() || !sc->is_array()) {
        return error_response(invalid("scopes", "an array of read, ingest, predict, admin"));
    }
    for (const auto& s : *sc) {
        if (!s.is_string()) return error_response(invalid("scopes", "must hold strings"));
        scopes.push_back(s.get<std::string>());
    }
    if (status s = check_key_limits(scopes, limits); !s) return error_response(s);
    std::optional<new_key> created;
    status s = a.writer().run(
        [&](connection& c) {
            auto k = create_api_key(c, name, scopes, req.actor.empty() ? "api" : req.actor,
                                    expires_at, limits);
            if (!k) return k.error();
            created = std::move(*k);
            return status::ok();
        },
        a.write_timeout());
    if (!s) return error_response(s);
    json out = key_json(created->row, created->row.created_at);
    out["key"] = created->key;  // shown once; only its hash is stored
    http_response answer = not_to_store(json_response(dump_json(out), 201));  // it holds the key
    answer.headers.emplace_back("Location", "/v1/keys/" + std::to_string(created->row.id));
    return answer;
}

http_response delete_key(app& a, const http_request& req) {
    // As every other id in a path says what is wrong with it.
    auto id = parse_id("id", req.param("id"));
    if (!id) return error_response(id.error());
    bool changed = false;
    status s = a.writer().run(
        [&](connection& c) {
            auto r = revoke_api_key(c, *id, req.actor.empty() ? "api" : req.actor);
            if (!r) return r.error();
            changed = *r;
            return status::ok();
        },
        a.write_timeout());
    if (!s) return error_response(s);
    a.auth().forget_keys();
    return json_response(dump_json({{"id", *id}, {"revoked", true}, {"changed", changed}}));
}

}  // namespace kennel
