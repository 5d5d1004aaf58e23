/*
 * A slow disk for the benchmark, as an LD_PRELOAD shim:
 *
 *	LD_PRELOAD=tests/libslowdisk.so imgfetchd -c FILE
 *
 * Every write(), pwrite(), pwritev() and writev() to a regular file sleeps
 * SLOWDISK_MS milliseconds (default 100) before doing the real call, found
 * with dlsym(RTLD_NEXT). Sockets, pipes and terminals are left alone, so
 * only the file I/O of the process slows down. A thread that writes a file
 * sleeps by itself; the other threads go on. With SLOWDISK_SUFFIX set, only
 * files whose path ends with it are slow (".part": the downloads, not the
 * job store).
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
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define SLOWDISK_DEFAULT_MS 100
#define SLOWDISK_MAX_MS 60000

static long slowdisk_ms = SLOWDISK_DEFAULT_MS;
static const char *slowdisk_suffix;

static int shim_before_write(int);
#include "writeshim.h"

/* Find the real functions and read SLOWDISK_MS, before main runs. */
__attribute__((constructor)) static void
slowdisk_init(void)
{
	const char *env = getenv("SLOWDISK_MS");
	char *end;
	long v;

	writeshim_init();
	slowdisk_suffix = getenv("SLOWDISK_SUFFIX");
	if (slowdisk_suffix != NULL && *slowdisk_suffix == '\0')
		slowdisk_suffix = NULL;
	if (env != NULL && *env != '\0') {
		v = strtol(env, &end, 10);
		if (*end == '\0' && v >= 0 && v <= SLOWDISK_MAX_MS)
			slowdisk_ms = v;
	}
}

/* Whether fd's path ends with SLOWDISK_SUFFIX (always, when unset). */
static int
slowdisk_matches(int fd)
{
	char link[64], path[4096];
	size_t n = slowdisk_suffix != NULL ? strlen(slowdisk_suffix) : 0;
	ssize_t len;

	if (slowdisk_suffix == NULL)
		return 1;
	snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
	if ((len = readlink(link, path, sizeof path)) == -1 || (size_t)len < n)
		return 0;
	return memcmp(path + len - n, slowdisk_suffix, n) == 0;
}

/* Sleep the whole delay if fd is a regular file; errno is kept. */
static int
shim_before_write(int fd)
{
	struct timespec ts, left;
	struct stat st;
	int saved = errno;

	if (slowdisk_ms > 0 && fstat(fd, &st) == 0 && S_ISREG(st.st_mode) &&
	    slowdisk_matches(fd)) {
		ts.tv_sec = slowdisk_ms / 1000;
		ts.tv_nsec = (slowdisk_ms % 1000) * 1000000L;
		while (nanosleep(&ts, &left) == -1 && errno == EINTR)
			ts = left;
	}
	errno = saved;
	return 0;
}
