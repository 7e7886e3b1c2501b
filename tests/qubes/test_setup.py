#!/usr/bin/env python3
"""Unit tests for contrib/qubes/qubes-setup (suite `qubes`).

Renders from a recorded QubesDB (data/setup-qubesdb.json, the keys dom0
writes into a network-providing qube with one VM connected), checks the
configuration, and runs start/stop against a fake nft that records what it
is asked to do. With $DNSFENCED set, the rendered configuration must pass
`dnsfenced -n`; while the daemon does not know the Qubes keys yet (freebind,
capture, nftables priority/from-group/reject), that check is skipped, saying
so, as long as those are the only complaints.
"""

import importlib.machinery
import importlib.util
import json
import os
import re
import subprocess
import sys
import tempfile
import textwrap
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.path.normpath(os.path.join(HERE, "..", ".."))
SCRIPT = os.path.join(SRC, "contrib", "qubes", "qubes-setup")
DATA = os.path.join(HERE, "data", "setup-qubesdb.json")
ANCHOR = os.path.join(SRC, "tests", "config", "cases", "good-full",
                      "root.key")

loader = importlib.machinery.SourceFileLoader("qubes_setup", SCRIPT)
spec = importlib.util.spec_from_loader("qubes_setup", loader)
qs = importlib.util.module_from_spec(spec)
loader.exec_module(qs)

# The keys the daemon of this branch may not know yet (doc/qubes.md,
# notes/i9-shared.md): their "unknown key" errors skip the -n check.
NEW_KEYS = {"freebind", "capture", "priority", "from-group", "reject"}


class DictDB:
    def __init__(self, d):
        self.d = d

    def read(self, key):
        return self.d.get(key)


def recorded():
    with open(DATA, encoding="utf-8") as f:
        return json.load(f)


NO_CONF = {"hard-capture": False}

FAKE_NFT = textwrap.dedent("""\
    #!{python}
    # Records argv and stdin. `list chain F T C` prints
    # $FAKE_NFT_DIR/F-T-C.json (exit 1 when there is none, like nft);
    # `list tables F` prints F-tables.json (no tables when there is none).
    # A write (-f) whose stdin or argv contains $FAKE_NFT_FAIL fails.
    import json, os, sys
    d = os.environ["FAKE_NFT_DIR"]
    args = sys.argv[1:]
    stdin = sys.stdin.read() if "-" in args else ""
    with open(os.path.join(d, "log"), "a") as f:
        f.write(json.dumps({{"args": args, "stdin": stdin}}) + "\\n")
    if "list" in args:
        i = args.index("list")
        if args[i + 1] == "tables":
            p = os.path.join(d, args[i + 2] + "-tables.json")
            if not os.path.exists(p):
                sys.stdout.write('{{"nftables": []}}')
                sys.exit(0)
        else:
            p = os.path.join(d, "-".join(args[i + 2:]) + ".json")
        if not os.path.exists(p):
            sys.stderr.write("Error: No such file or directory\\n")
            sys.exit(1)
        sys.stdout.write(open(p).read())
        sys.exit(0)
    fail = os.environ.get("FAKE_NFT_FAIL")
    if fail and (fail in stdin or fail in " ".join(args)):
        sys.stderr.write("Error: Could not process rule: "
                         "Operation not supported\\n")
        sys.exit(1)
    """)


def chain_json(family, rules):
    objs = [{"metainfo": {"json_schema_version": 1}},
            {"chain": {"family": family, "table": "qubes",
                       "name": "custom-input", "handle": 1}}]
    for r in rules:
        r = dict(r, family=family, table="qubes", chain="custom-input")
        objs.append({"rule": r})
    return json.dumps({"nftables": objs})


def forward_json(prio=1, hook="forward", type_="filter", policy="drop"):
    """`nft -j list chain inet dnsfence forward` of a daemon's table."""
    ch = {"family": "inet", "table": "dnsfence", "name": "forward",
          "handle": 2}
    if hook is not None:
        ch.update(type=type_, hook=hook, prio=prio, policy=policy)
    return json.dumps({"nftables": [
        {"metainfo": {"json_schema_version": 1}}, {"chain": ch},
        {"rule": {"family": "inet", "table": "dnsfence", "chain": "forward",
                  "handle": 7, "expr": [{"match": {
                      "op": "!=", "left": {"meta": {"key": "iifgroup"}},
                      "right": 2}}, {"accept": None}]}}]})


