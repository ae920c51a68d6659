#include "server/demo.h"

#include <cmath>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>

namespace kennel {
namespace {

// A fixed-seed generator so the demo is the same on every machine
// (std::mt19937 is specified exactly, but distributions are not).
class demo_rng {
public:
    explicit demo_rng(std::uint64_t seed) : state_(seed) {}
    std::uint64_t next() {
        // splitmix64
        std::uint64_t z = (state_ += 0x9e3779b97f4a7c15ULL);
        z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
        z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
        return z ^ (z >> 31);
    }
    double uniform() { return static_cast<double>(next() >> 11) * 0x1.0p-53; }
    int below(int n) { return static_cast<int>(next() % static_cast<std::uint64_t>(n)); }
    double normal() {
        // Box-Muller; 1 - u keeps the log away from zero.
        double u1 = 1.0 - uniform(), u2 = uniform();
        return std::sqrt(-2.0 * std::log(u1)) * std::cos(6.283185307179586 * u2);
    }

private:
    std::uint64_t state_;
};

struct breed {
    const char* name;
    double effect;  // likes gained on average
};

const breed breeds[] = {{"corgi", 14},  {"pug", 9},       {"labrador", 4}, {"poodle", 2},
                        {"beagle", 6},  {"shiba", 12},    {"husky", 8},    {"terrier", 0}};
const char* words[] = {"good", "boy",   "walk",  "park", "zoomies", "nap",   "treat", "ball",
                       "snow", "beach", "happy", "sad",  "puppy",   "bath",  "sunny", "friday"};

}  // namespace

std::vector<fact_input> make_demo_facts(const demo_options& options) {
    using json = nlohmann::json;
    demo_rng rng(20261121);
    std::vector<fact_input> out;
    out.reserve(static_cast<std::size_t>(options.posts) * 2);
    const micros hour = 3600LL * 1000000;
    for (int i = 0; i < options.posts; ++i) {
        std::string entity = "post-" + std::to_string(i + 1);
        micros t = options.start + static_cast<micros>(i) * (hour / 2) + rng.below(1800) * 1000000LL;
        int length = 10 + rng.below(280);
        int hashtags = rng.below(8);
        const breed& b = breeds[rng.below(8)];
        int hour_of_day = rng.below(24);
        bool photo = rng.uniform() < 0.7;
        std::string caption;
        int n_words = 2 + rng.below(5);
        bool zoomies = false;
        for (int w = 0; w < n_words; ++w) {
            const char* word = words[rng.below(16)];
            zoomies = zoomies || std::string(word) == "zoomies";
            caption += (w ? " " : "") + std::string(word);
        }
        json post = {{"length", length}, {"hashtags", hashtags}, {"breed", b.name},
                     {"hour", hour_of_day}, {"caption", caption}, {"has_photo", photo}};
        fact_input pf;
        pf.stream = "posts";
        pf.entity = entity;
        pf.event_time = t;
        pf.data_json = post.dump();
        pf.idempotency_key = derive_idempotency_key(pf.stream, pf.entity, pf.event_time, pf.data_json);
        pf.key_derived = true;
        out.push_back(std::move(pf));

        double evening = (hour_of_day >= 17 && hour_of_day <= 21) ? 10 : 0;
        double likes = 5 + 0.08 * length + 3.5 * hashtags + b.effect + evening +
                       (photo ? 8 : 0) + (zoomies ? 6 : 0) + 4.0 * rng.normal();
        likes = std::max(0.0, std::round(likes));
        json like;
        if (rng.uniform() < 0.1) {
            // Some counts are estimates from a sampled feed: an interval.
            double spread = std::round(2 + rng.uniform() * 4);
            like = {{"likes", {{"lower", std::max(0.0, likes - spread)}, {"upper", likes + spread}}}};
        } else {
            like = {{"likes", static_cast<int>(likes)}};
        }
        fact_input lf;
        lf.stream = "likes";
        lf.entity = entity;
        lf.event_time = t + 24 * hour;
        lf.data_json = like.dump();
        lf.idempotency_key = derive_idempotency_key(lf.stream, lf.entity, lf.event_time, lf.data_json);
        lf.key_derived = true;
        out.push_back(std::move(lf));
    }
    return out;
}

}  // namespace kennel
