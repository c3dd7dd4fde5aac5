"""The Redis store's Lua scripts: each one step that no other client's command can interleave.

Redis runs a script atomically ("no other script or Redis command will be executed while a
script is being executed", EVAL's documentation), which is what makes a room's offsets one
sequence for every process: the offset is assigned, the message appended to the room's stream
and published, all in :data:`APPEND` (Centrifugo's ``broker_history_add_stream.lua`` does the
same), and the deployment's bounds are kept in the same step (bounds.py). Every key a script
touches is passed in KEYS, as the documentation asks, and every key gets its expiry in the
script that creates it, after the write that creates it (PEXPIRE on a key that does not exist
yet does nothing).

The keys in database N (docs/deployment.md lists them), for each room R and for the deployment::

    asgi_chat:dbN:room:R:meta       hash: epoch, top (the latest offset)
    asgi_chat:dbN:room:R:stream     stream: one entry per message, id "<offset>-0", field d = its body
    asgi_chat:dbN:room:R:here       sorted set: "<process> <user>" scored by when it expires (ms)
    asgi_chat:dbN:room:R:users      hash: user -> how many processes have them in the room
    asgi_chat:dbN:room:R            the pub/sub channel: "d <epoch> <offset> <body>" or "p <event> <user>"
    asgi_chat:dbN:rooms             sorted set: every room with members or history, scored by
                                    until when it is busy (a presence deadline) or since when empty
    asgi_chat:dbN:history           sorted set: "<room> <epoch> <offset> <size>" of every message
                                    kept, scored in the order said (the oldest go first)
    asgi_chat:dbN:history:bytes     string: the sum of those sizes (body bytes + bounds.OVERHEAD)
    asgi_chat:dbN:says              hash: "<room> <h>" -> "<epoch>:<offset>", a say id seen (h =
                                    sha1 of user and id)
    asgi_chat:dbN:says:expiry       sorted set: the same "<room> <h>" scored by when it expires (ms)

A room's meta and stream expire twice ``room_idle_seconds`` after their last use (the idle sweep
forgets an empty room after ``room_idle_seconds``), here and users twice ``presence_timeout``
after the last refresh (set together, so they expire together), the say ids ``dedup_seconds``
after the latest; rooms, history and history:bytes twice ``room_idle_seconds`` after the latest
use of any room.

A message's body is its fields as a JSON array, ``[ts, user, text, say id or null]``: no room and
no offset, which the key and the entry id carry, so nothing is spliced into it. Each process
encodes the ``msg`` frame from it (stores/redis.py). An older version stored the frame itself, in
field ``f``, and published ``"m <epoch> <offset> <frame>"``: both are still read, so a stream kept
across the upgrade stays whole; processes of that version cannot read bodies, so replace them all
at once rather than one by one. What an older version kept is not in ``history``: its messages
count against no byte budget, and leave as their room's own trim takes them; its say ids, one key
``room:R:say:<h>`` each, are not read, and expire within ``dedup_seconds``.
"""

from __future__ import annotations

from typing import Final

from .bounds import bounded

# A room whose meta is gone (new, flushed, evicted, expired) starts a new epoch, and its stream
# from an older epoch goes with it: its ids would be above the new offsets.
_OPEN_ROOM: Final = """
local function open_room(meta, stream, new_epoch)
  local epoch = redis.call('HGET', meta, 'epoch')
  if not epoch then
    epoch = new_epoch
    redis.call('DEL', stream)
    redis.call('HSET', meta, 'epoch', epoch, 'top', 0)
  end
  return epoch
end
"""

# ARGV after now, prefix and keep ms: new epoch, body, history length, trim batch, history byte
# budget (0: none), say id field ("": none), dedup ms, dedup max (0: none); then the room, then
# the rooms that may hold the oldest messages. Returns {'ok', epoch, offset, 1 if published else
# 0, the three counts, the rooms holding the oldest messages now (after an eviction)}, or
# {'need', rooms...}: the oldest messages that must go are in rooms that were not passed.
APPEND: Final = bounded(
    11,
    _OPEN_ROOM
    + """
local room = ARGV[FIXED + 1]
local meta, stream = key(room, 1), key(room, 2)
local epoch = open_room(meta, stream, ARGV[4])
local body, budget, say = ARGV[5], tonumber(ARGV[8]), ARGV[9]
if say ~= '' then
  local first = seen(say, epoch)
  if first then return {'ok', epoch, first, 0, unpack(counts())} end
end
local size = #body + OVERHEAD
if budget > 0 then  -- every room whose messages will go must be passed before the message is kept
  local missing = unpassed(tonumber(redis.call('GET', BYTES) or '0') + size - budget)
  if #missing > 0 then return {'need', unpack(missing)} end
end
local top = redis.call('HINCRBY', meta, 'top', 1)
redis.call('XADD', stream, top .. '-0', 'd', body)
list(room, epoch, top, size)
redis.call('ZADD', ROOMS, 'NX', now, room)  -- already there, unless Redis lost it meanwhile
trim_room(room, epoch, tonumber(ARGV[6]), tonumber(ARGV[7]))
local evicted = budget > 0 and evict(budget)
if say ~= '' then remember(say, epoch .. ':' .. top, tonumber(ARGV[10]), tonumber(ARGV[11])) end
redis.call('PUBLISH', PREFIX .. room, 'd ' .. epoch .. ' ' .. top .. ' ' .. body)
keep(KEEP, meta, stream, ROOMS, HISTORY, BYTES)
local reply = {'ok', epoch, top, 1, unpack(counts())}
if evicted then
  for _, name in ipairs(oldest_rooms(16)) do table.insert(reply, name) end
end
return reply
""",
)

