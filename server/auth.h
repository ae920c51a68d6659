// Authentication and authorisation for every route but /healthz and /readyz.
//
// A caller presents one of:
//   - an API key: "Authorization: Bearer knl_..." with scopes ingest,
//     predict, admin (admin may do everything);
//   - the admin's password: "Authorization: Basic ..." (for curl and scripts);
//   - the admin page's session cookie (HttpOnly, SameSite=Strict), with the
//     session's CSRF token in "X-CSRF-Token" on every state-changing request.
// Wrong passwords are slowed down: each failure costs a delay, and after
// repeated failures for a user or address the answer is 429 for a while.
// Checking a password (PBKDF2, and a wrong one's delay) holds an HTTP
// thread, so only a few checks run at once and a few more requests wait
// briefly for a place (a script's first burst of Basic-auth requests with
// one password: the first check verifies it for the rest); beyond that the
// answer is 503 at once. A flood of sign-ins never takes the threads that
// serve predictions.
//
// Threads: every method may be called from any thread.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <shared_mutex>
#include <string>
#include <vector>

#include "server/http_server.h"
#include "store/auth_store.h"
#include "store/reader_pool.h"
#include "store/writer.h"

namespace kennel {

struct session_info {
    std::string token;  // goes into the cookie only
    std::string user;
    std::string csrf;
    std::chrono::steady_clock::time_point expires;
    std::string password_hash;  // the user's stored hash at sign-in
};

// How many password checks run at once, and how many requests may wait
// how long for a place.
struct password_check_limits {
    std::size_t at_once = 2;
    std::size_t waiting = 8;
    std::chrono::milliseconds wait{2000};
    // Records of failed sign-ins kept, by user name and by address: a flood
    // of made-up ones must not grow memory without bound.
    std::size_t tracked_failures = 10'000;
    // Sessions kept per user: the oldest ends when a sign-in would pass it
    // (a script signing in again and again grew the map for 12 h).
    std::size_t sessions_per_user = 100;
};

class authenticator {
public:
    using clock_fn = std::function<std::chrono::steady_clock::time_point()>;

    // `clock` is steady_clock::now unless a test moves time itself; it is
    // called from any thread.
    explicit authenticator(reader_pool& readers,
                           std::chrono::milliseconds failure_delay = std::chrono::milliseconds(300),
                           clock_fn clock = {}, password_check_limits limits = {});

    // For the route table (see http_server.h).
    std::optional<http_response> check(http_request& req, access needs);

    result<session_info> login(const std::string& user, const std::string& password,
                               const std::string& remote_addr);
    void logout(const std::string& cookie_header);
    std::optional<session_info> session_from_cookie(const std::string& cookie_header);

    // Forget cached keys (after a create or revoke through the API).
    void forget_keys();
    // When each key last authenticated a request (by key id), as seen by
    // this server since it started: the list shows these before they are
    // written.
    std::map<std::int64_t, micros> key_uses();
    // The uses not yet written (see record_key_uses), now counted as
    // written; one caller at a time.
    std::vector<std::pair<std::int64_t, micros>> take_unwritten_key_uses();
    // Counts taken uses as unwritten again (their write could not be queued).
    void unwrite_key_uses(const std::vector<std::pair<std::int64_t, micros>>& uses);
    // Keys in the cache, known or not (at most a fixed bound).
    std::size_t cached_keys();
    // Users and addresses with failed sign-ins on record (at most a fixed bound).
    std::size_t tracked_failures();
    // Password checks running now, and those refused (503) since start.
    std::size_t password_checks_running();
    std::size_t password_checks_waiting();
    std::uint64_t password_checks_refused();
    const password_check_limits& password_checks() const { return limits_; }

    static constexpr const char* cookie_name = "kennel_session";

private:
    // Refused (429) while the user or the address is locked out.
    status throttle_check(const std::string& user, const std::string& addr);
    // A password check about to run, counted against the user's and the
    // address's failures until it ends (held by an `attempt`): concurrent
    // checks may not together run past a lockout, so a burst of guesses
    // gets no more checks than one at a time would. Refused (429) during a
    // lockout that began while the caller waited for a check place, and
    // while the checks already running could reach one.
    class attempt {
    public:
        attempt(authenticator& a, const std::string& user, const std::string& addr);
        ~attempt();
        attempt(const attempt&) = delete;
        attempt& operator=(const attempt&) = delete;
        const status& verdict() const { return verdict_; }

