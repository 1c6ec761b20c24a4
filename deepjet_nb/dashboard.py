"""Live training dashboard: an ipywidgets panel in a notebook, concise text lines in a batch run.

:class:`TrainingDashboard` is a Keras callback. In widget mode it shows loss curves (running training loss
every few batches, training and validation loss per epoch), the b-jet efficiency at 1 % light mistag per
epoch, a progress bar with the training rate (jets/s), the validation time per epoch and an ETA, a
"compiling" state while the model is traced, the learning rate, and a Stop button that ends training after
the current batch, also while ``trainer.fit()`` blocks the cell (widget events are delivered between
batches). In text mode (CLI, plain Python) it prints a line every ``text_every`` seconds and one per epoch.
Epochs are counted from 1 everywhere, as in ``history.csv``.

Cost is kept small on purpose: per batch it only counts; the widgets (and the plots, drawn as inline SVG so no
plotting library runs in the loop) are refreshed at most every ``update_every`` seconds. ``overhead_s``
accumulates the time spent inside the callback, so its cost can be reported (benchmarks/input_pipeline.py).

    >>> dash = TrainingDashboard(epochs=5, steps_per_epoch=100, batch_size=1024)          # doctest: +SKIP
    >>> model.fit(..., callbacks=[dash], verbose=0)                                        # doctest: +SKIP
"""

from __future__ import annotations

import collections
import math
import sys
import threading
import time
from collections.abc import Callable

import keras

from .errors import ArgumentError

__all__ = ["TrainingDashboard", "svg_lines"]


