-- wrk: a point lookup of a random job, on the route with `batch`.
local counter = 0
function setup(thread) counter = counter + 1; thread:set("seed", counter) end
function init(args) math.randomseed(seed * 7919 + os.time()) end
function request() return wrk.format("GET", "/v1/batched/jobs/" .. math.random(1, 200000)) end
