"""Model builders: shapes from a manifest, learning, parameter counts, save/load, registry errors."""

import json
import subprocess
import sys

import numpy as np
import pytest

from deepjet_nb.errors import ArgumentError, ConfigError
from deepjet_nb.models import MODEL_NAMES, build_model

# The CMS input shapes of docs/reference.md §4.
CMS_DEEPJET = {"classes": ["B", "BB", "LeptB", "C", "UDS", "G"],
               "inputs": {"global": {"shape": [15]}, "cpf": {"shape": [25, 16]}, "npf": {"shape": [25, 6]},
                          "sv": {"shape": [4, 12]}}}
CMS_DEEPCSV = {"classes": ["B", "BB", "C", "UDSG"],
               "inputs": {"global": {"shape": [12]}, "tracks": {"shape": [6, 7]}, "etarel": {"shape": [4]},
                          "vertex": {"shape": [8]}}}
DATASET_OF = {"deepcsv": "synthetic_deepcsv", "deepjet": "synthetic_deepjet", "pcnn": "synthetic_deepjet",
              "dense": "synthetic_deepcsv"}


def _sample(path, n=128):
    from deepjet_nb.dataset import open_dataset

    ds = open_dataset(path)
    arrays = ds.load()
    x = {g: arrays[g][:n] for g in ds.inputs}
    return ds.manifest, x, arrays["label"][:n].astype("int32")


@pytest.mark.slow
@pytest.mark.parametrize("name", MODEL_NAMES)
def test_model_builds_from_manifest_and_its_loss_falls(name, request):
    import keras

    manifest, x, y = _sample(request.getfixturevalue(DATASET_OF[name]))
    keras.utils.set_random_seed(1)
    model = build_model(name, manifest)
    assert [t.name for t in model.inputs] == list(manifest["inputs"])
    assert model.output.shape[-1] == len(manifest["classes"])
    model.compile(optimizer=keras.optimizers.Adam(3e-3), loss="sparse_categorical_crossentropy")
    # Training-mode loss: with a few dozen steps the batch-norm moving averages are not settled yet.
    loss = model.fit(x, y, batch_size=32, epochs=8, shuffle=False, verbose=0).history["loss"]
    assert loss[-1] < 0.8 * loss[0], loss


def test_parameter_counts_follow_the_cms_architectures():
    # DeepJet: ~266k (docs/reference.md §4); DeepCSV: 66 -> 5 x Dense(100) -> 4 = 47,504 exactly.
    assert 260_000 < build_model("deepjet", CMS_DEEPJET).count_params() < 272_000
    assert build_model("deepcsv", CMS_DEEPCSV).count_params() == 47_504
    assert build_model("pcnn", CMS_DEEPJET).count_params() > 0


def test_pcnn_masks_padding_so_its_output_does_not_depend_on_the_list_length():
    # the same weights on lists of 8 and of 12 slots, 3 real objects each: identical probabilities; without the
    # mask, global average pooling would divide by 8 and by 12
    def manifest(n):
        return {"classes": ["top", "qcd"], "inputs": {"glob": {"shape": [2]}, "pf": {"shape": [n, 4]}},
                "config": {"inputs": {"pf": {"pad_value": 0.0}}}}

    short, long = build_model("pcnn", manifest(8)), build_model("pcnn", manifest(12))
    long.set_weights(short.get_weights())
    rng = np.random.default_rng(2)
    glob = rng.normal(size=(5, 2)).astype("float32")
    real = rng.normal(size=(5, 3, 4)).astype("float32")
    padded = [np.concatenate([real, np.zeros((5, n - 3, 4), "float32")], axis=1) for n in (8, 12)]
    p_short = short.predict({"glob": glob, "pf": padded[0]}, verbose=0)
    p_long = long.predict({"glob": glob, "pf": padded[1]}, verbose=0)
    np.testing.assert_allclose(p_short, p_long, rtol=1e-5, atol=1e-6)
    # and the real objects do matter
    moved = {"glob": glob, "pf": padded[0] + np.pad(np.ones((5, 3, 4), "float32"), ((0, 0), (0, 5), (0, 0)))}
    assert np.abs(short.predict(moved, verbose=0) - p_short).max() > 1e-4


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_saved_model_loads_with_identical_predictions(name, request, tmp_path):
    import keras

    manifest, x, _ = _sample(request.getfixturevalue(DATASET_OF[name]), n=32)
    model = build_model(name, manifest)
    path = tmp_path / f"{name}.keras"
    model.save(path)
    loaded = keras.models.load_model(path)  # no custom_objects: every layer is registered or stock
    np.testing.assert_array_equal(model.predict(x, verbose=0), loaded.predict(x, verbose=0))


def test_unknown_model_is_refused_with_the_known_names():
    with pytest.raises(ArgumentError, match="unknown model 'resnet'.*deepjet"):
        build_model("resnet", CMS_DEEPJET)


def test_unknown_hyper_parameter_names_the_model():
    with pytest.raises(ArgumentError, match="deepcsv"):
        build_model("deepcsv", CMS_DEEPCSV, widht=3)


def test_deepjet_refuses_a_manifest_without_three_object_lists():
    with pytest.raises(ConfigError, match="three object lists"):
        build_model("deepjet", CMS_DEEPCSV)


def test_manifest_without_inputs_is_refused():
    with pytest.raises(ConfigError, match="inputs"):
        build_model("deepcsv", {"classes": ["B"]})


def test_registry_and_train_cli_do_not_import_tensorflow():
    code = ("import sys, deepjet_nb.models, deepjet_nb.train; "
            "print(json.dumps([m for m in ('tensorflow', 'keras') if m in sys.modules]))")
    out = subprocess.run([sys.executable, "-c", "import json; " + code], capture_output=True, text=True,
                         check=True)
    assert json.loads(out.stdout.strip().splitlines()[-1]) == []
