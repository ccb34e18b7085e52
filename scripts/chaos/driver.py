"""Chaos run against examples/postgres_receiver.rs: each message sent several times at once
with fresh tokens (as QStash's retries carry), the receiver SIGKILLed at random moments and
restarted, every message not yet answered 2xx sent again until it is; then each message's
effects (rows in `orders`) are counted: doubled (more than one) and lost (none, although a
2xx was seen).

Standard library only. Signs with the local dev server's public key (the receiver runs with
QSTASH_DEV=1). Prints one JSON line with the run's figures.
"""

import argparse
import base64
import hashlib
import hmac
import http.client
import json
import os
import random
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

DEV_KEY = b"sig_7kYjw48mhY7kAjqNGcy6cr29RJ6r"
PATH = "/api/webhook"


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def sign(url, body):
    now = int(time.time())
    header = b64url(b'{"alg":"HS256","typ":"JWT"}')
    claims = {
        "aud": "",
        "body": base64.urlsafe_b64encode(hashlib.sha256(body).digest()).decode(),
        "exp": now + 300,
        "iat": now,
        "iss": "Upstash",
        "jti": "jwt_" + secrets.token_hex(12),
        "nbf": now,
        "sub": url,
    }
    payload = b64url(json.dumps(claims, separators=(",", ":")).encode())
    mac = hmac.new(DEV_KEY, f"{header}.{payload}".encode(), hashlib.sha256).digest()
    return f"{header}.{payload}.{b64url(mac)}"


class Receiver:
    """The example receiver as a child process, killed with SIGKILL and restarted."""

    def __init__(self, binary, port, env):
        self.binary, self.port, self.env = binary, port, env
        self.child = None
        self.lock = threading.Lock()
        self.kills = 0

    def start(self):
        with self.lock:
            self.child = subprocess.Popen(
                [self.binary], env=self.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
            )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.child.poll() is not None:
                raise SystemExit(f"receiver exited with {self.child.returncode} at start")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                return
            except OSError:
                time.sleep(0.02)  # bounded polling for a child process to come up
        raise SystemExit("receiver did not come up within 60 s")

    def kill(self):
        with self.lock:
            if self.child and self.child.poll() is None:
                self.child.send_signal(signal.SIGKILL)
                self.child.wait()
                self.kills += 1


def send(port, url, message_id, retried, body):
    headers = {
        "Upstash-Signature": sign(url, body),
        "Upstash-Message-Id": message_id,
        "Upstash-Retried": str(retried),
        "Content-Type": "application/json",
        "User-Agent": "Upstash-QStash",
    }
    try:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=15)
        conn.request("POST", PATH, body=body, headers=headers)
        response = conn.getresponse()
        response.read()
        conn.close()
        return response.status
    except (OSError, http.client.HTTPException):
        return None


def count_effects(database_url, prefix):
    out = subprocess.run(
        ["psql", database_url, "-Atc",
         f"SELECT message_id, count(*) FROM orders WHERE message_id LIKE '{prefix}%' GROUP BY 1"],
        check=True, capture_output=True, text=True,
    ).stdout
    counts = {}
    for line in out.splitlines():
        message_id, n = line.rsplit("|", 1)
        counts[message_id] = int(n)
    return counts


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--binary", required=True)
    parser.add_argument("--mode", choices=["postgres", "redis"], required=True)
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--redis-url", default="")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--messages", type=int, default=300)
    parser.add_argument("--copies", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=24)
    parser.add_argument("--kill-min", type=float, default=0.05)
    parser.add_argument("--kill-max", type=float, default=0.5)
    parser.add_argument("--lease", type=int, default=2)
    parser.add_argument("--seed", type=int, default=None)
    args = parser.parse_args()
    rng = random.Random(args.seed)

    env = dict(os.environ, QSTASH_DEV="1", PORT=str(args.port), DATABASE_URL=args.database_url,
               INBOX_MODE=args.mode, REDIS_URL=args.redis_url,
               DEDUPE_LEASE_SECS=str(args.lease), DATABASE_POOL="16", RUST_LOG="off")
    env.pop("QSTASH_CURRENT_SIGNING_KEY", None)
    env.pop("QSTASH_NEXT_SIGNING_KEY", None)
    receiver = Receiver(args.binary, args.port, env)
    receiver.start()

    prefix = f"msg_{args.mode}_{secrets.token_hex(4)}_"
    url = f"http://127.0.0.1:{args.port}{PATH}"
    messages = {f"{prefix}{i}": json.dumps({"order": i, "item": "chaos"}).encode()
                for i in range(1, args.messages + 1)}
    answered = set()
    retried = Counter()
    statuses = Counter()
    stop = threading.Event()

    def killer():
        while not stop.wait(rng.uniform(args.kill_min, args.kill_max)):
            receiver.kill()
            if stop.is_set():
                break
            receiver.start()

    started = time.monotonic()
    chaos = threading.Thread(target=killer, daemon=True)
    chaos.start()
    rounds = 0
    with ThreadPoolExecutor(max_workers=args.concurrency) as pool:
        while len(answered) < len(messages) and rounds < 5000:
            rounds += 1
            before = len(answered)
            pending = [m for m in messages if m not in answered]
            jobs = []
            for message_id in pending:
                for _ in range(args.copies):
                    jobs.append((message_id, retried[message_id]))
                    retried[message_id] += 1
            rng.shuffle(jobs)
            futures = [(m, pool.submit(send, args.port, url, m, r, messages[m])) for m, r in jobs]
            for message_id, future in futures:
                status = future.result()
                statuses[str(status)] += 1
                if status is not None and 200 <= status < 300:
                    answered.add(message_id)
            if len(answered) == before:
                time.sleep(0.05)  # the receiver is down or every message busy: not a spin
    stop.set()
    chaos.join()
    kills = receiver.kills
    receiver.kill()
    elapsed = time.monotonic() - started

    counts = count_effects(args.database_url, prefix)
    doubled = sum(1 for m in messages if counts.get(m, 0) > 1)
    extra = sum(max(0, counts.get(m, 0) - 1) for m in messages)
    lost = sum(1 for m in answered if counts.get(m, 0) == 0)
    print(json.dumps({
        "mode": args.mode, "messages": len(messages), "copies": args.copies,
        "answered_2xx": len(answered), "doubled": doubled, "extra_effects": extra, "lost": lost,
        "kills": kills, "rounds": rounds,
        "requests": sum(statuses.values()), "statuses": dict(statuses),
        "seconds": round(elapsed, 1),
    }), flush=True)
    return 0 if len(answered) == len(messages) else 1


if __name__ == "__main__":
    sys.exit(main())
