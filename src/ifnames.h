/* Interface index -> name, as the kernel names them now: dumped once over
 * rtnetlink, then kept by the link notifications (created, renamed,
 * deleted), so that the frontend names the interface of every datagram
 * without a system call. */
#ifndef DNSFENCE_IFNAMES_H
#define DNSFENCE_IFNAMES_H

#include <linux/netlink.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct event_base;
struct ifnames;

/** An empty map that follows nothing (the unit tests feed it messages). */
struct ifnames *ifnames_new(void);
/** Open an rtnetlink socket subscribed to link changes, dump the links
 * into m and follow their changes on base. Needs no privilege; the engine
 * calls it with its listeners, before its drop, so that the map is whole
 * before the first datagram is read. -1 and a log line on failure. */
int ifnames_follow(struct ifnames *m, struct event_base *base);
/** The name of interface index (NUL-terminated), or NULL when the map has
 * none (an index of 0 included). The pointer is good until the map is
 * changed: copy it. */
const char *ifnames_name(const struct ifnames *m, uint32_t index);
/** Read what the kernel has queued for the map now (non-blocking): for an
 * index it does not know yet, whose link may have been created since the
 * last read. True when something was read. */
bool ifnames_sync(struct ifnames *m);
/** Apply one rtnetlink message: RTM_NEWLINK and RTM_DELLINK of family
 * AF_UNSPEC; anything else is ignored (a bridge's RTM_DELLINK of family
 * AF_BRIDGE only says a port left it). */
void ifnames_apply(struct ifnames *m, const struct nlmsghdr *nlh);
/** Links in the map. */
size_t ifnames_count(const struct ifnames *m);
void ifnames_free(struct ifnames *m);

#endif
