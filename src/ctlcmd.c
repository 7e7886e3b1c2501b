#include "ctlcmd.h"

#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "admit.h"
#include "anscache.h"
#include "build-config.h"
#include "declog.h"
#include "elems.h"
#include "judge.h"
#include "ruleset.h"
#include "server.h"
#include "util.h"

/* ---- output helpers --------------------------------------------------------- */

/* Bytes in a valid UTF-8 sequence at s (1-4), or 0 (RFC 3629: no
 * overlong forms, no surrogates, nothing above U+10FFFF). */
static size_t
utf8_len(const unsigned char *s)
{
	size_t n;
	uint32_t cp;

	if (s[0] < 0x80)
		return 1;
	if (s[0] >= 0xc2 && s[0] <= 0xdf)
		n = 2, cp = s[0] & 0x1f;
	else if (s[0] >= 0xe0 && s[0] <= 0xef)
		n = 3, cp = s[0] & 0x0f;
	else if (s[0] >= 0xf0 && s[0] <= 0xf4)
		n = 4, cp = s[0] & 0x07;
	else
		return 0;
	for (size_t i = 1; i < n; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		cp = cp << 6 | (s[i] & 0x3f);
	}
	if ((n == 3 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) ||
		(n == 4 && (cp < 0x10000 || cp > 0x10ffff)))
		return 0;
	return n;
}

void
ctl_json_str(struct ctl_conn *cc, const char *s)
{
	const unsigned char *p = (const unsigned char *)s;
	char buf[512];
	size_t n = 0;

	if (s == NULL) {
		ctl_write(cc, "null", 4);
		return;
	}
	buf[n++] = '"';
	while (*p) {
		size_t u = utf8_len(p);

		if (n > sizeof(buf) - 16) {
			ctl_write(cc, buf, n);
			n = 0;
		}
		if (u == 0) {
			/* Not UTF-8: JSON text must be. */
			n += (size_t)snprintf(buf + n, sizeof(buf) - n,
				"\\ufffd");
			p++;
		} else if (u > 1) {
			memcpy(buf + n, p, u);
			n += u;
			p += u;
		} else if (*p == '"' || *p == '\\') {
			buf[n++] = '\\';
			buf[n++] = (char)*p++;
		} else if (*p < 0x20 || *p == 0x7f) {
			n += (size_t)snprintf(buf + n, sizeof(buf) - n,
				"\\u%04x", *p++);
		} else {
			buf[n++] = (char)*p++;
		}
	}
	buf[n++] = '"';
	ctl_write(cc, buf, n);
}

static const struct config *
conf(const struct ctlcmd *c)
{
	return server_config(c->srv);
}

static int64_t
wall_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return ts.tv_sec;
}

static const char *
iso_time(int64_t t, char *buf, size_t len)
{
	time_t tt = (time_t)t;
	struct tm tm;

	gmtime_r(&tt, &tm);
	strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm);
	return buf;
}

static const struct server_vm_stats *
vm_stats(const struct ctlcmd *c, const char *vm)
{
	const struct server_vm_stats *const *st;
	size_t n = server_vm_stats(c->srv, &st);

	for (size_t i = 0; i < n; i++)
		if (strcmp(st[i]->name, vm) == 0)
			return st[i];
	return NULL;
}

static const char *
vm_mode(const struct vm *vm)
{
	return vm->learn ? "learn" : vm->default_allow ? "allow" : "deny";
}

/* A rule as its policy writes it: the name pattern or the prefix, then
 * its ports ("*.example.com tcp/443,tcp/993"). */
static const char *
rule_text(const struct rule *r, char *buf, size_t len)
{
	char p[64];
	size_t n;

	if (r->is_net)
		policy_prefix_str(&r->net, buf, len);
	else if (r->pat.kind == MATCH_ALL)
		snprintf(buf, len, "*");
	else
		snprintf(buf, len, "%s%s",
			r->pat.kind == MATCH_SUFFIX ? "*." : "", r->pat.name);
	n = strlen(buf);
	if (r->ports.icmp && n < len)
		n += (size_t)snprintf(buf + n, len - n, " icmp");
	for (size_t i = 0; i < r->ports.n && n < len; i++)
		n += (size_t)snprintf(buf + n, len - n, "%s%s",
			i == 0 && !r->ports.icmp ? " " : ",",
			policy_portspec_str(&r->ports.v[i], p, sizeof(p)));
	return buf;
}

static void
elem_addr(const struct elem_key *k, char *buf, size_t len)
{
	struct ipaddr a = {.family = k->family};

	memcpy(a.b, k->addr, k->family == AF_INET ? 4 : 16);
	policy_addr_str(&a, buf, len);
}

/* ---- status ---------------------------------------------------------------- */

/* Packets each VM's chain dropped (not admitted, spoofed), from the
 * kernel's counters: one dump for every VM. */
struct vmdrops {
	const struct config *cf;
	uint64_t *n; /* per VM of cf, by index */
};

static void
vmdrops_cb(const char *vm, const char *what, uint64_t packets, uint64_t bytes,
	void *arg)
{
	struct vmdrops *vd = arg;
	const struct vm *v;

	(void)bytes;
	if (vm == NULL ||
		(strcmp(what, "not admitted") != 0 &&
			strcmp(what, "spoofed source") != 0))
		return;
	v = config_vm(vd->cf, vm);
	if (v != NULL)
		vd->n[v - vd->cf->vms] += packets;
}

/* NULL when the table cannot be read. */
static uint64_t *
vm_drops(const struct config *cf)
{
	struct vmdrops vd = {.cf = cf,
		.n = xcalloc(cf->nvms + 1, sizeof(uint64_t))};

	if (ruleset_counters(cf->table, vmdrops_cb, &vd) < 0) {
		free(vd.n);
		return NULL;
	}
	return vd.n;
}

