import AmanatCrypto

extension RecordOperation {
    /// One human line describing the operation, as `history` and evidence bundles show it.
    public var summary: String {
        switch self {
        case .create(let kind): return "created \(kind)"
        case .set(let field, let value, let pred):
            let verb = pred.count > 1 ? "resolved" : (pred.isEmpty ? "set" : "changed")
            return "\(verb) \(field) = \(value)"
        case .addTag(let tag): return "tagged \(tag)"
        case .removeTag(let tag, _): return "untagged \(tag)"
        case .delete: return "deleted"
        case .seal(let hash): return "sealed original content \(Hex.encode(hash))"
        case .origin(let vault, let record): return "imported record \(record.hex) of vault \(Hex.encode(vault))"
        case .custody(let envelope, _): return "kept original envelope \(Hex.encode(BLAKE2b.hash(envelope)))"
        case .attach(let spec):
            let name = spec.name.isEmpty ? "a file" : spec.name
            return "attached \(name) (\(spec.mediaType), \(spec.size) bytes, SHA-256 \(Hex.encode(spec.sha256)))"
        case .detach(let op): return "detached attachment \(AttachmentInfo.id(of: op).prefix(12))"
        }
    }
}

extension RecordState {
    /// How `history` labels a change of a sealed testimony: the change that created it (the only one that may
    /// seal it, Protocol/membership.md §6) is the original; every other change is an amendment, whatever its stamp.
    public func label(forChangeBy author: DeviceID, seq: UInt64, at stamp: HLCTimestamp) -> String? {
        guard seal != nil, let creation = creationOp else { return nil }
        if creation.device == author && creation.seq == seq { return "original, sealed" }
        return "amendment"
    }
}
