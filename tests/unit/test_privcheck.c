/* privcheck: the privileged process admits only elements a VM's own
 * policy could have asked for. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "config.h"
#include "elems.h"
#include "privcheck.h"
#include "util.h"

static char dir[] = "/tmp/df-privcheck-XXXXXX";

static void
write_file(const char *name, const char *text)
{
	char *path = xasprintf("%s/%s", dir, name);
	FILE *f = fopen(path, "w");

	if (f == NULL || fputs(text, f) == EOF || fclose(f) != 0) {
		perror(path);
		exit(2);
	}
	free(path);
}

static struct elem_key
key(const char *addr, int kind, int proto, int lo, int hi)
{
	struct elem_key k;

	memset(&k, 0, sizeof(k));
	k.family = strchr(addr, ':') ? AF_INET6 : AF_INET;
	inet_pton(k.family, addr, k.addr);
	k.kind = (uint8_t)kind;
	k.proto = (uint8_t)proto;
	k.lo = (uint16_t)lo;
	k.hi = (uint16_t)hi;
	return k;
}

static const struct config *C;

/* 1 admitted, 0 refused. */
static int
add(const char *vm, struct elem_key k, uint64_t ms)
{
	char why[256];
	const char *r = privcheck_add(C, vm, set_index(k.kind, k.family), &k,
		ms, why, sizeof(why));

	if (r != NULL && getenv("VERBOSE"))
		fprintf(stderr, "refused: %s\n", r);
	return r == NULL;
}

