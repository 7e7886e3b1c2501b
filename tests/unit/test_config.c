#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "config.h"

static enum ta_line
ta(const char *s)
{
	return config_ta_line(s, strlen(s));
}

#define ROOT_DS \
	"20326 8 2 E06D44B80B8F1D39A95C0B0D7C65D08458E880409BBC683457104237C7F8EC8D"

static void
test_ta_line(void)
{
	char big[TA_LINE_MAX + 100];

	/* nothing */
	CHECK(ta("") == TA_LINE_EMPTY);
	CHECK(ta("   \t\r") == TA_LINE_EMPTY);
	CHECK(ta("; . IN DS " ROOT_DS) == TA_LINE_EMPTY);
	CHECK(ta("\t ;; comment") == TA_LINE_EMPTY);

	/* anchors: TTL and class optional, in either order, any case */
	CHECK(ta(". IN DS " ROOT_DS) == TA_LINE_ANCHOR);
	CHECK(ta(". DS " ROOT_DS) == TA_LINE_ANCHOR);
	CHECK(ta(". 172800 IN DS " ROOT_DS) == TA_LINE_ANCHOR);
	CHECK(ta(". in 172800 ds " ROOT_DS) == TA_LINE_ANCHOR);
	CHECK(ta(". 2d IN DS " ROOT_DS) == TA_LINE_ANCHOR);
	CHECK(ta(". 3600 DS " ROOT_DS) == TA_LINE_ANCHOR);
	CHECK(ta(". CLASS1 DS " ROOT_DS) == TA_LINE_ANCHOR);
	CHECK(ta("example.\tIN\tDS\t" ROOT_DS "\r") == TA_LINE_ANCHOR);
	CHECK(ta(". IN DNSKEY 257 3 8 AwEAAaz/tAm8yTn4Mfeh ; keytag 20326") ==
		TA_LINE_ANCHOR);
	CHECK(ta(". IN DnsKey 257 3 8 AwEAAaz/tAm8yTn4Mfeh") == TA_LINE_ANCHOR);
	CHECK(ta(". IN DS ( 20326 8 2") == TA_LINE_ANCHOR);
	CHECK(ta(". IN DNSKEY (") == TA_LINE_ANCHOR);
	CHECK(ta(". IN DNSKEY(257 3 8 AwEAAaz") == TA_LINE_ANCHOR);
	/* indented: the owner is the previous record's */
	CHECK(ta("   IN DS " ROOT_DS) == TA_LINE_ANCHOR);

	/* not anchors */
	CHECK(ta(". IN NS a.root-servers.net.") == TA_LINE_OTHER);
	/* other types whose rdata begins with a number (a name may be
	 * all digits) */
	CHECK(ta(". IN NS 20326") == TA_LINE_OTHER);
	CHECK(ta(". IN MX 10 mail.example.") == TA_LINE_OTHER);
	CHECK(ta(". IN SOA 1 2 3 4 5 6 7") == TA_LINE_OTHER);
	CHECK(ta("example. 3600 IN NSEC3PARAM 1 0 0 -") == TA_LINE_OTHER);
	CHECK(ta(". IN A 192.0.2.1") == TA_LINE_OTHER);
	CHECK(ta(". IN DS") == TA_LINE_OTHER);
	CHECK(ta(". IN DS ; " ROOT_DS) == TA_LINE_OTHER);
	CHECK(ta(". IN DS foo 8 2 abc") == TA_LINE_OTHER);
	CHECK(ta(". IN IN DS " ROOT_DS) == TA_LINE_OTHER);
	CHECK(ta(". 1 2 DS " ROOT_DS) == TA_LINE_OTHER);
	CHECK(ta(". IN DSX " ROOT_DS) == TA_LINE_OTHER);
	CHECK(ta(". IN RRSIG DS 8 0 172800") == TA_LINE_OTHER);
	CHECK(ta("DS " ROOT_DS) == TA_LINE_OTHER); /* DS is the owner */
	CHECK(ta(".") == TA_LINE_OTHER);
	CHECK(ta("$ORIGIN .") == TA_LINE_OTHER);
	CHECK(ta("$INCLUDE /etc/root.key") == TA_LINE_OTHER);
	CHECK(ta("(. IN DS " ROOT_DS) == TA_LINE_OTHER);
	CHECK(ta(")") == TA_LINE_OTHER);
	CHECK(ta("trust-anchors { . initial-key 257 3 8 \"AwEA\"; };") ==
		TA_LINE_OTHER);
	CHECK(config_ta_line(". IN DS\0 20326 8 2 AB", 21) == TA_LINE_OTHER);

	/* only the first TA_LINE_MAX bytes count */
	memset(big, ' ', sizeof(big));
	memcpy(big + TA_LINE_MAX - 10, "IN DS 1", 7);
	CHECK(config_ta_line(big, sizeof(big)) == TA_LINE_ANCHOR);
	memset(big, ' ', sizeof(big));
	memcpy(big + TA_LINE_MAX - 4, "IN DS 1", 7);
	CHECK(config_ta_line(big, sizeof(big)) == TA_LINE_OTHER);
}

