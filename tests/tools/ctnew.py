#!/usr/bin/env python3
"""ctnew: make conntrack entries over ctnetlink, as if that many flows had
been forwarded, so that tests need no conntrack-tools. Stdlib only.

  ctnew.py SRC DST udp|tcp DPORT COUNT [SPORT]
      COUNT entries SRC:SPORT+i -> DST:DPORT (i < COUNT; more than 64,511
      source ports wrap to the next DPORT), each with a 600 s timeout (tcp:
      established). Prints "created N".
  ctnew.py count
      the number of entries in the table (both families).

Exit status: 0, or 1 when the kernel refused an entry (the message says
which error, e.g. ENOMEM past nf_conntrack_max)."""
import errno
import ipaddress
import socket
import struct
import sys

NETLINK_NETFILTER = 12
CTNL = 1 << 8  # NFNL_SUBSYS_CTNETLINK
MSG_NEW, MSG_GET = 0, 1
F_REQUEST, F_ACK, F_EXCL, F_CREATE, F_DUMP = 1, 4, 0x200, 0x400, 0x300
NESTED = 0x8000
NLMSG_ERROR, NLMSG_DONE = 2, 3


def attr(t, payload):
    a = struct.pack("=HH", 4 + len(payload), t) + payload
    return a + b"\0" * (-len(a) % 4)


def tup(t, src, dst, proto, sport, dport):
    v6 = ":" in src
    ip = attr(1 | NESTED,
              attr(3 if v6 else 1, ipaddress.ip_address(src).packed) +
              attr(4 if v6 else 2, ipaddress.ip_address(dst).packed))
    pr = attr(2 | NESTED, attr(1, bytes([proto])) +
              attr(2, struct.pack("!H", sport)) +
              attr(3, struct.pack("!H", dport)))
    return attr(t | NESTED, ip + pr)


def msg(typ, flags, family, body, seq):
    return struct.pack("=IHHIIBBH", 20 + len(body), CTNL | typ, flags, seq,
                       0, family, 0, 0) + body


def messages(data):
    off = 0
    while off + 16 <= len(data):
        ln, typ = struct.unpack_from("=IH", data, off)
        yield typ, data[off:off + ln]
        off += (ln + 3) & ~3


def count(s):
    n = 0
    for fam in (socket.AF_INET, socket.AF_INET6):
        s.send(msg(MSG_GET, F_REQUEST | F_DUMP, fam, b"", 1))
        done = False
        while not done:
            for typ, m in messages(s.recv(1 << 16)):
                if typ in (NLMSG_DONE, NLMSG_ERROR):
                    done = True
                    break
                n += 1
    return n


def create(s, src, dst, proto, dport, n, sport):
    fam = socket.AF_INET6 if ":" in src else socket.AF_INET
    pnum = {"tcp": 6, "udp": 17}[proto]
    ok, errs, pending, seq = 0, {}, 0, 0
    for i in range(n):
        sp = sport + i % (65536 - sport)
        dp = dport + i // (65536 - sport)
        body = tup(1, src, dst, pnum, sp, dp) + tup(2, dst, src, pnum, dp, sp)
        body += attr(7, struct.pack("!I", 600))  # CTA_TIMEOUT
        if pnum == 6:  # CTA_PROTOINFO / TCP / STATE: established
            body += attr(4 | NESTED, attr(1 | NESTED, attr(1, b"\x03")))
        seq += 1
        s.send(msg(MSG_NEW, F_REQUEST | F_CREATE | F_EXCL | F_ACK, fam,
                   body, seq))
        pending += 1
        if pending == 64 or i == n - 1:
            while pending:
                for typ, m in messages(s.recv(1 << 16)):
                    if typ == NLMSG_ERROR:
                        e = -struct.unpack_from("=i", m, 16)[0]
                        if e == 0:
                            ok += 1
                        else:
                            errs[e] = errs.get(e, 0) + 1
                        pending -= 1
    print("created %d" % ok)
    for e, k in errs.items():
        print("refused %d: %s" % (k, errno.errorcode.get(e, e)))
    return 1 if errs else 0


def main(argv):
    s = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_NETFILTER)
    s.bind((0, 0))
    if argv[1:] == ["count"]:
        print(count(s))
        return 0
    if len(argv) not in (6, 7) or argv[3] not in ("tcp", "udp"):
        print(__doc__, file=sys.stderr)
        return 2
    return create(s, argv[1], argv[2], argv[3], int(argv[4]), int(argv[5]),
                  int(argv[6]) if len(argv) == 7 else 1024)


if __name__ == "__main__":
    sys.exit(main(sys.argv))
