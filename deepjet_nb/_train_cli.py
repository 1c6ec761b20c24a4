"""``deepjet-nb train``: the command line of :mod:`deepjet_nb.train`.

Exit codes: 0 when training ended (all epochs, early stopping, Stop), 1 for an error (one line on stderr), 75
(EX_TEMPFAIL) when it stopped because a credential could not be renewed (docs/custom_models.md): renew it and
run the same command with ``--resume``.
"""

from __future__ import annotations

import argparse
import json

from .batches import WEIGHT_USES
from .errors import ArgumentError
from .models import MODEL_NAMES
from .train import CREDENTIALS_STOP, VAL_AUC, VAL_BEFF, Trainer, _fmt

__all__ = ["register_cli"]


def register_cli(subparsers) -> None:
    """Add ``deepjet-nb train``."""
    p = subparsers.add_parser("train", help="train a model on a converted dataset into a run directory",
                              description="Train MODEL on a converted dataset; writes a run directory "
                                          "(configs, history.csv, checkpoints, model.keras, logs).")
    p.add_argument("--model", help=f"model: a built-in architecture ({', '.join(MODEL_NAMES)}), or a builder of "
                                   f"your own as package.module:function or path/to/file.py:function "
                                   f"(docs/custom_models.md); with --resume, default: the run's")
    p.add_argument("--hyper", action="append", default=[], metavar="KEY=VALUE",
                   help="a keyword argument of the model builder (VALUE read as JSON, else as text); repeatable")
    p.add_argument("--loss", help="loss: a Keras name or package.module:name / file.py:name (default: weighted "
                                  "sparse categorical cross-entropy)")
    p.add_argument("--metric", action="append", default=[], dest="metrics",
                   help="an extra metric: a Keras name or an import path; repeatable")
    p.add_argument("--optimizer", help="optimizer: a Keras name (adamw, sgd, ...) or an import path (default: Adam)")
    p.add_argument("--callback", action="append", default=[], dest="callbacks",
                   help="a Keras callback class as package.module:Class or file.py:Class; repeatable")
    p.add_argument("--credentials", choices=("auto", "on", "off"), default="auto",
                   help="watch and renew the Kerberos ticket / bearer token during training (auto: when the "
                        "inputs are root:// URLs)")
    p.add_argument("--allow-model-change", action="store_true",
                   help="with --resume: continue although the model's source file changed since the run began")
    p.add_argument("--data", required=True, help="converted dataset directory (deepjet-nb convert)")
    p.add_argument("--out", required=True, help="run directory to create (or to continue with --resume)")
    p.add_argument("--epochs", type=int, help="number of epochs (default: the model's recipe)")
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its last checkpoint")
    p.add_argument("--batch-size", type=int, help="jets per batch (default: the model's recipe)")
    p.add_argument("--lr", type=float, help="initial learning rate (default: the model's recipe)")
    p.add_argument("--seed", type=int, help="random seed (default 0)")
    p.add_argument("--val-fraction", type=float,
                   help="share of each input file's jets used for validation, seeded (default 0.2)")
    p.add_argument("--train-fraction", type=float,
                   help="seeded share of the training jets used, validation unchanged (learning curves; default 1)")
    p.add_argument("--weights", choices=WEIGHT_USES,
                   help="how training uses the jets' pT-eta weights: loss (per-jet loss weights, the default), "
                        "resample or replacement (drawn from a dataset converted with weighting.apply: weight)")
    p.add_argument("--patience", type=int, help="early-stopping patience in epochs (default 10)")
    p.add_argument("--in-memory", action="store_true", default=None, help="load all shards into memory")
    p.add_argument("--deterministic", action=argparse.BooleanOptionalAction, default=None,
                   help="TensorFlow's op determinism: the same seed gives bit-identical weights and predictions on "
                        "the same machine (default: on; docs/reproducibility.md)")
    p.set_defaults(func=_cli_train)


def _cli_train(args) -> int:
    if not args.model and not args.resume:
        raise ArgumentError("--model is required (unless --resume continues a run)")
    options = {"val_fraction": args.val_fraction, "train_fraction": args.train_fraction, "weights": args.weights,
               "patience": args.patience, "in_memory": args.in_memory,
               "deterministic": args.deterministic, "hyper": _hyper_options(args.hyper) or None}
    credentials = {"auto": "auto", "on": True, "off": False}[args.credentials]
    trainer = Trainer(args.model, args.data, args.out, resume=args.resume, dashboard="text", epochs=args.epochs,
                      batch_size=args.batch_size, lr=args.lr, seed=args.seed, loss=args.loss,
                      metrics=args.metrics or None, optimizer=args.optimizer, callbacks=args.callbacks or None,
                      credentials=credentials, allow_model_change=args.allow_model_change,
                      **{k: v for k, v in options.items() if v is not None})
    history = trainer.fit()
    last = history[-1] if history else {}
    summary = " ".join(f"{k}={_fmt(last[k])}" for k in ("val_loss", VAL_AUC, VAL_BEFF) if k in last)
    print(f"deepjet-nb train: {len(history)} epochs in {args.out} ({trainer.stop_reason or 'finished'}) {summary}")
    # EX_TEMPFAIL: a batch system (or a wrapper script) may renew the credential and resubmit with --resume
    return 75 if trainer.stop_reason == CREDENTIALS_STOP else 0


def _hyper_options(items: list[str]) -> dict:
    """``["units=[64,32]", "name=x"]`` → ``{"units": [64, 32], "name": "x"}`` (JSON values, else text)."""
    hyper = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.isidentifier():
            raise ArgumentError(f"--hyper {item!r}: write KEY=VALUE, e.g. --hyper dropout=0.2")
        try:
            hyper[key] = json.loads(value)
        except ValueError:
            hyper[key] = value
    return hyper
