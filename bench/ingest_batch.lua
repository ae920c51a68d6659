-- wrk script for bench/ingest: POST /v1/facts with NDJSON bodies
-- (Content-Type: application/x-ndjson) of BENCH_BATCH facts each (default 1000).
--
-- Each body is generated per request and every fact in it is new: entity
-- "t<thread>-<counter>" with a per-thread counter over all facts sent, so no
-- fact repeats within a request, across requests or across threads.
--
-- Kennel answers {"stored":N,"duplicates":N,"rejected":N,"items":[{"id":..,
-- "index":..,"status":"stored"},...]}; the ids of items with status "stored"
-- are collected and, at the end, written one per line to BENCH_IDS_FILE, and a
-- summary line "BENCH {json}" is printed for bench/ingest to read.

local threads = {}
local next_tid = 1

function setup(thread)
   thread:set("tid", next_tid)
   next_tid = next_tid + 1
   table.insert(threads, thread)
end

function init(args)
   batch = tonumber(os.getenv("BENCH_BATCH") or "1000")
   n = 0
   ids = {}
   statuses = {}
   not_stored = 0   -- items answered "duplicate" or "rejected" inside 2xx bodies
   bad_body = 0
   path = "/v1/facts"
   headers = {["Content-Type"] = "application/x-ndjson"}
   -- Kennel with authentication: bench/ingest creates an ingest key and passes
   -- "Bearer <key>" here.
   local auth = os.getenv("BENCH_AUTH")
   if auth and auth ~= "" then headers["Authorization"] = auth end
end

function request()
   local lines = {}
   for i = 1, batch do
      n = n + 1
      lines[i] = string.format(
         '{"stream":"posts","entity":"t%d-%d","data":{"length":%d,"hashtags":%d,"breed":"corgi","hour":%d}}',
         tid, n, n % 500, n % 10, n % 24)
   end
   return wrk.format("POST", path, headers, table.concat(lines, "\n") .. "\n")
end

function response(status, headers, body)
   statuses[status] = (statuses[status] or 0) + 1
   if status >= 200 and status < 300 then
      local seen = 0
      for id, st in body:gmatch('"id":(%d+),"index":%d+,"status":"(%a+)"') do
         seen = seen + 1
         if st == "stored" then ids[#ids + 1] = tonumber(id) else not_stored = not_stored + 1 end
      end
      if seen == 0 then bad_body = bad_body + 1 end
   end
end

function done(summary, latency, requests)
   local ids_file = os.getenv("BENCH_IDS_FILE")
   local out = nil
   local total_ids, total_bad, total_not_stored = 0, 0, 0
   local by_status = {}
   for _, t in ipairs(threads) do
      for k, v in pairs(t:get("statuses") or {}) do by_status[k] = (by_status[k] or 0) + v end
      total_bad = total_bad + (t:get("bad_body") or 0)
      total_not_stored = total_not_stored + (t:get("not_stored") or 0)
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
      'BENCH {"requests":%d,"seconds":%.3f,"acked_facts":%d,"items_not_stored":%d,"bad_bodies":%d,' ..
      '"statuses":{%s},"errors":{"connect":%d,"read":%d,"write":%d,"timeout":%d,"status":%d},' ..
      '"latency_us":{"p50":%d,"p99":%d,"max":%d}}\n',
      summary.requests, summary.duration / 1e6, total_ids, total_not_stored, total_bad,
      table.concat(parts, ","),
      summary.errors.connect, summary.errors.read, summary.errors.write, summary.errors.timeout,
      summary.errors.status, latency:percentile(50), latency:percentile(99), latency.max))
end
