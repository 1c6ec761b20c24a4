"""The server's parts that need no server: tensors decoded and checked (JSON, binary REST), the guard's
route policy, the batcher's retries, uploads bounded while they stream, and the start-up repair of an
interrupted model replacement (a crash simulated at each step). This process never imports MLServer."""

import asyncio
import io
import json
import os
import shutil
import struct
import tarfile

import numpy as np
import pytest

from deepjet_nb.service import uploads
from deepjet_nb.service.batching import Batcher
from deepjet_nb.service.guard import is_public
from deepjet_nb.service.models import check_card_files
from deepjet_nb.service.tensors import (
    MAX_ELEMENTS,
    RequestError,
    decode_rest,
    encode_rest,
    tensor_from_contents,
    tensor_from_json,
    tensor_from_raw,
)


def body(inputs, **extra):
    return json.dumps({"inputs": inputs, **extra}).encode()


def fp32(name="x", shape=(1, 2), data=(1.0, 2.0)):
    return {"name": name, "datatype": "FP32", "shape": list(shape), "data": list(data)}


# --- tensors --------------------------------------------------------------------------------------------


def test_json_tensors_flat_or_nested_decode_to_flat_float32():
    request = decode_rest(body([fp32(data=[1.5, 2.5]), {**fp32("y"), "data": [[3, 4]]}]))
    assert [t.name for t in request.inputs] == ["x", "y"]
    np.testing.assert_array_equal(request.inputs[1].data, np.array([3, 4], np.float32))
    assert request.inputs[0].data.dtype == np.float32 and request.inputs[0].shape == (1, 2)


@pytest.mark.parametrize("value, field", [
    (None, "inputs[x].data[1]"), ("nan", "inputs[x].data[1]"), ("inf", "inputs[x].data[1]"),
    (1e39, "inputs[x].data[1]"), (True, "inputs[x].data[1]"), (-1e39, "inputs[x].data[1]"),
])
def test_non_finite_or_non_numeric_json_values_are_refused_naming_input_and_index(value, field):
    with pytest.raises(RequestError) as err:
        decode_rest(body([fp32(data=[1.0, value])]))
    assert err.value.field == field and err.value.status == 400


def test_nan_and_inf_in_raw_float32_bytes_are_refused_naming_the_index():
    raw = np.array([0.0, 1.0, np.nan], np.float32).tobytes()
    with pytest.raises(RequestError, match=r"inputs\[x\]\.data\[2\]"):
        tensor_from_raw("x", "FP32", [1, 3], raw)
    with pytest.raises(RequestError, match=r"inputs\[x\]\.data\[0\]"):
        tensor_from_contents("x", "FP64", [1], [1e300])  # finite in FP64, not in float32


@pytest.mark.parametrize("datatype, shape, raw, message", [
    ("FP32", [1, 3], b"\0" * 11, "11 bytes"),
    ("FP32", [1, 3], b"\0" * 13, "13 bytes"),
    ("FLOAT", [1], b"\0" * 4, "not an OIP datatype"),
    ("FP32", [-1, 3], b"", "integers >= 0"),
    ("FP32", [2**40, 2**40], b"", "more than"),
    ("FP32", [1] * 9, b"\0" * 4, "at most 8"),
    ("BYTES", [1], struct.pack("<I", 10) + b"abc", "says 10 bytes"),
    ("BYTES", [2], struct.pack("<I", 1) + b"a", "cut off"),
    ("BYTES", [1], struct.pack("<I", 1) + b"ab", "1 bytes after"),
])
def test_raw_contents_need_exact_lengths_known_datatypes_and_sane_shapes(datatype, shape, raw, message):
    with pytest.raises(RequestError, match=message):
        tensor_from_raw("x", datatype, shape, raw)


def test_bytes_elements_decode_from_length_prefixes():
    raw = b"".join(struct.pack("<I", len(s)) + s for s in (b"{}", b'{"a": 1}'))
    assert tensor_from_raw("jets", "BYTES", [2], raw).data == [b"{}", b'{"a": 1}']


