/* fuzz_image.c — libFuzzer harness for the image decoders (PNG, JPEG, BMP, PGM/PPM) and the
 * preprocessing pipeline: the input is an image file's bytes (see sal_fuzz_image_one). */
#include <stddef.h>
#include <stdint.h>

#include "fuzz_entry.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    sal_fuzz_image_one(data, size);
    return 0;
}