/* The VMs whose answers the rebinding guard changed, and how. */
static void
status_stripped(struct ctlcmd *c, struct ctl_conn *cc)
{
	const struct config *cf = conf(c);
	bool head = false;

	for (size_t i = 0; i < cf->nvms; i++) {
		const struct server_vm_stats *st = vm_stats(c, cf->vms[i].name);
		const char *sep = "";

		if (st == NULL ||
			st->stripped[0] + st->stripped[1] + st->stripped[2] ==
				0)
			continue;
		if (!head)
			ctl_out(cc,
				"\naddresses removed from answers (DNS "
				"rebinding guard):\n");
		head = true;
		ctl_out(cc, "  %-20s", cf->vms[i].name);
		for (int k = 0; k < DL_STRIPPED; k++) {
			ctl_out(cc, "%s %llu %s", sep,
				(unsigned long long)st->stripped[k],
				dl_stripped_name(k));
			sep = ",";
		}
		ctl_out(cc, "\n");
	}
}

/* The VMs that met a fairness limit, and which. */
static void
status_limits(struct ctlcmd *c, struct ctl_conn *cc)
{
	const struct config *cf = conf(c);
	const struct fe_stats *fs = server_fe_stats(c->srv);
	bool head = false;

	for (size_t i = 0; i < cf->nvms; i++) {
		const struct server_vm_stats *st = vm_stats(c, cf->vms[i].name);

		if (st == NULL ||
			(st->inflight == 0 &&
				st->result[RES_RATELIMITED] == 0 &&
				st->over_inflight == 0 &&
				st->over_upstream == 0 && st->tcp.conns == 0 &&
				st->tcp.refused == 0 && st->tcp.evicted == 0))
			continue;
		if (!head)
			ctl_out(cc, "\nlimits (per VM):\n");
		head = true;
		ctl_out(cc,
			"  %-20s %u in flight; over queries-per-vm %llu, "
			"upstream-queries %llu, query-rate %llu; TCP %u "
			"open, %llu refused, %llu evicted\n",
			cf->vms[i].name, st->inflight,
			(unsigned long long)st->over_inflight,
			(unsigned long long)st->over_upstream,
			(unsigned long long)st->result[RES_RATELIMITED],
			st->tcp.conns, (unsigned long long)st->tcp.refused,
			(unsigned long long)st->tcp.evicted);
	}
	if (fs->tcp_unknown + fs->tcp_full > 0)
		ctl_out(cc,
			"\nDNS over TCP: %llu connections from addresses of "
			"no VM closed, %llu refused (all slots taken)\n",
			(unsigned long long)fs->tcp_unknown,
			(unsigned long long)fs->tcp_full);
}

static void
status_human(struct ctlcmd *c, struct ctl_conn *cc)
{
	const struct config *cf = conf(c);
	const struct admit_stats *as = admit_stats(c->admit);
	struct anscache_stats ac;
	char t[32];
	int64_t up = wall_now() - c->started;
	uint64_t *drops = vm_drops(cf);

	ctl_out(cc, "dnsfenced %s, up %lldd %02lld:%02lld:%02lld (since %s)\n",
		DNSFENCE_VERSION, (long long)(up / 86400),
		(long long)(up / 3600 % 24), (long long)(up / 60 % 60),
		(long long)(up % 60), iso_time(c->started, t, sizeof(t)));
	ctl_out(cc, "configuration: %s, table inet %s, %zu VMs\n", cf->file,
		cf->table, cf->nvms);
	ctl_out(cc, "kernel: element timeouts %s\n",
		c->deladd ? "refreshed by delete + add (before 6.12)"
			  : "updated in place");
	ctl_out(cc,
		"admission: %llu answers, %llu needing no change, %llu "
		"batches, %llu elements, %llu failed batches, %llu refused "
		"(set full)%s\n",
		(unsigned long long)as->requests, (unsigned long long)as->noop,
		(unsigned long long)as->batches,
		(unsigned long long)as->elements,
		(unsigned long long)as->failures, (unsigned long long)as->full,
		admit_is_broken(c->admit) ? "; TABLE BEING REINSTALLED" : "");
	server_cache_stats(c->srv, &ac);
	ctl_out(cc,
		"answer cache: %llu hits; %zu answers kept (%zu bytes, "
		"since the resolver's last start)\n",
		(unsigned long long)server_stats(c->srv)->cache_hits,
		ac.entries, ac.bytes);
	ctl_out(cc, "\n%-20s %-7s %9s %9s %9s %9s %9s %9s\n", "VM", "policy",
		"queries", "answered", "refused", "servfail", "elements",
		"dropped");
	for (size_t i = 0; i < cf->nvms; i++) {
		const struct vm *vm = &cf->vms[i];
		const struct server_vm_stats *st = vm_stats(c, vm->name);
		struct server_vm_stats z = {0};
		char dropped[24] = "?";

		if (st == NULL)
			st = &z;
		if (drops != NULL)
			snprintf(dropped, sizeof(dropped), "%llu",
				(unsigned long long)drops[i]);
		ctl_out(cc, "%-20s %-7s %9llu %9llu %9llu %9llu %9zu %9s\n",
			vm->name, vm_mode(vm), (unsigned long long)st->queries,
			(unsigned long long)st->result[RES_ANSWERED],
			(unsigned long long)st->result[RES_REFUSED],
			(unsigned long long)st->result[RES_SERVFAIL],
			admit_count(c->admit, vm->name), dropped);
	}
	free(drops);
	status_stripped(c, cc);
	status_limits(c, cc);
	if (c->status_more)
		c->status_more(cc, false, c->arg);
}

