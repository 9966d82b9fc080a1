// Linux interfaces Swift's Glibc module does not bring in, as `static inline` helpers, and
// zlib (already in every box through FFmpeg and NIO) for the update bundle's blocks.
#ifndef JUNCTION_CSYSTEM_SHIM_H
#define JUNCTION_CSYSTEM_SHIM_H

#include <malloc.h>
#include <sys/timex.h>
#include <zlib.h>

/// Limits glibc's malloc to one arena (M_ARENA_MAX): without it each thread that allocates gets
/// an arena of its own, each with its own dirty pages. 1 when set.
static inline int csys_single_malloc_arena(void) {
    return mallopt(M_ARENA_MAX, 1);
}

/// 1 when the kernel considers the wall clock synchronised (adjtimex does not report
/// TIME_ERROR, i.e. STA_UNSYNC is clear), 0 when it does not, -1 when adjtimex cannot be asked
/// (a seccomp filter such as systemd's ProtectClock= answers EPERM even to a read).
static inline int csys_clock_synchronized(void) {
    struct timex tx = {0};
    int state = adjtimex(&tx);
    if (state == -1) return -1;
    return state == TIME_ERROR ? 0 : 1;
}

#endif
