#!/usr/bin/env python3
"""Render contrib/qubes/salt with jinja2 and parse every result as YAML.

Salt is stubbed: pillar.get, the yaml filter, the load_yaml tag, and
cmd.run_stdout answering `qvm-prefs -- VM qid|ip` from a table that stands
for dom0. The pillar itself is rendered first, as qubesctl renders it in
dom0 at every apply, and its result is what the states see.

Beyond parsing, dnsfence.firewall's extras are checked (i9 review F10):
each is filed under the address dom0 gave at this apply, carries `vm:`,
reads back as the pillar's extra; a VM that is gone, renumbered, has a
hand-set ip or is a disposable gets no file; and the directory is cleaned of
every file this apply did not write. The clean-up is checked against a
model of Salt's file.directory `clean` (salt/states/file.py
_gen_keep_files/_clean_dir: keep the `name` of every file state the
directory state `require`s, by ID or name; remove everything else) applied
to a real directory holding stale and hand-written files.

Exit 77 (skipped) without python3-yaml or python3-jinja2: not dependencies
of the project."""
import copy
import os
import shlex
import sys
import tempfile
try:
    import jinja2
    import jinja2.ext
    from jinja2 import nodes
    import yaml
except ImportError as e:
    print(f"skipped: {e}")
    sys.exit(77)

root = sys.argv[1]
failures = []


def check(cond, msg):
    if not cond:
        failures.append(msg)
        print("FAIL:", msg)


class LoadYaml(jinja2.ext.Extension):
    """Salt's {% load_yaml as NAME %}...{% endload %} (SerializerExtension)."""
    tags = {"load_yaml"}

    def parse(self, parser):
        lineno = next(parser.stream).lineno
        parser.stream.expect("name:as")
        target = parser.parse_assign_target()
        body = parser.parse_statements(("name:endload",), drop_needle=True)
        return [
            nodes.AssignBlock(target, None, body).set_lineno(lineno),
            nodes.Assign(
                nodes.Name(target.name, "store"),
                nodes.Filter(nodes.Name(target.name, "load"), "load_yaml_text",
                             [], [], None, None)).set_lineno(lineno)]


env = jinja2.Environment(loader=jinja2.FileSystemLoader(root),
                         undefined=jinja2.StrictUndefined,
                         extensions=[LoadYaml])
env.filters["yaml"] = lambda v, flow=True: yaml.safe_dump(
    v, default_flow_style=flow).rstrip("\n")
env.filters["load_yaml_text"] = lambda text: yaml.safe_load(str(text))

# dom0 as qvm-prefs sees it: {vm: {prop: value}}; a missing VM prints
# nothing on stdout (cmd.run_stdout drops the error on stderr).
DOM0 = {"work": {"qid": "12", "ip": "10.137.0.12"},
        "personal": {"qid": "13", "ip": "10.137.0.13"},
        "debian-13-xfce": {"supported-service.dnsfence": "1"}}


def salt_funcs(dom0, pillar):
    def run_stdout(cmd, python_shell=False, ignore_retcode=False):
        assert python_shell is False and ignore_retcode is True, cmd
        argv = shlex.split(cmd)
        assert argv[:2] in (["qvm-prefs", "--"], ["qvm-features", "--"]) \
            and len(argv) == 4, argv
        return dom0.get(argv[2], {}).get(argv[3], "")

    def pillar_get(key, default=None):
        cur = pillar
        for k in key.split(":"):
            if not isinstance(cur, dict) or k not in cur:
                return default
            cur = cur[k]
        return cur
    return {"cmd.run_stdout": run_stdout, "pillar.get": pillar_get}


def render_pillar(dom0, edit=None):
    """The pillar as dom0 renders it: the example, edited by edit(text)."""
    text = open(os.path.join(root, "user_pillar/dnsfence.sls")).read()
    if edit:
        text = edit(text)
    out = env.from_string(text).render(salt=salt_funcs(dom0, {}))
    return yaml.safe_load(out)


def render(rel, pillar):
    out = env.get_template(rel).render(salt=salt_funcs(DOM0, pillar),
                                       pillar=pillar)
    try:
        doc = yaml.safe_load(out)
    except yaml.YAMLError as e:
        check(False, f"{rel}: not YAML: {e}\n{out}")
        return {}
    check(isinstance(doc, dict), f"{rel}: not a mapping")
    return doc or {}


def args(state, fun):
    """The arguments of a state's function, as one dict (requisites too)."""
    out = {}
    for item in state.get(fun, []):
        out.update(item)
    return out


# ---- every file renders, as-is and with hard capture ----------------------

