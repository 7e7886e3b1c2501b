/* The table dnsfenced owns: its sets, chains and rules, built from the
 * configuration and installed (or replaced) in one transaction that keeps
 * every element of every set that survives. */
#ifndef DNSFENCE_RULESET_H
#define DNSFENCE_RULESET_H

#include <stddef.h>

#include "config.h"
#include "nft.h"

/* The fixed family of sets of each VM, per address family. */
enum set_kind {
	SET_ANY,   /* <vm>_v4: every protocol and port */
	SET_PORTS, /* <vm>_v4_ports: addr . proto . port(-range) */
	SET_ICMP,  /* <vm>_v4_icmp: echo requests */
	SET_KINDS
};

#define SET_NAME_MAX 64

/** Name of one VM set, e.g. "work_v4_ports". */
const char *ruleset_set_name(char *buf, size_t len, const char *vm,
	enum set_kind kind, int family);

/** Build the batch that makes the kernel's table match c, keeping the
 * elements of sets that stay. Reads the current table first (synchronous
 * dump). NULL (and a log line) if the table could not be read. */
struct nft_batch *ruleset_build(struct nft *n, const struct config *c);

#endif
