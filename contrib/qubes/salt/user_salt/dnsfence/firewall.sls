# dnsfence, in sys-dnsfence: extra YAML per VM (wildcards, require-dnssec,
# until), merged by dnsfence-qubes-sync into the policy it converts from the
# VM's qvm-firewall rules.
#   sudo qubesctl --skip-dom0 --targets=sys-dnsfence state.apply dnsfence.firewall saltenv=user
# /etc/dnsfence is per qube (bind-dirs, /usr/lib/qubes-bind-dirs.d/50_dnsfence.conf):
# what is written here persists in /rw/bind-dirs. Files are named after the
# VM's IPv4 address, like the converted policies, because the firewall qube
# sees addresses, not names.
#
# Binding an extra to its VM. dom0 gives a VM 10.137.<qid> and reuses the
# lowest free qid, so an address outlives its VM: after `work` (qid 12) is
# removed, the next new VM gets 10.137.0.12, and an extra left at that
# address would apply to it. Hence:
# - the address is the one dom0 reported at this apply (dnsfence:vms:VM:dom0,
#   looked up by the pillar, which qubesctl renders in dom0), not one
#   written in the pillar by hand;
# - an extra is written only for a VM that exists and has its default
#   address 10.137.<qid> (a hand-set `ip` or a disposable's 10.138 address
#   would not pair with the VM's own IPv6 address, doc/qubes.md);
# - this state owns the whole directory: every file in it that this apply
#   did not write is removed (file.directory clean, which keeps only the
#   files of the states it requires). A VM removed from the pillar, gone
#   from dom0, or renumbered loses its file at the next apply.
{% set d = salt['pillar.get']('dnsfence', {}) %}
{% set extradir = '/etc/dnsfence/qubes-extra' %}
{% set written = [] %}

{% for vm, v in (d.get('vms') or {}).items() if v is mapping and v.get('extra') %}
{%   set found = v.get('dom0') or {} %}
{%   set qid = (found.get('qid') or '') | string %}
{%   set ip = (found.get('ip') or '') | string %}
{%   set why = '' %}
{%   if 'dom0' not in v %}
{%     set why = 'the pillar did not look its address up in dom0: keep the lookup at the end of the example /srv/user_pillar/dnsfence.sls' %}
{%   elif not qid.isdigit() or not ip %}
{%     set why = 'dom0 has no such VM, or it has no network (qvm-prefs ' ~ vm ~ ' qid, ip)' %}
{%   elif ip.startswith('10.138.') %}
{%     set why = 'a disposable (' ~ ip ~ '): its address is not its own for long' %}
{%   elif ip != '10.137.%d.%d' | format(qid | int // 256, qid | int % 256) %}
{%     set why = 'its ip ' ~ ip ~ ' was set by hand (qid ' ~ qid ~ ' gives 10.137.' ~ (qid | int // 256) ~ '.' ~ (qid | int % 256) ~ '): the sync pairs an address with the IPv6 address of the qid it encodes, so this extra could reach another VM (doc/qubes.md)' %}
{%   elif v.extra is not mapping %}
{%     set why = 'extra: is not a mapping' %}
{%   endif %}
{%   if why %}
dnsfence-extra-{{ vm }}-not-written:
  test.fail_without_changes:
    - name: 'dnsfence:vms:{{ vm }}:extra is not written (and no file is kept for it): {{ why }}'
{%   else %}
{%     set body = dict(v.extra) %}
{%     set _ = body.update({'vm': vm}) %}
{%     set _ = written.append('dnsfence-extra-' ~ vm) %}
dnsfence-extra-{{ vm }}:
  file.managed:
    - name: {{ extradir }}/{{ ip }}.yaml
    - mode: '0644'
    - makedirs: true
    - contents: |
        # {{ vm }} (qid {{ qid }}, {{ ip }} as dom0 said at the last apply):
        # written by Salt (dnsfence.firewall) from the pillar
        # dnsfence:vms:{{ vm }}:extra. Edit the pillar in dom0, not this file:
        # each apply removes from this directory what the pillar does not make.
        {{ body | yaml(false) | indent(8) }}
    - watch_in:
      - cmd: dnsfence-resync
{%   endif %}
{% endfor %}

# After the files above: everything else in the directory goes (a removed
# or renumbered VM's file, a hand-written one).
dnsfence-extra-dir:
  file.directory:
    - name: {{ extradir }}
    - mode: '0755'
    - makedirs: true
    - clean: true
{%- if written %}
    - require:
{%-   for id in written %}
      - file: {{ id }}
{%-   endfor %}
{%- endif %}
    - watch_in:
      - cmd: dnsfence-resync

# The sync notices changed extra files by itself within a second; the
# reload makes it run a pass at once (SIGHUP). Each pass checks the result
# with dnsfenced -n before the daemon's reload: a VM whose extra is bad is
# closed (default: deny, dns: deny) until the extra is fixed, as
# qubes-firewall closes a VM whose rules it cannot parse.
dnsfence-resync:
  cmd.wait:
    - name: systemctl try-reload-or-restart dnsfence-qubes-sync.service
