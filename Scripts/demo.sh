#!/usr/bin/env bash
# The demo of the README's quick start: a field team records, edits and verifies evidence in fresh
# temporary vaults, narrating each step. Everything happens under a temporary folder that is removed at the end.
set -euo pipefail
AMANAT="$(cd "$(dirname "${1:-.build/debug/amanat}")" && pwd)/$(basename "${1:-.build/debug/amanat}")"
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
SEED="$ROOT/seeds/coalition-statement-on-russia-recognition.txt"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/amanat-demo.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT

# A demo passphrase; real users are asked at the terminal, without echo.
export AMANAT_PASSPHRASE="demo passphrase — never use this one"
FIELD="$WORK/field-laptop"

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
run() { printf '$ amanat %s\n' "$*" >&2; "$AMANAT" "$@"; }

step "1. A field documenter creates an encrypted vault on her laptop"
run --vault "$FIELD" init --device-name "field laptop" --kdf interactive

step "2. She records the coalition's public statement (seeds/), with its real metadata"
STATEMENT=$(run --vault "$FIELD" add statement \
    --title "Coalition of Afghan women's protest movements condemns Russia's recognition of the Taliban" \
    --body-file "$SEED" \
    --issued-by "Independent Coalition of Women's Protest Movements of Afghanistan" \
    --issued-on 2025-07 --tag afghanistan --tag women --tag taliban --tag russia --tag recognition)
echo "new statement: $STATEMENT"

step "3. She records two testimonies (FICTIONAL examples: no real person, place or event)"
# The narrative comes from standard input (or is typed at the prompt), never from the command line,
# where the shell history and `ps` would keep it.
T1=$(echo "FICTIONAL EXAMPLE. The witness describes being turned away from her school gate by armed guards." |
    run --vault "$FIELD" add testimony --witness W-DEMO-001 \
    --narrative-file - \
    --incident-date 2024-03-08 --location "Example District A" --consent anonymised --tag education --tag fictional)
echo "new testimony: $T1"
T2=$(echo "FICTIONAL EXAMPLE. The witness describes a relative detained at a checkpoint for travelling without a mahram." |
    run --vault "$FIELD" add testimony --witness W-DEMO-002 \
    --narrative-file - \
    --incident-date 2024-11 --location "Example Checkpoint B" --consent restricted --tag detention --tag fictional)
echo "new testimony: $T2"

step "4. The vault on disk holds only ciphertext: no phrase of the statement is readable"
if grep -rl "bloody hands" "$FIELD" >/dev/null 2>&1; then echo "PLAINTEXT FOUND — this is a bug"; exit 1; fi
ls -l "$FIELD"
echo "grep for 'bloody hands' in the vault directory: no match"

step "5. List and show"
run --vault "$FIELD" list
run --vault "$FIELD" show "${STATEMENT:0:8}" | cut -c1-140 | head -12

step "6. An amendment to a sealed testimony: the original stays in the history"
run --vault "$FIELD" edit "${T1:0:8}" --set location="Example District C"
run --vault "$FIELD" tag "${T1:0:8}" --add reviewed
run --vault "$FIELD" history "${T1:0:8}"

step "7. Search runs over records decrypted in memory"
run --vault "$FIELD" search checkpoint

step "8. A coordinator's laptop joins the vault with a one-time invitation"
COORD="$WORK/coordinator"
STICK="$WORK/usb-stick"          # a temporary folder standing in for a USB stick
mkdir -p "$STICK"
CODE=$(run --vault "$FIELD" invite --out "$STICK/invitation.amanat" --role coordinator)
echo "invitation code (passed on by voice, never on the stick): $CODE"
run --vault "$COORD" join "$STICK/invitation.amanat" --code "$CODE" --device-name "coordinator" --kdf interactive

step "9. The USB stick carries the field laptop's records to the coordinator (both offline)"
run --vault "$FIELD" sync --create "$STICK/team.amanat-sync"
run --vault "$COORD" sync "$STICK/team.amanat-sync"
run --vault "$COORD" list
if grep -rl "bloody hands" "$STICK" >/dev/null 2>&1; then echo "PLAINTEXT FOUND ON THE STICK — this is a bug"; exit 1; fi
echo "grep for 'bloody hands' on the stick: no match (it carries only signed ciphertext)"

