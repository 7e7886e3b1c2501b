"""Qubes OS firewall rules (QubesDB / qvm-firewall) -> dnsfence policies.

Pure functions only: no I/O happens here, at import or later, so the
conversion is tested on recorded rule sets without QubesDB. The sync
(dnsfence-qubes-sync, in the firewall qube) and the exporter
(dnsfence-qubes-export, in dom0) both call into this module.

Qubes evaluates a VM's rules in order, first match wins, then `policy`.
dnsfence has no order: `deny:` names are checked first, then `allow:`,
then `default:`; DNS itself (the queries to 10.139.1.1/2, which dnsfenced
answers locally) is a separate switch, `dns: allow|deny`. The walk in
`_walk` keeps exactly the rule sets whose meaning survives that change of
model; everything else fails closed for that VM, as qubes-firewall does
for a rule it cannot parse. README.md in this directory has the mapping
table; keep the two in step.
"""

import datetime
import ipaddress
import json
import re

# The QubesDB value limit (QDB_MAX_DATA); longer values are corrupt.
QDB_MAX_DATA = 3072

# The options dom0 writes, in its fixed order (`dpi` is documented but
# implemented nowhere: unknown, so fail closed).
KNOWN_OPTS = ("action", "dst4", "dst6", "dsthost", "proto", "specialtarget",
              "dstports", "icmptype")

QUBES_V6_PREFIX = ipaddress.IPv6Address("fd09:24ef:4179::")
QUBES_V4_NETS = (ipaddress.IPv4Network("10.137.0.0/16"),
                 ipaddress.IPv4Network("10.138.0.0/16"))

# Keys an extra file may carry: additive only (see `merge_extra`); `vm`
# only names the VM the file was written for (Salt writes it).
EXTRA_KEYS = ("allow", "deny", "require-dnssec", "unlisted", "vm")
# A Qubes VM name (qubes.vm.validate_name: a letter first, 31 at most).
_VM_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_.-]{0,30}\Z")
# `$` also matches before a final newline: every full-value match below
# ends in \Z, or "a.com\n" would pass as a name (and dnsfenced -n's
# two-line complaint about it would stop the sync for every VM).
EXTRA_ALLOW_KEYS = ("name", "net", "ports", "require-dnssec", "until",
                    "allow-private", "comment")

_RULE_KEY = re.compile(r"^[0-9]{4}\Z")
_LABEL = re.compile(r"^[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?\Z")
_PORT = re.compile(r"^(icmp|(tcp|udp)/[0-9]{1,5}(-[0-9]{1,5})?)\Z")
_COMMENT_SAFE = re.compile(r"[^\x20-\x7e]")


class RuleError(Exception):
    """A rule set that cannot be expressed exactly: the VM fails closed."""


# ---- small helpers --------------------------------------------------------

def policy_vm_name(ipv4):
    """The dnsfence VM name (and file stem) for a downstream IPv4 address.

    dnsfenced's VM names are a letter, then letters, digits, '_' or '-'
    (they become nftables set names), so the dots become dashes:
    10.137.0.12 -> qubes-10-137-0-12 (21 characters at most).
    """
    return "qubes-" + str(ipaddress.IPv4Address(ipv4)).replace(".", "-")


def policy_file_name(ipv4):
    return policy_vm_name(ipv4) + ".yaml"


def is_policy_file_name(fname):
    """True for the names this converter owns (and so may retire)."""
    m = re.match(r"^qubes-([0-9]+)-([0-9]+)-([0-9]+)-([0-9]+)\.yaml\Z", fname)
    if not m:
        return False
    try:
        return policy_file_name(".".join(m.groups())) == fname
    except ValueError:
        return False


def paired_ipv6(ipv4):
    """The IPv6 address Qubes derives for a VM whose IPv4 address is ipv4.

    dom0 (qubes/vm/mix/net.py) gives an ordinary VM 10.137.<qid>, and
    fd09:24ef:4179::a89:<qid hex>, a DispVM 10.138.<dispid> and
    ::a8a:<dispid hex>: both are the IPv4 address in the low 32 bits under
    the Qubes prefix (0x0a89 = 10.137, 0x0a8a = 10.138). None for an
    address outside those ranges. Both derive from the qid, not from each
    other: for a VM whose `ip` was set by hand, even inside those ranges,
    the result is not its IPv6 address (README.md, "IPv6 pairing").
    """
    a = ipaddress.IPv4Address(ipv4)
    if not any(a in n for n in QUBES_V4_NETS):
        return None
    return str(ipaddress.IPv6Address(int(QUBES_V6_PREFIX) | int(a)))


