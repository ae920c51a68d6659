// Handler functions, one per route, named for the route. The route table in
// routes.cpp is the only place that maps paths to them.
#pragma once

#include <nlohmann/json_fwd.hpp>

#include <functional>
#include <optional>
#include <string>

#include "server/http_server.h"
#include "store/status.h"

namespace kennel {

class app;
class connection;
struct experiment_row;
struct model_row;

// Runs one recorded action on the writer, within the write timeout; `change`
// says whether it changed anything (an action already in effect records
// nothing). Shared by the actions that answer "changed".
result<bool> write_change(app& a, const std::function<result<bool>(connection&)>& change);

// The 404 for a model nothing serves: unknown, or archived (naming when, by
// whom, why and the way back). Read only on that path.
status unserved_model(app& a, const std::string& name);

// The 400 for a model name no model can have (field "name").
status model_name_problem();

// A model's archive as its answers show it ({"at", "by", "reason"}), or
// null while it is in service.
nlohmann::json archive_json(connection& c, const model_row& m);

// Models, jobs, versions, aliases (server/model_handlers.cpp).
http_response put_model(app& a, const http_request& req);
http_response get_models(app& a, const http_request& req);
http_response get_model(app& a, const http_request& req);
http_response get_model_revisions(app& a, const http_request& req);
http_response post_model_train(app& a, const http_request& req);
http_response post_model_archive(app& a, const http_request& req);
http_response post_model_restore(app& a, const http_request& req);
http_response get_model_jobs(app& a, const http_request& req);
http_response get_jobs(app& a, const http_request& req);
http_response get_job(app& a, const http_request& req);
http_response post_job_cancel(app& a, const http_request& req);
http_response get_model_versions(app& a, const http_request& req);
http_response get_model_version(app& a, const http_request& req);
http_response get_model_aliases(app& a, const http_request& req);
http_response get_model_alias(app& a, const http_request& req);
http_response put_model_alias(app& a, const http_request& req);
http_response delete_model_alias(app& a, const http_request& req);
http_response get_model_deployments(app& a, const http_request& req);

// Predictions (server/predict_handlers.cpp).
http_response post_model_predict(app& a, const http_request& req);

// Supervising serving (server/serving_handlers.cpp).
http_response post_version_disable(app& a, const http_request& req);
http_response post_version_enable(app& a, const http_request& req);
http_response post_model_rollback(app& a, const http_request& req);
http_response get_model_events(app& a, const http_request& req);
http_response post_model_experiment(app& a, const http_request& req);
http_response get_model_experiments(app& a, const http_request& req);
http_response get_model_experiment(app& a, const http_request& req);
http_response put_model_experiment(app& a, const http_request& req);
http_response post_model_experiment_end(app& a, const http_request& req);
// What an experiment's arms showed from its start until now (JSON), kept
// with its end; null when it cannot be computed.
std::optional<std::string> experiment_results(connection& c, const std::string& name,
                                              const experiment_row& e);
http_response get_model_live_metrics(app& a, const http_request& req);
http_response get_model_predictions(app& a, const http_request& req);
http_response get_model_drift(app& a, const http_request& req);  // server/drift_handler.cpp
http_response get_serving(app& a, const http_request& req);
http_response get_overview(app& a, const http_request& req);
http_response get_metrics(app& a, const http_request& req);

// Sign-in and API keys (server/auth_handlers.cpp).
http_response post_auth_login(app& a, const http_request& req);
http_response post_auth_logout(app& a, const http_request& req);
http_response get_auth_session(app& a, const http_request& req);
http_response get_keys(app& a, const http_request& req);
http_response get_key(app& a, const http_request& req);
http_response post_key(app& a, const http_request& req);
http_response delete_key(app& a, const http_request& req);

// The admin page's files (server/web_assets.cpp).
http_response get_web_index(app& a, const http_request& req);
http_response get_web_asset(app& a, const http_request& req);

}  // namespace kennel
