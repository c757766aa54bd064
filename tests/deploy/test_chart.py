"""The Helm chart, checked with the real helm binary and kubernetes-validate."""
from __future__ import annotations

import base64
import re
import shutil
import subprocess
import sys
import tarfile
import tomllib
from pathlib import Path

import pytest
import yaml
from kubernetes_validate import utils as kv_utils

from .conftest import (
    CHART_DIR,
    CI_VALUES_DIR,
    FULLNAME,
    NAMESPACE,
    REPO_ROOT,
    VALUE_SETS,
    find,
    one,
    pod_specs,
    run_helm_template,
    secret_bytes,
    values_args,
)

KUBE_VERSIONS = ["1.29.0", kv_utils.latest_version()]
#: Custom resources the validator has no schema for (checked structurally below instead).
CRD_KINDS = {("cert-manager.io/v1", "Certificate"), ("cert-manager.io/v1", "Issuer"),
             ("monitoring.coreos.com/v1", "ServiceMonitor")}
VALIDATOR = [sys.executable, "-m", "kubernetes_validate"]


def test_value_sets_cover_the_required_choices():
    names = set(VALUE_SETS)
    for required in ("cert-manager-values.yaml", "existing-secret-values.yaml",
                     "etcd-external-values.yaml", "etcd-bundled-values.yaml",
                     "single-replica-embedded-values.yaml"):
        assert required in names


@pytest.mark.parametrize("value_set", VALUE_SETS, ids=str)
def test_helm_lint_strict(helm, value_set):
    proc = subprocess.run([helm, "lint", "--strict", str(CHART_DIR), "--namespace", NAMESPACE,
                           *values_args(value_set)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "0 chart(s) failed" in proc.stdout


def _validate(path: Path) -> subprocess.CompletedProcess[str]:
    args = [a for v in KUBE_VERSIONS for a in ("--kubernetes-version", v)]
    return subprocess.run([*VALIDATOR, "--strict", *args, str(path)],
                          capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize("value_set", VALUE_SETS, ids=str)
def test_rendered_manifests_pass_kubernetes_validate_strict(helm, value_set, tmp_path):
    proc = run_helm_template(helm, *values_args(value_set))
    assert proc.returncode == 0, proc.stderr
    rendered = tmp_path / "rendered.yaml"
    rendered.write_text(proc.stdout)
    objects = [d for d in yaml.safe_load_all(proc.stdout) if d]

    result = _validate(rendered)
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    passed = [line for line in lines if line.startswith("INFO") and " passed " in line]
    warned = [line for line in lines if line.startswith("WARN")]
    builtin = [o for o in objects if (o["apiVersion"], o["kind"]) not in CRD_KINDS]
    assert len(passed) == len(builtin) * len(KUBE_VERSIONS)
    for version in KUBE_VERSIONS:
        assert sum(f"against version {version.rsplit('.', 1)[0]}" in line for line in passed) == len(builtin)
    for line in warned:  # only custom resources may lack a schema
        assert re.search(r"kind (Certificate|Issuer) with api version cert-manager\.io/v1|"
                         r"kind ServiceMonitor with api version monitoring\.coreos\.com/v1", line), line


def test_validator_rejects_an_unknown_field(render, tmp_path):
    """Negative control: the strict validator does catch a wrong manifest."""
    deployment = one(render(), "Deployment")
    bad = yaml.safe_load(yaml.safe_dump(deployment))
    bad["spec"]["template"]["spec"]["containers"][0]["securityContex"] = {}
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(bad))
    result = _validate(path)
    assert result.returncode != 0
    assert "securityContex" in result.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--set", "tls.type=bogus"], "/tls/type"),
        (["--set", "replicas=0"], "/replicas"),
        (["--set", "replica=3"], "replica"),  # a typo is an unknown key, not ignored
        (["--set", "server.logFormat=xml"], "/server/logFormat"),
        (["--set", "image.digest=latest"], "/image/digest"),
        (["--set", "storage.backend=embedded"], "/replicas"),  # default 2 replicas
        (["--set", "storage.etcd.bundled.replicas=2"], "/storage/etcd/bundled/replicas"),
        (["--set", "server.requestTimeout=60"], "/server/requestTimeout"),
        (["--set-json", 'apiService.groups=[{"name":"wardle.example.com","groupPriorityMinimum":30000,'
                        '"versions":[{"name":"v1","versionPriority":10}]}]'],
         "/apiService/groups/0/groupPriorityMinimum"),
        (["--set-json", 'apiService.groups=[{"name":"Wardle","groupPriorityMinimum":1000,'
                        '"versions":[{"name":"v1","versionPriority":10}]}]'],
         "/apiService/groups/0/name"),
        (["--set", "tls.type=existingSecret"], "/tls/existingSecret"),
        (["--set", "hostNetwork=yes"], "/hostNetwork"),
        (["--set", "dnsPolicy=Cluster"], "/dnsPolicy"),
        (["--set", "priorityClassName=System_Critical"], "/priorityClassName"),
        (["--set", "livenessProbe.enabled=maybe"], "/livenessProbe/enabled"),
        (["--set", "readinessProbe.periodSeconds=0"], "/readinessProbe/periodSeconds"),
        (["--set", "startupProbe.initialDelay=5"], "initialDelay"),  # a typo is refused
        (["--set-json", 'readinessProbe.exec={"command":["true"]}',
          "--set-json", 'readinessProbe.tcpSocket={"port":8443}'], "/readinessProbe"),  # two handlers
        (["--set-json", 'livenessProbe.httpGet={"path":"/livez"}'], "/livenessProbe/httpGet"),  # no port
    ],
    ids=lambda v: v if isinstance(v, str) else " ".join(v),
)
def test_schema_refuses_wrong_values(helm, args, message):
    proc = run_helm_template(helm, *args)
    assert proc.returncode != 0
    assert "values don't meet the specifications of the schema" in proc.stderr, proc.stderr
    assert message in proc.stderr, proc.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--set", "storage.etcd.bundled.enabled=false"], "needs storage.etcd.servers"),
        (["--set", "apiService.selfRegister=true"], "apiService.selfRegister needs tls.type=server"),
        (["--set", "tls.type=server", "--set", "replicas=1", "--set", "storage.backend=embedded"],
         "tls.type=server has no caBundle"),
        (["--set", "tls.type=existingSecret", "--set", "tls.existingSecret.name=x"],
         "tls.type=existingSecret needs the CA"),
    ],
    ids=lambda v: v if isinstance(v, str) else " ".join(v),
)
def test_inconsistent_values_fail_with_a_message(helm, args, message):
    proc = run_helm_template(helm, *args)
    assert proc.returncode != 0
    assert message in proc.stderr, proc.stderr


