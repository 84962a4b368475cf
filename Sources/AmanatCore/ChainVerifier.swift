/// The last verified envelope of one device's log: its seq and hash (seq 0 and zero hash before the first).
public struct ChainHead: Hashable, Sendable {
    /// The last seq, or 0 for an empty log.
    public var seq: UInt64
    /// The last envelope's hash, or 32 zero bytes.
    public var hash: [UInt8]

    /// Creates a head.
    public init(seq: UInt64, hash: [UInt8]) {
        self.seq = seq
        self.hash = hash
    }

    /// The head of an empty log.
    public static let empty = ChainHead(seq: 0, hash: [UInt8](repeating: 0, count: 32))
}

/// Verifies runs of one author's envelopes against that author's chain (Protocol/envelope.md §6).
public enum ChainVerifier {
    /// Verifies a contiguous run of one author's envelopes that continues `head`, with one signature check.
    ///
    /// Every envelope must belong to `vaultID`, have the same author, continue the sequence without gaps, and
    /// name the previous envelope's hash. Then only the last signature is checked: it covers the last header, whose
    /// `previousHash` commits to every earlier envelope of the run, so the chain authenticates the rest.
    /// Returns the new head.
    public static func verifyRun(_ run: ArraySlice<Envelope>, vaultID: [UInt8], after head: ChainHead) throws
        -> ChainHead
    {
        guard let first = run.first, let last = run.last else { return head }
        let author = first.header.author
        var expected = head
        for envelope in run {
            let h = envelope.header
            guard h.vaultID == vaultID else {
                throw CoreError(.wrongVault, "An envelope belongs to another vault.")
            }
            guard h.author == author else {
                throw CoreError(.malformed, "A run of envelopes mixes authors.")
            }
            guard h.seq == expected.seq + 1 else {
                throw CoreError(
                    .brokenChain,
                    "Device \(author.hex.prefix(12)) skips from change \(expected.seq) to \(h.seq): the log is incomplete or reordered."
                )
            }
            guard h.previousHash == expected.hash else {
                throw CoreError(
                    .brokenChain,
                    "Change \(h.seq) of device \(author.hex.prefix(12)) does not follow the change before it: the log was altered or forked."
                )
            }
            expected = ChainHead(seq: h.seq, hash: envelope.hash)
        }
        guard last.hasValidSignature() else {
            throw CoreError(
                .badSignature,
                "The signature on change \(last.header.seq) of device \(author.hex.prefix(12)) is forged or damaged.")
        }
        return expected
    }
}
