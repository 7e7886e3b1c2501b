#include "resolver.h"

#include "anscache.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unbound-event.h>
#include <unbound.h>

/* Options that would switch validation off, in whole or for some names:
 * dnsfence's promise is that bogus data never admits anything. */
static const char *const forbidden[] = {
	"module-config",       /* could drop the validator module */
	"val-permissive-mode", /* bogus answers would pass */
	"domain-insecure",     /* names exempt from validation */
	"trust-anchor-file",   /* anchors come from resolver: ... */
	"auto-trust-anchor-file",
	"trust-anchor",
	"trusted-keys-file",
	"harden-dnssec-stripped", /* no: stripped signatures accepted */
	"chroot",		  /* process-wide; not for a library */
	"username",
	"directory",
	"pidfile",
};

static bool
forbidden_option(const char *key)
{
	for (size_t i = 0; i < ARRAY_SIZE(forbidden); i++)
		if (strcmp(forbidden[i], key) == 0)
			return true;
	return false;
}

size_t
resolver_msg_cache_bytes(const struct config *c)
{
	for (size_t i = 0; i < c->noptions; i++) {
		const char *v = c->options[i].value;
		unsigned long long n, mul = 1;
		char *end;

		if (strcmp(c->options[i].key, "msg-cache-size") != 0)
			continue;
		errno = 0;
		n = strtoull(v, &end, 10);
		if (errno != 0 || end == v)
			break;
		/* unbound's memory sizes: b, k(b), m(b), g(b), any case */
		switch (*end | 0x20) {
		case 'k':
			mul = 1ull << 10;
			break;
		case 'm':
			mul = 1ull << 20;
			break;
		case 'g':
			mul = 1ull << 30;
			break;
		default:
			break;
		}
		if (n == 0 || n > (RESOLVER_CACHE_MAX / mul))
			return n == 0 ? ANSCACHE_BYTES : RESOLVER_CACHE_MAX;
		return (size_t)(n * mul);
	}
	return ANSCACHE_BYTES;
}

static void
set_options(struct ub_ctx *ctx, const struct config *c, struct diag *d)
{
	for (size_t i = 0; i < c->noptions; i++) {
		const struct kv *o = &c->options[i];
		char key[128];
		int rc;

		if (forbidden_option(o->key)) {
			diag_add(d, c->conf_file, o->line, o->col,
				"resolver option '%s' is not allowed: "
				"dnsfence keeps DNSSEC validation on and "
				"owns the process",
				o->key);
			continue;
		}
		snprintf(key, sizeof(key), "%s:", o->key);
		if ((rc = ub_ctx_set_option(ctx, key, o->value)) != 0)
			diag_add(d, c->conf_file, o->line, o->col,
				"resolver option '%s: %s' refused by "
				"libunbound: %s",
				o->key, o->value, ub_strerror(rc));
	}
}

/* Descriptors kept for everything but libunbound's outgoing UDP ports:
 * listeners, TCP clients, control connections, netlink, logs. */
#define FDS_RESERVED 256

/* libunbound's library defaults are 16 outgoing UDP ports and 2 TCP
 * connections for the whole context: queries beyond wait in one queue.
 * One VM asking names under a slow zone fills them, and every VM's
 * queries wait behind its (measured: 100 slow queries of one VM, and
 * another VM's fresh names took 2 to 5 s, then timed out). So: as many
 * ports as the unbound daemon has for its 1024 queries (4 per query
 * dnsfenced lets libunbound have, for retries and the lookups a
 * validation needs), as far as the descriptor limit allows, and the
 * daemon's 10 TCP connections. `options` may still set either. */
static void
set_sizes(struct ub_ctx *ctx, const struct config *c)
{
	uint64_t ports = (uint64_t)c->limits.upstream * 4;
	uint64_t keep = FDS_RESERVED + (uint64_t)c->limits.tcp_clients;
	struct rlimit rl;
	char v[32];

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 &&
		rl.rlim_cur != RLIM_INFINITY) {
		uint64_t avail = rl.rlim_cur > keep ? rl.rlim_cur - keep : 0;

		if (ports > avail)
			ports = avail;
	}
	if (ports < 16)
		ports = 16;
	snprintf(v, sizeof(v), "%llu", (unsigned long long)ports);
	ub_ctx_set_option(ctx, "outgoing-range:", v);
	ub_ctx_set_option(ctx, "outgoing-num-tcp:", "10");
}

/* The engine cannot read the files: libunbound reads the copies the
 * privileged process made of generation c->gen's files (privsep.c). */
static const char *copies; /* their directory, "" once chrooted there */

void
resolver_use_copies(const char *root)
{
	copies = root;
}

static char *
file_of(const struct config *c, const char *path, const char *copy)
{
	return copies ? xasprintf("%s/g%u/%s", copies, c->gen, copy)
		      : xstrdup(path);
}

struct ub_ctx *
resolver_ctx_new(const struct config *c, struct diag *d,
	struct event_base *base)
{
	struct ub_ctx *ctx = base ? ub_ctx_create_event(base) : ub_ctx_create();
	size_t before = d->n;
	char *ta, *hints;
	int rc;

	if (ctx == NULL) {
		diag_add(d, c->conf_file, 0, 0,
			"libunbound: cannot create a "
			"context");
		return NULL;
	}
	/* Each problem at the node that configured it (0:0, the file alone,
	 * for the default trust anchor). */
	ta = file_of(c, c->trust_anchor, PRIV_TA_COPY);
	hints = c->root_hints ? file_of(c, c->root_hints, PRIV_HINTS_COPY)
			      : NULL;
	if ((rc = ub_ctx_add_ta_file(ctx, ta)) != 0)
		diag_add(d, c->conf_file, c->trust_anchor_pos.line,
			c->trust_anchor_pos.col,
			"trust-anchor-file %s refused by libunbound: %s",
			c->trust_anchor, ub_strerror(rc));
	if (hints && (rc = ub_ctx_set_option(ctx, "root-hints:", hints)) != 0)
		diag_add(d, c->conf_file, c->root_hints_pos.line,
			c->root_hints_pos.col,
			"root-hints %s refused by libunbound: %s",
			c->root_hints, ub_strerror(rc));
	for (size_t i = 0; i < c->nforward; i++)
		if ((rc = ub_ctx_set_fwd(ctx, c->forward[i])) != 0)
			diag_add(d, c->conf_file, c->forward_pos[i].line,
				c->forward_pos[i].col,
				"forward server '%s' refused by libunbound: %s",
				c->forward[i], ub_strerror(rc));
	for (size_t i = 0; i < c->nstubs; i++) {
		const struct stub_zone *z = &c->stubs[i];

		for (size_t j = 0; j < z->naddrs; j++)
			if ((rc = ub_ctx_set_stub(ctx, z->zone, z->addrs[j],
				     0)) != 0)
				diag_add(d, c->conf_file, z->addr_pos[j].line,
					z->addr_pos[j].col,
					"stub zone '%s' server '%s' refused "
					"by libunbound: %s",
					z->zone, z->addrs[j], ub_strerror(rc));
	}
	free(ta);
	free(hints);
	set_sizes(ctx, c);
	set_options(ctx, c, d);
	if (d->n != before) {
		ub_ctx_delete(ctx);
		return NULL;
	}
	return ctx;
}
