"""The model server under load: TFaaS single-row JSON, OIP REST (JSON, binary) and gRPC, batched DeepJet, a soak,
fuzzing.

Starts ``deepjet-nb serve`` on 127.0.0.1 (free ports) in a subprocess and loads it from a separate
load-generator process (this script with ``--loadgen``: asyncio + aiohttp, ``--concurrency`` clients, each
sending its next request when the last one returned, for ``--seconds`` per phase):

1. single-row TFaaS ``POST /json``, DeepCSV (66 keys, the size of TFaaS's own example), 64 clients;
2. the same rows through OIP REST ``POST /v2/models/deepcsv/infer``, 64 clients;
3. single DeepJet jets through OIP REST, 64 clients;
   phases 1 and 3 again with batching on (``--max-batch-size 32``; the default is off): what batching buys;
4. 256-jet DeepJet batches through OIP REST and through gRPC (tritonclient), against the ``Predictor`` in
   this process on the same model with the same single thread (``inprocess_jets_per_s``);
5. the stock tritonclient body (Triton's binary data extension, in and out): single DeepCSV rows, 64
   clients, and 256-jet DeepJet batches;
6. a soak: ``--soak-requests`` requests (default 200,000), good and bad mixed (TFaaS, OIP JSON, binary;
   NaN/1e39, broken JSON, unknown model, short binary tensor, wrong token), paced over at least
   ``--soak-seconds`` (120); the server's RSS before and after, unexpected statuses, 5xx;
7. fuzzing: schemathesis against the server's OpenAPI (TFaaS and OIP routes), ``--fuzz-examples`` per
   operation, and hypothesis-made malformed gRPC ``ModelInferRequest``s and binary REST bodies (five times
   as many each).

The models are untrained DeepCSV and DeepJet networks exported from small generated samples (speed does not
depend on training), or those of ``--models DIR``. Prints one JSON line last.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


# ---------------------------------------------------------------------------------------------------------
# the load generator (a separate process)


async def _soak(spec):
    """Exactly ``spec["requests"]`` requests over ``spec["concurrency"]`` clients, paced to last at least
    ``spec["min_seconds"]``: each body with its URL, headers and the status class it must get (2 or 4)."""
    import aiohttp

    cases = [(c["url"], Path(c["body"]).read_bytes(), c.get("headers", {}), c["expect"]) for c in spec["cases"]]
    total, clients = spec["requests"], spec["concurrency"]
    interval = spec["min_seconds"] * clients / total  # per client, between two request starts
    counts = {"requests": 0, "unexpected": 0, "5xx": 0, "transport_errors": 0, "statuses": {}}
    began = time.perf_counter()
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=clients)) as session:
        async def client(k):
            for i in range(k, total, clients):
                delay = began + (i // clients) * interval - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
                url, body, headers, expect = cases[i % len(cases)]
                try:
                    async with session.post(url, data=body, headers=headers) as response:
                        await response.read()
                        status = response.status
                except aiohttp.ClientError:
                    counts["transport_errors"] += 1
                    continue
                counts["requests"] += 1
                counts["statuses"][status] = counts["statuses"].get(status, 0) + 1
                counts["5xx"] += status >= 500
                counts["unexpected"] += status // 100 != expect

        await asyncio.gather(*(client(k) for k in range(clients)))
    counts["seconds"] = time.perf_counter() - began
    counts["req_per_s"] = counts["requests"] / counts["seconds"]
    return counts


async def _load(url, bodies, seconds, concurrency, headers):
    import aiohttp

    latencies, errors, statuses = [], 0, {}
    deadline = time.perf_counter() + seconds
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector, headers=headers) as session:
        async def client(i):
            nonlocal errors
            body = bodies[i % len(bodies)]
            while time.perf_counter() < deadline:
                start = time.perf_counter()
                try:
                    async with session.post(url, data=body) as response:
                        await response.read()
                        ok = response.status == 200
                        statuses[response.status] = statuses.get(response.status, 0) + 1
                except aiohttp.ClientError:
                    ok = False
                if ok:
                    latencies.append(time.perf_counter() - start)
                else:
                    errors += 1
        began = time.perf_counter()
        await asyncio.gather(*(client(i) for i in range(concurrency)))
        elapsed = time.perf_counter() - began
    lat = np.array(latencies) * 1e3 if latencies else np.array([np.nan])
    return {"requests": len(latencies), "req_per_s": len(latencies) / elapsed, "p50_ms": float(np.percentile(lat, 50)),
            "p99_ms": float(np.percentile(lat, 99)), "errors": errors, "statuses": statuses}


def _grpc_load(address, model, arrays, seconds, concurrency):
    """256-jet batches through tritonclient's gRPC client (its async_infer, ``concurrency`` in flight)."""
    import threading

    import tritonclient.grpc as grpcclient

    client = grpcclient.InferenceServerClient(address)
    inputs = []
    for name, array in arrays.items():
        tensor = grpcclient.InferInput(name, list(array.shape), "FP32")
        tensor.set_data_from_numpy(array)
        inputs.append(tensor)
    done, errors, lock = [0], [0], threading.Lock()
    deadline = time.perf_counter() + seconds
    finished = threading.Event()
    in_flight = [0]

    def callback(result, error):
        with lock:
            in_flight[0] -= 1
            if error is not None:
                errors[0] += 1
            else:
                done[0] += 1
            again = time.perf_counter() < deadline
            if again:
                in_flight[0] += 1
        if again:
            client.async_infer(model, inputs, callback)
        elif in_flight[0] == 0:
            finished.set()

    began = time.perf_counter()
    with lock:
        in_flight[0] = concurrency
    for _ in range(concurrency):
        client.async_infer(model, inputs, callback)
    finished.wait(seconds + 60)
    elapsed = time.perf_counter() - began
    client.close()
    return {"requests": done[0], "req_per_s": done[0] / elapsed, "errors": errors[0]}