# KEYS: meta, stream. ARGV: new epoch, keep ms, after, limit.
# Returns {epoch, top, first retained offset, then per message (newest first): offset, field, value}:
# field d, the body; f, an older version's frame.
WINDOW: Final = (
    _OPEN_ROOM
    + """
local epoch = open_room(KEYS[1], KEYS[2], ARGV[1])
redis.call('PEXPIRE', KEYS[1], ARGV[2])
redis.call('PEXPIRE', KEYS[2], ARGV[2])
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

# ARGV after now, prefix and keep ms: entry ("<process> <user>"), user, deadline ms, presence keep
# ms, room limit (0: none, as for a refresh); then the room, then idle rooms that may give way.
# One more process has the user in the room (or the same one, refreshed, which also keeps a room
# with members from expiring). Returns {'ok', 1 if announced else 0, the three counts}, {'full'}
# (the room is new, at the cap, and no room is empty) or {'need', idle rooms...}.
ENTER: Final = bounded(
    8,
    """
local room = ARGV[FIXED + 1]
local here, users = key(room, 3), key(room, 4)
if not redis.call('ZSCORE', ROOMS, room) then
  local refused = make_room(tonumber(ARGV[8]))
  if refused then return refused end
end
local announced = 0
if redis.call('ZADD', here, ARGV[6], ARGV[4]) == 1 and redis.call('HINCRBY', users, ARGV[5], 1) == 1 then
  redis.call('PUBLISH', PREFIX .. room, 'p join ' .. ARGV[5])
  announced = 1
end
redis.call('ZADD', ROOMS, 'GT', ARGV[6], room)  -- busy until this deadline at least
keep(ARGV[7], here, users)  -- after HINCRBY: a users hash it created has its expiry at once
keep(KEEP, key(room, 1), key(room, 2), ROOMS, HISTORY, BYTES)
return {'ok', announced, unpack(counts())}
""",
)

# ARGV after now, prefix and keep ms: entry, user; then the room. The process's last connection
# of the user left. Returns {'ok', the three counts}.
EXIT: Final = bounded(
    5,
    """
local room = ARGV[FIXED + 1]
local here, users = key(room, 3), key(room, 4)
if redis.call('ZREM', here, ARGV[4]) == 1 and redis.call('HINCRBY', users, ARGV[5], -1) <= 0 then
  redis.call('HDEL', users, ARGV[5])
  redis.call('PUBLISH', PREFIX .. room, 'p leave ' .. ARGV[5])
end
vacated(room)
return {'ok', unpack(counts())}
""",
)

# ARGV: now, prefix, keep ms; then the room. Sweeps the entries past their deadline (bounds.py's
# reap). Returns {'ok', the users present, the three counts}.
REAP: Final = bounded(
    3,
    """
local room = ARGV[FIXED + 1]
reap(room)
vacated(room)
return {'ok', redis.call('HKEYS', key(room, 4)), unpack(counts())}
""",
)

# ARGV after now, prefix and keep ms: idle ms; then rooms that were idle that long when read. The
# idle sweep: each one still empty and idle is forgotten. Returns {'ok', the three counts}.
FORGET: Final = bounded(
    4,
    """
for i = FIXED + 1, #ARGV do
  local room = ARGV[i]
  local since = redis.call('ZSCORE', ROOMS, room)
  if since and tonumber(since) <= now - tonumber(ARGV[4])
     and redis.call('ZCOUNT', key(room, 3), '(' .. now, '+inf') == 0 then
    reap(room)
    forget(room)
  end
end
return {'ok', unpack(counts())}
""",
)

SCRIPTS: Final = ("APPEND", "WINDOW", "ENTER", "EXIT", "REAP", "FORGET")
