# /srv/user_pillar/dnsfence.sls -- an example to edit. It reaches dom0, the
# template and sys-dnsfence through /srv/user_pillar/dnsfence.top
# (sudo qubesctl top.enable dnsfence pillar=true); keep the names there in
# step with qube: and template: here.
dnsfence:
  qube: sys-dnsfence           # the firewall-role qube dnsfence runs in
  template: debian-13-xfce     # its template: the package goes there
  netvm: sys-firewall          # its own netvm (stock sys-firewall stays)
  label: orange
  package: dnsfence
  hard-capture: false          # true: every port-53 packet from the VMs is answered by dnsfence
  mode: takeover               # qubes-firewall off in the qube; layered: on (doc/qubes.md)
  vms:
    # Each VM here gets netvm: sys-dnsfence (unless netvm: false). Its
    # qvm-firewall rules become its policy; `extra` is merged into it.
    work:
      ip: 10.137.0.12          # `qvm-prefs work ip` in dom0; checked by dnsfence.dom0
      extra:
        allow:
          - name: "*.corp.example"
            ports: [tcp/443]
            require-dnssec: true
          - name: build.example.org
            until: "2026-12-31T18:00:00Z"   # quoted: a string, not a YAML timestamp
    personal:
      ip: 10.137.0.13
    untrusted: {}              # only moved behind sys-dnsfence
