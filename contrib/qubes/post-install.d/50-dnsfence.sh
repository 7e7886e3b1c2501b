#!/bin/sh
# Run as root in the template by qubes.PostInstall after a package
# install or update (/etc/qubes/post-install.d/README). Offers the dnsfence
# service in dom0's "Services" tab, the way qubes-core-agent's own hook
# advertises the services it plugs in: only when the unit is enabled here.

if systemctl -q is-enabled dnsfence.service 2>/dev/null; then
    qvm-features-request supported-service.dnsfence=1
fi
