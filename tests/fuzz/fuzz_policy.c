/* libFuzzer target: one VM policy file through the real loader
 * (config_load_policy_buf), then policy_decide on names taken from the
 * input and from the rules.
 *
 * Invariants (abort() when broken):
 * - every loaded rule's ports are normalised: tcp/udp ranges only, lo <=
 *   hi, sorted by protocol then port, disjoint and not adjacent; the
 *   VM's atoms are sorted and disjoint;
 * - pattern matching agrees with an independent matcher, and "*.x"
 *   never matches "x"; the VM's name index (policy_match) reports exactly
 *   the rules of each list the independent matcher matches, each once;
 * - a name a deny rule matches is never allowed; otherwise it is allowed
 *   exactly when the default is allow or a name rule matches;
 * - an allowed name's ports are the union of its rules' ports (or any),
 *   normalised; require-dnssec when any matching rule asks; the atoms
 *   handed out for them cover exactly those ports. */
#include <ctype.h>
#include <netinet/in.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "dnscheck.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_NAMES 64

static void
check_ports(const struct ports *ps)
{
	for (size_t i = 0; i < ps->n; i++) {
		const struct portspec *p = &ps->v[i];

		INVARIANT(p->proto == IPPROTO_TCP || p->proto == IPPROTO_UDP);
		INVARIANT(p->lo >= 1 && p->lo <= p->hi);
		if (i > 0 && ps->v[i - 1].proto == p->proto)
			INVARIANT((uint32_t)ps->v[i - 1].hi + 1 < p->lo);
		if (i > 0)
			INVARIANT(ps->v[i - 1].proto <= p->proto);
	}
}

static bool
my_match(const struct name_pattern *p, const char *name)
{
	size_t nl = strlen(name), sl = strlen(p->name);

	if (p->kind == MATCH_ALL)
		return true;
	if (p->kind == MATCH_EXACT)
		return strcmp(p->name, name) == 0;
	/* one or more labels, then ".suffix" */
	return nl >= sl + 2 && name[nl - sl - 1] == '.' &&
		memcmp(name + nl - sl, p->name, sl) == 0 && name[0] != '.';
}

static bool
port_in(const struct ports *ps, uint8_t proto, uint32_t port)
{
	for (size_t i = 0; i < ps->n; i++)
		if (ps->v[i].proto == proto && ps->v[i].lo <= port &&
			port <= ps->v[i].hi)
			return true;
	return false;
}

static uint64_t
ports_size(const struct portspec *v, size_t n, uint8_t proto)
{
	uint64_t s = 0;

	for (size_t i = 0; i < n; i++)
		if (v[i].proto == proto)
			s += (uint64_t)v[i].hi - v[i].lo + 1;
	return s;
}

static bool
seen_cb(size_t i, void *arg)
{
	unsigned char *seen = arg;

	INVARIANT(seen[i] == 0);
	seen[i] = 1;
	return true;
}

/* The index finds exactly the rules the independent matcher matches. */
static void
check_index(const struct vm *vm, const char *name)
{
	for (int deny = 0; deny < 2; deny++) {
		const struct rule *rs = deny ? vm->deny : vm->allow;
		size_t n = deny ? vm->ndeny : vm->nallow;
		unsigned char *seen = calloc(n + 1, 1);

		INVARIANT(seen != NULL && vm->idx != NULL);
		policy_match(vm, deny, name, seen_cb, seen);
		for (size_t i = 0; i < n; i++)
			INVARIANT(seen[i] ==
				(!rs[i].is_net && my_match(&rs[i].pat, name)));
		free(seen);
	}
}

static void
check_name(const struct vm *vm, const char *name)
{
	bool denied = false, listed = vm->default_allow, dnssec = false;
	struct portspec atoms[512];
	struct verdict v;
	size_t na;

	for (size_t i = 0; i < vm->ndeny; i++) {
		bool m = my_match(&vm->deny[i].pat, name);

		INVARIANT(policy_pattern_match(&vm->deny[i].pat, name) == m);
		denied |= m;
	}
	for (size_t i = 0; i < vm->nallow; i++) {
		const struct rule *r = &vm->allow[i];

		if (r->is_net)
			continue;
		INVARIANT(policy_pattern_match(&r->pat, name) ==
			my_match(&r->pat, name));
		if (r->pat.kind == MATCH_SUFFIX)
			INVARIANT(!policy_pattern_match(&r->pat, r->pat.name));
		if (my_match(&r->pat, name)) {
			listed = true;
			dnssec |= r->require_dnssec;
		}
	}
	check_index(vm, name);
	/* now 0: before every until (the loader refuses one at or before
	 * the epoch), so no rule has ended. */
	policy_decide(vm, name, 0, &v);
	INVARIANT(!(denied && v.allowed));
	INVARIANT(v.allowed == (!denied && listed));
	if (!v.allowed) {
		INVARIANT(v.ports.n == 0 && !v.ports.any && !v.ports.icmp);
		verdict_finish(&v);
		return;
	}
	INVARIANT(v.require_dnssec == dnssec);
	check_ports(&v.ports);
	for (size_t i = 0; i < vm->nallow; i++) {
		const struct rule *r = &vm->allow[i];

		if (r->is_net || !my_match(&r->pat, name))
			continue;
		INVARIANT(!r->ports.any || v.ports.any);
		INVARIANT(!r->ports.icmp || v.ports.icmp);
		for (size_t j = 0; j < r->ports.n; j++) {
			INVARIANT(port_in(&v.ports, r->ports.v[j].proto,
				r->ports.v[j].lo));
			INVARIANT(port_in(&v.ports, r->ports.v[j].proto,
				r->ports.v[j].hi));
		}
	}
	/* every range of the verdict comes from a matching rule */
	for (size_t j = 0; j < v.ports.n; j++) {
		bool lo = false, hi = false;

		for (size_t i = 0; i < vm->nallow; i++) {
			const struct rule *r = &vm->allow[i];

			if (r->is_net || !my_match(&r->pat, name))
				continue;
			lo |= port_in(&r->ports, v.ports.v[j].proto,
				v.ports.v[j].lo);
			hi |= port_in(&r->ports, v.ports.v[j].proto,
				v.ports.v[j].hi);
		}
		INVARIANT(lo && hi);
	}
	/* the atoms for the verdict's ports cover exactly those ports */
	na = policy_atoms_for(vm, &v.ports, atoms, 512);
	if (na <= 512) {
		for (size_t i = 0; i < na; i++) {
			INVARIANT(
				port_in(&v.ports, atoms[i].proto, atoms[i].lo));
			INVARIANT(
				port_in(&v.ports, atoms[i].proto, atoms[i].hi));
		}
		INVARIANT(ports_size(atoms, na, IPPROTO_TCP) ==
			ports_size(v.ports.v, v.ports.n, IPPROTO_TCP));
		INVARIANT(ports_size(atoms, na, IPPROTO_UDP) ==
			ports_size(v.ports.v, v.ports.n, IPPROTO_UDP));
	}
	verdict_finish(&v);
}

