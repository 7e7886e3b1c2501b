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
sys.exit(0 if ok else 1)
