#!/usr/bin/env python3
"""dnscheck: ask a DNS server for A records and, the moment each answer
arrives, check that every address it carries is in an nftables set of
dnsfenced's table. Stdlib only; every wait is bounded.

  dnscheck.py [options] NAME...

  --server ADDR    the DNS server (default 10.139.1.1)
  --fw NS          the network namespace holding the table (ip netns exec)
  --set SET        the set in table inet dnsfence (e.g. work_v4_ports)
  --key FMT        the element to look for, {a} is the address
                   (default "{a} . tcp . 443")
  --seconds S      keep asking, cycling through the names, for S seconds
                   (default: ask each name once)
  --timeout MS     per query (default 1500)
  --quiet          print only the summary

One line per answer ("NAME RCODE ADDR... admitted|NOT-IN-SET"), then a
summary "answers N noerror N servfail N refused N other N timeouts N
violations N". Exit 0 when no NOERROR answer carried an address missing
from the set (and at least one answer came), 1 otherwise, 2 on usage.
"""
import argparse
import random
import re
import socket
import struct
import subprocess
import sys
import time

RCODES = {0: "NOERROR", 2: "SERVFAIL", 3: "NXDOMAIN", 5: "REFUSED"}


def query(name, qid):
    hdr = struct.pack(">HHHHHH", qid, 0x0100, 1, 0, 0, 0)
    q = b"".join(bytes([len(l)]) + l.encode() for l in name.split(".") if l)
    return hdr + q + b"\0" + struct.pack(">HH", 1, 1)


def skip_name(r, i):
    for _ in range(128):
        n = r[i]
        if n == 0:
            return i + 1
        if n & 0xC0 == 0xC0:
            return i + 2
        i += n + 1
    raise ValueError("name too long")


def parse(r):
    _, flags, qd, an, _, _ = struct.unpack(">HHHHHH", r[:12])
    i = 12
    for _ in range(qd):
        i = skip_name(r, i) + 4
    addrs = []
    for _ in range(an):
        i = skip_name(r, i)
        t, _, _, ln = struct.unpack(">HHIH", r[i:i + 10])
        i += 10
        if t == 1 and ln == 4:
            addrs.append(socket.inet_ntoa(r[i:i + 4]))
        i += ln
    return flags & 0xF, addrs


def set_text(fw, setname):
    cmd = ["nft", "list", "set", "inet", "dnsfence", setname]
    if fw:
        cmd = ["ip", "netns", "exec", fw] + cmd
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=5)
    return p.stdout if p.returncode == 0 else None


def in_set(text, key):
    if text is None:
        return False
    return re.search(r"(^|[\s{,])" + re.escape(key) + r"($|[\s,}])", text,
                     re.M) is not None


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--server", default="10.139.1.1")
    ap.add_argument("--fw", default="")
    ap.add_argument("--set", required=True)
    ap.add_argument("--key", default="{a} . tcp . 443")
    ap.add_argument("--seconds", type=float, default=0)
    ap.add_argument("--timeout", type=int, default=1500)
    ap.add_argument("--quiet", action="store_true")
    ap.add_argument("names", nargs="+")
    a = ap.parse_args()

    counts = dict(answers=0, noerror=0, servfail=0, refused=0, other=0,
                  timeouts=0, violations=0)
    end = time.monotonic() + a.seconds
    i = 0
    while True:
        if a.seconds:
            if time.monotonic() >= end:
                break
        elif i >= len(a.names):
            break
        name = a.names[i % len(a.names)]
        i += 1
        qid = random.randrange(1, 65535)
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.settimeout(a.timeout / 1000)
        try:
            s.connect((a.server, 53))
            s.send(query(name, qid))
            while True:
                r = s.recv(4096)
                if len(r) >= 12 and struct.unpack(">H", r[:2])[0] == qid:
                    break
        except (socket.timeout, OSError):
            counts["timeouts"] += 1
            if not a.quiet:
                print(f"{name} timeout")
            continue
        finally:
            s.close()
        # Check the set at once: an element is never removed behind the
        # test's back here, so one missing now was missing at the answer.
        rcode, addrs = parse(r)
        text = set_text(a.fw, a.set) if rcode == 0 and addrs else None
        counts["answers"] += 1
        verdict = ""
        if rcode == 0:
            counts["noerror"] += 1
            missing = [x for x in addrs if not in_set(text, a.key.format(a=x))]
            if missing or not addrs:
                counts["violations"] += bool(missing)
                verdict = ("NOT-IN-SET " + " ".join(missing)) if missing \
                    else "no-address"
            else:
                verdict = "admitted"
        elif rcode == 2:
            counts["servfail"] += 1
        elif rcode == 5:
            counts["refused"] += 1
        else:
            counts["other"] += 1
        if not a.quiet or verdict.startswith("NOT"):
            print(f"{name} {RCODES.get(rcode, rcode)} {' '.join(addrs)} "
                  f"{verdict}".rstrip())
    print(" ".join(f"{k} {v}" for k, v in counts.items()))
    return 0 if counts["violations"] == 0 and counts["answers"] > 0 else 1


if __name__ == "__main__":
    sys.exit(main())