/* Names to ask about: each rule's name, a label in front of it, and the
 * host-name-looking words of the input. */
static size_t
names_for(const struct vm *vm, const uint8_t *data, size_t size,
	char (*out)[NAME_MAX_LEN + 1])
{
	const struct rule *lists[2] = {vm->allow, vm->deny};
	size_t counts[2] = {vm->nallow, vm->ndeny}, n = 0;
	char word[NAME_MAX_LEN + 8];
	size_t wl = 0;

	for (int l = 0; l < 2; l++) {
		for (size_t i = 0; i < counts[l] && n + 3 <= MAX_NAMES; i++) {
			const struct rule *r = &lists[l][i];

			if (r->is_net || r->pat.name[0] == '\0')
				continue;
			snprintf(out[n++], NAME_MAX_LEN + 1, "%s", r->pat.name);
			if (strlen(r->pat.name) + 2 <= NAME_MAX_LEN)
				snprintf(out[n++], NAME_MAX_LEN + 1, "a.%s",
					r->pat.name);
			if (strlen(r->pat.name) + 6 <= NAME_MAX_LEN)
				snprintf(out[n++], NAME_MAX_LEN + 1, "b.c-d.%s",
					r->pat.name);
		}
	}
	for (size_t i = 0; i <= size && n < MAX_NAMES; i++) {
		int c = i < size ? data[i] : ' ';

		if (isalnum(c) || c == '.' || c == '-' || c == '_') {
			if (wl < sizeof(word) - 1)
				word[wl++] = (char)c;
			continue;
		}
		word[wl] = '\0';
		if (wl > 0 &&
			policy_normalise_name(word, out[n], NAME_MAX_LEN + 1) ==
				0)
			n++;
		wl = 0;
	}
	return n;
}

/* The input as a time, too: a time that parses is within the years
 * 0000-9999 (give or take a day of offset) and survives a round trip
 * through its UTC form. */
static void
check_time(const uint8_t *data, size_t size)
{
	char s[48], back[32];
	int64_t t, t2;
	const char *err;

	if (size >= sizeof(s))
		return;
	memcpy(s, data, size);
	s[size] = '\0';
	if (policy_parse_time(s, &t, &err) < 0) {
		INVARIANT(err != NULL);
		return;
	}
	INVARIANT(t >= -62167219200LL - 86400 && t <= 253402300799LL + 86400);
	policy_time_str(t, back, sizeof(back));
	INVARIANT(policy_parse_time(back, &t2, &err) < 0 || t2 == t);
}

/* An allow rule stops deciding at its until, and not a second before. */
static void
check_until(const struct vm *vm)
{
	for (size_t i = 0; i < vm->nallow; i++) {
		const struct rule *r = &vm->allow[i];

		INVARIANT(r->until >= 0);
		if (r->until == 0)
			continue;
		INVARIANT(!policy_rule_ended(r, r->until - 1));
		INVARIANT(policy_rule_ended(r, r->until));
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static char names[MAX_NAMES][NAME_MAX_LEN + 1];
	struct diag d = {0};
	struct vm vm;
	size_t n;

	if (config_load_policy_buf(&vm, "fuzz", "fuzz.yaml", (const char *)data,
		    size, &d) == 0) {
		INVARIANT(d.n == 0);
		for (size_t i = 0; i < vm.nallow; i++) {
			const struct rule *r = &vm.allow[i];

			INVARIANT(!r->ports.any || r->ports.n == 0);
			INVARIANT(r->ports.any || r->ports.n > 0 ||
				r->ports.icmp);
			check_ports(&r->ports);
		}
		for (size_t i = 0; i < vm.ndeny; i++)
			INVARIANT(!vm.deny[i].is_net);
		for (size_t i = 1; i < vm.natoms; i++)
			INVARIANT(vm.atoms[i - 1].proto < vm.atoms[i].proto ||
				vm.atoms[i - 1].hi < vm.atoms[i].lo);
		check_until(&vm);
		n = names_for(&vm, data, size, names);
		for (size_t i = 0; i < n; i++)
			check_name(&vm, names[i]);
	} else {
		INVARIANT(d.n > 0);
	}
	policy_vm_finish(&vm);
	diag_finish(&d);
	check_time(data, size);
	return 0;
}
