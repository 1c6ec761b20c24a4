"""The equivalence check of an exported model: the training framework (the run's Keras model, as
``deepjet-nb predict`` runs it) and the deployed model (the :class:`~deepjet_nb.predictor.Predictor` on ONNX
Runtime) on the same jets, and its report (docs/formats.md §6)::

    MODEL_DIR/equivalence.json   max_abs_diff, tolerance, passed, per class and per discriminant |Δp|, int8
    MODEL_DIR/equivalence.png    2D histograms of the b and CvsL discriminants, training vs deployed

The check ntuples go once through the jet transform (:func:`deepjet_nb.jets.iter_arrays`, with the card's data
config and normalisation, which must be the run's); each chunk of converted arrays is then given to both models
in memory, so the two sides see the same entries in the same order and nothing is written but the report.
With an int8 model in the directory, the report also gives the b efficiency at 1 % light mistag of the float32
and int8 models (for classes that are not jet flavours: the first class's efficiency at 1 % mistag of the last),
on which :func:`deepjet_nb.deploy.export` accepts or refuses it.

Example::

    from deepjet_nb.equivalence import check
    report = check("models/deepjet", ["ttbar_test.root"])   # needs TensorFlow (the training side is Keras)
    report["max_abs_diff"], report["passed"]
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ._atomic import sha256_file
from ._jsonio import write_json
from .errors import ArgumentError, DeployError
from .jets import DEFAULT_STEP_SIZE
from .predictor import EQUIVALENCE, EQUIVALENCE_PLOT, INT8_ONNX, Predictor, open_model

__all__ = ["check", "compare", "discriminant_definitions", "TOLERANCE", "INT8_MISTAG", "INT8_MAX_BEFF_CHANGE"]

TOLERANCE = 1e-4  # largest |Δp| between training and deployed model that passes the check
DIFF_LEVEL = 1e-5  # the report counts the jets whose largest |Δp| exceeds this
INT8_MISTAG = 0.01  # b efficiency compared at 1 % light mistag (CMS medium working point)
INT8_MAX_BEFF_CHANGE = 0.005  # 0.5 points absolute: a larger change refuses the int8 model


def check(model_dir: str | os.PathLike, files: Sequence[str | os.PathLike], *, run_dir=None,
          step_size: int = DEFAULT_STEP_SIZE, progress: bool = True) -> dict:
    """Compare an exported model with the training framework on the jets of ``files`` (ROOT ntuples) and write
    ``equivalence.json`` and ``equivalence.png`` into ``model_dir``; returns the report (docs/formats.md §6).

    ``run_dir`` is the training run (default: the run recorded in the model card); its model file must be the
    one exported (same sha256). The report says whether the check ``passed`` (``max_abs_diff`` <=
    :data:`TOLERANCE`); this function does not raise on a failed check (:func:`deepjet_nb.deploy.export`
    does). Needs
    TensorFlow (the training side is Keras).
    """
    from .run import open_run

    model = open_model(model_dir)
    source = model.card["source"]
    run = open_run(run_dir if run_dir is not None else source["run"])
    model_path = run.model_path(source["model_file"])
    if sha256_file(model_path) != source["model_sha256"]:
        raise DeployError(f"{model_path}: not the model exported to {model.path} (its sha256 differs): export again")
    return compare(model.path, files, run=run, model=run.load_model(source["model_file"]), step_size=step_size,
                   progress=progress)


def compare(model_dir, files, *, run, model, step_size: int = DEFAULT_STEP_SIZE, progress: bool = True) -> dict:
    """:func:`check` with the run opened and its Keras ``model`` loaded (what :func:`deepjet_nb.deploy.export`
    calls before it publishes a directory): converts ``files`` once, runs both models (and the int8 one, when
    the directory has it) on each converted chunk, writes the report and its plot into ``model_dir``."""
    files = _check_files(files)
    predictor = Predictor(model_dir)
    _check_same_conversion(predictor.model, run)
    quantised = Predictor(model_dir, precision="int8") if predictor.model.has("int8") else None
    chunks = predictor.iter_root(files, step_size=step_size, progress=progress)
    training, deployed, int8 = _collect(chunks, predictor, run, model, quantised)
    report = _report(predictor, files, training, deployed, int8)
    write_json(Path(model_dir) / EQUIVALENCE, report)
    _equivalence_plot(predictor, training, deployed, report).savefig(Path(model_dir) / EQUIVALENCE_PLOT,
                                                                     formats=("png",))
    return report


def discriminant_definitions(classes, flavours, ntuple=None) -> dict[str, str]:
    """The discriminants of a model card as formulas of the class probabilities: ``b``, ``CvsL``, ``CvsB`` for
    jet-flavour classes (``flavours``: class → flavour, else the classes' usual flavours), else the one
    ``<first>vs<last>``: P(first) / (P(first) + P(last)) (``ntuple`` the config's schema)."""
    if not _by_flavour(ntuple):
        name, (first, last) = _first_vs_last_name(classes), (classes[0], classes[-1])
        return {name: f"P({first}) / (P({first}) + P({last}))"}
    mapping = {c: flavours.get(c) for c in classes}
    from .flavours import CLASS_FLAVOURS

    mapping = {c: f or CLASS_FLAVOURS.get(c) for c, f in mapping.items()}

    def total(flavour):
        return " + ".join(f"P({c})" for c in classes if mapping[c] == flavour) or "0"

    b, c, light = total("b"), total("c"), total("udsg")
    return {"b": b, "CvsL": f"({c}) / ({c} + {light})", "CvsB": f"({c}) / ({c} + {b})"}


# ---------------------------------------------------------------------------------------------------------
# private: the two sides on the same jets


def _check_files(files) -> list:
    """The check's ROOT files: paths, URLs (root://, fsspec) and glob patterns (:func:`~.rootio.input_files`)."""
    from .rootio import input_files

    if not files:
        raise ArgumentError("check: no ROOT files given")
    paths = input_files(files, "check", "ROOT files")
    for path in paths:
        if path.is_dir():
            raise ArgumentError(f"{path}: the check needs ROOT ntuples (the deployed side converts them), "
                                f"not a converted dataset")
    return paths


def _check_same_conversion(card, run):
    """Both sides are given the arrays that the card's conversion makes: refuse a card whose data config or
    normalisation is not the run's (the training side would have converted the jets otherwise)."""
    if card.card["data_config_hash"] != run.config.hash or card.normalisation != run.normalisation:
        raise DeployError(f"{card.path}: the model card's data config or normalisation differs from the run "
                          f"{run.path}'s: export again")


def _kinematics(config) -> list[str]:
    """The pT and η branches of the config's schema (``jet_pt``, ``jet_eta`` for DeepNTuples; ``fj_pt``,
    ``fj_eta``; ``jetPt_0``, ``jetEta_0`` for events) that are among its spectators: the kinematics of the
    int8 report's taggers."""
    ntuple = config.ntuple
    return [b for b in (ntuple.pt_branch, ntuple.eta_branch) if b in config.spectators]


def _collect(chunks, predictor, run, model, quantised=None):
    """Concatenate ``iter_root`` chunks into (training, deployed, int8): the training side's probabilities (the
    Keras ``model`` on each chunk, as ``deepjet-nb predict`` runs it); the deployed probabilities, pT and η
    (:func:`_kinematics`) and the truth: the flavour of each jet from the raw flags for a DeepNTuples config,
    else the class index of each entry; with a ``quantised`` Predictor, its probabilities on the same chunks
    (else None)."""
    from .flavours import CLASS_FLAVOURS, FLAVOUR_GROUPS, flavour_from_classes, truth_flavour
    from .predict import infer

    config = predictor.model.config
    names = list(config.spectators)
    empty = np.zeros((0, len(predictor.classes)), np.float32)
    probs, probs_keras, probs_int8 = [empty], [empty], [empty]
    spectators, labels = [np.zeros((0, len(names)), np.float32)], []
    for chunk, p in chunks:
        probs.append(p)
        probs_keras.append(infer(model, run, chunk))
        spectators.append(chunk["spectators"])
        labels.append(np.asarray(chunk["label"], dtype=np.int64))
        if quantised is not None and len(p):
            probs_int8.append(quantised.predict_array(chunk))
    spectators = np.concatenate(spectators)
    column = {n: spectators[:, i] for i, n in enumerate(names)}
    deployed = {"probs": np.concatenate(probs),
                **{key: column[name] for key, name in zip(("pt", "eta"), _kinematics(config))}}
    flags = [f for group in FLAVOUR_GROUPS.values() for f in group]
    if _by_flavour(config.ntuple) and all(f in column for f in flags):
        deployed["flavour"] = truth_flavour({f: column[f] for f in flags}, source="check jets")
    elif _by_flavour(config.ntuple):  # a layout of one's own whose classes are flavours: the class tells it
        label = np.concatenate(labels) if labels else np.zeros(0, np.int64)
        truth = {cls: label == i for i, cls in enumerate(config.class_names)}
        deployed["flavour"] = flavour_from_classes(truth, CLASS_FLAVOURS)
    else:
        deployed["label"] = np.concatenate(labels) if labels else np.zeros(0, np.int64)
    int8 = {"probs": np.concatenate(probs_int8)} if quantised is not None else None
    return {"probs": np.concatenate(probs_keras)}, deployed, int8


def _report(predictor, files, training, deployed, int8):
    n = len(deployed["probs"])
    if n == 0:
        raise DeployError(f"{', '.join(map(str, files))}: no jet passes the selection: nothing to compare")
    diff = np.abs(deployed["probs"].astype(np.float64) - training["probs"].astype(np.float64))
    classes = predictor.classes
    per_jet = diff.max(axis=1)
    disc_train = _discriminants(training["probs"], predictor)
    disc_deployed = _discriminants(deployed["probs"], predictor)
    report = {
        "jets": n,
        "files": [Path(p).name for p in files],
        "max_abs_diff": float(diff.max()),
        "tolerance": TOLERANCE,
        "passed": bool(diff.max() <= TOLERANCE),
        "fraction_above_1e-5": float(np.mean(per_jet > DIFF_LEVEL)),
        "classes": {c: {"max_abs_diff": float(diff[:, i].max()), "median_abs_diff": float(np.median(diff[:, i]))}
                    for i, c in enumerate(classes)},
        "discriminants": {d: {"max_abs_diff": float(np.max(np.abs(disc_deployed[d] - disc_train[d]))),
                              "median_abs_diff": float(np.median(np.abs(disc_deployed[d] - disc_train[d])))}
                          for d in disc_train},
        "training": "Keras model of the run as deepjet-nb predict runs it, on the converted jets",
        "deployed": f"Predictor ({predictor.path.name}, onnxruntime, {predictor.threads} thread) from the ntuples",
    }
    if int8 is not None:
        report["int8"] = _int8_report(predictor, files, deployed, int8)
    return report


def _int8_report(predictor, files, deployed, int8):
    """b efficiency at :data:`INT8_MISTAG` light mistag of the float32 and int8 models on the same jets (for
    classes that are not flavours: the first class's efficiency at that mistag of the last class)."""
    if "flavour" not in deployed:
        return _int8_report_first_vs_last(predictor, files, deployed, int8)
    from .evaluate import Tagger, roc
    from .flavours import FLAVOUR_CODES

    flavour = deployed["flavour"]
    beff = {}
    for name, probs in (("float32", deployed["probs"]), ("int8", int8["probs"])):
        tagger = Tagger(name, _discriminants(probs, predictor), flavour, deployed["pt"], deployed["eta"])
        try:
            beff[name] = float(roc(tagger, "b_vs_udsg").eff_at(INT8_MISTAG))
        except ArgumentError as err:
            raise DeployError(f"{', '.join(map(str, files))}: cannot measure the int8 b efficiency: {err}") from None
    change = beff["int8"] - beff["float32"]
    return {
        "file": INT8_ONNX,
        "max_abs_diff": float(np.abs(int8["probs"] - deployed["probs"]).max()),
        "beff_float32": beff["float32"], "beff_int8": beff["int8"], "beff_change": change,
        "mistag": INT8_MISTAG, "max_beff_change": INT8_MAX_BEFF_CHANGE,
        "accepted": bool(abs(change) <= INT8_MAX_BEFF_CHANGE),
        "b_jets": int(np.count_nonzero(flavour == FLAVOUR_CODES["b"])),
        "light_jets": int(np.count_nonzero(flavour == FLAVOUR_CODES["udsg"])),
    }


def _int8_report_first_vs_last(predictor, files, deployed, int8):
    """:func:`_int8_report` for classes that are not jet flavours (fat jets, events): efficiency of the first
    class (signal) at :data:`INT8_MISTAG` of the last (background) on P(first) / (P(first) + P(last))."""
    from .kernels.roc import eff_at_mistag, roc_curve

    classes, label = predictor.classes, deployed["label"]
    signal, background = classes[0], classes[-1]
    use = (label == 0) | (label == len(classes) - 1)
    is_signal = label[use] == 0
    n_signal, n_background = int(np.count_nonzero(is_signal)), int(np.count_nonzero(~is_signal))
    if not n_signal or not n_background:
        raise DeployError(f"{', '.join(map(str, files))}: cannot measure the int8 {signal} efficiency: the check "
                          f"entries hold {n_signal} {signal} and {n_background} {background} entries; both are "
                          f"needed")
    (name,) = discriminant_definitions(classes, {}, predictor.model.config.ntuple)
    eff = {}
    for precision, probs in (("float32", deployed["probs"]), ("int8", int8["probs"])):
        sig_eff, bkg_eff, _ = roc_curve(_discriminants(probs, predictor)[name][use], is_signal)
        eff[precision] = float(eff_at_mistag(sig_eff, bkg_eff, INT8_MISTAG))
    change = eff["int8"] - eff["float32"]
    return {
        "file": INT8_ONNX,
        "max_abs_diff": float(np.abs(int8["probs"] - deployed["probs"]).max()),
        "discriminant": name, "signal": signal, "background": background,
        "eff_float32": eff["float32"], "eff_int8": eff["int8"], "eff_change": change,
        "mistag": INT8_MISTAG, "max_eff_change": INT8_MAX_BEFF_CHANGE,
        "accepted": bool(abs(change) <= INT8_MAX_BEFF_CHANGE),
        "signal_entries": n_signal, "background_entries": n_background,
    }


def _by_flavour(ntuple) -> bool:
    """Whether the classes of a config of schema ``ntuple`` are jet flavours (DeepNTuples; None: an older card,
    of DeepNTuples too) rather than fat-jet or event classes."""
    from .schema import DEEPNTUPLES

    return ntuple is None or ntuple.name == DEEPNTUPLES.name or ntuple.flavour_classes


def _first_vs_last_name(classes) -> str:
    """Name of the first-vs-last discriminant of classes that are not flavours, e.g. ``TopvsQCD``."""
    return f"{classes[0]}vs{classes[-1]}"


def _discriminants(probs, predictor):
    """The card's discriminants of probabilities ``probs`` (n, n_classes): b, CvsL, CvsB for flavour classes
    (:func:`deepjet_nb.flavours.discriminants`), else P(first) / (P(first) + P(last)), 0 where both are 0."""
    from .flavours import discriminants

    classes = predictor.classes
    if not _by_flavour(predictor.model.config.ntuple):
        first, last = probs[:, 0].astype(np.float64), probs[:, len(classes) - 1].astype(np.float64)
        total = first + last
        return {_first_vs_last_name(classes): np.divide(first, total, out=np.zeros_like(first), where=total > 0)}
    return discriminants({c: probs[:, i] for i, c in enumerate(classes)},
                         predictor.model.class_flavours or None)


def _equivalence_plot(predictor, training, deployed, report):
    from .plots import EquivalencePlot

    plot = EquivalencePlot(title=f"{predictor.model.card.get('model')}, {report['jets']} "
                                 f"{'jets' if _by_flavour(predictor.model.config.ntuple) else 'entries'}")
    train, dep = _discriminants(training["probs"], predictor), _discriminants(deployed["probs"], predictor)
    for name in (("b", "CvsL") if "b" in train else tuple(train)):
        plot.add(name, train[name], dep[name])
    return plot


