import AmanatCore
import AmanatCrypto

extension Vault {
    /// The vault's relay key: an Ed25519 key pair derived from the current vault key (`crypto_kdf` id 4, context
    /// `amnt-rly`), shared by every member and unknown to the relay, which knows only its public half. Requests to
    /// an HTTP relay are signed with it (Protocol/http-api.md §3).
    public var relaySigningKey: SigningKeyPair {
        // A 32-byte subkey always makes a key pair.
        guard let pair = try? SigningKeyPair(seed: keyring.currentKey.subkey(id: 4, context: "amnt-rly")) else {
            fatalError("unreachable: a 32-byte subkey was refused as a signing seed")
        }
        return pair
    }
}
