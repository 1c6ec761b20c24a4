"""Text tables of metrics.json dictionaries: values with their statistical errors rounded to one significant
digit (:mod:`deepjet_nb.performance`)."""

from __future__ import annotations

import math

import numpy as np


def summary_table(metrics: dict) -> str:
    """A fixed-width text table of metrics: AUC and efficiencies (%) at each mistag of the entries (e.g. 10 %,
    1 %, 0.1 %) per task, each with its statistical error where ``metrics`` has one, as ``value ± error`` with
    the error rounded to one significant digit and the value to the same decimal; then the paired differences
    (``a − b``) and the seed spreads (standard deviation over training seeds) that ``metrics`` holds, in the
    same columns."""
    keys = next((list(m["eff_at_mistag"]) for tasks in metrics.values() for m in tasks.values()), [])
    columns = (("AUC", None), *((f"eff@{float(k) * 100:g}%", k) for k in keys))
    rows, differences, spreads = [], {}, []
    for tagger, tasks in metrics.items():
        for task, m in tasks.items():
            rows.append((tagger, task, _cells(m, columns, "_err", sign=False)))
            for other, d in m.get("minus", {}).items():
                rows_of_pair = differences.setdefault((tagger, other), [])
                rows_of_pair.append((f"{tagger} − {other}", task, _cells(d, columns, "_err", sign=True)))
                if "seed_std_of" in d:  # the training's error beside the test sample's
                    spread = {"auc": d["auc_seed_std"], "eff_at_mistag": d["eff_at_mistag_seed_std"]}
                    rows_of_pair.append((f"  seeds: {'+'.join(d['seed_std_of'])}", task,
                                         _cells(spread, columns, None, sign=False, digits_of=d)))
            if "n_seeds" in m:
                spreads.append((f"{tagger} ({m['n_seeds']} seeds)", task,
                                _cells({"auc": m["auc_seed_std"], "eff_at_mistag": m["eff_at_mistag_seed_std"]},
                                       columns, None, sign=False, digits_of=m)))
    difference_rows = [row for pair in differences.values() for row in pair]
    width = max([24] + [len(name) + 1 for name, _, _ in (*rows, *difference_rows, *spreads)])
    header = f"{'tagger':<{width}} {'task':<10} " + " ".join(f"{name:>15}" for name, _ in columns)
    lines = [header, *_lines(rows, width)]
    if differences:
        lines += ["", "paired differences (error: paired bootstrap over the same test jets; \"seeds:\" rows: the seed "
                  "spread of the difference, from the taggers named)", *_lines(difference_rows, width)]
    if spreads:
        lines += ["", "seed spread (standard deviation over training seeds)", *_lines(spreads, width)]
    return "\n".join(lines)


def _lines(rows, width):
    return [f"{name:<{width}} {task:<10} " + " ".join(f"{c:>15}" for c in cells) for name, task, cells in rows]


def _cells(m, columns, err_suffix, *, sign, digits_of=None):
    """Cells of one row: ``value ± error`` (``err_suffix``), or the bare values (``None``) with as many decimals
    as the statistical errors of ``digits_of`` give."""
    cells = []
    for _, key in columns:
        scale = 1.0 if key is None else 100.0
        value = m.get("auc") if key is None else m["eff_at_mistag"].get(key)
        if err_suffix is None:
            ref = digits_of.get("auc_err") if key is None else digits_of.get("eff_at_mistag_err", {}).get(key)
            cells.append(format_value(value, None, scale, decimals=_decimals(ref, scale) + 1))
            continue
        err = m.get(f"auc{err_suffix}") if key is None else m.get(f"eff_at_mistag{err_suffix}", {}).get(key)
        cells.append(format_value(value, err, scale, sign=sign))
    return cells


def format_value(value, err=None, scale: float = 1.0, *, sign: bool = False, decimals: int | None = None) -> str:
    """``value ± err`` (both times ``scale``) with the error rounded to one significant digit and the value to
    the same decimal place (``0.9397, 0.0012`` → ``"0.940 ± 0.001"``; ``0.452, 0.013`` at scale 100 →
    ``"45 ± 1"``); without ``err`` the value with ``decimals`` (default 4 for the AUC scale 1, else 1).
    ``sign`` writes a leading + for positive values (differences). ``"n/a"`` for a missing value."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    plus = "+" if sign else ""
    if err is None or not np.isfinite(err):
        digits = decimals if decimals is not None else (4 if scale == 1.0 else 1)
        return f"{value * scale:{plus}.{digits}f}"
    digits = _decimals(err, scale)
    return f"{value * scale:{plus}.{digits}f} ± {err * scale:.{digits}f}"


def _decimals(err, scale) -> int:
    """Decimal places that leave one significant digit of ``err * scale`` after rounding (0.96 → 1 → 0)."""
    if err is None or not np.isfinite(err) or err <= 0:
        return 4 if scale == 1.0 else 1
    digits = max(0, -int(math.floor(math.log10(err * scale))))
    return max(0, digits - 1) if round(err * scale, digits) >= 10.0 ** (1 - digits) else digits


def paired_verdict(metrics: dict, a: str, b: str, *, task: str = "b_vs_udsg", mistag: str = "0.01",
                   sigmas: float = 2.0) -> str:
    """One sentence on the paired difference a − b at ``mistag`` (``metrics[a][task]["minus"][b]``, made by
    ``differences=[(a, b)]``): its value and paired error in percentage points, and which tagger is better when
    the difference exceeds ``sigmas`` errors, else that the two do not differ significantly. Only what the
    numbers support, e.g. ``"deepjet − deepcsv: +7.5 ± 1.2 percentage points (paired error): deepjet is better
    than deepcsv."``"""
    diff = metrics[a][task]["minus"][b]
    value, error = 100 * diff["eff_at_mistag"][mistag], 100 * diff["eff_at_mistag_err"][mistag]
    if abs(value) > sigmas * error:
        better, worse = (a, b) if value > 0 else (b, a)
        verdict = f"{better} is better than {worse}"
    else:
        verdict = f"{a} and {b} do not differ significantly here"
    return f"{a} − {b}: {value:+.1f} ± {error:.1f} percentage points (paired error): {verdict}."