def _sanitize(text, limit=160):
    text = _COMMENT_SAFE.sub("?", text)
    if len(text) > limit:
        text = text[:limit] + "...(%d bytes)" % len(text)
    return text


def _q(s):
    """A YAML double-quoted scalar (JSON strings of ASCII text are YAML)."""
    return json.dumps(str(s), ensure_ascii=True)


def normalise_name(name):
    """dsthost -> the name dnsfenced accepts, or raise RuleError.

    Mirrors policy_normalise_name(): one trailing dot ignored, 253
    characters at most, labels of 1-63 of [a-z0-9_-], no '-' at either end.
    """
    n = name.lower()
    if n.endswith("."):
        n = n[:-1]
    if not n or len(n) > 253 or not all(_LABEL.match(l) for l in n.split(".")):
        raise RuleError("dsthost %s is not a name dnsfence accepts"
                        % _sanitize(name, 80))
    return n


def _ports_range(value):
    m = re.match(r"^([0-9]{1,5})-([0-9]{1,5})\Z", value)
    if not m:
        raise RuleError("dstports=%s is not A-B" % _sanitize(value, 40))
    lo, hi = int(m.group(1)), int(m.group(2))
    if not 1 <= lo <= hi <= 65535:
        raise RuleError("dstports=%s is out of range" % value)
    return lo, hi


def _port_text(proto, lo, hi):
    return "%s/%d" % (proto, lo) if lo == hi else "%s/%d-%d" % (proto, lo, hi)


# ---- parsing one rule -----------------------------------------------------

def parse_rule(text, family):
    """One QubesDB rule string -> dict of options, or raise RuleError.

    Stricter than qubes-firewall's own `dict(e.split('='))` only where it
    would have crashed or silently taken the last of duplicate options.
    """
    if len(text.encode("utf-8", "surrogateescape")) > QDB_MAX_DATA:
        raise RuleError("a rule longer than QubesDB's %d-byte limit"
                        % QDB_MAX_DATA)
    opts = {}
    for elem in text.split(" "):
        k, sep, v = elem.partition("=")
        if not sep or not k or "=" in v:
            raise RuleError("malformed rule element %r" % _sanitize(elem, 60))
        if k in opts:
            raise RuleError("option %s given twice" % _sanitize(k, 40))
        opts[k] = v
    unknown = [k for k in opts if k not in KNOWN_OPTS]
    if unknown:
        raise RuleError("unsupported rule option(s): %s"
                        % ", ".join(_sanitize(k, 40) for k in sorted(unknown)))
    if opts.get("action") not in ("accept", "drop"):
        raise RuleError("action=%s is neither accept nor drop"
                        % _sanitize(opts.get("action", "(none)"), 40))
    if sum(k in opts for k in ("dst4", "dst6", "dsthost")) > 1:
        raise RuleError("more than one of dst4, dst6, dsthost")
    if "dst4" in opts:
        if family == 6:
            raise RuleError("dst4 rule in an IPv6 tree")
        opts["dst4"] = _net(opts["dst4"], 4)
    if "dst6" in opts:
        if family == 4:
            raise RuleError("dst6 rule in an IPv4 tree")
        opts["dst6"] = _net(opts["dst6"], 6)
    if "dsthost" in opts:
        opts["dsthost"] = normalise_name(opts["dsthost"])
    proto = opts.get("proto")
    if proto is not None and proto not in ("tcp", "udp", "icmp"):
        raise RuleError("proto=%s is not tcp, udp or icmp"
                        % _sanitize(proto, 40))
    if "dstports" in opts:
        if proto == "icmp":
            raise RuleError("dstports with proto=icmp")
        opts["dstports"] = _ports_range(opts["dstports"])
    if "icmptype" in opts:
        if proto != "icmp" or not re.match(r"^[0-9]{1,3}\Z", opts["icmptype"]) \
                or int(opts["icmptype"]) > 255:
            raise RuleError("icmptype=%s without proto=icmp or out of range"
                            % _sanitize(opts["icmptype"], 40))
    st = opts.get("specialtarget")
    if st is not None and st != "dns":
        raise RuleError("specialtarget=%s is not dns" % _sanitize(st, 40))
    return opts


