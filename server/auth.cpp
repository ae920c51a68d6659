#include "server/auth.h"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <algorithm>
#include <iterator>
#include <thread>

#include "server/errors.h"
#include "server/json_body.h"
#include "store/log.h"
#include "store/sha256.h"

namespace kennel {
namespace {

using steady = std::chrono::steady_clock;

// Whether an Authorization header uses `scheme` (given in lower case): the
// scheme is case-insensitive (RFC 9110, 11.1), "bearer knl_..." included.
bool has_scheme(std::string_view auth, std::string_view scheme) {
    if (auth.size() <= scheme.size() || auth[scheme.size()] != ' ') return false;
    for (std::size_t i = 0; i < scheme.size(); ++i) {
        if ((auth[i] | 0x20) != scheme[i]) return false;
    }
    return true;
}

// What follows the scheme: one space or more (RFC 9110, 11.4; "Basic  x"
// was "malformed Basic credentials").
std::string_view credentials_after(std::string_view auth, std::string_view scheme) {
    std::string_view rest = auth.substr(scheme.size());
    while (!rest.empty() && rest.front() == ' ') rest.remove_prefix(1);
    return rest;
}

constexpr auto key_cache_ttl = std::chrono::seconds(5);
// Anyone may send a Bearer token, known or not, and each distinct one is
// cached (an unknown key as null, so a flood of them does not reach SQLite
// every time): the cache must not grow with what strangers send.
constexpr std::size_t max_cached_keys = 1024;
constexpr auto session_lifetime = std::chrono::hours(12);
constexpr int failures_before_lockout = 5;
// Failed sign-ins are counted per user name and per address, both chosen by
// whoever sends them: the record must not grow with what strangers send
// (password_check_limits::tracked_failures bounds it).
// The longest lockout: a record idle for longer has nothing left to enforce.
constexpr auto longest_lockout = std::chrono::seconds(30LL << 5);

// How long a user's successful sign-in from an address exempts that address
// from the user's lockout.
constexpr auto trusted_for = std::chrono::hours(24 * 30);

// The throttle's key for a user name or an address: a long name (a header
// may hold kilobytes) is kept by its hash, so each record stays small.
std::string failure_key(std::string_view kind, std::string_view name) {
    std::string out(kind);
    out += ':';
    if (name.size() <= 64) {
        out += name;
    } else {
        out += "sha256-" + sha256_hex(name);
    }
    return out;
}

// The address as the throttle counts it: an IPv6 address by its /64, which
// one client usually holds whole (a host picks new addresses in it at will,
// so counted one by one, its guesses never locked its address out); IPv4,
// and IPv4 mapped into IPv6, whole.
std::string address_block(const std::string& addr) {
    in6_addr a{};
    if (addr.find(':') == std::string::npos || inet_pton(AF_INET6, addr.c_str(), &a) != 1 ||
        IN6_IS_ADDR_V4MAPPED(&a))
        return addr;
    std::fill(std::begin(a.s6_addr) + 8, std::end(a.s6_addr), 0);
    char text[INET6_ADDRSTRLEN] = {};
    inet_ntop(AF_INET6, &a, text, sizeof text);
    return std::string(text) + "/64";
}

std::string address_key(const std::string& addr) {
    return failure_key("addr", address_block(addr));
}

// A user name as sent, for one log line: a long one is cut. Its control
// characters (a forged line break) are written escaped by the log itself,
// `\n`, `\xNN`, as every message's are (they became '?', which hid what was
// sent, unlike operations.md says).
std::string loggable(std::string_view name) {
    return std::string(name.substr(0, 64));
}

std::optional<std::string> base64_decode(const std::string& in) {
    auto val = [](char c) -> int {
        if (c >= 'A' && c <= 'Z') return c - 'A';
        if (c >= 'a' && c <= 'z') return c - 'a' + 26;
        if (c >= '0' && c <= '9') return c - '0' + 52;
        if (c == '+') return 62;
        if (c == '/') return 63;
        return -1;
    };
    std::string out;
    int buf = 0, bits = 0;
    for (char c : in) {
        if (c == '=') break;
        int v = val(c);
        if (v < 0) return std::nullopt;
        buf = (buf << 6) | v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out.push_back(static_cast<char>((buf >> bits) & 0xff));
        }
    }
    return out;
}

std::string cookie_value(const std::string& header, const std::string& name) {
    std::size_t pos = 0;
    while (pos < header.size()) {
        std::size_t end = header.find(';', pos);
        if (end == std::string::npos) end = header.size();
        std::string part = header.substr(pos, end - pos);
        while (!part.empty() && part.front() == ' ') part.erase(0, 1);
        if (part.rfind(name + "=", 0) == 0) return part.substr(name.size() + 1);
        pos = end + 1;
    }
    return {};
}

bool has_scope(const api_key_row& k, access needs) {
    for (const auto& s : k.scopes) {
        if (s == "admin") return true;
        if (needs == access::any) return true;
        if (needs == access::ingest && s == "ingest") return true;
        if (needs == access::predict && s == "predict") return true;
    }
    return false;
}

const char* access_name(access a) {
    switch (a) {
        case access::open: return "none";
        case access::any: return "any";
        case access::ingest: return "ingest";
        case access::predict: return "predict";
        case access::admin: return "admin";
    }
    return "admin";
}

}  // namespace

