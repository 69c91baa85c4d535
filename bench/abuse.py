#!/usr/bin/env python3
"""Issue 24 abuse bench, driven by bench/abuse.sh: a paced HEC + syslog TCP load measured alone,
then again while abusive clients run; loopback only, every phase bounded in time.

Usage: abuse.py PHASE --hec PORT --syslog PORT --api PORT --pid PID [options]
  PHASE steady: only the paced load.   PHASE abuse: the paced load plus every abuser.
Prints one JSON line with the phase's figures.
"""

import argparse
import http.client
import json
import random
import selectors
import socket
import threading
import time
import urllib.error
import urllib.request
import zlib

TOKEN = "bench"


def metric_sum(api, name):
    """Sum of every sample of `name` on /metrics."""
    with urllib.request.urlopen(f"http://127.0.0.1:{api}/metrics", timeout=10) as answer:
        text = answer.read().decode()
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name + "{") or line.startswith(name + " "):
            total += float(line.rsplit(" ", 1)[1])
    return total


def rss_kib(pid, field):
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


class Phase:
    def __init__(self, seconds):
        self.deadline = time.monotonic() + seconds
        self.stop = threading.Event()

    def running(self):
        return not self.stop.is_set() and time.monotonic() < self.deadline


# --- the paced load --------------------------------------------------------------------------

def hec_sender(phase, port, start, index, senders, requests_per_sec, batch, sent, errors):
    """Sends batch-sized requests on one keep-alive connection at its share of the rate."""
    connection = None
    k = 0
    while phase.running():
        due = start + (k * senders + index) / requests_per_sec
        delay = due - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        body = "".join(
            json.dumps({"time": time.time(), "host": f"steady-{index}", "event": {"message": "steady", "n": k}})
            for _ in range(batch))
        try:
            if connection is None:
                connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            connection.request("POST", "/services/collector/event", body,
                               {"Authorization": f"Splunk {TOKEN}"})
            answer = connection.getresponse()
            answer.read()
            if answer.status == 200:
                sent[index] += batch
            else:
                errors[index] += 1
        except (OSError, http.client.HTTPException):
            errors[index] += 1
            connection = None
        k += 1


def syslog_sender(phase, port, per_sec, sent):
    """Newline-framed RFC 5424 messages over one TCP connection, paced in bursts of 10 ms."""
    sock = socket.create_connection(("127.0.0.1", port))
    start = time.monotonic()
    k = 0
    while phase.running():
        due = start + k / per_sec
        delay = due - time.monotonic()
        if delay > 0:
            time.sleep(min(delay, 0.01))
            continue
        burst = max(1, int(per_sec / 100))
        lines = "".join(f"<13>1 - steady-syslog app - - - steady syslog {k + i}\n" for i in range(burst))
        try:
            sock.sendall(lines.encode())
            sent[0] += burst
        except OSError:
            sock = socket.create_connection(("127.0.0.1", port))
        k += burst
    sock.close()


# --- the abusers -----------------------------------------------------------------------------

def idle_holder(phase, port, count, opened):
    """Keeps `count` idle connections open to `port`, reopening those the server closes."""
    watch = selectors.DefaultSelector()  # epoll: select() stops at descriptor 1024
    held = 0
    while phase.running():
        while held < count and phase.running():
            try:
                sock = socket.create_connection(("127.0.0.1", port), timeout=5)
            except OSError:
                time.sleep(0.05)
                break
            watch.register(sock, selectors.EVENT_READ)
            held += 1
            opened[0] += 1
        for key, _ in watch.select(0.5):
            try:
                data = key.fileobj.recv(4096)
            except OSError:
                data = b""
            if not data:
                watch.unregister(key.fileobj)
                key.fileobj.close()
                held -= 1
    for key in list(watch.get_map().values()):
        key.fileobj.close()