@pytest.mark.parametrize("value_set", VALUE_SETS, ids=str)
def test_apiservices_are_plain_release_objects(render, value_set):
    """`helm uninstall` deletes them: no keep policy, no hook (hooks are not release objects)."""
    apiservices = find(render(value_set), "APIService")
    assert {a["metadata"]["name"] for a in apiservices} == {
        "v1beta1.wardle.example.com", "v1alpha1.wardle.example.com"}
    for apiservice in apiservices:
        annotations = apiservice["metadata"].get("annotations") or {}
        assert "helm.sh/resource-policy" not in annotations
        assert not any(key.startswith("helm.sh/hook") for key in annotations)
        assert "insecureSkipTLSVerify" not in apiservice["spec"]
        service = apiservice["spec"]["service"]
        assert (service["name"], service["namespace"], service["port"]) == (FULLNAME, NAMESPACE, 443)


def test_apiservice_priorities_come_from_values(render):
    apiservices = {a["metadata"]["name"]: a["spec"] for a in find(render(), "APIService")}
    assert apiservices["v1beta1.wardle.example.com"]["versionPriority"] == 20
    assert apiservices["v1alpha1.wardle.example.com"]["versionPriority"] == 15
    assert {s["groupPriorityMinimum"] for s in apiservices.values()} == {1000}
    custom = find(render(None, "--set", "apiService.groups[0].groupPriorityMinimum=2000",
                         "--set", "apiService.groups[0].name=wardle.example.com",
                         "--set", "apiService.groups[0].versions[0].name=v1",
                         "--set", "apiService.groups[0].versions[0].versionPriority=7"), "APIService")
    assert [(a["metadata"]["name"], a["spec"]["groupPriorityMinimum"], a["spec"]["versionPriority"])
            for a in custom] == [("v1.wardle.example.com", 2000, 7)]