def _net(value, fam):
    try:
        # strict=False: host bits after the prefix are masked, as nft's
        # `daddr A/len` itself does, so the set matched is the same.
        n = ipaddress.ip_network(value, strict=False)
    except ValueError:
        raise RuleError("dst%d=%s is not a network" % (fam, _sanitize(value, 60)))
    if n.version != fam:
        raise RuleError("dst%d=%s is not IPv%d" % (fam, value, fam))
    return str(n)


# ---- one tree -> an abstract result ---------------------------------------

class Allow:
    """An allow entry. kind: 'name', 'net', or 'any' (no destination: a
    proto/port-only or icmp-only accept, rendered as `net: 0.0.0.0/0` /
    `::/0` so bare IPs pass, plus `name: "*"` for tcp/udp so names
    resolve, as in Qubes; see render)."""

    __slots__ = ("kind", "value", "ports", "comments", "extra")

    def __init__(self, kind, value, ports, comment=None, extra=None):
        self.kind, self.value, self.ports = kind, value, ports
        self.comments = [comment] if comment else []
        self.extra = extra or {}

    def key(self):
        return (self.kind, self.value, self.ports,
                tuple(sorted((k, str(v)) for k, v in self.extra.items())))


class Result:
    def __init__(self):
        self.default = None      # "allow" | "deny"
        self.dns = None          # "allow" | "deny"
        self.allow = []          # [Allow]
        self.deny = []           # [name]
        self.notes = []          # log lines (warnings)
        self.failed = None       # reason, when the VM fails closed
        self.unlisted = None     # from an extra file
        self.extra_vm = None     # the extra file's `vm:` (shown, not checked)


def _ports_of(opts):
    """The `ports:` list for an accept rule, or None for "any"."""
    proto = opts.get("proto")
    if proto == "icmp":
        return ("icmp",)
    lo, hi = opts.get("dstports", (1, 65535))
    if proto is None:
        if "dstports" not in opts:
            return None
        return (_port_text("tcp", lo, hi), _port_text("udp", lo, hi))
    return (_port_text(proto, lo, hi),)


def _classify(opts):
    """-> one of: accept-all, accept-dns, accept-dns-narrow, noop-dns,
    accept, drop-all, drop-dns, drop-name, drop-other."""
    matchers = [k for k in opts if k != "action"]
    accept = opts["action"] == "accept"
    if not matchers:
        return "accept-all" if accept else "drop-all"
    if "specialtarget" in opts:
        ports = opts.get("dstports")
        if ports is not None and ports != (53, 53):
            # qubes-firewall skips such a rule entirely.
            return "noop-dns"
        others = [k for k in matchers if k not in ("specialtarget", "dstports")]
        if not others:
            return "accept-dns" if accept else "drop-dns"
        # Limited to one protocol or one server: narrower than "DNS".
        return "accept-dns-narrow" if accept else "drop-other"
    if not accept:
        return "drop-name" if matchers == ["dsthost"] else "drop-other"
    return "accept"


# dom0 hard-codes these for every VM (qubes/vm/mix/net.py, `dns`).
QUBES_DNS = (ipaddress.ip_address("10.139.1.1"),
             ipaddress.ip_address("10.139.1.2"))


def _may_match_dns(opts):
    """Could this drop rule match a VM's query to 10.139.1.1/2 port 53?"""
    if opts.get("proto") == "icmp" or "dsthost" in opts or "dst6" in opts:
        return False
    lo, hi = opts.get("dstports", (53, 53))
    if not lo <= 53 <= hi:
        return False
    if "dst4" in opts:
        net = ipaddress.ip_network(opts["dst4"])
        return any(d in net for d in QUBES_DNS)
    return True


