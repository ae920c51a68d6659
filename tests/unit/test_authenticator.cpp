// The authenticator against a real SQLite file: API keys by their hash,
// scopes, revocation, and a key cache that strangers cannot grow.
#include <catch2/catch.hpp>

#include <array>
#include <atomic>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "server/auth.h"
#include "server/errors.h"
#include "store/auth_store.h"
#include "test_support.h"

using namespace kennel;

namespace {

http_request with_authorization(const std::string& value, const std::string& addr) {
    http_request req;
    req.method = "POST";
    req.path = "/v1/models/m/predict";
    req.remote_addr = addr;
    req.headers.emplace_back("authorization", value);
    return req;
}

http_request with_bearer(const std::string& key) {
    return with_authorization("Bearer " + key, "127.0.0.1");
}

// admin:right-password as Basic auth.
http_request admin_basic(const std::string& addr) {
    return with_authorization("Basic YWRtaW46cmlnaHQtcGFzc3dvcmQ=", addr);
}

// Waits (bounded: a test's patience, not a speed it checks) until `ready`.
template <class Ready>
void wait_until(Ready ready) {
    for (int i = 0; i < 1000 && !ready(); ++i)
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
}

// An authenticator over a migrated database and its readers.
struct auth_fixture {
    testing::migrated_db db;
    reader_pool readers{db.path};
    authenticator auth;

    // The authenticator's arguments after its readers.
    explicit auth_fixture(std::chrono::milliseconds failure_delay = std::chrono::milliseconds(0),
                          authenticator::clock_fn clock = {}, password_check_limits checks = {})
        : auth{readers, failure_delay, std::move(clock), checks} {
        set_password(db.conn, "admin", "right-password", true);
    }
};

}  // namespace

TEST_CASE("authenticator: keys by scope, revocation, and a bounded cache", "[auth]") {
    auth_fixture f;
    auto& db = f.db;
    authenticator& auth = f.auth;
    auto made = create_api_key(db.conn, "bot", {"predict"}, "admin");
    REQUIRE(made);
    const std::string key = made->key;

    http_request ok = with_bearer(key);
    CHECK_FALSE(auth.check(ok, access::predict).has_value());
    CHECK(ok.actor == "key:bot");

    http_request wrong_scope = with_bearer(key);
    auto refused = auth.check(wrong_scope, access::ingest);
    REQUIRE(refused.has_value());
    CHECK(refused->status == 403);
    CHECK(refused->body.find("scopes [predict]") != std::string::npos);

    http_request unknown = with_bearer("knl_0123456789abcdef");
    auto unknown_answer = auth.check(unknown, access::predict);
    REQUIRE(unknown_answer.has_value());
    CHECK(unknown_answer->status == 401);
    CHECK(unknown_answer->body.find("unknown API key") != std::string::npos);

    SECTION("a flood of made-up keys does not grow the cache without bound") {
        for (int i = 0; i < 5000; ++i) {
            http_request req = with_bearer("knl_made_up_" + std::to_string(i));
            auto answer = auth.check(req, access::predict);
            REQUIRE(answer.has_value());
            REQUIRE(answer->status == 401);
        }
        CHECK(auth.cached_keys() <= 1024);
        // The real key still works after the cache was emptied under it.
        http_request again = with_bearer(key);
        CHECK_FALSE(auth.check(again, access::predict).has_value());
    }

    SECTION("a revoked key is refused once the cache is told") {
        REQUIRE(revoke_api_key(db.conn, made->row.id, "admin"));
        auth.forget_keys();
        http_request after = with_bearer(key);
        auto answer = auth.check(after, access::predict);
        REQUIRE(answer.has_value());
        CHECK(answer->status == 401);
        CHECK(answer->body.find("revoked") != std::string::npos);
    }
}

