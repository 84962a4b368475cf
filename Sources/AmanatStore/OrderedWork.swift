import Dispatch
import Foundation

/// Runs pieces of work on other threads and hands their results back in the order they were submitted: the
/// attachment pipeline (Docs/architecture.md, "Attachment throughput") seals or opens the next chunks on the second
/// core while this thread reads, hashes and writes. The owner keeps at most a few pieces in flight (``inFlight``),
/// so memory stays bounded whatever the file's size.
///
/// Only one thread (the owner) calls ``submit(_:)``, ``next()`` and ``drain()``.
final class OrderedWork<T: Sendable>: @unchecked Sendable {
    // @unchecked Sendable: `results` is only touched under `condition`; `submitted` and `taken` only by the owner.
    private let condition = NSCondition()
    private var results: [Int: T] = [:]
    private var submitted = 0
    private var taken = 0
    private let queue = DispatchQueue.global(qos: .userInitiated)

    init() {}

    /// Pieces submitted whose result was not taken yet.
    var inFlight: Int { submitted - taken }

    /// Starts `work` on another thread.
    func submit(_ work: @escaping @Sendable () -> T) {
        let index = submitted
        submitted += 1
        queue.async {
            let result = work()
            self.condition.lock()
            self.results[index] = result
            self.condition.broadcast()
            self.condition.unlock()
        }
    }

    /// The result of the oldest piece not taken yet, waiting for it (the owner submitted it, so it ends).
    func next() -> T {
        precondition(taken < submitted, "OrderedWork.next() without work in flight")
        condition.lock()
        defer { condition.unlock() }
        while results[taken] == nil { condition.wait() }
        let result = results.removeValue(forKey: taken)!
        taken += 1
        return result
    }

    /// Waits for every piece in flight and returns their results in order (after a failure: nothing runs on).
    func drain() -> [T] {
        var all: [T] = []
        while inFlight > 0 { all.append(next()) }
        return all
    }
}

/// Runs one job at a time on its own thread, one behind the owner (the attach pipeline's fsync-and-rename of a
/// batch of chunks, while the next batch is sealed).
final class BackgroundJob: @unchecked Sendable {
    // @unchecked Sendable: `running` is only touched by the owner; the job's outcome goes through `done`.
    private let queue = DispatchQueue(label: "amanat.chunk-commit")
    private let done = DispatchSemaphore(value: 0)
    private var running = false
    private var failure: (any Error)?

    init() {}

    /// Waits for the job before (rethrowing its error), then starts `job`.
    func start(_ job: @escaping @Sendable () throws -> Void) throws {
        try wait()
        running = true
        queue.async {
            do { try job() } catch { self.failure = error }
            self.done.signal()
        }
    }

    /// Waits for the running job, if any, and rethrows its error.
    func wait() throws {
        guard running else { return }
        done.wait()
        running = false
        if let failure {
            self.failure = nil
            throw failure
        }
    }
}
