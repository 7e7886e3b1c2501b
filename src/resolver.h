/* libunbound: the validating resolver behind every VM's DNS. */
#ifndef DNSFENCE_RESOLVER_H
#define DNSFENCE_RESOLVER_H

#include "config.h"

struct ub_ctx;

/** A libunbound context configured from c (trust anchor, root hints,
 * forwarders, stub zones, options), validation always on. Problems go to
 * d, as FILE:LINE:COL where the configuration says where; NULL then.
 * With a base, the context is for ub_resolve_event on that loop. */
struct event_base;
struct ub_ctx *resolver_ctx_new(const struct config *c, struct diag *d,
	struct event_base *base);

#endif
