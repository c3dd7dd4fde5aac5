"""The Redis store's Lua scripts: each one step that no other client's command can interleave.

Redis runs a script atomically ("no other script or Redis command will be executed while a
script is being executed", EVAL's documentation), which is what makes a room's offsets one
sequence for every process: the offset is assigned, the message appended to the room's stream
and published, all in :data:`APPEND` (Centrifugo's ``broker_history_add_stream.lua`` does the
same). Every key a script touches is passed in KEYS, as the documentation asks.

The keys of one room R in database N (docs/deployment.md lists them)::

    asgi_chat:dbN:room:R:meta       hash: epoch, top (the latest offset)
    asgi_chat:dbN:room:R:stream     stream: one entry per message, id "<offset>-0", field d = its body
    asgi_chat:dbN:room:R:say:<h>    string "<epoch>:<offset>": a say id seen (h = sha1 of user and id)
    asgi_chat:dbN:room:R:here       sorted set: "<process> <user>" scored by when it expires (ms)
    asgi_chat:dbN:room:R:users      hash: user -> how many processes have them in the room
    asgi_chat:dbN:room:R            the pub/sub channel: "d <epoch> <offset> <body>" or "p <event> <user>"

A message's body is its fields as a JSON array, ``[ts, user, text, say id or null]``: no room and
no offset, which the key and the entry id carry, so nothing is spliced into it. Each process
encodes the ``msg`` frame from it (stores/redis.py). An older version stored the frame itself, in
field ``f``, and published ``"m <epoch> <offset> <frame>"``: both are still read, so a stream kept
across the upgrade stays whole; processes of that version cannot read bodies, so replace them all
at once rather than one by one.
"""

from __future__ import annotations

from typing import Final

# A room whose meta is gone (new, flushed, evicted, expired) starts a new epoch, and its stream
# from an older epoch goes with it: its ids would be above the new offsets.
_OPEN_ROOM: Final = """
local epoch = redis.call('HGET', KEYS[1], 'epoch')
if not epoch then
  epoch = ARGV[1]
  redis.call('DEL', KEYS[2])
  redis.call('HSET', KEYS[1], 'epoch', epoch, 'top', 0)
end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
redis.call('PEXPIRE', KEYS[2], ARGV[2])
"""

# KEYS: meta, stream, say key ("" for none). ARGV: new epoch, idle ms, body, history length,
# dedup ms, channel. Returns {epoch, offset, 1 if published else 0}.
APPEND: Final = (
    _OPEN_ROOM
    + """
if KEYS[3] ~= '' then
  local seen = redis.call('GET', KEYS[3])
  if seen then
    local colon = string.find(seen, ':', 1, true)
    if string.sub(seen, 1, colon - 1) == epoch then
      return {epoch, tonumber(string.sub(seen, colon + 1)), 0}
    end
  end
end
local top = redis.call('HINCRBY', KEYS[1], 'top', 1)
redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[4], top .. '-0', 'd', ARGV[3])
if KEYS[3] ~= '' then
  redis.call('SET', KEYS[3], epoch .. ':' .. top, 'PX', ARGV[5])
end
redis.call('PUBLISH', ARGV[6], 'd ' .. epoch .. ' ' .. top .. ' ' .. ARGV[3])
return {epoch, top, 1}
"""
)

# KEYS: meta, stream. ARGV: new epoch, idle ms, after, limit.
# Returns {epoch, top, first retained offset, then per message (newest first): offset, field, value}:
# field d, the body; f, an older version's frame.
WINDOW: Final = (
    _OPEN_ROOM
    + """
local top = tonumber(redis.call('HGET', KEYS[1], 'top'))
local oldest = redis.call('XRANGE', KEYS[2], '-', '+', 'COUNT', 1)
local first = top + 1
if #oldest > 0 then first = tonumber(string.match(oldest[1][1], '^%d+')) end
local result = {epoch, top, first}
if tonumber(ARGV[4]) > 0 then
  local newest = redis.call('XREVRANGE', KEYS[2], '+', '(' .. ARGV[3] .. '-0', 'COUNT', ARGV[4])
  for _, entry in ipairs(newest) do
    table.insert(result, tonumber(string.match(entry[1], '^%d+')))
    table.insert(result, entry[2][1])
    table.insert(result, entry[2][2])
  end
end
return result
"""
)

# KEYS: here, users, meta, stream. ARGV: entry ("<process> <user>"), user, deadline ms, channel,
# keep ms, idle ms. One more process has the user in the room (or the same one, refreshed, which
# also keeps a room with members from expiring). Returns 1 if announced.
ENTER: Final = """
local new = redis.call('ZADD', KEYS[1], ARGV[3], ARGV[1])
redis.call('PEXPIRE', KEYS[1], ARGV[5])
redis.call('PEXPIRE', KEYS[2], ARGV[5])
redis.call('PEXPIRE', KEYS[3], ARGV[6])
redis.call('PEXPIRE', KEYS[4], ARGV[6])
if new == 1 and redis.call('HINCRBY', KEYS[2], ARGV[2], 1) == 1 then
  redis.call('PUBLISH', ARGV[4], 'p join ' .. ARGV[2])
  return 1
end
return 0
"""

# KEYS: here, users. ARGV: entry, user, channel. The process's last connection of the user left.
EXIT: Final = """
if redis.call('ZREM', KEYS[1], ARGV[1]) == 1 and redis.call('HINCRBY', KEYS[2], ARGV[2], -1) <= 0 then
  redis.call('HDEL', KEYS[2], ARGV[2])
  redis.call('PUBLISH', ARGV[3], 'p leave ' .. ARGV[2])
  return 1
end
return 0
"""

# KEYS: here, users. ARGV: now ms, channel. Entries past their deadline belong to processes that
# stopped refreshing them (killed, host lost): each is removed by exactly one caller, so each
# user whose last entry it was is announced as left exactly once.
REAP: Final = """
local expired = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
for _, entry in ipairs(expired) do
  local user = string.sub(entry, string.find(entry, ' ', 1, true) + 1)
  if redis.call('ZREM', KEYS[1], entry) == 1 and redis.call('HINCRBY', KEYS[2], user, -1) <= 0 then
    redis.call('HDEL', KEYS[2], user)
    redis.call('PUBLISH', ARGV[2], 'p leave ' .. user)
  end
end
return #expired
"""

SCRIPTS: Final = ("APPEND", "WINDOW", "ENTER", "EXIT", "REAP")
