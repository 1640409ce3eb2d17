/* fuzz_npy.c — libFuzzer harness for the .npy reader: the input is a .npy file's bytes (see
 * sal_fuzz_npy_one). */
#include <stddef.h>
#include <stdint.h>

#include "fuzz_entry.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    sal_fuzz_npy_one(data, size);
    return 0;
}
