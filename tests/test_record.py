"""record(): the file keeps every digit; a notebook shows the numbers readably."""

import json

from IPython.lib.pretty import pretty

from deepjet_nb.record import read, record


def test_recorded_numbers_show_four_digits_and_nesting_but_the_file_keeps_every_digit(tmp_path):
    numbers = {"auc": 0.91234567891234, "epochs": 8, "lr": [0.001, 0.0005],
               "eff": {"b": {"0.01": 0.6543210987, "0.1": None}}, "stop_reason": "finished"}
    shown = record(numbers, out_dir=tmp_path)
    assert shown == numbers and read(tmp_path) == numbers
    assert json.loads((tmp_path / "summary.json").read_text())["auc"] == 0.91234567891234
    assert pretty(shown) == ("auc: 0.9123\nepochs: 8\nlr: [0.001, 0.0005]\neff:\n    b:\n        0.01: 0.6543\n"
                             "        0.1: None\nstop_reason: finished")