def test_json_data_nested_deeper_than_the_shape_is_refused_without_recursion():
    deep = 1.0
    for _ in range(3000):
        deep = [deep]
    with pytest.raises(RequestError, match="deeper than the shape"):
        tensor_from_json("x", "FP32", [1, 1], deep)
    with pytest.raises(RequestError, match="body: not JSON"):  # past orjson's own depth limit
        decode_rest(b'{"inputs": [{"name": "x", "datatype": "FP32", "shape": [1], "data": ' + b"[" * 3000
                    + b"]" * 3000 + b"}]}")


def test_binary_data_extension_splits_the_body_by_binary_data_size():
    a, b = np.arange(6, dtype=np.float32), np.array([7, 8], np.float32)
    head = body([{"name": "a", "datatype": "FP32", "shape": [2, 3], "parameters": {"binary_data_size": 24}},
                 {"name": "b", "datatype": "FP32", "shape": [1, 2], "parameters": {"binary_data_size": 8}}],
                parameters={"binary_data_output": True})
    request = decode_rest(head + a.tobytes() + b.tobytes(), str(len(head)))
    np.testing.assert_array_equal(request.inputs[0].data, a)
    np.testing.assert_array_equal(request.inputs[1].data, b)
    assert request.binary_default
    with pytest.raises(RequestError, match="no input claims"):
        decode_rest(head + a.tobytes() + b.tobytes() + b"xx", str(len(head)))
    with pytest.raises(RequestError, match="binary_data_size"):
        decode_rest(head + a.tobytes(), str(len(head)))
    with pytest.raises(RequestError, match="Inference-Header-Content-Length"):
        decode_rest(head, "99999")


def test_binary_responses_carry_their_size_and_header_length():
    request = decode_rest(body([fp32()], outputs=[{"name": "probabilities", "parameters": {"binary_data": True}}]))
    probs = np.array([[0.25, 0.75]], np.float32)
    content, header_length = encode_rest("m", request, {"probabilities": probs})
    head = json.loads(content[:header_length])
    assert head["outputs"][0]["parameters"]["binary_data_size"] == 8 and "data" not in head["outputs"][0]
    np.testing.assert_array_equal(np.frombuffer(content[header_length:], "<f4"), probs.ravel())
    content, header_length = encode_rest("m", decode_rest(body([fp32()])), {"probabilities": probs})
    assert header_length is None and json.loads(content)["outputs"][0]["data"] == [0.25, 0.75]


@pytest.mark.parametrize("raw, field", [
    (b"[]", "body"), (b'{"inputs": []}', "inputs"), (b'{"inputs": [3]}', "inputs[0]"),
    (b'{"inputs": [{"name": "x", "datatype": "FP32", "shape": [1]}]}', "inputs[x].data"),
    (b'{"inputs": [{"name": "x", "datatype": "FP32", "shape": [1], "data": [1], "parameters": 3}]}',
     "inputs[x].parameters"),
    (b'{"inputs": [{"name": "x", "datatype": "FP32", "shape": [1], "data": [1]}], "outputs": [{}]}', "outputs[0]"),
    (b'{"inputs": [{"name": "x", "datatype": "FP32", "shape": [1], "data": [1]}], "id": 5}', "id"),
])
def test_malformed_rest_bodies_name_the_field(raw, field):
    with pytest.raises(RequestError) as err:
        decode_rest(raw)
    assert err.value.field == field


def test_shape_product_is_bounded_before_any_allocation():
    with pytest.raises(RequestError, match=str(MAX_ELEMENTS)):
        tensor_from_json("x", "FP32", [MAX_ELEMENTS, 2], [])


# --- the guard's route policy ------------------------------------------------------------------------------


@pytest.mark.parametrize("method, path, public", [
    ("GET", "/v2/health/ready", True), ("GET", "/v2/models/m", True), ("GET", "/v2/models/m/versions/1/ready", True),
    ("POST", "/v2/repository/index", True), ("GET", "/status", True), ("GET", "/models", True),
    ("POST", "/v2/models/m/infer", True), ("POST", "/v2/models/m/generate", True), ("POST", "/json", True),
    ("POST", "/v2/repository/models/m/load", False), ("POST", "/upload", False), ("DELETE", "/delete/m", False),
    ("POST", "/v2/models/m/new_route_of_mlserver", False), ("GET", "/anything", False),
    ("PUT", "/v2/models/m/infer", False), ("POST", "/v2/models/m/infer/x", False),
])
def test_routes_are_public_only_by_the_allow_list(method, path, public):
    assert is_public(method, path) is public


