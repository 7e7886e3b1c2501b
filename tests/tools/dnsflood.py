#!/usr/bin/env python3
"""dnsflood: DNS load and probes for the fairness test (0046) and the
benchmarks (tests/bench/fairness, admission). Stdlib only; every socket operation has a timeout
and every mode a bounded duration. Run inside a VM namespace; the server is
10.139.1.1 port 53 unless --server says otherwise.

  dnsflood.py flood SECS RATE TCP [--slow N]
      VM A's flood for SECS seconds: RATE UDP queries a second for distinct
      names (r<i>.good.example; every Nth one s<i>.slow.example, N=4 by
      default, 0 for none), and TCP connections: it keeps TCP of them open
      (one query a second on each), opening a new one whenever one is
      closed. Prints one JSON line: answers by rcode, timeouts, TCP
      connections opened, closed at once, closed later.
  dnsflood.py probe SECS TCP_EVERY NAME...
      VM B's queries, one at a time, one every 20 ms (50 a second: an
      ordinary VM's, well inside its query-rate), for SECS seconds,
      cycling through the names; every TCP_EVERYth over a new TCP
      connection (0: none). Prints
      one JSON line: queries, failures (any answer but NOERROR, a timeout,
      a closed connection) with what they were, and the latency of each
      successful query in ms (p50, p99). Exit 1 when anything failed.
  dnsflood.py burst N NAME
      N UDP queries for NAME, 50 every 50 ms; prints one JSON line: answers by
      rcode, and by Extended DNS Error text.
  dnsflood.py tcphold N SECS
      Opens N TCP connections one after another, sends a query on each
      and waits up to 1 s for its answer ("answered") or its end ("closed");
      prints "held" and keeps them open for SECS seconds, noting when one
      is closed by the server; then prints one JSON line: each
      connection's fate ("answered", "closed", "answered-then-closed").
  dnsflood.py tcpquery N
      Opens N TCP connections (kept open together), one query on each;
      prints one JSON line: how many were answered. Exit 1 unless all.
  dnsflood.py resolve FILE [WINDOW]
      Asks every name in FILE (one a line, AAAA) over UDP, WINDOW (200)
      at a time, each once more after 3 s without an answer; prints one
      JSON line: answers by rcode, names never answered, seconds taken.
  dnsflood.py latency TYPE FILE OUT
      Asks every name in FILE (one a line; TYPE A or AAAA) over UDP, one at
      a time, the next as soon as the answer to the last has come (3 s at
      most); writes the latency of each answer that is NOERROR with at
      least one record in its answer section to OUT (ms, one a line, in
      the order asked) and prints one JSON line: queries, failures (with
      what the first 20 were), p50, p99 and max in ms. Exit 1 when
      anything failed.
"""
import gc
import json
import random
import select
import socket
import struct
import sys
import time

SERVER = ("10.139.1.1", 53)
RCODES = {0: "NOERROR", 2: "SERVFAIL", 3: "NXDOMAIN", 5: "REFUSED"}


def query(name, qid, qtype=1):
    wire = b"".join(bytes([len(lab)]) + lab.encode()
                    for lab in name.split(".") if lab) + b"\0"
    opt = b"\0" + struct.pack(">HHIH", 41, 1232, 0, 0)
    return (struct.pack(">HHHHHH", qid, 0x0100, 1, 0, 0, 1) + wire +
            struct.pack(">HH", qtype, 1) + opt)


def rcode(msg):
    return RCODES.get(msg[3] & 15, "RCODE%d" % (msg[3] & 15))