    private:
        authenticator& a_;
        std::string keys_[2];  // the user's ("" where trusted) and the address's
        status verdict_;
    };
    // Counts a wrong password for the user and for the address.
    void note_failure(const std::string& user, const std::string& addr);
    void note_success(const std::string& user, const std::string& addr);
    // ok, or unauthenticated (wrong), or unavailable (too many checks at once).
    status check_basic(const std::string& user, const std::string& password,
                       const std::string& addr);

    // Holds one of the limits_.at_once places for its scope, if one was
    // free or came free within limits_.wait.
    class check_place {
    public:
        explicit check_place(authenticator& a);
        ~check_place();
        check_place(const check_place&) = delete;
        check_place& operator=(const check_place&) = delete;
        explicit operator bool() const { return held_; }

    private:
        authenticator& a_;
        bool held_;
    };
    status too_many_checks();

    reader_pool& readers_;
    std::chrono::milliseconds failure_delay_;
    clock_fn clock_;
    const password_check_limits limits_;
    std::mutex places_mu_;
    std::condition_variable place_freed_;
    std::size_t checking_ = 0;  // under places_mu_, as the two below
    std::size_t waiting_ = 0;
    std::uint64_t checks_refused_ = 0;
    std::mutex mu_;
    // A key's last use: stored at most once a second per key, so that
    // threads answering one app's requests do not write one cache line on
    // every request.
    struct key_use {
        std::atomic<micros> last{0};
        std::atomic<micros> written{0};
    };
    struct cached_key {
        std::shared_ptr<const api_key_row> row;  // null: no such key; shared, not copied per request
        std::chrono::steady_clock::time_point at;
        key_use* use = nullptr;  // in uses_; null for no such key
    };
    // Every API request reads the key cache: readers share its lock.
    std::shared_mutex keys_mu_;
    // Bumped by forget_keys (under keys_mu_): a key row read from the
    // database before a revocation is not cached after it.
    std::uint64_t keys_generation_ = 0;
    std::map<std::string, cached_key> keys_;  // by key hash; short-lived so revocations apply
    // By key id, under keys_mu_; entries stay (one per key that ever
    // authenticated here), so cached_key may point into it.
    std::map<std::int64_t, std::unique_ptr<key_use>> uses_;
    std::mutex flush_mu_;  // one take_unwritten_key_uses at a time
    // The user's stored password hash: it changes with every new password
    // (a new salt), and a session or a remembered password of the old one
    // no longer counts. Read back on each use, since `kennel admin
    // set-password` changes it from another process.
    std::string stored_hash(const std::string& user);
    struct verified_password {
        std::chrono::steady_clock::time_point at;
        std::string stored_hash;
    };
    std::map<std::string, verified_password> basic_ok_;                     // by sha256(user:pass)
    std::map<std::string, session_info> sessions_;                          // by sha256(token)
    struct failures {
        int count = 0;
        int checking = 0;  // attempts running now
        std::chrono::steady_clock::time_point until{};
        std::chrono::steady_clock::time_point last{};  // the latest failure
    };
    std::map<std::string, failures> failures_;
    // Addresses a user signed in from (key: failure_key("pair", user NUL
    // addr)), with the time: a user's lockout does not apply there, so
    // wrong guesses from elsewhere cannot lock the admin out of the place
    // they work from. Bounded like failures_.
    std::map<std::string, std::chrono::steady_clock::time_point> trusted_;
    // The user's throttle key, or "" where the user signed in from addr
    // within trusted_for (under mu_).
    std::string user_key_from(const std::string& user, const std::string& addr);
    // The record of `who` (under mu_), making room for it within
    // limits_.tracked_failures.
    failures& failure_record(const std::string& who, std::chrono::steady_clock::time_point now);
};

// Checks a new key's limits against its scopes, and the names in them:
// models limit a key with the predict scope, streams one with ingest; an
// admin key does everything and takes none. Removes repeated names.
status check_key_limits(const std::vector<std::string>& scopes, key_limits& limits);
// What a limited key may use, for its refusals: `model "a"`, `streams "a", "b"`.
std::string limited_to(const std::string& kind, const std::vector<std::string>& names);

// Creates the admin user on first start: from KENNEL_ADMIN_PASSWORD, else a
// random password printed once. Returns the password when one was generated.
result<std::optional<std::string>> ensure_admin(fact_writer& writer, reader_pool& readers,
                                                const std::string& env_password);

}  // namespace kennel
