#include "cfgfs.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"
#include "util.h"

enum op { OP_READ = 1, OP_LIST, OP_ACCESS, OP_REALPATH };

/* One answer: the bytes of a file (OP_READ), the names of a directory
 * joined by NULs (OP_LIST), a resolved path (OP_REALPATH), or err. */
struct entry {
	uint8_t op;
	bool regular; /* OP_ACCESS */
	int err;
	size_t max; /* OP_READ: the bound it was read with */
	char *path;
	char *data;
	size_t len;
};

struct cfgfs {
	bool replay;
	struct entry *v;
	size_t n, cap;
	size_t bytes; /* of paths and data, bounded by CFGFS_MAX_BYTES */
};

static struct entry *
find(const struct cfgfs *fs, enum op op, const char *path)
{
	for (size_t i = 0; i < fs->n; i++)
		if (fs->v[i].op == op && strcmp(fs->v[i].path, path) == 0)
			return &fs->v[i];
	return NULL;
}

static struct entry *
push(struct cfgfs *fs, enum op op, const char *path)
{
	struct entry *e;

	if (fs->n == fs->cap) {
		fs->cap = fs->cap ? 2 * fs->cap : 16;
		fs->v = xreallocarray(fs->v, fs->cap, sizeof(*fs->v));
	}
	e = &fs->v[fs->n++];
	memset(e, 0, sizeof(*e));
	e->op = (uint8_t)op;
	e->path = xstrdup(path);
	return e;
}

struct cfgfs *
cfgfs_real(void)
{
	return xcalloc(1, sizeof(struct cfgfs));
}

void
cfgfs_free(struct cfgfs *fs)
{
	if (fs == NULL)
		return;
	for (size_t i = 0; i < fs->n; i++) {
		free(fs->v[i].path);
		free(fs->v[i].data);
	}
	free(fs->v);
	free(fs);
}

/* ---- the file system ------------------------------------------------ */

static int
read_real(const char *path, size_t max, struct entry *e)
{
	struct stat st;
	size_t len = 0;
	ssize_t r;
	int fd;

	fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
	if (fd < 0)
		return errno;
	if (fstat(fd, &st) < 0) {
		int err = errno;

		close(fd);
		return err;
	}
	if (!S_ISREG(st.st_mode) || (size_t)st.st_size > max) {
		close(fd);
		return S_ISREG(st.st_mode) ? EFBIG : EINVAL;
	}
	e->data = xcalloc(1, (size_t)st.st_size + 1);
	while (len < (size_t)st.st_size &&
		(r = read(fd, e->data + len, (size_t)st.st_size - len)) != 0) {
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			int err = errno;

			close(fd);
			free(e->data);
			e->data = NULL;
			return err;
		}
		len += (size_t)r;
	}
	close(fd);
	e->len = len;
	return 0;
}

static int
list_real(const char *path, struct entry *e)
{
	struct dirent *de;
	DIR *dir;

	if ((dir = opendir(path)) == NULL)
		return errno;
	while ((de = readdir(dir)) != NULL) {
		size_t l = strlen(de->d_name) + 1;

		if (strcmp(de->d_name, ".") == 0 ||
			strcmp(de->d_name, "..") == 0)
			continue;
		e->data = realloc(e->data, e->len + l);
		if (e->data == NULL)
			fatal("realloc");
		memcpy(e->data + e->len, de->d_name, l);
		e->len += l;
	}
	closedir(dir);
	return 0;
}

/* The answer to (op, path): recorded before (a file read twice is seen
 * the same both times), asked of the file system now, or, replaying, not
 * there (ENOENT). */
