#!/usr/bin/env python3
"""Custom clients for scripts/load.sh (Python 3 standard library only).

    client.py port                         a free TCP port on 127.0.0.1
    client.py bodies DIR                   the request bodies of every phase
    client.py big      --port P --token-file F --body-file F -n 64 [--pid PID]
    client.py chunked  --port P --token-file F -n 64 [--size 2097152]
    client.py trickle  --port P --token-file F -n 200 [--cap 30] [--limit 15]
    client.py junk     --port P --mode junk|none|wrongkey --write once|slow -n 120
                       [--token-file F (wrongkey)] [--pid PID]
    client.py budget   --port P --token-file F --body-file F -n 100 [--admit 64] [--pid PID]
    client.py slow     --port P --kind drip|partial|idle --token-file F --body-file F -n 80
                       [--every 0.2] [--duration 15] [--close-limit 15] [--cap 30]

`big` (phase B2): N valid deliveries of a body at the limit, all in flight at once: each
connection sends its headers and all but the last byte of its body, waits until every
connection got that far (and the receiver had a moment to read it), samples the receiver's
RSS, then all send their last byte. Expects 200 for each.

`chunked` (phase B1): N oversize uploads sent with Transfer-Encoding: chunked (no
Content-Length), all started together, streamed until the receiver answers. Expects 413
mid-stream, after a little more than the limit.

`trickle` (phase C): N connections that send valid headers with Content-Length: 1048576 and
then one byte a second. Each records the status it got, the time from its headers to the
answer (capped at --cap seconds) and whether the receiver then closed the connection.
Expects 408 within --limit seconds for the first --admit (64: each holds a body's worth of
the buffer budget until it times out), and 503 with Retry-After at once for the others.

`junk` (phase D): N connections, all opened first, each sending a head with
Content-Length: 1048576 and a junk token (`junk.junk.junk`), none, or a well-formed token
signed with a key the receiver does not have (--token-file), then 1 MiB - 1 of body, at once
or 16 KiB every --interval s. The answer is read while writing; writing goes on until the
receiver's close stops it. Expects 401 with Connection: close for each.

`budget` (phase E): N valid deliveries at the limit, more than the receiver's buffer budget
holds (--admit bodies): each sends its head and half its body, waits until every connection
got that far (and 1 s more), then those not yet answered send the rest. Expects exactly
--admit 200s (echoing their delivery) and the rest 503 with Retry-After, each answered before
the rest of its body was sent.

`slow` (phases F1-F3): N slow connections of one --kind (drip: a request line and a header
dripped a byte a second; partial: a whole head but its final CRLF, then silence; idle: one
valid delivery, then idle on the keep-alive connection), and once all are open, a valid
delivery every --every s for --duration s, each on a new connection. Records how long each
slow connection stayed open (from its connect to the receiver's FIN or reset, capped at
--cap s) and each valid delivery's status and latency. Expects every valid delivery 200
within --valid-cap s and every slow connection closed within --close-limit s.

Each command prints details and a final line "LOAD_RESULT key=value ..." for load.sh, and
exits 1 when its check fails.
"""

import argparse
import asyncio
import json
import os
import socket
import statistics
import sys
import time

LIMIT = 1048576
HOLD = 1.0  # big: seconds all bodies are held in flight before their last bytes go
WEBHOOK = "/api/webhook"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def padded_order(order, size):
    """A JSON order padded with a long "item" to exactly `size` bytes."""
    head = '{"order":%d,"item":"' % order
    tail = '"}'
    return (head + "x" * (size - len(head) - len(tail)) + tail).encode()


def write_bodies(directory):
    os.makedirs(directory, exist_ok=True)
    files = {
        "body_small.json": b'{"order":7,"item":"load test"}',
        # same length, another order: the token of body_small does not match it
        "body_tampered.json": b'{"order":8,"item":"load test"}',
        "body_1mib.json": padded_order(11, LIMIT),
        "body_2mib.json": padded_order(12, 2 * LIMIT),
    }
    for name, data in files.items():
        with open(os.path.join(directory, name), "wb") as f:
            f.write(data)
    assert len(files["body_1mib.json"]) == LIMIT
    json.loads(files["body_1mib.json"])


def read_token(path):
    with open(path, encoding="ascii") as f:
        return f.read().strip()


def memory(pid):
    """(VmRSS, VmHWM) of pid in kB, or (None, None)."""
    out = {}
    try:
        with open("/proc/%d/status" % pid, encoding="ascii") as f:
            for line in f:
                if line.startswith(("VmRSS:", "VmHWM:")):
                    key, value = line.split(":", 1)
                    out[key] = int(value.split()[0])
    except (OSError, ValueError):
        pass
    return out.get("VmRSS"), out.get("VmHWM")


def mib(kb):
    return "?" if kb is None else "%.1f MiB" % (kb / 1024)


