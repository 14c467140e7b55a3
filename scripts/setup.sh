#!/usr/bin/env bash
# Installs the system libraries spectrain links against (cfitsio, HDF5) and
# pkg-config. Idempotent: does nothing when they are already present, so the
# README's commands can call it every time.
set -euo pipefail

need=()
for pkg in libcfitsio-dev libhdf5-dev pkg-config; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || need+=("$pkg")
done
# Optional: Mesa's software Vulkan, to run the wgpu path without a GPU.
if [ "${SPECTRAIN_WITH_VULKAN:-0}" = 1 ]; then
  for pkg in mesa-vulkan-drivers libvulkan1; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || need+=("$pkg")
  done
fi
if [ ${#need[@]} -eq 0 ]; then
  exit 0
fi
echo "setup: installing ${need[*]}" >&2
SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
