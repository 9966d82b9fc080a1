/* A stand-in "junction" for testing the arm64 image on a machine that cannot build the real one
 * (no aarch64 Swift SDK): a static, libc-free aarch64 executable built with the Swift toolchain's
 * own clang and lld. It says what it is and exits 1, so the image boots to multi-user and its
 * junction units fail loudly instead of pretending to record. `make image-test-arm64` uses it. */
static long sys3(long n, long a, long b, long c) {
    register long x8 __asm__("x8") = n; register long x0 __asm__("x0") = a;
    register long x1 __asm__("x1") = b; register long x2 __asm__("x2") = c;
    __asm__ volatile("svc 0" : "+r"(x0) : "r"(x8), "r"(x1), "r"(x2) : "memory");
    return x0;
}
void _start(void) {
    static const char msg[] = "junction stand-in: this arm64 image was built with a stand-in binary and cannot record\n";
    sys3(64, 2, (long)msg, sizeof msg - 1);   /* write(2, ...) */
    sys3(93, 1, 0, 0);                         /* exit(1) */
    for (;;) {}
}
