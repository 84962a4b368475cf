#!/usr/bin/env bash
# Builds the previous-release bundle fixture with that release's binary ($1): a statement with a JPEG that carries
# GPS metadata and a PDF attached, exported (without --strip-location, which that release did not have) to the age
# key in key.txt. StripLocationTests checks that today's verifiers still accept it. Needs age-keygen and python3.
set -euo pipefail
BIN=$1
HERE=$(cd "$(dirname "$0")" && pwd)
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
export AMANAT_PASSPHRASE="correct horse battery staple" AMANAT_VAULT="$WORK/vault"
python3 -c 'import json,sys; v=json.load(open(sys.argv[1])); open(sys.argv[2],"wb").write(bytes.fromhex(v["files"][0]["original_hex"]))' \
  "$HERE/../../../Protocol/vectors/strip-v1.json" "$WORK/photo.jpg"
printf '%%PDF-1.7\nscan of a detention order\n' > "$WORK/order.pdf"
$BIN init --device-name "Coordinator laptop" --kdf interactive >/dev/null
ID=$($BIN add statement --title "Checkpoint photo" --body "Taken at the northern checkpoint.")
$BIN attach "$ID" "$WORK/photo.jpg" >/dev/null 2>&1
$BIN attach "$ID" "$WORK/order.pdf" >/dev/null 2>&1
[ -f "$HERE/key.txt" ] || age-keygen -o "$HERE/key.txt" 2>/dev/null
$BIN export --out "$HERE/bundle.age" --force --recipient "$(age-keygen -y "$HERE/key.txt")" --id "$ID" >/dev/null 2>&1
echo "$ID" > "$HERE/record-id.txt"
$BIN status --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["vault"])' > "$HERE/vault.txt"