def _walk(rules, policy, family, notes=None):
    """rules: [(key, text)] in order; policy: the `policy` value;
    notes: {key: {"until": RFC 3339, "comment": text}} from the exporter
    (dom0 knows a rule's expiry and comment, QubesDB does not)."""
    notes = notes or {}
    r = Result()
    parsed = []
    for key, text in rules:
        try:
            parsed.append((key, text, parse_rule(text, family)))
        except RuleError as e:
            raise RuleError("rule %s: %s" % (key, e))
    if policy not in ("accept", "drop"):
        raise RuleError("policy=%s is neither accept nor drop"
                        % _sanitize(str(policy), 40))
    kinds = [_classify(o) for _, _, o in parsed]
    pending_drop_other = None
    drops_dns = None  # the first pending drop-other that may hit DNS
    for i, (key, text, opts) in enumerate(parsed):
        kind = kinds[i]
        # The policy is the implicit last rule.
        later = kinds[i + 1:] + (["accept-all"] if policy == "accept" else [])
        note = "%s: %s" % (key, _sanitize(text))
        if kind == "drop-other":
            # A drop narrower than "everything" cannot be said in dnsfence
            # (no deny for nets, ports or protocols): harmless when nothing
            # is accepted after it (the default is deny then), otherwise the
            # accepts after it would admit what Qubes drops.
            if pending_drop_other is None:
                pending_drop_other = key
            if drops_dns is None and _may_match_dns(opts):
                drops_dns = key
            continue
        if kind == "accept-dns" and drops_dns is not None:
            raise RuleError("rule %s may drop DNS that rule %s accepts"
                            % (drops_dns, key))
        if kind in ("accept-all", "accept") and \
                pending_drop_other is not None:
            raise RuleError("rule %s drops part of what rule %s accepts: "
                            "a drop other than `action=drop dsthost=NAME` "
                            "before an accept" % (pending_drop_other, key))
        if kind == "accept-all":
            r.default = "allow"
            if r.dns is None:
                r.dns = "allow"
            return r
        if kind == "drop-all":
            r.default = "deny"
            if r.dns is None:
                r.dns = "deny"
            return r
        if kind == "accept-dns":
            if r.dns is None:
                r.dns = "allow"
        elif kind == "drop-dns":
            if r.dns is None:
                r.dns = "deny"
        elif kind == "noop-dns":
            r.notes.append("rule %s ignored: specialtarget=dns with ports "
                           "other than 53 matches nothing in qubes-firewall"
                           % key)
        elif kind == "accept-dns-narrow":
            r.notes.append("rule %s dropped: DNS limited to one protocol or "
                           "server cannot be expressed (narrower: this rule "
                           "grants no DNS)" % key)
        elif kind == "drop-name":
            if any(k in ("accept", "accept-all") for k in later):
                name = opts["dsthost"]
                if name not in r.deny:
                    r.deny.append(name)
                shadow = [a for a in r.allow
                          if a.kind == "name" and a.value == name]
                r.notes.append(
                    "rule %s becomes deny %s: its addresses reached without "
                    "the name (a bare IP, another name) are no longer "
                    "stopped%s" % (key, name,
                                   "; it also cancels the earlier accept of "
                                   "that name (narrower)" if shadow else ""))
        elif kind == "accept":
            if "icmptype" in opts:
                r.notes.append("rule %s dropped: icmptype cannot be "
                               "expressed (narrower)" % key)
                continue
            ports = _ports_of(opts)
            if "dsthost" in opts:
                a = Allow("name", opts["dsthost"], ports, note)
            elif "dst4" in opts or "dst6" in opts:
                a = Allow("net", opts.get("dst4") or opts.get("dst6"), ports,
                          note)
            else:
                a = Allow("any", None, ports, note)
            extra = notes.get(key, {})
            if extra.get("comment"):
                a.comments.append("comment: " + extra["comment"])
            if extra.get("until"):
                a.extra["until"] = extra["until"]
            r.allow.append(a)
    if policy == "accept":
        if pending_drop_other is not None:
            raise RuleError("rule %s drops part of what policy accept "
                            "accepts" % pending_drop_other)
        r.default = "allow"
        if r.dns is None:
            r.dns = "allow"
    else:
        r.default = "deny"
        if r.dns is None:
            r.dns = "deny"
    return r


