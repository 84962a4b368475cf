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
        guard fm.fileExists(atPath: url.path, isDirectory: &isDirectory) else { return }
        if isDirectory.boolValue {
            throw CLIError(.usage, "\(url.path) is a folder; give a file name inside it.")
        }
        guard force else {
            throw CLIError(.exists, "\(url.path) already exists; choose another name, or add --force to replace it.")
        }
    }
}