def head(port, token, message_id, extra):
    """A delivery's head; token None sends no Upstash-Signature."""
    lines = [
        "POST %s HTTP/1.1" % WEBHOOK,
        "Host: 127.0.0.1:%d" % port,
        "Content-Type: application/json",
        "Upstash-Message-Id: %s" % message_id,
        "Upstash-Retried: 0",
    ] + ([] if token is None else ["Upstash-Signature: %s" % token]) + extra
    return ("\r\n".join(lines) + "\r\n\r\n").encode("ascii")


class Conn:
    """A raw non-blocking socket driven by the event loop's sock_* calls.

    Not asyncio streams: a stream transport closes the socket on the first failed write and
    drops an answer that already sits in the kernel's receive buffer (a receiver that
    answers 413 and closes mid-upload makes the next write fail). Here writing and reading
    are independent: the answer is still read after a write failed.
    """

    def __init__(self, sock):
        self.sock = sock
        self.buf = b""
        self.loop = asyncio.get_running_loop()

    @classmethod
    async def open(cls, port):
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setblocking(False)
        await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", port))
        return cls(sock)

    async def send(self, data):
        await self.loop.sock_sendall(self.sock, data)

    async def _more(self):
        data = await self.loop.sock_recv(self.sock, 65536)
        if not data:
            raise ConnectionError("closed by the receiver before a whole answer")
        self.buf += data

    async def read_response(self):
        """One response: (status, headers dict, body). Raises on EOF or reset."""
        while b"\r\n\r\n" not in self.buf:
            await self._more()
        head_bytes, self.buf = self.buf.split(b"\r\n\r\n", 1)
        lines = head_bytes.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        length = int(headers.get("content-length", "0"))
        while len(self.buf) < length:
            await self._more()
        body, self.buf = self.buf[:length], self.buf[length:]
        return status, headers, body

    async def after_answer(self, headers, wait=2.0):
        """What the receiver did with the connection after its answer."""
        close = ", with connection: close" if headers.get("connection", "").lower() == "close" else ""
        try:
            more = await asyncio.wait_for(self.loop.sock_recv(self.sock, 1), wait)
        except asyncio.TimeoutError:
            return "left open%s" % close
        except (ConnectionResetError, BrokenPipeError):
            return "closed (reset)%s" % close
        if more:
            return "sent more data?!"
        return "closed (FIN)%s" % close

    def close(self):
        self.sock.close()


def percentile(values, p):
    if not values:
        return float("nan")
    ordered = sorted(values)
    k = max(0, min(len(ordered) - 1, int(round(p / 100 * len(ordered) + 0.5)) - 1))
    return ordered[k]


def result_line(n, wall, times, statuses, check, **extra):
    def ms(t):
        return "%.1f" % (t * 1000) if times else "-"

    fields = {
        "requests": n,
        "rps": "%.1f" % (n / wall if wall > 0 else 0),
        "p50_ms": ms(percentile(times, 50)),
        "p99_ms": ms(percentile(times, 99)),
        "max_ms": ms(max(times) if times else 0),
        "statuses": ",".join("%s:%d" % (k, v) for k, v in sorted(statuses.items())),
    }
    fields.update(extra)
    fields["check"] = check
    print("LOAD_RESULT " + " ".join("%s=%s" % (k, v) for k, v in fields.items()), flush=True)


def count(values):
    out = {}
    for v in values:
        out[str(v)] = out.get(str(v), 0) + 1
    return out


# ---------------------------------------------------------------------------------------
# phase B2: N valid uploads at the limit, all in flight at once