/* config_load on dnsfence.yaml naming a root.key that holds key. */
static bool
load_with_key(const char *dir, const char *key, const char *want)
{
	char path[512];
	struct diag d = {0};
	struct config *c;
	bool ok;
	FILE *f;

	snprintf(path, sizeof(path), "%s/root.key", dir);
	if ((f = fopen(path, "w")) == NULL)
		return false;
	fputs(key, f);
	fclose(f);
	snprintf(path, sizeof(path), "%s/dnsfence.yaml", dir);
	c = config_load(path, &d);
	if (want == NULL)
		ok = c != NULL && d.n == 0;
	else
		ok = c == NULL && d.n == 1 && strstr(d.msgs[0], want) != NULL;
	if (!ok)
		for (size_t i = 0; i < d.n; i++)
			fprintf(stderr, "  %s\n", d.msgs[i]);
	config_free(c);
	diag_finish(&d);
	return ok;
}

static void
test_ta_file(void)
{
	const char *none = "holds no DS or DNSKEY record: DNSSEC validation "
			   "would be off";
	char dir[] = "/tmp/dnsfence-test-XXXXXX", path[512];
	FILE *f;

	if (mkdtemp(dir) == NULL) {
		CHECK(!"mkdtemp");
		return;
	}
	snprintf(path, sizeof(path), "%s/vms", dir);
	mkdir(path, 0700);
	snprintf(path, sizeof(path), "%s/dnsfence.yaml", dir);
	if ((f = fopen(path, "w")) == NULL) {
		CHECK(!"fopen");
		return;
	}
	fputs("listen: [10.137.0.1]\n"
	      "resolver: {trust-anchor-file: root.key}\n",
		f);
	fclose(f);

	CHECK(load_with_key(dir, "", none));
	CHECK(load_with_key(dir, "\n\n; nothing\n  ; here\n", none));
	CHECK(load_with_key(dir, "$ORIGIN .\n. IN NS a.root-servers.net.\n",
		none));
	/* a DS-looking line inside another record's parentheses */
	CHECK(load_with_key(dir, ". IN TXT ( \"a\"\n IN DS 1 8 2 AB )\n",
		none));
	/* ... but one after the record closes counts */
	CHECK(load_with_key(dir,
		". IN TXT ( \"a\"\n \"b\" )\n"
		". IN DS 1 8 2 AB\n",
		NULL));
	/* a ')' in a comment does not close anything */
	CHECK(load_with_key(dir, ". IN TXT ( \"a\" ; )\n IN DS 1 8 2 AB\n",
		none));
	CHECK(load_with_key(dir, "; the root\n. IN DS " ROOT_DS "\n", NULL));
	CHECK(load_with_key(dir, ". IN DS " ROOT_DS, NULL)); /* no newline */
	CHECK(load_with_key(dir,
		". 172800 IN DNSKEY ( 257 3 8\n"
		"  AwEAAaz/tAm8yTn4Mfeh ) ; KSK\n",
		NULL));

	snprintf(path, sizeof(path), "%s/root.key", dir);
	unlink(path);
	snprintf(path, sizeof(path), "%s/vms", dir);
	rmdir(path);
	snprintf(path, sizeof(path), "%s/dnsfence.yaml", dir);
	unlink(path);
	rmdir(dir);
}

