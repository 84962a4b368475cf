/// One operation on one record (Protocol/change.md §3).
public enum RecordOperation: Hashable, Sendable {
    /// Creates the record with a kind such as `statement` or `testimony`.
    case create(kind: String)
    /// Sets a field; `pred` lists the value operations this one overwrites (multi-value register).
    case set(field: String, value: String, pred: [OpID])
    /// Adds a tag (observed-remove set: this operation's id is the tag's token).
    case addTag(String)
    /// Removes a tag by naming the add operations that were observed.
    case removeTag(String, observed: [OpID])
    /// Deletes the record by naming the operations that were observed live; anything concurrent survives.
    case delete(observed: [OpID])
    /// Seals a testimony's original content: `contentHash` is BLAKE2b-256 of its sealed fields (§4).
    case seal(contentHash: [UInt8])
    /// Names the record of another vault this record was imported from, out of an evidence bundle: its 16-byte
    /// vault id and its record id (Protocol/change.md §3). The origin with the smallest op id counts.
    case origin(vault: [UInt8], record: RecordID)
    /// Keeps one signed envelope of the origin's custody — a change of the origin record, with the 32-byte key that
    /// opens it, or a membership entry of the origin vault (empty key: its key derives from the vault id) — so
    /// that `history` and `verify` can show and check the original devices, times and seal.
    case custody(envelope: [UInt8], key: [UInt8])
    /// Attaches a file: its SHA-256, size, media type, name, note and the ordered addresses of its encrypted chunks
    /// (Protocol/change.md §3, Protocol/attachments.md). The operation's id identifies the attachment.
    case attach(AttachmentSpec)
    /// Detaches the attachment that the `attach` operation `attachment` added: it is no longer listed, but its
    /// content stays as evidence until a coordinator purges it.
    case detach(attachment: OpID)
}

/// The set of changes one command makes to one record, stamped by a hybrid logical clock.
public struct Change: Hashable, Sendable {
    /// The record every operation applies to.
    public var record: RecordID
    /// When the change was made, by the author's hybrid logical clock.
    public var timestamp: HLCTimestamp
    /// The operations, in order; each is identified by its index.
    public var operations: [RecordOperation]

    /// Creates a change.
    public init(record: RecordID, timestamp: HLCTimestamp, operations: [RecordOperation]) {
        self.record = record
        self.timestamp = timestamp
        self.operations = operations
    }
}

/// A change together with the position in its author's log that names its operations.
public struct AuthoredChange: Hashable, Sendable {
    /// The device that signed the change.
    public var author: DeviceID
    /// The change's sequence number in the author's log.
    public var seq: UInt64
    /// The change itself.
    public var change: Change

    /// Creates an authored change.
    public init(author: DeviceID, seq: UInt64, change: Change) {
        self.author = author
        self.seq = seq
        self.change = change
    }

    /// The id of the operation at `index`.
    public func opID(_ index: Int) -> OpID { OpID(device: author, seq: seq, index: UInt32(index)) }
}
