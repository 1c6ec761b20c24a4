"""Training input from a converted dataset: batches of ``(inputs, label, weight)`` streamed from shards.

A :class:`JetBatches` walks over a chosen list of shards once per epoch. In streaming mode it shuffles the
shards into groups of up to :data:`MIX_SHARDS`, cuts every shard of a group into as many contiguous blocks as
the group needs windows (a window holding about ``buffer_shards`` shards' worth of jets), and builds each
window from one block of every shard of the group; it shuffles the jets inside the window and cuts batches
(the jets left over at the end of a window start the next one). So memory stays bounded by the window whatever
the size of the dataset, and every batch mixes the jets of many files: input files are often one process each
(tt̄ here, QCD there), and windows of whole files gave runs of batches from one process, after which a network
with batch normalisation ended an epoch tuned to that process. In memory mode (small data) every shard is read
once and the jets are shuffled across the whole set. Shuffling is seeded by ``(seed, epoch)``: an epoch's
batches are the same whenever it is run, which is what makes a resumed training see the data of an
uninterrupted one.

``as_tf_dataset`` wraps the batches in a prefetching ``tf.data.Dataset`` for ``keras.Model.fit``.

>>> from deepjet_nb.dataset import open_dataset                                   # doctest: +SKIP
>>> batches = JetBatches(open_dataset("data/deepjet"), batch_size=1024, seed=1)    # doctest: +SKIP
>>> model.fit(batches.as_tf_dataset(), steps_per_epoch=batches.steps_per_epoch)    # doctest: +SKIP
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence

import numpy as np

from ._seeding import named_rng
from .errors import ArgumentError, DatasetError, DeepJetError

Batch = tuple[dict[str, np.ndarray], np.ndarray, np.ndarray]

# Streaming: the most shards one window mixes. Every window opens one block of each shard of its group, so the
# number of reads per epoch grows as shards × MIX_SHARDS / buffer_shards: bounded, and many files per batch.
MIX_SHARDS = 16


class JetBatches:
    """Batches of jets from some shards of a converted dataset.

    Parameters
    ----------
    dataset: an opened converted dataset (``deepjet_nb.dataset.open_dataset``).
    shards: shard names to use (default: all, in manifest order), or a mapping shard name → indices of the
        jets to use in that shard (a train or validation part of every shard, see :func:`split_jets`).
    batch_size: jets per batch; the last batch of an epoch may be smaller.
    shuffle: shuffle shard order and jets each epoch (off for validation and prediction).
    seed: base seed; epoch ``e`` is shuffled with ``(seed, e)``.
    buffer_shards: streaming mode holds about this many shards' worth of jets in memory at once (a window
        made of blocks of up to :data:`MIX_SHARDS` shards).
    in_memory: read all shards once and keep them (small data).
    prefetch: batches prepared ahead by ``as_tf_dataset``.
    unit_weights: every jet weighs 1 (jets drawn by their weights, :func:`draw_by_weight`).

    Raises :class:`ArgumentError` for a non-positive size or an unknown shard name.
    """

    def __init__(
        self,
        dataset,
        shards: Sequence[str] | Mapping[str, np.ndarray] | None = None,
        *,
        batch_size: int = 1024,
        shuffle: bool = True,
        seed: int = 0,
        buffer_shards: int = 2,
        in_memory: bool = False,
        prefetch: int = 4,
        unit_weights: bool = False,
    ):
        if batch_size < 1 or buffer_shards < 1 or prefetch < 0:
            raise ArgumentError(
                f"batch_size ({batch_size}) and buffer_shards ({buffer_shards}) must be >= 1, prefetch >= 0"
            )
        self.dataset = dataset
        known = list(dataset.shard_names)
        self.indices = {name: np.asarray(idx, dtype=np.int64) for name, idx in shards.items()} \
            if isinstance(shards, Mapping) else None
        self.shards = list(known if shards is None else shards)
        unknown = sorted(set(self.shards) - set(known))
        if unknown:
            raise ArgumentError(f"shards {unknown} are not in dataset {_dataset_path(dataset)}")
        if not self.shards:
            raise ArgumentError(f"no shards selected from dataset {_dataset_path(dataset)}")
        self.groups = list(dataset.manifest["inputs"])
        self.batch_size = int(batch_size)
        self.shuffle = shuffle
        self.seed = int(seed)
        self.buffer_shards = len(self.shards) if in_memory else int(buffer_shards)
        self.in_memory = in_memory
        self.prefetch = int(prefetch)
        self.unit_weights = bool(unit_weights)
        jets = dataset.shard_jets()
        self.n_jets = sum(len(self.indices[name]) if self.indices is not None else jets[name] for name in self.shards)
        if self.n_jets == 0:
            raise DatasetError(f"shards {self.shards} of dataset {_dataset_path(dataset)} hold no jets")
        self._cache: dict[str, dict[str, np.ndarray]] = {}
        self.failure: DeepJetError | None = None  # an error of the data met inside tf.data (as_tf_dataset)

    @property
    def steps_per_epoch(self) -> int:
        """Batches per epoch (the last one may be short)."""
        return math.ceil(self.n_jets / self.batch_size)

    def epoch_batches(self, epoch: int = 0) -> Iterator[Batch]:
        """Yield the batches of epoch ``epoch``: ``({group: float32}, label int32, weight float32)``."""
        rng = np.random.default_rng([self.seed, epoch])
        carry: dict[str, np.ndarray] | None = None
        for window in self._windows(rng):
            if self.shuffle:
                perm = rng.permutation(len(window["label"]))
                window = {key: arr[perm] for key, arr in window.items()}
            if carry is not None:
                window = self._concat([carry, window])
            n = len(window["label"])
            n_full = n - n % self.batch_size
            for lo in range(0, n_full, self.batch_size):
                yield self._batch(window, slice(lo, lo + self.batch_size))
            carry = {key: arr[n_full:] for key, arr in window.items()} if n_full < n else None
        if carry is not None:
            yield self._batch(carry, slice(None))

    def _windows(self, rng) -> Iterator[dict[str, np.ndarray]]:
        """The epoch's windows, before shuffling inside them. Without ``shuffle`` (validation, prediction):
        ``buffer_shards`` whole shards at a time, in order, so the jets come in the order of :meth:`arrays`.
        In memory mode: all shards at once. Else, for each group of up to :data:`MIX_SHARDS` shards (the
        shards shuffled into groups), ``ceil(group / buffer_shards)`` windows, each joining one contiguous block
        of every shard of the group (blocks in a seeded order per shard, so a window joins different parts of
        different files)."""
        if not self.shuffle:  # buffer_shards is the number of shards in memory mode
            for start in range(0, len(self.shards), self.buffer_shards):
                yield self._concat([self._read(name) for name in self.shards[start:start + self.buffer_shards]])
            return
        order = [str(n) for n in rng.permutation(self.shards)]
        if self.in_memory:
            yield self._concat([self._read(name) for name in order])
            return
        group_size = max(self.buffer_shards, MIX_SHARDS)
        for start in range(0, len(order), group_size):
            group = order[start:start + group_size]
            n_windows = math.ceil(len(group) / self.buffer_shards)
            # one window: whole shards (no draw, so the batches are those of whole-shard windows)
            blocks = {name: rng.permutation(n_windows) if n_windows > 1 else [0] for name in group}
            for w in range(n_windows):
                parts = [self._read(name, int(blocks[name][w]), n_windows) for name in group]
                parts = [part for part in parts if len(part["label"])]
                if parts:
                    yield self._concat(parts)

    def arrays(self) -> Batch:
        """All jets of the selected shards in shard order (no shuffling), as one ``(x, label, weight)``."""
        data = self._concat([self._read(name) for name in self.shards])
        return self._batch(data, slice(None))

    def as_tf_dataset(self, start_epoch: int = 0, *, repeat: bool = True):
        """A prefetching ``tf.data.Dataset`` of the batches of epochs ``start_epoch, start_epoch + 1, ...``.

        With ``repeat`` (training) the dataset is endless: pass ``steps_per_epoch`` to ``fit`` so that Keras
        keeps one iterator across epochs and each epoch consumes exactly one epoch of batches. Without it the
        dataset holds the batches of ``start_epoch`` only (validation, prediction).
        """
        import tensorflow as tf

        def generate():
            epoch = start_epoch
            try:
                while True:
                    yield from self.epoch_batches(epoch)
                    if not repeat:
                        return
                    epoch += 1
            except DeepJetError as err:  # tf.data re-raises it wrapped in its own error: keep it for the caller
                self.failure = err
                raise

        shapes = self.dataset.manifest["inputs"]
        signature = (
            {g: tf.TensorSpec((None, *shapes[g]["shape"]), tf.float32) for g in self.groups},
            tf.TensorSpec((None,), tf.int32),
            tf.TensorSpec((None,), tf.float32),
        )
        ds = tf.data.Dataset.from_generator(generate, output_signature=signature)
        if not repeat:
            ds = ds.apply(tf.data.experimental.assert_cardinality(self.steps_per_epoch))
        return ds.prefetch(self.prefetch)

    # -- private -------------------------------------------------------------------------------------------

    def _read(self, name: str, block: int = 0, n_blocks: int = 1) -> dict[str, np.ndarray]:
        """Arrays training needs of block ``block`` of ``n_blocks`` contiguous blocks of shard ``name`` (its
        selected jets; the whole of them by default): memory-mapped reads when streaming (only the block is
        copied into memory), read and cached in memory mode."""
        if name in self._cache:
            return self._cache[name]
        loaded = self.dataset.shard(name, mmap=not self.in_memory)
        n = len(self.indices[name]) if self.indices is not None else len(loaded["label"])
        lo, hi = n * block // n_blocks, n * (block + 1) // n_blocks
        rows = self.indices[name][lo:hi] if self.indices is not None else None
        take = rows if rows is not None else slice(lo, hi)
        try:
            arrays = {key: np.asarray(loaded[key][take]) for key in (*self.groups, "label", "weight")}
        except KeyError as err:
            raise DatasetError(f"shard {name!r} of dataset {_dataset_path(self.dataset)} lacks {err}") from None
        # At every read (once per epoch when streaming; ~1 µs a jet): one NaN spreads into every weight in a
        # single step, after which nothing could say which jet it came from.
        self.dataset.check_values(name, arrays, rows if rows is not None else np.arange(lo, hi))
        if self.unit_weights:
            arrays["weight"] = np.ones(len(arrays["label"]), dtype=np.float32)
        if self.in_memory:
            self._cache[name] = arrays
        return arrays

    @staticmethod
    def _concat(parts: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
        if len(parts) == 1:
            return parts[0]
        return {key: np.concatenate([p[key] for p in parts]) for key in parts[0]}

    def _batch(self, data: dict[str, np.ndarray], sl: slice) -> Batch:
        x = {g: np.ascontiguousarray(data[g][sl], dtype=np.float32) for g in self.groups}
        return x, data["label"][sl].astype(np.int32), data["weight"][sl].astype(np.float32)


def split_jets(shard_jets: Mapping[str, int], val_fraction: float, seed: int,
               train_fraction: float = 1.0) -> tuple[dict, dict]:
    """Split every shard's jets into training and validation: ``(train, validation)``, each a mapping shard name
    → sorted jet indices. A seeded share ``val_fraction`` of each shard validates, so validation has the
    mixture of processes (and files) of training. Each shard is split from ``(seed, shard name)``: the split does
    not depend on which other shards exist or their order.

    ``train_fraction`` (in (0, 1]) keeps a seeded share of each shard's training jets (a learning curve): the
    validation jets stay those of the whole run, and a smaller share is a subset of a larger one (both take
    the first jets of the same seeded order)."""
    train, validation = {}, {}
    for name, n in shard_jets.items():
        order = named_rng(seed, name).permutation(int(n))
        n_val = int(round(val_fraction * n))
        n_train = int(round(train_fraction * (int(n) - n_val)))
        validation[name] = np.sort(order[:n_val])
        train[name] = np.sort(order[n_val:n_val + n_train])
    return train, validation


WEIGHT_USES = ("loss", "resample", "replacement")


def draw_by_weight(dataset, indices: Mapping[str, np.ndarray], how: str, seed: int) -> dict[str, np.ndarray]:
    """How the training jets ``indices`` (shard → jet indices) use their pT–η weights (``how``, one of
    :data:`WEIGHT_USES`); returns the jets to train on, each to be weighted 1 unless ``how`` is ``"loss"``.

    - ``"loss"``: every jet once, its weight multiplying its loss (``indices`` unchanged);
    - ``"resample"``: rejection sampling, each jet kept with probability weight / the largest weight of its
      class among the training jets (as the conversion's ``weighting.apply: resample`` does, but among the
      training jets only);
    - ``"replacement"``: resampling with replacement, each jet taken ⌊w⌋ or ⌊w⌋ + 1 times (the latter with
      probability w − ⌊w⌋), so a class keeps about its number of jets and none is thrown away in bins the
      reference populates.

    The draw is seeded by ``(seed, shard name)`` and involves only training jets, so a jet repeated for training
    never validates. The dataset must have been converted with ``weighting.apply: weight`` (its weights are the
    pT–η weights); otherwise :class:`ArgumentError` says so.
    """
    if how not in WEIGHT_USES:
        raise ArgumentError(f"weights must be one of {WEIGHT_USES}, got {how!r}", key="weights")
    if how == "loss":
        return dict(indices)
    weighting = dataset.manifest["weighting"]
    if weighting.get("mode") in (None, "none") or weighting.get("apply") != "weight":
        raise ArgumentError(
            f"weights={how!r} draws the training jets by their pT–η weights, but dataset "
            f"{_dataset_path(dataset)} was converted with weighting mode {weighting.get('mode')!r}, apply "
            f"{weighting.get('apply')!r}: its jets carry no such weights. Convert with weighting.apply: weight "
            f"(config.with_weighting(apply='weight')), or train with weights='loss'", key="weights")
    parts = {}
    for name, idx in indices.items():
        arrays = dataset.shard(name, mmap=True)
        parts[name] = np.asarray(arrays["weight"], dtype=np.float64)[idx], np.asarray(arrays["label"])[idx]
    peak = np.zeros(len(dataset.classes))
    for w, label in parts.values():
        np.maximum.at(peak, label, w)
    out = {}
    for name, idx in indices.items():
        w, label = parts[name]
        uniforms = named_rng(seed, name, WEIGHT_USES.index(how)).random(len(idx))
        if how == "resample":
            out[name] = idx[uniforms * peak[label] < w]
        else:
            whole = np.floor(w)
            out[name] = np.repeat(idx, (whole + (uniforms < w - whole)).astype(np.int64))
    return out


def check_train_fraction(value, what: str) -> float:
    """``value`` as a share of the training jets (:func:`split_jets`), in (0, 1]; raises :class:`ArgumentError`
    naming ``what`` and the field ``train_fraction`` otherwise."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)) \
            or not 0 < float(value) <= 1:
        raise ArgumentError(f"{what}: train_fraction must be a number in (0, 1], got {value!r}", key="train_fraction")
    return float(value)


def _dataset_path(dataset) -> str:
    return str(getattr(dataset, "path", "?"))
