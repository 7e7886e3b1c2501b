#include "config.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <libgen.h>
#include <limits.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cfgfs.h"
#include "yamltree.h"

#define DEFAULT_TRUST_ANCHOR "/usr/share/dns/root.key"

/* Where loading stands: the file being read and where to collect problems. */
struct loader {
	struct cfgfs *fs; /* where the files are read from */
	struct diag *d;
	const char *file;
	char *dir; /* for relative paths */
	struct config *conf;
	struct vm *vm;
};

typedef void (*key_fn)(struct loader *L, const struct ynode *v, void *obj);

/* One key of a mapping: its name, the node type it takes, its handler. */
struct keyspec {
	const char *key;
	enum ynode_type type;
	key_fn fn;
	bool required;
};

static void lerr(struct loader *L, const struct ynode *n, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void
lerr(struct loader *L, const struct ynode *n, const char *fmt, ...)
{
	char msg[400];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	diag_add(L->d, L->file, n ? n->line : 1, n ? n->col : 1, "%s", msg);
}

static bool
expect_type(struct loader *L, const struct ynode *n, enum ynode_type t,
	const char *what)
{
	if (n->type == t)
		return true;
	lerr(L, n, "%s must be %s, not %s", what, ynode_type_name(t),
		ynode_type_name(n->type));
	return false;
}

/* Walk a mapping with a table of keys: unknown, duplicate and mistyped keys
 * are errors, and so is a missing required key. Which keys were seen is
 * kept per entry of the table, however long the table is. */
static void
walk_map(struct loader *L, const struct ynode *map, const struct keyspec *ks,
	void *obj, const char *what)
{
	bool small[32] = {false}, *seen = small;
	size_t i, k, nkeys;

	if (!expect_type(L, map, YN_MAP, what))
		return;
	for (nkeys = 0; ks[nkeys].key != NULL; nkeys++)
		;
	if (nkeys > ARRAY_SIZE(small))
		seen = xcalloc(nkeys, sizeof(*seen));
	for (i = 0; i + 1 < map->n; i += 2) {
		const struct ynode *key = map->items[i],
				   *val = map->items[i + 1];

		if (key->type != YN_SCALAR) {
			lerr(L, key, "keys must be scalars");
			continue;
		}
		for (k = 0; ks[k].key != NULL; k++)
			if (strcmp(ks[k].key, key->value) == 0)
				break;
		if (ks[k].key == NULL) {
			lerr(L, key, "unknown key '%s' in %s", key->value,
				what);
			continue;
		}
		if (seen[k]) {
			lerr(L, key, "duplicate key '%s'", key->value);
			continue;
		}
		seen[k] = true;
		if (!expect_type(L, val, ks[k].type, key->value))
			continue;
		ks[k].fn(L, val, obj);
	}
	for (k = 0; k < nkeys; k++)
		if (ks[k].required && !seen[k])
			lerr(L, map, "missing key '%s' in %s", ks[k].key, what);
	if (seen != small)
		free(seen);
}

static bool
scalar_u32(struct loader *L, const struct ynode *n, uint32_t lo, uint32_t hi,
	uint32_t *out)
{
	unsigned long long v;
	char *end;

	if (!expect_type(L, n, YN_SCALAR, "value"))
		return false;
	errno = 0;
	v = strtoull(n->value, &end, 10);
	if (n->value[0] < '0' || n->value[0] > '9' || *end != '\0' ||
		errno != 0 || v < lo || v > hi) {
		lerr(L, n, "expected a whole number from %u to %u, not '%s'",
			lo, hi, n->value);
		return false;
	}
	*out = (uint32_t)v;
	return true;
}

static bool
scalar_s32(struct loader *L, const struct ynode *n, int32_t lo, int32_t hi,
	int32_t *out)
{
	long long v;
	const char *d;
	char *end;

	if (!expect_type(L, n, YN_SCALAR, "value"))
		return false;
	d = n->value + (n->value[0] == '-');
	errno = 0;
	v = strtoll(n->value, &end, 10);
	if (*d < '0' || *d > '9' || *end != '\0' || errno != 0 || v < lo ||
		v > hi) {
		lerr(L, n, "expected a whole number from %d to %d, not '%s'",
			lo, hi, n->value);
		return false;
	}
	*out = (int32_t)v;
	return true;
}

static bool
scalar_bool(struct loader *L, const struct ynode *n, bool *out)
{
	if (strcmp(n->value, "true") == 0 || strcmp(n->value, "yes") == 0)
		*out = true;
	else if (strcmp(n->value, "false") == 0 || strcmp(n->value, "no") == 0)
		*out = false;
	else {
		lerr(L, n, "expected true or false, not '%s'", n->value);
		return false;
	}
	return true;
}

static char *
path_resolve(struct loader *L, const char *p)
{
	if (p[0] == '/')
		return xstrdup(p);
	return xasprintf("%s/%s", L->dir, p);
}

static bool
check_readable(struct loader *L, const struct ynode *n, const char *path)
{
	bool regular;
	int err = cfgfs_access(L->fs, path, &regular);

	if (err != 0) {
		lerr(L, n, "cannot read '%s': %s", path, strerror(err));
		return false;
	}
	/* A directory is readable, and no file of settings. */
	if (!regular) {
		lerr(L, n, "cannot read '%s': not a regular file", path);
		return false;
	}
	return true;
}

/* ---- dnsfence.yaml -------------------------------------------------- */

static int
parse_port(const char *s, bool zero_ok, uint16_t *port)
{
	uint32_t v = 0;
	size_t i;

	for (i = 0; s[i] != '\0'; i++) {
		if (i == 5 || s[i] < '0' || s[i] > '9')
			return -1;
		v = v * 10 + (uint32_t)(s[i] - '0');
	}
	if (i == 0 || v > 65535 || (v == 0 && !zero_ok))
		return -1;
	*port = (uint16_t)v;
	return 0;
}

int
config_parse_hostport(const char *s, char sep, bool zero_ok,
	struct ipaddr *addr, uint16_t *port)
{
	char buf[HOSTPORT_MAX + 1];
	const char *host = buf, *pstr = NULL;
	size_t len = strnlen(s, HOSTPORT_MAX + 1);
	char *p;

	if (len == 0 || len > HOSTPORT_MAX || (sep != ':' && sep != '@'))
		return -1;
	memcpy(buf, s, len + 1);
	if (sep == ':' && buf[0] == '[') {
		/* [V6ADDR] or [V6ADDR]:PORT */
		if ((p = strchr(buf, ']')) == NULL ||
			(p[1] != '\0' && p[1] != ':'))
			return -1;
		*p = '\0';
		host = buf + 1;
		if (p[1] == ':')
			pstr = p + 2;
		if (policy_parse_addr(host, addr) < 0 ||
			addr->family != AF_INET6)
			return -1;
	} else {
		p = strchr(buf, sep);
		/* With ':', more than one of them is a bare IPv6 address. */
		if (p != NULL && sep == ':' && strchr(p + 1, ':') != NULL)
			p = NULL;
		if (p != NULL) {
			*p = '\0';
			pstr = p + 1;
		}
		if (policy_parse_addr(host, addr) < 0)
			return -1;
	}
	if (pstr != NULL && parse_port(pstr, zero_ok, port) < 0)
		return -1;
	return 0;
}

static int
parse_listen(const char *s, struct listen_addr *la)
{
	la->port = 53;
	return config_parse_hostport(s, ':', false, &la->addr, &la->port);
}

static void
k_listen(struct loader *L, const struct ynode *v, void *obj)
{
	struct config *c = obj;

	if (v->n == 0)
		lerr(L, v, "listen must name at least one address");
	for (size_t i = 0; i < v->n; i++) {
		const struct ynode *it = v->items[i];
		struct listen_addr la;

		if (!expect_type(L, it, YN_SCALAR, "a listen address"))
			continue;
		if (parse_listen(it->value, &la) < 0) {
			lerr(L, it,
				"bad listen address '%s' (ADDR, ADDR:PORT "
				"or [V6ADDR]:PORT)",
				it->value);
			continue;
		}
		*ARRAY_PUSH(c->listen, c->nlisten) = la;
	}
}

static void
k_policies(struct loader *L, const struct ynode *v, void *obj)
{
	struct config *c = obj;

	free(c->policies);
	c->policies = path_resolve(L, v->value);
}

static void
k_control(struct loader *L, const struct ynode *v, void *obj)
{
	struct config *c = obj;

	if (v->value[0] == '\0' || strlen(v->value) >= 108) {
		lerr(L, v, "control socket path must be 1-107 bytes long");
		return;
	}
	free(c->control);
	c->control = path_resolve(L, v->value);
	if (strlen(c->control) >= 108)
		lerr(L, v, "control socket path must be 1-107 bytes long");
}

/* A group's name, or its number (which need not be in the group
 * database): the name kept is the database's when there is one. */
static void
k_control_group(struct loader *L, const struct ynode *v, void *obj)
{
	struct config *c = obj;
	const char *s = v->value;
	struct group *gr = NULL;
	unsigned long long n;
	char *end;

	if (s[0] >= '0' && s[0] <= '9') {
		errno = 0;
		n = strtoull(s, &end, 10);
		if (*end != '\0' || errno != 0 || n >= INT32_MAX) {
			lerr(L, v, "bad group number '%s'", s);
			return;
		}
		gr = getgrgid((gid_t)n);
		free(c->control_group);
		c->control_group = xstrdup(gr ? gr->gr_name : s);
		c->control_gid = (gid_t)n;
		return;
	}
	if ((gr = getgrnam(s)) == NULL) {
		lerr(L, v, "unknown group '%s'", s);
		return;
	}
	free(c->control_group);
	c->control_group = xstrdup(gr->gr_name);
	c->control_gid = gr->gr_gid;
}

static bool
nft_ident_ok(const char *s)
{
	size_t i;

	if (!((s[0] >= 'a' && s[0] <= 'z') || (s[0] >= 'A' && s[0] <= 'Z')))
		return false;
	for (i = 1; s[i]; i++)
		if (!(s[i] == '_' || s[i] == '-' ||
			    (s[i] >= '0' && s[i] <= '9') ||
			    (s[i] >= 'a' && s[i] <= 'z') ||
			    (s[i] >= 'A' && s[i] <= 'Z')))
			return false;
	return i < TABLE_NAME_MAX;
}

static void
k_table(struct loader *L, const struct ynode *v, void *obj)
{
	struct config *c = obj;

	if (!nft_ident_ok(v->value)) {
		lerr(L, v,
			"bad table name '%s' (a letter, then letters, digits,"
			" '_' or '-'; %d at most)",
			v->value, TABLE_NAME_MAX - 1);
		return;
	}
	free(c->table);
	c->table = xstrdup(v->value);
}

static void
k_log_drops(struct loader *L, const struct ynode *v, void *obj)
{
	scalar_u32(L, v, 0, 10000, &((struct config *)obj)->log_drops);
}

static void
k_priority(struct loader *L, const struct ynode *v, void *obj)
{
	scalar_s32(L, v, PRIORITY_MIN, PRIORITY_MAX,
		&((struct config *)obj)->priority);
}

static void
k_nft_from_group(struct loader *L, const struct ynode *v, void *obj)
{
	struct config *c = obj;

	c->has_from_group = scalar_u32(L, v, 0, UINT32_MAX, &c->from_group);
}

static void
k_reject(struct loader *L, const struct ynode *v, void *obj)
{
	scalar_bool(L, v, &((struct config *)obj)->reject);
}

static void
k_ct_purge(struct loader *L, const struct ynode *v, void *obj)
{
	scalar_bool(L, v, &((struct config *)obj)->ct_purge);
}

static const struct keyspec nftables_keys[] = {
	{"table", YN_SCALAR, k_table, false},
	{"log-drops", YN_SCALAR, k_log_drops, false},
	{"priority", YN_SCALAR, k_priority, false},
	{"from-group", YN_SCALAR, k_nft_from_group, false},
	{"reject", YN_SCALAR, k_reject, false},
	{"conntrack-purge", YN_SCALAR, k_ct_purge, false},
	{NULL, 0, NULL, false},
};

static void
k_nftables(struct loader *L, const struct ynode *v, void *obj)
{
	walk_map(L, v, nftables_keys, obj, "nftables");
}

/* ---- trust anchors: a file without one would mean no validation ---- */

static bool
ta_space(char ch)
{
	return ch == ' ' || ch == '\t' || ch == '\r' || ch == '\n';
}

/* The next token of s[*pos..len): its start in *tok, its length returned,
 * 0 at the end of the line or at a ';' comment. Parentheses only let a
 * record go on over several lines: they separate tokens, and *paren notes
 * that one was passed. */
static size_t
ta_token(const char *s, size_t len, size_t *pos, const char **tok, bool *paren)
{
	size_t i = *pos, start;

	while (i < len && (ta_space(s[i]) || s[i] == '(' || s[i] == ')')) {
		if (s[i] == '(' || s[i] == ')')
			*paren = true;
		i++;
	}
	if (i == len || s[i] == ';') {
		*pos = len;
		return 0;
	}
	start = i;
	while (i < len && !ta_space(s[i]) && s[i] != '(' && s[i] != ')' &&
		s[i] != ';')
		i++;
	*tok = s + start;
	*pos = i;
	return i - start;
}

static bool
ta_digits(const char *t, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (t[i] < '0' || t[i] > '9')
			return false;
	return n > 0;
}

static bool
ta_word(const char *t, size_t n, const char *w)
{
	return n == strlen(w) && strncasecmp(t, w, n) == 0;
}

/* A TTL: seconds, or with BIND's units (1h30m, 2W). */
static bool
ta_is_ttl(const char *t, size_t n)
{
	if (t[0] < '0' || t[0] > '9')
		return false;
	for (size_t i = 1; i < n; i++)
		if ((t[i] < '0' || t[i] > '9') &&
			memchr("sSmMhHdDwW", t[i], 10) == NULL)
			return false;
	return true;
}

static bool
ta_is_class(const char *t, size_t n)
{
	return ta_word(t, n, "IN") || ta_word(t, n, "CH") ||
		ta_word(t, n, "HS") || ta_word(t, n, "CS") ||
		(n > 5 && strncasecmp(t, "CLASS", 5) == 0 &&
			ta_digits(t + 5, n - 5));
}

enum ta_line
config_ta_line(const char *s, size_t len)
{
	bool ttl = false, cls = false, paren = false;
	const char *t = NULL;
	size_t pos = 0, n;

	if (len > TA_LINE_MAX)
		len = TA_LINE_MAX;
	if (memchr(s, '\0', len) != NULL)
		return TA_LINE_OTHER;
	n = ta_token(s, len, &pos, &t, &paren);
	if (n == 0)
		return paren ? TA_LINE_OTHER : TA_LINE_EMPTY;
	/* The first column is the owner; an indented record has none (it
	 * is the previous one's). A '$' there is a directive. */
	if (!ta_space(s[0])) {
		if (t != s || t[0] == '$')
			return TA_LINE_OTHER;
		n = ta_token(s, len, &pos, &t, &paren);
	}
	/* TTL and class, each optional, in either order. */
	for (;; n = ta_token(s, len, &pos, &t, &paren)) {
		if (n == 0)
			return TA_LINE_OTHER;
		if (!ttl && ta_is_ttl(t, n))
			ttl = true;
		else if (!cls && ta_is_class(t, n))
			cls = true;
		else
			break;
	}
	if (!ta_word(t, n, "DS") && !ta_word(t, n, "DNSKEY"))
		return TA_LINE_OTHER;
	/* Both begin with a number (key tag; flags); a '(' may put the
	 * rdata on the next lines. */
	paren = false;
	n = ta_token(s, len, &pos, &t, &paren);
	if (n == 0)
		return paren ? TA_LINE_ANCHOR : TA_LINE_OTHER;
	return ta_digits(t, n) ? TA_LINE_ANCHOR : TA_LINE_OTHER;
}

/* Parentheses still open after the line s[0..len), depth open before. */
static int
ta_depth(const char *s, size_t len, int depth)
{
	for (size_t i = 0; i < len && s[i] != ';'; i++) {
		if (s[i] == '(')
			depth++;
		else if (s[i] == ')' && depth > 0)
			depth--;
	}
	return depth;
}

/* NULL when the trust-anchor file at path holds at least one DS or DNSKEY
 * record (libunbound checks the rest), else what is wrong, in why. Lines
 * inside parentheses go on the record before them and are not looked at
 * on their own. */
static const char *
anchor_problem(struct cfgfs *fs, const char *path, char *why, size_t size)
{
	size_t len, i, eol;
	bool found = false;
	int err, depth = 0;
	char *buf;

	if ((err = cfgfs_read(fs, path, YAML_MAX_FILE, &buf, &len)) != 0) {
		snprintf(why, size, "%s",
			err == EFBIG		? "is larger than 1 MiB"
				: err == EINVAL ? "is not a regular file"
						: "cannot be read: ");
		if (err != EFBIG && err != EINVAL)
			snprintf(why + strlen(why), size - strlen(why), "%s",
				strerror(err));
		return why;
	}
	for (i = 0; i < len && !found; i = eol + 1) {
		const char *nl = memchr(buf + i, '\n', len - i);

		eol = nl ? (size_t)(nl - buf) : len;
		if (depth == 0 &&
			config_ta_line(buf + i, eol - i) == TA_LINE_ANCHOR)
			found = true;
		depth = ta_depth(buf + i, eol - i, depth);
	}
	free(buf);
	if (found)
		return NULL;
	snprintf(why, size,
		"holds no DS or DNSKEY record: DNSSEC validation "
		"would be off");
	return why;
}

static void
k_trust_anchor(struct loader *L, const struct ynode *v, void *obj)
{
	struct config *c = obj;
	const char *why;
	char buf[200];

	free(c->trust_anchor);
	c->trust_anchor = path_resolve(L, v->value);
	c->trust_anchor_pos = (struct srcpos){v->line, v->col};
	if (check_readable(L, v, c->trust_anchor) &&
		(why = anchor_problem(L->fs, c->trust_anchor, buf,
			 sizeof(buf))) != NULL)
		lerr(L, v, "trust-anchor-file %s %s", c->trust_anchor, why);
}

static void
k_root_hints(struct loader *L, const struct ynode *v, void *obj)
{
	struct config *c = obj;

	free(c->root_hints);
	c->root_hints = path_resolve(L, v->value);
	c->root_hints_pos = (struct srcpos){v->line, v->col};
	check_readable(L, v, c->root_hints);
}

/* An upstream server as libunbound takes it: ADDR or ADDR@PORT. */
static bool
server_ok(const char *s)
{
	struct ipaddr a;
	uint16_t port;

	return config_parse_hostport(s, '@', false, &a, &port) == 0;
}

static char **
server_list(struct loader *L, const struct ynode *v, struct srcpos **pos,
	size_t *n)
{
	char **out = NULL;

	*n = 0;
	for (size_t i = 0; i < v->n; i++) {
		const struct ynode *it = v->items[i];

		if (!expect_type(L, it, YN_SCALAR, "a server address"))
			continue;
		if (!server_ok(it->value)) {
			lerr(L, it,
				"bad server address '%s' (ADDR or "
				"ADDR@PORT)",
				it->value);
			continue;
		}
		*pos = xreallocarray(*pos, *n + 1, sizeof(**pos));
		(*pos)[*n] = (struct srcpos){it->line, it->col};
		*ARRAY_PUSH(out, *n) = xstrdup(it->value);
	}
	return out;
}

static void
k_forward(struct loader *L, const struct ynode *v, void *obj)
{
	struct config *c = obj;

	c->forward = server_list(L, v, &c->forward_pos, &c->nforward);
}

static void
k_stub_zones(struct loader *L, const struct ynode *v, void *obj)
{
	struct config *c = obj;

	for (size_t i = 0; i + 1 < v->n; i += 2) {
		const struct ynode *k = v->items[i], *val = v->items[i + 1];
		char zone[NAME_MAX_LEN + 1];
		struct stub_zone *z;

		if (!expect_type(L, k, YN_SCALAR, "a zone name"))
			continue;
		if (strcmp(k->value, ".") != 0 &&
			policy_normalise_name(k->value, zone, sizeof(zone)) <
				0) {
			lerr(L, k, "malformed zone name '%s'", k->value);
			continue;
		}
		for (size_t j = 0; j < c->nstubs; j++)
			if (strcmp(c->stubs[j].zone,
				    strcmp(k->value, ".") ? zone : ".") == 0)
				lerr(L, k, "duplicate key '%s'", k->value);
		if (!expect_type(L, val, YN_SEQ, k->value))
			continue;
		if (val->n == 0) {
			lerr(L, val, "stub zone '%s' needs at least one server",
				k->value);
			continue;
		}
		z = ARRAY_PUSH(c->stubs, c->nstubs);
		z->zone = xstrdup(strcmp(k->value, ".") ? zone : ".");
		z->addrs = server_list(L, val, &z->addr_pos, &z->naddrs);
	}
}

static void
k_options(struct loader *L, const struct ynode *v, void *obj)
{
	struct config *c = obj;

	for (size_t i = 0; i + 1 < v->n; i += 2) {
		const struct ynode *k = v->items[i], *val = v->items[i + 1];
		struct kv *kv;

		if (!expect_type(L, k, YN_SCALAR, "an option name") ||
			!expect_type(L, val, YN_SCALAR, k->value))
			continue;
		for (size_t j = 0; j < c->noptions; j++)
			if (strcmp(c->options[j].key, k->value) == 0)
				lerr(L, k, "duplicate key '%s'", k->value);
		kv = ARRAY_PUSH(c->options, c->noptions);
		kv->key = xstrdup(k->value);
		kv->value = xstrdup(val->value);
		kv->line = k->line;
		kv->col = k->col;
	}
}

static const struct keyspec resolver_keys[] = {
	{"trust-anchor-file", YN_SCALAR, k_trust_anchor, false},
	{"root-hints", YN_SCALAR, k_root_hints, false},
	{"forward", YN_SEQ, k_forward, false},
	{"stub-zones", YN_MAP, k_stub_zones, false},
	{"options", YN_MAP, k_options, false},
	{NULL, 0, NULL, false},
};

static void
k_resolver(struct loader *L, const struct ynode *v, void *obj)
{
	walk_map(L, v, resolver_keys, obj, "resolver");
}

#define U32_KEY(fn, field, lo, hi) \
	static void fn(struct loader *L, const struct ynode *v, void *obj) \
	{ \
		scalar_u32(L, v, lo, hi, &((struct config *)obj)->field); \
	}

U32_KEY(k_ttl_min, ttl.min, 0, 604800)
U32_KEY(k_ttl_max, ttl.max, 1, 604800)
U32_KEY(k_ttl_grace, ttl.grace, 0, 3600)
U32_KEY(k_set_size, limits.set_size, 16, 1000000)
U32_KEY(k_addrs_per_answer, limits.addrs_per_answer, 1, 4096)
U32_KEY(k_inflight, limits.inflight_per_vm, 1, 100000)
U32_KEY(k_upstream, limits.upstream, 1, 100000)
U32_KEY(k_query_rate, limits.query_rate, 1, 1000000)
U32_KEY(k_query_burst, limits.query_burst, 1, 1000000)
U32_KEY(k_tcp_clients, limits.tcp_clients, 1, 100000)
U32_KEY(k_tcp_per_vm, limits.tcp_per_vm, 1, 100000)
U32_KEY(k_tcp_idle, limits.tcp_idle, 1, 3600)

static const struct keyspec ttl_keys[] = {
	{"min", YN_SCALAR, k_ttl_min, false},
	{"max", YN_SCALAR, k_ttl_max, false},
	{"grace", YN_SCALAR, k_ttl_grace, false},
	{NULL, 0, NULL, false},
};

static void
k_ttl(struct loader *L, const struct ynode *v, void *obj)
{
	struct config *c = obj;

	walk_map(L, v, ttl_keys, obj, "ttl");
	if (c->ttl.min > c->ttl.max)
		lerr(L, v, "ttl: min (%u) is above max (%u)", c->ttl.min,
			c->ttl.max);
}

static const struct keyspec limits_keys[] = {
	{"set-size", YN_SCALAR, k_set_size, false},
	{"addresses-per-answer", YN_SCALAR, k_addrs_per_answer, false},
	{"queries-per-vm", YN_SCALAR, k_inflight, false},
	{"upstream-queries", YN_SCALAR, k_upstream, false},
	{"query-rate", YN_SCALAR, k_query_rate, false},
	{"query-burst", YN_SCALAR, k_query_burst, false},
	{"tcp-clients", YN_SCALAR, k_tcp_clients, false},
	{"tcp-clients-per-vm", YN_SCALAR, k_tcp_per_vm, false},
	{"tcp-idle", YN_SCALAR, k_tcp_idle, false},
	{NULL, 0, NULL, false},
};

static void
k_limits(struct loader *L, const struct ynode *v, void *obj)
{
	walk_map(L, v, limits_keys, obj, "limits");
}

static void
k_freebind(struct loader *L, const struct ynode *v, void *obj)
{
	scalar_bool(L, v, &((struct config *)obj)->freebind);
}

static void
k_cap_from_group(struct loader *L, const struct ynode *v, void *obj)
{
	struct capture *cp = &((struct config *)obj)->capture;

	cp->has_group = scalar_u32(L, v, 0, UINT32_MAX, &cp->group);
}

static void
k_cap_to(struct loader *L, const struct ynode *v, void *obj)
{
	struct capture *cp = &((struct config *)obj)->capture;

	for (size_t i = 0; i < v->n; i++) {
		const struct ynode *it = v->items[i];
		struct ipaddr a;
		size_t j;

		if (!expect_type(L, it, YN_SCALAR, "an address"))
			continue;
		if (policy_parse_addr(it->value, &a) < 0) {
			lerr(L, it, "bad address '%s' (an address, no port)",
				it->value);
			continue;
		}
		for (j = 0; j < cp->nto; j++)
			if (memcmp(&cp->to[j], &a, sizeof(a)) == 0)
				break;
		if (j < cp->nto) {
			lerr(L, it, "duplicate address '%s'", it->value);
			continue;
		}
		cp->to_pos = xreallocarray(cp->to_pos, cp->nto + 1,
			sizeof(*cp->to_pos));
		cp->to_pos[cp->nto] = (struct srcpos){it->line, it->col};
		*ARRAY_PUSH(cp->to, cp->nto) = a;
	}
}

static void
k_cap_any(struct loader *L, const struct ynode *v, void *obj)
{
	scalar_bool(L, v, &((struct config *)obj)->capture.any);
}

static const struct keyspec capture_keys[] = {
	{"from-group", YN_SCALAR, k_cap_from_group, false},
	{"to", YN_SEQ, k_cap_to, false},
	{"any", YN_SCALAR, k_cap_any, false},
	{NULL, 0, NULL, false},
};

static void
k_capture(struct loader *L, const struct ynode *v, void *obj)
{
	struct config *c = obj;
	size_t before = L->d->n;

	c->capture.on = true;
	walk_map(L, v, capture_keys, obj, "capture");
	if (L->d->n == before && c->capture.nto == 0 && !c->capture.any)
		lerr(L, v,
			"capture needs addresses in 'to', or 'any: true' "
			"(leave capture out to redirect nothing)");
}

uint16_t
config_capture_port(const struct config *c, int family)
{
	for (size_t i = 0; i < c->nlisten; i++)
		if (c->listen[i].addr.family == family)
			return c->listen[i].port;
	return 0;
}

/* Once listen is known: every address captured must have a listen
 * address of its family to be redirected to. */
static void
check_capture(struct loader *L, struct config *c)
{
	char buf[INET6_ADDRSTRLEN];

	for (size_t i = 0; i < c->capture.nto; i++) {
		const struct ipaddr *a = &c->capture.to[i];

		if (config_capture_port(c, a->family) != 0)
			continue;
		diag_add(L->d, L->file, c->capture.to_pos[i].line,
			c->capture.to_pos[i].col,
			"capture: no listen address is IPv%d, so DNS to %s "
			"cannot be redirected to dnsfenced",
			a->family == AF_INET ? 4 : 6,
			policy_addr_str(a, buf, sizeof(buf)));
	}
}

static const struct keyspec config_keys[] = {
	{"listen", YN_SEQ, k_listen, true},
	{"freebind", YN_SCALAR, k_freebind, false},
	{"capture", YN_MAP, k_capture, false},
	{"policies", YN_SCALAR, k_policies, false},
	{"control", YN_SCALAR, k_control, false},
	{"control-group", YN_SCALAR, k_control_group, false},
	{"nftables", YN_MAP, k_nftables, false},
	{"resolver", YN_MAP, k_resolver, false},
	{"ttl", YN_MAP, k_ttl, false},
	{"limits", YN_MAP, k_limits, false},
	{NULL, 0, NULL, false},
};

/* ---- policies -------------------------------------------------------- */

static void
k_addresses(struct loader *L, const struct ynode *v, void *obj)
{
	struct vm *vm = obj;

	if (v->n == 0)
		lerr(L, v, "addresses must name at least one address");
	for (size_t i = 0; i < v->n; i++) {
		const struct ynode *it = v->items[i];
		struct ipaddr a;

		if (!expect_type(L, it, YN_SCALAR, "an address"))
			continue;
		if (policy_parse_addr(it->value, &a) < 0) {
			lerr(L, it, "bad address '%s'", it->value);
			continue;
		}
		size_t j;

		for (j = 0; j < vm->naddrs; j++)
			if (memcmp(&vm->addrs[j], &a, sizeof(a)) == 0)
				break;
		if (j < vm->naddrs) {
			lerr(L, it, "duplicate address '%s'", it->value);
			continue;
		}
		vm->addr_pos = xreallocarray(vm->addr_pos, vm->naddrs + 1,
			sizeof(*vm->addr_pos));
		vm->addr_pos[vm->naddrs] = (struct srcpos){it->line, it->col};
		*ARRAY_PUSH(vm->addrs, vm->naddrs) = a;
	}
}

static void
k_interface(struct loader *L, const struct ynode *v, void *obj)
{
	struct vm *vm = obj;

	if (!policy_ifname_valid(v->value)) {
		lerr(L, v, "bad interface name '%s'", v->value);
		return;
	}
	vm->iface = xstrdup(v->value);
}

static void
k_default(struct loader *L, const struct ynode *v, void *obj)
{
	struct vm *vm = obj;

	if (strcmp(v->value, "allow") == 0)
		vm->default_allow = true;
	else if (strcmp(v->value, "deny") != 0)
		lerr(L, v, "default must be 'deny' or 'allow', not '%s'",
			v->value);
}

static void
k_unlisted(struct loader *L, const struct ynode *v, void *obj)
{
	struct vm *vm = obj;

	if (strcmp(v->value, "nxdomain") == 0)
		vm->unlisted = UNLISTED_NXDOMAIN;
	else if (strcmp(v->value, "refused") != 0)
		lerr(L, v, "unlisted must be 'refused' or 'nxdomain', not '%s'",
			v->value);
}

static void
k_mode(struct loader *L, const struct ynode *v, void *obj)
{
	struct vm *vm = obj;

	if (strcmp(v->value, "learn") == 0)
		vm->learn = true;
	else if (strcmp(v->value, "enforce") != 0)
		lerr(L, v, "mode must be 'enforce' or 'learn', not '%s'",
			v->value);
}

static void
k_dns(struct loader *L, const struct ynode *v, void *obj)
{
	struct vm *vm = obj;

	if (strcmp(v->value, "deny") == 0)
		vm->dns_deny = true;
	else if (strcmp(v->value, "allow") != 0)
		lerr(L, v, "dns must be 'allow' or 'deny', not '%s'", v->value);
}

/* A rule being read: the fields seen, checked once the mapping is done. */
struct rule_ctx {
	struct rule r;
	const struct ynode *name, *net, *ports, *dnssec, *until, *private;
};

static void
r_name(struct loader *L, const struct ynode *v, void *obj)
{
	struct rule_ctx *rc = obj;
	const char *err;

	rc->name = v;
	if (policy_parse_name(v->value, &rc->r.pat, &err) < 0)
		lerr(L, v, "%s: '%s'", err, v->value);
}

static void
r_net(struct loader *L, const struct ynode *v, void *obj)
{
	struct rule_ctx *rc = obj;
	const char *err;

	rc->net = v;
	rc->r.is_net = true;
	if (policy_parse_prefix(v->value, &rc->r.net, &err) < 0)
		lerr(L, v, "%s: '%s'", err, v->value);
}

static void
r_ports(struct loader *L, const struct ynode *v, void *obj)
{
	struct rule_ctx *rc = obj;
	struct ports *ps = &rc->r.ports;

	rc->ports = v;
	if (v->n == 0)
		lerr(L, v,
			"ports is empty: leave it out to allow every "
			"protocol and port");
	for (size_t i = 0; i < v->n; i++) {
		const struct ynode *it = v->items[i];
		struct portspec p;
		const char *err;

		if (!expect_type(L, it, YN_SCALAR, "a port"))
			continue;
		if (policy_parse_port(it->value, &p, &err) < 0) {
			lerr(L, it, "%s: '%s'", err, it->value);
			continue;
		}
		if (p.proto == IPPROTO_ICMP)
			ps->icmp = true;
		else
			*ARRAY_PUSH(ps->v, ps->n) = p;
	}
	policy_ports_normalise(ps);
}

static void
r_dnssec(struct loader *L, const struct ynode *v, void *obj)
{
	struct rule_ctx *rc = obj;

	rc->dnssec = v;
	scalar_bool(L, v, &rc->r.require_dnssec);
}

static void
r_private(struct loader *L, const struct ynode *v, void *obj)
{
	struct rule_ctx *rc = obj;

	rc->private = v;
	scalar_bool(L, v, &rc->r.allow_private);
}

/* A time already past is no error: a policy written for a window that
 * has closed is still a valid policy (the rule admits nothing, and -n and
 * the daemon say so). Only the epoch itself and before are refused: 0
 * means "no until". */
static void
r_until(struct loader *L, const struct ynode *v, void *obj)
{
	struct rule_ctx *rc = obj;
	const char *err;

	rc->until = v;
	if (policy_parse_time(v->value, &rc->r.until, &err) < 0)
		lerr(L, v, "%s: '%s'", err, v->value);
	else if (rc->r.until <= 0)
		lerr(L, v,
			"bad time: until must be after "
			"1970-01-01T00:00:00Z: '%s'",
			v->value);
}

static void
r_until_deny(struct loader *L, const struct ynode *v, void *obj)
{
	(void)obj;
	lerr(L, v,
		"until applies to allow rules; a deny rule stays until it "
		"is removed");
}

static const struct keyspec allow_keys[] = {
	{"name", YN_SCALAR, r_name, false},
	{"net", YN_SCALAR, r_net, false},
	{"ports", YN_SEQ, r_ports, false},
	{"require-dnssec", YN_SCALAR, r_dnssec, false},
	{"until", YN_SCALAR, r_until, false},
	{"allow-private", YN_SCALAR, r_private, false},
	{NULL, 0, NULL, false},
};

static const struct keyspec deny_keys[] = {
	{"name", YN_SCALAR, r_name, true},
	{"until", YN_SCALAR, r_until_deny, false},
	{NULL, 0, NULL, false},
};

static void
rule_list(struct loader *L, const struct ynode *v, bool allow)
{
	struct vm *vm = L->vm;

	for (size_t i = 0; i < v->n; i++) {
		const struct ynode *it = v->items[i];
		struct rule_ctx rc = {.r = {.line = it->line, .col = it->col}};
		size_t before = L->d->n;

		rc.r.ports.any = true;
		walk_map(L, it, allow ? allow_keys : deny_keys, &rc,
			allow ? "an allow rule" : "a deny rule");
		if (rc.ports != NULL)
			rc.r.ports.any = false;
		if (it->type == YN_MAP && allow && !rc.name == !rc.net)
			lerr(L, it,
				"an allow rule needs exactly one of 'name' "
				"or 'net'");
		if (rc.net && rc.dnssec)
			lerr(L, rc.dnssec,
				"require-dnssec applies to names, "
				"not to 'net' rules");
		if (rc.net && rc.private)
			lerr(L, rc.private,
				"allow-private applies to names, not to "
				"'net' rules (a net rule admits its prefix, "
				"private or not)");
		if (L->d->n != before) {
			policy_ports_finish(&rc.r.ports);
			continue;
		}
		if (allow)
			*ARRAY_PUSH(vm->allow, vm->nallow) = rc.r;
		else
			*ARRAY_PUSH(vm->deny, vm->ndeny) = rc.r;
	}
}

static void
k_allow(struct loader *L, const struct ynode *v, void *obj)
{
	rule_list(L, v, true);
}

static void
k_deny(struct loader *L, const struct ynode *v, void *obj)
{
	rule_list(L, v, false);
}

static const struct keyspec policy_keys[] = {
	{"addresses", YN_SEQ, k_addresses, true},
	{"interface", YN_SCALAR, k_interface, false},
	{"default", YN_SCALAR, k_default, false},
	{"unlisted", YN_SCALAR, k_unlisted, false},
	{"mode", YN_SCALAR, k_mode, false},
	{"dns", YN_SCALAR, k_dns, false},
	{"allow", YN_SEQ, k_allow, false},
	{"deny", YN_SEQ, k_deny, false},
	{NULL, 0, NULL, false},
};

static void
load_policy_doc(struct loader *L, struct ydoc *doc)
{
	static const struct ynode empty = {.type = YN_MAP, .line = 1, .col = 1};

	walk_map(L, doc->root ? doc->root : &empty, policy_keys, L->vm,
		"the policy");
	policy_vm_atoms(L->vm);
	policy_vm_index(L->vm);
}

int
config_load_policy_buf(struct vm *vm, const char *name, const char *file,
	const char *buf, size_t len, struct diag *d)
{
	struct loader L = {.d = d, .file = file, .dir = ".", .vm = vm};
	struct ydoc doc;
	size_t before = d->n;

	memset(vm, 0, sizeof(*vm));
	vm->name = xstrdup(name);
	vm->file = xstrdup(file);
	if (ydoc_parse(&doc, file, buf, len, d) == 0)
		load_policy_doc(&L, &doc);
	ydoc_finish(&doc);
	return d->n == before ? 0 : -1;
}

/* Editor and package-manager leftovers are not policies; anything else
 * that is not <vm>.yaml is an error, since it is probably a typo. */
static bool
ignorable(const char *f)
{
	static const char *const tails[] = {"~", ".dpkg-old", ".dpkg-new",
		".dpkg-dist", ".rpmnew", ".rpmsave", ".swp", ".bak"};
	size_t fl = strlen(f);

	if (f[0] == '.')
		return true;
	for (size_t i = 0; i < ARRAY_SIZE(tails); i++) {
		size_t tl = strlen(tails[i]);

		if (fl >= tl && strcmp(f + fl - tl, tails[i]) == 0)
			return true;
	}
	return false;
}

static int
name_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Where each address was first claimed, to name the other VM. */
struct claim {
	struct ipaddr a;
	size_t vm, idx;
};

static void
check_claims(struct config *c, struct diag *d)
{
	struct claim *cl = NULL;
	size_t ncl = 0;
	char buf[INET6_ADDRSTRLEN];

	for (size_t i = 0; i < c->nvms; i++) {
		for (size_t j = 0; j < c->vms[i].naddrs; j++) {
			const struct ipaddr *a = &c->vms[i].addrs[j];
			size_t k;

			for (k = 0; k < ncl; k++)
				if (cl[k].vm != i &&
					memcmp(&cl[k].a, a, sizeof(*a)) == 0)
					break;
			if (k < ncl) {
				const struct vm *o = &c->vms[cl[k].vm];

				diag_add(d, c->vms[i].file,
					c->vms[i].addr_pos[j].line,
					c->vms[i].addr_pos[j].col,
					"address %s is already claimed by VM "
					"'%s' (%s:%d:%d)",
					policy_addr_str(a, buf, sizeof(buf)),
					o->name, o->file,
					o->addr_pos[cl[k].idx].line,
					o->addr_pos[cl[k].idx].col);
				continue;
			}
			*ARRAY_PUSH(cl, ncl) =
				(struct claim){.a = *a, .vm = i, .idx = j};
		}
	}
	free(cl);
}

static void
load_policies(struct cfgfs *fs, struct config *c, struct diag *d)
{
	char **all = NULL, **names = NULL;
	size_t nall = 0, n = 0;
	int err;

	if ((err = cfgfs_list(fs, c->policies, &all, &nall)) != 0) {
		diag_add(d, c->policies, 0, 0,
			"cannot open the policies "
			"directory: %s",
			strerror(err));
		return;
	}
	for (size_t i = 0; i < nall; i++) {
		if (!ignorable(all[i]))
			*ARRAY_PUSH(names, n) = all[i];
		else
			free(all[i]);
	}
	free(all);
	if (n > 0)
		qsort(names, n, sizeof(*names), name_cmp);
	for (size_t i = 0; i < n; i++) {
		char *path = xasprintf("%s/%s", c->policies, names[i]);
		size_t fl = strlen(names[i]);
		struct loader L = {.fs = fs, .d = d, .file = path, .conf = c};
		struct ydoc doc;
		struct vm *vm;

		if (fl <= 5 || strcmp(names[i] + fl - 5, ".yaml") != 0) {
			diag_add(d, path, 0, 0,
				"not a policy: policy files "
				"are named <vm-name>.yaml");
			free(path);
			continue;
		}
		names[i][fl - 5] = '\0';
		if (!policy_vm_name_valid(names[i])) {
			diag_add(d, path, 0, 0,
				"'%s' cannot name a VM: a "
				"letter, then letters, digits, '_' or '-', %d "
				"at most",
				names[i], VM_NAME_MAX);
			free(path);
			continue;
		}
		vm = ARRAY_PUSH(c->vms, c->nvms);
		vm->name = xstrdup(names[i]);
		vm->file = path;
		L.vm = vm;
		L.dir = xstrdup(c->policies);
		if (ydoc_load_fs(&doc, fs, path, d) == 0)
			load_policy_doc(&L, &doc);
		ydoc_finish(&doc);
		free(L.dir);
	}
	for (size_t i = 0; i < n; i++)
		free(names[i]);
	free(names);
	check_claims(c, d);
}

static void
config_defaults(struct config *c, const char *dir)
{
	struct group *gr;

	c->policies = xasprintf("%s/vms", dir);
	c->control = xstrdup(DEFAULT_CONTROL);
	gr = getgrgid(0);
	c->control_group = xstrdup(gr ? gr->gr_name : "0");
	c->control_gid = 0;
	c->table = xstrdup("dnsfence");
	c->priority = DEFAULT_PRIORITY;
	c->ttl = (struct ttl_conf){.min = 30, .max = 86400, .grace = 10};
	c->limits = (struct limits){
		.set_size = 65536,
		.addrs_per_answer = 256,
		.inflight_per_vm = 256,
		.upstream = 1000,
		.query_rate = 200,
		.query_burst = 1000,
		.tcp_clients = 64,
		.tcp_per_vm = 16,
		.tcp_idle = 10,
	};
}

struct config *
config_load(const char *path, struct diag *d)
{
	struct cfgfs *fs = cfgfs_real();
	struct config *c = config_load_fs(fs, path, d);

	cfgfs_free(fs);
	return c;
}

struct config *
config_load_fs(struct cfgfs *fs, const char *path, struct diag *d)
{
	struct config *c = xcalloc(1, sizeof(*c));
	struct loader L = {.fs = fs, .d = d, .file = path, .conf = c};
	char *tmp = xstrdup(path), *abs;
	size_t before = d->n;
	struct ydoc doc;
	bool regular;
	int err;

	abs = cfgfs_realpath(fs, path);
	c->file = abs ? abs : xstrdup(path);
	c->conf_file = xstrdup(path);
	L.dir = xstrdup(dirname(tmp));
	free(tmp);
	config_defaults(c, L.dir);
	if (ydoc_load_fs(&doc, fs, path, d) == 0) {
		static const struct ynode empty = {.type = YN_MAP,
			.line = 1,
			.col = 1};
		const char *why;
		char buf[200];

		walk_map(&L, doc.root ? doc.root : &empty, config_keys, c,
			"the configuration");
		check_capture(&L, c);
		if (c->trust_anchor == NULL) {
			c->trust_anchor = xstrdup(DEFAULT_TRUST_ANCHOR);
			if ((err = cfgfs_access(fs, c->trust_anchor,
				     &regular)) != 0)
				diag_add(d, path, 0, 0,
					"cannot read the "
					"default trust anchor %s: %s (set "
					"resolver: trust-anchor-file)",
					c->trust_anchor, strerror(err));
			else if ((why = anchor_problem(fs, c->trust_anchor, buf,
					  sizeof(buf))) != NULL)
				diag_add(d, path, 0, 0,
					"the default trust "
					"anchor %s %s (set resolver: "
					"trust-anchor-file)",
					c->trust_anchor, why);
		}
	}
	ydoc_finish(&doc);
	free(L.dir);
	if (d->n == before)
		load_policies(fs, c, d);
	if (d->n != before) {
		config_free(c);
		return NULL;
	}
	config_index_internal(c);
	return c;
}

static int
ipaddr_qcmp(const void *a, const void *b)
{
	return policy_addr_cmp(a, b);
}

static int
order_cmp(const void *a, const void *b, void *vms)
{
	const struct vm *v = vms;

	return strcmp(v[*(const size_t *)a].name, v[*(const size_t *)b].name);
}

static void
index_names(struct config *c)
{
	free(c->vm_order);
	c->vm_order = xcalloc(c->nvms + 1, sizeof(*c->vm_order));
	for (size_t i = 0; i < c->nvms; i++)
		c->vm_order[i] = i;
	qsort_r(c->vm_order, c->nvms, sizeof(*c->vm_order), order_cmp, c->vms);
}

const struct vm *
config_vm(const struct config *c, const char *name)
{
	size_t lo = 0, hi = c->nvms;

	if (c->vm_order == NULL)
		return policy_vm_by_name(c->vms, c->nvms, name);
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		const struct vm *v = &c->vms[c->vm_order[mid]];
		int r = strcmp(name, v->name);

		if (r == 0)
			return v;
		if (r < 0)
			hi = mid;
		else
			lo = mid + 1;
	}
	return NULL;
}

