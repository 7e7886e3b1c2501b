#include "resolver.h"

#include <stdio.h>
#include <string.h>
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

struct ub_ctx *
resolver_ctx_new(const struct config *c, struct diag *d,
	struct event_base *base)
{
	struct ub_ctx *ctx = base ? ub_ctx_create_event(base) : ub_ctx_create();
	size_t before = d->n;
	int rc;

	if (ctx == NULL) {
		diag_add(d, c->conf_file, 0, 0,
			"libunbound: cannot create a "
			"context");
		return NULL;
	}
	/* Each problem at the node that configured it (0:0, the file alone,
	 * for the default trust anchor). */
	if ((rc = ub_ctx_add_ta_file(ctx, c->trust_anchor)) != 0)
		diag_add(d, c->conf_file, c->trust_anchor_pos.line,
			c->trust_anchor_pos.col,
			"trust-anchor-file %s refused by libunbound: %s",
			c->trust_anchor, ub_strerror(rc));
	if (c->root_hints &&
		(rc = ub_ctx_set_option(ctx, "root-hints:", c->root_hints)) !=
			0)
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
	set_options(ctx, c, d);
	if (d->n != before) {
		ub_ctx_delete(ctx);
		return NULL;
	}
	return ctx;
}
