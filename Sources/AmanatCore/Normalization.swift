import Foundation

extension String {
    /// The string in Unicode Normalization Form C: the form in which field names and tags are grouped, sorted and
    /// written (Protocol/change.md §5), so that canonically equivalent spellings give the same bytes whichever
    /// arrived first. Values are never normalised.
    public var nfc: String {
        // UTF-8 bytes below 0xCC encode only code points below U+0300, which are already in NFC and compose with
        // nothing that follows them: the common case costs one pass over the bytes.
        if utf8.allSatisfy({ $0 < 0xCC }) { return self }
        return precomposedStringWithCanonicalMapping
    }
}
