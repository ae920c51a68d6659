// The demo data set: Sniffable-style dog posts and, a day later, their like
// counts, generated deterministically (same facts, same idempotency keys every
// run, so loading twice stores them once).
#pragma once

#include <vector>

#include "store/facts.h"

namespace kennel {

struct demo_options {
    int posts = 2000;
    micros start = 1762000000000000;  // 2025-11-01T12:26:40Z: fixed, so runs are identical
};

// Posts on stream "posts" (length, hashtags, breed, hour, caption, has_photo)
// and likes on stream "likes" (likes; about one in ten an interval estimate).
std::vector<fact_input> make_demo_facts(const demo_options& options);

}  // namespace kennel
