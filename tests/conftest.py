"""Shared test settings: the hypothesis profile every property test runs under.

No deadline: the first example of a test compiles numba kernels (seconds), and these machines
are shared, so a per-example time limit would fail on load, not on a defect. Speed targets live
in benchmarks/, never in tests. `derandomize` under CI makes a CI run repeatable.
"""

import os

from hypothesis import HealthCheck, settings

settings.register_profile("minicnn", deadline=None, max_examples=40,
                          suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("ci", parent=settings.get_profile("minicnn"), derandomize=True)
settings.load_profile("ci" if os.environ.get("CI") else "minicnn")
