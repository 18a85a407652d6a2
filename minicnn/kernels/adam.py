"""Adam's update as Keras writes it, fused into one pass over each parameter tensor.

    m <- m + (g - m) * (1 - beta_1)
    v <- v + (g * g - v) * (1 - beta_2)
    w <- w - alpha * m / (sqrt(v) + epsilon),   alpha = lr * sqrt(1 - beta_2**t) / (1 - beta_1**t)

The bias correction lives in alpha, so epsilon is added to the *uncorrected* sqrt(v): that is
Keras's (and the Adam paper's "epsilon hat") form, and it differs from adding epsilon to
sqrt(v_hat). The caller computes alpha once per step. Arrays are 1-D views of one tensor each.
"""

import numpy as np
from numba import njit

from minicnn.kernels._stand_in import Kernel


def _adam_update(w, g, m, v, alpha, beta_1, beta_2, epsilon):
    """Update w, m, v (all (P,)) in place from the gradient g (P,).

    Returns the squared norm of the step taken, sum((w_new - w_old)**2), which the backward
    summary reports as an update-to-weight ratio; summing it here is free next to the memory
    traffic of the update itself.
    """
    one_minus_b1 = 1.0 - beta_1
    one_minus_b2 = 1.0 - beta_2
    step_sq = 0.0
    for k in range(w.shape[0]):
        gk = g[k]
        mk = m[k] + (gk - m[k]) * one_minus_b1
        vk = v[k] + (gk * gk - v[k]) * one_minus_b2
        m[k] = mk
        v[k] = vk
        step = alpha * mk / (np.sqrt(vk) + epsilon)
        w[k] -= step
        step_sq += step * step
    return step_sq


# Serial: the largest tensor of the reference model has 36,928 elements, too few to pay for a
# parallel launch.
def _adam_update_stand_in(w, g, m, v, alpha, beta_1, beta_2, epsilon):
    w_new, m[...], v[...] = adam_update_reference(w, g, m, v, alpha, beta_1, beta_2, epsilon)
    step = w - w_new
    w[...] = w_new
    return float(np.dot(step, step))


# While numba compiles in the background on a fresh machine, the NumPy reference stands in
# (minicnn/kernels/_stand_in.py).
adam_update = Kernel(njit(cache=True, nogil=True)(_adam_update), _adam_update_stand_in)


def adam_update_reference(w, g, m, v, alpha, beta_1, beta_2, epsilon):
    """Plain NumPy Adam step; returns new (w, m, v) without touching the inputs."""
    m = m + (g - m) * (1 - beta_1)
    v = v + (g * g - v) * (1 - beta_2)
    return w - alpha * m / (np.sqrt(v) + epsilon), m, v
