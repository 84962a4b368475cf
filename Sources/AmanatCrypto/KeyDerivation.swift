import CSodium

/// Subkey derivation from a master key (libsodium `crypto_kdf`, BLAKE2b based).
public enum KeyDerivation {
    /// Derives subkey number `id` in `context` (exactly 8 ASCII characters) from a 32-byte master key.
    public static func deriveSubkey(from master: SecureBytes, id: UInt64, context: String, length: Int = 32)
        -> SecureBytes
    {
        Sodium.ensureInitialized()
        let ctx = Array(context.utf8)
        precondition(ctx.count == Int(crypto_kdf_CONTEXTBYTES), "KDF context must be 8 bytes")
        precondition(master.count == Int(crypto_kdf_KEYBYTES))
        return SecureBytes(count: length) { out in
            master.withUnsafePointer { m in
                let cc = ctx.map { CChar(bitPattern: $0) }
                _ = crypto_kdf_derive_from_key(out, length, id, cc, m)
            }
        }
    }
}
