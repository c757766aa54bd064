"""What the robustness suites share: their budgets (env vars, so a local run can go longer
than CI's), the one summary line each suite prints, and the checks on an answer that every
suite applies (a ``Status`` for every refusal; a 5xx only where kube would send one)."""
from __future__ import annotations

import os
import re
from typing import Any

#: suite -> counts, in the order the suites ran; printed by conftest's terminal summary
SUMMARIES: dict[str, dict[str, Any]] = {}

INT64_MAX = (1 << 63) - 1


def budget(name: str, default: int) -> int:
    """An integer budget from ``ROBUST_<NAME>`` (e.g. ``ROBUST_DURABILITY_CYCLES=20``)."""
    raw = os.environ.get(f"ROBUST_{name}", "")
    return int(raw) if raw.strip() else default


def record(suite: str, **counts: Any) -> None:
    """Set (or update) a suite's counts; call it before asserting, so a failing suite
    still prints its line."""
    SUMMARIES.setdefault(suite, {}).update(counts)


def summary_line(suite: str) -> str:
    return "robustness: " + suite + " " + " ".join(f"{k}={v}" for k, v in SUMMARIES[suite].items())


def is_status(body: Any, code: int) -> bool:
    """A ``meta.k8s.io/v1 Status`` for this HTTP code, as every kube refusal is."""
    return (isinstance(body, dict) and body.get("kind") == "Status" and body.get("apiVersion") == "v1"
            and body.get("status") == "Failure" and body.get("code") == code)


#: what kube-apiserver itself answers with 500 for a client's input, matched by message: a
#: strategic merge patch's unknown ``$patch`` directive (mergepatch.ErrBadPatchType is not among
#: the errors interpretStrategicMergePatchError turns into 400/422, so it reaches the client as
#: an InternalError). extserver answers it as kube does; these are the only such cases.
KUBE_INTERNAL_ERRORS = ("unknown patch type: ",)


def kube_answers_500(message: str) -> bool:
    return any(m in message for m in KUBE_INTERNAL_ERRORS)


def legitimate_5xx(code: int, body: Any, query: dict[str, Any] | None = None) -> bool:
    """The 5xx kube itself answers: 504 "Too large resource version" while the store catches
    up to a resourceVersion within 64 bits (one beyond is a 400 in kube), 503 for a storage
    that is not ready, and the 500s of :data:`KUBE_INTERNAL_ERRORS`."""
    if code == 504 and is_status(body, 504):
        causes = (body.get("details") or {}).get("causes") or []
        if any(c.get("reason") == "ResourceVersionTooLarge" for c in causes):
            rv = str((query or {}).get("resourceVersion", ""))
            return rv.isdigit() and rv.isascii() and int(rv) <= INT64_MAX
    if code == 500 and is_status(body, 500):
        return kube_answers_500(str(body.get("message", "")))
    return code == 503 and is_status(body, 503) and bool(body.get("reason") == "ServiceUnavailable")


def tracebacks(srv, since: int = 0) -> list[str]:
    """The server log's tracebacks (the log line before each, then the traceback with its
    innermost frames): a refusal or a client that went away must not leave one."""
    out, lines = [], srv.output
    for i, line in enumerate(lines):
        if i >= since and line.startswith("Traceback"):
            j = i + 1
            while j < len(lines) and (lines[j].startswith((" ", "\t")) or not lines[j].strip()):
                j += 1
            body = lines[i + 1:j]
            ours = [f"{ln.strip()}\n" for k, ln in enumerate(body) if "/extserver/" in ln and "/tests/" not in ln]
            frames = "".join(ours[-3:] + body[-4:] + lines[j:j + 1])
            out.append(f"{lines[i - 1].strip()[:200] if i else ''}\n...\n{frames}")
    return out


class Problems:
    """Failures grouped by a signature (what went wrong, and where), each with a count and
    the shortest input that showed it: a report a person can act on."""

    def __init__(self) -> None:
        self.groups: dict[str, list] = {}  # signature -> [count, shortest example]

    def add(self, signature: str, example: str) -> None:
        g = self.groups.setdefault(signature, [0, example])
        g[0] += 1
        if len(example) < len(g[1]):
            g[1] = example

    def __len__(self) -> int:
        return sum(g[0] for g in self.groups.values())

    def report(self, limit: int = 25) -> str:
        return "\n".join(f"[{n}x] {sig}\n    e.g. {ex}" for sig, (n, ex) in list(self.groups.items())[:limit])


def traceback_signature(tb: str) -> str:
    """A traceback from ``tracebacks`` reduced to its exception and innermost project frame."""
    lines = [ln.strip() for ln in tb.splitlines() if ln.strip()]
    ours = [re.match(r'File ".*/(extserver/[^"]+)", line (\d+), in (\S+)', ln) for ln in lines]
    ours = [m for m in ours if m]
    where = f"{ours[-1][1]}:{ours[-1][2]} in {ours[-1][3]}" if ours else "aiohttp (outside extserver)"
    return f"{lines[-1][:160] if lines else '?'} at {where}"
