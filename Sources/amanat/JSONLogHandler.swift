import Foundation
import Logging

#if canImport(Glibc)
    import Glibc
#endif

/// `amanat serve --log-format json`: each event as one JSON object on its own line of stderr, for a log collector.
///
/// Keys: `time` (RFC 3339, UTC, milliseconds), `level`, `label`, `message`, and `metadata` (the event's key-value
/// pairs: request id, vault prefix, method, path, status…) when it has any. JSON's escaping keeps every event on one
/// line whatever text it carries, so a client cannot start a line of its own in the log.
struct JSONLogHandler: LogHandler {
    let label: String
    var logLevel: Logger.Level
    var metadata: Logger.Metadata = [:]

    init(label: String, level: Logger.Level) {
        self.label = label
        logLevel = level
    }

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        Self.write(
            level: event.level, label: label, message: "\(event.message)",
            metadata: metadata.merging(event.metadata ?? [:]) { $1 })
    }

    /// Writes one event stamped now, whatever the log level: the handler's events, and the relay's notices to its
    /// operator.
    static func write(level: Logger.Level, label: String, message: String, metadata: Logger.Metadata = [:]) {
        write(line(time: Date(), level: level, label: label, message: message, metadata: metadata))
    }

    /// One event's line, newline included.
    static func line(time: Date, level: Logger.Level, label: String, message: String, metadata: Logger.Metadata)
        -> Data
    {
        var event: [String: Any] = [
            "time": time.formatted(Date.ISO8601FormatStyle(includingFractionalSeconds: true)),
            "level": level.rawValue, "label": label, "message": message,
        ]
        if !metadata.isEmpty { event["metadata"] = metadata.mapValues(json) }
        // Every value is a string, an array or a dictionary of them: serialization cannot fail.
        var line =
            (try? JSONSerialization.data(withJSONObject: event, options: [.sortedKeys, .withoutEscapingSlashes]))
            ?? Data(#"{"message":"unencodable log event"}"#.utf8)
        line.append(0x0A)
        return line
    }

    static func json(_ value: Logger.MetadataValue) -> Any {
        switch value {
        case .string(let text): text
        case .stringConvertible(let value): value.description
        case .array(let values): values.map(json)
        case .dictionary(let values): values.mapValues(json)
        }
    }

    /// Lines from several threads never interleave: each is written whole, under one lock.
    private static let lock = NSLock()

    static func write(_ line: Data) {
        lock.withLock {
            line.withUnsafeBytes { bytes in
                var offset = 0
                while offset < bytes.count {
                    let n = Glibc.write(STDERR_FILENO, bytes.baseAddress! + offset, bytes.count - offset)
                    if n < 0 && errno == EINTR { continue }
                    if n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) {
                        // A non-blocking stderr that is full: wait for room (1 s at most each time) rather than leave
                        // half a line for the next event to be glued to.
                        var descriptor = pollfd(fd: STDERR_FILENO, events: Int16(POLLOUT), revents: 0)
                        if poll(&descriptor, 1, 1000) > 0 { continue }
                        return
                    }
                    guard n > 0 else { return }
                    offset += n
                }
            }
        }
    }
}