def test_protected_inference_covers_infer_generate_and_tfaas_json():
    for path in ("/v2/models/m/infer", "/v2/models/m/generate", "/v2/models/m/versions/2/generate", "/json"):
        assert not is_public("POST", path, protect_infer=True)
    assert is_public("GET", "/v2/health/live", protect_infer=True)


# --- the batcher ------------------------------------------------------------------------------------------


def test_a_failed_merge_is_retried_so_each_request_gets_its_own_answer():
    calls = []

    async def run(feed):
        x = feed["x"]
        calls.append(len(x))
        if len(x) > 1:
            raise RuntimeError("Reshape: cannot reshape to [1, 5]")
        return x * 2

    async def main():
        batcher = Batcher(run, max_batch_size=8, max_batch_time=0.05, name="m")
        feeds = [{"x": np.full((1, 1), i, np.float32)} for i in range(5)]
        return await asyncio.gather(*(batcher.predict(f) for f in feeds))

    results = asyncio.run(main())
    assert [float(r[0, 0]) for r in results] == [0, 2, 4, 6, 8]
    assert calls[0] == 5 and calls[1:] == [1] * 5


def test_only_the_request_that_fails_alone_gets_the_error():
    async def run(feed):
        if np.any(feed["x"] < 0):
            raise RuntimeError("bad row")
        return feed["x"]

    async def main():
        batcher = Batcher(run, max_batch_size=4, max_batch_time=0.05)
        feeds = [{"x": np.full((1, 1), v, np.float32)} for v in (1, -1, 3)]
        return await asyncio.gather(*(batcher.predict(f) for f in feeds), return_exceptions=True)

    good, bad, other = asyncio.run(main())
    assert float(good[0, 0]) == 1 and float(other[0, 0]) == 3 and isinstance(bad, RuntimeError)


# --- uploads ----------------------------------------------------------------------------------------------


def tarball(members, mode="w:gz"):
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode=mode) as tar:
        for info, data in members:
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return buffer.getvalue()


def file_info(name, size):
    info = tarfile.TarInfo(name)
    info.size = size
    return info


def test_a_huge_member_is_refused_from_its_header_before_anything_is_written(tmp_path):
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        tar.addfile(file_info("m/model.onnx", 4 * 2**30), None)  # header only
    with pytest.raises(RequestError, match="over the limit") as err:
        uploads.install(tmp_path, "big", buffer.getvalue() + b"\0" * 1024, filename="m.tar")
    assert err.value.status == 413
    assert not list(tmp_path.iterdir())  # scratch gone, nothing written


def test_a_tarball_of_a_million_headers_stops_at_the_member_limit(tmp_path):
    members = [(file_info(f"m/f{i}", 0), b"") for i in range(200)]
    with pytest.raises(RequestError, match="more than 64 entries"):
        uploads.install(tmp_path, "many", tarball(members), filename="m.tar.gz")


def test_the_expanded_size_is_checked_against_the_free_space(tmp_path, monkeypatch):
    free = shutil.disk_usage(tmp_path).free
    limits = uploads.UploadLimits(member_bytes=2**62, total_bytes=2**62, reserve_bytes=free - 100)
    with pytest.raises(RequestError, match="to spare") as err:
        uploads.install(tmp_path, "full", tarball([(file_info("m/a", 1000), b"x" * 1000)]), filename="m.tar.gz",
                        limits=limits)
    assert err.value.status == 507


def test_a_bare_model_larger_than_the_free_space_is_refused(tmp_path):
    free = shutil.disk_usage(tmp_path).free
    limits = uploads.UploadLimits(reserve_bytes=free - 100)
    with pytest.raises(RequestError, match="to spare") as err:
        uploads.install(tmp_path, "bare", b"\0" * 1000, filename="model.onnx", limits=limits)
    assert err.value.status == 507 and not list(tmp_path.iterdir())