def rules_of_tree(db, ip):
    """The (policy, [(key, text)]) of /qubes-firewall/<ip>/ in db."""
    prefix = "/qubes-firewall/%s/" % ip
    policy = None
    rules = []
    for k, v in db.items():
        if not k.startswith(prefix):
            continue
        sub = k[len(prefix):]
        if sub == "policy":
            policy = v
        elif _RULE_KEY.match(sub):
            rules.append((sub, v))
        else:
            raise RuleError("unexpected key %s (rule keys are 4 digits)"
                            % _sanitize(sub, 60))
    if policy is None:
        raise RuleError("no policy in /qubes-firewall/%s/" % ip)
    rules.sort(key=lambda kv: int(kv[0]))
    return policy, rules


def convert_rules(rules, policy, family, notes=None):
    """[(key, text)], policy, 4|6 -> Result.
    Never raises: a RuleError becomes Result.failed."""
    try:
        return _walk(rules, policy, family, notes)
    except RuleError as e:
        r = Result()
        r.failed = str(e)
        return r


# ---- merging the v4 and v6 results of one VM ------------------------------

def _combine(r4, r6, ip6):
    if r6 is None:
        return r4
    if r4.failed or r6.failed:
        r = Result()
        r.failed = r4.failed or ("IPv6 tree %s: %s" % (ip6, r6.failed))
        return r
    r = Result()
    r.notes = r4.notes + ["IPv6 tree: " + n for n in r6.notes]
    if r4.default != r6.default:
        r.failed = ("the IPv4 and IPv6 trees disagree on the default "
                    "(%s / %s)" % (r4.default, r6.default))
        return r
    r.default = r4.default
    r.dns = "allow" if r4.dns == r6.dns == "allow" else "deny"
    if r4.dns != r6.dns:
        r.notes.append("the IPv4 and IPv6 trees disagree on DNS: deny")
    # Names and "any" entries act on both families in dnsfence: keep those
    # both trees have (a transient half-written tree never widens).
    k6 = {a.key() for a in r6.allow if a.kind != "net"}
    k4 = {a.key() for a in r4.allow if a.kind != "net"}
    for a in r4.allow:
        if a.kind == "net" or a.key() in k6:
            r.allow.append(a)
        else:
            r.notes.append("dropped (not in the IPv6 tree): %s"
                           % "; ".join(a.comments))
    for a in r6.allow:
        if a.kind == "net":
            r.allow.append(a)
        elif a.key() not in k4:
            r.notes.append("dropped (not in the IPv4 tree): %s"
                           % "; ".join(a.comments))
    r.deny = list(dict.fromkeys(r4.deny + r6.deny))
    return r


# ---- extra YAML -----------------------------------------------------------

def _extra_time(v):
    if isinstance(v, datetime.datetime):
        if v.tzinfo is None:
            v = v.replace(tzinfo=datetime.timezone.utc)
        return v.astimezone(datetime.timezone.utc).strftime(
            "%Y-%m-%dT%H:%M:%SZ")
    if isinstance(v, str):
        return v
    raise RuleError("until must be an RFC 3339 time")


