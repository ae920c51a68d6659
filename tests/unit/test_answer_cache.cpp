// The cache of answers shared by pollers: ages, one computation for many
// callers, errors kept by no one, and its bound.
#include <catch2/catch.hpp>

#include <atomic>
#include <condition_variable>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "server/answer_cache.h"

using namespace kennel;

namespace {

// A clock the test moves by hand.
struct test_clock {
    std::atomic<micros> now{1'000'000};
    std::function<micros()> fn() {
        return [this] { return now.load(); };
    }
};

}  // namespace

TEST_CASE("an answer is shared while it is young enough, and recomputed after", "[answer_cache]") {
    test_clock clock;
    answer_cache cache(8, clock.fn());
    int computed = 0;
    auto compute = [&] { return cached_answer{200, "answer " + std::to_string(++computed)}; };

    CHECK(cache.get("k", 5'000'000, compute).body == "answer 1");
    clock.now += 4'000'000;
    CHECK(cache.get("k", 5'000'000, compute).body == "answer 1");
    // A caller asking for a younger one gets a fresh answer, which others then share.
    CHECK(cache.get("k", 1'000'000, compute).body == "answer 2");
    CHECK(cache.get("k", 5'000'000, compute).body == "answer 2");
    // max_age 0: always fresh.
    CHECK(cache.get("k", 0, compute).body == "answer 3");
    CHECK(cache.get("k", 0, compute).body == "answer 4");
    clock.now += 5'000'001;
    CHECK(cache.get("k", 5'000'000, compute).body == "answer 5");
    // Keys are apart.
    CHECK(cache.get("other", 5'000'000, compute).body == "answer 6");
    CHECK(cache.get("k", 5'000'000, compute).body == "answer 5");
    CHECK(computed == 6);
}

TEST_CASE("callers arriving during a computation wait for it rather than compute again",
          "[answer_cache]") {
    test_clock clock;
    answer_cache cache(8, clock.fn());
    std::mutex m;
    std::condition_variable cv;
    bool started = false, release = false;
    std::atomic<int> computed{0};
    auto slow = [&] {
        ++computed;
        std::unique_lock lock(m);
        started = true;
        cv.notify_all();
        cv.wait(lock, [&] { return release; });
        return cached_answer{200, "slow"};
    };
    // Catch2's assertions are for the test's own thread: the others keep
    // what they got, checked after they are joined.
    std::vector<std::string> got(7);
    std::thread first([&] { got[0] = cache.get("k", 10'000'000, slow).body; });
    {
        std::unique_lock lock(m);
        cv.wait(lock, [&] { return started; });
    }
    // The first computation is under way: none of these may start another.
    std::vector<std::thread> others;
    for (int i = 0; i < 6; ++i)
        others.emplace_back([&, i] {
            got[static_cast<std::size_t>(i) + 1] = cache.get("k", 10'000'000, slow).body;
        });
    {
        std::lock_guard lock(m);
        release = true;
    }
    cv.notify_all();
    first.join();
    for (auto& t : others) t.join();
    CHECK(computed == 1);
    CHECK(got == std::vector<std::string>(7, "slow"));
}

TEST_CASE("an error is its caller's alone, and a failed computation frees its waiters",
          "[answer_cache]") {
    test_clock clock;
    answer_cache cache(8, clock.fn());
    int calls = 0;
    auto failing = [&] { return ++calls, cached_answer{500, "broken"}; };
    CHECK(cache.get("k", 10'000'000, failing).status == 500);
    CHECK(cache.get("k", 10'000'000, failing).status == 500);
    CHECK(calls == 2);
    CHECK(cache.size() == 0);

    auto throwing = [&]() -> cached_answer { throw std::runtime_error("thrown"); };
    CHECK_THROWS_AS(cache.get("k", 10'000'000, throwing), std::runtime_error);
    // Nothing is left counted as under way: the next caller computes at once.
    CHECK(cache.get("k", 10'000'000, [] { return cached_answer{200, "ok"}; }).body == "ok");
    CHECK(cache.size() == 1);
}

TEST_CASE("the cache keeps at most its capacity, dropping the oldest answer", "[answer_cache]") {
    test_clock clock;
    answer_cache cache(2, clock.fn());
    int computed = 0;
    auto compute = [&] { return cached_answer{200, std::to_string(++computed)}; };
    cache.get("a", 60'000'000, compute);
    clock.now += 1;
    cache.get("b", 60'000'000, compute);
    clock.now += 1;
    cache.get("c", 60'000'000, compute);
    CHECK(cache.size() == 2);
    CHECK(cache.get("b", 60'000'000, compute).body == "2");
    CHECK(cache.get("c", 60'000'000, compute).body == "3");
    CHECK(cache.get("a", 60'000'000, compute).body == "4");  // "a" was dropped
    CHECK(computed == 4);
}
