import AmanatCore
import AmanatCrypto
import AmanatTestSupport
import Foundation

@testable import AmanatStore

let testPassphrase = SecureBytes(Array("correct horse battery staple".utf8))

/// A new vault with the fast KDF, in its own temporary directory.
func makeVault(in dir: TemporaryDirectory, name: String = "vault") throws -> Vault {
    try Vault.create(at: dir.path(name), passphrase: testPassphrase, deviceName: name, strength: .interactive)
}

/// Three distinctive phrases of the sample statement and a witness code, which must never appear at rest.
let knownPlaintexts = ["shaking the bloody hands", "compulsory burqas", "Kremlin spokesman", "W-SECRET-4711"]

/// The sample statement shipped in seeds/.
func sampleStatement() throws -> String {
    let url = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("seeds/coalition-statement-on-russia-recognition.txt")
    return try String(contentsOf: url, encoding: .utf8)
}

/// Whether any file under `dir` contains `needle` as bytes.
func anyFile(under dir: URL, contains needle: String) throws -> [String] {
    let needleBytes = Array(needle.utf8)
    var hits: [String] = []
    let names = try FileManager.default.subpathsOfDirectory(atPath: dir.path)
    for name in names {
        let url = dir.appendingPathComponent(name)
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: url.path, isDirectory: &isDir), !isDir.boolValue else { continue }
        let bytes = Array(try Data(contentsOf: url))
        if bytes.count >= needleBytes.count,
            (0...(bytes.count - needleBytes.count)).contains(where: { i in
                bytes[i] == needleBytes[0] && Array(bytes[i..<i + needleBytes.count]) == needleBytes
            })
        {
            hits.append(name)
        }
    }
    return hits
}