@pytest.mark.parametrize("kind", [tarfile.SYMTYPE, tarfile.LNKTYPE, tarfile.CHRTYPE])
def test_links_and_devices_in_a_tarball_are_refused(tmp_path, kind):
    info = tarfile.TarInfo("m/model.onnx")
    info.type, info.linkname = kind, "/etc/passwd"
    with pytest.raises(RequestError, match="only regular files"):
        uploads.install(tmp_path, "links", tarball([(info, None)]), filename="m.tar.gz")


@pytest.mark.parametrize("name", ["/etc/passwd", "../outside", "a/../../b", "./model.onnx", "a//b", ""])
def test_a_model_card_may_only_name_files_inside_its_directory(tmp_path, name):
    (tmp_path / "model.json").write_text(json.dumps({"files": {"float32": {"file": name, "sha256": "0"}}}))
    with pytest.raises(RequestError) as err:
        check_card_files(tmp_path)
    assert "relative path inside" in str(err.value) and "passwd" not in str(err.value).replace(repr(name), "")


def test_card_errors_say_the_same_for_existing_and_missing_host_files(tmp_path):
    messages = []
    for host in ("/etc/hostname", "/no/such/file"):
        (tmp_path / "model.json").write_text(json.dumps({"files": {"f": {"file": host, "sha256": "0"}}}))
        with pytest.raises(RequestError) as err:
            check_card_files(tmp_path)
        messages.append(str(err.value).replace(host, "X"))
    assert messages[0] == messages[1]


def test_a_model_card_naming_a_link_is_refused(tmp_path):
    (tmp_path / "real").write_bytes(b"x")
    os.symlink("/etc/hostname", tmp_path / "model.onnx")
    (tmp_path / "model.json").write_text(json.dumps({"files": {"f": {"file": "model.onnx", "sha256": "0"}}}))
    with pytest.raises(RequestError, match="link"):
        check_card_files(tmp_path)


def _crashing_rename(monkeypatch, after):
    real, calls = os.rename, []

    def rename(src, dst):
        if len(calls) == after:
            raise KeyboardInterrupt("crash")  # not an Exception: nothing in install cleans up after it
        calls.append((src, dst))
        real(src, dst)

    monkeypatch.setattr(uploads.os, "rename", rename)


@pytest.mark.parametrize("crash_after", [0, 1, 2, 3])
def test_recovery_after_a_crash_at_each_step_of_a_replacement_never_loses_the_model(tmp_path, monkeypatch,
                                                                                      crash_after):
    old, new = tmp_path / "old", tmp_path / "new"
    for folder, text in ((old, "old"), (new, "new")):
        folder.mkdir()
        (folder / "model.onnx").write_text(text)
    root = tmp_path / "models"
    root.mkdir()
    shutil.copytree(old, root / "m")
    shutil.copytree(new, root / ".upload-m-abcd1234")
    _crashing_rename(monkeypatch, crash_after)
    try:
        uploads._replace(root / ".upload-m-abcd1234", root / "m")
        crashed = False
    except KeyboardInterrupt:
        crashed = True
    monkeypatch.undo()
    actions = uploads.recover(root)
    assert sorted(p.name for p in root.iterdir()) == ["m"]  # no scratch left, the model in place
    text = (root / "m" / "model.onnx").read_text()
    # before the old model went aside: rolled back; after: the checked new model is completed
    assert text == ("old" if crash_after < 2 else "new")
    assert crashed == (crash_after < 3) and (bool(actions) or crash_after == 3)


def test_recovery_removes_stale_upload_scratch(tmp_path):
    (tmp_path / ".upload-m-x1y2z3w4").mkdir()
    (tmp_path / ".upload-m-x1y2z3w4" / "big").write_bytes(b"\0" * 1000)
    (tmp_path / ".removed-m-0123abcd").mkdir()
    (tmp_path / "m").mkdir()
    uploads.recover(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m"]
