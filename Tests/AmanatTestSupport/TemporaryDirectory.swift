import Foundation

/// A fresh temporary directory, removed when released.
public final class TemporaryDirectory {
    /// The directory.
    public let url: URL

    /// Creates `amanat-<prefix>-<uuid>` under the system's temporary directory.
    public init(prefix: String = "test") throws {
        url = FileManager.default.temporaryDirectory.appendingPathComponent("amanat-\(prefix)-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    }

    deinit { try? FileManager.default.removeItem(at: url) }

    /// A path inside the directory.
    public func path(_ name: String) -> URL { url.appendingPathComponent(name) }
}