static struct entry *
answer(struct cfgfs *fs, enum op op, const char *path, size_t max)
{
	struct entry *e = find(fs, op, path);
	struct stat st;
	char *rp;

	if (e != NULL || fs->replay)
		return e;
	e = push(fs, op, path);
	e->max = max;
	switch (op) {
	case OP_READ:
		e->err = read_real(path, max, e);
		break;
	case OP_LIST:
		e->err = list_real(path, e);
		break;
	case OP_ACCESS:
		if (access(path, R_OK) != 0)
			e->err = errno;
		else
			e->regular =
				stat(path, &st) == 0 && S_ISREG(st.st_mode);
		break;
	case OP_REALPATH:
		if ((rp = realpath(path, NULL)) == NULL) {
			e->err = errno;
		} else {
			e->data = rp;
			e->len = strlen(rp) + 1;
		}
		break;
	}
	fs->bytes += strlen(path) + e->len;
	return e;
}

int
cfgfs_read(struct cfgfs *fs, const char *path, size_t max, char **buf,
	size_t *len)
{
	struct entry *e = answer(fs, OP_READ, path, max);

	*buf = NULL;
	*len = 0;
	if (e == NULL)
		return ENOENT;
	if (e->err != 0)
		return e->err;
	if (e->len > max)
		return EFBIG;
	*buf = xcalloc(1, e->len + 1);
	if (e->len > 0)
		memcpy(*buf, e->data, e->len);
	*len = e->len;
	return 0;
}

int
cfgfs_list(struct cfgfs *fs, const char *dir, char ***names, size_t *n)
{
	struct entry *e = answer(fs, OP_LIST, dir, 0);

	*names = NULL;
	*n = 0;
	if (e == NULL)
		return ENOENT;
	if (e->err != 0)
		return e->err;
	for (size_t off = 0; off < e->len;) {
		size_t l = strlen(e->data + off);

		*ARRAY_PUSH(*names, *n) = xstrdup(e->data + off);
		off += l + 1;
	}
	return 0;
}

int
cfgfs_access(struct cfgfs *fs, const char *path, bool *regular)
{
	struct entry *e = answer(fs, OP_ACCESS, path, 0);

	*regular = false;
	if (e == NULL)
		return ENOENT;
	*regular = e->regular;
	return e->err;
}

char *
cfgfs_realpath(struct cfgfs *fs, const char *path)
{
	struct entry *e = answer(fs, OP_REALPATH, path, 0);

	if (e == NULL || e->err != 0)
		return NULL;
	return xstrdup(e->data);
}

/* ---- the record ------------------------------------------------------ *
 *
 * "DFCFS1\0\0", the number of entries (u32), then each entry: op (u8),
 * regular (u8), err (i32), max (u32), the path's length (u16, with its
 * NUL) and the path, the data's length (u32) and the data. Integers in
 * host order: the record never leaves the machine. */

static const char magic[8] = "DFCFS1";

static void
put(uint8_t **p, const void *v, size_t n)
{
	memcpy(*p, v, n);
	*p += n;
}

int
cfgfs_serialize(const struct cfgfs *fs, uint8_t **buf, size_t *len)
{
	size_t total = sizeof(magic) + 4;
	uint32_t n32 = (uint32_t)fs->n;
	uint8_t *p;

	if (fs->n > CFGFS_MAX_ENTRIES || fs->bytes > CFGFS_MAX_BYTES)
		return EFBIG;
	for (size_t i = 0; i < fs->n; i++)
		total += 1 + 1 + 4 + 4 + 2 + strlen(fs->v[i].path) + 1 + 4 +
			fs->v[i].len;
	p = *buf = xcalloc(1, total);
	put(&p, magic, sizeof(magic));
	put(&p, &n32, 4);
	for (size_t i = 0; i < fs->n; i++) {
		const struct entry *e = &fs->v[i];
		uint8_t reg = e->regular;
		int32_t err = e->err;
		uint32_t max =
			e->max > UINT32_MAX ? UINT32_MAX : (uint32_t)e->max;
		uint16_t pl = (uint16_t)(strlen(e->path) + 1);
		uint32_t dl = (uint32_t)e->len;

		put(&p, &e->op, 1);
		put(&p, &reg, 1);
		put(&p, &err, 4);
		put(&p, &max, 4);
		put(&p, &pl, 2);
		put(&p, e->path, pl);
		put(&p, &dl, 4);
		if (dl > 0)
			put(&p, e->data, dl);
	}
	*len = total;
	return 0;
}