def merge_extra(r, extra, src="extra", vm=None):
    """Merge a parsed extra file into r, ADDITIVELY (README.md, "Merge").

    - `allow:` entries are appended after the converted ones, as given
      (`name` may be a wildcard; `ports`, `require-dnssec`, `until`,
      `allow-private` kept;
      `comment` becomes a YAML comment). They only add.
    - `deny:` names are appended (they only take away).
    - `require-dnssec: true` marks every name rule converted from Qubes
      require-dnssec (narrower only).
    - `unlisted:` is copied.
    - `vm:` names the VM the file was written for: a comment in the
      policy. The firewall qube sees addresses, not names, so nothing
      checks it there (Salt binds the file to the VM in dom0); given vm
      (the exporter, which knows the name), a different `vm:` is an error.
    Any other key, or a malformed entry, raises RuleError: the VM then
    fails closed, since a typo in a deny list must never weaken it.
    """
    if extra is None:
        return
    if not isinstance(extra, dict):
        raise RuleError("%s: not a mapping" % src)
    bad = [k for k in extra if k not in EXTRA_KEYS]
    if bad:
        raise RuleError("%s: key(s) %s not allowed (only %s)"
                        % (src, ", ".join(map(str, bad)), ", ".join(EXTRA_KEYS)))
    if "vm" in extra:
        name = extra["vm"]
        if not isinstance(name, str) or not _VM_NAME.match(name):
            raise RuleError("%s: vm must be a Qubes VM name" % src)
        if vm is not None and name != vm:
            raise RuleError("%s: written for VM %s, not %s"
                            % (src, name, vm))
        r.extra_vm = name
    dnssec = extra.get("require-dnssec", False)
    if not isinstance(dnssec, bool):
        raise RuleError("%s: require-dnssec must be true or false" % src)
    if dnssec:
        for a in r.allow:
            if a.kind in ("name", "any"):
                a.extra["require-dnssec"] = True
    if "unlisted" in extra:
        if extra["unlisted"] not in ("refused", "nxdomain"):
            raise RuleError("%s: unlisted must be refused or nxdomain" % src)
        r.unlisted = extra["unlisted"]
    for i, e in enumerate(extra.get("allow") or []):
        r.allow.append(_extra_allow(e, "%s: allow[%d]" % (src, i)))
    for i, e in enumerate(extra.get("deny") or []):
        if not isinstance(e, dict) or list(e) != ["name"] or \
                not isinstance(e["name"], str):
            raise RuleError("%s: deny[%d] must be {name: NAME}" % (src, i))
        r.deny.append(_extra_name(e["name"], "%s: deny[%d]" % (src, i)))
    r.deny = list(dict.fromkeys(r.deny))


def _extra_name(n, where):
    if n == "*" or n == "*.":
        return "*"
    body = n[2:] if n.startswith("*.") else n
    try:
        body = normalise_name(body)
    except RuleError:
        raise RuleError("%s: bad name %s" % (where, _sanitize(n, 80)))
    return ("*." + body) if n.startswith("*.") else body


def _extra_allow(e, where):
    if not isinstance(e, dict):
        raise RuleError("%s: not a mapping" % where)
    bad = [k for k in e if k not in EXTRA_ALLOW_KEYS]
    if bad:
        raise RuleError("%s: unknown key(s) %s" % (where, ", ".join(map(str, bad))))
    if ("name" in e) == ("net" in e):
        raise RuleError("%s: needs exactly one of name or net" % where)
    ports = None
    if "ports" in e:
        p = e["ports"]
        if not isinstance(p, list) or not p or \
                not all(isinstance(x, str) and _PORT.match(x) for x in p):
            raise RuleError("%s: ports must be a list of tcp/N[-M], "
                            "udp/N[-M] or icmp" % where)
        ports = tuple(p)
    extra = {}
    for k in ("require-dnssec", "allow-private"):
        if k in e:
            if not isinstance(e[k], bool):
                raise RuleError("%s: %s must be true or false" % (where, k))
            if "net" in e:
                raise RuleError("%s: %s applies to names, not to net"
                                % (where, k))
            extra[k] = e[k]
    if "until" in e:
        extra["until"] = _extra_time(e["until"])
    comment = "%s%s" % (where, (": " + _sanitize(str(e["comment"])))
                        if "comment" in e else "")
    if "name" in e:
        if not isinstance(e["name"], str):
            raise RuleError("%s: name must be a string" % where)
        return Allow("name", _extra_name(e["name"], where), ports, comment,
                     extra)
    if not isinstance(e["net"], str):
        raise RuleError("%s: net must be a string" % where)
    try:
        net = str(ipaddress.ip_network(e["net"], strict=True))
    except ValueError:
        raise RuleError("%s: bad net %s" % (where, _sanitize(e["net"], 60)))
    return Allow("net", net, ports, comment, extra)


# ---- rendering ------------------------------------------------------------

