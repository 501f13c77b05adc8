#!/bin/bash
# Prepares what tools/gpu-bench.sh needs on a borrowed GPU machine (no Node, no npm, no network):
#   .devpkg/node.xz               this machine's Node binary
#   .devpkg/node_modules.tar.xz   node_modules without what a benchmark never loads: TypeScript,
#                                 esbuild, Playwright, node-gyp, other platforms' Dawn builds, source
#                                 maps, declarations, tfjs's browser bundles and tests (Node loads
#                                 its *.node.js bundles)
#   .gl/libvulkan1_*.deb          the Vulkan loader Dawn opens (the NVIDIA driver brings the ICD)
# and builds dist/. Then, with the `device` tool (its `carry` takes ignored paths):
#   run  command: bash tools/gpu-bench.sh full   carry: [".devpkg", ".gl", "dist"]
# The three together must stay under the tool's 64 MiB; this prints their sizes.
set -euo pipefail
cd "$(dirname "$0")/.."
npm run build >/dev/null
mkdir -p .devpkg .gl
xz -T0 -9 -c "$(command -v node)" > .devpkg/node.xz
tar --exclude='node_modules/typescript' --exclude='node_modules/@esbuild' --exclude='node_modules/esbuild' \
    --exclude='node_modules/playwright*' --exclude='node_modules/node-gyp' --exclude='node_modules/@types' \
    --exclude='node_modules/webgpu/dist/darwin-*' --exclude='node_modules/webgpu/dist/win32-*' \
    --exclude='node_modules/webgpu/dist/linux-arm64' --exclude='*.map' --exclude='*.d.ts' \
    --exclude='node_modules/@tensorflow/*/dist/*.es2017*' --exclude='node_modules/@tensorflow/*/dist/*.fesm*' \
    --exclude='node_modules/@tensorflow/*/dist/*.min.js' --exclude='node_modules/@tensorflow/*/dist/*_test.js' \
    -cf - node_modules | xz -T0 -9 > .devpkg/node_modules.tar.xz
if ! ls .gl/libvulkan1_*.deb >/dev/null 2>&1; then
  (cd .gl && apt-get download libvulkan1)
fi
du -ch .devpkg .gl dist | tail -n 4
total=$(du -cb .devpkg .gl dist | tail -n 1 | cut -f1)
if [ "$total" -gt $((64 * 1024 * 1024)) ]; then
  echo "gpu-pack: $((total / 1024 / 1024)) MiB: over the device tool's 64 MiB carry limit" >&2
  exit 1
fi
