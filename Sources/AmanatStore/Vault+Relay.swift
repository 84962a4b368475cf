import AmanatCore
import AmanatCrypto

extension Vault {
    /// The vault's relay key: an Ed25519 key pair derived from the vault key of epoch 1 (`crypto_kdf` id 4,
    /// context `amnt-rly`), shared by every member and unknown to the relay, which knows only its public half.
    /// Requests to an HTTP relay are signed with it (Protocol/http-api.md §3).
    public var relaySigningKey: SigningKeyPair {
        (key(epoch: 1) ?? keyring.keys[0]).relaySigningKey()
    }
}