class TrainingDashboard(keras.callbacks.Callback):
    """Keras callback showing training progress.

    Parameters: ``epochs`` and ``steps_per_epoch`` (for progress and ETA), ``batch_size`` (for jets/s);
    ``mode`` "auto" (widgets inside a Jupyter kernel, text otherwise), "widget" or "text"; ``update_every``
    minimum seconds between widget refreshes; ``text_every`` seconds between text progress lines;
    ``loss_every`` batches per point of the running-loss curve (fewer for short epochs, so that every epoch
    gives a few points); ``on_stop`` called when Stop is pressed (training also stops after the current
    batch); ``log`` optional callable receiving each progress line (epoch lines only go to the output: the
    trainer logs epochs in full); ``history`` rows of epochs already done (a resumed run; 1-based ``epoch``)
    to draw; ``headline`` the validation metric shown per epoch, as (key in the epoch logs, label), e.g.
    ``("val_beff_at_mistag_0.01", "b-eff @ 1% mistag")``; ``display`` show the widget when training begins
    (widget mode; default: when inside a Jupyter kernel); ``stream`` where text lines go (default stdout).

    Epochs are counted from 1 in everything shown (and in ``epoch_rows``), as in ``history.csv``.

    Timing: the rate (jets/s) and the ETA come from a moving average of the last ``rate_window`` training
    steps; the first step after each compilation (the start of every ``fit`` call: tracing the model) is left
    out and shown as "compiling". Validation and checkpointing, measured per epoch, are shown apart and
    added to the ETA once per remaining epoch.

    In a notebook the callback also delivers the front end's widget events between batches
    (:mod:`deepjet_nb._uipoll`), so Stop works while ``fit()`` blocks the cell. Call :meth:`finish` when
    training is over (the trainer does): the Stop button is then disabled and says how training ended.

    Raises :class:`ArgumentError` for an unknown mode or non-positive sizes.
    """

    def __init__(self, *, epochs: int, steps_per_epoch: int, batch_size: int, mode: str = "auto",
                 update_every: float = 1.0, text_every: float = 30.0, loss_every: int = 10,
                 on_stop: Callable[[], None] | None = None, log: Callable[[str], None] | None = None,
                 history: list[dict] | None = None, headline: tuple[str, str] | None = None,
                 display: bool | None = None, stream=None, rate_window: int = 50):
        super().__init__()
        if mode not in ("auto", "widget", "text"):
            raise ArgumentError(f"dashboard mode must be 'auto', 'widget' or 'text', got {mode!r}")
        if epochs < 1 or steps_per_epoch < 1 or batch_size < 1 or loss_every < 1 or rate_window < 1:
            raise ArgumentError("epochs, steps_per_epoch, batch_size, loss_every and rate_window must be >= 1")
        self.epochs, self.steps_per_epoch, self.batch_size = epochs, steps_per_epoch, batch_size
        self.mode = ("widget" if _in_kernel() else "text") if mode == "auto" else mode
        self.update_every, self.text_every = update_every, text_every
        self.loss_every = min(loss_every, max(1, steps_per_epoch // 3))
        self._on_stop, self._log, self._stream = on_stop, log, stream
        self.headline_key, self.headline_label = headline or (None, "")
        self._display = _in_kernel() if display is None else display
        self.stop_requested = False
        self.finished: str | None = None
        self.overhead_s = 0.0
        # Curves: running loss (global step, loss) and per-epoch rows (1-based "epoch").
        self.batch_loss: list[tuple[int, float]] = []
        self.epoch_rows: list[dict] = [dict(r) for r in (history or [])]
        self.epoch = self.epoch_rows[-1]["epoch"] if self.epoch_rows else 0  # 0-based index of the running one
        self.step = 0
        self.lr = math.nan
        # Timing: training step durations (moving window), validation + checkpoint seconds per epoch.
        self.phase = "waiting"  # waiting, compiling, training, validating, or how training ended
        self._step_times: collections.deque[float] = collections.deque(maxlen=rate_window)
        self._epoch_end_times: list[float] = []
        self._last_batch_end = math.nan
        self._epochs_done = self.epoch
        self._last_refresh = self._last_text = 0.0
        self._prev_mean = (0, 0.0)  # (batches, mean loss) at the previous running-loss point
        self._shown = False
        self._events = None
        self.widget = self._build_widgets() if self.mode == "widget" else None

    # -- numbers shown -------------------------------------------------------------------------------------

    @property
    def step_s(self) -> float:
        """Mean duration of the recent training steps (seconds; NaN before the first one after compiling)."""
        return sum(self._step_times) / len(self._step_times) if self._step_times else math.nan

    @property
    def jets_per_s(self) -> float:
        """Training rate (validation and checkpoint time excluded)."""
        return self.batch_size / self.step_s if self._step_times else math.nan

    @property
    def epoch_end_s(self) -> float:
        """Mean validation + checkpoint time per epoch (0 before the first epoch ended)."""
        return sum(self._epoch_end_times) / len(self._epoch_end_times) if self._epoch_end_times else 0.0

    @property
    def eta_s(self) -> float:
        """Seconds left: remaining steps at the moving-average step time, plus validation per remaining epoch."""
        if not self._step_times:
            return math.nan
        remaining = max(self.epochs * self.steps_per_epoch - self._global_step(), 0)
        return remaining * self.step_s + max(self.epochs - self._epochs_done, 0) * self.epoch_end_s

    # -- user actions ------------------------------------------------------------------------------------

    def request_stop(self, *_):
        """Stop after the current batch (what the Stop button does)."""
        if self.finished:
            return
        self.stop_requested = True
        if self.widget is not None:
            self._stop_button.disabled = True
            self._stop_button.description = "Stopping…"
        if self._on_stop is not None:
            self._on_stop()
        if self.model is not None:
            self.model.stop_training = True

    def finish(self, reason: str | None = None):
        """Training is over (``reason``: None for all epochs done, "stopped", "early stopping",
        "interrupted", "failed"): stop delivering events, disable Stop and say how it ended."""
        self._stop_events()
        self.finished = reason or "finished"
        self.phase = self.finished
        if self.widget is not None:
            self._stop_button.disabled = True
            self._stop_button.icon = ""
            self._stop_button.button_style = ""
            self._stop_button.description = self.finished.capitalize()
            self._update_widgets()

    def notice(self, message: str):
        """Show a warning line (e.g. a credential about to expire): in the widget's output area, or printed in
        text mode."""
        if self.widget is not None:
            self._lines.append_stdout(f"⚠ {message}\n")
        else:
            print(f"warning: {message}", file=self._stream or sys.stdout, flush=True)

    def show(self):
        """Display the widget (once) in the current notebook cell; nothing in text mode."""
        if self.widget is not None and not self._shown:
            from IPython.display import display

            display(self.widget)
        self._shown = True

    # -- Keras hooks -------------------------------------------------------------------------------------

    def on_train_begin(self, logs=None):
        t0 = time.perf_counter()
        if self._display:
            self.show()
        if self.widget is not None and self._events is None:
            from ._uipoll import UiEvents

            self._events = UiEvents().__enter__()
        # Every fit() call traces the model on its first step (again after the recipe's recompilation).
        self.phase = "compiling"
        self._last_batch_end = math.nan
        self._refresh(t0, force=True)
        self.overhead_s += time.perf_counter() - t0

    def on_epoch_begin(self, epoch, logs=None):
        t0 = time.perf_counter()
        self.epoch, self.step = epoch, 0
        self._prev_mean = (0, 0.0)
        self.lr = _lr(self.model)
        if self.phase != "compiling":
            self.phase = "training"
            self._last_batch_end = t0
        self._refresh(t0, force=True)
        self.overhead_s += time.perf_counter() - t0

    def on_train_batch_end(self, batch, logs=None):
        t0 = time.perf_counter()
        # With steps_per_execution > 1 Keras calls back once per chunk of steps, with the chunk's last batch.
        previous, self.step = self.step, batch + 1
        if self.phase == "compiling":
            self.phase = "training"
        elif math.isfinite(self._last_batch_end):
            self._step_times.append((t0 - self._last_batch_end) / max(self.step - previous, 1))
        if self.step // self.loss_every > previous // self.loss_every and logs and "loss" in logs:
            self._add_loss_point(float(logs["loss"]))
        if self._events is not None:
            self._events.poll()  # may press Stop
        if self.stop_requested:
            self.model.stop_training = True
        last = self.step >= self.steps_per_epoch
        if last:
            self.phase = "validating"
        if last or t0 - self._last_refresh >= self.update_every or (
                self.mode == "text" and t0 - self._last_text >= self.text_every):
            self._refresh(t0, force=last)
        self._last_batch_end = time.perf_counter()
        self.overhead_s += self._last_batch_end - t0

    def on_epoch_end(self, epoch, logs=None):
        t0 = time.perf_counter()
        if math.isfinite(self._last_batch_end) and self.step >= self.steps_per_epoch:
            # Callbacks before this one (the trainer's) validated and wrote the checkpoint since the last batch.
            self._epoch_end_times.append(t0 - self._last_batch_end)
        self._epochs_done = epoch + 1
        if logs:  # an epoch cut short by Stop arrives with empty logs and is not drawn
            self.epoch_rows.append({"epoch": epoch + 1, **{k: float(v) for k, v in logs.items()}})
            self._emit(self._epoch_line(self.epoch_rows[-1]), epoch_line=True)
        if self.phase == "validating":
            self.phase = "training"
        self._refresh(t0, force=True)
        self._last_batch_end = math.nan
        self.overhead_s += time.perf_counter() - t0

    def on_train_end(self, logs=None):
        self._stop_events()
        if self.phase in ("training", "validating", "compiling"):
            self.phase = "waiting"
        self._refresh(time.perf_counter(), force=True)

    def _stop_events(self):
        if self._events is not None:
            events, self._events = self._events, None
            events.__exit__(None, None, None)

    # -- state ---------------------------------------------------------------------------------------------

    def _global_step(self) -> int:
        return self.epoch * self.steps_per_epoch + self.step

    def _add_loss_point(self, running_mean: float):
        # Keras reports the epoch's running mean; the mean over just the last batches follows from two of them.
        n0, m0 = self._prev_mean
        n1 = self.step
        window = (running_mean * n1 - m0 * n0) / (n1 - n0)
        self._prev_mean = (n1, running_mean)
        self.batch_loss.append((self._global_step(), window))

    def _refresh(self, now: float, force: bool = False):
        self._last_refresh = now
        if self.widget is not None:
            self._update_widgets()
        elif self.mode == "text" and not force and now - self._last_text >= self.text_every:
            self._last_text = now
            self._emit(self._progress_line())
        if self._last_text == 0.0:
            self._last_text = now

    # -- text ----------------------------------------------------------------------------------------------

    def _rate_text(self) -> str:
        if self.phase == "compiling":
            return "compiling the model (the first step traces it)…"
        text = f"{_num(self.jets_per_s, '.0f')} jets/s · ETA {_duration(self.eta_s)}"
        if self._epoch_end_times:
            text += f" · validation + checkpoint {self.epoch_end_s:.1f} s/epoch"
        if self.phase == "validating":
            text += " · validating…"
        return text

    def _progress_line(self) -> str:
        loss = f" loss {self.batch_loss[-1][1]:.4f}" if self.batch_loss else ""
        return (f"epoch {self.epoch + 1}/{self.epochs} step {self.step}/{self.steps_per_epoch}{loss} "
                f"{self._rate_text().replace(' · ', ' ')}")

    def _epoch_line(self, row: dict) -> str:
        parts = [f"epoch {row['epoch']}/{self.epochs}"]
        for key, label in (("loss", "loss"), ("accuracy", "acc"), ("val_loss", "val_loss"),
                           ("val_accuracy", "val_acc"), (self.headline_key, self.headline_label)):
            if key in row:
                parts.append(f"{label} {row[key]:.4f}")
        parts.append(f"lr {self.lr:.2g}")
        return " ".join(parts)

    def _emit(self, line: str, *, epoch_line: bool = False):
        if epoch_line and self.widget is not None and threading.current_thread() is not threading.main_thread():
            # trainer.start(): a print from this thread would land under whichever cell ran last; the
            # dashboard's own output area keeps every line where it belongs.
            self._lines.append_stdout(line + "\n")
        elif self.mode == "text" or epoch_line:
            # Widget mode prints epoch lines under the cell too: widget state is not saved with a notebook.
            print(line, file=self._stream or sys.stdout, flush=True)
        if self._log is not None and not epoch_line:
            self._log(line)

    # -- widgets -------------------------------------------------------------------------------------------

    def _build_widgets(self):
        import ipywidgets as w

        self._title = w.HTML("<b>Training</b>")
        self._progress = w.IntProgress(min=0, max=self.epochs * self.steps_per_epoch, description="progress")
        self._status = w.HTML()
        self._lr_label = w.HTML()
        self._headline_value = w.HTML()
        self._loss_plot = w.HTML()
        self._headline_plot = w.HTML()
        self._lines = w.Output()
        self._stop_button = w.Button(description="Stop", button_style="danger", icon="stop",
                                     tooltip="end training after the current batch (the last checkpoint stays)")
        self._stop_button.on_click(self.request_stop)
        self._update_widgets()
        return w.VBox([
            self._title,
            w.HBox([self._progress, self._stop_button]),
            self._status,
            w.HBox([self._lr_label, self._headline_value]),
            w.HBox([self._loss_plot, self._headline_plot]),
            self._lines,
        ])

    def _update_widgets(self):
        self._progress.value = min(self._global_step(), self._progress.max)
        where = f"epoch {min(self.epoch + 1, self.epochs)}/{self.epochs} · step {self.step}/{self.steps_per_epoch}"
        if self.finished:
            done = len(self.epoch_rows)
            self._status.value = f"{where} · <b>{self.finished}</b>: {done}/{self.epochs} epochs recorded"
        else:
            colour = "#b35900" if self.phase == "compiling" else "inherit"
            self._status.value = f'{where} · <span style="color:{colour}">{self._rate_text()}</span>'
        self._lr_label.value = f"lr {self.lr:.2g}&nbsp;&nbsp;·&nbsp;&nbsp;"
        value = self.epoch_rows[-1].get(self.headline_key, math.nan) if self.epoch_rows else math.nan
        self._headline_value.value = f"{self.headline_label}: {_num(value, '.3f')}" if self.headline_key else ""
        per_epoch = lambda key: [(r["epoch"] * self.steps_per_epoch, r[key])  # noqa: E731
                                 for r in self.epoch_rows if key in r]
        self._loss_plot.value = svg_lines(
            {"train (running)": self.batch_loss, "train": per_epoch("loss"), "validation": per_epoch("val_loss")},
            title="loss", xlabel="batches")
        if self.headline_key:
            self._headline_plot.value = svg_lines({self.headline_label: per_epoch(self.headline_key)},
                                                  title="validation", xlabel="batches",
                                                  colours={self.headline_label: _COLOURS[3]})


_COLOURS = ("#9ecae1", "#08519c", "#e6550d", "#31a354")


def svg_lines(series: dict[str, list[tuple[float, float]]], *, title: str = "", xlabel: str = "",
              width: int = 360, height: int = 220, colours: dict[str, str] | None = None) -> str:
    """A small line chart as an inline SVG string: ``series`` maps a label to (x, y) points; ``colours``
    optionally fixes a label's colour (others take the palette in order).

    Non-finite points are skipped. Cheap enough to redraw every second (no plotting library involved).
    """
    pts = {k: [(x, y) for x, y in v if math.isfinite(y)] for k, v in series.items()}
    allp = [p for v in pts.values() for p in v]
    # The legend is one row between the title and the frame, so it never covers a line.
    pad_l, pad_r, pad_t, pad_b = 48, 10, 36, 30
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
           f'style="font:11px sans-serif;background:#fff">',
           f'<text x="{width / 2}" y="14" text-anchor="middle" font-weight="bold">{title}</text>']
    if allp:
        x0, x1 = min(p[0] for p in allp), max(p[0] for p in allp)
        y0, y1 = min(p[1] for p in allp), max(p[1] for p in allp)
        if y1 <= y0:  # a flat series: centre it in a small range rather than draw it on the frame
            pad = abs(y0) * 0.05 + 1e-3
            y0, y1 = y0 - pad, y1 + pad
        x1 = x1 if x1 > x0 else x0 + 1
        sx = lambda x: pad_l + (x - x0) / (x1 - x0) * (width - pad_l - pad_r)  # noqa: E731
        sy = lambda y: height - pad_b - (y - y0) / (y1 - y0) * (height - pad_t - pad_b)  # noqa: E731
        out.append(f'<rect x="{pad_l}" y="{pad_t}" width="{width - pad_l - pad_r}" '
                   f'height="{height - pad_t - pad_b}" fill="none" stroke="#999"/>')
        for y in _nice_ticks(y0, y1):
            out.append(f'<line x1="{pad_l}" x2="{width - pad_r}" y1="{sy(y):.1f}" y2="{sy(y):.1f}" stroke="#eee"/>')
            out.append(f'<text x="{pad_l - 4}" y="{sy(y) + 4:.1f}" text-anchor="end">{y:.3g}</text>')
        out.append(f'<text x="{width / 2}" y="{height - 8}" text-anchor="middle">{xlabel} ({x0:.0f}–{x1:.0f})'
                   f'</text>')
        legend_x = pad_l
        for i, (label, v) in enumerate(pts.items()):
            colour = (colours or {}).get(label) or _COLOURS[i % len(_COLOURS)]
            if len(v) > 1:
                path = " ".join(f"{sx(x):.1f},{sy(y):.1f}" for x, y in v)
                out.append(f'<polyline fill="none" stroke="{colour}" stroke-width="1.5" points="{path}"/>')
            for x, y in v[-1:] if len(v) > 1 else v:
                out.append(f'<circle cx="{sx(x):.1f}" cy="{sy(y):.1f}" r="2.5" fill="{colour}"/>')
            if v:  # a series without points yet gets no legend entry
                out.append(f'<text x="{legend_x}" y="{pad_t - 5}" fill="{colour}">&#9632; {label}</text>')
                legend_x += 7 * (len(str(label)) + 2) + 10  # about 7 px per character of the 11 px font
    else:
        out.append(f'<text x="{width / 2}" y="{height / 2}" text-anchor="middle" fill="#999">waiting…</text>')
    out.append("</svg>")
    return "".join(out)


def _nice_ticks(low: float, high: float, target: int = 5) -> list[float]:
    """About ``target`` round values (steps of 1, 2, 2.5 or 5 times a power of ten) inside [low, high], for a
    readable axis; [low, high] itself when the range holds fewer than two of them."""
    raw = (high - low) / target
    if not (math.isfinite(raw) and raw > 0):
        return [low, high]
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)
    first = math.ceil(low / step - 1e-9) * step
    ticks = [first + i * step for i in range(int((high - first) / step + 1e-9) + 1)]
    return [round(t, 12) for t in ticks] if len(ticks) >= 2 else [low, high]


def _in_kernel() -> bool:
    """True inside a Jupyter kernel (where widgets can be shown)."""
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    return shell is not None and type(shell).__name__ == "ZMQInteractiveShell"


def _lr(model) -> float:
    try:
        return float(keras.ops.convert_to_numpy(model.optimizer.learning_rate))
    except (AttributeError, TypeError, ValueError):
        return math.nan


def _num(value: float, spec: str) -> str:
    return format(value, spec) if math.isfinite(value) else "–"


def _duration(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "–"
    seconds = int(round(seconds))
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"