async def big(args):
    token = read_token(args.token_file)
    with open(args.body_file, "rb") as f:
        body = f.read()
    n = args.n
    ready = 0
    all_ready = asyncio.Event()
    held = {}

    async def one(k):
        nonlocal ready
        start = time.monotonic()
        conn = await Conn.open(args.port)
        try:
            await conn.send(head(args.port, token, "msg_load_big_%d" % k,
                                 ["Content-Length: %d" % len(body)]) + body[:-1])
            ready += 1
            if ready == n:
                all_ready.set()
            await all_ready.wait()
            if "rss" not in held:
                held["rss"] = None  # only the first task samples
                await asyncio.sleep(HOLD)  # let the receiver read what the kernel buffers
                held["rss"] = memory(args.pid) if args.pid else (None, None)
            else:
                while held["rss"] is None:
                    await asyncio.sleep(0.05)
            uploaded = time.monotonic() - start
            last = time.monotonic()
            await conn.send(body[-1:])
            status, _, reply = await conn.read_response()
            answered = time.monotonic() - last
            echoed = False
            if status == 200:
                echo = json.loads(reply)
                echoed = (echo.get("message_id") == "msg_load_big_%d" % k
                          and echo["payload"]["order"] == 11)
            return status, echoed, answered, uploaded
        except (ConnectionError, OSError, ValueError, IndexError, KeyError) as e:
            return "error_%s" % type(e).__name__, False, time.monotonic() - start, 0.0
        finally:
            conn.close()

    t0 = time.monotonic()
    results = await asyncio.wait_for(asyncio.gather(*(one(k) for k in range(n))), args.cap)
    wall = time.monotonic() - t0 - HOLD
    statuses = count(r[0] for r in results)
    times = [r[2] for r in results]
    uploads = [r[3] for r in results]
    rss, hwm = held.get("rss") or (None, None)
    print("  %d uploads of %d bytes, all sent but their last byte before any was finished"
          % (n, len(body)))
    print("  receiver while holding all %d bodies: VmRSS %s, VmHWM %s (bodies alone: %.1f MiB)"
          % (n, mib(rss), mib(hwm), n * len(body) / 1048576))
    print("  statuses: %s; 200s echoing their own message id and order: %d"
          % (statuses, sum(1 for r in results if r[1])))
    print("  time to send all but the last byte (all %d at once): min %.0f ms, median %.0f ms, max %.0f ms"
          % (n, min(uploads) * 1000, statistics.median(uploads) * 1000, max(uploads) * 1000))
    print("  time from the last byte to the whole answer (verify 1 MiB, handler, 1 MiB echo): min %.0f ms,"
          " median %.0f ms, max %.0f ms" % (min(times) * 1000, statistics.median(times) * 1000,
                                           max(times) * 1000))
    print("  wall time without the %.0f s hold: %.2f s" % (HOLD, wall))
    ok = statuses == {"200": n} and all(r[1] for r in results)
    if not ok:
        print("CHECK FAILED: expected %d x 200 echoing each delivery" % n)
    result_line(n, wall, times, statuses, "ok" if ok else "FAIL",
                rss_holding_kb=rss if rss is not None else "?")
    return 0 if ok else 1


# ---------------------------------------------------------------------------------------
# phase B1: N oversize uploads, chunked


async def chunked(args):
    token = read_token(args.token_file)
    n = args.n
    chunk = b"x" * args.chunk
    started = 0
    go = asyncio.Event()

    async def one(k):
        nonlocal started
        conn = await Conn.open(args.port)
        sent = 0
        write_error = None
        try:
            # a JSON start, so the body is a plausible (if oversize) order
            first = b'{"order":13,"item":"'
            await conn.send(head(args.port, token, "msg_load_chunked_%d" % k,
                                 ["Transfer-Encoding: chunked"])
                            + b"%x\r\n%s\r\n" % (len(first), first))
            sent = len(first)
            started += 1
            if started == n:
                go.set()
            await go.wait()
            start = time.monotonic()
            answer = asyncio.ensure_future(conn.read_response())

            async def stream():
                nonlocal sent, write_error
                try:
                    while sent < args.size and not answer.done():
                        piece = chunk[: min(len(chunk), args.size - sent)]
                        await conn.send(b"%x\r\n%s\r\n" % (len(piece), piece))
                        sent += len(piece)
                    if not answer.done():
                        await conn.send(b"0\r\n\r\n")
                except (ConnectionError, OSError) as e:
                    write_error = type(e).__name__

            streamer = asyncio.ensure_future(stream())
            try:
                status, headers, _ = await asyncio.wait_for(asyncio.shield(answer), args.cap)
                elapsed = time.monotonic() - start
                at = sent
                streamer.cancel()
                after = await conn.after_answer(headers)
            except (ConnectionError, OSError, ValueError, IndexError) as e:
                status, elapsed, at, after = ("error_%s" % type(e).__name__,
                                              time.monotonic() - start, sent, "-")
            except asyncio.TimeoutError:
                status, elapsed, at, after = "no_answer_in_%gs" % args.cap, time.monotonic() - start, sent, "-"
            streamer.cancel()
            answer.cancel()
            await asyncio.sleep(0)
            return status, elapsed, at, after, write_error
        finally:
            conn.close()

    t0 = time.monotonic()
    results = await asyncio.gather(*(one(k) for k in range(n)))
    wall = time.monotonic() - t0
    statuses = count(r[0] for r in results)
    times = [r[1] for r in results]
    at = [r[2] for r in results]
    print("  %d chunked uploads of %d bytes (no Content-Length), all started together"
          % (n, args.size))
    print("  statuses: %s" % statuses)
    print("  body bytes handed to the socket when the answer came: min %d, median %d, max %d"
          " (limit %d; the kernel's buffers hold what the receiver had not read)"
          % (min(at), statistics.median(at), max(at), LIMIT))
    print("  after the answer: %s" % count(r[3] for r in results))
    print("  client write errors (the receiver stopped reading and closed): %s"
          % count(r[4] or "none" for r in results))
    print("  time to answer (after all started): min %.0f ms, median %.0f ms, max %.0f ms"
          % (min(times) * 1000, statistics.median(times) * 1000, max(times) * 1000))
    ok = statuses == {"413": n}
    if not ok:
        print("CHECK FAILED: expected %d x 413" % n)
    result_line(n, wall, times, statuses, "ok" if ok else "FAIL")
    return 0 if ok else 1