authenticator::authenticator(reader_pool& readers, std::chrono::milliseconds failure_delay,
                             clock_fn clock, password_check_limits limits)
    : readers_(readers),
      failure_delay_(failure_delay),
      clock_(clock ? std::move(clock) : clock_fn(&steady::now)),
      limits_(limits) {}

authenticator::check_place::check_place(authenticator& a) : a_(a), held_(false) {
    std::unique_lock lock(a_.places_mu_);
    if (a_.checking_ < a_.limits_.at_once) {
        held_ = true;
    } else if (a_.waiting_ < a_.limits_.waiting) {
        ++a_.waiting_;
        held_ = a_.place_freed_.wait_for(lock, a_.limits_.wait,
                                         [this] { return a_.checking_ < a_.limits_.at_once; });
        --a_.waiting_;
    }
    if (held_) {
        ++a_.checking_;
    } else {
        ++a_.checks_refused_;
    }
}

authenticator::check_place::~check_place() {
    if (!held_) return;
    {
        std::lock_guard lock(a_.places_mu_);
        --a_.checking_;
    }
    a_.place_freed_.notify_one();
}

std::size_t authenticator::password_checks_running() {
    std::lock_guard lock(places_mu_);
    return checking_;
}

std::size_t authenticator::password_checks_waiting() {
    std::lock_guard lock(places_mu_);
    return waiting_;
}

std::uint64_t authenticator::password_checks_refused() {
    std::lock_guard lock(places_mu_);
    return checks_refused_;
}

status authenticator::too_many_checks() {
    return status(error_kind::unavailable, "too many sign-ins are being checked at once (" +
                                               std::to_string(limits_.at_once) +
                                               "); retry shortly");
}

void authenticator::forget_keys() {
    std::unique_lock lock(keys_mu_);
    keys_.clear();
    ++keys_generation_;
}

std::map<std::int64_t, micros> authenticator::key_uses() {
    std::map<std::int64_t, micros> out;
    std::shared_lock lock(keys_mu_);
    for (const auto& [id, use] : uses_) {
        if (const micros t = use->last.load(std::memory_order_relaxed); t > 0) out[id] = t;
    }
    return out;
}

std::vector<std::pair<std::int64_t, micros>> authenticator::take_unwritten_key_uses() {
    std::lock_guard flush(flush_mu_);
    std::vector<std::pair<std::int64_t, micros>> out;
    std::shared_lock lock(keys_mu_);
    for (const auto& [id, use] : uses_) {
        const micros t = use->last.load(std::memory_order_relaxed);
        if (t > use->written.load(std::memory_order_relaxed)) {
            out.emplace_back(id, t);
            use->written.store(t, std::memory_order_relaxed);
        }
    }
    return out;
}