def loadgen(spec):
    start = _cpu_seconds(os.getpid())
    if spec["kind"] == "grpc":
        arrays = {k: np.load(v) for k, v in spec["arrays"].items()}
        out = _grpc_load(spec["address"], spec["model"], arrays, spec["seconds"], spec["concurrency"])
    elif spec["kind"] == "soak":
        out = asyncio.run(_soak(spec))
    else:
        bodies = [Path(p).read_bytes() for p in spec["bodies"]]
        headers = {"Content-Type": "application/json", **spec.get("headers", {})}
        out = asyncio.run(_load(spec["url"], bodies, spec["seconds"], spec["concurrency"], headers))
    out["loadgen_cpu_s"] = _cpu_seconds(os.getpid()) - start
    return out


def _cpu_seconds(pid):
    import psutil

    times = psutil.Process(pid).cpu_times()
    return times.user + times.system


def phase(server, spec, scratch, timeout):
    """One load phase; adds the server's CPU time per request (what the server costs, whatever else runs)."""
    before = _cpu_seconds(server.process.pid)
    out = run_loadgen(spec, scratch, timeout)
    out["server_cpu_ms_per_request"] = 1e3 * (_cpu_seconds(server.process.pid) - before) / max(out["requests"], 1)
    out["loadgen_cpu_ms_per_request"] = 1e3 * out["loadgen_cpu_s"] / max(out["requests"], 1)
    return out