# ---------------------------------------------------------------------------------------
# phase C: trickling bodies


async def trickle(args):
    token = read_token(args.token_file)
    n = args.n
    connected = 0
    go = asyncio.Event()

    async def one(k):
        nonlocal connected
        try:
            conn = await Conn.open(args.port)
        except OSError as e:
            connected += 1
            if connected == n:
                go.set()
            return "connect_error_%s" % type(e).__name__, None, 0, "-", None
        sent = 0
        try:
            connected += 1
            if connected == n:
                go.set()
            await go.wait()
            await conn.send(head(args.port, token, "msg_load_trickle_%d" % k,
                                 ["Content-Length: %d" % LIMIT]))
            start = time.monotonic()
            answer = asyncio.ensure_future(conn.read_response())

            async def drip():
                nonlocal sent
                try:
                    while not answer.done():
                        await conn.send(b"{" if sent == 0 else b" ")
                        sent += 1
                        await asyncio.sleep(args.interval)
                except (ConnectionError, OSError):
                    pass

            dripper = asyncio.ensure_future(drip())
            retry_after = None
            try:
                status, headers, _ = await asyncio.wait_for(asyncio.shield(answer), args.cap)
                elapsed = time.monotonic() - start
                retry_after = headers.get("retry-after")
                dripper.cancel()
                after = await conn.after_answer(headers)
            except asyncio.TimeoutError:
                status, elapsed, after = "no_answer_in_%gs" % args.cap, None, "-"
            except (ConnectionError, OSError, ValueError, IndexError) as e:
                status, elapsed, after = ("error_%s" % type(e).__name__,
                                          time.monotonic() - start, "-")
            dripper.cancel()
            answer.cancel()
            await asyncio.sleep(0)
            return status, elapsed, sent, after, retry_after
        finally:
            conn.close()

    t0 = time.monotonic()
    results = await asyncio.gather(*(one(k) for k in range(n)))
    wall = time.monotonic() - t0
    statuses = count(r[0] for r in results)
    answered = [r[1] for r in results if r[1] is not None]
    in_time = sum(1 for r in results if r[0] == 408 and r[1] is not None and r[1] <= args.limit)
    # each trickling delivery holds its 1 MiB reservation of the buffer budget until its
    # body timeout: beyond --admit of them, the others are refused 503 at once
    admitted = min(n, args.admit)
    busy = sum(1 for r in results if r[0] == 503 and r[4] and r[1] is not None and r[1] <= 1.0)
    print("  %d connections: headers with Content-Length: %d, then 1 byte every %g s"
          % (n, LIMIT, args.interval))
    print("  statuses: %s" % statuses)
    if answered:
        print("  time from headers to answer: min %.2f s, median %.2f s, max %.2f s"
              % (min(answered), statistics.median(answered), max(answered)))
    else:
        print("  no connection was answered within the %g s cap" % args.cap)
    print("  body bytes trickled per connection: min %d, max %d"
          % (min(r[2] for r in results), max(r[2] for r in results)))
    print("  after the answer: %s" % count(r[3] for r in results))
    if n > admitted:
        print("  buffer budget (%d bodies) full: 503 with Retry-After within 1 s: %d (expected %d)"
              % (args.admit, busy, n - admitted))
    ok = in_time == admitted and busy == n - admitted
    if not ok:
        print("CHECK FAILED: expected %d x 408 within %g s (got %d) and %d x 503 with Retry-After"
              " within 1 s (got %d)" % (admitted, args.limit, in_time, n - admitted, busy))
    stats = {}
    if answered:
        stats = {"min_s": "%.2f" % min(answered), "median_s": "%.2f" % statistics.median(answered),
                 "max_s": "%.2f" % max(answered)}
    result_line(n, wall, answered, statuses, "ok" if ok else "FAIL", **stats)
    return 0 if ok else 1


# ---------------------------------------------------------------------------------------
# phase D: unauthenticated 1 MiB bodies (junk, missing or wrong-key token)


def junk_body():
    """1 MiB - 1 of a plausible JSON order: a declared 1 MiB body that never completes."""
    return padded_order(14, LIMIT)[: LIMIT - 1]


