"""NamespaceLifecycle admission against the kube-apiserver test stand-in: creates in a
missing or terminating namespace are refused as kube refuses them; an admitted create costs
no request to the apiserver."""
from __future__ import annotations

import asyncio
import shutil
import tempfile
from pathlib import Path

import pytest

from extserver.admission.namespace_lifecycle import NamespaceLifecycle, namespace_lifecycle_from_args
from extserver.api import AdmissionAttributes
from extserver.apis.wardle import Flunder
from extserver.auth.kubeclient import KubeClient
from extserver.cli import FlagError, build_parser
from extserver.machinery import errors as E
from extserver.machinery.meta import ObjectMeta
from tests.standin.kube_apiserver_standin import KubeAPIServerStandin


@pytest.fixture(scope="module")
def standin():
    d = Path(tempfile.mkdtemp(prefix="nslc-"))
    st = KubeAPIServerStandin(d).start()
    st.set_namespace("live")
    st.set_namespace("dying", "Terminating")
    yield st, d
    st.stop()
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
async def plugin(standin):
    st, d = standin
    p = NamespaceLifecycle(await KubeClient.load(str(st.write_kubeconfig(d / "kc"))), own_client=True)
    await p.start(None)
    yield p
    await p.stop()


def attrs(ns: str, op: str = "CREATE", name: str = "", generate_name: str = "") -> AdmissionAttributes:
    obj = Flunder(metadata=ObjectMeta(name=name or None, generate_name=generate_name or None, namespace=ns))
    return AdmissionAttributes(operation=op, group="wardle.example.com", version="v1beta1", resource="flunders",
                               subresource="", kind="Flunder", namespace=ns, name=name, object=obj,
                               old_object=None, user=None, dry_run=False)


def namespace_requests(st) -> int:
    return sum(1 for _, p in st.requests if p.startswith("/api/v1/namespaces/") and "configmaps" not in p)


async def test_active_namespace_admitted_without_requests(standin, plugin):
    st, _ = standin
    assert await plugin.informer.wait_synced(10) and plugin.ready() and plugin.healthy() == (True, "")
    before = len(st.requests)
    for i in range(20):
        await plugin.admit(attrs("live", name=f"f{i}"))
    assert len(st.requests) == before and plugin.lookups == 0


async def test_missing_namespace(standin, plugin):
    st, _ = standin
    with pytest.raises(E.NotFound) as ei:
        await plugin.admit(attrs("nowhere", name="x"))
    assert ei.value.code == 404
    assert ei.value.status() == {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                                 "message": 'namespaces "nowhere" not found', "reason": "NotFound",
                                 "details": {"name": "nowhere", "kind": "namespaces"}, "code": 404}
    assert plugin.lookups == 1


async def test_terminating_namespace(standin, plugin):
    with pytest.raises(E.StatusError) as ei:
        await plugin.admit(attrs("dying", generate_name="gen-"))
    assert ei.value.status() == {
        "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": 'flunders.wardle.example.com "gen-" is forbidden: unable to create new content in namespace '
                   'dying because it is being terminated',
        "reason": "Forbidden",
        "details": {"name": "gen-", "group": "wardle.example.com", "kind": "flunders",
                    "causes": [{"reason": "NamespaceTerminating", "message": "namespace dying is being terminated",
                                "field": "metadata.namespace"}]},
        "code": 403}


async def test_other_operations_and_cluster_scope_pass(standin, plugin):
    await plugin.admit(attrs("dying", op="UPDATE", name="x"))
    await plugin.admit(attrs("nowhere", op="DELETE", name="x"))
    await plugin.admit(attrs("", name="cluster-scoped"))
    assert plugin.lookups == 0


async def test_namespace_changes_are_watched(standin, plugin):
    st, _ = standin
    await plugin.informer.wait_synced(10)
    st.set_namespace("fresh")
    for _ in range(500):
        if "fresh" in plugin.informer.store:
            break
        await asyncio.sleep(0.02)
    await plugin.admit(attrs("fresh", name="x"))
    st.set_namespace("fresh", "Terminating")
    for _ in range(500):
        if plugin.informer.store.get("fresh") == "Terminating":
            break
        await asyncio.sleep(0.02)
    with pytest.raises(E.StatusError, match="because it is being terminated"):
        await plugin.admit(attrs("fresh", name="y"))
    assert plugin.lookups == 0
    st.set_namespace("fresh", None)


async def test_namespace_created_just_before_is_looked_up(standin, plugin):
    """A namespace the watch has not delivered yet is found by the last-resort lookup."""
    st, _ = standin
    await plugin.informer.wait_synced(10)
    await plugin.informer.stop()  # the watch is no longer running: the store is stale
    st.set_namespace("brand-new")
    await plugin.admit(attrs("brand-new", name="x"))
    assert plugin.lookups == 1


async def test_not_ready(standin):
    st, d = standin
    client = await KubeClient.load(str(st.write_kubeconfig(d / "kc-down")))
    client.host = "https://127.0.0.1:1"
    p = NamespaceLifecycle(client, ready_timeout=0.2, own_client=True)
    await p.start(None)
    try:
        with pytest.raises(E.StatusError) as ei:
            await p.admit(attrs("live", name="x"))
        assert ei.value.code == 403
        assert ei.value.message == 'flunders.wardle.example.com "x" is forbidden: not yet ready to handle request'
        assert not p.healthy()[0]
    finally:
        await p.stop()


async def test_from_args(standin, tmp_path, monkeypatch):
    st, d = standin
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    assert await namespace_lifecycle_from_args(build_parser().parse_args(["serve"])) is None
    p = await namespace_lifecycle_from_args(build_parser().parse_args(
        ["serve", "--kubeconfig", str(st.write_kubeconfig(d / "kc-args"))]))
    assert isinstance(p, NamespaceLifecycle)
    await p.stop()
    (tmp_path / "bad").write_text("nonsense: [")
    with pytest.raises(FlagError, match="--kubeconfig"):
        await namespace_lifecycle_from_args(build_parser().parse_args(["serve", "--kubeconfig",
                                                                       str(tmp_path / "bad")]))
