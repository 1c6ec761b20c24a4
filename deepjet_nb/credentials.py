"""Credentials that outlive a long training: a Kerberos ticket and a WLCG bearer token, checked and renewed.

Reading EOS over XRootD (``root://``) needs a Kerberos ticket or a bearer token, and a training of many hours
outlives both. :class:`CredentialMonitor` checks them before training and then periodically:

- Kerberos: ``klist -s`` says whether the ticket cache holds a valid ticket; ``klist`` (run in the C locale)
  gives the ticket-granting ticket's expiry and "renew until". Within ``margin`` seconds of expiry a renewable
  ticket is renewed with ``kinit -R``.
- Bearer token, found as the WLCG Bearer Token Discovery describes: the ``BEARER_TOKEN`` variable, the file
  ``BEARER_TOKEN_FILE``, ``$XDG_RUNTIME_DIR/bt_u<uid>``, ``/tmp/bt_u<uid>``. Its expiry is the JWT ``exp`` claim.
  The monitor does not mint tokens (oidc-agent or htgettoken does, into the same file); it reads the token
  again at every check, so a refreshed token is picked up.

Within ``margin`` of expiry it warns (dashboard, log) with the time left. When a credential in use cannot be
renewed and would expire before the next safe point (the end of the next epoch, or ``stop_margin`` seconds
inside an epoch), it asks the trainer to stop: the last epoch's checkpoint stays, and the message says to renew
the credential and resume. :func:`credential_callback` makes the Keras callback the trainer runs
(docs/custom_models.md).

>>> monitor = CredentialMonitor(margin=3600, interval=600)          # doctest: +SKIP
>>> Trainer("deepjet", data, out, credentials=monitor)              # doctest: +SKIP
"""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import subprocess
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from .errors import ArgumentError

__all__ = ["Credential", "CredentialMonitor", "Check", "kerberos_ticket", "renew_kerberos", "bearer_token",
           "jwt_expiry", "credential_callback", "uses_remote_inputs", "monitor_option"]

KERBEROS = "Kerberos ticket"
TOKEN = "bearer token"
# Date forms of `klist` (MIT in the C locale, newer MIT, ISO, Heimdal).
_DATE_FORMATS = ("%m/%d/%y %H:%M:%S", "%m/%d/%Y %H:%M:%S", "%Y-%m-%d %H:%M:%S", "%b %d %H:%M:%S %Y",
                 "%d.%m.%Y %H:%M:%S")
_DATE = re.compile(r"\d{2}/\d{2}/\d{2,4} \d{2}:\d{2}:\d{2}|\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}|"
                   r"[A-Z][a-z]{2} +\d{1,2} \d{2}:\d{2}:\d{2} \d{4}|\d{2}\.\d{2}\.\d{4} \d{2}:\d{2}:\d{2}")
_TIMEOUT_S = 30  # for klist and kinit: a hung KDC must not hang the training


@dataclass(frozen=True)
class Credential:
    """One credential: ``kind`` (:data:`KERBEROS` or :data:`TOKEN`), ``valid``, ``expires`` and
    ``renew_until`` (Unix seconds; None when unknown or not renewable), ``where`` (the cache or token file)."""

    kind: str
    valid: bool
    expires: float | None = None
    renew_until: float | None = None
    where: str = ""

    def left(self, now: float) -> float | None:
        """Seconds until expiry (0 once expired or invalid; None when the expiry is unknown)."""
        if not self.valid:
            return 0.0
        return None if self.expires is None else max(self.expires - now, 0.0)


@dataclass(frozen=True)
class Check:
    """The outcome of one check: ``action`` "ok", "warn" or "stop", and the ``messages`` to show."""

    action: str
    messages: tuple[str, ...] = ()


def kerberos_ticket() -> Credential | None:
    """The Kerberos ticket of the default cache; None when Kerberos is not installed (no ``klist``) or the
    cache holds no ticket at all."""
    if shutil.which("klist") is None:
        return None
    valid = _run(["klist", "-s"]) == 0
    listing = _output(["klist"])
    if not valid and not listing.strip():
        return None
    expires, renew_until = _ticket_times(listing)
    cache = next((line.split(":", 1)[1].strip() for line in listing.splitlines()
                  if line.lower().startswith("ticket cache")), "")
    if expires is None and renew_until is None and not valid and "krbtgt" not in listing:
        return None  # klist printed an error ("no credentials cache found"), not a ticket
    return Credential(KERBEROS, valid, expires, renew_until, cache)


def renew_kerberos() -> bool:
    """``kinit -R``: renew the ticket without a password (only a renewable, unexpired one). True on success."""
    return shutil.which("kinit") is not None and _run(["kinit", "-R"]) == 0


