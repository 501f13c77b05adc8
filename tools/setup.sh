#!/usr/bin/env bash
# One-time setup for a fresh machine: npm packages, a WebGPU driver when none works, the build.
# On Linux without a GPU, Dawn needs Mesa's lavapipe (CPU Vulkan); Debian 12's Mesa 22 is too old,
# so we take mesa-vulkan-drivers from bookworm-backports, on the machine's own Debian mirror.
set -euo pipefail
cd "$(dirname "$0")/.."

major=$(node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0)
if [ "$major" -lt 20 ]; then
  echo "setup: Node.js >= 20 is required (found $(node --version 2>/dev/null || echo none))." >&2
  exit 1
fi

export XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-/tmp/xdg-runtime-$(id -u)}"
mkdir -p "$XDG_RUNTIME_DIR" && chmod 700 "$XDG_RUNTIME_DIR"

if [ -f package-lock.json ]; then npm ci --no-audit --no-fund; else npm install --no-audit --no-fund; fi

# The mirror URI of the machine's existing Debian (bookworm) entry, from deb822 or one-line sources.
debian_mirror() {
  local f uri
  for f in /etc/apt/sources.list.d/*.sources; do
    [ -f "$f" ] || continue
    uri=$(awk 'BEGIN{RS="";FS="\n"} /Suites:[^\n]*bookworm([ \n]|$)/ && /Components:[^\n]*main/ {
            for (i=1;i<=NF;i++) if ($i ~ /^URIs:/) { sub(/^URIs:[ \t]*/, "", $i); split($i, a, " "); print a[1]; exit } }' "$f")
    [ -n "$uri" ] && { echo "$uri"; return; }
  done
  for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
    [ -f "$f" ] || continue
    uri=$(awk '$1=="deb" && $3=="bookworm" {for(i=2;i<=NF;i++) if ($i ~ /^[a-z]+:\/\//) {print $i; exit}}' "$f")
    [ -n "$uri" ] && { echo "$uri"; return; }
  done
}

install_lavapipe() {
  local mirror
  mirror=$(debian_mirror)
  if [ -z "$mirror" ]; then
    echo "setup: could not find the Debian bookworm entry in /etc/apt to derive the backports mirror." >&2
    return 1
  fi
  echo "setup: installing Mesa's lavapipe (mesa-vulkan-drivers) from bookworm-backports at $mirror"
  if ! grep -rqs "bookworm-backports" /etc/apt/sources.list /etc/apt/sources.list.d/; then
    printf 'Types: deb\nURIs: %s\nSuites: bookworm-backports\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' \
      "$mirror" > /etc/apt/sources.list.d/bookworm-backports.sources
  fi
  apt-get update -q
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q -t bookworm-backports mesa-vulkan-drivers
}

# Debian's Chromium for the browser tests (npm run test:browser drives /usr/bin/chromium with
# playwright-core, which never downloads a browser). Installed when root with apt; otherwise a note.
install_chromium() {
  [ -x /usr/bin/chromium ] && return 0
  if [ "$(uname -s)" = "Linux" ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "setup: installing Debian's chromium for the browser tests"
    apt-get update -q
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium
  else
    echo "setup: /usr/bin/chromium is missing; the browser tests need it: as root, apt-get install -y chromium" >&2
  fi
}

# Debian 12's own Mesa 22 lavapipe is too old for core WebGPU: treat it as "no driver".
old_mesa() { dpkg-query -W -f='${Version}' mesa-vulkan-drivers 2>/dev/null | grep -q '^22\.'; }

if ! old_mesa && node tools/check-gpu.js; then
  :
elif [ "$(uname -s)" = "Linux" ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null && grep -qs bookworm /etc/os-release; then
  install_lavapipe
  node tools/check-gpu.js || { echo "setup: still no usable WebGPU adapter after installing lavapipe." >&2; exit 1; }
else
  mirror=$(debian_mirror || true)
  mirror=${mirror:-http://YOUR-DEBIAN-MIRROR/debian}
  cat >&2 <<MSG
setup: no usable WebGPU adapter. On Debian 12 without a GPU, install Mesa's lavapipe from backports, as root:
  echo 'deb $mirror bookworm-backports main' > /etc/apt/sources.list.d/bookworm-backports.list
  apt-get update && apt-get install -y -t bookworm-backports mesa-vulkan-drivers
then run \`npm run setup\` again.
MSG
  exit 1
fi

# Open MPI and the addon for multi-process training (`--distributed`); optional: the single-process
# path works without it, and --distributed says what is missing. openssh-client: mpirun refuses to
# start without an rsh agent even on one host; python3, g++, make: node-gyp.
install_mpi() {
  if ! command -v mpicc >/dev/null && [ "$(uname -s)" = "Linux" ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "setup: installing Open MPI (openmpi-bin libopenmpi-dev) for --distributed training"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends openmpi-bin libopenmpi-dev openssh-client g++ make python3 \
      || { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends openmpi-bin libopenmpi-dev openssh-client g++ make python3; } \
      || echo "setup: could not install Open MPI; --distributed training will be unavailable" >&2
  fi
  if command -v mpicc >/dev/null && command -v python3 >/dev/null; then
    bash tools/build-mpi.sh || echo "setup: the MPI addon did not build; --distributed training will be unavailable" >&2
  else
    echo "setup: Open MPI (or python3 for node-gyp) is not installed, so --distributed training is unavailable (as root: apt-get install -y openmpi-bin libopenmpi-dev python3, then npm run build:mpi)" >&2
  fi
}

install_chromium
install_mpi
npm run build
echo "setup: done."
