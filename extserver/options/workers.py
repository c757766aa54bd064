"""Worker flags: how many processes serve the port."""
from __future__ import annotations

import math
import os
from pathlib import Path

from .errors import FlagError
from .types import non_negative_int


def available_cpus(cpu_max: Path = Path("/sys/fs/cgroup/cpu.max")) -> int:
    """The cores this process may use: its CPU affinity, lowered by a cgroup v2 CPU quota
    (``cpu.max`` ``<quota> <period>``, as a container's CPU limit), at least 1."""
    try:
        n = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        n = os.cpu_count() or 1
    try:
        quota, period = cpu_max.read_text().split()[:2]
        if quota != "max" and int(period) > 0:
            n = min(n, math.ceil(int(quota) / int(period)))
    except (OSError, ValueError):
        pass
    return max(1, n)


def add_flags(parser) -> None:
    w = parser.add_argument_group("Worker flags")
    w.add_argument("--workers", type=non_negative_int, default=None, metavar="N",
                   help="processes serving the port, each with its own connections and watch cache "
                        "(default: the cores available to the process, its CPU affinity and cgroup "
                        "quota; always 1 with --storage-backend=embedded, whose single writer lives "
                        "in one process; 0: the default)")


def resolve_workers(requested: int | None, storage_backend: str) -> int:
    """The number of worker processes for ``--workers`` (None/0: the default). The embedded
    store runs in one process (its SQLite log has one writer, and its watchers are fed from
    that writer's memory), so more than one worker is refused there."""
    if storage_backend == "embedded":
        if requested and requested > 1:
            raise FlagError(f"--workers {requested}: the embedded store is served by one process; "
                            "use --storage-backend=etcd3 for more than one worker")
        return 1
    return requested or available_cpus()
