/// Sorts one author's received envelopes against what a store holds of that author's chain: duplicates, new
/// envelopes that continue the chain, or a fork (Protocol/sync.md §3). Used by the vault and the relay alike.
public enum RunClassifier {
    /// What a run holds.
    public struct Outcome: Sendable {
        /// Envelopes identical to ones already held (a repeat within the run is dropped, not counted).
        public var duplicates: Int = 0
        /// New envelopes, verified to continue the held chain with one signature check (`ChainVerifier`).
        public var fresh: [Envelope] = []
        /// A genuinely signed envelope that conflicts with the held chain: the author forked. Nothing after it
        /// in the run is taken.
        public var fork: Envelope?
    }

    /// Classifies `run` (one author's envelopes, any order) against the held `head`. `heldHash(seq)` returns the
    /// hash the store holds at a seq up to `head.seq`.
    ///
    /// Throws if the run is not genuine: another vault, a gap, a broken link that is not a signed fork, a forged
    /// signature — or a conflicting envelope whose own signature is forged, which must never frame its author.
    public static func classify(
        _ run: [Envelope], vaultID: [UInt8], head: ChainHead, heldHash: (UInt64) throws -> [UInt8]?
    ) throws -> Outcome {
        var outcome = Outcome()
        let sorted = run.sorted { $0.header.seq < $1.header.seq }
        for envelope in sorted {
            guard envelope.header.vaultID == vaultID else {
                throw CoreError(.wrongVault, "An envelope belongs to another vault.")
            }
            if envelope.header.seq <= head.seq {
                if try heldHash(envelope.header.seq) == envelope.hash {
                    outcome.duplicates += 1
                    continue
                }
                outcome.fork = try genuine(envelope)
                outcome.fresh = []
                return outcome
            }
            if let last = outcome.fresh.last, last.header.seq == envelope.header.seq {
                if last.hash == envelope.hash { continue }
                outcome.fork = try genuine(envelope)
                outcome.fresh = []
                return outcome
            }
            outcome.fresh.append(envelope)
        }
        guard let first = outcome.fresh.first else { return outcome }
        do {
            _ = try ChainVerifier.verifyRun(outcome.fresh[...], vaultID: vaultID, after: head)
        } catch let error as CoreError {
            if error.code == .brokenChain, first.header.seq == head.seq + 1, first.header.previousHash != head.hash,
                first.hasValidSignature()
            {
                // A genuine envelope that does not follow the held head: the author forked before it.
                outcome.fork = first
                outcome.fresh = []
                return outcome
            }
            throw error
        }
        return outcome
    }

    private static func genuine(_ envelope: Envelope) throws -> Envelope {
        guard envelope.hasValidSignature() else {
            throw CoreError(
                .badSignature,
                "Change \(envelope.header.seq) of device \(envelope.header.author.hex.prefix(12)) differs from the one held and its signature is forged."
            )
        }
        return envelope
    }
}