int
main(void)
{
	struct diag d = {0};
	struct config *c;
	char *path;
	const uint64_t max = (3600 + 5 + 1) * 1000;
	struct elem_key echo;
	char why[256];

	if (mkdtemp(dir) == NULL)
		return 2;
	path = xasprintf("%s/vms", dir);
	mkdir(path, 0755);
	free(path);
	write_file("dnsfence.yaml",
		"listen: [10.139.1.1]\npolicies: vms\ncontrol: ctl.sock\n"
		"ttl: {min: 10, max: 3600, grace: 5}\n"
		"resolver:\n  trust-anchor-file: root.key\n");
	write_file("root.key",
		". IN DS 20326 8 2 "
		"E06D44B80B8F1D39A95C0B0D7C65D08458E880409BBC683457104237C7F8"
		"EC8D\n");
	write_file("vms/work.yaml",
		"addresses: [10.137.1.10, \"2001:db8:a:1::10\"]\n"
		"allow:\n"
		"  - name: \"*.example.com\"\n"
		"    ports: [tcp/443, tcp/8000-8080]\n"
		"  - name: ping.example.com\n    ports: [icmp]\n"
		"  - name: nas.corp.example\n    ports: [tcp/22]\n"
		"    allow-private: true\n"
		"  - net: 198.51.100.0/24\n    ports: [udp/53]\n");
	write_file("vms/red.yaml",
		"addresses: [10.137.2.10]\ndefault: allow\n");
	path = xasprintf("%s/dnsfence.yaml", dir);
	c = config_load(path, &d);
	free(path);
	for (size_t i = 0; i < d.n; i++)
		fprintf(stderr, "%s\n", d.msgs[i]);
	CHECK(c != NULL);
	if (c == NULL)
		return check_done("privcheck");
	C = c;

	/* Ports: exactly the atoms of the VM's name rules. */
	CHECK(add("work", key("192.0.2.1", SET_PORTS, IPPROTO_TCP, 443, 443),
		      max) == 1);
	CHECK(add("work", key("192.0.2.1", SET_RANGES, IPPROTO_TCP, 8000, 8080),
		      max) == 1);
	/* Each in its own set: a range never in the hash of single ports, a
	 * single port never in the ranges set. */
	CHECK(add("work", key("192.0.2.1", SET_PORTS, IPPROTO_TCP, 8000, 8080),
		      max) == 0);
	CHECK(add("work", key("192.0.2.1", SET_RANGES, IPPROTO_TCP, 443, 443),
		      max) == 0);
	CHECK(add("work", key("192.0.2.1", SET_PORTS, IPPROTO_TCP, 22, 22),
		      max) == 1);
	CHECK(add("work", key("192.0.2.1", SET_PORTS, IPPROTO_TCP, 8000, 8000),
		      max) == 0);
	CHECK(add("work", key("192.0.2.1", SET_PORTS, IPPROTO_TCP, 23, 23),
		      max) == 0);
	CHECK(add("work", key("192.0.2.1", SET_PORTS, IPPROTO_UDP, 443, 443),
		      max) == 0);
	/* A net rule's port is not a name rule's. */
	CHECK(add("work", key("192.0.2.1", SET_PORTS, IPPROTO_UDP, 53, 53),
		      max) == 0);
	CHECK(add("work", key("192.0.2.1", SET_ANY, 0, 0, 0), max) == 0);
	CHECK(add("red", key("192.0.2.1", SET_ANY, 0, 0, 0), max) == 1);
	CHECK(add("red", key("192.0.2.1", SET_ANY, IPPROTO_TCP, 0, 0), max) ==
		0);
	echo = key("192.0.2.1", 0, 0, 0, 0);
	elems_echo_key(&echo, AF_INET);
	CHECK(add("work", echo, max) == 1);
	CHECK(add("red", echo, max) == 0);
	/* Only echo requests: another ICMP type and code is refused. */
	echo.lo = echo.hi = 0; /* echo reply */
	CHECK(add("work", echo, max) == 0);
	/* IPv6 too. */
	CHECK(add("work", key("2001:db8::1", SET_PORTS, IPPROTO_TCP, 443, 443),
		      max) == 1);

	/* Timeouts: 1 ms to ttl.max + grace + 1 s. */
	CHECK(add("work", key("192.0.2.1", SET_PORTS, IPPROTO_TCP, 443, 443),
		      max + 1) == 0);
	CHECK(add("work", key("192.0.2.1", SET_PORTS, IPPROTO_TCP, 443, 443),
		      0) == 0);
	CHECK(add("work", key("192.0.2.1", SET_PORTS, IPPROTO_TCP, 443, 443),
		      1) == 1);

	/* Addresses the rebinding guard refuses. */
	CHECK(add("red", key("10.137.1.10", SET_ANY, 0, 0, 0), max) == 0);
	CHECK(add("red", key("2001:db8:a:1::10", SET_ANY, 0, 0, 0), max) == 0);
	CHECK(add("work", key("10.137.2.10", SET_PORTS, IPPROTO_TCP, 443, 443),
		      max) == 0);
	CHECK(add("red", key("10.139.1.1", SET_ANY, 0, 0, 0), max) == 0);
	/* ... inside a NAT64 or 6to4 address too. */
	CHECK(add("red", key("64:ff9b::a89:10a", SET_ANY, 0, 0, 0), max) == 0);
	CHECK(add("red", key("2002:a89:10a::", SET_ANY, 0, 0, 0), max) == 0);
	CHECK(add("red", key("64:ff9b::c000:201", SET_ANY, 0, 0, 0), max) == 1);
	CHECK(add("red", key("127.0.0.1", SET_ANY, 0, 0, 0), max) == 0);
	CHECK(add("red", key("::1", SET_ANY, 0, 0, 0), max) == 0);
	CHECK(add("red", key("224.0.0.1", SET_ANY, 0, 0, 0), max) == 0);
	CHECK(add("red", key("192.168.1.1", SET_ANY, 0, 0, 0), max) == 0);
	CHECK(add("work", key("192.168.1.1", SET_PORTS, IPPROTO_TCP, 22, 22),
		      max) == 1);
	/* ... with the ports of the rule that says allow-private only. */
	CHECK(add("work", key("192.168.1.1", SET_PORTS, IPPROTO_TCP, 443, 443),
		      max) == 0);
	echo = key("192.168.1.1", 0, 0, 0, 0);
	elems_echo_key(&echo, AF_INET);
	CHECK(add("work", echo, max) == 0);

	/* The set: a VM of the configuration, of the element's kind and
	 * family. */
	CHECK(add("nosuch", key("192.0.2.1", SET_ANY, 0, 0, 0), max) == 0);
	{
		struct elem_key k =
			key("192.0.2.1", SET_PORTS, IPPROTO_TCP, 443, 443);

		CHECK(privcheck_add(c, "work", set_index(SET_ANY, AF_INET), &k,
			      max, why, sizeof(why)) != NULL);
		CHECK(privcheck_add(c, "work", set_index(SET_PORTS, AF_INET6),
			      &k, max, why, sizeof(why)) != NULL);
		CHECK(privcheck_add(c, "work", SET_COUNT, &k, max, why,
			      sizeof(why)) != NULL);
		CHECK(privcheck_add(c, "work", -1, &k, max, why, sizeof(why)) !=
			NULL);
		CHECK(privcheck_del(c, "work", set_index(SET_PORTS, AF_INET),
			      &k, why, sizeof(why)) == NULL);
		CHECK(privcheck_del(c, "nosuch", set_index(SET_PORTS, AF_INET),
			      &k, why, sizeof(why)) != NULL);
		k.family = 99;
		CHECK(privcheck_del(c, "work", set_index(SET_PORTS, AF_INET),
			      &k, why, sizeof(why)) != NULL);
	}
	config_free(c);
	diag_finish(&d);
	{
		char *cmd = xasprintf("rm -rf '%s'", dir);

		if (system(cmd) != 0)
			fprintf(stderr, "could not remove %s\n", dir);
		free(cmd);
	}
	return check_done("privcheck");
}
