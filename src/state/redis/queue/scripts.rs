//! The Lua scripts of the Redis write queue (`super`): each change of the queue is one of
//! them, so each is atomic on the server. The key layout they share is described in the
//! parent's module note; ARGV[1] is always the key prefix. Kept apart from the Rust that calls
//! them so that each side stays readable.

/// Lua shared by the scripts. ARGV[1] is always the key prefix.
macro_rules! prelude {
    () => {
        r"
local p = ARGV[1]
local function rec(id)
  local h = redis.call('HGETALL', p .. 'd:' .. id)
  if #h == 0 then return false end
  return {h, redis.call('LRANGE', p .. 'a:' .. id, 0, -1)}
end
local function tidy(route)
  if redis.call('ZCARD', p .. 'pending:' .. route) == 0
     and redis.call('ZCARD', p .. 'dead:' .. route) == 0 then
    redis.call('SREM', p .. 'routes', route)
  end
end
local function history(id, attempt)
  local a = p .. 'a:' .. id
  redis.call('RPUSH', a, attempt)
  redis.call('LTRIM', a, -50, -1)
end
local function member(seq, id)
  return string.format('%020d', seq) .. ':' .. id
end
local function enqueue(id, m, route, okey, accepted_at, next_at)
  redis.call('ZADD', p .. 'pending', accepted_at, id)
  redis.call('ZADD', p .. 'pending:' .. route, accepted_at, id)
  redis.call('SADD', p .. 'routes', route)
  local behind = false
  if okey then
    local kl = p .. 'key:' .. okey
    behind = redis.call('LLEN', kl) > 0
    redis.call('RPUSH', kl, id)
  end
  if not behind then redis.call('ZADD', p .. 'due', next_at, m) end
end
"
    };
}

/// KEYS[1] (optional): the idempotency record. ARGV: prefix, id, route, has order key (`1`),
/// order key, identity, request, generation, now, max pending, fingerprint, TTL ms, status,
/// headers, body. Returns {'queued'} | {'full'} | the claim script's answers.
pub(super) const ACCEPT: &str = concat!(
    prelude!(),
    r"
local id = ARGV[2]
local idem = KEYS[1]
if idem then
  local r = redis.call('HMGET', idem, 'fp', 'state', 'status', 'headers', 'body')
  if r[1] then
    if r[1] ~= ARGV[11] then return {'mismatch'} end
    if r[2] == 'f' then return {'inflight'} end
    return {'replay', r[3], r[4], r[5]}
  end
end
if redis.call('ZCARD', p .. 'pending') >= tonumber(ARGV[10]) then return {'full'} end
local d = p .. 'd:' .. id
if redis.call('EXISTS', d) == 1 then
  return redis.error_reply('a delivery ' .. id .. ' exists already')
end
local seq = redis.call('INCR', p .. 'seq')
local m = member(seq, id)
redis.call('HSET', d, 'id', id, 'seq', seq, 'm', m, 'route', ARGV[3], 'identity', ARGV[6],
  'request', ARGV[7], 'generation', ARGV[8], 'accepted_at', ARGV[9], 'status', 'pending',
  'tries', 0, 'next_at', ARGV[9])
local okey = false
if ARGV[4] == '1' then
  okey = ARGV[5]
  redis.call('HSET', d, 'order_key', okey)
end
redis.call('DEL', p .. 'a:' .. id)
enqueue(id, m, ARGV[3], okey, ARGV[9], ARGV[9])
if idem then
  redis.call('DEL', idem)
  redis.call('HSET', idem, 'fp', ARGV[11], 'state', 'c', 'status', ARGV[13], 'headers', ARGV[14],
    'body', ARGV[15])
  redis.call('PEXPIRE', idem, ARGV[12])
end
return {'queued'}
"
);

