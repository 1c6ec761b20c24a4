"""What defines a training run: :class:`TrainConfig` (saved as ``train_config.json``) and the per-model recipes its
unset fields take (docs/reference.md §4); :mod:`deepjet_nb.train` runs it."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from ._args import integer, number
from .batches import WEIGHT_USES, check_train_fraction
from .errors import ArgumentError
from .models import MODEL_NAMES

__all__ = ["RECIPES", "CUSTOM_RECIPE", "RESUME_FIXED", "TrainConfig", "recipe_of"]

# Per-model defaults (docs/reference.md §4). DeepJet's CMS batch is large; 2048 keeps a CPU step short.
RECIPES = {
    "deepcsv": {"lr": 3e-3, "batch_size": 10000, "epochs": 50, "freeze_input_bn_after": None,
                "lr_after_freeze": None},
    "deepjet": {"lr": 1e-3, "batch_size": 2048, "epochs": 30, "freeze_input_bn_after": 1,
                "lr_after_freeze": 1e-4},
    "pcnn": {"lr": 1e-3, "batch_size": 1024, "epochs": 30, "freeze_input_bn_after": None,
             "lr_after_freeze": None},
    "dense": {"lr": 1e-3, "batch_size": 512, "epochs": 20, "freeze_input_bn_after": None,
              "lr_after_freeze": None},
}
assert set(RECIPES) == set(MODEL_NAMES)
# A model of the user's own (docs/custom_models.md) starts from this; a builder may carry a ``recipe`` dict
# attribute with its own values (e.g. ``build.recipe = {"lr": 3e-3}``), and Trainer arguments win over both.
CUSTOM_RECIPE = {"lr": 1e-3, "batch_size": 512, "epochs": 20, "freeze_input_bn_after": None,
                 "lr_after_freeze": None}


@dataclass
class TrainConfig:
    """Everything that defines a training run; saved as ``train_config.json``.

    ``None`` fields take the model's recipe value (:data:`RECIPES`). ``shards`` (the dataset's shards the run
    uses; a seeded share ``val_fraction`` of each validates) and ``data_config_hash`` are filled in when the
    run directory is created.
    """

    model: str
    data: str
    epochs: int | None = None
    batch_size: int | None = None
    lr: float | None = None
    lr_after_freeze: float | None = None
    freeze_input_bn_after: int | None = None
    seed: int = 0
    val_fraction: float = 0.2
    train_fraction: float = 1.0  # seeded share of the training jets used (learning curves); validation unchanged
    # how training uses the jets' pT–η weights: "loss", "resample" or "replacement" (batches.draw_by_weight)
    weights: str = "loss"
    patience: int = 10
    lr_patience: int = 3
    lr_factor: float = 0.5
    min_lr: float = 1e-6
    buffer_shards: int = 2
    in_memory: bool = False
    # TensorFlow runtime (None: the model's measured choice in deepjet_nb.tf_runtime, else TF's default).
    # steps_per_execution > 1 is faster for small networks, but a resumed run is then not bit-identical.
    intra_op_threads: int | None = None
    inter_op_threads: int | None = None
    steps_per_execution: int | None = None
    # TensorFlow's op determinism: bit-identical runs for a seed (None: deepjet_nb.tf_runtime.DETERMINISTIC)
    deterministic: bool | None = None
    hyper: dict = field(default_factory=dict)
    shards: list = field(default_factory=list)
    data_config_hash: str = ""
    model_source: dict = field(default_factory=dict)  # where the model came from (deepjet_nb.models.source)
    components: dict = field(default_factory=dict)  # loss, metrics, optimizer, callbacks as given

    def check(self) -> TrainConfig:
        """Raise :class:`ArgumentError` naming the first field with a bad value; returns ``self``."""
        what = "Trainer"
        for key in ("epochs", "batch_size", "lr_patience", "buffer_shards"):
            integer(getattr(self, key), key, what, minimum=1)
        integer(self.patience, "patience", what, minimum=0)
        integer(self.seed, "seed", what)
        if self.freeze_input_bn_after is not None:
            integer(self.freeze_input_bn_after, "freeze_input_bn_after", what, minimum=0)
        number(self.lr, "lr", what, positive=True)
        if self.lr_after_freeze is not None:
            number(self.lr_after_freeze, "lr_after_freeze", what, positive=True)
        number(self.lr_factor, "lr_factor", what, positive=True, maximum=1)
        number(self.min_lr, "min_lr", what, minimum=0)
        if not 0 <= number(self.val_fraction, "val_fraction", what) < 1:
            raise ArgumentError(f"val_fraction must lie in [0, 1), got {self.val_fraction}")
        check_train_fraction(self.train_fraction, what)
        if self.weights not in WEIGHT_USES:
            raise ArgumentError(f"{what}: weights must be one of {WEIGHT_USES}, got {self.weights!r}", key="weights")
        if not isinstance(self.in_memory, bool):
            raise ArgumentError(f"{what}: in_memory must be True or False, got {self.in_memory!r}")
        if not (self.deterministic is None or isinstance(self.deterministic, bool)):
            raise ArgumentError(f"{what}: deterministic must be True, False or None, got {self.deterministic!r}")
        if not isinstance(self.hyper, dict):
            raise ArgumentError(f"{what}: hyper must be a dict of builder keywords, got {self.hyper!r}")
        return self

    def with_recipe(self, recipe: dict | None = None) -> TrainConfig:
        """A copy whose ``None`` fields take ``recipe`` (default: the recipe of the built-in ``self.model``)."""
        recipe = RECIPES[self.model] if recipe is None else recipe
        changes = {k: v for k, v in recipe.items() if getattr(self, k) is None}
        return dataclasses.replace(self, **changes)



# Fields a resumed run must share with the stored one (epochs may grow; data may have moved).
RESUME_FIXED = ("model", "batch_size", "lr", "lr_after_freeze", "freeze_input_bn_after", "seed", "val_fraction",
                "train_fraction", "weights", "hyper", "shards", "data_config_hash")


def recipe_of(spec) -> dict:
    """The recipe of a model: a built-in one's, or :data:`CUSTOM_RECIPE` updated by the builder's ``recipe``."""
    if spec.builtin:
        return RECIPES[spec.name]
    own = getattr(spec.builder, "recipe", None) or {}
    unknown = set(own) - set(CUSTOM_RECIPE) if isinstance(own, dict) else {"(not a dict)"}
    if unknown:
        raise ArgumentError(f"model {spec.spec!r}: its recipe attribute has unknown keys {sorted(unknown)}; "
                            f"known: {sorted(CUSTOM_RECIPE)}")
    return {**CUSTOM_RECIPE, **own}
