#!/usr/bin/env python3
"""Custom clients for scripts/load.sh (Python 3 standard library only).

    client.py port                         a free TCP port on 127.0.0.1
    client.py bodies DIR                   the request bodies of every phase
    client.py big      --port P --token-file F --body-file F -n 64 [--pid PID]
    client.py chunked  --port P --token-file F -n 64 [--size 2097152]
    client.py trickle  --port P --token-file F -n 200 [--cap 30] [--limit 15]

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
Expects 408 within --limit seconds for every one.

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
    lines = [
        "POST %s HTTP/1.1" % WEBHOOK,
        "Host: 127.0.0.1:%d" % port,
        "Content-Type: application/json",
        "Upstash-Message-Id: %s" % message_id,
        "Upstash-Retried: 0",
        "Upstash-Signature: %s" % token,
    ] + extra
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
            return "connect_error_%s" % type(e).__name__, None, 0, "-"
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
            try:
                status, headers, _ = await asyncio.wait_for(asyncio.shield(answer), args.cap)
                elapsed = time.monotonic() - start
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
            return status, elapsed, sent, after
        finally:
            conn.close()

    t0 = time.monotonic()
    results = await asyncio.gather(*(one(k) for k in range(n)))
    wall = time.monotonic() - t0
    statuses = count(r[0] for r in results)
    answered = [r[1] for r in results if r[1] is not None]
    in_time = sum(1 for r in results if r[0] == 408 and r[1] is not None and r[1] <= args.limit)
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
    ok = in_time == n
    if not ok:
        print("CHECK FAILED: %d of %d trickling connections were not answered 408 within %g s"
              % (n - in_time, n, args.limit))
    stats = {}
    if answered:
        stats = {"min_s": "%.2f" % min(answered), "median_s": "%.2f" % statistics.median(answered),
                 "max_s": "%.2f" % max(answered)}
    result_line(n, wall, answered, statuses, "ok" if ok else "FAIL", **stats)
    return 0 if ok else 1


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("port")
    p = sub.add_parser("bodies")
    p.add_argument("dir")
    for name in ("big", "chunked", "trickle"):
        p = sub.add_parser(name)
        p.add_argument("--port", type=int, required=True)
        p.add_argument("--token-file", required=True)
        p.add_argument("-n", type=int, required=True)
        p.add_argument("--cap", type=float, default=60.0, help="seconds to wait at most")
        if name == "big":
            p.add_argument("--body-file", required=True)
            p.add_argument("--pid", type=int)
        if name == "chunked":
            p.add_argument("--size", type=int, default=2 * LIMIT)
            p.add_argument("--chunk", type=int, default=16384)
        if name == "trickle":
            p.add_argument("--interval", type=float, default=1.0)
            p.add_argument("--limit", type=float, default=15.0)
    args = parser.parse_args()
    if args.command == "port":
        print(free_port())
        return 0
    if args.command == "bodies":
        write_bodies(args.dir)
        return 0
    return asyncio.run({"big": big, "chunked": chunked, "trickle": trickle}[args.command](args))


if __name__ == "__main__":
    sys.exit(main())
