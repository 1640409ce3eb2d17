/* fuzz_cli.c — libFuzzer harness for the CLI's option parsing. The input is a command line: its
 * first byte picks the subcommand (info, predict, explain, bench), the rest is its arguments
 * separated by NUL bytes. To keep the fuzzer from reading or writing real files, the process
 * works in a fresh empty folder and every argument is confined to it ('/' becomes '_', a
 * leading '.' becomes '_'), so no model exists and runs end after parsing. Run it with
 * -close_fd_mask=3: usage messages go to stdout and stderr. */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"

#define FUZZ_MAX_ARGS 64

static char fuzz_dir[256];

static void leave_dir(void) {
    if (fuzz_dir[0]) rmdir(fuzz_dir);
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc, (void)argv;
    const char *tmp = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
    snprintf(fuzz_dir, sizeof fuzz_dir, "%s/salient-fuzz-cli-XXXXXX", tmp);
    if (!mkdtemp(fuzz_dir) || chdir(fuzz_dir) != 0) abort();
    atexit(leave_dir);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1 || size > 4096) return 0;
    static const char *cmds[] = {"info", "predict", "explain", "bench"};
    char *buf = malloc(size);   /* the arguments, NUL-terminated (the last one by us) */
    if (!buf) return 0;
    memcpy(buf, data + 1, size - 1);
    buf[size - 1] = 0;
    char *argv[FUZZ_MAX_ARGS + 2];
    int argc = 0;
    argv[argc++] = (char *)cmds[data[0] % 4];
    for (size_t i = 0; i < size - 1 && argc < FUZZ_MAX_ARGS;) {
        char *a = buf + i;
        size_t n = strlen(a);
        for (size_t k = 0; k < n; k++)
            if (a[k] == '/') a[k] = '_';
        if (a[0] == '.') a[0] = '_';
        argv[argc++] = a;
        i += n + 1;
    }
    argv[argc] = NULL;
    switch (data[0] % 4) {
    case 0: cmd_info(argc, argv); break;
    case 1: cmd_predict(argc, argv); break;
    case 2: cmd_explain(argc, argv); break;
    default: cmd_bench(argc, argv); break;
    }
    free(buf);
    return 0;
}
