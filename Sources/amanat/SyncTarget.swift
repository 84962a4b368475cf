import AmanatStore
import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// What `amanat sync TARGET` means, decided before anything is opened, so that a mistyped target is refused with a
/// sentence about the target — never turned into a new file, and never blamed on the vault.
enum SyncTarget: Equatable {
    /// A relay URL (`http://` or `https://`).
    case relay(String)
    /// An existing sync file.
    case file(URL)
    /// A sync file to create (the user asked for it).
    case newFile(URL)

    /// The least free space a stick must have before a sync writes to it.
    static let minimumFreeBytes: UInt64 = 64 << 10

    /// Resolves `target`. `create` is `--create`; `confirm` asks the user on a terminal (nil: no terminal).
    static func resolve(_ target: String, create: Bool, confirm: ((String) -> Bool)?) throws -> SyncTarget {
        guard !target.trimmingCharacters(in: .whitespaces).isEmpty else {
            throw CLIError(
                .usage, "Give a sync file (on a USB stick) or a relay address (http://HOST:PORT) to sync with.")
        }
        let lower = target.lowercased()
        if lower.hasPrefix("http://") || lower.hasPrefix("https://") { return .relay(target) }
        if let scheme = target.range(of: "://") {
            throw CLIError(
                .usage,
                "\(target) is not a relay address Amanat can use: a relay URL starts with http:// or https:// (not \(target[..<scheme.lowerBound])://)."
            )
        }
        if lower.hasPrefix("http/") || lower.hasPrefix("http:/") || lower.hasPrefix("https/")
            || lower.hasPrefix("https:/")
        {
            let rest = target.drop { $0 != "/" }.drop { $0 == "/" }
            throw CLIError(.usage, "\(target) is not a valid relay address; did you mean http://\(rest) ?")
        }
        let fm = FileManager.default
        let url = URL(fileURLWithPath: target)
        var isDirectory: ObjCBool = false
        if fm.fileExists(atPath: url.path, isDirectory: &isDirectory) {
            if isDirectory.boolValue {
                throw CLIError(
                    .usage,
                    "\(url.path) is a folder; give the sync file inside it, for example \(url.appendingPathComponent("team.amanat-sync").path)."
                )
            }
            let type = (try? fm.attributesOfItem(atPath: url.path))?[.type] as? FileAttributeType
            guard type == .typeRegular else {
                throw CLIError(.usage, "\(url.path) is not a sync file: it is a device or another special file.")
            }
            guard access(url.path, R_OK) == 0 else {
                throw CLIError(.io, "The sync file \(url.path) cannot be read (\(String(cString: strerror(errno)))).")
            }
            try checkFreeSpace(url.deletingLastPathComponent(), writable: fm.isWritableFile(atPath: url.path))
            return .file(url)
        }
        if let meant = relayAddress(meant: target) {
            throw CLIError(.usage, "\(target) looks like a relay address, not a file; did you mean \(meant) ?")
        }
        let folder = url.deletingLastPathComponent()
        if fm.fileExists(atPath: folder.path), access(folder.path, R_OK | X_OK) != 0 {
            throw CLIError(.io, "The folder \(folder.path) cannot be read (\(String(cString: strerror(errno)))).")
        }
        guard fm.fileExists(atPath: folder.path, isDirectory: &isDirectory), isDirectory.boolValue else {
            throw CLIError(
                .noInput,
                "The folder \(folder.path) does not exist (is the USB stick plugged in and mounted?); nothing was synced."
            )
        }
        guard fm.isWritableFile(atPath: folder.path) else {
            throw CLIError(
                .io,
                "The folder \(folder.path) is read-only (is the stick write-protected?); a new sync file cannot be created there."
            )
        }
        try checkFreeSpace(folder, writable: true)
        let others = ((try? fm.contentsOfDirectory(atPath: folder.path)) ?? [])
            .filter { $0.hasSuffix(".amanat-sync") }.sorted()
        if create {
            if !others.isEmpty {
                note(
                    "WARNING: the folder already holds \(others.map { "`\($0)`" }.joined(separator: ", ")); a new file next to it splits the team's sync in two. Check the name."
                )
            }
            return .newFile(url)
        }
        if others.isEmpty, let confirm,
            confirm("There is no sync file at \(url.path). Create a new one there? [y/N] ")
        {
            return .newFile(url)
        }
        var message =
            "There is no sync file at \(url.path); nothing was synced. To start a new one there, add --create."
        if !others.isEmpty {
            message +=
                " The folder holds \(others.map { "`\($0)`" }.joined(separator: ", ")): did you mean \(others.count == 1 ? "that one" : "one of them")?"
        }
        throw CLIError(.noInput, message)
    }

    /// The relay URL a target was probably meant to be (`host:port`, `host:port/path`, `[::1]:8080`, an IPv4
    /// address or a dotted host name, without `http://`), or nil for what looks like a path. Without a port, the one
    /// `amanat serve` listens on by default is suggested.
    static func relayAddress(meant target: String) -> String? {
        guard !target.hasPrefix("/"), !target.hasPrefix("."), !target.hasSuffix(".amanat-sync") else { return nil }
        let host = String(target.prefix { $0 != "/" })
        let bracketed = host.hasPrefix("[") && (host.hasSuffix("]") || host.contains("]:"))
        guard bracketed || looksLikeHost(host) else { return nil }
        let hasPort = host.split(separator: ":").count == 2 || host.contains("]:")
        return "http://" + host + (hasPort ? "" : ":8080") + target.dropFirst(host.count)
    }

    /// Whether `target` has the shape of `host:port`, an IPv4 address or a dotted host name rather than a path.
    static func looksLikeHost(_ target: String) -> Bool {
        guard !target.contains("/"), !target.hasSuffix(".amanat-sync") else { return false }
        let parts = target.split(separator: ":", omittingEmptySubsequences: false)
        if parts.count == 2, let port = Int(parts[1]), (1...65_535).contains(port), !parts[0].isEmpty { return true }
        let labels = target.split(separator: ".", omittingEmptySubsequences: false)
        if labels.count == 4, labels.allSatisfy({ UInt8($0) != nil }) { return true }
        // host.example.org: at least two dots and a top-level label of letters.
        if labels.count >= 3, let top = labels.last, top.count >= 2, top.allSatisfy({ $0.isLetter }),
            labels.allSatisfy({ !$0.isEmpty })
        {
            return true
        }
        return false
    }

    /// Refuses a full or read-only stick with a sentence naming the folder.
    static func checkFreeSpace(_ folder: URL, writable: Bool) throws {
        let bytes = Vault.freeBytes(folder)
        guard writable, bytes < minimumFreeBytes else { return }
        throw CLIError(
            .io,
            "The disk holding \(folder.path) is full (\(bytes / 1024) KiB free); free some space on it and sync again.")
    }
}