void authenticator::unwrite_key_uses(const std::vector<std::pair<std::int64_t, micros>>& uses) {
    std::lock_guard flush(flush_mu_);
    std::shared_lock lock(keys_mu_);
    for (const auto& [id, at] : uses) {
        auto it = uses_.find(id);
        micros expected = at;
        // Unless a later take has marked a later use meanwhile.
        if (it != uses_.end()) it->second->written.compare_exchange_strong(expected, 0);
    }
}

std::string limited_to(const std::string& kind, const std::vector<std::string>& names) {
    std::string out = kind + (names.size() == 1 ? " " : "s ");
    for (std::size_t i = 0; i < names.size(); ++i) out += (i ? ", \"" : "\"") + names[i] + "\"";
    return out;
}

status check_key_limits(const std::vector<std::string>& scopes, key_limits& limits) {
    const auto has = [&scopes](const char* s) {
        return std::find(scopes.begin(), scopes.end(), s) != scopes.end();
    };
    // An unknown scope is what is wrong then, not the limits: the store
    // refuses it, naming it.
    if (!std::all_of(scopes.begin(), scopes.end(), valid_scope)) return status::ok();
    struct kind {
        std::vector<std::string>* names;
        const char* field;
        const char* scope;
        std::size_t max_len;
    };
    for (const kind& k : {kind{&limits.models, "models", "predict", 64},
                          kind{&limits.streams, "streams", "ingest", 128}}) {
        if (k.names->empty()) continue;
        if (has("admin")) {
            return invalid(k.field, "an admin key does everything: give an admin key no " +
                                        std::string(k.field) + " to limit it to");
        }
        if (!has(k.scope)) {
            return invalid(k.field, std::string(k.field) + " limit what the " + k.scope +
                                        " scope allows, which this key is not given");
        }
        std::vector<std::string> distinct;
        for (const auto& n : *k.names) {
            if (!valid_name(n, k.max_len)) {
                return invalid(k.field, "\"" + n + "\" is no " +
                                            (k.max_len == 64 ? "model" : "stream") + " name: 1-" +
                                            std::to_string(k.max_len) +
                                            " letters, digits, '_', '-' or '.', not \".\" or "
                                            "\"..\"");
            }
            if (std::find(distinct.begin(), distinct.end(), n) == distinct.end())
                distinct.push_back(n);
        }
        if (distinct.size() > 100) return invalid(k.field, "at most 100 names");
        *k.names = std::move(distinct);
    }
    return status::ok();
}

std::size_t authenticator::cached_keys() {
    std::shared_lock lock(keys_mu_);
    return keys_.size();
}

std::size_t authenticator::tracked_failures() {
    std::lock_guard lock(mu_);
    return failures_.size();
}

std::string authenticator::user_key_from(const std::string& user, const std::string& addr) {
    auto it = trusted_.find(failure_key("pair", user + '\0' + address_block(addr)));
    if (it != trusted_.end() && clock_() - it->second < trusted_for) return "";
    return failure_key("user", user);
}

status authenticator::throttle_check(const std::string& user, const std::string& addr) {
    std::lock_guard lock(mu_);
    const std::string keys[] = {user_key_from(user, addr), address_key(addr)};
    const auto now = clock_();
    // The longer of the two lockouts, in whole seconds rounded up: the
    // Retry-After a client may sleep for and then succeed.
    steady::time_point until = now;
    for (const std::string& who : keys) {
        auto it = failures_.find(who);
        if (it != failures_.end()) until = std::max(until, it->second.until);
    }
    if (until == now) return status::ok();
    const long long secs = std::chrono::ceil<std::chrono::seconds>(until - now).count();
    return status(error_kind::rate_limited,
                  "too many failed sign-ins; try again in " + std::to_string(secs) + " s")
        .set_retry_after(secs);
}

