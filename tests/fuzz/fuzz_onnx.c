/* fuzz_onnx.c — libFuzzer harness for the ONNX loader and planner: the input is an ONNX file;
 * it is loaded with sal_model_load_buffer, bound to a CPU session with a 256 MiB plan limit and
 * planned for a batch of 2 (dynamic sides at 32x32). Every outcome must be a status code, with
 * everything released (LeakSanitizer checks at exit). Built by SAL_FUZZ=ON (see CMakeLists.txt);
 * the regression replay (tests/test_fuzz_regress.c) calls sal_fuzz_onnx_one on every corpus file. */
#include <stddef.h>
#include <stdint.h>

#include "fuzz_entry.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    sal_fuzz_onnx_one(data, size);
    return 0;
}
