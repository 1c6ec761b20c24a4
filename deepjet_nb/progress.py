"""Progress bars of long work: tqdm.auto (a bar in a terminal, a widget in a notebook), or, when progress is
off, a bar that does nothing and does not import tqdm.

Example::

    bar = jet_bar(True, total=10_000)
    for chunk in chunks:
        bar.update(len(chunk))
    bar.close()
"""

from __future__ import annotations

__all__ = ["jet_bar", "StepBar"]


def jet_bar(enabled: bool, total: int, desc: str = "predicting"):
    """A bar counting jets up to ``total`` (0: total unknown); with ``enabled`` false, one whose ``update`` and
    ``close`` do nothing."""
    if not enabled:
        return _NoBar()
    from tqdm.auto import tqdm

    return tqdm(total=total or None, unit="jet", desc=desc)


class StepBar:
    """A bar over named ``steps`` (none when not ``enabled``): :meth:`next` starts the next step and shows its
    name; calling it once more after the last step completes the bar."""

    def __init__(self, enabled: bool, steps, desc: str):
        self.steps = list(steps)
        self.done = -1
        self.bar = None
        if enabled:
            from tqdm.auto import tqdm

            self.bar = tqdm(total=len(self.steps), desc=desc, unit="step")

    def next(self):
        self.done += 1
        if self.bar is not None:
            self.bar.update(1 if self.done > 0 else 0)
            if self.done < len(self.steps):
                self.bar.set_postfix_str(self.steps[self.done])

    def close(self):
        if self.bar is not None:
            self.bar.close()


class _NoBar:
    def update(self, n):
        pass

    def close(self):
        pass
