"""Credentials that outlive a training: Kerberos tickets (fake ``klist``/``kinit`` on PATH) and bearer tokens
(generated JWTs), the monitor's renew, warn and stop paths, and a training that stops cleanly and resumes."""

import base64
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from deepjet_nb import credentials as cr
from deepjet_nb.credentials import CredentialMonitor, bearer_token, jwt_expiry, kerberos_ticket
from deepjet_nb.errors import ArgumentError
from deepjet_nb.run import read_history
from deepjet_nb.train import CREDENTIALS_STOP, Trainer

ROOT = Path(__file__).resolve().parents[1]

# A fake MIT klist/kinit pair: the ticket lives in a JSON state file {"expires", "renew_until", "renewals"}.
FAKE_KLIST = '''#!{python}
import json, sys, time
state = json.load(open({state!r}))
now = time.time()
if "-s" in sys.argv[1:]:
    sys.exit(0 if state["expires"] > now else 1)
fmt = lambda t: time.strftime("%m/%d/%y %H:%M:%S", time.localtime(t))
print("Ticket cache: FILE:/tmp/krb5cc_test")
print("Default principal: physicist@CERN.CH")
print()
print("Valid starting       Expires              Service principal")
print(f"{{fmt(now - 3600)}}  {{fmt(state['expires'])}}  krbtgt/CERN.CH@CERN.CH")
if state.get("renew_until"):
    print(f"\\trenew until {{fmt(state['renew_until'])}}")
'''
FAKE_KINIT = '''#!{python}
import json, sys, time
path = {state!r}
state = json.load(open(path))
now = time.time()
if sys.argv[1:] != ["-R"] or not state.get("renew_until") or state["renew_until"] <= now or state["expires"] <= now:
    sys.exit(1)
state["expires"] = min(now + 10 * 3600, state["renew_until"])
state["renewals"] = state.get("renewals", 0) + 1
json.dump(state, open(path, "w"))
'''


class FakeKerberos:
    """Fake ``klist`` and ``kinit`` first on PATH, with a ticket whose times the test sets."""

    def __init__(self, directory: Path, monkeypatch):
        self.state = directory / "ticket.json"
        bin_dir = directory / "bin"
        bin_dir.mkdir()
        for name, text in (("klist", FAKE_KLIST), ("kinit", FAKE_KINIT)):
            path = bin_dir / name
            path.write_text(text.format(python=sys.executable, state=str(self.state)))
            path.chmod(0o755)
        monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
        self.bin = bin_dir

    def ticket(self, expires_in: float, renewable_for: float | None = None):
        now = time.time()
        state = {"expires": now + expires_in, "renew_until": now + renewable_for if renewable_for else None}
        self.state.write_text(json.dumps(state))

    @property
    def renewals(self) -> int:
        return json.loads(self.state.read_text()).get("renewals", 0)


@pytest.fixture
def kerberos(tmp_path, monkeypatch):
    monkeypatch.delenv("BEARER_TOKEN", raising=False)
    monkeypatch.setenv("BEARER_TOKEN_FILE", str(tmp_path / "no-token"))
    return FakeKerberos(tmp_path, monkeypatch)


def make_jwt(expires_in: float) -> str:
    """An unsigned JWT (header.payload.signature) whose ``exp`` lies ``expires_in`` seconds from now."""
    def part(obj):
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()

    return ".".join([part({"alg": "RS256", "typ": "JWT"}),
                     part({"sub": "physicist", "exp": int(time.time() + expires_in), "scope": "storage.read:/"}),
                     "c2lnbmF0dXJl"])


# -- reading credentials ---------------------------------------------------------------------------------------


