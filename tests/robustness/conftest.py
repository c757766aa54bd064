"""The robustness suites' servers and their one summary line each, printed in pytest's
terminal summary (shown with ``-q`` and without ``-s``)."""
from __future__ import annotations

import shutil

import pytest

from tests.e2e.conftest import etcd, start_server  # noqa: F401 - etcd: the etcd3 runs of the durability loop
from tests.robustness.common import SUMMARIES, summary_line
from tests.robustness.servers import WIDGETS


@pytest.fixture(scope="module")
def robust_server(request):
    """One real server (embedded store, local mode, the wardle and widget groups)."""
    srv = start_server(request, "embedded", WIDGETS)
    request.addfinalizer(lambda: (srv.stop(), shutil.rmtree(srv.data_dir, ignore_errors=True)))
    return srv


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    if not SUMMARIES:
        return
    terminalreporter.section("robustness")
    for suite in SUMMARIES:
        terminalreporter.write_line(summary_line(suite))
