/*
 * A full disk on demand, as an LD_PRELOAD shim for the integration tests:
 *
 *	FAILWRITE_DIR=DIR FAILWRITE_FLAG=FILE LD_PRELOAD=tests/libfailwrite.so \
 *	    imgfetchd -c CONF
 *
 * While FILE exists, every write(), pwrite() and writev() to a regular file
 * below DIR fails with ENOSPC, as on a full file system; once FILE is
 * removed the writes go through again. Other files, sockets and pipes are
 * never touched. The tests use it where a small tmpfs cannot be mounted.
 */
/* pwrite and pwrite64 are two symbols here: keep them apart. */
#undef _FILE_OFFSET_BITS
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include <sys/stat.h>
#include <sys/types.h>
#include <sys/uio.h>

#include <dlfcn.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char *failwrite_dir;
static const char *failwrite_flag;

static int shim_before_write(int);
#include "writeshim.h"

/* Read the settings and find the real functions, before main runs. */
__attribute__((constructor)) static void
failwrite_init(void)
{
	writeshim_init();
	failwrite_dir = getenv("FAILWRITE_DIR");
	failwrite_flag = getenv("FAILWRITE_FLAG");
}

/* ENOSPC for a regular file below FAILWRITE_DIR while the flag is up. */
static int
shim_before_write(int fd)
{
	char link[64], path[PATH_MAX];
	struct stat st;
	size_t dlen;
	ssize_t n;
	int saved = errno, blocked = 0;

	if (failwrite_dir == NULL || failwrite_flag == NULL ||
	    access(failwrite_flag, F_OK) == -1)
		goto out;
	if (fstat(fd, &st) == -1 || !S_ISREG(st.st_mode))
		goto out;
	snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
	n = readlink(link, path, sizeof path - 1);
	if (n <= 0)
		goto out;
	path[n] = '\0';
	dlen = strlen(failwrite_dir);
	blocked = strncmp(path, failwrite_dir, dlen) == 0 &&
	    (path[dlen] == '/' || path[dlen] == '\0');
out:
	errno = saved;
	return blocked ? ENOSPC : 0;
}
