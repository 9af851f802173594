"""The Lua scripts of the Redis store: each touches the keys of one hash tag only, so it
runs atomically on the one node that owns that slot (single Redis or Redis Cluster)."""

from __future__ import annotations

__all__ = [
    "CAP_ADD",
    "FEED_APPEND",
    "GCRA",
    "GCRA_REFUND",
    "INCR_TTL",
    "MEMBERS",
    "SWAP",
    "TAKE",
    "TAKE_IF",
]

# Read and delete (GETDEL as a script, so it can share a connection with WAIT).
TAKE = """
return redis.call('GETDEL', KEYS[1])
"""

# Compare-and-delete: delete only when the value matches; return the stored value either way.
TAKE_IF = """
local v = redis.call('GET', KEYS[1])
if v and v == ARGV[1] then redis.call('DEL', KEYS[1]) end
return v
"""

SWAP = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
  return 1
end
return 0
"""

INCR_TTL = """
local n = redis.call('INCR', KEYS[1])
if n == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
return n
"""

# The start of both GCRA scripts: one clock reading (Redis TIME, whole microseconds) and how
# a bucket's theoretical arrival time (TAT) is stored: until it is reached, at least 1 ms.
_GCRA_PROLOGUE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local n = #KEYS
local function store_tat(k, tat)
  local ttl = math.ceil((tat - now) / 1000)
  if ttl < 1 then ttl = 1 end
  redis.call('SET', k, string.format('%.0f', tat), 'PX', string.format('%.0f', ttl))
end
"""

# GCRA over N buckets, all or nothing, one clock reading (Redis TIME, so replica clocks do not
# matter; Redis >= 5 replicates script effects, so TIME in a writing script is allowed).
# ARGV[1]: "1" = dry run (decide and report, never write; as if another bucket had denied).
# KEYS[i]: bucket; ARGV[3i-1], ARGV[3i], ARGV[3i+1]: period_ms, limit, cost.
# Times are whole microseconds (< 2^53, exact in Lua doubles); the emission interval is
# rounded up to a whole microsecond. Returns 4 integers per bucket:
# allowed, remaining, retry_after_ms (-1: cost > limit, never), reset_after_ms.
GCRA = _GCRA_PROLOGUE + """
local tats = {}
local res = {}
local ok = true
for i = 1, n do
  local period = tonumber(ARGV[3 * i - 1]) * 1000
  local limit = tonumber(ARGV[3 * i])
  local cost = tonumber(ARGV[3 * i + 1])
  local emission = math.ceil(period / limit)
  local burst = emission * limit
  local tat = tats[KEYS[i]]
  if tat == nil then
    local v = redis.call('GET', KEYS[i])
    tat = now
    if v then tat = tonumber(v) end
  end
  if tat < now then tat = now end
  local new_tat = tat + emission * cost
  local diff = now - (new_tat - burst)
  if diff < 0 then
    ok = false
    local retry = -1
    if emission * cost <= burst then retry = math.ceil(-diff / 1000) end
    local remaining = math.floor((now - tat + burst) / emission)
    if remaining < 0 then remaining = 0 end
    res[i] = {0, remaining, retry, math.ceil((tat - now) / 1000), tat, cost}
  else
    res[i] = {1, math.floor(diff / emission), 0, math.ceil((new_tat - now) / 1000), tat, cost}
    tats[KEYS[i]] = new_tat
  end
end
if ARGV[1] == '1' then ok = false end
local out = {}
if ok then
  local written = {}
  for i = n, 1, -1 do
    local k = KEYS[i]
    if res[i][6] > 0 and not written[k] then
      written[k] = true
      store_tat(k, tats[k])
    end
  end
end
for i = 1, n do
  local r = res[i]
  if not ok and r[1] == 1 then
    -- not charged because another bucket denied: report its unchanged state
    r[2] = r[2] + r[6]
    r[4] = math.ceil((r[5] - now) / 1000)
  end
  out[4 * i - 3] = r[1]
  out[4 * i - 2] = r[2]
  out[4 * i - 1] = r[3]
  out[4 * i] = r[4]
end
return out
"""

# A bounded set of live members, scored by expiry (ms, Redis TIME): purge expired, refuse at
# cap, keep the key alive as long as its newest member. ARGV: member, cap, ttl_ms.
CAP_ADD = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local cap = tonumber(ARGV[2])
local ttl = tonumber(ARGV[3])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', string.format('%.0f', now))
if not redis.call('ZSCORE', KEYS[1], ARGV[1]) then
  if redis.call('ZCARD', KEYS[1]) >= cap then return 0 end
end
redis.call('ZADD', KEYS[1], string.format('%.0f', now + ttl), ARGV[1])
if redis.call('PTTL', KEYS[1]) < ttl then redis.call('PEXPIRE', KEYS[1], ARGV[3]) end
return 1
"""


# `feed_append`: XADD, then trim by age (XTRIM MINID ~): entries whose id (Redis time in ms)
# is older than ARGV[2] ms before the new entry's go; `~` may keep a few more, never fewer.
FEED_APPEND = """
local id = redis.call('XADD', KEYS[1], '*', 'e', ARGV[1])
local ms = tonumber(string.match(id, '^(%d+)'))
local floor = ms - tonumber(ARGV[2])
if floor > 0 then
  redis.call('XTRIM', KEYS[1], 'MINID', '~', string.format('%.0f', floor))
end
return id
"""


# Cluster compensation for `gcra_many`: give back provisional charges. KEYS[i] with
# ARGV[3i-2], ARGV[3i-1], ARGV[3i] = period_ms, limit, cost as charged: each key's TAT moves
# back by exactly emission * cost (summed over its buckets); a TAT that falls to now or
# below means the bucket is full again and the key is deleted. Then every bucket's state is
# reported as a cost-0 peek: 4 integers each, allowed (1), remaining, 0, reset_after_ms.
GCRA_REFUND = _GCRA_PROLOGUE + """
local back = {}
local emissions = {}
for i = 1, n do
  local period = tonumber(ARGV[3 * i - 2]) * 1000
  local limit = tonumber(ARGV[3 * i - 1])
  local emission = math.ceil(period / limit)
  emissions[i] = emission
  back[KEYS[i]] = (back[KEYS[i]] or 0) + emission * tonumber(ARGV[3 * i])
end
local tats = {}
for i = 1, n do
  local k = KEYS[i]
  if tats[k] == nil then
    local v = redis.call('GET', k)
    local tat = now
    if v then tat = tonumber(v) end
    if back[k] > 0 and v then
      tat = tat - back[k]
      if tat > now then
        store_tat(k, tat)
      else
        redis.call('DEL', k)
      end
    end
    if tat < now then tat = now end
    tats[k] = tat
  end
end
local out = {}
for i = 1, n do
  local emission = emissions[i]
  local burst = emission * tonumber(ARGV[3 * i - 1])
  local tat = tats[KEYS[i]]
  local remaining = math.floor((now - tat + burst) / emission)
  if remaining < 0 then remaining = 0 end
  out[4 * i - 3] = 1
  out[4 * i - 2] = remaining
  out[4 * i - 1] = 0
  out[4 * i] = math.ceil((tat - now) / 1000)
end
return out
"""

# Live members of a bounded set, on the owning node's clock (one round trip, one node).
MEMBERS = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
return redis.call('ZRANGEBYSCORE', KEYS[1], '(' .. string.format('%.0f', now), '+inf')
"""