def run_loadgen(spec, scratch, timeout):
    path = Path(scratch) / f"spec-{time.monotonic_ns()}.json"
    path.write_text(json.dumps(spec))
    out = subprocess.run([sys.executable, __file__, "--loadgen", str(path)], capture_output=True, text=True,
                         timeout=timeout)
    if out.returncode != 0:
        raise RuntimeError(f"load generator failed: {out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


# ---------------------------------------------------------------------------------------------------------
# models, requests


def make_models(scratch):
    """Untrained DeepCSV and DeepJet exported from small generated samples; returns the served folder."""
    sys.path.insert(0, str(ROOT / "tests"))
    from fixtures.runs import write_untrained_run

    from deepjet_nb.convert import convert
    from deepjet_nb.deploy import export
    from deepjet_nb.samples import generate

    scratch = Path(scratch)
    files = [generate(p, events=200, out=scratch / f"{p}.root", seed=s, progress=False).path
             for p, s in (("ttbar", 1), ("qcd", 2))]
    for name in ("deepcsv", "deepjet"):
        convert(files, scratch / f"data_{name}", name, jobs=1, fraction=0.5, progress=False)
        run = write_untrained_run(scratch / f"data_{name}", scratch / f"run_{name}", model=name)
        export(run, scratch / "models" / name, progress=False)
    return scratch / "models"


def single_rows(served, n, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, len(served.keys))).astype(np.float32)


def oip_body(arrays):
    return json.dumps({"inputs": [{"name": g, "datatype": "FP32", "shape": list(a.shape),
                                   "data": a.ravel().tolist()} for g, a in arrays.items()]}).encode()


def binary_body(arrays):
    """A tritonclient request body with its defaults (binary data in, binary data out) and its header length."""
    import tritonclient.http as httpclient

    inputs = []
    for name, array in arrays.items():
        tensor = httpclient.InferInput(name, list(array.shape), "FP32")
        tensor.set_data_from_numpy(array)
        inputs.append(tensor)
    body, json_size = httpclient.InferenceServerClient.generate_request_body(inputs)
    return body, {"Inference-Header-Content-Length": str(json_size), "Content-Type": "application/octet-stream"}


def soak_cases(scratch, url, deepcsv, token):
    """The soak's mix: good TFaaS, OIP JSON and binary requests, and bad ones (NaN, a broken body, an unknown
    model, a short binary tensor, a wrong token on a protected route), each with the status class it must get."""
    rng = np.random.default_rng(5)
    row = rng.normal(size=len(deepcsv.keys)).astype(np.float32)
    feed, start = {}, 0
    for g, shape in deepcsv.shapes.items():
        size = int(np.prod(shape))
        feed[g] = row[start:start + size].reshape(1, *shape)
        start += size
    good_json = {"keys": deepcsv.keys, "values": row.tolist(), "model": "deepcsv"}
    nan_json = {**good_json, "values": [float("nan"), *row.tolist()[1:]]}
    binary, headers = binary_body(feed)
    cases = [("/json", json.dumps(good_json).encode(), {}, 2),
             ("/v2/models/deepcsv/infer", oip_body(feed), {}, 2),
             ("/v2/models/deepcsv/infer", binary, headers, 2),
             ("/json", json.dumps(good_json).encode(), {}, 2),
             ("/json", json.dumps(nan_json).replace("NaN", "1e39").encode(), {}, 4),
             ("/v2/models/deepcsv/infer", b"{broken", {}, 4),
             ("/v2/models/absent/infer", oip_body(feed), {}, 4),
             ("/v2/models/deepcsv/infer", binary[:-4], headers, 4),
             ("/v2/repository/models/deepcsv/unload", b"", {"Authorization": "Bearer wrong"}, 4)]
    out = []
    for i, (path, body, extra, expect) in enumerate(cases):
        file = Path(scratch) / f"soak{i}.bin"
        file.write_bytes(body)
        out.append({"url": url + path, "body": str(file), "headers": {"Content-Type": "application/json", **extra},
                    "expect": expect})
    return out


def inprocess_jets_per_s(model_dir, arrays, seconds):
    from deepjet_nb.deploy import Predictor

    predictor = Predictor(model_dir, threads=1)
    predictor.predict_array(arrays)
    n, start, cpu = 0, time.perf_counter(), time.process_time()
    while time.perf_counter() - start < seconds:
        predictor.predict_array(arrays)
        n += len(next(iter(arrays.values())))
    return n / (time.perf_counter() - start), 1e3 * (time.process_time() - cpu) / n


