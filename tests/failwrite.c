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

typedef ssize_t (*write_fn)(int, const void *, size_t);
typedef ssize_t (*pwrite_fn)(int, const void *, size_t, off_t);
typedef ssize_t (*pwrite64_fn)(int, const void *, size_t, off64_t);
typedef ssize_t (*writev_fn)(int, const struct iovec *, int);

static write_fn real_write;
static pwrite_fn real_pwrite;
static pwrite64_fn real_pwrite64;
static writev_fn real_writev;
static const char *failwrite_dir;
static const char *failwrite_flag;

/* Store the next definition of name in the function pointer at fnp. */
static void
failwrite_sym(void *fnp, const char *name)
{
	void *p = dlsym(RTLD_NEXT, name);

	/* ISO C has no cast from void * to a function pointer; copy it. */
	memcpy(fnp, &p, sizeof p);
}

/* Find the real functions and read the settings, before main runs. */
__attribute__((constructor)) static void
failwrite_init(void)
{
	failwrite_sym(&real_write, "write");
	failwrite_sym(&real_pwrite, "pwrite");
	failwrite_sym(&real_pwrite64, "pwrite64");
	failwrite_sym(&real_writev, "writev");
	failwrite_dir = getenv("FAILWRITE_DIR");
	failwrite_flag = getenv("FAILWRITE_FLAG");
}

/* Whether a write to fd must fail now; errno is kept. */
static int
failwrite_blocked(int fd)
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
	return blocked;
}

/* write(2), failing with ENOSPC while the flag is up. */
ssize_t
write(int fd, const void *buf, size_t len)
{
	if (real_write == NULL) {
		errno = ENOSYS;
		return -1;
	}
	if (failwrite_blocked(fd)) {
		errno = ENOSPC;
		return -1;
	}
	return real_write(fd, buf, len);
}

/* pwrite(2), the same. */
ssize_t
pwrite(int fd, const void *buf, size_t len, off_t off)
{
	if (real_pwrite == NULL) {
		errno = ENOSYS;
		return -1;
	}
	if (failwrite_blocked(fd)) {
		errno = ENOSPC;
		return -1;
	}
	return real_pwrite(fd, buf, len, off);
}

/* pwrite64, the name pwrite takes with 64-bit file offsets. */
ssize_t
pwrite64(int fd, const void *buf, size_t len, off64_t off)
{
	if (real_pwrite64 == NULL) {
		errno = ENOSYS;
		return -1;
	}
	if (failwrite_blocked(fd)) {
		errno = ENOSPC;
		return -1;
	}
	return real_pwrite64(fd, buf, len, off);
}

/* writev(2), the same. */
ssize_t
writev(int fd, const struct iovec *iov, int iovcnt)
{
	if (real_writev == NULL) {
		errno = ENOSYS;
		return -1;
	}
	if (failwrite_blocked(fd)) {
		errno = ENOSPC;
		return -1;
	}
	return real_writev(fd, iov, iovcnt);
}