static void
status_json(struct ctlcmd *c, struct ctl_conn *cc)
{
	const struct config *cf = conf(c);
	const struct admit_stats *as = admit_stats(c->admit);
	struct anscache_stats ac;
	char t[32];
	uint64_t *drops = vm_drops(cf);

	ctl_out(cc, "{\"version\":");
	ctl_json_str(cc, DNSFENCE_VERSION);
	ctl_out(cc, ",\"uptime\":%lld,\"started\":\"%s\",\"config\":",
		(long long)(wall_now() - c->started),
		iso_time(c->started, t, sizeof(t)));
	ctl_json_str(cc, cf->file);
	ctl_out(cc, ",\"table\":");
	ctl_json_str(cc, cf->table);
	ctl_out(cc,
		",\"kernel\":{\"timeout_update\":%s},\"table_ok\":%s,"
		"\"admission\":{\"answers\":%llu,\"noop\":%llu,\"batches\":"
		"%llu,\"elements\":%llu,\"failed_batches\":%llu,\"full\":%llu,"
		"\"names_unkept\":%llu},"
		"\"reloads\":{\"ok\":%llu,\"failed\":%llu},\"vms\":{",
		c->deladd ? "false" : "true",
		admit_is_broken(c->admit) ? "false" : "true",
		(unsigned long long)as->requests, (unsigned long long)as->noop,
		(unsigned long long)as->batches,
		(unsigned long long)as->elements,
		(unsigned long long)as->failures, (unsigned long long)as->full,
		(unsigned long long)as->names_unkept,
		(unsigned long long)c->reloads_ok,
		(unsigned long long)c->reloads_failed);
	for (size_t i = 0; i < cf->nvms; i++) {
		const struct vm *vm = &cf->vms[i];
		const struct server_vm_stats *st = vm_stats(c, vm->name);
		struct server_vm_stats z = {0};

		if (st == NULL)
			st = &z;
		ctl_out(cc, "%s", i ? "," : "");
		ctl_json_str(cc, vm->name);
		ctl_out(cc,
			":{\"queries\":%llu,\"answered\":%llu,\"refused\":%llu,"
			"\"servfail\":%llu,\"elements\":%zu,\"default\":\"%s\","
			"\"mode\":\"%s\",",
			(unsigned long long)st->queries,
			(unsigned long long)st->result[RES_ANSWERED],
			(unsigned long long)st->result[RES_REFUSED],
			(unsigned long long)st->result[RES_SERVFAIL],
			admit_count(c->admit, vm->name),
			vm->default_allow ? "allow" : "deny",
			vm->learn ? "learn" : "enforce");
		ctl_out(cc, "\"stripped\":{");
		for (int k = 0; k < DL_STRIPPED; k++)
			ctl_out(cc, "%s\"%s\":%llu", k ? "," : "",
				dl_stripped_name(k),
				(unsigned long long)st->stripped[k]);
		ctl_out(cc,
			"},\"inflight\":%u,\"ratelimited\":%llu,"
			"\"over_queries_per_vm\":%llu,\"over_upstream\":%llu,"
			"\"tcp\":{\"open\":%u,\"refused\":%llu,\"evicted\":"
			"%llu}",
			st->inflight,
			(unsigned long long)st->result[RES_RATELIMITED],
			(unsigned long long)st->over_inflight,
			(unsigned long long)st->over_upstream, st->tcp.conns,
			(unsigned long long)st->tcp.refused,
			(unsigned long long)st->tcp.evicted);
		ctl_out(cc, ",\"dropped\":");
		if (drops != NULL)
			ctl_out(cc, "%llu}", (unsigned long long)drops[i]);
		else
			ctl_out(cc, "null}");
	}
	free(drops);
	ctl_out(cc,
		"},\"upstream\":%u,\"tcp\":{\"unknown\":%llu,\"full\":%llu}",
		server_stats(c->srv)->upstream,
		(unsigned long long)server_fe_stats(c->srv)->tcp_unknown,
		(unsigned long long)server_fe_stats(c->srv)->tcp_full);
	server_cache_stats(c->srv, &ac);
	ctl_out(cc,
		",\"answer_cache\":{\"hits\":%llu,\"entries\":%zu,"
		"\"bytes\":%zu}",
		(unsigned long long)server_stats(c->srv)->cache_hits,
		ac.entries, ac.bytes);
	if (c->status_more)
		c->status_more(cc, true, c->arg);
	ctl_out(cc, "}\n");
}

/* ---- list ------------------------------------------------------------------ */

struct elist {
	struct admit_elem *v;
	size_t n;
};

static void
collect_cb(const struct admit_elem *e, void *arg)
{
	struct elist *l = arg;
	struct admit_elem *c = ARRAY_PUSH(l->v, l->n);

	*c = *e; /* pointers into the shadow: used before it changes */
}

static int
elem_cmp(const void *pa, const void *pb)
{
	const struct admit_elem *a = pa, *b = pb;
	int r = strcmp(a->vm, b->vm);

	if (r == 0)
		r = (int)a->k->family - (int)b->k->family;
	if (r == 0)
		r = memcmp(a->k->addr, b->k->addr, sizeof(a->k->addr));
	if (r == 0)
		r = (int)a->k->kind - (int)b->k->kind;
	if (r == 0)
		r = (int)a->k->proto - (int)b->k->proto;
	if (r == 0)
		r = (int)a->k->lo - (int)b->k->lo;
	return r;
}

static long long
secs_left(const struct admit_elem *e)
{
	return e->left_ms == ELEMS_FOREVER ? -1
					   : (long long)(e->left_ms / 1000);
}

