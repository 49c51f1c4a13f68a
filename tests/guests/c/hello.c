/* A C guest: greets its arguments, echoes one env var, exits with argc. */
#include <stdio.h>
#include <stdlib.h>

int main(int argc, char **argv) {
    const char *who = getenv("GREETING");
    for (int i = 1; i < argc; i++) {
        printf("%s, %s\n", who ? who : "hello", argv[i]);
    }
    fprintf(stderr, "c guest done\n");
    return argc - 1;
}
