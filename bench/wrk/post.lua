-- wrk script: POST a JSON body read from the file named by $BODY
-- (Content-Type: application/json), and print one line of JSON when the run
-- ends:
--   {"requests": N, "duration_s": x, "rps": x, "p50_ms": x, "p99_ms": x,
--    "p999_ms": x, "max_ms": x, "errors": N, "non2xx": N, "timeouts": N,
--    "connect_errors": N, "read_errors": N, "write_errors": N, "bytes": N}
-- "errors" counts socket errors (connect + read + write + timeout); "non2xx"
-- is wrk's status-error count (responses with status >= 400; the servers
-- benchmarked here never answer 1xx/3xx). No response() callback is defined
-- on purpose: with one, wrk buffers every response body in Lua, which costs
-- client CPU on a 2-core machine. Latencies are those of completed requests
-- (wrk records microseconds; printed here in milliseconds).
--
-- usage: BODY=body.json wrk -t2 -c8 -d10s --latency -s bench/wrk/post.lua URL

local path = os.getenv("BODY")
if path == nil or path == "" then
  error("post.lua: set BODY to the path of a JSON request body")
end
local f = assert(io.open(path, "rb"))
local body = f:read("*a")
f:close()

wrk.method = "POST"
wrk.body = body
wrk.headers["Content-Type"] = "application/json"

function done(summary, latency, requests)
  local e = summary.errors
  local secs = summary.duration / 1e6
  local n = summary.requests
  local rps = 0
  if secs > 0 then rps = n / secs end
  io.write(string.format(
    '{"requests": %d, "duration_s": %.3f, "rps": %.1f, "p50_ms": %.3f, "p99_ms": %.3f, "p999_ms": %.3f, "max_ms": %.3f, "errors": %d, "non2xx": %d, "timeouts": %d, "connect_errors": %d, "read_errors": %d, "write_errors": %d, "bytes": %d}\n',
    n, secs, rps,
    latency:percentile(50) / 1000, latency:percentile(99) / 1000,
    latency:percentile(99.9) / 1000, latency.max / 1000,
    e.connect + e.read + e.write + e.timeout, e.status, e.timeout,
    e.connect, e.read, e.write, summary.bytes))
end