static void
list_one(struct ctl_conn *cc, const struct admit_elem *e, bool json, bool first)
{
	char addr[INET6_ADDRSTRLEN], ports[16];
	const char *proto;
	const char *name = e->nnames > 0 ? e->names[0] : NULL;

	elem_addr(e->k, addr, sizeof(addr));
	elems_ports(e->k, &proto, ports, sizeof(ports));
	if (!json) {
		char left[24];

		if (e->left_ms == ELEMS_FOREVER)
			snprintf(left, sizeof(left), "never");
		else
			snprintf(left, sizeof(left), "%llds", secs_left(e));
		ctl_out(cc, "%-16s %-39s %-5s %-11s %-40s %s\n", e->vm, addr,
			proto ? proto : "any", ports[0] ? ports : "-",
			name ? name : "-", left);
		return;
	}
	ctl_out(cc, "%s{\"vm\":", first ? "" : ",");
	ctl_json_str(cc, e->vm);
	ctl_out(cc, ",\"address\":\"%s\",\"proto\":", addr);
	ctl_json_str(cc, proto);
	ctl_out(cc, ",\"ports\":");
	ctl_json_str(cc, ports[0] ? ports : NULL);
	ctl_out(cc, ",\"name\":");
	ctl_json_str(cc, name);
	ctl_out(cc, ",\"names\":[");
	for (size_t i = 0; i < e->nnames; i++) {
		ctl_out(cc, "%s", i ? "," : "");
		ctl_json_str(cc, e->names[i]);
	}
	ctl_out(cc, "],\"expires\":");
	if (e->left_ms == ELEMS_FOREVER)
		ctl_out(cc, "null}");
	else
		ctl_out(cc, "%lld}", secs_left(e));
}

static void
cmd_list(struct ctlcmd *c, struct ctl_conn *cc, const struct ctl_request *rq)
{
	bool json = rq->flags & CTL_F_JSON;
	const char *vm = rq->argc > 0 ? rq->argv[0] : NULL;
	struct elist l = {0};

	if (vm != NULL && config_vm(conf(c), vm) == NULL) {
		ctl_err(cc,
			"dnsfencectl: no VM named %s in the configuration\n",
			vm);
		ctl_end(cc, 1);
		return;
	}
	admit_foreach(c->admit, vm, collect_cb, &l);
	if (l.n > 0)
		qsort(l.v, l.n, sizeof(*l.v), elem_cmp);
	if (json)
		ctl_out(cc, "{\"elements\":[");
	else
		ctl_out(cc, "%-16s %-39s %-5s %-11s %-40s %s\n", "VM",
			"ADDRESS", "PROTO", "PORTS", "NAME", "EXPIRES");
	for (size_t i = 0; i < l.n; i++)
		list_one(cc, &l.v[i], json, i == 0);
	if (json)
		ctl_out(cc, "]}\n");
	free(l.v);
	ctl_end(cc, 0);
}

/* ---- why ------------------------------------------------------------------- */

static void
why_answer(struct ctl_conn *cc, bool json, bool accept, const char *vm,
	const char *addr, const char *by, const char *name, const char *rule,
	long long expires, const char *line)
{
	if (!json) {
		ctl_out(cc, "%s: %s\n", accept ? "accept" : "drop", line);
		ctl_end(cc, accept ? 0 : 1);
		return;
	}
	ctl_out(cc, "{\"vm\":");
	ctl_json_str(cc, vm);
	ctl_out(cc, ",\"address\":");
	ctl_json_str(cc, addr);
	ctl_out(cc, ",\"verdict\":\"%s\",\"by\":", accept ? "accept" : "drop");
	ctl_json_str(cc, by);
	ctl_out(cc, ",\"name\":");
	ctl_json_str(cc, name);
	ctl_out(cc, ",\"rule\":");
	ctl_json_str(cc, rule);
	ctl_out(cc, ",\"expires\":");
	if (expires >= 0)
		ctl_out(cc, "%lld", expires);
	else
		ctl_out(cc, "null");
	ctl_out(cc, ",\"reason\":");
	ctl_json_str(cc, line);
	ctl_out(cc, "}\n");
	ctl_end(cc, accept ? 0 : 1);
}

/* Why no name admits addr (the DNS rebinding guard), or NULL when one
 * could. */
static const char *
guarded_text(const struct config *cf, const struct vm *vm,
	const struct ipaddr *addr, char *buf, size_t len)
{
	char a[INET6_ADDRSTRLEN];
	const struct vm *owner;
	bool priv = false;

	policy_addr_str(addr, a, sizeof(a));
	switch (config_addr_class(cf, addr)) {
	case ADDR_PUBLIC:
		return NULL;
	case ADDR_PRIVATE:
		for (size_t i = 0; i < vm->nallow; i++)
			priv |= vm->allow[i].allow_private &&
				!vm->allow[i].is_net;
		snprintf(buf, len,
			"%s is a private address: answers keep it only for "
			"names whose allow rule says allow-private: true%s",
			a, priv ? "" : " (no rule of this VM does)");
		return buf;
	case ADDR_RESERVED:
		snprintf(buf, len,
			"%s is a reserved address (this network, loopback, "
			"multicast, v4-mapped): no answer ever admits it",
			a);
		return buf;
	case ADDR_INTERNAL:
		owner = policy_find_vm(cf->vms, cf->nvms, addr, NULL);
		snprintf(buf, len,
			"%s is the address of VM %s: no answer ever admits it "
			"(no VM reaches another through DNS)",
			a, owner ? owner->name : "?");
		return buf;
	}
	return NULL;
}

