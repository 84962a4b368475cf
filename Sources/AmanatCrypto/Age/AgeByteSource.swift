/// A source of bytes read in order, from which streaming decryption pulls its input.
public protocol AgeByteSource {
    /// Returns the next 1...`maxCount` bytes, or an empty array only at the end of the input.
    mutating func read(upTo maxCount: Int) throws -> [UInt8]
}

/// A byte source over an array already in memory.
public struct AgeMemorySource: AgeByteSource {
    private let bytes: [UInt8]
    private var position = 0

    /// Creates a source that yields `bytes` and then ends.
    public init(_ bytes: [UInt8]) {
        self.bytes = bytes
    }

    /// Returns the next bytes, or an empty array at the end.
    public mutating func read(upTo maxCount: Int) throws -> [UInt8] {
        let end = min(bytes.count, position + max(maxCount, 0))
        defer { position = end }
        return Array(bytes[position..<end])
    }
}

/// A byte source that calls a closure, for example one reading a file handle or a socket.
public struct AgeClosureSource: AgeByteSource {
    private let body: (Int) throws -> [UInt8]

    /// Creates a source from a closure that returns up to the requested count of bytes, or an empty array at the end.
    public init(_ body: @escaping (Int) throws -> [UInt8]) {
        self.body = body
    }

    /// Returns what the closure returns, after checking it honoured the requested maximum.
    public mutating func read(upTo maxCount: Int) throws -> [UInt8] {
        let bytes = try body(maxCount)
        guard bytes.count <= maxCount else {
            throw AgeError(.invalidUse, "The input closure returned more bytes than were asked for.")
        }
        return bytes
    }
}

/// Buffers a byte source so the parser can peek, read lines and read exact counts with bounded memory.
final class AgeBufferedReader {
    private var source: any AgeByteSource
    private var buffer: [UInt8] = []
    private var start = 0
    private var atEnd = false
    /// Bytes handed out so far (for header size limits and error positions).
    private(set) var consumed = 0

    private static let readSize = 64 * 1024

    init(_ source: any AgeByteSource) {
        self.source = source
    }

    private var available: Int { buffer.count - start }

    /// Makes at least `count` bytes available unless the input ends first; returns the number available.
    @discardableResult
    func fill(_ count: Int) throws -> Int {
        while available < count && !atEnd {
            if start > 0 && start >= buffer.count / 2 {
                buffer.removeFirst(start)
                start = 0
            }
            let chunk = try source.read(upTo: max(count - available, Self.readSize))
            if chunk.isEmpty { atEnd = true } else { buffer.append(contentsOf: chunk) }
        }
        return available
    }

    /// Returns up to `count` upcoming bytes without consuming them.
    func peek(_ count: Int) throws -> ArraySlice<UInt8> {
        let n = min(try fill(count), count)
        return buffer[start..<(start + n)]
    }

    /// Consumes and returns up to `count` bytes; fewer only at the end of the input.
    func read(_ count: Int) throws -> [UInt8] {
        let n = min(try fill(count), count)
        let out = Array(buffer[start..<(start + n)])
        start += n
        consumed += n
        return out
    }

    /// Whether the input has no more bytes.
    func isAtEnd() throws -> Bool { try fill(1) == 0 }

    /// Consumes one line including its LF; returns `nil` at the end of input, or the unterminated rest.
    ///
    /// Throws `tooLong` if no LF appears within `maxLength` bytes.
    func readLine(maxLength: Int, tooLong: @autoclosure () -> Error) throws -> (bytes: [UInt8], terminated: Bool)? {
        var scanned = 0
        while true {
            let limit = min(available, maxLength)
            if let lf = buffer[(start + scanned)..<(start + limit)].firstIndex(of: 0x0a) {
                let line = Array(buffer[start...lf])
                consumed += line.count
                start = lf + 1
                return (line, true)
            }
            scanned = limit
            if limit >= maxLength { throw tooLong() }
            if try fill(available + 1) == limit {
                // The input ended without a line feed.
                if limit == 0 { return nil }
                let rest = Array(buffer[start..<(start + limit)])
                consumed += rest.count
                start += limit
                return (rest, false)
            }
        }
    }
}
