"""Shared test settings: the hypothesis profile every property test runs under.

No deadline: the first example of a test compiles numba kernels (seconds), and these machines
are shared, so a per-example time limit would fail on load, not on a defect. Speed targets live
in benchmarks/, never in tests. `derandomize` under CI makes a CI run repeatable.
"""

import os
import threading

import pytest
from hypothesis import HealthCheck, settings

# Kernels compile in this process at first use, as numba's default: a test of the fast plan
# must not run the reference layers because a background compile has not finished yet
# (minicnn/models/warmup.py; tests/test_warmup.py tests the background mode in fresh processes).
os.environ["MINICNN_COMPILE"] = "foreground"

settings.register_profile("minicnn", deadline=None, max_examples=40,
                          suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("ci", parent=settings.get_profile("minicnn"), derandomize=True)
settings.load_profile("ci" if os.environ.get("CI") else "minicnn")


@pytest.fixture
def server():
    """A real HTTP server on 127.0.0.1 serving what a download test tells it to (the mirrors of
    the MNIST, Fashion-MNIST and CIFAR-10 download tests); see tests/test_download.py, Server."""
    from tests.test_download import Server

    srv = Server()
    thread = threading.Thread(target=srv.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield srv
    srv.release.set()
    srv.shutdown()
    srv.server_close()
    thread.join(5)
