/* cfgfs: a configuration loaded from a record of the file system is the
 * one loaded from the file system, whatever the files say by then; the
 * record answers nothing else; a malformed record is refused whole. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cfgfs.h"
#include "check.h"
#include "config.h"
#include "util.h"

static char dir[] = "/tmp/df-cfgfs-XXXXXX";

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

static void
remove_file(const char *name)
{
	char *path = xasprintf("%s/%s", dir, name);

	unlink(path);
	free(path);
}

/* config_dump's text, or the problems, of loading path through fs. */
static char *
load_text(struct cfgfs *fs, const char *path)
{
	struct diag d = {0};
	struct config *c = config_load_fs(fs, path, &d);
	char *out = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&out, &len);

	if (c != NULL)
		config_dump(c, f);
	for (size_t i = 0; i < d.n; i++)
		fprintf(f, "problem: %s\n", d.msgs[i]);
	fclose(f);
	config_free(c);
	diag_finish(&d);
	return out;
}

static struct cfgfs *
replay_of(struct cfgfs *real)
{
	uint8_t *buf;
	size_t len;
	char why[128];
	struct cfgfs *r;

	CHECK(cfgfs_serialize(real, &buf, &len) == 0);
	r = cfgfs_replay(buf, len, why, sizeof(why));
	CHECK(r != NULL);
	free(buf);
	return r;
}

static void
same_config_from_record(void)
{
	char *path = xasprintf("%s/dnsfence.yaml", dir);
	struct cfgfs *real = cfgfs_real(), *rec;
	char *a, *b;

	a = load_text(real, path);
	rec = replay_of(real);
	/* The files change (or go) after the record was made. */
	write_file("vms/work.yaml", "addresses: [10.137.1.99]\n");
	remove_file("vms/red.yaml");
	remove_file("root.key");
	b = load_text(rec, path);
	CHECK(strstr(a, "problem:") == NULL);
	CHECK(strstr(a, "10.137.1.10") != NULL);
	CHECK(strstr(a, "red") != NULL);
	CHECK_STR(a, b);
	free(a);
	free(b);
	cfgfs_free(rec);
	cfgfs_free(real);
	free(path);
}

/* A record holds the problems too: the engine reports what the
 * privileged process saw. */
static void
same_problems_from_record(void)
{
	char *path = xasprintf("%s/dnsfence.yaml", dir);
	struct cfgfs *real = cfgfs_real(), *rec;
	char *a, *b;

	write_file("vms/work.yaml", "addresses: [10.137.1.10]\nbogus: 1\n");
	a = load_text(real, path);
	rec = replay_of(real);
	write_file("vms/work.yaml", "addresses: [10.137.1.10]\n");
	b = load_text(rec, path);
	CHECK(strstr(a, "problem:") != NULL);
	CHECK_STR(a, b);
	free(a);
	free(b);
	cfgfs_free(rec);
	cfgfs_free(real);
	free(path);
}

/* One record, one view: a file read twice is seen the same both times. */
static void
one_view(void)
{
	char *path = xasprintf("%s/vms/work.yaml", dir);
	struct cfgfs *real = cfgfs_real();
	char *b1, *b2;
	size_t l1, l2;

	write_file("vms/work.yaml", "addresses: [10.137.1.10]\n");
	CHECK(cfgfs_read(real, path, 1024, &b1, &l1) == 0);
	write_file("vms/work.yaml", "addresses: [10.137.1.11]\n");
	CHECK(cfgfs_read(real, path, 1024, &b2, &l2) == 0);
	CHECK(l1 == l2 && memcmp(b1, b2, l1) == 0);
	free(b1);
	free(b2);
	CHECK(cfgfs_read(real, path, 4, &b1, &l1) == EFBIG);
	CHECK(b1 == NULL);
	cfgfs_free(real);
	free(path);
}

