/* The interface map: link messages as the kernel sends them (created,
 * renamed, deleted; a bridge port's messages ignored), lookups after many
 * changes against a plain array, and the map of this namespace's links
 * read over rtnetlink. */
#include <event2/event.h>
#include <libmnl/libmnl.h>
#include <linux/if.h>
#include <linux/rtnetlink.h>
#include <stdlib.h>
#include <sys/socket.h>

#include "ifnames.h"

#include "check.h"

static char msgbuf[1024];

/* A link message: name NULL for none, "" + raw for a bad one. */
static const struct nlmsghdr *
link_msg(uint16_t type, uint8_t family, int index, const char *name)
{
	struct nlmsghdr *nlh = mnl_nlmsg_put_header(msgbuf);
	struct ifinfomsg *ifi;

	nlh->nlmsg_type = type;
	ifi = mnl_nlmsg_put_extra_header(nlh, sizeof(*ifi));
	ifi->ifi_family = family;
	ifi->ifi_index = index;
	mnl_attr_put_u32(nlh, IFLA_MTU, 1500);
	if (name != NULL)
		mnl_attr_put_strz(nlh, IFLA_IFNAME, name);
	mnl_attr_put_u32(nlh, IFLA_TXQLEN, 1000);
	return nlh;
}

static void
newlink(struct ifnames *m, int index, const char *name)
{
	ifnames_apply(m, link_msg(RTM_NEWLINK, AF_UNSPEC, index, name));
}

static void
dellink(struct ifnames *m, int index)
{
	ifnames_apply(m, link_msg(RTM_DELLINK, AF_UNSPEC, index, "x"));
}

static bool
name_is(const struct ifnames *m, uint32_t index, const char *want)
{
	const char *n = ifnames_name(m, index);

	if (want == NULL)
		return n == NULL;
	return n != NULL && strcmp(n, want) == 0;
}

static void
test_messages(void)
{
	struct ifnames *m = ifnames_new();
	struct nlmsghdr *nlh;

	CHECK(ifnames_name(m, 0) == NULL);
	CHECK(ifnames_name(m, 3) == NULL);
	newlink(m, 3, "vif3.0");
	CHECK(name_is(m, 3, "vif3.0"));
	CHECK(name_is(m, 4, NULL));
	/* a change of flags repeats the name; a rename gives the new one */
	newlink(m, 3, "vif3.0");
	CHECK(ifnames_count(m) == 1);
	newlink(m, 3, "vif9.0");
	CHECK(name_is(m, 3, "vif9.0"));
	/* a bridge port's messages (family AF_BRIDGE) say nothing of the
	 * link itself: its RTM_DELLINK is sent when it leaves the bridge */
	ifnames_apply(m, link_msg(RTM_DELLINK, AF_BRIDGE, 3, "vif9.0"));
	CHECK(name_is(m, 3, "vif9.0"));
	ifnames_apply(m, link_msg(RTM_NEWLINK, AF_BRIDGE, 3, "other"));
	CHECK(name_is(m, 3, "vif9.0"));
	/* other types and short messages: nothing */
	ifnames_apply(m, link_msg(RTM_NEWADDR, AF_UNSPEC, 3, "other"));
	CHECK(name_is(m, 3, "vif9.0"));
	nlh = (struct nlmsghdr *)link_msg(RTM_DELLINK, AF_UNSPEC, 3, NULL);
	nlh->nlmsg_len = mnl_nlmsg_size(sizeof(struct ifinfomsg) - 4);
	ifnames_apply(m, nlh);
	CHECK(name_is(m, 3, "vif9.0"));
	/* deleted, then another link with the same name and index */
	dellink(m, 3);
	CHECK(name_is(m, 3, NULL));
	CHECK(ifnames_count(m) == 0);
	newlink(m, 3, "vif3.0");
	CHECK(name_is(m, 3, "vif3.0"));
	/* a name that cannot be read: the link is nobody's, not its old
	 * name's (none, not NUL-terminated, longer than IFNAMSIZ) */
	newlink(m, 3, NULL);
	CHECK(name_is(m, 3, NULL));
	newlink(m, 3, "vif3.0");
	nlh = (struct nlmsghdr *)link_msg(RTM_NEWLINK, AF_UNSPEC, 3, NULL);
	mnl_attr_put(nlh, IFLA_IFNAME, 4, "abcd");
	ifnames_apply(m, nlh);
	CHECK(name_is(m, 3, NULL));
	newlink(m, 3, "vif3.0");
	newlink(m, 3, "0123456789abcdefXYZ");
	CHECK(name_is(m, 3, NULL));
	newlink(m, 3, "0123456789abcde"); /* IFNAMSIZ - 1: fits */
	CHECK(name_is(m, 3, "0123456789abcde"));
	/* negative and zero indexes are no link's */
	newlink(m, 0, "zero");
	newlink(m, -5, "neg");
	CHECK(name_is(m, 0, NULL));
	CHECK(ifnames_count(m) == 1);
	ifnames_free(m);
}

/* Indexes that share a slot (multiples of the table's size apart), many
 * links, deletions in every order: the map agrees with an array. */
static void
test_table(void)
{
	enum { N = 5000 };
	struct ifnames *m = ifnames_new();
	static char want[N][IFNAMSIZ];
	unsigned seed = 1;
	int bad = 0;

	for (int i = 1; i <= 8; i++)
		newlink(m, i * 64, i % 2 ? "odd" : "even");
	newlink(m, 1, "lo");
	dellink(m, 128);
	CHECK(name_is(m, 64, "odd"));
	CHECK(name_is(m, 128, NULL));
	CHECK(name_is(m, 192, "odd"));
	CHECK(name_is(m, 512, "even"));
	CHECK(name_is(m, 1, "lo"));
	dellink(m, 64);
	dellink(m, 192);
	CHECK(name_is(m, 256, "even"));
	CHECK(name_is(m, 448, "odd"));
	ifnames_free(m);

	m = ifnames_new();
	memset(want, 0, sizeof(want));
	for (int step = 0; step < 200000; step++) {
		int i;

		seed = seed * 1103515245u + 12345u;
		i = 1 + (int)((seed >> 8) % (N - 1));
		if ((seed >> 4) % 3 == 0) {
			dellink(m, i);
			want[i][0] = '\0';
		} else {
			snprintf(want[i], sizeof(want[i]), "l%d.%u", i,
				(seed >> 20) % 100);
			newlink(m, i, want[i]);
		}
	}
	for (int i = 0; i < N; i++)
		if (!name_is(m, (uint32_t)i, want[i][0] ? want[i] : NULL))
			bad++;
	CHECK(bad == 0);
	/* high indexes: the kernel wraps around at 2^31 */
	newlink(m, 0x7fffffff, "last");
	newlink(m, N + 0x40000, "far");
	CHECK(name_is(m, 0x7fffffff, "last"));
	CHECK(name_is(m, N + 0x40000, "far"));
	ifnames_free(m);
}

/* This namespace's links as the kernel has them: lo is index 1. */
static void
test_follow(void)
{
	struct event_base *base = event_base_new();
	struct ifnames *m = ifnames_new();

	CHECK(ifnames_follow(m, base) == 0);
	CHECK(name_is(m, 1, "lo"));
	CHECK(ifnames_count(m) >= 1);
	CHECK(!ifnames_sync(m) || name_is(m, 1, "lo"));
	ifnames_free(m);
	event_base_free(base);
}

int
main(void)
{
	test_messages();
	test_table();
	test_follow();
	return check_done("ifnames");
}
