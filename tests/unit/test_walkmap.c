/* walk_map with a key table longer than the 32 entries its seen[] array
 * once held: duplicates and missing required keys are still found for
 * every entry. config.c is compiled into this test (its statics are what
 * is tested); the archive's copy is then never linked. */
#include "../../src/config.c"

#include "check.h"

#define NKEYS 40

static int calls[NKEYS];

static void
count(struct loader *L, const struct ynode *v, void *obj)
{
	int *idx = obj;

	calls[*idx]++;
}

static void
test_long_table(void)
{
	static char names[NKEYS][8];
	struct keyspec ks[NKEYS + 1];
	struct diag d = {0};
	struct loader L = {.d = &d, .file = "t.yaml", .dir = "."};
	struct ydoc doc;
	char buf[1024];
	size_t len = 0;
	int idx = 0;

	for (int i = 0; i < NKEYS; i++) {
		snprintf(names[i], sizeof(names[i]), "k%d", i);
		/* the last two are required */
		ks[i] = (struct keyspec){names[i], YN_SCALAR, count,
			i >= NKEYS - 2};
	}
	ks[NKEYS] = (struct keyspec){NULL, 0, NULL, false};
	/* every key but the last once, k38 and k35 twice */
	for (int i = 0; i < NKEYS - 1; i++)
		len += (size_t)snprintf(buf + len, sizeof(buf) - len,
			"k%d: x\n", i);
	len += (size_t)snprintf(buf + len, sizeof(buf) - len,
		"k38: y\nk35: y\n");
	CHECK(ydoc_parse(&doc, "t.yaml", buf, len, &d) == 0);
	memset(calls, 0, sizeof(calls));
	walk_map(&L, doc.root, ks, &idx, "the test map");
	ydoc_finish(&doc);
	CHECK(d.n == 3);
	CHECK(d.n > 0 && strstr(d.msgs[0], ":40:1: duplicate key 'k38'"));
	CHECK(d.n > 1 && strstr(d.msgs[1], ":41:1: duplicate key 'k35'"));
	CHECK(d.n > 2 && strstr(d.msgs[2], "missing key 'k39' in the test"));
	for (size_t i = 0; i < d.n; i++)
		fprintf(stderr, "  %s\n", d.msgs[i]);
	/* each key's handler ran once: duplicates are not handled again */
	CHECK(calls[0] == NKEYS - 1);
	diag_finish(&d);
}

int
main(void)
{
	test_long_table();
	return check_done("walkmap");
}
