import AmanatCore
import AmanatCrypto
import Foundation

/// The decoders of the vault's sealed local rows (Protocol/storage.md §3), apart from the ``Vault`` that reads
/// them, so the fuzzing targets and their regression tests run exactly the code a vault runs on its own rows.
package enum StoredRow {
    /// The high bit of a projection row's first u32 marks a padded row; rows written before padding do not have it.
    package static let paddedRowFlag: UInt32 = 0x8000_0000

    /// Opens a sealed row, `nonce ‖ ciphertext ‖ tag` under the vault's local key, bound to `associatedData`.
    package static func open(_ body: Data, associatedData: [UInt8], what: String, key: SecureBytes) throws -> [UInt8] {
        try body.withUnsafeBytes { sealed in
            try associatedData.withUnsafeBytes { ad in try open(sealed, associatedData: ad, what: what, key: key) }
        }
    }

    /// The same, for a row held by the caller (a scan's block of rows read straight from SQLite): nothing is copied
    /// before it is opened.
    package static func open(
        _ sealed: UnsafeRawBufferPointer, associatedData: UnsafeRawBufferPointer, what: String, key: SecureBytes
    ) throws -> [UInt8] {
        guard sealed.count >= AEAD.nonceLength + AEAD.tagLength else {
            throw StoreError(.damaged, "The vault is damaged: \(what) is truncated.")
        }
        do {
            return try AEAD.open(sealed: sealed, additionalData: associatedData, key: key)
        } catch {
            throw StoreError(.damaged, "The vault is damaged: \(what) does not decrypt. Run `amanat verify`.")
        }
    }

    /// A projection row's plaintext for `state`: its view, its state, and zeros up to a multiple of `paddingBlock`.
    /// `nowMillis` is the clock the view's displayed values are chosen at (Protocol/change.md §5).
    package static func encodeState(_ state: RecordState, paddingBlock: Int, nowMillis: UInt64) -> [UInt8] {
        var w = ByteWriter(capacity: 512)
        w.write(bigEndian: UInt32(0))
        RecordView.encode(state.view(nowMillis: nowMillis), id: state.id, into: &w)
        var plain = w.bytes
        let viewLength = (UInt32(plain.count - 4) | paddedRowFlag).bigEndian
        withUnsafeBytes(of: viewLength) { plain.replaceSubrange(0..<4, with: $0) }
        let encoded = state.encoded()
        withUnsafeBytes(of: UInt32(encoded.count).bigEndian) { plain += $0 }
        plain += encoded
        let remainder = plain.count % paddingBlock
        if remainder != 0 { plain += repeatElement(0, count: paddingBlock - remainder) }
        return plain
    }

    /// The record state of a projection row's plaintext: `u32 (0x80000000 | view length) ‖ view ‖ u32 state
    /// length ‖ state ‖ zeros`, padded to a multiple of 128 bytes; a row of an earlier release, without the flag,
    /// is `u32 view length ‖ view ‖ state` (Protocol/storage.md §3).
    package static func decodeState(_ plain: [UInt8]) throws -> RecordState {
        do {
            var r = ByteReader(plain)
            let prefix = try r.read(bigEndian: UInt32.self)
            let viewLength = Int(prefix & ~paddedRowFlag)
            guard viewLength <= plain.count - 4 else { throw CoreError(.malformed, "view") }
            guard prefix & paddedRowFlag != 0 else {
                return try RecordState(decoding: Array(plain[(4 + viewLength)...]))
            }
            var rest = ByteReader(Array(plain[(4 + viewLength)...]))
            let stateLength = Int(try rest.read(bigEndian: UInt32.self))
            let state = try rest.read(count: stateLength)
            guard rest.remaining.allSatisfy({ $0 == 0 }) else { throw CoreError(.malformed, "padding") }
            return try RecordState(decoding: state)
        } catch {
            throw StoreError(.damaged, "The vault is damaged: a stored record does not decode.")
        }
    }

    /// Only the view section of a projection row's plaintext; nil for a record that is not visible.
    package static func decodeView(_ plain: [UInt8]) throws -> RecordView? {
        do {
            var r = ByteReader(plain, offset: 4)
            return try RecordView.decode(from: &r)
        } catch {
            throw StoreError(.damaged, "The vault is damaged: a stored record does not decode.")
        }
    }

    /// The clock row's plaintext: the last timestamp the device issued.
    package static func decodeClock(_ plain: [UInt8]) throws -> HLCTimestamp {
        var r = ByteReader(plain)
        return HLCTimestamp(
            wallMillis: try r.read(bigEndian: UInt64.self), counter: try r.read(bigEndian: UInt32.self))
    }

    /// The held-back creation counters' plaintext: `varint n ‖ (device ‖ varint count) × n`.
    package static func decodeRefusedCreates(_ plain: [UInt8]) throws -> [DeviceID: Int] {
        var r = ByteReader(plain)
        var counts: [DeviceID: Int] = [:]
        do {
            for _ in 0..<(try r.readCount(minimumElementSize: 33)) {
                let device = try DeviceID(r.read(count: 32))
                counts[device] = Int(clamping: try r.readVarint())
            }
        } catch {
            throw StoreError(.damaged, "The vault is damaged: a stored counter does not decode.")
        }
        return counts
    }
}
