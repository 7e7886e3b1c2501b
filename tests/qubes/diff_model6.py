# i9 review 3: the differential model with IPv4 + IPv6 trees paired (as dom0 writes them: one rule
# list, dst4 rules only in the v4 tree, dst6 only in the v6 tree, the rest in both, numbering
# gaps where a rule is left out) and non-tcp/udp/icmp traffic (gre). Qubes first-match per tree
# vs the combined policy. Usage: diff_model6.py SEED [N]
import sys, random, ipaddress, yaml, os
sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "contrib", "qubes"))
import dnsfence_qubes as dq
ACC = float(os.environ.get("ACC", "0.5"))
V4 = "10.137.0.12"
V6 = dq.paired_ipv6(V4)
NAMES = {"a.example": ("192.0.2.1", "2001:db8:5::1"), "b.example": ("192.0.2.2", "2001:db8:5::2"),
         "c.example": ("192.0.2.3", "2001:db8:5::3")}
DNS = ("10.139.1.1", "udp", 53)
OPTS_DST = ["", "dsthost=a.example", "dsthost=b.example", "dst4=192.0.2.0/24", "dst4=192.0.2.1/32",
            "dst4=0.0.0.0/0", "dst6=2001:db8:5::/64", "dst6=2001:db8:5::1/128", "dst6=::/0",
            "specialtarget=dns", "dst4=10.139.1.1/32"]
OPTS_P = ["", "proto=tcp", "proto=udp", "proto=icmp"]
OPTS_PORT = ["", "dstports=53-53", "dstports=443-443", "dstports=1-1000"]


def rand_rule():
    parts = ["action=" + ("accept" if random.random() < ACC else "drop")]
    for grp in (OPTS_DST, OPTS_P, OPTS_PORT):
        o = random.choice(grp)
        if o:
            parts.append(o)
    return " ".join(parts)


def qmatch(rule, ip, proto, port, fam):
    o = dict(e.split("=", 1) for e in rule.split(" "))
    if "proto=icmp" in rule and "dstports" in o:
        return None
    if "specialtarget" in o:
        if o.get("dstports", "53-53") != "53-53":
            return False
        if fam == 6:
            return False  # no IPv6 DNS servers in resolv.conf: dns-addr empty
        if ip not in ("10.139.1.1", "10.139.1.2") or proto not in ("tcp", "udp") or port != 53:
            return False
    if "dsthost" in o and ip not in NAMES[o["dsthost"]]:
        return False
    for k in ("dst4", "dst6"):
        if k in o:
            n = ipaddress.ip_network(o[k])
            a = ipaddress.ip_address(ip)
            if a.version != n.version or a not in n:
                return False
    if "proto" in o and o["proto"] != proto:
        return False
    if "dstports" in o:
        if proto not in ("tcp", "udp"):
            return False
        lo, hi = map(int, o["dstports"].split("-"))
        if not lo <= port <= hi:
            return False
    return True


def qubes(rules, policy, ip, proto, port, fam):
    for r in rules:
        m = qmatch(r, ip, proto, port, fam)
        if m is None:
            return False
        if m:
            return r.startswith("action=accept")
    return policy == "accept"


def pmatch_ports(ports, proto, port):
    if ports is None:
        return True
    for p in ports:
        if p in ("icmp", "icmpv6"):
            if proto == "icmp":
                return True
            continue
        pr, rng = p.split("/")
        lo, hi = (rng.split("-") + [rng])[:2]
        if pr == proto and int(lo) <= port <= int(hi):
            return True
    return False


def name_match(pat, n):
    return pat == "*" or pat == n or (pat.startswith("*.") and n.endswith(pat[1:]))


def resolves(pol, n):
    if any(name_match(d["name"], n) for d in pol.get("deny", []) or []):
        return False
    if pol["default"] == "allow":
        return True
    return any("name" in e and name_match(e["name"], n) for e in pol.get("allow", []) or [])


