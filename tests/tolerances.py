"""Every numeric tolerance the tests use, in one place, with the reason for each."""

# float64 central differences: analytic and numeric gradients agree to ~1e-9 on smooth inputs;
# a wrong backward is off by O(1). The bar is 1e-6.
GRADCHECK_TOL = 1e-6

# numba kernel vs its NumPy reference, same dtype. Copies and max are exact; sums of the same
# terms in another order differ by float rounding. The same holds for float64 results against
# their formula written out by hand (Adam's step, He normal's truncation bound: test_layers.py)
# and for the model's forward through the fast plan against the recorded reference layers
# (test_study.py): the same operations, in another order.
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

# Pre-activations closer than this to a ReLU's kink (in a float64 computation) get dout = 0 in
# the TensorFlow comparisons; the engines' float32 pre-activations differ by ~1e-6, so no element
# that could fall on different sides of the kink in the two engines is left within 1e-3.
KINK_MARGIN = 1e-3

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

# A float32 result of the engine against the same formula evaluated another way: by hand in
# float64 from the same float32 weights and inputs (the backward summary's norms and dL/dp, a
# loss from the predicted probabilities) or with another batch size (fit's validation loss
# against evaluate's). Each float32 operation rounds by up to 6e-8 and these chains are a few
# dozen operations long. Largest seen: 1.5e-6 (the norm of a Dense layer's dL/dx), 8.7e-8 (a
# validation loss against -log p, over 10 seeds), 0 (fit against evaluate).
FLOAT32_RTOL = 1e-5

# The backward summary's update-to-weight ratio against the step measured by hand as the
# difference of the float32 weights before and after it: weights of ~1 moved by ~4e-4 are each
# rounded by up to 6e-8, which is 1.6e-4 of the step. Largest seen: 9.1e-5.
UPDATE_RATIO_RTOL = 1e-3

# Initializers drawn with a fixed seed, against their distributions. The standard deviation of
# 60,000 draws has a relative standard error of about 1 / sqrt(2 * 60,000) = 0.3%, so 2% is ~7
# of them (seen: 0.11%). The largest of 18,432 uniform draws stays below 99% of the limit with
# probability 0.99 ** 18,432 ~ 1e-80 (seen: 99.9994%).
INIT_STD_RTOL = 0.02
INIT_LIMIT_REACHED = 0.99

# Pictures and printed numbers (the command line's PNG input, its 4-decimal output).
# A gray colormap (a 256-entry table) and an 8-bit PNG each round a pixel by up to 1/255.
PNG_PIXEL_ATOL = 2 / 255
# Pictures of exact 0/1 pixels survive the PNG and the resizing up to float32 rounding.
EXACT_PIXEL_ATOL = 1e-6
# Ten probabilities printed with 4 decimals: their sum is 1 up to 10 roundings of 5e-5.
PRINTED_SUM_ATOL = 1e-3
# The same digit read back from an 8-bit PNG moves the model's probabilities this little.
PNG_PROBABILITY_ATOL = 0.01

# The MNIST model trained two Adam steps by the fast plan and by the reference layers, from the
# same weights: Adam moves each weight by ~1e-3 per step, and the rounding differences between
# the two paths' gradients change that move by far less. Largest seen: 5.5e-7 (one step).
PLAN_TRAINING_ATOL = 1e-5

# Memory after 300 distinct batch sizes against memory after one (the largest): the bar.
# Scratch arrays no longer depend on how many sizes were seen, so what remains is allocator
# noise; measured 1.00.
MEMORY_GROWTH_BOUND = 1.2

# An optimizer's update against Keras's, the same gradients fed to both, float32 weights: both
# compute the same expression in the same order in float32, so they agree to the rounding of
# the last operations. Largest seen over 10 RMSprop steps: 0 (the two agree bit for bit).
OPTIMIZER_STEP_RTOL, OPTIMIZER_STEP_ATOL = 1e-6, 1e-7

# Dropout's kept fraction and mean over 10,000 independent draws with keep probability 0.7:
# the standard error of the fraction is sqrt(0.7 * 0.3 / 10,000) = 0.0046, so 0.03 is ~6.5 of
# them (a wrong rate, e.g. keeping with probability rate, is off by 0.4).
DROPOUT_KEEP_ATOL = 0.03

# A learning-rate schedule against Keras's at the same step: the same formula, evaluated in
# float64 here and in float32 by Keras (a power, a cosine, a division), then rounded to float32
# for the comparison. Relative to the schedule's largest rate, as `report` measures: near the
# end of a cosine, 1 + cos(pi * t) cancels and Keras's float32 cosine leaves an error of the size
# of the float32 rounding of 1, times the initial rate (seen: 1.1e-9 on a rate of 6e-4, i.e.
# 1.1e-8 of the initial 0.1).
SCHEDULE_RTOL = 1e-6

# OPTIMIZER_STEP_RTOL/ATOL over tests/test_optimizers_tf.py (10 steps, 3 tensors, 31 cases):
# SGD plain, momentum and Nesterov 0 (bit for bit), with clipnorm 1.9e-8 of scale (the norm
# summed in another order); Adam and AdamW 1.2e-7 (alpha computed in float64 here, float32 in
# Keras); AdamW with weight_decay=0.1, lr=0.01 3.3e-7; Adam driven by ExponentialDecay 5.1e-7
# (the rate itself rounded differently, see SCHEDULE_RTOL). The weight decay applied after
# Adam's step instead of before is off by 3.3e-6 of scale at the first step, and fails.

# Winograd F(4x4, 3x3) in float32 against float64: its transforms' entries (up to 5 and 8, G's
# 1/6 and 1/24) make intermediates larger than the result, so its rounding is 10-20x that of
# F(2x2) or a direct sum of the same products: worst seen 7.5e-6 of the result's scale on
# ResNet-20's and the recipes' shapes, against 3.8e-7 (F(2x2)) and 8.1e-7 (im2col). The kernel
# tests allow this factor over the direct sums' tolerance, no more.
WINOGRAD4_ERROR_GROWTH = 16

# The same training comparison where the plan runs Winograd F(4x4) (ResNet-20 under auto): its
# float32 rounding (WINOGRAD4_ERROR_GROWTH) passes through ~20 layers and two SGD steps. Seen,
# ResNet-20 at batch 4 after two SGD steps: 7.2e-5 under auto (16 convs by F(4x4)), 1.1e-4
# with all 19 3x3 convs forced to F(4x4), against 8.5e-6 under im2col or F(2x2).
PLAN_TRAINING_ATOL_WINOGRAD4 = PLAN_TRAINING_ATOL * WINOGRAD4_ERROR_GROWTH