def slow_headers(phase, port, count, closed):
    """Slow-loris headers: `count` connections sending one header byte every 2 s."""
    request = b"GET /api/v1/health HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 10000
    socks = {}
    while phase.running():
        while len(socks) < count:
            try:
                socks[socket.create_connection(("127.0.0.1", port), timeout=5)] = 0
            except OSError:
                break
        for sock in list(socks):
            try:
                sock.send(request[socks[sock]:socks[sock] + 1])
                socks[sock] += 1
            except OSError:
                sock.close()
                del socks[sock]
                closed[0] += 1
        time.sleep(2)
    for sock in socks:
        sock.close()


def slow_bodies(phase, port, count, closed):
    """Slow-loris bodies: `count` HEC requests declaring 1 MB, sending 10 bytes every 2 s."""
    head = (f"POST /services/collector/event HTTP/1.1\r\nHost: x\r\nAuthorization: Splunk {TOKEN}\r\n"
            "Content-Length: 1000000\r\n\r\n").encode()
    socks = []
    while phase.running():
        while len(socks) < count:
            try:
                sock = socket.create_connection(("127.0.0.1", port), timeout=5)
                sock.sendall(head)
                socks.append(sock)
            except OSError:
                break
        for sock in list(socks):
            try:
                sock.send(b'{"event":"')
                try:  # an answer (or a close) ends this one; nothing to read means still waiting
                    sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT)
                    raise OSError("answered")
                except BlockingIOError:
                    pass
            except OSError:
                sock.close()
                socks.remove(sock)
                closed[0] += 1
        time.sleep(2)
    for sock in socks:
        sock.close()


def make_bomb():
    """1 GiB of zeros gzipped: about 1 MB."""
    deflate = zlib.compressobj(9, zlib.DEFLATED, 31)  # 31: the gzip container
    zeros = b"\0" * (1024 * 1024)
    return b"".join(deflate.compress(zeros) for _ in range(1024)) + deflate.flush()


def gzip_bombs(phase, port, bomb, per_sec, answers):
    """Posts `bomb` to HEC, `per_sec` a second on one thread."""
    start = time.monotonic()
    k = 0
    while phase.running():
        delay = start + k / per_sec - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        k += 1
        try:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
            connection.request("POST", "/services/collector/event", bomb,
                               {"Authorization": f"Splunk {TOKEN}", "Content-Encoding": "gzip"})
            status = connection.getresponse().status
            connection.close()
        except (OSError, http.client.HTTPException):
            status = "error"
        answers[str(status)] = answers.get(str(status), 0) + 1


def heavy_reads(phase, api, answers):
    """Loops `/api/v1/events?q=zzz<random>&limit=10000`: a scan that matches nothing."""
    while phase.running():
        url = f"http://127.0.0.1:{api}/api/v1/events?q=zzz{random.randrange(1 << 30)}&limit=10000"
        try:
            with urllib.request.urlopen(url, timeout=60) as answer:
                answer.read()
                status = answer.status
        except urllib.error.HTTPError as error:
            status = error.code
        except OSError:
            status = "error"
        answers[str(status)] = answers.get(str(status), 0) + 1


# --- the observers ---------------------------------------------------------------------------

def health_prober(phase, api, latencies, failures):
    while phase.running():
        started = time.monotonic()
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{api}/api/v1/health", timeout=10) as answer:
                answer.read()
                ok = answer.status == 200
        except OSError:
            ok = False
        latencies.append(time.monotonic() - started)
        if not ok:
            failures[0] += 1
        time.sleep(0.2)


