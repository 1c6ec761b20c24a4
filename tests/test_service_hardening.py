"""The model server against hostile clients and stock ones: a server with ``--protect-infer``, small body
limits and a model that only runs one row at a time, reached by tritonclient with its defaults (binary
data), by hand-made malformed REST and gRPC requests, and by hypothesis-generated ones; its start-up repair
of the models folder; its workers.

One server for the module (127.0.0.1, free ports); this process never imports MLServer (its gRPC messages
share names with tritonclient's)."""

import json
import shutil
import signal
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import requests

from deepjet_nb.deploy import Predictor
from deepjet_nb.service import ServerProcess
from deepjet_nb.service.guard import is_public

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
TOKEN = "hardening-token-0123456789"
MAX_REQUEST_MB = 2
AUTH = {"Authorization": f"Bearer {TOKEN}"}
GRPC_AUTH = (("authorization", f"Bearer {TOKEN}"),)


def one_row_onnx(width=5):
    """A bare ONNX model right for one row only: ``Reshape`` to ``[1, width]``, then softmax."""
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("Reshape", ["x", "shape"], ["flat"]),
         helper.make_node("Softmax", ["flat"], ["probabilities"])],
        "one_row", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", width])],
        [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["n", width])],
        [helper.make_tensor("shape", TensorProto.INT64, [2], [1, width])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    return model.SerializeToString()


@pytest.fixture(scope="module")
def folder(exported_models, tmp_path_factory):
    out = tmp_path_factory.mktemp("hardening") / "models"
    out.mkdir()
    shutil.copytree(exported_models["deepcsv"], out / "deepcsv")
    # a model only right for one row, installed behind the upload check's back
    (out / "onerow").mkdir()
    (out / "onerow" / "model.onnx").write_bytes(one_row_onnx())
    (out / "onerow" / "labels.txt").write_text("a\nb\nc\nd\ne\n")
    # what a crash leaves: upload scratch, and a replacement stopped between its two renames
    (out / ".upload-deepcsv-abcd1234").mkdir()
    (out / ".upload-deepcsv-abcd1234" / "model.onnx").write_bytes(b"\0" * 4096)
    shutil.copytree(exported_models["deepcsv"], out / ".replaced-replaced-0123abcd")
    return out


@pytest.fixture(scope="module")
def server(folder):
    with ServerProcess(folder, token=TOKEN, options=["--protect-infer", "--max-request-mb", str(MAX_REQUEST_MB),
                                                     "--max-upload-mb", "4", "--max-batch-size", "32",
                                                     "--max-batch-time", "0.01"]) as process:
        yield process


@pytest.fixture(scope="module")
def deepcsv(exported_models):
    return Predictor(exported_models["deepcsv"])


def inputs_of(predictor, n, seed=0):
    rng = np.random.default_rng(seed)
    return {g: rng.normal(size=(n, *s)).astype(np.float32) for g, s in predictor.shapes.items()}


def oip(arrays, **tweak):
    return {"inputs": [{"name": g, "datatype": "FP32", "shape": list(a.shape), "data": a.ravel().tolist(), **tweak}
                       for g, a in arrays.items()]}


# --- start-up repair ---------------------------------------------------------------------------------------


def test_start_up_removes_upload_scratch_and_restores_an_interrupted_replacement(server, folder):
    assert sorted(p.name for p in folder.iterdir()) == ["deepcsv", "onerow", "replaced"]
    assert requests.get(server.url + "/v2/models/replaced/ready", timeout=10).status_code == 200
    log = server.log.read_text()
    assert "restored the old model" in log and "removed stale .upload-deepcsv-abcd1234" in log


# --- stock tritonclient, binary data -------------------------------------------------------------------------


def test_stock_tritonclient_http_defaults_send_and_receive_binary_data(server, deepcsv):
    import tritonclient.http as httpclient

    client = httpclient.InferenceServerClient(server.url.removeprefix("http://"))
    assert client.is_server_ready() and client.is_model_ready("deepcsv")
    x = inputs_of(deepcsv, 6)
    inputs = []
    for g, a in x.items():
        tensor = httpclient.InferInput(g, list(a.shape), "FP32")
        tensor.set_data_from_numpy(a)  # the default: binary_data=True
        inputs.append(tensor)
    result = client.infer("deepcsv", inputs, headers=dict(AUTH))  # no outputs named: binary_data_output
    np.testing.assert_allclose(result.as_numpy("probabilities"), deepcsv.predict_array(x), atol=1e-6)
    result = client.infer("deepcsv", inputs, headers=dict(AUTH),
                          outputs=[httpclient.InferRequestedOutput("probabilities")])
    np.testing.assert_allclose(result.as_numpy("probabilities"), deepcsv.predict_array(x), atol=1e-6)
    result = client.infer("deepcsv", inputs, headers=dict(AUTH), request_compression_algorithm="gzip")
    np.testing.assert_allclose(result.as_numpy("probabilities"), deepcsv.predict_array(x), atol=1e-6)
    assert {m["name"] for m in client.get_model_repository_index()} == {"deepcsv", "onerow", "replaced"}
    client.close()


def test_every_oip_error_is_an_error_object_with_a_4xx(server):
    cases = [("POST", "/v2/models/deepcsv/infer", {"json": {"no": "inputs"}}),
             ("POST", "/v2/models/deepcsv/infer", {"data": b"{not json"}),
             ("POST", "/v2/models/absent/infer", {"json": {"inputs": []}}),
             ("POST", "/v2/repository/index", {"json": {"ready": "not a bool"}}),
             ("GET", "/v2/models/absent", {}),
             ("GET", "/v2/no/such/route", {}),
             ("POST", "/v2/models/deepcsv/infer_stream", {"json": {}})]
    for method, path, extra in cases:
        response = requests.request(method, server.url + path, headers=AUTH, timeout=10, **extra)
        assert 400 <= response.status_code < 500, (path, response.status_code, response.text)
        assert set(response.json()) == {"error"} and response.json()["error"], (path, response.text)


# --- inputs --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("value", [None, "nan", "inf", 1e39])
def test_non_finite_values_are_refused_on_oip_and_tfaas_naming_input_and_index(server, deepcsv, value):
    body = oip(inputs_of(deepcsv, 1))
    body["inputs"][0]["data"][3] = value
    response = requests.post(server.url + "/v2/models/deepcsv/infer", json=body, headers=AUTH, timeout=10)
    assert response.status_code == 400 and "inputs[global].data[3]" in response.json()["error"]
    keys = _deepcsv_keys(server)
    tfaas = {"model": "deepcsv", "keys": keys, "values": [0.0] * len(keys)}
    tfaas["values"][5] = value
    response = requests.post(server.url + "/json", json=tfaas, headers=AUTH, timeout=10)
    assert response.status_code == 400 and "values" in response.json()["error"], response.text


def _deepcsv_keys(server):
    from deepjet_nb.service.models import open_served

    return open_served(server.models / "deepcsv").keys


def test_raw_jets_nested_thousands_deep_get_a_400_not_a_500(server):
    deep = "[" * 3000 + "1" + "]" * 3000
    body = {"inputs": [{"name": "jets", "datatype": "BYTES", "shape": [1], "data": ['{"jet_pt": ' + deep + "}"]}]}
    response = requests.post(server.url + "/v2/models/deepcsv/infer", json=body, headers=AUTH, timeout=10)
    assert response.status_code == 400, response.text
    from deepjet_nb.convert import input_branches

    scalars, jagged = input_branches(Predictor(server.models / "deepcsv").model.config)
    keys = [*scalars, *jagged]
    row = [0.0] * len(scalars) + [[0.0]] * len(jagged)
    row[-1] = json.loads("[" * 50 + "1" + "]" * 50)
    response = requests.post(server.url + "/json", json={"model": "deepcsv", "keys": keys, "values": row},
                             headers=AUTH, timeout=10)
    assert response.status_code == 400 and "list of numbers" in response.json()["error"], response.text


def test_bodies_over_the_limit_get_413_chunked_or_not(server):
    big = b"x" * (MAX_REQUEST_MB * 2**20 + 1)
    response = requests.post(server.url + "/v2/models/deepcsv/infer", data=big, headers=AUTH, timeout=30)
    assert response.status_code == 413 and "limit" in response.json()["error"]

    def chunks():
        for _ in range(MAX_REQUEST_MB * 4):
            yield b"[" * 2**19

    for path in ("/v2/models/deepcsv/infer", "/json", "/v2/repository/index"):
        response = requests.post(server.url + path, data=chunks(), headers=AUTH, timeout=30)
        assert response.status_code == 413, (path, response.text)
    import gzip

    bomb = gzip.compress(b"0" * (MAX_REQUEST_MB * 2**20 * 4))  # 8 MB inflated from some 8 kB
    response = requests.post(server.url + "/v2/models/deepcsv/infer", data=bomb,
                             headers={**AUTH, "Content-Encoding": "gzip"}, timeout=30)
    assert response.status_code == 413 and "inflated" in response.json()["error"]
    assert server.alive()


def grpc_stub(server):
    import grpc
    from tritonclient.grpc import service_pb2_grpc

    return service_pb2_grpc.GRPCInferenceServiceStub(grpc.insecure_channel(server.grpc_address))


def grpc_request(predictor, raw=None, datatype=None, shape=None):
    """A valid DeepCSV ModelInferRequest of one jet (raw contents), with one field changed."""
    from tritonclient.grpc import service_pb2

    x = inputs_of(predictor, 1)
    tensors = [service_pb2.ModelInferRequest.InferInputTensor(name=g, datatype="FP32", shape=list(a.shape))
               for g, a in x.items()]
    contents = raw if raw is not None else [a.tobytes() for a in x.values()]
    request = service_pb2.ModelInferRequest(model_name="deepcsv", inputs=tensors, raw_input_contents=contents)
    if datatype is not None:
        request.inputs[0].datatype = datatype
    if shape is not None:
        del request.inputs[0].shape[:]
        request.inputs[0].shape.extend(shape)
    return request


@pytest.mark.parametrize("case", ["short", "long", "count", "datatype", "negative", "huge", "bytes_prefix"])
def test_malformed_grpc_requests_get_invalid_argument_never_internal(server, deepcsv, case):
    import grpc

    x = inputs_of(deepcsv, 1)
    raws = [a.tobytes() for a in x.values()]
    request = {
        "short": lambda: grpc_request(deepcsv, raw=[raws[0][:-1], *raws[1:]]),
        "long": lambda: grpc_request(deepcsv, raw=[raws[0] + b"\0\0\0\0", *raws[1:]]),
        "count": lambda: grpc_request(deepcsv, raw=raws[:1]),
        "datatype": lambda: grpc_request(deepcsv, datatype="FLOAT"),
        "negative": lambda: grpc_request(deepcsv, shape=[-1, 12]),
        "huge": lambda: grpc_request(deepcsv, shape=[2**40, 2**40]),
        "bytes_prefix": lambda: _bytes_request(),
    }[case]()
    with pytest.raises(grpc.RpcError) as err:
        grpc_stub(server).ModelInfer(request, metadata=GRPC_AUTH, timeout=10)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT, err.value.details()


def _bytes_request():
    from tritonclient.grpc import service_pb2

    tensor = service_pb2.ModelInferRequest.InferInputTensor(name="jets", datatype="BYTES", shape=[1])
    return service_pb2.ModelInferRequest(model_name="deepcsv", inputs=[tensor],
                                         raw_input_contents=[struct.pack("<I", 99) + b"{}"])


def test_grpc_unknown_models_and_bad_requests_log_one_line_each_and_no_traceback(server, deepcsv):
    import grpc

    stub = grpc_stub(server)
    before = server.log.read_text().count("\n")
    for name in ("absent", "deepcsv"):
        request = grpc_request(deepcsv, datatype="FLOAT")
        request.model_name = name
        for _ in range(10):
            with pytest.raises(grpc.RpcError) as err:
                stub.ModelInfer(request, metadata=GRPC_AUTH, timeout=10)
            assert err.value.code() in (grpc.StatusCode.NOT_FOUND, grpc.StatusCode.INVALID_ARGUMENT)
    from tritonclient.grpc import service_pb2

    for _ in range(5):
        with pytest.raises(grpc.RpcError):
            stub.ModelMetadata(service_pb2.ModelMetadataRequest(name="absent"), timeout=10)
    time.sleep(0.5)
    text = server.log.read_text()
    assert "Traceback" not in text
    assert text.count("\n") - before <= 30  # 25 refused requests, one line each (and no more)


# --- auth by default-deny ------------------------------------------------------------------------------------


def app_routes():
    """(methods, path) of every route of the server's app, listed in a subprocess (MLServer stays out of here)."""
    script = (
        "import json, tempfile\n"
        "from pathlib import Path\n"
        "from deepjet_nb.service.server import ServeOptions, _Server, _settings\n"
        "options = ServeOptions(models=Path(tempfile.mkdtemp()), token='x' * 8)\n"
        "app = _Server(_settings(options), options)._rest_server._app\n"
        "print(json.dumps([[sorted(getattr(r, 'methods', None) or ['GET']), r.path] for r in app.routes]))\n")
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_every_route_but_the_public_ones_needs_the_token(server):
    routes = app_routes()
    paths = {path for _, path in routes}
    assert {"/v2/models/{model_name}/generate", "/v2/repository/models/{model_name}/load", "/upload"} <= paths
    checked = 0
    for methods, path in routes:
        concrete = path.replace("{model_name}", "deepcsv").replace("{model_version}", "1").replace("{model}", "x")
        for method in methods:
            if method == "HEAD":
                continue
            response = requests.request(method, server.url + concrete, json={}, timeout=10)
            if is_public(method, concrete, protect_infer=True):
                assert response.status_code != 401, (method, path)
            else:
                assert response.status_code == 401, (method, path, response.status_code)
                checked += 1
    assert checked >= 12  # infer, generate (and their versions), load, unload, upload, delete, /json, ...


def test_generate_without_a_token_is_refused_when_inference_is_protected(server, deepcsv):
    body = oip(inputs_of(deepcsv, 1))
    for path in ("/v2/models/deepcsv/generate", "/v2/models/deepcsv/versions/1/generate", "/v2/models/deepcsv/infer"):
        assert requests.post(server.url + path, json=body, timeout=10).status_code == 401
    assert requests.post(server.url + "/v2/models/deepcsv/generate", json=body, headers=AUTH,
                         timeout=10).status_code == 200


# --- one-row models: refused at upload, and never failing a merged batch ------------------------------------


def test_an_upload_that_fails_for_several_rows_is_refused(server):
    files = {"model": ("model.onnx", one_row_onnx()), "labels": ("labels.txt", b"a\nb\nc\nd\ne\n")}
    response = requests.post(server.url + "/upload", files=files, data={"name": "onerow2"}, headers=AUTH, timeout=60)
    assert response.status_code == 400 and "3 row(s) failed" in response.json()["error"], response.text
    assert not (server.models / "onerow2").exists()


def test_concurrent_single_rows_to_a_one_row_model_all_succeed(server):
    rows = np.random.default_rng(3).normal(size=(200, 5)).astype(np.float32)
    want = np.exp(rows) / np.exp(rows).sum(axis=1, keepdims=True)
    got, statuses = [None] * len(rows), []

    def one(indices):
        with requests.Session() as session:
            for i in indices:
                body = {"inputs": [{"name": "x", "datatype": "FP32", "shape": [1, 5], "data": rows[i].tolist()}]}
                response = session.post(server.url + "/v2/models/onerow/infer", json=body, headers=AUTH, timeout=30)
                statuses.append(response.status_code)
                if response.status_code == 200:
                    got[i] = response.json()["outputs"][0]["data"]

    threads = [threading.Thread(target=one, args=(range(k, 200, 20),)) for k in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert statuses.count(200) == 200, {s: statuses.count(s) for s in set(statuses)}
    np.testing.assert_allclose(np.asarray(got), want, atol=1e-5)


def test_a_tarball_whose_card_names_a_host_file_is_refused_without_an_oracle(server, exported_models, tmp_path):
    import io
    import tarfile

    messages = []
    for host in ("/etc/hostname", "/no/such/file"):
        card = json.loads((exported_models["deepcsv"] / "model.json").read_text())
        for record in card["files"].values():
            record["file"] = host
        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
            for path in exported_models["deepcsv"].iterdir():
                data = json.dumps(card).encode() if path.name == "model.json" else path.read_bytes()
                info = tarfile.TarInfo(f"m/{path.name}")
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
        response = requests.post(server.url + "/upload", files={"model": ("m.tar.gz", buffer.getvalue())},
                                 data={"name": "evil"}, headers=AUTH, timeout=60)
        assert response.status_code == 400, response.text
        messages.append(response.json()["error"])
    assert messages[0] == messages[1] and "relative path inside" in messages[0]
    assert not (server.models / "evil").exists()


# --- fuzzing: gRPC and binary REST ----------------------------------------------------------------------------


def test_fuzzing_grpc_and_binary_rest_finds_no_internal_error_or_5xx(server):
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        from serve import fuzz_binary_rest, fuzz_grpc
    finally:
        sys.path.pop(0)
    grpc_counts = fuzz_grpc(server.grpc_address, "deepcsv", examples=150, token=TOKEN)
    rest_counts = fuzz_binary_rest(server.url, "deepcsv", examples=150, token=TOKEN)
    assert grpc_counts["cases"] >= 150 and grpc_counts["INVALID_ARGUMENT"] > 0 and grpc_counts["OK"] > 0
    assert grpc_counts["internal"] == 0, grpc_counts["failures"]
    assert rest_counts["cases"] >= 150 and rest_counts["4xx"] > 0 and rest_counts["2xx"] > 0
    assert rest_counts["5xx"] == 0, rest_counts["failures"]
    assert server.alive()


# --- workers -----------------------------------------------------------------------------------------------------


def test_workers_serve_stop_on_sigterm_and_die_with_a_killed_server(exported_models, tmp_path):
    import psutil

    folder = tmp_path / "models"
    shutil.copytree(exported_models["deepcsv"], folder / "deepcsv")
    predictor = Predictor(exported_models["deepcsv"])
    x = inputs_of(predictor, 3)
    for stop in ("SIGTERM", "SIGKILL"):
        server = ServerProcess(folder, options=["--workers", "2"], timeout=180).start()
        try:
            workers = psutil.Process(server.process.pid).children(recursive=True)
            assert len(workers) >= 2
            reply = requests.post(server.url + "/v2/models/deepcsv/infer", json=oip(x), timeout=30).json()
            got = np.asarray(reply["outputs"][0]["data"], np.float32).reshape(reply["outputs"][0]["shape"])
            np.testing.assert_allclose(got, predictor.predict_array(x), atol=1e-6)
            assert requests.get(server.url + "/v2/health/ready", timeout=10).status_code == 200
            server.process.send_signal(signal.SIGTERM if stop == "SIGTERM" else signal.SIGKILL)
            server.process.wait(60)
            gone, alive = psutil.wait_procs(workers, timeout=30)
            assert not alive, f"{stop}: orphaned workers {[p.pid for p in alive]}"
        finally:
            server.stop()


def test_the_server_is_unready_while_a_model_of_its_folder_is_not_loaded(server, exported_models):
    shutil.copytree(exported_models["deepcsv"], server.models / "late")  # not loaded yet
    try:
        assert requests.get(server.url + "/v2/health/ready", timeout=10).status_code == 400  # MLServer: 400, not ready
        assert requests.post(server.url + "/v2/repository/models/late/load", headers=AUTH, timeout=60).ok
        assert requests.get(server.url + "/v2/health/ready", timeout=10).status_code == 200
        assert requests.post(server.url + "/v2/repository/models/late/unload", headers=AUTH, timeout=60).ok
        assert requests.get(server.url + "/v2/health/ready", timeout=10).status_code == 200  # unloaded on purpose
    finally:
        requests.delete(server.url + "/delete/late", headers=AUTH, timeout=60)


def test_a_worker_crash_loop_ends_the_server_with_one_clear_line():
    script = (
        "import asyncio\n"
        "from types import SimpleNamespace\n"
        "from deepjet_nb.service import workers\n"
        "from deepjet_nb.service.server import _log_to_stderr\n"
        "_log_to_stderr()\n"
        "restarts = []\n"
        "async def restart(pid, code): restarts.append(pid)\n"
        "pool = SimpleNamespace(on_worker_stop=restart)\n"
        "workers.bound_restarts(pool, max_restarts=3, window=60)\n"
        "async def main():\n"
        "    for pid in range(10): await pool.on_worker_stop(pid, 256)\n"
        "asyncio.run(main())\n")
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert out.returncode == 3
    lines = [line for line in out.stderr.splitlines() if "crash in a loop" in line]
    assert len(lines) == 1 and "4 deaths within 60 s" in lines[0]