TEST_CASE("api keys: an active key's name is not given twice; a revoked key's is free", "[auth]") {
    testing::migrated_db db;
    auto first = create_api_key(db.conn, "ops", {"admin"}, "admin");
    REQUIRE(first);
    // "key:ops" beside a deployment could not tell two such keys apart.
    auto again = create_api_key(db.conn, "ops", {"read"}, "admin");
    REQUIRE_FALSE(again);
    CHECK(again.error().kind() == error_kind::conflict);
    CHECK(again.error().field() == "name");
    CHECK(again.error().message().find("\"ops\"") != std::string::npos);
    CHECK(again.error().message().find("key " + std::to_string(first->row.id)) !=
          std::string::npos);
    CHECK(list_api_keys(db.conn, {}, 100, std::nullopt, now_micros()).keys.size() == 1);
    // Names are compared as sent: another name is another key.
    CHECK(create_api_key(db.conn, "Ops", {"read"}, "admin"));
    // One that reads the same in a list is refused: no space at either end.
    for (const char* look_alike :
         {"ops ", " ops", " ops ", "ops\u00a0", "\u3000ops", "ops\u200b", "\ufeffops"}) {
        auto r = create_api_key(db.conn, look_alike, {"read"}, "admin");
        REQUIRE_FALSE(r);
        CHECK(r.error().field() == "name");
        CHECK(r.error().message().find("no space or invisible character at either end") !=
              std::string::npos);
    }
    auto revoked = revoke_api_key(db.conn, first->row.id, "admin");
    REQUIRE(revoked);
    CHECK(*revoked);
    // Again: no error, and nothing changed; no such key: not found.
    auto again_revoked = revoke_api_key(db.conn, first->row.id, "someone else");
    REQUIRE(again_revoked);
    CHECK_FALSE(*again_revoked);
    auto none = revoke_api_key(db.conn, 999, "admin");
    REQUIRE_FALSE(none);
    CHECK(none.error().kind() == error_kind::not_found);
    auto reused = create_api_key(db.conn, "ops", {"admin"}, "admin");
    REQUIRE(reused);
    CHECK(reused->row.id != first->row.id);
    CHECK(shared_active_key_names(db.conn).empty());
}

TEST_CASE("api keys: active keys sharing a name, as an older database may hold, are found",
          "[auth]") {
    testing::migrated_db db;
    auto a = create_api_key(db.conn, "ops", {"admin"}, "admin");
    auto b = create_api_key(db.conn, "ci", {"read"}, "admin");
    REQUIRE(a);
    REQUIRE(b);
    CHECK(shared_active_key_names(db.conn).empty());
    // Written as a build from before the check wrote them.
    auto insert_named = [&db](const std::string& name, const std::string& hash) {
        statement st(db.conn,
                     "INSERT INTO api_keys (name, prefix, key_hash, scopes, created_at, created_by)"
                     " VALUES (?, 'knl_000000', ?, 'read', 1, 'admin') RETURNING id");
        st.bind(1, name).bind(2, hash);
        REQUIRE(st.step());
        return st.column_int(0);
    };
    const std::int64_t c = insert_named("ops", "h1");
    const std::int64_t d = insert_named("ci", "h2");
    const std::int64_t e = insert_named("ops", "h3");
    auto shared = shared_active_key_names(db.conn);
    REQUIRE(shared.size() == 2);
    CHECK(shared[0].first == "ci");
    CHECK(shared[0].second == std::vector<std::int64_t>{b->row.id, d});
    CHECK(shared[1].first == "ops");
    CHECK(shared[1].second == std::vector<std::int64_t>{a->row.id, c, e});
    // A revoked key shares its name with no one.
    REQUIRE(revoke_api_key(db.conn, d, "admin"));
    shared = shared_active_key_names(db.conn);
    REQUIRE(shared.size() == 1);
    CHECK(shared[0].first == "ops");
}

