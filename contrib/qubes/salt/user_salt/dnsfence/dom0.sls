# dnsfence, dom0 side: the sys-dnsfence qube and the VMs behind it.
#   sudo qubesctl state.apply dnsfence.dom0 saltenv=user
# Idempotent. Mode takeover (doc/qubes.md, the default): the qubes-firewall
# service is turned off in sys-dnsfence only (never in the template), so
# dnsfence alone enforces the VMs' qvm-firewall rules, which dom0 keeps
# writing to it; `mode: layered` in the pillar leaves qubes-firewall on.
{% set d = salt['pillar.get']('dnsfence', {}) %}
{% set qube = d.get('qube', 'sys-dnsfence') %}
{% set template = d.get('template', 'debian-13-xfce') %}
{% set vms = d.get('vms', {}) %}

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
{%- if d.get('mode', 'takeover') == 'layered' %}
      - service.qubes-firewall
{%- endif %}
    - set:
      - servicevm: 1
{%- if not d.get('hard-capture', false) or d.get('mode', 'takeover') != 'layered' %}
    - disable:
{%- if not d.get('hard-capture', false) %}
      - service.dnsfence-hard-capture
{%- endif %}
{%- if d.get('mode', 'takeover') != 'layered' %}
      - service.qubes-firewall
{%- endif %}
{%- endif %}
    - require:
      - qvm: dnsfence-{{ qube }}-present

{% for vm, v in vms.items() %}
{% if v.get('netvm', true) %}
dnsfence-{{ vm }}-netvm:
  qvm.prefs:
    - name: {{ vm }}
    - netvm: {{ qube }}
    - require:
      - qvm: dnsfence-{{ qube }}-prefs
{% endif %}
{% if v.get('ip') %}
# The extra policy in sys-dnsfence is filed under this address: say so
# loudly when the pillar and dom0 disagree (a clone, a changed ip).
dnsfence-{{ vm }}-ip:
  cmd.run:
    - name: echo "pillar dnsfence:vms:{{ vm }}:ip is {{ v.ip }} but qvm-prefs says $(qvm-prefs -- {{ vm }} ip)" >&2; exit 1
    - unless: test "$(qvm-prefs -- {{ vm }} ip)" = "{{ v.ip }}"
{% endif %}
{% endfor %}
