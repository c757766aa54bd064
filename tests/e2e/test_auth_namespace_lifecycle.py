"""NamespaceLifecycle admission in the real server (``--kubeconfig`` pointing at the
kube-apiserver TEST stand-in): creates in a missing or terminating namespace are refused
as kube refuses them; creates in a live namespace cost no request to the apiserver."""
from __future__ import annotations

import time

import pytest

from tests.e2e.cluster_harness import ClusterEnv, ClusterServer

G, V = "wardle.example.com", "v1beta1"
ROOT = [("X-Remote-User", "root"), ("X-Remote-Group", "system:masters")]


def flunder(name: str) -> dict:
    return {"apiVersion": f"{G}/{V}", "kind": "Flunder", "metadata": {"name": name}, "spec": {}}


@pytest.fixture(scope="module")
def env():
    e = ClusterEnv()
    e.standin.set_namespace("live")
    e.standin.set_namespace("dying", "Terminating")
    yield e
    e.close()


@pytest.fixture(scope="module")
def server(env):
    srv = ClusterServer(env, ["--kubeconfig", str(env.kubeconfig)]).start()
    yield srv
    srv.close()


def create(server: ClusterServer, env: ClusterEnv, ns: str, name: str):
    return server.request("POST", f"/apis/{G}/{V}/namespaces/{ns}/flunders", cert=env.proxy, headers=ROOT,
                          body=flunder(name))


def namespace_gets(env: ClusterEnv) -> list[str]:
    return [p for m, p in env.standin.requests if m == "GET" and p.startswith("/api/v1/namespaces/")
            and "/configmaps" not in p]


def test_create_in_live_namespace_costs_no_request(env, server):
    before = len(namespace_gets(env))
    for i in range(5):
        assert create(server, env, "live", f"f{i}").status == 201
    assert len(namespace_gets(env)) == before


def test_create_in_terminating_namespace(env, server):
    a = create(server, env, "dying", "x")
    assert a.status == 403
    assert a.json() == {
        "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": 'flunders.wardle.example.com "x" is forbidden: unable to create new content in namespace dying '
                   'because it is being terminated',
        "reason": "Forbidden",
        "details": {"name": "x", "group": G, "kind": "flunders",
                    "causes": [{"reason": "NamespaceTerminating", "message": "namespace dying is being terminated",
                                "field": "metadata.namespace"}]},
        "code": 403}


def test_create_in_missing_namespace(env, server):
    a = create(server, env, "nowhere", "x")
    assert a.status == 404
    assert a.json() == {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                        "message": 'namespaces "nowhere" not found', "reason": "NotFound",
                        "details": {"name": "nowhere", "kind": "namespaces"}, "code": 404}


def test_namespace_lifecycle_follows_the_cluster(env, server):
    env.standin.set_namespace("later")
    assert create(server, env, "later", "a").status == 201
    env.standin.set_namespace("later", "Terminating")
    status = 0
    deadline = time.monotonic() + 20
    for i in range(200):
        status = create(server, env, "later", f"b{i}").status
        if status == 403 or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert status == 403
