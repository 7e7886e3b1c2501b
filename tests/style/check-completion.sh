#!/bin/bash
# contrib/bash-completion/dnsfencectl sources in a plain bash (without the
# bash-completion package) and completes: commands, options, `log -f`,
# why's protocols, and VM names from `-j status` (a stand-in dnsfencectl),
# quietly nothing when no daemon answers (the real one, at no socket).
# check-completion.sh [DNSFENCECTL]
set -euo pipefail
cd "$(dirname "$0")/../.."
ctl=${1:-}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# shellcheck source=/dev/null
. contrib/bash-completion/dnsfencectl
complete -p dnsfencectl >/dev/null

fail=0
# comp LINE: what completing at the end of LINE offers, space-separated.
comp() {
	COMP_LINE=$1
	COMP_POINT=${#1}
	read -r -a COMP_WORDS <<<"$1"
	[[ $1 == *" " ]] && COMP_WORDS+=("")
	COMP_CWORD=$((${#COMP_WORDS[@]} - 1))
	COMPREPLY=()
	_dnsfencectl dnsfencectl "${COMP_WORDS[COMP_CWORD]}" "${COMP_WORDS[COMP_CWORD - 1]}"
	echo "${COMPREPLY[*]}"
}
expect() {
	local got
	got=$(comp "$1" 2>"$tmp/err")
	if [ "$got" != "$2" ] || [ -s "$tmp/err" ]; then
		echo "not ok - '$1<TAB>': '$got', expected '$2' $(cat "$tmp/err")"
		fail=1
	else
		echo "ok - '$1<TAB>': '$got'"
	fi
}

expect "dnsfencectl st" "status"
expect "dnsfencectl -j l" "list log"
expect "dnsfencectl " "status list why reload flush log suggest metrics"
expect "dnsfencectl -s /run/x.sock -j m" "metrics"
expect "dnsfencectl --v" "--version"
expect "dnsfencectl -" "-c -s -j -h --version"
expect "dnsfencectl log " "-f"
expect "dnsfencectl log -f " ""
expect "dnsfencectl reload " ""
expect "dnsfencectl why work 192.0.2.10 " "tcp/ udp/ icmp"
expect "dnsfencectl why work 2001:db8::10 u" "udp/"
expect "dnsfencectl why work 192.0.2.10 tcp/443 " ""

# VM names from a stand-in that answers `-j status` as dnsfenced does.
cat >"$tmp/dnsfencectl" <<'SH'
#!/bin/sh
case "$*" in
*"-j status") echo '{"version":"0.1.0","uptime":5,"vms":{"dev":{"queries":1,"answered":1,"refused":0,"servfail":0,"elements":1,"default":"learn"},"work":{"queries":0,"answered":0,"refused":0,"servfail":0,"elements":0,"default":"deny"}},"until":[],"learning":{"dev":{"names":1,"uses":1,"dropped":0}}}' ;;
*) exit 2 ;;
esac
SH
chmod +x "$tmp/dnsfencectl"
expect "$tmp/dnsfencectl list " "dev work"
expect "$tmp/dnsfencectl -j flush w" "work"
expect "$tmp/dnsfencectl suggest d" "dev"
expect "$tmp/dnsfencectl why " "dev work"
expect "$tmp/dnsfencectl why dev " ""
expect "$tmp/dnsfencectl status " ""
if [ -n "$ctl" ]; then
	expect "$ctl -s $tmp/no.sock list " ""
fi
exit $fail