step "10. Both edit the same field of the same testimony while apart"
run --vault "$FIELD" edit "${T2:0:8}" --set location="Example Checkpoint B, north road"
run --vault "$COORD" edit "${T2:0:8}" --set location="Example Checkpoint B (km 12)"

step "11. They meet again through the stick: both edits are kept, shown as a conflict"
run --vault "$COORD" sync "$STICK/team.amanat-sync"
run --vault "$FIELD" sync "$STICK/team.amanat-sync"
run --vault "$FIELD" show "${T2:0:8}" | grep -A3 "^location"

step "12. The field documenter resolves it; the resolution travels back"
run --vault "$FIELD" resolve "${T2:0:8}" location --keep "Example Checkpoint B (km 12)"
run --vault "$FIELD" sync "$STICK/team.amanat-sync"
run --vault "$COORD" sync "$STICK/team.amanat-sync"
run --vault "$COORD" show "${T2:0:8}" | grep "^location"

step "13. Both replicas verify, and show the same state digest"
run --vault "$FIELD" verify
run --vault "$COORD" verify
D1=$("$AMANAT" --vault "$FIELD" status --json | sed -n 's/.*"state_digest" : "\(.*\)".*/\1/p')
D2=$("$AMANAT" --vault "$COORD" status --json | sed -n 's/.*"state_digest" : "\(.*\)".*/\1/p')
echo "field laptop: $D1"
echo "coordinator:  $D2"
[ -n "$D1" ] && [ "$D1" = "$D2" ] || { echo "the replicas differ — this is a bug"; exit 1; }
echo "identical: the replicas converged."

step "13b. Who belongs is a signed log every laptop enforces; a lost laptop is revoked"
SPARE="$WORK/spare-laptop"
CODE=$(run --vault "$COORD" invite --out "$STICK/spare.amanat")
run --vault "$SPARE" join "$STICK/spare.amanat" --code "$CODE" --device-name "spare laptop" --kdf interactive
run --vault "$SPARE" sync "$STICK/team.amanat-sync"
run --vault "$COORD" sync "$STICK/team.amanat-sync"
run --vault "$COORD" members
echo "The spare laptop is lost at a checkpoint. The coordinator revokes it: its later changes are never applied,"
echo "and a new vault key is sealed to each remaining laptop, so nothing written from now on opens with its keys."
run --vault "$COORD" revoke "spare laptop"
run --vault "$COORD" sync "$STICK/team.amanat-sync"
run --vault "$FIELD" sync "$STICK/team.amanat-sync"
run --vault "$FIELD" members

step "14. The coordinator hands the detention testimony to a lawyer as an evidence bundle"
age-keygen -o "$WORK/lawyer-key.txt" 2>/dev/null
LAWYER=$(age-keygen -y "$WORK/lawyer-key.txt")
echo "the detention testimony was recorded with --consent restricted: a plain export leaves it out and says so;"
echo "the witness has since agreed to share it with her lawyer, so the coordinator includes it explicitly"
run --vault "$COORD" export --out "$WORK/evidence.age" --recipient "$LAWYER" --tag detention --include-restricted
FINGERPRINT=$("$AMANAT" --vault "$COORD" status --json | sed -n 's/.*"vault" : "\(.*\)".*/\1/p')
echo "the team gives the lawyer its vault fingerprint ($FINGERPRINT) through a channel she trusts"
echo "\$ age -d -i lawyer-key.txt evidence.age | tar t      (the standard age tool, no Amanat needed)"
age -d -i "$WORK/lawyer-key.txt" "$WORK/evidence.age" | tar t
run bundle verify "$WORK/evidence.age" --identity "$WORK/lawyer-key.txt" --expect-vault "$FINGERPRINT"
echo "her expert checks it again without Amanat, with the independent verifier written from Protocol/ (Python):"
echo "\$ python3 Scripts/verify-bundle.py evidence.age --identity lawyer-key.txt --expect-vault $FINGERPRINT | tail -3"
PY=python3
python3 -c 'import nacl.bindings' 2>/dev/null || PY=/usr/bin/python3
"$PY" "$ROOT/Scripts/verify-bundle.py" "$WORK/evidence.age" --identity "$WORK/lawyer-key.txt" \
    --expect-vault "$FINGERPRINT" | tail -3

