"""The WebSocket endpoints: short functions that turn a session's frames into calls on the chat
engine, and its events back into frames. tutorial.py holds the FastAPI tutorial's three, chat.py
the asgi-chat.v1 rooms (protocol.py parses its requests); common.py is what they share, and
credentials.py where the items endpoint's credential travels.

They import only themselves, the engine and asgi/ (tests/unit/test_layers.py)."""
