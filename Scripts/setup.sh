#!/usr/bin/env bash
# Installs what Amanat needs on Debian when it is missing: libsodium-dev, pkg-config, and the age tool
# (used by the interoperability tests). Uses sudo when not root.
set -euo pipefail
need=()
pkg-config --exists libsodium 2>/dev/null || need+=(libsodium-dev)
command -v pkg-config >/dev/null 2>&1 || need+=(pkg-config)
command -v age >/dev/null 2>&1 || need+=(age)
[ ${#need[@]} -eq 0 ] && exit 0
echo "Installing ${need[*]} with apt-get…" >&2
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${need[@]}" >/dev/null
