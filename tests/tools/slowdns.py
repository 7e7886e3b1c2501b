#!/usr/bin/env python3
"""slowdns: a slow authoritative server for the test bed. Listens on UDP
and TCP port 53 at ADDR, forwards every query to UPSTREAM (an nsd) and
relays its answer DELAY seconds after the query arrived. Stdlib only.

  slowdns.py ADDR UPSTREAM DELAY

Bounded: at most 64 queries in flight (more are dropped), every socket
operation has a timeout, SIGTERM/SIGINT end it within half a second. Logs
one line per query and per answer to stdout (flushed) and "listening" once
it is ready.
"""
import select
import signal
import socket
import struct
import sys
import threading
import time

ADDR, UPSTREAM, DELAY = sys.argv[1], sys.argv[2], float(sys.argv[3])
stop = threading.Event()
slots = threading.BoundedSemaphore(64)


def log(*a):
    print(f"{time.monotonic():.3f}", *a, flush=True)


def qname(msg):
    try:
        i, labels = 12, []
        while msg[i]:
            labels.append(msg[i + 1:i + 1 + msg[i]].decode(errors="replace"))
            i += msg[i] + 1
        return ".".join(labels) + "."
    except IndexError:
        return "?"


def ask_upstream(msg):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(2)
    try:
        s.connect((UPSTREAM, 53))
        s.send(msg)
        while True:
            r = s.recv(65535)
            if r[:2] == msg[:2]:
                break
        if len(r) > 2 and r[2] & 0x02:  # TC: ask again over TCP
            t = socket.create_connection((UPSTREAM, 53), timeout=2)
            try:
                t.sendall(struct.pack(">H", len(msg)) + msg)
                r = recv_tcp(t)
            finally:
                t.close()
        return r
    except OSError:
        return None
    finally:
        s.close()


def recv_exact(c, n):
    b = b""
    while len(b) < n:
        chunk = c.recv(n - len(b))
        if not chunk:
            raise OSError("closed")
        b += chunk
    return b


def recv_tcp(c):
    (n,) = struct.unpack(">H", recv_exact(c, 2))
    return recv_exact(c, n)


def wait_until(t):
    while not stop.is_set() and time.monotonic() < t:
        time.sleep(min(0.05, max(0, t - time.monotonic())))


def handle_udp(sock, msg, peer, t0):
    try:
        log("query udp", qname(msg), peer[0])
        r = ask_upstream(msg)
        wait_until(t0 + DELAY)
        if r is not None and not stop.is_set():
            sock.sendto(r, peer)
            log("answer udp", qname(msg), peer[0])
    except OSError:
        pass
    finally:
        slots.release()


def handle_tcp(c, t0):
    try:
        c.settimeout(DELAY + 5)
        msg = recv_tcp(c)
        log("query tcp", qname(msg))
        r = ask_upstream(msg)
        wait_until(t0 + DELAY)
        if r is not None and not stop.is_set():
            c.sendall(struct.pack(">H", len(r)) + r)
            log("answer tcp", qname(msg))
    except OSError:
        pass
    finally:
        c.close()
        slots.release()


def main():
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    u.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    u.bind((ADDR, 53))
    t = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    t.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    t.bind((ADDR, 53))
    t.listen(16)
    log("listening", ADDR, "upstream", UPSTREAM, "delay", DELAY)
    while not stop.is_set():
        try:
            ready, _, _ = select.select([u, t], [], [], 0.5)
        except InterruptedError:
            continue
        for s in ready:
            now = time.monotonic()
            if s is u:
                msg, peer = u.recvfrom(65535)
                if not slots.acquire(blocking=False):
                    continue
                threading.Thread(target=handle_udp, args=(u, msg, peer, now),
                                 daemon=True).start()
            else:
                c, _ = t.accept()
                if not slots.acquire(blocking=False):
                    c.close()
                    continue
                threading.Thread(target=handle_tcp, args=(c, now),
                                 daemon=True).start()
    log("stopping")
    return 0


if __name__ == "__main__":
    sys.exit(main())
