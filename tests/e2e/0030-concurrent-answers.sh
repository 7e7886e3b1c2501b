#!/bin/bash
# Concurrent answers: the resolver answers the same query from several
# clients at once. The first answer opens the batch that adds the element;
# the others find it long enough already, but not yet ACKed, and must wait
# for that batch too: none leaves before the kernel holds the element (a
# connect issued the instant the first copy arrives never races).
. "$(dirname "$0")/../lib/testbed.sh"
. "$(dirname "$0")/../lib/dnsworld.sh"

dw_setup
tb_vm work 1
dw_config </dev/null
tb_policy work <<'P'
addresses: [10.137.1.10]
interface: vif1.0
allow:
  - name: "*.good.example"
    ports: [tcp/443]
P
tb_daemon_start

# 100 fresh names, 100 fresh addresses; each query sent 4 times at once.
names=()
for i in $(seq 1 100); do names+=("n$i.fresh.good.example"); done
ok "a connect on the first of 4 simultaneous answers always succeeds" \
	nsx "$VM_work" "$PROBE" race -d 4 10.139.1.1 443 "${names[@]}"

tb_daemon_stop TERM
ok "dnsfenced exits cleanly on SIGTERM" test "$DAEMON_STATUS" -eq 0
tb_done
