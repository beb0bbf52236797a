-- wrk: a queued note on a random job (202 once it is fsynced into the write queue; delivered
-- in the background).
local counter = 0
function setup(thread) counter = counter + 1; thread:set("seed", counter) end
function init(args) math.randomseed(seed * 7919 + os.time()) end
function request()
  return wrk.format("POST", "/v1/jobs/" .. math.random(1, 200000) .. "/notes/queued",
    { ["Content-Type"] = "application/json" }, '{"text": "queued by the benchmark"}')
end
