import AmanatCore
import AmanatStore
import AmanatSync
import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// Progress on standard error, redrawn in place on one line, and only when standard error is a terminal: a script
/// reading stderr gets the outcome, never a stream of carriage returns.
final class ProgressLine: @unchecked Sendable {
    /// Whether progress is shown at all.
    static let enabled = isatty(STDERR_FILENO) == 1

    private let lock = NSLock()
    private var last: ContinuousClock.Instant?
    private var shown = false

    /// Draws `text` (at most ten times a second; the first update is always drawn).
    func update(_ text: @autoclosure () -> String) {
        guard Self.enabled else { return }
        lock.lock()
        defer { lock.unlock() }
        let now = ContinuousClock.now
        if let last, now - last < .milliseconds(100) { return }
        last = now
        shown = true
        Self.write("\r\u{1B}[K" + text())
    }

    /// Clears the line, so that what follows starts on a clean line.
    func finish() {
        lock.lock()
        defer { lock.unlock() }
        if shown { Self.write("\r\u{1B}[K") }
        shown = false
    }

    /// One line that stays (a retry, a wait): it replaces the progress line, which the next update draws again.
    func say(_ text: String) {
        guard Self.enabled else { return }
        lock.lock()
        defer { lock.unlock() }
        Self.write((shown ? "\r\u{1B}[K" : "") + text + "\n")
        last = nil
    }

    private static func write(_ text: String) {
        try? FileHandle.standardError.write(contentsOf: Data(text.utf8))
    }

    /// `1.2 MB`, `340 kB`, `512 B` (decimal units, as disks are sold).
    static func bytes(_ count: Int) -> String {
        switch count {
        case ..<1000: "\(count) B"
        case ..<1_000_000: String(format: "%.0f kB", Double(count) / 1e3)
        case ..<1_000_000_000: String(format: "%.1f MB", Double(count) / 1e6)
        default: String(format: "%.2f GB", Double(count) / 1e9)
        }
    }

    /// The progress of a sync in both directions, as one line.
    final class Sync: @unchecked Sendable {
        let line = ProgressLine()
        private var pulled = SyncProgress(phase: .pull, done: 0, total: 0)
        private var pushed = SyncProgress(phase: .push, done: 0, total: 0)

        func update(_ progress: SyncProgress) {
            if progress.phase == .pull { pulled = progress } else { pushed = progress }
            line.update(
                "Syncing: pulled \(pulled.done) of \(pulled.total) changes (\(ProgressLine.bytes(pulled.bytes))), pushed \(pushed.done) of \(pushed.total) (\(ProgressLine.bytes(pushed.bytes)))…"
            )
        }
    }
}

/// The process-wide line that waits and retries are said on.
let sharedProgress = ProgressLine()

extension ProgressLine {
    /// Says who the command is waiting for when another process holds the vault (on a terminal only).
    static func watchLockWaits() {
        guard enabled else { return }
        LockWait.observer = { pid in
            guard let pid else {
                sharedProgress.say("Waiting for another process to finish with the vault…")
                return
            }
            let name = LockWait.processName(pid).map(TerminalText.escape)
            sharedProgress.say(
                name == "amanat"
                    ? "Waiting for another amanat (pid \(pid)) to finish with the vault…"
                    : "Waiting for another process (pid \(pid)\(name.map { ", \($0)" } ?? "")) to finish with the vault…"
            )
        }
    }
}