async def junk(args):
    token = None if args.mode == "none" else (
        "junk.junk.junk" if args.mode == "junk" else read_token(args.token_file))
    body = junk_body()
    n = args.n
    connected = 0
    go = asyncio.Event()
    piece = 16384

    async def one(k):
        nonlocal connected
        try:
            conn = await Conn.open(args.port)
        except OSError as e:
            connected += 1
            if connected == n:
                go.set()
            return {"status": "connect_error_%s" % type(e).__name__}
        out = {"sent": 0, "write_error": None}
        try:
            connected += 1
            if connected == n:
                go.set()
            await go.wait()
            start = time.monotonic()
            answer = asyncio.ensure_future(conn.read_response())

            async def write():
                try:
                    h = head(args.port, token, "msg_load_junk_%d" % k,
                             ["Content-Length: %d" % LIMIT])
                    # once: back to back, as fast as the socket takes them (the head and the
                    # first piece in one write); slow: a piece every --interval seconds
                    step = 65536 if args.write == "once" else piece
                    if args.write == "once":
                        await conn.send(h + body[:step])
                        out["sent"] = step
                    else:
                        await conn.send(h)
                    while out["sent"] < len(body):
                        if args.write == "slow":
                            await asyncio.sleep(args.interval)
                        chunk = body[out["sent"]: out["sent"] + step]
                        await conn.send(chunk)
                        out["sent"] += len(chunk)
                except (ConnectionError, OSError) as e:
                    out["write_error"] = type(e).__name__

            writer = asyncio.ensure_future(write())
            try:
                status, headers, _ = await asyncio.wait_for(asyncio.shield(answer), args.cap)
                out["elapsed"] = time.monotonic() - start
                out["sent_at_answer"] = out["sent"]
                out["close_header"] = headers.get("connection", "").lower() == "close"
                # the writer goes on until the receiver's close stops it (or all is sent)
                try:
                    await asyncio.wait_for(asyncio.shield(writer), args.cap)
                except asyncio.TimeoutError:
                    out["write_error"] = "still_blocked_after_%gs" % args.cap
                out["after"] = await conn.after_answer(headers)
            except asyncio.TimeoutError:
                status = "no_answer_in_%gs" % args.cap
            except (ConnectionError, OSError, ValueError, IndexError) as e:
                status = "error_%s" % type(e).__name__
            writer.cancel()
            answer.cancel()
            await asyncio.sleep(0)
            out["status"] = status
            return out
        finally:
            conn.close()

    t0 = time.monotonic()
    results = await asyncio.gather(*(one(k) for k in range(n)))
    wall = time.monotonic() - t0
    rss, hwm = memory(args.pid) if args.pid else (None, None)
    statuses = count(r["status"] for r in results)
    times = [r["elapsed"] for r in results if "elapsed" in r]
    what = {"junk": "Upstash-Signature: junk.junk.junk", "none": "no Upstash-Signature",
            "wrongkey": "a well-formed token signed with another key"}[args.mode]
    how = ("at once (64 KiB writes back to back)" if args.write == "once"
           else "%d bytes every %g s" % (piece, args.interval))
    print("  %d connections, %s, Content-Length: %d, then %d body bytes %s"
          % (n, what, LIMIT, len(body), how))
    print("  statuses: %s; with Connection: close: %d"
          % (statuses, sum(1 for r in results if r.get("close_header"))))
    if times:
        print("  time from the start of writing to the answer: min %.1f ms, median %.1f ms, max %.1f ms"
              % (min(times) * 1000, statistics.median(times) * 1000, max(times) * 1000))
    at = [r["sent_at_answer"] for r in results if "sent_at_answer" in r]
    if at:
        print("  body bytes handed to the socket when the answer came: min %d, median %d, max %d"
              % (min(at), statistics.median(at), max(at)))
    total = [r["sent"] for r in results if "sent" in r]
    if total:
        print("  body bytes handed to the socket in all (the kernel's buffers take some of them): "
              "min %d, median %d, max %d" % (min(total), statistics.median(total), max(total)))
    print("  client write errors after the answer: %s"
          % count(r.get("write_error") or "none" for r in results))
    print("  after the answer: %s" % count(r.get("after", "-") for r in results))
    print("  receiver at the end: VmRSS %s, VmHWM %s" % (mib(rss), mib(hwm)))
    ok = statuses == {"401": n} and all(r.get("close_header") for r in results)
    if not ok:
        print("CHECK FAILED: expected %d x 401, each with Connection: close" % n)
    result_line(n, wall, times, statuses, "ok" if ok else "FAIL")
    return 0 if ok else 1


# ---------------------------------------------------------------------------------------
# phase E: more valid deliveries in flight than the buffer budget holds


