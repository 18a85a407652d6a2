"""Every numeric tolerance the tests use, in one place, with the reason for each."""

# float64 central differences: analytic and numeric gradients agree to ~1e-9 on smooth inputs;
# a wrong backward is off by O(1). The bar is 1e-6.
GRADCHECK_TOL = 1e-6

# numba kernel vs its NumPy reference, same dtype. Copies and max are exact; sums of the same
# terms in another order differ by float rounding.
KERNEL_RTOL = {"float32": 1e-5, "float64": 1e-12}
KERNEL_ATOL = {"float32": 1e-6, "float64": 1e-12}

# minicnn vs TensorFlow in float32 with the same weights: both sum the same products in a
# different order (and oneDNN may use FMA), so outputs agree to float32 rounding of the sums and
# gradients, which sum over the batch as well, a little less tightly. rtol is applied to the
# tensor's largest magnitude (|ours - theirs| <= atol + rtol * max|theirs|), as the gradient
# checker measures error: an element that is small because thousands of terms cancel carries the
# rounding of those terms, not of itself. Largest seen: 7.4e-7 of scale (forward), 1.8e-6
# (gradients).
TF_FORWARD_RTOL, TF_FORWARD_ATOL = 1e-5, 1e-5
TF_GRAD_RTOL, TF_GRAD_ATOL = 1e-4, 1e-5

# Adam's first step moves each weight by lr * g / (|g| + epsilon / sqrt(1 - beta_2)), i.e. by about
# lr * sign(g) = 1e-3 whatever the size of g. The two engines' updated weights then differ by the
# float32 rounding of that move (~1e-10) except where |g| is below ~3e-6: there the move is
# proportional to g, and float32 noise in g (~1e-8 for a conv kernel summing thousands of
# products) is amplified by lr / 3e-6. Over 24 seeds of this test the largest difference was
# 3.6e-6 after one step and 7.2e-6 after three. Adding epsilon to sqrt(v_hat) instead of sqrt(v)
# (a common variant, not Keras's) gives 7e-4 after one step, a missing bias correction ~2e-3.
# Unlike the single-layer tests, the whole model's ~500k ReLU inputs and pool windows are not
# kept away from kinks; one that flipped between engines would move a few gradients by ~1e-4,
# which the sign-like step absorbs except for weights whose gradient is smaller than that. None
# did in those 24 seeds, and the test's own seed is fixed.
ADAM_STEP_ATOL = 3e-5  # 3% of the learning rate; absolute, as the error does not scale with w
ADAM_STEP_RTOL = 0.0

# minicnn against Keras, float32, same start and batches. The first step's losses differ by the
# float32 rounding of one forward pass: 1.4e-7 on MNIST, 2.1e-7 on random images; 1e-5 is the
# oracle tests' forward tolerance. Over 5 steps the difference grows as rounding flips a few
# ReLU or pool decisions and Adam turns them into steps (see KNOWN_DIFFERENCES in the example):
# 1.5e-6 on MNIST, 7.3e-5 on random images (the largest seen, with and without oneDNN and with
# --match-adam-scalars). 5e-4 leaves a margin of 7 over that. Planted bugs, on MNIST: a conv1
# kernel copied flipped differs by 1.5e-3 at the first step, Adam without bias correction by
# 1.1e-2 at the second, epsilon added to sqrt(v_hat) by 1.2e-3 at the fifth.
PARITY_FIRST_STEP_BOUND = 1e-5
PARITY_FIVE_STEP_BOUND = 5e-4

# A fast-plan step against the layers it covers, as a multiple of KERNEL_RTOL of the tensor's
# largest magnitude: the step sums the same products in chunks (weight gradients: a sum of
# per-chunk partial sums) or in another order (direct convolution), so each element carries
# the rounding of a sum of many terms rather than of itself.
PLAN_RTOL_FACTOR = 10