static void
cmd_why(struct ctlcmd *c, struct ctl_conn *cc, const struct ctl_request *rq)
{
	const struct config *cf = conf(c);
	bool json = rq->flags & CTL_F_JSON;
	const struct vm *vm;
	const struct portspec *want = NULL;
	struct ipaddr addr;
	struct judgement j;
	struct portspec ps;
	const char *err, *what = rq->argc > 2 ? rq->argv[2] : NULL;
	char line[768], rt[300], conn[128], a[INET6_ADDRSTRLEN];

	if (policy_parse_addr(rq->argv[1], &addr) < 0) {
		ctl_err(cc,
			"dnsfencectl: why: not an IPv4 or IPv6 address: "
			"%s\n",
			rq->argv[1]);
		ctl_end(cc, 2);
		return;
	}
	if (what != NULL) {
		if (policy_parse_port(what, &ps, &err) < 0 || ps.lo != ps.hi) {
			ctl_err(cc,
				"dnsfencectl: why: %s: expected tcp/N, "
				"udp/N or icmp\n",
				what);
			ctl_end(cc, 2);
			return;
		}
		want = &ps;
	}
	policy_addr_str(&addr, a, sizeof(a));
	snprintf(conn, sizeof(conn), "%s -> %s%s%s", rq->argv[0], a,
		what ? " " : "", what ? what : "");
	vm = config_vm(cf, rq->argv[0]);
	if (vm == NULL) {
		snprintf(line, sizeof(line),
			"%s: not admitted: %s has no "
			"policy (its packets are dropped as from an unknown "
			"source)",
			conn, rq->argv[0]);
		why_answer(cc, json, false, rq->argv[0], a, NULL, NULL, NULL,
			-1, line);
		return;
	}
	/* To the firewall itself (the input chain): DNS at a listen address,
	 * nothing else, whatever the VM's policy. */
	{
		bool to_fw = false, dns = false;

		for (size_t i = 0; i < cf->nlisten; i++) {
			const struct listen_addr *l = &cf->listen[i];

			if (l->addr.family != addr.family ||
				memcmp(l->addr.b, addr.b,
					addr.family == AF_INET ? 4 : 16) != 0)
				continue;
			to_fw = true;
			dns |= want != NULL && want->proto != IPPROTO_ICMP &&
				want->lo == l->port;
		}
		if (to_fw) {
			snprintf(rt, sizeof(rt), "DNS at %s", a);
			snprintf(line, sizeof(line), "%s: %s", conn,
				dns ? rt
				    : "not admitted: only DNS (udp and tcp) is "
				      "open to VMs at a listen address");
			why_answer(cc, json, dns, vm->name, a,
				dns ? "dns" : NULL, NULL, dns ? rt : NULL, -1,
				line);
			return;
		}
	}
	switch (judge_forward(vm, c->admit, &addr, want, &j)) {
	case JUDGED_NET:
		rule_text(j.rule, rt, sizeof(rt));
		snprintf(line, sizeof(line), "%s: net rule %s", conn, rt);
		why_answer(cc, json, true, vm->name, a, "net", NULL, rt, -1,
			line);
		return;
	case JUDGED_NAME: {
		const char *name = j.hit.nnames ? j.hit.names[0] : NULL;

		if (j.rule != NULL)
			rule_text(j.rule, rt, sizeof(rt));
		snprintf(line, sizeof(line),
			"%s: admitted by %s%s%s%s for %lld s more", conn,
			name ? name : "an element added by hand",
			j.rule ? " (allow " : "", j.rule ? rt : "",
			j.rule ? ")" : "", secs_left(&j.hit));
		why_answer(cc, json, true, vm->name, a, "name", name,
			j.rule ? rt : NULL, secs_left(&j.hit), line);
		return;
	}
	case JUDGED_DEFAULT:
		snprintf(line, sizeof(line), "%s: %s", conn,
			vm->learn ? "mode: learn (as default: allow)"
				  : "default: allow");
		why_answer(cc, json, true, vm->name, a, "default", NULL, NULL,
			-1, line);
		return;
	case JUDGED_DROP:
		break;
	}
	if (j.nother > 0)
		snprintf(line, sizeof(line),
			"%s: not admitted: %s was resolved by %s for %s only",
			conn, a, vm->name, j.other);
	else if (guarded_text(cf, vm, &addr, rt, sizeof(rt)) != NULL)
		snprintf(line, sizeof(line), "%s: not admitted: %s", conn, rt);
	else
		snprintf(line, sizeof(line),
			"%s: not admitted: %s was never resolved by %s (or its "
			"element has expired), and no net rule covers it",
			conn, a, vm->name);
	why_answer(cc, json, false, vm->name, a, NULL, NULL, NULL, -1, line);
}

/* ---- log -------------------------------------------------------------------- */

struct logout {
	struct ctl_conn *cc;
	bool json, first, follow;
	struct dl_follower *f;
	struct ctlcmd *c;
};

static void
log_json(struct ctl_conn *cc, const struct dl_entry *e)
{
	char t[40], tb[16], ab[INET6_ADDRSTRLEN];

	ctl_out(cc,
		"{\"time\":\"%s\",\"vm\":", dl_time(e->when_ms, t, sizeof(t)));
	ctl_json_str(cc, e->vm[0] ? e->vm : NULL);
	ctl_out(cc, ",\"name\":");
	ctl_json_str(cc, e->name);
	ctl_out(cc, ",\"type\":\"%s\",\"verdict\":\"%s\",\"cause\":",
		dl_type_name(e->qtype, tb, sizeof(tb)),
		dl_verdict_name((enum dl_verdict)e->verdict));
	ctl_json_str(cc, e->cause);
	ctl_out(cc, ",\"addresses\":[");
	for (uint32_t i = 0; i < e->naddrs && i < DL_ADDRS; i++)
		ctl_out(cc, "%s\"%s\"", i ? "," : "",
			policy_addr_str(&e->addrs[i], ab, sizeof(ab)));
	ctl_out(cc, "],\"naddresses\":%u,\"stripped\":{", e->naddrs);
	for (int k = 0; k < DL_STRIPPED; k++)
		ctl_out(cc, "%s\"%s\":%u", k ? "," : "", dl_stripped_name(k),
			e->stripped[k]);
	ctl_out(cc, "},\"timeout\":");
	if (e->naddrs > 0)
		ctl_out(cc, "%u}", e->timeout_s);
	else
		ctl_out(cc, "null}");
}

