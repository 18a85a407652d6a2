"""Automatic layer names, as Keras gives them: conv2d, conv2d_1, ... per kind of layer."""

from __future__ import annotations

import re
from collections import defaultdict

_name_counts: defaultdict[str, int] = defaultdict(int)


def clear_session() -> None:
    """Restart automatic layer names (conv2d, conv2d_1, ...) from zero, as Keras's does."""
    _name_counts.clear()


def _auto_name(cls: type) -> str:
    base = re.sub(r"(.)([A-Z][a-z]+)", r"\1_\2", cls.__name__)
    base = re.sub(r"([a-z])([A-Z])", r"\1_\2", base).lower()
    return unique_name(base)


def unique_name(base: str) -> str:
    """`base` the first time, then base_1, base_2, ..."""
    count = _name_counts[base]
    _name_counts[base] += 1
    return base if count == 0 else f"{base}_{count}"
