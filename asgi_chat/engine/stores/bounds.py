"""The Redis store's bounds, kept for the whole deployment: rooms, history bytes, say ids.

Every process that shares the Redis counts against the same three limits (ops/settings.py), as
one process does with the memory store:

- **rooms** (``max_rooms``): a room holds a slot in ``rooms`` while it has members or history.
  Its score says until when it is busy: a member's presence deadline (so a room with members
  scores in the future), or since when it has been empty. An empty room with no history is
  forgotten as its last member leaves; at the cap, a new room first forgets the rooms empty the
  longest (their keys deleted); only when none is empty is it refused (RoomLimit).
- **history bytes** (``history_max_bytes``): ``history`` lists every message kept, in the order
  said, as ``"<room> <epoch> <offset> <size>"``, and ``history:bytes`` is the sum of those sizes
  (a message's body in bytes plus :data:`OVERHEAD`). Past the budget the oldest go first,
  whichever room holds them: trimmed from the front of their room's stream with ``XTRIM MINID``,
  so what a room keeps is always one run of offsets, and its first retained offset stays exact.
- **say ids** (``dedup_max``): ``says`` maps ``"<room> <sha1 of uid and id>"`` to the first
  ``"<epoch>:<offset>"``, and ``says:expiry`` scores each by when it expires: the oldest go
  first past the cap, the expired at every say.

All of it runs inside the scripts of lua.py, which begin with :data:`PRELUDE` (the Lua functions
below), so that every step is atomic. Each script is passed the keys it touches, as EVAL's
documentation asks ("all names of keys that a script accesses must be explicitly provided as
input key arguments"), but which other rooms a step reaches (whose oldest message goes, which
idle room gives way) is known only inside the script. So a script that would touch a room it was
not passed touches nothing, and answers ``need`` with the rooms' names: the store runs it again
with their keys (scripts.py), and it checks everything anew.
"""

from __future__ import annotations

from typing import Final

# What a kept message costs Redis beyond its body: its entry in the room's stream and its member
# in ``history``. Measured with INFO memory: 110 to 370 bytes for bodies of 100 to 8,000 bytes
# (up to 700 near 2 KB, where a stream node of 4 KB holds one); tests/asgi/test_redis_bounds.py
# checks that what Redis holds stays close to the budget.
OVERHEAD: Final = 200
# A room's stream is trimmed to history_messages once it holds this many more, like XADD MAXLEN ~
# (whole nodes of 100 entries): one trim per hundred says, not one per say.
TRIM_BATCH: Final = 100
# The deployment's keys, in the order every bounded script takes them as KEYS[1] to KEYS[5].
GLOBAL_KEYS: Final = ("rooms", "history", "history:bytes", "says", "says:expiry")
# A room's keys, in the order scripts take them.
ROOM_KEYS: Final = ("meta", "stream", "here", "users", "people", "redacted")

