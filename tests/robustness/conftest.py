"""The robustness suites' servers and their one summary line each, printed in pytest's
terminal summary (shown with ``-q`` and without ``-s``)."""
from __future__ import annotations

import shutil

import pytest

from tests.e2e.conftest import etcd  # noqa: F401 - the etcd3 runs of the durability loop
from tests.e2e.harness import API, ServerProcess, new_tmp_dir
from tests.robustness.common import SUMMARIES, summary_line

WIDGETS = ["--api-module", "tests.e2e.widgets"]


@pytest.fixture(scope="module")
def robust_server():
    """One real server (embedded store, local mode, the wardle and widget groups)."""
    srv = ServerProcess(new_tmp_dir("extserver-robust-"), extra_args=WIDGETS).start()
    yield srv
    srv.stop()
    shutil.rmtree(srv.data_dir, ignore_errors=True)


@pytest.fixture(scope="module")
def robust_api(robust_server) -> API:
    return API(robust_server)


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    if not SUMMARIES:
        return
    terminalreporter.section("robustness")
    for suite in SUMMARIES:
        terminalreporter.write_line(summary_line(suite))