/* config_parse_hostport: s parses (want_port: what *port becomes, the
 * 4242 it starts as when no port is written) or not (want_port -1). */
static bool
hp(const char *s, char sep, bool zero_ok, const char *want_addr, int want_port)
{
	struct ipaddr a, w;
	uint16_t port = 4242;
	int rc = config_parse_hostport(s, sep, zero_ok, &a, &port);

	if (want_port < 0)
		return rc < 0;
	if (rc < 0 || policy_parse_addr(want_addr, &w) < 0)
		return false;
	return a.family == w.family &&
		memcmp(a.b, w.b, a.family == AF_INET ? 4 : 16) == 0 &&
		port == want_port;
}

static void
test_hostport(void)
{
	char big[HOSTPORT_MAX + 8];

	/* listen: ADDR, ADDR:PORT, [V6]:PORT, bare V6 */
	CHECK(hp("10.137.0.1", ':', false, "10.137.0.1", 4242));
	CHECK(hp("10.137.0.1:5353", ':', false, "10.137.0.1", 5353));
	CHECK(hp("10.137.0.1:1", ':', false, "10.137.0.1", 1));
	CHECK(hp("10.137.0.1:65535", ':', false, "10.137.0.1", 65535));
	CHECK(hp("[fd09:24ef:4179::a89:1]:53", ':', false,
		"fd09:24ef:4179::a89:1", 53));
	CHECK(hp("[::1]", ':', false, "::1", 4242));
	CHECK(hp("fd09::1", ':', false, "fd09::1", 4242));
	CHECK(hp("::", ':', false, "::", 4242));
	CHECK(hp("::ffff:10.0.0.1", ':', false, "::ffff:10.0.0.1", 4242));
	/* strict */
	CHECK(hp("", ':', false, NULL, -1));
	CHECK(hp(":53", ':', false, NULL, -1));
	CHECK(hp("10.137.0.1:", ':', false, NULL, -1));
	CHECK(hp("10.137.0.1:0", ':', false, NULL, -1));
	CHECK(hp("10.137.0.1:0", ':', true, "10.137.0.1", 0));
	CHECK(hp("10.137.0.1:00000", ':', true, "10.137.0.1", 0));
	CHECK(hp("10.137.0.1:65536", ':', false, NULL, -1));
	CHECK(hp("10.137.0.1:99999", ':', false, NULL, -1));
	CHECK(hp("10.137.0.1:000053", ':', false, NULL, -1));
	CHECK(hp("10.137.0.1:+53", ':', false, NULL, -1));
	CHECK(hp("10.137.0.1:-1", ':', false, NULL, -1));
	CHECK(hp("10.137.0.1: 53", ':', false, NULL, -1));
	CHECK(hp("10.137.0.1:53 ", ':', false, NULL, -1));
	CHECK(hp("10.137.0.1:5x", ':', false, NULL, -1));
	CHECK(hp("10.137.0.1:0x35", ':', false, NULL, -1));
	CHECK(hp("10.137.0.1@53", ':', false, NULL, -1));
	CHECK(hp("host.example:53", ':', false, NULL, -1));
	CHECK(hp("[10.137.0.1]:53", ':', false, NULL, -1));
	CHECK(hp("[::1]53", ':', false, NULL, -1));
	CHECK(hp("[::1]:", ':', false, NULL, -1));
	CHECK(hp("[::1", ':', false, NULL, -1));
	CHECK(hp("[]:53", ':', false, NULL, -1));
	CHECK(hp("[::1]:53:53", ':', false, NULL, -1));
	CHECK(hp("[[::1]]:53", ':', false, NULL, -1));
	/* servers: ADDR or ADDR@PORT, no brackets */
	CHECK(hp("9.9.9.9", '@', false, "9.9.9.9", 4242));
	CHECK(hp("9.9.9.9@853", '@', false, "9.9.9.9", 853));
	CHECK(hp("2620:fe::fe@53", '@', false, "2620:fe::fe", 53));
	CHECK(hp("2620:fe::fe", '@', false, "2620:fe::fe", 4242));
	CHECK(hp("9.9.9.9@", '@', false, NULL, -1));
	CHECK(hp("@53", '@', false, NULL, -1));
	CHECK(hp("9.9.9.9@0", '@', false, NULL, -1));
	CHECK(hp("9.9.9.9@65536", '@', false, NULL, -1));
	CHECK(hp("9.9.9.9@53@53", '@', false, NULL, -1));
	CHECK(hp("9.9.9.9:53", '@', false, NULL, -1));
	CHECK(hp("[2620:fe::fe]@53", '@', false, NULL, -1));
	CHECK(hp("[2620:fe::fe]", '@', false, NULL, -1));
	/* bounded: nothing past HOSTPORT_MAX is looked at */
	memset(big, '1', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	CHECK(hp(big, ':', false, NULL, -1));
	memset(big, '0', sizeof(big));
	memcpy(big, "10.0.0.1:", 9);
	big[HOSTPORT_MAX] = '\0'; /* "10.0.0.1:000…": too many digits */
	CHECK(hp(big, ':', true, NULL, -1));
	CHECK(hp("1.2.3.4", '/', false, NULL, -1));
}

static const char until_policy[] = "addresses: [10.137.0.12]\n"
				   "allow:\n"
				   "  - name: build.example.org\n" /* 3:5 */
				   "    ports: [tcp/443-444]\n"
				   "    until: 2026-12-31T18:00:00Z\n"
				   "  - name: \"*.example.org\"\n" /* 6:5 */
				   "    ports: [tcp/443]\n"
				   "  - net: 192.0.2.0/24\n" /* 8:5 */
				   "    until: 2026-12-31T19:00:00+01:00\n"
				   "  - net: 198.51.100.0/24\n" /* 10:5 */
				   "    until: 2027-01-01T00:00:00Z\n"
				   "deny:\n"
				   "  - name: ads.example.org\n";

static struct config *
until_config(void)
{
	struct config *c = xcalloc(1, sizeof(*c));
	struct diag d = {0};

	c->table = xstrdup("dnsfence");
	c->file = xstrdup("/etc/dnsfence/dnsfence.yaml");
	c->listen = xcalloc(1, sizeof(*c->listen));
	c->nlisten = 1;
	c->forward = xcalloc(1, sizeof(*c->forward));
	c->forward[0] = xstrdup("192.0.2.53");
	c->nforward = 1;
	c->vms = xcalloc(2, sizeof(*c->vms));
	c->nvms = 2;
	CHECK(config_load_policy_buf(&c->vms[0], "work", "work.yaml",
		      until_policy, strlen(until_policy), &d) == 0);
	CHECK(config_load_policy_buf(&c->vms[1], "other", "other.yaml",
		      "addresses: [10.137.0.13]\n", 25, &d) == 0);
	CHECK(d.n == 0);
	diag_finish(&d);
	return c;
}

static char *
dump_str(const struct config *c)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);

	config_dump(c, f);
	fclose(f);
	return buf;
}

