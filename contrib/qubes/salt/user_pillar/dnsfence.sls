# /srv/user_pillar/dnsfence.sls -- an example to edit (the YAML between
# load_yaml and endload). It reaches dom0, the template and sys-dnsfence
# through /srv/user_pillar/dnsfence.top
# (sudo qubesctl top.enable dnsfence pillar=true); keep the names there in
# step with qube: and template: here.
{%- load_yaml as dnsfence %}
qube: sys-dnsfence           # the firewall-role qube dnsfence runs in
template: debian-13-xfce     # its template: the package goes there
netvm: sys-firewall          # its own netvm (stock sys-firewall stays)
label: orange
package: dnsfence
hard-capture: false          # true: every port-53 packet from the VMs is answered by dnsfence
mode: takeover               # qubes-firewall off in the qube; layered: on (doc/qubes.md)
vms:
  # Each VM here gets netvm: sys-dnsfence (unless netvm: false). Its
  # qvm-firewall rules become its policy; `extra` is merged into it, in
  # sys-dnsfence, under the address dom0 gives the VM at each apply.
  work:
    extra:
      allow:
        - name: "*.corp.example"
          ports: [tcp/443]
          require-dnssec: true
        - name: build.example.org
          until: "2026-12-31T18:00:00Z"   # quoted: a string, not a YAML timestamp
  personal: {}
  untrusted: {}              # only moved behind sys-dnsfence
{%- endload %}
{#- Keep this part. qubesctl renders the pillar in dom0 at every apply, for
    every target (a VM target's pillar too, before it is sent to the
    management disposable), so this asks dom0, now, for each VM with
    extras: its qid and its address. dnsfence.firewall files the extra under
    that address, and only when it is the VM's own default one; a VM that
    no longer exists gets no file. So an extra follows its VM, and never
    stays behind at an address dom0 hands to a new VM (doc/qubes.md,
    "Salt"). #}
{%- for vm, v in (dnsfence.get('vms') or {}).items() %}
{%-   if v is mapping and v.get('extra') %}
{%-     set _ = v.update({'dom0': {
          'qid': salt['cmd.run_stdout']('qvm-prefs -- ' ~ vm ~ ' qid',
                                        python_shell=False, ignore_retcode=True),
          'ip': salt['cmd.run_stdout']('qvm-prefs -- ' ~ vm ~ ' ip',
                                       python_shell=False, ignore_retcode=True),
        }}) %}
{%-   endif %}
{%- endfor %}
{{ {'dnsfence': dnsfence} | yaml(False) }}