def tables_json(*names):
    return json.dumps({"nftables": [{"metainfo": {"json_schema_version": 1}}]
                      + [{"table": {"family": "inet", "name": n,
                                    "handle": i + 1}}
                         for i, n in enumerate(names)]})


# The exact input of the transaction that closes the daemon's table at
# priority P: the fail-safe's policy and rules, nothing else.
def closing(prio):
    return (f"add chain inet dnsfence forward {{ type filter hook forward "
            f"priority {prio}; policy accept; }}\n"
            "flush chain inet dnsfence forward\n"
            "add rule inet dnsfence forward ct state established,related "
            "accept\n"
            "add rule inet dnsfence forward iifgroup 2 counter reject with "
            "icmpx admin-prohibited comment \"dnsfence fail-safe: dnsfenced "
            "is not running\"\n")


def tagged(handle, family, address, comment="dnsfence"):
    r = {"handle": handle, "expr": [
        {"match": {"op": "==", "left": {"meta": {"key": "iifgroup"}},
                   "right": 2}},
        {"match": {"op": "==", "left": {"payload": {"protocol": family,
                                                    "field": "daddr"}},
                   "right": address}},
        {"accept": None}]}
    if comment is not None:
        r["comment"] = comment
    return r


class Render(unittest.TestCase):
    def test_recorded_qubesdb(self):
        s = qs.settings(DictDB(recorded()), NO_CONF)
        self.assertEqual(s["gateway"], "10.137.0.6")
        self.assertEqual(s["capture_to"], ["10.139.1.1", "10.139.1.2"])
        self.assertEqual(s["forward"], ["10.139.1.1", "10.139.1.2"])
        self.assertFalse(s["hard_capture"])
        text = qs.render(s, group="root")
        for line in ("listen: [10.137.0.6]", "freebind: true",
                     "  from-group: 2", "  to: [10.139.1.1, 10.139.1.2]",
                     "  any: false", "policies: /run/dnsfence/vms",
                     "control: /run/dnsfence/control.sock",
                     "  table: dnsfence", "  reject: true",
                     "  conntrack-purge: true  # a narrowed policy ends what it no longer admits",
                     "  trust-anchor-file: /usr/share/dns/root.key",
                     "  forward: [10.139.1.1, 10.139.1.2]"):
            self.assertIn(line + "\n", text)
        self.assertRegex(text, r"(?m)^  priority: 1\b")
        self.assertEqual(text, qs.render(s, group="root"))  # pure

    def test_yaml_shape(self):
        try:
            import yaml
        except ImportError:
            self.skipTest("python3-yaml not installed")
        s = qs.settings(DictDB(recorded()), NO_CONF)
        c = yaml.safe_load(qs.render(s, group="qubes"))
        self.assertEqual(c["capture"], {"from-group": 2, "any": False,
                                        "to": ["10.139.1.1", "10.139.1.2"]})
        self.assertEqual(c["nftables"], {"table": "dnsfence", "priority": 1,
                                         "from-group": 2, "reject": True,
                                         "conntrack-purge": True})
        self.assertEqual(c["control-group"], "qubes")

    def test_hard_capture_from_qvm_service(self):
        db = dict(recorded())
        db["/qubes-service/dnsfence-hard-capture"] = "1"
        db["/qubes-netvm-gateway6"] = "fd09:24ef:4179::a89:6"
        s = qs.settings(DictDB(db), NO_CONF)
        self.assertTrue(s["hard_capture"])
        text = qs.render(s, group="root")
        self.assertIn('listen: [10.137.0.6, "[fd09:24ef:4179::a89:6]:53"]',
                      text)
        self.assertIn("  any: true\n", text)

    def test_gateway6_without_hard_capture_is_not_listened_on(self):
        db = dict(recorded())
        db["/qubes-netvm-gateway6"] = "fd09:24ef:4179::a89:6"
        db["/qubes-service/dnsfence-hard-capture"] = "0"
        text = qs.render(qs.settings(DictDB(db), NO_CONF), group="root")
        self.assertIn("listen: [10.137.0.6]\n", text)

    def test_qubes_conf(self):
        with tempfile.TemporaryDirectory() as d:
            p = os.path.join(d, "qubes.conf")
            with open(p, "w") as f:
                f.write("# comment\n\nhard-capture = yes  # all port 53\n")
            self.assertEqual(qs.read_qubes_conf(p), {"hard-capture": True})
            with open(p, "w") as f:
                f.write("hard-captur = yes\n")
            with self.assertRaisesRegex(qs.SetupError,
                                        r"qubes.conf:1: unknown key"):
                qs.read_qubes_conf(p)
            with open(p, "w") as f:
                f.write("hard-capture = maybe\n")
            with self.assertRaises(qs.SetupError):
                qs.read_qubes_conf(p)
        self.assertEqual(qs.read_qubes_conf("/nonexistent/qubes.conf"),
                         NO_CONF)

    def test_not_a_network_provider(self):
        db = dict(recorded())
        del db["/qubes-netvm-gateway"]
        with self.assertRaisesRegex(qs.SetupError, "provides_network"):
            qs.settings(DictDB(db), NO_CONF)

    def test_bad_values(self):
        for key, val in (("/qubes-netvm-gateway", "10.137.0.6; flush"),
                         ("/qubes-netvm-gateway", "fd09::1"),
                         ("/qubes-netvm-primary-dns", "")):
            db = dict(recorded(), **{key: val})
            with self.assertRaises(qs.SetupError, msg=key):
                qs.settings(DictDB(db), NO_CONF)

    def test_forward_falls_back_to_resolv_conf(self):
        db = dict(recorded())
        del db["/qubes-primary-dns"], db["/qubes-secondary-dns"]
        with tempfile.TemporaryDirectory() as d:
            rc = os.path.join(d, "resolv.conf")
            with open(rc, "w") as f:
                f.write("nameserver 127.0.0.53\nnameserver 10.139.1.1\n"
                        "nameserver fd00::1\nsearch example\n")
            s = qs.settings(DictDB(db), NO_CONF, resolv_conf=rc)
            self.assertEqual(s["forward"], ["10.139.1.1"])
            with open(rc, "w") as f:
                f.write("nameserver 127.0.0.53\n")
            with self.assertRaisesRegex(qs.SetupError, "no upstream DNS"):
                qs.settings(DictDB(db), NO_CONF, resolv_conf=rc)


