"""kube's rule for a watcher that cannot keep up (k8s.io/apiserver's cacher).

In kube every watcher has an input buffer of ``suggestedWatchChannelSize`` events (one
second of the watch cache's history: capacity / 75 s, at least 10 and, without an index,
at most 100). The dispatcher puts each event into every buffer; for a full one it waits
at most its time budget (100 ms, refilled by 50 ms a second), then terminates that watcher
("Forcing ... watcher close due to unresponsiveness") so that it can neither hold the
other watchers back nor pile up memory.

Here watchers never block the writer (they are cursors into a ring, or queues), so the
rule reads: a watcher whose undelivered events exceed its buffer for longer than the
budget is terminated — its stream fails with
:class:`~extserver.storage.interface.WatcherTooSlow` and the closer the serving layer set
in :data:`WATCH_CLOSER` for it is called, which closes the connection (the watcher's task
may itself be stuck writing to a client that does not read, and would never see the
error). A healthy watcher takes every event on its next turn of the event loop, so only a
watcher stuck behind a full connection stays over its buffer."""
from __future__ import annotations

import math
from contextvars import ContextVar
from typing import Callable

#: the serving layer's way to end a terminated watcher's connection; set in the context that
#: consumes the watch (the storage reads it when the watch is created)
WATCH_CLOSER: ContextVar[Callable[[], None] | None] = ContextVar("extserver_watch_closer", default=None)

#: kube's minWatchChanSize / maxWatchChanSizeWithoutIndex
MIN_BUFFER = 10
MAX_BUFFER = 100
#: kube's dispatch time budget (maxBudget)
BLOCK_BUDGET = 0.1


def buffer_size(cache_capacity: int, fresh_seconds: float = 75.0) -> int:
    """kube's ``suggestedWatchChannelSize`` for a cache without an index."""
    return min(MAX_BUFFER, max(MIN_BUFFER, math.ceil(cache_capacity / fresh_seconds)))


class Stall:
    """One watcher's state under the rule: its buffer size, since when it has been over it,
    and its closer."""

    __slots__ = ("buffer", "since", "closer")

    def __init__(self, buffer: int):
        self.buffer = buffer
        self.since: float | None = None
        self.closer = WATCH_CLOSER.get()

    def over_budget(self, undelivered: int, now: float) -> bool:
        """Record ``undelivered`` events at ``now``; True once the watcher must be terminated."""
        if undelivered <= self.buffer:
            self.since = None
            return False
        if self.since is None:
            self.since = now
            return False
        return now - self.since > BLOCK_BUDGET

    def close(self) -> None:
        closer, self.closer = self.closer, None
        if closer is not None:
            closer()