authenticator::attempt::attempt(authenticator& a, const std::string& user, const std::string& addr)
    : a_(a) {
    verdict_ = a_.throttle_check(user, addr);
    if (!verdict_) return;
    std::lock_guard lock(a_.mu_);
    keys_[0] = a_.user_key_from(user, addr);
    keys_[1] = address_key(addr);
    for (const std::string& who : keys_) {
        if (who.empty()) continue;
        auto it = a_.failures_.find(who);
        // Alone, a check may always run; beside others, only while all of
        // them failing would still not reach a lockout.
        if (it != a_.failures_.end() && it->second.checking > 0 &&
            it->second.count + it->second.checking >= failures_before_lockout) {
            verdict_ = status(error_kind::rate_limited,
                              "other sign-ins for this user or address are being checked; try "
                              "again in 1 s")
                           .set_retry_after(1);
            return;
        }
    }
    const auto now = a_.clock_();
    for (const std::string& who : keys_)
        if (!who.empty()) ++a_.failure_record(who, now).checking;
}

authenticator::attempt::~attempt() {
    if (!verdict_) return;
    std::lock_guard lock(a_.mu_);
    for (const std::string& who : keys_) {
        if (who.empty()) continue;
        auto it = a_.failures_.find(who);  // a success or the bound may have dropped it
        if (it == a_.failures_.end()) continue;
        if (it->second.checking > 0) --it->second.checking;
        if (it->second.count == 0 && it->second.checking == 0) a_.failures_.erase(it);
    }
}

authenticator::failures& authenticator::failure_record(const std::string& who,
                                                       steady::time_point now) {
    const std::size_t bound = limits_.tracked_failures;
    if (failures_.size() >= bound && !failures_.count(who)) {
        // Records with nothing left to enforce go first; under a flood of
        // made-up names, every record not locked out now (lockouts stay).
        std::erase_if(failures_, [now](const auto& e) {
            return e.second.until <= now && now - e.second.last > longest_lockout;
        });
        if (failures_.size() >= bound) {
            std::erase_if(failures_, [now](const auto& e) { return e.second.until <= now; });
        }
        if (failures_.size() >= bound && !failures_.empty()) {
            // All locked out: the one whose lockout ends first makes room.
            failures_.erase(std::min_element(
                failures_.begin(), failures_.end(),
                [](const auto& a, const auto& b) { return a.second.until < b.second.until; }));
        }
    }
    return failures_[who];
}

void authenticator::note_failure(const std::string& user, const std::string& addr) {
    std::string user_key;
    {
        std::lock_guard lock(mu_);
        // Not at an address the user signed in from: a typo there raised the
        // lockout others caused, up to 16 minutes everywhere else.
        user_key = user_key_from(user, addr);
    }
    for (const std::string& who : {user_key, address_key(addr)}) {
        if (who.empty()) continue;
        std::lock_guard lock(mu_);
        const auto now = clock_();
        failures& f = failure_record(who, now);
        ++f.count;
        f.last = now;
        if (f.count >= failures_before_lockout) {
            // Doubling lockout: 30 s, 60 s, 120 s ... capped at 16 minutes (30 s << 5 = 960 s).
            int exp = std::min(f.count - failures_before_lockout, 5);
            f.until = now + std::chrono::seconds(30LL << exp);
            // `who` is "user:NAME" or "addr:ADDRESS".
            log_warn("auth", "sign-in locked out for " + who.substr(0, 4) + " " +
                                 loggable(who.substr(5)) + " for " + std::to_string(30LL << exp) +
                                 " s after " + std::to_string(f.count) +
                                 " failed sign-ins in a row");
        }
    }
    // Every wrong password costs the caller time (once, though counted for
    // the user and the address), whatever the lockout says. The caller
    // holds a check place meanwhile: few threads ever sleep here.
    std::this_thread::sleep_for(failure_delay_);
}