def test_insecure_skip_tls_verify_is_an_explicit_opt_in(render):
    for apiservice in find(render(None, "--set", "apiService.insecureSkipTLSVerify=true"), "APIService"):
        assert apiservice["spec"]["insecureSkipTLSVerify"] is True
        assert "caBundle" not in apiservice["spec"]  # the two are mutually exclusive


@pytest.mark.parametrize("value_set", VALUE_SETS, ids=str)
def test_pods_are_hardened(render, value_set):
    specs = pod_specs(render(value_set))
    assert specs
    for name, spec in specs:
        pod_sc = spec["securityContext"]
        assert pod_sc["runAsNonRoot"] is True, name
        assert pod_sc["runAsUser"] != 0, name
        assert pod_sc["seccompProfile"] == {"type": "RuntimeDefault"}, name
        # hostNetwork only where asked for (the operator-options set), never hostPID/hostIPC.
        assert bool(spec.get("hostNetwork")) == (value_set == "operator-options-values.yaml" and
                                                 name == FULLNAME), name
        assert not spec.get("hostPID") and not spec.get("hostIPC")
        assert not any("hostPath" in v for v in spec.get("volumes", [])), name
        for container in spec["containers"]:
            sc = container["securityContext"]
            assert sc["allowPrivilegeEscalation"] is False, name
            assert sc["readOnlyRootFilesystem"] is True, name
            assert sc.get("privileged") is not True, name
            assert sc["capabilities"]["drop"] == ["ALL"], name
            assert not sc["capabilities"].get("add"), name
            assert container["resources"]["requests"], name
            assert container["resources"]["limits"]["memory"], name


def _server_container(objects):
    deployment = one(objects, "Deployment")
    return deployment, deployment["spec"]["template"]["spec"]["containers"][0]


def _flags(container) -> dict[str, str]:
    return dict(arg.removeprefix("--").split("=", 1) if "=" in arg else (arg.removeprefix("--"), "")
                for arg in container["args"])


def test_deployment_defaults_are_ha_with_probes(render):
    objects = render()
    deployment, container = _server_container(objects)
    spec = deployment["spec"]
    assert spec["replicas"] == 2
    assert spec["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    anti = spec["template"]["spec"]["affinity"]["podAntiAffinity"]
    term = anti["preferredDuringSchedulingIgnoredDuringExecution"][0]["podAffinityTerm"]
    assert term["labelSelector"]["matchLabels"] == spec["selector"]["matchLabels"]
    assert one(objects, "PodDisruptionBudget", FULLNAME)["spec"]["minAvailable"] == 1
    flags = _flags(container)
    port = container["ports"][0]
    assert port["name"] == "https" and str(port["containerPort"]) == flags["secure-port"] == "8443"
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "https", "scheme": "HTTPS"}
    assert container["livenessProbe"]["httpGet"] == {"path": "/livez", "port": "https", "scheme": "HTTPS"}
    service = one(objects, "Service", FULLNAME)
    assert service["spec"]["ports"] == [{"name": "https", "port": 443, "targetPort": "https", "protocol": "TCP"}]
    assert service["spec"]["selector"] == spec["selector"]["matchLabels"]
    assert container["image"] == "ghcr.io/extserver/extserver:" + yaml.safe_load(
        (CHART_DIR / "Chart.yaml").read_text())["appVersion"]


def test_server_flags_follow_values(render):
    _, container = _server_container(render(None, "--set-json", 'server.apiModules=["my.groups.a","my.groups.b"]',
                                            "--set-json", 'server.extraArgs=["--audit-log-maxage=3"]',
                                            "--set", "image.digest=sha256:" + "a" * 64))
    assert container["args"].count("--api-module=my.groups.a") == 1
    assert "--api-module=my.groups.b" in container["args"]
    assert container["args"][-1] == "--audit-log-maxage=3"
    assert container["image"].endswith("@sha256:" + "a" * 64)