def fuzz(url, examples, token):
    """schemathesis on the server's OpenAPI: TFaaS and OIP REST routes; counts of responses by class."""
    import schemathesis
    from hypothesis import HealthCheck, Phase, settings

    schema = schemathesis.openapi.from_url(url + "/openapi.json")
    counts = {"cases": 0, "2xx": 0, "4xx": 0, "5xx": 0, "failures": []}
    paths = ("/json", "/models", "/status", "/delete/", "/v2/models/", "/v2/repository/", "/v2/health/", "/v2")
    for result in schema.get_all_operations():
        operation = result.ok()
        if not operation.path.startswith(paths) or operation.path.endswith(("docs", "dataplane.json")):
            continue
        strategy = operation.as_strategy()

        @settings(max_examples=examples, deadline=None, database=None, derandomize=True,
                  phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck))
        def check(case):
            response = case.call(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=10)
            counts["cases"] += 1
            kind = f"{response.status_code // 100}xx"
            counts[kind] = counts.get(kind, 0) + 1
            if response.status_code >= 500:
                counts["failures"].append(f"{case.method} {case.formatted_path}: {response.status_code} "
                                          f"{response.text[:200]}")

        from hypothesis import given

        given(strategy)(check)()
    return counts


def _input_shapes(address, model, token):
    """input name → shape without the batch axis, from the model's gRPC metadata."""
    import tritonclient.grpc as grpcclient

    client = grpcclient.InferenceServerClient(address)
    meta = client.get_model_metadata(model, as_json=True, headers={"authorization": f"Bearer {token}"})
    client.close()
    return {i["name"]: [int(d) for d in i["shape"][1:]] for i in meta["inputs"]}


def _tensor_strategy(shapes):
    """(name, datatype, shape, raw bytes) of one input: valid, or with one field broken."""
    from hypothesis import strategies as st

    def valid(name):
        shape = [1, *shapes[name]]
        values = st.lists(st.floats(width=32, allow_nan=True, allow_infinity=True), min_size=int(np.prod(shape)),
                          max_size=int(np.prod(shape)))
        return values.map(lambda v: (name, "FP32", shape, np.asarray(v, "<f4").tobytes()))

    good = st.sampled_from(sorted(shapes)).flatmap(valid)
    broken = st.tuples(st.sampled_from([*shapes, "jets", "bogus", ""]),
                       st.sampled_from(["FP32", "FP64", "INT64", "BYTES", "BOOL", "FP16", "FLOAT", "", "BF16"]),
                       st.lists(st.one_of(st.integers(-3, 40), st.integers(-(2**62), 2**62)), max_size=5),
                       st.binary(max_size=600))
    return st.one_of(good, good, broken)


def _request_strategy(shapes):
    from hypothesis import strategies as st

    whole = [(name, "FP32", [1, *shape]) for name, shape in shapes.items()]
    valid = st.just([(n, d, s, np.zeros(s, "<f4").tobytes()) for n, d, s in whole])
    return st.one_of(valid, st.lists(_tensor_strategy(shapes), max_size=5),
                     valid.flatmap(lambda ts: _tensor_strategy(shapes).map(lambda t: [t, *ts[1:]])))


