"""``deepjet-nb init``: a tagger project of one's own, outside the package, started from a built-in template.

::

    DIR/README.md        what the project is and the commands that run it
    DIR/data.yaml        the data config (a copy of the template's shipped config, to edit)
    DIR/models.py        build_tagger(manifest, **hyper): the template's builder, copied and commented
    DIR/tagger.ipynb     generate samples → convert → train (live dashboard) → evaluate → export, with these

>>> from deepjet_nb.project import init_project
>>> init_project("mytagger", template="deepjet")          # doctest: +SKIP

The notebook runs top to bottom on samples the package generates, without edits; the model is named by the
import path ``models.py:build_tagger``, so the same project trains from the command line
(``deepjet-nb train --model models.py:build_tagger``) and in scans. Templates:

=========  ===============  ================================================  ==================
template   data config      samples                                           evaluation
=========  ===============  ================================================  ==================
deepjet    deepjet          ttbar, qcd (AK4 jets)                             b, c tagging ROCs
deepcsv    deepcsv          ttbar, qcd                                        b, c tagging ROCs
dense      deepcsv          ttbar, qcd (the dense network on the CSV inputs)  b, c tagging ROCs
pcnn       fatjet           zprime_tt, wprime_wz, qcd_boosted (AK8 jets)      top / W vs QCD
=========  ===============  ================================================  ==================
"""

from __future__ import annotations

import json
import os
import re
import string
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from ._atomic import atomic_path, write_text_atomic
from .errors import ArgumentError

__all__ = ["TEMPLATES", "Template", "init_project", "builder_source", "register_cli"]

BUILDER = "build_tagger"  # the builder's name in every project's models.py
MODELS_FILE = "models.py"
CONFIG_FILE = "data.yaml"
NOTEBOOK = "tagger.ipynb"
README = "README.md"


@dataclass(frozen=True)
class Template:
    """A project template: the built-in ``model`` whose builder is copied, the shipped data ``config``, the
    generated ``processes`` it trains on, and the ``evaluation`` ("flavour" or "boosted")."""

    model: str
    config: str
    processes: tuple[str, ...]
    evaluation: str


TEMPLATES = {
    "deepjet": Template("deepjet", "deepjet", ("ttbar", "qcd"), "flavour"),
    "deepcsv": Template("deepcsv", "deepcsv", ("ttbar", "qcd"), "flavour"),
    "dense": Template("dense", "deepcsv", ("ttbar", "qcd"), "flavour"),
    "pcnn": Template("pcnn", "fatjet", ("zprime_tt", "wprime_wz", "qcd_boosted"), "boosted"),
}


def init_project(directory: str | os.PathLike, template: str = "deepjet", *, force: bool = False) -> Path:
    """Write a project (module docstring) into ``directory``, made if needed; returns its path.

    Raises :class:`ArgumentError` for an unknown template, and when ``directory`` already holds one of the
    project's files (unless ``force``: then they are replaced). Every file is written atomically.
    """
    if template not in TEMPLATES:
        raise ArgumentError(f"unknown template {template!r}", key=template, choices=TEMPLATES)
    chosen = TEMPLATES[template]
    out = Path(directory)
    files = {README: _readme(out, template, chosen), CONFIG_FILE: _config_text(chosen),
             MODELS_FILE: builder_source(template), NOTEBOOK: _notebook(template, chosen)}
    existing = sorted(name for name in files if (out / name).exists())
    if existing and not force:
        raise ArgumentError(f"{out}: already holds {existing}; choose another directory or pass --force to "
                            f"replace them", path=out)
    out.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        write_text_atomic(out / name, text)
    with atomic_path(out / "runs" / ".gitignore") as tmp:  # outputs stay out of the project's history
        tmp.write_text("*\n")
    return out


