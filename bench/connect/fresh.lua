-- wrk script for the Forge route's fresh-token case: every request carries
-- the next of the distinct tokens in the file named by FORGE_POOL (one a
-- line), so that each misses idbridge's verified-token cache. Each wrk
-- thread cycles through its own share of the tokens (thread i of n takes
-- lines i, i+n, …), so no token is sent twice within one cycle of the whole
-- pool, which holds more tokens than the cache. report.lua's done() prints
-- the RESULT line.
dofile(os.getenv("REPORT_LUA"))

local threads = 0
function setup(thread)
  thread:set("id", threads)
  threads = threads + 1
end

local mine, i = {}, 0
function init(args)
  local all = {}
  for line in io.lines(os.getenv("FORGE_POOL")) do
    if line ~= "" then all[#all + 1] = line end
  end
  local n = tonumber(os.getenv("THREADS") or "1")
  for k = id + 1, #all, n do mine[#mine + 1] = "Bearer " .. all[k] end
end

function request()
  i = i % #mine + 1
  return wrk.format(nil, nil, { ["Authorization"] = mine[i] })
end