def fuzz_grpc(address, model, examples, token):
    """hypothesis-made ``ModelInferRequest``s (valid ones, and ones with a broken name, datatype, shape, raw
    contents or BYTES prefix) through gRPC; counts by status code. ``internal``: INTERNAL or UNKNOWN."""
    import grpc
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st
    from tritonclient.grpc import service_pb2, service_pb2_grpc

    shapes = _input_shapes(address, model, token)
    channel = grpc.insecure_channel(address)
    stub = service_pb2_grpc.GRPCInferenceServiceStub(channel)
    counts = {"cases": 0, "internal": 0, "failures": []}

    @settings(max_examples=examples, deadline=None, database=None, derandomize=True,
              suppress_health_check=list(HealthCheck))
    @given(_request_strategy(shapes), st.sampled_from([model, model, model, "absent", ""]), st.booleans())
    def check(tensors, name, raw):
        request = service_pb2.ModelInferRequest(model_name=name)
        for tensor_name, datatype, shape, data in tensors:
            tensor = request.inputs.add(name=tensor_name, datatype=datatype, shape=[max(min(d, 2**62), -2**62)
                                                                                  for d in shape])
            if raw:
                request.raw_input_contents.append(data)
            elif datatype == "FP32" and len(data) % 4 == 0:
                tensor.contents.fp32_contents.extend(np.frombuffer(data, "<f4").tolist())
        try:
            stub.ModelInfer(request, metadata=(("authorization", f"Bearer {token}"),), timeout=30)
            code = "OK"
        except grpc.RpcError as err:
            code = err.code().name
            if err.code() in (grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN):
                counts["internal"] += 1
                counts["failures"].append(f"{code}: {err.details()[:200]}")
        counts["cases"] += 1
        counts[code] = counts.get(code, 0) + 1

    check()
    channel.close()
    return counts


def fuzz_binary_rest(url, model, examples, token):
    """hypothesis-made OIP REST bodies in Triton's binary data extension (sizes right or wrong, header length
    right or wrong, broken tensors); counts by status class."""
    import requests
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    shapes = _rest_shapes(url, model, token)
    counts = {"cases": 0, "2xx": 0, "4xx": 0, "5xx": 0, "failures": []}
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {token}"

    @settings(max_examples=examples, deadline=None, database=None, derandomize=True,
              suppress_health_check=list(HealthCheck))
    @given(_request_strategy(shapes), st.integers(-8, 8), st.sampled_from([0, 0, 0, 1, -1, 10**6]),
           st.booleans(), st.binary(max_size=16))
    def check(tensors, size_error, header_error, binary_output, tail):
        inputs, blobs = [], []
        for i, (name, datatype, shape, data) in enumerate(tensors):
            size = len(data) + (size_error if i == 0 else 0)
            inputs.append({"name": name, "datatype": datatype, "shape": shape,
                           "parameters": {"binary_data_size": size}})
            blobs.append(data)
        head = json.dumps({"inputs": inputs, "parameters": {"binary_data_output": binary_output}}).encode()
        body = head + b"".join(blobs) + (tail if size_error else b"")
        headers = {"Inference-Header-Content-Length": str(len(head) + header_error),
                   "Content-Type": "application/octet-stream"}
        response = session.post(f"{url}/v2/models/{model}/infer", data=body, headers=headers, timeout=30)
        kind = f"{response.status_code // 100}xx"
        counts["cases"] += 1
        counts[kind] = counts.get(kind, 0) + 1
        if response.status_code >= 500:
            counts["failures"].append(f"{response.status_code} {response.text[:200]}")

    check()
    session.close()
    return counts


def _rest_shapes(url, model, token):
    import requests

    meta = requests.get(f"{url}/v2/models/{model}", headers={"Authorization": f"Bearer {token}"}, timeout=30).json()
    return {i["name"]: [int(d) for d in i["shape"][1:]] for i in meta["inputs"]}


