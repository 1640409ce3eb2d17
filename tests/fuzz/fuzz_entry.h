/* fuzz_entry.h — the entry points the fuzz harnesses (tests/fuzz/fuzz_*.c, libFuzzer) and the
 * regression replay (tests/test_fuzz_regress.c, Criterion) share: each takes one input's bytes and
 * pushes them through salient's public entry points. Every outcome must be a status code with
 * everything released; a crash, a sanitizer report or a leak is a finding. */
#ifndef SAL_FUZZ_ENTRY_H
#define SAL_FUZZ_ENTRY_H

#include <stddef.h>
#include <stdint.h>

#include "salient.h"

/* An ONNX file: sal_model_load_buffer, then a CPU session (1 thread, 64 MiB plan limit) planned
 * for a batch of 2 (the model's sides, or 16x16 when dynamic) and, when the input is small, one forward pass on
 * zeros. Returns the first failing status (0 when everything succeeded). */
int sal_fuzz_onnx_one(const uint8_t *data, size_t size);
/* The same, with the failure's message (the loader's, or the session's) in *err. */
int sal_fuzz_onnx_run(const uint8_t *data, size_t size, sal_error *err);

/* An image file: written to a private temporary file, decoded with sal_image_load, then
 * preprocessed twice (ImageNet 24x24 with resize and crop, gray 17x13 stretched). */
int sal_fuzz_image_one(const uint8_t *data, size_t size);

/* A .npy file: written to a private temporary file and read with sal_npy_read. */
int sal_fuzz_npy_one(const uint8_t *data, size_t size);

#endif
