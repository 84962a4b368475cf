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

    /// Undeletes the record: writes every value and tag it shows again, as new operations that no `delete` has
    /// observed, so the record is visible on every replica that merges them (Protocol/change.md §5, "Undelete").
    /// Each visible value is rewritten with only its own op as `pred`, so a conflict stays a conflict. Empty when
    /// the record has nothing to show again (no value and no tag).
    public func undeleteOperations() -> [RecordOperation] {
        var ops: [RecordOperation] = []
        for field in values.keys.sorted() {
            for value in values[field] ?? [] { ops.append(.set(field: field, value: value.value, pred: [value.op])) }
        }
        ops += tags.map(RecordOperation.addTag)
        return ops
    }

    /// Whether the record was created and then deleted (every live operation observed by some `delete`).
    public var isDeleted: Bool { creationOp != nil && !isVisible }

    /// The visible values of `field`, best first.
    public func visibleValues(of field: String) -> [FieldValue] { values[field] ?? [] }
}
