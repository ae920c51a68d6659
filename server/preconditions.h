// Conditional writes (RFC 9110, section 13.1). A client that read a resource
// sends its ETag back in If-Match, and the write happens only if the resource
// is still in that state: two people editing a definition at once cannot
// overwrite each other unseen, and a rollback retried after a lost answer
// cannot roll back twice. If-None-Match: * asks that the resource not exist.
//
// Kennel's ETags are strong and say what state they name: "r3" a model's
// definition at revision 3, "v7" an alias pointing at version 7, "e2" an
// experiment after its second recorded change (its start the first). The
// check runs inside the write's transaction, so nothing can change between
// it and the write.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "store/status.h"

namespace kennel {

struct http_request;
struct http_response;

struct preconditions {
    struct tag_list {
        bool present = false;
        bool any = false;               // "*"
        std::vector<std::string> tags;  // opaque parts, without quotes
        std::vector<bool> weak;         // W/ per tag
    };
    tag_list if_match, if_none_match;
    bool empty() const { return !if_match.present && !if_none_match.present; }
};

// Reads every If-Match and If-None-Match line of the request. A list that is
// not entity tags (e.g. `r3` without its quotes) is a 400 naming the header.
result<preconditions> read_preconditions(const http_request& req);

// Whether a write may go ahead on a resource whose ETag is now `current`
// (its opaque part; nullopt: the resource does not exist). A condition that
// does not hold is a 412 (error_kind::stale) naming the header, `what` (e.g.
// "the definition of model likes") and its state now.
status check_preconditions(const preconditions& p, const std::optional<std::string>& current,
                           std::string_view what);

// check_preconditions for an alias that points at `version` now (nullopt:
// unset), naming "alias A of model M"; etag_now is set to its ETag, for the
// header of a 412.
status check_alias_preconditions(const preconditions& p, std::optional<std::int64_t> version,
                                 const std::string& model, const std::string& alias,
                                 std::optional<std::string>& etag_now);

// "r3" -> "\"r3\"", for an ETag header.
std::string quoted_etag(std::string_view opaque);

// Adds ETag: "<opaque>" to an answer.
void set_etag(http_response& r, std::string_view opaque);
// The answer with ETag set when `opaque` is (a 412's: the state now).
http_response with_etag(http_response r, const std::optional<std::string>& opaque);

// The opaque ETag parts (see the header comment).
std::string revision_etag(std::int64_t revision);
std::string alias_etag(std::int64_t version);
std::string experiment_etag(std::int64_t changes);

}  // namespace kennel