void authenticator::note_success(const std::string& user, const std::string& addr) {
    // Both counters: otherwise an address that was locked out once stays
    // one typo away from the next, longer, lockout.
    const std::string user_key = failure_key("user", user), addr_key = address_key(addr);
    const std::string pair_key = failure_key("pair", user + '\0' + address_block(addr));
    std::lock_guard lock(mu_);
    const auto now = clock_();
    // A user locked out by guesses from elsewhere stays locked out there
    // when they sign in from an address they signed in from before.
    if (auto it = failures_.find(user_key); it != failures_.end() && it->second.until <= now) {
        failures_.erase(it);
    }
    failures_.erase(addr_key);
    if (trusted_.size() >= limits_.tracked_failures && !trusted_.count(pair_key)) {
        std::erase_if(trusted_, [now](const auto& e) { return now - e.second >= trusted_for; });
        if (trusted_.size() >= limits_.tracked_failures && !trusted_.empty()) {
            trusted_.erase(
                std::min_element(trusted_.begin(), trusted_.end(),
                                 [](const auto& a, const auto& b) { return a.second < b.second; }));
        }
    }
    trusted_[pair_key] = now;
}

status authenticator::check_basic(const std::string& user, const std::string& password,
                                  const std::string& addr) {
    std::string token = sha256_hex(user + '\0' + password);
    std::optional<user_row> u;
    {
        auto conn = readers_.acquire();
        u = get_user(*conn, user);
    }
    const auto verified_before = [&] {
        std::lock_guard lock(mu_);
        auto it = basic_ok_.find(token);
        if (it != basic_ok_.end() && clock_() - it->second.at < std::chrono::minutes(5) && u &&
            u->hash == it->second.stored_hash) {
            failures_.erase(address_key(addr));  // as below
            return true;
        }
        return false;
    };
    if (verified_before()) return status::ok();
    check_place place(*this);
    if (!place) return too_many_checks();
    // While this request waited for a place, another may have verified the
    // same password.
    if (verified_before()) return status::ok();
    attempt counted(*this, user, addr);
    if (!counted.verdict()) return counted.verdict();
    if (!check_password(u, password)) {
        log_warn("auth", "failed sign-in (Basic auth) for \"" + loggable(user) + "\" from " + addr);
        note_failure(user, addr);
        return status(error_kind::unauthenticated, "wrong user name or password");
    }
    note_success(user, addr);
    std::lock_guard lock(mu_);
    // A verified password is remembered by its hash for a few minutes, so
    // scripts using Basic auth do not pay for PBKDF2 on every request.
    const auto now = clock_();
    std::erase_if(basic_ok_,
                  [now](const auto& e) { return now - e.second.at >= std::chrono::minutes(5); });
    basic_ok_[token] = {now, u->hash};
    return status::ok();
}

