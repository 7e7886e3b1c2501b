# i9 review: a differential model (not in CI; needs python3-yaml): random IPv4 rule sets, Qubes first-match
# semantics vs the converted policy; prints rule sets where dnsfence admits what qubes-firewall rejects
# (the documented `drop dsthost=N` + later accept bare-IP weakening filtered out). Usage: diff_model.py SEED
# Differential check: Qubes first-match semantics vs the converted dnsfence policy (IPv4 tree only).
import sys, random, ipaddress, yaml; sys.dont_write_bytecode=True
import os; sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "contrib", "qubes"))
import dnsfence_qubes as dq
V4="10.137.0.12"
NAMES={"a.example":"192.0.2.1","b.example":"192.0.2.2","c.example":"192.0.2.3"}
DNS=("10.139.1.1","udp",53)
OPTS_DST=["","dsthost=a.example","dsthost=b.example","dst4=192.0.2.0/24","dst4=192.0.2.1/32","dst4=10.139.1.1/32","dst4=0.0.0.0/0","specialtarget=dns"]
OPTS_P=["","proto=tcp","proto=udp","proto=icmp"]
OPTS_PORT=["","dstports=53-53","dstports=443-443","dstports=1-1000"]
def rand_rule():
    parts=["action="+random.choice(["accept","drop"])]
    for grp in (OPTS_DST,OPTS_P,OPTS_PORT):
        o=random.choice(grp)
        if o: parts.append(o)
    if "proto=icmp" in parts and random.random()<0.2: parts.append("icmptype=8")
    return " ".join(parts)
def qmatch(rule, ip, proto, port):
    o=dict(e.split("=",1) for e in rule.split(" "))
    if "proto=icmp" in rule and "dstports" in o: return None  # invalid: qubes nft error -> whole VM blocked
    if "specialtarget" in o:
        if o.get("dstports","53-53")!="53-53": return False
        if ip not in ("10.139.1.1","10.139.1.2") or proto not in ("tcp","udp") or port!=53: return False
    if "dsthost" in o and ip!=NAMES[o["dsthost"]]: return False
    if "dst4" in o and ipaddress.ip_address(ip) not in ipaddress.ip_network(o["dst4"]): return False
    if "proto" in o and o["proto"]!=proto: return False
    if "dstports" in o:
        if proto=="icmp": return False
        lo,hi=map(int,o["dstports"].split("-"))
        if not lo<=port<=hi: return False
    if "icmptype" in o and not (proto=="icmp"): return False  # icmptype 8 == echo, our icmp probe is echo
    return True
def qubes(rules, policy, ip, proto, port):
    for r in rules:
        m=qmatch(r,ip,proto,port)
        if m is None: return False
        if m: return r.startswith("action=accept")
    return policy=="accept"
def pmatch_ports(ports, proto, port):
    if ports is None: return True
    for p in ports:
        if p=="icmp":
            if proto=="icmp": return True
            continue
        pr,rng=p.split("/"); lo,hi=(rng.split("-")+[rng])[:2]
        if pr==proto and int(lo)<=port<=int(hi): return True
    return False
def name_match(pat, n):
    return pat=="*" or pat==n or (pat.startswith("*.") and n.endswith(pat[1:]))
def fence(pol, ip, proto, port, via):
    """via: name used to resolve ip (None = bare IP). True if admitted."""
    if pol["default"]=="allow": 
        if via is None: return True
        return pol["dns"]=="allow" and not any(name_match(d["name"],via) for d in pol.get("deny",[]))
    allow=pol.get("allow",[])
    for e in allow:
        if "net" in e and ipaddress.ip_address(ip) in ipaddress.ip_network(e["net"]) and pmatch_ports(e.get("ports"),proto,port):
            # a bare-IP admission; with via, the name must still resolve
            if via is None or (pol["dns"]=="allow" and resolves(pol,via)): return True
    if via is None or pol["dns"]!="allow" or not resolves(pol,via): return False
    return any("name" in e and name_match(e["name"],via) and pmatch_ports(e.get("ports"),proto,port) for e in allow)
def resolves(pol, n):
    if any(name_match(d["name"],n) for d in pol.get("deny",[])): return False
    if pol["default"]=="allow": return True
    return any("name" in e and name_match(e["name"],n) for e in pol.get("allow",[]))
random.seed(int(sys.argv[1]) if len(sys.argv)>1 else 1)
probes=[(ip,pr,pt) for ip in list(NAMES.values())+["198.51.100.1"] for pr,pt in (("tcp",443),("udp",53),("tcp",53),("tcp",80),("udp",443),("icmp",0))]
bad=0; seen=set()
for it in range(30000):
    rules=[rand_rule() for _ in range(random.randint(1,4))]
    policy=random.choice(["drop","drop","drop","accept"])
    db={"/connected-ips":V4,"/qubes-firewall/%s"%V4:"","/qubes-firewall/%s/policy"%V4:policy}
    for i,r in enumerate(rules): db["/qubes-firewall/%s/%04d"%(V4,i)]=r
    files,log=dq.convert(db); pol=yaml.safe_load(list(files.values())[0])
    qdns=qubes(rules,policy,*DNS)
    fdns=pol["dns"]=="allow"
    problems=[]
    if fdns and not qdns: problems.append("DNS allowed, Qubes drops it")
    for ip,pr,pt in probes:
        q=qubes(rules,policy,ip,pr,pt)
        if fence(pol,ip,pr,pt,None) and not q: problems.append("bare %s %s/%s"%(ip,pr,pt))
        for n,nip in NAMES.items():
            if nip==ip and fence(pol,ip,pr,pt,n) and not (q and qdns):
                problems.append("via %s %s/%s (qubes conn %s dns %s)"%(n,pr,pt,q,qdns))
    dropped={NAMES[r.split("dsthost=")[1].split(" ")[0]] for r in rules if r.startswith("action=drop dsthost=") and len(r.split(" "))==2}
    problems=[p for p in problems if not (p.startswith("bare ") and p.split(" ")[1] in dropped)]
    if problems:
        key=(tuple(rules),policy)
        bad+=1
        if bad<=12: print(rules,policy,"->",problems[:3]); 
print("fail-open rule sets:",bad)