static void
log_cb(const struct dl_entry *e, void *arg)
{
	struct logout *lo = arg;
	char line[1024];

	if (!lo->json) {
		ctl_out(lo->cc, "%s\n", dl_format(e, line, sizeof(line)));
		return;
	}
	/* Following, every decision is one JSON document on its line. */
	if (!lo->follow)
		ctl_out(lo->cc, "%s", lo->first ? "" : ",");
	log_json(lo->cc, e);
	if (lo->follow)
		ctl_out(lo->cc, "\n");
	lo->first = false;
}

static void
log_close(struct ctl_conn *cc, void *arg)
{
	struct logout *lo = arg;

	(void)cc;
	declog_unfollow(server_declog(lo->c->srv), lo->f);
	free(lo);
}

static void
cmd_log(struct ctlcmd *c, struct ctl_conn *cc, const struct ctl_request *rq)
{
	struct logout *lo = xcalloc(1, sizeof(*lo));
	struct declog *d = server_declog(c->srv);

	lo->cc = cc;
	lo->c = c;
	lo->json = rq->flags & CTL_F_JSON;
	lo->first = true;
	if (rq->flags & CTL_F_FOLLOW) {
		/* What is kept first, then every new decision as it comes:
		 * one JSON document per line with -j. */
		lo->follow = true;
		declog_foreach(d, log_cb, lo);
		lo->f = declog_follow(d, log_cb, lo);
		ctl_on_close(cc, log_close, lo);
		return;
	}
	if (lo->json)
		ctl_out(cc, "{\"decisions\":[");
	declog_foreach(d, log_cb, lo);
	if (lo->json)
		ctl_out(cc, "]}\n");
	free(lo);
	ctl_end(cc, 0);
}

/* ---- metrics ---------------------------------------------------------------- */

/* The metrics are written once, as text, then sent as they are
 * (OpenMetrics, or Prometheus' text format 0.0.4, which node_exporter's
 * textfile collector parses) or as JSON. The formats differ only in how a
 * counter's TYPE and HELP lines name it: the family (`dnsfence_queries`)
 * in OpenMetrics, the sample (`dnsfence_queries_total`) in 0.0.4. */
struct metrics_out {
	FILE *f;
	bool prometheus;
};

void
metrics_head(struct metrics_out *m, const char *name, const char *type,
	const char *help)
{
	const char *sfx =
		m->prometheus && strcmp(type, "counter") == 0 ? "_total" : "";

	fprintf(m->f, "# TYPE %s%s %s\n# HELP %s%s %s\n", name, sfx, type, name,
		sfx, help);
}

void
metrics_printf(struct metrics_out *m, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vfprintf(m->f, fmt, ap);
	va_end(ap);
}

/* A label value: backslash, quote and newline escaped. */
void
metrics_label(struct metrics_out *m, const char *s)
{
	for (; *s; s++) {
		if (*s == '\\' || *s == '"')
			fprintf(m->f, "\\%c", *s);
		else if (*s == '\n')
			fputs("\\n", m->f);
		else
			fputc(*s, m->f);
	}
}

struct drops {
	struct metrics_out *m;
	bool table; /* this pass: the table-wide rules */
};

static void
drops_cb(const char *vm, const char *what, uint64_t packets, uint64_t bytes,
	void *arg)
{
	struct drops *d = arg;

	(void)bytes;
	if ((vm == NULL) != d->table)
		return;
	if (vm != NULL && strcmp(what, "not admitted") != 0 &&
		strcmp(what, "spoofed source") != 0)
		return; /* "default allow" counts accepted packets */
	if (d->table) {
		metrics_printf(d->m,
			"dnsfence_table_dropped_packets_total{rule=\"");
		metrics_label(d->m, what);
	} else {
		metrics_printf(d->m, "dnsfence_dropped_packets_total{vm=\"");
		metrics_label(d->m, vm);
		metrics_printf(d->m, "\",reason=\"");
		metrics_label(d->m, what);
	}
	metrics_printf(d->m, "\"} %llu\n", (unsigned long long)packets);
}