/* Take n bytes from the record, or fail. */
static bool
take(const uint8_t **p, const uint8_t *end, void *out, size_t n)
{
	if ((size_t)(end - *p) < n)
		return false;
	memcpy(out, *p, n);
	*p += n;
	return true;
}

static bool
well_formed(const struct entry *e)
{
	if (e->op < OP_READ || e->op > OP_REALPATH || e->err < 0)
		return false;
	if (e->err != 0)
		return e->len == 0;
	switch (e->op) {
	case OP_LIST:
		/* Names, each NUL-terminated, none empty, none with a '/'. */
		for (size_t off = 0, start = 0; off < e->len; off++) {
			if (e->data[off] == '/')
				return false;
			if (e->data[off] == '\0') {
				if (off == start)
					return false;
				start = off + 1;
			}
		}
		return e->len == 0 || e->data[e->len - 1] == '\0';
	case OP_REALPATH:
		return e->len > 1 && e->data[0] == '/' &&
			memchr(e->data, '\0', e->len) == e->data + e->len - 1;
	case OP_READ:
		return e->len <= e->max;
	default:
		return e->len == 0;
	}
}

struct cfgfs *
cfgfs_replay(const uint8_t *buf, size_t len, char *why, size_t whylen)
{
	const uint8_t *p = buf, *end = buf + len;
	struct cfgfs *fs = xcalloc(1, sizeof(*fs));
	char m[sizeof(magic)];
	uint32_t n;

	fs->replay = true;
	if (len > CFGFS_MAX_BYTES + (size_t)CFGFS_MAX_ENTRIES * 64 ||
		!take(&p, end, m, sizeof(m)) ||
		memcmp(m, magic, sizeof(m)) != 0 || !take(&p, end, &n, 4) ||
		n > CFGFS_MAX_ENTRIES) {
		snprintf(why, whylen, "not a configuration record");
		goto bad;
	}
	for (uint32_t i = 0; i < n; i++) {
		uint8_t op, reg;
		int32_t err;
		uint32_t max, dl;
		uint16_t pl;
		struct entry *e;

		if (!take(&p, end, &op, 1) || !take(&p, end, &reg, 1) ||
			!take(&p, end, &err, 4) || !take(&p, end, &max, 4) ||
			!take(&p, end, &pl, 2) || pl < 2 ||
			pl > CFGFS_MAX_PATH || (size_t)(end - p) < pl ||
			p[pl - 1] != '\0' ||
			memchr(p, '\0', pl) != p + pl - 1) {
			snprintf(why, whylen, "entry %u: malformed", i);
			goto bad;
		}
		e = push(fs, OP_READ, (const char *)p);
		p += pl;
		e->op = op;
		e->regular = reg != 0;
		e->err = err;
		e->max = max;
		if (!take(&p, end, &dl, 4) || (size_t)(end - p) < dl) {
			snprintf(why, whylen, "entry %u: cut short", i);
			goto bad;
		}
		if (dl > 0) {
			e->data = xcalloc(1, (size_t)dl + 1);
			memcpy(e->data, p, dl);
			p += dl;
		}
		e->len = dl;
		fs->bytes += pl + dl;
		if (!well_formed(e) || fs->bytes > CFGFS_MAX_BYTES) {
			snprintf(why, whylen, "entry %u (%s): malformed", i,
				e->path);
			goto bad;
		}
	}
	if (p != end) {
		snprintf(why, whylen, "%zu bytes after the last entry",
			(size_t)(end - p));
		goto bad;
	}
	return fs;
bad:
	cfgfs_free(fs);
	return NULL;
}
