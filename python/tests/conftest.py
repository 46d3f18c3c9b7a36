"""CSPP_TEST_GREEN=1 runs the suites with cspp.greenlets's processes: every
@process of the tests (and of cspp.pycsp's names) is then a green process,
a greenlet of the thread that runs Parallel. Tests about what only a thread
process does (a time.sleep that holds no one else) are marked
`threads_only` and skipped then."""
import os

import pytest

GREEN = os.environ.get("CSPP_TEST_GREEN") == "1"

if GREEN:
    import cspp
    import cspp.greenlets

    cspp.process = cspp.greenlets.process
    cspp.io = cspp.greenlets.io


def pytest_configure(config):
    config.addinivalue_line("markers", "threads_only: about processes on threads of their own")


def pytest_collection_modifyitems(config, items):
    if not GREEN:
        return
    skip = pytest.mark.skip(reason="green processes share their thread (cspp.greenlets)")
    for item in items:
        if "threads_only" in item.keywords:
            item.add_marker(skip)
