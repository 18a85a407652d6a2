"""Backpropagation through the notebook's CNN: one digit, one layer at a time, every step checked.

Run it from the project root and read the output next to this file:

    python examples/backprop_walkthrough.py            # a few seconds
    python examples/backprop_walkthrough.py --short    # fewer numeric checks (what CI runs)

It takes the first MNIST training image when $MINICNN_DATA points at the MNIST files, and
otherwise draws a digit-like "7" itself (and says so). It then:

1. runs the image forward through `models.mnist_cnn(seed=0)`, cast to float64, layer by layer,
   showing for each conv layer its im2col matrix and the GEMM that computes its output;
2. computes the loss as Keras reports it, and its gradient with respect to the logits, (p - y) / N;
3. runs the backward pass layer by layer, rebuilding each layer's gradients from the GEMMs and
   routings described in docs/backprop.md, and compares a few elements of every gradient with
   central differences of the loss;
4. sums those checks up, and explains the kinks (ReLUs at exactly 0, pool ties) it met;
5. runs the project's gradient checker, `minicnn.gradcheck.check_layers`, on the whole model;
6. writes out one Adam step for one weight and checks it against `minicnn.optimizers.Adam`.

Every check is asserted: the script exits with status 1 if one fails, so a wrong backward pass
cannot hide in a long printout.
"""

from __future__ import annotations

import argparse
import math
import os
import sys

import numpy as np

from minicnn import kernels, losses, models
from minicnn.datasets import mnist
from minicnn.fast.conv import DIRECT_MAX_FIELD
from minicnn.gradcheck import check_layers
from minicnn.layers import Conv2D, Dense, Flatten, MaxPooling2D
from minicnn.optimizers import Adam

EPS = 1e-6  # the nudge of the central differences, as in minicnn.gradcheck
TOLERANCE = 1e-6  # the bar for |analytic - numeric| / max(|analytic|, |numeric|)
# A nudge of EPS that switches a ReLU or a pool's winner makes the left and right slopes differ
# by the jump of the slope (here 1% of the slope or more). Where the loss is smooth they differ
# by EPS * curvature, ~1e-7 of the slope here: the two cases are orders of magnitude apart.
KINK_JUMP = 1e-4
ONE_SIDED_TOL = 1e-5  # a one-sided difference is only first-order accurate: O(EPS) error


def section(title: str) -> None:
    print(f"\n{'=' * 100}\n{title}\n{'=' * 100}")


def fmt_shape(shape) -> str:
    return "(" + ", ".join(str(d) for d in shape) + ")"


# -- the digit --------------------------------------------------------------------------------
def synthetic_seven() -> np.ndarray:
    """A 28x28 "7" in MNIST's style: strokes ~3 px wide, 256 grey levels, background exactly 0."""
    rows, cols = np.mgrid[0:28, 0:28].astype(np.float64)

    def distance_to_segment(r0, c0, r1, c1):
        d = np.array([r1 - r0, c1 - c0], dtype=np.float64)
        p = np.stack([rows - r0, cols - c0], axis=-1)
        t = np.clip(p @ d / (d @ d), 0.0, 1.0)
        return np.linalg.norm(p - t[..., None] * d, axis=-1)

    distance = np.minimum(distance_to_segment(7, 7, 7, 20), distance_to_segment(7, 20, 22, 12))
    return np.round(np.clip(1.6 - distance, 0.0, 1.0) * 255) / 255


def load_digit() -> tuple[np.ndarray, int, str]:
    data_dir = os.environ.get("MINICNN_DATA")
    if data_dir:
        (images, labels), _ = mnist.load_data(data_dir)
        return (images[0].astype(np.float64) / 255, int(labels[0]),
                f"the first MNIST training image, from {data_dir}")
    return synthetic_seven(), 7, ("a synthetic '7' drawn by this script (MINICNN_DATA is not "
                                  "set, so no MNIST file is read)")


def ascii_digit(image: np.ndarray) -> str:
    shades = " .:-=+*#%@"
    return "\n".join("    " + "".join(shades[min(int(v * 10), 9)] * 2 for v in row)
                     for row in image)


# -- window arithmetic, as Conv2D and MaxPooling2D do it ---------------------------------------
def padding_before(size: int, window: int, stride: int, padding: str) -> int:
    """Zero rows (or columns) virtually added before the input: Keras's split, extra at the end."""
    if padding == "valid":
        return 0
    out = math.ceil(size / stride)
    return max((out - 1) * stride + window - size, 0) // 2


