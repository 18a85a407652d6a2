"""ProgbarLogger: Keras's progress display for fit, evaluate and predict (verbose 1 and 2)."""

from __future__ import annotations

import sys
import time

from minicnn.callbacks.base import Callback


def _format_duration(seconds: float) -> str:
    if seconds >= 3600:
        return f"{int(seconds // 3600)}:{int(seconds % 3600 // 60):02d}:{int(seconds % 60):02d}"
    if seconds >= 60:
        return f"{int(seconds // 60)}:{int(seconds % 60):02d}"
    return f"{seconds:.0f}s"


def _format_per_step(seconds: float) -> str:
    if seconds >= 1:
        return f"{seconds:.0f}s/step"
    if seconds >= 1e-3:
        return f"{seconds * 1e3:.0f}ms/step"
    return f"{seconds * 1e6:.0f}us/step"


def _format_logs(logs: dict) -> str:
    return "".join(f" - {key}: {value:.4f}" for key, value in logs.items())


class ProgbarLogger(Callback):
    """What `fit(verbose=...)` prints, in Keras's format.

    verbose=1: a live bar, `  50/422 [===>......] - ETA: 6s - loss: 0.5 - accuracy: 0.8`, redrawn
    in place on a terminal and in Jupyter (on a pipe or a file only the finished line is written).
    verbose=2: one line per epoch, `422/422 - 7s - loss: ... - 7s/epoch - 17ms/step`.
    verbose="auto" (Keras 3's default in `fit`) is 1.
    """

    def __init__(self, verbose: int | str = 1, stream=None, width: int = 30):
        super().__init__()
        self.verbose = 1 if verbose == "auto" else verbose
        self.stream = stream
        self.width = width

    def _write(self, text: str) -> None:
        stream = self.stream or sys.stdout
        stream.write(text)
        stream.flush()

    def _begin(self) -> None:
        self.steps = self.params.get("steps")
        self.start = time.perf_counter()
        self.last_draw = 0.0

    def on_epoch_begin(self, epoch, logs=None):
        self._begin()
        if self.verbose:
            self._write(f"Epoch {epoch + 1}/{self.params['epochs']}\n")

    def _bar(self, seen: int, logs: dict, final: bool) -> str:
        elapsed = time.perf_counter() - self.start
        steps = self.steps
        if steps is None:  # a generator of unknown length, in its first epoch: Keras's line
            per_step = f" {_format_per_step(elapsed / max(seen, 1))}" if final else ""
            return f"{seen}/Unknown {_format_duration(elapsed)}{per_step}" + _format_logs(logs)
        digits = len(str(steps))
        done = int(self.width * seen / steps)
        bar = "=" * done + (">" if done < self.width else "") + "." * (self.width - done - 1)
        text = f"{seen:>{digits}}/{steps} [{bar[:self.width]}]"
        if final:
            text += f" - {_format_duration(elapsed)} {_format_per_step(elapsed / seen)}"
        else:
            eta = elapsed / seen * (steps - seen)
            text += f" - ETA: {_format_duration(eta)}"
        return text + _format_logs(logs)

    def on_train_batch_end(self, batch, logs=None):
        self._redraw(batch, logs)

    def _redraw(self, batch: int, logs) -> None:
        if self.verbose != 1 or not self._dynamic():
            return
        now = time.perf_counter()
        if now - self.last_draw >= 0.05 and (self.steps is None or batch + 1 < self.steps):
            self.last_draw = now
            # A terminal needs the rest of a longer previous line cleared (ESC [K); Jupyter's
            # "\r" already replaces the whole line, and would only store the escape as noise.
            clear = "\033[K" if self._is_terminal() else ""
            self._write("\r" + self._bar(batch + 1, logs or {}, final=False) + clear)

    def _is_terminal(self) -> bool:
        stream = self.stream or sys.stdout
        return hasattr(stream, "isatty") and stream.isatty()

    def _dynamic(self) -> bool:
        r"""Whether "\r" redraws the line in place: on a terminal, and in Jupyter.

        A Jupyter kernel's stdout is no tty, yet Jupyter's front ends (the notebook, JupyterLab,
        VS Code, Colab) treat "\r" as a terminal does. Keras decides by `"ipykernel" in
        sys.modules`; that holds in any process that merely imported ipykernel (jupyter_client
        does when it looks up the "python3" kernel), so here the stream itself must be the
        kernel's, an ipykernel OutStream. A pipe or a file gets only the finished line.
        """
        if self._is_terminal():
            return True
        iostream = sys.modules.get("ipykernel.iostream")
        return iostream is not None and isinstance(self.stream or sys.stdout, iostream.OutStream)

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        steps = self.params.get("steps_done", self.steps)
        elapsed = time.perf_counter() - self.start
        if self.verbose == 1:
            prefix = "\r" if self._dynamic() else ""
            self._write(prefix + self._bar(steps, logs, final=True) + "\n")
        elif self.verbose == 2:
            self._write(f"{steps}/{self.steps or steps} - {_format_duration(elapsed)}"
                        f"{_format_logs(logs)}"
                        f" - {_format_duration(elapsed)}/epoch"
                        f" - {_format_per_step(elapsed / max(steps, 1))}\n")

    # evaluate() and predict(): the same bar over their batches, without an "Epoch" line; fit's
    # validation pass runs without callbacks, so these never draw inside a training epoch.
    def on_test_begin(self, logs=None):
        self._begin()

    def on_test_batch_end(self, batch, logs=None):
        self._redraw(batch, logs)

    def on_test_end(self, logs=None):
        self._finish(logs or {})

    on_predict_begin = on_test_begin
    on_predict_batch_end = on_test_batch_end
    on_predict_end = on_test_end

    def _finish(self, logs: dict) -> None:
        if self.steps is None:
            self.steps = self.params.get("steps_done", 0)
        if self.verbose == 1:
            prefix = "\r" if self._dynamic() else ""
            self._write(prefix + self._bar(self.steps, logs, final=True) + "\n")
        elif self.verbose == 2:
            elapsed = time.perf_counter() - self.start
            self._write(f"{self.steps}/{self.steps} - {_format_duration(elapsed)}"
                        f" - {_format_per_step(elapsed / max(self.steps, 1))}"
                        f"{_format_logs(logs)}\n")