def test_single_replica_embedded_uses_a_pvc(render):
    objects = render("single-replica-embedded-values.yaml")
    deployment, container = _server_container(objects)
    assert deployment["spec"]["replicas"] == 1
    assert deployment["spec"]["strategy"] == {"type": "Recreate"}
    assert not find(objects, "PodDisruptionBudget")
    assert not find(objects, "StatefulSet")
    flags = _flags(container)
    assert flags["storage-backend"] == "embedded"
    pvc = one(objects, "PersistentVolumeClaim")
    volumes = {v["name"]: v for v in deployment["spec"]["template"]["spec"]["volumes"]}
    assert volumes["data"]["persistentVolumeClaim"]["claimName"] == pvc["metadata"]["name"]
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    assert mounts["data"] == flags["data-dir"]
    assert pvc["spec"]["resources"]["requests"]["storage"] == "2Gi"


def test_external_etcd_flags_and_client_secret(render):
    objects = render("etcd-external-values.yaml")
    deployment, container = _server_container(objects)
    flags = _flags(container)
    assert flags["storage-backend"] == "etcd3"
    assert flags["etcd-servers"] == ",".join(f"https://etcd-{i}.etcd.storage.svc:2379" for i in range(3))
    assert flags["etcd-prefix"] == "/registry/wardle"
    assert flags["encryption-provider-config"] == "/etc/extserver/encryption/config.yaml"
    volumes = {v["name"]: v for v in deployment["spec"]["template"]["spec"]["volumes"]}
    assert volumes["etcd-client"]["secret"]["secretName"] == "extserver-etcd-client"
    assert volumes["encryption"]["secret"]["secretName"] == "extserver-encryption"
    assert not find(objects, "StatefulSet")
    assert one(objects, "PodDisruptionBudget")["spec"]["minAvailable"] == 2


def test_bundled_etcd_members_and_isolation(render):
    objects = render("etcd-bundled-values.yaml")
    sts = one(objects, "StatefulSet")
    assert sts["spec"]["replicas"] == 3
    assert sts["spec"]["podManagementPolicy"] == "Parallel"
    assert sts["spec"]["template"]["spec"]["automountServiceAccountToken"] is False
    args = sts["spec"]["template"]["spec"]["containers"][0]["args"]
    cluster = next(a for a in args if a.startswith("--initial-cluster="))
    assert cluster.count("=https://") == 3
    headless = one(objects, "Service", f"{FULLNAME}-etcd-headless")
    assert headless["spec"]["clusterIP"] == "None" and headless["spec"]["publishNotReadyAddresses"] is True
    _, container = _server_container(objects)
    assert _flags(container)["etcd-servers"].count("https://") == 3
    policies = {p["metadata"]["name"]: p for p in find(objects, "NetworkPolicy")}
    etcd_policy = policies[f"{FULLNAME}-etcd"]
    client_rule = etcd_policy["spec"]["ingress"][0]
    assert client_rule["from"][0]["podSelector"]["matchLabels"]["app.kubernetes.io/component"] == "apiserver"
    assert one(objects, "PodDisruptionBudget", f"{FULLNAME}-etcd")["spec"]["maxUnavailable"] == 1


def test_rbac_is_least_privilege(render):
    objects = render()
    bindings = {b["roleRef"]["name"]: b for b in find(objects, "ClusterRoleBinding")}
    assert "system:auth-delegator" in bindings
    reader = one(objects, "RoleBinding")
    assert reader["metadata"]["namespace"] == "kube-system"
    assert reader["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role",
                                 "name": "extension-apiserver-authentication-reader"}
    for binding in [*bindings.values(), reader]:
        assert binding["subjects"] == [{"kind": "ServiceAccount", "name": FULLNAME, "namespace": NAMESPACE}]
    server_role = one(objects, "ClusterRole", FULLNAME)
    for rule in server_role["rules"]:
        assert set(rule["verbs"]) <= {"get", "list", "watch"}
        assert "*" not in rule["resources"]
    assert {r for rule in server_role["rules"] for r in rule["resources"]} == {
        "namespaces", "mutatingwebhookconfigurations", "validatingwebhookconfigurations"}
    assert not any(r.get("resources") == ["apiservices"] for r in server_role["rules"])


