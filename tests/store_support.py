"""What the store-level tests' listeners share: the moderation events most of them ignore."""

from __future__ import annotations


class Unmoderated:
    """A store listener's moderation events (engine/stores' StoreListener), heard and dropped: for
    a test about everything else."""

    def kicked(self, room: str, uid: str, by: str, reason: str) -> None:
        return None

    def redacted(self, room: str, offset: int, by: str) -> None:
        return None

    def disconnected(self, uid: str, reason: str) -> None:
        return None
