import AmanatBundle
import AmanatCore
import AmanatCrypto
import AmanatStore
import Foundation

/// Rewrites an evidence bundle as an attacker or a redactor would, with only what the bundle and a signing key give:
/// files are replaced or removed, the manifest is edited, its SHA-256 list recomputed and it is signed again with
/// `signer` (which need not be the device the manifest names).
public func resignBundle(
    _ archive: TarArchive, signer: SigningKeyPair, replacing: [String: [UInt8]] = [:], removing: Set<String> = [],
    editManifest: (JSONValue) -> JSONValue = { $0 }
) throws -> TarArchive {
    var files: [(String, [UInt8])] = []
    for entry in archive.entries where !removing.contains(entry.path) {
        files.append((entry.path, replacing[entry.path] ?? entry.contents))
    }
    for (path, bytes) in replacing where !files.contains(where: { $0.0 == path }) { files.append((path, bytes)) }
    let listed = files.filter { $0.0 != "manifest.json" && $0.0 != "manifest.sig" }
        .sorted { $0.0.utf8.lexicographicallyPrecedes($1.0.utf8) }
        .map { JSONValue.object([("path", .string($0.0)), ("sha256", .string(Hex.encode(SHA256.hash($0.1))))]) }
    let manifest = try JSONValue.parse(try require(archive.file("manifest.json")))
    let edited = editManifest(manifest.setting("files", to: .array(listed))).canonical
    var out = TarArchive()
    for (path, bytes) in files {
        switch path {
        case "manifest.json": out.add(path, edited)
        case "manifest.sig": out.add(path, signer.sign(BundleManifest.signatureContext + edited))
        default: out.add(path, bytes)
        }
    }
    return out
}

/// Writes `archive` as an age bundle encrypted to `recipient`, exactly as `amanat export` does.
public func writeAgeBundle(_ archive: TarArchive, to url: URL, recipient: String) throws {
    var bytes: [UInt8] = []
    let encryptor = try AgeEncryptor(recipients: [try AgeX25519Recipient(parsing: recipient)], armor: false) {
        bytes += $0
    }
    try encryptor.write(BundleExporter.padded(archive.encoded()))
    try encryptor.finish()
    try Data(bytes).write(to: url)
}

/// The custody of `record` in `archive` without the changes `drop` selects, and the record document re-rendered from
/// what is left: what a redactor who withholds an amendment writes (the published algorithm, run on the bundle).
public func redactedRecord(
    _ archive: TarArchive, record: RecordID, drop: (DeviceID, UInt64) -> Bool
) throws -> [String: [UInt8]] {
    let custodyPath = "custody/\(record.hex).json"
    let custody = try JSONValue.parse(try require(archive.file(custodyPath)))
    var kept: [JSONValue] = []
    var state = RecordState(id: record)
    var changes: [(envelope: Envelope, change: AuthoredChange)] = []
    for item in custody["envelopes"]?.arrayValue ?? [] {
        let raw = Array(try require(Data(base64Encoded: try require(item["envelope"]?.stringValue))))
        let envelope = try Envelope(decoding: raw)
        if drop(envelope.header.author, envelope.header.seq) { continue }
        let key = try require(Hex.decode(try require(item["envelope_key"]?.stringValue)))
        let change = try envelope.open(withEnvelopeKey: SecureBytes(key))
        let authored = AuthoredChange(author: envelope.header.author, seq: envelope.header.seq, change: change)
        state.apply(authored)
        changes.append((envelope, authored))
        kept.append(item)
    }
    return [
        custodyPath: custody.setting("envelopes", to: .array(kept)).canonical,
        "records/\(record.hex).json": try RecordDocument(state: state, changes: changes, exportedAtMillis: nowMillis())
            .encoded,
    ]
}

/// A stand-in for `#require` outside a test body: the value, or an error saying what was missing.
func require<T>(_ value: T?, _ what: String = "a value the bundle should hold") throws -> T {
    guard let value else { throw ForgeryError(description: "missing \(what)") }
    return value
}

struct ForgeryError: Error, CustomStringConvertible {
    var description: String
}