/// ARGV: prefix, now, lease end, limit. Returns the leased records.
pub(super) const LEASE: &str = concat!(
    prelude!(),
    r"
local now = ARGV[2]
local expired = redis.call('ZRANGEBYSCORE', p .. 'leased', '-inf', now, 'WITHSCORES')
for i = 1, #expired, 2 do
  local m = expired[i]
  redis.call('ZADD', p .. 'due', expired[i + 1], m)
  redis.call('HSET', p .. 'd:' .. string.sub(m, 22), 'next_at', expired[i + 1])
end
if #expired > 0 then redis.call('ZREMRANGEBYSCORE', p .. 'leased', '-inf', now) end
local out = {}
local taken = redis.call('ZRANGEBYSCORE', p .. 'due', '-inf', now, 'LIMIT', 0, ARGV[4])
for _, m in ipairs(taken) do
  redis.call('ZREM', p .. 'due', m)
  local r = rec(string.sub(m, 22))
  if r then
    redis.call('ZADD', p .. 'leased', ARGV[3], m)
    out[#out + 1] = r
  end
end
return out
"
);

/// ARGV: prefix, id, at, kind (`delivered` | `retry` | `dead`), the attempt as JSON, and the
/// result as JSON (delivered) or the next attempt's time (retry). Returns 1 when recorded.
pub(super) const FINISH: &str = concat!(
    prelude!(),
    r"
local id = ARGV[2]
local at = ARGV[3]
local kind = ARGV[4]
local d = p .. 'd:' .. id
local r = redis.call('HMGET', d, 'status', 'm', 'route', 'order_key', 'seq')
if r[1] ~= 'pending' then return 0 end
local m, route, okey = r[2], r[3], r[4]
redis.call('HINCRBY', d, 'tries', 1)
history(id, ARGV[5])
redis.call('ZREM', p .. 'leased', m)
if kind == 'retry' then
  redis.call('HSET', d, 'next_at', ARGV[6])
  if not okey or redis.call('LINDEX', p .. 'key:' .. okey, 0) == id then
    redis.call('ZADD', p .. 'due', ARGV[6], m)
  end
  return 1
end
redis.call('ZREM', p .. 'due', m)
redis.call('ZREM', p .. 'pending', id)
redis.call('ZREM', p .. 'pending:' .. route, id)
if okey then
  local kl = p .. 'key:' .. okey
  local head = redis.call('LINDEX', kl, 0)
  redis.call('LREM', kl, 1, id)
  if head == id then
    local nxt = redis.call('LINDEX', kl, 0)
    if nxt then
      local nm = redis.call('HGET', p .. 'd:' .. nxt, 'm')
      if nm then
        redis.call('ZADD', p .. 'due', at, nm)
        redis.call('HSET', p .. 'd:' .. nxt, 'next_at', at)
      end
    end
  end
end
redis.call('HSET', d, 'finished_at', at)
if kind == 'delivered' then
  redis.call('HSET', d, 'status', 'delivered', 'result', ARGV[6])
  redis.call('ZADD', p .. 'delivered', at, id)
else
  redis.call('HSET', d, 'status', 'dead')
  redis.call('ZADD', p .. 'dead:' .. route, r[5], id)
end
tidy(route)
return 1
"
);

/// ARGV: prefix, generation, now, the `replayed` attempt as JSON, mode (`ids` | `route`), then
/// the ids or the route. Returns the ids that were dead and went back.
pub(super) const REPLAY: &str = concat!(
    prelude!(),
    r"
local ids = {}
if ARGV[5] == 'route' then
  ids = redis.call('ZRANGE', p .. 'dead:' .. ARGV[6], 0, -1)
else
  for i = 6, #ARGV do ids[#ids + 1] = ARGV[i] end
end
local out = {}
for _, id in ipairs(ids) do
  local d = p .. 'd:' .. id
  local r = redis.call('HMGET', d, 'status', 'route', 'order_key', 'accepted_at')
  if r[1] == 'dead' then
    redis.call('ZREM', p .. 'dead:' .. r[2], id)
    local seq = redis.call('INCR', p .. 'seq')
    local m = member(seq, id)
    redis.call('HSET', d, 'seq', seq, 'm', m, 'status', 'pending', 'tries', 0,
      'generation', ARGV[2], 'next_at', ARGV[3])
    redis.call('HDEL', d, 'finished_at')
    history(id, ARGV[4])
    enqueue(id, m, r[2], r[3], r[4], ARGV[3])
    out[#out + 1] = id
  end
end
return out
"
);

/// ARGV: prefix, ids…. Returns the ids that were dead and went.
pub(super) const DROP: &str = concat!(
    prelude!(),
    r"
local out = {}
for i = 2, #ARGV do
  local id = ARGV[i]
  local d = p .. 'd:' .. id
  local r = redis.call('HMGET', d, 'status', 'route')
  if r[1] == 'dead' then
    redis.call('ZREM', p .. 'dead:' .. r[2], id)
    redis.call('DEL', d, p .. 'a:' .. id)
    tidy(r[2])
    out[#out + 1] = id
  end
end
return out
"
);

/// ARGV: prefix, before (ms, excluded), batch. Returns how many records went.
pub(super) const PURGE: &str = concat!(
    prelude!(),
    r"
local ids = redis.call('ZRANGEBYSCORE', p .. 'delivered', '-inf', '(' .. ARGV[2], 'LIMIT', 0, ARGV[3])
for _, id in ipairs(ids) do
  redis.call('ZREM', p .. 'delivered', id)
  if redis.call('HGET', p .. 'd:' .. id, 'status') == 'delivered' then
    redis.call('DEL', p .. 'd:' .. id, p .. 'a:' .. id)
  end
end
return #ids
"
);

/// ARGV: prefix, ids…. Returns the records found.
pub(super) const GET: &str = concat!(
    prelude!(),
    r"
local out = {}
for i = 2, #ARGV do
  local r = rec(ARGV[i])
  if r then out[#out + 1] = r end
end
return out
"
);

/// ARGV: prefix, one route (`1`) or all, the route, limit, limit - 1. Returns the oldest dead
/// letters' records, by seq.
pub(super) const DEAD: &str = concat!(
    prelude!(),
    r"
local routes
if ARGV[2] == '1' then routes = {ARGV[3]} else routes = redis.call('SMEMBERS', p .. 'routes') end
local all = {}
for _, r in ipairs(routes) do
  local e = redis.call('ZRANGE', p .. 'dead:' .. r, 0, ARGV[5], 'WITHSCORES')
  for i = 1, #e, 2 do all[#all + 1] = {tonumber(e[i + 1]), e[i]} end
end
table.sort(all, function(a, b) return a[1] < b[1] end)
local lim = tonumber(ARGV[4])
local out = {}
for i = 1, #all do
  if #out >= lim then break end
  local r = rec(all[i][2])
  if r then out[#out + 1] = r end
end
return out
"
);

/// ARGV: prefix. Returns {route, pending, oldest accepted_at or '', dead} per route.
pub(super) const STATS: &str = concat!(
    prelude!(),
    r"
local out = {}
for _, r in ipairs(redis.call('SMEMBERS', p .. 'routes')) do
  local first = redis.call('ZRANGE', p .. 'pending:' .. r, 0, 0, 'WITHSCORES')
  out[#out + 1] = {r, redis.call('ZCARD', p .. 'pending:' .. r), first[2] or '',
    redis.call('ZCARD', p .. 'dead:' .. r)}
end
return out
"
);

/// ARGV: prefix. Returns {the soonest due time or '', the soonest lease end or ''}.
pub(super) const NEXT: &str = r"
local p = ARGV[1]
local a = redis.call('ZRANGE', p .. 'due', 0, 0, 'WITHSCORES')
local b = redis.call('ZRANGE', p .. 'leased', 0, 0, 'WITHSCORES')
return {a[2] or '', b[2] or ''}
";
