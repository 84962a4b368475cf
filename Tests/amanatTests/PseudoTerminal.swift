import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// Runs the `amanat` binary with a pseudo-terminal as its standard input, output and error, as a person at a
/// terminal would, and can type into it when the output shows a given text.
struct PseudoTerminal {
    struct Failure: Error, CustomStringConvertible {
        var description: String
    }

    /// A step of the conversation: when the output (since the previous step) contains `after`, type `send`.
    struct Step {
        var after: String
        var send: [UInt8]

        init(after: String, send: String) {
            self.after = after
            self.send = Array(send.utf8)
        }

        init(after: String, bytes: [UInt8]) {
            self.after = after
            self.send = bytes
        }
    }

    /// Runs `runner`'s binary with `args`; returns the exit status and everything it wrote to the terminal.
    /// `stderrToPipe` sends standard error to a pipe instead (to check that progress is drawn only on a terminal).
    static func run(
        _ runner: CLIRunner, _ args: [String], steps: [Step] = [], columns: UInt16 = 100, stderrToPipe: Bool = false,
        deadline: Duration = .seconds(60)
    ) throws -> (status: Int32, output: String, stderr: String) {
        // posix_openpt, grantpt, unlockpt and ptsname are not visible through Swift's Glibc module (they need
        // _XOPEN_SOURCE), so they are looked up by name.
        typealias IntCall = @convention(c) (Int32) -> Int32
        typealias NameCall = @convention(c) (Int32) -> UnsafeMutablePointer<CChar>?
        guard let openpt = dlsym(nil, "posix_openpt"), let grant = dlsym(nil, "grantpt"),
            let unlock = dlsym(nil, "unlockpt"), let ptsname = dlsym(nil, "ptsname")
        else { throw Failure(description: "no pseudo-terminal functions in the C library") }
        let master = unsafeBitCast(openpt, to: IntCall.self)(O_RDWR | O_NOCTTY)
        guard master >= 0, unsafeBitCast(grant, to: IntCall.self)(master) == 0,
            unsafeBitCast(unlock, to: IntCall.self)(master) == 0,
            let name = unsafeBitCast(ptsname, to: NameCall.self)(master)
        else { throw Failure(description: "no pseudo-terminal") }
        defer { close(master) }
        var size = winsize(ws_row: 40, ws_col: columns, ws_xpixel: 0, ws_ypixel: 0)
        _ = ioctl(master, UInt(TIOCSWINSZ), &size)
        let slavePath = String(cString: name)
        guard let slave = FileHandle(forUpdatingAtPath: slavePath) else {
            throw Failure(description: "cannot open \(slavePath)")
        }

        let process = Process()
        process.executableURL = CLIRunner.binary
        process.arguments = ["--vault", runner.vault.path] + args
        process.environment = runner.processEnvironment
        process.standardInput = slave
        process.standardOutput = slave
        let errPipe = Pipe()
        process.standardError = stderrToPipe ? errPipe : slave
        try process.run()
        try slave.close()
        let errBox = DataBox()
        if stderrToPipe {
            Thread {
                errBox.data = errPipe.fileHandleForReading.readDataToEndOfFile()
                errBox.done.signal()
            }.start()
        }

        var output: [UInt8] = []
        var seen = 0
        var pending = steps[...]
        let end = ContinuousClock.now + deadline
        var buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            if let step = pending.first,
                String(decoding: output[seen...], as: UTF8.self).contains(step.after)
            {
                _ = step.send.withUnsafeBytes { write(master, $0.baseAddress, $0.count) }
                seen = output.count
                pending = pending.dropFirst()
                continue
            }
            guard ContinuousClock.now < end else {
                process.terminate()
                throw Failure(
                    description:
                        "amanat \(args.joined(separator: " ")) did not finish within \(deadline); it wrote:\n\(String(decoding: output, as: UTF8.self))"
                )
            }
            var poller = pollfd(fd: master, events: Int16(POLLIN), revents: 0)
            if poll(&poller, 1, 100) > 0 {
                let count = read(master, &buffer, buffer.count)
                if count > 0 {
                    output += buffer[..<count]
                    continue
                }
                // EIO: every process holding the terminal has closed it.
                if !process.isRunning { break }
            } else if !process.isRunning {
                // Drain what is left, then stop.
                var drained = false
                while poll(&poller, 1, 0) > 0 {
                    let count = read(master, &buffer, buffer.count)
                    if count <= 0 { break }
                    output += buffer[..<count]
                    drained = true
                }
                if !drained { break }
            }
        }
        process.waitUntilExit()
        if stderrToPipe { errBox.done.wait() }
        return (
            process.terminationStatus, String(decoding: output, as: UTF8.self),
            String(decoding: errBox.data, as: UTF8.self)
        )
    }
}
