/* A small, bounded YAML tree built from libyaml events, keeping each node's
 * position for FILE:LINE:COLUMN messages. Aliases and anchors are refused:
 * a policy must say what it means where it says it. */
#ifndef DNSFENCE_YAMLTREE_H
#define DNSFENCE_YAMLTREE_H

#include <stdbool.h>
#include <stddef.h>

#include "util.h"

#define YAML_MAX_FILE (1024 * 1024)
#define YAML_MAX_DEPTH 16
#define YAML_MAX_NODES 200000

enum ynode_type { YN_SCALAR, YN_SEQ, YN_MAP };

struct ynode {
	enum ynode_type type;
	int line, col;	      /* 1-based */
	char *value;	      /* YN_SCALAR */
	bool plain;	      /* unquoted scalar */
	struct ynode **items; /* YN_SEQ: items; YN_MAP: key, value, ... */
	size_t n;
};

struct ydoc {
	char *file;
	struct ynode *root; /* NULL for an empty document */
	size_t nodes;
};

/** Parse buf as one YAML document; problems go to d. -1 when the document
 * cannot be used at all. */
int ydoc_parse(struct ydoc *doc, const char *file, const char *buf, size_t len,
	struct diag *d);
/** Read and parse a file (at most YAML_MAX_FILE bytes). */
int ydoc_load(struct ydoc *doc, const char *path, struct diag *d);
struct cfgfs;
/** The same, read through fs (cfgfs.h). */
int ydoc_load_fs(struct ydoc *doc, struct cfgfs *fs, const char *path,
	struct diag *d);
void ydoc_finish(struct ydoc *doc);

const char *ynode_type_name(enum ynode_type t);

#endif
