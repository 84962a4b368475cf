import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// Waiting for a vault that another process is writing: who holds it, and a hook to say so.
///
/// SQLite locks the vault with POSIX record locks on the database and its `-shm` file; `F_GETLK` names the
/// process holding a conflicting lock, which is what a person waiting wants to know.
public enum LockWait {
    /// Told once per wait, after about a second, with the holder's process id when it can be found. Set once at
    /// start-up, before any vault is opened (the command line sets it only when standard error is a terminal).
    nonisolated(unsafe) public static var observer: (@Sendable (Int32?) -> Void)?

    /// The process holding a lock on the database at `url` that keeps this one waiting, if it can be found.
    public static func holder(of url: URL) -> Int32? {
        // WAL mode: the write, checkpoint and recovery locks are bytes 120-122 of the -shm file, the read
        // locks 123-127; a rollback-journal lock is the pending and shared bytes of the database file.
        let ranges: [(String, Int, Int)] = [(url.path + "-shm", 120, 8), (url.path, 0x4000_0000, 514)]
        for (path, start, length) in ranges {
            let fd = open(path, O_RDONLY | O_CLOEXEC)
            guard fd >= 0 else { continue }
            defer { close(fd) }
            var lock = flock()
            lock.l_type = Int16(F_WRLCK)
            lock.l_whence = Int16(SEEK_SET)
            lock.l_start = off_t(start)
            lock.l_len = off_t(length)
            if fcntl(fd, F_GETLK, &lock) == 0, lock.l_type != Int16(F_UNLCK), lock.l_pid > 0 {
                return lock.l_pid
            }
        }
        return nil
    }

    /// The short name of process `pid` (`amanat`), from /proc; nil where there is none.
    public static func processName(_ pid: Int32) -> String? {
        guard let data = FileManager.default.contents(atPath: "/proc/\(pid)/comm"),
            let name = String(data: data, encoding: .utf8)?.trimmingCharacters(in: .whitespacesAndNewlines),
            !name.isEmpty
        else { return nil }
        return name
    }
}
