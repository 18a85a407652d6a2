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
# gradients, which sum over the batch as well, a little less tightly.
TF_FORWARD_RTOL, TF_FORWARD_ATOL = 1e-5, 1e-5
TF_GRAD_RTOL, TF_GRAD_ATOL = 1e-4, 1e-5