void
config_index_internal(struct config *c)
{
	size_t n = c->nlisten, o = 0;

	index_names(c);
	for (size_t i = 0; i < c->nvms; i++)
		n += c->vms[i].naddrs;
	free(c->internal);
	c->internal = xcalloc(n + 1, sizeof(*c->internal));
	for (size_t i = 0; i < c->nlisten; i++)
		c->internal[o++] = c->listen[i].addr;
	for (size_t i = 0; i < c->nvms; i++)
		for (size_t j = 0; j < c->vms[i].naddrs; j++)
			c->internal[o++] = c->vms[i].addrs[j];
	if (o > 0)
		qsort(c->internal, o, sizeof(*c->internal), ipaddr_qcmp);
	c->ninternal = 0;
	for (size_t i = 0; i < o; i++)
		if (c->ninternal == 0 ||
			policy_addr_cmp(&c->internal[c->ninternal - 1],
				&c->internal[i]) != 0)
			c->internal[c->ninternal++] = c->internal[i];
}

enum addr_class
config_addr_class(const struct config *c, const struct ipaddr *a)
{
	struct ipaddr v4;

	if (c->ninternal > 0 &&
		bsearch(a, c->internal, c->ninternal, sizeof(*c->internal),
			ipaddr_qcmp) != NULL)
		return ADDR_INTERNAL;
	/* A VM's v4 address inside a NAT64 or 6to4 one is that VM's. */
	if (policy_addr_embedded_v4(a, &v4))
		return config_addr_class(c, &v4);
	return policy_addr_class(a);
}