def test_aggregated_cluster_roles(render):
    objects = render()
    view = one(objects, "ClusterRole", f"{FULLNAME}-view")
    edit = one(objects, "ClusterRole", f"{FULLNAME}-edit")
    assert view["metadata"]["labels"]["rbac.authorization.k8s.io/aggregate-to-view"] == "true"
    assert edit["metadata"]["labels"]["rbac.authorization.k8s.io/aggregate-to-edit"] == "true"
    assert edit["metadata"]["labels"]["rbac.authorization.k8s.io/aggregate-to-admin"] == "true"
    assert view["rules"] == [{"apiGroups": ["wardle.example.com"], "resources": ["flunders", "fischers"],
                              "verbs": ["get", "list", "watch"]}]
    assert set(edit["rules"][0]["verbs"]) == {"create", "update", "patch", "delete", "deletecollection"}


def test_self_registration_rbac_is_limited_to_its_apiservices(render):
    objects = render("self-register-values.yaml")
    role = one(objects, "ClusterRole", f"{FULLNAME}-apiservice-registrar")
    assert role["rules"] == [{"apiGroups": ["apiregistration.k8s.io"], "resources": ["apiservices"],
                              "verbs": ["get", "update", "patch"],
                              "resourceNames": ["v1beta1.wardle.example.com", "v1alpha1.wardle.example.com"]}]
    _, container = _server_container(objects)
    flags = _flags(container)
    assert "register-apiservice" in flags
    assert (flags["service-name"], flags["service-namespace"]) == (FULLNAME, NAMESPACE)
    assert "cert-dir" in flags and "tls-cert-file" not in flags
    for apiservice in find(objects, "APIService"):  # the server fills it in
        assert "caBundle" not in apiservice["spec"]


def test_cert_manager_wiring(render):
    objects = render("cert-manager-values.yaml")
    assert not find(objects, "Secret")
    certificates = {c["metadata"]["name"]: c for c in find(objects, "Certificate")}
    issuers = {i["metadata"]["name"]: i for i in find(objects, "Issuer")}
    serving = certificates[f"{FULLNAME}-serving"]
    assert f"{FULLNAME}.{NAMESPACE}.svc" in serving["spec"]["dnsNames"]
    assert "server auth" in serving["spec"]["usages"]
    assert serving["spec"]["issuerRef"]["name"] in issuers
    ca_issuer = issuers[serving["spec"]["issuerRef"]["name"]]
    ca_cert = next(c for c in certificates.values() if c["spec"]["secretName"] == ca_issuer["spec"]["ca"]["secretName"])
    assert ca_cert["spec"]["isCA"] is True and ca_cert["spec"]["issuerRef"]["name"] in issuers
    deployment, _ = _server_container(objects)
    volumes = {v["name"]: v for v in deployment["spec"]["template"]["spec"]["volumes"]}
    assert volumes["tls"]["secret"]["secretName"] == serving["spec"]["secretName"]
    for apiservice in find(objects, "APIService"):
        assert apiservice["metadata"]["annotations"]["cert-manager.io/inject-ca-from"] == \
            f"{NAMESPACE}/{FULLNAME}-serving"
        assert "caBundle" not in apiservice["spec"]  # cainjector writes it
    etcd_volumes = {v["name"]: v for v in one(objects, "StatefulSet")["spec"]["template"]["spec"]["volumes"]}
    assert etcd_volumes["tls"]["secret"]["secretName"] == certificates[f"{FULLNAME}-etcd-peer"]["spec"]["secretName"]
    assert volumes["etcd-client"]["secret"]["secretName"] == certificates[f"{FULLNAME}-etcd-client"]["spec"]["secretName"]
    monitor = one(objects, "ServiceMonitor")
    assert monitor["spec"]["endpoints"][0]["tlsConfig"]["serverName"] == f"{FULLNAME}.{NAMESPACE}.svc"
    assert monitor["spec"]["endpoints"][0]["tlsConfig"]["ca"]["secret"]["name"] == serving["spec"]["secretName"]
    spread = deployment["spec"]["template"]["spec"]["topologySpreadConstraints"][0]
    assert spread["labelSelector"]["matchLabels"] == deployment["spec"]["selector"]["matchLabels"]
    assert deployment["spec"]["template"]["spec"]["priorityClassName"] == "system-cluster-critical"


def test_cert_manager_with_a_cluster_issuer(render):
    objects = render("cert-manager-issuer-values.yaml")
    serving = one(objects, "Certificate", f"{FULLNAME}-serving")
    assert serving["spec"]["issuerRef"] == {"name": "cluster-ca", "kind": "ClusterIssuer", "group": "cert-manager.io"}
    assert not find(objects, "Issuer", f"{FULLNAME}-ca")


