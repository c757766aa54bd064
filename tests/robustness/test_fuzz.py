"""Hypothesis fuzz of the decode edge, in-process: bodies (JSON, YAML), label and field
selectors, every patch type, apply configurations and continue tokens. The property, for any
input: it decodes (and the object it yields validates and encodes for storage), or it raises
the project's ``StatusError`` with a 4xx code (selectors: the ``ValueError`` their list
handler turns into a 400). Anything else -- ``RecursionError``, ``UnicodeError``,
``TypeError``, ``KeyError``, a 5xx ``StatusError``, a call that runs over
``ROBUST_FUZZ_CALL_SECONDS`` -- is a failure, reported per distinct exception and place with
the smallest input that raised it.

Budget: ``ROBUST_FUZZ_EXAMPLES`` examples per target. Failures are collected rather than
raised, so hypothesis does not spend the budget shrinking."""
from __future__ import annotations

import copy
import os
import signal
import subprocess
import sys
import traceback
from dataclasses import dataclass, field

import pytest
from hypothesis import HealthCheck, Phase, example, given, settings
from hypothesis import strategies as st

from extserver.apis.wardle import group
from extserver.machinery.decoding import decode_versioned, parse_body
from extserver.machinery.errors import StatusError
from extserver.machinery.patch import (apply_json_patch, apply_merge_patch, decode_json_patch, decode_merge_patch,
                                       decode_strategic_merge_patch, strategic_merge_patch)
from extserver.machinery.selectors import FieldSelector, LabelSelector
from extserver.machinery.validation import validate_object_meta
from extserver.registry import fieldmanager
from extserver.registry.codec import Codec
from extserver.registry.store import decode_continue, encode_continue
from tests.e2e.harness import REPO
from tests.robustness import inputs as I
from tests.robustness.common import budget, kube_answers_500, record

RES = group.resources["flunders"]
SV = RES.versions["v1beta1"]
CODEC = Codec(RES)
STORED = {"apiVersion": I.API_VERSION, "kind": I.KIND,
          "metadata": {"name": "seed", "namespace": "robust", "uid": "5b1c4a5e-0000-4000-8000-000000000001",
                       "resourceVersion": "7", "creationTimestamp": "2026-01-01T00:00:00Z", "labels": {"a": "1"},
                       "finalizers": ["x/y"],
                       "managedFields": [{"manager": "kubectl", "operation": "Apply", "apiVersion": I.API_VERSION,
                                          "time": "2026-01-01T00:00:00Z", "fieldsType": "FieldsV1",
                                          "fieldsV1": {"f:spec": {"f:flunderReference": {}}}}]},
          "spec": {"flunderReference": "other", "referenceType": "Flunder"}, "status": {}}


class _Overran(Exception):
    """A single in-process call ran past its time budget."""


@dataclass
class Outcomes:
    """Per-target counts and the distinct failures (exception type + innermost project frame)."""

    examples: int = 0
    accepted: int = 0
    refused: int = 0
    failures: dict[str, tuple[str, str]] = field(default_factory=dict)  # where -> (smallest input, error)
    failed: int = 0
    hangs: int = 0

    def fail(self, data, exc: BaseException) -> None:
        self.failed += 1
        self.hangs += isinstance(exc, _Overran)
        frames = [f for f in traceback.extract_tb(exc.__traceback__) if "/extserver/" in f.filename]
        where = f"{type(exc).__name__} at " + (f"{os.path.relpath(frames[-1].filename, REPO)}:{frames[-1].lineno}"
                                               if frames else "?")
        shown = repr(data)
        if where not in self.failures or len(shown) < len(self.failures[where][0]):
            self.failures[where] = (shown, f"{type(exc).__name__}: {str(exc)[:200]}")


OUTCOMES: dict[str, Outcomes] = {}
FIELD_VALIDATION = st.sampled_from(["Strict", "Warn", "Ignore"])
CALL_SECONDS = budget("FUZZ_CALL_SECONDS", 15)


def _alarm(signum, frame):
    raise _Overran(f"still running after {CALL_SECONDS}s")


