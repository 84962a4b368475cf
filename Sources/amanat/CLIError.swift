import AmanatBundle
import AmanatCore
import AmanatCrypto
import AmanatHTTP
import AmanatStore
import ArgumentParser
import Foundation

/// An error of the command line itself, with its exit status.
struct CLIError: Error {
    /// Exit statuses (documented in `amanat --help` and Docs/user-guide.md).
    enum Status: Int32 {
        case internalError = 1
        /// An evidence bundle is intact but does not prove its signers, or is not of the expected vault.
        case unproven = 3
        /// The selection (filters, search text) matched no record.
        case noMatch = 2
        case usage = 64
        case damaged = 65
        case noInput = 66
        case unknownID = 67
        case unavailable = 69
        case exists = 73
        case io = 74
        case busy = 75
        case wrongPassphrase = 77
    }

    var status: Status
    var message: String

    init(_ status: Status, _ message: String) {
        self.status = status
        self.message = message
    }
}

/// The exit status and sentence for any error the modules throw.
func describe(_ error: Error) -> (CLIError.Status, String) {
    switch error {
    case let e as CLIError:
        return (e.status, e.message)
    case let e as StoreError:
        let status: CLIError.Status =
            switch e.code {
            case .noVault: .noInput
            case .vaultExists: .exists
            case .wrongPassphrase: .wrongPassphrase
            case .damaged, .rejected: .damaged
            case .unknownID, .ambiguousID: .unknownID
            case .diskFull, .io: .io
            case .busy: .busy
            case .notAllowed: .wrongPassphrase
            case .invalid: .usage
            }
        return (status, e.message)
    case let e as RelayClientError:
        let status: CLIError.Status =
            switch e.code {
            case .unavailable, .badResponse: .unavailable
            case .unauthorized, .forbidden: .wrongPassphrase
            case .fork, .refused, .tooLarge: .damaged
            case .badURL: .usage
            }
        return (status, e.message)
    case let e as BundleError:
        let status: CLIError.Status =
            switch e.code {
            case .emptySelection: .noMatch
            case .nothingSigned: .usage
            case .malformedArchive, .malformedDocument, .verificationFailed, .cannotStrip: .damaged
            case .tooLarge: .io
            }
        return (status, e.message)
    case let e as SchemaError:
        return (.usage, e.message)
    case let e as CoreError:
        return (e.code == .tooLarge ? .usage : .damaged, e.message)
    case let e as CryptoError:
        return (.damaged, e.message)
    default:
        return (.internalError, "Unexpected failure: \(error).")
    }
}

/// Writes a line to stderr (progress and narration; stdout is kept for machine output), escaped for the terminal:
/// notes and errors can quote data (a device name, a problem found in a bundle or sync file).
func note(_ text: String) {
    try? FileHandle.standardError.write(contentsOf: Data((TerminalText.escape(text) + "\n").utf8))
}
