/// Text from a vault made safe to print on a terminal.
enum TerminalSafe {
    /// `text` with control characters, ESC and bidirectional overrides shown as `\u{…}` escapes, so data can
    /// never drive the terminal.
    static func text(_ text: String) -> String {
        var out = ""
        for scalar in text.unicodeScalars {
            switch scalar.value {
            case 0x00...0x1F, 0x7F...0x9F, 0x202A...0x202E, 0x2066...0x2069, 0x200E, 0x200F, 0x061C:
                out += "\\u{\(String(scalar.value, radix: 16))}"
            default:
                out.unicodeScalars.append(scalar)
            }
        }
        return out
    }
}
