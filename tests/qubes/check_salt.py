#!/usr/bin/env python3
"""Render contrib/qubes/salt with jinja2 (salt's pillar.get and yaml filter
stubbed, the example pillar as data) and parse every result as YAML; the
extra policy written by dnsfence.firewall must read back as the pillar's.
Exit 77 (skipped) without python3-yaml or python3-jinja2: not dependencies
of the project."""
import os
import sys
try:
    import jinja2
    import yaml
except ImportError as e:
    print(f"skipped: {e}")
    sys.exit(77)
root = sys.argv[1]
pillar = yaml.safe_load(open(os.path.join(root, 'user_pillar/dnsfence.sls')))
def pillar_get(key, default=None):
    cur = pillar
    for k in key.split(':'):
        if not isinstance(cur, dict) or k not in cur:
            return default
        cur = cur[k]
    return cur
env = jinja2.Environment(loader=jinja2.FileSystemLoader(root),
                         undefined=jinja2.StrictUndefined)
env.filters['yaml'] = lambda v, flow=True: yaml.safe_dump(v, default_flow_style=flow).rstrip('\n')
ok = True
for dirpath, _, files in os.walk(root):
    for f in sorted(files):
        if not f.endswith(('.sls', '.top')):
            continue
        rel = os.path.relpath(os.path.join(dirpath, f), root)
        for variant in ('as-is', 'hard-capture'):
            if variant == 'hard-capture':
                pillar['dnsfence']['hard-capture'] = True
            out = env.get_template(rel).render(salt={'pillar.get': pillar_get}, pillar=pillar)
            try:
                doc = yaml.safe_load(out)
            except yaml.YAMLError as e:
                print(f"{rel} ({variant}): {e}\n{out}"); ok = False; continue
            if not isinstance(doc, dict):
                print(f"{rel}: not a mapping"); ok = False
            if rel.endswith('firewall.sls') and variant == 'as-is':
                for k, v in doc.items():
                    if k.startswith('dnsfence-extra-') and 'file.managed' in v:
                        contents = [x['contents'] for x in v['file.managed'] if 'contents' in x][0]
                        extra = yaml.safe_load(contents)
                        assert extra == pillar['dnsfence']['vms']['work']['extra'], (contents, extra)
        pillar['dnsfence']['hard-capture'] = False
        print('ok', rel)
# The mode: takeover (the default) turns the qubes-firewall service off in
# the qube, layered turns it on; hard-capture is independent of it.
for mode in (None, 'takeover', 'layered'):
    for hard in (False, True):
        pillar['dnsfence'].pop('mode', None)
        if mode:
            pillar['dnsfence']['mode'] = mode
        pillar['dnsfence']['hard-capture'] = hard
        out = env.get_template('user_salt/dnsfence/dom0.sls').render(
            salt={'pillar.get': pillar_get}, pillar=pillar)
        feats = {}
        for item in yaml.safe_load(out)['dnsfence-sys-dnsfence-features']['qvm.features']:
            feats.update(item)
        on, off = feats.get('enable', []), feats.get('disable', [])
        want_on = mode == 'layered'
        if (('service.qubes-firewall' in on) != want_on or
                ('service.qubes-firewall' in off) == want_on or
                ('service.dnsfence-hard-capture' in on) != hard or
                'service.dnsfence' not in on):
            print(f"dom0.sls mode={mode} hard-capture={hard}: enable {on}, disable {off}")
            ok = False
print('ok dom0.sls modes' if ok else 'FAILED dom0.sls modes')
sys.exit(0 if ok else 1)
