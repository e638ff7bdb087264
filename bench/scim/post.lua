-- wrk script: POST /Users with a new, unique user per request (Okta's
-- create body), SCIM_PATH and TOKEN from the environment; RUN names the
-- run so that userNames never repeat across runs. Prints one RESULT line.
local path = os.getenv("SCIM_PATH")
local auth = "Bearer " .. os.getenv("TOKEN")
local run = os.getenv("RUN") or tostring(os.time())
local thread_count = 0
local counter = 0

function setup(thread)
  thread_count = thread_count + 1
  thread:set("tid", thread_count)
end

function request()
  counter = counter + 1
  local name = string.format("load-%s-%d-%d@example.com", run, tid or 0, counter)
  local body = string.format(
    '{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":"%s","name":{"givenName":"Load","familyName":"Test"},' ..
    '"emails":[{"primary":true,"value":"%s","type":"work"}],"displayName":"Load Test","locale":"en-US",' ..
    '"externalId":"00u%s","groups":[],"password":"1mz050nq","active":true}', name, name, name)
  return wrk.format("POST", path .. "/Users", { Authorization = auth, ["Content-Type"] = "application/scim+json" }, body)
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