TEST_CASE("authenticator: failed sign-ins from many names and addresses are kept bounded",
          "[auth]") {
    // A bound of 200 records (10,000 by default): each unknown name now
    // costs a real PBKDF2 run, as a known one does.
    password_check_limits limits;
    limits.tracked_failures = 200;
    auth_fixture f(std::chrono::milliseconds(0), {}, limits);
    authenticator& auth = f.auth;

    // admin is locked out from one address before the flood.
    for (int i = 0; i < 5; ++i) CHECK_FALSE(auth.login("admin", "wrong", "10.0.0.1"));
    auto locked = auth.login("admin", "right-password", "10.0.0.1");
    REQUIRE_FALSE(locked);
    CHECK(locked.error().kind() == error_kind::rate_limited);

    // Each made-up name and address was a record of its own, kept for good;
    // long names were kept whole.
    const std::string long_tail(4000, 'x');
    for (int i = 0; i < 240; ++i) {
        const std::string n = std::to_string(i);
        auto r = auth.login("guess-" + n + (i % 2 ? long_tail : ""), "wrong",
                            "10.1." + std::to_string(i / 100) + "." + std::to_string(i % 100));
        REQUIRE_FALSE(r);
        REQUIRE(r.error().kind() == error_kind::unauthenticated);
    }
    CHECK(auth.tracked_failures() <= 200);

    // The lockout taken before the flood still holds, for the user and the address.
    auto still = auth.login("admin", "right-password", "10.0.0.1");
    REQUIRE_FALSE(still);
    CHECK(still.error().kind() == error_kind::rate_limited);
    auto other_addr = auth.login("admin", "right-password", "10.0.0.2");
    REQUIRE_FALSE(other_addr);
    CHECK(other_addr.error().kind() == error_kind::rate_limited);
}

TEST_CASE("authenticator: a burst of wrong passwords gets no more checks than a lockout allows",
          "[auth]") {
    // Twenty at once for one user, four checked at a time and the rest
    // waiting for a place: every waiter was checked once it had one, even
    // after the lockout began, so a burst had 24 guesses instead of 5. Now
    // a check runs beside others only while all of them failing would not
    // reach the lockout; the others are told to try again in a second.
    using namespace std::chrono;
    password_check_limits limits;
    limits.at_once = 4;
    limits.waiting = 32;
    limits.wait = seconds(60);  // the test's bound, not a speed it checks
    auth_fixture f(milliseconds(200), {}, limits);
    authenticator& auth = f.auth;
    std::atomic<int> checked{0}, throttled{0}, other{0};
    std::vector<std::thread> burst;
    for (int i = 0; i < 20; ++i) {
        burst.emplace_back([&] {
            auto r = auth.login("admin", "wrong", "10.0.0.1");
            const error_kind k = r ? error_kind::internal : r.error().kind();
            (k == error_kind::unauthenticated ? checked
             : k == error_kind::rate_limited  ? throttled
                                              : other)++;
        });
    }
    for (auto& t : burst) t.join();
    CHECK(checked.load() >= 1);
    CHECK(throttled.load() == 20 - checked.load());
    CHECK(other.load() == 0);
    // Then one at a time: five checked in all before the lockout.
    int after = 0;
    for (; after < 10; ++after) {
        auto r = auth.login("admin", "wrong", "10.0.0.1");
        REQUIRE_FALSE(r);
        if (r.error().kind() == error_kind::rate_limited) break;
        CHECK(r.error().kind() == error_kind::unauthenticated);
    }
    CHECK(checked.load() + after == 5);
    // Basic auth counts against the same budget: the user is locked out.
    http_request req = admin_basic("10.0.0.7");
    auto basic = auth.check(req, access::admin);
    REQUIRE(basic);
    CHECK(basic->status == 429);
}

