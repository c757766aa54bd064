"""The example metrics module's data file (``EXAMPLE_METRICS_FILE`` of
``examples/metrics_example.py``), for the metrics end-to-end tests: the tests rewrite it, the
server re-reads it on the next request."""
from __future__ import annotations

import copy
import json
import os
import shutil
from pathlib import Path

from tests.e2e.harness import ServerProcess, new_tmp_dir


class ExampleSourceFile:
    """``base`` plus the changes of the last :meth:`set`, written to ``path``."""

    def __init__(self, path: Path, base: dict):
        self.path = path
        self.base = base
        self.version = 0
        self.set()

    def set(self, **changes) -> None:
        self.version += 1
        self.path.write_text(json.dumps(dict(copy.deepcopy(self.base), **changes)))
        # a distinct mtime per write, whatever the file system's timestamp granularity
        os.utime(self.path, ns=(self.version * 10 ** 9, self.version * 10 ** 9))


def start_with(srv: ServerProcess, source: ExampleSourceFile, **env: str) -> ServerProcess:
    """Start ``srv`` with the example module reading ``source`` (and the extra ``env``)."""
    env = dict(env, EXAMPLE_METRICS_FILE=str(source.path))
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        return srv.start()
    finally:
        for k, v in saved.items():
            if v is None:
                del os.environ[k]
            else:
                os.environ[k] = v


def source_file(base: dict):
    """Body of a module fixture: an :class:`ExampleSourceFile` of ``base`` in a temp dir."""
    d = new_tmp_dir("extserver-metrics-data-")
    yield ExampleSourceFile(d / "metrics.json", base)
    shutil.rmtree(d, ignore_errors=True)


def example_server(source: ExampleSourceFile, args: list[str]):
    """Body of a module fixture: the local-mode server with ``args``, reading ``source``."""
    srv = start_with(ServerProcess(new_tmp_dir("extserver-metrics-"), extra_args=args), source)
    yield srv
    srv.stop()
    shutil.rmtree(srv.data_dir, ignore_errors=True)
