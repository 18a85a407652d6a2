"""Datasets: the IDX file format (`idx`) and MNIST-layout loading with download (`mnist`)."""

from minicnn.datasets import idx, mnist

__all__ = ["idx", "mnist"]
