"""Stop and interrupt while ``trainer.fit()`` blocks a real Jupyter kernel (no browser: the test plays the
front end over the kernel's messaging protocol, sending the click a browser would send)."""

import os
import queue
import time

import pytest

from fixtures.notebooks import ROOT

pytestmark = pytest.mark.slow

CHECK = ("d = trainer.dashboard\n"
         "print('RESULT', trainer.stop_reason, len(trainer.history), d._stop_button.description, "
         "d._stop_button.disabled, sep='|')")


@pytest.fixture
def kernel():
    from jupyter_client.manager import start_new_kernel

    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    km, kc = start_new_kernel(kernel_name="python3", env=env, startup_timeout=120)
    try:
        yield km, kc
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)


def _run(kc, code, timeout=120) -> str:
    out = []
    reply = kc.execute_interactive(code, timeout=timeout, output_hook=lambda m: out.append(
        m["content"].get("text", "")) if m["msg_type"] == "stream" else None)
    assert reply["content"]["status"] == "ok", reply["content"]
    return "".join(out)


def _start_fit(kc, data, run_dir):
    _run(kc, f"from deepjet_nb.train import Trainer\n"
             f"trainer = Trainer('deepcsv', {str(data)!r}, {str(run_dir)!r}, epochs=300, batch_size=16, "
             f"dashboard='widget')")
    return kc.execute("trainer.fit()")


def _until(kc, predicate, timeout):
    """Read IOPub messages until ``predicate(msg)`` returns something; return it."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            msg = kc.get_iopub_msg(timeout=1)
        except queue.Empty:
            continue
        found = predicate(msg)
        if found:
            return found
    pytest.fail(f"nothing expected arrived within {timeout} s")


def _stop_button_id(msg):
    content = msg["content"]
    if msg["msg_type"] == "comm_open":
        state = content.get("data", {}).get("state", {})
        if state.get("_model_name") == "ButtonModel" and state.get("description") == "Stop":
            return content["comm_id"]
    return None


def _stream_has(text):
    return lambda msg: msg["msg_type"] == "stream" and text in msg["content"]["text"]


def _reply(kc, msg_id, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            reply = kc.get_shell_msg(timeout=1)
        except queue.Empty:
            continue
        if reply["parent_header"].get("msg_id") == msg_id:
            return reply
    pytest.fail(f"fit() did not return within {timeout} s")


def test_stop_click_ends_a_blocking_fit_within_seconds(kernel, synthetic_deepcsv, tmp_path):
    km, kc = kernel
    msg_id = _start_fit(kc, synthetic_deepcsv, tmp_path / "run")
    button = _until(kc, _stop_button_id, 120)
    _until(kc, _stream_has("epoch 2/300"), 120)
    clicked = time.monotonic()
    kc.shell_channel.send(kc.session.msg("comm_msg", {"comm_id": button, "data": {
        "method": "custom", "content": {"event": "click"}}}))
    reply = _reply(kc, msg_id, 60)
    assert reply["content"]["status"] == "ok"
    assert time.monotonic() - clicked < 10
    reason, epochs, description, disabled = _run(kc, CHECK).split("RESULT|")[1].strip().split("|")
    assert (reason, description, disabled) == ("stopped", "Stopped", "True") and 2 <= int(epochs) < 300
    # The kernel is usable, and the Stopped run resumes from its checkpoint.
    assert "resumed" in _run(kc, "trainer.config.epochs = int(trainer.history[-1]['epoch']) + 1\n"
                                 "trainer.fit(); print(open(trainer.run.file('logs/train.log')).read())", 120)


def test_kernel_interrupt_leaves_a_final_dashboard_and_a_reason(kernel, synthetic_deepcsv, tmp_path):
    km, kc = kernel
    msg_id = _start_fit(kc, synthetic_deepcsv, tmp_path / "run")
    _until(kc, _stream_has("epoch 1/300"), 120)
    km.interrupt_kernel()
    reply = _reply(kc, msg_id, 60)
    assert reply["content"]["status"] == "error" and reply["content"]["ename"] == "KeyboardInterrupt"
    assert "training interrupted" in reply["content"]["evalue"]
    traceback = "\n".join(reply["content"]["traceback"])
    assert "keras" not in traceback and "tensorflow" not in traceback  # the cell and fit(), not TensorFlow
    reason, epochs, description, disabled = _run(kc, CHECK).split("RESULT|")[1].strip().split("|")
    assert (reason, description, disabled) == ("interrupted", "Interrupted", "True") and int(epochs) >= 1
    assert (tmp_path / "run" / "model.keras").is_file()  # the last finished epoch's model
