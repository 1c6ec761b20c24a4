"""TensorFlow runtime settings for training: thread pools, steps per execution and op determinism, per model.

Per-model settings (:data:`TRAINING_SETTINGS`, applied by ``Trainer`` unless the run sets its own:
``TrainConfig.intra_op_threads``, ``inter_op_threads``, ``steps_per_execution``) are adopted only from a
measurement (``benchmarks/train_speed.py``: jets/s at the demo batch of 256 with TensorFlow's defaults and with
other settings, side by side, each in a fresh process; figures in ``docs/reference.md`` §4). None is adopted
today, on the 2-core development machine:

- DeepJet: one thread per op and two ops side by side (meant to run the three recurrent branches in parallel)
  ran at 0.61x of the default; 8 steps per execution at 1.00x; XLA compilation at 0.97x and bfloat16
  arithmetic at 1.00x. With the defaults it already keeps 1.66 of the 2 cores busy, so thread settings could
  gain at most 1.2x there; its time goes into the LSTMs' sequential small matrix products.
- DeepCSV: 16 steps per call of the compiled loop ran at 1.10x, but a run resumed from an epoch checkpoint then
  ends with other weights than an uninterrupted one (seen with 7 steps per epoch and 2 or 16 steps per
  execution; with 1 they are bit-identical), and the bit-identical resume is worth more than 10 %.

Thread pools are process-wide and can only be set before TensorFlow's runtime starts (the first op run):
:func:`apply_threads` says whether it could, and ``Trainer`` logs the settings it used.

Op determinism (:func:`apply_determinism`, ``TrainConfig.deterministic``, default :data:`DETERMINISTIC`) makes
TensorFlow pick deterministic kernels and run ``tf.data`` in order, so that the same seed gives bit-identical
weights and predictions on the same machine and library versions (docs/reproducibility.md says what it does
not cover). Unlike the thread pools it can be switched at any time; it is process-wide too.
"""

from __future__ import annotations

import sys

# model name -> runtime settings; a model not listed keeps TensorFlow's defaults (see the module docstring).
TRAINING_SETTINGS: dict[str, dict] = {}


# Whether training runs with TensorFlow's op determinism unless told otherwise: it cost less than the 15 % of
# training speed that would have made it an option (benchmarks/train_speed.py --deterministic; the figures are
# in docs/reproducibility.md).
DETERMINISTIC = True


def settings_for(model: str, **given) -> dict:
    """The runtime settings for training ``model``: :data:`TRAINING_SETTINGS`, overridden by ``given`` values that
    are not None. Keys: ``intra_op_threads``, ``inter_op_threads``, ``steps_per_execution`` (absent: default)."""
    settings = dict(TRAINING_SETTINGS.get(model, {}))
    settings.update({k: v for k, v in given.items() if v is not None})
    return settings


def apply_threads(intra_op: int | None, inter_op: int | None) -> bool:
    """Set TensorFlow's intra- and inter-op thread pools (None leaves one as it is).

    Returns True when the pools now have these sizes, False when TensorFlow's runtime had already started with
    other sizes (pools cannot change then; the caller decides whether that matters).
    """
    import tensorflow as tf

    threading = tf.config.threading
    wanted = {"intra": intra_op, "inter": inter_op}
    current = {"intra": threading.get_intra_op_parallelism_threads(),
               "inter": threading.get_inter_op_parallelism_threads()}
    if all(wanted[k] is None or wanted[k] == current[k] for k in wanted):
        return True
    try:
        if intra_op is not None:
            threading.set_intra_op_parallelism_threads(intra_op)
        if inter_op is not None:
            threading.set_inter_op_parallelism_threads(inter_op)
    except RuntimeError:  # "... cannot be modified after initialization"
        return False
    return True


def apply_determinism(enabled: bool) -> bool:
    """Switch TensorFlow's op determinism on or off for this process; True when it is now as asked.

    ``keras.utils.set_random_seed`` must still seed the random streams (with determinism on, an unseeded
    TensorFlow random op raises). Switching it off uses TensorFlow's own, non-public switch (the public API only
    switches it on); where that is missing, False says that determinism stayed on.
    """
    import tensorflow as tf

    if enabled:
        tf.config.experimental.enable_op_determinism()
        return True
    switch = _private_determinism_switch()
    if switch is None:
        return False
    switch.disable_op_determinism()
    return True


def determinism_enabled() -> bool:
    """Whether TensorFlow's op determinism is on in this process (False when TensorFlow is not imported)."""
    if not tensorflow_started():
        return False
    switch = _private_determinism_switch()
    return bool(switch.is_op_determinism_enabled()) if switch is not None else False


def _private_determinism_switch():
    """TensorFlow's module that reads and clears the op-determinism flag (not public API), or None."""
    try:
        from tensorflow.python.framework import config
    except ImportError:
        return None
    has_both = hasattr(config, "disable_op_determinism") and hasattr(config, "is_op_determinism_enabled")
    return config if has_both else None


def tensorflow_started() -> bool:
    """Whether TensorFlow has been imported in this process (its runtime may then have started)."""
    return "tensorflow" in sys.modules
