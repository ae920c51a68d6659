-- wrk script for bench/predict: POST prediction requests, round-robin over a
-- set of prepared bodies.
--
-- Environment (done() runs in wrk's main Lua state, which never sees script
-- arguments, so everything comes from the environment):
--   BENCH_BODIES   file with one JSON request body per line (required)
--   BENCH_PATH     request path, e.g. /v1/models/bench_linear/predict
--   BENCH_AUTH     value of the Authorization header (optional)
--
-- Requests are formatted once, in init(); request() only picks the next one,
-- and there is no response() callback (it would make wrk copy every body into
-- Lua and cost CPU on the machine being measured). Status codes other than
-- 2xx/3xx are counted by wrk itself (summary.errors.status); bench/predict
-- checks answers separately (one curl per server before the runs, and
-- Kennel's fallback and deadline-miss counters after each run).
--
-- At the end a line "BENCH {json}" carries the summary for bench/predict.

local next_tid = 0

function setup(thread)
   thread:set("tid", next_tid)
   next_tid = next_tid + 1
end

function init(args)
   local path = os.getenv("BENCH_PATH") or "/"
   local headers = {["Content-Type"] = "application/json"}
   local auth = os.getenv("BENCH_AUTH")
   if auth and auth ~= "" then headers["Authorization"] = auth end
   reqs = {}
   local f = assert(io.open(os.getenv("BENCH_BODIES"), "r"))
   for line in f:lines() do
      if #line > 0 then reqs[#reqs + 1] = wrk.format("POST", path, headers, line) end
   end
   f:close()
   assert(#reqs > 0, "no bodies in BENCH_BODIES")
   -- Threads start at different bodies.
   i = (tid * 97) % #reqs
end

function request()
   i = i % #reqs + 1
   return reqs[i]
end

function done(summary, latency, requests)
   io.write(string.format(
      'BENCH {"requests":%d,"seconds":%.3f,"bytes":%d,' ..
      '"errors":{"connect":%d,"read":%d,"write":%d,"timeout":%d,"status":%d},' ..
      '"latency_us":{"p50":%d,"p90":%d,"p99":%d,"p999":%d,"max":%d,"mean":%.1f}}\n',
      summary.requests, summary.duration / 1e6, summary.bytes,
      summary.errors.connect, summary.errors.read, summary.errors.write, summary.errors.timeout,
      summary.errors.status, latency:percentile(50), latency:percentile(90),
      latency:percentile(99), latency:percentile(99.9), latency.max, latency.mean))
end