# ---------------------------------------------------------------------------------------------------------


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20.0, help="seconds per load phase (default 20)")
    parser.add_argument("--concurrency", type=int, default=64, help="clients of the single-row phases")
    parser.add_argument("--batch", type=int, default=256, help="jets per DeepJet batch request")
    parser.add_argument("--batch-concurrency", type=int, default=4, help="clients of the batched phases")
    parser.add_argument("--fuzz-examples", type=int, default=100, help="schemathesis examples per operation")
    parser.add_argument("--soak-requests", type=int, default=200_000, help="requests of the soak (default 200000)")
    parser.add_argument("--soak-seconds", type=float, default=120.0,
                        help="the soak lasts at least this long (paced; default 120)")
    parser.add_argument("--soak-concurrency", type=int, default=32, help="clients of the soak")
    parser.add_argument("--models", help="served folder with deepcsv/ and deepjet/ (default: made here)")
    parser.add_argument("--loadgen", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.loadgen:
        print(json.dumps(loadgen(json.loads(Path(args.loadgen).read_text()))))
        return 0

    from deepjet_nb.service import Client, ServerProcess
    from deepjet_nb.service.models import open_served

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    token = "benchmark-token-0123"
    with tempfile.TemporaryDirectory(prefix="deepjet-nb-bench-serve-") as scratch:
        models = Path(args.models) if args.models else make_models(scratch)
        deepcsv, deepjet = open_served(models / "deepcsv"), open_served(models / "deepjet")
        rows = single_rows(deepcsv, 256)
        bodies_json, bodies_oip = [], []
        for i, row in enumerate(rows):
            (Path(scratch) / f"json{i}.json").write_bytes(json.dumps(
                {"keys": deepcsv.keys, "values": row.tolist(), "model": "deepcsv"}).encode())
            bodies_json.append(str(Path(scratch) / f"json{i}.json"))
            start, feed = 0, {}
            for g, shape in deepcsv.shapes.items():
                size = int(np.prod(shape))
                feed[g] = row[start:start + size].reshape(1, *shape)
                start += size
            (Path(scratch) / f"oip{i}.json").write_bytes(oip_body(feed))
            bodies_oip.append(str(Path(scratch) / f"oip{i}.json"))
        bodies_jet = []
        rng = np.random.default_rng(2)
        for i in range(64):
            jet = {g: rng.normal(size=(1, *s)).astype(np.float32) for g, s in deepjet.shapes.items()}
            (Path(scratch) / f"jet{i}.json").write_bytes(oip_body(jet))
            bodies_jet.append(str(Path(scratch) / f"jet{i}.json"))
        rng = np.random.default_rng(1)
        batch = {g: rng.normal(size=(args.batch, *s)).astype(np.float32) for g, s in deepjet.shapes.items()}
        (Path(scratch) / "batch.json").write_bytes(oip_body(batch))
        batch_binary, binary_headers = binary_body(batch)
        (Path(scratch) / "batch.bin").write_bytes(batch_binary)
        bodies_binary, headers_seen = [], set()
        for i, path in enumerate(bodies_oip[:64]):
            feed = {t["name"]: np.asarray(t["data"], np.float32).reshape(t["shape"])
                    for t in json.loads(Path(path).read_text())["inputs"]}
            body, single_headers = binary_body(feed)
            (Path(scratch) / f"bin{i}.bin").write_bytes(body)
            bodies_binary.append(str(Path(scratch) / f"bin{i}.bin"))
            headers_seen.add(single_headers["Inference-Header-Content-Length"])
        assert len(headers_seen) == 1  # binary data: the JSON header is the same for every row
        arrays = {}
        for g, a in batch.items():
            np.save(Path(scratch) / f"batch_{g}.npy", a)
            arrays[g] = str(Path(scratch) / f"batch_{g}.npy")
        limit = args.seconds + 120
        results = {}
        with ServerProcess(models, token=token) as server:
            single = phase(server, {"kind": "http", "url": server.url + "/json", "bodies": bodies_json,
                                  "seconds": args.seconds, "concurrency": args.concurrency}, scratch, limit)
            oip = phase(server, {"kind": "http", "url": server.url + "/v2/models/deepcsv/infer", "bodies": bodies_oip,
                               "seconds": args.seconds, "concurrency": args.concurrency}, scratch, limit)
            jet_default = phase(server, {"kind": "http", "url": server.url + "/v2/models/deepjet/infer",
                                         "bodies": bodies_jet, "seconds": args.seconds,
                                         "concurrency": args.concurrency}, scratch, limit)
            batched_rest = phase(server, {"kind": "http", "url": server.url + "/v2/models/deepjet/infer",
                                        "bodies": [str(Path(scratch) / "batch.json")], "seconds": args.seconds,
                                        "concurrency": args.batch_concurrency}, scratch, limit)
            batched_grpc = phase(server, {"kind": "grpc", "address": server.grpc_address, "model": "deepjet",
                                        "arrays": arrays, "seconds": args.seconds,
                                        "concurrency": args.batch_concurrency}, scratch, limit)
            # stock tritonclient bodies: Triton's binary data extension, in and out
            oip_binary = phase(server, {"kind": "http", "url": server.url + "/v2/models/deepcsv/infer",
                                      "bodies": bodies_binary, "seconds": args.seconds,
                                      "concurrency": args.concurrency, "headers": single_headers},
                               scratch, limit)
            batched_binary = phase(server, {"kind": "http", "url": server.url + "/v2/models/deepjet/infer",
                                          "bodies": [str(Path(scratch) / "batch.bin")], "seconds": args.seconds,
                                          "concurrency": args.batch_concurrency, "headers": binary_headers},
                                   scratch, limit)
            status = Client(server.url).status()
            rss = status["rss_mb"]
            soak = None
            if args.soak_requests:
                soak = run_loadgen({"kind": "soak", "cases": soak_cases(scratch, server.url, deepcsv, token),
                                    "requests": args.soak_requests, "min_seconds": args.soak_seconds,
                                    "concurrency": args.soak_concurrency}, scratch,
                                   timeout=max(args.soak_seconds * 4, args.soak_requests / 200))
                soak["rss_mb_before"], soak["rss_mb_after"] = rss, Client(server.url).status()["rss_mb"]
                soak["rss_growth"] = round(soak["rss_mb_after"] / rss - 1, 4)
                soak["server_alive"] = server.alive()
            fuzzed = fuzz(server.url, args.fuzz_examples, token) if args.fuzz_examples else None
            fuzzed_grpc = fuzz_grpc(server.grpc_address, "deepjet", args.fuzz_examples * 5, token) \
                if args.fuzz_examples else None
            fuzzed_binary = fuzz_binary_rest(server.url, "deepjet", args.fuzz_examples * 5, token) \
                if args.fuzz_examples else None
            alive_after_fuzz = server.alive()
        with ServerProcess(models, token=token, options=["--max-batch-size", "32"]) as server:
            single_batching = phase(server, {"kind": "http", "url": server.url + "/json", "bodies": bodies_json,
                                     "seconds": args.seconds, "concurrency": args.concurrency}, scratch, limit)
            jet_batching = phase(server, {"kind": "http", "url": server.url + "/v2/models/deepjet/infer",
                                           "bodies": bodies_jet, "seconds": args.seconds,
                                           "concurrency": args.concurrency}, scratch, limit)
        inprocess, inprocess_cpu_ms = inprocess_jets_per_s(models / "deepjet", batch, args.seconds)

    batched_jets = max(batched_rest["req_per_s"], batched_grpc["req_per_s"]) * args.batch
    results = {
        "single_row_req_per_s": round(single["req_per_s"], 1),
        "p50_ms": round(single["p50_ms"], 2),
        "p99_ms": round(single["p99_ms"], 2),
        "server_cpu_ms_per_request": round(single["server_cpu_ms_per_request"], 3),
        "loadgen_cpu_ms_per_request": round(single["loadgen_cpu_ms_per_request"], 3),
        "single_row_req_per_s_batching": round(single_batching["req_per_s"], 1),
        "server_cpu_ms_per_request_batching": round(single_batching["server_cpu_ms_per_request"], 3),
        "p99_ms_batching": round(single_batching["p99_ms"], 2),
        "oip_rest_single_row_req_per_s": round(oip["req_per_s"], 1),
        "oip_rest_p50_ms": round(oip["p50_ms"], 2),
        "oip_rest_p99_ms": round(oip["p99_ms"], 2),
        "deepjet_single_jet_req_per_s": round(jet_default["req_per_s"], 1),
        "deepjet_single_jet_req_per_s_batching": round(jet_batching["req_per_s"], 1),
        "deepjet_single_jet_server_cpu_ms": round(jet_default["server_cpu_ms_per_request"], 3),
        "deepjet_single_jet_server_cpu_ms_batching": round(jet_batching["server_cpu_ms_per_request"], 3),
        "deepjet_single_jet_p99_ms": round(jet_default["p99_ms"], 2),
        "deepjet_single_jet_p99_ms_batching": round(jet_batching["p99_ms"], 2),
        "batching_default": "off (--max-batch-size 1)",
        "batched_jets_per_s": round(batched_jets, 1),
        "batched_rest_jets_per_s": round(batched_rest["req_per_s"] * args.batch, 1),
        "batched_grpc_jets_per_s": round(batched_grpc["req_per_s"] * args.batch, 1),
        "batched_rest_server_cpu_ms_per_jet": round(batched_rest["server_cpu_ms_per_request"] / args.batch, 4),
        "batched_grpc_server_cpu_ms_per_jet": round(batched_grpc["server_cpu_ms_per_request"] / args.batch, 4),
        "inprocess_jets_per_s": round(inprocess, 1),
        "ratio_batched_vs_inprocess": round(batched_jets / inprocess, 3),
        "inprocess_cpu_ms_per_jet": round(inprocess_cpu_ms, 4),
        "ratio_cpu_per_jet_inprocess_vs_grpc": round(inprocess_cpu_ms / (batched_grpc["server_cpu_ms_per_request"]
                                                                         / args.batch), 3),
        "server_rss_mb": rss,
        "server_imports_tensorflow": status["tensorflow_imported"],
        "errors": sum(p["errors"] for p in (single, oip, jet_default, batched_rest, batched_grpc, single_batching,
                                            jet_batching, oip_binary, batched_binary)),
        "oip_binary_single_row_req_per_s": round(oip_binary["req_per_s"], 1),
        "oip_binary_p99_ms": round(oip_binary["p99_ms"], 2),
        "batched_rest_binary_jets_per_s": round(batched_binary["req_per_s"] * args.batch, 1),
        "ratio_batched_binary_vs_inprocess": round(batched_binary["req_per_s"] * args.batch / inprocess, 3),
        "ratio_batched_grpc_vs_inprocess": round(batched_grpc["req_per_s"] * args.batch / inprocess, 3),
        "soak": soak and {k: (round(v, 2) if isinstance(v, float) else v) for k, v in soak.items()},
        "fuzz": fuzzed and {k: v for k, v in fuzzed.items() if k != "failures"},
        "fuzz_5xx_examples": fuzzed and fuzzed["failures"][:5],
        "fuzz_grpc": fuzzed_grpc and {k: v for k, v in fuzzed_grpc.items() if k != "failures"},
        "fuzz_binary_rest": fuzzed_binary and {k: v for k, v in fuzzed_binary.items() if k != "failures"},
        "fuzz_cases": sum(f["cases"] for f in (fuzzed, fuzzed_grpc, fuzzed_binary) if f),
        "fuzz_internal_or_5xx": sum(f.get("5xx", 0) + f.get("internal", 0) for f in (fuzzed, fuzzed_grpc,
                                                                                     fuzzed_binary) if f),
        "server_alive_after_fuzz": alive_after_fuzz,
        "seconds_per_phase": args.seconds, "concurrency": args.concurrency, "batch": args.batch,
        "batch_concurrency": args.batch_concurrency, "cpus": os.cpu_count(),
        "load_average_1min": round(os.getloadavg()[0], 2),
    }
    print(json.dumps(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
