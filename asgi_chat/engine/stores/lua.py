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
    asgi_chat:dbN:room:R:here       sorted set: "<process> <uid>" scored by when it expires (ms)
    asgi_chat:dbN:room:R:users      hash: uid -> how many processes have them in the room
    asgi_chat:dbN:room:R:people     hash: uid -> the person, {"uid","user","guest"} as JSON (the
                                    latest entered): what a list of the room's people shows
    asgi_chat:dbN:room:R:redacted   hash: offset -> the moderator's uid, each message redacted
    asgi_chat:dbN:room:R:ban:<h>    string: a ban of the uid whose sha1 is h (PX: its length)
    asgi_chat:dbN:room:R:mute:<h>   string: a mute of that uid (PX: its length)
    asgi_chat:dbN:room:R            the pub/sub channel: "d <epoch> <offset> <body>",
                                    "p <event> <person>" (join or leave, the person as JSON),
                                    "k <kick>" ({"uid","by","reason"}), "r <offset> <by>" (redacted)
    asgi_chat:dbN:control           the pub/sub channel of the deployment: "x <{"uid","reason"}>"
    asgi_chat:dbN:rooms             sorted set: every room with members or history, scored by
                                    until when it is busy (a presence deadline) or since when empty
    asgi_chat:dbN:history           sorted set: "<room> <epoch> <offset> <size>" of every message
                                    kept, scored in the order said (the oldest go first)
    asgi_chat:dbN:history:bytes     string: the sum of those sizes (body bytes + bounds.OVERHEAD)
    asgi_chat:dbN:says              hash: "<room> <h>" -> "<epoch>:<offset>", a say id seen (h =
                                    sha1 of uid and id: one uid's ids are never another's)
    asgi_chat:dbN:says:expiry       sorted set: the same "<room> <h>" scored by when it expires (ms)

A room's meta, stream and redacted expire twice ``room_idle_seconds`` after their last use (the idle sweep
forgets an empty room after ``room_idle_seconds``), here, users and people twice
``presence_timeout`` after the last refresh (set together, in the script that writes them first,
so they expire together and none lives without an expiry), the say ids ``dedup_seconds``
after the latest; rooms, history and history:bytes twice ``room_idle_seconds`` after the latest
use of any room.

A message's body is its fields as a JSON array, ``[ts, user, text, say id or null, uid, guest]``
(records.py): no room and no offset, which the key and the entry id carry, so nothing is spliced
into it. Each process encodes the ``msg`` frame from it (stores/redis.py). The version before
people kept ``[ts, user, text, say id]``: such a body still reads, as said by the uid ``user``, no
guest; its presence (users keyed by name, no people) is shown likewise until it expires, and its
say ids (a digest of the name) match no uid's, and expire within ``dedup_seconds``. An older
version stored the frame itself, in field ``f``, and published ``"m <epoch> <offset> <frame>"``:
both are still read, so a stream kept across the upgrade stays whole; processes of an older
version cannot read what a newer one writes, so replace them all at once rather than one by
one. What an older version kept is not in ``history``: its messages count against no byte
budget, and leave as their room's own trim takes them; its say ids, one key ``room:R:say:<h>``
each, are not read, and expire within ``dedup_seconds``.
"""

from __future__ import annotations

from typing import Final

from .bounds import bounded

# A room whose meta is gone (new, flushed, evicted, expired) starts a new epoch, and its stream
# from an older epoch goes with it: its ids would be above the new offsets.
_OPEN_ROOM: Final = """
local function open_room(meta, stream, redacted, new_epoch)
  local epoch = redis.call('HGET', meta, 'epoch')
  if not epoch then
    epoch = new_epoch
    redis.call('DEL', stream, redacted)
    redis.call('HSET', meta, 'epoch', epoch, 'top', 0)
  end
  return epoch