TEST_CASE("authenticator: a lockout's Retry-After is the rest of its doubling wait", "[auth]") {
    // It was always 30 s, while the lockout doubles to 60 s, 120 s ...
    using namespace std::chrono;
    std::atomic<steady_clock::duration> moved{steady_clock::duration::zero()};
    auth_fixture f(milliseconds(0), [&moved] { return steady_clock::now() + moved.load(); });
    authenticator& auth = f.auth;
    auto retry_after = [&] {
        auto r = auth.login("admin", "right-password", "10.0.0.1");
        REQUIRE_FALSE(r);
        REQUIRE(r.error().kind() == error_kind::rate_limited);
        http_response resp = error_response(r.error());
        std::string header;
        for (const auto& [k, v] : resp.headers)
            if (k == "Retry-After") header = v;
        INFO(r.error().message());
        CHECK(r.error().message().find("try again in " + header + " s") != std::string::npos);
        return header;
    };

    for (int i = 0; i < 5; ++i) CHECK_FALSE(auth.login("admin", "wrong", "10.0.0.1"));
    CHECK(retry_after() == "30");
    moved = moved.load() + milliseconds(10'500);
    CHECK(retry_after() == "20");  // 19.5 s left, rounded up
    moved = moved.load() + seconds(20);
    // The sixth failure in a row: 60 s, then 120 s.
    auto sixth = auth.login("admin", "wrong", "10.0.0.1");
    REQUIRE_FALSE(sixth);
    CHECK(sixth.error().kind() == error_kind::unauthenticated);
    CHECK(retry_after() == "60");
    moved = moved.load() + seconds(61);
    CHECK_FALSE(auth.login("admin", "wrong", "10.0.0.1"));
    CHECK(retry_after() == "120");
    moved = moved.load() + milliseconds(119'001);
    CHECK(retry_after() == "1");
    moved = moved.load() + seconds(1);
    CHECK(auth.login("admin", "right-password", "10.0.0.1"));
}

TEST_CASE("authenticator: an IPv6 address is locked out by its /64; IPv4 addresses one by one",
          "[auth]") {
    // A host picks new addresses in its /64 at will: counted one by one, its
    // guesses (a new user name each, so no user's lockout) never locked it out.
    auth_fixture f(std::chrono::milliseconds(0));
    authenticator& auth = f.auth;
    auto try_as = [&](const std::string& user, const std::string& addr) {
        auto r = auth.login(user, "wrong", addr);
        REQUIRE_FALSE(r);
        return r.error().kind();
    };
    for (int i = 0; i < 5; ++i) {
        CHECK(try_as("guess-" + std::to_string(i), "2001:db8:1:2::" + std::to_string(i + 1)) ==
              error_kind::unauthenticated);
    }
    CHECK(try_as("guess-5", "2001:db8:1:2:ffff:ffff:ffff:ffff") == error_kind::rate_limited);
    CHECK(try_as("guess-6", "2001:db8:1:3::1") == error_kind::unauthenticated);
    // IPv4, also mapped into IPv6, is counted by the address.
    for (int i = 0; i < 5; ++i) {
        CHECK(try_as("v4-" + std::to_string(i), "::ffff:10.0.0." + std::to_string(i + 1)) ==
              error_kind::unauthenticated);
    }
    CHECK(try_as("v4-5", "::ffff:10.0.0.9") == error_kind::unauthenticated);
}

TEST_CASE("authenticator: guesses from elsewhere do not lock a user out where they signed in",
          "[auth]") {
    // Five wrong passwords from any address locked the user out everywhere:
    // a stranger could keep the admin out of the admin page.
    using namespace std::chrono;
    std::atomic<steady_clock::duration> moved{steady_clock::duration::zero()};
    auth_fixture f(milliseconds(0), [&moved] { return steady_clock::now() + moved.load(); });
    authenticator& auth = f.auth;
    REQUIRE(auth.login("admin", "right-password", "10.0.0.1"));
    for (int i = 0; i < 5; ++i) CHECK_FALSE(auth.login("admin", "wrong", "10.0.0.66"));
    auto locked = [&](const std::string& addr) {
        auto r = auth.login("admin", "right-password", addr);
        return !r && r.error().kind() == error_kind::rate_limited;
    };
    // The guessing address and any address the user never signed in from
    // are locked out; the user's own is not, with a session or Basic auth.
    CHECK(locked("10.0.0.66"));
    CHECK(locked("10.0.0.2"));
    CHECK_FALSE(locked("10.0.0.1"));
    http_request own = admin_basic("10.0.0.1"), other = admin_basic("10.0.0.2");
    CHECK_FALSE(auth.check(own, access::admin));
    auto refused = auth.check(other, access::admin);
    REQUIRE(refused);
    CHECK(refused->status == 429);
    // Wrong guesses from the user's own address still lock that address,
    // and do not raise the user's lockout elsewhere (they made it 16 min).
    for (int i = 0; i < 5; ++i) CHECK_FALSE(auth.login("admin", "wrong", "10.0.0.1"));
    CHECK(locked("10.0.0.1"));
    moved = seconds(31);
    CHECK(auth.login("admin", "right-password", "10.0.0.2"));
    // A sign-in long ago exempts nothing.
    moved = hours(24);
    REQUIRE(auth.login("admin", "right-password", "10.0.0.3"));
    moved = moved.load() + hours(24 * 31);
    for (int i = 0; i < 5; ++i) CHECK_FALSE(auth.login("admin", "wrong", "10.0.0.77"));
    CHECK(locked("10.0.0.3"));
}

TEST_CASE("authenticator: only a few password checks run at once; the rest wait briefly or are 503",
          "[auth]") {
    // Each check (PBKDF2, and a wrong password's delay) holds an HTTP
    // thread: a flood of wrong passwords held every thread the pool had.
    using namespace std::chrono;
    // Two places, nobody waits; a wrong password keeps its place for 3 s.
    auth_fixture f(milliseconds(3000), {}, {2, 0, milliseconds(0)});
    authenticator& auth = f.auth;

    // Catch2's assertions are for the test's own thread: these threads keep
    // what they got, checked after they are joined.
    std::vector<std::thread> wrong;
    std::array<std::atomic<bool>, 2> refused_as_wrong{};
    for (int i = 0; i < 2; ++i) {
        wrong.emplace_back([&auth, &refused_as_wrong, i] {
            auto r = auth.login("admin", "wrong", "10.0.0." + std::to_string(i));
            refused_as_wrong[static_cast<std::size_t>(i)] =
                !r && r.error().kind() == error_kind::unauthenticated;
        });
    }
    wait_until([&] { return auth.password_checks_running() == 2; });
    REQUIRE(auth.password_checks_running() == 2);

    // The right password, from elsewhere, while both places are taken.
    auto busy = auth.login("admin", "right-password", "10.0.0.9");
    REQUIRE_FALSE(busy);
    CHECK(busy.error().kind() == error_kind::unavailable);
    CHECK(busy.error().message().find("too many sign-ins") != std::string::npos);
    http_response resp = error_response(busy.error());
    CHECK(resp.status == 503);
    bool retry_after = false;
    for (const auto& [k, v] : resp.headers) retry_after = retry_after || k == "Retry-After";
    CHECK(retry_after);
    // Basic auth shares the places.
    http_request req = admin_basic("10.0.0.9");
    auto basic_busy = auth.check(req, access::admin);
    REQUIRE(basic_busy);
    CHECK(basic_busy->status == 503);
    CHECK(auth.password_checks_refused() == 2);

    for (auto& t : wrong) t.join();
    CHECK(refused_as_wrong[0]);
    CHECK(refused_as_wrong[1]);
    CHECK(auth.password_checks_running() == 0);
    // Places free again: both ways in work, and a refusal was not a failure.
    CHECK(auth.login("admin", "right-password", "10.0.0.9"));
    req.actor.clear();
    CHECK_FALSE(auth.check(req, access::admin));
    CHECK(req.actor == "admin");
}

TEST_CASE(
    "authenticator: a request waits for a place within its bound, and one verified "
    "password serves those that waited",
    "[auth]") {
    using namespace std::chrono;
    // One place, one waiter, who may wait a minute (the test's bound, not
    // a speed it checks); a wrong password keeps its place for 1 s.
    auth_fixture f(milliseconds(1000), {}, {1, 1, seconds(60)});
    authenticator& auth = f.auth;
    std::atomic<bool> wrong_let_in{false};  // checked on the test's thread
    std::thread wrong([&] { wrong_let_in = auth.login("admin", "wrong", "10.0.0.1").is_ok(); });
    wait_until([&] { return auth.password_checks_running() == 1; });
    REQUIRE(auth.password_checks_running() == 1);

    http_request req = admin_basic("10.0.0.2");
    std::optional<http_response> waited;
    std::thread waiter([&] { waited = auth.check(req, access::admin); });
    wait_until([&] { return auth.password_checks_waiting() == 1; });
    REQUIRE(auth.password_checks_waiting() == 1);
    // The one place is taken and the one waiter's room too: refused at once.
    auto refused = auth.login("admin", "right-password", "10.0.0.3");
    REQUIRE_FALSE(refused);
    CHECK(refused.error().kind() == error_kind::unavailable);

    wrong.join();
    waiter.join();
    CHECK_FALSE(wrong_let_in);
    CHECK_FALSE(waited);  // let in, once the wrong password gave its place up
    CHECK(req.actor == "admin");
    CHECK(auth.password_checks_refused() == 1);
    CHECK(auth.password_checks_running() == 0);
    CHECK(auth.password_checks_waiting() == 0);
}

TEST_CASE("authenticator: a user's sessions are bounded; the oldest ends first", "[auth]") {
    // Each successful sign-in added a session kept for 12 h: a script
    // signing in again and again grew the map for as long.
    password_check_limits limits;
    limits.sessions_per_user = 3;
    auto now = std::chrono::steady_clock::now();
    auth_fixture f(
        std::chrono::milliseconds(0), [&now] { return now; }, limits);
    std::vector<std::string> cookies;
    for (int i = 0; i < 5; ++i) {
        auto s = f.auth.login("admin", "right-password", "127.0.0.1");
        REQUIRE(s);
        cookies.push_back(std::string(authenticator::cookie_name) + "=" + s->token);
        now += std::chrono::seconds(1);  // each one later than the one before
    }
    CHECK_FALSE(f.auth.session_from_cookie(cookies[0]));
    CHECK_FALSE(f.auth.session_from_cookie(cookies[1]));
    for (int i = 2; i < 5; ++i)
        CHECK(f.auth.session_from_cookie(cookies[static_cast<std::size_t>(i)]));
    // Another user's sessions are their own.
    set_password(f.db.conn, "ops", "other-password", true);
    REQUIRE(f.auth.login("ops", "other-password", "127.0.0.1"));
    CHECK(f.auth.session_from_cookie(cookies[4]));
}

TEST_CASE("api keys: an expiry, checked on every request, cached or not", "[auth]") {
    auth_fixture f;
    auto& db = f.db;
    const micros now = now_micros();
    // One that would already be over is refused, naming the field.
    auto past = create_api_key(db.conn, "late", {"read"}, "admin", now - 1'000'000);
    REQUIRE_FALSE(past);
    CHECK(past.error().field() == "expires_at");
    CHECK(past.error().message().find("not later than now") != std::string::npos);

    auto soon = create_api_key(db.conn, "contractor", {"predict"}, "admin", now + 400'000);
    REQUIRE(soon);
    CHECK(soon->row.expires_at == now + 400'000);
    http_request before = with_bearer(soon->key);
    CHECK_FALSE(f.auth.check(before, access::predict).has_value());  // and now it is cached
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
    http_request after = with_bearer(soon->key);
    auto refused = f.auth.check(after, access::predict);
    REQUIRE(refused.has_value());
    CHECK(refused->status == 401);
    CHECK(refused->body.find("API key \\\"contractor\\\" expired at " +
                             format_rfc3339(now + 400'000)) != std::string::npos);
    CHECK(after.actor == "key:contractor");  // the access log says whose key it was

    // Expired, its name is free again, and it is no "shared name".
    auto again = create_api_key(db.conn, "contractor", {"predict"}, "admin");
    REQUIRE(again);
    CHECK(shared_active_key_names(db.conn).empty());
    CHECK(state_of(soon->row, now_micros()) == key_state::expired);
    CHECK(state_of(again->row, now_micros()) == key_state::active);
}

TEST_CASE("api keys: listed newest first by state, in pages, with their count", "[auth]") {
    testing::migrated_db db;
    const micros now = now_micros();
    std::vector<std::int64_t> ids;
    for (int i = 0; i < 5; ++i) {
        auto k = create_api_key(db.conn, "k" + std::to_string(i), {"read"}, "admin");
        REQUIRE(k);
        ids.push_back(k->row.id);
    }
    REQUIRE(revoke_api_key(db.conn, ids[1], "admin"));
    // An expiry already past, as a key created earlier would have now.
    db.conn.exec("UPDATE api_keys SET expires_at = " + std::to_string(now - 1) + " WHERE id IN (" +
                 std::to_string(ids[2]) + ", " + std::to_string(ids[1]) + ")");
    auto all = list_api_keys(db.conn, {}, 100, std::nullopt, now);
    CHECK(all.count == 5);
    REQUIRE(all.keys.size() == 5);
    CHECK(all.keys.front().id == ids[4]);
    CHECK(all.keys.back().id == ids[0]);

    auto ids_of = [](const key_list& l) {
        std::vector<std::int64_t> out;
        for (const auto& k : l.keys) out.push_back(k.id);
        return out;
    };
    auto active = list_api_keys(db.conn, {key_state::active}, 100, std::nullopt, now);
    CHECK(active.count == 3);
    CHECK(ids_of(active) == std::vector<std::int64_t>{ids[4], ids[3], ids[0]});
    // Revoked after it expired: revoked.
    CHECK(ids_of(list_api_keys(db.conn, {key_state::revoked}, 100, std::nullopt, now)) ==
          std::vector<std::int64_t>{ids[1]});
    CHECK(ids_of(list_api_keys(db.conn, {key_state::expired}, 100, std::nullopt, now)) ==
          std::vector<std::int64_t>{ids[2]});
    auto gone =
        list_api_keys(db.conn, {key_state::expired, key_state::revoked}, 100, std::nullopt, now);
    CHECK(gone.count == 2);

    // Pages: two, then below the last one's id.
    auto first = list_api_keys(db.conn, {}, 2, std::nullopt, now);
    CHECK(ids_of(first) == std::vector<std::int64_t>{ids[4], ids[3]});
    CHECK(first.count == 5);
    CHECK(ids_of(list_api_keys(db.conn, {}, 2, ids[3], now)) ==
          std::vector<std::int64_t>{ids[2], ids[1]});

    auto parsed = key_states_from("active,revoked");
    REQUIRE(parsed);
    CHECK(*parsed == std::vector<key_state>{key_state::active, key_state::revoked});
    for (const char* bad : {"", "Active", "active,", "gone"}) {
        auto r = key_states_from(bad);
        REQUIRE_FALSE(r);
        CHECK(r.error().field() == "state");
    }
}

TEST_CASE("api keys: last use, seen per request and written forward only", "[auth]") {
    auth_fixture f;
    auto& db = f.db;
    auto k = create_api_key(db.conn, "app", {"predict"}, "admin");
    REQUIRE(k);
    CHECK(f.auth.key_uses().empty());
    CHECK(f.auth.take_unwritten_key_uses().empty());
    const micros before = now_micros();
    http_request req = with_bearer(k->key);
    REQUIRE_FALSE(f.auth.check(req, access::predict).has_value());
    const auto seen = f.auth.key_uses();
    REQUIRE(seen.count(k->row.id) == 1);
    CHECK(seen.at(k->row.id) >= before);
    // A refused key (wrong scope) still authenticated; an unknown one is no key's use.
    http_request unknown = with_bearer("knl_nobody");
    REQUIRE(f.auth.check(unknown, access::predict).has_value());
    CHECK(f.auth.key_uses().size() == 1);

    auto taken = f.auth.take_unwritten_key_uses();
    REQUIRE(taken.size() == 1);
    CHECK(taken[0].first == k->row.id);
    CHECK(f.auth.take_unwritten_key_uses().empty());  // once
    // A write that could not be queued: taken again next time.
    f.auth.unwrite_key_uses(taken);
    CHECK(f.auth.take_unwritten_key_uses() == taken);

    record_key_uses(db.conn, taken);
    auto stored = [&] {
        auto l = list_api_keys(db.conn, {}, 10, std::nullopt, now_micros());
        REQUIRE(l.keys.size() == 1);
        return l.keys[0].last_used_at;
    };
    CHECK(stored() == taken[0].second);
    // An older time (a flush that lost a race) does not move it back.
    record_key_uses(db.conn, {{k->row.id, taken[0].second - 5'000'000}});
    CHECK(stored() == taken[0].second);
    record_key_uses(db.conn, {{k->row.id, taken[0].second + 5'000'000}});
    CHECK(stored() == taken[0].second + 5'000'000);
}

TEST_CASE("api keys: limited to some models and streams", "[auth]") {
    auth_fixture f;
    auto& db = f.db;
    SECTION("the limits are checked against the scopes and the names") {
        key_limits admin_limited{{"m"}, {}};
        auto r = check_key_limits({"admin"}, admin_limited);
        REQUIRE_FALSE(r);
        CHECK(r.field() == "models");
        key_limits no_scope{{}, {"s"}};
        r = check_key_limits({"predict"}, no_scope);
        REQUIRE_FALSE(r);
        CHECK(r.field() == "streams");
        CHECK(r.message().find("ingest") != std::string::npos);
        key_limits bad_name{{"bad name"}, {}};
        r = check_key_limits({"predict"}, bad_name);
        REQUIRE_FALSE(r);
        CHECK(r.message().find("\"bad name\" is no model name") != std::string::npos);
        key_limits long_stream{{}, {std::string(128, 's')}};
        CHECK(check_key_limits({"ingest"}, long_stream));
        long_stream.streams = {std::string(129, 's')};
        CHECK_FALSE(check_key_limits({"ingest"}, long_stream));
        // An unknown scope is left for the store to name.
        key_limits with_bad_scope{{"m"}, {}};
        CHECK(check_key_limits({"bogus"}, with_bad_scope));
        // 150 names, 3 of them distinct: within the 100.
        key_limits many{{}, {}};
        for (int i = 0; i < 150; ++i) many.models.push_back("m" + std::to_string(i % 3));
        REQUIRE(check_key_limits({"predict"}, many));
        CHECK(many.models.size() == 3);
        key_limits repeated{{"a", "b", "a"}, {"s", "s"}};
        REQUIRE(check_key_limits({"predict", "ingest"}, repeated));
        CHECK(repeated.models == std::vector<std::string>{"a", "b"});
        CHECK(repeated.streams == std::vector<std::string>{"s"});
    }
    SECTION("a predict key asks its models only; an ingest key's streams go with the request") {
        auto k = create_api_key(db.conn, "app", {"predict", "ingest"}, "admin", std::nullopt,
                                key_limits{{"likes"}, {"posts", "likes"}});
        REQUIRE(k);
        auto listed = list_api_keys(db.conn, {}, 10, std::nullopt, now_micros());
        REQUIRE(listed.keys.size() == 1);
        CHECK(listed.keys[0].limits.models == std::vector<std::string>{"likes"});
        CHECK(listed.keys[0].limits.streams == std::vector<std::string>{"posts", "likes"});

        http_request mine = with_bearer(k->key);
        mine.path_params["name"] = "likes";
        CHECK_FALSE(f.auth.check(mine, access::predict).has_value());
        http_request other = with_bearer(k->key);
        other.path_params["name"] = "churn";
        auto refused = f.auth.check(other, access::predict);
        REQUIRE(refused.has_value());
        CHECK(refused->status == 403);
        CHECK(refused->body.find("may predict with model \\\"likes\\\" only, not "
                                 "\\\"churn\\\"") != std::string::npos);
        CHECK(refused->body.find("\"field\":\"name\"") != std::string::npos);

        http_request ingest = with_bearer(k->key);
        CHECK_FALSE(f.auth.check(ingest, access::ingest).has_value());
        CHECK(ingest.key_streams == std::vector<std::string>{"posts", "likes"});
        // Reads are not limited.
        http_request read = with_bearer(k->key);
        CHECK_FALSE(f.auth.check(read, access::any).has_value());
    }
}