/// The bundle an outsider fabricates for a team's vault, whose id is public: its own device signs a `found` entry and
/// an invented testimony under the team's vault id, and it adds the team's real membership entries with their chain
/// links (which any relay of the vault, or an earlier bundle, shows) when `team` is given. The manifest names
/// `claimedExporter` (a real team device, say) or the outsider, and the outsider signs it: it has no other key.
public func fabricate(
    vaultID: [UInt8], outsider: Vault, team: Vault?, claimedExporter: DeviceID?
) throws -> TarArchive {
    let signer = outsider.keyring.device
    var chain = ForgedChain(vaultID: vaultID, signer: signer)
    let sealedName = SealedName(epoch: 1, nonce: Sodium.randomBytes(24), ciphertext: Sodium.randomBytes(48))
    let found = try chain.entry(
        .found(
            salt: Sodium.randomBytes(16), agreementKey: try require(outsider.keyring.agreement).publicKey,
            name: sealedName), at: stampNow())
    let key = writingKey(of: outsider)
    let record = RecordID.derived(author: chain.device, seq: 2)
    let invented = try chain.change(
        record, key: key, at: stampNow(),
        testimonyOperations([("witness", "W-INVENTED"), ("narrative", "never happened"), ("consent", "share")]))
    var state = RecordState(id: record)
    let authored = AuthoredChange(
        author: chain.device, seq: 2,
        change: try invented.open(withEnvelopeKey: key.envelopeKey(author: chain.device, seq: 2)))
    state.apply(authored)
    let document = try RecordDocument(state: state, changes: [(invented, authored)], exportedAtMillis: nowMillis())

    func item(_ e: Envelope, key: [UInt8]?) -> JSONValue {
        var m: [(String, JSONValue)] = [
            ("device", .string(e.header.author.hex)), ("seq", .integer(Int64(e.header.seq))),
            ("hash", .string(Hex.encode(e.hash))), ("envelope", .string(Data(e.encoded()).base64EncodedString())),
        ]
        if let key { m.append(("envelope_key", .string(Hex.encode(key)))) }
        return .object(m)
    }
    var entries: [Envelope] = [found]
    var chains: [DeviceID: [UInt8]] = [chain.device: ChainLink(found).encoded + ChainLink(invented).encoded]
    if let team {
        let teamEntries = try team.authorityEnvelopes().filter { $0.header.vaultID == vaultID }
        entries += teamEntries
        for device in Set(teamEntries.map(\.header.author)) {
            let last = teamEntries.filter { $0.header.author == device }.map(\.header.seq).max()!
            chains[device] = try team.envelopes(of: device, after: 0, limit: Int(last)).flatMap {
                ChainLink($0).encoded
            }
        }
    }
    entries.sort { ($0.header.author, $0.header.seq) < ($1.header.author, $1.header.seq) }
    var files: [(String, [UInt8])] = [
        ("README.txt", Array(BundleExporter.readme.utf8)),
        (
            "membership.json",
            JSONValue.object([
                ("vault_id", .string(Hex.encode(vaultID))), ("entries", .array(entries.map { item($0, key: nil) })),
            ]).canonical
        ),
        ("records/\(record.hex).json", document.encoded),
        (
            "custody/\(record.hex).json",
            JSONValue.object([
                ("record", .string(record.hex)),
                ("envelopes", .array([item(invented, key: key.envelopeKey(author: chain.device, seq: 2).copyBytes())])),
            ]).canonical
        ),
    ]
    let exporter = claimedExporter ?? chain.device
    if chains[exporter] == nil, let team {
        chains[exporter] = try team.envelopes(of: exporter, after: 0, limit: 1).flatMap { ChainLink($0).encoded }
    }
    guard chains[exporter]?.isEmpty == false else {
        throw ForgeryError(description: "no chain of the claimed exporter")
    }
    let devices = chains.keys.sorted()
    for device in devices { files.append(("chains/\(device.hex).bin", chains[device]!)) }
    let manifest = JSONValue.object([
        ("format", .string("amanat-bundle/2")), ("vault_id", .string(Hex.encode(vaultID))),
        ("exported_at_ms", .integer(Int64(stampNow().wallMillis))), ("exported_by", .string(exporter.hex)),
        ("membership", .string("membership.json")),
        (
            "files",
            .array(
                files.sorted { $0.0.utf8.lexicographicallyPrecedes($1.0.utf8) }.map {
                    .object([("path", .string($0.0)), ("sha256", .string(Hex.encode(SHA256.hash($0.1))))])
                })
        ),
        (
            "devices",
            .array(
                devices.map {
                    .object([
                        ("device", .string($0.hex)), ("chain", .string("chains/\($0.hex).bin")),
                        ("links", .integer(Int64(chains[$0]!.count / ChainLink.length))),
                        ("name", .string($0 == exporter ? "Laila" : "team device")),
                    ])
                })
        ),
        (
            "records",
            .array([
                .object([
                    ("id", .string(record.hex)), ("kind", .string("testimony")), ("consent", .string("share")),
                    ("record", .string("records/\(record.hex).json")),
                    ("custody", .string("custody/\(record.hex).json")),
                    (
                        "changes",
                        .array([
                            .object([
                                ("device", .string(chain.device.hex)), ("seq", .integer(2)),
                                ("envelope", .string(Hex.encode(invented.hash))),
                            ])
                        ])
                    ),
                ])
            ])
        ),
    ]).canonical
    var archive = TarArchive()
    archive.add("README.txt", files[0].1)
    archive.add("manifest.json", manifest)
    archive.add("manifest.sig", signer.sign(BundleManifest.signatureContext + manifest))
    for (path, bytes) in files.dropFirst() { archive.add(path, bytes) }
    return archive
}

/// The wall clock in milliseconds: forged documents choose displayed values as an export made now would (none of
/// the forged stamps lies in the future, so any export time within a day renders the same bytes).
func nowMillis() -> UInt64 { UInt64(Date().timeIntervalSince1970 * 1000) }
