"""Datasets: IDX files (`idx`), MNIST with its download (`mnist`), pictures of your own digits
(`images`)."""

from minicnn.datasets import idx, images, mnist

__all__ = ["idx", "images", "mnist"]
