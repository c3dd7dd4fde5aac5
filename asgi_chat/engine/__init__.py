"""The chat engine: who is in which chat, and how a line reaches each of them without anyone
waiting. fanout.py (members, bounded outboxes, the slow-consumer policy), hub.py (the tutorial
chat), brokers/ (how lines travel between processes: memory by default, Redis optional)."""
