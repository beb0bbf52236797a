-- wrk: the 50 newest jobs of a random customer.
local counter = 0
function setup(thread) counter = counter + 1; thread:set("seed", counter) end
function init(args) math.randomseed(seed * 104729 + os.time()) end
function request() return wrk.format("GET", "/v1/customers/" .. math.random(10001, 15000) .. "/jobs") end