base_pillar = render_pillar(DOM0)
for dirpath, _, files in os.walk(root):
    for f in sorted(files):
        if not f.endswith((".sls", ".top")):
            continue
        rel = os.path.relpath(os.path.join(dirpath, f), root)
        for variant in ("as-is", "hard-capture"):
            p = copy.deepcopy(base_pillar)
            if variant == "hard-capture":
                p["dnsfence"]["hard-capture"] = True
            if rel == "user_pillar/dnsfence.sls":
                out = env.get_template(rel).render(salt=salt_funcs(DOM0, {}))
                check(isinstance(yaml.safe_load(out), dict),
                      "the pillar does not render to a mapping")
            else:
                render(rel, p)
        print("ok", rel)

# ---- dnsfence.firewall: extras bound to their VM, the directory cleaned ---

FW = "user_salt/dnsfence/firewall.sls"
EXTRA_DIR = "/etc/dnsfence/qubes-extra"
work_extra = base_pillar["dnsfence"]["vms"]["work"]["extra"]


def firewall(dom0=DOM0, edit=None):
    return render(FW, render_pillar(dom0, edit))


def managed(doc):
    """{state ID: (path, parsed contents)} of the file.managed states."""
    out = {}
    for sid, st in doc.items():
        if "file.managed" in st:
            a = args(st, "file.managed")
            out[sid] = (a["name"], yaml.safe_load(a["contents"]))
    return out


def refused(doc):
    return {sid: args(st, "test.fail_without_changes")["name"]
            for sid, st in doc.items() if "test.fail_without_changes" in st}


def salt_clean(doc, directory):
    """Salt's file.directory clean on a real directory standing for
    EXTRA_DIR: keep what the required file states name, remove the rest.
    -> sorted names removed."""
    dstate = [st for st in doc.values() if "file.directory" in st]
    check(len(dstate) == 1, "not one file.directory state")
    a = args(dstate[0], "file.directory")
    check(a.get("name") == EXTRA_DIR, f"the directory state is {a.get('name')}")
    check(a.get("clean") is True, "the directory state does not clean")
    keep = set()
    for req in a.get("require") or []:
        for sid, st in doc.items():
            if "file.managed" in st and (
                    sid == req.get("file") or
                    args(st, "file.managed")["name"] == req.get("file")):
                keep.add(args(st, "file.managed")["name"])
    removed = []
    for name in sorted(os.listdir(directory)):
        if os.path.join(EXTRA_DIR, name) not in keep:
            os.unlink(os.path.join(directory, name))
            removed.append(name)
    # What the required states write is there after the apply.
    for path in keep:
        open(os.path.join(directory, os.path.basename(path)), "w").close()
    return removed


def stale_dir():
    """The directory before the apply: work's file from an earlier apply,
    a file of a VM since removed, a hand-written one."""
    d = tempfile.mkdtemp()
    for n in ("10.137.0.12.yaml", "10.137.0.20.yaml", "hand.yaml"):
        open(os.path.join(d, n), "w").close()
    return d


# 1. work exists with its default address: one file, bound to it.
doc = firewall()
m = managed(doc)
check(list(m) == ["dnsfence-extra-work"], f"managed: {list(m)}")
path, content = m.get("dnsfence-extra-work", (None, None))
check(path == EXTRA_DIR + "/10.137.0.12.yaml", f"work's file is {path}")
want = dict(work_extra, vm="work")
check(content == want, f"work's file reads back as {content}, not {want}")
check(refused(doc) == {}, f"refused: {refused(doc)}")
d = stale_dir()
check(salt_clean(doc, d) == ["10.137.0.20.yaml", "hand.yaml"],
      "the clean-up does not remove exactly the stale and hand-written files")
check(sorted(os.listdir(d)) == ["10.137.0.12.yaml"],
      f"after the apply the directory holds {sorted(os.listdir(d))}")
rs = args(doc["dnsfence-resync"], "cmd.wait")
check("try-reload-or-restart dnsfence-qubes-sync" in rs["name"], rs["name"])
for sid in ("dnsfence-extra-work", "dnsfence-extra-dir"):
    st = doc[sid]
    fun = "file.managed" if "file.managed" in st else "file.directory"
    check({"cmd": "dnsfence-resync"} in (args(st, fun).get("watch_in") or []),
          f"{sid} does not trigger the resync")

# 2. work deleted from dom0 (still in the pillar): no file, said loudly, and
# its old file goes; so does everything else.
doc = firewall({"personal": DOM0["personal"]})
check(managed(doc) == {}, f"a file for a VM dom0 does not know: {managed(doc)}")
check("no such VM" in refused(doc).get("dnsfence-extra-work-not-written", ""),
      f"refused: {refused(doc)}")
d = stale_dir()
check(salt_clean(doc, d) == ["10.137.0.12.yaml", "10.137.0.20.yaml",
                             "hand.yaml"], "the old file of a gone VM stays")