def render(r, addresses, header=()):
    """Result + [addresses] -> policy text (YAML that dnsfenced -n takes).

    A failed result renders the closed policy: no allow, no deny,
    `default: deny`, `dns: deny`.
    """
    out = ["# " + _sanitize(h, 300) for h in header]
    if r.extra_vm and not r.failed:
        out.append("# Its extra file says it was written for VM %s (not "
                   "checked here: this qube sees addresses, not names)."
                   % r.extra_vm)
    if r.failed:
        out.append("# FAIL CLOSED: " + _sanitize(r.failed, 300))
    out += ["# " + _sanitize(n, 300) for n in r.notes]
    out.append("addresses: [%s]" % ", ".join(_q(a) for a in addresses))
    if r.failed:
        out += ["default: deny", "dns: deny"]
        return "\n".join(out) + "\n"
    out.append("default: %s" % r.default)
    out.append("dns: %s" % r.dns)
    if r.unlisted:
        out.append("unlisted: %s" % r.unlisted)
    has_v6 = any(":" in a for a in addresses)
    entries = []
    seen = set()
    for a in r.allow:
        if a.key() in seen:
            continue
        seen.add(a.key())
        entries.append(a)
    if entries:
        out.append("allow:")
    for a in entries:
        out += ["  # " + _sanitize(c, 300) for c in a.comments]
        if a.kind == "any":
            # Ports to anywhere need names to resolve to be of use: "*"
            # with the same ports (Qubes resolves every name too). ICMP
            # alone does not: the GUI's "allow ICMP" box is on by default,
            # and a "*" there would answer every name for most VMs.
            targets = [("net", "0.0.0.0/0")]
            if a.ports is None or a.ports != ("icmp",):
                targets.insert(0, ("name", "*"))
            if has_v6:
                targets.append(("net", "::/0"))
        else:
            targets = [(a.kind, a.value)]
        for kind, value in targets:
            out.append("  - %s: %s" % (kind, _q(value)))
            if a.ports is not None:
                out.append("    ports: [%s]" % ", ".join(_q(p) for p in a.ports))
            for k, v in a.extra.items():
                if kind == "net" and k == "require-dnssec":
                    continue
                if isinstance(v, bool):
                    out.append("    %s: %s" % (k, "true" if v else "false"))
                else:
                    out.append("    %s: %s" % (k, _q(v)))
    if r.deny:
        out.append("deny:")
        out += ["  - name: %s" % _q(n) for n in r.deny]
    return "\n".join(out) + "\n"


# ---- the whole firewall qube ----------------------------------------------

def connected_ips(value, fam):
    """The distinct addresses of family fam in a /connected-ips value."""
    out = []
    for tok in (value or "").split():
        try:
            a = ipaddress.ip_address(tok)
        except ValueError:
            continue
        if a.version == fam:
            out.append(str(a))
    return list(dict.fromkeys(out))


def _targets(db):
    """The <ip> of every /qubes-firewall/<ip>/... key, as QubesDB spells it."""
    t = set()
    for k in db:
        parts = k.split("/")
        if len(parts) >= 3 and parts[1] == "qubes-firewall" and parts[2]:
            t.add(parts[2])
    return t


def convert_vm(rules, addresses, policy="drop", extra=None, notes=None,
               header=(), src="extra file", vm=None):
    """The exporter's entry: one VM's full rule list (both families, as
    `qvm-firewall VM list --raw` gives it, expire=/comment= already taken
    out) -> (policy text, [log lines]). Like dom0's qdb_entries, dst6
    rules are left out of the IPv4 list and dst4 rules out of the IPv6
    one; the keys keep the rule's position, so the gaps match QubesDB's.
    """
    def family(f):
        drop = "dst6=" if f == 4 else "dst4="
        return [(k, t) for k, t in rules
                if not any(e.startswith(drop) for e in t.split(" "))]
    v6 = [a for a in addresses[1:] if ":" in a]
    r4 = convert_rules(family(4), policy, 4, notes)
    r6 = convert_rules(family(6), policy, 6, notes) if v6 else None
    r = _combine(r4, r6, v6[0] if v6 else None)
    if not r.failed:
        try:
            merge_extra(r, extra, src, vm)
        except RuleError as e:
            r = Result()
            r.failed = str(e)
    log = list(r.notes)
    if r.failed:
        log.append("closed (default: deny, dns: deny): %s" % r.failed)
    return render(r, addresses, header), log


def _claimers(skip, ip):
    names = skip.get(ip) if isinstance(skip, dict) else None
    return ", ".join(names) if names else "another policy file"


