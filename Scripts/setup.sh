#!/usr/bin/env bash
# Installs what Amanat needs on Debian when it is missing: libsodium-dev, pkg-config, the age tool
# (used by the interoperability tests), PyNaCl for Python 3 (Scripts/verify-bundle.py, the independent
# bundle verifier the tests run), Pillow (the location-stripping tests check that it decodes the stripped
# JPEG and PNG) and PostgreSQL's server (the relay tests start their own server in a temporary folder; no cluster
# of the system's is created or started; openssl makes its self-signed certificate). Uses sudo when not root.
set -euo pipefail
need=()
pkg-config --exists libsodium 2>/dev/null || need+=(libsodium-dev)
command -v pkg-config >/dev/null 2>&1 || need+=(pkg-config)
command -v age >/dev/null 2>&1 || need+=(age)
has_pynacl() {
    local python
    for python in python3 /usr/bin/python3; do
        command -v "$python" >/dev/null 2>&1 && "$python" -c 'import nacl.bindings' 2>/dev/null && return 0
    done
    return 1
}
has_pynacl || need+=(python3-nacl)
/usr/bin/python3 -c 'import PIL' 2>/dev/null || need+=(python3-pil)
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need+=(postgresql)
command -v openssl >/dev/null 2>&1 || need+=(openssl)
[ ${#need[@]} -eq 0 ] && exit 0
echo "Installing ${need[*]} with apt-get…" >&2
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
if [[ " ${need[*]} " == *" postgresql "* ]] && [ ! -e /etc/postgresql-common/createcluster.conf ]; then
    # The tests run their own server: Debian's package must not create and start a system-wide one.
    $sudo mkdir -p /etc/postgresql-common
    echo "create_main_cluster = false" | $sudo tee /etc/postgresql-common/createcluster.conf >/dev/null
fi
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${need[@]}" >/dev/null
