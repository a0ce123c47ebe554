-- wrk script: POST one order per request, each with its own order id.
-- Arguments (after `--`): RATE THREADS TAG
--   RATE    total requests/s across all threads; 0 = as fast as the stack answers
--   THREADS wrk's -t, so each thread paces RATE/THREADS
--   TAG     prefix that keeps order ids unique across runs
-- done() prints one line "CHAOSKIT_RESULT {json}" for bench/bench_chain.py.
local ffi = require("ffi")
ffi.cdef [[
typedef struct { long tv_sec; long tv_usec; } chaoskit_timeval;
int gettimeofday(chaoskit_timeval *tv, void *tz);
]]
local tv = ffi.new("chaoskit_timeval")

local function now_ms()
  ffi.C.gettimeofday(tv, nil)
  return tonumber(tv.tv_sec) * 1000 + tonumber(tv.tv_usec) / 1000
end

local text = "help me buy a no-ice Boya Juexian within 15 min to the office"
local threads = {}
local counter = 0
local interval_ms = 0
local next_ms = nil
local tag = "wrk"

function setup(thread)
  table.insert(threads, thread)
  thread:set("thread_id", #threads)
end

function init(args)
  local rate = tonumber(args[1] or "0")
  local nthreads = tonumber(args[2] or "1")
  tag = args[3] or "wrk"
  if rate > 0 then
    interval_ms = 1000 * nthreads / rate
  end
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/json"
end

-- Pacing: each request takes the next free slot on this thread's schedule; a thread that
-- fell behind does not burst to catch up.
function delay()
  if interval_ms == 0 then
    return 0
  end
  local now = now_ms()
  if next_ms == nil or next_ms < now then
    next_ms = now
  end
  local slot = next_ms
  next_ms = next_ms + interval_ms
  return slot - now
end

function request()
  counter = counter + 1
  local id = string.format("%s-%d-%d", tag, thread_id, counter)
  local body = string.format(
    '{"intent_id":"%s","order_id":"%s","user_id":"u-%d-%d","text":"%s"}',
    id, id, thread_id, counter % 5000, text)
  return wrk.format(nil, nil, nil, body)
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'CHAOSKIT_RESULT {"requests":%d,"duration_us":%d,"status_errors":%d,"socket_errors":%d,'
      .. '"p50_us":%d,"p90_us":%d,"p99_us":%d,"max_us":%d,"mean_us":%.1f}\n',
    summary.requests, summary.duration, e.status, e.connect + e.read + e.write + e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max,
    latency.mean))
end
