#define _GNU_SOURCE
/* A minimal HTTP/1.1 responder in C, the same logic as examples/http.rs: a
 * WASI command reading the request head from stdin and answering on
 * stdout, then exiting (the host hangs up: `Connection: close`).
 *
 *   clang --target=wasm32-wasi --sysroot=/usr -O2 -o http.wasm http.c
 *   wasmproc serve http.wasm --listen 127.0.0.1:8080 */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#define MAX_HEAD 8192

static int respond(const char *status, const char *body) {
    char response[MAX_HEAD + 512];
    int n = snprintf(response, sizeof response,
                     "HTTP/1.1 %s\r\nContent-Type: text/plain; charset=utf-8\r\n"
                     "Content-Length: %zu\r\nConnection: close\r\n\r\n%s",
                     status, strlen(body), body);
    for (int sent = 0; sent < n;) {
        ssize_t w = write(1, response + sent, (size_t)(n - sent));
        if (w < 0) return 1;
        sent += (int)w;
    }
    return 0;
}

int main(void) {
    char head[MAX_HEAD + 1];
    size_t len = 0;
    while (!memmem(head, len, "\r\n\r\n", 4)) {
        if (len == MAX_HEAD)
            return respond("431 Request Header Fields Too Large", "the request head is over 8 KiB\n");
        ssize_t got = read(0, head + len, MAX_HEAD - len);
        if (got < 0) return 1;
        if (got == 0) break;
        len += (size_t)got;
    }
    head[len] = 0;
    char method[16], target[2048], version[16];
    if (sscanf(head, "%15s %2047s %15s", method, target, version) != 3 ||
        strncmp(version, "HTTP/1.", 7) != 0)
        return respond("400 Bad Request", "not an HTTP/1.x request line\n");
    char body[4096];
    snprintf(body, sizeof body, "Hello from a wasmproc sandbox: %s %s\n", method, target);
    return respond("200 OK", body);
}
