"""Validation metrics of a training run, the same for every model and for the reference BDT.

Each epoch the trainer (and the BDT once) computes on its validation jets: the weighted cross-entropy and
accuracy, and the AUC and signal efficiency at 1 % mistag of the task its classes define: b vs udsg on the b
discriminant for jet flavours, the first class against the last otherwise (top vs QCD, signal vs background
events). ``split.json`` records which jets validated (:func:`split_record`).
"""

from __future__ import annotations

import math

import numpy as np

from .flavours import CLASS_FLAVOURS, FLAVOUR_CODES, discriminants

__all__ = ["VAL_AUC", "VAL_BEFF", "MISTAG", "HEADLINE", "split_record", "validation_metrics", "by_flavour"]

# Names of the per-epoch validation metrics (history.csv columns, dashboard).
# VAL_AUC names the AUC of whatever task the classes define (b vs udsg, top vs QCD, signal vs background
# events); runs of older versions call it "val_auc_b_vs_udsg" (deepjet_nb.run renames it on reading).
VAL_AUC = "val_auc"
VAL_BEFF = "val_beff_at_mistag_0.01"
MISTAG = 0.01
HEADLINE = (VAL_BEFF, "b-eff @ 1% mistag")  # the validation metric the dashboard shows per epoch
# For datasets whose classes are not jet flavours (fat jets, events), the same two metrics compare the first
# class (signal, e.g. Top) with the last (background, e.g. QCD) on P(first) / (P(first) + P(last)).


def split_record(dataset, split: tuple[dict, dict], train_fraction: float = 1.0, weights: str = "loss") -> dict:
    """What ``split.json`` holds for ``split`` = (train, validation) shard → jet indices of ``dataset``: jets per
    source file and per class, for training and validation (a jet drawn twice counts twice; ``unique_jets``
    counts it once), ``train_fraction``, the share of the training jets the split kept
    (:func:`deepjet_nb.batches.split_jets`), and ``weights``, how the training jets used their weights
    (:func:`deepjet_nb.batches.draw_by_weight`)."""
    record = {"train_fraction": float(train_fraction), "weights": weights}
    for part, indices in zip(("train", "validation"), split):
        classes = np.zeros(len(dataset.classes), dtype=np.int64)
        for name, idx in indices.items():
            label = np.asarray(dataset.shard(name, mmap=True)["label"])[idx]
            classes += np.bincount(label, minlength=len(classes))
        record[part] = {"sources": {name: len(idx) for name, idx in indices.items()},
                        "classes": dict(zip(dataset.classes, classes.tolist())),
                        "unique_jets": int(sum(len(np.unique(idx)) for idx in indices.values()))}
    return record


def validation_metrics(probs: np.ndarray, label: np.ndarray, weight: np.ndarray, manifest: dict) -> dict:
    """Validation metrics from softmax outputs ``probs`` (n, n_classes), integer ``label`` and ``weight``.

    Returns ``val_loss`` (mean of weight × cross-entropy, the Keras convention), ``val_accuracy`` (weighted
    argmax accuracy), ``VAL_AUC`` and ``VAL_BEFF`` (b vs udsg on the b discriminant, jets unweighted; NaN when
    the validation set lacks b or light jets). For classes that are not jet flavours (a fat-jet or event
    config), ``VAL_AUC`` and ``VAL_BEFF`` compare the first class with the last on P(first)/(P(first)+P(last)).
    """
    from .dataset import Manifest
    from .kernels.roc import auc, eff_at_mistag, roc_curve

    classes = list(manifest["classes"])
    picked = np.clip(probs[np.arange(len(label)), label], 1e-7, 1.0)  # Keras clips at its epsilon too
    out = {"val_loss": float(np.mean(weight * -np.log(picked))),
           "val_accuracy": float(np.sum(weight * (probs.argmax(axis=1) == label)) / np.sum(weight))}
    if by_flavour(manifest):
        flavours = {**CLASS_FLAVOURS, **(Manifest(manifest).class_flavours or {})}
        b = discriminants({c: probs[:, i] for i, c in enumerate(classes)}, flavours)["b"]
        jet_flavour = np.array([FLAVOUR_CODES.get(flavours.get(c), -1) for c in classes])[label]
        use = (jet_flavour == FLAVOUR_CODES["b"]) | (jet_flavour == FLAVOUR_CODES["udsg"])
        is_b = jet_flavour[use] == FLAVOUR_CODES["b"]
    else:
        last = len(classes) - 1
        signal, background = probs[:, 0].astype(np.float64), probs[:, last].astype(np.float64)
        total = signal + background
        b = np.divide(signal, total, out=np.zeros_like(signal), where=total > 0)
        use = (label == 0) | (label == last)
        is_b = label[use] == 0
    if is_b.all() or not is_b.any():
        return {**out, VAL_AUC: math.nan, VAL_BEFF: math.nan}
    sig_eff, bkg_eff, _ = roc_curve(b[use], is_b)
    return {**out, VAL_AUC: auc(sig_eff, bkg_eff), VAL_BEFF: float(eff_at_mistag(sig_eff, bkg_eff, MISTAG))}


def by_flavour(manifest) -> bool:
    """Whether a dataset's classes are jet flavours (a DeepNTuples config) rather than fat-jet or event
    classes."""
    from .schema import DEEPNTUPLES

    from .flavours import flavour_classes

    raw = manifest.get("config") or {}
    if raw.get("schema") == "custom":  # a layout of one's own: flavours when its class names are
        return flavour_classes(raw.get("classes"))
    return raw.get("schema", DEEPNTUPLES.name) == DEEPNTUPLES.name  # the key is written only when not default
