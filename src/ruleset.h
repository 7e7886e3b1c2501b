/* The table dnsfenced owns: its sets, chains and rules, built from the
 * configuration and installed (or replaced) in one transaction that keeps
 * every element of every set that survives. */
#ifndef DNSFENCE_RULESET_H
#define DNSFENCE_RULESET_H

#include <stddef.h>

#include "config.h"
#include "elems.h"
#include "nft.h"

/** Build the batch that makes the kernel's table match c, keeping the
 * elements of sets that stay. Reads the current table first (synchronous
 * dump). old: the configuration the kernel's table was built from, whose
 * unchanged VMs (chain and sets) are left alone; NULL rebuilds every rule.
 * NULL (and a log line) if the table could not be read. */
struct nft_batch *ruleset_build(struct nft *n, const struct config *c,
	const struct config *old);

/** The counted drop rules of our table, as the kernel counts them: cb
 * gets the VM (NULL for the table-wide ones), what the rule drops
 * ("not admitted", "spoofed source", "unknown source, or a new connection
 * towards a VM", "invalid", "only DNS", "interface <if>: spoofed source"
 * for an interface several VMs share), and its packets and bytes.
 * -1 if the table could not be read. */
int ruleset_counters(const char *table,
	void (*cb)(const char *vm, const char *what, uint64_t packets,
		uint64_t bytes, void *arg),
	void *arg);

#endif
