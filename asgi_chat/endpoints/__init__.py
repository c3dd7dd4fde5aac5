"""The WebSocket endpoints: short functions that turn a session's frames into calls on the chat
engine, and its events back into frames. tutorial.py holds the FastAPI tutorial's three."""
