import AmanatBundle
import AmanatCore
import AmanatCrypto
import AmanatStore
import AmanatSync
import Foundation

/// One decoder of data that may come from outside, driven by arbitrary bytes (Docs/reliability.md).
///
/// Every target runs the real decoder through the entry point the product uses. It catches every thrown error:
/// a rejection is the expected answer to bad input. Only a trap (a failed precondition, an out-of-range index, an
/// overflow) or a sanitizer report is a finding. ``run(_:)`` returns whether the input was accepted, so the
/// regression suite can also check that valid inputs still decode.
public enum FuzzTarget: String, CaseIterable, Sendable {
    /// The change plaintext decoder, directly and behind a sealed envelope, then applied to a record state.
    case change
    /// The membership entry decoder.
    case membership
    /// The envelope wire decoder, its signature check and the opening of its content.
    case envelope
    /// The vault's sealed local rows: projection rows (state and view), the clock and the held-back counters.
    case storedRow = "stored-row"
    /// The sync-file reader on an arbitrary SQLite file.
    case syncFile = "sync-file"
    /// The bodies the relay decodes (version vectors, envelope lists, exchanges) and the exchange response.
    case relay
    /// The invitation file reader, on whole files and on sealed plaintexts.
    case invitation
    /// The keyring file reader, on whole files and on sealed plaintexts.
    case keyring
    /// age decryption (header, stanzas, armor, payload) and age key parsing.
    case age
    /// The strict ustar reader.
    case tar
    /// The bundle verifier on the archive behind the age layer.
    case bundle
    /// The location stripper of `export --strip-location` on a photo or video.
    case locationStripper = "location-stripper"

    /// Runs the target on `bytes`; true when the main decoder accepted them.
    @discardableResult
    public func run(_ bytes: [UInt8]) -> Bool {
        switch self {
        case .change: Targets.change(bytes)
        case .membership: Targets.membership(bytes)
        case .envelope: Targets.envelope(bytes)
        case .storedRow: Targets.storedRow(bytes)
        case .syncFile: Targets.syncFile(bytes)
        case .relay: Targets.relay(bytes)
        case .invitation: Targets.invitation(bytes)
        case .keyring: Targets.keyring(bytes)
        case .age: Targets.age(bytes)
        case .tar: Targets.tar(bytes)
        case .bundle: Targets.bundle(bytes)
        case .locationStripper: Targets.locationStripper(bytes)
        }
    }

    /// The largest input worth generating for the target (libFuzzer's `-max_len`).
    public var maximumLength: Int {
        switch self {
        case .syncFile: 256 * 1024
        case .age, .tar, .bundle, .invitation, .locationStripper: 64 * 1024
        default: 16 * 1024
        }
    }
}

/// A property that must hold for every input; its failure is a finding, reported as a trap to the fuzzer.
func require(_ condition: @autoclosure () -> Bool, _ message: @autoclosure () -> String) {
    if !condition() { fatalError("fuzz property failed: \(message())") }
}

/// A private folder (mode 0700) for the targets that must read a file, removed by ``FuzzWorkspace/remove()``.
public enum FuzzWorkspace {
    nonisolated(unsafe) private static var folder: URL?
    private static let lock = NSLock()

    /// The folder, created on first use.
    static func url() -> URL {
        lock.lock()
        defer { lock.unlock() }
        if let folder { return folder }
        var template = Array((NSTemporaryDirectory() + "/amanat-fuzz-XXXXXX").utf8CString)
        guard let made = mkdtemp(&template) else { fatalError("cannot create a private temporary folder") }
        let url = URL(fileURLWithPath: String(cString: made), isDirectory: true)
        folder = url
        return url
    }

    /// Writes `bytes` to `name` in the folder, readable only by this user (a plain write: Foundation's atomic write
    /// costs a temporary file and a rename per run).
    static func write(_ bytes: [UInt8], name: String) -> URL {
        let url = url().appendingPathComponent(name)
        let fd = open(url.path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
        guard fd >= 0 else { fatalError("cannot write \(url.path)") }
        defer { close(fd) }
        var offset = 0
        while offset < bytes.count {
            let written = bytes[offset...].withUnsafeBytes { Foundation.write(fd, $0.baseAddress, $0.count) }
            guard written > 0 else { fatalError("cannot write \(url.path)") }
            offset += written
        }
        return url
    }

    /// Removes the folder and everything in it.
    public static func remove() {
        lock.lock()
        defer { lock.unlock() }
        if let folder { try? FileManager.default.removeItem(at: folder) }
        folder = nil
    }
}
