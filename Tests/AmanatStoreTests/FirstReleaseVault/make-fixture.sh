#!/usr/bin/env bash
# Builds the first-release vault fixture with the first-release binary ($1) into $2.
set -euo pipefail
BIN=$1; OUT=$2
rm -rf "$OUT" /tmp/fx/work; mkdir -p "$OUT" /tmp/fx/work
export AMANAT_PASSPHRASE="correct horse battery staple"
A="$OUT/device-a"; B="$OUT/device-b"; USB=/tmp/fx/work/team.amanat-sync
$BIN --vault "$A" init --device-name "Coordinator laptop" --kdf interactive >/dev/null
S=$($BIN --vault "$A" add statement --title "Coalition statement" --body "We condemn the recognition." --issued-by "Coalition" --issued-on 2025-07 --tag afghanistan)
T=$($BIN --vault "$A" add testimony --witness W-001 --narrative "I was detained at the checkpoint." --incident-date 2024-03-08 --location Kabul --tag detention)
CODE=$($BIN --vault "$A" invite --out /tmp/fx/work/inv.amanat | grep -oE '[A-Z2-7]{4}(-[A-Z2-7]{4}){5}')
$BIN --vault "$B" join /tmp/fx/work/inv.amanat --code "$CODE" --device-name "Field laptop" --kdf interactive >/dev/null
$BIN --vault "$A" sync "$USB" >/dev/null
$BIN --vault "$B" sync "$USB" >/dev/null
U=$($BIN --vault "$B" add testimony --witness W-002 --narrative "They took our phones." --location Herat --tag detention)
$BIN --vault "$B" edit "$T" --set location=Mazar >/dev/null
$BIN --vault "$A" edit "$T" --set location=Kandahar >/dev/null
$BIN --vault "$A" tag "$S" --add verified >/dev/null
D=$($BIN --vault "$A" add statement --title "Draft to delete" --body "x")
$BIN --vault "$A" delete "$D" >/dev/null
$BIN --vault "$B" sync "$USB" >/dev/null
$BIN --vault "$A" sync "$USB" >/dev/null
$BIN --vault "$B" sync "$USB" >/dev/null
for v in "$A" "$B"; do
  sqlite3 "$v/vault.sqlite" 'PRAGMA wal_checkpoint(TRUNCATE);' >/dev/null
  rm -f "$v/vault.sqlite-wal" "$v/vault.sqlite-shm"
done
$BIN --vault "$A" list --json > "$OUT/list-a.json"
$BIN --vault "$B" list --json > "$OUT/list-b.json"
$BIN --vault "$A" status --json > "$OUT/status-a.json"
$BIN --vault "$A" verify > "$OUT/verify-a.txt"
for v in "$A" "$B"; do
  sqlite3 "$v/vault.sqlite" 'PRAGMA wal_checkpoint(TRUNCATE);' >/dev/null
  rm -f "$v/vault.sqlite-wal" "$v/vault.sqlite-shm"
done
echo "$T" > "$OUT/testimony-id.txt"