def run_one(target: str, data, fn, *, value_errors_are_400: bool = False) -> None:
    """Run ``fn()`` and classify its outcome for ``target``."""
    out = OUTCOMES.setdefault(target, Outcomes())
    out.examples += 1
    old = signal.signal(signal.SIGALRM, _alarm)
    signal.setitimer(signal.ITIMER_REAL, CALL_SECONDS)
    try:
        fn()
        out.accepted += 1
    except StatusError as e:
        if 400 <= e.code < 500 or (e.code == 500 and kube_answers_500(str(e))):
            out.refused += 1
        else:
            out.fail(data, e)
    except ValueError as e:
        if (value_errors_are_400 and not isinstance(e, UnicodeError)) or kube_answers_500(str(e)):
            out.refused += 1
        else:
            out.fail(data, e)
    except (Exception, RecursionError, MemoryError, _Overran) as e:  # noqa: B014 - named for the reader
        out.fail(data, e)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def store_object(doc, fv: str = "Strict", dups: list[str] | None = None) -> None:
    """What create, update, patch and apply do with a decoded document: the handler's
    object check, versioned decode with ``fieldValidation`` ``fv``, defaults, conversion to
    the hub, metadata validation and the storage encoding."""
    if not isinstance(doc, dict):
        raise StatusError("not an object", code=400)
    obj, _ = decode_versioned(SV.model, doc, kind=SV.kind, version=SV.version, field_validation=fv, dups=dups or [])
    SV.set_defaults(obj)
    hub = SV.to_hub(obj)
    validate_object_meta(hub.metadata.to_wire(), namespaced=True)
    CODEC.encode_for_storage(hub)


def _settings(n: int | None = None):
    return settings(max_examples=n or budget("FUZZ_EXAMPLES", 200), deadline=None, database=None,
                    phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck),
                    derandomize=not os.environ.get("ROBUST_RANDOM"))


def nasty(kind: str, **fixed):
    """Issue 10's hand-made inputs of ``kind`` as explicit examples: always run, whatever
    the random draw."""
    def wrap(f):
        for k, body in I.NASTY:
            if k == kind:
                f = example(data=body, **fixed)(f)
        return f
    return wrap


def _shown(s: str) -> str:
    return s if len(s) <= 400 else f"{s[:250]} ... {s[-80:]} ({len(s)} chars)"


def _report(target: str) -> None:
    out = OUTCOMES.get(target, Outcomes())
    lines = [f"{where}: {err}\n    smallest input: {_shown(shown)}" for where, (shown, err) in out.failures.items()]
    total = OUTCOMES.values()
    record("fuzz", targets=len(OUTCOMES), examples=sum(o.examples for o in total),
           accepted=sum(o.accepted for o in total), refused=sum(o.refused for o in total),
           failures=sum(o.failed for o in total), hangs=sum(o.hangs for o in total),
           distinct=sum(len(o.failures) for o in total))
    if out.failures:
        pytest.fail(f"{target}: {out.failed} of {out.examples} inputs raised something other than a 4xx "
                    f"StatusError ({len(lines)} distinct):\n" + "\n".join(lines), pytrace=False)


# --- bodies ---------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["json", "yaml"])
def test_fuzz_body_decoding(kind):
    target = f"decode-{kind}"
    OUTCOMES.pop(target, None)

    @_settings()
    @nasty(kind, fv="Warn")
    @given(data=I.json_bodies if kind == "json" else I.yaml_bodies, fv=FIELD_VALIDATION)
    def run(data, fv):
        def fn():
            doc, dups = parse_body(data, kind)
            store_object(doc, fv, dups)
        run_one(target, data, fn)

    run()
    _report(target)


# --- selectors ------------------------------------------------------------------------
def _reparses(cls, sel) -> None:
    """What the server prints of a selector (in a continue token, a log) reads back alike."""
    try:
        again = cls.parse(str(sel))
    except ValueError as e:
        raise AssertionError(f"{str(sel)!r} does not re-parse: {e}") from None
    assert str(again) == str(sel), f"{str(sel)!r} re-parses as {str(again)!r}"


def test_fuzz_label_selectors():
    target = "labelSelector"
    OUTCOMES.pop(target, None)

    @_settings()
    @given(s=I.label_selectors, labels=I.label_sets)
    def run(s, labels):
        def fn():
            sel = LabelSelector.parse(s)
            sel.matches(labels)
            # what the server prints must read back as the same selector
            _reparses(LabelSelector, sel)
        run_one(target, s, fn, value_errors_are_400=True)

    run()
    _report(target)


def test_fuzz_field_selectors():
    target = "fieldSelector"
    OUTCOMES.pop(target, None)

    @_settings()
    @given(s=I.field_selectors, fields=I.label_sets)
    def run(s, fields):
        def fn():
            sel = FieldSelector.parse(s)
            sel.matches(fields)
            sel.check_supported(("metadata.name", "metadata.namespace"))
            _reparses(FieldSelector, sel)
        run_one(target, s, fn, value_errors_are_400=True)

    run()
    _report(target)


