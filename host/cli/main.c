/* main.c — the `salient` program: subcommand dispatch, --help, --version. */
#include <stdio.h>
#include <string.h>

#include "cli.h"

static const char *usage =
    "usage: salient COMMAND [options]\n"
    "\n"
    "Explain image classifiers: saliency maps for ONNX CNNs on the CPU (and the GPU, when built).\n"
    "\n"
    "commands:\n"
    "  info MODEL.onnx                 inputs, outputs, layers with output shapes, op counts\n"
    "  predict -m MODEL.onnx INPUT...  top-k classes for images (PNG, JPEG, BMP, PGM/PPM) or\n"
    "                                  .npy float32 (C,H,W) tensors already preprocessed; a\n"
    "                                  folder stands for the inputs under it\n"
    "  explain -m MODEL.onnx -M METHOD[,METHOD...] INPUT... -o OUTDIR\n"
    "                                  attribution maps (overlays, heatmaps, raw arrays) and\n"
    "                                  summary.csv / summary.jsonl\n"
    "  bench -m MODEL.onnx [-M METHOD,...] [--images N] [INPUT...]\n"
    "                                  throughput per method (images/s, ms/image)\n"
    "  audit -m MODEL.onnx DATA -o OUT  a whole folder, resumably: where the model looks per\n"
    "                                  class, mean maps, shortcut flags (a watermark in a\n"
    "                                  corner), OUT/audit.sqlite, findings.json, report.html\n"
    "\n"
    "Run `salient COMMAND --help` for a command's options.\n";

int main(int argc, char **argv) {
    if (argc < 2) { fputs(usage, stderr); return EXIT_USAGE; }
    const char *cmd = argv[1];
    if (!strcmp(cmd, "--help") || !strcmp(cmd, "-h") || !strcmp(cmd, "help")) { fputs(usage, stdout); return EXIT_OK; }
    if (!strcmp(cmd, "--version")) { printf("salient %s\n", SAL_VERSION_STRING); return EXIT_OK; }
    if (!strcmp(cmd, "info")) return cmd_info(argc - 1, argv + 1);
    if (!strcmp(cmd, "predict")) return cmd_predict(argc - 1, argv + 1);
    if (!strcmp(cmd, "explain")) return cmd_explain(argc - 1, argv + 1);
    if (!strcmp(cmd, "bench")) return cmd_bench(argc - 1, argv + 1);
    if (!strcmp(cmd, "audit")) return cmd_audit(argc - 1, argv + 1);
    static const char *const commands[] = {"info", "predict", "explain", "bench", "audit"};
    cli_unknown("command", cmd, commands, 5, NULL);
    return EXIT_USAGE;
}
