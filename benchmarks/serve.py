"""The model server under load: TFaaS single-row JSON, OIP REST and gRPC, batched DeepJet, fuzzing.

Starts ``deepjet-nb serve`` on 127.0.0.1 (free ports) in a subprocess and loads it from a separate
load-generator process (this script with ``--loadgen``: asyncio + aiohttp, ``--concurrency`` clients, each
sending its next request when the last one returned, for ``--seconds`` per phase):

1. single-row TFaaS ``POST /json``, DeepCSV (66 keys, the size of TFaaS's own example), 64 clients;
2. the same rows through OIP REST ``POST /v2/models/deepcsv/infer``, 64 clients;
3. single DeepJet jets through OIP REST, 64 clients;
   phases 1 and 3 again with batching off (``--max-batch-size 1``): what batching buys;
4. 256-jet DeepJet batches through OIP REST and through gRPC (tritonclient), against the ``Predictor`` in
   this process on the same model with the same single thread (``inprocess_jets_per_s``);
5. schemathesis against the server's OpenAPI (TFaaS and OIP routes), ``--fuzz-examples`` per operation.

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
    else:
        bodies = [Path(p).read_bytes() for p in spec["bodies"]]
        headers = {"Content-Type": "application/json"}
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


# ---------------------------------------------------------------------------------------------------------


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20.0, help="seconds per load phase (default 20)")
    parser.add_argument("--concurrency", type=int, default=64, help="clients of the single-row phases")
    parser.add_argument("--batch", type=int, default=256, help="jets per DeepJet batch request")
    parser.add_argument("--batch-concurrency", type=int, default=4, help="clients of the batched phases")
    parser.add_argument("--fuzz-examples", type=int, default=100, help="schemathesis examples per operation")
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
            jet_batched = phase(server, {"kind": "http", "url": server.url + "/v2/models/deepjet/infer",
                                         "bodies": bodies_jet, "seconds": args.seconds,
                                         "concurrency": args.concurrency}, scratch, limit)
            batched_rest = phase(server, {"kind": "http", "url": server.url + "/v2/models/deepjet/infer",
                                        "bodies": [str(Path(scratch) / "batch.json")], "seconds": args.seconds,
                                        "concurrency": args.batch_concurrency}, scratch, limit)
            batched_grpc = phase(server, {"kind": "grpc", "address": server.grpc_address, "model": "deepjet",
                                        "arrays": arrays, "seconds": args.seconds,
                                        "concurrency": args.batch_concurrency}, scratch, limit)
            rss = Client(server.url).status()["rss_mb"]
            status = Client(server.url).status()
            fuzzed = fuzz(server.url, args.fuzz_examples, token) if args.fuzz_examples else None
            alive_after_fuzz = server.alive()
        with ServerProcess(models, token=token, options=["--max-batch-size", "1"]) as server:
            unbatched = phase(server, {"kind": "http", "url": server.url + "/json", "bodies": bodies_json,
                                     "seconds": args.seconds, "concurrency": args.concurrency}, scratch, limit)
            jet_unbatched = phase(server, {"kind": "http", "url": server.url + "/v2/models/deepjet/infer",
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
        "single_row_req_per_s_no_batching": round(unbatched["req_per_s"], 1),
        "server_cpu_ms_per_request_no_batching": round(unbatched["server_cpu_ms_per_request"], 3),
        "p99_ms_no_batching": round(unbatched["p99_ms"], 2),
        "oip_rest_single_row_req_per_s": round(oip["req_per_s"], 1),
        "oip_rest_p50_ms": round(oip["p50_ms"], 2),
        "oip_rest_p99_ms": round(oip["p99_ms"], 2),
        "deepjet_single_jet_req_per_s": round(jet_batched["req_per_s"], 1),
        "deepjet_single_jet_req_per_s_no_batching": round(jet_unbatched["req_per_s"], 1),
        "deepjet_single_jet_server_cpu_ms": round(jet_batched["server_cpu_ms_per_request"], 3),
        "deepjet_single_jet_server_cpu_ms_no_batching": round(jet_unbatched["server_cpu_ms_per_request"], 3),
        "deepjet_single_jet_p99_ms": round(jet_batched["p99_ms"], 2),
        "deepjet_single_jet_p99_ms_no_batching": round(jet_unbatched["p99_ms"], 2),
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
        "errors": sum(p["errors"] for p in (single, oip, jet_batched, batched_rest, batched_grpc, unbatched,
                                            jet_unbatched)),
        "fuzz": fuzzed and {k: v for k, v in fuzzed.items() if k != "failures"},
        "fuzz_5xx_examples": fuzzed and fuzzed["failures"][:5],
        "server_alive_after_fuzz": alive_after_fuzz,
        "seconds_per_phase": args.seconds, "concurrency": args.concurrency, "batch": args.batch,
        "batch_concurrency": args.batch_concurrency, "cpus": os.cpu_count(),
        "load_average_1min": round(os.getloadavg()[0], 2),
    }
    print(json.dumps(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
