/* A C guest that talks and shares through the wasmproc_v1 imports (see
 * wasmproc_abi::share): it takes numbers from the queue "jobs" until the
 * host closes it, adds each to the u64 at offset 0 of the region "counts"
 * and counts them at offset 8, answers each with its double on "doubled",
 * and prints how many it took. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define WASMPROC(name) __attribute__((import_module("wasmproc_v1"), import_name(name)))

WASMPROC("queue_open") int32_t queue_open(const char *name, int32_t len);
WASMPROC("channel_send") int32_t channel_send(int32_t handle, const char *ptr, int32_t len, int64_t timeout_ns);
WASMPROC("channel_recv") int64_t channel_recv(int32_t handle, int64_t timeout_ns);
WASMPROC("message_read") void message_read(char *ptr);
WASMPROC("region_open") int32_t region_open(const char *name, int32_t len);
WASMPROC("region_atomic64") int64_t region_atomic64(int32_t handle, int32_t op, int64_t offset, int64_t a, int64_t b);

enum { FETCH_ADD = 2, WAIT_FOREVER = -1 };

static int32_t open_queue(const char *name) { return queue_open(name, (int32_t)strlen(name)); }

int main(void) {
    int32_t jobs = open_queue("jobs");
    int32_t doubled = open_queue("doubled");
    int32_t counts = region_open("counts", 6);
    if (jobs < 0 || doubled < 0 || counts < 0) {
        fprintf(stderr, "the host did not share jobs, doubled and counts\n");
        return 2;
    }
    char message[32];
    long taken = 0;
    for (;;) {
        /* A negative length: the queue is closed and drained. */
        int64_t len = channel_recv(jobs, WAIT_FOREVER);
        if (len < 0) break;
        if (len >= (int64_t)sizeof message) return 3;
        message_read(message);
        message[len] = '\0';
        long long n = atoll(message); /* the message is JSON: a number */
        region_atomic64(counts, FETCH_ADD, 0, n, 0);
        region_atomic64(counts, FETCH_ADD, 8, 1, 0);
        int written = snprintf(message, sizeof message, "%lld", 2 * n);
        if (channel_send(doubled, message, written, WAIT_FOREVER) != 0) return 4;
        taken++;
    }
    printf("took %ld\n", taken);
    return 0;
}
