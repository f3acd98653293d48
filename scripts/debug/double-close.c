/*
 * double-close.c: finds the code that closes a file descriptor it does not own.
 *
 * Why: a debug build aborts with "IO Safety violation: owned file descriptor already closed"
 * when an `OwnedFd` is dropped after someone else closed its number; the abort names the
 * victim, not the culprit. Preloaded, this `close()` keeps each closed number occupied (a
 * /dev/null duplicate, released after 12000 later closes) so it cannot be reused, and on a
 * second close of it prints the stacks of both closes to stderr.
 *
 *   gcc -O1 -g -shared -fPIC -o /tmp/double-close.so scripts/debug/double-close.c -ldl -lpthread
 *   ulimit -n 20000
 *   LD_PRELOAD=/tmp/double-close.so target/debug/deps/proxy-<hash> 2>&1 | grep -A40 "DOUBLE CLOSE"
 *
 * A debugging aid only: not built by the workspace or CI.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <execinfo.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <errno.h>
#include <sys/syscall.h>

#define MAXFD 262144
#define DEPTH 40
static void *bt[MAXFD][DEPTH];
static int btn[MAXFD];
static unsigned char tomb[MAXFD];
static int devnull = -1;
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
#define RING 12000
static int ring[RING]; static int rhead = 0, rcount = 0;

int close(int fd) {
    if (devnull < 0) {
        devnull = syscall(SYS_openat, AT_FDCWD, "/dev/null", O_RDWR | O_CLOEXEC);
    }
    if (fd < 0 || fd >= MAXFD || fd == devnull) return syscall(SYS_close, fd);
    pthread_mutex_lock(&mu);
    if (tomb[fd]) {
        char buf[128];
        int n = snprintf(buf, sizeof buf, "\n=== DOUBLE CLOSE fd %d (tid %ld). First close:\n", fd, (long)syscall(SYS_gettid));
        write(2, buf, n);
        backtrace_symbols_fd(bt[fd], btn[fd], 2);
        write(2, "=== second close:\n", 18);
        void *b[DEPTH]; int k = backtrace(b, DEPTH);
        backtrace_symbols_fd(b, k, 2);
        pthread_mutex_unlock(&mu);
        errno = EBADF;
        return -1;
    }
    // Is it open at all?
    if (fcntl(fd, F_GETFD) < 0) { pthread_mutex_unlock(&mu); return syscall(SYS_close, fd); }
    btn[fd] = backtrace(bt[fd], DEPTH);
    tomb[fd] = 1;
    // Keep the number occupied so it is never reused.
    int r = dup3(devnull, fd, O_CLOEXEC);
    if (rcount == RING) {
        int old = ring[rhead];
        tomb[old] = 0;
        syscall(SYS_close, old);
        ring[rhead] = fd; rhead = (rhead + 1) % RING;
    } else { ring[(rhead + rcount) % RING] = fd; rcount++; }
    pthread_mutex_unlock(&mu);
    return r < 0 ? -1 : 0;
}
