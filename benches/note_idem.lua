-- wrk: the same write with a fresh Idempotency-Key each time (every request claims and
-- completes a record in the embedded store).
local counter = 0
function setup(thread) counter = counter + 1; thread:set("seed", counter) end
function init(args) math.randomseed(seed * 7919 + os.time()); n = 0 end
function request()
  n = n + 1
  return wrk.format("POST", "/v1/jobs/" .. math.random(1, 200000) .. "/notes",
    { ["Content-Type"] = "application/json", ["Idempotency-Key"] = "k-" .. seed .. "-" .. n .. "-" .. math.random(1, 1e9) },
    '{"text": "checked by the benchmark"}')
end