def bearer_token(environ: dict | None = None, uid: int | None = None) -> Credential | None:
    """The bearer token found by WLCG discovery (module docstring); None when there is none. A token that is
    not a JWT, or has no ``exp``, counts as valid with an unknown expiry."""
    env = os.environ if environ is None else environ
    uid = os.getuid() if uid is None else uid
    if env.get("BEARER_TOKEN"):
        token, where = env["BEARER_TOKEN"].strip(), "BEARER_TOKEN"
    else:
        path = _token_file(env, uid)
        if path is None:
            return None
        try:
            token, where = path.read_text().strip(), str(path)
        except OSError:
            return Credential(TOKEN, False, where=str(path))
    expires = jwt_expiry(token)
    return Credential(TOKEN, bool(token) and (expires is None or expires > time.time()), expires, where=where)


def jwt_expiry(token: str) -> float | None:
    """The ``exp`` claim (Unix seconds) of a JWT, read without verifying the signature; None when ``token`` is
    not a JWT or has no ``exp``."""
    parts = token.split(".")
    if len(parts) != 3:
        return None
    try:
        payload = json.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
        return float(payload["exp"])
    except (ValueError, KeyError, TypeError):
        return None


def monitor_option(value):
    """``value`` if it is a valid ``credentials`` option of the Trainer: "auto", True, False or a
    :class:`CredentialMonitor`; raises :class:`ArgumentError` otherwise."""
    if value in ("auto", True, False) or isinstance(value, CredentialMonitor):
        return value
    raise ArgumentError(f"credentials must be 'auto', True, False or a CredentialMonitor, got {value!r}")


def uses_remote_inputs(data, manifest: dict | None = None) -> bool:
    """Whether a training reads ``root://`` inputs: its data is such a URL, or its dataset was converted from
    such files (the same session then reads them again, e.g. to predict)."""
    sources = [s.get("source", "") for s in (manifest or {}).get("shards", [])]
    return any(str(p).startswith("root://") for p in (str(data), *sources))


class CredentialMonitor:
    """Checks (and renews) the credentials of a training; see the module docstring.

    Parameters: ``margin`` seconds before expiry from which to renew and warn (default 1 h); ``stop_margin``
    the fewest seconds of validity to go on with inside an epoch (default 10 min); ``interval`` seconds between
    checks inside an epoch (default 5 min); ``kerberos`` and ``token`` whether to watch each (default: both,
    each only if present when training starts); ``clock`` for tests.
    """

    def __init__(self, *, margin: float = 3600.0, stop_margin: float = 600.0, interval: float = 300.0,
                 kerberos: bool = True, token: bool = True, clock=time.time):
        for name, value in (("margin", margin), ("stop_margin", stop_margin), ("interval", interval)):
            if not isinstance(value, (int, float)) or value < 0:
                raise ArgumentError(f"CredentialMonitor: {name} must be a number of seconds >= 0, got {value!r}")
        self.margin, self.stop_margin, self.interval = float(margin), float(stop_margin), float(interval)
        self.watch = {KERBEROS: kerberos, TOKEN: token}
        self.clock = clock
        self.in_use: set[str] = set()
        self.last_check = -float("inf")
        self.status: dict[str, Credential] = {}

    def start(self) -> Check:
        """First check, before training: note which credentials are in use, renew and warn as needed."""
        found = self._read()
        self.in_use = {kind for kind, cred in found.items() if cred is not None and cred.valid}
        messages = []
        if not self.in_use:
            messages.append("no valid Kerberos ticket or bearer token found: reading root:// inputs may fail "
                            "(kinit, or set BEARER_TOKEN_FILE)")
        check = self.check(need_s=0.0)
        return Check("warn" if messages and check.action == "ok" else check.action, (*messages, *check.messages))

    def due(self) -> bool:
        """Whether ``interval`` seconds have passed since the last check."""
        return self.clock() - self.last_check >= self.interval

    def check(self, need_s: float = 0.0) -> Check:
        """Check every credential in use; ``need_s`` the seconds of validity needed until the next safe point
        (the expected duration of the next epoch at an epoch's end, 0 inside an epoch). Renews a Kerberos
        ticket within ``margin`` of expiry."""
        now = self.clock()
        self.last_check = now
        messages, action = [], "ok"
        for kind, cred in self._read().items():
            if kind not in self.in_use:
                continue
            if kind == KERBEROS and cred is not None and self._wants_renewal(cred, now):
                cred, note = self._renew(cred, now)
                messages.append(note)
            left = cred.left(now) if cred is not None else 0.0
            if left is None:
                continue
            if left <= max(self.stop_margin, need_s + self.stop_margin if need_s else 0.0):
                action = "stop"
                messages.append(f"{kind} {_expiry_text(left)} and cannot be renewed here ({_how_to_renew(kind)})")
            elif left <= self.margin:
                action = "warn" if action == "ok" else action
                messages.append(f"{kind} {_expiry_text(left)} ({_how_to_renew(kind)} before then)")
        return Check(action, tuple(messages))

    # -- private --------------------------------------------------------------------------------------------

    def _read(self) -> dict[str, Credential | None]:
        found = {}
        if self.watch[KERBEROS]:
            found[KERBEROS] = kerberos_ticket()
        if self.watch[TOKEN]:
            found[TOKEN] = bearer_token()
        self.status = {k: v for k, v in found.items() if v is not None}
        return found

    def _wants_renewal(self, cred: Credential, now: float) -> bool:
        left = cred.left(now)
        # klist prints "renew until" only for a renewable ticket
        renewable = cred.renew_until is not None and cred.renew_until > now
        return cred.valid and renewable and left is not None and left <= self.margin

    def _renew(self, cred: Credential, now: float) -> tuple[Credential, str]:
        if renew_kerberos():
            renewed = kerberos_ticket() or cred
            left = renewed.left(self.clock())
            if left is not None and (cred.left(now) is None or left > cred.left(now)):
                return renewed, f"renewed the {KERBEROS} (kinit -R): {_expiry_text(left)}"
            return renewed, f"kinit -R ran, but the {KERBEROS} {_expiry_text(left)} (renewal limit reached)"
        return cred, f"could not renew the {KERBEROS} (kinit -R failed)"


