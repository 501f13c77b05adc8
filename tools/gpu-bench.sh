#!/bin/bash
# Runs the GPU benchmarks on a borrowed machine with a real GPU that has neither Node nor npm nor a
# network (the `device` tool's machines). What it needs travels with the working tree, prepared here:
#   .devpkg/node.xz               this machine's Node 20 binary, xz-compressed
#   .devpkg/node_modules.tar.xz   node_modules without dev-only tools, other platforms' Dawn builds,
#                                 source maps and declarations (about 7 MB compressed)
#   .gl/libvulkan1_*.deb          the Vulkan loader Dawn opens (the NVIDIA driver brings the ICD)
#   dist/                         `npm run build`'s output
# Usage there: bash tools/gpu-bench.sh [quick|full|profile]   (logs go to $OUT, else bench-out/)
# quick: adapter check and a BENCH_QUICK matmul. full (the issue-14 figures, one device call of at
# most ~540 s): matmul (with 2048^3, and autocast against fp32: tensor cores where the adapter has
# subgroup matrices), conv (also under autocast), R50-FPN training at 800 px in fp32 and with --amp,
# R50-FPN inference at 800x1333 in fp32 and with --amp; every benchmark also as JSON lines (*.jsonl),
# the adapter line says whether tensor cores passed their init checks. profile (a second
# call): per-kernel GPU time of R50-FPN and tiny-cpu training iterations, roi_align, and the default
# `node cli/train.js` run.
set -u
mode=${1:-full}
out=${OUT:-bench-out}
mkdir -p "$out"
for f in .gl/*.deb; do dpkg -x "$f" /; done
ldconfig
mkdir -p /tmp/nodebin
xz -dc .devpkg/node.xz > /tmp/nodebin/node && chmod +x /tmp/nodebin/node
export PATH=/tmp/nodebin:$PATH
[ -d node_modules ] || tar xJf .devpkg/node_modules.tar.xz
export XDG_RUNTIME_DIR=/tmp/xdg && mkdir -p "$XDG_RUNTIME_DIR"
icd=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
[ -f "$icd" ] && export VK_DRIVER_FILES=$icd
nvidia-smi -L || true
node --version
adapter() {
  node --input-type=module -e "
    await import('./dist/cli/node-gpu.js');
    const E = await import('./dist/engine/index.js');
    await E.init();
    console.log('adapter:', E.adapterReport?.description ?? 'unknown');
    process.exit(0);"
}
adapter 2>&1 | tee "$out/adapter.txt"
if [ "$mode" = quick ]; then
  BENCH_QUICK=1 timeout 120 node dist/bench/matmul.js 2>&1 | tee "$out/matmul-quick.txt"
fi
if [ "$mode" = full ]; then
  # Each step's stdout: the table on the terminal and in NAME.txt, JSON lines in NAME.jsonl.
  run() { local name=$1 t=$2; shift 2; timeout "$t" "$@" 2>&1 | tee "$out/$name.txt" | grep -v '^{' ; grep '^{' "$out/$name.txt" > "$out/$name.jsonl"; }
  run matmul 100 node dist/bench/matmul.js --json --published-tflops 67
  run conv 100 node dist/bench/conv.js --json
  run train-r50-800 110 node dist/bench/train.js --r50-full --only r50 --json
  run train-r50-800-amp 110 node dist/bench/train.js --r50-full --only r50 --amp --json
  run infer-r50-800 45 node dist/bench/infer.js --json
  run infer-r50-800-amp 45 node dist/bench/infer.js --amp --json
fi
if [ "$mode" = profile ]; then
  # Per-kernel GPU time of a training iteration: R50-FPN at 800 px, then the default model.
  timeout 120 node dist/tools/profile-train.js --config tools/r50-800.json --formula-weights --iters 5 --warmup 2 --top 40 2>&1 | tee "$out/profile-r50.txt"
  timeout 60 node dist/tools/profile-train.js --iters 20 --top 25 2>&1 | tee "$out/profile-tiny-cpu.txt"
  timeout 60 node dist/bench/roi_align.js 2>&1 | tee "$out/roi_align.txt"
  # The default run (`node cli/train.js`), as a user would start it.
  timeout 240 node cli/train.js --out /tmp/default-run 2>&1 | grep -v "^ Average" | tee "$out/default-run.txt"
fi
