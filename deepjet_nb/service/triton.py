"""The exported model laid out for NVIDIA Triton (KServe's ONNX runtime, and SONIC's server).

Triton wants a model repository of ``<name>/config.pbtxt`` and ``<name>/<version>/model.onnx``; the exported
model directory keeps ``model.onnx`` at its top, so :func:`triton_layout` writes that repository beside it
(the ONNX file copied, not changed)::

    REPO/<name>/config.pbtxt       platform onnxruntime_onnx, inputs and output from the model card,
                                   dynamic batching, one CPU instance
    REPO/<name>/labels.txt         the classes, one a line (Triton's classification extension)
    REPO/<name>/model.json         the model card, for whoever converts the inputs
    REPO/<name>/1/model.onnx       the network

Triton serves the converted inputs only: turning raw DeepNTuples branches into them is this package's
Python conversion (``deepjet-nb serve`` does it; in Triton it would need a Python-backend ensemble, which is
not provided).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from ..predictor import CARD, MODEL_ONNX, OUTPUT, open_model
from . import models as _models

__all__ = ["triton_config", "triton_layout"]


def triton_config(model_dir, name: str | None = None, *, max_batch_size: int = 1024,
                  max_queue_delay_us: int = 2000) -> str:
    """The ``config.pbtxt`` (protobuf text format of Triton's ``ModelConfig``) of an exported model."""
    model = open_model(model_dir)
    name = _models.check_name(name or Path(model_dir).name)
    lines = [f'name: "{name}"', 'platform: "onnxruntime_onnx"', f"max_batch_size: {int(max_batch_size)}"]
    for i in model.card["onnx"]["inputs"]:
        dims = ", ".join(str(d) for d in i["shape"][1:])
        lines.append(f'input {{\n  name: "{i["name"]}"\n  data_type: TYPE_FP32\n  dims: [ {dims} ]\n}}')
    lines.append(f'output {{\n  name: "{OUTPUT}"\n  data_type: TYPE_FP32\n  dims: [ {len(model.classes)} ]\n'
                 f'  label_filename: "labels.txt"\n}}')
    lines.append(f"dynamic_batching {{\n  max_queue_delay_microseconds: {int(max_queue_delay_us)}\n}}")
    lines.append("instance_group [\n  {\n    count: 1\n    kind: KIND_CPU\n  }\n]")
    return "\n".join(lines) + "\n"


def triton_layout(model_dir, repository, name: str | None = None, **options) -> Path:
    """Write the Triton model repository entry of the exported model ``model_dir`` under ``repository``
    (``repository/<name>/...``, replaced whole); returns that directory."""
    model = open_model(model_dir)
    name = _models.check_name(name or Path(model_dir).name)
    target = Path(repository) / name
    staging = Path(repository) / f".{name}.staging"
    shutil.rmtree(staging, ignore_errors=True)
    (staging / "1").mkdir(parents=True)
    (staging / "config.pbtxt").write_text(triton_config(model_dir, name, **options))
    (staging / "labels.txt").write_text("\n".join(model.classes) + "\n")
    shutil.copy2(model.file(CARD), staging / CARD)
    shutil.copy2(model.file(MODEL_ONNX), staging / "1" / MODEL_ONNX)
    if target.exists():
        aside = Path(repository) / f".{name}.old"
        shutil.rmtree(aside, ignore_errors=True)
        os.rename(target, aside)
        os.rename(staging, target)
        shutil.rmtree(aside, ignore_errors=True)
    else:
        os.rename(staging, target)
    return target