async def budget(args):
    token = read_token(args.token_file)
    with open(args.body_file, "rb") as f:
        body = f.read()
    n = args.n
    half = len(body) // 2
    ready = 0
    all_ready = asyncio.Event()
    held = {}

    async def one(k):
        nonlocal ready
        out = {"k": k}
        try:
            conn = await Conn.open(args.port)
        except OSError as e:
            ready += 1
            if ready == n:
                all_ready.set()
            out["status"] = "connect_error_%s" % type(e).__name__
            return out
        counted = False
        answer = None
        try:
            start = time.monotonic()
            answer = asyncio.ensure_future(conn.read_response())
            answer.add_done_callback(lambda _: out.setdefault("answer_at", time.monotonic()))
            try:
                await conn.send(head(args.port, token, "msg_load_budget_%d" % k,
                                     ["Content-Length: %d" % len(body)]) + body[:half])
            except (ConnectionError, OSError) as e:
                out["write_error"] = type(e).__name__
            ready += 1
            counted = True
            if ready == n:
                all_ready.set()
            await all_ready.wait()
            if "rss" not in held:
                held["rss"] = None  # only the first task samples
                await asyncio.sleep(HOLD)  # let the receiver take in every head
                held["rss"] = memory(args.pid) if args.pid else (None, None)
            else:
                while held["rss"] is None:
                    await asyncio.sleep(0.05)
            out["answered_before_rest"] = answer.done()
            rest_at = time.monotonic()
            if not answer.done() and "write_error" not in out:
                try:
                    await conn.send(body[half:])
                except (ConnectionError, OSError) as e:
                    out["write_error"] = type(e).__name__
            try:
                status, headers, reply = await asyncio.wait_for(asyncio.shield(answer), args.cap)
            except asyncio.TimeoutError:
                out["status"] = "no_answer_in_%gs" % args.cap
                return out
            out["status"] = status
            out["elapsed"] = out["answer_at"] - (start if out["answered_before_rest"] else rest_at)
            out["retry_after"] = headers.get("retry-after")
            out["close_header"] = headers.get("connection", "").lower() == "close"
            if status == 200:
                echo = json.loads(reply)
                out["echoed"] = (echo.get("message_id") == "msg_load_budget_%d" % k
                                 and echo["payload"]["order"] == 11)
            return out
        except (ConnectionError, OSError, ValueError, IndexError, KeyError) as e:
            out["status"] = "error_%s" % type(e).__name__
            return out
        finally:
            if not counted:  # never leave the others waiting for this one
                ready += 1
                if ready == n:
                    all_ready.set()
            if answer is not None:
                answer.cancel()
            conn.close()

    t0 = time.monotonic()
    results = await asyncio.wait_for(asyncio.gather(*(one(k) for k in range(n))), args.cap + 30)
    wall = time.monotonic() - t0 - HOLD
    statuses = count(r["status"] for r in results)
    ok200 = [r for r in results if r["status"] == 200]
    busy = [r for r in results if r["status"] == 503]
    rss, hwm = held.get("rss") or (None, None)
    print("  %d valid deliveries of %d bytes: each sends its head and %d body bytes, waits until all"
          " did (and %.0f s more), then the rest" % (n, len(body), half, HOLD))
    print("  receiver with all %d in flight: VmRSS %s, VmHWM %s (budget: %d bodies = %.0f MiB)"
          % (n, mib(rss), mib(hwm), args.admit, args.admit * len(body) / 1048576))
    print("  statuses: %s" % statuses)
    print("  200 echoing their own message id and order: %d of %d"
          % (sum(1 for r in ok200 if r.get("echoed")), len(ok200)))
    print("  503 answered before the rest of the body was sent: %d of %d; Retry-After: %s;"
          " with Connection: close: %d"
          % (sum(1 for r in busy if r.get("answered_before_rest")), len(busy),
             count(r.get("retry_after") for r in busy), sum(1 for r in busy if r.get("close_header"))))
    if busy:
        t = [r["elapsed"] for r in busy]
        print("  503: time from the head to the answer: min %.0f ms, median %.0f ms, max %.0f ms"
              % (min(t) * 1000, statistics.median(t) * 1000, max(t) * 1000))
    if ok200:
        t = [r["elapsed"] for r in ok200]
        print("  200: time from the rest of the body to the whole answer: min %.0f ms, median %.0f ms,"
              " max %.0f ms" % (min(t) * 1000, statistics.median(t) * 1000, max(t) * 1000))
    print("  client write errors: %s" % count(r.get("write_error") or "none" for r in results))
    ok = (statuses == {"200": args.admit, "503": n - args.admit}
          and all(r.get("echoed") for r in ok200)
          and all(r.get("retry_after") for r in busy)
          and all(r.get("answered_before_rest") for r in busy))
    if not ok:
        print("CHECK FAILED: expected %d x 200 (each echoing its delivery) and %d x 503 with"
              " Retry-After, answered before the rest of their body" % (args.admit, n - args.admit))
    times = [r["elapsed"] for r in results if "elapsed" in r]
    result_line(n, wall, times, statuses, "ok" if ok else "FAIL",
                rss_holding_kb=rss if rss is not None else "?")
    return 0 if ok else 1


# ---------------------------------------------------------------------------------------
# phases F1/F2/F3: slow and idle connections while valid deliveries go on


