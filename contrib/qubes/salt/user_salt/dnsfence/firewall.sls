# dnsfence, in sys-dnsfence: extra YAML per VM (wildcards, require-dnssec,
# until), merged by dnsfence-qubes-sync into the policy it converts from the
# VM's qvm-firewall rules.
#   sudo qubesctl --skip-dom0 --targets=sys-dnsfence state.apply dnsfence.firewall saltenv=user
# /etc/dnsfence is per qube (bind-dirs, /usr/lib/qubes-bind-dirs.d/50_dnsfence.conf):
# what is written here persists in /rw/bind-dirs. Files are named after the
# VM's IPv4 address, like the converted policies, because the firewall qube
# sees addresses, not names.
{% set d = salt['pillar.get']('dnsfence', {}) %}
{% set extradir = d.get('extra-dir', '/etc/dnsfence/qubes-extra') %}

dnsfence-extra-dir:
  file.directory:
    - name: {{ extradir }}
    - mode: '0755'
    - makedirs: true

{% for vm, v in d.get('vms', {}).items() if v.get('extra') %}
{% if not v.get('ip') %}
dnsfence-extra-{{ vm }}-needs-ip:
  test.fail_without_changes:
    - name: 'pillar dnsfence:vms:{{ vm }} has extra: but no ip: (qvm-prefs {{ vm }} ip in dom0)'
{% else %}
dnsfence-extra-{{ vm }}:
  file.managed:
    - name: {{ extradir }}/{{ v.ip }}.yaml
    - mode: '0644'
    - contents: |
        # {{ vm }}: written by Salt (dnsfence.firewall) from the pillar
        # dnsfence:vms:{{ vm }}:extra -- edit the pillar in dom0, not this.
        {{ v.extra | yaml(false) | indent(8) }}
    - require:
      - file: dnsfence-extra-dir
    - watch_in:
      - cmd: dnsfence-resync
{% endif %}
{% endfor %}

# A re-sync reads the extras again, and checks the result with dnsfenced -n
# before the reload: a bad extra leaves the old policy in force.
dnsfence-resync:
  cmd.wait:
    - name: systemctl try-restart dnsfence-qubes-sync.service
