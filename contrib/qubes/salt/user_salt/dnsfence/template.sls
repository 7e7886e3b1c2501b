# dnsfence, template side: the package, and its units enabled.
#   sudo qubesctl --skip-dom0 --targets=<template> state.apply dnsfence.template saltenv=user
# The units only run in qubes where dom0 turned the service on
# (/run/qubes-service/dnsfence). qubes-firewall.service stays enabled:
# never disable or mask it here (dom0 would think this template has no
# firewall, doc/qubes.md).
{% set d = salt['pillar.get']('dnsfence', {}) %}

dnsfence-packages:
  pkg.installed:
    - pkgs:
      - {{ d.get('package', 'dnsfence') }}
      # /usr/share/dns/root.key: the trust anchor ships with the template,
      # unbound-anchor does not work through Qubes' DNS DNAT.
      - dns-root-data
      - nftables
      - python3

{% for unit in ['dnsfence-failsafe.service', 'dnsfence.service', 'dnsfence-qubes-sync.service'] %}
dnsfence-enable-{{ unit }}:
  service.enabled:
    - name: {{ unit }}
    - require:
      - pkg: dnsfence-packages
{% endfor %}

# Tell dom0 the service exists (supported-service.dnsfence, shown in the
# Services tab): the post-install hooks run from here, now that the unit is
# enabled.
dnsfence-post-install:
  cmd.run:
    - name: /etc/qubes-rpc/qubes.PostInstall
    - onchanges:
{%- for unit in ['dnsfence-failsafe.service', 'dnsfence.service', 'dnsfence-qubes-sync.service'] %}
      - service: dnsfence-enable-{{ unit }}
{%- endfor %}
