"""A sample of the fuzz inputs (``tests/robustness/inputs.py``) sent to the real server over
HTTPS as creates (JSON and YAML), patches of every type and applies, with issue 10's
hand-made inputs always among them. The server runs with its address space capped
(``ROBUST_SERVER_AS_MB``), so a decoding blow-up ends it instead of the machine.

Fails on any 5xx, on a hang (no answer within ``ROBUST_HTTPS_TIMEOUT`` seconds), on a
refusal that is not a ``Status``, on a traceback in the server log and on the server
dying. Budget: ``ROBUST_FUZZ_HTTPS_EXAMPLES`` random inputs per kind."""
from __future__ import annotations

import collections
import os
import shutil
import time

import pytest
import requests
from hypothesis import HealthCheck, Phase, example, given, settings
from hypothesis import strategies as st

from tests.e2e.harness import API, flunder, new_tmp_dir
from tests.robustness import inputs as I
from tests.robustness.common import (Problems, budget, is_status, legitimate_5xx, record, traceback_signature,
                                     tracebacks)
from tests.robustness.servers import WIDGETS, LimitedServer

FL = "/apis/wardle.example.com/v1beta1/namespaces/robust/flunders"
SEED = FL + "/seed"

#: kind -> (method, path, content type, body strategy, the hand-made inputs' format)
KINDS = {
    "create-json": ("POST", FL, "application/json", I.json_bodies, "json"),
    "create-yaml": ("POST", FL, "application/yaml", I.yaml_bodies, "yaml"),
    "update-json": ("PUT", SEED, "application/json", I.json_bodies, "json"),
    "json-patch": ("PATCH", SEED, "application/json-patch+json", I.json_patches, "json"),
    "merge-patch": ("PATCH", SEED, "application/merge-patch+json", I.merge_patches, "json"),
    "strategic-merge-patch": ("PATCH", SEED, "application/strategic-merge-patch+json", I.strategic_patches, "json"),
    "apply": ("PATCH", SEED, "application/apply-patch+yaml", I.yaml_bodies, "yaml"),
}

COUNTS: collections.Counter = collections.Counter()


def _hand_made(fmt: str) -> list[bytes]:
    """Issue 10's inputs of this format, the deepest nestings left to the in-process fuzz
    (each costs the server a second or more to refuse)."""
    return [b for k, b in I.NASTY if k == fmt and len(b) < 12_000]


@pytest.fixture(scope="module")
def limited_server():
    limit = budget("SERVER_AS_MB", 3072) << 20
    srv = LimitedServer(new_tmp_dir("extserver-robust-as-"), extra_args=WIDGETS, limits={"RLIMIT_AS": limit})
    srv.start()
    yield srv
    srv.stop(timeout=5)
    shutil.rmtree(srv.data_dir, ignore_errors=True)


def _summary():
    record("fuzz-https", requests=COUNTS["requests"], **{"5xx": COUNTS["5xx"]}, hangs=COUNTS["hangs"],
           not_status=COUNTS["not_status"], server_died=COUNTS["died"], tracebacks=COUNTS["tracebacks"])


def send(srv: LimitedServer, api: API, kind: str, body: bytes, params: dict, timeout: float,
         problems: Problems) -> None:
    method, path, ctype, _, _ = KINDS[kind]
    what = f"{method} {path} params={params} body={body[:300]!r}{'...' if len(body) > 300 else ''} " \
           f"({len(body)} bytes)"
    COUNTS["requests"] += 1
    try:
        r = api.req(method, path, raw=body, ctype=ctype, params=params, timeout=(5, timeout))
    except requests.Timeout:
        COUNTS["hangs"] += 1
        problems.add(f"{kind}: no answer within {timeout:.0f}s", what)
        return
    except requests.ConnectionError as e:
        if not srv.alive():
            COUNTS["died"] += 1
            problems.add(f"{kind}: server died (exit {srv.proc.returncode})", what)
        else:
            problems.add(f"{kind}: connection closed without an answer ({type(e).__name__})", what)
        return
    try:
        doc = r.json()
    except ValueError:
        doc = None
    if r.status_code >= 500 and not legitimate_5xx(r.status_code, doc):
        COUNTS["5xx"] += 1
        problems.add(f"{kind}: {r.status_code} {r.text[:160]}", what)
    elif r.status_code >= 400 and not is_status(doc, r.status_code):
        COUNTS["not_status"] += 1
        problems.add(f"{kind}: {r.status_code} is not a Status ({r.text[:100]!r})", what)


def _params(kind: str, fv: str, force: bool) -> dict:
    p = {"fieldValidation": fv}
    if kind == "apply":
        p.update(fieldManager="fuzz", force=str(force).lower())
    return p


@pytest.mark.parametrize("kind", list(KINDS))
def test_fuzz_inputs_over_https(limited_server, kind):
    srv = limited_server
    api = API(srv)
    api.post(FL, flunder("seed"))
    problems = Problems()
    seen_logs = len(srv.output)
    timeout = budget("HTTPS_TIMEOUT", 20)
    strategy, fmt = KINDS[kind][3], KINDS[kind][4]

    @settings(max_examples=budget("FUZZ_HTTPS_EXAMPLES", 25), deadline=None, database=None,
              phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck),
              derandomize=not os.environ.get("ROBUST_RANDOM"))
    @given(body=strategy, fv=st.sampled_from(["Strict", "Warn", "Ignore", ""]), force=st.booleans())
    def run(body, fv, force):
        if srv.alive():
            send(srv, api, kind, body, _params(kind, fv, force), timeout, problems)
            if kind.startswith("create") or kind == "update-json":
                api.post(FL, flunder("seed"))  # a create may have used the name; an update may have changed it

    for body in _hand_made(fmt):
        run = example(body=body, fv="Warn", force=True)(run)
    run()
    logged = tracebacks(srv, since=seen_logs)
    COUNTS["tracebacks"] += len(logged)
    for t in logged:
        problems.add(f"{kind}: traceback in the server log: {traceback_signature(t)}", t.splitlines()[0])
    _summary()
    if problems:
        pytest.fail(f"{kind}: {len(problems)} problems:\n" + problems.report(), pytrace=False)


def test_alias_bomb_over_https(limited_server):
    """Last, as it may end the server: issue 10's YAML create answered with a 4xx while the
    server keeps serving (an apply decodes its body the same way)."""
    srv = limited_server
    api = API(srv)
    problems = Problems()
    timeout = budget("BOMB_SECONDS", 10)
    send(srv, api, "create-yaml", I.alias_bomb(), _params("create-yaml", "Warn", True), timeout, problems)
    started = time.monotonic()
    try:
        ok = api.get("/healthz", timeout=(5, timeout)).status_code == 200
    except requests.RequestException:
        ok = False
    if not ok:
        problems.add(f"/healthz not served within {timeout}s after the alias bomb (server "
                     f"{'alive' if srv.alive() else 'dead'}, waited {time.monotonic() - started:.0f}s)", "")
    _summary()
    if problems:
        pytest.fail("alias bomb: " + problems.report(), pytrace=False)
