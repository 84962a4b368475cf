/// Strict ASCII armor for age files: RFC 7468 strict PEM, label "AGE ENCRYPTED FILE", 64 columns, padded base64.
enum AgeArmor {
    static let begin = Array("-----BEGIN AGE ENCRYPTED FILE-----".utf8)
    static let end = Array("-----END AGE ENCRYPTED FILE-----".utf8)
    static let columns = 64
    static let bytesPerLine = columns / 4 * 3

    /// Whether a byte may surround the PEM block (space, tab, CR, LF).
    static func isWhitespace(_ byte: UInt8) -> Bool {
        byte == 0x20 || byte == 0x09 || byte == 0x0d || byte == 0x0a
    }

    static func failure(_ message: String) -> AgeError { AgeError(.armorFailure, message) }
}

/// Streams bytes into armored text, emitting whole lines to `output` as they fill.
struct AgeArmorEncoder {
    private var pending: [UInt8] = []
    private var started = false
    private let output: ([UInt8]) throws -> Void

    init(output: @escaping ([UInt8]) throws -> Void) {
        self.output = output
    }

    /// Encodes `bytes`, writing every complete 64-column line.
    mutating func write(_ bytes: [UInt8]) throws {
        var out = [UInt8]()
        if !started {
            out = AgeArmor.begin + [0x0a]
            started = true
        }
        pending += bytes
        let whole = pending.count / AgeArmor.bytesPerLine * AgeArmor.bytesPerLine
        var index = 0
        while index < whole {
            out += AgeBase64.encodePadded(Array(pending[index..<(index + AgeArmor.bytesPerLine)]))
            out.append(0x0a)
            index += AgeArmor.bytesPerLine
        }
        pending.removeFirst(whole)
        if !out.isEmpty { try output(out) }
    }

    /// Writes the final partial line, if any, and the END line.
    mutating func finish() throws {
        var out = [UInt8]()
        if !started { out = AgeArmor.begin + [0x0a] }
        if !pending.isEmpty {
            out += AgeBase64.encodePadded(pending) + [0x0a]
            pending = []
        }
        out += AgeArmor.end + [0x0a]
        try output(out)
    }
}

/// A byte source that strictly decodes an armored age file read from another source.
///
/// Accepted: optional space, tab, CR or LF before the BEGIN line and after the END line; LF or CRLF line endings,
/// the same on every line; body lines of exactly 64 columns except a last line of 4 to 64; canonical padded base64.
final class AgeArmorDecoder: AgeByteSource {
    private enum State { case start, body, done }

    private let input: AgeBufferedReader
    private var state = State.start
    private var crlf = false
    /// Set once a short or padded line was read: the next line must be the END line.
    private var expectEnd = false

    init(_ input: AgeBufferedReader) {
        self.input = input
    }

    /// Returns decoded bytes, a line at a time up to about `maxCount`, or an empty array after a valid END line.
    func read(upTo maxCount: Int) throws -> [UInt8] {
        if state == .start { try readBegin() }
        var out = [UInt8]()
        while state == .body && (out.isEmpty || out.count + AgeArmor.bytesPerLine <= maxCount) {
            out += try readBodyLine()
        }
        return out
    }

    private func readLineContent() throws -> [UInt8]? {
        guard
            let (line, terminated) = try input.readLine(
                maxLength: AgeArmor.columns + 2, tooLong: AgeArmor.failure("An armor line is longer than 64 columns."))
        else { return nil }
        guard terminated else { return line }
        let eol = crlf ? 2 : 1
        guard line.count >= eol, !crlf || line[line.count - 2] == 0x0d else {
            throw AgeArmor.failure("The armor mixes LF and CRLF line endings.")
        }
        return Array(line.dropLast(eol))
    }

    private func readBegin() throws {
        while let byte = try input.peek(1).first, AgeArmor.isWhitespace(byte) {
            _ = try input.read(1)
        }
        guard
            let (line, terminated) = try input.readLine(
                maxLength: AgeArmor.begin.count + 2, tooLong: AgeArmor.failure("The armor BEGIN line is malformed."))
        else {
            throw AgeArmor.failure("The input is empty, not an armored age file.")
        }
        guard terminated else { throw AgeArmor.failure("The armor ends right after its BEGIN line.") }
        if line == AgeArmor.begin + [0x0a] {
            crlf = false
        } else if line == AgeArmor.begin + [0x0d, 0x0a] {
            crlf = true
        } else {
            throw AgeArmor.failure("The armor does not start with -----BEGIN AGE ENCRYPTED FILE-----.")
        }
        state = .body
    }

    private func readBodyLine() throws -> [UInt8] {
        guard let line = try readLineContent() else {
            throw AgeArmor.failure("The armor ends without its END line.")
        }
        if line == AgeArmor.end {
            // An empty body is valid armor of zero bytes: as in the reference implementation, the age header that
            // is then missing makes it a header failure, not an armor failure.
            try readTrailer()
            return []
        }
        guard !expectEnd else {
            throw AgeArmor.failure("The armor has data after its last (short or padded) line.")
        }
        guard !line.isEmpty, line.count <= AgeArmor.columns, line.count % 4 == 0 else {
            throw AgeArmor.failure("An armor line is empty or has a length that is not a multiple of four.")
        }
        guard let data = AgeBase64.decodePadded(line) else {
            throw AgeArmor.failure("An armor line is not canonical padded base64.")
        }
        if line.count < AgeArmor.columns || line.last == UInt8(ascii: "=") { expectEnd = true }
        return data
    }

    /// After the END line only whitespace may follow, up to the end of the input.
    private func readTrailer() throws {
        state = .done
        while true {
            let bytes = try input.read(64 * 1024)
            if bytes.isEmpty { return }
            guard bytes.allSatisfy(AgeArmor.isWhitespace) else {
                throw AgeArmor.failure("The armor is followed by data other than whitespace.")
            }
        }
    }
}
