"""The model service: ``deepjet-nb serve`` (MLServer, OIP v2 over REST and gRPC, TFaaS's routes), tested as
its users reach it: NVIDIA's tritonclient (HTTP and gRPC, as a SONIC-style client), plain HTTP (TFaaS
requests, malformed ones, uploads, tokens), :class:`deepjet_nb.service.Client`, schemathesis on the OpenAPI,
and concurrent upload/delete/infer.

One server for the module (its own process group, 127.0.0.1, free ports), serving copies of untrained DeepCSV
and DeepJet exports (fixtures/models.py); this process never imports MLServer (its gRPC messages share
names with tritonclient's).
"""

import io
import json
import shutil
import subprocess
import sys
import tarfile
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import requests
import uproot

from deepjet_nb.convert import input_branches
from deepjet_nb.deploy import Predictor
from deepjet_nb.errors import ServiceError
from deepjet_nb.service import Client, ServerProcess
from deepjet_nb.service import models as served_models

ROOT = Path(__file__).resolve().parents[1]
TOKEN = "test-token-0123456789"
MAX_UPLOAD_MB = 8


@pytest.fixture(scope="module")
def folder(exported_models, tmp_path_factory):
    out = tmp_path_factory.mktemp("service") / "models"
    out.mkdir()
    for name, path in exported_models.items():
        shutil.copytree(path, out / name)
    return out


@pytest.fixture(scope="module")
def server(folder):
    with ServerProcess(folder, token=TOKEN, options=["--max-upload-mb", str(MAX_UPLOAD_MB),
                                                     "--max-batch-size", "32"]) as process:  # batching on: tested too
        yield process


@pytest.fixture(scope="module")
def predictors(exported_models):
    return {name: Predictor(path) for name, path in exported_models.items()}


@pytest.fixture(scope="module")
def raw_jets(ttbar_sample, exported_models):
    """The first 5 jets of the ttbar sample as raw branches (branch → value or list), for the DeepJet model."""
    scalars, jagged = input_branches(Predictor(exported_models["deepjet"]).model.config)
    with uproot.open(ttbar_sample) as f:
        arrays = f["deepntuplizer/tree"].arrays(list(scalars + jagged), entry_stop=5, library="ak")
    return [{b: arrays[b][i].tolist() for b in scalars + jagged} for i in range(5)]


def random_inputs(predictor, n, seed=0):
    rng = np.random.default_rng(seed)
    return {g: rng.normal(size=(n, *s)).astype(np.float32) for g, s in predictor.shapes.items()}


def auth():
    return {"Authorization": f"Bearer {TOKEN}"}


def local_raw(predictor, jets):
    from deepjet_nb.convert import convert_jets

    branches = {b: [j[b] for j in jets] for b in jets[0]}
    return predictor.predict_array(convert_jets(branches, predictor.model.config, predictor.model.normalisation))


# --- the server process ----------------------------------------------------------------------------------


def test_server_process_never_imports_tensorflow(server):
    status = requests.get(server.url + "/status", timeout=10).json()
    assert status["status"] == "ok" and status["models"] == ["deepcsv", "deepjet"]
    assert status["tensorflow_imported"] is False and status["onnxruntime_imported"] is True


def test_serve_help_names_the_options():
    out = subprocess.run([sys.executable, "-m", "deepjet_nb", "serve", "--help"], capture_output=True, text=True,
                         timeout=60, check=True).stdout
    for option in ("--models", "--http-port", "--grpc-port", "--token-file", "--workers", "--max-batch-size",
                   "--triton-layout"):
        assert option in out