class Plan(unittest.TestCase):
    def test_add_when_absent(self):
        script = qs.plan_accepts([{"handle": 2, "expr": []}], "ip",
                                 "10.137.0.6")
        self.assertEqual(script, qs.accept_rule("ip", "10.137.0.6"))
        self.assertIn('comment "dnsfence"', script)
        self.assertIn("iifgroup 2 ip daddr 10.137.0.6 meta l4proto "
                      "{ tcp, udp } th dport 53", script)

    def test_idempotent(self):
        rules = [tagged(5, "ip", "10.137.0.6")]
        self.assertEqual(qs.plan_accepts(rules, "ip", "10.137.0.6"), "")

    def test_old_gateway_and_duplicates_go(self):
        rules = [tagged(5, "ip", "10.137.0.9"), tagged(6, "ip", "10.137.0.6"),
                 tagged(7, "ip", "10.137.0.6"),
                 tagged(8, "ip", "10.137.0.9", comment="mine")]
        self.assertEqual(qs.plan_accepts(rules, "ip", "10.137.0.6"),
                         "delete rule ip qubes custom-input handle 5\n"
                         "delete rule ip qubes custom-input handle 7\n")

    def test_removal_only_tagged(self):
        rules = [tagged(3, "ip", "10.137.0.6", comment=None),
                 tagged(4, "ip", "10.137.0.6", comment="dnsfence-other"),
                 tagged(9, "ip", "10.137.0.6")]
        self.assertEqual(qs.plan_removal(rules, "ip"),
                         "delete rule ip qubes custom-input handle 9\n")


