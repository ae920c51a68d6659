// The prediction body readers: whenever the fast reader answers, the
// document reader must answer the same, and the reader the server uses must
// answer exactly as the document does (tests/unit/test_predict_body.cpp
// checks chosen bodies; this checks the ones libFuzzer finds).
#include <cstddef>
#include <cstdint>
#include <string>

#include "server/predict_body.h"
#include "tests/fuzz/fuzz_common.h"
#include "tests/unit/predict_body_model.h"

using namespace kennel;

namespace {

bool same(const predict_request& a, const predict_request& b) {
    if (a.batch != b.batch || a.deadline_ms != b.deadline_ms ||
        a.instances.size() != b.instances.size())
        return false;
    for (std::size_t i = 0; i < a.instances.size(); ++i) {
        const auto& x = a.instances[i];
        const auto& y = b.instances[i];
        if (x.entity != y.entity || !(x.record == y.record) || x.ignored != y.ignored ||
            x.missing != y.missing || x.features_hash != y.features_hash)
            return false;
    }
    return true;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    static const ml::model_serving model = testing::predict_body_model();
    const std::string body(reinterpret_cast<const char*>(data), size);
    std::optional<std::size_t> doc_index, whole_index;
    auto doc = parse_predict_document(model, body, doc_index);
    if (auto fast = parse_predict_fast(model, body)) {
        fuzz::require(doc.is_ok(), "the fast reader took a body the document reader refuses");
        fuzz::require(same(*fast, *doc), "the fast reader and the document reader disagree");
    }
    auto whole = parse_predict_body(model, body, whole_index);
    fuzz::require(whole.is_ok() == doc.is_ok(), "the server's reader and the document disagree");
    if (doc) {
        fuzz::require(same(*whole, *doc), "the server's reader reads another request");
    } else {
        fuzz::require(whole.error().to_string() == doc.error().to_string(),
                      "the server's reader gives another error");
        fuzz::require(whole_index == doc_index, "the server's reader names another instance");
    }
    return 0;
}
