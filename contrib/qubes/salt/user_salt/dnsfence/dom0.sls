# dnsfence, dom0 side: the sys-dnsfence qube and the VMs behind it.
#   sudo qubesctl state.apply dnsfence.dom0 saltenv=user
# Idempotent. Mode takeover (doc/qubes.md, the default): the qubes-firewall
# service is turned off in sys-dnsfence only (never in the template), so
# dnsfence alone enforces the VMs' qvm-firewall rules, which dom0 keeps
# writing to it; `mode: layered` in the pillar leaves qubes-firewall on.
# qubes-firewall goes off only once the template advertises dnsfence
# (supported-service.dnsfence, from its post-install hook): turned off in a
# qube without a working dnsfence, it would leave the VMs unfiltered. Until
# then it stays on and this state fails, saying so.
{% set d = salt['pillar.get']('dnsfence', {}) %}
{% set qube = d.get('qube', 'sys-dnsfence') %}
{% set template = d.get('template', 'debian-13-xfce') %}
{% set vms = d.get('vms', {}) %}
{% set advertised = salt['cmd.run_stdout']('qvm-features -- ' ~ template ~ ' supported-service.dnsfence', python_shell=False, ignore_retcode=True) == '1' %}
{% set takeover = d.get('mode', 'takeover') != 'layered' and advertised %}

dnsfence-{{ qube }}-present:
  qvm.present:
    - name: {{ qube }}
    - template: {{ template }}
    - label: {{ d.get('label', 'orange') }}

dnsfence-{{ qube }}-prefs:
  qvm.prefs:
    - name: {{ qube }}
    - netvm: {{ d.get('netvm', 'sys-firewall') }}
    - provides-network: true
    - autostart: true
    - require:
      - qvm: dnsfence-{{ qube }}-present

dnsfence-{{ qube }}-features:
  qvm.features:
    - name: {{ qube }}
    - enable:
      - service.dnsfence
{%- if d.get('hard-capture', false) %}
      - service.dnsfence-hard-capture
{%- endif %}
{%- if not takeover %}
      - service.qubes-firewall
{%- endif %}
    - set:
      - servicevm: 1
{%- if not d.get('hard-capture', false) or takeover %}
    - disable:
{%- if not d.get('hard-capture', false) %}
      - service.dnsfence-hard-capture
{%- endif %}
{%- if takeover %}
      - service.qubes-firewall
{%- endif %}
{%- endif %}
    - require:
      - qvm: dnsfence-{{ qube }}-present

{% if d.get('mode', 'takeover') != 'layered' and not advertised %}
dnsfence-{{ qube }}-takeover-pending:
  test.fail_without_changes:
    - name: "{{ template }} does not advertise supported-service.dnsfence yet: qubes-firewall stays on in {{ qube }}. Apply dnsfence.template, shut {{ template }} down, then apply dnsfence.dom0 again."

{% endif %}
{% for vm, v in vms.items() %}
{% if (v or {}).get('netvm', true) %}
dnsfence-{{ vm }}-netvm:
  qvm.prefs:
    - name: {{ vm }}
    - netvm: {{ qube }}
    - require:
      - qvm: dnsfence-{{ qube }}-prefs
{% endif %}
{% endfor %}
# No address check here: the pillar looks each VM's qid and address up in
# dom0 at every apply (the end of /srv/user_pillar/dnsfence.sls), and
# dnsfence.firewall files the VM's extra under that address, or refuses to,
# loudly.
