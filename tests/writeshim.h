/*
 * What the tests' LD_PRELOAD shims share: write(), pwrite(), pwrite64(),
 * writev(), pwritev() and pwritev64() wrapped around the real functions
 * (found with dlsym(RTLD_NEXT)). A shim defines
 *
 *	static int shim_before_write(int fd);
 *
 * before including this: it runs before every write, keeps errno, and
 * returns 0 to let the write go on or an errno value to fail it with.
 * The shim's constructor calls writeshim_init().
 */
#ifndef WRITESHIM_H
#define WRITESHIM_H

#include <sys/types.h>
#include <sys/uio.h>

#include <dlfcn.h>
#include <errno.h>
#include <string.h>

typedef ssize_t (*write_fn)(int, const void *, size_t);
typedef ssize_t (*pwrite_fn)(int, const void *, size_t, off_t);
typedef ssize_t (*pwrite64_fn)(int, const void *, size_t, off64_t);
typedef ssize_t (*writev_fn)(int, const struct iovec *, int);
typedef ssize_t (*pwritev_fn)(int, const struct iovec *, int, off_t);
typedef ssize_t (*pwritev64_fn)(int, const struct iovec *, int, off64_t);

static write_fn real_write;
static pwrite_fn real_pwrite;
static pwrite64_fn real_pwrite64;
static writev_fn real_writev;
static pwritev_fn real_pwritev;
static pwritev64_fn real_pwritev64;

/* Store the next definition of name in the function pointer at fnp. */
static void
writeshim_sym(void *fnp, const char *name)
{
	void *p = dlsym(RTLD_NEXT, name);

	/* ISO C has no cast from void * to a function pointer; copy it. */
	memcpy(fnp, &p, sizeof p);
}

/* Find the real functions. */
static void
writeshim_init(void)
{
	writeshim_sym(&real_write, "write");
	writeshim_sym(&real_pwrite, "pwrite");
	writeshim_sym(&real_pwrite64, "pwrite64");
	writeshim_sym(&real_writev, "writev");
	writeshim_sym(&real_pwritev, "pwritev");
	writeshim_sym(&real_pwritev64, "pwritev64");
}

/* Whether the real function is there and the shim lets the write go on. */
static int
writeshim_go(int have_real, int fd)
{
	int error;

	if (!have_real) {
		errno = ENOSYS;
		return 0;
	}
	if ((error = shim_before_write(fd)) != 0) {
		errno = error;
		return 0;
	}
	return 1;
}

/* write(2) through the shim. */
ssize_t
write(int fd, const void *buf, size_t len)
{
	if (!writeshim_go(real_write != NULL, fd))
		return -1;
	return real_write(fd, buf, len);
}

/* pwrite(2) through the shim. */
ssize_t
pwrite(int fd, const void *buf, size_t len, off_t off)
{
	if (!writeshim_go(real_pwrite != NULL, fd))
		return -1;
	return real_pwrite(fd, buf, len, off);
}

/* pwrite64, the name pwrite takes with 64-bit file offsets. */
ssize_t
pwrite64(int fd, const void *buf, size_t len, off64_t off)
{
	if (!writeshim_go(real_pwrite64 != NULL, fd))
		return -1;
	return real_pwrite64(fd, buf, len, off);
}

/* writev(2) through the shim. */
ssize_t
writev(int fd, const struct iovec *iov, int iovcnt)
{
	if (!writeshim_go(real_writev != NULL, fd))
		return -1;
	return real_writev(fd, iov, iovcnt);
}

/* pwritev(2) through the shim. */
ssize_t
pwritev(int fd, const struct iovec *iov, int iovcnt, off_t off)
{
	if (!writeshim_go(real_pwritev != NULL, fd))
		return -1;
	return real_pwritev(fd, iov, iovcnt, off);
}

/* pwritev64, the name pwritev takes with 64-bit file offsets. */
ssize_t
pwritev64(int fd, const struct iovec *iov, int iovcnt, off64_t off)
{
	if (!writeshim_go(real_pwritev64 != NULL, fd))
		return -1;
	return real_pwritev64(fd, iov, iovcnt, off);
}

#endif
