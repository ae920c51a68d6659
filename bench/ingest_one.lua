-- wrk script for bench/ingest: POST /v1/facts, one fact per request.
--
-- Every request body is a new fact: the entity is "t<thread>-<counter>" with
-- a per-thread counter, so no two requests (in any thread) are duplicates;
-- Kennel derives a distinct idempotency key for each.
--
-- The ids Kennel acknowledges (status 201 "stored") are collected per thread
-- and, at the end, written one per line to the file named by the environment
-- variable BENCH_IDS_FILE (done() runs in wrk's main Lua state, which never
-- sees the script arguments), so bench/ingest
-- can check that every acknowledged fact is in the database. A summary line
-- "BENCH {json}" is printed for bench/ingest to read.

local threads = {}
local next_tid = 1

function setup(thread)
   thread:set("tid", next_tid)
   next_tid = next_tid + 1
   table.insert(threads, thread)
end

function init(args)
   n = 0
   ids = {}
   statuses = {}
   bad_body = 0
   path = "/v1/facts"
   headers = {["Content-Type"] = "application/json"}
   -- Kennel with authentication: bench/ingest creates an ingest key and passes
   -- "Bearer <key>" here.
   local auth = os.getenv("BENCH_AUTH")
   if auth and auth ~= "" then headers["Authorization"] = auth end
end

function request()
   n = n + 1
   local body = string.format(
      '{"stream":"posts","entity":"t%d-%d","data":{"length":%d,"hashtags":%d,"breed":"corgi","hour":%d}}',
      tid, n, n % 500, n % 10, n % 24)
   return wrk.format("POST", path, headers, body)
end

function response(status, headers, body)
   statuses[status] = (statuses[status] or 0) + 1
   if status == 201 then
      local id = body and body:match('"id":(%d+)')
      if id then ids[#ids + 1] = tonumber(id) else bad_body = bad_body + 1 end
   end
end

function done(summary, latency, requests)
   local ids_file = os.getenv("BENCH_IDS_FILE")
   local out = nil
   local total_ids, total_bad = 0, 0
   local by_status = {}
   for _, t in ipairs(threads) do
      for k, v in pairs(t:get("statuses") or {}) do by_status[k] = (by_status[k] or 0) + v end
      total_bad = total_bad + (t:get("bad_body") or 0)
   end
   if ids_file and ids_file ~= "" then out = io.open(ids_file, "w") end
   for _, t in ipairs(threads) do
      local list = t:get("ids") or {}
      total_ids = total_ids + #list
      if out then
         for i = 1, #list do out:write(list[i], "\n") end
      end
   end
   if out then out:close() end
   local parts = {}
   for k, v in pairs(by_status) do parts[#parts + 1] = string.format('"%d":%d', k, v) end
   io.write(string.format(
      'BENCH {"requests":%d,"seconds":%.3f,"acked_facts":%d,"bad_bodies":%d,' ..
      '"statuses":{%s},"errors":{"connect":%d,"read":%d,"write":%d,"timeout":%d,"status":%d},' ..
      '"latency_us":{"p50":%d,"p99":%d,"max":%d}}\n',
      summary.requests, summary.duration / 1e6, total_ids, total_bad, table.concat(parts, ","),
      summary.errors.connect, summary.errors.read, summary.errors.write, summary.errors.timeout,
      summary.errors.status, latency:percentile(50), latency:percentile(99), latency.max))
end
