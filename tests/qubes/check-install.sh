#!/bin/sh
# meson install with -Dqubes=true puts every Qubes file in place.
#   check-install.sh BUILDDIR SRCDIR
# Skipped (77) when the build was not configured with -Dqubes=true. Installs
# into a temporary --destdir; nothing outside it is touched.
set -eu
build=$1 src=$2
qubes=$(meson introspect --buildoptions "$build" |
	python3 -c 'import json,sys; print([o["value"] for o in json.load(sys.stdin) if o["name"]=="qubes"][0])')
if [ "$qubes" != "True" ]; then
	echo "skipped: configure with -Dqubes=true"
	exit 77
fi
dest=$(mktemp -d)
trap 'rm -rf "$dest"' EXIT
meson install -C "$build" --destdir "$dest" --no-rebuild --quiet >/dev/null
prefix=$(meson introspect --buildoptions "$build" |
	python3 -c 'import json,sys; print([o["value"] for o in json.load(sys.stdin) if o["name"]=="prefix"][0])')
sysconfdir=$(meson introspect --buildoptions "$build" |
	python3 -c 'import json,sys; print([o["value"] for o in json.load(sys.stdin) if o["name"]=="sysconfdir"][0])')
case $sysconfdir in /*) ;; *) sysconfdir=$prefix/$sysconfdir ;; esac
root=$dest$prefix
fail=0
want() { # want MODE PATH: present, and executable when MODE is x
	if [ ! -f "$2" ]; then
		echo "missing: ${2#"$dest"}"; fail=1
	elif [ "$1" = x ] && [ ! -x "$2" ]; then
		echo "not executable: ${2#"$dest"}"; fail=1
	fi
}
one() { # one PATTERN: exactly one file matching (the unit and preset dirs
	# come from systemd.pc: /lib/systemd/system on Debian, /usr/lib/... elsewhere)
	found=$(find "$dest" -path "$1" -type f)
	if [ -z "$found" ] || [ "$(printf '%s\n' "$found" | wc -l)" -ne 1 ]; then
		echo "missing or not one: $1: $found"; fail=1
	elif grep -n '@[A-Z]*@' "$found"; then
		echo "unsubstituted: ${found#"$dest"}"; fail=1
	fi
}
want x "$root/lib/dnsfence/qubes-setup"
want - "$root/lib/dnsfence/failsafe.nft"
one "*/systemd/system/dnsfence-failsafe.service"
one "*/systemd/system/dnsfence.service"
one "*/systemd/system/dnsfence-qubes-sync.service"
one "*/systemd/system-preset/75-dnsfence.preset"
want x "$dest$sysconfdir/qubes/post-install.d/50-dnsfence.sh"
want - "$root/lib/qubes-bind-dirs.d/50_dnsfence.conf"
for f in dnsfence.top dnsfence/dom0.sls dnsfence/template.sls dnsfence/firewall.sls; do
	want - "$root/share/dnsfence/salt/user_salt/$f"
done
want - "$root/share/dnsfence/salt/user_pillar/dnsfence.sls"
want - "$root/share/dnsfence/salt/user_pillar/dnsfence.top"
want - "$root/share/doc/dnsfence/qubes.md"
# Installed, `qubes-setup stop` with no table loads the failsafe.nft next to
# it (a fake nft: no tables, no chains; it records what -f is given).
cat >"$dest/nft" <<'E'
#!/bin/sh
case "$*" in
*"list tables"*) echo '{"nftables": []}' ;;
*list*) exit 1 ;;
"-f -") cat >/dev/null ;;
"-f "*) echo "$2" >>"${0%/*}/nft.log" ;;
esac
E
chmod +x "$dest/nft"
if ! python3 "$root/lib/dnsfence/qubes-setup" stop --nft "$dest/nft" >/dev/null ||
	[ "$(cat "$dest/nft.log" 2>/dev/null)" != "$root/lib/dnsfence/failsafe.nft" ]; then
	echo "installed qubes-setup stop did not load $root/lib/dnsfence/failsafe.nft: $(cat "$dest/nft.log" 2>/dev/null)"
	fail=1
fi
rm -f "$dest/nft" "$dest/nft.log"
# The converter, from another branch: required once its files are here.
q=$src/contrib/qubes
[ ! -f "$q/dnsfence_qubes.py" ] || {
	want - "$root/lib/dnsfence/dnsfence_qubes.py"
	want - "$root/share/dnsfence/dom0/dnsfence_qubes.py"; }
[ ! -f "$q/dnsfence-qubes-sync" ] || want x "$root/sbin/dnsfence-qubes-sync"
[ ! -f "$q/dnsfence-qubes-export" ] ||
	want x "$root/share/dnsfence/dom0/dnsfence-qubes-export"
[ ! -f "$q/README.md" ] || want - "$root/share/doc/dnsfence/qubes-mapping.md"
if [ $fail -eq 0 ]; then
	echo "all Qubes files in place under $prefix"
	(cd "$dest" && find . -type f | sort | grep -i -e qubes -e dnsfence-failsafe -e 'dnsfence\.service' -e sync.service -e salt)
fi
exit $fail
