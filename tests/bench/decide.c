/* Name-decision benchmark (issue 11, item 4: "name matching never linear
 * in the number of rules"): the cost of policy_decide for one name, with
 * a policy of a few rules and one of many names and wildcards, in the
 * same run. Each policy goes through the real loader (so through the
 * name index); the same names are decided against both: names an exact
 * rule allows, names below a wildcard, names a deny rule refuses, and
 * names no rule matches. A benchmark: it prints nanoseconds per decision
 * and the ratio, and asserts only that the decisions are right. The large
 * policy is also decided without its index (every rule looked at, as
 * before the index), for scale.
 *
 *   build/tests/bench-decide [NAMES [DECISIONS]]
 *
 * NAMES (default 10000) exact names and NAMES/10 wildcards in the large
 * policy; DECISIONS (default 2000000) per policy. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "config.h"
#include "policy.h"
#include "util.h"

static char *
policy_text(size_t n)
{
	size_t cap = 256 + n * 64, len = 0;
	char *t = xcalloc(cap, 1);

	len += (size_t)snprintf(t + len, cap - len,
		"addresses: [10.137.1.10]\nallow:\n");
	for (size_t i = 0; i < n; i++)
		len += (size_t)snprintf(t + len, cap - len,
			"  - name: host%zu.exact.example\n    ports: "
			"[tcp/443]\n",
			i);
	for (size_t i = 0; i < n / 10 || i < 1; i++)
		len += (size_t)snprintf(t + len, cap - len,
			"  - name: \"*.zone%zu.wild.example\"\n", i);
	len += (size_t)snprintf(t + len, cap - len,
		"deny:\n  - name: \"*.ads.zone0.wild.example\"\n");
	return t;
}

static void
say(const char *m)
{
	fprintf(stderr, "%s\n", m);
}

static double
now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

/* Decide names[i % nnames] m times; the count of allowed ones. */
static size_t
run(const struct vm *vm, char (*names)[96], size_t nnames, size_t m, double *ns)
{
	size_t allowed = 0;
	double t0 = now_ns();

	for (size_t i = 0; i < m; i++) {
		struct verdict v;

		policy_decide(vm, names[i % nnames], 0, &v);
		allowed += v.allowed;
		verdict_finish(&v);
	}
	*ns = (now_ns() - t0) / (double)m;
	return allowed;
}

int
main(int argc, char **argv)
{
	size_t n = argc > 1 ? strtoul(argv[1], NULL, 10) : 10000;
	size_t m = argc > 2 ? strtoul(argv[2], NULL, 10) : 2000000;
	static char names[4][96];
	size_t sizes[2] = {3, n}, allowed[3];
	double ns[3];

	/* In both policies: an exact name, a name two labels below a
	 * wildcard, a denied name, and a name nothing matches. */
	snprintf(names[0], sizeof(names[0]), "host1.exact.example");
	snprintf(names[1], sizeof(names[1]), "a.b.zone0.wild.example");
	snprintf(names[2], sizeof(names[2]), "x.ads.zone0.wild.example");
	snprintf(names[3], sizeof(names[3]), "www.nowhere.example.org");
	for (int k = 0; k < 2; k++) {
		struct diag d = {0};
		struct vm vm;
		char *t = policy_text(sizes[k]);

		if (config_load_policy_buf(&vm, "bench", "bench.yaml", t,
			    strlen(t), &d) != 0) {
			diag_print(&d, say);
			return 2;
		}
		allowed[k] = run(&vm, names, 4, m, &ns[k]);
		printf("%6zu names, %5zu wildcards: %9.1f ns a decision\n",
			sizes[k], sizes[k] / 10 ? sizes[k] / 10 : 1, ns[k]);
		if (k == 1) {
			struct nameidx *idx = vm.idx;

			vm.idx = NULL;
			allowed[2] = run(&vm, names, 4, m / 100 + 4, &ns[2]);
			vm.idx = idx;
			printf("%6zu names, without the index: %9.1f ns a "
			       "decision\n",
				sizes[k], ns[2]);
		}
		policy_vm_finish(&vm);
		diag_finish(&d);
		free(t);
	}
	printf("ratio (large / small): %.2f\n", ns[1] / ns[0]);
	/* Half the names are allowed (the exact one and the wildcard's). */
	if (allowed[0] != m / 2 || allowed[1] != m / 2 ||
		allowed[2] != (m / 100 + 4) / 2) {
		fprintf(stderr, "wrong decisions: %zu, %zu of %zu allowed\n",
			allowed[0], allowed[1], m);
		return 1;
	}
	return 0;
}
