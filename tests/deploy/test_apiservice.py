"""APIService self-registration: the body builder and the update rule (pure functions).

Live registration against a kube-apiserver is not exercised here (no cluster on this
machine); these tests cover what the server would send.
"""
from __future__ import annotations

import base64
import datetime

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from kubernetes.client import ApiClient, V1APIService

from extserver.server.apiservice import (
    build_apiservice_body,
    default_version_priorities,
    merge_apiservice,
    register_apiservices,
)


def _ca_pem(common_name: str = "extserver-ca") -> bytes:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now)
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    return cert.public_bytes(serialization.Encoding.PEM)


CA = _ca_pem()


def _body(**overrides):
    kwargs = dict(service_name="extserver", service_namespace="extserver", ca_bundle_pem=CA)
    kwargs.update(overrides)
    return build_apiservice_body("wardle.example.com", "v1beta1", **kwargs)


def test_body_matches_the_apiservice_the_aggregator_expects():
    body = _body(group_priority_minimum=1000, version_priority=20)
    assert body["apiVersion"] == "apiregistration.k8s.io/v1"
    assert body["kind"] == "APIService"
    assert body["metadata"]["name"] == "v1beta1.wardle.example.com"
    assert body["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "extserver"
    spec = body["spec"]
    assert spec["group"] == "wardle.example.com" and spec["version"] == "v1beta1"
    assert spec["groupPriorityMinimum"] == 1000 and spec["versionPriority"] == 20
    assert spec["service"] == {"name": "extserver", "namespace": "extserver", "port": 443}
    assert base64.b64decode(spec["caBundle"]) == CA
    assert x509.load_pem_x509_certificate(base64.b64decode(spec["caBundle"])).subject.rfc4514_string() == "CN=extserver-ca"
    assert "insecureSkipTLSVerify" not in spec


def test_body_survives_the_kubernetes_client_serialization():
    """What the client puts on the wire is the body itself (no double base64, no lost field)."""
    body = _body(labels={"team": "wardle"})
    wire = ApiClient().sanitize_for_serialization(V1APIService.from_dict(body))
    assert wire == body


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"ca_bundle_pem": b""}, "PEM certificate"),
        ({"ca_bundle_pem": b"not a certificate"}, "PEM certificate"),
        ({"group_priority_minimum": 0}, "groupPriorityMinimum"),
        ({"group_priority_minimum": 20001}, "groupPriorityMinimum"),
        ({"version_priority": 1001}, "versionPriority"),
        ({"service_port": 0}, "port"),
        ({"service_name": ""}, "service name"),
    ],
)
def test_body_rejects_values_the_apiserver_would_refuse(overrides, message):
    with pytest.raises(ValueError, match=message):
        _body(**overrides)


def test_default_version_priorities_prefer_the_first_version_of_each_group():
    priorities = default_version_priorities([
        ("wardle.example.com", "v1beta1"), ("wardle.example.com", "v1alpha1"), ("other.example.com", "v1")])
    assert priorities == {("wardle.example.com", "v1beta1"): 20, ("wardle.example.com", "v1alpha1"): 15,
                          ("other.example.com", "v1"): 15}


def _existing(**spec_overrides):
    spec = {"group": "wardle.example.com", "version": "v1beta1", "groupPriorityMinimum": 2000,
            "versionPriority": 7, "service": {"name": "old", "namespace": "extserver", "port": 443},
            "insecureSkipTLSVerify": True}
    spec.update(spec_overrides)
    return {"apiVersion": "apiregistration.k8s.io/v1", "kind": "APIService",
            "metadata": {"name": "v1beta1.wardle.example.com", "resourceVersion": "42", "uid": "u-1",
                         "labels": {"app.kubernetes.io/managed-by": "Helm"},
                         "annotations": {"meta.helm.sh/release-name": "extserver"}},
            "spec": spec,
            "status": {"conditions": [{"type": "Available", "status": "False"}]}}


def test_merge_sets_ca_and_service_and_keeps_chosen_priorities():
    desired = _body()
    merged = merge_apiservice(_existing(), desired)
    assert merged is not None
    assert merged["metadata"]["resourceVersion"] == "42"  # optimistic concurrency on replace
    assert merged["metadata"]["annotations"] == {"meta.helm.sh/release-name": "extserver"}
    assert merged["spec"]["caBundle"] == desired["spec"]["caBundle"]
    assert merged["spec"]["service"] == desired["spec"]["service"]
    assert "insecureSkipTLSVerify" not in merged["spec"]  # forbidden together with caBundle
    assert (merged["spec"]["groupPriorityMinimum"], merged["spec"]["versionPriority"]) == (2000, 7)
    assert "status" not in merged


def test_merge_can_overwrite_priorities():
    merged = merge_apiservice(_existing(), _body(version_priority=20), overwrite_priorities=True)
    assert (merged["spec"]["groupPriorityMinimum"], merged["spec"]["versionPriority"]) == (1000, 20)


def test_merge_is_a_no_op_when_already_registered():
    desired = _body()
    current = merge_apiservice(_existing(), desired)
    assert merge_apiservice(current, desired) is None


def test_merge_rotates_the_ca():
    first = merge_apiservice(_existing(), _body())
    rotated = merge_apiservice(first, _body(ca_bundle_pem=_ca_pem("rotated-ca")))
    assert rotated is not None
    assert base64.b64decode(rotated["spec"]["caBundle"]) != base64.b64decode(first["spec"]["caBundle"])


async def test_register_refuses_a_bad_attempt_count():
    with pytest.raises(ValueError, match="max_attempts"):
        await register_apiservices(ApiClient(), [("wardle.example.com", "v1beta1")], service_name="s",
                                   service_namespace="n", ca_bundle_pem=CA, max_attempts=0)