def ede_text(msg):
    """The EXTRA-TEXT of the first EDE option, or None."""
    try:
        an, ns, ar = struct.unpack(">HHH", msg[6:12])
        i = 12
        while msg[i]:  # the question name (no compression in a question)
            i += msg[i] + 1
        i += 5
        for _ in range(an + ns + ar):
            while True:  # owner name
                if msg[i] >= 0xC0:
                    i += 2
                    break
                if msg[i] == 0:
                    i += 1
                    break
                i += msg[i] + 1
            rtype, _, _, rdlen = struct.unpack(">HHIH", msg[i:i + 10])
            i += 10
            if rtype == 41:
                j = i
                while j + 4 <= i + rdlen:
                    code, olen = struct.unpack(">HH", msg[j:j + 4])
                    if code == 15:
                        return msg[j + 6:j + 4 + olen].decode(errors="replace")
                    j += 4 + olen
            i += rdlen
    except (IndexError, struct.error):
        pass
    return None


def recv_exact(s, n):
    b = b""
    while len(b) < n:
        chunk = s.recv(n - len(b))
        if not chunk:
            raise ConnectionError("closed")
        b += chunk
    return b


def tcp_ask(s, name, qid):
    m = query(name, qid)
    s.sendall(struct.pack(">H", len(m)) + m)
    n = struct.unpack(">H", recv_exact(s, 2))[0]
    return recv_exact(s, n)


def pct(v, p):
    if not v:
        return None
    v = sorted(v)
    return round(v[min(len(v) - 1, int(len(v) * p / 100))], 2)


def mode_flood(secs, rate, ntcp, slow_every):
    end = time.monotonic() + secs
    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    u.setblocking(False)
    u.connect(SERVER)
    res = {"sent": 0, "rcodes": {}, "tcp_opened": 0, "tcp_closed_at_once": 0,
           "tcp_closed_later": 0, "tcp_answers": 0}
    conns = []  # [socket, opened_at, next_query_at]
    n = 0
    tag = random.randrange(1 << 30)
    interval = 1.0 / rate if rate > 0 else None
    next_send = time.monotonic()
    next_open = 0.0
    while time.monotonic() < end:
        now = time.monotonic()
        # UDP: keep to the rate, in bursts of at most 50 per turn
        k = 0
        while interval and next_send <= now and k < 50:
            n += 1
            if slow_every and n % slow_every == 0:
                name = "s%d-%d.slow.example" % (tag, n)
            else:
                name = "r%d-%d.good.example" % (tag, n)
            try:
                u.send(query(name, n & 0xFFFF))
                res["sent"] += 1
            except (BlockingIOError, ConnectionRefusedError):
                pass
            next_send += interval
            k += 1
        # TCP: keep ntcp open (a new attempt at most every 50 ms)
        if len(conns) < ntcp and now >= next_open:
            next_open = now + 0.05
            try:
                t = socket.create_connection(SERVER, timeout=1)
                t.setblocking(False)
                res["tcp_opened"] += 1
                conns.append([t, now, now])
            except OSError:
                res["tcp_closed_at_once"] += 1
        rl = [u] + [c[0] for c in conns]
        r, _, _ = select.select(rl, [], [], 0.005)
        for s in r:
            if s is u:
                try:
                    while True:
                        m = u.recv(4096)
                        rc = rcode(m)
                        res["rcodes"][rc] = res["rcodes"].get(rc, 0) + 1
                except (BlockingIOError, ConnectionRefusedError):
                    pass
                continue
            c = next(c for c in conns if c[0] is s)
            try:
                d = s.recv(65536)
            except BlockingIOError:
                continue
            except OSError:
                d = b""
            if d == b"":
                if time.monotonic() - c[1] < 0.2:
                    res["tcp_closed_at_once"] += 1
                else:
                    res["tcp_closed_later"] += 1
                s.close()
                conns.remove(c)
            elif d:
                res["tcp_answers"] += 1
        for c in list(conns):
            if now >= c[2]:
                c[2] = now + 1
                m = query("www.good.example", 7)
                try:
                    c[0].send(struct.pack(">H", len(m)) + m)
                except (BlockingIOError, OSError):
                    pass
    for c in conns:
        c[0].close()
    print(json.dumps(res), flush=True)
    return 0