/* config_at copies every setting, not only the ones it knew of when it
 * was written: before any until, its dump is the original's. */
static void
test_at_copies_all(void)
{
	struct config *c = until_config();
	struct config *at;
	char *a, *b;

	c->vms[1].learn = true;
	c->vms[1].default_allow = true;
	c->vms[1].unlisted = UNLISTED_NXDOMAIN;
	c->control = xstrdup("/run/x.sock");
	c->control_group = xstrdup("wheel");
	c->control_gid = 4242;
	c->log_drops = 7;
	c->limits.set_size = 123;
	c->ttl.grace = 9;
	c->vms[0].dns_deny = true;
	c->freebind = true;
	c->priority = 1;
	c->has_from_group = true;
	c->from_group = 2;
	c->reject = true;
	c->capture.on = c->capture.has_group = c->capture.any = true;
	c->capture.group = 2;
	c->capture.to = xcalloc(2, sizeof(*c->capture.to));
	c->capture.to_pos = xcalloc(2, sizeof(*c->capture.to_pos));
	c->capture.nto = 2;
	policy_parse_addr("10.139.1.1", &c->capture.to[0]);
	policy_parse_addr("10.139.1.2", &c->capture.to[1]);
	at = config_at(c, 1);
	a = dump_str(c);
	b = dump_str(at);
	CHECK(strcmp(a, b) == 0);
	CHECK(strstr(b, "    dns: deny\n") != NULL);
	CHECK(strstr(b, "to: [\"10.139.1.1\", \"10.139.1.2\"]") != NULL);
	CHECK(strstr(b, "  priority: 1\n  from-group: 2\n  reject: true") !=
		NULL);
	CHECK(at->vms[1].learn && at->control_gid == 4242);
	CHECK(at->control_group != c->control_group);
	CHECK(at->capture.to != c->capture.to && at->capture.nto == 2);
	free(a);
	free(b);
	config_free(at);
	config_free(c);
}

