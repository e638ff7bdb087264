-- wrk script: GET /Users?filter=userName eq "user<N>@example.com" for a
-- random one of the seeded users (SCIM_PATH, TOKEN and USERS from the
-- environment), the identity providers' hot path. Prints one RESULT line.
local path = os.getenv("SCIM_PATH")
local auth = "Bearer " .. os.getenv("TOKEN")
local users = tonumber(os.getenv("USERS") or "100000")
local thread_count = 0

function setup(thread)
  thread_count = thread_count + 1
  thread:set("tid", thread_count)
end

-- Requests are built once per thread, for 5,000 users drawn at random, so
-- that wrk spends its share of the CPU sending them, not formatting them.
local pool = {}
local next_request = 0

function init(args)
  math.randomseed(os.time() * 1000 + (tid or 0))
  for k = 1, 5000 do
    local i = math.random(0, users - 1)
    pool[k] = wrk.format("GET", string.format("%s/Users?filter=userName%%20eq%%20%%22user%06d%%40example.com%%22", path, i),
      { Authorization = auth })
  end
end

function request()
  next_request = next_request % #pool + 1
  return pool[next_request]
end

function done(summary, latency, requests)
  local secs = summary.duration / 1e6
  local e = summary.errors
  io.write(string.format(
    "RESULT requests=%d seconds=%.3f rps=%.1f p50_ms=%.3f p90_ms=%.3f p99_ms=%.3f p999_ms=%.3f max_ms=%.3f non2xx=%d err_connect=%d err_read=%d err_write=%d err_timeout=%d\n",
    summary.requests, secs, summary.requests / secs,
    latency:percentile(50) / 1000, latency:percentile(90) / 1000,
    latency:percentile(99) / 1000, latency:percentile(99.9) / 1000, latency.max / 1000,
    e.status, e.connect, e.read, e.write, e.timeout))
end
