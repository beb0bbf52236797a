-- wrk: 50 jobs of a status due within a random month.
local counter = 0
local statuses = { "planned", "released", "on_hold", "complete" }
function setup(thread) counter = counter + 1; thread:set("seed", counter) end
function init(args) math.randomseed(seed * 1299709 + os.time()) end
function request()
  local y = math.random(1998, 2024)
  local m = math.random(1, 12)
  local s = statuses[math.random(1, 4)]
  return wrk.format("GET", string.format("/v1/jobs?status=%s&due_from=%04d-%02d-01&due_to=%04d-%02d-28", s, y, m, y, m))
end
