-- wrk: the gateway's static JSON route, for comparison with routes that reach the database.
function request() return wrk.format("GET", "/healthz") end
