#include "yamltree.h"

#include "cfgfs.h"
#include "log.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <yaml.h>

struct builder {
	struct ydoc *doc;
	struct diag *d;
	struct ynode *stack[YAML_MAX_DEPTH + 1];
	int depth;
	bool failed;
};

const char *
ynode_type_name(enum ynode_type t)
{
	switch (t) {
	case YN_SCALAR:
		return "a scalar";
	case YN_SEQ:
		return "a sequence";
	case YN_MAP:
		return "a mapping";
	}
	return "?";
}

static void
ynode_free(struct ynode *n)
{
	if (n == NULL)
		return;
	for (size_t i = 0; i < n->n; i++)
		ynode_free(n->items[i]);
	free(n->items);
	free(n->value);
	free(n);
}

static void
berr(struct builder *b, const yaml_mark_t *m, const char *msg)
{
	diag_add(b->d, b->doc->file, (int)m->line + 1, (int)m->column + 1, "%s",
		msg);
	b->failed = true;
}

/* Attach a finished node to its parent (or make it the root). */
static int
attach(struct builder *b, struct ynode *n, const yaml_mark_t *m)
{
	struct ynode *p;

	if (++b->doc->nodes > YAML_MAX_NODES) {
		berr(b, m, "document too large");
		ynode_free(n);
		return -1;
	}
	if (b->depth == 0) {
		if (b->doc->root != NULL) {
			berr(b, m, "only one YAML document per file");
			ynode_free(n);
			return -1;
		}
		b->doc->root = n;
		return 0;
	}
	p = b->stack[b->depth - 1];
	p->items = xreallocarray(p->items, p->n + 1, sizeof(*p->items));
	p->items[p->n++] = n;
	return 0;
}

static struct ynode *
node_new(enum ynode_type t, const yaml_mark_t *m)
{
	struct ynode *n = xcalloc(1, sizeof(*n));

	n->type = t;
	n->line = (int)m->line + 1;
	n->col = (int)m->column + 1;
	return n;
}

static int
on_event(struct builder *b, yaml_event_t *ev)
{
	struct ynode *n;

	switch (ev->type) {
	case YAML_ALIAS_EVENT:
		berr(b, &ev->start_mark,
			"YAML aliases are not allowed: write the value out");
		return -1;
	case YAML_SCALAR_EVENT:
		if (ev->data.scalar.anchor != NULL) {
			berr(b, &ev->start_mark,
				"YAML anchors are not allowed");
			return -1;
		}
		n = node_new(YN_SCALAR, &ev->start_mark);
		n->value = xstrdup((const char *)ev->data.scalar.value);
		n->plain = ev->data.scalar.style == YAML_PLAIN_SCALAR_STYLE;
		if (strlen(n->value) != ev->data.scalar.length) {
			ynode_free(n);
			berr(b, &ev->start_mark, "NUL byte in a scalar");
			return -1;
		}
		return attach(b, n, &ev->start_mark);
	case YAML_SEQUENCE_START_EVENT:
	case YAML_MAPPING_START_EVENT:
		if ((ev->type == YAML_SEQUENCE_START_EVENT
				    ? ev->data.sequence_start.anchor
				    : ev->data.mapping_start.anchor) != NULL) {
			berr(b, &ev->start_mark,
				"YAML anchors are not allowed");
			return -1;
		}
		if (b->depth >= YAML_MAX_DEPTH) {
			berr(b, &ev->start_mark, "nested too deeply");
			return -1;
		}
		n = node_new(ev->type == YAML_SEQUENCE_START_EVENT ? YN_SEQ
								   : YN_MAP,
			&ev->start_mark);
		if (attach(b, n, &ev->start_mark) < 0)
			return -1;
		b->stack[b->depth++] = n;
		return 0;
	case YAML_SEQUENCE_END_EVENT:
	case YAML_MAPPING_END_EVENT:
		b->depth--;
		return 0;
	default:
		return 0;
	}
}

int
ydoc_parse(struct ydoc *doc, const char *file, const char *buf, size_t len,
	struct diag *d)
{
	struct builder b = {.doc = doc, .d = d};
	yaml_parser_t parser;
	yaml_event_t ev;
	bool done = false;

	memset(doc, 0, sizeof(*doc));
	doc->file = xstrdup(file);
	if (len > YAML_MAX_FILE) {
		diag_add(d, file, 0, 0, "file larger than %d bytes",
			YAML_MAX_FILE);
		return -1;
	}
	if (!yaml_parser_initialize(&parser))
		fatalx("yaml_parser_initialize");
	yaml_parser_set_input_string(&parser, (const unsigned char *)buf, len);
	while (!done && !b.failed) {
		if (!yaml_parser_parse(&parser, &ev)) {
			diag_add(d, file, (int)parser.problem_mark.line + 1,
				(int)parser.problem_mark.column + 1,
				"YAML syntax error: %s",
				parser.problem ? parser.problem : "?");
			b.failed = true;
			break;
		}
		done = ev.type == YAML_STREAM_END_EVENT;
		on_event(&b, &ev);
		yaml_event_delete(&ev);
	}
	yaml_parser_delete(&parser);
	return b.failed ? -1 : 0;
}

int
ydoc_load_fs(struct ydoc *doc, struct cfgfs *fs, const char *path,
	struct diag *d)
{
	char *buf;
	size_t len;
	int err, rc;

	memset(doc, 0, sizeof(*doc));
	doc->file = xstrdup(path);
	if ((err = cfgfs_read(fs, path, YAML_MAX_FILE, &buf, &len)) != 0) {
		if (err == EFBIG)
			diag_add(d, path, 0, 0, "file larger than 1 MiB");
		else if (err == EINVAL)
			diag_add(d, path, 0, 0, "not a regular file");
		else
			diag_add(d, path, 0, 0, "cannot read: %s",
				strerror(err));
		return -1;
	}
	free(doc->file);
	rc = ydoc_parse(doc, path, buf, len, d);
	free(buf);
	return rc;
}

int
ydoc_load(struct ydoc *doc, const char *path, struct diag *d)
{
	struct cfgfs *fs = cfgfs_real();
	int rc = ydoc_load_fs(doc, fs, path, d);

	cfgfs_free(fs);
	return rc;
}

void
ydoc_finish(struct ydoc *doc)
{
	ynode_free(doc->root);
	free(doc->file);
	memset(doc, 0, sizeof(*doc));
}