async def slow(args):
    token = read_token(args.token_file)
    with open(args.body_file, "rb") as f:
        small = f.read()
    n = args.n
    opened = 0
    all_open = asyncio.Event()
    t_zero = time.monotonic()

    def valid_request(message_id):
        return head(args.port, token, message_id, ["Content-Length: %d" % len(small)]) + small

    async def wait_closed(conn, cap_at):
        """Seconds until the receiver closes (EOF or reset), and the first bytes it sent."""
        got = b""
        while True:
            left = cap_at - time.monotonic()
            if left <= 0:
                return None, got
            try:
                data = await asyncio.wait_for(conn.loop.sock_recv(conn.sock, 65536), left)
            except asyncio.TimeoutError:
                return None, got
            except (ConnectionError, OSError):
                return time.monotonic(), got
            if not data:
                return time.monotonic(), got
            got += data

    async def slow_one(k):
        nonlocal opened
        out = {"kind": args.kind}
        start = time.monotonic()
        try:
            conn = await Conn.open(args.port)
        except OSError as e:
            opened += 1
            if opened == n:
                all_open.set()
            out["error"] = "connect_%s" % type(e).__name__
            return out
        dripper = None
        try:
            cap_at = start + args.cap
            if args.kind == "drip":
                await conn.send(("POST %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nX-Drip: "
                                 % (WEBHOOK, args.port)).encode("ascii"))
            elif args.kind == "partial":
                full = head(args.port, token, "msg_load_partial_%d" % k,
                            ["Content-Length: %d" % len(small)])
                await conn.send(full[:-2])  # all but the final CRLF
            else:  # idle: one complete valid delivery, then nothing
                await conn.send(valid_request("msg_load_idle_%d" % k))
            opened += 1
            if opened == n:
                all_open.set()
            if args.kind == "idle":
                try:
                    status, _, _ = await asyncio.wait_for(conn.read_response(),
                                                          max(0.1, cap_at - time.monotonic()))
                    out["first_status"] = status
                    out["answered"] = time.monotonic() - start
                except asyncio.TimeoutError:
                    out["first_status"] = "no_answer"
                except (ConnectionError, OSError, ValueError, IndexError) as e:
                    out["first_status"] = "error_%s" % type(e).__name__
                    out["closed"] = time.monotonic() - start
                    return out
            if args.kind == "drip":
                async def drip():
                    try:
                        while True:
                            await asyncio.sleep(1.0)
                            await conn.send(b"a")
                            out["dripped"] = out.get("dripped", 0) + 1
                    except (ConnectionError, OSError) as e:
                        out["write_error"] = type(e).__name__

                dripper = asyncio.ensure_future(drip())
            closed, got = await wait_closed(conn, cap_at)
            if closed is not None:
                out["closed"] = closed - start
            if got:
                line = got.split(b"\r\n", 1)[0].decode("latin-1")
                out["answer"] = line.split(" ", 2)[1] if line.startswith("HTTP/") else "bytes"
            return out
        finally:
            if dripper is not None:
                dripper.cancel()
                await asyncio.sleep(0)
            conn.close()

    async def valid_one(i):
        await asyncio.sleep(max(0.0, t_valid + i * args.every - time.monotonic()))
        start = time.monotonic()
        out = {"sent_at": start - t_valid}
        conn = None
        try:
            conn = await asyncio.wait_for(Conn.open(args.port), args.valid_cap)
            await conn.send(valid_request("msg_load_valid_%s_%d" % (args.kind, i)))
            status, _, reply = await asyncio.wait_for(
                conn.read_response(), max(0.1, start + args.valid_cap - time.monotonic()))
            out["status"] = status
            out["latency"] = time.monotonic() - start
            if status == 200:
                out["echoed"] = json.loads(reply).get("message_id") == "msg_load_valid_%s_%d" % (
                    args.kind, i)
        except asyncio.TimeoutError:
            out["status"] = "no_answer_in_%gs" % args.valid_cap
        except (ConnectionError, OSError, ValueError, IndexError) as e:
            out["status"] = "error_%s" % type(e).__name__
        finally:
            if conn is not None:
                conn.close()
        return out

    slow_tasks = [asyncio.ensure_future(slow_one(k)) for k in range(n)]
    try:
        await asyncio.wait_for(all_open.wait(), 30)
    except asyncio.TimeoutError:
        pass
    t_valid = time.monotonic()
    count_valid = int(round(args.duration / args.every))
    valid = await asyncio.gather(*(valid_one(i) for i in range(count_valid)))
    slow_results = await asyncio.gather(*slow_tasks)
    wall = time.monotonic() - t_zero

    what = {"drip": "a request line and 'X-Drip: ', then one header byte a second",
            "partial": "a whole valid head but its final CRLF, then nothing",
            "idle": "one complete valid delivery, then idle (keep-alive)"}[args.kind]
    print("  %d slow connections: %s" % (n, what))
    errors = count(r["error"] for r in slow_results if "error" in r)
    if errors:
        print("  slow connections that could not connect: %s" % errors)
    if args.kind == "idle":
        print("  their first delivery: %s" % count(r.get("first_status", "-") for r in slow_results))
        ans = [r["answered"] for r in slow_results if "answered" in r]
        if ans:
            print("  its answer after: min %.2f s, median %.2f s, max %.2f s"
                  % (min(ans), statistics.median(ans), max(ans)))
    closed = [r["closed"] for r in slow_results if "closed" in r]
    still = sum(1 for r in slow_results if "closed" not in r and "error" not in r)
    if closed:
        print("  closed by the receiver after (from connect): min %.2f s, median %.2f s, max %.2f s;"
              " still open at the %g s cap: %d" % (min(closed), statistics.median(closed),
                                                  max(closed), args.cap, still))
        print("  closed after (s, rounded): %s" % count(int(round(c)) for c in closed))
    else:
        print("  none closed by the receiver within the %g s cap" % args.cap)
    answers = count(r.get("answer", "none") for r in slow_results)
    print("  what the receiver sent them before closing: %s" % answers)
    if args.kind == "drip":
        d = [r.get("dripped", 0) for r in slow_results]
        print("  header bytes dripped: min %d, max %d" % (min(d), max(d)))

    vstat = count(v["status"] for v in valid)
    lat = [v["latency"] for v in valid if "latency" in v]
    ok_valid = sum(1 for v in valid if v["status"] == 200 and v.get("echoed"))
    print("  valid deliveries, one every %g s for %g s, each on a new connection: %d;"
          " statuses: %s; 200 echoing their message id: %d"
          % (args.every, args.duration, count_valid, vstat, ok_valid))
    if lat:
        print("  their latency (connect to whole answer): min %.1f ms, p50 %.1f ms, p90 %.1f ms,"
              " max %.1f ms; over 1 s: %d" % (min(lat) * 1000, percentile(lat, 50) * 1000,
                                               percentile(lat, 90) * 1000, max(lat) * 1000,
                                               sum(1 for x in lat if x > 1.0)))
        slowest = [v for v in valid if v.get("latency", 0) > 1.0]
        if slowest:
            print("  sent at (s after the slow connections opened) of those over 1 s: %.1f to %.1f"
                  % (min(v["sent_at"] for v in slowest), max(v["sent_at"] for v in slowest)))
    ok = (ok_valid == count_valid and not errors and still == 0
          and all(c <= args.close_limit for c in closed)
          and (args.kind != "idle" or all(r.get("first_status") == 200 for r in slow_results)))
    if not ok:
        print("CHECK FAILED: expected every valid delivery answered 200 within %g s, every slow"
              " connection closed by the receiver within %g s%s"
              % (args.valid_cap, args.close_limit,
                 ", every idle connection's delivery 200" if args.kind == "idle" else ""))
    extra = {}
    if closed:
        extra = {"closed_median_s": "%.2f" % statistics.median(closed),
                 "closed_max_s": "%.2f" % max(closed)}
    extra["note"] = "slow_closed_%d/%d_after_%s-%s_s" % (
        len(closed), n, "%.1f" % min(closed) if closed else "-",
        "%.1f" % max(closed) if closed else "-")
    result_line(count_valid, wall, lat, vstat, "ok" if ok else "FAIL", **extra)
    return 0 if ok else 1


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("port")
    p = sub.add_parser("bodies")
    p.add_argument("dir")
    for name in ("big", "chunked", "trickle", "junk", "budget", "slow"):
        p = sub.add_parser(name)
        p.add_argument("--port", type=int, required=True)
        p.add_argument("--token-file", required=name != "junk")
        p.add_argument("-n", type=int, required=True)
        p.add_argument("--cap", type=float, default=60.0, help="seconds to wait at most")
        if name in ("junk", "budget"):
            p.add_argument("--pid", type=int)
        if name == "junk":
            p.add_argument("--mode", choices=("junk", "none", "wrongkey"), required=True)
            p.add_argument("--write", choices=("once", "slow"), required=True)
            p.add_argument("--interval", type=float, default=0.05,
                           help="slow: seconds between 16 KiB pieces")
        if name == "budget":
            p.add_argument("--body-file", required=True)
            p.add_argument("--admit", type=int, default=64, help="deliveries the budget holds")
        if name == "slow":
            p.add_argument("--kind", choices=("drip", "partial", "idle"), required=True)
            p.add_argument("--body-file", required=True)
            p.add_argument("--every", type=float, default=0.2)
            p.add_argument("--duration", type=float, default=15.0)
            p.add_argument("--valid-cap", type=float, default=20.0)
            p.add_argument("--close-limit", type=float, default=15.0)
        if name == "big":
            p.add_argument("--body-file", required=True)
            p.add_argument("--pid", type=int)
        if name == "chunked":
            p.add_argument("--size", type=int, default=2 * LIMIT)
            p.add_argument("--chunk", type=int, default=16384)
        if name == "trickle":
            p.add_argument("--interval", type=float, default=1.0)
            p.add_argument("--limit", type=float, default=15.0)
            p.add_argument("--admit", type=int, default=64,
                           help="trickling deliveries the buffer budget holds")
    args = parser.parse_args()
    if args.command == "port":
        print(free_port())
        return 0
    if args.command == "bodies":
        write_bodies(args.dir)
        return 0
    return asyncio.run({"big": big, "chunked": chunked, "trickle": trickle, "junk": junk,
                        "budget": budget, "slow": slow}[args.command](args))


if __name__ == "__main__":
    sys.exit(main())
