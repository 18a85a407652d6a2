"""Datasets: IDX files (`idx`), MNIST with its download (`mnist`), Fashion-MNIST
(`fashion_mnist`), CIFAR-10's binary version (`cifar10`), pictures of your own digits (`images`)."""

from minicnn.datasets import cifar10, fashion_mnist, idx, images, mnist

__all__ = ["cifar10", "fashion_mnist", "idx", "images", "mnist"]