# 3. work removed from the pillar: the same clean-up, and no complaint.
doc = firewall(edit=lambda t: t.replace("  work:\n    extra:", "  work-old:\n"
                                        "    netvm: false\n    old:"))
check(managed(doc) == {} and refused(doc) == {},
      f"{managed(doc)} {refused(doc)}")
check(salt_clean(doc, stale_dir()) == ["10.137.0.12.yaml", "10.137.0.20.yaml",
                                       "hand.yaml"],
      "a VM removed from the pillar keeps its file")

# 4. work renumbered (recreated as qid 15): the file moves with it.
doc = firewall(dict(DOM0, work={"qid": "15", "ip": "10.137.0.15"}))
check([p for p, _ in managed(doc).values()] == [EXTRA_DIR + "/10.137.0.15.yaml"],
      f"renumbered: {managed(doc)}")
d = stale_dir()
check("10.137.0.12.yaml" in salt_clean(doc, d), "the old address keeps a file")

# 5. qid 300: the address is 10.137.1.44.
doc = firewall(dict(DOM0, work={"qid": "300", "ip": "10.137.1.44"}))
check([p for p, _ in managed(doc).values()] == [EXTRA_DIR + "/10.137.1.44.yaml"],
      f"qid 300: {managed(doc)}")

# 6. a hand-set ip, a disposable's address: refused, no file.
for found, why in ((("12", "10.137.0.50"), "set by hand"),
                   (("12", "10.138.3.4"), "disposable")):
    doc = firewall(dict(DOM0, work={"qid": found[0], "ip": found[1]}))
    check(managed(doc) == {}, f"{found}: {managed(doc)}")
    check(why in refused(doc).get("dnsfence-extra-work-not-written", ""),
          f"{found}: refused: {refused(doc)}")

# 7. a pillar written without the dom0 lookup (an old one, `ip:` by hand):
# refused, not trusted.
doc = render(FW, {"dnsfence": {"vms": {"work": {
    "ip": "10.137.0.12", "extra": work_extra}}}})
check(managed(doc) == {}, f"no lookup: {managed(doc)}")
check("did not look its address up" in
      refused(doc).get("dnsfence-extra-work-not-written", ""),
      f"no lookup: refused: {refused(doc)}")

# 8. the pillar's own `vm:` in an extra cannot name another VM.
doc = firewall(edit=lambda t: t.replace("    extra:\n", "    extra:\n"
                                        "      vm: personal\n", 1))
check((managed(doc).get("dnsfence-extra-work", (0, {}))[1] or {}).get("vm")
      == "work",
      "an extra's own vm: wins over the VM's name")

# 9. no VM with extras: the directory state requires nothing, so it keeps
# nothing.
doc = firewall(edit=lambda t: t.replace("    extra:", "    not-extra:", 1))
check(managed(doc) == {}, f"{managed(doc)}")
check(salt_clean(doc, stale_dir()) == ["10.137.0.12.yaml", "10.137.0.20.yaml",
                                       "hand.yaml"], "no extras: files stay")

print("ok", FW, "(extras bound to their VM, the directory cleaned)")

# ---- dnsfence.dom0: the mode ------------------------------------------------
# takeover (the default) turns the qubes-firewall service off in the qube,
# but only once the template advertises dnsfence (else it stays on and the
# state fails, saying why); layered keeps it on; hard capture is
# independent of both.
for advertised in (True, False):
    dom0 = copy.deepcopy(DOM0)
    if not advertised:
        dom0["debian-13-xfce"] = {}
    for mode in (None, "takeover", "layered"):
        for hard in (False, True):
            p = copy.deepcopy(base_pillar)
            p["dnsfence"].pop("mode", None)
            if mode:
                p["dnsfence"]["mode"] = mode
            p["dnsfence"]["hard-capture"] = hard
            out = env.get_template("user_salt/dnsfence/dom0.sls").render(
                salt=salt_funcs(dom0, p), pillar=p)
            doc = yaml.safe_load(out) or {}
            feats = args(doc.get("dnsfence-sys-dnsfence-features", {}),
                         "qvm.features")
            on, off = feats.get("enable", []), feats.get("disable", [])
            takeover = mode != "layered" and advertised
            pending = "dnsfence-sys-dnsfence-takeover-pending" in doc
            check(("service.qubes-firewall" in on) != takeover and
                  ("service.qubes-firewall" in off) == takeover and
                  ("service.dnsfence-hard-capture" in on) == hard and
                  ("service.dnsfence-hard-capture" in off) != hard and
                  "service.dnsfence" in on and
                  pending == (mode != "layered" and not advertised),
                  f"dom0.sls mode={mode} hard-capture={hard} "
                  f"advertised={advertised}: enable {on}, disable {off}, "
                  f"pending {pending}")
print("ok user_salt/dnsfence/dom0.sls (modes)")
sys.exit(1 if failures else 0)
