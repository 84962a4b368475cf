import AmanatCore
import AmanatCrypto
import AmanatTestSupport
import Foundation
import Testing

@testable import AmanatStore

/// The version 3 keyring (Protocol/storage.md §2): earlier versions open and are rewritten as version 3, the
/// duress slot is opened with the same single derivation, and the unlock counter is rewritten at every attempt.
@Suite struct KeyringSafetyTests {
    static let duress = SecureBytes(Array("the duress words".utf8))

    func keyringURL(_ vault: Vault) -> URL { vault.directory.appendingPathComponent(Vault.keyringFileName) }

    @Test func aVersion2KeyringOpensAndIsRewrittenAsVersion3WithoutLosingAnything() throws {
        let dir = try TemporaryDirectory()
        let vault = try makeVault(in: dir)
        let id = try vault.createRecord(kind: "statement", fields: [("title", "kept")], tags: [], seal: false)
        let device = vault.deviceID
        // The same secrets as a version 2 file: no duress record, the Argon2id key itself as the AEAD key.
        var plain = vault.keyring.secretBytes()
        plain.removeLast(1 + 32 + Keyring.duressPayloadLength)
        let salt = Sodium.randomBytes(16)
        let strength = PasswordHash.Strength.interactive
        let master = try PasswordHash.deriveKey(
            passphrase: testPassphrase, salt: salt, opsLimit: strength.opsLimit, memLimit: strength.memLimit)
        let v2 = try Keyring.seal(
            plain, version: 2, salt: salt, opsLimit: strength.opsLimit, memLimit: strength.memLimit, wrapKey: master)
        try Data(v2).write(to: keyringURL(vault))

        let reopened = try Vault.open(at: vault.directory, passphrase: testPassphrase)
        #expect(reopened.deviceID == device)
        #expect(try reopened.resolveRecord(id.hex).view?.fields["title"] == "kept")
        let upgraded = Array(try Data(contentsOf: keyringURL(vault)))
        #expect(upgraded[4] == 3)
        #expect(upgraded.count == v2.count + 1 + 32 + Keyring.duressPayloadLength + Keyring.duressSlotLength)
        #expect(Array(upgraded[21..<37]) == salt, "the rewrite keeps the salt (no second derivation)")
        let again = try Vault.open(at: vault.directory, passphrase: testPassphrase)
        #expect(again.deviceID == device && again.keyring.duress == nil)
    }

    @Test func theFirstReleaseKeyringIsRewrittenAsVersion3() throws {
        let dir = try TemporaryDirectory()
        let (a, _) = try UpgradeTests().copies(dir)
        let pass = SecureBytes(Array(UpgradeTests.passphraseText.utf8))
        #expect(try Data(contentsOf: a.appendingPathComponent(Vault.keyringFileName))[4] == 1)
        let vault = try Vault.open(at: a, passphrase: pass)
        #expect(vault.deviceID.hex == UpgradeTests.deviceA)
        #expect(try Data(contentsOf: a.appendingPathComponent(Vault.keyringFileName))[4] == 3)
        let again = try Vault.open(at: a, passphrase: pass)
        #expect(again.deviceID.hex == UpgradeTests.deviceA && again.keyring.agreement != nil)
        #expect(try again.verify().problems == [])
    }

    @Test func theDuressPassphraseOpensNothingInKeyringReadAndWipesInVaultOpen() throws {
        let dir = try TemporaryDirectory()
        let vault = try makeVault(in: dir)
        try vault.setDuress(passphrase: Self.duress, setting: DuressSetting(mode: .wrongPassphrase, decoy: nil))
        #expect(vault.duressSetting == DuressSetting(mode: .wrongPassphrase, decoy: nil))
        // Keyring.read never acts on it: a wrong passphrase, and the file is untouched.
        let before = try Data(contentsOf: keyringURL(vault))
        #expect(throws: StoreError(.wrongPassphrase, "Wrong passphrase: the keyring could not be unlocked.")) {
            try Keyring.read(from: keyringURL(vault), passphrase: Self.duress)
        }
        #expect(try Data(contentsOf: keyringURL(vault)) == before)
        // The setting survives a reopen with the real passphrase.
        #expect(try Vault.open(at: vault.directory, passphrase: testPassphrase).duressSetting?.mode == .wrongPassphrase)
        #expect(throws: StoreError(.wrongPassphrase, "Wrong passphrase: the keyring could not be unlocked.")) {
            try Vault.open(at: vault.directory, passphrase: Self.duress)
        }
        #expect(!FileManager.default.fileExists(atPath: vault.directory.appendingPathComponent("vault.sqlite").path))
        let tomb = try Data(contentsOf: keyringURL(vault))
        #expect(tomb.count == before.count && tomb[4] == 3 && tomb[5..<21] == before[5..<21])
        #expect(throws: StoreError(.wrongPassphrase, "Wrong passphrase: the keyring could not be unlocked.")) {
            try Vault.open(at: vault.directory, passphrase: testPassphrase)
        }
    }

    @Test func theDuressSlotIsSealedAgainAtEveryRewriteAndAPassphraseEqualToTheRealOneIsRefused() throws {
        let dir = try TemporaryDirectory()
        let vault = try makeVault(in: dir)
        #expect(throws: StoreError.self) {
            try vault.setDuress(passphrase: testPassphrase, setting: DuressSetting(mode: .wrongPassphrase, decoy: nil))
        }
        #expect(vault.duressSetting == nil)
        let long = String(repeating: "d", count: DuressSetting.maximumPathBytes + 1)
        #expect(throws: StoreError.self) {
            try vault.setDuress(passphrase: Self.duress, setting: DuressSetting(mode: .decoy, decoy: long))
        }
        try vault.setDuress(passphrase: Self.duress, setting: DuressSetting(mode: .decoy, decoy: "/media/notes"))
        let first = try Data(contentsOf: keyringURL(vault))
        let reopened = try Vault.open(at: vault.directory, passphrase: testPassphrase)
        #expect(reopened.duressSetting == DuressSetting(mode: .decoy, decoy: "/media/notes"))
        _ = try reopened.recover(passphrase: testPassphrase)
        let second = try Data(contentsOf: keyringURL(vault))
        let slot = (first.count - 32 - Keyring.duressSlotLength)..<(first.count - 32)
        #expect(first.count == second.count && first[slot] != second[slot])
        #expect(try Vault.open(at: vault.directory, passphrase: testPassphrase).duressSetting?.decoy == "/media/notes")
    }

    @Test func theCounterFileIsRewrittenAtEveryAttemptWhetherOrNotALimitIsSet() throws {
        let dir = try TemporaryDirectory()
        let vault = try makeVault(in: dir)
        let url = vault.directory.appendingPathComponent("unlock.amk")
        var seen: Set<Data> = [try Data(contentsOf: url)]
        for limit in [nil, 5] as [UInt32?] {
            try vault.setUnlockLimit(limit)
            for phrase in [testPassphrase, SecureBytes(Array("wrong guess".utf8))] {
                _ = try? Vault.open(at: vault.directory, passphrase: phrase)
                let bytes = try Data(contentsOf: url)
                #expect(bytes.count == 56)
                #expect(seen.insert(bytes).inserted, "the counter file changed")
            }
        }
        #expect(UnlockCounter.read(in: vault.directory) == UnlockCounter(limit: 5, failures: 1))
        #expect(throws: StoreError.self) { try vault.setUnlockLimit(0) }
        #expect(throws: StoreError.self) { try vault.setUnlockLimit(1001) }
    }
}
