"""Storage flags: the backend, etcd's connection, encryption at rest, the watch cache."""
from __future__ import annotations

import os

from .types import csv, duration, non_negative_int


def default_data_dir() -> str:
    base = os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local", "share")
    return os.path.join(base, "extserver")


def add_flags(parser) -> None:
    st = parser.add_argument_group("Storage flags")
    st.add_argument("--storage-backend", default="embedded", choices=["embedded", "etcd3"])
    st.add_argument("--data-dir", default=default_data_dir())
    st.add_argument("--embedded-sync", default="full", choices=["full", "normal"],
                    help="full: fsync every commit (survives power loss); normal: survives a process crash")
    st.add_argument("--etcd-servers", type=csv, default=[])
    st.add_argument("--etcd-prefix", default="/registry")
    st.add_argument("--etcd-cafile", default=None)
    st.add_argument("--etcd-certfile", default=None)
    st.add_argument("--etcd-keyfile", default=None)
    st.add_argument("--etcd-compaction-interval", type=duration, default=300.0,
                    help="how often old revisions are compacted (embedded store too); 0 disables")
    st.add_argument("--etcd-count-metric-poll-period", type=duration, default=60.0)
    st.add_argument("--encryption-provider-config", default=None)
    st.add_argument("--default-watch-cache-size", type=non_negative_int, default=100)
