/// An error from reading or verifying an evidence bundle, naming what failed.
public struct BundleError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The stable kind of failure.
    public enum Code: String, Sendable {
        /// The archive inside the bundle is malformed or unsafe.
        case malformedArchive
        /// A bundle file is missing or does not parse.
        case malformedDocument
        /// The custody chain or a record failed verification.
        case verificationFailed
        /// Nothing matched the export selection.
        case emptySelection
        /// This device has signed nothing yet, so no signed entry places it in the vault.
        case nothingSigned
        /// `export --strip-location` cannot remove the location of an attached file (Protocol/attachments.md §9).
        case cannotStrip
        /// The bundle's documents are more than this process may hold in memory to check them (``TarArchive/documentBudget``).
        case tooLarge
    }

    /// The kind of failure.
    public var code: Code
    /// What went wrong, in one sentence.
    public var message: String

    /// Creates an error.
    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { message }
}
