import AmanatCrypto
import AmanatStore
import Foundation

/// Checks a file a command is about to write, before any work: its folder must exist, and an existing file is
/// replaced only with `--force` (an earlier evidence bundle or invitation is never overwritten by accident).
enum OutputFile {
    static func check(_ path: String, force: Bool) throws {
        let url = URL(fileURLWithPath: path)
        let fm = FileManager.default
        var isDirectory: ObjCBool = false
        let folder = url.deletingLastPathComponent()
        guard fm.fileExists(atPath: folder.path, isDirectory: &isDirectory), isDirectory.boolValue else {
            throw CLIError(
                .noInput,
                "The folder \(folder.path) does not exist (is the stick plugged in?); create it or choose another place."
            )
        }
        guard access(folder.path, W_OK) == 0 else {
            throw CLIError(
                .io,
                "The folder \(folder.path) cannot be written (\(String(cString: strerror(errno)))); nothing was written there."
            )
        }
        guard fm.fileExists(atPath: url.path, isDirectory: &isDirectory) else { return }
        if isDirectory.boolValue {
            throw CLIError(.usage, "\(url.path) is a folder; give a file name inside it.")
        }
        guard force else {
            throw CLIError(.exists, "\(url.path) already exists; choose another name, or add --force to replace it.")
        }
    }
}

/// A folder a command extracts into (`bundle open --out`): new or empty, in a folder that exists and can be written.
enum OutputFolder {
    static func check(_ path: String) throws {
        let url = URL(fileURLWithPath: path)
        var isFolder: ObjCBool = false
        if FileManager.default.fileExists(atPath: url.path, isDirectory: &isFolder) {
            guard isFolder.boolValue else {
                throw CLIError(.exists, "\(path) is a file, not a folder; choose a new folder to extract into.")
            }
            let entries: [String]
            do {
                entries = try FileManager.default.contentsOfDirectory(atPath: url.path)
            } catch {
                throw CLIError(.io, "The folder \(path) cannot be read: \(reason(error)).")
            }
            guard entries.isEmpty else { throw CLIError(.exists, "\(path) is not empty; choose a new folder.") }
            guard access(url.path, W_OK) == 0 else {
                throw CLIError(.io, "The folder \(path) cannot be written (\(String(cString: strerror(errno)))).")
            }
            return
        }
        let parent = url.deletingLastPathComponent()
        guard FileManager.default.fileExists(atPath: parent.path, isDirectory: &isFolder), isFolder.boolValue else {
            throw CLIError(.noInput, "The folder \(parent.path) does not exist; nothing was extracted.")
        }
        guard access(parent.path, W_OK) == 0 else {
            throw CLIError(
                .io,
                "The folder \(parent.path) cannot be written (\(String(cString: strerror(errno)))); \(path) cannot be created there."
            )
        }
    }

    /// The system's reason for a file error, in a few words.
    static func reason(_ error: Error) -> String { fileErrorReason(error) }
}

/// The kinds of recipient stanzas in an age file's header (`X25519`, `scrypt`), read without decrypting
/// (``AgeDecryption/stanzaTypes(input:armor:)``): enough to tell an evidence bundle from a passphrase-protected file.
/// Nil when the file cannot be read or is not an age file.
enum AgeStanzas {
    static func kinds(ofFile path: String) -> Set<String>? {
        guard let handle = FileHandle(forReadingAtPath: path) else { return nil }
        defer { try? handle.close() }
        let source = AgeClosureSource { count in Array(try handle.read(upToCount: count) ?? Data()) }
        return (try? AgeDecryption.stanzaTypes(input: source)).map(Set.init)
    }
}