std::optional<http_response> authenticator::check(http_request& req, access needs) {
    const std::string_view auth = req.header("authorization");
    if (has_scheme(auth, "bearer")) {
        // A thread serves one client's keep-alive connection for many
        // requests: the last key it hashed spares SHA-256 on most (it was
        // 1.4% of the server's CPU under bench/predict's single predictions).
        thread_local std::string last_key, last_hash;
        const std::string_view key = credentials_after(auth, "bearer");
        if (key != last_key || last_hash.empty()) {
            last_key.assign(key);
            last_hash = sha256_hex(key);
        }
        const std::string& hash = last_hash;
        std::shared_ptr<const api_key_row> row;
        key_use* use = nullptr;
        bool cached = false;
        std::uint64_t generation = 0;
        {
            std::shared_lock lock(keys_mu_);
            generation = keys_generation_;
            auto it = keys_.find(hash);
            if (it != keys_.end() && clock_() - it->second.at < key_cache_ttl) {
                row = it->second.row;
                use = it->second.use;
                cached = true;
            }
        }
        if (!cached) {
            std::optional<api_key_row> found;
            {
                auto conn = readers_.acquire();
                found = find_api_key(*conn, hash);
            }
            if (found) row = std::make_shared<const api_key_row>(std::move(*found));
            std::unique_lock lock(keys_mu_);
            const auto now = clock_();
            if (keys_.size() >= max_cached_keys) {
                std::erase_if(keys_,
                              [now](const auto& e) { return now - e.second.at >= key_cache_ttl; });
                // Still full of fresh entries: a flood; start again.
                if (keys_.size() >= max_cached_keys) keys_.clear();
            }
            if (row) {
                auto& slot = uses_[row->id];
                if (!slot) slot = std::make_unique<key_use>();
                use = slot.get();
            }
            // A revocation that committed after the read above would
            // otherwise be hidden for the cache's 5 s.
            if (generation == keys_generation_) keys_[hash] = {row, now, use};
        }
        if (!row || row->revoked_at) {
            return error_response(status(error_kind::unauthenticated,
                                         row ? "this API key was revoked" : "unknown API key"));
        }
        // Named on a refusal too: the access log says whose key was refused.
        req.actor = "key:" + row->name;
        // Checked on every request, not when cached: the cache keeps a row
        // for 5 s, past the time the key ends.
        const micros now = now_micros();
        if (row->expires_at && *row->expires_at <= now) {
            return error_response(status(error_kind::unauthenticated,
                                         "API key \"" + row->name + "\" expired at " +
                                             format_rfc3339(*row->expires_at) +
                                             "; an admin can create a new one (POST /v1/keys)"));
        }
        if (use && now - use->last.load(std::memory_order_relaxed) >= 1'000'000)
            use->last.store(now, std::memory_order_relaxed);
        if (needs == access::predict && !row->limits.models.empty()) {
            // The route's model (predict's path names it).
            const auto named = req.path_params.find("name");
            const auto& models = row->limits.models;
            if (named == req.path_params.end() ||
                std::find(models.begin(), models.end(), named->second) == models.end()) {
                return error_response(
                    status(error_kind::forbidden,
                           "API key \"" + row->name + "\" may predict with " +
                               limited_to("model", models) + " only" +
                               (named == req.path_params.end() ? std::string()
                                                               : ", not \"" + named->second + "\""),
                           "name"));
            }
        }
        if (needs == access::ingest) req.key_streams = row->limits.streams;
        if (!has_scope(*row, needs)) {
            std::string scopes;
            for (const auto& s : row->scopes) scopes += (scopes.empty() ? "" : ",") + s;
            return error_response(status(error_kind::forbidden,
                                         "API key \"" + row->name + "\" has scopes [" + scopes +
                                             "]; this needs " + access_name(needs)));
        }
        return std::nullopt;
    }
    if (has_scheme(auth, "basic")) {
        auto decoded = base64_decode(std::string(credentials_after(auth, "basic")));
        auto colon = decoded ? decoded->find(':') : std::string::npos;
        if (!decoded || colon == std::string::npos) {
            return error_response(status(error_kind::unauthenticated, "malformed Basic credentials"));
        }
        std::string user = decoded->substr(0, colon);
        std::string password = decoded->substr(colon + 1);
        if (status t = throttle_check(user, req.remote_addr); !t) return error_response(t);
        if (status s = check_basic(user, password, req.remote_addr); !s) return error_response(s);
        req.actor = user;
        return std::nullopt;
    }
    const std::string cookies(req.header("cookie"));
    if (!cookies.empty()) {
        auto s = session_from_cookie(cookies);
        if (s) {
            req.actor = s->user;
            // Cookies ride along with cross-site requests; a state change must
            // also prove it came from our page, which alone can read the token.
            if (req.method != "GET" && !same_secret(req.header("x-csrf-token"), s->csrf)) {
                return error_response(status(error_kind::forbidden,
                                             "missing or wrong X-CSRF-Token for this session",
                                             "X-CSRF-Token"));
            }
            return std::nullopt;
        }
    }
    return error_response(status(error_kind::unauthenticated,
                                 "credentials required: an API key (Authorization: Bearer ...), "
                                 "Basic auth, or the admin page's session"));
}

