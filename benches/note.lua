-- wrk: a note on a random job (a write: insert and read back in one transaction).
local counter = 0
function setup(thread) counter = counter + 1; thread:set("seed", counter) end
function init(args) math.randomseed(seed * 7919 + os.time()) end
function request()
  return wrk.format("POST", "/v1/jobs/" .. math.random(1, 200000) .. "/notes",
    { ["Content-Type"] = "application/json" }, '{"text": "checked by the benchmark"}')
end