class PlanClose(unittest.TestCase):
    def test_keeps_priority(self):
        self.assertEqual(qs.plan_close(json.loads(forward_json(1))[
            "nftables"][1]["chain"]), closing(1))
        ch = json.loads(forward_json(-7))["nftables"][1]["chain"]
        self.assertEqual(qs.plan_close(ch), closing(-7))

    def test_no_forward_chain(self):
        self.assertEqual(qs.plan_close(None), closing(1))

    def test_odd_chain_by_that_name_is_replaced(self):
        for ch in (json.loads(forward_json(hook=None)),
                   json.loads(forward_json(hook="input"))):
            ch = ch["nftables"][1]["chain"]
            self.assertEqual(qs.plan_close(ch),
                             "flush chain inet dnsfence forward\n"
                             "delete chain inet dnsfence forward\n"
                             + closing(1))

    def test_rules_are_failsafe_nft(self):
        """The closed chain is failsafe.nft's chain: same priority, policy
        and rules (comments in the file aside)."""
        with open(os.path.join(SRC, "contrib", "qubes", "failsafe.nft"),
                  encoding="utf-8") as f:
            text = f.read()
        self.assertEqual(qs.FAILSAFE, os.path.join(SRC, "contrib", "qubes",
                                                   "failsafe.nft"))
        body = text[text.index("chain forward {"):]
        body = body[body.index("{") + 1:body.index("}")]
        lines = [l.strip() for l in body.splitlines()
                 if l.strip() and not l.strip().startswith("#")]
        self.assertEqual(lines[0], "type filter hook forward priority "
                         f"filter + {qs.FAILSAFE_PRIO}; policy accept;")
        self.assertEqual(tuple(lines[1:]), qs.FAILSAFE_RULES)


