package redis

import goredis "github.com/redis/go-redis/v9"

// Lua scripts run atomically on the server, so they can check and change a
// pending entry (or a consumer) in one step. Every script touches one
// stream key, so they work in Redis Cluster too.

// reclaimScript claims the group's entries idle for at least min-idle ms for
// the consumer (XAUTOCLAIM) and returns them with their delivery counters,
// which XAUTOCLAIM increments but does not return.
//
// Once it claimed something, it deletes the group's holder of released
// entries (see leaveScript) if that holds nothing any more.
//
// First it marks the consumer seen (resets its idle time in XINFO
// CONSUMERS), which claimOwnScript counts on: before Redis 7.2 neither a
// read nor a claim that finds nothing does. It reads the consumer's own
// pending entries after the greatest ID but one (XREADGROUP ... STREAMS
// key <ID>), a read that looks the consumer up and returns nothing (a read
// after the greatest ID itself does not look it up; one that returned
// entries would count a delivery). It creates the consumer again if
// another member's stale consumer cleanup deleted it.
//
// KEYS[1] stream; ARGV group, consumer, min-idle ms, start ID, count.
// Returns {next start ID, {{id, {field, value, ...}, delivery count}, ...}}.
var reclaimScript = goredis.NewScript(`
redis.call('XREADGROUP', 'GROUP', ARGV[1], ARGV[2], 'COUNT', 1, 'STREAMS', KEYS[1], '18446744073709551615-18446744073709551614')
local r = redis.call('XAUTOCLAIM', KEYS[1], ARGV[1], ARGV[2], ARGV[3], ARGV[4], 'COUNT', ARGV[5])
local out = {}
for _, e in ipairs(r[2]) do
  if e then
    local p = redis.call('XPENDING', KEYS[1], ARGV[1], e[1], e[1], 1)
    local n = 1
    if p[1] then n = p[1][4] end
    table.insert(out, {e[1], e[2], n})
  end
end
if #r[2] > 0 and #redis.call('XPENDING', KEYS[1], ARGV[1], '-', '+', 1, '` + releasedHolder + `') == 0 then
  redis.call('XGROUP', 'DELCONSUMER', KEYS[1], ARGV[1], '` + releasedHolder + `')
end
return {r[1], out}
`)

// releasedHolder is the consumer that holds the pending entries of members
// that left (see leaveScript) until a member claims them. It is no member:
// claimOwnScript does not count it. The adapter's consumer names
// (consumerName) have no colon, so no member can be called so.
const releasedHolder = "msgkit:released"

// leaveScript ends a member: it hands every pending entry the consumer
// still owns (released, nacked with a delay, or whose settlement failed)
// to releasedHolder, keeping the entry's idle time and delivery counter
// (XCLAIM ... IDLE <its idle> JUSTID), so that any member claims it when
// it would have, then deletes the consumer, which owns nothing now
// (XGROUP DELCONSUMER drops the pending entries of the consumer it
// deletes). A consumer left behind would count as a member until it had
// been silent for claimOwnScript's limit, and a member alone in its group
// would yield its nacked entries to it meanwhile.
//
// KEYS[1] stream; ARGV group, consumer. Returns how many entries it handed
// over.
var leaveScript = goredis.NewScript(`
local n, from = 0, '-'
while true do
  local p = redis.call('XPENDING', KEYS[1], ARGV[1], from, '+', 100, ARGV[2])
  if #p == 0 then break end
  for _, e in ipairs(p) do
    redis.call('XCLAIM', KEYS[1], ARGV[1], '` + releasedHolder + `', 0, e[1], 'IDLE', e[3], 'JUSTID')
    n = n + 1
  end
  from = '(' .. p[#p][1]
end
redis.call('XGROUP', 'DELCONSUMER', KEYS[1], ARGV[1], ARGV[2])
return n
`)

// claimOwnScript re-claims entries the consumer still owns, without counting
// a delivery, setting their idle time (and optionally their delivery
// counter): idle 0 extends the ack deadline, idle = ack deadline makes a
// nacked or released entry claimable at once. Entries another consumer has
// claimed meanwhile are left alone. Given the group's wake channel
// (ARGV[3]), it also counts the group's other consumers seen within ARGV[4]
// ms (XINFO CONSUMERS idle; a live member marks its consumer seen at every
// reclaim, see reclaimScript), so that a member that nacked knows whether
// another could take the entries, and when there are some, publishes the
// consumer's name on the channel (see waker; an error, such as an ACL
// without PUBLISH, is ignored). A consumer silent for longer (a crashed
// process's, until the stale consumer cleanup deletes it; or a member too
// busy to reclaim, which could not take the entries either) is not
// counted.
//
// KEYS[1] stream; ARGV group, consumer, wake channel or "", seen-within
// ms, then triples (id, idle ms, retry count or -1 to keep it). Returns
// {how many entries were claimed, the other consumers (-1 without a
// channel)}.
var claimOwnScript = goredis.NewScript(`
local n = 0
for i = 5, #ARGV, 3 do
  local id = ARGV[i]
  local p = redis.call('XPENDING', KEYS[1], ARGV[1], id, id, 1)
  if p[1] and p[1][2] == ARGV[2] then
    if tonumber(ARGV[i+2]) >= 0 then
      redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[2], 0, id, 'IDLE', ARGV[i+1], 'RETRYCOUNT', ARGV[i+2], 'JUSTID')
    else
      redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[2], 0, id, 'IDLE', ARGV[i+1], 'JUSTID')
    end
    n = n + 1
  end
end
local others = -1
if ARGV[3] ~= '' then
  others = 0
  local within = tonumber(ARGV[4])
  for _, c in ipairs(redis.call('XINFO', 'CONSUMERS', KEYS[1], ARGV[1])) do
    local name, idle
    for j = 1, #c, 2 do
      if c[j] == 'name' then name = c[j+1] end
      if c[j] == 'idle' then idle = c[j+1] end
    end
    if name ~= ARGV[2] and name ~= '` + releasedHolder + `' and (idle == nil or idle < within) then others = others + 1 end
  end
  if others > 0 then redis.pcall('PUBLISH', ARGV[3], ARGV[2]) end
end
return {n, others}
`)

// delConsumerScript deletes a consumer only when it owns no pending entries
// (XGROUP DELCONSUMER would drop them from the group: message loss), and
// when it has been idle for at least min-idle ms.
//
// KEYS[1] stream; ARGV group, consumer, min-idle ms. Returns 1 if deleted.
var delConsumerScript = goredis.NewScript(`
local p = redis.call('XPENDING', KEYS[1], ARGV[1], '-', '+', 1, ARGV[2])
if #p > 0 then return 0 end
local cs = redis.call('XINFO', 'CONSUMERS', KEYS[1], ARGV[1])
for _, c in ipairs(cs) do
  local name, idle
  for j = 1, #c, 2 do
    if c[j] == 'name' then name = c[j+1] end
    if c[j] == 'idle' then idle = c[j+1] end
  end
  if name == ARGV[2] then
    if idle ~= nil and idle < tonumber(ARGV[3]) then return 0 end
    redis.call('XGROUP', 'DELCONSUMER', KEYS[1], ARGV[1], ARGV[2])
    return 1
  end
end
return 0
`)
