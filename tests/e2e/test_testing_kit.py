"""``extserver.testing``, the pytest plugin for group authors: a user's project with the docs'
example group (tests/e2e/widgets.py, the module docs/writing-a-group.md builds) and a test
that uses the ``extserver`` fixture, run by pytest as the user would run it."""
from __future__ import annotations

import shutil
import subprocess
import sys

from tests.e2e.harness import REPO, new_tmp_dir

USER_TEST = '''
import kubernetes


def test_widget_round_trip(extserver):
    assert extserver.url.startswith("https://127.0.0.1:")
    widgets = extserver.dynamic().resources.get(api_version="demo.extserver.io/v1", kind="Widget")
    widgets.create(namespace="default", body={
        "apiVersion": "demo.extserver.io/v1", "kind": "Widget",
        "metadata": {"name": "w1"}, "spec": {"replicas": 2, "color": "red"}})
    got = widgets.get(namespace="default", name="w1")
    assert got.spec.replicas == 2 and got.metadata.uid
    try:
        widgets.create(namespace="default", body={
            "apiVersion": "demo.extserver.io/v1", "kind": "Widget",
            "metadata": {"name": "w1"}, "spec": {"replicas": 1}})
    except kubernetes.dynamic.exceptions.ConflictError as e:
        assert e.status == 409
    else:
        raise AssertionError("a second create of the same name must conflict")


def test_kubeconfig_for_kubectl(extserver):
    import yaml
    cfg = yaml.safe_load(extserver.kubeconfig.read_text())
    assert cfg["clusters"][0]["cluster"]["server"] == extserver.url


def test_factory_starts_another_server(extserver, extserver_factory):
    other = extserver_factory(["my_widgets"], args=["--max-requests-inflight", "7"])
    assert other.url != extserver.url
    groups = kubernetes.client.ApisApi(other.api_client()).get_api_versions()
    assert [g.name for g in groups.groups] == ["demo.extserver.io"]  # only the user's group
'''


def test_plugin_serves_a_users_group_to_their_tests():
    project = new_tmp_dir("extserver-userproj-")
    try:
        shutil.copy(REPO / "tests" / "e2e" / "widgets.py", project / "my_widgets.py")
        (project / "pytest.ini").write_text("[pytest]\nextserver_api_modules = my_widgets\n")
        (project / "test_widgets.py").write_text(USER_TEST)
        p = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "test_widgets.py"],
                           cwd=str(project), capture_output=True, text=True, timeout=180)
        assert p.returncode == 0, p.stdout[-4000:] + p.stderr[-2000:]
        assert "3 passed" in p.stdout, p.stdout
    finally:
        shutil.rmtree(project, ignore_errors=True)
