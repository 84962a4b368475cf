import Foundation

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// Writing files so that a crash leaves either the old or the new content, never a mix.
public enum AtomicFile {
    /// Writes `bytes` to a temporary file beside `url`, fsyncs it, renames it over `url`, then fsyncs the folder.
    /// Failures name `shown` (the file the user asked for) rather than a temporary file.
    static func write(_ bytes: [UInt8], to url: URL, shown: URL? = nil) throws {
        let dir = url.deletingLastPathComponent()
        let named = shown ?? url
        let temp = dir.appendingPathComponent(".\(url.lastPathComponent).tmp-\(getpid())")
        let fd = open(temp.path, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
        guard fd >= 0 else { throw ioError(errno, "could not create \(named.path)") }
        var written = 0
        while written < bytes.count {
            let n = bytes.withUnsafeBytes { Glibc.write(fd, $0.baseAddress! + written, bytes.count - written) }
            if n < 0 {
                let e = errno
                close(fd)
                unlink(temp.path)
                throw ioError(e, "could not write \(named.path)")
            }
            written += n
        }
        if fsync(fd) != 0 {
            let e = errno
            close(fd)
            unlink(temp.path)
            throw ioError(e, "could not flush \(named.path)")
        }
        close(fd)
        guard rename(temp.path, url.path) == 0 else {
            let e = errno
            unlink(temp.path)
            throw ioError(e, "could not replace \(named.path)")
        }
        syncDirectory(dir)
    }

    /// Like ``write(_:to:)``, but refuses to replace an existing file: the finished temporary file is linked to
    /// `url` (which fails if `url` exists), so the check and the creation are one step.
    public static func writeNew(_ bytes: [UInt8], to url: URL) throws {
        let dir = url.deletingLastPathComponent()
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: dir.path, isDirectory: &isDirectory), isDirectory.boolValue else {
            throw StoreError(.io, "The folder \(dir.path) does not exist; create it or choose another place.")
        }
        if FileManager.default.fileExists(atPath: url.path) {
            throw StoreError(.vaultExists, "\(url.path) already exists; choose another name or remove it first.")
        }
        let temp = dir.appendingPathComponent(".\(url.lastPathComponent).new-\(getpid())")
        try write(bytes, to: temp, shown: url)
        defer { unlink(temp.path) }
        guard link(temp.path, url.path) == 0 else {
            let e = errno
            if e == EEXIST {
                throw StoreError(.vaultExists, "\(url.path) already exists; choose another name or remove it first.")
            }
            throw ioError(e, "could not create \(url.path)")
        }
        syncDirectory(dir)
    }

    /// Flushes a directory entry so a rename or unlink survives power loss.
    package static func syncDirectory(_ dir: URL) { flush(dir) }

    /// Flushes a file's or folder's contents to the disk (best effort: a path that cannot be opened is skipped).
    static func flush(_ url: URL) {
        let fd = open(url.path, O_RDONLY)
        if fd >= 0 {
            _ = fsync(fd)
            close(fd)
        }
    }

    package static func ioError(_ code: Int32, _ what: String) -> StoreError {
        if code == ENOSPC || code == EDQUOT {
            return StoreError(.diskFull, "The disk is full: \(what); free some space on it and try again.")
        }
        if code == EACCES || code == EPERM || code == EROFS {
            return StoreError(
                .io, "Permission denied: \(what) (\(String(cString: strerror(code)))); is the folder read-only?")
        }
        return StoreError(.io, "Input/output error: \(what) (\(String(cString: strerror(code)))).")
    }
}