def builder_source(template: str) -> str:
    """The source of the built-in ``template``'s builder module as a stand-alone ``models.py``: imports made
    absolute, the builder renamed :data:`BUILDER`, the model named ``my_tagger``, the recipe attached, and a
    header saying what to change."""
    from .models import BUILTIN_SOURCES
    from .train import RECIPES

    model = TEMPLATES[template].model
    module = BUILTIN_SOURCES[model]
    text = resources.files(module.rsplit(".", 1)[0]).joinpath(module.rsplit(".", 1)[1] + ".py").read_text()
    text = re.sub(r"^from \.(\w+) import", r"from deepjet_nb.models.\1 import", text, flags=re.M)
    text = re.sub(r"^from \.\.(\w+) import", r"from deepjet_nb.\1 import", text, flags=re.M)
    text = text.replace(f"def build_{model}(", f"def {BUILDER}(").replace(f'name="{model}")', 'name="my_tagger")')
    recipe = {k: v for k, v in RECIPES[model].items() if v is not None}
    return (_template_text("models_header.txt").replace("$model", model) + text.rstrip() + "\n\n\n"
            f"# The training recipe the Trainer starts from (its arguments win): the built-in {model}'s.\n"
            f"{BUILDER}.recipe = {recipe!r}\n")


# -- command line ----------------------------------------------------------------------------------------------


def register_cli(subparsers) -> None:
    """Add ``deepjet-nb init``."""
    p = subparsers.add_parser("init", help="start a tagger project of your own from a template",
                              description="Write a project into DIR: data.yaml (data config), models.py (a "
                                          "builder copied from the template), tagger.ipynb (samples -> "
                                          "convert -> train -> evaluate -> export) and a README with the "
                                          "commands. It runs as written on generated samples.")
    p.add_argument("directory", metavar="DIR", help="project directory (created)")
    p.add_argument("--from", dest="template", choices=list(TEMPLATES), default="deepjet",
                   help="the built-in model to start from (default deepjet)")
    p.add_argument("--force", action="store_true", help="replace the project's files if DIR holds them")
    p.set_defaults(func=_cli)


def _cli(args) -> int:
    out = init_project(args.directory, args.template, force=args.force)
    print(f"deepjet-nb init: {args.template} project in {out}: {README}, {CONFIG_FILE}, {MODELS_FILE}, {NOTEBOOK}")
    print(f"next: cd {out} && jupyter lab {NOTEBOOK}   (or follow {README})")
    return 0


# -- private -------------------------------------------------------------------------------------------------


def _template_text(name: str) -> str:
    return resources.files("deepjet_nb").joinpath("templates", "project", name).read_text()


def _config_text(chosen: Template) -> str:
    shipped = resources.files("deepjet_nb").joinpath("configs", f"{chosen.config}.yaml").read_text()
    return (f"# Data config of this project, copied from deepjet-nb's shipped {chosen.config!r} config: edit the\n"
            f"# feature groups, classes, selection and preprocessing here (docs/formats.md of deepjet-nb).\n"
            + shipped)


def _values(template: str, chosen: Template) -> dict:
    return {"template": template, "model": f"{MODELS_FILE}:{BUILDER}", "config": CONFIG_FILE,
            "processes": json.dumps(list(chosen.processes)), "evaluation": chosen.evaluation,
            "data_config": chosen.config, "builtin": chosen.model}


def _readme(out: Path, template: str, chosen: Template) -> str:
    values = {**_values(template, chosen), "name": out.resolve().name,
              "generate": "\n".join(f"deepjet-nb generate --process {p} --events 1500 --seed {i + 1} "
                                    f"--out runs/samples/{p}.root" for i, p in enumerate(chosen.processes)),
              "test_generate": "\n".join(f"deepjet-nb generate --process {p} --events 750 --seed {i + 51} "
                                         f"--out runs/samples/test_{p}.root" for i, p in enumerate(chosen.processes)),
              "samples": " ".join(f"runs/samples/{p}.root" for p in chosen.processes),
              "test_samples": " ".join(f"runs/samples/test_{p}.root" for p in chosen.processes)}
    return string.Template(_template_text("README.md")).safe_substitute(values)


def _notebook(template: str, chosen: Template) -> str:
    text = _template_text("tagger.ipynb")
    values = {k: json.dumps(v)[1:-1] for k, v in _values(template, chosen).items()}  # escaped inside JSON strings
    text = string.Template(text).safe_substitute(values)
    json.loads(text)  # a template that no longer gives valid JSON is a bug here, not a user's problem
    return text