def test_existing_secret_wiring(render):
    objects = render("existing-secret-values.yaml")
    given = yaml.safe_load((CI_VALUES_DIR / "existing-secret-values.yaml").read_text())["tls"]["existingSecret"]
    deployment, _ = _server_container(objects)
    volumes = {v["name"]: v for v in deployment["spec"]["template"]["spec"]["volumes"]}
    assert volumes["tls"]["secret"]["secretName"] == given["name"]
    assert not find(objects, "Secret", given["name"])  # the user's, not the chart's
    for apiservice in find(objects, "APIService"):
        assert base64.b64decode(apiservice["spec"]["caBundle"]).decode() == given["caBundle"]


def test_notes_explain_how_to_check(helm, tmp_path):
    """NOTES.txt rendered through helm itself (a copy of the chart exposes it as a ConfigMap)."""
    chart = tmp_path / "extserver"
    shutil.copytree(CHART_DIR, chart)
    (chart / "templates" / "zz-notes.yaml").write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: notes\ndata:\n"
        '  notes: {{ include "extserver/templates/NOTES.txt" . | quote }}\n')
    proc = subprocess.run([helm, "template", "t", str(chart), "--namespace", NAMESPACE,
                           "--show-only", "templates/zz-notes.yaml"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    notes = yaml.safe_load(proc.stdout)["data"]["notes"]
    assert "kubectl wait --for=condition=Available --timeout=120s apiservice/v1beta1.wardle.example.com" in notes
    assert "kubectl get apiservices v1beta1.wardle.example.com v1alpha1.wardle.example.com" in notes
    assert "kubectl get flunders.wardle.example.com" in notes
    assert "insecureSkipTLSVerify" not in notes


@pytest.mark.parametrize("value_set", VALUE_SETS, ids=str)
def test_rendered_command_line_parses_with_the_server_cli(render, value_set):
    """The chart's flags are the ones `extserver serve` accepts (its real argument parser)."""
    from extserver.cli import build_parser

    objects = render(value_set)
    _, container = _server_container(objects)
    assert container["command"] == ["extserver", "serve"]
    args = build_parser().parse_args([*container["command"][1:], *container["args"]])
    assert args.command == "serve"
    assert args.secure_port == container["ports"][0]["containerPort"]
    assert args.authorization_mode == "Delegated"
    assert args.data_dir == "/var/lib/extserver"
    embedded = one(objects, "Deployment")["spec"]["strategy"]["type"] == "Recreate"
    assert args.storage_backend == ("embedded" if embedded else "etcd3")
    if not embedded:
        assert args.etcd_servers and all(s.startswith("https://") for s in args.etcd_servers)
    if args.cert_dir is None:
        assert (args.tls_cert_file, args.tls_private_key_file) == (
            "/etc/extserver/tls/tls.crt", "/etc/extserver/tls/tls.key")
    mounts = {m["mountPath"] for m in container["volumeMounts"]}
    for path in (args.tls_cert_file, args.etcd_cafile, args.encryption_provider_config, args.audit_policy_file):
        if path:
            assert str(Path(path).parent) in mounts, path
    for writable in (args.data_dir, args.cert_dir):
        if writable:
            assert writable in mounts, writable


def test_own_groups_without_the_bundled_one(render):
    _, container = _server_container(render(None, "--set", "server.bundledGroups=false",
                                            "--set-json", 'server.apiModules=["my.groups"]'))
    from extserver.cli import build_parser

    args = build_parser().parse_args(["serve", *container["args"]])
    assert args.no_bundled_groups is True and args.api_module == ["my.groups"]


def test_operator_options(render):
    deployment, container = _server_container(render("operator-options-values.yaml"))
    pod = deployment["spec"]["template"]["spec"]
    assert pod["hostNetwork"] is True
    assert pod["dnsPolicy"] == "ClusterFirstWithHostNet"  # cluster DNS still resolves on the host network
    assert pod["priorityClassName"] == "system-cluster-critical"
    assert _flags(container)["secure-port"] == "4443" and container["ports"][0]["containerPort"] == 4443
    assert container["args"][-1] == "--max-requests-inflight=800"  # after the chart's own: it wins
    assert {"name": "EXTSERVER_EXAMPLE", "value": "1"} in container["env"]
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["group-config"] == {"name": "group-config", "configMap": {"name": "my-group-config"}}
    assert {"name": "group-config", "mountPath": "/etc/my-group", "readOnly": True} in container["volumeMounts"]
    assert container["livenessProbe"] == {
        "httpGet": {"path": "/livez", "port": "https", "scheme": "HTTPS"},
        "initialDelaySeconds": 10, "periodSeconds": 20, "timeoutSeconds": 5, "failureThreshold": 5}
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz?verbose", "port": "https", "scheme": "HTTPS"}
    assert "startupProbe" not in container
    spread = pod["topologySpreadConstraints"]
    assert spread == [{"maxSkew": 1, "topologyKey": "kubernetes.io/hostname", "whenUnsatisfiable": "DoNotSchedule",
                       "labelSelector": {"matchLabels": deployment["spec"]["selector"]["matchLabels"]}}]


def test_operator_options_are_off_by_default(render):
    deployment, container = _server_container(render())
    pod = deployment["spec"]["template"]["spec"]
    for key in ("hostNetwork", "dnsPolicy", "priorityClassName", "topologySpreadConstraints"):
        assert key not in pod, key
    assert {"startupProbe", "livenessProbe", "readinessProbe"} <= set(container)


def test_a_probe_handler_replaces_the_default(render):
    _, container = _server_container(render(None, "--set-json", 'livenessProbe.tcpSocket={"port":"https"}'))
    assert container["livenessProbe"]["tcpSocket"] == {"port": "https"}
    assert "httpGet" not in container["livenessProbe"]
    assert container["startupProbe"]["httpGet"]["path"] == "/livez"


def test_chart_image_is_the_one_the_build_script_tags(render):
    script = REPO_ROOT / "scripts" / "build-image.sh"

    def built(*args: str) -> str:
        proc = subprocess.run([str(script), "--print-ref", *args], capture_output=True, text=True, timeout=60)
        assert proc.returncode == 0, proc.stderr
        return proc.stdout.strip()

    _, container = _server_container(render())
    assert container["image"] == built()
    _, container = _server_container(render(None, "--set", "image.repository=registry.example.com/team/extserver"))
    assert container["image"] == built("--registry", "registry.example.com/team")


#: The first Kubernetes minor serving each API version the chart renders (custom resources
#: aside). The kubeVersion floor must be the highest of them, no higher.
API_SINCE = {"v1": 0, "apps/v1": 9, "rbac.authorization.k8s.io/v1": 8, "networking.k8s.io/v1": 7,
             "apiregistration.k8s.io/v1": 10, "policy/v1": 21}


def test_kube_version_floor_is_what_the_rendered_objects_need(render, helm):
    needed = 19  # pod fields used: securityContext.seccompProfile, topologySpreadConstraints (GA 1.19)
    for value_set in VALUE_SETS:
        for obj in render(value_set):
            if (obj["apiVersion"], obj["kind"]) in CRD_KINDS:
                continue
            assert obj["apiVersion"] in API_SINCE, f"{obj['kind']} {obj['apiVersion']}: add it to API_SINCE"
            needed = max(needed, API_SINCE[obj["apiVersion"]])
    chart = yaml.safe_load((CHART_DIR / "Chart.yaml").read_text())
    assert chart["kubeVersion"] == f">=1.{needed}.0-0"
    assert run_helm_template(helm, "--kube-version", f"1.{needed}.0").returncode == 0
    refused = run_helm_template(helm, "--kube-version", f"1.{needed - 1}.15")
    assert refused.returncode != 0
    assert f"chart requires kubeVersion: >=1.{needed}.0-0 which is incompatible with Kubernetes v1.{needed - 1}.15" \
        in refused.stderr


def test_helm_package_is_versioned_with_the_package_version(helm, tmp_path):
    version = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]["version"]
    chart_version = yaml.safe_load((CHART_DIR / "Chart.yaml").read_text())["version"]
    proc = subprocess.run([helm, "package", str(CHART_DIR), "--destination", str(tmp_path)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    archive = tmp_path / f"extserver-{chart_version}.tgz"
    assert proc.stdout.strip().endswith(str(archive))
    with tarfile.open(archive) as tar:
        packaged = yaml.safe_load(tar.extractfile("extserver/Chart.yaml").read())
        names = tar.getnames()
    assert packaged["appVersion"] == version
    assert "extserver/values.schema.json" in names and "extserver/ci/cert-manager-values.yaml" not in names
    rendered = subprocess.run([helm, "template", "t", str(archive), "--namespace", NAMESPACE],
                              capture_output=True, text=True, timeout=120)
    assert rendered.returncode == 0, rendered.stderr
    assert f"image: ghcr.io/extserver/extserver:{version}" in rendered.stdout


LOOKUP = 'lookup "v1" "Secret" .Release.Namespace (include "extserver.tlsSecretName" .)'


def _upgrade_render(helm, tmp_path, installed: list[dict], *args: str) -> list[dict]:
    """Render as `helm upgrade` does over a release whose objects are `installed`.

    There is no cluster here, so helm's `lookup` of the serving Secret (the one call the
    chart makes for it) is replaced in a copy of the chart by the Secret of the previous
    render, read from a file: the template logic around it is the chart's own.
    """
    chart = tmp_path / "upgrade" / "extserver"
    shutil.copytree(CHART_DIR, chart, dirs_exist_ok=True)
    helpers = chart / "templates" / "_helpers.tpl"
    text = helpers.read_text()
    assert text.count(LOOKUP) == 1
    helpers.write_text(text.replace(LOOKUP, '(.Files.Get "installed-secret.yaml" | fromYaml)'))
    (chart / "installed-secret.yaml").write_text(yaml.safe_dump(one(installed, "Secret", f"{FULLNAME}-tls")))
    proc = subprocess.run([helm, "template", "t", str(chart), "--namespace", NAMESPACE, *args],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return [d for d in yaml.safe_load_all(proc.stdout) if d]


def _ca_bundles(objects) -> set[str]:
    return {a["spec"]["caBundle"] for a in find(objects, "APIService")}


def test_upgrade_keeps_the_generated_serving_certificate(render, helm, tmp_path):
    installed = render()
    upgraded = _upgrade_render(helm, tmp_path, installed)
    assert one(upgraded, "Secret", f"{FULLNAME}-tls")["data"] == one(installed, "Secret", f"{FULLNAME}-tls")["data"]
    assert _ca_bundles(upgraded) == _ca_bundles(installed) and len(_ca_bundles(installed)) == 1  # no churn
    # Negative control: without the lookup every render makes a new CA.
    assert _ca_bundles(render(None, "--set", "tls.helm.lookup=false")) != _ca_bundles(installed)


def test_upgrade_with_regenerate_trusts_the_old_and_the_new_ca(render, helm, tmp_path):
    installed = render()
    old_ca = secret_bytes(one(installed, "Secret", f"{FULLNAME}-tls"), "ca.crt")
    upgraded = _upgrade_render(helm, tmp_path, installed, "--set", "tls.helm.regenerate=true")
    secret = one(upgraded, "Secret", f"{FULLNAME}-tls")
    assert secret_bytes(secret, "ca.crt") != old_ca
    (bundle,) = _ca_bundles(upgraded)
    pem = base64.b64decode(bundle).decode()
    assert pem.count("BEGIN CERTIFICATE") == 2
    assert old_ca.decode().strip() in pem and secret_bytes(secret, "ca.crt").decode().strip() in pem


def test_priority_class_defaults_to_system_cluster_critical_for_metrics(helm, tmp_path):
    """metrics.enabled comes with the metrics values (their schema lives with them); here a
    copy of the chart without the schema renders it."""
    chart = tmp_path / "extserver"
    shutil.copytree(CHART_DIR, chart)
    (chart / "values.schema.json").unlink()

    def priority(*args: str) -> str | None:
        proc = subprocess.run([helm, "template", "t", str(chart), "--namespace", NAMESPACE,
                               "--show-only", "templates/deployment.yaml", *args],
                              capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, proc.stderr
        return yaml.safe_load(proc.stdout)["spec"]["template"]["spec"].get("priorityClassName")

    assert priority("--set", "metrics.enabled=true") == "system-cluster-critical"
    assert priority("--set", "metrics.enabled=true", "--set", "priorityClassName=my-class") == "my-class"
    assert priority("--set", "metrics.enabled=false") is None
    assert priority() is None