static void
answers_only_what_was_recorded(void)
{
	struct cfgfs *real = cfgfs_real(), *rec;
	char *buf, **names;
	size_t len, n;
	bool regular;
	char *p = xasprintf("%s/vms", dir);

	CHECK(cfgfs_list(real, p, &names, &n) == 0);
	for (size_t i = 0; i < n; i++)
		free(names[i]);
	free(names);
	CHECK(cfgfs_access(real, p, &regular) == 0 && !regular);
	CHECK(cfgfs_read(real, p, 1024, &buf, &len) == EINVAL);
	CHECK(cfgfs_read(real, "/nonexistent/x", 10, &buf, &len) == ENOENT);
	rec = replay_of(real);
	CHECK(cfgfs_list(rec, p, &names, &n) == 0 && n >= 1);
	for (size_t i = 0; i < n; i++) {
		CHECK(strchr(names[i], '/') == NULL);
		free(names[i]);
	}
	free(names);
	CHECK(cfgfs_access(rec, p, &regular) == 0 && !regular);
	CHECK(cfgfs_read(rec, p, 1024, &buf, &len) == EINVAL);
	CHECK(cfgfs_read(rec, "/nonexistent/x", 10, &buf, &len) == ENOENT);
	CHECK(cfgfs_read(rec, "/etc/hostname", 4096, &buf, &len) == ENOENT);
	CHECK(cfgfs_realpath(rec, "/etc") == NULL);
	cfgfs_free(rec);
	cfgfs_free(real);
	free(p);
}

/* Every cut of a good record, and a few forged ones, are refused whole. */
static void
malformed_records(void)
{
	struct cfgfs *real = cfgfs_real(), *r;
	char *path = xasprintf("%s/dnsfence.yaml", dir), *t;
	uint8_t *buf;
	size_t len;
	char why[128];

	free(load_text(real, path));
	CHECK(cfgfs_serialize(real, &buf, &len) == 0);
	for (size_t cut = 0; cut < len; cut++) {
		r = cfgfs_replay(buf, cut, why, sizeof(why));
		CHECK(r == NULL);
		cfgfs_free(r);
	}
	buf[0] ^= 1; /* the magic */
	r = cfgfs_replay(buf, len, why, sizeof(why));
	CHECK(r == NULL);
	buf[0] ^= 1;
	t = xcalloc(1, len + 1); /* a byte after the last entry */
	memcpy(t, buf, len);
	r = cfgfs_replay((uint8_t *)t, len + 1, why, sizeof(why));
	CHECK(r == NULL && strstr(why, "after the last entry") != NULL);
	free(t);
	r = cfgfs_replay(buf, len, why, sizeof(why));
	CHECK(r != NULL);
	cfgfs_free(r);
	free(buf);
	cfgfs_free(real);
	free(path);
	{
		/* A listing with a '/' in a name, a relative realpath. */
		static const uint8_t bad_list[] = {'D', 'F', 'C', 'F', 'S', '1',
			0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2,
			0, '/', 0, 4, 0, 0, 0, 'a', '/', 'b', 0};
		static const uint8_t bad_real[] = {'D', 'F', 'C', 'F', 'S', '1',
			0, 0, 1, 0, 0, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2,
			0, 'x', 0, 2, 0, 0, 0, 'a', 0};

		CHECK(cfgfs_replay(bad_list, sizeof(bad_list), why,
			      sizeof(why)) == NULL);
		CHECK(cfgfs_replay(bad_real, sizeof(bad_real), why,
			      sizeof(why)) == NULL);
	}
}

int
main(void)
{
	if (mkdtemp(dir) == NULL) {
		perror("mkdtemp");
		return 2;
	}
	{
		char *vms = xasprintf("%s/vms", dir);

		mkdir(vms, 0755);
		free(vms);
	}
	write_file("dnsfence.yaml",
		"listen: [10.139.1.1]\npolicies: vms\ncontrol: ctl.sock\n"
		"resolver:\n  trust-anchor-file: root.key\n");
	write_file("root.key",
		". IN DS 20326 8 2 "
		"E06D44B80B8F1D39A95C0B0D7C65D08458E880409BBC683457104237C7F8"
		"EC8D\n");
	write_file("vms/work.yaml",
		"addresses: [10.137.1.10]\nallow:\n  - name: "
		"\"*.example.com\"\n    ports: [tcp/443]\n");
	write_file("vms/red.yaml",
		"addresses: [10.137.2.10]\ndefault: "
		"allow\n");
	write_file("vms/work.yaml~", "not a policy, ignored\n");
	same_config_from_record();
	write_file("vms/red.yaml", "addresses: [10.137.2.10]\n");
	write_file("root.key",
		". IN DS 20326 8 2 "
		"E06D44B80B8F1D39A95C0B0D7C65D08458E880409BBC683457104237C7F8"
		"EC8D\n");
	same_problems_from_record();
	one_view();
	answers_only_what_was_recorded();
	malformed_records();
	{
		char *cmd = xasprintf("rm -rf '%s'", dir);

		if (system(cmd) != 0)
			fprintf(stderr, "could not remove %s\n", dir);
		free(cmd);
	}
	return check_done("cfgfs");
}