char *
config_control_path(const char *path, struct diag *d)
{
	struct ydoc doc;
	char *tmp, *out = NULL;
	const struct ynode *r;

	if (ydoc_load(&doc, path, d) < 0) {
		ydoc_finish(&doc); /* what it parsed before the error */
		return NULL;
	}
	r = doc.root;
	for (size_t i = 0; r != NULL && r->type == YN_MAP && i + 1 < r->n;
		i += 2) {
		const struct ynode *k = r->items[i], *v = r->items[i + 1];

		if (k->type != YN_SCALAR || strcmp(k->value, "control") != 0)
			continue;
		if (v->type != YN_SCALAR || v->value[0] == '\0') {
			diag_add(d, path, v->line, v->col,
				"control: expected a socket path");
			break;
		}
		if (v->value[0] == '/') {
			out = xstrdup(v->value);
		} else {
			tmp = xstrdup(path);
			out = xasprintf("%s/%s", dirname(tmp), v->value);
			free(tmp);
		}
		break;
	}
	if (out == NULL && d->n == 0)
		out = xstrdup(DEFAULT_CONTROL);
	ydoc_finish(&doc);
	return out;
}

/* ---- dump ---------------------------------------------------------- */

static void
dump_ports(const struct ports *ps, FILE *out)
{
	char buf[32];
	const char *sep = "";

	fputs("[", out);
	if (ps->icmp) {
		fputs("icmp", out);
		sep = ", ";
	}
	for (size_t i = 0; i < ps->n; i++) {
		fprintf(out, "%s%s", sep,
			policy_portspec_str(&ps->v[i], buf, sizeof(buf)));
		sep = ", ";
	}
	fputs("]", out);
}

