"""Storage flags: the backend, etcd's connection, encryption at rest, the watch cache."""
from __future__ import annotations

import os

from .types import csv, duration, non_negative_int


def default_data_dir() -> str:
    base = os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local", "share")
    return os.path.join(base, "extserver")


def add_flags(parser) -> None:
    st = parser.add_argument_group("Storage flags")
    st.add_argument("--storage-backend", default="embedded", choices=["embedded", "etcd3"],
                    help="embedded: a durable store in --data-dir for one replica; etcd3: etcd v3 "
                         "(--etcd-servers), for production and several replicas")
    st.add_argument("--data-dir", default=default_data_dir(), metavar="DIR",
                    help="the embedded store, generated certificates and the local-mode kubeconfig")
    st.add_argument("--embedded-sync", default="full", choices=["full", "normal"],
                    help="full: fsync every commit (survives power loss); normal: survives a process crash")
    st.add_argument("--etcd-servers", type=csv, default=[], metavar="URLS",
                    help="comma-separated etcd endpoints (https://host:2379,...)")
    st.add_argument("--etcd-prefix", default="/registry", metavar="PREFIX",
                    help="the prefix of every key this server writes in etcd")
    st.add_argument("--etcd-cafile", default=None, metavar="FILE", help="CA bundle that verifies etcd's certificate")
    st.add_argument("--etcd-certfile", default=None, metavar="FILE", help="client certificate for etcd")
    st.add_argument("--etcd-keyfile", default=None, metavar="FILE", help="client key for etcd")
    st.add_argument("--etcd-compaction-interval", type=duration, default=300.0, metavar="DURATION",
                    help="how often old revisions are compacted (embedded store too); 0 disables")
    st.add_argument("--etcd-count-metric-poll-period", type=duration, default=60.0, metavar="DURATION",
                    help="how often the number of objects per resource is counted for "
                         "apiserver_storage_objects")
    st.add_argument("--encryption-provider-config", default=None, metavar="FILE",
                    help="EncryptionConfiguration (kube's format) for encryption at rest")
    st.add_argument("--default-watch-cache-size", type=non_negative_int, default=100, metavar="N",
                    help="events kept per resource by the etcd watch cache (0: no watch cache)")