def im2col_of(layer: Conv2D, x: np.ndarray, out_shape) -> tuple[np.ndarray, tuple]:
    """The im2col matrix of x for `layer` (built by the kernel the layer uses) and its geometry."""
    N, H, W, C = x.shape
    _, H_out, W_out, _ = out_shape
    (KH, KW), (SH, SW) = layer.kernel_size, layer.strides
    PT = padding_before(H, KH, SH, layer.padding)
    PL = padding_before(W, KW, SW, layer.padding)
    cols = np.empty((N * H_out * W_out, KH * KW * C), dtype=x.dtype)
    kernels.im2col(np.ascontiguousarray(x), KH, KW, SH, SW, PT, PL, H_out, W_out, cols)
    return cols, (KH, KW, SH, SW, PT, PL, H_out, W_out)


def max_diff(a, b) -> float:
    return float(np.max(np.abs(np.asarray(a) - np.asarray(b)), initial=0.0))


def agree(checks: Checks, what: str, ours, theirs) -> str:
    """max |ours - theirs| as text; a failure unless it is rounding (1e-12 of the scale)."""
    diff = max_diff(ours, theirs)
    if diff > 1e-12 * max(float(np.max(np.abs(theirs))), 1e-300):
        checks.failures.append(f"{what}: max |diff| {diff:.1e}")
    return f"{diff:.1e}"


