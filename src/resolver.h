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

/* Names of the copies in the engine's root, per generation. */
#define PRIV_TA_COPY "trust-anchor"
#define PRIV_HINTS_COPY "root-hints"
/** From now on, libunbound reads the copies the privileged process made
 * in the engine's root (root/g<gen>/trust-anchor, .../root-hints; root
 * "" once chrooted there). root must outlive every context. */
void resolver_use_copies(const char *root);

/* The answer cache's bound: never more than this. */
#define RESOLVER_CACHE_MAX (1ull << 30)
/** The bytes the answer cache in front of libunbound may hold: as many as
 * libunbound's own message cache (`resolver: options: msg-cache-size`,
 * unbound's size syntax), 4 MiB by default. */
size_t resolver_msg_cache_bytes(const struct config *c);

#endif