def mode_probe(secs, tcp_every, names):
    end = time.monotonic() + secs
    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    u.settimeout(3)
    u.connect(SERVER)
    lat, fails = [], []
    n = ntcp = 0
    nxt = time.monotonic()
    while time.monotonic() < end:
        nxt += 0.02
        time.sleep(max(0, nxt - time.monotonic()))
        name = names[n % len(names)]
        n += 1
        qid = n & 0xFFFF
        tcp = tcp_every and n % tcp_every == 0
        t0 = time.monotonic()
        try:
            if tcp:
                ntcp += 1
                s = socket.create_connection(SERVER, timeout=3)
                try:
                    m = tcp_ask(s, name, qid)
                finally:
                    s.close()
            else:
                u.send(query(name, qid))
                while True:
                    m = u.recv(4096)
                    if m[:2] == struct.pack(">H", qid):
                        break
        except socket.timeout:
            fails.append("%s %s: timeout" % ("tcp" if tcp else "udp", name))
            continue
        except (ConnectionError, OSError) as e:
            fails.append("%s %s: %s" % ("tcp" if tcp else "udp", name, e))
            continue
        ms = (time.monotonic() - t0) * 1000
        if rcode(m) != "NOERROR":
            fails.append("%s %s: %s %s" % ("tcp" if tcp else "udp", name,
                                           rcode(m), ede_text(m) or ""))
        else:
            lat.append(ms)
    print(json.dumps({"queries": n, "tcp": ntcp, "ok": len(lat),
                      "failures": len(fails), "failed": fails[:20],
                      "p50_ms": pct(lat, 50), "p99_ms": pct(lat, 99)}),
          flush=True)
    return 1 if fails or not lat else 0


def mode_burst(count, name):
    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    u.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
    u.connect(SERVER)
    # 50 every 50 ms: faster than any bucket refills, slower than the
    # socket's receive buffer could overflow
    for i in range(count):
        u.send(query(name, i))
        if i % 50 == 49:
            time.sleep(0.05)
    u.settimeout(2)
    res = {"rcodes": {}, "ede": {}}
    try:
        while True:
            m = u.recv(4096)
            rc = rcode(m)
            res["rcodes"][rc] = res["rcodes"].get(rc, 0) + 1
            t = ede_text(m)
            if t:
                res["ede"][t] = res["ede"].get(t, 0) + 1
    except socket.timeout:
        pass
    print(json.dumps(res), flush=True)
    return 0


def mode_tcphold(count, secs):
    conns, fate = [], []
    for i in range(count):
        try:
            s = socket.create_connection(SERVER, timeout=1)
            tcp_ask(s, "www.good.example", i)
            conns.append(s)
            fate.append("answered")
        except (OSError, ConnectionError):
            conns.append(None)
            fate.append("closed")
    print("held", flush=True)
    end = time.monotonic() + secs
    while time.monotonic() < end:
        live = [s for s in conns if s is not None]
        if not live:
            time.sleep(0.1)
            continue
        r, _, _ = select.select(live, [], [], 0.1)
        for s in r:
            try:
                d = s.recv(4096)
            except OSError:
                d = b""
            if d == b"":
                i = conns.index(s)
                fate[i] = fate[i] + "-then-closed"
                s.close()
                conns[i] = None
    for s in conns:
        if s is not None:
            s.close()
    print(json.dumps(fate), flush=True)
    return 0


def mode_tcpquery(count):
    conns, ok = [], 0
    for i in range(count):
        try:
            s = socket.create_connection(SERVER, timeout=2)
            conns.append(s)
            tcp_ask(s, "www.good.example", i)
            ok += 1
        except (OSError, ConnectionError):
            pass
    for s in conns:
        s.close()
    print(json.dumps({"answered": ok, "of": count}), flush=True)
    return 0 if ok == count else 1


