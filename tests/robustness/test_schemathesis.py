"""Schemathesis against the OpenAPI v2 document the real server serves, over HTTPS with the
admin client certificate: positive and negative data for every operation, a fixed budget
(``ROBUST_ST_EXAMPLES`` per operation and mode, ``ROBUST_ST_SECONDS`` in all).

Fails on a 5xx kube would not send, on a hang (no full answer within ``ROBUST_ST_TIMEOUT``
seconds), on a refusal that is not a ``Status`` for its code, and on a 2xx body that does
not match the served schema. Watches are asked for ``timeoutSeconds=1`` when the generated
value would keep them open (an invalid one is left as generated: kube refuses it)."""
from __future__ import annotations

import collections
import itertools
import time

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.specs.openapi.checks import response_schema_conformance

from tests.e2e.harness import API, flunder
from tests.robustness.common import (Problems, budget, is_status, legitimate_5xx, record, traceback_signature,
                                     tracebacks)

NS = "robust"
SEED = "seed"
_TRUE = {"1", "t", "T", "true", "True", "TRUE"}


def _seed(api: API) -> None:
    """Objects with a known name so get/update/patch/delete reach the object they address;
    re-created before each operation (a generated delete or deletecollection removes them)."""
    api.post(f"/apis/wardle.example.com/v1beta1/namespaces/{NS}/flunders", flunder(SEED))
    api.post("/apis/wardle.example.com/v1alpha1/fischers",
             {"apiVersion": "wardle.example.com/v1alpha1", "kind": "Fischer", "metadata": {"name": SEED}})
    api.post(f"/apis/demo.extserver.io/v1/namespaces/{NS}/widgets",
             {"apiVersion": "demo.extserver.io/v1", "kind": "Widget", "metadata": {"name": SEED}})


def _is_watch(path: str, query: dict) -> bool:
    return "/watch/" in path or str(query.get("watch", "")) in _TRUE


def _bound_watch(query: dict) -> None:
    ts = str(query.get("timeoutSeconds", ""))
    if not ts or (ts.lstrip("-").isdigit() and ts.isascii() and not 0 <= int(ts) <= 2):
        query["timeoutSeconds"] = "1"


def _strategies(op) -> list:
    """Per mode: free path values, the seeded namespace, and the seeded namespace + name."""
    out = []
    for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
        variants = [op.as_strategy(generation_mode=mode)]
        if "{namespace}" in op.path:
            variants.append(op.as_strategy(generation_mode=mode, path_parameters={"namespace": NS}))
        if "{name}" in op.path:
            fixed = {"name": SEED, **({"namespace": NS} if "{namespace}" in op.path else {})}
            variants.append(op.as_strategy(generation_mode=mode, path_parameters=fixed))
        out.append((mode, st.one_of(variants)))
    return out


def test_schemathesis_served_openapi(robust_server):
    srv = robust_server
    api = API(srv)
    examples = budget("ST_EXAMPLES", 12)
    seconds = budget("ST_SECONDS", 75)
    per_request = budget("ST_TIMEOUT", 20)
    schema = schemathesis.openapi.from_url(srv.url + "/openapi/v2", verify=str(srv.ca), cert=srv.client_cert,
                                           timeout=30)
    session = srv.session()
    codes: collections.Counter = collections.Counter()
    problems = Problems()
    ops = 0
    names = itertools.count()
    deadline = time.monotonic() + seconds

    def send(case, fix_name: bool) -> None:
        query = case.query if isinstance(case.query, dict) else {}
        if case.query is None:
            case.query = query
        if _is_watch(case.path, query):
            _bound_watch(query)
        body = case.body
        if fix_name and isinstance(body, dict) and isinstance(body.get("metadata"), dict):
            body["metadata"]["name"] = f"st-{next(names)}"  # so a create gets past name validation
        kw = case.as_transport_kwargs(base_url=srv.url)
        what = f"{case.method.upper()} {kw['url']} params={kw.get('params')} " \
               f"ctype={kw['headers'].get('Content-Type')} body={str(kw.get('json', kw.get('data')))[:300]!r}"
        op = f"{case.method.upper()} {case.path}"
        watch = _is_watch(case.path, query)
        started = time.monotonic()
        try:
            # a watch that started (200) is left at once: its headers show it is served, and
            # the server must take the client going away quietly
            r = session.request(**kw, timeout=(5, per_request), stream=watch)
            if not (watch and r.status_code == 200):
                r.content
            r.close()
        except requests.Timeout:
            codes["hangs"] += 1
            problems.add(f"{op}: no answer within {per_request}s", what)
            return
        except requests.ConnectionError as e:
            problems.add(f"{op}: connection closed without an answer ({type(e).__name__})", what)
            return
        finally:
            codes["requests"] += 1
        if time.monotonic() - started > per_request:
            codes["hangs"] += 1
            problems.add(f"{op}: answered only after {per_request}s", what)
        codes[r.status_code] += 1
        try:
            doc = None if watch and r.status_code == 200 else r.json()
        except ValueError:
            doc = None
        if r.status_code >= 500 and not legitimate_5xx(r.status_code, doc, query):
            codes["5xx"] += 1
            problems.add(f"{op}: {r.status_code} {r.text[:160]}", what)
        elif r.status_code >= 400 and not is_status(doc, r.status_code):
            problems.add(f"{op}: {r.status_code} is not a Status ({r.text[:100]!r})", what)
        elif 200 <= r.status_code < 300 and not watch and case.method != "delete":
            try:
                case.validate_response(r, checks=[response_schema_conformance])
            except AssertionError as e:  # schemathesis' Failure
                problems.add(f"{op}: {r.status_code} does not conform to the schema ({str(e)[:200]})", what)
            except BaseExceptionGroup as e:  # schemathesis' FailureGroup
                problems.add(f"{op}: {r.status_code} does not conform to the schema ({str(e.exceptions[0])[:200]})",
                             what)

    for result in schema.get_all_operations():
        op = result.ok()
        ops += 1
        _seed(api)
        for mode, strategy in _strategies(op):

            @settings(max_examples=examples, deadline=None, database=None, phases=[Phase.generate],
                      suppress_health_check=list(HealthCheck), derandomize=True)
            @given(case=strategy, fix_name=st.booleans())
            def run(case, fix_name):
                if time.monotonic() < deadline:
                    send(case, fix_name and mode == GenerationMode.POSITIVE)

            run()
    logged = tracebacks(srv)
    for t in logged:
        problems.add(f"traceback in the server log: {traceback_signature(t)}", t.splitlines()[0])
    record("schemathesis", operations=ops, requests=codes["requests"], **{"5xx": codes["5xx"]},
           hangs=codes["hangs"], problems=len(problems), tracebacks=len(logged),
           codes="/".join(f"{c}:{n}" for c, n in sorted((k, v) for k, v in codes.items() if isinstance(k, int))))
    if problems:
        pytest.fail(f"{len(problems)} problems:\n" + problems.report(), pytrace=False)