static void
metrics_vms(struct ctlcmd *c, struct metrics_out *m)
{
	const struct server_vm_stats *const *st;
	size_t n = server_vm_stats(c->srv, &st);
	const struct config *cf = conf(c);

	metrics_head(m, "dnsfence_queries", "counter",
		"DNS queries from each VM, by what became of them.");
	for (size_t i = 0; i < n; i++)
		for (int r = 0; r < RES_COUNT; r++)
			metrics_printf(m,
				"dnsfence_queries_total{vm=\"%s\",result="
				"\"%s\"} %llu\n",
				st[i]->name, server_result_name(r),
				(unsigned long long)st[i]->result[r]);
	metrics_head(m, "dnsfence_servfail", "counter",
		"SERVFAIL answers to each VM, by cause.");
	for (size_t i = 0; i < n; i++)
		for (int f = 0; f < SF_COUNT; f++)
			metrics_printf(m,
				"dnsfence_servfail_total{vm=\"%s\",cause="
				"\"%s\"} %llu\n",
				st[i]->name, server_cause_name(f),
				(unsigned long long)st[i]->servfail[f]);
	metrics_head(m, "dnsfence_admitted_addresses", "counter",
		"Addresses in the answers each VM was given.");
	for (size_t i = 0; i < n; i++)
		metrics_printf(m,
			"dnsfence_admitted_addresses_total{vm=\"%s\"} %llu\n",
			st[i]->name, (unsigned long long)st[i]->admitted);
	metrics_head(m, "dnsfence_stripped_addresses", "counter",
		"Addresses the DNS rebinding guard removed from the answers "
		"each VM was given, by class.");
	for (size_t i = 0; i < n; i++)
		for (int k = 0; k < DL_STRIPPED; k++)
			metrics_printf(m,
				"dnsfence_stripped_addresses_total{vm=\"%s\","
				"class=\"%s\"} %llu\n",
				st[i]->name, dl_stripped_name(k),
				(unsigned long long)st[i]->stripped[k]);
	metrics_head(m, "dnsfence_queries_inflight", "gauge",
		"Queries of each VM libunbound is working on (until it calls "
		"back, past the SERVFAIL at the timeout too).");
	for (size_t i = 0; i < n; i++)
		metrics_printf(m, "dnsfence_queries_inflight{vm=\"%s\"} %u\n",
			st[i]->name, st[i]->inflight);
	metrics_head(m, "dnsfence_limited_queries", "counter",
		"Queries of each VM answered SERVFAIL at a limit on what "
		"libunbound works on: the VM's own (queries-per-vm), every "
		"VM's (upstream-queries).");
	for (size_t i = 0; i < n; i++)
		metrics_printf(m,
			"dnsfence_limited_queries_total{vm=\"%s\",limit="
			"\"queries-per-vm\"} %llu\n"
			"dnsfence_limited_queries_total{vm=\"%s\",limit="
			"\"upstream-queries\"} %llu\n",
			st[i]->name, (unsigned long long)st[i]->over_inflight,
			st[i]->name, (unsigned long long)st[i]->over_upstream);
	metrics_head(m, "dnsfence_tcp_connections", "gauge",
		"DNS-over-TCP connections of each VM open now.");
	for (size_t i = 0; i < n; i++)
		metrics_printf(m, "dnsfence_tcp_connections{vm=\"%s\"} %u\n",
			st[i]->name, st[i]->tcp.conns);
	metrics_head(m, "dnsfence_tcp_refused", "counter",
		"DNS-over-TCP connections of each VM closed at accept (its "
		"tcp-clients-per-vm, or every tcp-clients slot taken).");
	for (size_t i = 0; i < n; i++)
		metrics_printf(m,
			"dnsfence_tcp_refused_total{vm=\"%s\"} %llu\n",
			st[i]->name, (unsigned long long)st[i]->tcp.refused);
	metrics_head(m, "dnsfence_tcp_evicted", "counter",
		"DNS-over-TCP connections of each VM closed to give their "
		"slot to a VM holding fewer.");
	for (size_t i = 0; i < n; i++)
		metrics_printf(m,
			"dnsfence_tcp_evicted_total{vm=\"%s\"} %llu\n",
			st[i]->name, (unsigned long long)st[i]->tcp.evicted);
	metrics_head(m, "dnsfence_elements", "gauge",
		"Elements in each VM's sets now.");
	for (size_t i = 0; i < cf->nvms; i++)
		metrics_printf(m, "dnsfence_elements{vm=\"%s\"} %zu\n",
			cf->vms[i].name,
			admit_count(c->admit, cf->vms[i].name));
}

static void
metrics_admission(struct ctlcmd *c, struct metrics_out *m)
{
	const struct admit_stats *as = admit_stats(c->admit);
	const struct server_stats *ss = server_stats(c->srv);
	static const char *const help[][2] = {
		{"dnsfence_admission_requests", "Answers with addresses."},
		{"dnsfence_admission_noop",
			"Answers whose elements already lived long enough."},
		{"dnsfence_admission_batches",
			"Element transactions sent to the kernel."},
		{"dnsfence_admission_elements",
			"Elements added or refreshed in them."},
		{"dnsfence_admission_failed_batches",
			"Transactions the kernel refused."},
		{"dnsfence_admission_set_full", "Answers refused: set full."},
		{"dnsfence_admission_names_unkept",
			"Names that admitted an element and were not recorded "
			"with it (its VM's names at their bound)."},
	};
	uint64_t v[] = {as->requests, as->noop, as->batches, as->elements,
		as->failures, as->full, as->names_unkept};

	for (size_t i = 0; i < ARRAY_SIZE(v); i++) {
		metrics_head(m, help[i][0], "counter", help[i][1]);
		metrics_printf(m, "%s_total %llu\n", help[i][0],
			(unsigned long long)v[i]);
	}
	metrics_head(m, "dnsfence_unknown_client_queries", "counter",
		"Queries from addresses no policy names (REFUSED).");
	metrics_printf(m, "dnsfence_unknown_client_queries_total %llu\n",
		(unsigned long long)ss->refused_unknown);
	metrics_head(m, "dnsfence_upstream_queries", "gauge",
		"Queries libunbound is working on, every VM's.");
	metrics_printf(m, "dnsfence_upstream_queries %u\n", ss->upstream);
	metrics_head(m, "dnsfence_tcp_unknown_client_connections", "counter",
		"DNS-over-TCP connections from addresses no policy names, "
		"closed at accept.");
	metrics_printf(m,
		"dnsfence_tcp_unknown_client_connections_total %llu\n",
		(unsigned long long)server_fe_stats(c->srv)->tcp_unknown);
	metrics_head(m, "dnsfence_tcp_full", "counter",
		"DNS-over-TCP connections refused: every slot taken by VMs "
		"holding no more than theirs (tcp-clients).");
	metrics_printf(m, "dnsfence_tcp_full_total %llu\n",
		(unsigned long long)server_fe_stats(c->srv)->tcp_full);
	metrics_head(m, "dnsfence_reloads", "counter", "Reloads, by outcome.");
	metrics_printf(m,
		"dnsfence_reloads_total{result=\"ok\"} %llu\n"
		"dnsfence_reloads_total{result=\"failed\"} %llu\n",
		(unsigned long long)c->reloads_ok,
		(unsigned long long)c->reloads_failed);
	metrics_head(m, "dnsfence_decision_log_suppressed", "counter",
		"Decision lines not sent to the journal (rate limit).");
	metrics_printf(m, "dnsfence_decision_log_suppressed_total %llu\n",
		(unsigned long long)declog_suppressed(server_declog(c->srv)));
}