static void
dump_rule(const struct rule *r, bool allow, FILE *out)
{
	char buf[64];

	if (r->is_net)
		fprintf(out, "      - net: %s\n",
			policy_prefix_str(&r->net, buf, sizeof(buf)));
	else if (r->pat.kind == MATCH_ALL)
		fputs("      - name: \"*\"\n", out);
	else
		fprintf(out, "      - name: %s%s%s\n",
			r->pat.kind == MATCH_SUFFIX ? "\"*." : "", r->pat.name,
			r->pat.kind == MATCH_SUFFIX ? "\"" : "");
	if (!allow)
		return;
	if (!r->ports.any) {
		fputs("        ports: ", out);
		dump_ports(&r->ports, out);
		fputs("\n", out);
	}
	if (r->require_dnssec)
		fputs("        require-dnssec: true\n", out);
	if (r->allow_private)
		fputs("        allow-private: true\n", out);
	if (r->until != 0)
		fprintf(out, "        until: %s%s\n",
			policy_time_str(r->until, buf, sizeof(buf)),
			policy_rule_ended(r, util_wall_s())
				? "  # ended: this rule admits nothing"
				: "");
}

static void
dump_vm(const struct vm *vm, FILE *out)
{
	char buf[INET6_ADDRSTRLEN];

	fprintf(out, "  %s:\n    file: %s\n    addresses: [", vm->name,
		vm->file);
	for (size_t i = 0; i < vm->naddrs; i++)
		fprintf(out, "%s\"%s\"", i ? ", " : "",
			policy_addr_str(&vm->addrs[i], buf, sizeof(buf)));
	fputs("]\n", out);
	if (vm->iface)
		fprintf(out, "    interface: \"%s\"\n", vm->iface);
	fprintf(out,
		"    default: %s\n    unlisted: %s\n    mode: %s\n"
		"    dns: %s\n",
		vm->default_allow ? "allow" : "deny",
		vm->unlisted == UNLISTED_NXDOMAIN ? "nxdomain" : "refused",
		vm->learn ? "learn" : "enforce",
		vm->dns_deny ? "deny" : "allow");
	fprintf(out, "    allow:%s\n", vm->nallow ? "" : " []");
	for (size_t i = 0; i < vm->nallow; i++)
		dump_rule(&vm->allow[i], true, out);
	fprintf(out, "    deny:%s\n", vm->ndeny ? "" : " []");
	for (size_t i = 0; i < vm->ndeny; i++)
		dump_rule(&vm->deny[i], false, out);
}

