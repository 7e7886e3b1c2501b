/* The files a configuration is read from. dnsfenced's privileged process
 * reads them from the file system and records every answer it got; the
 * engine, which runs chrooted as another user and cannot see them, loads
 * the configuration from that record: both parse exactly the same bytes,
 * and the engine never opens a file of settings. */
#ifndef DNSFENCE_CFGFS_H
#define DNSFENCE_CFGFS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct cfgfs;

/* Bounds of a record (and so of what the engine accepts). */
#define CFGFS_MAX_PATH 4096
#define CFGFS_MAX_ENTRIES 65536
#define CFGFS_MAX_BYTES (256u * 1024 * 1024)

/** The file system, every answer recorded. */
struct cfgfs *cfgfs_real(void);
/** A record made by cfgfs_serialize(): answers only what was recorded
 * (anything else: ENOENT). NULL, with why, if buf is not a well-formed
 * record. */
struct cfgfs *cfgfs_replay(const uint8_t *buf, size_t len, char *why,
	size_t whylen);
/** The record of every answer fs gave, in one buffer (malloc'd). */
int cfgfs_serialize(const struct cfgfs *fs, uint8_t **buf, size_t *len);
void cfgfs_free(struct cfgfs *fs);

/* Each returns 0 or an errno value; the file system's own, or: EINVAL not
 * a regular file, EFBIG larger than max. */

/** A regular file's bytes, at most max of them; *buf is NUL-terminated
 * (free it). */
int cfgfs_read(struct cfgfs *fs, const char *path, size_t max, char **buf,
	size_t *len);
/** The names in a directory, "." and ".." left out, in no order (free
 * each and the array). */
int cfgfs_list(struct cfgfs *fs, const char *dir, char ***names, size_t *n);
/** May path be read (access(R_OK)), and is it a regular file? */
int cfgfs_access(struct cfgfs *fs, const char *path, bool *regular);
/** realpath(3) of path (free it), or NULL. */
char *cfgfs_realpath(struct cfgfs *fs, const char *path);

#endif
