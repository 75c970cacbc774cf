-- wrk script for bench/api.py: GET /sync-runs/{id} rotating over the seeded runs, each with
-- its owner's bearer token. `wrk ... -- TARGETS_FILE`: one "run_id token" pair per line.
-- done() prints one JSON line (prefixed "WRK_JSON ") that bench/wrk_load.py parses.

local targets = {}
local index = 0

function init(args)
  for line in io.lines(args[1]) do
    local run_id, token = line:match("^(%S+)%s+(%S+)$")
    if run_id then
      targets[#targets + 1] = {
        path = "/sync-runs/" .. run_id,
        headers = { ["Authorization"] = "Bearer " .. token },
      }
    end
  end
  -- Threads start at different offsets so they do not ask for the same run at once.
  index = math.random(#targets) - 1
end

function request()
  index = index % #targets + 1
  local target = targets[index]
  return wrk.format("GET", target.path, target.headers)
end

function done(summary, latency, requests)
  local errors = summary.errors
  io.write(string.format(
    'WRK_JSON {"requests": %d, "duration_us": %d, "p50_us": %d, "p99_us": %d, '
      .. '"max_us": %d, "non_2xx": %d, "socket_errors": %d}\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    latency.max, errors.status, errors.connect + errors.read + errors.write + errors.timeout
  ))
end