def test_klist_listings_give_the_ticket_granting_tickets_expiry_and_renewal():
    mit = ("Ticket cache: FILE:/tmp/krb5cc_1000\nDefault principal: u@CERN.CH\n\n"
           "Valid starting       Expires              Service principal\n"
           "12/06/26 06:00:00  12/06/26 08:00:00  host/lxplus.cern.ch@CERN.CH\n"
           "12/06/26 06:00:00  12/07/26 07:00:00  krbtgt/CERN.CH@CERN.CH\n"
           "\trenew until 12/13/26 06:00:00\n")
    expires, renew = cr._ticket_times(mit)
    assert time.localtime(expires)[:5] == (2026, 12, 7, 7, 0)
    assert time.localtime(renew)[:5] == (2026, 12, 13, 6, 0)
    heimdal = ("Credentials cache: FILE:/tmp/krb5cc_1000\n  Issued                Expires               Principal\n"
               "Dec  6 06:00:00 2026  Dec  6 16:00:00 2026  krbtgt/CERN.CH@CERN.CH\n")
    expires, renew = cr._ticket_times(heimdal)
    assert time.localtime(expires)[:5] == (2026, 12, 6, 16, 0) and renew is None


def test_no_klist_on_path_means_no_kerberos(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))
    assert kerberos_ticket() is None


def test_fake_klist_ticket_is_read_with_its_times(kerberos):
    kerberos.ticket(expires_in=1800, renewable_for=86400)
    ticket = kerberos_ticket()
    assert ticket.valid and ticket.where == "FILE:/tmp/krb5cc_test"
    assert ticket.left(time.time()) == pytest.approx(1800, abs=5)
    assert ticket.renew_until == pytest.approx(time.time() + 86400, abs=5)


def test_jwt_expiry_comes_from_the_exp_claim():
    assert jwt_expiry(make_jwt(600)) == pytest.approx(time.time() + 600, abs=2)
    assert jwt_expiry("not-a-jwt") is None
    assert jwt_expiry("a.b.c") is None


def test_bearer_token_discovery_follows_the_wlcg_order(tmp_path):
    runtime = tmp_path / "run"
    runtime.mkdir()
    (runtime / "bt_u1234").write_text(make_jwt(3600) + "\n")
    (tmp_path / "file").write_text(make_jwt(60))
    found = bearer_token({"XDG_RUNTIME_DIR": str(runtime)}, uid=1234)
    assert found.where == str(runtime / "bt_u1234") and found.left(time.time()) == pytest.approx(3600, abs=3)
    found = bearer_token({"XDG_RUNTIME_DIR": str(runtime), "BEARER_TOKEN_FILE": str(tmp_path / "file")}, uid=1234)
    assert found.where == str(tmp_path / "file")
    found = bearer_token({"BEARER_TOKEN": make_jwt(5), "BEARER_TOKEN_FILE": str(tmp_path / "file")}, uid=1234)
    assert found.where == "BEARER_TOKEN"
    assert bearer_token({"XDG_RUNTIME_DIR": str(tmp_path / "empty")}, uid=987654) is None
    expired = bearer_token({"BEARER_TOKEN": make_jwt(-10)}, uid=1234)
    assert not expired.valid and expired.left(time.time()) == 0


# -- the monitor ---------------------------------------------------------------------------------------------


def test_a_renewable_ticket_near_expiry_is_renewed_with_kinit(kerberos):
    kerberos.ticket(expires_in=1200, renewable_for=7 * 86400)
    monitor = CredentialMonitor(margin=3600, stop_margin=300)
    check = monitor.start()
    assert check.action == "ok" and kerberos.renewals == 1
    assert any("renewed the Kerberos ticket (kinit -R): expires in 9 h" in m for m in check.messages)


def test_a_ticket_that_cannot_be_renewed_warns_with_the_time_left(kerberos):
    kerberos.ticket(expires_in=1800)  # not renewable
    check = CredentialMonitor(margin=3600, stop_margin=300).start()
    assert check.action == "warn" and kerberos.renewals == 0
    assert any("Kerberos ticket expires in 29 min" in m or "Kerberos ticket expires in 30 min" in m
               for m in check.messages)
    assert any("run kinit before then" in m for m in check.messages)


def test_a_ticket_expiring_before_the_next_epoch_ends_stops_training(kerberos):
    kerberos.ticket(expires_in=1800)
    monitor = CredentialMonitor(margin=3600, stop_margin=300)
    assert monitor.start().action == "warn"
    check = monitor.check(need_s=1700)  # the last epoch took 1700 s: the next one would not finish
    assert check.action == "stop" and "cannot be renewed" in check.messages[0]


