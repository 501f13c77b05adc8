#!/usr/bin/env bash
# Builds the Open MPI addon (native/mpi -> native/mpi/build/Release/mpi_addon.node) that
# `node cli/train.js --distributed` loads. Needs Open MPI's compiler wrapper (Debian: openmpi-bin
# libopenmpi-dev), a C++ compiler and make. Uses Node's own headers when they are installed next to
# the node binary (no download). Exits non-zero, saying what is missing, when it cannot build.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v mpicc >/dev/null; then
  echo "build-mpi: Open MPI is not installed (no mpicc); as root on Debian: apt-get install -y openmpi-bin libopenmpi-dev" >&2
  exit 1
fi
if ! command -v g++ >/dev/null || ! command -v make >/dev/null; then
  echo "build-mpi: a C++ compiler and make are needed (Debian: apt-get install -y g++ make)" >&2
  exit 1
fi
nodedir=$(dirname "$(dirname "$(readlink -f "$(command -v node)")")")
args=()
[ -f "$nodedir/include/node/node_api.h" ] && args+=(--nodedir="$nodedir")
npx --no-install node-gyp rebuild --directory native/mpi "${args[@]}" --loglevel=warn
echo "build-mpi: built native/mpi/build/Release/mpi_addon.node"