def test_serve_refuses_a_missing_models_folder_in_one_line(tmp_path):
    out = subprocess.run([sys.executable, "-m", "deepjet_nb", "serve", "--models", str(tmp_path / "nope")],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 1 and "nope: no such directory" in out.stderr and len(out.stderr.splitlines()) == 1


# --- OIP v2 through NVIDIA's tritonclient ----------------------------------------------------------------


def test_tritonclient_http_health_metadata_infer_and_repository(server, predictors):
    import tritonclient.http as httpclient
    from tritonclient.utils import InferenceServerException

    client = httpclient.InferenceServerClient(server.url.removeprefix("http://"))
    assert client.is_server_live() and client.is_server_ready() and client.is_model_ready("deepjet")
    assert client.get_server_metadata()["name"] == "deepjet-nb"
    meta = client.get_model_metadata("deepjet")
    predictor = predictors["deepjet"]
    assert [(i["name"], i["datatype"], i["shape"]) for i in meta["inputs"]] == [
        (g, "FP32", [-1, *s]) for g, s in predictor.shapes.items()]
    assert meta["outputs"][0]["name"] == "probabilities" and meta["outputs"][0]["shape"] == [-1, 6]
    assert meta["outputs"][0]["parameters"]["classes"] == "B,BB,LeptB,C,UDS,G"
    x = random_inputs(predictor, 7)
    for binary in (True, False):  # the client's default (Triton's binary data extension), and plain JSON
        inputs = []
        for g, a in x.items():
            tensor = httpclient.InferInput(g, list(a.shape), "FP32")
            tensor.set_data_from_numpy(a, binary_data=binary)
            inputs.append(tensor)
        result = client.infer("deepjet", inputs, outputs=[httpclient.InferRequestedOutput("probabilities",
                                                                                           binary_data=binary)])
        np.testing.assert_allclose(result.as_numpy("probabilities"), predictor.predict_array(x), atol=1e-6)
    index = {m["name"]: m["state"] for m in client.get_model_repository_index()}
    assert index == {"deepcsv": "READY", "deepjet": "READY"}
    with pytest.raises(InferenceServerException, match="401|bearer token"):
        client.unload_model("deepcsv")
    client.unload_model("deepcsv", headers=auth())
    assert not client.is_model_ready("deepcsv")
    client.load_model("deepcsv", headers=auth())
    assert client.is_model_ready("deepcsv")


def test_tritonclient_grpc_health_metadata_infer_and_repository(server, predictors):
    import tritonclient.grpc as grpcclient
    from tritonclient.utils import InferenceServerException

    client = grpcclient.InferenceServerClient(server.grpc_address)
    assert client.is_server_live() and client.is_server_ready() and client.is_model_ready("deepcsv")
    assert client.get_server_metadata().name == "deepjet-nb"
    meta = client.get_model_metadata("deepcsv", as_json=True)
    predictor = predictors["deepcsv"]
    assert [(i["name"], i["datatype"], [int(d) for d in i["shape"]]) for i in meta["inputs"]] == [
        (g, "FP32", [-1, *s]) for g, s in predictor.shapes.items()]
    x = random_inputs(predictor, 5, seed=1)
    inputs = []
    for g, a in x.items():
        tensor = grpcclient.InferInput(g, list(a.shape), "FP32")
        tensor.set_data_from_numpy(a)  # raw_input_contents, as SONIC sends them
        inputs.append(tensor)
    result = client.infer("deepcsv", inputs)
    np.testing.assert_allclose(result.as_numpy("probabilities"), predictor.predict_array(x), atol=1e-6)
    names = {m.name for m in client.get_model_repository_index().models}
    assert names == {"deepcsv", "deepjet"}
    with pytest.raises(InferenceServerException, match="UNAUTHENTICATED|token"):
        client.unload_model("deepjet")
    grpc_auth = {"authorization": f"Bearer {TOKEN}"}  # gRPC metadata keys are lower case
    client.unload_model("deepjet", headers=grpc_auth)
    states = {m.name: m.state.removeprefix("State.") for m in client.get_model_repository_index().models}
    assert states == {"deepcsv": "READY", "deepjet": "UNAVAILABLE"}  # MLServer's gRPC says "State.READY"
    client.load_model("deepjet", headers=grpc_auth)
    assert client.is_model_ready("deepjet")
    bad = grpcclient.InferInput("global", [1, 3], "FP32")
    bad.set_data_from_numpy(np.zeros((1, 3), np.float32))
    with pytest.raises(InferenceServerException, match="inputs"):
        client.infer("deepcsv", [bad])
    client.close()


# --- TFaaS's routes ---------------------------------------------------------------------------------------


def test_tfaas_json_orders_features_by_keys(server, predictors):
    predictor = predictors["deepcsv"]
    served = served_models.open_served(Path(predictor.model.path))
    keys = served.keys
    assert len(keys) == 66 and keys[0] == "global.jet_pt" and "tracks[5].TagVarCSVTrk_trackDecayLenVal" in keys
    rows = np.random.default_rng(2).normal(size=(3, 66)).astype(np.float32)
    want = predictor.predict_array(served_models.arrays_from_keys(served, keys, rows.tolist())[0])
    reply = requests.post(server.url + "/json", json={"keys": keys, "values": rows[0].tolist(), "model": "deepcsv"},
                          timeout=10).json()
    assert reply["classes"] == ["B", "BB", "C", "UDSG"]
    np.testing.assert_allclose(reply["probabilities"], want[0], atol=1e-6)
    order = np.random.default_rng(3).permutation(66)
    shuffled = {"keys": [keys[i] for i in order], "values": rows[:, order].tolist(), "model": "deepcsv"}
    reply = requests.post(server.url + "/json", json=shuffled, timeout=10).json()
    np.testing.assert_allclose(reply["probabilities"], want, atol=1e-6)


def test_tfaas_json_converts_raw_branches_of_one_or_many_jets_like_the_training(server, predictors, raw_jets):
    predictor = predictors["deepjet"]
    want = local_raw(predictor, raw_jets)
    keys = list(raw_jets[0])
    one = requests.post(server.url + "/json", json={"model": "deepjet", "keys": keys,
                                                   "values": [raw_jets[0][k] for k in keys]}, timeout=10).json()
    np.testing.assert_allclose(one["probabilities"], want[0], atol=1e-6)
    many = requests.post(server.url + "/json", json={"model": "deepjet", "keys": keys[::-1],
                                                    "values": [[j[k] for k in keys[::-1]] for j in raw_jets]},
                         timeout=10).json()
    np.testing.assert_allclose(many["probabilities"], want, atol=1e-6)


def test_raw_jets_through_oip_as_bytes_json_objects(server, predictors, raw_jets):
    body = {"inputs": [{"name": "jets", "datatype": "BYTES", "shape": [len(raw_jets)],
                        "data": [json.dumps(j) for j in raw_jets]}]}
    reply = requests.post(server.url + "/v2/models/deepjet/infer", json=body, timeout=10).json()
    out = np.asarray(reply["outputs"][0]["data"], np.float32).reshape(reply["outputs"][0]["shape"])
    np.testing.assert_allclose(out, local_raw(predictors["deepjet"], raw_jets), atol=1e-6)


def test_converted_single_rows_match_the_local_predictor_on_every_jet(server, predictors, deepcsv_dataset):
    """Jets of a converted dataset, one TFaaS request each (as a loop over events does)."""
    predictor = predictors["deepcsv"]
    served = served_models.open_served(Path(predictor.model.path))
    manifest = json.loads((deepcsv_dataset / "manifest.json").read_text())
    shard = deepcsv_dataset / "shards" / manifest["shards"][0]["name"]
    x = {g: np.load(shard / f"{g}.npy")[:20] for g in predictor.shapes}
    flat = np.concatenate([x[g].reshape(20, -1) for g in predictor.shapes], axis=1)
    want = predictor.predict_array(x)
    with requests.Session() as session:
        got = [session.post(server.url + "/json", json={"keys": served.keys, "values": row.tolist(),
                                                       "model": "deepcsv"}, timeout=10).json()["probabilities"]
               for row in flat]
    assert np.max(np.abs(np.asarray(got) - want)) < 1e-6


def test_concurrent_requests_are_batched_and_each_gets_its_own_answer(server, predictors):
    predictor = predictors["deepcsv"]
    served = served_models.open_served(Path(predictor.model.path))
    rows = np.random.default_rng(4).normal(size=(48, 66)).astype(np.float32)
    want = predictor.predict_array(served_models.arrays_from_keys(served, served.keys, rows.tolist())[0])
    got = [None] * len(rows)

    def one(i):
        with requests.Session() as session:
            got[i] = session.post(server.url + "/json", json={"keys": served.keys, "values": rows[i].tolist(),
                                                             "model": "deepcsv"}, timeout=30).json()["probabilities"]

    threads = [threading.Thread(target=one, args=(i,)) for i in range(len(rows))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    np.testing.assert_allclose(np.asarray(got), want, atol=1e-6)


@pytest.mark.parametrize("body, status, field", [
    ({"keys": ["global.jet_pt"], "values": [1.0], "model": "deepcsv"}, 400, "missing key"),
    ({"keys": ["nonsense"] * 2, "values": [1.0, 2.0], "model": "deepcsv"}, 400, "unknown key(s) ['nonsense'"),
    ({"keys": ["jet_pt"], "values": [40.0], "model": "deepjet"}, 400, "missing branch"),
    ({"keys": ["global.jet_pt"], "values": [1.0], "model": "../../etc/passwd"}, 400, "model: invalid model name"),
    ({"keys": ["global.jet_pt"], "values": [1.0], "model": "absent"}, 404, "absent"),
    ({"keys": ["global.jet_pt"], "values": ["x"], "model": "deepcsv"}, 400, "keys"),
    ({"keys": ["global.jet_pt"], "model": "deepcsv"}, 400, "values: missing"),
    ({"values": [1], "model": "deepcsv"}, 400, "keys: missing"),
    ({"keys": "global.jet_pt", "values": [1], "model": "deepcsv"}, 400, "keys: must be a non-empty list"),
    ({"keys": ["global.jet_pt"], "values": [1], "model": 3}, 400, "model: invalid model name"),
    ([1, 2], 400, "body: must be a JSON object"),
])
def test_malformed_tfaas_requests_get_a_4xx_naming_the_field(server, body, status, field):
    response = requests.post(server.url + "/json", json=body, timeout=10)
    assert response.status_code == status, response.text
    assert field in response.text


@pytest.mark.parametrize("inputs, field", [
    ([{"name": "global", "datatype": "FP32", "shape": [1, 12], "data": [0.0] * 12}], "missing input(s)"),
    ([{"name": "bogus", "datatype": "FP32", "shape": [1], "data": [0.0]}], "unknown input(s) ['bogus']"),
    ([{"name": "jets", "datatype": "BYTES", "shape": [1], "data": ["{not json"]}], "inputs[jets][0]"),
    ([{"name": "jets", "datatype": "BYTES", "shape": [1], "data": ["{}"]}], "missing branch"),
    ([{"name": "jets", "datatype": "FP32", "shape": [1], "data": [1.0]}], "inputs[jets].datatype"),
])
def test_malformed_oip_requests_get_a_400_naming_the_field(server, inputs, field):
    response = requests.post(server.url + "/v2/models/deepcsv/infer", json={"inputs": inputs}, timeout=10)
    assert response.status_code == 400, response.text
    assert field in response.json()["error"]


def test_wrong_shape_and_count_are_refused_naming_the_input(server, predictors):
    predictor = predictors["deepcsv"]
    inputs = [{"name": g, "datatype": "FP32", "shape": [1, *s], "data": [0.0] * int(np.prod(s))}
              for g, s in predictor.shapes.items()]
    inputs[1]["data"] = inputs[1]["data"][:-1]
    response = requests.post(server.url + "/v2/models/deepcsv/infer", json={"inputs": inputs}, timeout=10)
    assert response.status_code == 400 and "inputs[tracks].data" in response.json()["error"]
    inputs[1]["shape"], inputs[1]["data"] = [1, 7, 6], [0.0] * 42  # consistent, but not the model's shape
    response = requests.post(server.url + "/v2/models/deepcsv/infer", json={"inputs": inputs}, timeout=10)
    assert response.status_code == 400 and "inputs[tracks].shape" in response.json()["error"]


# --- upload, delete, tokens ------------------------------------------------------------------------------


def test_upload_of_an_exported_directory_installs_and_serves_it(server, exported_models, predictors, raw_jets):
    client = Client(server.url, token=TOKEN)
    reply = client.upload(exported_models["deepjet"], name="deepjet-v2")
    assert reply["model"] == "deepjet-v2" and reply["classes"] == ["B", "BB", "LeptB", "C", "UDS", "G"]
    assert "deepjet-v2" in {m["name"] for m in client.models()}
    probs = client.predict("deepjet-v2", raw_jets)
    np.testing.assert_allclose(np.stack(list(probs.values()), axis=1), local_raw(predictors["deepjet"], raw_jets),
                               atol=1e-6)
    assert client.delete("deepjet-v2")["status"] == "deleted"
    assert "deepjet-v2" not in {m["name"] for m in client.models()}
    with pytest.raises(ServiceError, match="no loaded model 'deepjet-v2'"):
        client.predict("deepjet-v2", raw_jets[0])
    response = requests.post(server.url + "/json", json={"model": "deepjet-v2", "keys": ["jet_pt"], "values": [1]},
                             timeout=10)
    assert response.status_code == 404 and "deepjet-v2" in response.json()["error"]


def test_upload_of_a_bare_onnx_model_with_params_and_labels_as_tfaas_took_them(server, exported_models,
                                                                              predictors):
    model = exported_models["deepcsv"]
    params = json.dumps({"name": "bare", "model": "model.onnx", "labels": "labels.txt"})
    files = {"model": ("model.onnx", (model / "model.onnx").read_bytes()),
             "params": ("params.json", params.encode()), "labels": ("labels.txt", b"B\nBB\nC\nUDSG\n")}
    response = requests.post(server.url + "/upload", files=files, headers=auth(), timeout=60)
    assert response.status_code == 201, response.text
    x = random_inputs(predictors["deepcsv"], 3, seed=5)
    probs = Client(server.url).predict("bare", x)
    np.testing.assert_allclose(np.stack(list(probs.values()), axis=1), predictors["deepcsv"].predict_array(x),
                               atol=1e-6)
    response = requests.post(server.url + "/json", json={"model": "bare", "keys": ["jet_pt"], "values": [1.0]},
                             timeout=10)
    assert response.status_code == 400 and "keys" in response.json()["error"]


def test_uploads_need_the_token_a_valid_name_and_a_size_under_the_limit(server, exported_models):
    onnx_bytes = (exported_models["deepcsv"] / "model.onnx").read_bytes()
    files = {"model": ("model.onnx", onnx_bytes), "labels": ("labels.txt", b"B\nBB\nC\nUDSG\n")}
    response = requests.post(server.url + "/upload", files=files, data={"name": "x"}, timeout=30)
    assert response.status_code == 401
    response = requests.post(server.url + "/upload", files=files, data={"name": "x"},
                             headers={"Authorization": "Bearer wrong-token"}, timeout=30)
    assert response.status_code == 401
    response = requests.post(server.url + "/upload", files=files, data={"name": "../escape"}, headers=auth(),
                             timeout=30)
    assert response.status_code == 400 and "name" in response.json()["error"]
    big = {"model": ("model.onnx", b"\0" * (MAX_UPLOAD_MB * 2**20 + 1))}
    response = requests.post(server.url + "/upload", files=big, data={"name": "big"}, headers=auth(), timeout=60)
    assert response.status_code == 413
    response = requests.delete(server.url + "/delete/deepcsv", timeout=10)
    assert response.status_code == 401
    assert server.alive()


def test_a_bad_upload_never_replaces_a_good_model(server, folder, predictors):
    before = sorted(p.name for p in (folder / "deepcsv").iterdir())
    x = random_inputs(predictors["deepcsv"], 2, seed=6)
    for files in ({"model": ("model.onnx", b"not an onnx file"), "labels": ("labels.txt", b"a\nb\n")},
                  {"model": ("model.onnx", (folder / "deepjet" / "model.onnx").read_bytes()),
                   "labels": ("labels.txt", b"only-two\nlabels\n")},
                  {"model": ("m.tar.gz", _tarball({"x/../../evil": b"x"}))},
                  {"model": ("m.tar.gz", b"\x1f\x8bbroken")}):
        response = requests.post(server.url + "/upload", files=files, data={"name": "deepcsv"}, headers=auth(),
                                 timeout=30)
        assert response.status_code == 400, response.text
        assert response.json()["error"].startswith(("model:", "labels:"))
    assert sorted(p.name for p in (folder / "deepcsv").iterdir()) == before
    assert not [p for p in folder.iterdir() if p.name.startswith(".")]  # no scratch left behind
    probs = Client(server.url).predict("deepcsv", x)
    np.testing.assert_allclose(np.stack(list(probs.values()), axis=1), predictors["deepcsv"].predict_array(x),
                               atol=1e-6)


def _tarball(members):
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def test_concurrent_upload_delete_and_infer_are_safe(server, exported_models):
    """Upload and delete one model in a loop while other threads infer on it and on a neighbour: every answer is
    a 200 or a 404 (model absent at that moment), never a 5xx, and the neighbour always answers."""
    client = Client(server.url, token=TOKEN)
    served = served_models.open_served(exported_models["deepcsv"])
    body = {"keys": served.keys, "values": [0.0] * 66}
    stop = time.monotonic() + 8
    statuses, errors = [], []

    def infer(model):
        with requests.Session() as session:
            while time.monotonic() < stop:
                statuses.append((model, session.post(server.url + "/json", json={**body, "model": model},
                                                     timeout=30).status_code))

    def churn():
        try:
            while time.monotonic() < stop:
                client.upload(exported_models["deepcsv"], name="churn")
                client.delete("churn")
        except ServiceError as err:
            errors.append(str(err))

    threads = [threading.Thread(target=churn)] + [threading.Thread(target=infer, args=(m,))
                                                  for m in ("churn", "churn", "deepcsv")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors
    assert {s for m, s in statuses if m == "churn"} <= {200, 404}
    assert {s for m, s in statuses if m == "deepcsv"} == {200}
    assert server.alive()


# --- the client ------------------------------------------------------------------------------------------


def test_client_predicts_one_jet_or_a_batch_and_names_what_is_wrong(server, predictors, raw_jets):
    with Client(server.url) as client:
        one = client.predict("deepjet", raw_jets[0])
        assert set(one) == {"B", "BB", "LeptB", "C", "UDS", "G"} and isinstance(one["B"], float)
        want = local_raw(predictors["deepjet"], raw_jets)
        assert abs(one["B"] - want[0, 0]) < 1e-6
        x = random_inputs(predictors["deepjet"], 4, seed=7)
        batch = client.predict("deepjet", x)
        assert batch["B"].shape == (4,)
        np.testing.assert_allclose(np.stack(list(batch.values()), axis=1), predictors["deepjet"].predict_array(x),
                                   atol=1e-6)
        single = client.predict("deepjet", {g: a[0] for g, a in x.items()})
        assert abs(single["G"] - batch["G"][0]) < 1e-6
        broken = dict(raw_jets[0])
        del broken["jet_pt"]
        with pytest.raises(ServiceError, match="missing branch.*jet_pt"):
            client.predict("deepjet", broken)
        with pytest.raises(ServiceError, match="no loaded model 'absent'"):
            client.predict("absent", raw_jets[0])
        with pytest.raises(ServiceError, match="HTTP 401"):
            client.delete("deepjet")
    with pytest.raises(ServiceError, match="ConnectionError"):
        Client("http://127.0.0.1:9", timeout=2).models()


# --- fuzzing ---------------------------------------------------------------------------------------------


def test_schemathesis_fuzzing_of_tfaas_and_oip_routes_finds_no_5xx(server):
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        from serve import fuzz
    finally:
        sys.path.pop(0)
    counts = fuzz(server.url, examples=12, token=TOKEN)
    assert counts["cases"] > 60 and counts["4xx"] > 0
    assert counts["5xx"] == 0, counts["failures"]
    assert server.alive()


# --- beyond one machine ----------------------------------------------------------------------------------


def test_triton_layout_has_a_well_formed_config_pbtxt(exported_models, tmp_path):
    from google.protobuf import text_format
    from tritonclient.grpc import model_config_pb2

    from deepjet_nb.service.triton import triton_layout

    entry = triton_layout(exported_models["deepjet"], tmp_path / "repo", "deepjet")
    config = text_format.Parse((entry / "config.pbtxt").read_text(), model_config_pb2.ModelConfig())
    assert config.name == "deepjet" and config.platform == "onnxruntime_onnx" and config.max_batch_size == 1024
    assert [(i.name, list(i.dims)) for i in config.input] == [("global", [15]), ("cpf", [25, 16]),
                                                             ("npf", [25, 6]), ("sv", [4, 12])]
    assert config.output[0].name == "probabilities" and list(config.output[0].dims) == [6]
    assert (entry / "1" / "model.onnx").read_bytes() == (exported_models["deepjet"] / "model.onnx").read_bytes()
    assert (entry / "labels.txt").read_text().split() == ["B", "BB", "LeptB", "C", "UDS", "G"]


def test_deploy_manifests_parse_and_name_the_server_command():
    import yaml

    documents = list(yaml.safe_load_all((ROOT / "deploy" / "kserve" / "inferenceservice.yaml").read_text()))
    kinds = {d["kind"]: d for d in documents}
    assert {"ServingRuntime", "InferenceService"} <= set(kinds)
    runtime = kinds["ServingRuntime"]["spec"]
    assert "v2" in runtime["protocolVersions"] and "grpc-v2" in runtime["protocolVersions"]
    command = " ".join(runtime["containers"][0]["command"] + runtime["containers"][0].get("args", []))
    assert "deepjet-nb serve" in command and "--models /mnt/models" in command
    isvc = kinds["InferenceService"]["spec"]["predictor"]["model"]
    assert isvc["protocolVersion"] == "v2" and isvc["runtime"] == kinds["ServingRuntime"]["metadata"]["name"]
    triton = yaml.safe_load((ROOT / "deploy" / "kserve" / "triton-inferenceservice.yaml").read_text())
    assert triton["spec"]["predictor"]["model"]["runtime"] == "kserve-tritonserver"
    dockerfile = (ROOT / "deploy" / "Dockerfile").read_text()
    assert "requirements/lock.txt" in dockerfile and "deepjet-nb" in dockerfile and "EXPOSE 8080 8081" in dockerfile


# --- tutorial 07 -----------------------------------------------------------------------------------------


@pytest.mark.slow
def test_tutorial_07_loops_over_events_through_the_tfaas_route_with_local_answers(run_notebook, event_samples,
                                                                                event_test_samples):
    # synthetic event-level samples (fixtures/events.py) instead of the producer's: the notebook skips generation
    nb = run_notebook("tutorials/07_service.ipynb", train_files=event_samples, test_files=event_test_samples,
                      epochs=3, max_events=60)
    numbers = nb.summary
    assert numbers["events"] == 60 and numbers["keys"] == 42
    assert numbers["max_abs_diff"] < 1e-6 and numbers["max_abs_diff_batch"] < 1e-6
    assert numbers["equivalence_max_abs_diff"] < 1e-4
    assert numbers["val_auc"] > 0.85  # the synthetic tt̄ and QCD events are well separated
    assert numbers["mean_p_ttbar"]["ttbar"] > numbers["mean_p_ttbar"]["QCD"] + 0.3
    assert numbers["models_listed"] == ["events"] and numbers["classes"] == ["ttbar", "QCD"]
    assert numbers["server_exit_code"] is not None and numbers["ms_per_call"] > 0