def mode_resolve(path, window):
    with open(path) as f:
        names = [ln.strip() for ln in f if ln.strip()]
    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    u.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
    u.connect(SERVER)
    t0 = time.monotonic()
    out = {}  # qid -> [index, sent_at, tries]
    nxt = 0
    res = {"rcodes": {}, "unanswered": 0}
    free = list(range(window))  # qids
    while nxt < len(names) or out:
        while free and nxt < len(names):
            qid = free.pop()
            out[qid] = [nxt, time.monotonic(), 1]
            u.send(query(names[nxt], qid, 28))
            nxt += 1
        r, _, _ = select.select([u], [], [], 0.2)
        if r:
            m = u.recv(4096)
            qid = struct.unpack(">H", m[:2])[0]
            if qid in out:
                del out[qid]
                free.append(qid)
                rc = rcode(m)
                res["rcodes"][rc] = res["rcodes"].get(rc, 0) + 1
        now = time.monotonic()
        for qid, o in list(out.items()):
            if now - o[1] > 3:
                if o[2] >= 2:
                    res["unanswered"] += 1
                    del out[qid]
                    free.append(qid)
                else:
                    o[1], o[2] = now, 2
                    u.send(query(names[o[0]], qid, 28))
    res["seconds"] = round(time.monotonic() - t0, 1)
    print(json.dumps(res), flush=True)
    return 0


def mode_latency(qtype, path, out):
    with open(path) as f:
        names = [ln.strip() for ln in f if ln.strip()]
    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    u.settimeout(3)
    u.connect(SERVER)
    lat, fails = [], []
    # No collection pauses inside a measurement.
    gc.disable()
    for n, name in enumerate(names):
        qid = (n + 1) & 0xFFFF
        q = query(name, qid, qtype)
        t0 = time.perf_counter()
        try:
            u.send(q)
            while True:
                m = u.recv(4096)
                if m[:2] == q[:2]:
                    break
        except socket.timeout:
            fails.append("%s: timeout" % name)
            continue
        except OSError as e:
            fails.append("%s: %s" % (name, e))
            continue
        ms = (time.perf_counter() - t0) * 1000
        if rcode(m) != "NOERROR":
            fails.append("%s: %s %s" % (name, rcode(m), ede_text(m) or ""))
        elif struct.unpack(">H", m[6:8])[0] == 0:
            fails.append("%s: no answer record" % name)
        else:
            lat.append(ms)
    gc.enable()
    with open(out, "w") as f:
        f.write("".join("%.4f\n" % v for v in lat))
    print(json.dumps({"queries": len(names), "ok": len(lat),
                      "failures": len(fails), "failed": fails[:20],
                      "p50_ms": pct(lat, 50), "p99_ms": pct(lat, 99),
                      "max_ms": round(max(lat), 2) if lat else None}),
          flush=True)
    return 1 if fails or not lat else 0


def main():
    a = sys.argv[1:]
    if len(a) >= 2 and a[0] == "--server":
        global SERVER
        SERVER = (a[1], 53)
        a = a[2:]
    if not a:
        sys.exit(__doc__)
    m = a[0]
    if m == "flood":
        slow = 4
        if "--slow" in a:
            slow = int(a[a.index("--slow") + 1])
        return mode_flood(float(a[1]), float(a[2]), int(a[3]), slow)
    if m == "probe":
        return mode_probe(float(a[1]), int(a[2]), a[3:])
    if m == "burst":
        return mode_burst(int(a[1]), a[2])
    if m == "tcphold":
        return mode_tcphold(int(a[1]), float(a[2]))
    if m == "tcpquery":
        return mode_tcpquery(int(a[1]))
    if m == "resolve":
        return mode_resolve(a[1], int(a[2]) if len(a) > 2 else 200)
    if m == "latency" and len(a) == 4 and a[1] in ("A", "AAAA"):
        return mode_latency(1 if a[1] == "A" else 28, a[2], a[3])
    sys.exit(__doc__)


if __name__ == "__main__":
    sys.exit(main())