/* capture redirects to the first listen port of the packet's family. */
static void
test_capture_port(void)
{
	struct listen_addr l[3] = {{.port = 5353}, {.port = 53}, {.port = 54}};
	struct config c = {.listen = l, .nlisten = 1};

	CHECK(policy_parse_addr("10.137.0.6", &l[0].addr) == 0);
	CHECK(policy_parse_addr("fd09:24ef:4179::a8b:1", &l[1].addr) == 0);
	CHECK(policy_parse_addr("10.137.0.7", &l[2].addr) == 0);
	CHECK(config_capture_port(&c, AF_INET) == 5353);
	CHECK(config_capture_port(&c, AF_INET6) == 0);
	c.nlisten = 3;
	CHECK(config_capture_port(&c, AF_INET) == 5353);
	CHECK(config_capture_port(&c, AF_INET6) == 53);
}

static void
test_until(void)
{
	const int64_t end = 1798740000; /* 2026-12-31T18:00:00Z */
	struct config *c = until_config();
	struct config *at;
	struct until_info ui[8];
	struct verdict v;
	char buf[64];

	CHECK(c->vms[0].nallow == 4);
	CHECK(c->vms[0].allow[0].until == end);
	CHECK(c->vms[0].allow[1].until == 0);
	CHECK(c->vms[0].allow[2].until == end);
	CHECK(config_next_until(c) == end);
	CHECK(c->vms[0].natoms == 2); /* tcp/443, tcp/444 */

	/* before: everything, a deep copy */
	at = config_at(c, end - 1);
	CHECK(at->nvms == 2 && at->vms[0].nallow == 4);
	CHECK(at->vms[0].allow[0].ports.v != c->vms[0].allow[0].ports.v);
	CHECK(at->vms[0].natoms == 2);
	CHECK(strcmp(at->forward[0], "192.0.2.53") == 0 &&
		at->forward != c->forward);
	CHECK(config_untils(c, end - 1, NULL, 0) == 3);
	CHECK(config_untils(c, end - 1, ui, 8) == 3);
	CHECK(strcmp(ui[0].vm, "work") == 0 &&
		strcmp(ui[0].text, "build.example.org") == 0 &&
		ui[0].until == end);
	CHECK(strcmp(ui[1].text, "192.0.2.0/24") == 0 && ui[1].rule->is_net);
	CHECK(strcmp(ui[2].text, "198.51.100.0/24") == 0 &&
		ui[2].until == end + 6 * 3600);
	CHECK(config_ended(c, end - 1, ui, 8) == 0);
	/* only as many as asked for, the count all the same */
	CHECK(config_untils(c, end - 1, ui, 1) == 3);
	config_free(at);

	/* at the instant: both rules of that second gone, the rest kept */
	at = config_at(c, end);
	CHECK(at->vms[0].nallow == 2);
	CHECK(strcmp(policy_rule_str(&at->vms[0].allow[0], buf, sizeof(buf)),
		      "*.example.org") == 0);
	CHECK(strcmp(policy_rule_str(&at->vms[0].allow[1], buf, sizeof(buf)),
		      "198.51.100.0/24") == 0);
	CHECK(at->vms[0].ndeny == 1);
	CHECK(at->vms[0].natoms == 1); /* the cut at 444 went with it */
	CHECK(at->vms[1].nallow == 0 && at->vms[1].naddrs == 1);
	CHECK(config_next_until(at) == end + 6 * 3600);
	CHECK(config_untils(c, end, ui, 8) == 1);
	CHECK(config_ended(c, end, ui, 8) == 2);
	CHECK(config_ended(at, end, NULL, 0) == 0);
	policy_decide(&at->vms[0], "build.example.org", end, &v);
	CHECK(v.allowed && !v.ports.any && v.ports.n == 1 &&
		v.ports.v[0].hi == 443);
	verdict_finish(&v);
	/* the derived configuration is stable: deriving again changes
	 * nothing */
	{
		struct config *again = config_at(at, end + 60);

		CHECK(policy_vm_same_rules(&again->vms[0], &at->vms[0]));
		config_free(again);
	}
	config_free(at);

	/* every until past */
	at = config_at(c, end + 86400);
	CHECK(at->vms[0].nallow == 1 && config_next_until(at) == 0);
	config_free(at);
	config_free(c);
}

