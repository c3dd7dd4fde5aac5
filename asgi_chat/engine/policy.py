"""The slow-consumer policy: when a client is too far behind to keep, decided in one place.

The fan-out (fanout.py) asks it twice: when a line would join a member's outbox
(:meth:`SlowConsumerPolicy.overflow`), and on each sweep of the watchdog that looks for sends
blocked too long (:meth:`SlowConsumerPolicy.stuck`). Either answer, a reason, closes the member with
1013 (RFC 6455 7.4.1's "try again later", IANA's registry).
"""

from __future__ import annotations


class SlowConsumerPolicy:
    """When a client is too far behind to keep: the one place that decides it.

    A member is dropped (close code 1013, "try again later") when its outbox would exceed
    ``max_messages`` or ``max_bytes``, or when one send has been blocked longer than
    ``send_timeout`` seconds. Each limit is off when 0. A dropped member is counted in
    ``slow_consumer_disconnects``, logged once, and announced to the others like any leave.
    """

    def __init__(self, max_messages: int, max_bytes: int, send_timeout: float) -> None:
        self.max_messages = max_messages or float("inf")
        self.max_bytes = max_bytes or float("inf")
        self.send_timeout = send_timeout

    @property
    def sweep_period(self) -> float:
        """How often the watchdog looks: a stuck send is dropped within 1.25 x ``send_timeout``."""
        return max(self.send_timeout / 4, 0.01)

    def overflow(self, waiting: int, waiting_bytes: int, size: int) -> str | None:
        """Why one more message of ``size`` bytes may not join ``waiting`` ones, if it may not."""
        if waiting >= self.max_messages or waiting_bytes + size > self.max_bytes:
            return f"slow consumer: {waiting} messages ({waiting_bytes} bytes) already waiting"
        return None

    def stuck(self, started: float | None, now: float) -> str | None:
        """Why a send that began at ``started`` (None: no send waits) has waited too long, if it has."""
        if self.send_timeout and started is not None and now - started > self.send_timeout:
            return f"slow consumer: a send blocked for more than {self.send_timeout:g} s"
        return None