end
"""

# ARGV after now, prefix and keep ms: new epoch, body, history length, trim batch, history byte
# budget (0: none), say id field ("": none), dedup ms, dedup max (0: none); then the room, then
# the rooms that may hold the oldest messages; KEYS[#KEYS]: the sayer's mute. Returns {'ok', epoch,
# offset, 1 if published else 0, the three counts, the rooms holding the oldest messages now (after
# an eviction)}, {'muted', its ms left} (no offset taken), or {'need', rooms...}: the oldest
# messages that must go are in rooms that were not passed.
APPEND: Final = bounded(
    11,
    _OPEN_ROOM
    + """
local room = ARGV[FIXED + 1]
local meta, stream = key(room, 1), key(room, 2)
local epoch = open_room(meta, stream, key(room, 6), ARGV[4])
local body, budget, say = ARGV[5], tonumber(ARGV[8]), ARGV[9]
if say ~= '' then
  local first = seen(say, epoch)
  if first then return {'ok', epoch, first, 0, unpack(counts())} end
end
local muted = redis.call('PTTL', KEYS[#KEYS])
if muted ~= -2 then return {'muted', muted} end
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
keep(KEEP, meta, stream, key(room, 6), ROOMS, HISTORY, BYTES)
local reply = {'ok', epoch, top, 1, unpack(counts())}
if evicted then
  for _, name in ipairs(oldest_rooms(16)) do table.insert(reply, name) end
end
return reply
""",
)

# Messages as WINDOW and READ return them: offset, field, value each; field d, the body; f, an older
# version's frame; either with an r before it (rd, rf) for a message redacted.
_MARKED: Final = """
local function marked(result, entries, redacted)
  local any = redis.call('EXISTS', redacted) == 1
  for _, entry in ipairs(entries) do
    local offset, field = string.match(entry[1], '^%d+'), entry[2][1]
    if any and redis.call('HEXISTS', redacted, offset) == 1 then field = 'r' .. field end
    table.insert(result, tonumber(offset))
    table.insert(result, field)
    table.insert(result, entry[2][2])
  end
  return result
end
"""

# KEYS: meta, stream, redacted. ARGV: new epoch, keep ms, after, limit.
# Returns {epoch, top, first retained offset, then the messages (newest first), marked}.
WINDOW: Final = (
    _OPEN_ROOM
    + _MARKED
    + """
local epoch = open_room(KEYS[1], KEYS[2], KEYS[3], ARGV[1])
for i = 1, 3 do redis.call('PEXPIRE', KEYS[i], ARGV[2]) end
local top = tonumber(redis.call('HGET', KEYS[1], 'top'))
local oldest = redis.call('XRANGE', KEYS[2], '-', '+', 'COUNT', 1)
local first = top + 1
if #oldest > 0 then first = tonumber(string.match(oldest[1][1], '^%d+')) end
local result = {epoch, top, first}
if tonumber(ARGV[4]) > 0 then
  local newest = redis.call('XREVRANGE', KEYS[2], '+', '(' .. ARGV[3] .. '-0', 'COUNT', ARGV[4])
  marked(result, newest, KEYS[3])
end
return result
"""
)

# KEYS: stream, redacted. ARGV: XRANGE or XREVRANGE, its two bounds, its COUNT ("": none).
# Returns the messages in the command's order, marked.
READ: Final = (
    _MARKED
    + """
local command = {ARGV[1], KEYS[1], ARGV[2], ARGV[3]}
if ARGV[4] ~= '' then
  table.insert(command, 'COUNT')
  table.insert(command, ARGV[4])
end
return marked({}, redis.call(unpack(command)), KEYS[2])
"""
)

# ARGV after now, prefix and keep ms: entry ("<process> <uid>"), uid, the person (shown JSON),
# deadline ms, presence keep ms, room limit (0: none, as for a refresh); then the room, then idle
# rooms that may give way; KEYS[#KEYS]: the uid's ban. One more process has the uid in the room
# (or the same one, refreshed, which also keeps a room with members from expiring); the person is
# how the uid is shown now. Returns {'ok', 1 if announced else 0, the three counts}, {'banned', its
# ms left} (nothing changed), {'full'} (the room is new, at the cap, and no room is empty) or
# {'need', idle rooms...}.
ENTER: Final = bounded(
    9,
    """
local room = ARGV[FIXED + 1]
local banned = redis.call('PTTL', KEYS[#KEYS])
if banned ~= -2 then return {'banned', banned} end
local here, users, people = key(room, 3), key(room, 4), key(room, 5)
if not redis.call('ZSCORE', ROOMS, room) then
  local refused = make_room(tonumber(ARGV[9]))
  if refused then return refused end
end
local announced = 0
if redis.call('ZADD', here, ARGV[7], ARGV[4]) == 1 and redis.call('HINCRBY', users, ARGV[5], 1) == 1 then
  announced = 1
end
redis.call('HSET', people, ARGV[5], ARGV[6])
if announced == 1 then redis.call('PUBLISH', PREFIX .. room, 'p join ' .. ARGV[6]) end
redis.call('ZADD', ROOMS, 'GT', ARGV[7], room)  -- busy until this deadline at least
keep(ARGV[8], here, users, people)  -- after HINCRBY and HSET: a hash they created has its expiry at once
keep(KEEP, key(room, 1), key(room, 2), key(room, 6), ROOMS, HISTORY, BYTES)
return {'ok', announced, unpack(counts())}
""",
)

# ARGV after now, prefix and keep ms: entry, uid; then the room. The process's last connection
# of the uid left. Returns {'ok', the three counts}.
EXIT: Final = bounded(
    5,
    """
local room = ARGV[FIXED + 1]
if redis.call('ZREM', key(room, 3), ARGV[4]) == 1 and redis.call('HINCRBY', key(room, 4), ARGV[5], -1) <= 0 then
  gone(room, ARGV[5])
end
vacated(room)
return {'ok', unpack(counts())}
""",
)

# ARGV: now, prefix, keep ms; then the room. Sweeps the entries past their deadline (bounds.py's
# reap). Returns {'ok', the people present (each shown JSON), the three counts}.
REAP: Final = bounded(
    3,
    """
local room = ARGV[FIXED + 1]
reap(room)
vacated(room)
local present = {}
for _, uid in ipairs(redis.call('HKEYS', key(room, 4))) do table.insert(present, shown(room, uid)) end
return {'ok', present, unpack(counts())}
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

# ARGV after now, prefix and keep ms: uid, ban ms (0: none), the kick ({"uid","by","reason"}); then
# the room; KEYS[#KEYS]: the uid's ban. Every presence entry of the uid in the room goes (every
# process's), its leave announced once if it was there, then the kick, for every process serving the
# room. Returns {'ok', the three counts}.
KICK: Final = bounded(
    6,
    """
local room, uid, ban = ARGV[FIXED + 1], ARGV[4], tonumber(ARGV[5])
if ban > 0 then redis.call('SET', KEYS[#KEYS], ARGV[6], 'PX', ban) end
local here = key(room, 3)
for _, entry in ipairs(redis.call('ZRANGE', here, 0, -1)) do
  if string.sub(entry, string.find(entry, ' ', 1, true) + 1) == uid then redis.call('ZREM', here, entry) end
end
if redis.call('HEXISTS', key(room, 4), uid) == 1 then gone(room, uid) end
redis.call('PUBLISH', PREFIX .. room, 'k ' .. ARGV[6])
vacated(room)  -- the kick may have emptied it
return {'ok', unpack(counts())}
""",
)

# KEYS: meta, stream, redacted. ARGV: offset, by (a uid), keep ms, the room's channel. A message the
# stream holds is redacted (told once, on the room's channel). Returns 1, or 0: no such message.
REDACT: Final = """
local id = ARGV[1] .. '-0'
if not redis.call('HGET', KEYS[1], 'epoch') or #redis.call('XRANGE', KEYS[2], id, id) == 0 then return 0 end
if redis.call('HSET', KEYS[3], ARGV[1], ARGV[2]) == 1 then
  redis.call('PUBLISH', ARGV[4], 'r ' .. ARGV[1] .. ' ' .. ARGV[2])
end
for i = 1, 3 do redis.call('PEXPIRE', KEYS[i], ARGV[3]) end
return 1
"""

SCRIPTS: Final = ("APPEND", "WINDOW", "READ", "ENTER", "EXIT", "REAP", "FORGET", "KICK", "REDACT")