static void
test_until_errors(void)
{
	static const char *const bad[] = {
		"addresses: [10.1.1.1]\nallow:\n  - name: a.example\n"
		"    until: 2026-02-30T00:00:00Z\n",
		"addresses: [10.1.1.1]\nallow:\n  - name: a.example\n"
		"    until: tomorrow\n",
		"addresses: [10.1.1.1]\nallow:\n  - name: a.example\n"
		"    until: 1970-01-01T00:00:00Z\n",
		"addresses: [10.1.1.1]\nallow:\n  - name: a.example\n"
		"    until: [2026-01-01T00:00:00Z]\n",
		"addresses: [10.1.1.1]\ndeny:\n  - name: a.example\n"
		"    until: 2026-01-01T00:00:00Z\n",
	};

	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		struct vm vm;
		struct diag d = {0};

		CHECK(config_load_policy_buf(&vm, "w", "w.yaml", bad[i],
			      strlen(bad[i]), &d) < 0);
		CHECK(d.n == 1 && strncmp(d.msgs[0], "w.yaml:4:12: ", 13) == 0);
		policy_vm_finish(&vm);
		diag_finish(&d);
	}
	/* past is no error */
	{
		static const char past[] =
			"addresses: [10.1.1.1]\nallow:\n  - name: a.example\n"
			"    until: 2001-01-01T00:00:00Z\n";
		struct vm vm;
		struct diag d = {0};

		CHECK(config_load_policy_buf(&vm, "w", "w.yaml", past,
			      strlen(past), &d) == 0);
		CHECK(vm.nallow == 1 && vm.allow[0].until == 978307200);
		policy_vm_finish(&vm);
		diag_finish(&d);
	}
}

/* allow-private: on name rules only, a boolean; and the addresses no
 * name ever admits: every VM's, every listen address. */