static void
dump_list(const char *key, char **v, size_t n, FILE *out)
{
	fprintf(out, "%s[", key);
	for (size_t i = 0; i < n; i++)
		fprintf(out, "%s\"%s\"", i ? ", " : "", v[i]);
	fputs("]\n", out);
}

void
config_dump(const struct config *c, FILE *out)
{
	char buf[INET6_ADDRSTRLEN];

	fprintf(out, "# %s, normalised\nlisten:\n", c->file);
	for (size_t i = 0; i < c->nlisten; i++) {
		const struct listen_addr *l = &c->listen[i];
		bool v6 = l->addr.family == AF_INET6;

		fprintf(out, "  - \"%s%s%s:%u\"\n", v6 ? "[" : "",
			policy_addr_str(&l->addr, buf, sizeof(buf)),
			v6 ? "]" : "", l->port);
	}
	fprintf(out, "freebind: %s\n", c->freebind ? "true" : "false");
	if (c->capture.on) {
		fputs("capture:\n", out);
		if (c->capture.has_group)
			fprintf(out, "  from-group: %u\n", c->capture.group);
		fputs("  to: [", out);
		for (size_t i = 0; i < c->capture.nto; i++)
			fprintf(out, "%s\"%s\"", i ? ", " : "",
				policy_addr_str(&c->capture.to[i], buf,
					sizeof(buf)));
		fprintf(out, "]\n  any: %s\n",
			c->capture.any ? "true" : "false");
	}
	fprintf(out, "policies: %s\ncontrol: %s\ncontrol-group: %s\n",
		c->policies, c->control, c->control_group);
	fprintf(out, "nftables:\n  table: %s\n  log-drops: %u\n", c->table,
		c->log_drops);
	fprintf(out, "  priority: %d\n", c->priority);
	if (c->has_from_group)
		fprintf(out, "  from-group: %u\n", c->from_group);
	fprintf(out, "  reject: %s\n", c->reject ? "true" : "false");
	fprintf(out, "  conntrack-purge: %s\n", c->ct_purge ? "true" : "false");
	fprintf(out, "resolver:\n  trust-anchor-file: %s\n", c->trust_anchor);
	if (c->root_hints)
		fprintf(out, "  root-hints: %s\n", c->root_hints);
	dump_list("  forward: ", c->forward, c->nforward, out);
	fprintf(out, "  stub-zones:%s\n", c->nstubs ? "" : " {}");
	for (size_t i = 0; i < c->nstubs; i++) {
		fprintf(out, "    \"%s\": ", c->stubs[i].zone);
		dump_list("", c->stubs[i].addrs, c->stubs[i].naddrs, out);
	}
	fprintf(out, "  options:%s\n", c->noptions ? "" : " {}");
	for (size_t i = 0; i < c->noptions; i++)
		fprintf(out, "    \"%s\": \"%s\"\n", c->options[i].key,
			c->options[i].value);
	fprintf(out, "ttl:\n  min: %u\n  max: %u\n  grace: %u\n", c->ttl.min,
		c->ttl.max, c->ttl.grace);
	fprintf(out,
		"limits:\n  set-size: %u\n  addresses-per-answer: %u\n"
		"  queries-per-vm: %u\n  upstream-queries: %u\n"
		"  query-rate: %u\n  query-burst: %u\n  tcp-clients: %u\n"
		"  tcp-clients-per-vm: %u\n  tcp-idle: %u\n",
		c->limits.set_size, c->limits.addrs_per_answer,
		c->limits.inflight_per_vm, c->limits.upstream,
		c->limits.query_rate, c->limits.query_burst,
		c->limits.tcp_clients, c->limits.tcp_per_vm,
		c->limits.tcp_idle);
	fprintf(out, "vms:%s\n", c->nvms ? "" : " {}");
	for (size_t i = 0; i < c->nvms; i++)
		dump_vm(&c->vms[i], out);
}

