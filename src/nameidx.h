/* The name rules of a VM indexed by pattern, so that deciding a name
 * costs a lookup per label of the name, not a look at every rule: a
 * policy of 10,000 names and wildcards decides as fast as one of three.
 * An exact pattern is found by the whole name, `*.suffix` by each proper
 * suffix of the name at a label boundary, `*` always. */
#ifndef DNSFENCE_NAMEIDX_H
#define DNSFENCE_NAMEIDX_H

#include <stdbool.h>
#include <stddef.h>

struct rule;
struct nameidx;

/** The index of the name rules (not the net rules) of both lists; NULL
 * for lists with no name rule. The rules must outlive it. */
struct nameidx *nameidx_create(const struct rule *allow, size_t nallow,
	const struct rule *deny, size_t ndeny);
/** nameidx_destroy(NULL) does nothing. */
void nameidx_destroy(struct nameidx *x);

/** cb(i, arg) for each rule i of the deny (deny true) or allow list whose
 * pattern matches name (lower case, no trailing dot), in no particular
 * order, until cb returns false. */
void nameidx_match(const struct nameidx *x, bool deny, const char *name,
	bool (*cb)(size_t i, void *arg), void *arg);

#endif