static void
test_allow_private(void)
{
	static const char good[] =
		"addresses: [10.137.0.12, \"fd09:24ef:4179::a89:c\"]\n"
		"allow:\n  - name: \"*.corp.example\"\n"
		"    allow-private: true\n  - name: a.example\n"
		"    allow-private: false\n";
	static const char *const bad[] = {
		"addresses: [10.1.1.1]\nallow:\n  - net: 10.0.0.0/8\n"
		"    allow-private: true\n",
		"addresses: [10.1.1.1]\nallow:\n  - name: a.example\n"
		"    allow-private: yes-please\n",
		"addresses: [10.1.1.1]\ndeny:\n  - name: a.example\n"
		"    allow-private: true\n",
	};
	static const char *const want[] = {
		"w.yaml:4:20: allow-private applies to names",
		"w.yaml:4:20: expected true or false",
		"w.yaml:4:5: unknown key 'allow-private' in a deny rule",
	};
	struct listen_addr l = {.port = 53};
	struct config c = {.listen = &l, .nlisten = 1};
	struct ipaddr a;
	struct vm vm[2];
	struct diag d = {0};

	CHECK(config_load_policy_buf(&vm[0], "w", "w.yaml", good, strlen(good),
		      &d) == 0);
	CHECK(vm[0].nallow == 2 && vm[0].allow[0].allow_private &&
		!vm[0].allow[1].allow_private);
	diag_finish(&d);
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		struct vm v;

		memset(&d, 0, sizeof(d));
		CHECK(config_load_policy_buf(&v, "w", "w.yaml", bad[i],
			      strlen(bad[i]), &d) < 0);
		CHECK(d.n == 1 &&
			strncmp(d.msgs[0], want[i], strlen(want[i])) == 0);
		if (d.n > 0 && strncmp(d.msgs[0], want[i], strlen(want[i])))
			fprintf(stderr, "got: %s\n", d.msgs[0]);
		policy_vm_finish(&v);
		diag_finish(&d);
	}

	memset(&vm[1], 0, sizeof(vm[1]));
	vm[1].name = vm[1].file = "v";
	vm[1].addrs = &a;
	vm[1].naddrs = 1;
	CHECK(policy_parse_addr("192.0.2.77", &a) == 0); /* public, a VM's */
	CHECK(policy_parse_addr("10.139.1.1", &l.addr) == 0);
	c.vms = vm;
	c.nvms = 2;
	config_index_internal(&c);
	CHECK(c.ninternal == 4);
	{
		static const struct {
			const char *a;
			enum addr_class c;
		} t[] = {
			{"10.137.0.12", ADDR_INTERNAL},
			{"10.137.0.13", ADDR_PRIVATE},
			{"fd09:24ef:4179::a89:c", ADDR_INTERNAL},
			{"fd09:24ef:4179::a89:d", ADDR_PRIVATE},
			{"10.139.1.1", ADDR_INTERNAL},
			{"192.0.2.77", ADDR_INTERNAL},
			{"192.0.2.78", ADDR_PUBLIC},
			{"127.0.0.1", ADDR_RESERVED},
			{"::ffff:10.137.0.12", ADDR_RESERVED},
		};

		for (size_t i = 0; i < ARRAY_SIZE(t); i++) {
			struct ipaddr x;

			CHECK(policy_parse_addr(t[i].a, &x) == 0);
			CHECK(config_addr_class(&c, &x) == t[i].c);
		}
	}
	/* config_at keeps them */
	{
		struct config *at = config_at(&c, 0);

		CHECK(at->ninternal == 4 && at->internal != c.internal &&
			config_addr_class(at, &a) == ADDR_INTERNAL);
		config_free(at);
	}
	/* The VMs by name, through the index config_index_internal made. */
	CHECK(c.vm_order != NULL && config_vm(&c, "v") == &vm[1] &&
		config_vm(&c, vm[0].name) == &vm[0] &&
		config_vm(&c, "nosuch") == NULL);
	free(c.internal);
	free(c.vm_order);
	vm[1].addrs = NULL;
	policy_vm_finish(&vm[0]);
}

int
main(void)
{
	test_ta_line();
	test_ta_file();
	test_hostport();
	test_until();
	test_at_copies_all();
	test_capture_port();
	test_until_errors();
	test_allow_private();
	return check_done("config");
}
