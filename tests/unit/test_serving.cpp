// Serving's scheduling parts: when a version runs on the request thread, and
// the slots that bound how many requests compute at once.
#include <catch2/catch.hpp>

#include <atomic>
#include <chrono>
#include <mutex>
#include <thread>
#include <vector>

#include "ml/predict_slots.h"
#include "ml/serving.h"

using namespace kennel;
using namespace std::chrono_literals;
using steady = std::chrono::steady_clock;

TEST_CASE("serving: a fast version stays on the request thread through rare slow calls",
          "[serving]") {
    // A preempted thread makes a 300 ns prediction look like milliseconds;
    // such calls must not send every later batch to the pool.
    const std::int64_t deadline_ns = 50'000'000;
    ml::loaded_version fast;
    CHECK_FALSE(fast.fast_enough(1, deadline_ns));  // never timed: not known to be fast
    for (int i = 0; i < 200; ++i) fast.record_duration(300);
    CHECK(fast.fast_enough(32, deadline_ns));
    for (int round = 0; round < 20; ++round) {
        fast.record_duration(8e6);  // one call in fifty is preempted for 8 ms
        for (int i = 0; i < 49; ++i) fast.record_duration(300);
        CHECK(fast.fast_enough(32, deadline_ns));
    }
    CHECK(fast.typical_ns.load() < 1000);

    // A version that is slow every time goes to the pool: 32 predictions of
    // 1 ms, times the safety factor of 10, are far past 50 ms.
    ml::loaded_version slow;
    for (int i = 0; i < 200; ++i) slow.record_duration(300);
    for (int i = 0; i < 400; ++i) slow.record_duration(1e6);
    CHECK_FALSE(slow.fast_enough(32, deadline_ns));
    CHECK(slow.fast_enough(1, deadline_ns));

    ml::loaded_version faulty;
    faulty.fault = "serve_sleep";
    for (int i = 0; i < 200; ++i) faulty.record_duration(300);
    CHECK_FALSE(faulty.fast_enough(1, deadline_ns));
}

TEST_CASE("slots: never more holders than slots, and every request gets one", "[slots]") {
    ml::predict_slots slots(3);
    // Catch2's assertions are not thread-safe: the threads count, the test checks.
    std::atomic<int> holding{0}, most{0}, served{0}, refused{0};
    std::vector<std::thread> threads;
    for (int t = 0; t < 12; ++t) {
        threads.emplace_back([&] {
            for (int i = 0; i < 300; ++i) {
                if (!slots.acquire_until(steady::now() + 60s)) {
                    ++refused;
                    continue;
                }
                const int now = ++holding;
                int seen = most.load();
                while (now > seen && !most.compare_exchange_weak(seen, now)) {
                }
                if (i % 50 == 0) std::this_thread::sleep_for(200us);  // holders overlap
                --holding;
                ++served;
                slots.release();
            }
        });
    }
    for (auto& t : threads) t.join();
    CHECK(refused == 0);
    CHECK(served == 12 * 300);
    CHECK(most.load() <= 3);
    CHECK(most.load() >= 2);
    CHECK(slots.waited() > 0);
    CHECK(slots.gave_up() == 0);
}

TEST_CASE("slots: waiters are served in the order they came", "[slots]") {
    ml::predict_slots slots(1);
    REQUIRE(slots.acquire_until(steady::now()));
    std::mutex mu;
    std::vector<int> order;
    std::vector<std::thread> threads;
    for (int t = 0; t < 5; ++t) {
        threads.emplace_back([&, t] {
            const bool got = slots.acquire_until(steady::now() + 60s);
            {
                std::lock_guard lock(mu);
                order.push_back(got ? t : -1);
            }
            if (got) slots.release();
        });
        // The next thread starts only once this one waits.
        while (slots.waited() < static_cast<std::uint64_t>(t + 1)) std::this_thread::yield();
        std::this_thread::sleep_for(5ms);  // and has joined the queue
    }
    slots.release();
    for (auto& t : threads) t.join();
    CHECK(order == std::vector<int>{0, 1, 2, 3, 4});
}

TEST_CASE("slots: a wait that times out takes no slot and leaks none", "[slots]") {
    ml::predict_slots slots(2);
    REQUIRE(slots.acquire_until(steady::now()));
    REQUIRE(slots.acquire_until(steady::now()));
    const auto t0 = steady::now();
    CHECK_FALSE(slots.acquire_until(t0 + 20ms));
    CHECK(steady::now() - t0 >= 20ms);
    CHECK(slots.gave_up() == 1);
    // Both slots come back, and the one that gave up is not owed one.
    slots.release();
    slots.release();
    CHECK(slots.acquire_until(steady::now()));
    CHECK(slots.acquire_until(steady::now()));
    CHECK_FALSE(slots.acquire_until(steady::now() + 1ms));

    // A holder that is released while the request waits: it gets the slot.
    std::thread later([&] {
        std::this_thread::sleep_for(20ms);
        slots.release();
    });
    CHECK(slots.acquire_until(steady::now() + 60s));
    later.join();
    CHECK(slots.gave_up() == 2);
}

TEST_CASE("slots: the guard releases its slot once", "[slots]") {
    ml::predict_slots slots(1);
    {
        ml::predict_slots::held h(slots, steady::now());
        CHECK_FALSE(slots.acquire_until(steady::now() + 1ms));
        h.release();
        CHECK(slots.acquire_until(steady::now()));  // the released slot
        slots.release();
    }  // already released: the destructor gives nothing back twice
    CHECK(slots.acquire_until(steady::now()));
    CHECK_FALSE(slots.acquire_until(steady::now() + 1ms));
}