def rss_sampler(phase, pid, peak):
    while phase.running():
        peak[0] = max(peak[0], rss_kib(pid, "VmRSS"))
        time.sleep(0.2)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("phase", choices=["steady", "abuse"])
    parser.add_argument("--hec", type=int, required=True)
    parser.add_argument("--syslog", type=int, required=True)
    parser.add_argument("--api", type=int, required=True)
    parser.add_argument("--pid", type=int, required=True)
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--hec-rate", type=int, default=5000, help="HEC events/s (batches of 100)")
    parser.add_argument("--syslog-rate", type=int, default=2000, help="syslog TCP messages/s")
    parser.add_argument("--idle", type=int, default=2000, help="idle connections on syslog and on HEC each")
    parser.add_argument("--slow", type=int, default=100, help="slow-header and slow-body connections each")
    parser.add_argument("--bombs-per-sec", type=float, default=1.0)
    parser.add_argument("--readers", type=int, default=8)
    args = parser.parse_args()

    bomb = make_bomb() if args.phase == "abuse" and args.bombs_per_sec > 0 else b""
    baseline = metric_sum(args.api, "securewatch_store_written_total")
    phase = Phase(args.seconds)
    threads = []

    def spawn(target, *targs):
        thread = threading.Thread(target=target, args=(phase, *targs), daemon=True)
        thread.start()
        threads.append(thread)

    latencies, health_failures, peak = [], [0], [0]
    spawn(health_prober, args.api, latencies, health_failures)
    spawn(rss_sampler, args.pid, peak)
    abuse = {}
    if args.phase == "abuse":
        abuse = {"idle_opened": [0], "idle_opened_hec": [0], "slow_headers_closed": [0],
                 "slow_bodies_closed": [0], "bombs": {}, "reads": {}}
        spawn(idle_holder, args.syslog, args.idle, abuse["idle_opened"])
        spawn(idle_holder, args.hec, args.idle, abuse["idle_opened_hec"])
        spawn(slow_headers, args.hec, args.slow // 2, abuse["slow_headers_closed"])
        spawn(slow_headers, args.api, args.slow // 2, abuse["slow_headers_closed"])
        spawn(slow_bodies, args.hec, args.slow, abuse["slow_bodies_closed"])
        if args.bombs_per_sec > 0:
            spawn(gzip_bombs, args.hec, bomb, args.bombs_per_sec, abuse["bombs"])
        for _ in range(args.readers):
            spawn(heavy_reads, args.api, abuse["reads"])
        time.sleep(3)  # let the abusers reach full strength before the measured load starts
        phase.deadline = time.monotonic() + args.seconds

    senders, batch = 8, 100
    hec_sent, hec_errors, syslog_sent = [0] * senders, [0] * senders, [0]
    start = time.monotonic()
    load = [threading.Thread(target=hec_sender, daemon=True,
                             args=(phase, args.hec, start, i, senders, args.hec_rate / batch, batch, hec_sent, hec_errors))
            for i in range(senders)]
    load.append(threading.Thread(target=syslog_sender, args=(phase, args.syslog, args.syslog_rate, syslog_sent),
                                 daemon=True))
    for thread in load:
        thread.start()
    for thread in load:
        thread.join(args.seconds + 60)
    sent = sum(hec_sent) + syslog_sent[0]
    # Stored: wait (at most 120 s) until everything answered or written reached the store.
    while time.monotonic() - start < args.seconds + 120:
        stored = metric_sum(args.api, "securewatch_store_written_total") - baseline
        if stored >= sent:
            break
        time.sleep(0.2)
    elapsed = time.monotonic() - start
    phase.stop.set()
    for thread in threads:
        thread.join(15)

    latencies.sort()
    result = {
        "phase": args.phase,
        "sent": sent,
        "hec_errors": sum(hec_errors),
        "stored": int(stored),
        "stored_per_sec": round(stored / elapsed),
        "offered_per_sec": args.hec_rate + args.syslog_rate,
        "health_max_ms": round(latencies[-1] * 1000, 1) if latencies else None,
        "health_p99_ms": round(latencies[int(len(latencies) * 0.99)] * 1000, 1) if latencies else None,
        "health_checks": len(latencies),
        "health_failures": health_failures[0],
        "peak_rss_mib": round(peak[0] / 1024),
        "hwm_mib": round(rss_kib(args.pid, "VmHWM") / 1024),
    }
    for key, value in abuse.items():
        result[key] = value if isinstance(value, dict) else value[0]
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