def test_a_token_about_to_expire_stops_and_a_refreshed_one_is_picked_up(tmp_path, monkeypatch):
    token = tmp_path / "token"
    token.write_text(make_jwt(7200))
    monkeypatch.setenv("BEARER_TOKEN_FILE", str(token))
    monkeypatch.delenv("BEARER_TOKEN", raising=False)
    monitor = CredentialMonitor(margin=3600, stop_margin=600, kerberos=False)
    assert monitor.start().action == "ok" and monitor.in_use == {cr.TOKEN}
    token.write_text(make_jwt(2400))
    assert monitor.check().action == "warn"
    token.write_text(make_jwt(300))
    check = monitor.check()
    assert check.action == "stop" and "bearer token expires in 4 min" in check.messages[0]
    token.write_text(make_jwt(86400))  # oidc-agent wrote a fresh one
    assert monitor.check().action == "ok"


def test_monitor_checks_inside_an_epoch_only_every_interval():
    now = [1000.0]
    monitor = CredentialMonitor(interval=300, kerberos=False, token=False, clock=lambda: now[0])
    monitor.check()
    now[0] += 299
    assert not monitor.due()
    now[0] += 2
    assert monitor.due()


def test_bad_monitor_settings_are_argument_errors():
    with pytest.raises(ArgumentError, match="margin"):
        CredentialMonitor(margin=-1)
    with pytest.raises(ArgumentError, match="credentials must be"):
        Trainer("dense", "/nonexistent", "/tmp/x", credentials="always")


def test_the_monitor_is_on_by_default_only_for_root_urls():
    assert cr.uses_remote_inputs("root://eosuser.cern.ch//eos/user/p/physicist/data")
    assert cr.uses_remote_inputs("data/deepjet", {"shards": [{"source": "root://eoscms.cern.ch//eos/x.root"}]})
    assert not cr.uses_remote_inputs("data/deepjet", {"shards": [{"source": "/data/x.root"}]})


# -- in a training ---------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_training_stops_cleanly_when_the_ticket_cannot_be_renewed_and_resumes_after_kinit(
        kerberos, synthetic_deepcsv, tmp_path, capsys):
    import keras

    kerberos.ticket(expires_in=7 * 86400)

    class TicketRunsOut(keras.callbacks.Callback):
        """After epoch 1 the ticket has 2 minutes left and may not be renewed."""

        def on_epoch_end(self, epoch, logs=None):
            if epoch == 0:
                kerberos.ticket(expires_in=120)

    monitor = CredentialMonitor(margin=3600, stop_margin=300, interval=0)
    run = tmp_path / "run"
    trainer = Trainer("dense", synthetic_deepcsv, run, epochs=3, batch_size=32, dashboard="text",
                      credentials=monitor, callbacks=[TicketRunsOut()])
    trainer.fit()
    assert trainer.stop_reason == CREDENTIALS_STOP
    assert [r["epoch"] for r in read_history(run)] == [1]  # epoch 2 was cut at its first batch, not failed
    log = (run / "logs" / "train.log").read_text()
    assert "credentials: stopping: Kerberos ticket expires in 1 min" in log or \
        "credentials: stopping: Kerberos ticket expires in 2 min" in log
    assert "--resume" in log and "The checkpoint of epoch 1 is kept" in log
    assert "warning: credentials:" in capsys.readouterr().out  # shown in the dashboard's lines
    kerberos.ticket(expires_in=10 * 3600)  # the user ran kinit
    Trainer("dense", synthetic_deepcsv, run, resume=True, dashboard="off", credentials=monitor).fit()
    assert [r["epoch"] for r in read_history(run)] == [1, 2, 3]


@pytest.mark.slow
def test_cli_stops_with_exit_code_75_when_the_credential_is_about_to_expire(kerberos, synthetic_deepcsv, tmp_path):
    kerberos.ticket(expires_in=60)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "3"}
    out = subprocess.run([sys.executable, "-m", "deepjet_nb", "train", "--model", "dense", "--data",
                          str(synthetic_deepcsv), "--out", str(tmp_path / "run"), "--epochs", "2", "--batch-size", "32",
                          "--credentials", "on"], capture_output=True, text=True, env=env, timeout=300)
    assert out.returncode == 75, out.stderr[-2000:]
    assert "credentials expiring" in out.stdout and "Kerberos ticket expires in" in out.stdout