# --- patches and apply ----------------------------------------------------------------
_PATCH_TYPES = {
    "json-patch": (I.json_patches, decode_json_patch, apply_json_patch),
    "merge-patch": (I.merge_patches, decode_merge_patch, apply_merge_patch),
    "strategic-merge-patch": (I.strategic_patches, decode_strategic_merge_patch,
                              lambda doc, p: strategic_merge_patch(doc, p or {})),
}


@pytest.mark.parametrize("ptype", list(_PATCH_TYPES))
def test_fuzz_patches(ptype):
    target = ptype
    OUTCOMES.pop(target, None)
    bodies, decode, apply = _PATCH_TYPES[ptype]

    @_settings()
    @nasty("json", fv="Warn")
    @given(data=bodies, fv=FIELD_VALIDATION)
    def run(data, fv):
        def fn():
            patch, _problems = decode(data, strict=fv != "Ignore")
            store_object(apply(copy.deepcopy(STORED), patch), fv)
        run_one(target, data, fn)

    run()
    _report(target)


def test_fuzz_apply():
    target = "apply"
    OUTCOMES.pop(target, None)

    @_settings()
    @nasty("yaml", existing=True, force=True, fv="Warn")
    @given(data=I.yaml_bodies, existing=st.booleans(), force=st.booleans(), fv=FIELD_VALIDATION)
    def run(data, existing, force, fv):
        def fn():
            applied, _ = parse_body(data, "apply")
            if not isinstance(applied, dict) or not applied.get("apiVersion") or not applied.get("kind"):
                return  # the handler refuses these before applying (400)
            doc = fieldmanager.apply(copy.deepcopy(STORED) if existing else None, applied, manager="fuzz",
                                     api_version=I.API_VERSION, force=force, group="wardle.example.com",
                                     resource="flunders", name="seed")
            doc.setdefault("metadata", {})["name"] = "seed"
            store_object(doc, fv)
        run_one(target, data, fn)

    run()
    _report(target)


# --- continue tokens ------------------------------------------------------------------
def test_fuzz_continue_tokens():
    target = "continue"
    OUTCOMES.pop(target, None)

    @_settings()
    @given(token=I.continue_tokens, rev=st.integers(1, (1 << 63) - 1),
           start=st.text(max_size=30).filter(lambda s: ".." not in s and not s.startswith("/")))
    def run(token, rev, start):
        def fn():
            got_rev, got_start = decode_continue(token)
            assert isinstance(got_rev, int) and got_rev > 0 and isinstance(got_start, str)
        run_one(target, token, fn)

        def roundtrip():
            assert decode_continue(encode_continue(rev, start)) == (rev, start)
        run_one(target, (rev, start), roundtrip)

    run()
    _report(target)


# --- the alias bomb, in a process of its own ------------------------------------------
_BOMB_CHILD = """
import resource, sys
resource.setrlimit(resource.RLIMIT_AS, ({limit}, {limit}))
from extserver.machinery.errors import StatusError
from tests.robustness import inputs as I
from tests.robustness.test_fuzz import store_object
from extserver.machinery.decoding import parse_body
try:
    doc, _ = parse_body(I.alias_bomb(), "{kind}")
    store_object(doc)
    print("ACCEPTED")
except StatusError as e:
    print("STATUS", e.code, e.message[:200])
"""


def test_alias_bomb_refused_within_bounded_memory():
    """Issue 10's 600-byte YAML (aliases nested 9 deep, 9 wide, in ``fieldsV1``) decoded in
    a child limited to ``ROBUST_BOMB_MB`` of address space: it must be refused with a 4xx
    (kube: excessive aliasing), not grow until the allocator fails."""
    limit = budget("BOMB_MB", 1536) << 20
    timeout = budget("BOMB_SECONDS", 10)
    kind = "yaml"  # an apply body goes through the same parse
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    try:
        p = subprocess.run([sys.executable, "-c", _BOMB_CHILD.format(limit=limit, kind=kind)], capture_output=True,
                           text=True, timeout=timeout, cwd=str(REPO), env=env)
        outcome = f"exit {p.returncode}: {p.stdout.strip()[-300:]} {p.stderr.strip()[-300:]}"
        ok = p.returncode == 0 and p.stdout.startswith("STATUS 4")
    except subprocess.TimeoutExpired:
        outcome, ok = f"still decoding after {timeout}s", False
    target = "alias-bomb"
    OUTCOMES[target] = Outcomes(examples=1, refused=int(ok), failed=int(not ok), hangs=int("still" in outcome))
    if not ok:
        OUTCOMES[target].failures["alias bomb"] = (f"{len(I.alias_bomb())}-byte YAML", outcome)
    _report(target)