def fence(pol, ip, proto, port, via):
    if ip in ("10.139.1.1", "10.139.1.2") and proto in ("tcp", "udp") and port == 53:
        return pol["dns"] == "allow"  # captured: answered by dnsfenced (REFUSED under dns: deny)
    if pol["default"] == "allow":
        if via is None:
            return True
        return pol["dns"] == "allow" and resolves(pol, via)
    for e in pol.get("allow", []) or []:
        if "net" in e:
            n = ipaddress.ip_network(e["net"])
            a = ipaddress.ip_address(ip)
            if a.version == n.version and a in n and pmatch_ports(e.get("ports"), proto, port):
                if via is None or (pol["dns"] == "allow" and resolves(pol, via)):
                    return True
    if via is None or pol["dns"] != "allow" or not resolves(pol, via):
        return False
    return any("name" in e and name_match(e["name"], via) and pmatch_ports(e.get("ports"), proto, port)
               for e in pol.get("allow", []) or [])


def main():
    random.seed(int(sys.argv[1]) if len(sys.argv) > 1 else 1)
    N = int(sys.argv[2]) if len(sys.argv) > 2 else 20000
    probes = []
    for fam, addrs in ((4, [v[0] for v in NAMES.values()] + ["198.51.100.1", "10.139.1.1"]),
                       (6, [v[1] for v in NAMES.values()] + ["2001:db8:6::1"])):
        for ip in addrs:
            for pr, pt in (("tcp", 443), ("udp", 53), ("tcp", 53), ("tcp", 80), ("udp", 443),
                           ("icmp", 0), ("gre", 0)):
                probes.append((fam, ip, pr, pt))
    bad = 0
    shapes = {}
    stats = {}
    for it in range(N):
        rules = [rand_rule() for _ in range(random.randint(1, 5))]
        policy = "drop"
        r4 = [(i, r) for i, r in enumerate(rules) if "dst6=" not in r]
        r6 = [(i, r) for i, r in enumerate(rules) if "dst4=" not in r]
        db = {"/connected-ips": V4, "/connected-ips6": V6}
        for ip, rs in ((V4, r4), (V6, r6)):
            db["/qubes-firewall/%s" % ip] = ""
            db["/qubes-firewall/%s/policy" % ip] = policy
            for i, r in rs:
                db["/qubes-firewall/%s/%04d" % (ip, i)] = r
        files, log = dq.convert(db)
        pol = yaml.safe_load(list(files.values())[0])
        if V6 not in pol["addresses"]:
            stats["unpaired"] = stats.get("unpaired", 0) + 1
            continue
        stats["closed" if pol["default"] == "deny" and not pol.get("allow") else "open"] = \
            stats.get("closed" if pol["default"] == "deny" and not pol.get("allow") else "open", 0) + 1
        rules4 = [r for _, r in r4]
        rules6 = [r for _, r in r6]
        qdns = qubes(rules4, policy, *DNS, 4)
        problems = []
        if pol["dns"] == "allow" and not qdns:
            problems.append("DNS allowed, Qubes drops it")
        for fam, ip, pr, pt in probes:
            q = qubes(rules4 if fam == 4 else rules6, policy, ip, pr, pt, fam)
            if fence(pol, ip, pr, pt, None) and not q:
                problems.append("bare v%d %s %s/%s" % (fam, ip, pr, pt))
            for n, nip in NAMES.items():
                if ip in nip and fence(pol, ip, pr, pt, n) and not (q and qdns):
                    problems.append("via %s v%d %s/%s (qubes conn %s dns %s)" % (n, fam, pr, pt, q, qdns))
        dropped = set()
        for r in rules:
            if r.startswith("action=drop dsthost=") and len(r.split(" ")) == 2:
                dropped |= set(NAMES[r.split("dsthost=")[1]])
        problems = [p for p in problems if not (p.startswith("bare ") and p.split(" ")[2] in dropped)]
        if problems:
            bad += 1
            k = problems[0].split(" (")[0]
            shapes[k] = shapes.get(k, 0) + 1
            if bad <= 12:
                print(rules, "->", problems[:3])
    print("fail-open rule sets:", bad, "of", N)
    print(stats)
    print(sorted(shapes.items(), key=lambda x: -x[1])[:10])


main()