# The start of every script that keeps a bound (see :func:`bounded`). KEYS: the five above, then
# six per room passed (ROOM_KEYS), then at most one of the script's own (a ban, a mute). ARGV: now
# (ms), the rooms' prefix (a room's channel is prefix .. room), how long room keys are kept (ms),
# the script's own arguments (FIXED in all, these three included), then the rooms' names in the
# order of their keys.
PRELUDE: Final = """
local ROOMS, HISTORY, BYTES, SAYS, SAY_EXPIRY = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local now, PREFIX, KEEP = tonumber(ARGV[1]), ARGV[2], ARGV[3]
local at = {}  -- room name -> where its keys start in KEYS
for i = FIXED + 1, #ARGV do at[ARGV[i]] = 5 + 6 * (i - FIXED - 1) end
-- n: 1 meta, 2 stream, 3 here, 4 users, 5 people, 6 redacted. After the rooms' keys, a script may
-- take one more of its own (a ban or a mute): KEYS[#KEYS].
local function key(room, n) return KEYS[at[room] + n] end

-- A key gets its expiry after the write that may have created it, so none lives without one.
local function keep(ms, ...)
  for _, name in ipairs({...}) do redis.call('PEXPIRE', name, ms) end
end

local function counts()  -- rooms, history bytes, say ids not expired
  return {redis.call('ZCARD', ROOMS), tonumber(redis.call('GET', BYTES) or '0'),
          redis.call('ZCOUNT', SAY_EXPIRY, '(' .. now, '+inf')}
end

local function parse(member)  -- a member of HISTORY: room, epoch, offset, size
  local room, epoch, offset, size = string.match(member, '^(%S+) (%S+) (%d+) (%d+)$')
  return room, epoch, tonumber(offset), tonumber(size)
end

local function list(room, epoch, offset, size)  -- a message kept: last in the order said
  local last = redis.call('ZRANGE', HISTORY, -1, -1, 'WITHSCORES')
  local seq = 1
  if #last > 0 then seq = tonumber(last[2]) + 1 end
  redis.call('ZADD', HISTORY, seq, room .. ' ' .. epoch .. ' ' .. offset .. ' ' .. size)
  redis.call('INCRBY', BYTES, size)
end

local function unlist(room, epoch, entry)  -- a stream entry that goes: out of the order, and the count
  local size = #entry[2][2] + OVERHEAD
  local member = room .. ' ' .. epoch .. ' ' .. string.match(entry[1], '^%d+') .. ' ' .. size
  if redis.call('ZREM', HISTORY, member) == 1 then redis.call('DECRBY', BYTES, size) end
end

-- A person as people holds them (their shown() JSON); a uid entered by the version before people
-- has no entry there: its name was its uid, and it was no guest.
local function shown(room, uid)
  return redis.call('HGET', key(room, 5), uid) or cjson.encode({uid = uid, user = uid, guest = false})
end

-- A uid's last presence entry went: out of the room's users and people, its leave announced once.
local function gone(room, uid)
  local person = shown(room, uid)
  redis.call('HDEL', key(room, 4), uid)
  redis.call('HDEL', key(room, 5), uid)
  redis.call('PUBLISH', PREFIX .. room, 'p leave ' .. person)
end

-- Presence entries past their deadline belong to processes that stopped refreshing them (killed,
-- host lost): each is removed by exactly one caller, so each uid whose last entry it was is
-- announced as left exactly once.
local function reap(room)
  local here, users = key(room, 3), key(room, 4)
  for _, entry in ipairs(redis.call('ZRANGEBYSCORE', here, '-inf', now)) do
    local uid = string.sub(entry, string.find(entry, ' ', 1, true) + 1)
    if redis.call('ZREM', here, entry) == 1 and redis.call('HINCRBY', users, uid, -1) <= 0 then
      gone(room, uid)
    end
  end
end

local function forget(room)  -- its keys, its messages' places in the order, its slot
  local epoch = redis.call('HGET', key(room, 1), 'epoch')
  if epoch then
    for _, entry in ipairs(redis.call('XRANGE', key(room, 2), '-', '+')) do unlist(room, epoch, entry) end
  end
  redis.call('DEL', key(room, 1), key(room, 2), key(room, 3), key(room, 4), key(room, 5), key(room, 6))
  redis.call('ZREM', ROOMS, room)
end

local function vacated(room)  -- nobody left? then it is idle since now, or forgotten if it holds nothing
  if redis.call('EXISTS', key(room, 4)) == 1 then return end
  if redis.call('XLEN', key(room, 2)) == 0 then
    forget(room)
  else
    redis.call('ZADD', ROOMS, 'XX', 'LT', now, room)
  end
end

-- A new room at the cap: the rooms empty longest (scored before now: no live member) give way.
-- Returns nil when the room may be made, else the script's reply (full, or need their keys).
local function make_room(limit)
  local over = redis.call('ZCARD', ROOMS) - limit + 1
  if limit <= 0 or over <= 0 then return nil end
  local idle = redis.call('ZRANGEBYSCORE', ROOMS, '-inf', '(' .. now, 'LIMIT', 0, over)
  if #idle < over then return {'full'} end
  local missing = {}
  for _, name in ipairs(idle) do
    if not at[name] then table.insert(missing, name) end
  end
  if #missing > 0 then return {'need', unpack(missing)} end
  for _, name in ipairs(idle) do
    reap(name)
    forget(name)
  end
  return nil
end

-- The rooms not passed whose oldest messages must go to free `excess` bytes.
local function unpassed(excess)
  local missing, listed, start = {}, {}, 0
  while excess > 0 do
    local batch = redis.call('ZRANGE', HISTORY, start, start + 31)
    if #batch == 0 then break end
    for _, member in ipairs(batch) do
      local room, _, _, size = parse(member)
      if not at[room] and not listed[room] then
        listed[room] = true
        table.insert(missing, room)
      end
      excess = excess - size
      if excess <= 0 then break end
    end
    start = start + 32
  end
  return missing
end

-- Past the budget, the oldest messages go first, whichever room holds them. True if any went.
local function evict(budget)
  local evicted = false
  while tonumber(redis.call('GET', BYTES) or '0') > budget do
    local head = redis.call('ZRANGE', HISTORY, 0, 0)[1]
    if not head then break end
    local room, epoch, offset, size = parse(head)
    if not at[room] then break end  -- planned by unpassed(): never touch a key not passed
    redis.call('ZREM', HISTORY, head)
    redis.call('DECRBY', BYTES, size)
    evicted = true
    if redis.call('HGET', key(room, 1), 'epoch') == epoch then  -- else that history is gone already
      redis.call('XTRIM', key(room, 2), 'MINID', (offset + 1) .. '-0')
      redis.call('HDEL', key(room, 6), offset)  -- a redaction goes with its message
      vacated(room)
    end
  end
  return evicted
end

local function oldest_rooms(n)  -- a hint for the next say: the rooms it will likely trim
  local names, listed = {}, {}
  for _, member in ipairs(redis.call('ZRANGE', HISTORY, 0, n - 1)) do
    local room = parse(member)
    if not listed[room] then
      listed[room] = true
      table.insert(names, room)
    end
  end
  return names
end

-- A room's stream keeps its latest `length` (in batches: see TRIM_BATCH).
local function trim_room(room, epoch, length, batch)
  local stream = key(room, 2)
  local excess = redis.call('XLEN', stream) - length
  if excess <= batch then return end
  local oldest = redis.call('XRANGE', stream, '-', '+', 'COUNT', excess)
  for _, entry in ipairs(oldest) do
    unlist(room, epoch, entry)
    redis.call('HDEL', key(room, 6), string.match(entry[1], '^%d+'))  -- a redaction goes with its message
  end
  redis.call('XTRIM', stream, 'MINID', (tonumber(string.match(oldest[#oldest][1], '^%d+')) + 1) .. '-0')
end

-- A say id seen in this epoch, not expired: its first offset. The expired go first, a hundred at most.
local function seen(say, epoch)
  for _, old in ipairs(redis.call('ZRANGEBYSCORE', SAY_EXPIRY, '-inf', now, 'LIMIT', 0, 100)) do
    redis.call('ZREM', SAY_EXPIRY, old)
    redis.call('HDEL', SAYS, old)
  end
  local first, expiry = redis.call('HGET', SAYS, say), redis.call('ZSCORE', SAY_EXPIRY, say)
  if not first or not expiry or tonumber(expiry) <= now then return nil end
  local colon = string.find(first, ':', 1, true)
  if string.sub(first, 1, colon - 1) ~= epoch then return nil end  -- a room forgotten and made anew
  return tonumber(string.sub(first, colon + 1))
end

local function remember(say, first, ms, most)
  redis.call('HSET', SAYS, say, first)
  redis.call('ZADD', SAY_EXPIRY, now + ms, say)
  local over = redis.call('ZCARD', SAY_EXPIRY) - most
  if most > 0 and over > 0 then
    for _, old in ipairs(redis.call('ZRANGE', SAY_EXPIRY, 0, over - 1)) do
      redis.call('ZREM', SAY_EXPIRY, old)
      redis.call('HDEL', SAYS, old)
    end
  end
  keep(ms, SAYS, SAY_EXPIRY)
end
"""


def bounded(fixed: int, body: str) -> str:
    """A script that keeps the bounds: ``fixed`` ARGV come before the rooms' names."""
    return f"local FIXED, OVERHEAD = {fixed}, {OVERHEAD}\n{PRELUDE}{body}"
