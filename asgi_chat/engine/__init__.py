"""The chat engine: who is in which chat, and how a line reaches each of them without anyone
waiting. fanout.py (members, bounded outboxes, the slow-consumer policy), room.py (a chat's
members here: the one Room class of both chats), hub.py (the tutorial chat), rooms.py (the rooms
of asgi-chat.v1), frames.py (every frame the server sends), brokers/ and stores/ (where lines
travel and rooms live: memory by default, Redis optional), redis_link.py (with Redis, the one
connection pair and listener per process they share).

It imports only itself and asgi/: what it needs of the settings, it is handed as values."""