def convert(db, extras=None, extra_errors=None, skip=()):
    """Convert a QubesDB tree to dnsfence policies.

    db: {path: value} (str values; the keys QubesDB has, e.g.
        /qubes-firewall/10.137.0.12/0000, /connected-ips, /connected-ips6).
    extras: {ipv4: parsed extra YAML (a dict)}; extra_errors: {ipv4: why}
        for extra files that could not be parsed (that VM fails closed).
    skip: addresses another policy in the directory already claims (a
        hand-written or exported file wins; they get no file here): a set,
        or a mapping {address: [names of the claiming files]} so that the
        log can name them.
    Returns ({file name: policy text}, [log lines]). Every address in
    /connected-ips (but those skipped) gets exactly one file; nothing
    else does.
    """
    extras = extras or {}
    extra_errors = extra_errors or {}
    log = []
    v4s = connected_ips(db.get("/connected-ips"), 4)
    v6s = set(connected_ips(db.get("/connected-ips6"), 6))
    targets = _targets(db)
    # QubesDB spells the v6 tree as dom0's str(IPv6Address): compressed.
    t6 = {}
    for t in targets:
        try:
            a = ipaddress.ip_address(t)
        except ValueError:
            log.append("ignoring /qubes-firewall/%s: not an address"
                       % _sanitize(t, 60))
            continue
        if a.version == 6:
            t6[str(a)] = t
    files = {}
    paired6 = set()
    for ip in v4s:
        if ip in skip:
            # Loud, on every pass: such a file is bound to an address, not
            # to a VM, and dom0 reuses addresses (the lowest free qid).
            log.append("%s: WARNING: claimed by %s, a policy file not "
                       "generated from QubesDB: this VM's qvm-firewall rules "
                       "and extra file are NOT applied; that file is bound "
                       "to the address, so it applies to whichever VM has "
                       "%s" % (ip, _claimers(skip, ip), ip))
            ip6 = paired_ipv6(ip)
            if ip6 in v6s:
                paired6.add(ip6)
            continue
        vm = policy_vm_name(ip)
        lines = []
        addresses = [ip]
        r4 = r6 = None
        ip6 = paired_ipv6(ip)
        if ip6 in skip:
            paired6.add(ip6)
            lines.append("%s: WARNING: IPv6 %s is claimed by %s: IPv4 "
                         "only here" % (ip, ip6, _claimers(skip, ip6)))
        elif ip6 is not None and ip6 in v6s and ip6 in t6 and ip in targets:
            addresses.append(ip6)
            paired6.add(ip6)
        elif ip6 is not None and ip6 in v6s:
            paired6.add(ip6)
            lines.append("%s: IPv6 %s is connected but has no rules (or the "
                         "IPv4 tree is missing): IPv4 only, its IPv6 traffic "
                         "is dropped" % (ip, ip6))
        if ip not in targets:
            r = Result()
            r.failed = "no rules in QubesDB for %s (yet)" % ip
        else:
            try:
                policy, rules = rules_of_tree(db, ip)
                r4 = convert_rules(rules, policy, 4)
                if len(addresses) > 1:
                    p6, rules6 = rules_of_tree(db, t6[ip6])
                    r6 = convert_rules(rules6, p6, 6)
                r = _combine(r4, r6, ip6)
            except RuleError as e:
                r = Result()
                r.failed = str(e)
        if not r.failed:
            try:
                if ip in extra_errors:
                    raise RuleError("extra file: %s" % extra_errors[ip])
                merge_extra(r, extras.get(ip), "extra file for %s" % ip)
            except RuleError as e:
                r = Result()
                r.failed = str(e)
        for n in r.notes:
            lines.append("%s: %s" % (ip, n))
        if r.failed:
            lines.append("%s: closed (default: deny, dns: deny): %s"
                         % (ip, r.failed))
        header = ["Generated by dnsfence-qubes-sync from QubesDB "
                  "/qubes-firewall/%s%s for VM %s. Do not edit: the next "
                  "sync overwrites it." % (
                      ip, (" and /qubes-firewall/%s" % ip6)
                      if len(addresses) > 1 else "", vm)]
        files[policy_file_name(ip)] = render(r, addresses, header)
        log += lines
    for ip6 in sorted(v6s - paired6):
        log.append("%s: IPv6 address without a paired IPv4 VM: no policy, "
                   "its traffic is dropped" % ip6)
    return files, log