# -- forward, one layer at a time ----------------------------------------------------------------
def forward_conv(layer: Conv2D, x: np.ndarray, y: np.ndarray, checks: Checks) -> None:
    N, H, _, C = x.shape
    _, H_out, W_out, F = y.shape
    cols, (KH, KW, SH, SW, PT, PL, _, _) = im2col_of(layer, x, y.shape)
    kernel, bias = layer.params
    print(f"{layer.name}: Conv2D({F}, ({KH}, {KW}), strides=({SH}, {SW}), "
          f"padding='{layer.padding}', activation='relu')")
    print(f"  input x {fmt_shape(x.shape)} -> output y {fmt_shape(y.shape)}   "
          f"[H_out = (H - KH) // stride + 1 = ({H} - {KH}) // {SH} + 1 = {H_out}]")
    print(f"  im2col matrix cols {fmt_shape(cols.shape)} = (N*H_out*W_out, KH*KW*C) = "
          f"({N}*{H_out}*{W_out}, {KH}*{KW}*{C})")
    print(f"    a row    = one output pixel (n, i, j), row index (n*{H_out} + i)*{W_out} + j: the "
          f"{KH}x{KW}x{C} input window it sees")
    print(f"    a column = one position (kh, kw, c) in that window, column index "
          f"(kh*{KW} + kw)*{C} + c")
    # Show the window of the output pixel that sees the most ink: row 0, the top-left corner, is
    # (mostly) background.
    row = int(np.argmax(cols.sum(axis=1)))
    n, i, j = row // (H_out * W_out), row // W_out % H_out, row % W_out
    h0, w0 = i * SH - PT, j * SW - PL
    print(f"    row 0 (n=0, i=0, j=0), the top-left corner, holds {np.count_nonzero(cols[0])} "
          f"non-zero values of {cols.shape[1]}; row {row} (n={n}, i={i}, j={j}) sees the most ink:")
    if C == 1:
        window = x[n, h0:h0 + KH, w0:w0 + KW, 0]
        print(f"      cols[{row}].reshape({KH}, {KW})      "
              f"x[{n}, {h0}:{h0 + KH}, {w0}:{w0 + KW}, 0]")
        for r in range(KH):
            left = " ".join(f"{v:5.3f}" for v in cols[row].reshape(KH, KW)[r])
            right = " ".join(f"{v:5.3f}" for v in window[r])
            print(f"      {left:<30}{right}")
        same = np.array_equal(cols[row].reshape(KH, KW), window)
    else:
        print("      column  (kh, kw, c)   cols[row, column]   the input pixel x[n, h, w, c]")
        picks = np.flatnonzero(cols[row])[:: max(1, np.count_nonzero(cols[row]) // 4)][:4]
        same = True
        for col in picks:
            kh, kw, c = col // (KW * C), col // C % KW, col % C
            pixel = x[n, h0 + kh, w0 + kw, c]
            same &= bool(cols[row, col] == pixel)
            print(f"      {col:>6}  ({kh}, {kw}, {c:>2})   {cols[row, col]:>17.6f}   "
                  f"x[{n}, {h0 + kh}, {w0 + kw}, {c}] = {pixel:.6f}")
    print(f"    (the window and the row hold the same numbers: {same})")
    if not same:
        checks.failures.append(f"{layer.name}: im2col row {row}")
    K = kernel.value.reshape(KH * KW * C, F)
    z = cols @ K + bias.value
    y_gemm = np.maximum(z, 0.0)
    print(f"  forward GEMM: z = cols @ K + b: {fmt_shape(cols.shape)} @ {fmt_shape(K.shape)} -> "
          f"{fmt_shape(z.shape)}, K = kernel {fmt_shape(kernel.value.shape)} reshaped, no copy")
    print(f"                y = relu(z) viewed as {fmt_shape(y.shape)}: "
          f"max |y_gemm - layer output| = "
          f"{agree(checks, layer.name + ' y', y_gemm.reshape(y.shape), y)}")
    if KH * KW * C <= DIRECT_MAX_FIELD:
        print(f"    (for a receptive field this small, {KH * KW * C} values, the fast plan "
              "that fit runs skips the matrix: minicnn/fast/ sums the same products directly)")
    print(f"  ReLU: {np.mean(y > 0):.0%} of the outputs are > 0; "
          f"{np.mean(z == 0):.0%} of the pre-activations are exactly 0 (windows of pure "
          "background, zero bias)")


def pool_argmax(layer: MaxPooling2D, x: np.ndarray, y: np.ndarray):
    """The pool's output and argmax, from the kernel the layer uses."""
    _, H, W, _ = x.shape
    (PH, PW), (SH, SW) = layer.pool_size, layer.strides
    PT = padding_before(H, PH, SH, layer.padding)
    PL = padding_before(W, PW, SW, layer.padding)
    out, argmax = np.empty_like(y), np.empty(y.shape, dtype=np.int32)
    kernels.maxpool_forward(np.ascontiguousarray(x), PH, PW, SH, SW, PT, PL, out, argmax)
    return out, argmax


def forward_pool(layer: MaxPooling2D, x: np.ndarray, y: np.ndarray, checks: Checks) -> None:
    N, _, W, C = x.shape
    _, H_out, W_out, _ = y.shape
    (PH, PW), (SH, SW) = layer.pool_size, layer.strides
    # The window arithmetic below assumes the notebook's pools: 'valid', windows side by side.
    assert layer.padding == "valid" and (SH, SW) == (PH, PW)
    y_kernel, argmax = pool_argmax(layer, x, y)
    print(f"{layer.name}: MaxPooling2D(({PH}, {PW})), strides ({SH}, {SW})")
    print(f"  input x {fmt_shape(x.shape)} -> output y {fmt_shape(y.shape)}; the kernel also "
          f"records argmax {fmt_shape(argmax.shape)}, the flat index h*W + w of each max")
    print("    max |y - kernels.maxpool_forward| = "
          f"{agree(checks, layer.name + ' y', y_kernel, y)}")
    # One window where the values differ: show where the max is and what argmax says.
    spread = x[:, : H_out * SH, : W_out * SW].reshape(N, H_out, PH, W_out, PW, C)
    spread = spread.max(axis=(2, 4)) - spread.min(axis=(2, 4))
    n, i, j, c = np.unravel_index(int(np.argmax(spread)), spread.shape)
    h0, w0 = i * SH, j * SW
    at = int(argmax[n, i, j, c])
    print(f"    window of y[{n}, {i}, {j}, {c}] = x[{n}, {h0}:{h0 + PH}, {w0}:{w0 + PW}, {c}]:")
    for r in range(PH):
        cells = " ".join(f"{x[n, h0 + r, w0 + q, c]:9.5f}" + ("*" if (h0 + r) * W + w0 + q == at
                                                              else " ") for q in range(PW))
        print(f"      {cells}")
    print(f"    argmax = {at} = {at // W}*{W} + {at % W}: the max (*) is x[{n}, {at // W}, "
          f"{at % W}, {c}]; backward will send dout[{n}, {i}, {j}, {c}] there and nowhere else")
    windows = x[:, : H_out * SH, : W_out * SW].reshape(N, H_out, PH, W_out, PW, C)
    ties = (windows == y[:, :, None, :, None, :]).sum(axis=(2, 4)) > 1
    print(f"    {ties.mean():.0%} of the windows are ties (mostly all-zero background): the "
          "first max in row-major order wins, as in TensorFlow")


def forward_dense(layer: Dense, x: np.ndarray, y: np.ndarray) -> None:
    kernel = layer.params[0]
    act = layer.activation.name
    print(f"{layer.name}: Dense({layer.units}, activation='{act}')")
    print(f"  z = x @ W + b: {fmt_shape(x.shape)} @ {fmt_shape(kernel.value.shape)} -> "
          f"{fmt_shape(y.shape)}, y = {act}(z)")
    if act == "relu":
        print(f"  ReLU: {np.mean(y > 0):.0%} of the outputs are > 0")
    else:
        z = layer.cache.z  # what the layer keeps for the loss: z before the softmax
        print(f"  logits z = {np.array2string(z[0], precision=4, max_line_width=95)}")
        print(f"  p = softmax(z) = exp(z) / sum(exp(z)) = "
              f"{np.array2string(y[0], precision=4, max_line_width=95)}")
        print(f"  predicted class {int(y[0].argmax())} (an untrained model: p is near uniform)")


# -- numeric gradients ---------------------------------------------------------------------------
class Checks:
    """Central differences of the loss for chosen elements, with one-sided slopes to spot kinks."""

    def __init__(self, elements_per_tensor: int, rng: np.random.Generator):
        self.loss_from = None  # loss_from(k, h): the loss of running layers k.. on h
        self.count = elements_per_tensor
        self.rng = rng
        self.smooth_errors: list[float] = []
        self.one_sided_errors: list[float] = []
        self.failures: list[str] = []
        self.legend_printed = False

    def candidates(self, g: np.ndarray) -> list[int]:
        """The element with the largest |gradient|, then random ones among the large ones."""
        flat = np.abs(g).reshape(-1)
        large = np.flatnonzero(flat >= 0.1 * flat.max())
        first = int(flat.argmax())
        rest = self.rng.permutation(large[large != first])
        return [first, *(int(r) for r in rest)][: self.count + 4]

    def tensor(self, k: int, name: str, value: np.ndarray, analytic: np.ndarray,
               h: np.ndarray) -> None:
        """Compare analytic with numeric dL/d(value) for a few elements; value is nudged in place
        (a weight) or is the layer's input h itself."""
        verified = 0
        for flat in self.candidates(analytic):
            if verified >= self.count:
                break
            index = np.unravel_index(flat, value.shape)
            old = value[index]
            f0 = self.loss_from(k, h)
            value[index] = old + EPS
            f_plus = self.loss_from(k, h)
            value[index] = old - EPS
            f_minus = self.loss_from(k, h)
            value[index] = old
            a = float(analytic[index])
            numeric = (f_plus - f_minus) / (2 * EPS)
            right, left = (f_plus - f0) / EPS, (f0 - f_minus) / EPS
            error = abs(a - numeric) / max(abs(a), abs(numeric))
            where = fmt_shape(index)
            row = f"    {name:<22}{where:<17}{a:>15.8f}{numeric:>15.8f}{error:>11.1e}"
            if abs(right - left) <= KINK_JUMP * max(abs(right), abs(left)):
                self.smooth_errors.append(error)
                verified += 1
                ok = error <= TOLERANCE
                if not ok:
                    self.failures.append(f"{name}{where}: rel. error {error:.1e}")
                print(f"{row}  {'ok' if ok else 'FAIL'}")
                continue
            side, slope = min((("left", left), ("right", right)), key=lambda s: abs(a - s[1]))
            one_sided = abs(a - slope) / max(abs(a), abs(slope))
            if one_sided <= ONE_SIDED_TOL:
                self.one_sided_errors.append(one_sided)
                verified += 1
                print(f"{row}  kink: analytic = the {side} slope {slope:.8f} "
                      f"(other side {right if side == 'left' else left:.8f})")
            else:
                print(f"{row}  kink: slopes {left:.6f} (left), {right:.6f} (right); several "
                      "units switch, no single side to compare with")
        if verified == 0:
            self.failures.append(f"{name}: no element could be checked")

    def header(self) -> None:
        if not self.legend_printed:
            self.legend_printed = True
            print("  Numeric checks. numeric = (L(t + eps) - L(t - eps)) / (2 eps) with "
                  "eps = 1e-6, L the whole model's loss, in float64;")
            print("  rel. error = |analytic - numeric| / max(|analytic|, |numeric|). 'kink': the "
                  "nudge switches a ReLU on or off or changes a pool's winner (section 4).")
        print(f"    {'tensor':<22}{'element':<17}{'analytic':>15}{'numeric':>15}"
              f"{'rel. error':>11}")


# -- backward, one layer at a time ---------------------------------------------------------------
def backward_conv(layer: Conv2D, x, y, dout, dx_layer, checks: Checks, k: int) -> np.ndarray:
    C = x.shape[-1]
    _, H_out, W_out, F = y.shape
    cols, (KH, KW, SH, SW, PT, PL, _, _) = im2col_of(layer, x, y.shape)
    kernel, bias = layer.params
    K = kernel.value.reshape(KH * KW * C, F)
    print(f"{layer.name} (Conv2D) backward: dout {fmt_shape(dout.shape)} = dL/dy")
    dz = np.where(y > 0, dout, 0.0).reshape(-1, F)  # ReLU: the mask comes from the output y
    print(f"  dz = dout * (y > 0), as {fmt_shape(dz.shape)}: {np.mean(y <= 0):.0%} of it is "
          "zeroed by the ReLU mask")
    dK = cols.T @ dz
    print(f"  dK = cols.T @ dz: {fmt_shape(cols.T.shape)} @ {fmt_shape(dz.shape)} -> "
          f"{fmt_shape(dK.shape)}, viewed as {fmt_shape(kernel.value.shape)}: "
          f"max |dK - kernel.grad| = "
          f"{agree(checks, kernel.name, dK.reshape(kernel.grad.shape), kernel.grad)}")
    print(f"  db = dz summed over its {dz.shape[0]} rows: max |db - bias.grad| = "
          f"{agree(checks, bias.name, dz.sum(axis=0), bias.grad)}")
    dcols = dz @ K.T
    dx = np.empty_like(x)
    kernels.col2im(dcols, KH, KW, SH, SW, PT, PL, H_out, W_out, dx)
    print(f"  dcols = dz @ K.T: {fmt_shape(dz.shape)} @ {fmt_shape(K.T.shape)} -> "
          f"{fmt_shape(dcols.shape)}, then dx = col2im(dcols) {fmt_shape(dx.shape)}")
    if dx_layer is None:
        print("    (the model skips this dx for its first layer, whose input is the data: "
              "computed here to check it)")
    else:
        print(f"    max |dx - the dx the layer returned| = "
              f"{agree(checks, layer.name + ' dx', dx, dx_layer)}")
    # col2im is a scatter-add: an input pixel collects one entry of dcols from every row whose
    # window covers it. Gather them by hand for the pixel with the largest gradient.
    n, h, w, c = np.unravel_index(int(np.argmax(np.abs(dx))), dx.shape)
    terms = [(i, j, kh, kw) for i in range(H_out) for j in range(W_out)
             for kh in range(KH) for kw in range(KW)
             if i * SH - PT + kh == h and j * SW - PL + kw == w]
    total = sum(dcols[(n * H_out + i) * W_out + j, (kh * KW + kw) * C + c]
                for i, j, kh, kw in terms)
    print(f"    dx[{n}, {h}, {w}, {c}] = {dx[n, h, w, c]:.8f} is the sum of the {len(terms)} "
          f"entries of dcols whose window covers that pixel: {total:.8f}")
    R = np.random.default_rng(k).standard_normal(cols.shape)
    back = np.empty_like(x)
    kernels.col2im(R, KH, KW, SH, SW, PT, PL, H_out, W_out, back)
    print("    col2im is the adjoint of im2col: for a random R, "
          f"<cols, R> = {np.vdot(cols, R):.10f} and <x, col2im(R)> = {np.vdot(x, back):.10f}")
    checks.header()
    checks.tensor(k, kernel.name, kernel.value, kernel.grad, x)
    checks.tensor(k, bias.name, bias.value, bias.grad, x)
    h_in = x.copy()
    checks.tensor(k, f"dx of {layer.name}", h_in, dx, h_in)
    return dx


def backward_pool(layer: MaxPooling2D, x, y, dout, dx_layer, checks: Checks, k: int) -> None:
    print(f"{layer.name} (MaxPooling2D) backward: dout {fmt_shape(dout.shape)} -> "
          f"dx {fmt_shape(dx_layer.shape)}")
    _, argmax = pool_argmax(layer, x, y)
    dx = np.empty_like(x)
    kernels.maxpool_backward(np.ascontiguousarray(dout), argmax, dx)
    print("  routing: dx = 0, then dx[n, argmax // W, argmax % W, c] += dout[n, i, j, c]; no "
          f"comparisons. max |dx - the layer's dx| = {agree(checks, layer.name, dx, dx_layer)}")
    print(f"  {np.count_nonzero(dx)} of the {dx.size} elements of dx are non-zero: one per "
          "window at most (fewer where dout is 0)")
    checks.header()
    h_in = x.copy()
    checks.tensor(k, f"dx of {layer.name}", h_in, dx_layer, h_in)


def backward_dense(layer: Dense, x, dz, dx_layer, checks: Checks, k: int) -> None:
    kernel, bias = layer.params
    print(f"  dW = x.T @ dz: {fmt_shape(x.T.shape)} @ {fmt_shape(dz.shape)} -> "
          f"{fmt_shape(kernel.grad.shape)} (an outer product for one sample): "
          f"max |dW - kernel.grad| = {agree(checks, kernel.name, x.T @ dz, kernel.grad)}")
    print(f"  db = dz summed over the batch: max |db - bias.grad| = "
          f"{agree(checks, bias.name, dz.sum(axis=0), bias.grad)}")
    print(f"  dx = dz @ W.T: {fmt_shape(dz.shape)} @ {fmt_shape(kernel.value.T.shape)} -> "
          f"{fmt_shape(dx_layer.shape)}: max |dx - the layer's dx| = "
          f"{agree(checks, layer.name + ' dx', dz @ kernel.value.T, dx_layer)}")
    checks.header()
    checks.tensor(k, kernel.name, kernel.value, kernel.grad, x)
    checks.tensor(k, bias.name, bias.value, bias.grad, x)
    h_in = x.copy()
    checks.tensor(k, f"dx of {layer.name}", h_in, dx_layer, h_in)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--short", action="store_true",
                        help="check one element per tensor instead of three (CI)")
    args = parser.parse_args(argv)
    np.set_printoptions(suppress=True)
    checks = Checks(1 if args.short else 3, np.random.default_rng(0))

    section("0. One digit, the notebook's model, float64")
    image, label, source = load_digit()
    print(f"The input is {source}; its label is {label}.")
    print(ascii_digit(image))
    x = image.reshape(1, 28, 28, 1)  # NHWC: a batch of N=1 image, 28x28 pixels, C=1 channel
    y_true = np.eye(10)[[label]]  # one-hot, (1, 10)
    model = models.mnist_cnn(seed=0)
    # Training runs in float32; gradient checks need float64, where central differences agree
    # with the analytic gradient to ~1e-9 instead of ~1e-2.
    for layer in model.layers:
        layer.set_dtype("float64")
    layers = model.layers
    print(f"Model: models.mnist_cnn(seed=0), {model.count_params():,} parameters, every layer "
          "cast with layer.set_dtype('float64'). Its biases start at 0.")

    section("1. Forward pass, layer by layer (each layer keeps what its backward pass needs)")
    acts = [x]  # acts[k] is the input of layers[k]; acts[-1] the model's output
    for layer in layers:
        acts.append(layer.forward(acts[-1], training=True))
    for k, layer in enumerate(layers):
        print()
        if isinstance(layer, Conv2D):
            forward_conv(layer, acts[k], acts[k + 1], checks)
        elif isinstance(layer, MaxPooling2D):
            forward_pool(layer, acts[k], acts[k + 1], checks)
        elif isinstance(layer, Flatten):
            print(f"{layer.name}: Flatten: {fmt_shape(acts[k].shape)} -> "
                  f"{fmt_shape(acts[k + 1].shape)}, a reshape in (h, w, c) order: element "
                  "(h*W + w)*C + c of a row is x[n, h, w, c]. No arithmetic: its backward is the "
                  "reshape back")
        else:
            forward_dense(layer, acts[k], acts[k + 1])

    section("2. The loss, and its gradient with respect to the logits")
    head = layers[-1]
    # The loss head (losses.LossHead) is where every backward pass starts: with a softmax last
    # layer it reads that layer's logits z and hands back the fused dL/dz = (p - y) / N.
    loss_head = losses.LossHead(model.loss, head)
    p, z = acts[-1], head.cache.z
    loss = loss_head(y_true, p)
    lse = float(z.max() + np.log(np.exp(z - z.max()).sum()))
    yz = float((y_true * z).sum())
    print(f"categorical cross-entropy from the logits, as Keras reports it: "
          f"L = logsumexp(z) - sum(y * z) = {lse:.8f} - ({yz:.8f}) = {lse - yz:.8f}")
    print(f"LossHead(loss, {head.name})(y, p) = {loss:.8f}; -log p[{label}] = "
          f"{-np.log(p[0, label]):.8f} (the same number, but the logits form never takes log(0))")
    dz_head = model.loss.logits_gradient(y_true, p)
    print("dL/dz_k = p_k - y_k for one sample (the softmax's Jacobian and the log's 1/p cancel);"
          " the batch mean divides by N:")
    print(f"  dL/dz = (p - y) / N, N = 1:     "
          f"{np.array2string(dz_head[0], precision=4, max_line_width=200)}")

    def logits_loss(zz: np.ndarray) -> float:
        return float(zz.max() + np.log(np.exp(zz - zz.max()).sum()) - (y_true * zz).sum())

    numeric = np.array([(logits_loss(z + EPS * e) - logits_loss(z - EPS * e)) / (2 * EPS)
                        for e in np.eye(10)])
    error = max_diff(numeric, dz_head[0]) / np.abs(dz_head).max()
    numeric_text = np.array2string(numeric, precision=4, max_line_width=200)
    print(f"  central differences of L(z):   {numeric_text}")
    print(f"  largest difference / largest |dL/dz| = {error:.1e}")
    if error > TOLERANCE:
        checks.failures.append(f"dL/dz: rel. error {error:.1e}")

    def loss_from(k: int, h: np.ndarray) -> float:
        """The loss of running layers[k:] on h."""
        for j in range(k, len(layers)):
            h = layers[j].forward(h, training=True)
        return loss_head(y_true, h)

    checks.loss_from = loss_from

    section("3. Backward pass, from the loss to the first layer")
    print("Each layer gets dout = dL/d(its output), fills dL/d(its weights) into param.grad and "
          "returns dx = dL/d(its input),\nwhich is the dout of the layer before it. Below, every "
          "gradient is rebuilt from the formulas of docs/backprop.md,\ncompared with the "
          "layer's, then a few of its elements with central differences.")
    # The backward pass itself, as Sequential's train step runs it: the head starts from the
    # fused (p - y) / N, every other layer from the dx of the layer after it.
    douts = {len(layers) - 1: dz_head}
    dxs = {len(layers) - 1: loss_head.backward(y_true, p, head)}
    for k in range(len(layers) - 2, -1, -1):
        douts[k] = dxs[k + 1]
        dxs[k] = layers[k].backward(douts[k])
    # The numeric checks run layers forward again, which replaces what their backward pass
    # needed, so they come after the whole backward pass.
    for k in range(len(layers) - 1, -1, -1):
        layer, x_k, y_k = layers[k], acts[k], acts[k + 1]
        print()
        if k == len(layers) - 1:
            print(f"{layer.name} (Dense, softmax) backward: it starts from dz = (p - y) / N "
                  f"{fmt_shape(dz_head.shape)}, the softmax's Jacobian already folded in")
            backward_dense(layer, x_k, dz_head, dxs[k], checks, k)
        elif isinstance(layer, Dense):
            dz = np.where(y_k > 0, douts[k], 0.0)
            print(f"{layer.name} (Dense, relu) backward: dout {fmt_shape(douts[k].shape)}; "
                  f"dz = dout * (y > 0) zeroes {np.mean(y_k <= 0):.0%} of it")
            backward_dense(layer, x_k, dz, dxs[k], checks, k)
        elif isinstance(layer, Flatten):
            print(f"{layer.name} (Flatten) backward: dx = dout.reshape{fmt_shape(x_k.shape)}; "
                  f"max |dx - the layer's dx| = "
                  f"{agree(checks, layer.name, douts[k].reshape(x_k.shape), dxs[k])}")
        elif isinstance(layer, MaxPooling2D):
            backward_pool(layer, x_k, y_k, douts[k], dxs[k], checks, k)
        else:
            backward_conv(layer, x_k, y_k, douts[k], dxs[k], checks, k)

    section("4. Summary of the element checks, and the kinks")
    smooth = checks.smooth_errors
    print(f"Largest relative error of the {len(smooth)} smooth elements checked: "
          f"{max(smooth):.1e} (bar {TOLERANCE:g})")
    if checks.one_sided_errors:
        print(f"{len(checks.one_sided_errors)} elements sat on a kink; at each, the analytic "
              f"gradient equals one of the one-sided slopes to {max(checks.one_sided_errors):.1e}")
    print("""\
Kinks are where the loss has a corner and no derivative: the central difference averages the
slopes of the two sides, and the backward pass returns one of them. A fresh model on an MNIST
digit has many: every bias starts at 0 and the background is exactly 0, so the pre-activation
of a conv window of pure background is exactly 0, ReLU's corner. A conv bias moves hundreds of
those at once: nudged up they all switch on, nudged down they stay off; minicnn (like
TensorFlow) takes ReLU'(0) = 0, so its gradient is the left slope. Pool windows of equal values
(ties) are the other kind: the first maximum gets the gradient; nudged down it loses it to
another tied value, and a tied value nudged up takes it. Where a nudge switches several units
at once, neither slope is the analytic one; other elements of the same tensor check it.""")

    section("5. The same check, automated: minicnn.gradcheck.check_layers on the whole model")
    # The checker reports the kinks it detects and leaves them out of the error, but it can only
    # see a kink whose jump is large next to 1e-3, while a bias of this model moves ~700 units,
    # each a possible small jump. The project's tests avoid kinks by construction; here the input
    # is uniform noise: every pixel distinct and non-zero, so no window is pure background (no
    # pre-activation exactly 0) and no pool window ties.
    noise = np.random.default_rng(1).random(x.shape)
    report = check_layers(layers, noise, y=y_true, loss=model.loss,
                          max_checks=3 if args.short else 10)
    print(f"check_layers(model.layers, x=uniform noise {fmt_shape(noise.shape)}, y=y, "
          f"loss=model.loss, max_checks={3 if args.short else 10}):")
    print(report)
    if not report.passed:
        checks.failures.append("check_layers: " + ", ".join(
            t.name for t in report.tensors if not t.passed))

    section("6. Which pixels mattered: the input's gradient as a saliency map, and Grad-CAM")
    saliency = np.abs(dxs[0][0, :, :, 0])
    print("Section 3's last dx is dL/dx for the image itself: how much each pixel moves the loss. "
          "Its magnitude is a saliency map\n(Simonyan et al., 2014). '#': the 40 pixels where "
          "|dL/dx| is largest; '.': the digit's other ink.")
    top = saliency >= np.sort(saliency.ravel())[-40]
    print("\n".join("".join("#" if top[i, j] else "." if image[i, j] > 0.3 else " "
                             for j in range(28)) for i in range(28)))
    explained = model.explain(x, labels=[label])
    gap = float(np.abs(explained.saliency[0] - saliency).max() / saliency.max())
    print(f"model.explain(x) gives the same map from one forward and one backward pass: max "
          f"|difference| = {gap:.1e} of the largest (it runs in the model's float32 input dtype)")
    cam = explained.grad_cam[0]
    print(f"Grad-CAM at {explained.layer}: weights alpha_k = -mean(dL/dA_k) of its 64 channels, "
          "map = ReLU(sum_k alpha_k A_k), upsampled to 28x28;\n'@' where it is above half its "
          "largest value:")
    print("\n".join("".join("@" if cam[i, j] > 0.5 else "." if image[i, j] > 0.3 else " "
                             for j in range(28)) for i in range(28)))
    if gap > 1e-5:
        checks.failures.append("saliency: model.explain differs from the walkthrough's dL/dx")

    section("7. One Adam step, written out for one weight")
    kernel = layers[0].params[0]
    index = np.unravel_index(int(np.argmax(np.abs(kernel.grad))), kernel.grad.shape)
    w, g = float(kernel.value[index]), float(kernel.grad[index])
    optimizer = Adam()  # Keras's defaults
    lr, b1, b2, eps = (optimizer.learning_rate, optimizer.beta_1, optimizer.beta_2,
                       optimizer.epsilon)
    t = 1
    m = 0.0 + (g - 0.0) * (1 - b1)  # both moments start at 0
    v = 0.0 + (g * g - 0.0) * (1 - b2)
    alpha = lr * math.sqrt(1 - b2**t) / (1 - b1**t)  # both bias corrections, in the step size
    w_new = w - alpha * m / (math.sqrt(v) + eps)
    print(f"weight {kernel.name}{fmt_shape(index)}: w = {w:.10f}, g = dL/dw = {g:.10f}")
    print(f"Adam(learning_rate={lr:g}, beta_1={b1:g}, beta_2={b2:g}, epsilon={eps:g}), "
          f"step t = {t}")
    print(f"  m = m + (g - m) * (1 - beta_1)                     = {m:.10e}")
    print(f"  v = v + (g*g - v) * (1 - beta_2)                   = {v:.10e}")
    print(f"  alpha = lr * sqrt(1 - beta_2**t) / (1 - beta_1**t) = {alpha:.10e}")
    print(f"  w = w - alpha * m / (sqrt(v) + epsilon)            = {w_new:.10f}")
    print(f"  The weight moved by {w_new - w:+.4e}: about -lr * sign(g), as on every first Adam "
          "step, whatever the size of g.")
    paper = w - lr * (m / (1 - b1**t)) / (math.sqrt(v / (1 - b2**t)) + eps)
    print(f"  (epsilon added to sqrt(v_hat) instead, a common variant that is not Keras's, would "
          f"give {paper:.10f}: {paper - w_new:+.1e} away)")
    optimizer.step(model.params)
    [(m_slot, v_slot)] = optimizer.slots([kernel])
    gaps = (abs(kernel.value[index] - w_new), abs(m_slot[index] - m), abs(v_slot[index] - v))
    print(f"Adam().step(model.params): w = {kernel.value[index]:.10f}, m = {m_slot[index]:.10e}, "
          f"v = {v_slot[index]:.10e}")
    print(f"  differences from the hand computation: {gaps[0]:.1e}, {gaps[1]:.1e}, {gaps[2]:.1e}")
    if max(gaps) > 1e-15:
        checks.failures.append("Adam step")

    section("Result")
    if checks.failures:
        print("FAILED: " + "; ".join(checks.failures))
        return 1
    print("OK: every gradient rebuilt by hand equals the layer's, every element checked agrees "
          "with its central difference\n(or, on a kink, with one of its one-sided slopes), "
          "check_layers passed, and the hand-written Adam step equals Adam().step.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