static void
free_strv(char **v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(v[i]);
	free(v);
}

void
config_free(struct config *c)
{
	if (c == NULL)
		return;
	for (size_t i = 0; i < c->nvms; i++)
		policy_vm_finish(&c->vms[i]);
	free(c->vms);
	for (size_t i = 0; i < c->nstubs; i++) {
		free(c->stubs[i].zone);
		free_strv(c->stubs[i].addrs, c->stubs[i].naddrs);
		free(c->stubs[i].addr_pos);
	}
	free(c->stubs);
	for (size_t i = 0; i < c->noptions; i++) {
		free(c->options[i].key);
		free(c->options[i].value);
	}
	free(c->options);
	free_strv(c->forward, c->nforward);
	free(c->forward_pos);
	free(c->listen);
	free(c->internal);
	free(c->vm_order);
	free(c->capture.to);
	free(c->capture.to_pos);
	free(c->file);
	free(c->conf_file);
	free(c->policies);
	free(c->control);
	free(c->control_group);
	free(c->table);
	free(c->trust_anchor);
	free(c->root_hints);
	free(c);
}

/* ---- until: the configuration in force at a given second ------------ */

static char *
xstrdup_null(const char *s)
{
	return s ? xstrdup(s) : NULL;
}

static void *
xmemdup(const void *p, size_t n, size_t size)
{
	void *q;

	if (n == 0 || p == NULL)
		return NULL;
	q = xreallocarray(NULL, n, size);
	memcpy(q, p, n * size);
	return q;
}

