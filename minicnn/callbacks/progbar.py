"""ProgbarLogger: Keras 3's progress display for fit, evaluate and predict (verbose 1 and 2).

verbose=1, a bar redrawn in place on a terminal and in Jupyter, as Keras 3 draws it:

    Epoch 1/20                    (only when fit runs more than one epoch, as Keras 3)
     50/422 ━━━━━━━━━━━━━━━━━━━━ 6s 17ms/step - accuracy: 0.8012 - loss: 0.5210

the count in bold, the done part of the 20-character bar green and the rest white (ANSI colours),
then the time left (or, once finished, the time taken), the time per step (the first step, which
compiles and warms caches, left out once there are others) and the logs, 4 decimals (or 4
significant digits in e-notation for values of 1e-3 or less). A pipe or a file gets only the
finished line, without colours: a log file of redrawn bars would be unreadable (Keras 3 writes
them anyway). verbose=2: one line per epoch, `422/422 - 7s - 17ms/step - accuracy: ...`.
verbose="auto" (Keras 3's default) is 1.
"""

from __future__ import annotations

import sys
import time

import numpy as np

from minicnn.callbacks.base import Callback

WIDTH = 20  # characters of the bar
INTERVAL = 0.05  # seconds between redraws (the finished line is always drawn)


def _duration(seconds: float) -> str:
    if seconds > 3600:
        return f"{int(seconds // 3600)}:{int(seconds % 3600 // 60):02d}:{int(seconds % 60):02d}"
    if seconds > 60:
        return f"{int(seconds // 60)}:{int(seconds % 60):02d}"
    return f"{int(seconds)}s"


def _per_step(seconds: float) -> str:
    if seconds >= 1 or seconds == 0:
        return f" {seconds:.0f}s/step"
    if seconds >= 1e-3:
        return f" {seconds * 1e3:.0f}ms/step"
    return f" {seconds * 1e6:.0f}us/step"


def _value(value, small) -> str:
    value = float(np.mean(value))  # a metric of several thresholds shows their mean
    return f" {value:.4e}" if small(value) else f" {value:.4f}"


class _Bar:
    """One bar's state: its clock, the first step's time, the width last drawn."""

    def __init__(self, target: int | None, clock) -> None:
        self.target, self.clock = target, clock
        self.start = clock()
        self.after_first: float | None = None
        self.last_draw = 0.0
        self.width = 0

    def per_step(self, current: int, now: float) -> float:
        if not current:
            return 0.0
        if self.after_first is not None and current > 1:
            per = (now - self.after_first) / (current - 1)
        else:
            per = (now - self.start) / current
        if current == 1:
            self.after_first = now
        return per


class ProgbarLogger(Callback):
    """What `fit`, `evaluate` and `predict` print with verbose=1 or 2 (see the module)."""

    def __init__(self, verbose: int | str = 1, stream=None):
        super().__init__()
        self.verbose = 1 if verbose == "auto" else verbose
        self.stream = stream
        self.bar: _Bar | None = None
        self.steps_seen: int | None = None  # a generator's length, once an epoch has shown it

    # -- the callback ---------------------------------------------------------------------------
    def on_epoch_begin(self, epoch, logs=None):
        self._new_bar()
        epochs = self.params.get("epochs", 1)
        if self.verbose and epochs > 1:
            self._write(f"Epoch {epoch + 1}/{epochs}\n")

    def on_train_batch_end(self, batch, logs=None):
        self._batch_end(batch, logs)

    def on_epoch_end(self, epoch, logs=None):
        self._finish(logs)

    # evaluate() and predict(): the same bar over their batches; fit's validation pass runs
    # without callbacks, so these never draw inside a training epoch.
    def on_test_begin(self, logs=None):
        self._new_bar()

    def on_test_batch_end(self, batch, logs=None):
        self._batch_end(batch, logs)

    def on_test_end(self, logs=None):
        self._finish(logs)

    def on_predict_begin(self, logs=None):
        self._new_bar()

    def on_predict_batch_end(self, batch, logs=None):
        self._batch_end(batch, None)

    def on_predict_end(self, logs=None):
        self._finish(None)

    # -- drawing --------------------------------------------------------------------------------
    def _new_bar(self) -> None:
        self.seen = 0
        steps = self.params.get("steps")
        self.bar = _Bar(self.steps_seen if steps is None else steps, time.perf_counter)

    def _batch_end(self, batch: int, logs) -> None:
        self.seen = batch + 1
        if self.verbose == 1:  # verbose=2 reads the clock only for its epoch's line
            self._update(self.seen, logs, finalize=False)

    def _finish(self, logs) -> None:
        if self.bar is None:
            self._new_bar()
        if self.bar.target is None:  # a generator of unknown length: now it is known
            self.bar.target = self.steps_seen = self.seen
        self._update(self.bar.target, logs, finalize=True)

    def _update(self, current: int, logs, finalize: bool) -> None:
        if self.bar is None:
            self._new_bar()
        bar, logs = self.bar, logs or {}
        now = bar.clock()
        per = bar.per_step(current, now)
        if self.verbose == 2:
            if finalize and bar.target:
                digits = len(str(bar.target))
                line = (f"{current:>{digits}}/{bar.target} - {now - bar.start:.0f}s -"
                        f"{_per_step(per)}")
                line += "".join(f" - {k}:{_value(v, lambda a: not a > 1e-3)}"
                                for k, v in logs.items())
                self._write(line + "\n")
            bar.last_draw = now
            return
        if self.verbose != 1 or (now - bar.last_draw < INTERVAL and not finalize):
            return
        dynamic = self._dynamic()
        if not dynamic and not finalize:
            bar.last_draw = now
            return
        plain, shown = self._line(current, per, now, logs, finalize, colour=dynamic)
        text = ("\b" * bar.width + "\r" if dynamic else "") + shown
        text += " " * max(bar.width - len(plain), 0)
        self._write(text + ("\n" if finalize else ""))
        bar.width = len(plain)
        bar.last_draw = now

    def _line(self, current, per, now, logs, finalize, colour: bool) -> tuple[str, str]:
        """The line without and with its ANSI colours (the first one's length is what the
        terminal shows, and what the next redraw must cover)."""
        def paint(text: str, code: str) -> str:
            return f"\x1b[{code}m{text}\x1b[0m" if colour else text

        bar, target = self.bar, self.bar.target
        if target:
            digits = len(str(target))
            count = f"{current:>{digits}}/{target}"
            done = int(WIDTH * current / target)
            plain = f"{count} {'━' * WIDTH}"
            shown = (paint(count, "1") + " " + (paint("━" * done, "32") if done else "")
                     + paint("━" * (WIDTH - done), "37"))
        else:
            plain = shown = f"{current:>7}/Unknown"
        if target and not finalize:
            when = _duration(per * (target - current))
        else:
            when = f"{now - bar.start:.0f}s"
        info = _per_step(per) + "".join(f" - {k}:{_value(v, lambda a: abs(a) <= 1e-3)}"
                                        for k, v in logs.items())
        return plain + f" {when}" + info, shown + " " + paint(when, "1") + info

    def _write(self, text: str) -> None:
        stream = self.stream or sys.stdout
        stream.write(text)
        stream.flush()

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
