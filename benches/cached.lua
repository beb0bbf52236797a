-- wrk: a point lookup through the response cache, over 1,000 hot jobs.
local counter = 0
function setup(thread) counter = counter + 1; thread:set("seed", counter) end
function init(args) math.randomseed(seed * 15485863 + os.time()) end
function request() return wrk.format("GET", "/v1/cached/jobs/" .. math.random(1, 1000)) end
