"""Fixtures for end-to-end tests: the real server process on both storage backends."""
from __future__ import annotations

import shutil
import uuid

import pytest

from tests.e2e.harness import API, ServerProcess, new_tmp_dir
from tests.etcd_cluster import EtcdCluster


@pytest.fixture(scope="session")
def etcd():
    base = new_tmp_dir("extserver-etcd-")
    cluster = EtcdCluster(base, size=1).start()
    yield cluster
    cluster.stop()
    shutil.rmtree(base, ignore_errors=True)


def start_server(request, backend: str, extra_args: list[str] | None = None) -> ServerProcess:
    data = new_tmp_dir(f"extserver-{backend}-")
    endpoints = request.getfixturevalue("etcd").endpoints if backend == "etcd3" else None
    srv = ServerProcess(data, backend=backend, etcd_endpoints=endpoints, extra_args=extra_args,
                        etcd_prefix=f"/registry-{uuid.uuid4().hex[:8]}")
    srv.start()
    return srv


@pytest.fixture(scope="module", params=["embedded", "etcd3"])
def server(request):
    """One server per test module and storage backend: every API test runs on both."""
    srv = start_server(request, request.param, ["--api-module", "tests.e2e.widgets"])
    yield srv
    srv.stop()
    shutil.rmtree(srv.data_dir, ignore_errors=True)


@pytest.fixture(scope="module")
def api(server) -> API:
    return API(server)


@pytest.fixture
def ns() -> str:
    """A fresh namespace name per test (namespaces need not exist in local mode)."""
    return "t-" + uuid.uuid4().hex[:8]