static void
metrics_write(struct ctlcmd *c, struct metrics_out *m)
{
	struct drops d = {.m = m};

	/* An info-like gauge: OpenMetrics' `info` type would make
	 * Prometheus' text parser (node_exporter) drop the whole file. */
	metrics_head(m, "dnsfence_build_info", "gauge",
		"The running dnsfenced (always 1).");
	metrics_printf(m, "dnsfence_build_info{version=\"%s\"} 1\n",
		DNSFENCE_VERSION);
	metrics_head(m, "dnsfence_start_time_seconds", "gauge",
		"When dnsfenced started (Unix time).");
	metrics_printf(m, "dnsfence_start_time_seconds %lld\n",
		(long long)c->started);
	metrics_head(m, "dnsfence_kernel_timeout_update", "gauge",
		"1: the kernel updates an element's timeout in place (6.12+); "
		"0: delete + add.");
	metrics_printf(m, "dnsfence_kernel_timeout_update %d\n",
		c->deladd ? 0 : 1);
	metrics_head(m, "dnsfence_table_ok", "gauge",
		"0 while the table is being reinstalled after a change by "
		"someone else.");
	metrics_printf(m, "dnsfence_table_ok %d\n",
		admit_is_broken(c->admit) ? 0 : 1);
	metrics_vms(c, m);
	metrics_admission(c, m);
	metrics_head(m, "dnsfence_dropped_packets", "counter",
		"New connections dropped in each VM's chain, by reason.");
	ruleset_counters(conf(c)->table, drops_cb, &d);
	metrics_head(m, "dnsfence_table_dropped_packets", "counter",
		"Packets dropped by the table's own rules, by rule.");
	d.table = true;
	ruleset_counters(conf(c)->table, drops_cb, &d);
	if (c->metrics_more)
		c->metrics_more(m, c->arg);
	if (!m->prometheus)
		metrics_printf(m, "# EOF\n");
}

/* One sample line as JSON: {"name":…,"labels":{…},"value":N}. The text is
 * ours: name{k="v",…} value, label values escaped as metrics_label does. */
static void
sample_json(struct ctl_conn *cc, const char *l, bool first)
{
	const char *p = l + strcspn(l, "{ ");
	char key[64], val[512];

	ctl_out(cc, "%s{\"name\":\"%.*s\",\"labels\":{", first ? "" : ",",
		(int)(p - l), l);
	if (*p == '{')
		p++;
	for (bool k1 = true; *p && *p != '}' && *p != ' '; k1 = false) {
		size_t kn = strcspn(p, "="), vn = 0;

		snprintf(key, sizeof(key), "%.*s", (int)kn, p);
		for (p += kn + 2; *p && *p != '"'; p++) {
			if (*p == '\\' && p[1])
				p++;
			if (vn < sizeof(val) - 1)
				val[vn++] =
					*p == 'n' && p[-1] == '\\' ? '\n' : *p;
		}
		val[vn] = '\0';
		ctl_out(cc, "%s", k1 ? "" : ",");
		ctl_json_str(cc, key);
		ctl_out(cc, ":");
		ctl_json_str(cc, val);
		p += *p == '"';
		p += *p == ',';
	}
	p = strrchr(l, ' ');
	ctl_out(cc, "},\"value\":%s}", p ? p + 1 : "null");
}

static void
cmd_metrics(struct ctlcmd *c, struct ctl_conn *cc, const struct ctl_request *rq)
{
	struct metrics_out m = {.prometheus = rq->flags & CTL_F_PROMETHEUS};
	char *text = NULL;
	size_t len = 0;
	bool first = true;

	if ((m.f = open_memstream(&text, &len)) == NULL) {
		ctl_err(cc, "dnsfencectl: metrics: out of memory\n");
		ctl_end(cc, 1);
		return;
	}
	metrics_write(c, &m);
	fclose(m.f);
	if (!(rq->flags & CTL_F_JSON)) {
		ctl_write(cc, text, len);
	} else {
		ctl_out(cc, "{\"metrics\":[");
		for (char *l = strtok(text, "\n"); l; l = strtok(NULL, "\n")) {
			if (l[0] == '#')
				continue;
			sample_json(cc, l, first);
			first = false;
		}
		ctl_out(cc, "]}\n");
	}
	free(text);
	ctl_end(cc, 0);
}

/* ---- dispatch ----------------------------------------------------------------- */

void
ctlcmd_dispatch(struct ctl_conn *cc, const struct ctl_request *rq, void *arg)
{
	struct ctlcmd *c = arg;

	switch (rq->cmd) {
	case CTL_STATUS:
		if (rq->flags & CTL_F_JSON)
			status_json(c, cc);
		else
			status_human(c, cc);
		ctl_end(cc, 0);
		return;
	case CTL_LIST:
		cmd_list(c, cc, rq);
		return;
	case CTL_WHY:
		cmd_why(c, cc, rq);
		return;
	case CTL_RELOAD:
		c->reload(cc, rq->flags & CTL_F_JSON, c->arg);
		return;
	case CTL_FLUSH:
		c->flush(cc, rq->argv[0], rq->flags & CTL_F_JSON, c->arg);
		return;
	case CTL_LOG:
		cmd_log(c, cc, rq);
		return;
	case CTL_SUGGEST:
		c->suggest(cc, rq->argv[0], rq->flags & CTL_F_JSON, c->arg);
		return;
	case CTL_METRICS:
		cmd_metrics(c, cc, rq);
		return;
	}
	ctl_err(cc, "dnsfencectl: unknown command\n");
	ctl_end(cc, 2);
}