def monitor_for(option, data, manifest: dict | None = None) -> CredentialMonitor | None:
    """The monitor a training uses for its ``credentials`` option (:func:`monitor_option`): "auto" watches when
    it reads ``root://`` inputs (:func:`uses_remote_inputs`); None when nothing is watched."""
    if option == "auto":
        option = uses_remote_inputs(data, manifest)
    if option is False:
        return None
    return CredentialMonitor() if option is True else option


def credential_callback(monitor: CredentialMonitor, *, on_message, on_stop):
    """The Keras callback running ``monitor``: at the start of training, at each epoch's end (needing the last
    epoch's duration of validity) and every ``monitor.interval`` seconds between batches. ``on_message(text)``
    receives each warning; ``on_stop(text)`` is called (once) when training must stop."""
    import keras

    class CredentialCallback(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.epoch_start = None
            self.epoch_s = 0.0
            self.stopped = False

        def on_train_begin(self, logs=None):
            self._act(monitor.start())

        def on_epoch_begin(self, epoch, logs=None):
            self.epoch_start = time.perf_counter()

        def on_train_batch_end(self, batch, logs=None):
            if monitor.due():
                self._act(monitor.check(need_s=0.0))

        def on_epoch_end(self, epoch, logs=None):
            if self.epoch_start is not None:
                self.epoch_s = time.perf_counter() - self.epoch_start
            self._act(monitor.check(need_s=self.epoch_s))

        def _act(self, check: Check):
            for message in check.messages:
                on_message(message)
            if check.action == "stop" and not self.stopped:
                self.stopped = True
                on_stop("; ".join(m for m in check.messages if "cannot be renewed" in m))
                self.model.stop_training = True

    return CredentialCallback()


# -- private ----------------------------------------------------------------------------------------------------


def _run(command) -> int:
    try:
        return subprocess.run(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              timeout=_TIMEOUT_S, env={**os.environ, "LC_ALL": "C"}).returncode
    except (OSError, subprocess.TimeoutExpired):
        return 1


def _output(command) -> str:
    try:
        return subprocess.run(command, capture_output=True, text=True, timeout=_TIMEOUT_S,
                              env={**os.environ, "LC_ALL": "C"}).stdout
    except (OSError, subprocess.TimeoutExpired):
        return ""


def _ticket_times(listing: str) -> tuple[float | None, float | None]:
    """(expiry, renew until) of the ticket-granting ticket (``krbtgt/``; else the first ticket) in ``klist``
    output."""
    lines = listing.splitlines()
    rows = [i for i, line in enumerate(lines) if len(_DATE.findall(line)) >= 2]
    if not rows:
        return None, None
    row = next((i for i in rows if "krbtgt/" in lines[i]), rows[0])
    expires = _parse_date(_DATE.findall(lines[row])[1])
    renew = None
    if row + 1 < len(lines) and "renew until" in lines[row + 1]:
        dates = _DATE.findall(lines[row + 1])
        renew = _parse_date(dates[0]) if dates else None
    return expires, renew


def _parse_date(text: str) -> float | None:
    text = re.sub(r" +", " ", text)
    for form in _DATE_FORMATS:
        try:
            return datetime.strptime(text, form).timestamp()  # klist prints local time
        except ValueError:
            continue
    return None


def _token_file(env, uid) -> Path | None:
    if env.get("BEARER_TOKEN_FILE"):
        return Path(env["BEARER_TOKEN_FILE"])
    candidates = [Path(env["XDG_RUNTIME_DIR"]) / f"bt_u{uid}"] if env.get("XDG_RUNTIME_DIR") else []
    candidates.append(Path("/tmp") / f"bt_u{uid}")
    return next((p for p in candidates if p.is_file()), None)


def _expiry_text(left: float | None) -> str:
    if left is None:
        return "has an unknown expiry"
    if left <= 0:
        return "has expired"
    hours, rest = divmod(int(left), 3600)
    return f"expires in {hours} h {rest // 60:02d} min" if hours else f"expires in {rest // 60} min {rest % 60:02d} s"


def _how_to_renew(kind: str) -> str:
    return "run kinit" if kind == KERBEROS else "refresh the token, e.g. with oidc-token or htgettoken"
