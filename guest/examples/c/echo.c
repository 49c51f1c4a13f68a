/* An echo handler in C: a plain WASI command whose stdin and stdout are the
 * connection (the inetd convention), so any language that reads stdin and
 * writes stdout can serve.
 *
 *   clang --target=wasm32-wasi --sysroot=/usr -O2 -o echo.wasm echo.c
 *   wasmproc serve echo.wasm --listen 127.0.0.1:7000
 *
 * It sends back every byte as it arrives, until the client closes its side;
 * then it exits and the host hangs up. */
#include <unistd.h>

int main(void) {
    char buffer[65536];
    for (;;) {
        ssize_t got = read(0, buffer, sizeof buffer);
        if (got == 0) return 0;
        if (got < 0) return 1;
        for (ssize_t sent = 0; sent < got;) {
            ssize_t n = write(1, buffer + sent, (size_t)(got - sent));
            if (n < 0) return 1;
            sent += n;
        }
    }
}
