/// Builds the operations of the editing commands against the current state, so `pred` and observed sets name
/// exactly what this replica saw (Protocol/change.md: multi-value register, observed-remove set and delete).
extension RecordState {
    /// Sets `field` to `value`, overwriting every value visible now (all of them, if there was a conflict).
    public func setOperation(field: String, value: String) -> RecordOperation {
        .set(field: field, value: value, pred: (values[field] ?? []).map(\.op))
    }

    /// Adds `tag`.
    public func addTagOperation(_ tag: String) -> RecordOperation { .addTag(tag) }

    /// Removes `tag` as observed now; nil if the tag is not visible.
    public func removeTagOperation(_ tag: String) -> RecordOperation? {
        let observed = tagOperations(for: tag)
        return observed.isEmpty ? nil : .removeTag(tag, observed: observed)
    }

    /// Deletes the record as observed now: a concurrent edit elsewhere keeps it visible.
    public func deleteOperation() -> RecordOperation { .delete(observed: liveOperations.sorted()) }

    /// The visible values of `field`, best first.
    public func visibleValues(of field: String) -> [FieldValue] { values[field] ?? [] }
}
