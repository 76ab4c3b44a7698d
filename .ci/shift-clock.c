/* Moves the wall clock (and only the wall clock) of a process and its children by $SHIFT_CLOCK_SECONDS.
 *
 * Built and preloaded by .ci/at-date. Monotonic clocks, sleeps and timed waits are left alone, so no
 * interval changes: libfaketime 0.9.10 shifts CLOCK_MONOTONIC too, which makes Python's timed lock waits
 * (sem_clockwait, which it does not intercept) hang, and without that its sleeps fail with EINVAL. */
#define _GNU_SOURCE
#include <stdlib.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static long shift(void) {
    static long seconds = -1;
    if (seconds == -1) {
        const char *text = getenv("SHIFT_CLOCK_SECONDS");
        seconds = text ? atol(text) : 0;
    }
    return seconds;
}

static int is_wall(clockid_t clock) {
    return clock == CLOCK_REALTIME || clock == CLOCK_REALTIME_COARSE || clock == CLOCK_TAI;
}

int clock_gettime(clockid_t clock, struct timespec *ts) {
    int rc = (int)syscall(SYS_clock_gettime, clock, ts);
    if (rc == 0 && is_wall(clock)) ts->tv_sec += shift();
    return rc;
}

int gettimeofday(struct timeval *tv, void *tz) {
    struct timespec ts;
    int rc = clock_gettime(CLOCK_REALTIME, &ts);
    if (rc == 0 && tv) {
        tv->tv_sec = ts.tv_sec;
        tv->tv_usec = ts.tv_nsec / 1000;
    }
    (void)tz;
    return rc;
}

time_t time(time_t *out) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    if (out) *out = ts.tv_sec;
    return ts.tv_sec;
}