result<session_info> authenticator::login(const std::string& user, const std::string& password,
                                          const std::string& remote_addr) {
    if (status t = throttle_check(user, remote_addr); !t) return t;
    check_place place(*this);
    if (!place) return too_many_checks();
    std::optional<user_row> u;
    {
        auto conn = readers_.acquire();
        u = get_user(*conn, user);
    }
    attempt counted(*this, user, remote_addr);
    if (!counted.verdict()) return counted.verdict();
    if (!check_password(u, password)) {
        log_warn("auth",
                 "failed sign-in (session) for \"" + loggable(user) + "\" from " + remote_addr);
        note_failure(user, remote_addr);
        return status(error_kind::unauthenticated, "wrong user name or password");
    }
    note_success(user, remote_addr);
    session_info s;
    s.token = random_hex(32);
    s.user = user;
    s.csrf = random_hex(16);
    s.expires = clock_() + session_lifetime;
    s.password_hash = u->hash;
    std::lock_guard lock(mu_);
    // Drop expired sessions while here, and the user's oldest past the
    // per-user bound.
    std::size_t of_user = 0;
    auto oldest = sessions_.end();
    for (auto it = sessions_.begin(); it != sessions_.end();) {
        if (it->second.expires < clock_()) {
            it = sessions_.erase(it);
            continue;
        }
        if (it->second.user == user) {
            ++of_user;
            if (oldest == sessions_.end() || it->second.expires < oldest->second.expires)
                oldest = it;
        }
        ++it;
    }
    if (of_user >= std::max<std::size_t>(limits_.sessions_per_user, 1) && oldest != sessions_.end())
        sessions_.erase(oldest);
    sessions_[sha256_hex(s.token)] = s;
    return s;
}

std::string authenticator::stored_hash(const std::string& user) {
    auto conn = readers_.acquire();
    auto u = get_user(*conn, user);
    return u ? u->hash : std::string();
}

std::optional<session_info> authenticator::session_from_cookie(const std::string& cookie_header) {
    std::string token = cookie_value(cookie_header, cookie_name);
    if (token.empty()) return std::nullopt;
    const std::string key = sha256_hex(token);
    session_info s;
    {
        std::lock_guard lock(mu_);
        auto it = sessions_.find(key);
        if (it == sessions_.end()) return std::nullopt;
        if (it->second.expires < clock_()) {
            sessions_.erase(it);
            return std::nullopt;
        }
        s = it->second;
    }
    // A new password ends the sessions signed in with the old one.
    if (stored_hash(s.user) != s.password_hash) {
        std::lock_guard lock(mu_);
        sessions_.erase(key);
        return std::nullopt;
    }
    return s;
}

void authenticator::logout(const std::string& cookie_header) {
    std::string token = cookie_value(cookie_header, cookie_name);
    std::lock_guard lock(mu_);
    sessions_.erase(sha256_hex(token));
}

result<std::optional<std::string>> ensure_admin(fact_writer& writer, reader_pool& readers,
                                                const std::string& env_password) {
    {
        auto conn = readers.acquire();
        if (count_users(*conn) > 0) return std::optional<std::string>{};
    }
    // The same minimum as kennel admin set-password: a short password set
    // here would be the one weak credential in the database.
    if (!env_password.empty() && env_password.size() < min_password_length) {
        return status(error_kind::invalid_argument, "KENNEL_ADMIN_PASSWORD has " +
                                                        std::to_string(env_password.size()) +
                                                        " characters; a password needs at least " +
                                                        std::to_string(min_password_length));
    }
    std::string password = env_password.empty() ? random_hex(12) : env_password;
    status s = writer.run(
        [&](connection& c) {
            if (count_users(c) == 0) set_password(c, "admin", password, true);
            return status::ok();
        },
        std::chrono::seconds(30));
    if (!s) return s;
    if (!env_password.empty()) return std::optional<std::string>{};
    return std::optional<std::string>{password};
}

}  // namespace kennel