class Commands(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.d = self.tmp.name
        nft = os.path.join(self.d, "nft")
        with open(nft, "w") as f:
            f.write(FAKE_NFT.format(python=sys.executable))
        os.chmod(nft, 0o755)
        os.environ["FAKE_NFT_DIR"] = self.d
        self.common = ["--qubesdb-json", DATA, "--nft", nft,
                       "--config", os.path.join(self.d, "run/dnsfence.yaml"),
                       "--policies", os.path.join(self.d, "run/vms"),
                       "--qubes-conf", os.path.join(self.d, "qubes.conf"),
                       "--trust-anchor", ANCHOR, "--control-group", "root"]

    def tearDown(self):
        self.tmp.cleanup()

    def log(self):
        try:
            with open(os.path.join(self.d, "log")) as f:
                return [json.loads(line) for line in f]
        except FileNotFoundError:
            return []

    def chain(self, family, rules):
        with open(os.path.join(self.d, family + "-qubes-custom-input.json"),
                  "w") as f:
            f.write(chain_json(family, rules))

    def table(self, forward=None):
        """inet dnsfence exists; forward: its forward chain's JSON."""
        with open(os.path.join(self.d, "inet-tables.json"), "w") as f:
            f.write(tables_json("filter", "dnsfence"))
        if forward is not None:
            with open(os.path.join(self.d, "inet-dnsfence-forward.json"),
                      "w") as f:
                f.write(forward)

    def writes(self):
        return [e for e in self.log() if "-f" in e["args"]]

    def test_start_adds_then_is_idempotent(self):
        self.chain("ip", [])
        rc = qs.main(["start", "--dnsfenced", "/bin/true"] + self.common)
        self.assertEqual(rc, 0)
        self.assertTrue(os.path.isdir(os.path.join(self.d, "run/vms")))
        with open(os.path.join(self.d, "run/dnsfence.yaml")) as f:
            self.assertIn("listen: [10.137.0.6]", f.read())
        writes = [e for e in self.log() if "-f" in e["args"]]
        self.assertEqual(len(writes), 1)
        self.assertEqual(writes[0]["stdin"],
                         qs.accept_rule("ip", "10.137.0.6"))
        # Second start: the tagged rule is there, nothing is written.
        self.chain("ip", [tagged(4, "ip", "10.137.0.6")])
        self.assertEqual(qs.main(["start", "--dnsfenced", "/bin/true"]
                                 + self.common), 0)
        self.assertEqual(len([e for e in self.log() if "-f" in e["args"]]),
                         1)

    def test_start_refused_by_dnsfenced_touches_no_nft(self):
        self.chain("ip", [])
        rc = qs.main(["start", "--dnsfenced", "/bin/false"] + self.common)
        self.assertEqual(rc, 1)
        self.assertFalse([e for e in self.log() if "-f" in e["args"]])

    def test_start_without_custom_input_fails(self):
        rc = qs.main(["start", "--dnsfenced", "/bin/true"] + self.common)
        self.assertEqual(rc, 1)

    def test_stop_closes_forward_then_removes_only_tagged(self):
        self.table(forward_json(1))
        self.chain("ip", [tagged(3, "ip", "10.137.0.6", comment=None),
                          tagged(9, "ip", "10.137.0.6")])
        self.chain("ip6", [tagged(11, "ip6", "fd09:24ef:4179::a89:6")])
        self.assertEqual(qs.main(["stop"] + self.common), 0)
        writes = self.writes()
        self.assertEqual(len(writes), 2)
        # First and alone: the table closed, in one transaction.
        self.assertEqual(writes[0]["args"], ["-f", "-"])
        self.assertEqual(writes[0]["stdin"], closing(1))
        self.assertEqual(writes[1]["stdin"],
                         "delete rule ip qubes custom-input handle 9\n"
                         "delete rule ip6 qubes custom-input handle 11\n")
        for e in self.log():
            # Never the table, a set, an element or another chain.
            self.assertNotRegex(e["stdin"], r"table|set|element|vm_|capture")
            self.assertFalse({"delete", "flush"} & set(e["args"]))

    def test_stop_keeps_another_priority(self):
        # nftables: priority: 2 (or a user's -5): the kernel cannot move a
        # base chain, so the fail-safe rules go in where it is.
        for prio in (2, -5):
            self.table(forward_json(prio))
            self.assertEqual(qs.main(["stop"] + self.common), 0)
            self.assertEqual(self.writes()[-1]["stdin"], closing(prio))

    def test_stop_table_without_forward(self):
        self.table()
        self.assertEqual(qs.main(["stop"] + self.common), 0)
        self.assertEqual([w["stdin"] for w in self.writes()], [closing(1)])

    def test_stop_no_table_loads_the_failsafe(self):
        self.assertEqual(qs.main(["stop"] + self.common), 0)
        self.assertEqual([w["args"] for w in self.writes()],
                         [["-f", qs.FAILSAFE]])
        with open(qs.FAILSAFE, encoding="utf-8") as f:
            self.assertRegex(f.read(), r"(?m)^create table inet dnsfence$")
        self.assertEqual(qs.main(["stop", "--failsafe", "/x/f.nft"]
                                 + self.common), 0)
        self.assertEqual(self.writes()[-1]["args"], ["-f", "/x/f.nft"])

    def test_stop_no_table_and_the_load_fails(self):
        os.environ["FAKE_NFT_FAIL"] = "failsafe.nft"
        try:
            self.chain("ip", [tagged(9, "ip", "10.137.0.6")])
            self.assertEqual(qs.main(["stop"] + self.common), 1)
        finally:
            del os.environ["FAKE_NFT_FAIL"]
        # Tried twice (the table may have appeared), then the accept went.
        self.assertEqual([w["args"] for w in self.writes()],
                         [["-f", qs.FAILSAFE]] * 2 + [["-f", "-"]])
        self.assertEqual(self.writes()[-1]["stdin"],
                         "delete rule ip qubes custom-input handle 9\n")

    def test_stop_closing_fails_exit_1_accept_still_removed(self):
        self.table(forward_json(1))
        self.chain("ip", [tagged(9, "ip", "10.137.0.6")])
        os.environ["FAKE_NFT_FAIL"] = "dnsfence forward"
        try:
            r = subprocess.run([sys.executable, SCRIPT, "stop"] + self.common,
                               capture_output=True, text=True,
                               env=dict(os.environ))
        finally:
            del os.environ["FAKE_NFT_FAIL"]
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertIn("closing inet dnsfence forward FAILED", r.stderr)
        self.assertIn("Operation not supported", r.stderr)
        self.assertEqual(self.writes()[-1]["stdin"],
                         "delete rule ip qubes custom-input handle 9\n")

    def test_stop_accept_removal_fails_exit_1_table_closed(self):
        self.table(forward_json(1))
        self.chain("ip", [tagged(9, "ip", "10.137.0.6")])
        os.environ["FAKE_NFT_FAIL"] = "custom-input"
        try:
            self.assertEqual(qs.main(["stop"] + self.common), 1)
        finally:
            del os.environ["FAKE_NFT_FAIL"]
        self.assertEqual(self.writes()[0]["stdin"], closing(1))

    def test_stop_nft_from_environment(self):
        # $DNSFENCE_NFT, as the e2e test and a unit drop-in may set it.
        self.table(forward_json(3))
        common = [a for a in self.common]
        i = common.index("--nft")
        nft = common[i + 1]
        del common[i:i + 2]
        r = subprocess.run([sys.executable, SCRIPT, "stop"] + common,
                           capture_output=True, text=True,
                           env=dict(os.environ, DNSFENCE_NFT=nft))
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("forward closed", r.stdout)
        self.assertEqual(self.writes()[0]["stdin"], closing(3))


def without_new_keys(text):
    """text without freebind, the capture block and the new nftables
    keys: what a daemon without the Qubes keys can check."""
    out, skipping = [], False
    for line in text.splitlines(keepends=True):
        key = line.split(":", 1)[0].strip()
        if not line.startswith(" "):
            skipping = key in ("freebind", "capture")
        if skipping or (line.startswith("  ") and key in NEW_KEYS):
            continue
        out.append(line)
    return "".join(out)


class DnsfencedCheck(unittest.TestCase):
    def test_rendered_config_passes_dnsfenced_n(self):
        dnsfenced = os.environ.get("DNSFENCED")
        if not dnsfenced:
            self.skipTest("DNSFENCED not set")
        skip = None
        for hard in (False, True):
            db = dict(recorded())
            if hard:
                db["/qubes-service/dnsfence-hard-capture"] = "1"
                db["/qubes-netvm-gateway6"] = "fd09:24ef:4179::a89:6"
            with tempfile.TemporaryDirectory() as d:
                os.mkdir(os.path.join(d, "vms"))
                cfg = os.path.join(d, "dnsfence.yaml")
                s = qs.settings(DictDB(db), NO_CONF)
                with open(cfg, "w") as f:
                    f.write(qs.render(s, policies=os.path.join(d, "vms"),
                                      trust_anchor=ANCHOR,
                                      control=os.path.join(d, "c.sock"),
                                      group="root"))
                r = subprocess.run([dnsfenced, "-n", "-c", cfg],
                                   capture_output=True, text=True)
                if r.returncode == 0:
                    continue
                errs = [l for l in r.stderr.splitlines() if l.strip()]
                unknown = [re.search(r"unknown key '([^']+)'", l)
                           for l in errs]
                if all(unknown) and {m.group(1) for m in unknown} <= NEW_KEYS:
                    # The rest must pass already: drop the new keys, retry.
                    with open(cfg, "w") as f:
                        f.write(without_new_keys(qs.render(
                            s, policies=os.path.join(d, "vms"),
                            trust_anchor=ANCHOR,
                            control=os.path.join(d, "c.sock"),
                            group="root")))
                    r2 = subprocess.run([dnsfenced, "-n", "-c", cfg],
                                        capture_output=True, text=True)
                    self.assertEqual(r2.returncode, 0, r2.stderr)
                    skip = ("this dnsfenced does not know the Qubes keys "
                            "yet (the rest passes): " + "; ".join(errs))
                    continue
                self.fail(f"dnsfenced -n rejects the rendered config:\n"
                          + r.stderr)
        if skip:
            self.skipTest(skip)


if __name__ == "__main__":
    unittest.main()