static char **
strv_dup(char *const *v, size_t n)
{
	char **o = n ? xcalloc(n, sizeof(*o)) : NULL;

	for (size_t i = 0; i < n; i++)
		o[i] = xstrdup(v[i]);
	return o;
}

static void
rule_copy(struct rule *dst, const struct rule *src)
{
	*dst = *src;
	dst->ports.v =
		xmemdup(src->ports.v, src->ports.n, sizeof(*src->ports.v));
}

/* vm as it stands at now: its allow rules that have not ended. Every
 * field is copied first, then each owned one is replaced by its own copy:
 * a field added to struct vm is never silently lost here. */
static void
vm_at(struct vm *dst, const struct vm *src, int64_t now)
{
	*dst = *src;
	dst->name = xstrdup(src->name);
	dst->file = xstrdup(src->file);
	dst->addrs = xmemdup(src->addrs, src->naddrs, sizeof(*src->addrs));
	dst->addr_pos =
		xmemdup(src->addr_pos, src->naddrs, sizeof(*src->addr_pos));
	dst->iface = xstrdup_null(src->iface);
	dst->allow = dst->deny = NULL;
	dst->nallow = dst->ndeny = 0;
	dst->atoms = NULL;
	dst->natoms = 0;
	dst->idx = NULL;
	for (size_t i = 0; i < src->nallow; i++)
		if (!policy_rule_ended(&src->allow[i], now))
			rule_copy(ARRAY_PUSH(dst->allow, dst->nallow),
				&src->allow[i]);
	for (size_t i = 0; i < src->ndeny; i++)
		rule_copy(ARRAY_PUSH(dst->deny, dst->ndeny), &src->deny[i]);
	/* The port pieces of the rules that are left, and their index. */
	policy_vm_atoms(dst);
	policy_vm_index(dst);
}

