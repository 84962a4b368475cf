import AmanatCrypto
import Testing

@Suite("Hex")
struct HexTests {
    @Test("encodes lower case and decodes either case")
    func roundTrip() {
        let all = (0...255).map { UInt8($0) }
        let text = Hex.encode(all)
        #expect(text.count == 512)
        #expect(text.hasPrefix("000102"))
        #expect(text.hasSuffix("fdfeff"))
        #expect(Hex.decode(text) == all)
        #expect(Hex.decode(text.uppercased()) == all)
        #expect(Hex.decode("") == [])
        #expect(Hex.encode([]) == "")
        #expect(Hex.decode("aB0f") == [0xab, 0x0f])
    }

    @Test("rejects odd lengths and non-hex characters", arguments: ["a", "abc", "0g", "zz", " 0", "0x00", "é0", "-1"])
    func rejects(_ text: String) {
        #expect(Hex.decode(text) == nil)
    }
}