step "14b. The lawyer imports it into her own vault: the original custody comes along"
LAWYER_VAULT="$WORK/lawyer-vault"
run --vault "$LAWYER_VAULT" init --kdf interactive --device-name "lawyer" >/dev/null
run --vault "$LAWYER_VAULT" import "$WORK/evidence.age" --identity "$WORK/lawyer-key.txt" --expect-vault "$FINGERPRINT"
IMPORTED=$("$AMANAT" --vault "$LAWYER_VAULT" list --json | sed -n 's/.*"id" *: *"\([0-9a-f]*\)".*/\1/p' | head -1)
run --vault "$LAWYER_VAULT" history "$IMPORTED" >"$WORK/history.txt"
head -4 "$WORK/history.txt"
echo "…(the original devices, roles, times and seal, verified from the envelopes kept with the record)"

step "14c. Before travelling, the field documenter backs up her laptop; the backup is ciphertext too"
run --vault "$FIELD" backup --out "$WORK/field-laptop.backup"
if grep -q "literacy\|night raid\|Example Checkpoint" "$WORK/field-laptop.backup"; then
    echo "plaintext found in the backup!"; exit 1
fi
echo "grep for testimony phrases in the backup: no match"

step "15. Over the network: the coordinator's laptop is the hub, running a relay"
RELAY_LOG="$WORK/relay.log"
# The operator decides who may register a vault: the relay creates a random code in the file and prints it.
"$AMANAT" serve --port 0 --data "$WORK/relay" --registration-code-file "$WORK/relay-code" 2>"$RELAY_LOG" &
RELAY_PID=$!
trap 'kill -TERM "$RELAY_PID" 2>/dev/null || true; rm -rf "$WORK"' EXIT
PORT=""
for _ in $(seq 1 100); do
    PORT=$(sed -n 's/.*listening on http:\/\/127\.0\.0\.1:\([0-9][0-9]*\).*/\1/p' "$RELAY_LOG" | head -1)
    [ -n "$PORT" ] && break
    sleep 0.1
done
[ -n "$PORT" ] || { cat "$RELAY_LOG"; echo "the relay did not start — this is a bug"; exit 1; }
RELAY="http://127.0.0.1:$PORT"
echo "relay listening on $RELAY (it stores only signed ciphertext, and serves only members of the vault)"
grep "registration code" "$RELAY_LOG"
CODE=$(head -1 "$WORK/relay-code")
echo "FICTIONAL EXAMPLE. The witness describes a night raid on a women's literacy class." |
    run --vault "$FIELD" add testimony --witness W-DEMO-003 \
    --narrative-file - \
    --incident-date 2025-01 --location "Example Village D" --consent anonymised --tag education --tag fictional
echo "the vault's first sync presents the operator's code; later syncs and other members need none"
run --vault "$FIELD" sync "$RELAY" --registration-code "$CODE"
run --vault "$COORD" sync "$RELAY"
run --vault "$COORD" search "literacy class"
if grep -rl "literacy class" "$WORK/relay" >/dev/null 2>&1; then echo "PLAINTEXT FOUND ON THE RELAY — this is a bug"; exit 1; fi
echo "grep for 'literacy class' in the relay's data: no match"
D1=$("$AMANAT" --vault "$FIELD" status --json | sed -n 's/.*"state_digest" : "\(.*\)".*/\1/p')
D2=$("$AMANAT" --vault "$COORD" status --json | sed -n 's/.*"state_digest" : "\(.*\)".*/\1/p')
echo "field laptop: $D1"
echo "coordinator:  $D2"
[ -n "$D1" ] && [ "$D1" = "$D2" ] || { echo "the replicas differ — this is a bug"; exit 1; }
echo "identical: the replicas converged through the relay."
kill -TERM "$RELAY_PID"
wait "$RELAY_PID"
trap 'rm -rf "$WORK"' EXIT
echo "relay stopped cleanly: $(tail -1 "$RELAY_LOG")"

step "Done. The temporary vaults, the relay's data and the stand-in USB stick are removed."