/* As for vm_at: all of c, then its own copy of everything c owns. */
struct config *
config_at(const struct config *c, int64_t now)
{
	struct config *o = xcalloc(1, sizeof(*o));

	*o = *c;
	o->at = now;
	o->file = xstrdup_null(c->file);
	o->conf_file = xstrdup_null(c->conf_file);
	o->listen = xmemdup(c->listen, c->nlisten, sizeof(*c->listen));
	o->internal = xmemdup(c->internal, c->ninternal, sizeof(*c->internal));
	o->capture.to =
		xmemdup(c->capture.to, c->capture.nto, sizeof(*c->capture.to));
	o->capture.to_pos = xmemdup(c->capture.to_pos, c->capture.nto,
		sizeof(*c->capture.to_pos));
	o->policies = xstrdup_null(c->policies);
	o->control = xstrdup_null(c->control);
	o->control_group = xstrdup_null(c->control_group);
	o->table = xstrdup_null(c->table);
	o->trust_anchor = xstrdup_null(c->trust_anchor);
	o->root_hints = xstrdup_null(c->root_hints);
	o->forward = strv_dup(c->forward, c->nforward);
	o->forward_pos =
		xmemdup(c->forward_pos, c->nforward, sizeof(*c->forward_pos));
	o->stubs = c->nstubs ? xcalloc(c->nstubs, sizeof(*o->stubs)) : NULL;
	for (size_t i = 0; i < c->nstubs; i++) {
		o->stubs[i].zone = xstrdup(c->stubs[i].zone);
		o->stubs[i].addrs =
			strv_dup(c->stubs[i].addrs, c->stubs[i].naddrs);
		o->stubs[i].addr_pos = xmemdup(c->stubs[i].addr_pos,
			c->stubs[i].naddrs, sizeof(*c->stubs[i].addr_pos));
		o->stubs[i].naddrs = c->stubs[i].naddrs;
	}
	o->options =
		c->noptions ? xcalloc(c->noptions, sizeof(*o->options)) : NULL;
	for (size_t i = 0; i < c->noptions; i++) {
		o->options[i] = c->options[i];
		o->options[i].key = xstrdup(c->options[i].key);
		o->options[i].value = xstrdup(c->options[i].value);
	}
	o->vms = c->nvms ? xcalloc(c->nvms, sizeof(*o->vms)) : NULL;
	o->nvms = c->nvms;
	for (size_t i = 0; i < c->nvms; i++)
		vm_at(&o->vms[i], &c->vms[i], now);
	/* The same VMs in the same order. */
	o->vm_order = c->vm_order
		? xmemdup(c->vm_order, c->nvms + 1, sizeof(*c->vm_order))
		: NULL;
	return o;
}

int64_t
config_next_until(const struct config *c)
{
	int64_t next = 0;

	for (size_t i = 0; i < c->nvms; i++)
		for (size_t j = 0; j < c->vms[i].nallow; j++) {
			int64_t u = c->vms[i].allow[j].until;

			if (u != 0 && (next == 0 || u < next))
				next = u;
		}
	return next;
}

static size_t
untils(const struct config *c, int64_t now, bool ended, struct until_info *out,
	size_t max)
{
	size_t n = 0;

	for (size_t i = 0; i < c->nvms; i++)
		for (size_t j = 0; j < c->vms[i].nallow; j++) {
			const struct rule *r = &c->vms[i].allow[j];

			if (r->until == 0 || policy_rule_ended(r, now) != ended)
				continue;
			if (n < max) {
				out[n].vm = c->vms[i].name;
				out[n].rule = r;
				policy_rule_str(r, out[n].text,
					sizeof(out[n].text));
				out[n].until = r->until;
			}
			n++;
		}
	return n;
}

size_t
config_untils(const struct config *c, int64_t now, struct until_info *out,
	size_t max)
{
	return untils(c, now, false, out, max);
}

size_t
config_ended(const struct config *c, int64_t now, struct until_info *out,
	size_t max)
{
	return untils(c, now, true, out, max);
}
