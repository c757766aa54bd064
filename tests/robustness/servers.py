"""The real server process under resource limits: a lowered open-files limit (so that
connection exhaustion is reachable with a few hundred sockets) or a cap on address space
(so that a decoding blow-up ends the process instead of the machine).

The limits are set by a small Python prelude that ``exec``s the usual command: the server
starts exactly as ``ServerProcess`` starts it, only with ``setrlimit`` applied first (soft
and hard alike, so a server that raises its soft limit to the hard one stays bounded)."""
from __future__ import annotations

import sys

from tests.e2e.harness import ServerProcess

#: the groups every robustness server serves: wardle and the test widgets
WIDGETS = ["--api-module", "tests.e2e.widgets"]

_PRELUDE = ("import os, resource, sys\n"
            "for name, n in zip(sys.argv[1].split(','), map(int, sys.argv[2].split(','))):\n"
            "    resource.setrlimit(getattr(resource, name), (n, n))\n"
            "os.execv(sys.argv[3], sys.argv[3:])\n")


class LimitedServer(ServerProcess):
    def __init__(self, *args, limits: dict[str, int], **kw):
        super().__init__(*args, **kw)
        self.limits = limits

    def command(self) -> list[str]:
        cmd = super().command()
        return [sys.executable, "-c", _PRELUDE, ",".join(self.limits), ",".join(map(str, self.limits.values())),
                *cmd]

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None
