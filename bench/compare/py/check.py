"""The official Python receiver (PyPI `qstash`, pinned in run.sh) over the shared cases, and
its time for one verification of the 1 KiB bench token.

    python3 check.py check CASES OUT
    python3 check.py time BENCH OUT [MILLIS]

Run with PYTHONPATH=.deps (run.sh installs the package there). Clock: the receiver (through
PyJWT) reads `datetime.now(tz=timezone.utc)` in `jwt.api_jwt`; for each case that name is
replaced by a datetime whose now() is the case's instant (the timing run uses the real clock).
"""

import base64
import json
import sys
import time
import warnings
from datetime import datetime, timezone
from importlib.metadata import version

import jwt.api_jwt
from qstash import Receiver

NAME = f"qstash {version('qstash')} (Python, PyJWT {version('pyjwt')})"
_fake_now = None


class FakeDatetime(datetime):
    @classmethod
    def now(cls, tz=None):
        if _fake_now is None:
            return datetime.now(tz)
        return datetime.fromtimestamp(_fake_now, tz or timezone.utc)


jwt.api_jwt.datetime = FakeDatetime


def check(cases_path, out_path):
    global _fake_now
    # PyJWT warns about the bypass table's short test keys; the verdicts are what matter here.
    warnings.simplefilter("ignore")
    with open(cases_path) as f:
        cases = json.load(f)
    results = []
    for c in cases:
        raw = base64.b64decode(c["body_b64"])
        try:
            body = raw.decode("utf-8")
        except UnicodeDecodeError:
            results.append({"name": c["name"], "verdict": "n/a",
                            "detail": "the API takes the body as a str; this body is not UTF-8"})
            continue
        receiver = Receiver(current_signing_key=c["current_key"], next_signing_key=c["next_key"])
        _fake_now = c["now"]
        try:
            receiver.verify(signature=c["token"], body=body, url=c["url"],
                            clock_tolerance=c["tolerance_secs"])
            verdict, detail = "ok", ""
        except Exception as e:  # noqa: BLE001 - any exception is a refusal
            verdict, detail = "reject", f"{type(e).__name__}: {e}"[:160]
        finally:
            _fake_now = None
        results.append({"name": c["name"], "verdict": verdict, "detail": detail})
    with open(out_path, "w") as f:
        json.dump({"implementation": NAME, "clock": "injected (jwt.api_jwt.datetime replaced)",
                   "results": results}, f, indent=2)
        f.write("\n")


def time_it(bench_path, out_path, millis):
    with open(bench_path) as f:
        b = json.load(f)
    body = base64.b64decode(b["body_b64"]).decode("utf-8")
    receiver = Receiver(current_signing_key=b["current_key"], next_signing_key=b["next_key"])

    def verify():
        receiver.verify(signature=b["token"], body=body, url=b["url"], clock_tolerance=0)

    verify()  # raises if the bench token is refused
    ns = time.perf_counter_ns
    start, warm = ns(), 0
    while ns() - start < 300e6:
        verify()
        warm += 1
    per_call = (ns() - start) / warm
    batch = max(1, int(2e6 / per_call))
    samples = []
    start = ns()
    while ns() - start < millis * 1e6 or len(samples) < 51:
        t = ns()
        for _ in range(batch):
            verify()
        samples.append((ns() - t) / batch)
    samples.sort()

    def at(q):
        return samples[round((len(samples) - 1) * q)]

    with open(out_path, "w") as f:
        json.dump({"implementation": NAME, "median_ns": at(0.5), "p10_ns": at(0.1),
                   "p90_ns": at(0.9), "batches": len(samples), "batch_size": batch,
                   "iterations": len(samples) * batch}, f, indent=2)
        f.write("\n")


if __name__ == "__main__":
    mode, path, out = sys.argv[1:4]
    if mode == "check":
        check(path, out)
    elif mode == "time":
        time_it(path, out, int(sys.argv[4]) if len(sys.argv) > 4 else 3000)
    else:
        sys.exit("usage: check.py check CASES OUT | time BENCH OUT [MILLIS]")
