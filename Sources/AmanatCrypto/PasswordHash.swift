import CSodium

/// Argon2id passphrase hashing with libsodium's named cost levels.
public enum PasswordHash {
    /// A named cost level; the stored parameters are the numbers, so levels may change without breaking old keyrings.
    public enum Strength: String, CaseIterable, Sendable {
        /// Fast: for weak devices and tests (libsodium INTERACTIVE: 2 passes, 64 MiB).
        case interactive
        /// The default (libsodium MODERATE: 3 passes, 256 MiB).
        case moderate
        /// Slowest (libsodium SENSITIVE: 4 passes, 1 GiB).
        case sensitive

        /// Number of passes.
        public var opsLimit: UInt64 {
            switch self {
            case .interactive: UInt64(crypto_pwhash_argon2id_OPSLIMIT_INTERACTIVE)
            case .moderate: UInt64(crypto_pwhash_argon2id_OPSLIMIT_MODERATE)
            case .sensitive: UInt64(crypto_pwhash_argon2id_OPSLIMIT_SENSITIVE)
            }
        }

        /// Memory in bytes.
        public var memLimit: UInt64 {
            switch self {
            case .interactive: UInt64(crypto_pwhash_argon2id_MEMLIMIT_INTERACTIVE)
            case .moderate: UInt64(crypto_pwhash_argon2id_MEMLIMIT_MODERATE)
            case .sensitive: UInt64(crypto_pwhash_argon2id_MEMLIMIT_SENSITIVE)
            }
        }
    }

    /// Salt length in bytes (16).
    public static let saltLength = Int(crypto_pwhash_argon2id_SALTBYTES)

    /// Derives a 32-byte key from a passphrase with Argon2id v1.3.
    public static func deriveKey(
        passphrase: SecureBytes, salt: [UInt8], opsLimit: UInt64, memLimit: UInt64, length: Int = 32
    ) throws -> SecureBytes {
        Sodium.ensureInitialized()
        guard salt.count == saltLength else { throw CryptoError(.invalidInput, "The KDF salt has the wrong length.") }
        guard opsLimit >= UInt64(crypto_pwhash_argon2id_OPSLIMIT_MIN), opsLimit <= 64,
            memLimit >= UInt64(crypto_pwhash_argon2id_MEMLIMIT_MIN), memLimit <= 1 << 32
        else { throw CryptoError(.invalidInput, "The KDF parameters are out of range.") }
        var rc: Int32 = 0
        let key = SecureBytes(count: length) { out in
            passphrase.withUnsafePointer { p in
                p.withMemoryRebound(to: CChar.self, capacity: passphrase.count) { pc in
                    rc = crypto_pwhash(
                        out, UInt64(length), pc, UInt64(passphrase.count), salt, opsLimit, Int(memLimit),
                        crypto_pwhash_ALG_ARGON2ID13)
                }
            }
        }
        guard rc == 0 else {
            throw CryptoError(.outOfMemory, "Not enough memory to derive the key from the passphrase.")
        }
        return key
    }
}
